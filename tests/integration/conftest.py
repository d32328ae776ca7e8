"""Fixtures of the integration suite: the built nimbus-sync binary against the Nimbus simulator.

Every test gets a fresh simulator (`sim`) and a fresh nimbus-sync set-up (`ns`): a config file,
a client secret file (mode 0600), a roster folder and a state folder, all under the test's
tmp_path. The simulator speaks the dialect the `sim_dialect` fixture returns ({} = defaults);
parametrize it to run a test under several readings of the documentation:

    @pytest.mark.parametrize("sim_dialect", dialect_variants("duplicate_status"))
    def test_adopt(ns, sim): ...

`sim.dialect(**switches)` changes them at run time, `start_sim(**options)` starts another one. `ns.run("apply")` runs the binary with that config and checks, for every run, that the
client secret never appears in its output and that no sanitizer reported anything.

The binary comes from $NIMBUS_SYNC_BIN (tests/run.sh and meson set it); without it every test
fails with a message that says so, instead of being skipped.
"""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "sim"))
sys.path.insert(0, str(REPO / "tests" / "common"))

from nstest import (SANITIZER_MARKERS, SimSetUp, deep_merge, guid, guids,  # noqa: E402,F401
                    nimbus_binary, scaled, sim_config, write_secret)
from simclient import DIALECT_OPTIONS, DIALECTS, Sim  # noqa: E402  (needs the path above)

RUN_TIMEOUT = 120
# Fast tuning for tests; the simulator gets the same rate limit.
DEFAULT_RATE = {"operations": 200, "window": "1s"}
DEFAULT_RETRY = {"base": "50ms", "cap": "1s", "attempts": 8, "timeout": "5s"}


def pytest_configure(config):
    config.addinivalue_line("markers", "sim(**options): options for Sim.start (ous, licenses, "
                                       "token_ttl, seed_users, rate_ops, tls, dialect switches "
                                       "such as duplicate_status=400, ...)")


@pytest.fixture(scope="session")
def nimbus_bin():
    return nimbus_binary()


@pytest.fixture
def sim_dialect():
    """Dialect switches for the `sim` fixture ({} = the defaults). Override it per test with
    @pytest.mark.parametrize("sim_dialect", dialect_variants("duplicate_status")) or
    @pytest.mark.parametrize("sim_dialect", [{"duplicate_status": 400, "field_case": "pascal"}])."""
    return {}


def dialect_variants(*keys):
    """pytest params for sim_dialect: one per non-default value of each switch in KEYS
    (all dialect switches when none is given), plus the defaults ({}); ids like
    "duplicate_status=400"."""
    params = [pytest.param({}, id="default")]
    for key in keys or tuple(DIALECTS):
        choices, default = DIALECTS[key]
        params += [pytest.param({key: v}, id=f"{key}={v}") for v in choices if v != default]
    return params


def _sim_options(request, dialect):
    marker = request.node.get_closest_marker("sim")
    options = dict(marker.kwargs) if marker else {}
    unknown = sorted(set(dialect) - set(DIALECT_OPTIONS))
    if unknown:
        raise TypeError(f"sim_dialect: not dialect switches: {', '.join(unknown)}")
    options.update(dialect)
    options.setdefault("rate_ops", DEFAULT_RATE["operations"])
    options.setdefault("rate_window", 1)
    return options


@pytest.fixture
def sim(request, tmp_path, sim_dialect):
    """A fresh simulator; options from @pytest.mark.sim(...) and the sim_dialect fixture
    (which wins). Rate 200/1s unless overridden."""
    options = _sim_options(request, sim_dialect)
    tls = options.pop("tls", False)
    s = Sim.start(tmp_path, tls=tls, **options)
    yield s
    s.stop()


@pytest.fixture
def start_sim(tmp_path):
    """Factory for further simulators: start_sim(tls=False, **options) -> Sim (options as
    Sim.start, dialect switches included; rate 200/1s unless given), stopped after the test."""
    sims = []

    def _start(tls=False, **options):
        options.setdefault("rate_ops", DEFAULT_RATE["operations"])
        options.setdefault("rate_window", 1)
        sims.append(Sim.start(tmp_path, tls=tls, **options))
        return sims[-1]

    yield _start
    for s in sims:
        s.stop()


class NimbusSync(SimSetUp):
    """One nimbus-sync set-up under tmp_path, pointed at a simulator."""

    def __init__(self, binary, tmp_path, sim):
        super().__init__(binary, tmp_path, sim)
        self.runs = []
        self.configure()

    # --- files -------------------------------------------------------------

    def write_secret(self, secret, mode=0o600):
        write_secret(self.secret_file, secret, mode)

    def base_config(self):
        return sim_config(self.sim, self.dir, {"rate_limit": DEFAULT_RATE, "retry": DEFAULT_RETRY})

    def configure(self, **overrides):
        """(Re)write the config: the defaults deep-merged with overrides (None removes a key)."""
        self.config = deep_merge(self.base_config(), overrides)
        self.write_text(self.config_path, yaml.safe_dump(self.config, sort_keys=False))
        return self.config

    @staticmethod
    def write_text(path, content):
        """Write atomically (temporary dot-file, then rename), as roster writers should."""
        path = Path(path)
        tmp = path.with_name("." + path.name + ".tmp")
        data = content if isinstance(content, bytes) else content.encode()
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return path

    def write_roster(self, users, name="roster.yaml", ou=None):
        """A YAML roster file; users are dicts with o365_id and ou or template (name optional)."""
        doc = {}
        if ou is not None:
            doc["ou"] = ou
        doc["users"] = [dict(u) for u in users]
        return self.write_text(self.roster_dir / name, yaml.safe_dump(doc, sort_keys=False))

    def write_csv(self, rows, name="roster.csv", header=("o365_id", "ou", "template"),
                  delimiter=",", bom=False, crlf=False, quoting=csv.QUOTE_MINIMAL):
        """A CSV roster file; rows are sequences in header order."""
        buf = io.StringIO()
        w = csv.writer(buf, delimiter=delimiter, quoting=quoting,
                       lineterminator="\r\n" if crlf else "\n")
        w.writerow(header)
        w.writerows(rows)
        text = ("\ufeff" if bom else "") + buf.getvalue()
        return self.write_text(self.roster_dir / name, text.encode("utf-8"))

    def clear_roster(self):
        for p in self.roster_dir.iterdir():
            p.unlink()

    # --- running -----------------------------------------------------------

    def argv(self, *args):
        return [self.binary, "-c", str(self.config_path), *map(str, args)]

    def check_output(self, stdout, stderr):
        """What must hold for every run: no secret, no sanitizer report."""
        secret = self.sim.secret
        assert secret not in stdout, "the client secret appeared on stdout"
        assert secret not in stderr, "the client secret appeared on stderr"
        for marker in SANITIZER_MARKERS:
            assert marker not in stderr, f"sanitizer report on stderr:\n{stderr[-6000:]}"

    def run(self, *args, timeout=RUN_TIMEOUT, env=None):
        """Run nimbus-sync with our config; returns the CompletedProcess (text output)."""
        full_env = dict(os.environ, **(env or {}))
        full_env.pop("NIMBUS_SYNC_CONFIG", None)
        full_env.pop("JOURNAL_STREAM", None)
        p = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout,
                           env=full_env, stdin=subprocess.DEVNULL)
        self.runs.append(p)
        self.check_output(p.stdout, p.stderr)
        return p

    def start(self, *args):
        """Start nimbus-sync in the background; finish it with wait()."""
        out = open(self.dir / f"bg-{len(self.runs)}.out", "w+")
        err = open(self.dir / f"bg-{len(self.runs)}.err", "w+")
        env = dict(os.environ)
        env.pop("JOURNAL_STREAM", None)
        proc = subprocess.Popen(self.argv(*args), stdout=out, stderr=err, text=True,
                                stdin=subprocess.DEVNULL, env=env)
        proc.out_file, proc.err_file = out, err
        return proc

    def wait(self, proc, timeout=RUN_TIMEOUT, check_sanitizers=True):
        """Wait for a background run; returns (returncode, stdout, stderr)."""
        rc = proc.wait(timeout=timeout)
        outputs = []
        for f in (proc.out_file, proc.err_file):
            f.seek(0)
            outputs.append(f.read())
            f.close()
        stdout, stderr = outputs
        if check_sanitizers:
            self.check_output(stdout, stderr)
        else:
            assert self.sim.secret not in stdout + stderr
        return rc, stdout, stderr

    def apply_until_converged(self, max_runs=5):
        """Run apply until it exits 0; returns the list of CompletedProcess."""
        runs = []
        for _ in range(max_runs):
            p = self.run("apply")
            runs.append(p)
            assert p.returncode in (0, 2), describe(p)
            if p.returncode == 0:
                return runs
        status = self.run("status")
        raise AssertionError(f"apply did not converge in {max_runs} runs; last:\n"
                             + describe(runs[-1]) + "\n--- status ---\n" + status.stdout)

    # --- reading results ---------------------------------------------------

    def status_json(self):
        p = self.run("status", "--json")
        assert p.returncode == 0, describe(p)
        return json.loads(p.stdout)

    def plan_json(self, *extra):
        p = self.run("plan", "--json", *extra)
        assert p.returncode in (0, 2), describe(p)
        return p.returncode, json.loads(p.stdout)

    @property
    def state_db(self):
        return self.state_dir / "state.db"


def describe(p):
    """A failing run, for assertion messages."""
    return (f"exit {p.returncode}\n--- stdout ---\n{p.stdout[-4000:]}\n"
            f"--- stderr ---\n{p.stderr[-6000:]}")


def api_requests(state, method=None):
    """The simulator's request log entries (API calls only; token requests are not in it)."""
    return [r for r in state["requests"] if method is None or r["method"] == method]


def mutating(state):
    return [r for r in state["requests"] if r["method"] != "GET"]


def sim_ids(state):
    return set(state["users"])


def roster_users(ids, ou):
    return [{"o365_id": i, "ou": ou} for i in ids]


def poll(predicate, timeout, interval=0.02):
    """Wait until predicate() is true; returns its last value (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def kill_hard(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)


@pytest.fixture
def ns(nimbus_bin, tmp_path, sim):
    return NimbusSync(nimbus_bin, tmp_path, sim)
