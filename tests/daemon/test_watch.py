"""The watched roster folder (PRODUCT §5, §10): the settle time, half-written files (also at
start-up), removed files, invalid rosters, ignored names, touched-but-unchanged files, and a
folder that appears late or is replaced."""

import os
import re
import shutil
import time

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
