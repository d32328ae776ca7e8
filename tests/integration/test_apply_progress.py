"""apply's progress (nimbus-sync(8), apply): on a terminal, one line rewritten in place with the
calls done of all and the time left, erased before every log line and at the end; on a pipe, no
such line (a log file wants no carriage returns). Either way the progress is in the state store
while the run goes on, so `status` shows the run as running."""

import json
import os
import pty
import re
import select
import subprocess
import time

from conftest import describe, guid, guids, poll

OU = guid()
LINE = re.compile(r"\r\x1b\[Kapply: (\d+) of (\d+) calls done(?:, ETA [^;]+)?; rate \d+/\d+")


def run_on_terminal(ns, *args):
    """Run nimbus-sync with stderr on a pseudo-terminal; returns (exit status, what it wrote)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(ns.argv(*args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=slave, env={k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"})
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 1)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:       # EIO: the other end is closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    text = out.decode(errors="replace")
    ns.check_output("", text)
    return proc.wait(timeout=60), text


def test_apply_draws_one_progress_line_on_a_terminal_only(ns, sim):
    ids = guids(20)
    ns.configure(rate_limit={"operations": 8, "window": "1s"})   # 2.5 s of work
    ns.write_roster([{"o365_id": i, "ou": OU} for i in ids])

    t0 = time.monotonic()
    code, text = run_on_terminal(ns, "apply")
    took = time.monotonic() - t0
    assert code == 0, text
    shown = [(int(a), int(b)) for a, b in LINE.findall(text)]
    assert len(shown) >= 2, text                       # rewritten as it goes
    assert all(total == 20 for _, total in shown)
    assert [done for done, _ in shown] == sorted(done for done, _ in shown)
    # At most twice a second, over however long the run took (a slow machine makes it longer).
    assert len(shown) <= 2 * took + 2, f"{len(shown)} lines in {took:.1f} s:\n{text}"
    # Every log line starts on a clean line: the progress line was erased first, with no newline
    # of its own (the terminal turns \n into \r\n).
    for line in re.split(r"\r?\n", text):
        if "run finished" in line:
            assert re.fullmatch(r"(\r\x1b\[K)*[^\r\x1b]*run finished.*", line), repr(line)
    assert not re.search(LINE.pattern + r"\r?\n", text), "a progress line was left with a newline"

    # The same on a pipe (20 more users): no progress line.
    ns.write_roster([{"o365_id": i, "ou": OU} for i in guids(20)], name="more.yaml")
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert "\r" not in p.stderr and "\x1b" not in p.stderr and "calls done" not in p.stderr


def test_status_shows_a_running_apply(ns, sim):
    ids = guids(30)
    ns.configure(rate_limit={"operations": 6, "window": "1s"})   # 5 s of work
    ns.write_roster([{"o365_id": i, "ou": OU} for i in ids])

    proc = ns.start("apply")

    def running():
        p = ns.run("status", "--json")
        s = json.loads(p.stdout) if p.returncode == 0 else {}
        return s if s.get("run") else None

    s = poll(running, timeout=20)
    assert s, "status never showed the apply's run as running"
    assert s["run"]["total"] == 30 and s["run"]["pid"] == proc.pid
    assert s["last_run"]["state"] == "running"
    assert "did not finish" not in ns.run("status").stdout
    rc, _, _ = ns.wait(proc)
    assert rc == 0
    s = json.loads(ns.run("status", "--json").stdout)
    assert s["run"] is None and s["last_run"]["state"] == "finished"
    assert s["last_success"] is not None
