#!/usr/bin/python3
"""Soak test: `nimbus-sync daemon` against the simulator for N minutes of roster churn and faults.

    tests/soak/soak.py [--minutes N] [--bin PATH] [--seed S] [--keep]

The binary is --bin or $NIMBUS_SYNC_BIN. See tests/soak/README.md for what is checked and why.

The simulator runs on loopback with moderate faults (5 % server errors, 3 % errors after the call
was processed, 2 % connections dropped after processing, 20 ms per call, tokens that live 20 s)
and the rate limit the daemon is configured with (100 operations per 2 s). The daemon verifies
every 30 s. For the duration the script churns three roster files (two YAML, one CSV): every few
seconds one of them is renamed in with users added, removed, re-added, or switched between an OU
and a template. Now and then a file is broken (it must be rejected, then it is replaced), a big
removal trips max_per_run (the held deletes are approved), or a user is deleted behind the
daemon's back in the simulator (the verify sweep must create it again). The daemon's RSS and open
fds are sampled every 5 s.

At the end the churn stops, the script waits (bounded) for the simulator to hold exactly the
roster, stops the daemon with SIGTERM and checks: exact convergence, no user created twice unless
the churn or an out-of-band delete explains it, no user deleted that the churn never removed, the
rate limit never broken, every broken file rejected, memory and fds flat, a clean stop. It prints
one line per minute and a PASS/FAIL line; exit 0 on PASS, 1 on FAIL, 2 on a usage error.
Processes it starts are always stopped, also on Ctrl-C or SIGTERM, and die with it on kill -9.
"""

import argparse
import csv
import ctypes
import functools
import io
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from unittest import mock

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "sim"))

from simclient import Sim, SimError  # noqa: E402  (needs the path above)

RATE_OPS, RATE_WINDOW = 100, 2
FAULTS = {"error_rate": 0.05, "after_error_rate": 0.03, "drop_after_rate": 0.02, "delay_ms": 20}
TOKEN_TTL = 20
MAX_PER_RUN = 10
VERIFY_INTERVAL = 30
SAMPLE_EVERY = 5.0
STEP_MIN, STEP_MAX = 2.0, 5.0          # seconds between roster writes
USERS_PER_FILE = 30                    # at the start
MIN_USERS, MAX_USERS = 60, 150         # the churn keeps the roster between these
REJECT_TIMEOUT = 15                    # settle time + a rescan, with margin
HOLD_TIMEOUT = 20
CONVERGE_TIMEOUT = VERIFY_INTERVAL * 2 + 60
STOP_TIMEOUT = 10                      # nimbus-sync(8), SIGNALS
RSS_GROWTH_MAX, RSS_GROWTH_MB_MAX, FD_DRIFT_MAX = 0.20, 10.0, 3
SANITIZER_MARKERS = ("runtime error", "AddressSanitizer", "LeakSanitizer",
                     "UndefinedBehaviorSanitizer")
SCRUBBED_ENV = ("NIMBUS_SYNC_CONFIG", "JOURNAL_STREAM", "NOTIFY_SOCKET", "WATCHDOG_USEC",
                "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID")
FILES = ("roster-a.yaml", "roster-b.yaml", "roster-c.csv")


class Interrupted(Exception):
    """SIGINT, SIGTERM or SIGHUP to this script: stop everything and exit."""


def on_signal(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def guid():
    return str(uuid.uuid4())


def write_atomic(path, text):
    """Write a dot-file and rename it in, as roster writers should (nimbus-sync(8), ROSTER FOLDER)."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def die_with_parent():
    """preexec_fn: a child gets SIGKILL if this script dies without cleaning up (kill -9)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)       # PR_SET_PDEATHSIG


# --- the roster model ---------------------------------------------------------------------------

class Roster:
    """What the three roster files hold, and the history the final checks need."""

    def __init__(self, rng, ous, templates):
        self.rng = rng
        self.ous = ous
        self.templates = templates          # template id -> its OU
        self.files = {name: {} for name in FILES}   # file -> {id: (kind, target)}
        self.home_ou = {}                   # id -> the OU it lands in, so switches cause no drift
        self.added_at = {}                  # id -> time it was last put in the roster
        self.ever_removed = set()
        self.readded = set()
        self.removed_pool = []              # removed ids, candidates for re-adding

    def all_ids(self):
        return {i for entries in self.files.values() for i in entries}

    def size(self):
        return sum(len(e) for e in self.files.values())

    def new_target(self, uid):
        """A create into an OU (70 %) or a copy of a template (30 %)."""
        if self.rng.random() < 0.3:
            tpl = self.rng.choice(sorted(self.templates))
            self.home_ou[uid] = self.templates[tpl]
            return ("template", tpl)
        ou = self.rng.choice(self.ous)
        self.home_ou[uid] = ou
        return ("ou", ou)

    def add(self, name, uid):
        self.files[name][uid] = self.new_target(uid)
        self.added_at[uid] = time.monotonic()

    def remove(self, name, uid):
        del self.files[name][uid]
        self.ever_removed.add(uid)
        self.removed_pool.append(uid)

    def switch(self, name, uid):
        """ou -> a template of the same OU, or template -> its OU: no API call, no drift."""
        kind, target = self.files[name][uid]
        ou = self.home_ou[uid]
        if kind == "ou":
            same = sorted(t for t, t_ou in self.templates.items() if t_ou == ou)
            if same:
                self.files[name][uid] = ("template", self.rng.choice(same))
        else:
            self.files[name][uid] = ("ou", ou)

    def old_ids(self, name, min_age):
        now = time.monotonic()
        return sorted(i for i in self.files[name] if now - self.added_at[i] >= min_age)

    # --- rendering ---

    def render(self, name):
        entries = self.files[name].items()
        if name.endswith(".csv"):
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(("o365_id", "ou", "template"))
            for uid, (kind, target) in entries:
                ou, template = (target, "") if kind == "ou" else ("", target)
                w.writerow((uid, ou, template))
            return buf.getvalue()
        users = [{"o365_id": uid, kind: target} for uid, (kind, target) in entries]
        return yaml.safe_dump({"users": users}, sort_keys=False)

    def render_broken(self, name):
        """A version of NAME that must be rejected; which way it is broken varies."""
        text = self.render(name)
        if name.endswith(".csv"):
            return text + "not-a-guid," + self.ous[0] + ",\n"
        variant = self.rng.randrange(3)
        if variant == 0:                     # a YAML syntax error
            return text + "  - o365_id: [unclosed\n"
        if variant == 1:                     # both ou and template
            return text + f"  - o365_id: {guid()}\n    ou: {self.ous[0]}\n" \
                          f"    template: {sorted(self.templates)[0]}\n"
        other = next((i for n, e in self.files.items() if n != name for i in e), None)
        if other is None:
            return text + "  - o365_id: not-a-guid\n    ou: " + self.ous[0] + "\n"
        # The same id with another target in two files is an error (nimbus-sync.yaml(5), ROSTER FILES).
        kind, target = self.files[next(n for n, e in self.files.items() if other in e)][other]
        wrong = self.ous[1] if (kind, target) != ("ou", self.ous[1]) else self.ous[0]
        return text + f"  - o365_id: {other}\n    ou: {wrong}\n"


# --- the daemon ---------------------------------------------------------------------------------

class LogTail:
    """The daemon's stderr file, read incrementally; counts the lines the script waits for."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.rejected = 0
        self.held = 0
        self.partial = b""

    def poll(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            if b"roster rejected" in line:
                self.rejected += 1
            if re.search(rb"\d+ deletes held", line):
                self.held += 1

    def text(self):
        return self.path.read_text(errors="replace")


class Daemon:
    def __init__(self, binary, workdir, sim):
        self.binary = binary
        self.sim = sim
        self.dir = workdir
        self.roster_dir = workdir / "roster.d"
        self.config_path = workdir / "config.yaml"
        self.log = LogTail(workdir / "daemon.err")
        self.proc = None
        self.roster_dir.mkdir()
        (workdir / "state").mkdir()
        secret = workdir / "client-secret"
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(sim.secret + "\n")
        write_atomic(self.config_path, yaml.safe_dump(self.config(secret), sort_keys=False))

    def config(self, secret):
        s = self.sim
        return {
            "tenant_id": s.tenant, "client_id": s.client_id, "client_secret_file": str(secret),
            "api_url": s.url, "token_url": s.token_url, "scope": s.scope,
            "roster_dir": str(self.roster_dir), "state_dir": str(self.dir / "state"),
            "settle_time": "1s", "scan_interval": "10s",
            "rate_limit": {"operations": RATE_OPS, "window": f"{RATE_WINDOW}s"},
            # Fast retries, and a short quarantine so an unlucky user cannot stall convergence.
            "retry": {"base": "100ms", "cap": "2s", "attempts": 8, "timeout": "5s",
                      "quarantine": "10s", "failed_retry": "30s"},
            "deletes": {"max_per_run": MAX_PER_RUN, "max_percent": 100},
            "verify": {"interval": f"{VERIFY_INTERVAL}s"},
            "log": {"target": "stderr", "level": "info"},
        }

    @staticmethod
    def env():
        env = dict(os.environ)
        for key in SCRUBBED_ENV:
            env.pop(key, None)
        # An ASan build keeps freed memory in a quarantine of up to 256 MB, which would look like
        # growth here; without it RSS means what it means for a plain build. (Ignored by others.)
        if "quarantine_size_mb" not in env.get("ASAN_OPTIONS", ""):
            env["ASAN_OPTIONS"] = ":".join(filter(None, (env.get("ASAN_OPTIONS"),
                                                         "quarantine_size_mb=0")))
        return env

    def start(self):
        with open(self.log.path, "wb") as err:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.config_path), "daemon"],
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         env=self.env(), preexec_fn=die_with_parent)
        deadline = time.monotonic() + 30
        while not re.search(r"^nimbus-sync \S+ started", self.log.text(), re.M):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the daemon did not start:\n" + self.log.text()[-4000:])
            time.sleep(0.1)

    def run(self, *args):
        """A one-shot command with the same config (approve-deletes, status)."""
        return subprocess.run([self.binary, "-c", str(self.config_path), *args], env=self.env(),
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM; returns (exit code or None if it had to be killed, seconds)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            rc = None
        return rc, time.monotonic() - t0

    def kill(self):
        if self.alive():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()


def sample(pid):
    """(RSS in kB, open fds, CPU seconds) of a running process."""
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, fds, cpu


# --- the churn ----------------------------------------------------------------------------------

class Churn:
    """Writes new roster versions and provokes the rare events; one step at a time.

    A step that must be answered by the daemon (a broken file must be rejected, a big removal
    must be held) leaves a pending check; no new step starts until it is settled, so samples
    keep their pace while the script waits."""

    def __init__(self, rng, roster, daemon, sim):
        self.rng, self.roster, self.daemon, self.sim = rng, roster, daemon, sim
        self.pending = None
        self.counts = {"writes": 0, "broken": 0, "rejected": 0, "not_rejected": 0,
                       "big_removals": 0, "held_approved": 0, "hold_not_seen": 0,
                       "unexpected_holds": 0, "oob": 0, "readded": 0}
        self.oob = set()
        self.failures = []
        self.held_seen = 0          # the log's held count already dealt with

    def write(self, name):
        write_atomic(self.daemon.roster_dir / name, self.roster.render(name))
        self.counts["writes"] += 1

    def step(self):
        r = self.rng.random()
        if r < 0.10:
            self.break_file()
        elif r < 0.16:
            self.big_removal()
        elif r < 0.24:
            self.delete_out_of_band()
        else:
            self.churn(self.rng.choice(FILES))

    def churn(self, name):
        """Add 1-4 users (sometimes a removed one again), remove 0-3, switch 0-2 targets."""
        ro = self.roster
        entries = ro.files[name]
        n_add = self.rng.randint(1, 4) if ro.size() < MAX_USERS else 0
        n_del = self.rng.randint(0, 3) if ro.size() > MIN_USERS else 0
        for uid in self.rng.sample(sorted(entries), min(n_del, len(entries))):
            ro.remove(name, uid)
        in_roster = ro.all_ids()
        for _ in range(n_add):
            back = [i for i in ro.removed_pool if i not in in_roster]
            if back and self.rng.random() < 0.15:
                uid = self.rng.choice(back)
                ro.readded.add(uid)
                self.counts["readded"] += 1
            else:
                uid = guid()
            ro.add(name, uid)
            in_roster.add(uid)
        for uid in self.rng.sample(sorted(entries), min(self.rng.randint(0, 2), len(entries))):
            ro.switch(name, uid)
        self.write(name)

    def break_file(self):
        name = self.rng.choice(FILES)
        write_atomic(self.daemon.roster_dir / name, self.roster.render_broken(name))
        self.counts["broken"] += 1
        self.pending = {"kind": "rejected", "file": name, "mark": self.daemon.log.rejected,
                        "deadline": time.monotonic() + REJECT_TIMEOUT}

    def big_removal(self):
        """More deletes than max_per_run in one file write: they must be held, then approved.
        Only users added a while ago, so that they are created by now and really are deletes."""
        name = max(FILES, key=lambda n: len(self.roster.files[n]))
        victims = self.roster.old_ids(name, 20)
        if len(victims) < MAX_PER_RUN + 2 or self.roster.size() - MAX_PER_RUN - 2 < MIN_USERS // 2:
            self.churn(name)
            return
        deleted = self.sim.state()["deleted_ok"]     # a re-added victim may have been before
        victims = {v: deleted.get(v, 0) for v in self.rng.sample(victims, MAX_PER_RUN + 2)}
        for uid in victims:
            self.roster.remove(name, uid)
        self.write(name)
        self.counts["big_removals"] += 1
        now = time.monotonic()
        self.pending = {"kind": "held", "victims": victims, "mark": self.daemon.log.held,
                        "next_try": now + 2, "deadline": now + HOLD_TIMEOUT}

    def delete_out_of_band(self):
        """Delete a user in the simulator behind the daemon's back: the verify sweep must
        notice the 404 and create it again."""
        candidates = sorted(i for n in FILES for i in self.roster.old_ids(n, 15))
        if not candidates:
            return
        uid = self.rng.choice(candidates)
        try:
            self.sim.remove_user(uid)
        except SimError:
            return                      # not created (yet): nothing happened
        self.oob.add(uid)
        self.counts["oob"] += 1

    # --- pending checks ---

    def settle_pending(self, final=False):
        """Advance the pending check; returns True when nothing is pending any more."""
        self.daemon.log.poll()
        if self.pending is None:
            self.approve_unexpected_holds()
            return True
        done = self.check_rejected(final) if self.pending["kind"] == "rejected" else \
            self.check_held()
        if done:
            self.pending = None
        return done

    def check_rejected(self, final):
        p, log = self.pending, self.daemon.log
        seen = log.rejected > p["mark"]
        if not seen and time.monotonic() < p["deadline"]:
            return False
        self.counts["rejected" if seen else "not_rejected"] += 1
        if not seen:
            self.failures.append(f"broken {p['file']} was not rejected within {REJECT_TIMEOUT} s")
        # Replace it with a valid version: at the end exactly the model, else one more churn step.
        if final:
            self.write(p["file"])
        else:
            self.churn(p["file"])
        return True

    def check_held(self):
        """approve-deletes as soon as the hold is logged, or every 2 s in case the log line was
        deduplicated (the daemon logs held counts only when they change)."""
        p, log, now = self.pending, self.daemon.log, time.monotonic()
        if log.held > p["mark"]:
            p["mark"], p["next_try"] = log.held, now
        if now >= p["next_try"]:
            p["next_try"] = now + 2
            if self.daemon.run("approve-deletes").returncode == 0:
                self.counts["held_approved"] += 1
                self.held_seen = log.held
                return True
        if now > p["deadline"]:
            self.hold_not_seen(p["victims"])
            return True
        return False

    def hold_not_seen(self, victims):
        """No hold within the timeout: fine if the deletes did not happen either (the plan may
        have counted fewer); a product bug if more than max_per_run went without approval."""
        deleted = self.sim.state()["deleted_ok"]
        gone = [v for v, before in victims.items() if deleted.get(v, 0) > before]
        if len(gone) > MAX_PER_RUN:
            self.failures.append(f"{len(gone)} users deleted in one go without approval "
                                 f"(max_per_run {MAX_PER_RUN})")
        self.counts["hold_not_seen"] += 1

    def approve_unexpected_holds(self):
        """Deletes that piled up (retries of failed deletes joining new ones) can be held too."""
        if self.daemon.log.held > self.held_seen:
            self.held_seen = self.daemon.log.held
            if self.daemon.run("approve-deletes").returncode == 0:
                self.counts["unexpected_holds"] += 1


# --- the run ------------------------------------------------------------------------------------

def median(values):
    return statistics.median(values) if values else 0


def flatness(samples):
    """Medians of RSS and fds over the second and the last quarter of the samples: the first
    quarter is warm-up (caches, the store, TLS and HTTP connections)."""
    n = len(samples)
    q2 = samples[n // 4:n // 2] or samples[:1]
    q4 = samples[3 * n // 4:] or samples[-1:]
    return (median([s[1] for s in q2]), median([s[1] for s in q4]),
            median([s[2] for s in q2]), median([s[2] for s in q4]))


def print_row(t0, samples, roster, churn, sim_requests):
    t, rss, fds, cpu = samples[-1]
    c = churn.counts
    print(f"{(t - t0) / 60:6.1f} {rss / 1024:8.1f} {fds:4d} {cpu:7.1f} {roster.size():6d} "
          f"{c['writes']:6d} {c['broken']:6d} {c['oob']:4d} {c['held_approved']:5d} "
          f"{sim_requests:8d}", flush=True)


def run_churn(args, rng, roster, daemon, sim, churn):
    """The churn phase; returns the samples [(t, rss kB, fds, cpu s)]."""
    samples = []
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    next_sample, next_step, next_row = t0, t0 + rng.uniform(STEP_MIN, STEP_MAX), t0
    print("   min   RSS MB  fds  CPU s  users writes broken  oob holds requests", flush=True)
    while time.monotonic() < end:
        if not daemon.alive():
            raise RuntimeError(f"the daemon exited ({daemon.proc.returncode}) during the soak:\n"
                               + daemon.log.text()[-4000:])
        now = time.monotonic()
        if now >= next_sample:
            samples.append((now, *sample(daemon.proc.pid)))
            next_sample += SAMPLE_EVERY
        if now >= next_row:
            print_row(t0, samples, roster, churn, len(sim.state()["requests"]))
            next_row += 60
        if churn.settle_pending() and now >= next_step:
            churn.step()
            next_step = time.monotonic() + rng.uniform(STEP_MIN, STEP_MAX)
        time.sleep(0.2)
    samples.append((time.monotonic(), *sample(daemon.proc.pid)))
    print_row(t0, samples, roster, churn, len(sim.state()["requests"]))
    return samples


def converge(daemon, sim, churn, expected):
    """Finish any pending check, then wait until the simulator holds exactly `expected`."""
    t0 = time.monotonic()
    deadline = t0 + CONVERGE_TIMEOUT
    while not churn.settle_pending(final=True) and time.monotonic() < deadline:
        time.sleep(0.5)
    last_approve = 0
    while time.monotonic() < deadline:
        if set(sim.state()["users"]) == expected:
            return True, time.monotonic() - t0
        if not daemon.alive():
            return False, 0
        if time.monotonic() - last_approve > 5:      # the last writes may have piled up deletes
            churn.approve_unexpected_holds()
            last_approve = time.monotonic()
        time.sleep(1)
    return False, CONVERGE_TIMEOUT


def check(result, roster, churn, templates, samples, state):
    """Every end-of-run check; returns the list of failures."""
    failures = list(churn.failures)
    expected = roster.all_ids() | set(templates)
    have = set(state["users"])
    if have != expected:
        failures.append(f"the simulator does not hold the roster: {len(expected - have)} missing, "
                        f"{len(have - expected)} extra")
    allowed = churn.oob | roster.readded
    twice = {i: n for i, n in state["created_ok"].items() if n > 1 and i not in allowed}
    if twice:
        failures.append(f"{len(twice)} users created more than once without cause: "
                        f"{sorted(twice)[:5]}")
    unintended = set(state["deleted_ok"]) - roster.ever_removed
    if unintended:
        failures.append(f"{len(unintended)} users deleted that the churn never removed: "
                        f"{sorted(unintended)[:5]}")
    if state["over_limit"] != 0 or state["max_in_window"] > RATE_OPS:
        failures.append(f"rate limit broken: over_limit {state['over_limit']}, max_in_window "
                        f"{state['max_in_window']} > {RATE_OPS}")
    rss2, rss4, fd2, fd4 = flatness(samples)
    growth = (rss4 - rss2) / rss2 if rss2 else 0
    if growth >= RSS_GROWTH_MAX or (rss4 - rss2) / 1024 >= RSS_GROWTH_MB_MAX:
        failures.append(f"RSS grew {growth * 100:.1f} % ({(rss4 - rss2) / 1024:.1f} MB)")
    if abs(fd4 - fd2) > FD_DRIFT_MAX:
        failures.append(f"open fds went from {fd2:g} to {fd4:g}")
    rc, stop_s, log = result
    if rc != 0:
        failures.append(f"SIGTERM: exit {rc} within {STOP_TIMEOUT} s (None = had to be killed)")
    for marker in SANITIZER_MARKERS:
        if marker in log:
            failures.append(f"'{marker}' in the daemon's log")
    return failures, (rss2, rss4, growth, fd2, fd4)


def summary(args, churn, state, figures, converge_s, stop):
    rss2, rss4, growth, fd2, fd4 = figures
    c = churn.counts
    return (f"{args.minutes:g} min, {c['writes']} roster writes, {c['broken']} broken "
            f"({c['rejected']} rejected), {c['big_removals']} big removals "
            f"({c['held_approved']} held+approved, {c['hold_not_seen']} not held, "
            f"{c['unexpected_holds']} other holds approved), {c['oob']} out-of-band deletes, "
            f"{c['readded']} re-adds; sim: {len(state['requests'])} API requests, "
            f"{sum(state['created_ok'].values())} creates/copies, "
            f"{sum(state['deleted_ok'].values())} deletes, max {state['max_in_window']}/{RATE_OPS} "
            f"in {RATE_WINDOW} s, over_limit {state['over_limit']}; converged in "
            f"{converge_s:.0f} s; RSS {rss2 / 1024:.1f} -> {rss4 / 1024:.1f} MB "
            f"({growth * 100:+.1f} %), fds {fd2:g} -> {fd4:g}; SIGTERM exit {stop[0]} in "
            f"{stop[1]:.2f} s")


def soak(args, workdir):
    rng = random.Random(args.seed)
    ous = [guid(), guid()]
    templates = {guid(): ous[0], guid(): ous[0], guid(): ous[1]}
    # simclient spawns the simulator itself; it too must die with this script.
    with mock.patch.object(subprocess, "Popen",
                           functools.partial(subprocess.Popen, preexec_fn=die_with_parent)):
        sim = Sim.start(workdir, rate_ops=RATE_OPS, rate_window=RATE_WINDOW,
                        token_ttl=TOKEN_TTL, seed=args.seed,
                        seed_users=[(t, ou, "SkillBased") for t, ou in templates.items()])
    daemon = None
    try:
        sim.config(**FAULTS)
        roster = Roster(rng, ous, templates)
        daemon = Daemon(args.bin, workdir, sim)
        for name in FILES:
            for _ in range(USERS_PER_FILE):
                roster.add(name, guid())
            write_atomic(daemon.roster_dir / name, roster.render(name))
        daemon.start()
        churn = Churn(rng, roster, daemon, sim)
        samples = run_churn(args, rng, roster, daemon, sim, churn)
        ok, converge_s = converge(daemon, sim, churn, roster.all_ids() | set(templates))
        if not ok:
            churn.failures.append(f"no convergence within {CONVERGE_TIMEOUT} s")
        stop = daemon.stop() if daemon.alive() else (daemon.proc.returncode, 0.0)
        daemon.kill()
        state = sim.state()
        failures, figures = check((*stop, daemon.log.text()), roster, churn, templates,
                                  samples, state)
        line = summary(args, churn, state, figures, converge_s, stop)
        for f in failures:
            print("  - " + f)
        if failures:
            print("--- daemon log (tail) ---\n" + daemon.log.text()[-3000:])
        print(("FAIL: " if failures else "PASS: ") + line, flush=True)
        return not failures
    finally:
        if daemon is not None:
            daemon.kill()
        sim.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--bin", default=os.environ.get("NIMBUS_SYNC_BIN"),
                   help="the nimbus-sync binary (default: $NIMBUS_SYNC_BIN)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--keep", action="store_true", help="keep the work folder even on PASS")
    args = p.parse_args()
    if not args.bin or not os.access(args.bin, os.X_OK):
        p.error("give the nimbus-sync binary with --bin or $NIMBUS_SYNC_BIN")
    if args.minutes <= 0:
        p.error("--minutes must be > 0")
    args.bin = os.path.abspath(args.bin)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2 ** 31)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    workdir = Path(tempfile.mkdtemp(prefix="nimbus-soak-"))
    print(f"soak: {args.minutes:g} min, seed {args.seed}, binary {args.bin}, work folder {workdir}",
          flush=True)
    ok = False
    try:
        ok = soak(args, workdir)
    except Interrupted as e:
        print(f"FAIL: interrupted by {e}", flush=True)
    except (RuntimeError, SimError, OSError, subprocess.SubprocessError) as e:
        print(f"FAIL: {e}", flush=True)
    if ok and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"work folder kept: {workdir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
