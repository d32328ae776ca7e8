"""Microsoft Graph part of the simulator: Entra ID groups and their user members.

nimbus_sim.py routes here every request whose path starts with /v1.0/ and the
controls under /_sim/graph/, and hands token requests for GRAPH_SCOPE to
issue_token(): Graph tokens and Nimbus tokens are kept apart, so a Nimbus
token is refused by Graph (401) and a Graph token by Nimbus.

Routes (GET only, Bearer token for GRAPH_SCOPE):
  /v1.0/groups/{id}                                           the group: id, displayName
  /v1.0/groups/{id}/transitiveMembers/microsoft.graph.user    its user members, nested
        groups expanded (each user once), $select honoured, pages of $top
        (default 100, at most 999; more is a 400 as in Graph) linked by an
        absolute @odata.nextLink carrying $skiptoken

Controls:
  POST   /_sim/graph/directory   {"users": [{id, displayName, userPrincipalName,
                                  accountEnabled}], "groups": [{id, displayName,
                                  members: [user or group ids]}]}: upsert
  POST   /_sim/graph/generate    {"group", "displayName", "count", "disabled_every",
                                  "seed"}: a group of COUNT synthetic users (ids
                                  uuid5(seed, i)); answers {"ids": [...]}
  POST   /_sim/graph/members     {"group", "add": [ids], "remove": [ids]}
  DELETE /_sim/graph/groups/{id} the group is deleted in Entra (404 from then on)
  POST   /_sim/graph/config      {"denied": bool (403 Authorization_RequestDenied),
                                  "fail_next" (replaces the list): [{"what": "group"|"members"|"*",
                                  "group": id|"*", "page": n|null, "status": s
                                  (0 = drop the connection), "count": n,
                                  "retry_after": seconds|null}]}
  GET    /_sim/graph/state       request log, counters, settings

The state lock of nimbus_sim.py guards everything here.
"""

import collections
import secrets
import urllib.parse
import uuid

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
PREFIX = "/v1.0/"
CONTROL_PREFIX = "graph/"
MEMBERS_CAST = "transitiveMembers/microsoft.graph.user"
DEFAULT_TOP = 100
MAX_TOP = 999
MAX_LOG = 100_000
MAX_TOKENS = 100_000
MAX_GENERATE = 2_000_000
USER_PROPS = ("id", "displayName", "userPrincipalName", "accountEnabled")


class ControlError(ValueError):
    """A control request with a bad value."""


def is_graph_scope(scope):
    return scope == GRAPH_SCOPE


def graph_error(status, code, message, headers=None):
    return status, {"error": {"code": code, "message": message,
                              "innerError": {"request-id": str(uuid.uuid4())}}}, headers or {}


def canonical(value):
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


class GraphState:
    """Directory, tokens, faults and request log; every method expects the lock held."""

    def __init__(self):
        self.users = {}           # id -> {displayName, userPrincipalName, accountEnabled}
        self.groups = {}          # id -> {"displayName": s, "members": [ids]}
        self.tokens = {}          # token -> monotonic expiry
        self.settings = {"denied": False, "fail_next": []}
        self.log = collections.deque(maxlen=MAX_LOG)
        self.counts = collections.Counter()
        self.version = 0          # bumped on every directory change
        self._cache = {}          # (group, version) -> transitive user ids

    # --- tokens -------------------------------------------------------------

    def issue_token(self, now, ttl):
        if len(self.tokens) >= MAX_TOKENS:
            self.tokens = {t: e for t, e in self.tokens.items() if e > now}
        token = "graph~" + secrets.token_urlsafe(32)
        self.tokens[token] = now + ttl
        self.counts["tokens"] += 1
        return token

    def token_valid(self, headers, now):
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        expiry = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        return expiry is not None and expiry > now

    # --- directory ----------------------------------------------------------

    def changed(self):
        self.version += 1
        self._cache.clear()

    def transitive_users(self, gid):
        """User ids of a group, nested groups expanded, each once, in a stable order."""
        key = (gid, self.version)
        if key not in self._cache:
            seen, out, stack, visited = set(), [], [gid], set()
            while stack:
                g = stack.pop()
                if g in visited or g not in self.groups:
                    continue
                visited.add(g)
                for m in self.groups[g]["members"]:
                    if m in self.groups:
                        stack.append(m)
                    elif m in self.users and m not in seen:
                        seen.add(m)
                        out.append(m)
            self._cache = {key: out}
        return self._cache[key]

    def upsert(self, body):
        if not isinstance(body, dict):
            raise ControlError("body must be an object")
        for u in body.get("users", []):
            uid = canonical(u.get("id")) if isinstance(u, dict) else None
            if uid is None:
                raise ControlError("each user needs an id (GUID)")
            self.users[uid] = {"displayName": u.get("displayName"),
                               "userPrincipalName": u.get("userPrincipalName"),
                               "accountEnabled": u.get("accountEnabled", True)}
        for g in body.get("groups", []):
            gid = canonical(g.get("id")) if isinstance(g, dict) else None
            members = [canonical(m) for m in g.get("members", [])] if gid else [None]
            if gid is None or None in members:
                raise ControlError("each group needs an id and a list of member ids (GUIDs)")
            self.groups[gid] = {"displayName": g.get("displayName"), "members": members}
        self.changed()
        return {"users": len(self.users), "groups": len(self.groups)}

    def generate(self, body):
        gid = canonical(body.get("group")) if isinstance(body, dict) else None
        count = body.get("count") if gid else None
        if not isinstance(count, int) or not 0 <= count <= MAX_GENERATE:
            raise ControlError(f"generate needs a group id and a count of 0..{MAX_GENERATE}")
        every = body.get("disabled_every") or 0
        seed = uuid.UUID(canonical(body.get("seed")) or gid)
        ids = []
        for i in range(count):
            uid = str(uuid.uuid5(seed, str(i)))
            self.users[uid] = {"displayName": f"User {i}", "userPrincipalName": f"user{i}@sim.test",
                               "accountEnabled": not (every and i % every == every - 1)}
            ids.append(uid)
        self.groups[gid] = {"displayName": body.get("displayName", "Generated"), "members": ids}
        self.changed()
        return {"ids": ids}

    def members(self, body):
        gid = canonical(body.get("group")) if isinstance(body, dict) else None
        if gid not in self.groups:
            raise ControlError("no such group")
        members = self.groups[gid]["members"]
        remove = {canonical(m) for m in body.get("remove", [])}
        members[:] = [m for m in members if m not in remove]
        members.extend(canonical(m) for m in body.get("add", []) if canonical(m) not in members)
        self.changed()
        return {"members": len(members)}

    def delete_group(self, gid):
        gid = canonical(gid)
        if gid not in self.groups:
            raise ControlError("no such group")
        del self.groups[gid]
        self.changed()
        return {}

    def configure(self, body):
        if not isinstance(body, dict) or set(body) - {"denied", "fail_next"}:
            raise ControlError("config takes denied and fail_next")
        if "denied" in body:
            self.settings["denied"] = bool(body["denied"])
        if "fail_next" in body:
            self.settings["fail_next"] = []
        for item in body.get("fail_next", []):
            if not isinstance(item, dict) or not isinstance(item.get("status", 500), int):
                raise ControlError("fail_next entries are objects with an integer status")
            self.settings["fail_next"].append({
                "what": item.get("what", "*"), "group": canonical(item.get("group")) or "*",
                "page": item.get("page"), "status": item.get("status", 500),
                "count": int(item.get("count", 1)), "retry_after": item.get("retry_after")})
        return {"settings": self.settings}

    def snapshot(self):
        return {"requests": list(self.log), "counts": dict(self.counts), "settings": self.settings,
                "version": self.version}

    # --- faults -------------------------------------------------------------

    def take_fault(self, what, gid, page):
        for i, f in enumerate(self.settings["fail_next"]):
            if f["what"] not in ("*", what) or f["group"] not in ("*", gid):
                continue
            if f["page"] is not None and f["page"] != page:
                continue
            f["count"] -= 1
            if f["count"] <= 0:
                del self.settings["fail_next"][i]
            return f
        return None


# --- requests (lock held) ----------------------------------------------------

def fault_response(fault):
    if fault["status"] == 0:
        return None
    headers = {"Retry-After": str(fault["retry_after"])} if fault["retry_after"] is not None else {}
    if fault["status"] == 429:
        return graph_error(429, "TooManyRequests", "Too many requests.", headers)
    return graph_error(fault["status"], "UnknownError", "Scripted failure.", headers)


def group_answer(gs, gid, base):
    g = gs.groups[gid]
    return 200, {"@odata.context": f"{base}/v1.0/$metadata#groups(id,displayName)/$entity",
                 "id": gid, "displayName": g["displayName"]}, {}


def parse_paging(query):
    """(select list, top, offset) from the query, or an error answer."""
    q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    select = [s for s in q.get("$select", ",".join(USER_PROPS)).split(",") if s]
    try:
        top = int(q.get("$top", DEFAULT_TOP))
        offset = int(q.get("$skiptoken", "0"))
    except ValueError:
        return graph_error(400, "Request_BadRequest", "Invalid value for $top or $skiptoken.")
    if not 1 <= top <= MAX_TOP:
        return graph_error(400, "Request_BadRequest", "Invalid page size specified: " + str(top))
    return select, top, offset


def members_answer(gs, gid, query, base):
    paging = parse_paging(query)
    if isinstance(paging[0], int):
        return paging
    select, top, offset = paging
    ids = gs.transitive_users(gid)
    value = []
    for uid in ids[offset:offset + top]:
        user = dict(gs.users[uid], id=uid)
        item = {"@odata.type": "#microsoft.graph.user"}
        item.update({k: user.get(k) for k in select if k in USER_PROPS})
        value.append(item)
    body = {"@odata.context": f"{base}/v1.0/$metadata#users({','.join(select)})", "value": value}
    if offset + top < len(ids):
        q = urllib.parse.urlencode({"$select": ",".join(select), "$top": top,
                                    "$skiptoken": offset + top}, safe="$,")
        body["@odata.nextLink"] = f"{base}/v1.0/groups/{gid}/{MEMBERS_CAST}?{q}"
    return 200, body, {}


def route(gs, method, sub, query, base):
    """A Graph request after the auth check: (status, body, headers) or None to drop."""
    parts = sub.split("/", 2)
    gid = canonical(parts[1]) if len(parts) >= 2 and parts[0] == "groups" else None
    what = "group" if len(parts) == 2 else "members" if len(parts) == 3 and parts[2] == MEMBERS_CAST \
        else None
    if method != "GET" or gid is None or what is None:
        return graph_error(400, "Request_BadRequest", "Unsupported request.")
    page = None
    if what == "members":
        paging = parse_paging(query)
        page = paging[2] // paging[1] + 1 if not isinstance(paging[0], int) else None
    fault = gs.take_fault(what, gid, page)
    if fault is not None:
        return fault_response(fault)
    if gs.settings["denied"]:
        return graph_error(403, "Authorization_RequestDenied",
                           "Insufficient privileges to complete the operation.")
    if gid not in gs.groups:
        return graph_error(404, "Request_ResourceNotFound",
                           f"Resource '{gid}' does not exist or one of its queried reference-property "
                           "objects are not present.")
    return group_answer(gs, gid, base) if what == "group" else members_answer(gs, gid, query, base)


def handle(st, method, path, query, headers, base, now, t):
    """One Graph request. Returns (status, body, headers), or None to drop the connection."""
    gs = st.graph
    sub = path[len(PREFIX):]
    with st.lock:
        entry = {"t": t, "method": method, "path": path, "query": query, "status": None}
        gs.log.append(entry)
        gs.counts["requests"] += 1
        if not gs.token_valid(headers, now):
            resp = graph_error(401, "InvalidAuthenticationToken", "Access token validation failure.")
        else:
            resp = route(gs, method, urllib.parse.unquote(sub), query, base)
        entry["status"] = 0 if resp is None else resp[0]
        if resp is not None:
            gs.counts[str(resp[0])] += 1
    return resp


def handle_control(st, method, sub, body):
    """A /_sim/graph/... control; returns (status, body)."""
    gs = st.graph
    try:
        with st.lock:
            if method == "GET" and sub == "state":
                return 200, gs.snapshot()
            if method == "POST" and sub == "directory":
                return 200, gs.upsert(body)
            if method == "POST" and sub == "generate":
                return 200, gs.generate(body)
            if method == "POST" and sub == "members":
                return 200, gs.members(body)
            if method == "POST" and sub == "config":
                return 200, gs.configure(body if body is not None else {})
            if method == "DELETE" and sub.startswith("groups/"):
                return 200, gs.delete_group(sub[len("groups/"):])
    except ControlError as e:
        return 400, {"error": str(e)}
    return 404, {"error": "no such graph control"}
