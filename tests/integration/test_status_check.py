"""`status --check` and `status --all` (nimbus-sync(8), MONITORING and MANY TENANTS): each exit
code of the check from a state store that apply or the daemon really left behind, the one-line
output monitoring systems read, and the summary of every instance configured in one folder."""

import copy
import os
import re
import shutil
import signal
import subprocess

import pytest
import yaml

from conftest import describe, guid, guids, poll, roster_users, scaled

OU = guid()
OU_OTHER = guid()
CHECK_LINE = re.compile(r"NIMBUS-SYNC (OK|WARNING|CRITICAL) - (.*) \| users=(\d+) pending=(\d+) "
                        r"held=(\d+) failed=(\d+) quarantined=(\d+)")


def check(ns):
    """Runs status --check; returns (exit code, level word, text, perfdata dict)."""
    p = ns.run("status", "--check")
    lines = p.stdout.splitlines()
    assert len(lines) == 1, describe(p)
    m = CHECK_LINE.fullmatch(lines[0])
    assert m, describe(p)
    perf = dict(zip(("users", "pending", "held", "failed", "quarantined"), map(int, m.groups()[2:])))
    assert p.returncode == {"OK": 0, "WARNING": 1, "CRITICAL": 2}[m.group(1)], describe(p)
    return p.returncode, m.group(1), m.group(2), perf


# --- status --check: the three levels ------------------------------------------------------------

def test_ok_after_a_converged_apply(ns, sim):
    ns.write_roster(roster_users(guids(4), OU))
    assert ns.run("apply").returncode == 0
    code, level, text, perf = check(ns)
    assert (code, level) == (0, "OK")
    assert text.startswith("nimbus-sync: 4 users, 0 pending, daemon not running, last run ")
    assert text.endswith(" ok")
    assert perf == {"users": 4, "pending": 0, "held": 0, "failed": 0, "quarantined": 0}


def test_warning_before_the_first_run(ns, sim):
    code, level, text, _ = check(ns)
    assert (code, level) == (1, "WARNING") and "has not run" in text


def test_warning_on_held_deletes(ns, sim):
    ids = guids(10)
    ns.configure(deletes={"max_per_run": 2})
    ns.write_roster(roster_users(ids, OU))
    assert ns.run("apply").returncode == 0
    ns.write_roster(roster_users(ids[:5], OU))
    assert ns.run("apply").returncode == 2

    code, level, text, perf = check(ns)
    assert (code, level, text) == (1, "WARNING", "nimbus-sync: 5 deletes held")
    assert perf["held"] == 5 and perf["users"] == 10

    assert ns.run("approve-deletes").returncode == 0
    assert ns.run("apply").returncode == 0
    assert check(ns)[:2] == (0, "OK")


@pytest.mark.sim(ous=[OU])
def test_warning_on_a_failed_user(ns, sim):
    ns.write_roster(roster_users(guids(2), OU) + [{"o365_id": guid(), "ou": OU_OTHER}])
    assert ns.run("apply").returncode == 2
    code, level, text, perf = check(ns)
    assert (code, level, text) == (1, "WARNING", "nimbus-sync: 1 failed")
    assert perf["failed"] == 1


def test_critical_when_the_credentials_are_refused(ns, sim):
    ns.write_roster(roster_users(guids(3), OU))
    sim.config(provisioning_disabled=True)
    assert ns.run("apply").returncode == 1
    code, level, text, _ = check(ns)
    assert (code, level) == (2, "CRITICAL")
    assert text.startswith("nimbus-sync: credentials refused, tenant paused: ")
    assert "Provisioning Api disabled by admin" in text


def test_critical_on_an_invalid_config(ns, sim):
    ns.write_text(ns.config_path, ns.config_path.read_text() + "scan_interval: soon\n")
    code, level, text, _ = check(ns)
    assert (code, level) == (2, "CRITICAL")
    assert text.startswith(f"nimbus-sync: config invalid: {ns.config_path}:")


# --- status --check and the daemon ---------------------------------------------------------------

def start_daemon(ns):
    ns.configure(settle_time="100ms", scan_interval="60s")
    proc = ns.start("daemon")
    ok = poll(lambda: proc.poll() is not None or "daemon running" in ns.run("status", "--check").stdout,
              scaled(30))
    assert ok and proc.poll() is None, "the daemon did not come up"
    return proc


def test_critical_when_the_daemon_rejects_the_roster(ns, sim):
    ns.write_roster(roster_users(guids(3), OU))
    assert ns.run("apply").returncode == 0
    proc = start_daemon(ns)
    try:
        ns.write_text(ns.roster_dir / "broken.csv", "o365_id,ou\nnot-a-guid,support\n")
        assert poll(lambda: ns.run("status", "--check").returncode == 2, 30), describe(ns.runs[-1])
        code, level, text, _ = check(ns)
        assert (code, level) == (2, "CRITICAL")
        assert text.startswith("nimbus-sync: roster rejected: ") and "broken.csv:2:" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        assert ns.wait(proc)[0] == 0


def test_critical_when_the_daemon_dies_ok_when_it_stops(ns, sim):
    ns.write_roster(roster_users(guids(2), OU))
    proc = start_daemon(ns)
    code, level, text, _ = check(ns)
    assert (code, level) == (0, "OK") and "daemon running" in text

    proc.send_signal(signal.SIGKILL)
    ns.wait(proc, check_sanitizers=False)
    code, level, text, _ = check(ns)
    assert (code, level) == (2, "CRITICAL")
    assert text == f"nimbus-sync: daemon not running (pid {proc.pid} ended without stopping)"

    # Stopped on purpose (SIGTERM, as systemctl stop does): nothing is expected to run.
    proc = start_daemon(ns)
    proc.send_signal(signal.SIGTERM)
    assert ns.wait(proc)[0] == 0
    code, level, text, _ = check(ns)
    assert (code, level) == (0, "OK") and "daemon not running" in text


def test_json_does_not_go_with_check_or_all(ns, sim):
    for extra in ("--check", "--all"):
        p = ns.run("status", "--json", extra)
        assert p.returncode == 1 and "does not go with" in p.stderr, describe(p)


# --- an enabled unit expects a running daemon -----------------------------------------------------

UNSHARE = shutil.which("unshare")


@pytest.mark.skipif(os.geteuid() != 0 or not UNSHARE, reason="needs root and unshare(1) to put "
                    "a config in /etc/nimbus-sync and a unit link in /etc/systemd/system privately")
def test_critical_when_the_unit_is_enabled_and_no_daemon_runs(ns, sim, tmp_path):
    # In a private mount namespace, /etc is an overlay whose changes live in a tmpfs: nothing
    # outside the test sees the config or the link, and nothing is left behind.
    ns.write_roster(roster_users(guids(2), OU))
    assert ns.run("apply").returncode == 0
    unit_file = tmp_path / "nimbus-sync@.service"
    unit_file.write_text("[Service]\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    script = """
        set -e
        mount -t tmpfs tmpfs "$SCRATCH"
        mkdir "$SCRATCH/upper" "$SCRATCH/work"
        mount -t overlay overlay -o "lowerdir=/etc,upperdir=$SCRATCH/upper,workdir=$SCRATCH/work" /etc
        echo namespace ready >&2
        mkdir -p /etc/nimbus-sync /etc/systemd/system/multi-user.target.wants
        rm -f /etc/systemd/system/*.wants/nimbus-sync@customer-a.service
        cp "$CONFIG" /etc/nimbus-sync/customer-a.yaml
        check() { "$BIN" -c /etc/nimbus-sync/customer-a.yaml status "$@" && echo "exit 0" || echo "exit $?"; }
        check --check
        ln -s "$UNIT" /etc/systemd/system/multi-user.target.wants/nimbus-sync@customer-a.service
        check --check
        check --all --check
    """
    env = dict(os.environ, CONFIG=str(ns.config_path), BIN=ns.binary, UNIT=str(unit_file),
               SCRATCH=str(scratch))
    env.pop("NIMBUS_SYNC_CONFIG", None)
    p = subprocess.run([UNSHARE, "-m", "sh", "-c", script], capture_output=True, text=True,
                       timeout=60, env=env)
    if p.returncode != 0 and "namespace ready" not in p.stderr:
        pytest.skip(f"no private mount namespace with an overlay here: {p.stderr.strip()}")
    ns.check_output(p.stdout, p.stderr)
    out = p.stdout.splitlines()
    assert p.returncode == 0 and len(out) == 8, describe(p)
    assert out[0].startswith("NIMBUS-SYNC OK - nimbus-sync@customer-a: ") and out[1] == "exit 0"
    assert out[2].startswith("NIMBUS-SYNC CRITICAL - nimbus-sync@customer-a: daemon not running "
                             "(its unit is enabled) |") and out[3] == "exit 2"
    assert out[4] == ("NIMBUS-SYNC CRITICAL - 1 of 1 instance needs attention: "
                      "nimbus-sync@customer-a (daemon not running (its unit is enabled))")
    assert out[5].split()[0] == "INSTANCE"
    assert out[6].split()[:3] == ["nimbus-sync@customer-a", "not", "running"] and out[7] == "exit 2"
    assert not os.path.exists("/etc/nimbus-sync/customer-a.yaml")


# --- status --all ---------------------------------------------------------------------------------

def add_instance(ns, name, **overrides):
    """Another instance NAME.yaml next to ns's config.yaml: the same simulator tenant, its own
    roster and state folders."""
    config = copy.deepcopy(ns.config)
    config["roster_dir"] = str(ns.dir / f"{name}-roster.d")
    config["state_dir"] = str(ns.dir / f"{name}-state")
    config.update(overrides)
    os.makedirs(config["roster_dir"], exist_ok=True)
    os.makedirs(config["state_dir"], exist_ok=True)
    path = ns.dir / f"{name}.yaml"
    ns.write_text(path, yaml.safe_dump(config, sort_keys=False))
    return path, config


def run_as(ns, config_path, *args):
    p = subprocess.run([ns.binary, "-c", str(config_path), *args], capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL,
                       env={k: v for k, v in os.environ.items() if k != "NIMBUS_SYNC_CONFIG"})
    ns.check_output(p.stdout, p.stderr)
    return p


def table(stdout):
    """The --all table: instance name -> its columns (LAST RUN's date and time kept apart)."""
    lines = stdout.splitlines()
    header = [i for i, l in enumerate(lines) if l.startswith("INSTANCE ")]
    assert len(header) == 1, stdout
    rows = {}
    for line in lines[header[0] + 1:]:
        cols = line.split()
        rows[cols[0]] = cols
    return lines[:header[0]], rows


def test_all_lists_every_instance(ns, sim):
    ns.write_roster(roster_users(guids(3), OU))
    assert ns.run("apply").returncode == 0
    b_path, b = add_instance(ns, "customer-b", deletes={"max_per_run": 1})
    ids = guids(4)
    ns.write_text(os.path.join(b["roster_dir"], "r.yaml"),
                  yaml.safe_dump({"users": roster_users(ids, OU)}))
    assert run_as(ns, b_path, "apply").returncode == 0
    ns.write_text(os.path.join(b["roster_dir"], "r.yaml"),
                  yaml.safe_dump({"users": roster_users(ids[:2] + guids(1), OU)}))
    assert run_as(ns, b_path, "plan").returncode == 2      # 1 to create, 2 deletes to be held
    add_instance(ns, "customer-c")                          # configured, never run
    (ns.dir / "config.yaml.example").write_text("not: an instance\n")   # not *.yaml: ignored
    (ns.dir / ".hidden.yaml").write_text("not: an instance\n")

    p = ns.run("status", "--all")
    assert p.returncode == 0, describe(p)
    before, rows = table(p.stdout)
    assert before == []
    assert list(rows) == ["nimbus-sync", "nimbus-sync@customer-b", "nimbus-sync@customer-c"]
    # INSTANCE DAEMON(2 words) USERS PENDING HELD FAILED AUTH LAST-RUN(date time state) CHECK
    a = rows["nimbus-sync"]
    assert a[1:8] == ["not", "running", "3", "0", "0", "0", "ok"] and a[10] == "ok" and a[11] == "OK"
    b_row = rows["nimbus-sync@customer-b"]
    assert b_row[1:8] == ["not", "running", "4", "1", "0", "0", "ok"], b_row   # held: not pending
    c = rows["nimbus-sync@customer-c"]
    assert c[3:8] == ["-"] * 5 and " ".join(c[9:]).startswith("WARNING: no state yet")

    p = ns.run("status", "--all", "--check")
    assert p.returncode == 1, describe(p)
    before, rows = table(p.stdout)
    assert before == ["NIMBUS-SYNC WARNING - 1 of 3 instances needs attention: "
                      "nimbus-sync@customer-c (no state yet: nimbus-sync has not run)"]
    assert len(rows) == 3

    # Now customer-b holds its deletes, and customer-c runs: still a warning, for customer-b.
    assert run_as(ns, b_path, "apply").returncode == 2
    run_as(ns, ns.dir / "customer-c.yaml", "apply")
    p = ns.run("status", "--all", "--check")
    assert p.returncode == 1, describe(p)
    before, rows = table(p.stdout)
    assert before == ["NIMBUS-SYNC WARNING - 1 of 3 instances needs attention: "
                      "nimbus-sync@customer-b (2 deletes held)"]
    assert rows["nimbus-sync@customer-b"][5] == "2"


def test_all_check_is_the_worst_instance(ns, sim):
    ns.write_roster(roster_users(guids(2), OU))
    assert ns.run("apply").returncode == 0
    assert ns.run("status", "--all", "--check").returncode == 0
    assert ns.run("status", "--all", "--check").stdout.startswith("NIMBUS-SYNC OK - 1 instance OK\n")

    add_instance(ns, "customer-b", scan_interval="soon")   # an invalid config
    p = ns.run("status", "--all", "--check")
    assert p.returncode == 2, describe(p)
    first = p.stdout.splitlines()[0]
    assert first.startswith("NIMBUS-SYNC CRITICAL - 1 of 2 instances needs attention: "
                            "nimbus-sync@customer-b (config invalid: ")
    # Without --check, status --all reports and exits 0.
    assert ns.run("status", "--all").returncode == 0


def test_all_flags_two_instances_sharing_one_state_store(ns, sim):
    ns.write_roster(roster_users(guids(2), OU))
    assert ns.run("apply").returncode == 0
    add_instance(ns, "customer-b", state_dir=str(ns.state_dir))
    p = ns.run("status", "--all", "--check")
    assert p.returncode == 2, describe(p)
    assert "nimbus-sync (same state_dir as nimbus-sync@customer-b)" in p.stdout
    assert "nimbus-sync@customer-b (same state_dir as nimbus-sync)" in p.stdout


def test_all_without_any_config(ns, sim, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    p = run_as(ns, empty / "config.yaml", "status", "--all")
    assert p.returncode == 1 and "no instance config" in p.stderr, describe(p)
    p = run_as(ns, empty / "config.yaml", "status", "--all", "--check")
    assert p.returncode == 2 and p.stdout.startswith("NIMBUS-SYNC CRITICAL - "), describe(p)
