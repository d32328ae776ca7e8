"""Certificate credentials: nimbus-sync proving its identity with a client assertion (RFC 7523)
signed by the application's certificate key instead of a client secret, as Entra ID does them:
PS256 by default, RS256 when client_assertion_alg says so (the simulator's assertion_alg dialect
takes both, or only one).

The first half runs the binary against a simulator that has the certificate registered; the
second half checks the simulator's own verification with assertions built here, so that a
passing first half means the binary's assertions were really verified.
"""

import base64
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import api_requests, describe, guid, guids, roster_users, sim_ids
from simclient import MKCERTS, make_assertion   # conftest put tests/sim on the path

OU = guid()
JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ")   # a JWT: base64url of '{"' twice


def use_certificate(ns, cert, key, **more):
    """Point the config at a certificate and key instead of the secret."""
    return ns.configure(client_secret_file=None, client_certificate_file=str(cert),
                        client_key_file=str(key), **more)


def private_copy(src, dst, mode=0o600):
    shutil.copyfile(src, dst)
    os.chmod(dst, mode)
    return dst


def assert_no_key_material(p, key_file):
    """Neither the private key nor any assertion may appear in the output."""
    out = p.stdout + p.stderr
    for line in Path(key_file).read_text().splitlines()[1:4]:
        assert line not in out, "private key material appeared in the output"
    assert not JWT_RE.search(out), "a client assertion appeared in the output"


def token_requests(sim):
    return sim.state()["token_requests"]


# --- nimbus-sync with a certificate ----------------------------------------------------------

@pytest.mark.sim(client_cert=True)
def test_apply_with_a_certificate_converges(ns, sim):
    ids = guids(4)
    ns.write_roster(roster_users(ids, OU))
    use_certificate(ns, sim.client_cert_file, sim.client_key_file)
    assert os.stat(sim.client_cert_file).st_mode & 0o777 == 0o644   # a public certificate is fine
    ns.secret_file.unlink()   # the secret is not needed, so it must not be read

    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert_no_key_material(p, sim.client_key_file)
    st = sim.state()
    assert sim_ids(st) == set(ids)
    reqs = st["token_requests"]
    assert reqs and all(r["status"] == 200 and r["auth"] == "assertion" and not r["basic"]
                        for r in reqs), reqs

    # Converged: a second run (a new process, so a new assertion) changes nothing.
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert_no_key_material(p, sim.client_key_file)
    assert [r for r in api_requests(sim.state()) if r["method"] != "GET"] == \
        [r for r in api_requests(st) if r["method"] != "GET"]
    assert ns.status_json()["auth"]["state"] == "ok"


@pytest.mark.sim(client_cert=True)
@pytest.mark.parametrize("sim_dialect", [{"assertion_alg": a} for a in ("any", "PS256", "RS256")],
                         ids=lambda d: "sim accepts " + d["assertion_alg"])
@pytest.mark.parametrize("alg", [None, "PS256", "RS256"], ids=lambda a: f"config {a}")
def test_assertion_algorithm(ns, sim, sim_dialect, alg):
    """PS256 (RSASSA-PSS) unless client_assertion_alg says RS256; a tenant that takes only the
    other algorithm refuses the token, and the reason names the algorithm."""
    ids = guids(2)
    ns.write_roster(roster_users(ids, OU))
    use_certificate(ns, sim.client_cert_file, sim.client_key_file,
                    **({"client_assertion_alg": alg} if alg else {}))
    sent = alg or "PS256"
    accepted = sim_dialect["assertion_alg"] in ("any", sent)

    p = ns.run("apply")
    assert_no_key_material(p, sim.client_key_file)
    reqs = token_requests(sim)
    assert reqs and all(r["alg"] == sent and r["auth"] == "assertion" for r in reqs), reqs
    if accepted:
        assert p.returncode == 0, describe(p)
        assert sim_ids(sim.state()) == set(ids)
    else:
        assert p.returncode == 1, describe(p)
        assert "AADSTS5002738" in p.stderr and f"'{sent}' is not a supported" in p.stderr, \
            describe(p)
        assert len(reqs) <= 2 and api_requests(sim.state()) == []


@pytest.mark.sim(client_cert=True)
def test_validate_refuses_an_unknown_assertion_algorithm(ns, sim):
    use_certificate(ns, sim.client_cert_file, sim.client_key_file, client_assertion_alg="HS256")
    p = ns.run("validate")
    assert p.returncode == 1, describe(p)
    assert "client_assertion_alg: unknown value \"HS256\" (expected PS256 or RS256)" in p.stderr

    ns.configure(client_assertion_alg="RS256")   # with the secret config: meaningless
    p = ns.run("validate")
    assert p.returncode == 1, describe(p)
    assert "client_assertion_alg: only applies to a certificate credential" in p.stderr


@pytest.mark.sim(client_cert=True, token_ttl=1, rate_ops=50)
def test_every_token_request_gets_a_fresh_assertion(ns, sim):
    ids = guids(100)   # at 50/s about 2 s: the 1 s token is fetched again several times
    ns.write_roster(roster_users(ids, OU))
    use_certificate(ns, sim.client_cert_file, sim.client_key_file, rate_limit={"operations": 50})

    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert sim_ids(sim.state()) == set(ids)
    reqs = token_requests(sim)
    # The simulator refuses a jti it has seen: all accepted means each assertion was new.
    assert len(reqs) >= 2, reqs
    assert all(r["status"] == 200 and r["auth"] == "assertion" for r in reqs), reqs


@pytest.mark.sim(client_cert=True)
def test_key_from_a_systemd_credential(ns, sim, tmp_path):
    creds = tmp_path / "credentials"
    creds.mkdir()
    private_copy(sim.client_key_file, creds / "app-key", 0o400)   # as systemd leaves it
    ids = guids(2)
    ns.write_roster(roster_users(ids, OU))
    ns.configure(client_secret_file=None, client_certificate_file=sim.client_cert_file,
                 client_key_credential="app-key")

    p = ns.run("apply", env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert p.returncode == 0, describe(p)
    assert sim_ids(sim.state()) == set(ids)


@pytest.mark.sim(client_cert=True)
def test_a_certificate_entra_does_not_know_is_refused(ns, sim):
    # A key with its own certificate, but not the one registered for the application.
    ns.write_roster(roster_users(guids(2), OU))
    use_certificate(ns, sim.wrong_cert_file, sim.wrong_key_file)

    p = ns.run("apply")
    assert p.returncode == 1, describe(p)
    assert "AADSTS700027" in p.stderr, describe(p)
    assert_no_key_material(p, sim.wrong_key_file)
    st = sim.state()
    assert api_requests(st) == [] and sim_ids(st) == set()
    assert 1 <= len(st["token_requests"]) <= 2, "a refused credential must not be hammered"
    s = ns.status_json()
    assert s["auth"]["state"] == "failed" and "AADSTS700027" in s["auth"]["error"]


@pytest.mark.sim(client_cert=True)
def test_a_key_that_does_not_match_the_certificate_is_refused_before_any_request(ns, sim, tmp_path):
    key = private_copy(sim.wrong_key_file, tmp_path / "wrong.key")
    ns.write_roster(roster_users(guids(2), OU))
    use_certificate(ns, sim.client_cert_file, key)

    p = ns.run("apply")
    assert p.returncode == 1, describe(p)
    assert f"{key}: error: private key does not belong to the certificate {sim.client_cert_file}" \
        in p.stderr, describe(p)
    assert_no_key_material(p, key)
    st = sim.state()
    assert st["token_requests"] == [] and api_requests(st) == [] and sim_ids(st) == set()


@pytest.mark.sim(client_cert=True)
def test_a_key_file_readable_by_others_is_refused(ns, sim, tmp_path):
    key = private_copy(sim.client_key_file, tmp_path / "app.key", 0o644)
    ns.write_roster(roster_users(guids(1), OU))
    use_certificate(ns, sim.client_cert_file, key)

    p = ns.run("apply")
    assert p.returncode == 1, describe(p)
    assert f"{key}: error: key file is readable by group or others (mode 0644); run chmod 600 " \
        f"{key}" in p.stderr, describe(p)
    assert_no_key_material(p, key)
    st = sim.state()
    assert st["token_requests"] == [] and api_requests(st) == [] and sim_ids(st) == set()


@pytest.mark.sim(client_cert=True)
def test_validate_accepts_a_certificate_config(ns, sim, tmp_path):
    ns.write_roster(roster_users(guids(1), OU))
    # Relative paths are taken from the config's folder.
    private_copy(sim.client_key_file, tmp_path / "app.key")
    shutil.copyfile(sim.client_cert_file, tmp_path / "app.pem")
    use_certificate(ns, "app.pem", "./app.key")
    p = ns.run("validate")
    assert p.returncode == 0, describe(p)

    # With a secret as well, which one is meant? (configure() starts from the secret config.)
    ns.configure(client_certificate_file="app.pem", client_key_file="./app.key")
    p = ns.run("validate")
    assert p.returncode == 1, describe(p)
    assert "client_certificate_file: set either a client secret or a certificate, not both" in p.stderr

    ns.configure(client_secret_file=None, client_certificate_file="app.pem")
    p = ns.run("validate")
    assert p.returncode == 1, describe(p)
    assert "client_certificate_file: needs its private key in client_key_file" in p.stderr


# --- the simulator's verification of assertions ----------------------------------------------

def now():
    return int(time.time())


@pytest.mark.sim(client_cert=True)
def test_sim_accepts_a_good_assertion_once(sim):
    assertion = sim.assertion()
    status, body = sim.request_token_assertion(assertion)
    assert status == 200 and body["access_token"], body
    status, body = sim.request_token_assertion(assertion)   # replayed
    assert status == 400 and "AADSTS50027" in body["error_description"]
    assert "used before" in body["error_description"]
    assert sim.state()["tokens_issued"] == 1


BAD_ASSERTIONS = {
    # name: (how to build it, expected status, AADSTS code, words of the reason)
    "forged signature": (lambda s: s.assertion(key_file=s.wrong_key_file),
                         401, "AADSTS700027", "does not verify"),
    "unknown certificate": (lambda s: s.assertion(key_file=s.wrong_key_file,
                                                  cert_file=s.wrong_cert_file),
                            401, "AADSTS700027", "key was not found"),
    "no thumbprint": (lambda s: s.assertion(header={"x5t#S256": None}),
                      401, "AADSTS700027", "key was not found"),
    "alg HS256": (lambda s: s.assertion(header={"alg": "HS256"}), 400, "AADSTS5002738",
                  "'RS256, PS256'"),
    "expired": (lambda s: s.assertion(claims={"nbf": now() - 7200, "exp": now() - 3600}),
                401, "AADSTS700024", "valid time range"),
    "not yet valid": (lambda s: s.assertion(claims={"nbf": now() + 3600, "exp": now() + 4000}),
                      401, "AADSTS700024", "valid time range"),
    "other audience": (lambda s: s.assertion(claims={
        "aud": f"https://login.microsoftonline.com/{s.tenant}/oauth2/v2.0/token"}),
        400, "AADSTS50027", "audience"),
    "other issuer": (lambda s: s.assertion(claims={"iss": str(uuid.uuid4())}),
                     401, "AADSTS700021", "client_id"),
    "no jti": (lambda s: s.assertion(claims={"jti": None}), 400, "AADSTS50027", "jti"),
    "two parts": (lambda s: s.assertion().rsplit(".", 1)[0], 400, "AADSTS50027", "parts"),
    "signature of another token": (
        lambda s: s.assertion(claims={"sub": s.client_id, "iss": s.client_id}).rsplit(".", 1)[0]
        + "." + s.assertion().rsplit(".", 1)[1], 401, "AADSTS700027", "does not verify"),
}


@pytest.mark.sim(client_cert=True)
@pytest.mark.parametrize("name", sorted(BAD_ASSERTIONS))
def test_sim_refuses_bad_assertions(sim, name):
    build, status, code, reason = BAD_ASSERTIONS[name]
    got_status, body = sim.request_token_assertion(build(sim))
    assert got_status == status, body
    assert body["error"] in ("invalid_client", "invalid_request")
    assert code in body["error_description"] and reason in body["error_description"], body
    assert sim.state()["tokens_issued"] == 0


@pytest.mark.sim(client_cert=True)
def test_sim_refuses_an_assertion_with_a_secret_or_of_the_wrong_type(sim):
    status, body = sim.request_token_assertion(sim.assertion(), assertion_type="urn:other")
    assert status == 400 and "client_assertion_type" in body["error_description"]
    basic = base64.b64encode(f"{sim.client_id}:{sim.secret}".encode()).decode()
    status, body = sim.request_token_assertion(sim.assertion(),
                                               headers={"Authorization": "Basic " + basic})
    assert status == 400 and "both presented" in body["error_description"]
    assert sim.state()["tokens_issued"] == 0
    # The secret alone still works: a registered certificate does not switch it off.
    assert sim.request_token()[0] == 200


def test_sim_without_a_certificate_refuses_every_assertion(sim, tmp_path):
    # The default simulator knows no certificate; sign with a pair made for this test.
    certs = tmp_path / "certs"
    subprocess.run(["sh", MKCERTS, str(certs)], check=True)
    assertion = make_assertion(str(certs / "client.key"), str(certs / "client.pem"),
                               sim.client_id, sim.token_url)
    status, body = sim.request_token_assertion(assertion)
    assert status == 401 and "AADSTS700027" in body["error_description"]
    assert sim.state()["tokens_issued"] == 0
