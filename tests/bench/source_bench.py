#!/usr/bin/python3
"""Directory-source benchmark (nimbus-sync.yaml(5), SOURCES): an Entra group of N members
(default 100,000) served by the simulator's Graph, read and planned by `nimbus-sync plan --json`
(CPU seconds, wall time, peak RSS), then the daemon's resident memory over P polls of the same,
unchanged group (default 50). Prints figures; asserts nothing (a benchmark, not a test).

    tests/bench/source_bench.py [N [POLLS]]

Environment: BUILD_DIR (default build/plain).

The state store comes from mkstore (see plan_bench.py): N users nimbus-sync created. The group
for `plan` lists all but 1 % of them plus 1 % new ones, so the plan finds 1 % to create and 1 % to
delete (held); the group for the daemon lists exactly the stored users, so the daemon has nothing
to do and every poll after the first is a read of an unchanged group: no run, no Nimbus call.
Target: read and planned in under 10 s of CPU; RSS flat from poll to poll.
"""

import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "sim"))
sys.path.insert(0, HERE)

import plan_bench  # noqa: E402  (build(): nimbus-sync and mkstore)
from simclient import Sim  # noqa: E402

BENCH_OU = "3f2a7c4e-0c1d-4a8b-9e61-2d5f8b7a9c10"   # mkstore's OU
CHUNK = 5000                                          # users per control request (1 MB limit)
TARGET_CPU = 10.0


def config(d, sim, group, interval="1s"):
    with open(os.path.join(d, "secret"), "w") as f:
        f.write(sim.secret)
    os.chmod(os.path.join(d, "secret"), 0o600)
    text = json.dumps({
        "tenant_id": sim.tenant, "client_id": sim.client_id, "client_secret_file": "secret",
        "api_url": sim.url, "token_url": sim.token_url, "scope": sim.scope, "graph_url": sim.graph_url,
        "roster_dir": "roster.d", "state_dir": "state", "log": {"target": "stderr", "level": "notice"},
        "verify": {"interval": 0}, "source_interval": interval,
        "sources": [{"entra_group": group, "ou": BENCH_OU}]})
    path = os.path.join(d, "config.yaml")
    with open(path, "w") as f:
        f.write(text)   # JSON is YAML
    return path


def make_store(mkstore, d, n, share):
    """mkstore's store in d/state; returns the ids of its roster (which the group will list)."""
    os.makedirs(os.path.join(d, "state"))
    os.makedirs(os.path.join(d, "roster.d"))
    roster = os.path.join(d, "ids.csv")
    subprocess.run([mkstore, "-n", str(n), "-c", str(share), "-d", str(share), os.path.join(d, "state"),
                    roster], check=True, capture_output=True)
    with open(roster, newline="") as f:
        rows = csv.reader(f)
        header = [h.lower() for h in next(rows)]
        col = header.index("objectid")
        return [r[col] for r in rows if r]


def load_group(sim, group, name, ids):
    for i in range(0, len(ids), CHUNK):
        sim.graph_directory(users=[{"id": u, "displayName": f"User {i + k}",
                                    "userPrincipalName": f"user{i + k}@bench.test",
                                    "accountEnabled": True} for k, u in enumerate(ids[i:i + CHUNK])])
    sim.graph_directory(groups=[{"id": group, "displayName": name, "members": []}])
    for i in range(0, len(ids), CHUNK * 4):
        sim.graph_members(group, add=ids[i:i + CHUNK * 4])


def bench_plan(nimbus, mkstore, sim, n):
    with tempfile.TemporaryDirectory(prefix="source-bench-") as d:
        ids = make_store(mkstore, d, n, 0.01)
        group = str(uuid.uuid4())
        load_group(sim, group, "Plan Bench", ids)
        cfg = config(d, sim, group)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        with tempfile.NamedTemporaryFile("r") as tf:
            p = subprocess.run([plan_bench.TIME, "-f", "%M", "-o", tf.name, nimbus, "-c", cfg, "plan",
                                "--json"], capture_output=True, text=True, cwd=d)
            rss = int(tf.read().split()[-1]) / 1024
        wall = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if p.returncode != 2:
            sys.exit(f"plan exited {p.returncode}:\n{p.stderr[-2000:]}")
        ch = json.loads(p.stdout)["changes"]
        print(f"plan --json over a {len(ids):,}-member group: {cpu:.2f} s CPU, {wall:.2f} s wall "
              f"(the simulator's Python pages included), peak RSS {rss:.0f} MB; "
              f"{ch['create']} to create, {ch['delete'] + ch['held']} to delete or held")
        print(f"target (under {TARGET_CPU:g} s of CPU): {'met' if cpu < TARGET_CPU else 'MISSED'}")


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def bench_polls(nimbus, mkstore, sim, n, polls):
    with tempfile.TemporaryDirectory(prefix="source-bench-") as d:
        ids = make_store(mkstore, d, n, 0.0)
        group = str(uuid.uuid4())
        load_group(sim, group, "Poll Bench", ids)
        cfg = config(d, sim, group)
        per_poll = 1 + (len(ids) + 998) // 999       # the group, then its pages
        base = sim.graph_state()["counts"].get("requests", 0)
        sim.reset_log()
        err = open(os.path.join(d, "daemon.err"), "w+")
        proc = subprocess.Popen([nimbus, "-c", cfg, "daemon"], cwd=d, stderr=err, stdout=err)
        samples, t0 = [], time.monotonic()
        try:
            while len(samples) < polls and proc.poll() is None:
                done = (sim.graph_state()["counts"].get("requests", 0) - base) // per_poll
                if done > len(samples):
                    samples.append((done, rss_mb(proc.pid), time.monotonic() - t0))
                time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
        nimbus_calls = len(sim.state()["requests"])
        print(f"daemon, {polls} polls of an unchanged {len(ids):,}-member group every 1 s: "
              f"{nimbus_calls} Nimbus calls")
        print(f"{'poll':>5} {'RSS MB':>8} {'s':>7}")
        for k, (done, mb, t) in enumerate(samples):
            if k < 3 or k % 10 == 9 or k == len(samples) - 1:
                print(f"{done:>5} {mb:>8.1f} {t:>7.1f}")
        if len(samples) >= 10:
            first = max(mb for _, mb, _ in samples[1:5])
            last = max(mb for _, mb, _ in samples[-5:])
            print(f"RSS after polls 2-5: {first:.1f} MB; after the last 5: {last:.1f} MB "
                  f"({last - first:+.1f} MB)")


def main(argv):
    n = int(argv[0]) if argv else 100_000
    polls = int(argv[1]) if len(argv) > 1 else 50
    build_dir = os.path.abspath(os.environ.get("BUILD_DIR", os.path.join(TOP, "build/plain")))
    plan_bench.ensure_time()
    mkstore = plan_bench.build(build_dir)
    nimbus = os.path.join(build_dir, "src/nimbus-sync")
    with tempfile.TemporaryDirectory(prefix="source-bench-sim-") as simdir:
        sim = Sim.start(simdir, rate_ops=100000)
        try:
            bench_plan(nimbus, mkstore, sim, n)
            bench_polls(nimbus, mkstore, sim, n, polls)
        finally:
            sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
