"""The watched roster folder (nimbus-sync(8), ROSTER FOLDER): the settle time, half-written files
(also at start-up), removed files, invalid rosters, ignored names, touched-but-unchanged files, a
folder that appears late or is replaced, a file renamed while the folder is read, a share that is
gone, and one read at start-up."""

import ctypes
import os
import re
import shutil
import signal
import struct
import time

import pytest

from .conftest import SCAN, SETTLE, creates, guid, guids, mutations, poll, roster_text, sim_ids, \
    wait_for, wait_users, write_atomic

OU = guid()


def first_request_time(sim):
    reqs = sim.state()["requests"]
    return min(r["t"] for r in reqs) if reqs else None


def test_renamed_roster_first_call_within_settle_plus_1s(daemon, sim):
    daemon.start()
    daemon.wait_ready()
    ids = guids(3)
    path = daemon.roster_dir / "roster.yaml"
    tmp = daemon.roster_dir / "roster.yaml.tmp"
    tmp.write_text(roster_text(creates(ids, OU)))
    t_rename = time.time()
    os.rename(tmp, path)

    t_first = wait_for(lambda: first_request_time(sim), SETTLE + 5, "the first API call")
    latency = t_first - t_rename
    print(f"rename -> first API call: {latency * 1000:.0f} ms (settle {SETTLE * 1000:.0f} ms)")
    assert latency <= SETTLE + 1.0, f"first call {latency:.3f} s after the rename"
    # ... and not before the file had been left alone for the settle time.
    assert latency >= SETTLE - 0.05, f"first call only {latency:.3f} s after the rename"
    wait_users(sim, ids, 10, daemon)
    daemon.stop_clean()


def test_slowly_written_file_is_not_read_half_written(daemon, sim):
    daemon.start()
    daemon.wait_ready()
    ids = guids(12)
    entries = [roster_text(creates([i], OU)).split("users:\n", 1)[1] for i in ids]
    path = daemon.roster_dir / "roster.yaml"
    # Every prefix that ends after a complete entry is a valid roster on its own.
    chunks = ["users:\n" + "".join(entries[:2])] + \
             ["".join(entries[k:k + 2]) for k in range(2, len(ids), 2)]
    pause = SETTLE / 2
    t_start = time.time()
    with open(path, "w") as f:
        for n, chunk in enumerate(chunks):
            if n:
                time.sleep(pause)      # shorter than the settle time: still being written
            f.write(chunk)
            f.flush()
    t_complete = time.time()
    assert t_complete - t_start > 2 * SETTLE   # the whole write took longer than the settle time

    wait_users(sim, ids, 10, daemon)
    creates_sent = [r for r in sim.state()["requests"] if r["method"] == "POST"]
    assert min(r["t"] for r in creates_sent) >= t_complete
    loads = re.findall(r"roster loaded: (\d+) users", daemon.log())
    assert loads == ["0", str(len(ids))] or loads == [str(len(ids))], loads
    daemon.stop_clean()


def test_file_its_writer_holds_open_is_not_read_while_the_writer_pauses(daemon, sim):
    """An export script rewrites the roster in place and pauses (a slow directory page) longer
    than the settle time with the file still open. What it wrote so far is a valid roster of
    half the users: read, it would delete the other half. Nothing happens until the writer
    closes the file (which then also lists a newcomer)."""
    daemon.configure(deletes={"max_percent": 100})
    ids, new = guids(8), guid()
    entries = [roster_text(creates([i], OU)).split("users:\n", 1)[1] for i in ids + [new]]
    write_atomic(daemon.roster_dir / "roster.yaml", "users:\n" + "".join(entries[:8]))
    daemon.start()
    wait_users(sim, ids, 10, daemon)
    sim.reset_log()

    mark = daemon.mark()
    with open(daemon.roster_dir / "roster.yaml", "w") as f:
        f.write("users:\n" + "".join(entries[:4]))
        f.flush()
        # Unchanged for ten settle times, but still open for writing: the admin is told why
        # nothing happens.
        daemon.wait_log(r"roster.yaml: changed, and still open in its writer's hands after 5 s; "
                        r"the roster is read once the writer closes it", 10 * SETTLE + 5, mark)
        assert "roster loaded" not in daemon.log()[mark:]
        assert not mutations(sim.state()), "acted on a file its writer still held open"
        f.write("".join(entries[4:]))
    daemon.wait_log(r"roster loaded: 9 users", 10, mark)
    wait_users(sim, ids + [new], 10, daemon)
    assert [(r["method"], r["id"]) for r in mutations(sim.state())] == [("POST", new)]
    daemon.stop_clean()


def test_file_held_open_since_before_the_start_is_not_read(daemon, sim):
    """A writer opened the roster before the daemon started, and paused: no inotify event tells,
    but the kernel refuses a read lease while the file is open for writing (the tests run as
    root, who may take one on any file)."""
    ids = guids(4)
    path = daemon.roster_dir / "roster.yaml"
    with open(path, "w") as f:
        f.write(roster_text(creates(ids[:2], OU)))
        f.flush()
        os.utime(path, (time.time() - 3600,) * 2)     # settled long ago, by its time
        daemon.start()
        daemon.wait_log(r"roster.yaml: changed, and still open in its writer's hands after 5 s",
                        10 * SETTLE + 5)
        assert "roster loaded" not in daemon.log()
        assert sim.state()["requests"] == []
        f.write(roster_text(creates(ids[2:], OU)).split("users:\n", 1)[1])
    wait_users(sim, ids, 10, daemon)
    daemon.stop_clean()


def test_removed_roster_file_deletes_its_users(daemon, sim):
    daemon.configure(deletes={"max_percent": 100})
    keep, drop = guids(5), guids(5)
    daemon.write_roster(creates(keep, OU), "a.yaml")
    daemon.write_roster(creates(drop, OU), "b.yaml")
    daemon.start()
    wait_users(sim, keep + drop, 10, daemon)

    (daemon.roster_dir / "b.yaml").unlink()
    wait_users(sim, keep, 10, daemon)
    assert set(sim.state()["deleted_ok"]) == set(drop)

    # The delete rules still apply: removing the last file empties the roster, which deletes
    # nothing unless deletes.allow_empty.
    mark = daemon.mark()
    (daemon.roster_dir / "a.yaml").unlink()
    daemon.wait_log(r"roster is empty: 5 deletes skipped", 10, mark)
    assert sim_ids(sim) == set(keep)
    assert set(sim.state()["deleted_ok"]) == set(drop)
    daemon.stop_clean()


def break_roster(daemon, ids):
    """A roster whose line 4 is broken YAML, listing fewer users than before."""
    text = roster_text(creates(ids[:2], OU))
    lines = text.splitlines()
    lines.insert(3, "  - o365_id: [unclosed")
    return write_atomic(daemon.roster_dir / "roster.yaml", "\n".join(lines) + "\n")


def test_invalid_roster_keeps_last_valid_state(daemon, sim):
    daemon.configure(deletes={"max_percent": 100})
    ids = guids(6)
    daemon.write_roster(creates(ids, OU))
    daemon.start()
    wait_users(sim, ids, 10, daemon)
    sim.reset_log()

    mark = daemon.mark()
    break_roster(daemon, ids)
    daemon.wait_log(r"roster rejected", 10, mark)
    errors = [ln for ln in daemon.log()[mark:].splitlines() if "error" in ln]
    assert any(re.search(r"roster\.yaml:\d+(:\d+)?: error: ", ln) for ln in errors), errors
    assert mutations(sim.state()) == []
    assert sim_ids(sim) == set(ids)

    # It keeps working: a valid roster after the broken one is applied (3 deletes, 1 create).
    new = guid()
    daemon.write_roster(creates(ids[:3] + [new], OU))
    wait_users(sim, ids[:3] + [new], 10, daemon)
    assert set(sim.state()["deleted_ok"]) == set(ids[3:])
    daemon.stop_clean()


def test_invalid_roster_is_shown_by_status(daemon, sim):
    ids = guids(3)
    daemon.write_roster(creates(ids, OU))
    daemon.start()
    wait_users(sim, ids, 10, daemon)
    mark = daemon.mark()
    break_roster(daemon, ids)
    daemon.wait_log(r"roster rejected", 10, mark)
    human = daemon.run("status")
    assert human.returncode == 0
    assert re.search(r"REJECTED.*roster\.yaml:4", human.stdout), human.stdout
    roster = daemon.status_json()["roster"]
    assert roster["ok"] is False and "roster.yaml:4" in roster["error"], roster
    daemon.stop_clean()


def test_swap_and_tmp_files_are_ignored(daemon, sim):
    ids = guids(2)
    daemon.write_roster(creates(ids, OU))
    daemon.start()
    wait_users(sim, ids, 10, daemon)
    loads = daemon.log().count("roster loaded")

    ignored = guids(5)
    names = [".roster.yaml.swp", "roster.yaml.swp", "roster.yaml~", "new.yaml.tmp", "4913"]
    for name, i in zip(names, ignored):
        (daemon.roster_dir / name).write_text(roster_text(creates([i], OU)))
    # A real change after them: once it is applied, the ignored files have had every chance.
    barrier = guid()
    daemon.write_roster(creates([barrier], OU), "barrier.yaml")
    wait_users(sim, ids + [barrier], 10, daemon)
    assert not set(ignored) & set(sim.state()["created_ok"])
    assert daemon.log().count("roster loaded") == loads + 1
    daemon.stop_clean()


def test_unchanged_rewrite_makes_no_call(daemon, sim):
    ids = guids(4)
    text = roster_text(creates(ids, OU))
    daemon.write_roster(creates(ids, OU))
    daemon.start()
    wait_users(sim, ids, 10, daemon)
    sim.reset_log()
    loads = daemon.log().count("roster loaded")

    time.sleep(0.02)                      # a new mtime for sure
    write_atomic(daemon.roster_dir / "roster.yaml", text)
    # Time is the subject: nothing may happen within the settle time + 1 s, nor a little after.
    assert not poll(lambda: sim.state()["requests"], SETTLE + 2)
    assert daemon.log().count("roster loaded") == loads
    daemon.stop_clean()


def test_file_being_written_at_startup_is_not_read_half_written(daemon, sim):
    """A daemon (re)started while an export job is still writing its file in place must wait
    for the file to settle like any other change, not read what is there at once."""
    ids = guids(8)
    entries = [roster_text(creates([i], OU)).split("users:\n", 1)[1] for i in ids]
    path = daemon.roster_dir / "roster.yaml"
    pause = SETTLE / 2
    with open(path, "w") as f:
        f.write("users:\n" + "".join(entries[:2]))       # already a valid roster
        f.flush()
        daemon.start()
        for k in range(2, len(ids), 2):
            time.sleep(pause)
            f.write("".join(entries[k:k + 2]))
            f.flush()
    t_complete = time.time()

    wait_users(sim, ids, 10, daemon)
    posts = [r for r in sim.state()["requests"] if r["method"] == "POST"]
    early = [r["id"] for r in posts if r["t"] < t_complete]
    assert early == [], f"{len(early)} users created from the half-written file"
    daemon.stop_clean()



def pickup_latency(daemon, sim, name):
    """Write one new user in a new file; seconds from the write to its first API call."""
    sim.reset_log()
    user = guid()
    t_write = time.time()
    daemon.write_roster(creates([user], OU), name)
    wait_for(lambda: user in sim.state()["created_ok"], SCAN + SETTLE + 5,
             lambda: f"a create of {user}:\n{daemon.log()[-3000:]}")
    return min(r["t"] for r in sim.state()["requests"]) - t_write


def test_roster_folder_created_after_start(daemon, sim):
    """A folder that does not exist yet is read once it appears, and watched from then on."""
    daemon.roster_dir.rmdir()
    daemon.start()
    daemon.wait_ready()
    daemon.roster_dir.mkdir()
    assert pickup_latency(daemon, sim, "a.yaml") <= SCAN + SETTLE + 1
    latency = pickup_latency(daemon, sim, "b.yaml")
    assert latency <= SETTLE + 1, f"{latency:.2f} s: the folder is not watched"
    daemon.stop_clean()


def test_replaced_roster_folder_is_watched_again(daemon, sim):
    """A folder removed and made again (a deploy tool, an admin) is watched again after at most
    one rescan: changes are then seen within the settle time + 1 s again."""
    ids = guids(2)
    daemon.write_roster(creates(ids, OU))
    daemon.start()
    wait_users(sim, ids, 10, daemon)
    shutil.rmtree(daemon.roster_dir)
    daemon.roster_dir.mkdir()
    daemon.write_roster(creates(ids, OU))
    time.sleep(SCAN + 0.5)           # time is the subject: one rescan goes by
    latency = pickup_latency(daemon, sim, "c.yaml")
    assert latency <= SETTLE + 1, f"{latency:.2f} s: the new folder is not watched"
    assert sim.state()["deleted_ok"] == {}
    daemon.stop_clean()


# --- the folder as one snapshot ------------------------------------------------------------------

STOP_ENV = "NIMBUS_SYNC_TEST_STOP_AFTER_FILE"   # test-only hook of the roster loader


def wait_stopped(daemon, what):
    """Wait until the daemon has stopped itself (the loader hook) after reading a file. The test
    is its parent: waitid() reports every stop once."""
    flags = os.WSTOPPED | os.WEXITED | os.WNOHANG | os.WNOWAIT
    info = wait_for(lambda: os.waitid(os.P_PID, daemon.proc.pid, flags), 10,
                    lambda: f"the daemon to stop in {what}:\n{daemon.log()[-3000:]}")
    assert info.si_code == os.CLD_STOPPED, f"the daemon ended in {what}:\n{daemon.log()[-3000:]}"
    os.waitid(os.P_PID, daemon.proc.pid, os.WSTOPPED | os.WNOHANG)     # this stop is seen


def resume(daemon):
    os.kill(daemon.proc.pid, signal.SIGCONT)


def test_file_renamed_while_the_daemon_reads_is_read_again(daemon, sim):
    """A file renamed while the daemon parses another file of the folder: its users are neither
    deleted nor created again; the folder is read again after the settle time."""
    daemon.configure(deletes={"max_percent": 100, "max_per_run": 100})
    a, b = guids(20), guids(20)
    daemon.write_roster(creates(a, OU), "a.yaml")
    daemon.write_roster(creates(b, OU), "b.yaml")
    daemon.start(env={STOP_ENV: "a.yaml"})
    wait_stopped(daemon, "the first read")
    resume(daemon)
    wait_users(sim, a + b, 10, daemon)
    sim.reset_log()

    new = guid()
    mark = daemon.mark()
    daemon.write_roster(creates(a + [new], OU), "a.yaml")
    wait_stopped(daemon, "the read of the changed folder")     # a.yaml read, b.yaml not yet
    os.rename(daemon.roster_dir / "b.yaml", daemon.roster_dir / "c.yaml")
    resume(daemon)
    daemon.wait_log(r"changed while it was read.*reading the roster folder again", 10, mark)
    wait_stopped(daemon, "the second read")
    resume(daemon)
    daemon.wait_log(r"roster loaded: 41 users in 2 files", 10, mark)
    wait_users(sim, a + b + [new], 10, daemon)

    st = sim.state()
    assert [r for r in st["requests"] if r["method"] == "DELETE"] == []
    assert [r["id"] for r in st["requests"] if r["method"] == "POST"] == [new]
    assert "roster rejected" not in daemon.log()[mark:]
    daemon.stop_clean()


def test_roster_on_a_vanished_share_deletes_nothing(daemon, sim, tmp_path):
    """A roster file that is a symlink onto a share: when the share goes away the link dangles.
    That is an error (the roster is rejected), not a file that lists nobody."""
    daemon.configure(deletes={"max_percent": 100})
    share = tmp_path / "mnt"
    share.mkdir()
    keep, shared = guids(3), guids(3)
    daemon.write_roster(creates(keep, OU), "a.yaml")
    target = write_atomic(share / "export.yaml", roster_text(creates(shared, OU)))
    (daemon.roster_dir / "share.yaml").symlink_to(target)
    daemon.start()
    wait_users(sim, keep + shared, 10, daemon)
    sim.reset_log()

    mark = daemon.mark()
    target.unlink()          # no event in the roster folder: the rescan notices
    daemon.wait_log(r"roster rejected", SCAN + SETTLE + 5, mark)
    assert re.search(r"share\.yaml:1:1: error: dangling symbolic link", daemon.log()[mark:])
    assert mutations(sim.state()) == []
    assert sim_ids(sim) == set(keep + shared)
    daemon.stop_clean()


class OpenCounter:
    """Counts the opens of files in a folder, through inotify (IN_OPEN): what strace would show."""
    IN_OPEN = 0x20

    def __init__(self, folder):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        assert self.libc.inotify_add_watch(self.fd, os.fsencode(folder), self.IN_OPEN) >= 0
        self.counts = {}

    def count(self, name):
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            pos = 0
            while pos < len(data):
                _, mask, _, size = struct.unpack_from("iIII", data, pos)
                entry = data[pos + 16:pos + 16 + size].rstrip(b"\0").decode()
                if mask & self.IN_OPEN:
                    self.counts[entry] = self.counts.get(entry, 0) + 1
                pos += 16 + size
        return self.counts.get(name, 0)

    def close(self):
        os.close(self.fd)


@pytest.mark.parametrize("valid", [True, False])
def test_roster_is_read_once_at_start(daemon, sim, valid):
    ids = guids(3)
    text = roster_text(creates(ids, OU)) + ("" if valid else "  - o365_id: [\n")
    path = write_atomic(daemon.roster_dir / "roster.yaml", text)
    old = time.time() - 60
    os.utime(path, (old, old))           # settled long ago: read at once at start
    opens = OpenCounter(daemon.roster_dir)
    try:
        daemon.start()
        daemon.wait_ready()
        if valid:
            wait_users(sim, ids, 10, daemon)
        # Time is the subject: a second read would follow within the settle time.
        assert not poll(lambda: opens.count("roster.yaml") > 1, 3 * SETTLE + 1)
        assert opens.count("roster.yaml") == 1
    finally:
        opens.close()
    assert daemon.log().count("roster rejected") == (0 if valid else 1)
    daemon.stop_clean()
