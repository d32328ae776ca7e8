"""Directory sources in the daemon (nimbus-sync.yaml(5), SOURCES): every Entra group is read every
source_interval; a changed member list starts a run as a changed file does, an unchanged one makes
no Nimbus call, and a group that cannot be read keeps its last complete list across restarts."""

import signal
import time

from .conftest import creates, guid, guids, poll, sim_ids, wait_users

OU = guid()
INTERVAL = 1   # source_interval of these tests, in seconds


def directory(sim, n=4):
    """Support Agents = the first two users + Tier 2 (the rest). Returns (group, tier2, ids)."""
    ids = guids(n)
    group, tier2 = guids(2)
    sim.graph_directory(
        users=[{"id": u, "displayName": f"Agent {i}", "userPrincipalName": f"a{i}@example.test"}
               for i, u in enumerate(ids)],
        groups=[{"id": tier2, "displayName": "Tier 2", "members": ids[2:]},
                {"id": group, "displayName": "Support Agents", "members": ids[:2] + [tier2]}])
    return group, tier2, ids


def with_group(daemon, sim, group, **config):
    daemon.configure(graph_url=sim.graph_url, source_interval=f"{INTERVAL}s",
                     sources=[{"entra_group": group, "ou": OU}], **config)


def member_reads(sim):
    return [r for r in sim.graph_state()["requests"] if "transitiveMembers" in r["path"]]


def test_membership_change_starts_a_run(daemon, sim):
    group, tier2, ids = directory(sim)
    with_group(daemon, sim, group)
    daemon.start()
    wait_users(sim, ids, 15, daemon)

    # Nested: a member added to Tier 2 is created, one removed is deleted.
    new = guid()
    sim.graph_directory(users=[{"id": new, "displayName": "New Agent"}])
    sim.graph_members(tier2, add=[new], remove=[ids[3]])
    wait_users(sim, ids[:3] + [new], 10, daemon)
    assert list(sim.state()["deleted_ok"]) == [ids[3]]
    assert 'entra group "Support Agents"' in daemon.log()
    daemon.stop_clean()


def test_unchanged_group_makes_no_nimbus_call(daemon, sim):
    group, _, ids = directory(sim)
    with_group(daemon, sim, group)
    daemon.start()
    wait_users(sim, ids, 15, daemon)
    time.sleep(0.5)   # the last answers are recorded
    sim.reset_log()
    reads = len(member_reads(sim))

    assert poll(lambda: len(member_reads(sim)) >= reads + 3, 10), "the group was not polled again"
    assert sim.state()["requests"] == []
    assert daemon.log().count('entra group "Support Agents" read: 4 users') == 1
    daemon.stop_clean()


def test_unreadable_group_keeps_its_list_across_restarts(daemon, sim):
    group, _, ids = directory(sim)
    with_group(daemon, sim, group)
    daemon.start()
    wait_users(sim, ids, 15, daemon)
    daemon.stop_clean()

    # Deleted in Entra while the daemon was down: it starts from the stored list, reads the
    # group, is told 404, logs it, and deletes nothing.
    sim.graph_delete_group(group)
    sim.reset_log()
    daemon.start()
    daemon.wait_ready()
    daemon.wait_log(r"no such group in Entra ID.*its last complete list \(4 users\) stays in force", 10)
    assert poll(lambda: len([r for r in sim.graph_state()["requests"] if r["status"] == 404]) >= 3, 10)
    assert [r for r in sim.state()["requests"] if r["method"] == "DELETE"] == []
    assert sim_ids(sim) == set(ids)
    # The same reason is logged once, not at every poll.
    assert daemon.log().count("no such group in Entra ID") == 1
    src = daemon.status_json()["sources"][0]
    assert src["users"] == 4 and "no such group" in src["error"]
    daemon.stop_clean()


def test_group_and_file_conflict_keeps_the_last_desired_state(daemon, sim):
    group, _, ids = directory(sim)
    with_group(daemon, sim, group)
    other = guid()
    daemon.write_roster(creates([other], OU), name="extra.yaml")
    daemon.start()
    wait_users(sim, ids + [other], 15, daemon)

    mark = daemon.mark()
    daemon.write_roster([{"o365_id": ids[0], "ou": guid()}], name="extra.yaml")
    daemon.wait_log(r"listed with a different ou", 10, mark)
    daemon.wait_log(r"the last valid roster stays in force", 10, mark)
    time.sleep(INTERVAL * 2)
    assert sim_ids(sim) == set(ids + [other])
    daemon.stop_clean()


def test_reload_reads_the_new_sources(daemon, sim):
    group, _, ids = directory(sim)
    with_group(daemon, sim, group)
    daemon.start()
    wait_users(sim, ids, 15, daemon)

    other, extra = guid(), guids(2)
    sim.graph_directory(users=[{"id": u} for u in extra],
                        groups=[{"id": other, "displayName": "Night Shift", "members": extra}])
    daemon.configure(graph_url=sim.graph_url, source_interval=f"{INTERVAL}s",
                     sources=[{"entra_group": group, "ou": OU}, {"entra_group": other, "ou": OU}])
    mark = daemon.mark()
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"config reloaded", 10, mark)
    wait_users(sim, ids + extra, 10, daemon)
    daemon.stop_clean()
