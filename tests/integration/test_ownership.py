"""Ownership is proven, never guessed (nimbus-sync(8), OWNERSHIP), and every "ok" is an answer
from Nimbus: the cases a hostile review found, one test each."""

import time

from conftest import api_requests, describe, guid, guids, mutating, roster_users, sim_ids

OU = guid()
HTML = "<!DOCTYPE html><html><head><title>Sign in</title></head><body>Proxy login</body></html>"


def existing_user(sim, o365=None):
    o365 = o365 or guid()
    sim.add_users([{"o365Id": o365, "organizationUnitId": OU, "userAssignmentType": "SkillBased"}])
    return o365


def deletes_sent(sim):
    return [r for r in api_requests(sim.state()) if r["method"] == "DELETE"]


def test_500_then_exists_is_uncertain_and_never_deleted_silently(ns, sim):
    """Case 2: a user that existed before; its first create is answered 500, the retry 409."""
    existing, mine = existing_user(sim), guids(2)
    ns.write_roster(roster_users([existing], OU))
    sim.config(fail_next=[{"method": "POST", "path": "user", "status": 500, "count": 1}])
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    users = ns.status_json()["users"]
    assert users["uncertain"] == 1 and users["adopted"] == 0 and users["created"] == 0
    assert "uncertain" in p.stderr

    # Gone from the roster, include_adopted false, thresholds wide open: held, with the reason.
    ns.configure(deletes={"max_percent": 100, "include_adopted": False})
    ns.write_roster(roster_users(mine, OU))
    rc, plan = ns.plan_json()
    assert rc == 2
    assert plan["changes"]["held"] == 1 and plan["changes"]["delete"] == 0
    assert {"action": "delete", "o365_id": existing, "held": True,
            "reason": "uncertain"} in plan["actions"]
    human = ns.run("plan")
    assert "ownership uncertain" in human.stdout
    sim.reset_log()
    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    assert deletes_sent(sim) == [] and existing in sim.state()["users"]
    # The admin decides: approve-deletes releases exactly it.
    assert ns.run("approve-deletes").returncode == 0
    assert ns.run("apply").returncode == 0
    assert existing not in sim.state()["users"]


def test_timeout_then_exists_is_uncertain(ns, sim):
    existing = existing_user(sim)
    ns.write_roster(roster_users([existing], OU))
    sim.config(fail_next=[{"method": "POST", "path": "user", "status": 0, "count": 1}])
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert ns.status_json()["users"]["uncertain"] == 1


def test_clean_409_is_adopted_after_a_confirming_get(ns, sim):
    existing = existing_user(sim)
    ns.write_roster(roster_users([existing], OU))
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    calls = [(r["method"], r["status"]) for r in api_requests(sim.state())]
    assert calls == [("POST", 409), ("GET", 200)]
    assert ns.status_json()["users"]["adopted"] == 1


def test_400_duplicate_is_confirmed_and_adopted(ns, sim):
    """The docs: a 400 'Also relates to user duplication error'."""
    existing = existing_user(sim)
    ns.write_roster(roster_users([existing], OU))
    sim.config(fail_next=[{"method": "POST", "path": "user", "status": 400, "count": 1,
                           "body": {"error": "BadRequest",
                                    "message": "User duplication error: user already exists"}}])
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    users = ns.status_json()["users"]
    assert users["adopted"] == 1 and ns.status_json()["problems"] == []


def test_400_duplicate_claim_that_get_denies_fails_the_user(ns, sim):
    """'Duplicate' in a 400 is only believed when a GET finds the user."""
    user = guid()
    ns.write_roster(roster_users([user], OU))
    sim.config(fail_next=[{"method": "POST", "path": "user", "status": 400, "count": 1,
                           "body": {"message": "newO365Id and sourceO365Id are duplicates"}}])
    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    problems = ns.status_json()["problems"]
    assert [x["o365_id"] for x in problems] == [user]
    assert user not in sim.state()["users"]


def test_html_200_is_never_success(ns, sim):
    """Case 7: a proxy's login page with 200 for every call."""
    ids = guids(3)
    ns.write_roster(roster_users(ids, OU))
    ns.configure(retry={"attempts": 2})
    sim.config(fail_next=[{"method": "*", "path": "*", "status": 200, "count": 1000, "body": HTML}])
    p = ns.run("apply")
    assert p.returncode != 0, describe(p)
    assert ": ok" not in p.stderr
    assert "not a Nimbus answer" in p.stderr and "proxy" in p.stderr
    users = ns.status_json()["users"]
    assert users["present"] == 0 and users["created"] == 0
    assert sim_ids(sim.state()) == set()
    # Each user is waiting to be tried again, none is recorded as present.
    assert {x["o365_id"] for x in ns.status_json()["problems"]} == set(ids)


def test_html_200_on_refresh_confirms_nothing(ns, sim):
    ids = guids(2)
    ns.write_roster(roster_users(ids, OU))
    assert ns.run("apply").returncode == 0
    newcomer = existing_user(sim)   # in Nimbus already, but only a real answer may say so
    ns.write_roster(roster_users([*ids, newcomer], OU))
    sim.config(fail_next=[{"method": "GET", "path": "user/*", "status": 200, "count": 10, "body": HTML}])
    p = ns.run("plan", "--refresh")
    assert p.returncode == 1, describe(p)
    assert ns.status_json()["users"]["present"] == 2


def wrong_host_after_a_sync(ns, sim, ids, **config):
    """ids synced at the host that serves the API; then api_url points at the other one, whose
    web server answers every call 404 with its own HTML page (sim dialect api_host)."""
    sim.dialect(api_host="admin")
    ns.configure(api_url=sim.host_url("admin"), **config)
    ns.write_roster(roster_users(ids, OU))
    assert ns.run("apply").returncode == 0
    ns.configure(api_url=sim.host_url("portal"), **config)


def test_html_404_is_no_proof_that_a_user_is_gone(ns, sim):
    """A delete answered by a web server's 404 page deleted nothing: nothing is recorded gone,
    and once api_url is right again the user is deleted for real."""
    ids = guids(3)
    config = {"deletes": {"max_percent": 100}, "retry": {"attempts": 2, "quarantine": "1s"}}
    wrong_host_after_a_sync(ns, sim, ids, **config)
    ns.write_roster(roster_users(ids[:2], OU))
    p = ns.run("apply")
    assert p.returncode != 0, describe(p)
    assert "not a Nimbus answer (an HTML page)" in p.stderr, describe(p)
    assert ": gone" not in p.stderr and ": deleted" not in p.stderr, describe(p)
    assert ns.status_json()["users"]["present"] == 3
    assert sim_ids(sim.state()) == set(ids)

    ns.configure(api_url=sim.host_url("admin"), **config)
    time.sleep(1.1)                 # the user's quarantine after two failed attempts (1 s here)
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert f"delete {ids[2]}: ok" in p.stderr, describe(p)
    assert sim_ids(sim.state()) == set(ids[:2])
    assert ns.status_json()["users"]["present"] == 2


def test_html_404_on_refresh_is_no_proof_that_users_are_missing(ns, sim):
    ids = guids(2)
    wrong_host_after_a_sync(ns, sim, ids, deletes={"max_percent": 100})
    ns.write_roster(roster_users(ids[:1], OU))       # the plan would delete ids[1]: checked first
    p = ns.run("plan", "--refresh")
    assert p.returncode == 1, describe(p)
    assert "not a Nimbus answer (an HTML page)" in p.stderr, describe(p)
    assert ns.status_json()["users"]["present"] == 2


def test_an_answer_about_another_user_confirms_nothing(ns, sim):
    """A false "already exists", then a GET answered with another user's details (a cache in the
    way): that proves nothing, the product says why and tries again; the create then made it."""
    user, other = guid(), existing_user(sim)
    ns.write_roster(roster_users([user], OU))
    sim.config(fail_next=[
        {"method": "POST", "path": "user", "status": 409, "count": 1},
        {"method": "GET", "path": f"user/{user}", "status": 200, "count": 1,
         "body": f'{{"o365Id": "{other}", "organizationUnitId": "{OU}"}}'}])
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert "about another user than the one asked for" in p.stderr, describe(p)
    users = ns.status_json()["users"]
    assert users["adopted"] == 0 and users["created"] == 1, describe(p)
    assert user in sim_ids(sim.state())


def test_redirect_is_a_configuration_error_said_once(ns, sim):
    ids = guids(5)
    ns.write_roster(roster_users(ids, OU))
    sim.config(fail_next=[{"method": "*", "path": "*", "status": 302, "count": 100,
                           "body": "", "headers": {"Location": "https://portal.example/login"}}])
    p = ns.run("apply")
    assert p.returncode == 1, describe(p)
    assert p.stderr.count("redirect") >= 1
    assert len([line for line in p.stderr.splitlines() if "tenant paused" in line]) == 1
    # Not retried as transient: at most the calls already in flight, each user once.
    sent = [r["id"] for r in api_requests(sim.state())]
    assert 1 <= len(sent) <= 4 and len(sent) == len(set(sent))
    assert ns.status_json()["users"]["present"] == 0


def test_long_retry_after_ends_apply_with_exit_2_and_says_when(ns, sim):
    """Case 9: one 429 with Retry-After of a day must not make apply wait silently."""
    ids = guids(4)
    ns.write_roster(roster_users(ids, OU))
    sim.config(retry_after=86400, fail_next=[{"method": "POST", "path": "user", "status": 429}])
    t0 = time.monotonic()
    p = ns.run("apply")
    elapsed = time.monotonic() - t0
    assert p.returncode == 2, describe(p)
    assert elapsed < 30, f"apply waited {elapsed:.0f} s"
    assert "Retry-After" in p.stderr and "apply` again" in p.stderr
    posts = [r["id"] for r in mutating(sim.state())]
    throttled = next(r["id"] for r in api_requests(sim.state()) if r["status"] == 429)
    assert posts.count(throttled) == 1, "the throttled create was retried within the pause"
    assert len(posts) == len(set(posts))


def test_403_ou_text_with_no_licenses_left_pauses_instead_of_failing(ns, sim):
    """The docs: '403 - Organization Unit not allowed. Also shown when no Licenses are available'."""
    ids = guids(3)
    ns.write_roster(roster_users(ids, OU))
    sim.config(fail_next=[{"method": "POST", "path": "user", "status": 403, "count": 1,
                           "body": {"message": "Organization Unit not allowed"}},
                          {"method": "GET", "path": "user/license-usage", "status": 200, "count": 5,
                           "body": {"licenses": [{"name": "Contact Center", "total": 3, "used": 3,
                                                  "available": 0}]}}])
    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    assert "no licenses left" in p.stderr.lower()
    problems = ns.status_json()["problems"]
    assert all(x.get("status") != "failed" for x in problems), problems


def test_403_ou_text_with_licenses_left_fails_the_user_with_evidence(ns, sim):
    ids = guids(2)
    ns.write_roster(roster_users(ids, OU))
    sim.config(fail_next=[{"method": "POST", "path": "user", "status": 403, "count": 1,
                           "body": {"message": "Organization Unit not allowed"}}])
    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    assert "licenses left" in p.stderr
    problems = ns.status_json()["problems"]
    assert len(problems) == 1 and "licenses left" in problems[0]["error"]
    assert len(sim_ids(sim.state())) == 1
