"""Deletion safety (nimbus-sync.yaml(5), DELETION SAFETY): a bad export must not make nimbus-sync delete users."""

import pytest

from conftest import api_requests, describe, guid, guids, roster_users, sim_ids

OU = guid()


def provision(ns, sim, n, **deletes):
    """n users created by nimbus-sync, with the given deletes settings; the log is then reset."""
    ids = guids(n)
    if deletes:
        ns.configure(deletes=deletes)
    ns.write_roster(roster_users(ids, OU))
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert set(ids) <= sim_ids(sim.state())
    sim.reset_log()
    return ids


def deletes_sent(sim):
    return [r for r in api_requests(sim.state()) if r["method"] == "DELETE"]


# --- empty roster ------------------------------------------------------------------------------

@pytest.mark.parametrize("empty", ["empty_file", "header_only_csv", "no_files"])
def test_empty_roster_deletes_nothing(ns, sim, empty):
    ids = provision(ns, sim, 10)
    ns.clear_roster()
    if empty == "empty_file":
        ns.write_text(ns.roster_dir / "roster.yaml", "users: []\n")
    elif empty == "header_only_csv":
        ns.write_text(ns.roster_dir / "roster.csv", "o365_id,ou\n")

    p = ns.run("apply")
    # Nothing deleted, but Nimbus still differs from the roster: "something remains".
    assert p.returncode == 2, describe(p)
    assert "allow_empty" in p.stderr
    assert deletes_sent(sim) == []
    assert sim_ids(sim.state()) == set(ids)
    plan = ns.run("plan")
    assert plan.returncode == 2, describe(plan)
    assert "allow_empty" in plan.stdout
    assert "matches the roster" not in plan.stdout


def test_empty_roster_with_allow_empty_deletes(ns, sim):
    provision(ns, sim, 10)
    ns.configure(deletes={"allow_empty": True, "max_percent": 100})
    ns.clear_roster()
    ns.write_text(ns.roster_dir / "roster.yaml", "users: []\n")

    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    st = sim.state()
    assert sim_ids(st) == set()
    assert len(deletes_sent(sim)) == 10 and all(v == 1 for v in st["deleted_ok"].values())
    s = ns.status_json()
    assert s["users"]["present"] == 0 and s["users"]["deleted"] == 10


# --- max_per_run and approve-deletes -----------------------------------------------------------

def test_max_per_run_holds_then_approve_deletes_exactly_the_held_set(ns, sim):
    ids = provision(ns, sim, 30, max_per_run=25, max_percent=100)
    keep, removed = ids[:4], ids[4:]
    p = ns.run("approve-deletes")
    assert p.returncode == 1, "nothing is held yet: " + describe(p)

    ns.write_roster(roster_users(keep, OU))
    p = ns.run("plan")
    assert p.returncode == 2, describe(p)
    held_lines = [line for line in p.stdout.splitlines() if line.startswith("! held")]
    assert len(held_lines) == 26 and all(any(r in line for r in removed) for line in held_lines)
    assert not any(line.startswith("- delete") for line in p.stdout.splitlines())
    assert "max_per_run" in p.stdout
    rc, plan = ns.plan_json()
    assert rc == 2
    assert plan["changes"] == {"create": 0, "copy": 0, "delete": 0, "held": 26}
    assert sorted(a["o365_id"] for a in plan["actions"]) == sorted(removed)
    assert all(a["action"] == "delete" and a["held"] is True for a in plan["actions"])

    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    assert deletes_sent(sim) == [] and sim_ids(sim.state()) == set(ids)
    assert "held" in p.stderr
    s = ns.status_json()
    assert s["users"]["held"] == 26
    assert {x["o365_id"] for x in s["problems"] if x["state"] == "held"} == set(removed)

    p = ns.run("approve-deletes")
    assert p.returncode == 0, describe(p)
    assert "Approved 26 held deletes" in p.stdout, describe(p)   # not just "26": a GUID may hold it
    p = ns.run("approve-deletes")
    assert p.returncode == 1, "nothing is held any more: " + describe(p)

    # One removed user comes back before the approved deletes run: it is kept.
    back = removed[0]
    ns.write_roster(roster_users(keep + [back], OU))
    rc, plan = ns.plan_json()
    assert rc == 2 and plan["changes"] == {"create": 0, "copy": 0, "delete": 25, "held": 0}
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    st = sim.state()
    assert set(st["deleted_ok"]) == set(removed[1:])
    assert sim_ids(st) == set(keep) | {back}
    assert len(deletes_sent(sim)) == 25
    s = ns.status_json()
    assert s["users"]["held"] == 0 and s["users"]["approved"] == 0

    # The user that came back is not approved for a later removal.
    ns.write_roster(roster_users(keep, OU))
    rc, plan = ns.plan_json()
    assert plan["changes"]["delete"] == 1 and plan["changes"]["held"] == 0


def test_held_set_follows_the_roster(ns, sim):
    ids = provision(ns, sim, 30, max_per_run=25, max_percent=100)
    ns.write_roster(roster_users(ids[:3], OU))
    assert ns.run("apply").returncode == 2           # 27 held
    ns.write_roster(roster_users(ids[:20], OU))      # 10 removed: within the limits
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert set(sim.state()["deleted_ok"]) == set(ids[20:])
    assert ns.status_json()["users"]["held"] == 0


# --- max_percent -------------------------------------------------------------------------------

def test_max_percent(ns, sim):
    ids = provision(ns, sim, 100, max_per_run=1000, max_percent=10)

    ns.write_roster(roster_users(ids[11:], OU))      # 11 of 100: more than 10 %
    rc, plan = ns.plan_json()
    assert rc == 2 and plan["changes"]["held"] == 11 and plan["changes"]["delete"] == 0
    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    assert deletes_sent(sim) == []

    ns.write_roster(roster_users(ids[10:], OU))      # 10 of 100: exactly 10 %, not more
    rc, plan = ns.plan_json()
    assert rc == 2 and plan["changes"]["held"] == 0 and plan["changes"]["delete"] == 10
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert set(sim.state()["deleted_ok"]) == set(ids[:10])


@pytest.mark.parametrize("removed, held", [(5, False), (6, True)])
def test_max_percent_never_holds_five_or_fewer(ns, sim, removed, held):
    ids = provision(ns, sim, 20, max_per_run=1000, max_percent=10)
    ns.write_roster(roster_users(ids[removed:], OU))     # 5 of 20 is 25 %, still allowed
    rc, plan = ns.plan_json()
    assert rc == 2
    if held:
        assert plan["changes"]["held"] == removed and plan["changes"]["delete"] == 0
    else:
        assert plan["changes"]["delete"] == removed and plan["changes"]["held"] == 0
    p = ns.run("apply")
    assert p.returncode == (2 if held else 0), describe(p)
    assert len(deletes_sent(sim)) == (0 if held else removed)


# --- protected and adopted users ---------------------------------------------------------------

def test_protected_ids_are_never_deleted(ns, sim):
    ids = guids(4)
    protected = ids[0]
    ns.configure(deletes={"protected": [protected.upper()]})
    ns.write_roster(roster_users(ids, OU))
    assert ns.run("apply").returncode == 0

    ns.write_roster(roster_users(ids[2:], OU))
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    st = sim.state()
    assert set(st["deleted_ok"]) == {ids[1]}
    assert protected in st["users"]
    p = ns.run("plan")
    assert p.returncode == 0 and protected not in p.stdout


def test_adopted_users_are_kept_unless_include_adopted(ns, sim):
    existing = guid()
    sim.add_users([{"o365Id": existing, "organizationUnitId": OU, "userAssignmentType": "SkillBased"}])
    mine = guids(3)
    ns.write_roster(roster_users([existing, *mine], OU))
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    st = sim.state()
    assert existing not in st["created_ok"]
    # "Already exists" is confirmed with one GET before the user counts as adopted.
    assert [(r["method"], r["status"]) for r in api_requests(st) if r["id"] == existing] == [
        ("POST", 409), ("GET", 200)]
    s = ns.status_json()
    assert s["users"]["adopted"] == 1 and s["users"]["created"] == 3

    ns.write_roster(roster_users(mine, OU))
    sim.reset_log()
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert deletes_sent(sim) == [] and existing in sim.state()["users"]
    assert ns.run("plan").returncode == 0

    ns.configure(deletes={"include_adopted": True})
    rc, plan = ns.plan_json()
    assert rc == 2 and plan["actions"] == [{"action": "delete", "o365_id": existing, "held": False}]
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert set(sim.state()["deleted_ok"]) == {existing}


def test_users_never_listed_are_never_touched(ns, sim):
    strangers = guids(3)
    sim.add_users([{"o365Id": s, "organizationUnitId": OU, "userAssignmentType": "SkillBased"}
                   for s in strangers])
    ids = provision(ns, sim, 3)
    ns.configure(deletes={"include_adopted": True, "allow_empty": True, "max_percent": 100})
    ns.write_roster(roster_users(ids[:1], OU))
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    st = sim.state()
    assert set(st["deleted_ok"]) == set(ids[1:])
    assert set(strangers) <= sim_ids(st)
    assert all(r["id"] not in strangers for r in api_requests(st))


def test_deletes_disabled(ns, sim):
    ids = provision(ns, sim, 3)
    ns.configure(deletes={"enabled": False})
    ns.write_roster(roster_users(ids[:1], OU))
    p = ns.run("apply")
    assert p.returncode in (0, 2), describe(p)
    assert deletes_sent(sim) == [] and sim_ids(sim.state()) == set(ids)


def test_delete_of_a_user_already_gone_counts_as_done(ns, sim):
    ids = provision(ns, sim, 3)
    sim.remove_user(ids[0])                 # someone removed it in the portal
    ns.write_roster(roster_users(ids[1:], OU))
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert [r["status"] for r in deletes_sent(sim)] == [404]
    assert "1 already gone" in p.stderr
    assert ns.run("plan").returncode == 0
