"""metrics_file (nimbus-sync.yaml(5); nimbus-sync(8), MONITORING): `apply` writes Prometheus'
text format once, at its end, read here by Prometheus' own parser; a folder it cannot write to is
a warning, never a failed run. The example Grafana dashboard and the README's alert rules use
only metrics nimbus-sync writes."""

import json
import os
import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO, describe, guid, guids

OU = guid()
DASHBOARD = REPO / "packaging" / "grafana" / "nimbus-sync.json"


def samples(path):
    """{(name, frozenset(labels without unit)): value}; every sample names the unit."""
    found = {}
    for family in text_string_to_metric_families(Path(path).read_text()):
        assert family.name.startswith("nimbus_sync_"), family.name
        assert family.documentation, family.name
        for s in family.samples:
            assert s.labels.pop("unit") == "nimbus-sync", s
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def value(found, name, **labels):
    return found[(name, frozenset(labels.items()))]


def families(path):
    """The metric names the file declares (# TYPE lines), as queries name them."""
    return set(re.findall(r"^# TYPE (\S+) ", Path(path).read_text(), re.M))


def test_apply_writes_the_metrics_once(ns, sim, tmp_path):
    prom = tmp_path / "textfile" / "nimbus_sync.prom"
    prom.parent.mkdir()
    ns.configure(metrics_file=str(prom))
    users = guids(4)
    sim.config(fail_next=[{"method": "POST", "path": "user", "status": 400, "count": 1}])   # one fails
    ns.write_roster([{"o365_id": i, "ou": OU} for i in users])

    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    found = samples(prom)
    assert value(found, "nimbus_sync_users", state="created") == 3
    assert value(found, "nimbus_sync_failed_users") == 1
    assert value(found, "nimbus_sync_api_requests_total", call="create", status="400") == 1
    assert value(found, "nimbus_sync_last_success_timestamp_seconds") == 0   # something remains
    assert sum(v for (n, labels), v in found.items()
               if n == "nimbus_sync_api_requests_total" and ("call", "create") in labels) >= 4
    assert value(found, "nimbus_sync_roster_ok") == 1 and value(found, "nimbus_sync_roster_users") == 4
    assert value(found, "nimbus_sync_run_in_progress") == 0
    assert value(found, "nimbus_sync_rate_window_limit") == ns.config["rate_limit"]["operations"]
    assert os.stat(prom).st_mode & 0o777 == 0o644
    assert sorted(os.listdir(prom.parent)) == ["nimbus_sync.prom"]

    # Without the failed user the roster converges: the last success is recorded.
    failed = [u for u in users if u not in sim.state()["users"]]
    ns.write_roster([{"o365_id": i, "ou": OU} for i in users if i not in failed])
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    found = samples(prom)
    assert value(found, "nimbus_sync_last_success_timestamp_seconds") > 0
    assert value(found, "nimbus_sync_pending", kind="create") == 0


def test_a_metrics_folder_it_cannot_write_is_a_warning(ns, sim, tmp_path):
    ns.configure(metrics_file=str(tmp_path / "missing" / "nimbus_sync.prom"))
    ns.write_roster([{"o365_id": guid(), "ou": OU}])

    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert re.search(r"missing/nimbus_sync\.prom: cannot write the metrics: No such file or directory", p.stderr), \
        describe(p)


def test_dashboard_and_alert_rules_use_metrics_nimbus_sync_writes(ns, sim, tmp_path):
    """Every nimbus_sync_* name in the dashboard's queries and in the README's rule file is one
    that nimbus-sync declares, with an Entra group configured so that every family is there."""
    prom = tmp_path / "nimbus_sync.prom"
    group, member = guid(), guid()
    sim.graph_directory(users=[{"id": member, "displayName": "A", "userPrincipalName": "a@example.test",
                                "accountEnabled": True}],
                        groups=[{"id": group, "displayName": "Agents", "members": [member]}])
    ns.configure(metrics_file=str(prom), graph_url=sim.graph_url, sources=[{"entra_group": group, "ou": OU}])
    ns.write_roster([{"o365_id": guid(), "ou": OU}])
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    written = families(prom)
    assert "nimbus_sync_source_members" in written and "nimbus_sync_roster_newest_file_age_seconds" in written

    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    queries += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for subject in ("pending", "rate", "failures", "held"):
        assert subject in titles, f"no {subject} panel"

    readme = (REPO / "README.md").read_text()
    rules = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(groups:.*?)```", readme, re.S)]
    assert rules, "the README has no Prometheus rule file"
    alerts = [r for doc in rules for g in doc["groups"] for r in g["rules"]]
    assert {"alert", "expr"} <= set(alerts[0]) and len(alerts) >= 3
    queries += [r["expr"] for r in alerts]

    used = {name for q in queries for name in re.findall(r"\bnimbus_sync_\w+", q)}
    assert len(used) >= 12, used
    assert used <= written, f"queried but never written: {sorted(used - written)}"
