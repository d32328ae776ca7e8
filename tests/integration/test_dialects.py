"""Every reading of what the Nimbus documentation leaves open (nimbus-sync(8), OWNERSHIP, and the
simulator's dialect switches): the behaviour that depends on each open point, run under every
reading the simulator offers, so that none of them silently breaks the product."""

import pytest

from conftest import (api_requests, describe, dialect_variants, guid, guids, mutating,
                      roster_users, sim_ids)

OU = guid()
OU_OTHER = guid()


def existing(sim, o365=None, ou=OU):
    o365 = o365 or guid()
    sim.add_users([{"o365Id": o365, "organizationUnitId": ou, "userAssignmentType": "SkillBased"}])
    return o365


# --- duplicates: 409, or 400 "user duplication" --------------------------------------------------

@pytest.mark.parametrize("sim_dialect", dialect_variants("duplicate_status", "field_case",
                                                          "answer_style"))
def test_existing_user_is_adopted_under_every_duplicate_reading(ns, sim, sim_dialect):
    there, template = existing(sim), existing(sim)
    copy_of_there = existing(sim)
    ns.write_roster([{"o365_id": there, "ou": OU}, {"o365_id": template, "ou": OU},
                     {"o365_id": copy_of_there, "template": template}])
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    s = ns.status_json()
    assert s["users"]["adopted"] == 3 and s["problems"] == []
    refusals = (200,) if sim_dialect.get("answer_style") == "envelope" else (400, 409)
    assert mutating(sim.state()) and all(r["status"] in refusals for r in mutating(sim.state()))


@pytest.mark.parametrize("sim_dialect", dialect_variants("duplicate_status", "answer_style"))
def test_lost_answer_then_duplicate_is_uncertain_under_every_reading(ns, sim):
    user = guid()
    ns.write_roster(roster_users([user], OU))
    # processed, then the answer is lost: the retry is told "exists" in the dialect's words
    sim.config(fail_next=[{"method": "POST", "path": "user", "status": 502, "after": True}])
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    users = ns.status_json()["users"]
    assert users["uncertain"] == 1 and users["adopted"] == 0 and users["created"] == 0


# --- license exhaustion: its own words, or "Organization Unit not allowed" -----------------------

@pytest.mark.sim(licenses=2)
@pytest.mark.parametrize("sim_dialect", dialect_variants("license_text", "field_case",
                                                          "answer_style"))
def test_out_of_licenses_pauses_under_every_reading(ns, sim):
    ids = guids(5)
    ns.write_roster(roster_users(ids, OU))
    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    assert len(sim_ids(sim.state())) == 2
    assert "no licenses left" in p.stderr.lower()
    problems = ns.status_json()["problems"]
    # Waiting for licenses, never failed for six hours as an OU problem.
    assert problems and all(x.get("status") != "failed" for x in problems), problems


@pytest.mark.sim(ous=[OU])
@pytest.mark.parametrize("sim_dialect", [
    *dialect_variants("license_text", "answer_style"),
    pytest.param({"license_text": "ou", "answer_style": "envelope"}, id="license_text=ou,envelope")])
def test_ou_not_allowed_with_licenses_left_fails_the_user(ns, sim):
    ok, wrong = guid(), guid()
    ns.write_roster([{"o365_id": ok, "ou": OU}, {"o365_id": wrong, "ou": OU_OTHER}])
    p = ns.run("apply")
    assert p.returncode == 2, describe(p)
    problems = ns.status_json()["problems"]
    assert [x["o365_id"] for x in problems] == [wrong]
    assert "licenses left" in problems[0]["error"]
    assert sim_ids(sim.state()) == {ok}


# --- an unknown user: 404, or another status ------------------------------------------------------

@pytest.mark.parametrize("sim_dialect", dialect_variants("unknown_user_status", "answer_style"))
def test_user_deleted_out_of_band_is_never_guessed_back(ns, sim, sim_dialect):
    ids = guids(3)
    ns.configure(deletes={"max_percent": 100})
    ns.write_roster(roster_users(ids, OU))
    assert ns.run("apply").returncode == 0
    sim.remove_user(ids[0])
    ns.write_roster(roster_users(ids[1:], OU))
    p = ns.run("apply")
    gone_is_404 = sim_dialect.get("unknown_user_status", 404) == 404
    # 404 means already gone; any other answer is a failure with the server's words, never a
    # success and never a reason to touch anything else.
    assert p.returncode == (0 if gone_is_404 else 2), describe(p)
    assert sim_ids(sim.state()) == set(ids[1:])
    problems = {x["o365_id"] for x in ns.status_json()["problems"]}
    assert problems == (set() if gone_is_404 else {ids[0]})


@pytest.mark.parametrize("sim_dialect", dialect_variants("unknown_user_status", "field_case",
                                                          "answer_style"))
def test_user_show_under_every_reading(ns, sim, sim_dialect):
    there = existing(sim)
    p = ns.run("user", "show", there, "--json")
    assert p.returncode == 0, describe(p)
    assert OU in p.stdout
    p = ns.run("user", "show", guid())
    want = 3 if sim_dialect.get("unknown_user_status", 404) == 404 else 1
    assert p.returncode == want, describe(p)


# --- answer casing: drift is seen whatever the spelling -------------------------------------------

@pytest.mark.parametrize("sim_dialect", dialect_variants("field_case", "answer_style"))
def test_drift_is_seen_under_every_casing(ns, sim):
    moved = existing(sim, ou=OU_OTHER)
    ns.write_roster(roster_users([moved], OU))
    p = ns.run("plan", "--refresh")
    assert "drift" in p.stdout, describe(p)


# --- rate enforcement: 429, or holding requests back ----------------------------------------------

@pytest.mark.sim(rate_ops=10, rate_window=1)
@pytest.mark.parametrize("sim_dialect", [pytest.param({"rate_mode": "429"}, id="rate_mode=429"),
                                         pytest.param({"rate_mode": "delay"}, id="rate_mode=delay")])
def test_rate_window_is_kept_under_every_enforcement(ns, sim):
    ids = guids(30)
    ns.configure(rate_limit={"operations": 10, "window": "1s"})
    ns.write_roster(roster_users(ids, OU))
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    st = sim.state()
    assert sim_ids(st) == set(ids)
    assert st["over_limit"] == 0 and st["max_in_window"] <= 10
    assert [r for r in api_requests(st) if r["status"] == 429] == []


# --- a proxy's login page ------------------------------------------------------------------------

@pytest.mark.parametrize("sim_dialect", [pytest.param({"html_next": 100}, id="html_next=100")])
def test_login_page_is_never_success(ns, sim):
    ids = guids(3)
    ns.configure(retry={"attempts": 2})
    ns.write_roster(roster_users(ids, OU))
    p = ns.run("apply")
    assert p.returncode != 0, describe(p)
    assert ns.status_json()["users"]["present"] == 0 and sim_ids(sim.state()) == set()
