#!/usr/bin/python3
"""Simulator of the Luware Nimbus Public API and of the Entra ID token endpoint.

The integration tests and the README demo point nimbus-sync at this server
instead of the real cloud. It implements the calls of the Nimbus Public API documentation
with the response shapes assumed there, a sliding-window rate limiter that
either rejects (429) or delays, and scriptable faults (server errors, lost
answers, dropped connections, garbage bodies, scripted answers) so that every
answer of nimbus-sync.yaml(5), RETRIES can be provoked on purpose.

Routes:
  POST /{tenant}/oauth2/v2.0/token    Entra client-credentials token endpoint: the client
                                       secret (Basic header or form), or with --client-cert
                                       a client assertion (RFC 7523) signed RS256 or PS256
                                       with that certificate's key
  *    /api/public-api-next/...        the Nimbus Public API (needs a Bearer token)
  POST /_sim/config                    merge settings (see SETTING_CHECKS)
  GET  /_sim/state                     users, counters, request log, window statistics
  POST /_sim/users, DELETE /_sim/users/{id}   add / remove users out of band
  POST /_sim/reset-log                 clear log, counters and statistics (users and
                                       the limiter's own window stay: a reset does
                                       not give a client a fresh rate budget)
  POST /_sim/revoke-tokens             forget all issued tokens (forces 401)

Beyond the basic faults, a fail_next entry may have "status": 0 (close the
connection without answering) and "after": true (process the call first, so
the scripted answer replaces a real outcome); its "path" is a glob ("user/*").
Each request-log entry also names the injected fault, if any ("fault").

Dialects: the documentation leaves several points open (see docs/design.md, "What the API documentation leaves open"),
so each has a switch, set on the command line (--duplicate-status 400) or at
run time (POST /_sim/config {"duplicate_status": 400}); every default is the
simulator's behaviour from before dialects existed:
  duplicate_status  409 | 400        create or copy of an existing user: 409 "User
                                     already exists", or 400 "User duplication error: ..."
  license_text      licenses | ou    no licence left: 403 "No licenses available", or
                                     403 "Organization Unit not allowed" (the OU text)
  unknown_user_status 404 | 400 | 403  GET or DELETE user/{id} of an unknown user
  field_case        camel | pascal | snake   keys of every JSON API answer, errors
                                     included: o365Id / O365Id / o365_id, message / Message
  rate_mode         reject (= 429) | delay   over the rate limit: 429 with Retry-After,
                                     or the request is held until the window allows it
  basic_auth        lenient | strict  lenient form-decodes the Basic credentials (as
                                     before); strict (RFC 6749 2.3.1, as Entra) also refuses
                                     a raw character an encoder escapes (/ = : % ...) with
                                     AADSTS7000215, so a secret only passes form-encoded
  assertion_alg     any | PS256 | RS256   client assertion algorithms accepted; the
                                     other one is refused with AADSTS5002738
  html_rate, html_next  fraction of API calls, or the next N, answered 200 text/html by
                                     a proxy's "Sign in" page without reaching the API
  redirect_location, redirect_status   when set (scheme://host), every API call is
                                     answered 302 (or 301/303/307/308) with Location
                                     redirect_location + the request's path
  api_host          any | admin | portal   which host serves the API. The host is the
                                     first label of the Host header: a client reaches
                                     "admin" as http(s)://admin.localhost:PORT and "portal"
                                     as http(s)://portal.localhost:PORT (curl resolves
                                     *.localhost to loopback; the TLS certificate names
                                     both). The other one answers 404 text/html; a Host
                                     that is neither (127.0.0.1) always reaches the API.
  answer_style      plain | envelope   the API's own answers as they are, or each in a
                                     result object (envelope): a success as {"isSuccess":
                                     true, "statusCode": 200, "data": ANSWER}, a refusal
                                     (4xx) as 200 {"isSuccess": false, "statusCode": 4xx,
                                     "message": ...}; sign-in, rate limit and injected
                                     faults keep their status either way
Requests that never reach the API (wrong host, redirect, login page) are logged
with their fault ("wrong_host", "redirect", "html") but take no rate-limit slot.

Client assertions are checked as Entra ID checks them: three base64url parts,
alg RS256 or PS256 (see assertion_alg), x5t#S256 naming the registered
certificate, aud the token URL the request was sent to, iss = sub = client_id,
nbf/exp around now (five minutes of clock skew), a jti not seen before, and the
signature. The standard library has no RSA, so the signature is checked by the
openssl command-line tool. Refusals carry Entra's AADSTS codes where they are
known (700027 signature or unknown certificate, 700024 time range, 700021
issuer, 50027 malformed, 5002738 algorithm not accepted).

Only the Python standard library is used. The server binds to 127.0.0.1 only,
prints one line "LISTENING <scheme>://127.0.0.1:<port>" and runs until SIGTERM
or SIGINT. One lock guards all state; sleeps (rate delay, delay_ms) happen
outside it.
"""

import argparse
import base64
import collections
import fnmatch
import hashlib
import http.server
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import graph_sim  # Microsoft Graph: Entra groups (nimbus-sync's directory sources)

API_PREFIX = "/api/public-api-next/"
SIM_PREFIX = "/_sim/"
TOKEN_PATH_RE = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAX_BODY = 1024 * 1024
MAX_LOG = 1_000_000
MAX_TOKEN_LOG = 10_000
MAX_TOKENS = 100_000
LICENSE_NAME = "Contact Center"
USER_TYPES = ("SkillBased", "MsTeams")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_MAX = 16 * 1024
ASSERTION_SKEW = 300        # seconds of clock skew Entra tolerates on nbf and exp
MAX_JTIS = 100_000

DROP = object()  # a handler result meaning "close the connection, answer nothing"

PROBABILITY_KEYS = ("error_rate", "after_error_rate", "drop_rate",
                    "drop_after_rate", "garbage_rate", "html_rate")

# Dialects: one switch for each point the Nimbus and Entra documentation leave open.
# name -> (accepted values, default); each default is what the simulator did before
# dialects existed. Every one is a command-line flag (--duplicate-status 400) and a
# /_sim/config setting. See the module docstring for what each value does.
DIALECTS = {
    "duplicate_status": ((409, 400), 409),
    "license_text": (("licenses", "ou"), "licenses"),
    "unknown_user_status": ((404, 400, 403), 404),
    "field_case": (("camel", "pascal", "snake"), "camel"),
    "basic_auth": (("lenient", "strict"), "lenient"),
    "assertion_alg": (("any", "PS256", "RS256"), "any"),
    "api_host": (("any", "admin", "portal"), "any"),
    "answer_style": (("plain", "envelope"), "plain"),
}
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
HOST_LABELS = ("admin", "portal")
LOGIN_PAGE = (b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>"
              b"<form method=\"post\" action=\"/login\"><h1>Sign in</h1>"
              b"<input name=\"username\"><input name=\"password\" type=\"password\">"
              b"</form></body></html>\n")
NOT_FOUND_PAGE = b"<html><head><title>404 Not Found</title></head><body>Not Found</body></html>\n"
# what a strict form decoder takes: unreserved characters, '*', '+' (a space), %XX
FORM_ENCODED_RE = re.compile(r"(?:[A-Za-z0-9*._~+-]|%[0-9A-Fa-f]{2})*")
ASSERTION_ALGS = ("RS256", "PS256")


def canonical_guid(value):
    """Return the lowercase canonical form of a GUID string, or None."""
    if isinstance(value, str) and GUID_RE.match(value):
        return value.lower()
    return None


def err(status, error, message, headers=None):
    """A Nimbus-style JSON error answer."""
    return Response(status, {"error": error, "message": message}, headers)


def aad_err(status, error, description):
    """An Entra-style OAuth error answer."""
    return Response(status, {"error": error, "error_description": description})


class Response:
    """One answer: status, body (JSON-able object, bytes or str), extra headers."""

    def __init__(self, status, body, headers=None, content_type="application/json"):
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        self.content_type = content_type

    def payload(self):
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


class SettingsError(ValueError):
    """A /_sim/config value that is out of range or of the wrong type."""


def _check_int(key, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SettingsError(f"{key} must be an integer >= {minimum}")
    return value


def _check_number(key, value, minimum, maximum=None, strict_min=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingsError(f"{key} must be a number")
    if value < minimum or (strict_min and value == minimum) or \
            (maximum is not None and value > maximum):
        raise SettingsError(f"{key} out of range")
    return float(value)


def _check_fail_next(value):
    """Validate scripted answers; return them normalised (method/path upper/lower)."""
    if not isinstance(value, list) or len(value) > 10_000:
        raise SettingsError("fail_next must be a list (at most 10000 entries)")
    out = []
    for item in value:
        if not isinstance(item, dict):
            raise SettingsError("fail_next entries must be objects")
        status = _check_int("fail_next.status", item.get("status", 500), 0)
        if status != 0 and not 100 <= status <= 599:
            raise SettingsError("fail_next.status must be 0 (drop) or 100..599")
        body = item.get("body")
        if body is not None and not isinstance(body, (str, dict, list)):
            raise SettingsError("fail_next.body must be a string or JSON value")
        out.append({
            "method": str(item.get("method", "*")).upper(),
            "path": str(item.get("path", "*")).lower(),
            "status": status,
            "count": _check_int("fail_next.count", item.get("count", 1), 1),
            "body": body,
            "after": bool(item.get("after", False)),
            "headers": {str(k): str(v) for k, v in dict(item.get("headers") or {}).items()},
        })
    return out


def _check_guid_list(key, value):
    if value is None:
        return None
    if not isinstance(value, list) or any(canonical_guid(v) is None for v in value):
        raise SettingsError(f"{key} must be null or a list of GUIDs")
    return sorted({canonical_guid(v) for v in value})


def _check_error_codes(value):
    if not isinstance(value, list) or not value or len(value) > 100:
        raise SettingsError("error_codes must be a non-empty list")
    return [_check_status(v) for v in value]


def _check_status(value):
    code = _check_int("status", value, 100)
    if code > 599:
        raise SettingsError("status codes must be 100..599")
    return code


def _check_retry_after(value):
    return None if value is None else _check_int("retry_after", value, 0)


def _check_rate_mode(value):
    if value not in ("reject", "429", "delay"):
        raise SettingsError("rate_mode must be reject (or 429) or delay")
    return "reject" if value == "429" else value


def _check_choice(key, value):
    choices = DIALECTS[key][0]
    if isinstance(value, bool) or value not in choices:
        raise SettingsError(f"{key} must be one of {', '.join(map(str, choices))}")
    return value


def _check_redirect_location(value):
    if value is not None and (not isinstance(value, str) or
                              not re.fullmatch(r"https?://[^/\s]+/?", value)):
        raise SettingsError("redirect_location must be null or a URL of scheme and host")
    return value.rstrip("/") if value else None


def _check_redirect_status(value):
    if isinstance(value, bool) or value not in REDIRECT_STATUSES:
        raise SettingsError("redirect_status must be one of "
                            + ", ".join(map(str, REDIRECT_STATUSES)))
    return value


def _check_bool(key, value):
    if not isinstance(value, bool):
        raise SettingsError(f"{key} must be true or false")
    return value


# key -> validator(value) returning the stored value
SETTING_CHECKS = {
    **{k: (lambda v, k=k: _check_number(k, v, 0.0, 1.0)) for k in PROBABILITY_KEYS},
    "delay_ms": lambda v: _check_number("delay_ms", v, 0.0, 600_000.0),
    "retry_after": _check_retry_after,
    "token_ttl": lambda v: _check_int("token_ttl", v, 0),
    "provisioning_disabled": lambda v: _check_bool("provisioning_disabled", v),
    "licenses": lambda v: _check_int("licenses", v, 0),
    "rate_ops": lambda v: _check_int("rate_ops", v, 1),
    "rate_window": lambda v: _check_number("rate_window", v, 0.0, 86_400.0, strict_min=True),
    "rate_mode": _check_rate_mode,
    "error_codes": _check_error_codes,
    "fail_next": _check_fail_next,
    "token_fail_next": lambda v: _check_int("token_fail_next", v, 0),
    "seed": lambda v: _check_int("seed", v, -(2 ** 63)),
    "allowed_ous": lambda v: _check_guid_list("allowed_ous", v),
    "html_next": lambda v: _check_int("html_next", v, 0),
    "redirect_location": _check_redirect_location,
    "redirect_status": _check_redirect_status,
    **{k: (lambda v, k=k: _check_choice(k, v)) for k in DIALECTS},
}


class SimState:
    """Everything the simulator knows; every method expects self.lock held."""

    def __init__(self, args):
        self.lock = threading.Lock()
        self.tenant = canonical_guid(args.tenant)
        self.client_id = canonical_guid(args.client_id)
        self.client_secret = args.client_secret
        self.verifier = getattr(args, "verifier", None)  # AssertionVerifier; immutable, used unlocked
        self.jtis = {}                  # jti of an accepted assertion -> its exp (wall clock)
        self.scope_suffix = args.scope_suffix
        self.settings = {
            "error_rate": 0.0, "after_error_rate": 0.0, "drop_rate": 0.0,
            "drop_after_rate": 0.0, "garbage_rate": 0.0, "delay_ms": 0.0,
            "retry_after": None, "token_ttl": args.token_ttl,
            "provisioning_disabled": False, "licenses": args.licenses,
            "rate_ops": args.rate_ops, "rate_window": args.rate_window,
            "rate_mode": _check_rate_mode(args.rate_mode), "error_codes": [500, 502, 503],
            "fail_next": [], "token_fail_next": 0, "seed": args.seed,
            "allowed_ous": sorted({canonical_guid(o) for o in args.ou}) if args.ou else None,
            "html_rate": args.html_rate, "html_next": args.html_next,
            "redirect_location": args.redirect_location,
            "redirect_status": args.redirect_status,
            **{k: getattr(args, k) for k in DIALECTS},
        }
        self.rng = random.Random(args.seed)
        self.users = {}
        self.tokens = {}            # token -> monotonic expiry
        self.tokens_issued = 0
        self.token_log = collections.deque(maxlen=MAX_TOKEN_LOG)
        self.slots = collections.deque()   # limiter: arrival (reject) or admission (delay) times
        self.graph = graph_sim.GraphState()  # its own tokens, log and faults; same lock
        self.reset_log()
        for spec in args.seed_user:
            self.put_user(*spec)

    def reset_log(self):
        self.log = collections.deque(maxlen=MAX_LOG)
        self.created_ok = collections.Counter()
        self.deleted_ok = collections.Counter()
        self.over_limit = 0

    # --- users -------------------------------------------------------------

    def put_user(self, o365, ou, kind, licenses=None):
        if licenses is None:
            licenses = [LICENSE_NAME] if kind == "SkillBased" else []
        self.users[o365] = {"o365Id": o365, "organizationUnitId": ou,
                            "userAssignmentType": kind, "licenses": list(licenses)}

    def details(self, o365):
        user = dict(self.users[o365])
        user["licenses"] = list(user["licenses"])
        user["upn"] = f"user-{o365[:8]}@example.test"
        return user

    def licenses_used(self):
        return sum(1 for u in self.users.values() if u["userAssignmentType"] == "SkillBased")

    def ou_allowed(self, ou):
        allowed = self.settings["allowed_ous"]
        return allowed is None or ou in allowed

    # --- settings ----------------------------------------------------------

    def configure(self, patch):
        if not isinstance(patch, dict):
            raise SettingsError("config body must be a JSON object")
        unknown = sorted(set(patch) - set(SETTING_CHECKS))
        if unknown:
            raise SettingsError(f"unknown settings: {', '.join(unknown)}")
        checked = {k: SETTING_CHECKS[k](v) for k, v in patch.items()}
        self.settings.update(checked)
        if "seed" in checked:
            self.rng = random.Random(checked["seed"])

    def chance(self, key):
        """Draw against probability setting KEY; no draw at all when it is 0."""
        p = self.settings[key]
        return p > 0 and self.rng.random() < p

    # --- tokens ------------------------------------------------------------

    def issue_token(self, now):
        if len(self.tokens) >= MAX_TOKENS:
            self.tokens = {t: e for t, e in self.tokens.items() if e > now}
        while len(self.tokens) >= MAX_TOKENS:
            self.tokens.pop(next(iter(self.tokens)))
        token = secrets.token_urlsafe(36)
        ttl = self.settings["token_ttl"]
        self.tokens[token] = now + ttl
        self.tokens_issued += 1
        return token, ttl

    def token_valid(self, token, now):
        expiry = self.tokens.get(token)
        return expiry is not None and expiry > now

    # --- rate limiter ------------------------------------------------------

    def limiter_arrive(self, now):
        """Account one API arrival. Return (admit_at, retry_after_or_None).

        reject mode: every arrival takes a slot, refused ones too (they did
        arrive); the answer is 429 when the window already held rate_ops.
        delay mode: the arrival is admitted when a slot frees; admission
        times are non-decreasing, so the deque stays sorted.
        """
        ops, window = self.settings["rate_ops"], self.settings["rate_window"]
        while self.slots and self.slots[0] <= now - window:
            self.slots.popleft()
        full = len(self.slots) >= ops and self.slots[-ops] > now - window
        if full:
            self.over_limit += 1
        if self.settings["rate_mode"] == "delay":
            admit = self.slots[-ops] + window if full else now
            self._take_slot(admit)
            return admit, None
        self._take_slot(now)
        if full:
            # this refused arrival holds a slot too: the next one is admitted
            # once the ops-th newest arrival (counting this one) has expired
            return now, max(1, math.ceil(self.slots[-ops] + window - now))
        return now, None

    def _take_slot(self, t):
        self.slots.append(t)
        if len(self.slots) > MAX_LOG:
            self.slots.popleft()

    def max_in_window(self):
        """Largest number of logged arrivals inside any window of rate_window."""
        window = self.settings["rate_window"]
        times = sorted(e["mono"] for e in self.log)
        best, i = 0, 0
        for j, t in enumerate(times):
            while t - times[i] >= window:
                i += 1
            best = max(best, j - i + 1)
        return best

    # --- scripted answers --------------------------------------------------

    def take_scripted(self, method, path):
        """Consume and return the first fail_next entry matching METHOD PATH."""
        script = self.settings["fail_next"]
        for i, item in enumerate(script):
            if item["method"] not in ("*", method):
                continue
            if not fnmatch.fnmatchcase(path.lower(), item["path"]):
                continue
            item["count"] -= 1
            if item["count"] <= 0:
                del script[i]
            return item
        return None

    def snapshot(self):
        return {
            "users": {k: self.details(k) for k in sorted(self.users)},
            "created_ok": dict(self.created_ok),
            "deleted_ok": dict(self.deleted_ok),
            "requests": [dict(e) for e in self.log],
            "max_in_window": self.max_in_window(),
            "over_limit": self.over_limit,
            "tokens_issued": self.tokens_issued,
            "token_requests": list(self.token_log),
            "licenses_used": self.licenses_used(),
            "settings": json.loads(json.dumps(self.settings)),
        }


# --- Nimbus API calls (state lock held) ------------------------------------

def no_licenses(st):
    if st.settings["license_text"] == "ou":
        return err(403, "Forbidden", "Organization Unit not allowed")
    return err(403, "Forbidden", "No licenses available")


def already_exists(st):
    if st.settings["duplicate_status"] == 400:
        return err(400, "BadRequest", "User duplication error: a user with this O365Id "
                                      "already exists")
    return err(409, "Conflict", "User already exists")


UNKNOWN_USER = {
    404: ("NotFound", "User not found"),
    400: ("BadRequest", "Invalid o365Id: the user does not exist"),
    403: ("Forbidden", "Access to this user is not allowed"),
}


def unknown_user(st):
    status = st.settings["unknown_user_status"]
    return err(status, *UNKNOWN_USER[status])


def call_create(st, body):
    o365 = canonical_guid(body.get("o365Id")) if isinstance(body, dict) else None
    ou = canonical_guid(body.get("organizationUnitId")) if isinstance(body, dict) else None
    if o365 is None or ou is None:
        return err(400, "BadRequest", "o365Id and organizationUnitId are required")
    if not st.ou_allowed(ou):
        return err(403, "Forbidden", "Organization Unit not allowed")
    if o365 in st.users:
        return already_exists(st)
    if st.licenses_used() >= st.settings["licenses"]:
        return no_licenses(st)
    st.put_user(o365, ou, "SkillBased")
    st.created_ok[o365] += 1
    return Response(200, st.details(o365))


def call_copy(st, body):
    new = canonical_guid(body.get("newO365Id")) if isinstance(body, dict) else None
    src = canonical_guid(body.get("sourceO365Id")) if isinstance(body, dict) else None
    if new is None or src is None:
        return err(400, "BadRequest", '"SourceO365Id" or "NewO365Id" are required')
    if new == src:
        return err(400, "BadRequest", "Duplicate user ids")
    source = st.users.get(src)
    if source is None:
        return err(404, "NotFound", 'A source user with this "SourceO365Id" was not found')
    if source["userAssignmentType"] != "SkillBased":
        return err(400, "BadRequest", "Source user must be a skill-based user")
    if not st.ou_allowed(source["organizationUnitId"]):
        return err(403, "Forbidden", "Organization Unit not allowed")
    if new in st.users:
        return already_exists(st)
    if st.licenses_used() >= st.settings["licenses"]:
        return no_licenses(st)
    st.put_user(new, source["organizationUnitId"], "SkillBased", source["licenses"])
    st.created_ok[new] += 1
    return Response(200, st.details(new))


def call_get(st, o365):
    if o365 not in st.users:
        return unknown_user(st)
    return Response(200, st.details(o365))


def call_license_usage(st):
    total, used = st.settings["licenses"], st.licenses_used()
    return Response(200, {"licenses": [{"name": LICENSE_NAME, "total": total, "used": used,
                                        "available": max(0, total - used)}]})


def call_delete(st, o365, body):
    if body is not None:
        named = body.get("o365Id") if isinstance(body, dict) else None
        if not isinstance(body, dict) or (named is not None and canonical_guid(named) != o365):
            return err(400, "BadRequest", "o365Id in the body does not match the path")
    user = st.users.get(o365)
    if user is None:
        return unknown_user(st)
    if user["userAssignmentType"] != "SkillBased":
        return err(403, "Forbidden", "Only manually added Skill-Based users can be deleted")
    del st.users[o365]
    st.deleted_ok[o365] += 1
    return Response(200, {})


def route_api(st, method, sub, body):
    """Dispatch one authorised API call; SUB is the path after the prefix."""
    if method == "GET" and sub == "user/license-usage":
        return call_license_usage(st)
    if method == "POST" and sub == "user":
        return call_create(st, body)
    if method == "POST" and sub == "user/copy":
        return call_copy(st, body)
    m = re.fullmatch(r"user/([^/]+)", sub)
    if m and method in ("GET", "DELETE"):
        o365 = canonical_guid(urllib.parse.unquote(m.group(1)))
        if o365 is None:
            return err(400, "BadRequest", "Invalid o365Id")
        return call_get(st, o365) if method == "GET" else call_delete(st, o365, body)
    return err(404, "NotFound", "No such API method")


def logged_id(sub, body):
    """The O365 id a request is about, for the request log."""
    m = re.fullmatch(r"user/([^/]+)", sub)
    if m and canonical_guid(urllib.parse.unquote(m.group(1))):
        return canonical_guid(urllib.parse.unquote(m.group(1)))
    if isinstance(body, dict):
        for key in ("newO365Id", "o365Id"):
            if canonical_guid(body.get(key)):
                return canonical_guid(body.get(key))
    return None


# --- faults (state lock held) ----------------------------------------------

def retry_after_headers(st, status):
    ra = st.settings["retry_after"]
    return {"Retry-After": str(ra)} if ra is not None and status in (429, 503) else {}


def server_error(st, status):
    return err(status, "ServerError", "Unable to check configuration",
               retry_after_headers(st, status))


def scripted_response(st, item):
    if item["status"] == 0:
        return DROP
    body = item["body"]
    if body is None:
        body = {"error": "ServerError", "message": "Scripted failure"}
    ctype = "application/json" if not isinstance(body, str) or body[:1] in "{[" else "text/plain"
    headers = {**retry_after_headers(st, item["status"]), **item.get("headers", {})}
    return Response(item["status"], body, headers, ctype)


def faults_before(st, method, sub):
    """Faults answered instead of the call. Return (response or None, after-item, fault)."""
    item = st.take_scripted(method, sub)
    if item is not None and not item["after"]:
        return scripted_response(st, item), None, "fail_next"
    if st.chance("drop_rate"):
        return DROP, None, "drop"
    if st.chance("error_rate"):
        return server_error(st, st.rng.choice(st.settings["error_codes"])), None, "error"
    if method == "GET" and st.chance("garbage_rate"):
        return Response(200, b"<html>oops</html>", content_type="text/html"), None, "garbage"
    return None, item, None


def faults_after(st, item):
    """Faults that replace the answer of a call that was processed."""
    if item is not None:
        return scripted_response(st, item), "fail_next_after"
    if st.chance("drop_after_rate"):
        return DROP, "drop_after"
    if st.chance("after_error_rate"):
        return server_error(st, 500), "after_error"
    return None, None


def authorise(st, headers, now):
    auth = headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not st.token_valid(token.strip(), now):
        return err(401, "Unauthorized", "Invalid or expired token")
    if st.settings["provisioning_disabled"]:
        return err(401, "Unauthorized", "Provisioning Api disabled by admin")
    return None


def host_label(headers):
    """"admin" or "portal" when the Host header's first label says so, else None."""
    label = headers.get("Host", "").split(".", 1)[0].split(":", 1)[0].lower()
    return label if label in HOST_LABELS else None


def intercept(st, headers, sub):
    """Answers of whatever stands in front of the API (lock held): a host that does
    not serve it, a redirect, a proxy's login page. Return (response, fault) or (None, None)."""
    want = st.settings["api_host"]
    label = host_label(headers)
    if want != "any" and label is not None and label != want:
        return Response(404, NOT_FOUND_PAGE, content_type="text/html"), "wrong_host"
    if st.settings["redirect_location"]:
        location = st.settings["redirect_location"] + API_PREFIX + sub
        return Response(st.settings["redirect_status"], b"", {"Location": location},
                        "text/html"), "redirect"
    if st.settings["html_next"] > 0 or st.chance("html_rate"):
        st.settings["html_next"] = max(0, st.settings["html_next"] - 1)
        return Response(200, LOGIN_PAGE, content_type="text/html; charset=utf-8"), "html"
    return None, None


def recase(value, style):
    """VALUE (parsed JSON) with every object key in STYLE: camel, pascal or snake."""
    if isinstance(value, list):
        return [recase(v, style) for v in value]
    if not isinstance(value, dict):
        return value
    if style == "pascal":
        key = lambda k: k[:1].upper() + k[1:]  # noqa: E731
    elif style == "snake":
        key = lambda k: re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", k).lower()  # noqa: E731
    else:
        key = lambda k: k  # noqa: E731
    return {key(k): recase(v, style) for k, v in value.items()}


def handle_api(st, method, sub, headers, body_raw):
    """The whole life of one API request: log, intercepts, limit, auth, faults, call."""
    body, bad_json = parse_json_body(body_raw)
    with st.lock:
        now = time.monotonic()
        entry = {"t": time.time(), "mono": now, "method": method, "path": sub,
                 "id": logged_id(sub, body), "status": None, "fault": None}
        st.log.append(entry)
        resp, entry["fault"] = intercept(st, headers, sub)
        if resp is not None:  # never reached the API: no rate-limit slot
            entry["status"] = resp.status
            return resp
        admit, retry = st.limiter_arrive(now)
    if retry is not None:
        resp = err(429, "TooManyRequests", "Rate limit exceeded", {"Retry-After": str(retry)})
    elif admit > now:
        time.sleep(admit - now)
    with st.lock:
        if resp is None:
            resp = process_api(st, method, sub, headers, body, bad_json, entry)
        entry["status"] = 0 if resp is DROP else resp.status
        delay = st.settings["delay_ms"] / 1000.0
        if resp is not DROP and isinstance(resp.body, (dict, list)):
            resp.body = recase(resp.body, st.settings["field_case"])
    if delay > 0:
        time.sleep(delay)
    return resp


def process_api(st, method, sub, headers, body, bad_json, entry):
    resp = authorise(st, headers, time.monotonic())
    if resp is not None:
        return resp
    resp, after_item, entry["fault"] = faults_before(st, method, sub)
    if resp is not None:
        return resp
    if bad_json:
        resp = err(400, "BadRequest", "The request body is not valid JSON")
    else:
        resp = enveloped(route_api(st, method, sub, body), st.settings["answer_style"])
    replaced, fault = faults_after(st, after_item)
    if replaced is not None:
        entry["fault"] = fault
        return replaced
    return resp


def enveloped(resp, style):
    """RESP as the answer_style dialect says: under envelope, a result object, the verdict in the
    body (a refusal comes with 200) and a success's answer under "data"."""
    if style != "envelope" or not isinstance(resp.body, (dict, list)):
        return resp
    if 200 <= resp.status < 300:
        return Response(resp.status, {"isSuccess": True, "statusCode": resp.status, "data": resp.body},
                        resp.headers)
    if 400 <= resp.status < 500 and isinstance(resp.body, dict):
        return Response(200, {"isSuccess": False, "statusCode": resp.status,
                              "message": resp.body.get("message", resp.body.get("error", ""))},
                        resp.headers)
    return resp


def parse_json_body(raw):
    """Return (value or None, True if a non-empty body was not JSON)."""
    if not raw.strip():
        return None, False
    try:
        return json.loads(raw), False
    except (ValueError, UnicodeDecodeError):
        return None, True


# --- Entra token endpoint --------------------------------------------------

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    """Bytes of a base64url string without padding; ValueError if it is not one."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AssertionVerifier:
    """The certificate registered for the application (--client-cert).

    The thumbprint is hashed here; the public key is extracted once with the
    openssl tool, which then checks each signature. Thread-safe: every check
    uses files of its own.
    """

    def __init__(self, pem_path):
        with open(pem_path, encoding="ascii") as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        self.x5t_s256 = b64url(hashlib.sha256(der).digest())
        self.workdir = tempfile.mkdtemp(prefix="nimbus-sim-cert-")
        self.pubkey = os.path.join(self.workdir, "client-pub.pem")
        out = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", pem_path],
                             check=True, capture_output=True)
        with open(self.pubkey, "wb") as f:
            f.write(out.stdout)

    def signature_ok(self, alg, signed, signature):
        """Does SIGNATURE verify as ALG (RS256 or PS256) over SIGNED (bytes) with the
        registered key? PS256 is RSASSA-PSS with SHA-256, MGF1-SHA-256 and a salt as long
        as the digest (RFC 7518 3.5); openssl refuses any other salt length."""
        pss = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest",
               "-sigopt", "rsa_mgf1_md:sha256"] if alg == "PS256" else []
        tmp = tempfile.mkdtemp(dir=self.workdir)
        try:
            data, sig = os.path.join(tmp, "data"), os.path.join(tmp, "sig")
            with open(data, "wb") as f:
                f.write(signed)
            with open(sig, "wb") as f:
                f.write(signature)
            p = subprocess.run(["openssl", "dgst", "-sha256", *pss, "-verify", self.pubkey,
                                "-signature", sig, data], capture_output=True)
            return p.returncode == 0
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def close(self):
        shutil.rmtree(self.workdir, ignore_errors=True)


def form_decode(text, strict):
    """One form-encoded Basic credential part (RFC 6749 2.3.1), decoded; None when STRICT
    and TEXT holds a character an encoder would have escaped (a raw / = : %)."""
    if strict and not FORM_ENCODED_RE.fullmatch(text):
        return None
    try:
        return urllib.parse.unquote_plus(text, errors="strict")
    except UnicodeDecodeError:
        return None


def client_credentials(headers, form, strict):
    """Client id and secret from the Basic header, else from the form.

    Return (id, secret, ok); ok is False when the Basic header is not valid base64
    or, with STRICT (basic_auth=strict), not form-encoded.
    """
    auth = headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None, None, True     # no client id: AADSTS900144
        cid, _, secret = decoded.partition(":")
        cid, secret = form_decode(cid, strict), form_decode(secret, strict)
        return cid, secret, cid is not None and secret is not None
    return form.get("client_id"), form.get("client_secret"), True


def missing_param(name):
    return aad_err(400, "invalid_request",
                   f"AADSTS900144: The request body must contain the following parameter: '{name}'.")


def malformed_assertion(reason):
    return aad_err(400, "invalid_request",
                   f"AADSTS50027: JWT token is invalid or malformed. [Reason - {reason}]")


def bad_signature(reason):
    return aad_err(401, "invalid_client",
                   f"AADSTS700027: Client assertion contains an invalid signature. [Reason - {reason}]")


def quote(value):
    return repr(value)[:80]


def split_assertion(assertion):
    """(header, claims, signed bytes, signature) of a compact JWS, or a Response."""
    if not isinstance(assertion, str) or not assertion:
        return missing_param("client_assertion")
    if len(assertion) > ASSERTION_MAX:
        return malformed_assertion("The assertion is too long.")
    parts = assertion.split(".")
    if len(parts) != 3:
        return malformed_assertion(f"The token has {len(parts)} parts, not 3.")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (ValueError, RecursionError):
        return malformed_assertion("A part is not base64url-encoded JSON.")
    if not isinstance(header, dict) or not isinstance(claims, dict) or not signature:
        return malformed_assertion("The header or the claims are not a JSON object.")
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def check_signature(verifier, header, signed, signature, accepted):
    """ACCEPTED: the assertion_alg dialect (any, PS256 or RS256)."""
    alg = header.get("alg")
    allowed = ASSERTION_ALGS if accepted == "any" else (accepted,)
    if alg not in allowed:
        return aad_err(400, "invalid_request", f"AADSTS5002738: Invalid JWT token. {quote(alg)} "
                       "is not a supported signature algorithm. Supported signing algorithms "
                       f"are: '{', '.join(allowed)}'")
    thumb = header.get("x5t#S256")
    if verifier is None or thumb != verifier.x5t_s256:
        return bad_signature(f"The key was not found., Thumbprint of key used by client: "
                             f"{quote(thumb)}")
    if not verifier.signature_ok(alg, signed, signature):
        return bad_signature("The signature does not verify with the registered certificate.")
    return None


def check_claims(claims, client_id, audience, now):
    if claims.get("iss") != claims.get("sub") or canonical_guid(claims.get("iss")) is None \
            or canonical_guid(claims.get("iss")) != canonical_guid(client_id):
        return aad_err(401, "invalid_client", "AADSTS700021: Client assertion application "
                       "identifier doesn't match 'client_id' parameter.")
    if claims.get("aud") != audience:
        return malformed_assertion(f"The audience {quote(claims.get('aud'))} is not the token "
                                   f"endpoint {audience}.")
    nbf, exp = claims.get("nbf"), claims.get("exp")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in (nbf, exp)):
        return malformed_assertion("nbf and exp must be numbers.")
    if nbf > now + ASSERTION_SKEW or exp < now - ASSERTION_SKEW or exp < nbf:
        return aad_err(401, "invalid_client", "AADSTS700024: Client assertion is not within its "
                       f"valid time range. Current time: {int(now)}, assertion valid from "
                       f"{int(nbf)}, expiry time of assertion {int(exp)}.")
    if not isinstance(claims.get("jti"), str) or not claims["jti"]:
        return malformed_assertion("The assertion has no jti.")
    return None


def check_assertion(verifier, form, audience, accepted):
    """The checks of a client assertion that need no state (so run them unlocked);
    ACCEPTED is the assertion_alg dialect.

    Return (error Response, None) or (None, (jti, exp)) for the replay check.
    """
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        return aad_err(400, "invalid_request", "AADSTS50027: JWT token is invalid or malformed. "
                       f"[Reason - client_assertion_type must be {ASSERTION_TYPE}.]"), None
    parts = split_assertion(form.get("client_assertion"))
    if isinstance(parts, Response):
        return parts, None
    header, claims, signed, signature = parts
    resp = check_signature(verifier, header, signed, signature, accepted) or \
        check_claims(claims, form.get("client_id"), audience, time.time())
    return (resp, None) if resp else (None, (claims["jti"], claims["exp"]))


def accept_jti(st, jti, exp, now):
    """Remember an accepted assertion's jti; False if it was used before (lock held)."""
    if jti in st.jtis and st.jtis[jti] >= now - ASSERTION_SKEW:
        return False
    if len(st.jtis) >= MAX_JTIS:
        st.jtis = {j: e for j, e in st.jtis.items() if e >= now - ASSERTION_SKEW}
    while len(st.jtis) >= MAX_JTIS:
        st.jtis.pop(next(iter(st.jtis)))
    st.jtis[jti] = exp
    return True


def assertion_auth(st, headers, form, checked):
    """The credential part of token_checks for a request that carries an assertion."""
    if form.get("client_secret") or headers.get("Authorization"):
        return aad_err(400, "invalid_request", "AADSTS50027: JWT token is invalid or malformed. "
                       "[Reason - A client assertion and a client secret were both presented.]")
    resp, claim = checked
    if resp is not None:
        return resp
    if not accept_jti(st, claim[0], claim[1], time.time()):
        return malformed_assertion("The jti of the assertion was used before.")
    return None


def secret_auth(st, secret):
    if not secret:
        return aad_err(401, "invalid_client", "AADSTS7000216: 'client_assertion', "
                       "'client_secret' or 'request' is required for the "
                       "'client_credentials' grant type.")
    if not secrets.compare_digest(secret.encode(), st.client_secret.encode()):
        return aad_err(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
    return None


def token_checks(st, tenant, headers, form, checked):
    """Validate one token request the way Entra would; None when it may pass.

    CHECKED is check_assertion()'s result when the request carries a client
    assertion, else None.
    """
    if canonical_guid(tenant) != st.tenant:
        return aad_err(400, "invalid_request", f"AADSTS90002: Tenant '{tenant}' not found.")
    cid, secret, ok = client_credentials(headers, form,
                                         st.settings["basic_auth"] == "strict")
    if not ok:
        return aad_err(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
    if not cid:
        return missing_param("client_id")
    if canonical_guid(cid) != st.client_id:
        return aad_err(400, "unauthorized_client",
                       f"AADSTS700016: Application with identifier '{cid}' was not found "
                       "in the directory.")
    resp = assertion_auth(st, headers, form, checked) if checked else secret_auth(st, secret)
    if resp is not None:
        return resp
    grant = form.get("grant_type")
    if not grant:
        return missing_param("grant_type")
    if grant != "client_credentials":
        return aad_err(400, "unsupported_grant_type",
                       f"AADSTS70003: The app requested an unsupported grant type '{grant}'.")
    scope = form.get("scope")
    if not scope:
        return missing_param("scope")
    if not scope.endswith(st.scope_suffix):
        return aad_err(400, "invalid_scope",
                       f"AADSTS1002012: The provided value for scope {scope} is not valid. "
                       "Client credential flows must have a scope value with /.default "
                       "suffixed to the resource identifier (application ID URI).")
    return None


def header_alg(assertion):
    """The alg an assertion's header names (for the token log), or None."""
    try:
        header = json.loads(b64url_decode(assertion.split(".", 1)[0]))
    except (AttributeError, ValueError, RecursionError):
        return None
    alg = header.get("alg") if isinstance(header, dict) else None
    return alg if isinstance(alg, str) else None


def handle_token(st, tenant, headers, body_raw, audience):
    """One token request; AUDIENCE is the URL it was sent to (an assertion's aud)."""
    try:
        pairs = urllib.parse.parse_qsl(body_raw.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        pairs = []
    form = dict(pairs)
    uses_assertion = "client_assertion" in form or "client_assertion_type" in form
    with st.lock:
        accepted = st.settings["assertion_alg"]
    # The signature check runs a process: outside the lock.
    checked = check_assertion(st.verifier, form, audience, accepted) if uses_assertion else None
    with st.lock:
        if st.settings["token_fail_next"] > 0:
            st.settings["token_fail_next"] -= 1
            resp = Response(500, {"error": "temporarily_unavailable"})
        else:
            resp = token_checks(st, tenant, headers, form, checked)
        if resp is None and graph_sim.is_graph_scope(form.get("scope")):
            # --- Graph token: valid for /v1.0/ only (graph_sim.py) ---
            ttl = st.settings["token_ttl"]
            resp = Response(200, {"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl,
                                  "access_token": st.graph.issue_token(time.monotonic(), ttl)})
        if resp is None:
            token, ttl = st.issue_token(time.monotonic())
            resp = Response(200, {"token_type": "Bearer", "expires_in": ttl,
                                  "ext_expires_in": ttl, "access_token": token})
        st.token_log.append({"t": time.time(), "tenant": tenant,
                             "scope": form.get("scope"), "status": resp.status,
                             "auth": "assertion" if uses_assertion else "secret",
                             "alg": header_alg(form.get("client_assertion")),
                             "basic": headers.get("Authorization", "").lower().startswith("basic ")})
    return resp


# --- /_sim/ control --------------------------------------------------------

def parse_sim_users(body):
    """Validate a POST /_sim/users list; return [(id, ou, type, licenses)]."""
    if not isinstance(body, list) or len(body) > 1_000_000:
        raise SettingsError("body must be a list of users")
    out = []
    for u in body:
        if not isinstance(u, dict):
            raise SettingsError("users must be objects")
        o365 = canonical_guid(u.get("o365Id"))
        ou = canonical_guid(u.get("organizationUnitId"))
        kind = u.get("userAssignmentType", "MsTeams")
        lic = u.get("licenses")
        if o365 is None or ou is None or kind not in USER_TYPES:
            raise SettingsError("each user needs o365Id, organizationUnitId (GUIDs) "
                                "and userAssignmentType MsTeams|SkillBased")
        if lic is not None and (not isinstance(lic, list) or
                                not all(isinstance(x, str) for x in lic)):
            raise SettingsError("licenses must be a list of strings")
        out.append((o365, ou, kind, lic))
    return out


def handle_sim(st, method, sub, body_raw):
    body, bad_json = parse_json_body(body_raw)
    if bad_json:
        return Response(400, {"error": "body is not valid JSON"})
    try:
        with st.lock:
            return route_sim(st, method, sub, body)
    except SettingsError as e:
        return Response(400, {"error": str(e)})


def route_sim(st, method, sub, body):
    if method == "GET" and sub == "state":
        return Response(200, st.snapshot())
    if method == "POST" and sub == "config":
        st.configure(body if body is not None else {})
        return Response(200, {"settings": json.loads(json.dumps(st.settings))})
    if method == "POST" and sub == "users":
        for spec in parse_sim_users(body):
            st.put_user(*spec)
        return Response(200, {"users": len(st.users)})
    if method == "POST" and sub == "reset-log":
        st.reset_log()
        return Response(200, {})
    if method == "POST" and sub == "revoke-tokens":
        revoked, st.tokens = len(st.tokens), {}
        return Response(200, {"revoked": revoked})
    m = re.fullmatch(r"users/([^/]+)", sub)
    if m and method == "DELETE":
        o365 = canonical_guid(m.group(1))
        if o365 is None or o365 not in st.users:
            return Response(404, {"error": "no such user"})
        del st.users[o365]
        return Response(200, {})
    return Response(404, {"error": "no such simulator control"})


# --- HTTP plumbing ---------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    """Reads one request (body by Content-Length), routes it, writes the answer."""

    protocol_version = "HTTP/1.1"
    server_version = "nimbus-sim/1"
    timeout = 120  # idle keep-alive connections are closed after this

    def do_GET(self):
        self.dispatch()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_GET

    def read_body(self):
        """The request body, or None after answering 411/413/400 and closing."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.fail_plain(411, "Content-Length required")
            return None
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0:
            self.fail_plain(400, "bad Content-Length")
            return None
        if length > MAX_BODY:
            self.fail_plain(413, "request body too large")
            return None
        return self.rfile.read(length) if length else b""

    def fail_plain(self, status, message):
        self.close_connection = True
        self.answer(Response(status, {"error": message}), close=True)

    def dispatch(self):
        st = self.server.state
        body = self.read_body()
        if body is None:
            return
        path = urllib.parse.urlsplit(self.path).path
        method = self.command
        m = TOKEN_PATH_RE.match(path)
        if path.startswith(graph_sim.PREFIX) or path.startswith(SIM_PREFIX + graph_sim.CONTROL_PREFIX):
            self.dispatch_graph(st, method, path, body)
            return
        if path.startswith(API_PREFIX):
            resp = handle_api(st, method, path[len(API_PREFIX):], self.headers, body)
        elif path.startswith(SIM_PREFIX):
            resp = handle_sim(st, method, path[len(SIM_PREFIX):], body)
        elif m and method == "POST":
            audience = f"{'https' if self.server.tls_context else 'http'}://" \
                       f"{self.headers.get('Host', '')}{path}"
            resp = handle_token(st, urllib.parse.unquote(m.group(1)), self.headers, body, audience)
        else:
            resp = Response(404, {"error": "NotFound", "message": "No such endpoint"})
        if resp is DROP:
            self.close_connection = True
            return
        self.answer(resp)

    def dispatch_graph(self, st, method, path, body):
        """Microsoft Graph and its controls: see graph_sim.py."""
        if path.startswith(SIM_PREFIX):
            parsed, bad_json = parse_json_body(body)
            status, answer = (400, {"error": "body is not valid JSON"}) if bad_json else \
                graph_sim.handle_control(st, method, path[len(SIM_PREFIX + graph_sim.CONTROL_PREFIX):],
                                         parsed)
            self.answer(Response(status, answer))
            return
        base = f"{'https' if self.server.tls_context else 'http'}://{self.headers.get('Host', '')}"
        resp = graph_sim.handle(st, method, path, urllib.parse.urlsplit(self.path).query, self.headers,
                                base, time.monotonic(), time.time())
        if resp is None:
            self.close_connection = True
            return
        self.answer(Response(resp[0], resp[1], resp[2]))

    def answer(self, resp, close=False):
        payload = resp.payload()
        try:
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for k, v in resp.headers.items():
                self.send_header(k, v)
            if close:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except OSError:
            self.close_connection = True

    def log_message(self, format, *args):  # noqa: A002 (base class signature)
        if self.server.verbose:
            sys.stderr.write("nimbus-sim: %s %s\n" % (self.address_string(), format % args))


class SimServer(http.server.ThreadingHTTPServer):
    """Threaded server on 127.0.0.1; TLS handshakes happen in the worker thread."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, port, state, tls_context, verbose):
        self.state = state
        self.tls_context = tls_context
        self.verbose = verbose
        super().__init__(("127.0.0.1", port), Handler)

    def finish_request(self, request, client_address):
        if self.tls_context is None:
            return super().finish_request(request, client_address)
        request.settimeout(Handler.timeout)
        try:
            conn = self.tls_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return None  # e.g. a client that refuses our certificate
        try:
            return super().finish_request(conn, client_address)
        finally:
            conn.close()

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, socket.timeout)):
            return  # clients that hang up are part of the tests
        super().handle_error(request, client_address)


# --- command line ----------------------------------------------------------

def guid_arg(value):
    g = canonical_guid(value)
    if g is None:
        raise argparse.ArgumentTypeError(f"not a GUID: {value!r}")
    return g


def seed_user_arg(value):
    parts = value.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("expected GUID:OU:TYPE")
    o365, ou, kind = guid_arg(parts[0]), guid_arg(parts[1]), parts[2]
    kinds = {k.lower(): k for k in USER_TYPES}
    if kind.lower() not in kinds:
        raise argparse.ArgumentTypeError("TYPE must be SkillBased or MsTeams")
    return o365, ou, kinds[kind.lower()]


def positive_float(value):
    v = float(value)
    if not v > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return v


def probability(value):
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return v


def add_dialect_args(p):
    g = p.add_argument_group("dialects", "readings of what the documentation leaves open")
    for key, (choices, default) in DIALECTS.items():
        g.add_argument("--" + key.replace("_", "-"), type=type(default), choices=choices,
                       default=default)
    g.add_argument("--html-rate", type=probability, default=0.0,
                   help="fraction of API calls answered by a proxy's HTML login page")
    g.add_argument("--html-next", type=int, default=0,
                   help="answer the next N API calls with that page")
    g.add_argument("--redirect-location", type=_check_redirect_location, default=None,
                   metavar="URL", help="answer every API call with a redirect to URL's host")
    g.add_argument("--redirect-status", type=int, choices=REDIRECT_STATUSES, default=302)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Nimbus Public API + Entra token simulator")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--tls", metavar="CERTDIR", help="serve HTTPS with CERTDIR/server.{pem,key}")
    p.add_argument("--tenant", type=guid_arg, required=True)
    p.add_argument("--client-id", type=guid_arg, required=True)
    p.add_argument("--client-secret", required=True)
    p.add_argument("--client-cert", metavar="PEM",
                   help="the application's registered certificate: accept client assertions "
                        "signed with its key")
    p.add_argument("--scope-suffix", default="/.default")
    p.add_argument("--ou", type=guid_arg, action="append", default=[])
    p.add_argument("--licenses", type=int, default=100000)
    p.add_argument("--rate-ops", type=int, default=60)
    p.add_argument("--rate-window", type=positive_float, default=60.0)
    p.add_argument("--rate-mode", choices=("reject", "429", "delay"), default="reject")
    p.add_argument("--token-ttl", type=int, default=3600)
    p.add_argument("--seed-user", type=seed_user_arg, action="append", default=[])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--verbose", action="store_true", help="log each request to stderr")
    add_dialect_args(p)
    args = p.parse_args(argv)
    if args.rate_ops < 1 or args.licenses < 0 or args.token_ttl < 0 or args.html_next < 0:
        p.error("--rate-ops must be >= 1, --licenses, --token-ttl and --html-next >= 0")
    return args


def tls_context(certdir):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(os.path.join(certdir, "server.pem"), os.path.join(certdir, "server.key"))
    return ctx


def write_port_file(path, port):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    ctx = tls_context(args.tls) if args.tls else None
    args.verifier = AssertionVerifier(args.client_cert) if args.client_cert else None
    server = SimServer(args.port, SimState(args), ctx, args.verbose)
    port = server.server_address[1]
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    worker.start()
    if args.port_file:
        write_port_file(args.port_file, port)
    print(f"LISTENING {'https' if ctx else 'http'}://127.0.0.1:{port}", flush=True)
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    if args.verifier:
        args.verifier.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
