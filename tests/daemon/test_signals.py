"""Signals (nimbus-sync(8), SIGNALS): SIGHUP reloads the config (an invalid one is logged and the old one
stays), also in the middle of a busy sync; SIGTERM stops cleanly within 10 s even then."""

import signal

from .conftest import STOP_TIMEOUT, creates, guid, guids, wait_for, wait_users

OU = guid()
OU_SALES = guid()


def test_sighup_new_ou_alias_takes_effect(daemon, sim):
    ids = guids(4)
    daemon.write_roster(creates(ids, "sales"))      # a name the config does not know yet
    daemon.start()
    daemon.wait_ready()
    daemon.wait_log(r"roster rejected", 10)
    assert sim.state()["requests"] == []

    mark = daemon.mark()
    daemon.configure(organization_units={"sales": OU_SALES})
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"config reloaded", 10, mark)
    wait_users(sim, ids, 10, daemon)
    assert {u["organizationUnitId"] for u in sim.state()["users"].values()} == {OU_SALES}
    daemon.stop_clean()


def test_sighup_changed_delete_settings_take_effect(daemon, sim):
    daemon.configure(deletes={"max_per_run": 2, "max_percent": 100})
    ids = guids(8)
    daemon.write_roster(creates(ids, OU))
    daemon.start()
    wait_users(sim, ids, 10, daemon)
    mark = daemon.mark()
    daemon.write_roster(creates(ids[:4], OU))
    daemon.wait_log(r"4 deletes held", 10, mark)

    daemon.configure(deletes={"max_per_run": 10, "max_percent": 100})
    daemon.signal(signal.SIGHUP)
    wait_users(sim, ids[:4], 10, daemon)
    assert set(sim.state()["deleted_ok"]) == set(ids[4:])
    daemon.stop_clean()


def test_sighup_invalid_config_keeps_the_old_one(daemon, sim):
    daemon.configure(organization_units={"sales": OU_SALES})
    ids = guids(3)
    daemon.write_roster(creates(ids, "sales"))
    daemon.start()
    wait_users(sim, ids, 10, daemon)

    mark = daemon.mark()
    good = daemon.config_path.read_text()
    daemon.config_path.write_text(good + "no_such_key: 1\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"config reload failed", 10, mark)
    assert daemon.log().find("config.yaml:", mark) >= 0, daemon.log()[mark:]
    assert "no_such_key" in daemon.log()[mark:]

    # Still working, with the old config: its OU name still resolves in a changed roster.
    new = guid()
    daemon.write_roster(creates(ids + [new], "sales"))
    wait_users(sim, ids + [new], 10, daemon)
    assert sim.state()["users"][new]["organizationUnitId"] == OU_SALES
    daemon.stop_clean()


def test_sigterm_during_busy_sync(daemon, sim):
    ids = guids(100)
    daemon.write_roster(creates(ids, OU))
    sim.config(delay_ms=300)                     # four calls in flight at a time, slow answers
    daemon.start()
    wait_for(lambda: len(sim.state()["created_ok"]) >= 8, 20, "the sync to get going")
    elapsed = daemon.stop_clean()
    print(f"SIGTERM during a busy sync: exited after {elapsed:.2f} s")
    assert elapsed <= STOP_TIMEOUT
    done = len(sim.state()["created_ok"])
    assert done < len(ids), "the sync was over before SIGTERM: nothing was tested"
    last = daemon.status_json()["last_run"]
    assert last["finished"] > 0 and last["result"] == 1, "the interrupted run must be recorded"

    sim.config(delay_ms=0)
    daemon.start()
    wait_users(sim, ids, 20, daemon)
    st = sim.state()
    assert {i: n for i, n in st["created_ok"].items() if n != 1} == {}
    daemon.stop_clean()


def test_sighup_during_busy_sync(daemon, sim):
    """The run in progress stops (its in-flight answers are still recorded), the new config takes
    over, and the sync goes on with nothing sent twice."""
    ids = guids(60)
    daemon.write_roster(creates(ids, OU))
    sim.config(delay_ms=200)
    daemon.start()
    wait_for(lambda: len(sim.state()["created_ok"]) >= 8, 20, "the sync to get going")
    mark = daemon.mark()
    daemon.configure(deletes={"max_per_run": 30})
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"config reloaded", 10, mark)
    assert len(sim.state()["created_ok"]) < len(ids), "the sync was over before SIGHUP"
    sim.config(delay_ms=0)
    wait_users(sim, ids, 20, daemon)
    st = sim.state()
    assert {i: n for i, n in st["created_ok"].items() if n != 1} == {}
    # No create was answered 409: every in-flight answer was recorded before the new tenant began.
    assert [r for r in st["requests"] if r["status"] == 409] == []
    daemon.stop_clean()
