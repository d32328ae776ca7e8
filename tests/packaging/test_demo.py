"""The README's quick start: tests/demo.sh, run as the README says under `sh -e`, exits 0 and
leaves nothing behind: no process it started (the simulator and the daemon, whose command lines
hold the demo folder and the simulator's secret) and no temporary file or folder.

The demo runs in its own session with its own TMPDIR, so whatever it leaves is found exactly:
a process of that session, or an entry in that folder. It builds build/plain in the worktree
(`meson compile` is quick once built) and takes about 15 seconds."""

import os
import signal
import subprocess
import time

from pkgtest import REPO

DEMO = REPO / "tests" / "demo.sh"
DEMO_TIMEOUT = 600


def session_members(sid):
    """Pids (and command lines) of the processes that are still in session sid."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                # comm may hold spaces and parentheses: the fields follow its last ')'.
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue   # gone meanwhile
        if int(fields[3]) == sid and fields[0] != "Z":
            found[int(entry)] = cmdline
    return found


def test_demo_exits_0_and_leaves_nothing_behind(tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir))
    for name in ("NIMBUS_SYNC_CONFIG", "JOURNAL_STREAM"):
        env.pop(name, None)
    # The README's command, in a new session: everything it starts stays in that session.
    proc = subprocess.Popen(["sh", "-e", str(DEMO)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=DEMO_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = output.decode(errors="replace")
    # Processes reparented at exit may take a moment to finish their own exit.
    deadline = time.monotonic() + 5
    left = session_members(proc.pid)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = session_members(proc.pid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)   # ours: the session was made for this test
    leftovers = sorted(p.name for p in tmpdir.iterdir())

    assert proc.returncode == 0, f"sh -e tests/demo.sh exited {proc.returncode}:\n{text[-4000:]}"
    assert "Demo done" in text, text[-4000:]
    assert not left, f"processes left running: {left}"
    assert not leftovers, f"left in TMPDIR: {leftovers}"
