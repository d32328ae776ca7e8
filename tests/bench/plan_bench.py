#!/usr/bin/python3
"""Plan benchmark (tests/bench/README.md): `nimbus-sync plan --json` over a roster of N users
against a state store of N users, for YAML and CSV rosters, with a plain Python baseline doing
the same diff. Prints a table; asserts nothing (a benchmark, not a test).

    tests/bench/plan_bench.py [N ...]          default: 10000 100000 1000000

Environment: BUILD_DIR (default build/plain), BENCH_RUNS (runs of nimbus-sync per case, the
median is shown; default 3), BENCH_NO_BASELINE=1 to skip the Python baseline.

Each case: tests/bench/mkstore writes a store of N created, present users and a roster that
lists all but 1% of them plus 1% new ones, so the plan finds 1% to create and 1% to delete (held
by the deletion safety rules from 25 deletes on, which costs the planner the same). Wall time and
peak RSS come from /usr/bin/time. The Python baseline reads the same roster (csv module or
yaml.CSafeLoader) and store (sqlite3) and diffs with sets; its counts must equal the plan's.
"""

import csv
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
TIME = "/usr/bin/time"
TARGET_SECONDS, TARGET_MB = 3.0, 300

CONFIG = """tenant_id: 9fce70af-a632-49ca-bc0d-53db5a21c5b3
client_id: 0b5b6d1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e
client_secret_file: client-secret
cluster: ch-01
roster_dir: roster.d
state_dir: state
log: {target: stderr}
"""


# --- the Python baseline ------------------------------------------------------------------------

def guid_bytes(text):
    return bytes.fromhex(text.strip().strip("{}").replace("-", ""))


def roster_yaml(path):
    import yaml
    with open(path, "rb") as f:
        doc = yaml.load(f, Loader=yaml.CSafeLoader) or {}
    default = doc.get("ou")
    return {guid_bytes(e["o365_id"]): (e.get("ou") or (None if e.get("template") else default),
                                       e.get("template"))
            for e in doc.get("users") or []}


def roster_csv(path):
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = csv.reader(f)
        header = [h.strip().lower() for h in next(rows)]
        col = {name: header.index(name) for name in ("objectid", "organizationunitid") if name in header}
        return {guid_bytes(r[col["objectid"]]): (r[col["organizationunitid"]], None) for r in rows if r}


def baseline(fmt, roster_path, db_path):
    """Print the plan's counts as JSON: the diff in its plainest form."""
    want = roster_yaml(roster_path) if fmt == "yaml" else roster_csv(roster_path)
    present, managed = set(), set()
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    for uid, origin, presence in con.execute("SELECT id, origin, presence FROM users"):
        if presence == 1:
            present.add(uid)
            if origin in (1, 2, 3):
                managed.add(uid)
    con.close()
    missing = [target for uid, target in want.items() if uid not in present]
    print(json.dumps({"create": sum(1 for ou, _ in missing if ou),
                      "copy": sum(1 for ou, _ in missing if not ou),
                      "delete": len(managed - want.keys())}))


# --- running things ---------------------------------------------------------------------------------

def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def ensure_time():
    if os.access(TIME, os.X_OK):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "time"], env=env)


def build(build_dir):
    """nimbus-sync and mkstore; mkstore by hand when tests/bench is not part of the build."""
    if not os.path.exists(os.path.join(build_dir, "build.ninja")):
        run(["meson", "setup", build_dir], cwd=TOP, stdout=subprocess.DEVNULL)
    run(["ninja", "-C", build_dir, "src/nimbus-sync"], stdout=subprocess.DEVNULL)
    known = subprocess.run(["ninja", "-C", build_dir, "-t", "query", "tests/bench/mkstore"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    if known:
        run(["ninja", "-C", build_dir, "tests/bench/mkstore"], stdout=subprocess.DEVNULL)
        return os.path.join(build_dir, "tests/bench/mkstore")
    run(["ninja", "-C", build_dir, "src/libnimbus.a"], stdout=subprocess.DEVNULL)
    out = os.path.join(build_dir, "bench-mkstore")
    libs = subprocess.run(["pkg-config", "--libs", "libcurl", "libuv", "yaml-0.1", "json-c",
                           "libsystemd", "sqlite3", "openssl"],
                          check=True, capture_output=True, text=True).stdout.split()
    run(["cc", "-O2", "-std=c17", "-D_GNU_SOURCE", "-I" + os.path.join(TOP, "include"),
         os.path.join(HERE, "mkstore.c"), os.path.join(build_dir, "src/libnimbus.a")]
        + libs + ["-lcsv", "-o", out])
    return out


def timed(cmd, stdout, cwd=None):
    """Run cmd under /usr/bin/time; return (exit status, seconds, peak RSS in MB)."""
    with tempfile.NamedTemporaryFile("r") as tf:
        rc = subprocess.run([TIME, "-f", "%e %M", "-o", tf.name] + cmd, stdout=stdout,
                            cwd=cwd).returncode
        seconds, kb = tf.read().split()[-2:]
    return rc, float(seconds), int(kb) / 1024


def case(tools, n, fmt, runs, with_baseline):
    nimbus, mkstore = tools
    with tempfile.TemporaryDirectory(prefix="plan-bench-") as d:
        os.mkdir(os.path.join(d, "state"))
        os.mkdir(os.path.join(d, "roster.d"))
        roster = os.path.join(d, "roster.d", "roster." + fmt)
        expect = json.loads(run([mkstore, "-n", str(n), os.path.join(d, "state"), roster],
                                capture_output=True, text=True).stdout)
        with open(os.path.join(d, "config.yaml"), "w") as f:
            f.write(CONFIG)
        out = os.path.join(d, "plan.json")
        results = []
        for _ in range(runs):
            with open(out, "w") as f:
                rc, secs, mb = timed([nimbus, "-c", os.path.join(d, "config.yaml"), "plan", "--json"], f)
            if rc != 2:
                sys.exit(f"plan exited {rc} for N={n} {fmt} (expected 2: changes)")
            results.append((secs, mb))
        with open(out) as f:
            ch = json.load(f)["changes"]
        got = {"create": ch["create"], "copy": ch["copy"], "delete": ch["delete"] + ch["held"]}
        row = {"n": n, "fmt": fmt, "mb_file": os.path.getsize(roster) / 1e6,
               "secs": statistics.median(r[0] for r in results),
               "rss": statistics.median(r[1] for r in results),
               "ok": got == {"create": expect["create"], "copy": 0, "delete": expect["delete"]}}
        if with_baseline:
            bout = os.path.join(d, "baseline.json")
            with open(bout, "w") as f:
                rc, row["py_secs"], row["py_rss"] = timed(
                    [sys.executable, os.path.abspath(__file__), "--baseline", fmt, roster,
                     os.path.join(d, "state", "state.db")], f)
            with open(bout) as f:
                row["ok"] = row["ok"] and rc == 0 and json.load(f) == got
        return row


def print_row(r):
    line = (f"{r['n']:>9,} {r['fmt']:<5} {r['mb_file']:>8.1f} {r['secs']:>9.2f} {r['rss']:>8.0f}")
    if "py_secs" in r:
        line += f" {r['py_secs']:>9.2f} {r['py_rss']:>8.0f} {r['py_secs'] / max(r['secs'], 0.01):>7.1f}x"
    print(line + ("" if r["ok"] else "  COUNTS DIFFER"), flush=True)


def main(argv):
    if argv[:1] == ["--baseline"]:
        return baseline(*argv[1:4])
    sizes = [int(a) for a in argv] or [10_000, 100_000, 1_000_000]
    build_dir = os.path.abspath(os.environ.get("BUILD_DIR", os.path.join(TOP, "build/plain")))
    runs = int(os.environ.get("BENCH_RUNS", "3"))
    with_baseline = os.environ.get("BENCH_NO_BASELINE") != "1"
    ensure_time()
    mkstore = build(build_dir)
    tools = (os.path.join(build_dir, "src/nimbus-sync"), mkstore)

    print(f"nimbus-sync plan --json: median of {runs} run(s) per case; {os.cpu_count()} CPUs")
    print(f"{'users':>9} {'fmt':<5} {'file MB':>8} {'plan s':>9} {'RSS MB':>8}"
          + (f" {'python s':>9} {'RSS MB':>8} {'speedup':>8}" if with_baseline else ""))
    rows = []
    for n in sizes:
        for fmt in ("yaml", "csv"):
            rows.append(case(tools, n, fmt, runs, with_baseline))
            print_row(rows[-1])
    for r in rows:
        if r["n"] == 1_000_000:
            met = r["secs"] < TARGET_SECONDS and r["rss"] < TARGET_MB
            print(f"target (1M users under {TARGET_SECONDS:g} s and {TARGET_MB} MB), {r['fmt']}: "
                  f"{'met' if met else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
