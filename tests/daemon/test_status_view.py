"""What the daemon records for the others (nimbus-sync(8), status and MONITORING): a run in
progress is shown as running, with calls done of all and an estimate of the time left; the
roster verdict `status` shows is the daemon's, and `status` does not read the roster itself then;
metrics_file holds the daemon's figures, written after every run, on a rejected roster, and on a
timer, atomically."""

import json
import os
import re

from prometheus_client.parser import text_string_to_metric_families

from .conftest import creates, guid, guids, wait_for, wait_users

OU = guid()


def test_status_shows_the_run_in_progress(daemon, sim):
    ids = guids(40)
    daemon.configure(rate_limit={"operations": 4, "window": "1s"})   # about 10 s of work
    daemon.write_roster(creates(ids, OU))
    daemon.start()
    daemon.wait_ready()

    def running():
        s = daemon.status_json()
        return s if s["run"] and s["run"]["done"] >= 4 else None

    s = wait_for(running, 15, "a run in progress with calls done, in status --json")
    run = s["run"]
    assert run["total"] == 40 and 4 <= run["done"] < 40, run
    assert run["pid"] == daemon.proc.pid
    assert 0 < run["eta_seconds"] <= 10, run          # 36 calls or fewer at 4 a second
    assert s["last_run"]["state"] == "running" and s["last_run"]["run_id"] == run["run_id"]
    human = daemon.run("status").stdout
    assert re.search(r"^Run: +running since .* \(pid \d+\): \d+ of 40 calls done, ETA \d+ s$", human, re.M), human
    assert re.search(r"^Last run: +.*, running: ", human, re.M), human
    assert "did not finish" not in human

    # Killed in the middle: the run did not finish, and nothing runs (its process is gone).
    daemon.kill()
    s = daemon.status_json()
    assert s["run"] is None and s["last_run"]["state"] == "did not finish", s
    assert "did not finish" in daemon.run("status").stdout


def test_status_shows_the_daemons_roster_verdict_and_files(daemon, sim):
    a, b = guids(2), guids(3)
    daemon.write_roster(creates(a, OU), name="a.yaml")
    daemon.write_roster(creates(b, OU), name="b.yaml")
    daemon.start()
    wait_users(sim, a + b, 10, daemon)
    roster = daemon.status_json()["roster"]
    assert roster["seen_by"] == "daemon" and roster["ok"] is True and roster["users"] == 5, roster
    assert roster["file_users"] == [{"name": "a.yaml", "users": 2}, {"name": "b.yaml", "users": 3}]
    human = daemon.run("status").stdout
    assert re.search(r"^Roster: +5 users in 2 files, as the daemon read it at ", human, re.M), human
    assert re.search(r"^  file +b\.yaml: 3 users$", human, re.M), human

    # The daemon rejects a broken file; status says so, and names the roster still in force.
    mark = daemon.mark()
    (daemon.roster_dir / "b.yaml").write_text("users: [nonsense\n")
    daemon.wait_log(r"roster rejected", 10, mark)
    roster = daemon.status_json()["roster"]
    assert roster["ok"] is False and "b.yaml:" in roster["error"] and roster["users"] == 5, roster
    assert roster["read"] > roster["accepted"] or roster["read"] == roster["accepted"]
    human = daemon.run("status").stdout
    assert re.search(r"^Roster: +REJECTED by the daemon at .*: .*b\.yaml:.*; the roster it read at .* "
                     r"stays in force \(5 users in 2 files\)$", human, re.M), human

    # The file is right again, but the daemon has not read it yet (settle_time): status still
    # tells the daemon's verdict, not what it would read itself.
    daemon.stop_clean()
    daemon.write_roster(creates(b, OU), name="b.yaml")
    roster = daemon.status_json()["roster"]
    assert roster["seen_by"] == "daemon" and roster["ok"] is False, roster


def metrics_of(path):
    """{(name, frozenset(labels without unit)): value}, parsed by Prometheus' own client."""
    samples = {}
    for family in text_string_to_metric_families(path.read_text()):
        for s in family.samples:
            labels = {k: v for k, v in s.labels.items() if k != "unit"}
            assert s.labels["unit"] == "nimbus-sync", s   # config.yaml: the main instance
            samples[(s.name, frozenset(labels.items()))] = s.value
    return samples


def names(folder):
    return sorted(p.name for p in folder.iterdir())


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def test_daemon_writes_metrics(daemon, sim, tmp_path):
    ids = guids(6)
    folder = tmp_path / "textfile"
    folder.mkdir()
    prom = folder / "nimbus_sync.prom"
    daemon.configure(metrics_file=str(prom))
    daemon.write_roster(creates(ids, OU))
    daemon.start(env={"NIMBUS_SYNC_TEST_METRICS_MS": "300"})
    wait_users(sim, ids, 10, daemon)

    def converged():
        m = metrics_of(prom) if prom.exists() else {}
        return m if m.get(("nimbus_sync_users", frozenset({("state", "created")}))) == 6 else None

    m = wait_for(converged, 10, "metrics with 6 created users")
    assert value(m, "nimbus_sync_pending", kind="create") == 0
    assert value(m, "nimbus_sync_api_requests_total", call="create", status="200") == 6
    assert value(m, "nimbus_sync_roster_ok") == 1 and value(m, "nimbus_sync_roster_users") == 6
    assert value(m, "nimbus_sync_auth_state", state="ok") == 1
    assert value(m, "nimbus_sync_last_success_timestamp_seconds") > 0
    assert value(m, "nimbus_sync_rate_window_limit") == daemon.config["rate_limit"]["operations"]
    assert value(m, "nimbus_sync_run_in_progress") == 0
    assert 0 <= value(m, "nimbus_sync_roster_newest_file_age_seconds") < 60
    assert os.stat(prom).st_mode & 0o777 == 0o644      # the collector runs as another user

    # Rewritten on the timer, with nothing else happening, and atomically: no temporary left.
    # (A rewrite in progress has its temporary there for a moment, every 300 ms here: one left
    # behind would stay for good.)
    first = os.stat(prom).st_mtime_ns
    wait_for(lambda: os.stat(prom).st_mtime_ns != first, 10, "metrics_file rewritten by the timer")
    wait_for(lambda: names(folder) == ["nimbus_sync.prom"], 10,
             lambda: f"only nimbus_sync.prom in its folder: {names(folder)}")

    # A rejected roster is in the metrics at once.
    mark = daemon.mark()
    (daemon.roster_dir / "roster.yaml").write_text("users: [nonsense\n")
    daemon.wait_log(r"roster rejected", 10, mark)
    wait_for(lambda: value(metrics_of(prom), "nimbus_sync_roster_ok") == 0, 10, "roster_ok 0")
    daemon.stop_clean()
    assert names(folder) == ["nimbus_sync.prom"]      # no write in progress now


def test_pending_between_runs_is_the_daemons_last_plan(daemon, sim):
    """Between runs the daemon's last plan is what status shows as pending: a failed user is
    counted, and the roster is not read by status."""
    ids = guids(3)
    sim.config(fail_next=[{"method": "POST", "path": "user", "status": 400, "count": 1}])
    daemon.write_roster(creates(ids, OU))
    daemon.start()
    wait_for(lambda: len(sim.state()["users"]) == 2, 10, "two users created, one failed")
    wait_for(lambda: daemon.status_json()["users"]["failed"] == 1, 10, "one failed user in status")
    s = daemon.status_json()
    assert s["pending"]["create"] == 0 and s["pending"]["as_of"] is not None, s["pending"]
    daemon.stop_clean()
