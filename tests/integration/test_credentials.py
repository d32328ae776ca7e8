"""Client secrets as Entra ID reads them: the client id and secret in the Basic header are
form-encoded first (RFC 6749 section 2.3.1), and Entra decodes them before comparing. A secret
holding + / = % ~ : must therefore reach it encoded, or it is refused (AADSTS7000215) and the
tenant pauses. The simulator's basic_auth dialect decodes leniently (as before) or strictly
(a raw character an encoder escapes is refused, as RFC 6749 asks).
"""

import base64
import urllib.parse

import pytest

from conftest import NimbusSync, api_requests, describe, dialect_variants, guids, roster_users, \
    sim_ids

OU = guids(1)[0]

SECRETS = [
    "a+b/c=d%e~f:g",      # every character of the issue
    "%41%2B",             # percent sequences that decode to something else
    "+:+==",              # a '+' is a space to a form decoder, ':' splits the Basic value
    "~Kq8Q~x/yZ.AbC-_d",  # the shape of Entra's generated secrets
    "pässwörd €",         # UTF-8 and a space
]


@pytest.fixture
def setup(nimbus_bin, tmp_path, start_sim):
    """setup(secret, **sim options) -> NimbusSync against a simulator that holds that secret."""
    def _setup(secret, **options):
        return NimbusSync(nimbus_bin, tmp_path, start_sim(secret=secret, **options))
    return _setup


def encoded(secret):
    return urllib.parse.quote(secret, safe="~")


@pytest.mark.parametrize("mode", ["lenient", "strict"])
@pytest.mark.parametrize("secret", SECRETS)
def test_secret_with_special_characters(setup, secret, mode):
    ns = setup(secret, basic_auth=mode)
    ids = guids(2)
    ns.write_roster(roster_users(ids, OU))

    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    st = ns.sim.state()
    assert sim_ids(st) == set(ids)
    assert st["token_requests"] and all(r["status"] == 200 and r["basic"]
                                        for r in st["token_requests"]), st["token_requests"]
    # Neither the secret (checked for every run) nor its encoded form appears in the output.
    assert encoded(secret) not in p.stdout + p.stderr


@pytest.mark.parametrize("sim_dialect", dialect_variants("basic_auth"))
def test_wrong_secret_still_refused(ns, sim, sim_dialect):
    ns.write_secret(sim.secret + "+")
    ns.write_roster(roster_users(guids(1), OU))
    p = ns.run("apply")
    assert p.returncode == 1, describe(p)
    assert "AADSTS7000215" in p.stderr, describe(p)
    st = sim.state()
    assert api_requests(st) == [] and sim_ids(st) == set()


def test_strict_sim_refuses_what_the_old_client_sent(start_sim):
    """The test above can fail: the raw "id:secret" Basic value the old client sent is refused."""
    sim = start_sim(secret=SECRETS[0], basic_auth="strict")
    raw = base64.b64encode(f"{sim.client_id}:{sim.secret}".encode()).decode()
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": sim.scope})
    status, _, body = sim.request("POST", f"/{sim.tenant}/oauth2/v2.0/token", form, {
        "Authorization": "Basic " + raw, "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 401 and b"AADSTS7000215" in body
