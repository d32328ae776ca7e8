"""Fixtures of the daemon suite: `nimbus-sync daemon` run in the background against the simulator.

Every test gets a fresh simulator (`sim`) and a fresh daemon set-up (`daemon`): a config file, a
client secret file (mode 0600), a roster folder and a state folder under the test's tmp_path. The
config is tuned for tests (settle 500 ms, rescan every 3 s, fast retries, 200 requests a second in
both the daemon and the simulator, verify off, logs on stderr).

`daemon.start()` runs the binary in the background with its stderr in a file of its own;
`daemon.stop()` sends SIGTERM and checks the clean-stop contract (exit 0 within 10 s) and, for
every process that was not killed, that no sanitizer reported anything. The client secret must
never appear in any output. Waiting is always polling with a bounded timeout.

The binary comes from $NIMBUS_SYNC_BIN (tests/run.sh sets it); without it every test fails with
a message that says so, instead of being skipped. Helpers live here so the test files stay short;
test modules import them as `from .conftest import ...` (this folder is a package).
"""

import json
import os
import re
import signal
import sqlite3
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
                    nimbus_binary, sim_config)
from simclient import Sim  # noqa: E402  (needs the path above)

SETTLE = 0.5             # settle_time of the test config, in seconds
SCAN = 3                 # scan_interval
STOP_TIMEOUT = 10        # nimbus-sync(8), SIGNALS: SIGTERM stops cleanly within 10 s
RATE = {"operations": 200, "window": "1s"}
RETRY = {"base": "50ms", "cap": "1s", "timeout": "5s"}
# Variables a CI runner under systemd may carry, which would change what the daemon does.
SCRUBBED_ENV = ("NIMBUS_SYNC_CONFIG", "JOURNAL_STREAM", "NOTIFY_SOCKET", "WATCHDOG_USEC",
                "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID")


def pytest_configure(config):
    config.addinivalue_line("markers", "sim(**options): options for Sim.start (ous, licenses, "
                                       "token_ttl, seed_users, rate_ops, ...)")


# --- waiting -----------------------------------------------------------------------------------

def poll(predicate, timeout, interval=0.05):
    """Call predicate until it returns something true or timeout seconds pass; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def wait_for(predicate, timeout, what):
    """poll(), failing the test with `what` (a string or a callable giving one) on timeout."""
    value = poll(predicate, timeout)
    if not value:
        detail = what() if callable(what) else what
        raise AssertionError(f"timed out after {timeout} s waiting for {detail}")
    return value


# --- simulator helpers -------------------------------------------------------------------------

def sim_ids(sim):
    return set(sim.state()["users"])


def mutations(state):
    return [r for r in state["requests"] if r["method"] != "GET"]


def wait_users(sim, ids, timeout, daemon=None):
    """Wait until the simulator holds exactly ids."""
    want = set(ids)

    def detail():
        have = sim_ids(sim)
        text = f"the simulator to hold exactly {len(want)} users: {len(want - have)} missing, " \
               f"{len(have - want)} extra"
        return text + ("\n--- daemon log ---\n" + daemon.log()[-4000:] if daemon else "")

    return wait_for(lambda: sim_ids(sim) == want, timeout, detail)


def integrity(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


# --- files -------------------------------------------------------------------------------------

def write_atomic(path, content):
    """Write path as roster writers should: a `*.tmp` file first, then rename it in."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(content if isinstance(content, bytes) else content.encode())
    os.replace(tmp, path)
    return path


def roster_text(users, ou=None):
    """A YAML roster; users are dicts with o365_id and ou or template."""
    doc = {} if ou is None else {"ou": ou}
    doc["users"] = [dict(u) for u in users]
    return yaml.safe_dump(doc, sort_keys=False)


def creates(ids, ou):
    return [{"o365_id": i, "ou": ou} for i in ids]


# --- the daemon --------------------------------------------------------------------------------

class Daemon(SimSetUp):
    """One nimbus-sync set-up under tmp_path, run as a daemon against a simulator."""

    def __init__(self, binary, tmp_path, sim):
        super().__init__(binary, tmp_path, sim)
        self.proc = None
        self.err_path = None
        self.starts = 0
        self.outputs = []        # stderr of every process started, for the secret check
        self.configure()

    # --- files ---

    def base_config(self):
        return sim_config(self.sim, self.dir, {"settle_time": f"{int(SETTLE * 1000)}ms",
                                               "scan_interval": f"{SCAN}s", "rate_limit": RATE,
                                               "retry": RETRY})

    def configure(self, **overrides):
        """(Re)write the config: the defaults deep-merged with overrides (None removes a key)."""
        self.config = deep_merge(self.base_config(), overrides)
        write_atomic(self.config_path, yaml.safe_dump(self.config, sort_keys=False))
        return self.config

    def write_roster(self, users, name="roster.yaml", ou=None):
        return write_atomic(self.roster_dir / name, roster_text(users, ou))

    @property
    def state_db(self):
        return self.state_dir / "state.db"

    # --- processes ---

    def env(self, extra=None):
        env = dict(os.environ)
        for key in SCRUBBED_ENV:
            env.pop(key, None)
        env.update(extra or {})
        return env

    def argv(self, *args):
        return [self.binary, "-c", str(self.config_path), *map(str, args)]

    def start(self, env=None, watchdog_pid=False):
        """Start `nimbus-sync daemon`; wait_ready() waits for its start line.

        watchdog_pid: run it through `sh -c 'export WATCHDOG_PID=$$; exec ...'`, so
        WATCHDOG_PID names the daemon itself, as systemd would set it."""
        assert self.proc is None or self.proc.poll() is not None, "a daemon is already running"
        self.starts += 1
        self.err_path = self.dir / f"daemon-{self.starts}.err"
        argv = self.argv("daemon")
        if watchdog_pid:
            argv = ["sh", "-c", 'export WATCHDOG_PID=$$; exec "$0" "$@"', *argv]
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         env=self.env(env))
        self.started_at = time.monotonic()
        return self.proc

    def log(self):
        if self.err_path is None or not self.err_path.exists():
            return ""
        return self.err_path.read_text(errors="replace")

    def mark(self):
        """The current length of the log: wait_log(after=mark) looks only at what follows."""
        return len(self.log())

    def wait_log(self, pattern, timeout=10, after=0):
        """Wait until the current process's log matches pattern (a regex) after offset `after`."""
        rx = re.compile(pattern, re.M)

        def found():
            m = rx.search(self.log(), after)
            if m is None and self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited ({self.proc.returncode}) while waiting "
                                     f"for /{pattern}/:\n{self.log()[-4000:]}")
            return m

        return wait_for(found, timeout, lambda: f"/{pattern}/ in the daemon log:\n"
                                                f"{self.log()[after:][-4000:]}")

    def wait_ready(self, timeout=10):
        return self.wait_log(r"^nimbus-sync \S+ started", timeout)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def _collect(self, check_sanitizers):
        text = self.log()
        self.outputs.append(text)
        assert self.sim.secret not in text, "the client secret appeared in the daemon's output"
        if check_sanitizers:
            for marker in SANITIZER_MARKERS:
                assert marker not in text, f"sanitizer report:\n{text[-6000:]}"
        return text

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM; returns (exit code, seconds to exit, log). Fails if it outlives timeout."""
        proc = self.proc
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"the daemon did not stop within {timeout} s of SIGTERM:\n"
                                 f"{self.log()[-4000:]}")
        elapsed = time.monotonic() - t0
        return rc, elapsed, self._collect(check_sanitizers=True)

    def stop_clean(self):
        """stop() and assert the clean-stop contract: exit 0, nothing reported. Waits for the
        start line first: a SIGTERM before the handlers are installed just kills."""
        self.wait_ready()
        rc, elapsed, text = self.stop()
        assert rc == 0, f"exit {rc} after SIGTERM:\n{text[-4000:]}"
        return elapsed

    def kill(self):
        """SIGKILL (a killed sanitizer build reports nothing, so no check but the secret)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._collect(check_sanitizers=False)

    def run(self, *args, timeout=60, env=None):
        """A one-shot command (status, approve-deletes, ...) with the same config."""
        p = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, env=self.env(env))
        for out in (p.stdout, p.stderr):
            assert self.sim.secret not in out, f"the client secret appeared in `{args}` output"
            for marker in SANITIZER_MARKERS:
                assert marker not in out, f"sanitizer report from `{args}`:\n{out[-6000:]}"
        return p

    def status_json(self):
        p = self.run("status", "--json")
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def nimbus_bin():
    return nimbus_binary()


@pytest.fixture
def sim(request, tmp_path):
    """A fresh simulator; options from @pytest.mark.sim(...). Rate 200/1s unless overridden."""
    marker = request.node.get_closest_marker("sim")
    options = dict(marker.kwargs) if marker else {}
    options.setdefault("rate_ops", RATE["operations"])
    options.setdefault("rate_window", 1)
    s = Sim.start(tmp_path, **options)
    yield s
    s.stop()


@pytest.fixture
def daemon(nimbus_bin, tmp_path, sim):
    d = Daemon(nimbus_bin, tmp_path, sim)
    yield d
    d.close()
