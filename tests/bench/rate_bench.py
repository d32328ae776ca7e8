#!/usr/bin/python3
"""Rate benchmark (nimbus-sync.yaml(5), RATE LIMIT, and tests/bench/README.md): how close K operations come to the least time
the sliding window allows, and whether any window ever held more than the limit. Runs the built
nimbus-sync against the bundled simulator (tests/sim) on loopback, with the window scaled down
so that a run takes seconds, not minutes. Prints a table; asserts nothing.

    tests/bench/rate_bench.py

Environment: BUILD_DIR (default build/plain), RATE_K (operations, default 600), RATE_OPS
(default 60) and RATE_WINDOW (seconds, default 10): the limit, set alike in the config and in
the simulator, which answers 429 to any request over it.

Scenarios: one `apply` of K creates; two `apply` processes back to back, K/2 creates each (the
second must respect the window the first left behind, nimbus-sync.yaml(5), RATE LIMIT). Figures, from the
simulator's request log:
  span         first to last request arrival
  least        the least span the window allows for K operations: (ceil(K / ops) - 1) * window
  ratio        span / least; the target is at most 1.02
  max/window   the most requests that arrived within any one window; must not exceed ops
  429          requests the simulator refused for the rate
  req/change   requests per converged change (1.00 = no request wasted)
"""

import math
import os
import subprocess
import sys
import tempfile
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


def build(build_dir):
    if not os.path.exists(os.path.join(build_dir, "build.ninja")):
        subprocess.run(["meson", "setup", build_dir], cwd=TOP, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["ninja", "-C", build_dir, "src/nimbus-sync"], check=True, stdout=subprocess.DEVNULL)
    return os.path.join(build_dir, "src/nimbus-sync")


def write_setup(d, sim, ops, window):
    return write_sim_setup(Path(d), sim, {"rate_limit": {"operations": ops, "window": f"{window}s"},
                                          "log": {"target": "stderr", "level": "warning"}})


def write_roster(d, ids):
    """Written under a dot-name and renamed in, as roster writers should."""
    path = os.path.join(d, "roster.d", "users.yaml")
    with open(path + ".tmp", "w") as f:
        f.write("users:\n")
        for i in ids:
            f.write(f"  - o365_id: {i}\n    ou: {OU}\n")
    os.rename(path + ".tmp", path)


def apply(binary, config):
    p = subprocess.run([binary, "-c", config, "apply"], capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        sys.exit(f"apply exited {p.returncode}:\n{p.stderr[-3000:]}")


def scenario(binary, tmp, batches, ops, window):
    """Apply the batches (lists of new ids) one process after another; return the figures."""
    with Sim.start(tmp, rate_ops=ops, rate_window=window) as sim:
        d = tempfile.mkdtemp(dir=tmp)
        config = write_setup(d, sim, ops, window)
        wanted = []
        sim.reset_log()
        t0 = time.monotonic()
        for batch in batches:
            wanted += batch
            write_roster(d, wanted)
            apply(binary, config)
        wall = time.monotonic() - t0
        st = sim.state()
    arrivals = sorted(r["mono"] for r in st["requests"])
    k = len(wanted)
    least = (math.ceil(k / ops) - 1) * window
    span = arrivals[-1] - arrivals[0] if arrivals else 0.0
    return {
        "k": k, "wall": wall, "span": span, "least": least,
        "ratio": span / least if least > 0 else float("nan"),
        "max_in_window": st["max_in_window"], "limit": ops,
        "refused": sum(1 for r in st["requests"] if r["status"] == 429),
        "requests": len(arrivals), "changes": len(st["created_ok"]),
        "converged": sorted(st["created_ok"]) == sorted(wanted),
    }


def main():
    build_dir = os.path.abspath(os.environ.get("BUILD_DIR", os.path.join(TOP, "build/plain")))
    k = int(os.environ.get("RATE_K", "600"))
    ops = int(os.environ.get("RATE_OPS", "60"))
    window = float(os.environ.get("RATE_WINDOW", "10"))
    binary = build(build_dir)
    ids = [str(uuid.uuid4()) for _ in range(k)]

    print(f"{k} creates against the simulator, limit {ops} requests per {window:g} s window")
    print(f"{'scenario':<28} {'wall s':>7} {'span s':>7} {'least s':>7} {'ratio':>6} "
          f"{'max/window':>10} {'429':>4} {'req/change':>10}")
    with tempfile.TemporaryDirectory(prefix="rate-bench-") as tmp:
        for name, batches in ((f"one apply, {k}", [ids]),
                              (f"two applies, {k // 2} + {k - k // 2}", [ids[:k // 2], ids[k // 2:]])):
            r = scenario(binary, tmp, batches, ops, window)
            note = "" if r["converged"] else "  NOT CONVERGED"
            if r["max_in_window"] > r["limit"]:
                note += "  OVER THE LIMIT"
            print(f"{name:<28} {r['wall']:>7.2f} {r['span']:>7.2f} {r['least']:>7.2f} {r['ratio']:>6.3f} "
                  f"{r['max_in_window']:>6}/{r['limit']:<3} {r['refused']:>4} "
                  f"{r['requests'] / max(r['changes'], 1):>10.3f}{note}", flush=True)
    print("targets: ratio <= 1.02, max/window <= limit, no 429")
    return 0


if __name__ == "__main__":
    sys.exit(main())
