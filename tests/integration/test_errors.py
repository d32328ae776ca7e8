"""The answers of nimbus-sync.yaml(5), RETRIESwhat nimbus-sync does with each."""

import re

import pytest

from conftest import api_requests, describe, guid, guids, mutating, roster_users, sim_ids

OU = guid()
OU_OTHER = guid()


def problems_by_id(ns):
    return {p["o365_id"]: p for p in ns.status_json()["problems"]}


def attempts_logged(stderr, o365):
    return [int(m.group(1)) for m in re.finditer(
        re.escape(o365) + r"[^\n]*attempt (\d+) of \d+", stderr)]


# --- transient answers -------------------------------------------------------------------------

@pytest.mark.parametrize("faults", [
    [{"status": 500}, {"status": 503}],
    [{"status": 0}, {"status": 502}],
    [{"status": 500, "after": True}, {"status": 0, "after": True}],
], ids=["500-503", "drop-502", "lost-answers"])
def test_transient_failures_are_retried(ns, sim, faults):
    user = guid()
    ns.write_roster(roster_users([user], OU))
    sim.config(fail_next=[dict(method="POST", path="user", count=1, **f) for f in faults])

    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    st = sim.state()
    assert sim_ids(st) == {user}
    assert st["created_ok"][user] == 1
    posts = [r for r in api_requests(st) if r["method"] == "POST"]
    assert len(posts) == 3
    assert attempts_logged(p.stderr, user) == [1, 2]
    s = ns.status_json()
    # A lost answer followed by "already exists" proves nothing: uncertain, never adopted, and
    # not ours either. Answers that were not processed leave the user ours.
    lost = any(f.get("after") for f in faults)
    assert s["users"]["adopted"] == 0
    assert (s["users"]["uncertain"], s["users"]["created"]) == ((1, 0) if lost else (0, 1))
    assert s["problems"] == []


def test_transient_failure_of_one_user_does_not_block_the_others(ns, sim):
    ids = guids(20)
    ns.write_roster(roster_users(ids, OU))
    sim.config(fail_next=[{"method": "POST", "path": "user", "status": 503, "count": 3}])
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    st = sim.state()
    assert sim_ids(st) == set(ids)
    assert all(st["created_ok"][i] == 1 for i in ids)


def test_429_retry_after_is_honoured(ns, sim):
    ids = guids(3)
    ns.write_roster(roster_users(ids, OU))
    sim.config(retry_after=2, fail_next=[{"method": "POST", "path": "user", "status": 429}])

    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    st = sim.state()
    assert sim_ids(st) == set(ids)
    log = api_requests(st)
    first = next(r for r in log if r["status"] == 429)
    retry = next(r for r in log if r["id"] == first["id"] and r["t"] > first["t"])
    assert retry["t"] - first["t"] >= 1.9, "the Retry-After of 2 s was not honoured"
    # A 429 pauses the whole tenant: nothing new starts during the pause.
    started_in_pause = [r for r in log if first["t"] + 0.3 < r["t"] < first["t"] + 1.9]
    assert started_in_pause == []


def test_eight_transient_failures_quarantine_one_user(ns, sim):
    template = guid()
    sim.add_users([{"o365Id": template, "organizationUnitId": OU, "userAssignmentType": "SkillBased"}])
    creates = guids(3)
    victim = guid()
    ns.write_roster(roster_users(creates, OU) + [{"o365_id": victim, "template": template}])
    sim.config(fail_next=[{"method": "POST", "path": "user/copy", "status": 503, "count": 8}])

    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    st = sim.state()
    assert sim_ids(st) == {template, *creates}
    assert len([r for r in api_requests(st) if r["path"] == "user/copy"]) == 8
    assert attempts_logged(p.stderr, victim) == list(range(1, 9))
    assert "quarantined" in p.stderr
    problems = problems_by_id(ns)
    assert set(problems) == {victim}
    assert problems[victim]["state"] == "quarantined" and problems[victim]["attempts"] == 8
    human = ns.run("status")
    assert human.returncode == 0 and re.search(r"quarantined\s+" + victim, human.stdout)

    # Quarantined users wait for their hour: the next run calls nothing and still says "pending".
    sim.reset_log()
    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    assert api_requests(sim.state()) == []


@pytest.mark.sim(token_ttl=2, rate_ops=60)
def test_token_expiry_during_a_run(ns, sim):
    ids = guids(300)
    ns.configure(rate_limit={"operations": 60, "window": "1s"})
    ns.write_roster(roster_users(ids, OU))

    p = ns.run("apply")   # 300 calls at 60/s: about 5 s, so the 2 s token expires twice or more
    assert p.returncode == 0, describe(p)
    st = sim.state()
    assert sim_ids(st) == set(ids)
    assert all(st["created_ok"][i] == 1 for i in ids)
    assert st["tokens_issued"] >= 3
    s = ns.status_json()
    assert s["problems"] == [] and s["users"]["created"] == 300
    assert st["over_limit"] == 0


def test_token_revoked_mid_run_is_fetched_again(ns, sim):
    ids = guids(4)
    ns.write_roster(roster_users(ids[:2], OU))
    assert ns.run("apply").returncode == 0
    # The token the store never keeps is gone; a new process fetches a new one anyway, but a
    # 401 from a revoked token must be answered by one refetch, not by failing the user.
    sim.revoke_tokens()
    sim.config(fail_next=[{"method": "POST", "path": "user", "status": 401,
                           "body": {"error": "Unauthorized", "message": "Invalid or expired token"}}])
    ns.write_roster(roster_users(ids, OU))
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert sim_ids(sim.state()) == set(ids)
    assert ns.status_json()["auth"]["state"] == "ok"


# --- auth refused ------------------------------------------------------------------------------

def test_provisioning_disabled(ns, sim):
    ids = guids(10)
    ns.write_roster(roster_users(ids, OU))
    sim.config(provisioning_disabled=True)

    p = ns.run("apply")
    assert p.returncode == 1, describe(p)
    assert "Provisioning Api disabled by admin" in p.stderr
    st = sim.state()
    assert sim_ids(st) == set()
    assert len(api_requests(st)) <= 8, "a refused tenant must not be hammered"
    s = ns.status_json()
    assert s["auth"]["state"] == "failed"
    assert "Provisioning Api disabled by admin" in s["auth"]["error"]
    human = ns.run("status").stdout
    assert "Provisioning Api disabled by admin" in human

    sim.config(provisioning_disabled=False)
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert sim_ids(sim.state()) == set(ids)
    assert ns.status_json()["auth"] == {"state": "ok", "error": None}


# --- licenses ----------------------------------------------------------------------------------

@pytest.mark.sim(licenses=3)
def test_licenses_exhausted(ns, sim):
    ids = guids(40)
    ns.write_roster(roster_users(ids, OU))

    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    st = sim.state()
    assert len(st["users"]) == 3 and sim_ids(st) <= set(ids)
    assert all(v == 1 for v in st["created_ok"].values())
    assert "no licenses" in p.stderr.lower()
    assert any(r["path"] == "user/license-usage" for r in api_requests(st))
    # Creates pause: only those already in flight (at most 4) meet the 403 as well.
    refused = [r for r in api_requests(st) if r["status"] == 403]
    assert 1 <= len(refused) <= 4, len(refused)
    rc, plan = ns.plan_json()
    assert rc == 2 and plan["changes"]["create"] == 37

    sim.config(licenses=40)
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert sim_ids(sim.state()) == set(ids)


@pytest.mark.sim(licenses=5)
def test_deletes_free_licenses_for_creates(ns, sim):
    old = guids(5)
    ns.write_roster(roster_users(old, OU))
    assert ns.run("apply").returncode == 0
    sim.reset_log()

    new = guids(5)
    ns.write_roster(roster_users(old[:2] + new, OU))
    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    st = sim.state()
    assert set(st["deleted_ok"]) == set(old[2:])
    created = set(st["created_ok"])
    assert created <= set(new) and len(created) == 3, "exactly the 3 freed licenses are used"
    assert sim_ids(st) == set(old[:2]) | created
    log = api_requests(st)
    deletes = [k for k, r in enumerate(log) if r["method"] == "DELETE"]
    checks = [k for k, r in enumerate(log) if r["path"] == "user/license-usage"]
    oks = [k for k, r in enumerate(log) if r["method"] == "POST" and r["status"] == 200]
    assert len(deletes) == 3 and checks and max(deletes) < max(checks)
    assert max(deletes) < max(oks)

    sim.config(licenses=7)
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert sim_ids(sim.state()) == set(old[:2] + new)


# --- permanent failures ------------------------------------------------------------------------

@pytest.mark.sim(ous=[OU])
def test_ou_not_allowed(ns, sim):
    good = guids(3)
    bad = guid()
    ns.write_roster(roster_users(good, OU) + [{"o365_id": bad, "ou": OU_OTHER}])

    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    assert sim_ids(sim.state()) == set(good)
    problems = problems_by_id(ns)
    assert set(problems) == {bad}
    assert problems[bad]["state"] == "failed" and problems[bad]["http_status"] == 403
    assert "Organization Unit not allowed" in problems[bad]["error"]
    assert "Organization Unit not allowed" in ns.run("status").stdout

    # Not retried until the entry changes ...
    sim.reset_log()
    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    assert api_requests(sim.state()) == []
    # ... and retried at once when it does.
    ns.write_roster(roster_users(good + [bad], OU))
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert sim_ids(sim.state()) == set(good) | {bad}
    assert problems_by_id(ns) == {}


def test_copy_from_a_missing_template(ns, sim):
    ok = guid()
    victim = guid()
    ns.write_roster([{"o365_id": ok, "ou": OU}, {"o365_id": victim, "template": guid()}])
    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    assert sim_ids(sim.state()) == {ok}
    problems = problems_by_id(ns)
    assert set(problems) == {victim}
    assert problems[victim]["state"] == "failed" and problems[victim]["http_status"] == 404
    assert "was not found" in problems[victim]["error"]


def test_copy_from_a_teams_template(ns, sim):
    teams = guid()
    sim.add_users([{"o365Id": teams, "organizationUnitId": OU, "userAssignmentType": "MsTeams"}])
    ok = guid()
    victim = guid()
    ns.write_roster([{"o365_id": ok, "ou": OU}, {"o365_id": victim, "template": teams}])
    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    assert sim_ids(sim.state()) == {ok, teams}
    problems = problems_by_id(ns)
    assert set(problems) == {victim}
    assert problems[victim]["http_status"] == 400
    assert "skill-based" in problems[victim]["error"].lower()


def test_delete_of_a_teams_synced_user_fails_with_the_servers_message(ns, sim):
    teams = guid()
    sim.add_users([{"o365Id": teams, "organizationUnitId": OU, "userAssignmentType": "MsTeams"}])
    mine = guids(2)
    ns.write_roster(roster_users([teams, *mine], OU))
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    s = ns.status_json()
    assert s["users"]["adopted"] == 1 and s["users"]["created"] == 2
    assert sim.state()["created_ok"].get(teams) is None

    ns.configure(deletes={"include_adopted": True})
    ns.write_roster(roster_users(mine, OU))
    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    st = sim.state()
    assert teams in st["users"] and st["deleted_ok"] == {}
    problems = problems_by_id(ns)
    assert set(problems) == {teams}
    assert problems[teams]["state"] == "failed" and problems[teams]["http_status"] == 403
    assert "Only manually added Skill-Based users can be deleted" in problems[teams]["error"]
    assert [r["method"] for r in mutating(st)].count("DELETE") == 1
