"""The audit trail and the review before approval (nimbus-sync(8), LOGS AND AUDIT, COMMANDS):
held deletes named by name, UPN, OU and the roster file that last listed them, grouped by that
file; approve-deletes --dry-run/--only/--except; the roster-load line; and what plan shows of
time and size (estimate, paths relative to roster_dir, a summary for big plans)."""

import json
import sqlite3

from conftest import describe, guid, guids, sim_ids

OU, OU2 = guid(), guid()


def named(ids, ou=OU, prefix="User"):
    return [{"o365_id": i, "ou": ou, "name": f"{prefix} {n}", "upn": f"{prefix.lower()}{n}@x.test"}
            for n, i in enumerate(ids)]


def held_setup(ns, n_a=5, n_b=5, keep=1):
    """Users from a.yaml and b.yaml, created; then all but `keep` of each leave: held deletes."""
    ids = guids(n_a + n_b)
    a, b = named(ids[:n_a]), named(ids[n_a:], ou=OU2, prefix="Agent")
    ns.configure(deletes={"max_per_run": 2, "max_percent": 100},
                 organization_units={"sales": OU})
    ns.write_roster(a, name="a.yaml")
    ns.write_roster(b, name="b.yaml")
    assert ns.run("apply").returncode == 0
    ns.write_roster(a[:keep], name="a.yaml")
    ns.write_roster(b[:keep], name="b.yaml")
    return ids, a[keep:], b[keep:]


def test_plan_reviews_held_deletes_by_source(ns, sim):
    ids, gone_a, gone_b = held_setup(ns, n_a=6, n_b=4)
    p = ns.run("plan")
    assert p.returncode == 2, describe(p)
    lines = p.stdout.splitlines()
    held = [line for line in lines if line.startswith("! held")]
    assert len(held) == 8
    for u in gone_a:
        line = next(x for x in held if u["o365_id"] in x)
        assert f'{u["name"]} ({u["upn"]})' in line and f"OU sales ({OU})" in line
        assert "[last listed by a.yaml]" in line and "(threshold)" in line
    for u in gone_b:
        line = next(x for x in held if u["o365_id"] in x)
        assert f"OU {OU2}" in line and "[last listed by b.yaml]" in line
    # grouped: a.yaml's five first (most held), then b.yaml's three, each under its header
    first_a = lines.index("Held, last listed by a.yaml: 5")
    first_b = lines.index("Held, last listed by b.yaml: 3")
    assert first_a < first_b
    assert all("a.yaml" in line for line in lines[first_a + 1:first_a + 6])
    assert all("b.yaml" in line for line in lines[first_b + 1:first_b + 4])
    assert "max_per_run" in p.stdout

    rc, plan = ns.plan_json()
    assert rc == 2
    # The shape of plan --json stays; the review is added beside it.
    assert all(set(a) == {"action", "o365_id", "held", "reason"} for a in plan["actions"])
    review = {h["o365_id"]: h for h in plan["held_deletes"]}
    u = gone_a[0]
    assert review[u["o365_id"]] == {"o365_id": u["o365_id"], "name": u["name"], "upn": u["upn"],
                                    "ou": OU, "source": "a.yaml", "source_kind": "file",
                                    "reason": "threshold"}


def test_approve_deletes_dry_run_only_except(ns, sim):
    ids, gone_a, gone_b = held_setup(ns)
    assert ns.run("apply").returncode == 2                       # 8 held
    gone = [u["o365_id"] for u in gone_a + gone_b]

    p = ns.run("approve-deletes", "--dry-run")
    assert p.returncode == 0, describe(p)
    assert sum(line.startswith("! held") for line in p.stdout.splitlines()) == 8
    assert "would approve 8 of 8" in p.stdout
    assert ns.status_json()["users"]["held"] == 8                # nothing approved

    # An ID that is not held is an error with either option, and nothing is approved.
    for opt in ("--only", "--except"):
        p = ns.run("approve-deletes", opt, gone[0], ids[0])
        assert p.returncode == 1 and f"{ids[0]} is not a held delete" in p.stderr, describe(p)
    assert ns.status_json()["users"]["held"] == 8
    for bad in (["--only"], ["--only", "nope"], [gone[0]], ["--only", gone[0], "--except"]):
        p = ns.run("approve-deletes", *bad)
        assert p.returncode == 1 and "error:" in p.stderr, describe(p)

    p = ns.run("approve-deletes", "--dry-run", "--except", *gone[1:])
    assert p.returncode == 0 and "would approve 1 of 8" in p.stdout, describe(p)

    p = ns.run("approve-deletes", "--only", gone[0], gone[4])
    assert p.returncode == 0, describe(p)
    assert "Approved 2 held deletes" in p.stdout and "6 held deletes stay held" in p.stdout
    assert ns.run("apply").returncode == 2
    assert sim_ids(sim.state()) == set(ids) - {gone[0], gone[4]}

    p = ns.run("approve-deletes", "--except", gone[1])
    assert p.returncode == 0 and "Approved 5 held deletes" in p.stdout, describe(p)
    assert ns.run("apply").returncode == 2
    assert sim_ids(sim.state()) == set(ids) - set(gone) | {gone[1]}

    p = ns.run("approve-deletes", "--except", gone[1])           # names every held delete
    assert p.returncode == 1 and "Nothing approved" in p.stderr, describe(p)
    p = ns.run("approve-deletes")                                # the default: the whole held set
    assert p.returncode == 0 and "Approved 1 held deletes" in p.stdout, describe(p)
    assert ns.run("apply").returncode == 0
    assert ns.run("approve-deletes", "--dry-run").returncode == 1


def test_deletes_name_the_file_that_last_listed_them(ns, sim):
    """The store keeps who a user is once we act on it: a delete still names it."""
    ids = guids(3)
    users = named(ids)
    ns.configure(deletes={"max_percent": 100})
    ns.write_roster(users, name="team.yaml")
    assert ns.run("apply").returncode == 0
    ns.write_roster(users[:2], name="team.yaml")
    p = ns.run("plan")
    assert f"- delete {ids[2]}  User 2 (user2@x.test)  [last listed by team.yaml]" in p.stdout, p.stdout
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert f"delete {ids[2]} (User 2 (user2@x.test)): ok" in p.stderr
    with sqlite3.connect(ns.state_db) as db:
        name, upn, source = db.execute("SELECT name, upn, source FROM user_info WHERE id = ?",
                                       (bytes.fromhex(ids[2].replace("-", "")),)).fetchone()
    assert (name, upn, source) == ("User 2", "user2@x.test", str(ns.roster_dir / "team.yaml"))


def test_roster_load_says_which_files_changed(ns, sim):
    a, b, c = named(guids(3)), named(guids(2)), named(guids(4))
    ns.write_roster(a, name="a.yaml")
    ns.write_roster(b, name="b.yaml")
    p = ns.run("apply")
    assert "roster loaded: 5 users in 2 files; added a.yaml (3 users), b.yaml (2 users)" in p.stderr
    p = ns.run("apply")
    assert "roster loaded: 5 users in 2 files; no file changed" in p.stderr
    ns.write_roster(b[:1], name="b.yaml")
    (ns.roster_dir / "a.yaml").unlink()
    ns.write_roster(c, name="c.yaml")
    p = ns.run("apply")
    assert ("roster loaded: 5 users in 2 files; added c.yaml (4 users); changed b.yaml (1 users, "
            "was 2); removed a.yaml (3 users)") in p.stderr, p.stderr


def test_plan_time_paths_and_summary(ns, sim):
    ns.configure(rate_limit={"operations": 60, "window": "60s"})
    small = named(guids(3))
    ns.write_roster(small, name="team.yaml")
    p = ns.run("plan")
    assert f"  [team.yaml:2]" in p.stdout and str(ns.roster_dir) not in p.stdout, p.stdout
    assert p.stdout.splitlines()[-1] == ("Time: ≈ 3 s at 60 per 60 s (3 calls at the pace of "
                                         "rate_limit; held deletes not counted).")
    assert "Summary by" not in p.stdout

    big = named(guids(40)) + named(guids(20), ou=OU2)
    ns.write_roster(big[:40], name="hr.yaml")
    ns.write_roster(big[40:], name="sales.yaml")
    p = ns.run("plan")
    out = p.stdout.splitlines()
    assert out[0] == "Summary by OU:"
    assert out[2].split() == ["43", "0", "0", "0", OU]
    assert out[3].split() == ["20", "0", "0", "0", OU2]
    assert out[4] == "Summary by roster file or source:"
    assert [line.split()[-1] for line in out[6:9]] == ["hr.yaml", "sales.yaml", "team.yaml"]
    assert out[-1].startswith("Time: ≈ 63 s at 60 per 60 s")
    rc, plan = ns.plan_json()
    assert plan["estimate_seconds"] == 63
    assert plan["summary"]["by_source"][0] == {"source": "hr.yaml", "create": 40, "copy": 0,
                                               "delete": 0, "held": 0}
    json.dumps(plan)
