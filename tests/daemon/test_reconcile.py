"""Continuous reconcile (nimbus-sync(8), COMMANDS and DELETION SAFETY; the idle figure of tests/bench/README.md): approvals seen by a running
daemon and approvals made while it is stopped, the verify sweep, a roster changed in the middle of
a sync, and an idle daemon that stays quiet."""

import os
import time

from .conftest import SCAN, creates, guid, guids, poll, sim_ids, wait_for, wait_users

OU = guid()
HELD = r"(\d+) deletes held"


def held_setup(daemon, sim, n=20, drop=8):
    """A converged roster of n users, then a roster without `drop` of them: the deletes are held."""
    daemon.configure(deletes={"max_per_run": 5, "max_percent": 100})
    ids = guids(n)
    daemon.write_roster(creates(ids, OU))
    daemon.start()
    wait_users(sim, ids, 15, daemon)
    mark = daemon.mark()
    daemon.write_roster(creates(ids[drop:], OU))
    m = daemon.wait_log(HELD, 10, mark)
    assert int(m.group(1)) == drop
    assert sim.state()["deleted_ok"] == {}
    return ids[drop:], ids[:drop]


def test_approve_deletes_reaches_running_daemon(daemon, sim):
    keep, dropped = held_setup(daemon, sim)
    p = daemon.run("approve-deletes")
    t_approved = time.time()
    assert p.returncode == 0, p.stderr
    wait_users(sim, keep, 8, daemon)
    first = min(r["t"] for r in sim.state()["requests"] if r["method"] == "DELETE")
    print(f"approve-deletes -> first delete: {first - t_approved:.2f} s")
    assert first - t_approved <= 3.0       # the store is polled every 2 s
    assert set(sim.state()["deleted_ok"]) == set(dropped)
    assert daemon.run("approve-deletes").returncode == 1      # nothing held any more
    daemon.stop_clean()


def test_approval_made_while_stopped_survives_restart(daemon, sim):
    keep, dropped = held_setup(daemon, sim)
    daemon.stop_clean()
    p = daemon.run("approve-deletes")
    assert p.returncode == 0, p.stderr
    assert sim.state()["deleted_ok"] == {}

    daemon.start()
    wait_users(sim, keep, 10, daemon)
    assert set(sim.state()["deleted_ok"]) == set(dropped)
    daemon.stop_clean()


def test_verify_sweep_recreates_user_deleted_out_of_band(daemon, sim):
    daemon.configure(verify={"interval": "2s"})
    ids = guids(5)
    daemon.write_roster(creates(ids, OU))
    daemon.start()
    wait_users(sim, ids, 10, daemon)

    sim.remove_user(ids[2])
    assert ids[2] not in sim_ids(sim)
    # The next sweep (at most 2 s away) sees the 404; the run it asks for creates it again.
    wait_for(lambda: sim.state()["created_ok"].get(ids[2]) == 2, 10,
             lambda: f"a second create of {ids[2]}:\n{daemon.log()[-3000:]}")
    wait_users(sim, ids, 5, daemon)
    st = sim.state()
    assert all(st["created_ok"][i] == 1 for i in ids if i != ids[2])
    assert st["users"][ids[2]]["organizationUnitId"] == OU
    daemon.stop_clean()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")   # utime + stime


def test_idle_daemon_makes_no_call(daemon, sim):
    ids = guids(10)
    daemon.write_roster(creates(ids, OU))
    daemon.start()
    wait_users(sim, ids, 10, daemon)
    poll(lambda: "run finished" in daemon.log(), 5)
    sim.reset_log()

    cpu0 = cpu_seconds(daemon.proc.pid)
    idle = 10.0                    # time is the subject: several polls and rescans go by
    time.sleep(idle)
    cpu = cpu_seconds(daemon.proc.pid) - cpu0
    calls = len(sim.state()["requests"])
    print(f"idle {idle:.0f} s: {calls} API calls, {cpu * 1000:.0f} ms CPU")
    assert calls == 0
    assert cpu < 0.2, f"{cpu:.2f} s of CPU while idle"
    daemon.stop_clean()


def test_roster_change_during_busy_sync(daemon, sim):
    daemon.configure(deletes={"max_per_run": 60, "max_percent": 100})
    first = guids(60)
    daemon.write_roster(creates(first, OU))
    sim.config(delay_ms=200)
    daemon.start()
    wait_for(lambda: len(sim.state()["created_ok"]) >= 8, 20, "the sync to get going")
    added = guids(10)
    second = first[:30] + added
    mark = daemon.mark()
    daemon.write_roster(creates(second, OU))
    daemon.wait_log(r"roster loaded: 40 users", 10, mark)
    sim.config(delay_ms=0)
    wait_users(sim, second, 20, daemon)
    st = sim.state()
    assert {i: n for i, n in st["created_ok"].items() if n != 1} == {}
    # Users dropped before they were created never were; the others were deleted again.
    assert set(st["deleted_ok"]) == set(st["created_ok"]) - set(second)
    assert len(st["created_ok"]) < len(first) + len(added), "the first sync had finished"
    daemon.stop_clean()


def test_status_shows_the_running_daemon_and_its_next_rescan(daemon, sim):
    daemon.write_roster(creates(guids(2), OU))
    daemon.start()
    daemon.wait_ready()
    wait_for(lambda: daemon.status_json()["daemon"]["running"], 5, "status to see the daemon")
    d = daemon.status_json()["daemon"]
    now = time.time()
    assert d["pid"] == daemon.proc.pid
    # The rescan runs every scan_interval from the watcher's start: the next one is ahead, and
    # no further than one interval away.
    assert now - 1 <= d["next_scan"] <= now + SCAN + 1, d
    daemon.stop_clean()
    d = daemon.status_json()["daemon"]
    assert d["running"] is False and d["pid"] is None
