"""What the Python suites share: ids, the binary under test, a nimbus-sync set-up's config for a
simulator, deep-merging config overrides, and the sanitizer markers every run is checked for.

The integration and daemon suites (and tests/packaging) import it after putting this folder on
sys.path; it is not a conftest.py, so one pytest session can never see two of it.
"""

import copy
import os
import uuid

import pytest

SANITIZER_MARKERS = ("runtime error", "AddressSanitizer", "LeakSanitizer",
                     "UndefinedBehaviorSanitizer")


def scaled(seconds):
    """A wait bound, stretched by $NIMBUS_TEST_TIME_SCALE (tests/valgrind/run.sh sets it: every
    process runs many times slower under memcheck). Bounds only, never sleeps."""
    return seconds * float(os.environ.get("NIMBUS_TEST_TIME_SCALE", "1"))


def guid():
    return str(uuid.uuid4())


def guids(n):
    return [guid() for _ in range(n)]


def deep_merge(base, patch):
    """Deep-merge patch into base; a None value removes the key."""
    for key, value in patch.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def nimbus_binary():
    """The binary under test, from $NIMBUS_SYNC_BIN; fails the test (never skips) without it."""
    path = os.environ.get("NIMBUS_SYNC_BIN")
    if not path:
        pytest.fail("NIMBUS_SYNC_BIN is not set: point it at the built nimbus-sync binary "
                    "(tests/run.sh does this), e.g. NIMBUS_SYNC_BIN=build/plain/src/nimbus-sync",
                    pytrace=False)
    if not os.access(path, os.X_OK):
        pytest.fail(f"NIMBUS_SYNC_BIN={path} is not an executable file", pytrace=False)
    return os.path.abspath(path)


def sim_config(sim, base_dir, tuning, overrides=None):
    """A config for a set-up under base_dir (roster.d, state, client-secret) pointed at sim,
    with the suite's tuning (rate_limit, retry, ...) and then overrides deep-merged in."""
    config = {
        "tenant_id": sim.tenant,
        "client_id": sim.client_id,
        "client_secret_file": str(base_dir / "client-secret"),
        "api_url": sim.url,
        "token_url": sim.token_url,
        "scope": sim.scope,
        "roster_dir": str(base_dir / "roster.d"),
        "state_dir": str(base_dir / "state"),
        "verify": {"interval": 0},
        "log": {"target": "stderr"},
        **copy.deepcopy(tuning),
    }
    return deep_merge(config, overrides or {})


def write_secret(path, secret, mode=0o600):
    """The client secret file, created with its final mode (never readable by others meanwhile)."""
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    os.chmod(path, mode)


class SimSetUp:
    """The files of one nimbus-sync set-up under tmp_path for a simulator: roster.d, state, the
    client secret (mode 0600) and where config.yaml goes. Each suite's class adds how it runs."""

    def __init__(self, binary, tmp_path, sim):
        self.binary = binary
        self.sim = sim
        self.dir = tmp_path
        self.roster_dir = tmp_path / "roster.d"
        self.state_dir = tmp_path / "state"
        self.secret_file = tmp_path / "client-secret"
        self.config_path = tmp_path / "config.yaml"
        self.roster_dir.mkdir()
        self.state_dir.mkdir()
        write_secret(self.secret_file, sim.secret)


def write_sim_setup(base_dir, sim, tuning):
    """A whole set-up under base_dir for a script (the benchmarks): the roster and state folders,
    the secret file and config.yaml (sim_config with tuning); returns the config's path."""
    import yaml

    for sub in ("roster.d", "state"):
        (base_dir / sub).mkdir(parents=True, exist_ok=True)
    write_secret(base_dir / "client-secret", sim.secret)
    path = base_dir / "config.yaml"
    path.write_text(yaml.safe_dump(sim_config(sim, base_dir, tuning), sort_keys=False))
    return str(path)
