"""Crash safety, small version (nimbus-sync(8), OWNERSHIP; nimbus-sync(8), SIGNALS): kill -9 in the middle of apply, start again."""

import sqlite3

from conftest import api_requests, describe, guid, guids, kill_hard, poll, roster_users

OU = guid()


def created_count(sim):
    return len(sim.state()["created_ok"])


def kill_when(ns, sim, at_least, timeout=30):
    """Start apply, SIGKILL it once the simulator has created at_least users."""
    proc = ns.start("apply")
    try:
        reached = poll(lambda: created_count(sim) >= at_least or proc.poll() is not None, timeout)
        assert reached, f"apply did not reach {at_least} users in {timeout} s"
        assert proc.poll() is None, "apply finished before it could be killed"
    finally:
        kill_hard(proc)
    rc, _, _ = ns.wait(proc, check_sanitizers=False)   # a killed ASan binary reports nothing
    assert rc == -9


def integrity(path):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def test_kill_during_apply_then_converge(ns, sim):
    ids = guids(300)
    ns.write_roster(roster_users(ids, OU))
    # Slow answers keep calls in flight at the moment of the kill; lost answers leave intents.
    sim.config(delay_ms=20, after_error_rate=0.1)

    kill_when(ns, sim, 40)
    assert integrity(ns.state_db) == "ok"
    kill_when(ns, sim, 150)
    assert integrity(ns.state_db) == "ok"

    ns.apply_until_converged(max_runs=5)
    st = sim.state()
    assert set(st["users"]) == set(ids)
    assert {i: n for i, n in st["created_ok"].items() if n != 1} == {}
    assert integrity(ns.state_db) == "ok"
    s = ns.status_json()
    # Users whose create was in flight at the kill (or whose answer was lost) answer "already
    # exists" later: uncertain, never adopted. The others are ours.
    assert s["users"]["created"] + s["users"]["uncertain"] == 300 and s["users"]["adopted"] == 0
    assert s["users"]["unsettled"] == 0 and s["problems"] == []
    # Dropped from the roster: ours are deleted, uncertain ones are held for approve-deletes.
    ns.configure(deletes={"max_percent": 100})
    ns.write_roster(roster_users(ids[:290], OU))
    sim.config(delay_ms=0, after_error_rate=0)
    rc, plan = ns.plan_json()
    held = {a["o365_id"] for a in plan["actions"] if a.get("held")}
    assert all(a.get("reason") == "uncertain" for a in plan["actions"] if a.get("held"))
    p = ns.run("apply")
    assert p.returncode == (2 if held else 0), describe(p)
    assert set(sim.state()["users"]) == set(ids[:290]) | held
    if held:
        assert ns.run("approve-deletes").returncode == 0
        assert ns.run("apply").returncode == 0
    assert set(sim.state()["users"]) == set(ids[:290])


def test_killed_create_of_an_existing_user_ends_uncertain(ns, sim):
    existing, mine = guid(), guid()
    sim.add_users([{"o365Id": existing, "organizationUnitId": OU, "userAssignmentType": "SkillBased"}])
    ns.write_roster(roster_users([existing, mine], OU))
    # The create of the existing user is answered (409), but only after 30 s: we kill before.
    sim.config(delay_ms=30000)
    proc = ns.start("apply")
    try:
        assert poll(lambda: any(r["method"] == "POST" and r["status"] is not None
                                for r in api_requests(sim.state())), 15)
    finally:
        kill_hard(proc)
    ns.wait(proc, check_sanitizers=False)
    sim.config(delay_ms=0)

    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    s = ns.status_json()["users"]
    assert s["uncertain"] >= 1 and s["adopted"] == 0
    # Never ours: leaving the roster holds its delete, whatever the thresholds say.
    ns.configure(deletes={"max_percent": 100, "include_adopted": True})
    ns.write_roster(roster_users([mine], OU))
    rc, plan = ns.plan_json()
    assert rc == 2
    assert {"action": "delete", "o365_id": existing, "held": True, "reason": "uncertain"} in plan["actions"]
    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    assert "ownership is uncertain" in p.stderr
    assert existing in sim.state()["users"]
    assert not [r for r in api_requests(sim.state()) if r["method"] == "DELETE"]


def test_kill_during_deletes_loses_no_approved_delete(ns, sim):
    ids = guids(60)
    ns.configure(deletes={"max_per_run": 25, "max_percent": 100})
    ns.write_roster(roster_users(ids, OU))
    assert ns.run("apply").returncode == 0
    ns.write_roster(roster_users(ids[:10], OU))
    assert ns.run("apply").returncode == 2              # 50 deletes held
    assert ns.run("approve-deletes").returncode == 0

    sim.config(delay_ms=30)
    proc = ns.start("apply")
    try:
        assert poll(lambda: len(sim.state()["deleted_ok"]) >= 10 or proc.poll() is not None, 30)
        assert proc.poll() is None
    finally:
        kill_hard(proc)
    ns.wait(proc, check_sanitizers=False)
    sim.config(delay_ms=0)

    ns.apply_until_converged(max_runs=3)
    st = sim.state()
    assert set(st["users"]) == set(ids[:10])
    assert set(st["deleted_ok"]) == set(ids[10:])
    assert integrity(ns.state_db) == "ok"
