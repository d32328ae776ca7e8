"""`nimbus-sync doctor [--raw] [USER_ID]`: the first-contact check of a tenant, against the
simulator. One line per check, ✓ or ✗ with the fix; exit 0 when all is good, 1 when something is
to fix. It is read-only (no mutating request ever reaches the simulator, whose request log shows
every API call), makes at most a handful of API calls, and sends them through the rate limiter.

Which host answers (admin. or portal.) is tested with the simulator's api_host dialect: it
serves the API under one of `admin.localhost` and `portal.localhost` (libcurl resolves every
*.localhost to loopback) and answers 404 HTML under the other. The answer shapes are tested under
the simulator's field-casing dialects.
"""

import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import api_requests, describe, dialect_variants, guid, mutating

OU = guid()
HANDFUL = 4   # licenses, licenses at the other host, one user; a 401 once more


def lines(p, mark):
    return [line for line in p.stdout.splitlines() if line.startswith(mark)]


# The files are checked as the service user when that user exists and we are root, which depends
# on the machine: the tests name ourselves as the service user (test_credentials_are_checked_as_
# the_service_user names another one).
AS_OURSELVES = {"NIMBUS_SYNC_SERVICE_USER": pwd.getpwuid(os.geteuid()).pw_name}


def check(ns, *args, rc):
    p = ns.run("doctor", *args, env=AS_OURSELVES)
    assert p.returncode == rc, describe(p)
    st = ns.sim.state()
    assert mutating(st) == [], "doctor must never send a mutating request"
    assert len(api_requests(st)) <= HANDFUL, describe(p)
    return p, st


@pytest.mark.parametrize("sim_dialect", dialect_variants("field_case", "basic_auth"))
def test_all_good(ns, sim):
    p, st = check(ns, rc=0)
    ok = lines(p, "✓ ")
    assert lines(p, "✗ ") == [], describe(p)
    assert ok[0] == f"✓ config {ns.config_path}: parses and validates"
    assert ok[1].startswith("✓ credentials: client secret readable as user ")
    assert ok[2].startswith("✓ token host http://127.0.0.1:") and ok[3].startswith("✓ API host ")
    assert ok[4] == f"✓ token: issued for scope {sim.scope}"
    assert ok[5] == f"✓ API: answers at {sim.api_base}"
    assert ok[6] == "✓ license usage: 1 pool"
    assert re.search(r"^ +Contact Center +100000 +0 +100000$", p.stdout, re.M), describe(p)
    assert p.stdout.endswith("All checks passed.\n")
    assert [(r["method"], r["path"]) for r in api_requests(st)] == [("GET", "user/license-usage")]


def test_its_calls_keep_the_rate_window(ns, sim):
    """The calls go through the tenant's rate limiter: one operation per 2 s lets the second
    start only when the first has left the window."""
    ns.configure(rate_limit={"operations": 1, "window": "2s"})
    _, st = check(ns, guid(), rc=1)
    t = [r["t"] for r in api_requests(st)]
    assert len(t) == 2 and t[1] - t[0] >= 1.9, t


def test_token_refused(ns, sim):
    ns.write_secret("not-the-secret")
    p, st = check(ns, rc=1)
    bad = lines(p, "✗ ")
    assert len(bad) == 1, describe(p)
    assert bad[0].startswith("✗ token: refused (HTTP 401): AADSTS7000215: Invalid client secret provided."), bad
    assert "fix: the client secret is wrong: create a new one in the app registration" in bad[0]
    assert api_requests(st) == []
    assert "All checks passed" not in p.stdout


def test_api_refuses_with_its_reason(ns, sim):
    sim.config(provisioning_disabled=True)
    p, st = check(ns, rc=1)
    bad = lines(p, "✗ ")
    assert bad == [f"✗ API at {sim.api_base} refuses us: HTTP 401: Provisioning Api disabled by admin; "
                   "fix: a Luware administrator must enable the Public API in the Provisioning Tenant "
                   "Settings"], describe(p)


def test_unknown_answer_fields_are_reported(ns, sim):
    user = guid()
    sim.config(fail_next=[
        {"method": "GET", "path": "user/license-usage", "status": 200,
         "body": {"licenses": [{"name": "Contact Center", "total": 5, "used": 5, "sku": "CC"}]}},
        {"method": "GET", "path": "user/*", "status": 200,
         "body": {"o365Id": user, "ouId": OU, "UserAssignmentType": "MsTeams", "licenses": [],
                  "displayName": "Ada"}}])
    p, _ = check(ns, user, rc=1)
    bad = lines(p, "✗ ")
    assert bad[0].startswith("✗ license usage: the answer has no licenses[].available, so running out "
                             "of licenses cannot be recognised"), describe(p)
    assert bad[1].startswith(f"✗ user {user}: the answer has no organizationUnitId, which drift "
                             "detection and the delete checks read"), describe(p)
    assert "    fields not expected (ignored): licenses[].sku\n" in p.stdout
    assert "    fields not expected (ignored): ouId, displayName\n" in p.stdout


@pytest.mark.parametrize("sim_dialect", dialect_variants("field_case"))
def test_user_found(ns, sim):
    user = guid()
    sim.add_users([{"o365Id": user, "organizationUnitId": OU, "userAssignmentType": "MsTeams",
                    "licenses": ["Contact Center"]}])
    p, st = check(ns, user.upper(), rc=0)
    assert f"✓ user {user}: OU {OU}, MsTeams, licenses: Contact Center\n" in p.stdout, describe(p)
    assert [(r["method"], r["path"]) for r in api_requests(st)] == [
        ("GET", "user/license-usage"), ("GET", f"user/{user}")]


def test_user_not_found(ns, sim):
    user = guid()
    p, _ = check(ns, user, rc=1)
    assert lines(p, "✗ ") == [f"✗ user {user}: not a Nimbus user (HTTP 404: User not found); fix: check "
                              "the O365 ID (the user's Entra object id), or provision the user first"]


@pytest.mark.parametrize("sim_dialect", [{"unknown_user_status": 400}, {"unknown_user_status": 403}],
                         ids=["400", "403"])
def test_user_not_found_answered_otherwise_is_shown_for_a_report(ns, sim, sim_dialect):
    user = guid()
    p, _ = check(ns, user, rc=1)
    bad = lines(p, "✗ ")
    assert len(bad) == 1 and bad[0].startswith(f"✗ user {user}: HTTP {sim_dialect['unknown_user_status']}: "), \
        describe(p)
    assert 'nimbus-sync takes only a 404 for "not a Nimbus user"' in bad[0]


def test_user_id_must_be_a_guid(ns, sim):
    p = ns.run("doctor", "jane@example.com", env=AS_OURSELVES)
    assert p.returncode == 1
    assert 'error: "jane@example.com" is not an O365 ID (a GUID)' in p.stderr
    assert sim.state()["token_requests"] == []


# --- --raw ---------------------------------------------------------------------------------------

TOKEN_LIKE = re.compile(r"[A-Za-z0-9_-]{40,}")   # the simulator's tokens: 48 url-safe characters


def test_raw_shows_the_answers_and_redacts_the_token(ns, sim):
    user = guid()
    p, st = check(ns, "--raw", user, rc=1)
    out = p.stdout
    assert f"> POST {sim.token_url}\n< HTTP/1.1 200 OK\n" in out
    assert '"access_token": "[redacted]"' in out and '"token_type": "Bearer"' in out
    assert not TOKEN_LIKE.search(out), "an access token appeared in the output"
    assert f"> GET {sim.api_base}user/license-usage\n< HTTP/1.1 200 OK\n" in out
    assert "< Content-Type: application/json\n" in out
    assert f"> GET {sim.api_base}user/{user}\n< HTTP/1.1 404 Not Found\n" in out
    assert '{"error": "NotFound", "message": "User not found"}\n' in out
    # The answers come before the lines that judge them.
    assert out.index("user/license-usage\n< HTTP") < out.index("✓ API: answers")


@pytest.mark.sim(client_cert=True)
def test_certificate_credentials(ns, sim, tmp_path):
    key = tmp_path / "app.key"
    shutil.copyfile(sim.client_key_file, key)
    os.chmod(key, 0o600)
    ns.configure(client_secret_file=None, client_certificate_file=sim.client_cert_file,
                 client_key_file=str(key))
    p, _ = check(ns, "--raw", rc=0)
    assert "✓ credentials: certificate and key readable as user " in p.stdout, describe(p)
    assert not re.search(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ", p.stdout), "a client assertion appeared"
    assert "PRIVATE KEY" not in p.stdout
    os.chmod(key, 0o640)
    p, _ = check(ns, rc=1)
    assert f"    {key}: error: key file is readable by group or others (mode 0640)" in p.stdout, describe(p)


def test_licenses_and_user_show_raw(ns, sim):
    user = guid()
    sim.add_users([{"o365Id": user, "organizationUnitId": OU, "userAssignmentType": "SkillBased"}])
    p = ns.run("licenses", "--raw")
    assert p.returncode == 0, describe(p)
    assert p.stdout.startswith(f"> GET {sim.api_base}user/license-usage\n< HTTP/1.1 200 OK\n")
    assert '"licenses": [{"name": "Contact Center"' in p.stdout
    assert "TOTAL" not in p.stdout and "oauth2" not in p.stdout   # the raw answer only
    p = ns.run("user", "show", user, "--raw")
    assert p.returncode == 0, describe(p)
    body = json.loads(p.stdout.split("<\n", 1)[1])
    assert body["o365Id"] == user and body["userAssignmentType"] == "SkillBased"
    p = ns.run("user", "show", guid(), "--raw")
    assert p.returncode == 3, describe(p)
    assert "< HTTP/1.1 404 Not Found\n" in p.stdout
    assert mutating(sim.state()) == []


# --- which host answers ---------------------------------------------------------------------

API_PATH = "/api/public-api-next/"
HTML_PAGE = "HTTP 404, an HTML page: a web server or a proxy, not the API"


@pytest.mark.parametrize("serving,configured", [("portal", "admin"), ("admin", "portal")])
def test_api_at_the_other_host_says_which_api_url_to_set(ns, sim, serving, configured):
    sim.dialect(api_host=serving)
    ns.configure(api_url=sim.host_url(configured))
    p, st = check(ns, rc=1)
    there, here = sim.host_url(serving), sim.host_url(configured)
    assert lines(p, "✗ ") == [f"✗ API: not at {here}{API_PATH} ({HTML_PAGE}) but at {there}{API_PATH}; fix: "
                              f"set api_url: {there} (a token for the configured scope is accepted there)"], \
        describe(p)
    # What the other host said is still shown: license usage.
    assert "✓ license usage: 1 pool" in p.stdout
    assert [(r["method"], r["path"], r["fault"]) for r in api_requests(st)] == [
        ("GET", "user/license-usage", "wrong_host"), ("GET", "user/license-usage", None)]

    ns.configure(api_url=there)
    check(ns, rc=0)


def test_other_host_refusing_the_token_says_which_scope_to_set(ns, sim):
    sim.dialect(api_host="portal")
    sim.config(provisioning_disabled=True)
    ns.configure(api_url=sim.host_url("admin"))
    p, _ = check(ns, rc=1)
    bad = lines(p, "✗ ")
    assert len(bad) == 1, describe(p)
    assert bad[0].startswith(f"✗ API: not at {sim.host_url('admin')}{API_PATH} ({HTML_PAGE}) but at "
                             f"{sim.host_url('portal')}{API_PATH}, which refuses a token for {sim.scope} "
                             "(HTTP 401: Provisioning Api disabled by admin); fix: set api_url: "
                             f"{sim.host_url('portal')} and scope: https://portal.sim.test/.default; if it still "
                             "refuses: a Luware administrator must enable the Public API"), describe(p)


@pytest.mark.parametrize("sim_dialect,what", [
    ({"redirect_location": "https://login.example.com"},
     "a redirect, HTTP 302; doctor --raw shows where to"),
    ({"html_rate": 1.0}, "HTTP 200, an HTML page: a web server or a proxy, not the API"),
], ids=["redirect", "login-page"])
def test_no_api_at_either_host(ns, sim, what):
    ns.configure(api_url=sim.host_url("admin"))
    p, st = check(ns, rc=1)
    assert lines(p, "✗ ") == [f"✗ API: no Nimbus API at {sim.host_url('admin')}{API_PATH} ({what}) nor at "
                              f"{sim.host_url('portal')}{API_PATH} ({what}); fix: check cluster (the one the "
                              "Nimbus Admin Portal redirects you to), or api_url and scope"], describe(p)
    assert len(api_requests(st)) == 2


def test_raw_shows_where_a_redirect_goes(ns, sim):
    sim.dialect(redirect_location="https://login.example.com")
    ns.configure(api_url=sim.host_url("admin"))
    p, _ = check(ns, "--raw", rc=1)
    assert f"< Location: https://login.example.com{API_PATH}user/license-usage\n" in p.stdout, describe(p)


def test_nothing_listening_at_the_api_host(ns, sim):
    ns.configure(api_url="http://127.0.0.1:9")   # discard: nothing listens
    p, _ = check(ns, rc=1)
    bad = lines(p, "✗ ")
    assert bad[0].startswith("✗ API host http://127.0.0.1:9: ") and "fix: nothing accepts connections" in bad[0]
    assert bad[1].startswith(f"✗ API: no Nimbus API at http://127.0.0.1:9{API_PATH} (no answer: ")


# --- TLS and files ---------------------------------------------------------------------------

@pytest.mark.sim(tls=True)
def test_untrusted_certificate_names_ca_file(ns, sim):
    ns.configure(ca_file=sim.other_ca_file)
    p, st = check(ns, rc=1)
    bad = lines(p, "✗ ")
    assert bad[0].startswith(f"✗ token host {sim.url}: SSL certificate problem"), describe(p)
    assert bad[0].endswith("fix: certificate not trusted: if a proxy inspects TLS, set ca_file to its CA "
                           "certificate")
    assert st["tokens_issued"] == 0


@pytest.mark.sim(tls=True)
def test_trusted_with_ca_file(ns, sim):
    ns.configure(ca_file=sim.ca_file)
    p, _ = check(ns, rc=0)
    assert f"✓ token host {sim.url}: DNS and TLS ok, certificate trusted\n" in p.stdout


def test_secret_readable_by_others(ns, sim):
    os.chmod(ns.secret_file, 0o644)
    p, st = check(ns, rc=1)
    assert lines(p, "✗ ")[0].startswith("✗ credentials (checked as user "), describe(p)
    assert f"    {ns.secret_file}: error: secret file is readable by group or others (mode 0644); run " \
           f"chmod 600 {ns.secret_file}\n" in p.stdout
    assert st["token_requests"] == []


def test_config_errors_stop_early(ns, sim):
    ns.configure(tenant_id="00000000-0000-0000-0000-000000000000")
    p, st = check(ns, rc=1)
    assert p.stdout.startswith(f"✗ config {ns.config_path}: fix these, then run doctor again:\n"
                               f"    {ns.config_path}:1:12: error: tenant_id: ")
    assert st["token_requests"] == []


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to the service user needs root")
def test_credentials_are_checked_as_the_service_user(nimbus_bin, sim):
    """As root, the files are read as the service user would read them (here `nobody`, named
    by $NIMBUS_SYNC_SERVICE_USER), in a child that has switched to it."""
    top = tempfile.mkdtemp(prefix="doctor-as-")
    try:
        os.chmod(top, 0o755)
        secret, config = os.path.join(top, "client-secret"), os.path.join(top, "config.yaml")
        with open(secret, "w") as f:
            f.write(sim.secret + "\n")
        os.chmod(secret, 0o600)
        os.mkdir(os.path.join(top, "state"))
        with open(config, "w") as f:
            json.dump({"tenant_id": sim.tenant, "client_id": sim.client_id, "client_secret_file": secret,
                       "api_url": sim.url, "token_url": sim.token_url, "scope": sim.scope,
                       "state_dir": os.path.join(top, "state"), "roster_dir": top}, f)   # JSON is YAML
        os.chmod(config, 0o644)
        env = dict(os.environ, NIMBUS_SYNC_SERVICE_USER="nobody")
        def run():
            p = subprocess.run([nimbus_bin, "-c", config, "doctor"], capture_output=True, text=True,
                               timeout=60, env=env)
            assert sim.secret not in p.stdout + p.stderr
            return p

        p = run()
        assert p.returncode == 1, p.stdout + p.stderr
        assert "✗ credentials (checked as user nobody, the service user): fix these:\n" in p.stdout
        assert f"    {secret}: error: as nobody: cannot open secret file: Permission denied\n" in p.stdout
        nobody = pwd.getpwnam("nobody")
        os.chown(secret, nobody.pw_uid, nobody.pw_gid)
        p = run()
        assert p.returncode == 0, p.stdout + p.stderr
        assert "✓ credentials: client secret readable as user nobody, the service user" in p.stdout
    finally:
        shutil.rmtree(top)
