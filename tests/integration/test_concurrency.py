"""Concurrency (nimbus-sync(8), LOCKING AND CONCURRENCY): one writer per tenant, `apply --user`
handed to a running daemon, and one rate window shared by every process of a tenant.

The rate tests run the daemon against a simulator that allows 20 requests in 2 s, and answers 429
to any request over that; a second process calls Nimbus at the same time. The simulator's request
log shows whether any 2 s window ever held more than 20 arrivals.
"""

import os
import signal
import subprocess
import time

import pytest

from conftest import describe, guid, guids, poll, roster_users, scaled

OU = guid()
OPS, WINDOW = 20, 2
SMALL_WINDOW = dict(ous=[OU], rate_ops=OPS, rate_window=WINDOW)


class Daemon:
    """`nimbus-sync daemon` in the background, with its log in a file of its own."""

    def __init__(self, ns, name="daemon"):
        self.ns = ns
        self.log_path = ns.dir / f"{name}.log"
        env = dict(os.environ)
        for key in ("NIMBUS_SYNC_CONFIG", "JOURNAL_STREAM", "NOTIFY_SOCKET", "WATCHDOG_USEC"):
            env.pop(key, None)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(ns.argv("daemon"), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, env=env)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout=10):
        assert poll(lambda: "started:" in self.log() or self.proc.poll() is not None, timeout), \
            self.log()
        assert self.proc.poll() is None, f"the daemon exited ({self.proc.returncode}):\n{self.log()}"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=10)
        self.ns.check_output("", self.log())
        assert rc == 0, f"exit {rc}\n{self.log()[-4000:]}"

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def daemons():
    started = []
    yield started
    for d in started:
        d.kill()


def start_daemon(ns, daemons, name="daemon"):
    d = Daemon(ns, name)
    daemons.append(d)
    d.wait_ready()
    return d


def small_window(ns):
    ns.configure(rate_limit={"operations": OPS, "window": f"{WINDOW}s"})


def assert_window_kept(sim):
    state = sim.state()
    assert state["over_limit"] == 0, f"{state['over_limit']} requests over the limit"
    assert state["max_in_window"] <= OPS, f"{state['max_in_window']} requests in one window"
    conflicts = [r for r in state["requests"] if r["status"] == 409]
    assert not conflicts, f"{len(conflicts)} creates of users that existed: {conflicts[:3]}"
    return state


def wait_created(sim, n, timeout):
    assert poll(lambda: len(sim.state()["created_ok"]) >= n, timeout, 0.1), \
        f"{len(sim.state()['created_ok'])} of {n} users created"


# --- apply --user beside the daemon -------------------------------------------------------------

@pytest.mark.sim(**SMALL_WINDOW)
def test_apply_user_is_handed_to_the_daemon(ns, sim, daemons):
    small_window(ns)
    ids = guids(150)                   # 15 s of work at 20 per 2 s
    ns.write_roster(roster_users(ids, OU))
    daemon = start_daemon(ns, daemons)
    wait_created(sim, 10, 20)

    # Users added to the roster just now, provisioned at once, each by the daemon, while its
    # run goes on: apply reads the roster as it is, the daemon must too.
    extra, runs = guids(3), []
    for i, user in enumerate(extra):
        ns.write_roster(roster_users(ids + extra[:i + 1], OU))
        t0 = time.monotonic()
        runs.append((ns.run("apply", "--user", user), time.monotonic() - t0,
                     user in sim.state()["users"]))
    created = len(sim.state()["created_ok"])
    assert created < len(ids), "the daemon's run was over before: nothing was handed over"

    wait_created(sim, len(ids) + len(extra), 30)
    assert_window_kept(sim)
    status = ns.status_json()
    assert status["users"]["adopted"] == 0, status["users"]
    assert status["users"]["created"] == len(ids) + len(extra), status["users"]
    for p, took, there in runs:
        assert p.returncode == 0, describe(p)
        assert f"by the daemon, pid {daemon.proc.pid}" in p.stderr, describe(p)
        assert there and took < 10, f"apply --user took {took:.1f} s"
    daemon.stop()


@pytest.mark.sim(ous=[OU])
def test_apply_user_outcome_and_exit_status(ns, sim, daemons):
    ok, bad = guid(), guid()
    ns.write_roster(roster_users([ok], OU))
    daemon = start_daemon(ns, daemons)
    assert poll(lambda: ok in sim.state()["users"], 10)

    # In sync already: nothing to do, exit 0, and no request.
    before = len(sim.state()["requests"])
    p = ns.run("apply", "--user", ok)
    assert p.returncode == 0, describe(p)
    assert "nothing to do" in p.stderr, describe(p)
    assert len(sim.state()["requests"]) == before

    # Refused for good: exit 2, with the server's reason.
    sim.config(fail_next=[{"method": "POST", "path": "user", "status": 400, "count": 1,
                           "body": {"message": "organizationUnitId is not allowed"}}])
    ns.write_roster(roster_users([ok, bad], OU))
    p = ns.run("apply", "--user", bad)
    assert p.returncode == 2, describe(p)
    assert "1 failed" in p.stderr and "not allowed" in p.stderr, describe(p)
    daemon.stop()


@pytest.mark.sim(ous=[OU])
def test_apply_user_gives_up_on_a_stuck_daemon(ns, sim, daemons):
    ns.write_roster(roster_users(guids(2), OU))
    daemon = start_daemon(ns, daemons)
    os.kill(daemon.proc.pid, signal.SIGSTOP)
    try:
        user = guid()
        t0 = time.monotonic()
        p = ns.run("apply", "--user", user)
        took = time.monotonic() - t0
    finally:
        os.kill(daemon.proc.pid, signal.SIGCONT)
    assert p.returncode == 1, describe(p)
    assert f"the daemon (pid {daemon.proc.pid}) did not take the request" in p.stderr, describe(p)
    assert 29 < took < 40
    daemon.stop()


# --- one writer per tenant -----------------------------------------------------------------------

@pytest.mark.sim(ous=[OU])
def test_plain_apply_beside_the_daemon_says_what_to_do(ns, sim, daemons):
    ns.write_roster(roster_users(guids(3), OU))
    daemon = start_daemon(ns, daemons)
    assert poll(lambda: len(sim.state()["users"]) == 3, 10)
    before = len(sim.state()["requests"])
    p = ns.run("apply")
    assert p.returncode == 1, describe(p)
    assert f"the daemon is running (pid {daemon.proc.pid})" in p.stderr, describe(p)
    assert "apply --user" in p.stderr and "nimbus-sync status" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, describe(p)
    assert len(sim.state()["requests"]) == before
    daemon.stop()


@pytest.mark.sim(ous=[OU])
def test_second_daemon_on_one_state_dir_exits(ns, sim, daemons):
    ids = guids(5)
    ns.write_roster(roster_users(ids, OU))
    first = start_daemon(ns, daemons)
    second = Daemon(ns, "second")
    daemons.append(second)
    assert second.proc.wait(timeout=10) == 1, second.log()
    lines = second.log().strip().splitlines()
    assert len(lines) == 1, second.log()
    assert f"in use by the daemon (pid {first.proc.pid})" in lines[0]
    assert poll(lambda: set(sim.state()["users"]) == set(ids), 10)
    first.stop()


@pytest.mark.sim(ous=[OU])
def test_apply_holds_the_lock_too(ns, sim, daemons):
    ns.write_roster(roster_users(guids(12), OU))
    # Four calls in flight, each answered after 1 s: the apply holds the lock for 3 s or more,
    # long enough for the three processes below to start and meet it (300 ms gave them 0.9 s).
    sim.config(delay_ms=1000)
    first = ns.start("apply")
    lock = ns.state_dir / "state.lock"
    assert poll(lambda: lock.exists() and lock.read_text().startswith(f"{first.pid} "), scaled(10))

    p = ns.run("apply")
    assert p.returncode == 1, describe(p)
    assert f"`nimbus-sync apply` (pid {first.pid}) is working on" in p.stderr, describe(p)
    p = ns.run("apply", "--user", guid())
    assert p.returncode == 1, describe(p)
    daemon = Daemon(ns)
    daemons.append(daemon)
    assert daemon.proc.wait(timeout=scaled(10)) == 1
    assert f"in use by `nimbus-sync apply` (pid {first.pid})" in daemon.log()

    rc, out, err = ns.wait(first)
    assert rc == 0, err
    assert ns.run("apply").returncode == 0     # the lock went with it


# --- one rate window for every process -----------------------------------------------------------

@pytest.mark.sim(**SMALL_WINDOW)
def test_read_commands_beside_a_busy_daemon_keep_the_window(ns, sim, daemons):
    small_window(ns)
    ids = guids(120)
    ns.write_roster(roster_users(ids, OU))
    daemon = start_daemon(ns, daemons)
    wait_created(sim, 5, 20)
    for i in range(10):
        p = ns.run("licenses") if i % 2 else ns.run("user", "show", ids[i])
        assert p.returncode in (0, 3), describe(p)
    wait_created(sim, len(ids), 40)
    state = assert_window_kept(sim)
    assert len([r for r in state["requests"] if r["method"] == "GET"]) >= 10
    daemon.stop()


@pytest.mark.sim(**SMALL_WINDOW)
def test_two_applies_in_a_row_share_the_window(ns, sim):
    small_window(ns)
    ns.write_roster(roster_users(guids(30), OU))
    assert ns.run("apply").returncode == 0
    ns.write_roster(roster_users(guids(30), OU))     # 30 deletes and 30 creates
    ns.configure(rate_limit={"operations": OPS, "window": f"{WINDOW}s"},
                 deletes={"max_per_run": 100, "max_percent": 100})
    assert ns.run("apply").returncode == 0
    assert_window_kept(sim)
