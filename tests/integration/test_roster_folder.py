"""The roster folder is read as one consistent snapshot (nimbus-sync(8), ROSTER FOLDER): a file
renamed, removed or rewritten while a command reads the folder makes it read the folder again,
and it is never taken as "no longer in the roster".

The race is made deterministic with the loader's test-only hook: with
NIMBUS_SYNC_TEST_STOP_AFTER_FILE=NAME the process stops itself (SIGSTOP) right after it has read
the roster file NAME. The test, its parent, sees each stop with waitid(), changes the folder, and
lets it go on with SIGCONT.
"""

import os
import signal

import pytest
import yaml

from conftest import api_requests, describe, guids, poll, roster_users, sim_ids

OU = "3f2a7c4e-0c1d-4a8b-9e61-2d5f8b7a9c10"
STOP_ENV = "NIMBUS_SYNC_TEST_STOP_AFTER_FILE"


def next_stop(proc, timeout=60):
    """Wait for the child's next stop (True) or its end (False). waitid() reports every stop
    once, however soon the next one follows; an end is left for Popen to collect."""
    flags = os.WSTOPPED | os.WEXITED | os.WNOHANG | os.WNOWAIT
    info = poll(lambda: os.waitid(os.P_PID, proc.pid, flags), timeout)
    assert info, f"the process neither stopped nor ended within {timeout} s"
    if info.si_code != os.CLD_STOPPED:
        return False
    os.waitid(os.P_PID, proc.pid, os.WSTOPPED | os.WNOHANG)     # this stop is seen
    return True


def drive(proc, on_stop):
    """Let a process that stops itself run to its end: at every stop call on_stop(k) (k counts
    from 0), then SIGCONT. Returns the number of stops."""
    stops = 0
    while next_stop(proc):
        on_stop(stops)
        stops += 1
        os.kill(proc.pid, signal.SIGCONT)
    return stops


@pytest.fixture
def two_files(ns, sim):
    """40 users from a.yaml and b.yaml, all created; deletes not held, so a wrong read would
    really delete."""
    a, b = guids(20), guids(20)
    ns.configure(deletes={"max_percent": 100, "max_per_run": 100})
    ns.write_roster(roster_users(a, OU), name="a.yaml")
    ns.write_roster(roster_users(b, OU), name="b.yaml")
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    sim.reset_log()
    return set(a) | set(b)


@pytest.mark.parametrize("command", ["apply", "plan", "validate"])
def test_file_renamed_while_the_folder_is_read_is_read_again(ns, sim, two_files, monkeypatch,
                                                             command):
    monkeypatch.setenv(STOP_ENV, "a.yaml")
    proc = ns.start(command)

    def rename_once(k):
        if k == 0:      # a.yaml is read, b.yaml is listed but not yet opened
            os.rename(ns.roster_dir / "b.yaml", ns.roster_dir / "c.yaml")

    stops = drive(proc, rename_once)
    rc, out, err = ns.wait(proc)
    assert stops == 2, f"expected one read and one re-read, saw {stops} reads\n{err}"
    assert rc == 0, f"exit {rc}\n{out}\n{err}"
    assert "changed while it was read" in err, err
    if command == "validate":
        assert "roster ok: 40 users in 2 files" in out, out
    st = sim.state()
    assert [r for r in api_requests(st) if r["method"] != "GET"] == [], \
        "a file renamed during the read must not look like users that left the roster"
    assert sim_ids(st) == two_files


def test_file_rewritten_after_it_was_read_is_read_again(ns, sim, two_files, monkeypatch):
    """b.yaml was read, then rewritten in place while the folder was still being read: the
    roster that was read is stale, so it is read again and the new content is what counts."""
    new = guids(1)[0]
    monkeypatch.setenv(STOP_ENV, "b.yaml")
    ns.write_roster(roster_users(guids(1), OU), name="c.yaml")
    proc = ns.start("apply")

    def rewrite_once(k):
        if k == 0:      # in place, so the inode stays: only its size and mtime tell
            with open(ns.roster_dir / "b.yaml", "a") as f:
                f.write(f"- o365_id: {new}\n  ou: {OU}\n")

    stops = drive(proc, rewrite_once)
    rc, out, err = ns.wait(proc)
    assert stops == 2, err
    assert rc == 0, f"exit {rc}\n{out}\n{err}"
    assert new in sim_ids(sim.state()), "the re-read must see the rewritten file"


def test_apply_gives_up_when_the_folder_keeps_changing(ns, sim, two_files, monkeypatch):
    monkeypatch.setenv(STOP_ENV, "a.yaml")
    proc = ns.start("apply")
    names = ["b.yaml", "c.yaml"]

    def rename_every_time(k):
        os.rename(ns.roster_dir / names[k % 2], ns.roster_dir / names[(k + 1) % 2])

    stops = drive(proc, rename_every_time)
    rc, out, err = ns.wait(proc)
    assert rc == 1, f"exit {rc}\n{out}\n{err}"
    assert 2 <= stops <= 5, f"{stops} reads: a few immediate retries, then give up"
    assert "kept changing" in err and "nothing was changed" in err, err
    st = sim.state()
    assert api_requests(st) == [] and sim_ids(st) == two_files


@pytest.mark.parametrize("command", ["apply", "plan", "validate"])
def test_file_a_writer_holds_open_is_not_read(ns, sim, command):
    """An export that rewrites the roster in place and pauses: what it wrote so far is a valid
    roster of half the users. While its writer holds the file open, it is not read."""
    ids = guids(6)
    ns.configure(deletes={"max_percent": 100})
    ns.write_roster(roster_users(ids, OU))
    assert ns.run("apply").returncode == 0
    with open(ns.roster_dir / "roster.yaml", "w") as f:
        f.write(yaml.safe_dump({"users": roster_users(ids[:3], OU)}, sort_keys=False))
        f.flush()
        p = ns.run(command)
    assert p.returncode == 1, describe(p)
    assert "roster.yaml: error: another process holds it open for writing (still writing it?): " \
           "not read until its writer closes it" in p.stderr, describe(p)
    assert "kept changing" not in p.stderr, describe(p)     # one look is enough: no retries
    assert sim_ids(sim.state()) == set(ids)
    # Closed by its writer: now it is the roster.
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert sim_ids(sim.state()) == set(ids[:3])
