"""sd_notify (nimbus-sync(8), SYSTEMD): READY=1, a STATUS= line kept current during a sync, RELOADING=1 then
READY=1 on SIGHUP, STOPPING=1 on SIGTERM, and WATCHDOG=1 keep-alives when systemd asks for them.
The test plays systemd: it binds the datagram socket named by $NOTIFY_SOCKET."""

import os
import shutil
import signal
import socket
import tempfile
import threading
import time

import pytest

from .conftest import creates, guid, guids, wait_for, wait_users

OU = guid()


class NotifySocket:
    """A bound AF_UNIX datagram socket; collects (monotonic time, [lines]) per datagram."""

    def __init__(self):
        # A short path: sun_path holds 108 bytes, pytest's tmp_path can be longer.
        self.dir = tempfile.mkdtemp(prefix="ns-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while self.running:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append((time.monotonic(), data.decode().splitlines()))

    def lines(self, since=0.0):
        with self.lock:
            return [(t, ln) for t, msg in self.messages if t >= since for ln in msg]

    def wait(self, line, timeout=10, since=0.0):
        """Wait for a datagram line equal to `line` (or starting with it, if it ends in '=')."""
        def match():
            for t, ln in self.lines(since):
                if ln == line or (line.endswith("=") and ln.startswith(line)):
                    return t, ln
            return None
        return wait_for(match, timeout, lambda: f"{line!r} on the notify socket; got "
                                                f"{[ln for _, ln in self.lines(since)][-20:]}")

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify():
    n = NotifySocket()
    yield n
    n.close()


def statuses(notify, since=0.0):
    return [ln[len("STATUS="):] for _, ln in notify.lines(since) if ln.startswith("STATUS=")]


def test_ready_status_reload_stop_and_watchdog(daemon, sim, notify):
    ids = guids(60)
    daemon.write_roster(creates(ids, OU))
    sim.config(delay_ms=200)          # four calls at a time: a sync of about 3 s
    daemon.start(env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"},
                 watchdog_pid=True)

    t_ready, _ = notify.wait("READY=1")
    # STATUS= follows the sync: several different "syncing" lines, then "idle".
    wait_users(sim, ids, 20, daemon)

    def idle_after_sync():
        lines = statuses(notify)
        return any(s.startswith("syncing:") for s in lines) and lines[-1].startswith("idle:")

    wait_for(idle_after_sync, 10, lambda: f"an idle STATUS= line after the sync; got "
                                         f"{statuses(notify)}")
    lines = statuses(notify)
    syncing = [s for s in lines if s.startswith("syncing:")]
    assert len(set(syncing)) >= 2, lines
    assert "60 users in the roster" in lines[-1] and "converged" in lines[-1], lines[-1]
    print(f"{len(lines)} STATUS= lines, {len(set(syncing))} distinct while syncing; "
          f"last: {lines[-1]}")

    # WATCHDOG_USEC=1 s: keep-alives every half second or so, i.e. two within 1.2 s (waited for
    # with a deadline that a slow machine cannot miss).
    t0 = time.monotonic()
    wait_for(lambda: sum(1 for t, ln in notify.lines(max(t0, time.monotonic() - 1.2))
                         if ln == "WATCHDOG=1") >= 2, 10,
             "two WATCHDOG=1 keep-alives within 1.2 s")

    t_hup = time.monotonic()
    daemon.signal(signal.SIGHUP)
    t_reloading, _ = notify.wait("RELOADING=1", since=t_hup)
    assert any(ln.startswith("MONOTONIC_USEC=") for _, ln in notify.lines(t_hup))
    t_ready2, _ = notify.wait("READY=1", since=t_reloading)
    assert t_ready < t_hup <= t_reloading <= t_ready2

    t_term = time.monotonic()
    daemon.stop_clean()
    notify.wait("STOPPING=1", timeout=10, since=t_term)


def test_idle_status_line_names_failures(daemon, sim, notify):
    ids = guids(3)
    sim.config(fail_next=[{"method": "POST", "path": "user", "status": 400, "count": 1}])
    daemon.write_roster(creates(ids, OU))
    daemon.start(env={"NOTIFY_SOCKET": notify.path})
    notify.wait("READY=1")
    wait_for(lambda: any(s.startswith("idle:") and "1 failed" in s for s in statuses(notify)), 10,
             lambda: f"an idle STATUS= line naming the failed user; got {statuses(notify)}")
    idle = [s for s in statuses(notify) if s.startswith("idle:")][-1]
    assert "0 quarantined" in idle, idle
    daemon.stop_clean()


def test_no_watchdog_unless_asked(daemon, sim, notify):
    daemon.start(env={"NOTIFY_SOCKET": notify.path})
    t_ready, _ = notify.wait("READY=1")
    time.sleep(1.5)                   # time is the subject: longer than the test watchdog above
    assert not [ln for _, ln in notify.lines() if ln.startswith("WATCHDOG")]
    daemon.stop_clean()
    notify.wait("STOPPING=1", timeout=10)
