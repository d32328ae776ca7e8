"""apply, plan, status, licenses and user show on good input (nimbus-sync(8), COMMANDS and OWNERSHIP)."""

import json
import os
import re
import subprocess

import pytest

from conftest import api_requests, describe, guid, guids, mutating, roster_users, sim_ids

OU = guid()
OU2 = guid()


def named_users(n, ou=OU):
    return [{"o365_id": i, "ou": ou, "name": f"User {k}"} for k, i in enumerate(guids(n))]


def test_apply_creates_the_roster(ns, sim):
    users = named_users(4) + [{"o365_id": guid(), "ou": OU2}]
    ns.write_roster(users)

    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    st = sim.state()
    assert sim_ids(st) == {u["o365_id"] for u in users}
    for u in users:
        assert st["users"][u["o365_id"]]["organizationUnitId"] == u["ou"]
        assert st["created_ok"][u["o365_id"]] == 1
    assert len(mutating(st)) == len(users)
    assert "run finished: 5 created" in p.stderr


def test_copy_waits_for_its_template_created_in_the_same_run(ns, sim):
    template = guid()
    copies = guids(3)
    # The copies come first in the file (and one sorts before the template): order must not matter.
    ns.write_roster([{"o365_id": c, "template": template} for c in copies] +
                    [{"o365_id": template, "ou": OU}])

    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    st = sim.state()
    assert sim_ids(st) == {template, *copies}
    for c in copies:
        assert st["users"][c]["organizationUnitId"] == OU   # copied from the template
    log = api_requests(st)
    create_at = [k for k, r in enumerate(log) if r["method"] == "POST" and r["path"] == "user"
                 and r["id"] == template]
    copy_at = [k for k, r in enumerate(log) if r["path"] == "user/copy"]
    assert len(create_at) == 1 and len(copy_at) == 3
    assert all(log[k]["status"] == 200 for k in copy_at), log
    assert min(copy_at) > create_at[0]
    # Sent after the answer, not merely after the request: no copy arrives at the same instant.
    assert all(log[k]["t"] >= log[create_at[0]]["t"] for k in copy_at)


def test_apply_user_provisions_one_user_with_its_template(ns, sim):
    """apply --user: only that user, and the template create it waits for; nothing else."""
    template, copy, other = guid(), guid(), guid()
    ns.write_roster([{"o365_id": template, "ou": OU}, {"o365_id": copy, "template": template},
                     {"o365_id": other, "ou": OU}])

    p = ns.run("apply", "--user", copy.upper())
    # The rest of the roster is still to do: "something remains" is for a full apply to say,
    # but --user ran its one user to the end.
    assert p.returncode == 0, describe(p)
    st = sim.state()
    assert sim_ids(st) == {template, copy}
    assert [r["id"] for r in mutating(st)] == [template, copy]

    p = ns.run("apply", "--user", copy)
    assert p.returncode == 0 and "nothing to do" in p.stderr, describe(p)
    assert len(mutating(sim.state())) == 2

    p = ns.run("apply", "--user", "not-a-guid")
    assert p.returncode == 1 and "not an O365 ID" in p.stderr, describe(p)

    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert sim_ids(sim.state()) == {template, copy, other}


def test_plan_human_output_and_exit_code(ns, sim):
    template = guid()
    copy_id = guid()
    ns.write_roster([{"o365_id": template, "ou": OU, "name": "Template Person"},
                     {"o365_id": copy_id, "template": template, "name": "Jane Doe"}])

    p = ns.run("plan")
    assert p.returncode == 2, describe(p)
    lines = p.stdout.splitlines()
    create = [line for line in lines if line.startswith("+ create")]
    copy = [line for line in lines if line.startswith("+ copy")]
    assert len(create) == 1 and template in create[0] and "Template Person" in create[0]
    assert OU in create[0]
    assert len(copy) == 1 and copy_id in copy[0] and "Jane Doe" in copy[0] and template in copy[0]
    assert re.search(r"1 to create, 1 to copy, 0 to delete, 0 held", p.stdout)
    assert api_requests(sim.state()) == []


def test_plan_json_shape_and_counts(ns, sim):
    creates = guids(3)
    template = creates[0]
    copies = guids(2)
    ns.write_roster(roster_users(creates, OU) + [{"o365_id": c, "template": template} for c in copies])

    rc, plan = ns.plan_json()
    assert rc == 2
    assert plan["changes"] == {"create": 3, "copy": 2, "delete": 0, "held": 0}
    actions = plan["actions"]
    assert sorted(a["o365_id"] for a in actions if a["action"] == "create") == sorted(creates)
    for a in actions:
        if a["action"] == "create":
            assert set(a) == {"action", "o365_id", "ou"} and a["ou"] == OU
        else:
            assert a["action"] == "copy"
            assert set(a) == {"action", "o365_id", "template"} and a["template"] == template
    assert sorted(a["o365_id"] for a in actions if a["action"] == "copy") == sorted(copies)
    assert api_requests(sim.state()) == []


def test_converged_plan_and_second_apply_make_no_calls(ns, sim):
    users = named_users(5)
    ns.write_roster(users)
    assert ns.run("apply").returncode == 0

    sim.reset_log()
    p = ns.run("plan")
    assert p.returncode == 0, describe(p)
    assert "No changes" in p.stdout
    rc, plan = ns.plan_json()
    assert rc == 0 and plan["changes"] == {"create": 0, "copy": 0, "delete": 0, "held": 0}
    assert plan["actions"] == []

    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert api_requests(sim.state()) == [], "a converged apply must not call the API"


def test_plan_refresh_only_gets_and_learns_existing_users(ns, sim):
    existing = guid()
    new = guids(2)
    sim.add_users([{"o365Id": existing, "organizationUnitId": OU, "userAssignmentType": "SkillBased"}])
    ns.write_roster(roster_users([existing, *new], OU))

    rc, plan = ns.plan_json()
    assert rc == 2 and plan["changes"]["create"] == 3
    assert api_requests(sim.state()) == [], "plan without --refresh must not touch the API"

    rc, plan = ns.plan_json("--refresh")
    st = sim.state()
    assert rc == 2
    assert {r["method"] for r in api_requests(st)} == {"GET"}
    assert {r["id"] for r in api_requests(st)} == {existing, *new}
    # The GET found the existing user: it is no longer planned as a create.
    assert plan["changes"]["create"] == 2
    assert sorted(a["o365_id"] for a in plan["actions"]) == sorted(new)
    assert sim_ids(st) == {existing}


def test_status_after_apply(ns, sim):
    ns.write_roster(named_users(3))
    p = ns.run("status")
    assert p.returncode == 0 and "has not run" in p.stdout
    assert ns.run("apply").returncode == 0
    s = ns.status_json()
    assert s["users"]["present"] == 3 and s["users"]["created"] == 3
    assert s["users"]["failed"] == 0 and s["problems"] == []
    assert s["auth"]["state"] == "ok"
    assert s["last_run"]["created"] == 3 and s["last_run"]["result"] == 0
    assert s["rate"]["limit"] == 200 and s["rate"]["window_seconds"] == 1


def test_licenses_and_user_show(ns, sim):
    ids = guids(2)
    ns.write_roster(roster_users(ids, OU))
    assert ns.run("apply").returncode == 0

    p = ns.run("licenses", "--json")
    assert p.returncode == 0, describe(p)
    lic = json.loads(p.stdout)
    assert lic[0]["used"] == 2 and lic[0]["available"] == lic[0]["total"] - 2

    p = ns.run("user", "show", ids[0], "--json")
    assert p.returncode == 0, describe(p)
    u = json.loads(p.stdout)
    assert u["o365_id"] == ids[0] and u["ou"] == OU and u["assignment_type"] == "SkillBased"

    p = ns.run("user", "show", guid())
    assert p.returncode == 3, describe(p)
    assert "not a Nimbus user" in p.stderr
    # licenses and user show only read
    assert [m["path"] for m in mutating(sim.state())] == ["user", "user"]


def test_validate(ns, sim):
    ns.write_roster(named_users(2))
    p = ns.run("validate")
    assert p.returncode == 0, describe(p)
    assert "2 users" in p.stdout
    assert api_requests(sim.state()) == []


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("help", "apply")])
def test_help_and_version(ns, args):
    p = ns.run(*args)
    assert p.returncode == 0, describe(p)
    assert p.stdout.strip()


def test_drift_is_reported_never_fixed(ns, sim):
    ids = guids(3)
    ns.write_roster(roster_users(ids, OU))
    assert ns.run("apply").returncode == 0
    sim.reset_log()

    ns.write_roster(roster_users(ids[:1], OU2) + roster_users(ids[1:], OU))
    p = ns.run("plan")
    assert p.returncode == 0, describe(p)     # drift is no change any call could make
    drift = [line for line in p.stdout.splitlines() if line.startswith("~ drift")]
    assert len(drift) == 1 and ids[0] in drift[0] and OU in drift[0] and OU2 in drift[0]
    assert "matches the roster" not in p.stdout
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert "drift" in p.stderr and ids[0] in p.stderr
    st = sim.state()
    assert api_requests(st) == [], "no delete and re-create to fix drift"
    assert st["users"][ids[0]]["organizationUnitId"] == OU


def test_config_option_after_the_command_and_from_the_environment(ns, sim):
    ns.write_roster(named_users(1))
    env = dict(os.environ)
    env.pop("NIMBUS_SYNC_CONFIG", None)
    after = subprocess.run([ns.binary, "plan", "--json", "--config", str(ns.config_path)],
                           capture_output=True, text=True, timeout=60, env=env)
    assert after.returncode == 2, describe(after)
    assert json.loads(after.stdout)["changes"]["create"] == 1
    env["NIMBUS_SYNC_CONFIG"] = str(ns.config_path)
    from_env = subprocess.run([ns.binary, "plan", "--json"], capture_output=True, text=True,
                              timeout=60, env=env)
    assert from_env.returncode == 2, describe(from_env)
    assert from_env.stdout == after.stdout
    ns.check_output(after.stdout + from_env.stdout, after.stderr + from_env.stderr)
