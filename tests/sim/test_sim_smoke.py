"""Self-test of the Nimbus simulator: the behaviour the integration tests rely on.

Each test starts its own simulator (about 0.1 s) so that no state leaks
between tests. Run: python3 -m pytest -q tests/sim
"""

import http.client
import os
import ssl
import subprocess
import time
import urllib.error
import uuid

import pytest

from simclient import Sim, SimError


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


# --- dialects ----------------------------------------------------------------------

def create(sim, tok, o365, ou=OU_A):
    return sim.api("POST", "user", {"o365Id": o365, "organizationUnitId": ou}, tok)


def test_dialect_defaults_are_the_old_behaviour(sim):
    settings = sim.state()["settings"]
    assert {k: settings[k] for k in ("duplicate_status", "license_text", "unknown_user_status",
                                     "field_case", "basic_auth", "assertion_alg", "api_host",
                                     "rate_mode", "html_rate", "html_next",
                                     "redirect_location", "redirect_status", "answer_style")} == {
        "duplicate_status": 409, "license_text": "licenses", "unknown_user_status": 404,
        "field_case": "camel", "basic_auth": "lenient", "assertion_alg": "any",
        "api_host": "any", "rate_mode": "reject", "html_rate": 0.0, "html_next": 0,
        "redirect_location": None, "redirect_status": 302, "answer_style": "plain"}


@pytest.mark.parametrize("bad", [{"duplicate_status": 401}, {"field_case": "kebab"},
                                 {"api_host": "www"}, {"redirect_location": "ftp://x"},
                                 {"redirect_status": 200}, {"html_next": -1},
                                 {"assertion_alg": "HS256"}, {"unknown_user_status": True},
                                 {"answer_style": "json"}])
def test_dialect_bad_values_refused(sim, bad):
    with pytest.raises(SimError):
        sim.config(**bad)


def test_dialect_duplicates_400(start):
    sim = start(duplicate_status=400)  # command line
    tok, u, src = sim.token(), guid(), guid()
    sim.add_users([user(src)])
    assert create(sim, tok, u)[0] == 200
    for status, _, body in (create(sim, tok, u),
                            sim.api("POST", "user/copy", {"newO365Id": u, "sourceO365Id": src},
                                    tok)):
        assert status == 400 and "duplication" in body["message"]
    sim.dialect(duplicate_status=409)  # run time
    assert create(sim, tok, u)[0] == 409


def test_dialect_license_text_ou(start):
    sim = start(licenses=0, license_text="ou")
    tok, src = sim.token(), guid()
    sim.add_users([user(src, kind="MsTeams")])
    status, _, body = create(sim, tok, guid())
    assert (status, body["message"]) == (403, "Organization Unit not allowed")
    sim.dialect(license_text="licenses")
    assert create(sim, tok, guid())[2]["message"] == "No licenses available"


@pytest.mark.parametrize("status", [404, 400, 403])
def test_dialect_unknown_user_status(start, status):
    sim = start(unknown_user_status=status)
    tok = sim.token()
    assert sim.api("GET", f"user/{guid()}", token=tok)[0] == status
    assert sim.api("DELETE", f"user/{guid()}", token=tok)[0] == status
    u = guid()
    sim.add_users([user(u)])
    assert sim.api("GET", f"user/{u}", token=tok)[0] == 200


def test_dialect_answer_style_envelope(start):
    sim = start(answer_style="envelope", rate_ops=5)
    tok, u = sim.token(), guid()
    assert create(sim, tok, u)[0] == 200
    status, _, body = sim.api("GET", f"user/{u}", token=tok)
    assert (status, body["isSuccess"], body["statusCode"], body["data"]["o365Id"]) == (200, True, 200, u)
    status, _, body = create(sim, tok, u)
    assert (status, body) == (200, {"isSuccess": False, "statusCode": 409,
                                    "message": "User already exists"})
    status, _, body = sim.api("DELETE", f"user/{guid()}", token=tok)
    assert (status, body["isSuccess"], body["statusCode"]) == (200, False, 404)
    # Refusals before the API (sign-in, the rate limit) keep their status.
    assert sim.api("GET", f"user/{u}", token="not-a-token")[0] == 401
    assert create(sim, tok, guid())[0] == 429


@pytest.mark.parametrize("case, keys, error_key", [
    ("camel", {"o365Id", "organizationUnitId", "userAssignmentType", "licenses", "upn"},
     "message"),
    ("pascal", {"O365Id", "OrganizationUnitId", "UserAssignmentType", "Licenses", "Upn"},
     "Message"),
    ("snake", {"o365_id", "organization_unit_id", "user_assignment_type", "licenses", "upn"},
     "message"),
])
def test_dialect_field_case(start, case, keys, error_key):
    sim = start(field_case=case)
    tok, u = sim.token(), guid()
    sim.add_users([user(u)])
    assert set(sim.api("GET", f"user/{u}", token=tok)[2]) == keys
    usage = sim.api("GET", "user/license-usage", token=tok)[2]
    pool = usage["Licenses" if case == "pascal" else "licenses"][0]
    assert set(pool) == ({"Name", "Total", "Used", "Available"} if case == "pascal"
                         else {"name", "total", "used", "available"})
    assert error_key in sim.api("GET", f"user/{guid()}", token=tok)[2]
    assert sim.state()["users"][u]["organizationUnitId"] == OU_A  # control API unchanged


def test_dialect_rate_mode_429_alias(start):
    sim = start(rate_ops=1, rate_window=5.0, rate_mode="429")
    tok = sim.token()
    assert [sim.api("GET", "user/license-usage", token=tok)[0] for _ in range(2)] == [200, 429]
    assert sim.state()["settings"]["rate_mode"] == "reject"


SPECIAL_SECRET = "a+b/c=d%2Fe~f:g"


@pytest.mark.parametrize("mode", ["lenient", "strict"])
def test_dialect_basic_auth_decodes(start, mode):
    """Both modes form-decode: the secret passes encoded, a raw '+' or '%2F' does not."""
    sim = start(secret=SPECIAL_SECRET, basic_auth=mode)
    assert sim.request_token(form_encode=True)[0] == 200
    status, body = sim.request_token(form_encode=False)
    assert status == 401 and "AADSTS7000215" in body["error_description"]


def test_dialect_basic_auth_strict_refuses_unencoded_characters(start):
    """Characters a raw secret keeps through a lenient decoder (/ = :) fail only when strict."""
    sim = start(secret="a/b=c:d")
    assert sim.request_token(form_encode=False)[0] == 200
    sim.dialect(basic_auth="strict")
    status, body = sim.request_token(form_encode=False)
    assert status == 401 and "AADSTS7000215" in body["error_description"]
    assert sim.request_token(form_encode=True)[0] == 200


@pytest.mark.parametrize("accepted", ["any", "PS256", "RS256"])
def test_dialect_assertion_alg(start, accepted):
    sim = start(client_cert=True, assertion_alg=accepted)
    for alg in ("PS256", "RS256"):
        status, body = sim.request_token_assertion(sim.assertion(alg=alg))
        if accepted in ("any", alg):
            assert status == 200, body
        else:
            assert status == 400 and "AADSTS5002738" in body["error_description"], body
    assert [r["alg"] for r in sim.state()["token_requests"]] == ["PS256", "RS256"]


def test_signature_must_match_the_named_algorithm(start):
    """PKCS#1 v1.5 and PSS signatures are told apart: a header naming one algorithm
    over a signature made with the other does not verify."""
    sim = start(client_cert=True)
    for header_alg, signed_alg in (("PS256", "RS256"), ("RS256", "PS256")):
        assertion = sim.assertion(alg=signed_alg, header={"alg": header_alg})
        status, body = sim.request_token_assertion(assertion)
        assert status == 401 and "AADSTS700027" in body["error_description"], body


def test_dialect_html_login_page(sim):
    tok, u = sim.token(), guid()
    sim.dialect(html_next=2)
    for _ in range(2):
        status, hdrs, body = create(sim, tok, u)
        assert status == 200 and hdrs["Content-Type"].startswith("text/html")
        assert b"Sign in" in body
    assert u not in sim.state()["users"]  # nothing was done
    assert create(sim, tok, u)[0] == 200
    sim.dialect(html_rate=1.0)
    assert b"<html>" in sim.api("GET", "user/license-usage", token=tok)[2]
    st = sim.state()
    assert [r["fault"] for r in st["requests"]] == ["html", "html", None, "html"]


def test_dialect_redirect(start):
    sim = start(redirect_location="https://portal.ch-02.luware.cloud")
    tok, u = sim.token(), guid()
    status, hdrs, _ = create(sim, tok, u)
    assert status == 302
    assert hdrs["Location"] == "https://portal.ch-02.luware.cloud/api/public-api-next/user"
    sim.dialect(redirect_status=308)
    assert sim.api("GET", f"user/{u}", token=tok)[0] == 308
    sim.dialect(redirect_location=None)
    assert create(sim, tok, u)[0] == 200
    assert sim.state()["over_limit"] == 0


@pytest.mark.parametrize("tls", [False, True])
def test_dialect_api_host(start, tls):
    sim = start(tls=tls, api_host="portal")
    tok = sim.token()
    status, hdrs, body = sim.api("GET", "user/license-usage", token=tok, host="admin")
    assert status == 404 and hdrs["Content-Type"].startswith("text/html")
    assert sim.api("GET", "user/license-usage", token=tok, host="portal")[0] == 200
    assert sim.api("GET", "user/license-usage", token=tok)[0] == 200  # 127.0.0.1: neutral
    sim.dialect(api_host="admin")
    assert sim.api("GET", "user/license-usage", token=tok, host="admin")[0] == 200
    assert sim.api("GET", "user/license-usage", token=tok, host="portal")[0] == 404
    assert sim.host_url("portal") == f"{'https' if tls else 'http'}://portal.localhost:{sim.port}"
    assert [r["fault"] for r in sim.state()["requests"]] == [
        "wrong_host", None, None, None, "wrong_host"]


def test_dialect_api_host_by_name_with_curl(start, tmp_path):
    """curl (as nimbus-sync uses it) reaches {admin,portal}.localhost over TLS."""
    sim = start(tls=True, api_host="admin")
    tok = sim.token()
    codes = {}
    for label in ("admin", "portal"):
        p = subprocess.run(["curl", "-s", "-o", os.devnull, "-w", "%{http_code}",
                            "--cacert", sim.ca_file, "-H", f"Authorization: Bearer {tok}",
                            sim.host_url(label) + "/api/public-api-next/user/license-usage"],
                           capture_output=True, text=True, timeout=30)
        codes[label] = p.stdout
    assert codes == {"admin": "200", "portal": "404"}
