"""Health is real (nimbus-sync(8), SYSTEMD and SIGNALS): WATCHDOG=1 only while the store answers,
a failed store operation retried later instead of dropped, an unrecoverable store ending the
daemon with exit 1 (so systemd restarts it), and signals handled from the very start.

The store is broken from outside where that is deterministic (a write lock held by another
connection, the file removed); otherwise through the test-only hook: while the file named by
$NIMBUS_SYNC_TEST_STORE_FAULT exists, every store statement fails with the errno named in it.
$NIMBUS_SYNC_TEST_EARLY_SIGNAL makes the daemon raise a signal at its very start, before the
config is read."""

import re
import sqlite3
import time

from .conftest import creates, guid, guids, wait_for, wait_users
from .test_notify import NotifySocket

OU = guid()
FAULT = "NIMBUS_SYNC_TEST_STORE_FAULT"
WATCHDOG = {"WATCHDOG_USEC": "1000000"}    # keep-alives every half second


def pings(notify, since):
    return [t for t, ln in notify.lines(since) if ln == "WATCHDOG=1"]


def test_watchdog_pauses_while_the_store_fails_and_work_resumes(daemon, sim, tmp_path):
    notify = NotifySocket()
    try:
        flag = tmp_path / "store-fault"
        ids = guids(3)
        daemon.write_roster(creates(ids, OU))
        daemon.start(env={"NOTIFY_SOCKET": notify.path, FAULT: str(flag), **WATCHDOG},
                     watchdog_pid=True)
        wait_users(sim, ids, 10, daemon)
        wait_for(lambda: len(pings(notify, time.monotonic() - 1.2)) >= 2, 10, "keep-alives")

        mark = daemon.mark()
        flag.write_text("EBUSY\n")
        daemon.wait_log(r"state store check: Device or resource busy", 10, mark)
        t_broken = time.monotonic()
        new = guid()
        daemon.write_roster(creates(ids + [new], OU))   # planned while the store fails
        daemon.wait_log(r"cannot plan: Device or resource busy; trying again", 10, mark)
        time.sleep(1.5)                                 # time is the subject: three ticks
        assert pings(notify, t_broken + 0.1) == [], "WATCHDOG=1 while the store failed"
        assert new not in sim.state()["users"]

        flag.unlink()
        t_mended = time.monotonic()
        wait_users(sim, ids + [new], 10, daemon)        # the failed plan was tried again
        wait_for(lambda: pings(notify, t_mended), 10, "keep-alives once the store answers")
        daemon.stop_clean()
    finally:
        notify.close()


def test_repeated_io_errors_end_the_daemon(daemon, sim, tmp_path):
    flag = tmp_path / "store-fault"
    daemon.write_roster(creates(guids(2), OU))
    daemon.start(env={FAULT: str(flag), **WATCHDOG})
    daemon.wait_ready()
    flag.write_text("EIO\n")
    rc = daemon.proc.wait(timeout=15)
    log = daemon.log()
    assert rc == 1, log[-3000:]
    assert re.search(r"^critical: .*: Input/output error; the state store cannot recover", log, re.M), log


def test_a_removed_store_ends_the_daemon(daemon, sim):
    daemon.write_roster(creates(guids(2), OU))
    daemon.start()
    daemon.wait_ready()
    for suffix in ("", "-wal", "-shm"):
        daemon.state_dir.joinpath("state.db" + suffix).unlink(missing_ok=True)
    rc = daemon.proc.wait(timeout=10)
    assert rc == 1, daemon.log()[-3000:]
    assert "Stale file handle; the state store cannot recover" in daemon.log()


def test_a_plan_that_failed_is_tried_again(daemon, sim):
    """Another connection holds the store's write lock: the plan fails (after SQLite's busy
    timeout). Once the lock is gone, the daemon plans again by itself."""
    ids = guids(2)
    daemon.write_roster(creates(ids, OU))
    daemon.start()
    wait_users(sim, ids, 10, daemon)

    con = sqlite3.connect(daemon.state_db, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        mark = daemon.mark()
        new = guid()
        daemon.write_roster(creates(ids + [new], OU))
        daemon.wait_log(r"cannot plan", 20, mark)
    finally:
        con.execute("ROLLBACK")
        con.close()
    wait_users(sim, ids + [new], 10, daemon)
    daemon.stop_clean()


def test_a_failed_sweep_is_tried_again(daemon, sim, tmp_path):
    flag = tmp_path / "store-fault"
    ids = guids(3)
    daemon.configure(verify={"interval": "2s"})
    daemon.write_roster(creates(ids, OU))
    flag.write_text("EBUSY\n")
    daemon.start(env={FAULT: str(flag)})
    daemon.wait_log(r"verify sweep: Device or resource busy; trying again", 10)
    assert [r for r in sim.state()["requests"] if r["method"] == "GET"] == []
    flag.unlink()
    wait_users(sim, ids, 10, daemon)
    daemon.wait_log(r"verify sweep: 3 checked", 10)
    daemon.stop_clean()


def test_sighup_before_the_handlers_reloads(daemon, sim):
    ids = guids(2)
    daemon.write_roster(creates(ids, OU))
    daemon.start(env={"NIMBUS_SYNC_TEST_EARLY_SIGNAL": "HUP"})
    daemon.wait_ready()
    daemon.wait_log(r"config reloaded", 10)
    wait_users(sim, ids, 10, daemon)
    daemon.stop_clean()


def test_sigterm_before_the_handlers_stops_cleanly(daemon, sim):
    daemon.write_roster(creates(guids(2), OU))
    daemon.start(env={"NIMBUS_SYNC_TEST_EARLY_SIGNAL": "TERM"})
    rc = daemon.proc.wait(timeout=10)
    assert rc == 0, daemon.log()[-3000:]
    assert "stopping" in daemon.log()             # the handler's, not a kill (exit -15)
