"""Self-test of the simulator's Microsoft Graph (graph_sim.py): the behaviour the directory-source
tests rely on. Run: python3 -m pytest -q tests/sim"""

import json
import urllib.parse
import uuid

import pytest

from simclient import Sim

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def guid():
    return str(uuid.uuid4())


@pytest.fixture
def sim(tmp_path):
    s = Sim.start(tmp_path)
    yield s
    s.stop()


def graph_token(sim):
    status, body = sim.request_token(scope=GRAPH_SCOPE)
    assert status == 200, body
    return body["access_token"]


def get(sim, url_or_path, token):
    path = urllib.parse.urlsplit(url_or_path)
    target = path.path + ("?" + path.query if path.query else "") if path.scheme else url_or_path
    status, headers, data = sim.request("GET", target, headers={"Authorization": f"Bearer {token}"})
    return status, headers, json.loads(data) if data else None


def members_path(group, top=None):
    q = "$select=id,displayName,userPrincipalName,accountEnabled" + (f"&$top={top}" if top else "")
    return f"/v1.0/groups/{group}/transitiveMembers/microsoft.graph.user?{q}"


def test_tokens_are_kept_apart(sim):
    group = guid()
    sim.graph_directory(groups=[{"id": group, "displayName": "G", "members": []}])
    graph, nimbus = graph_token(sim), sim.token()
    assert get(sim, f"/v1.0/groups/{group}", graph)[0] == 200
    status, _, body = get(sim, f"/v1.0/groups/{group}", nimbus)
    assert status == 401 and body["error"]["code"] == "InvalidAuthenticationToken"
    assert sim.api("GET", "user/license-usage", token=graph)[0] == 401
    assert sim.api("GET", "user/license-usage", token=nimbus)[0] == 200


def test_nested_members_paged_to_the_end(sim):
    users = [guid() for _ in range(7)]
    outer, inner, innermost = guid(), guid(), guid()
    sim.graph_directory(
        users=[{"id": u, "displayName": f"U{i}", "accountEnabled": i != 0} for i, u in enumerate(users)],
        groups=[{"id": innermost, "displayName": "C", "members": users[5:] + [users[0]]},
                {"id": inner, "displayName": "B", "members": users[3:5] + [innermost]},
                {"id": outer, "displayName": "A", "members": users[:3] + [inner, outer]}])  # a cycle too
    token = graph_token(sim)
    seen, url, pages = [], members_path(outer, top=3), 0
    while url:
        status, _, body = get(sim, url, token)
        assert status == 200, body
        assert len(body["value"]) <= 3
        seen += body["value"]
        url = body.get("@odata.nextLink")
        pages += 1
    assert pages == 3
    assert sorted(m["id"] for m in seen) == sorted(users)   # each user once
    assert all(m["@odata.type"] == "#microsoft.graph.user" for m in seen)
    assert [m["accountEnabled"] for m in seen if m["id"] == users[0]] == [False]
    assert get(sim, members_path(outer, top=1000), token)[0] == 400   # as Graph: at most 999


def test_faults(sim):
    group = guid()
    sim.graph_generate(group, 5)
    token = graph_token(sim)
    sim.graph_config(fail_next=[{"status": 429, "retry_after": 2, "count": 1}])
    status, headers, body = get(sim, f"/v1.0/groups/{group}", token)
    assert status == 429 and headers["Retry-After"] == "2"
    assert get(sim, f"/v1.0/groups/{group}", token)[0] == 200

    sim.graph_config(fail_next=[{"what": "members", "page": 2, "status": 503, "count": 1}])
    status, _, body = get(sim, members_path(group, top=2), token)
    assert status == 200
    assert get(sim, body["@odata.nextLink"], token)[0] == 503
    assert get(sim, body["@odata.nextLink"], token)[0] == 200

    sim.graph_config(denied=True)
    status, _, body = get(sim, f"/v1.0/groups/{group}", token)
    assert status == 403 and body["error"]["code"] == "Authorization_RequestDenied"
    sim.graph_config(denied=False)
    sim.graph_delete_group(group)
    status, _, body = get(sim, f"/v1.0/groups/{group}", token)
    assert status == 404 and body["error"]["code"] == "Request_ResourceNotFound"
    assert [r["status"] for r in sim.graph_state()["requests"]][-1] == 404
