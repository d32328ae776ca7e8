#!/usr/bin/python3
"""Idle benchmark (tests/bench/README.md): what the daemon costs when nothing changes, and how
soon it acts when a roster file lands. Runs the built nimbus-sync daemon against the bundled
simulator (tests/sim) on loopback. Prints a table; asserts nothing.

    tests/bench/idle_bench.py

Environment: BUILD_DIR (default build/plain), IDLE_SECONDS (default 300), IDLE_USERS (users in
the converged roster, default 1000), IDLE_DROPS (roster files dropped for the latency figure,
default 3).

1. A roster of IDLE_USERS users is provisioned with `apply`, so the daemon starts converged.
2. The daemon starts (verify off, settle_time 2s, scan_interval 60s). It reports READY=1 and
   STATUS= to a notify socket this script holds, as it would to systemd; the idle period starts
   once STATUS says "idle".
3. Idle: CPU seconds (utime + stime from /proc/PID/stat) and API requests in the simulator's log
   over IDLE_SECONDS. Target: no requests, no measurable CPU.
4. Latency: a file with one new user is written under a dot-name and renamed into the roster
   folder; the figure is the time from the rename to the simulator's first request. Target:
   within settle_time + 1 s = 3 s.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "sim"))
sys.path.insert(0, os.path.join(TOP, "tests", "common"))

from nstest import write_sim_setup  # noqa: E402
from simclient import Sim  # noqa: E402

OU = "3f2a7c4e-0c1d-4a8b-9e61-2d5f8b7a9c10"
SETTLE = 2.0
RATE = 1000  # per second, in the config and the simulator: provisioning the roster is not the point here


def build(build_dir):
    if not os.path.exists(os.path.join(build_dir, "build.ninja")):
        subprocess.run(["meson", "setup", build_dir], cwd=TOP, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["ninja", "-C", build_dir, "src/nimbus-sync"], check=True, stdout=subprocess.DEVNULL)
    return os.path.join(build_dir, "src/nimbus-sync")


def write_setup(d, sim):
    return write_sim_setup(Path(d), sim, {
        "settle_time": f"{SETTLE:g}s", "scan_interval": "60s",
        "rate_limit": {"operations": RATE, "window": "1s"}, "log": {"target": "stderr", "level": "info"}})


def drop_roster(d, name, ids):
    """Write under a dot-name (ignored by the daemon), then rename in; return the rename time."""
    tmp = os.path.join(d, "roster.d", "." + name + ".tmp")
    with open(tmp, "w") as f:
        f.write("users:\n" + "".join(f"  - o365_id: {i}\n    ou: {OU}\n" for i in ids))
    t = time.time()
    os.rename(tmp, os.path.join(d, "roster.d", name))
    return t


class Notify:
    """A datagram socket in the role of systemd's NOTIFY_SOCKET. A thread keeps reading it, so
    the daemon never finds it full, and keeps every message for wait_for()."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            data = self.sock.recv(4096).decode(errors="replace")
            fields = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
            with self.cond:
                self.messages.append(fields)
                self.cond.notify_all()

    def mark(self):
        """A position: wait_for(..., since=mark) looks only at messages that come later."""
        with self.cond:
            return len(self.messages)

    def wait_for(self, pred, timeout, since=0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if any(pred(m) for m in self.messages[since:]):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)

    def wait_idle(self, timeout=600, since=0):
        return self.wait_for(lambda f: f.get("STATUS", "").startswith("idle"), timeout, since)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def first_request_after(sim, t, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        times = [r["t"] for r in sim.state()["requests"] if r["t"] >= t]
        if times:
            return min(times)
        time.sleep(0.05)
    return None


def run(binary, tmp, idle_seconds, n_users, drops):
    with Sim.start(tmp, rate_ops=RATE, rate_window=1) as sim:
        d = tempfile.mkdtemp(dir=tmp)
        config = write_setup(d, sim)
        drop_roster(d, "base.yaml", [str(uuid.uuid4()) for _ in range(n_users)])
        p = subprocess.run([binary, "-c", config, "apply"], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"apply exited {p.returncode}:\n{p.stderr[-3000:]}")

        notify = Notify(os.path.join(d, "notify.sock"))
        env = dict(os.environ, NOTIFY_SOCKET=notify.path)
        env.pop("JOURNAL_STREAM", None)
        with open(os.path.join(d, "daemon.log"), "w") as log:
            daemon = subprocess.Popen([binary, "-c", config, "daemon"], env=env, stdin=subprocess.DEVNULL,
                                      stdout=log, stderr=log)
        try:
            if not notify.wait_for(lambda f: f.get("READY") == "1", 60) or not notify.wait_idle():
                sys.exit("the daemon did not become ready and idle; see its log")
            sim.reset_log()
            cpu0, t0 = cpu_seconds(daemon.pid), time.monotonic()
            time.sleep(idle_seconds)
            cpu1, elapsed = cpu_seconds(daemon.pid), time.monotonic() - t0
            idle_requests = len(sim.state()["requests"])

            latencies = []
            for i in range(drops):
                sim.reset_log()
                t = drop_roster(d, f"drop-{i}.yaml", [str(uuid.uuid4())])
                first = first_request_after(sim, t)
                latencies.append(None if first is None else first - t)
                # The run has started: the next "idle" means it is over, and the next file may come.
                notify.wait_idle(60, notify.mark())
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
    return {"elapsed": elapsed, "cpu": cpu1 - cpu0, "requests": idle_requests, "latencies": latencies}


def main():
    build_dir = os.path.abspath(os.environ.get("BUILD_DIR", os.path.join(TOP, "build/plain")))
    idle_seconds = float(os.environ.get("IDLE_SECONDS", "300"))
    n_users = int(os.environ.get("IDLE_USERS", "1000"))
    drops = int(os.environ.get("IDLE_DROPS", "3"))
    binary = build(build_dir)
    with tempfile.TemporaryDirectory(prefix="idle-bench-") as tmp:
        r = run(binary, tmp, idle_seconds, n_users, drops)
    print(f"daemon idle with a converged roster of {n_users} users, verify off")
    print(f"{'idle s':>7} {'CPU s':>7} {'CPU %':>7} {'API requests':>12}")
    print(f"{r['elapsed']:>7.0f} {r['cpu']:>7.2f} {100 * r['cpu'] / r['elapsed']:>7.3f} {r['requests']:>12}")
    shown = ", ".join("none" if x is None else f"{x:.2f}" for x in r["latencies"])
    print(f"roster file renamed in -> first API request, s (settle_time {SETTLE:g} s): {shown}")
    print(f"targets: no requests and no measurable CPU when idle; latency <= {SETTLE + 1:g} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
