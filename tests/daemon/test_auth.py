"""The daemon and a tenant whose API access is refused (nimbus-sync.yaml(5), RETRIES: a refused token): the tenant pauses,
`status` shows why, auth is retried with backoff (no request storm), and it recovers by itself."""

import time

import pytest

from .conftest import creates, guid, guids, wait_for, wait_users

OU = guid()
REFUSED = r"critical: Nimbus refused our credentials, tenant paused: Provisioning Api disabled"


def test_auth_failure_pauses_then_recovers(daemon, sim):
    ids = guids(3)
    sim.config(provisioning_disabled=True)
    daemon.write_roster(creates(ids, OU))
    daemon.start()
    daemon.wait_log(REFUSED, 10)
    auth = daemon.status_json()["auth"]
    assert auth["state"] == "failed" and "Provisioning Api disabled" in auth["error"], auth
    assert sim.state()["users"] == {}

    sim.config(provisioning_disabled=False)
    wait_users(sim, ids, 15, daemon)
    wait_for(lambda: daemon.status_json()["auth"]["state"] == "ok", 5, "status to show auth ok")
    daemon.stop_clean()


def test_auth_failure_backs_off_without_request_storm(daemon, sim):
    sim.config(provisioning_disabled=True)
    daemon.write_roster(creates(guids(3), OU))
    daemon.start()
    daemon.wait_log(REFUSED, 10)
    before = sim.state()
    time.sleep(5)                # time is the subject: the retry cap is 1 s
    after = sim.state()
    api = len(after["requests"]) - len(before["requests"])
    tokens = after["tokens_issued"] - before["tokens_issued"]
    print(f"auth refused: {api} API requests and {tokens} token requests in 5 s")
    # With a 1 s cap, a backoff allows a few requests a second at most; a storm is hundreds.
    assert api <= 50 and tokens <= 25, f"{api} API requests, {tokens} tokens in 5 s"
    daemon.stop_clean()
