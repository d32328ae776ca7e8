"""Directory sources (nimbus-sync.yaml(5), SOURCES): Entra ID groups read through Microsoft Graph
(the simulator's graph_sim.py) join the roster. Nested groups count, paging is followed to the end,
and a group that cannot be read (403, deleted, a page missing halfway) keeps its last complete
list: failure is never emptiness."""

import os
import pwd

import time

import pytest

from conftest import api_requests, describe, guid, guids, sim_ids

OU = guid()
OU_OTHER = guid()
FAST_RATE = {"operations": 5000, "window": "1s"}
PRIVILEGES = "Insufficient privileges: grant GroupMember.Read.All (application) with admin consent"


def user(uid, i=0, enabled=True):
    return {"id": uid, "displayName": f"Agent {i}", "userPrincipalName": f"agent{i}@example.test",
            "accountEnabled": enabled}


def with_group(ns, sim, group, target=None, include_disabled=None, **config):
    """(Re)write the config: the simulator's Graph with one source, and other config keys."""
    source = {"entra_group": group, **(target or {"ou": OU})}
    if include_disabled is not None:
        source["include_disabled"] = include_disabled
    ns.configure(graph_url=sim.graph_url, sources=[source], **config)


def nested_directory(sim):
    """Support Agents = a, b + Tier 2 (c + Tier 3 (d)); e is in no group. Returns ids."""
    a, b, c, d, e = guids(5)
    g, tier2, tier3 = guids(3)
    sim.graph_directory(
        users=[user(u, i) for i, u in enumerate((a, b, c, d, e))],
        groups=[{"id": tier3, "displayName": "Tier 3", "members": [d]},
                {"id": tier2, "displayName": "Tier 2", "members": [c, tier3]},
                {"id": g, "displayName": "Support Agents", "members": [a, b, tier2]}])
    return g, tier2, tier3, [a, b, c, d], e


def deletes_sent(sim):
    return [r for r in api_requests(sim.state()) if r["method"] == "DELETE"]


def graph_pages(sim):
    return [r for r in sim.graph_state()["requests"] if "transitiveMembers" in r["path"]]


# --- reading groups --------------------------------------------------------------------------

def test_nested_membership_is_created_and_named_in_plan(ns, sim):
    group, _, _, members, outsider = nested_directory(sim)
    with_group(ns, sim, group)

    p = ns.run("plan")
    assert p.returncode == 2, describe(p)
    creates = [line for line in p.stdout.splitlines() if line.startswith("+ create")]
    assert len(creates) == 4
    assert all('[entra group "Support Agents"]' in line for line in creates)
    assert any("Agent 3 (agent3@example.test)" in line for line in creates)   # two levels down

    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    st = sim.state()
    assert sim_ids(st) == set(members) and outsider not in sim_ids(st)
    assert all(u["organizationUnitId"] == OU for u in st["users"].values())
    assert 'entra group "Support Agents" read: 4 users' in p.stderr
    # Graph and Nimbus tokens are separate: one Graph token per process (plan, apply), one for
    # Nimbus (apply); the simulator refuses either on the other's API.
    scopes = [t["scope"] for t in st["token_requests"]]
    assert scopes.count("https://graph.microsoft.com/.default") == 2
    assert scopes.count(sim.scope) == 1


@pytest.mark.sim(rate_ops=5000)
def test_paging_more_than_999_members(ns, sim):
    group = guid()
    ids = sim.graph_generate(group, 2100, display_name="Everyone", disabled_every=100)
    with_group(ns, sim, group, rate_limit=FAST_RATE)

    rc, plan = ns.plan_json()
    assert rc == 2
    enabled = {u for i, u in enumerate(ids) if i % 100 != 99}
    assert {a["o365_id"] for a in plan["actions"] if a["action"] == "create"} == enabled
    pages = graph_pages(sim)
    assert len(pages) == 3 and all("%24top=999" in r["query"] or "$top=999" in r["query"] for r in pages)
    assert [r for r in pages if "skiptoken" in r["query"]] == pages[1:]


def test_disabled_accounts_included_on_request(ns, sim):
    a, b = guids(2)
    group = guid()
    sim.graph_directory(users=[user(a, 0), user(b, 1, enabled=False)],
                        groups=[{"id": group, "displayName": "G", "members": [a, b]}])
    with_group(ns, sim, group)
    rc, plan = ns.plan_json()
    assert {x["o365_id"] for x in plan["actions"]} == {a}
    with_group(ns, sim, group, include_disabled=True)
    rc, plan = ns.plan_json()
    assert {x["o365_id"] for x in plan["actions"]} == {a, b}


def test_template_target(ns, sim):
    template, member = guids(2)
    group = guid()
    sim.graph_directory(users=[user(member)], groups=[{"id": group, "displayName": "G", "members": [member]}])
    with_group(ns, sim, group, target={"template": template})
    ns.write_roster([{"o365_id": template, "ou": OU}], name="templates.yaml")
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    st = sim.state()
    assert sim_ids(st) == {template, member}
    assert [r["path"] for r in api_requests(st, "POST")] == ["user", "user/copy"]


# --- changes in the directory ------------------------------------------------------------------

def test_member_removed_from_nested_group_is_deleted(ns, sim):
    group, tier2, tier3, members, _ = nested_directory(sim)
    with_group(ns, sim, group)
    assert ns.run("apply").returncode == 0
    sim.reset_log()

    sim.graph_members(tier3, remove=[members[3]])
    # Gone from every group, the user is still named in the review of the delete.
    p = ns.run("plan")
    assert p.returncode == 2, describe(p)
    assert (f'- delete {members[3]}  Agent 3 (agent3@example.test)  [last listed by entra group '
            f'"Support Agents"]') in p.stdout
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert [r["id"] for r in deletes_sent(sim)] == [members[3]]
    assert sim_ids(sim.state()) == set(members[:3])
    assert f"delete {members[3]} (Agent 3 (agent3@example.test)): ok" in p.stderr


@pytest.mark.sim(rate_ops=5000)
@pytest.mark.parametrize("fault", [500, 0], ids=["server-error", "dropped"])
def test_failed_page_deletes_nothing(ns, sim, fault):
    group = guid()
    ids = sim.graph_generate(group, 1600)
    with_group(ns, sim, group, rate_limit=FAST_RATE, deletes={"max_per_run": 100000, "max_percent": 100})
    assert ns.run("apply").returncode == 0
    sim.reset_log()

    # 500 leave, and page 2 of the next listing (members 1000 to 1100) never arrives.
    sim.graph_members(group, remove=ids[:500])
    sim.graph_config(fail_next=[{"what": "members", "page": 2, "status": fault, "count": 1000}])
    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    assert "cannot be read" in p.stderr and "its last complete list (1600 users) stays in force" in p.stderr
    assert deletes_sent(sim) == []
    assert sim_ids(sim.state()) == set(ids)
    src = ns.status_json()["sources"][0]
    assert src["users"] == 1600 and "gave up after" in src["error"]
    # A monitoring check warns of it: the list in force may be out of date.
    check = ns.run("status", "--check")
    assert check.returncode == 1 and "1 Entra group not read (its last complete list in force)" in check.stdout, \
        describe(check)

    # Once every page arrives again, the removal is carried out.
    sim.graph_config(fail_next=[])
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert {r["id"] for r in deletes_sent(sim)} == set(ids[:500])


def test_403_says_which_permission_is_missing(ns, sim):
    group, _, _, _, _ = nested_directory(sim)
    with_group(ns, sim, group)
    sim.graph_config(denied=True)

    p = ns.run("apply")
    # Never read completely: nothing can be planned from it, and nothing is sent.
    assert p.returncode == 1, describe(p)
    assert PRIVILEGES in p.stderr
    assert "nothing was changed" in p.stderr
    assert api_requests(sim.state()) == []

    v = ns.run("validate", "--online")
    assert v.returncode == 1, describe(v)
    assert f"sources[1]: entra group {group}: error: {PRIVILEGES}" in v.stdout
    assert "Authorization_RequestDenied" in v.stdout


def test_validate_online_reports_member_counts(ns, sim):
    group, _, _, _, _ = nested_directory(sim)
    with_group(ns, sim, group)
    v = ns.run("validate")
    assert v.returncode == 0 and "not read" in v.stdout, describe(v)
    assert sim.graph_state()["requests"] == []
    v = ns.run("validate", "--online")
    assert v.returncode == 0, describe(v)
    assert f'entra group "Support Agents" ({group}): 4 users' in v.stdout


def test_group_deleted_in_entra_is_kept(ns, sim):
    group, _, _, members, _ = nested_directory(sim)
    with_group(ns, sim, group)
    assert ns.run("apply").returncode == 0
    sim.reset_log()

    sim.graph_delete_group(group)
    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    assert "no such group in Entra ID" in p.stderr and "Request_ResourceNotFound" in p.stderr
    assert deletes_sent(sim) == []
    assert sim_ids(sim.state()) == set(members)
    p = ns.run("plan")
    assert "No changes" in p.stdout and "could not be read now" in p.stdout, describe(p)
    st = ns.run("status")
    assert "LAST READ FAILED" in st.stdout and "no such group" in st.stdout


def test_held_deletes_are_named(ns, sim):
    group = guid()
    ids = sim.graph_generate(group, 12, display_name="Night Shift")
    with_group(ns, sim, group, deletes={"max_per_run": 2})
    assert ns.run("apply").returncode == 0
    sim.graph_members(group, remove=ids[:6])
    p = ns.run("plan")
    assert p.returncode == 2, describe(p)
    held = [line for line in p.stdout.splitlines() if line.startswith("! held")]
    assert len(held) == 6
    for i, uid in enumerate(ids[:6]):
        assert any(uid in line and f"User {i} (user{i}@sim.test)" in line and
                   '[last listed by entra group "Night Shift"]' in line for line in held), p.stdout


def test_empty_group_counts_as_an_empty_file(ns, sim):
    group, _, _, members, _ = nested_directory(sim)
    with_group(ns, sim, group)
    assert ns.run("apply").returncode == 0
    sim.reset_log()

    sim.graph_directory(groups=[{"id": group, "displayName": "Support Agents", "members": []}])
    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    assert "allow_empty" in p.stderr
    assert deletes_sent(sim) == []

    with_group(ns, sim, group, deletes={"allow_empty": True, "max_percent": 100})
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert len(deletes_sent(sim)) == 4


# --- groups and files together -----------------------------------------------------------------

def test_user_in_group_and_file(ns, sim):
    group, _, _, members, _ = nested_directory(sim)
    with_group(ns, sim, group)
    ns.write_roster([{"o365_id": members[0], "ou": OU}], name="same.yaml")
    p = ns.run("plan")
    assert p.returncode == 2, describe(p)
    assert "listed twice" in p.stderr   # a warning, as for two files

    ns.write_roster([{"o365_id": members[0], "ou": OU_OTHER}], name="same.yaml")
    p = ns.run("apply")
    assert p.returncode == 1, describe(p)
    assert (f'entra group "Support Agents": error: o365_id {members[0]} listed with a different ou than '
            f'at {ns.roster_dir / "same.yaml"}:2') in p.stderr
    assert api_requests(sim.state()) == []


def test_graph_throttling_keeps_the_nimbus_window(ns, sim):
    group = guid()
    ids = sim.graph_generate(group, 30)
    with_group(ns, sim, group, rate_limit={"operations": 10, "window": "1s"})
    sim.config(rate_ops=10, rate_window=1)
    sim.graph_config(fail_next=[{"what": "*", "status": 429, "retry_after": 1, "count": 2}])

    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    st = sim.state()
    assert sim_ids(st) == set(ids)
    assert st["over_limit"] == 0 and st["max_in_window"] <= 10
    graph = sim.graph_state()["requests"]
    assert [r["status"] for r in graph[:3]] == [429, 429, 200]
    assert graph[1]["t"] - graph[0]["t"] >= 0.95 and graph[2]["t"] - graph[1]["t"] >= 0.95
    # Graph requests never enter the Nimbus log or its window.
    assert all(r["path"].startswith("user") for r in st["requests"])


def test_a_long_graph_retry_after_never_holds_apply_up(ns, sim):
    """A command run by hand waits a minute at most: a group that asks for an hour keeps its last
    complete list, and apply says so and ends with exit 2."""
    group = guid()
    ids = sim.graph_generate(group, 5)
    with_group(ns, sim, group)
    assert ns.run("apply").returncode == 0
    sim.graph_members(group, remove=ids[:2])
    sim.graph_config(fail_next=[{"what": "*", "status": 429, "retry_after": 3600, "count": 5}])
    t0 = time.monotonic()
    p = ns.run("apply")
    assert time.monotonic() - t0 < 30, describe(p)
    assert p.returncode == 2, describe(p)
    assert "asks us to wait" in p.stderr and "stays in force" in p.stderr
    assert deletes_sent(sim) == [] and sim_ids(sim.state()) == set(ids)


# --- roster_defaults ---------------------------------------------------------------------------

def test_roster_defaults_make_an_entra_export_a_roster(ns, sim):
    ids = guids(3)
    rows = [(u, f"Agent {i}", f"agent{i}@example.test", "True") for i, u in enumerate(ids)]
    ns.write_csv(rows, name="entra-support.csv",
                 header=("id", "displayName", "userPrincipalName", "accountEnabled"))
    p = ns.run("apply")
    assert p.returncode == 1 and "roster_defaults" in p.stderr, describe(p)

    ns.configure(organization_units={"support": OU}, roster_defaults={"entra-*.csv": {"ou": "support"}})
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    st = sim.state()
    assert sim_ids(st) == set(ids)
    assert {u["organizationUnitId"] for u in st["users"].values()} == {OU}


def test_doctor_reads_each_group(ns, sim):
    group, _, _, _, _ = nested_directory(sim)
    with_group(ns, sim, group)
    env = {"NIMBUS_SYNC_SERVICE_USER": pwd.getpwuid(os.geteuid()).pw_name}
    p = ns.run("doctor", env=env)
    assert p.returncode == 0, describe(p)
    assert f'✓ entra group "Support Agents" ({group}): 4 users; disabled accounts left out: 0' in p.stdout

    sim.graph_config(denied=True)
    p = ns.run("doctor", env=env)
    assert p.returncode == 1, describe(p)
    assert f"✗ entra group {group}: {PRIVILEGES}" in p.stdout
    assert api_requests(sim.state(), "POST") == []
