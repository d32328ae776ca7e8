"""Ownership and stale work in the running daemon (nimbus-sync(8), OWNERSHIP): a spurious 404 in
the verify sweep must not turn our users into strangers, and a roster change stops the calls
queued for users it no longer lists."""

import os
import time

from .conftest import creates, guid, guids, wait_for, wait_users

OU = guid()


def api_posts(sim):
    return [r for r in sim.state()["requests"] if r["method"] == "POST" and r["path"] == "user"]


def status_users(daemon):
    return daemon.status_json()["users"]


def synced_between_sweeps(daemon, sim, n, **config):
    """Start the daemon on n new users with a verify sweep every 2 s; return their ids just after
    a sweep of them has ended. Faults set now meet one whole sweep; set while a sweep runs, its
    GETs already answered would leave faults over for the next sweep, which then tells another
    story."""
    daemon.configure(verify={"interval": "2s"}, **config)
    ids = guids(n)
    daemon.write_roster(creates(ids, OU))
    daemon.start()
    wait_users(sim, ids, 10, daemon)
    mark = daemon.mark()
    daemon.wait_log(rf"verify sweep: {n} checked, 0 missing", 15, mark)
    return ids


def test_one_spurious_404_in_the_sweep_changes_nothing(daemon, sim):
    ids = synced_between_sweeps(daemon, sim, 5, deletes={"max_percent": 100})
    # One wrong 404 per user in the next sweep; a second GET after a pause sees them.
    mark = daemon.mark()
    sim.config(fail_next=[{"method": "GET", "path": "user/*", "status": 404, "count": 5}])
    daemon.wait_log(r"verify sweep: 5 checked, 0 missing", 15, mark)
    st = sim.state()
    assert all(st["created_ok"][i] == 1 for i in ids), "a user was created again"
    assert status_users(daemon)["created"] == 5
    daemon.stop_clean()


def test_users_stay_ours_after_a_confirmed_404_and_exists(daemon, sim):
    """Both GETs wrongly say 404; the re-create answers 409: still ours, so deleted when removed."""
    ids = synced_between_sweeps(daemon, sim, 6, deletes={"max_percent": 100, "max_per_run": 100})
    mark = daemon.mark()
    sim.config(fail_next=[{"method": "GET", "path": "user/*", "status": 404, "count": 12}])
    daemon.wait_log(r"verify sweep: 6 checked, 6 missing", 15, mark)
    wait_for(lambda: len([r for r in api_posts(sim) if r["status"] == 409]) == 6, 10,
             lambda: "the six re-creates answered 409:\n" + daemon.log()[-3000:])
    wait_for(lambda: status_users(daemon)["created"] == 6, 10,
             lambda: f"all six still ours: {status_users(daemon)}")
    assert status_users(daemon)["adopted"] == 0
    # Being ours, they go when the roster drops them.
    daemon.write_roster(creates(ids[:1], OU))
    wait_users(sim, ids[:1], 15, daemon)
    daemon.stop_clean()


def test_a_web_servers_404_page_in_the_sweep_proves_nothing_missing(daemon, sim):
    """A proxy or the wrong host answering the sweep's GETs with its own 404 page: said, with why,
    and no user counts as missing (none is created again)."""
    synced_between_sweeps(daemon, sim, 3)
    mark = daemon.mark()
    sim.config(fail_next=[{"method": "GET", "path": "user/*", "status": 404, "count": 3,
                           "body": "<html><head><title>404 Not Found</title></head></html>"}])
    daemon.wait_log(r"verify sweep: 0 checked, 0 missing, 0 in another OU, 3 not answered; first: "
                    r"HTTP 404 with a body that is not a Nimbus answer \(an HTML page\)", 15, mark)
    daemon.wait_log(r"verify sweep: 3 checked, 0 missing", 15, mark)
    assert [r for r in api_posts(sim) if r["status"] != 200] == [], "a user was created again"
    assert status_users(daemon)["created"] == 3
    daemon.stop_clean()


def test_roster_change_drops_calls_queued_for_users_it_no_longer_lists(daemon, sim):
    keep, dropped = guids(5), guids(60)
    daemon.write_roster(creates(keep, OU), name="keep.yaml")
    daemon.write_roster(creates(dropped, OU), name="dropped.yaml")
    sim.config(delay_ms=150)          # four calls in flight at a time: a queue builds up
    daemon.start()
    wait_for(lambda: len(sim.state()["created_ok"]) >= 8, 20, "the sync to get going")
    mark = daemon.mark()
    os.unlink(daemon.roster_dir / "dropped.yaml")
    daemon.wait_log(r"roster loaded: 5 users", 10, mark)
    # The simulator logs a request when it arrives: one the daemon sent just before it read the
    # roster may arrive after the line above was seen. Those have arrived half a second later;
    # a daemon that kept its queue would go on sending (about 25 a second) and be caught below.
    time.sleep(0.5)
    seen = time.time()
    sim.config(delay_ms=0)
    wait_for(lambda: set(keep) <= set(sim.state()["users"]), 20, "the kept users")
    late = [r for r in api_posts(sim) if r["id"] in set(dropped) and r["t"] > seen]
    assert late == [], f"{len(late)} creates sent for users the new roster no longer lists"
    daemon.stop_clean()
