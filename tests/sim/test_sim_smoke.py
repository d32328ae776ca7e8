"""Self-test of the Nimbus simulator: the behaviour the integration tests rely on.

Each test starts its own simulator (about 0.1 s) so that no state leaks
between tests. Run: python3 -m pytest -q tests/sim
"""

import http.client
import ssl
import time
import urllib.error
import uuid

import pytest

from simclient import Sim


def guid():
    return str(uuid.uuid4())


OU_A = guid()
OU_B = guid()


@pytest.fixture
def start(tmp_path):
    """Factory: start(**options) -> a running Sim, stopped after the test."""
    sims = []

    def _start(tls=False, **options):
        sim = Sim.start(tmp_path, tls=tls, **options)
        sims.append(sim)
        return sim

    yield _start
    for sim in sims:
        sim.stop()


@pytest.fixture
def sim(start):
    return start()


def user(o365, ou=OU_A, kind="SkillBased"):
    return {"o365Id": o365, "organizationUnitId": ou, "userAssignmentType": kind}


# --- token endpoint ----------------------------------------------------------

def test_token_success_basic_header(sim):
    status, body = sim.request_token()
    assert status == 200
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600 and body["ext_expires_in"] == 3600
    assert len(body["access_token"]) >= 40
    assert sim.state()["tokens_issued"] == 1


def test_token_form_credentials_accepted(sim):
    form = (f"grant_type=client_credentials&scope={sim.scope}"
            f"&client_id={sim.client_id}&client_secret={sim.secret}")
    status, _, data = sim.request("POST", f"/{sim.tenant}/oauth2/v2.0/token", form,
                                  {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and b"access_token" in data


@pytest.mark.parametrize("kwargs, status, error, needle", [
    ({"tenant": "00000000-0000-0000-0000-000000000001"}, 400, "invalid_request", "AADSTS90002"),
    ({"client_id": "00000000-0000-0000-0000-000000000002"}, 400, "unauthorized_client",
     "AADSTS700016"),
    ({"secret": "wrong"}, 401, "invalid_client", "AADSTS7000215"),
    ({"grant_type": "password"}, 400, "unsupported_grant_type", "AADSTS70003"),
    ({"scope": "https://admin.sim.test/user.read"}, 400, "invalid_scope", "AADSTS1002012"),
])
def test_token_failures(sim, kwargs, status, error, needle):
    got_status, body = sim.request_token(**kwargs)
    assert got_status == status
    assert body["error"] == error
    assert needle in body["error_description"]
    assert sim.state()["tokens_issued"] == 0


def test_token_fail_next_then_success(sim):
    sim.config(token_fail_next=2)
    assert sim.request_token()[0] == 500
    status, body = sim.request_token()
    assert (status, body) == (500, {"error": "temporarily_unavailable"})
    assert sim.request_token()[0] == 200
    assert sim.state()["tokens_issued"] == 1


def test_token_requests_not_counted_as_api_calls(start):
    sim = start(rate_ops=1, rate_window=30)
    for _ in range(3):
        sim.token()
    st = sim.state()
    assert st["requests"] == [] and st["over_limit"] == 0


# --- create / get / license usage ------------------------------------------------

def test_create_then_conflict(sim):
    tok, u = sim.token(), guid()
    status, _, body = sim.api("POST", "user", {"o365Id": u.upper(), "organizationUnitId": OU_A},
                              tok)
    assert status == 200
    assert body["o365Id"] == u and body["userAssignmentType"] == "SkillBased"
    status, _, body = sim.api("POST", "user", {"o365Id": u, "organizationUnitId": OU_A}, tok)
    assert (status, body["message"]) == (409, "User already exists")
    status, _, body = sim.api("GET", f"user/{u}", token=tok)
    assert status == 200 and body["organizationUnitId"] == OU_A
    assert body["upn"] == f"user-{u[:8]}@example.test"
    st = sim.state()
    assert st["created_ok"] == {u: 1}
    assert [(r["method"], r["path"], r["id"], r["status"]) for r in st["requests"]] == [
        ("POST", "user", u, 200), ("POST", "user", u, 409), ("GET", f"user/{u}", u, 200)]


def test_create_bad_request_and_unknown_user(sim):
    tok = sim.token()
    status, _, body = sim.api("POST", "user", {"o365Id": "not-a-guid",
                                               "organizationUnitId": OU_A}, tok)
    assert (status, body["message"]) == (400, "o365Id and organizationUnitId are required")
    status, _, body = sim.api("GET", f"user/{guid()}", token=tok)
    assert (status, body) == (404, {"error": "NotFound", "message": "User not found"})
    assert sim.api("GET", "nothing/here", token=tok)[0] == 404


def test_license_exhaustion(start):
    sim = start(licenses=1, seed_users=[(guid(), OU_A, "MsTeams")])
    tok = sim.token()
    assert sim.api("POST", "user", {"o365Id": guid(), "organizationUnitId": OU_A}, tok)[0] == 200
    status, _, body = sim.api("POST", "user", {"o365Id": guid(), "organizationUnitId": OU_A},
                              tok)
    assert (status, body["message"]) == (403, "No licenses available")
    _, _, usage = sim.api("GET", "user/license-usage", token=tok)
    assert usage["licenses"][0] == {"name": "Contact Center", "total": 1, "used": 1,
                                    "available": 0}


def test_ou_not_allowed(start):
    sim = start(ous=[OU_A])
    tok = sim.token()
    status, _, body = sim.api("POST", "user", {"o365Id": guid(), "organizationUnitId": OU_B},
                              tok)
    assert (status, body) == (403, {"error": "Forbidden",
                                    "message": "Organization Unit not allowed"})
    assert sim.api("POST", "user", {"o365Id": guid(), "organizationUnitId": OU_A}, tok)[0] == 200


# --- copy --------------------------------------------------------------------

def test_copy_answers(sim):
    src, teams, new, taken = guid(), guid(), guid(), guid()
    sim.add_users([user(src, OU_B), user(teams, kind="MsTeams"), user(taken)])
    tok = sim.token()

    def copy(new_id, source_id):
        status, _, body = sim.api("POST", "user/copy",
                                  {"newO365Id": new_id, "sourceO365Id": source_id}, tok)
        return status, body.get("message")

    assert copy(new, guid()) == (404, 'A source user with this "SourceO365Id" was not found')
    assert copy(new, None) == (400, '"SourceO365Id" or "NewO365Id" are required')
    assert copy(src, src) == (400, "Duplicate user ids")
    assert copy(new, teams) == (400, "Source user must be a skill-based user")
    assert copy(taken, src) == (409, "User already exists")
    status, _, body = sim.api("POST", "user/copy", {"newO365Id": new, "sourceO365Id": src}, tok)
    assert status == 200 and body["organizationUnitId"] == OU_B
    st = sim.state()
    assert st["created_ok"] == {new: 1}
    assert st["users"][new]["licenses"] == ["Contact Center"]


# --- delete ------------------------------------------------------------------

def test_delete_answers(sim):
    teams, skill = guid(), guid()
    sim.add_users([user(teams, kind="MsTeams"), user(skill)])
    tok = sim.token()
    status, _, body = sim.api("DELETE", f"user/{teams}", {"o365Id": teams}, tok)
    assert (status, body["message"]) == (403, "Only manually added Skill-Based users can be "
                                              "deleted")
    status, _, body = sim.api("DELETE", f"user/{guid()}", token=tok)
    assert (status, body["message"]) == (404, "User not found")
    assert sim.api("DELETE", f"user/{skill}", {"o365Id": teams}, tok)[0] == 400
    assert sim.api("DELETE", f"user/{skill}", {"o365Id": skill}, tok)[:3:2] == (200, {})
    st = sim.state()
    assert skill not in st["users"] and teams in st["users"]
    assert st["deleted_ok"] == {skill: 1}


def test_out_of_band_remove_and_reset_log(sim):
    u = guid()
    sim.add_users([user(u)])
    tok = sim.token()
    assert sim.api("GET", f"user/{u}", token=tok)[0] == 200
    sim.remove_user(u)
    assert sim.api("GET", f"user/{u}", token=tok)[0] == 404
    assert len(sim.state()["requests"]) == 2
    sim.reset_log()
    st = sim.state()
    assert st["requests"] == [] and st["max_in_window"] == 0


# --- rate limit ----------------------------------------------------------------

def test_rate_limit_reject(start):
    sim = start(rate_ops=2, rate_window=1.0)
    tok = sim.token()
    answers = [sim.api("GET", "user/license-usage", token=tok) for _ in range(3)]
    assert [a[0] for a in answers] == [200, 200, 429]
    assert answers[2][2] == {"error": "TooManyRequests", "message": "Rate limit exceeded"}
    assert int(answers[2][1]["Retry-After"]) >= 1
    st = sim.state()
    assert st["max_in_window"] == 3 and st["over_limit"] == 1
    time.sleep(1.05)
    assert sim.api("GET", "user/license-usage", token=tok)[0] == 200


def test_rate_limit_delay(start):
    sim = start(rate_ops=2, rate_window=0.5, rate_mode="delay")
    tok = sim.token()
    t0 = time.monotonic()
    statuses = [sim.api("GET", "user/license-usage", token=tok)[0] for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert time.monotonic() - t0 >= 0.45  # the third waited for a slot
    assert sim.state()["over_limit"] == 1


# --- auth ------------------------------------------------------------------

def test_expired_and_invalid_token(sim):
    sim.config(token_ttl=1)
    status, body = sim.request_token()
    assert body["expires_in"] == 1
    assert sim.api("GET", "user/license-usage", token=body["access_token"])[0] == 200
    time.sleep(1.2)
    status, _, body = sim.api("GET", "user/license-usage", token=body["access_token"])
    assert (status, body["message"]) == (401, "Invalid or expired token")
    assert sim.api("GET", "user/license-usage", token="forged")[0] == 401
    assert sim.api("GET", "user/license-usage")[0] == 401


def test_provisioning_disabled(sim):
    tok = sim.token()
    sim.config(provisioning_disabled=True)
    status, _, body = sim.api("GET", "user/license-usage", token=tok)
    assert (status, body) == (401, {"error": "Unauthorized",
                                    "message": "Provisioning Api disabled by admin"})


# --- faults ------------------------------------------------------------------

def test_fail_next_and_retry_after(sim):
    tok, u = sim.token(), guid()
    sim.config(retry_after=7, fail_next=[{"method": "POST", "path": "user", "status": 503}])
    status, hdrs, body = sim.api("POST", "user", {"o365Id": u, "organizationUnitId": OU_A}, tok)
    assert (status, hdrs["Retry-After"]) == (503, "7")
    assert u not in sim.state()["users"]  # answered before processing
    assert sim.api("POST", "user", {"o365Id": u, "organizationUnitId": OU_A}, tok)[0] == 200


def test_fail_next_after_and_drop(sim):
    tok, u = sim.token(), guid()
    sim.add_users([user(u)])
    sim.config(fail_next=[{"method": "DELETE", "path": "user/*", "status": 502, "after": True},
                          {"path": "*", "status": 0}])
    assert sim.api("DELETE", f"user/{u}", token=tok)[0] == 502
    assert sim.state()["deleted_ok"] == {u: 1}  # processed, answer replaced
    with pytest.raises((http.client.HTTPException, urllib.error.URLError, ConnectionError)):
        sim.api("GET", "user/license-usage", token=tok)
    st = sim.state()
    assert [(r["status"], r["fault"]) for r in st["requests"]] == [
        (502, "fail_next_after"), (0, "fail_next")]
    assert st["settings"]["fail_next"] == []


def test_after_error_loses_the_answer(sim):
    tok, u = sim.token(), guid()
    sim.config(after_error_rate=1.0)
    status, _, body = sim.api("POST", "user", {"o365Id": u, "organizationUnitId": OU_A}, tok)
    assert (status, body["message"]) == (500, "Unable to check configuration")
    assert sim.state()["created_ok"] == {u: 1}


def test_drop_and_garbage(sim):
    tok = sim.token()
    sim.config(garbage_rate=1.0)
    status, _, body = sim.api("GET", "user/license-usage", token=tok)
    assert (status, body) == (200, b"<html>oops</html>")
    sim.config(garbage_rate=0.0, drop_rate=1.0)
    with pytest.raises((http.client.HTTPException, urllib.error.URLError, ConnectionError)):
        sim.api("GET", "user/license-usage", token=tok)
    assert [r["status"] for r in sim.state()["requests"]] == [200, 0]


def test_keep_alive_and_body_limit(sim):
    tok = sim.token()
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    try:
        for _ in range(2):  # two answers on one connection: Content-Length framing works
            conn.request("GET", "/api/public-api-next/user/license-usage",
                         headers={"Authorization": f"Bearer {tok}"})
            resp = conn.getresponse()
            assert resp.status == 200 and b"Contact Center" in resp.read()
        # announce a body over 1 MiB; the sim refuses it without reading it
        conn.putrequest("POST", "/api/public-api-next/user")
        conn.putheader("Content-Length", str(1024 * 1024 + 1))
        conn.endheaders()
        assert conn.getresponse().status == 413
    finally:
        conn.close()


# --- TLS and life cycle --------------------------------------------------------

def test_https_with_generated_ca(start):
    sim = start(tls=True)
    assert sim.url.startswith("https://127.0.0.1:")
    assert sim.request_token()[0] == 200
    wrong = ssl.create_default_context(cafile=sim.other_ca_file)
    with pytest.raises(urllib.error.URLError) as info:
        sim.request("GET", "/_sim/state", context=wrong)
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError)


def test_sigterm_stops_cleanly(start):
    sim = start()
    proc = sim.proc
    sim.stop()
    assert proc.returncode == 0
