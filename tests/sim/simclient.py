"""Start, drive and stop the Nimbus simulator (nimbus_sim.py) from Python.

Used by the pytest suites and by the README demo:

    with Sim.start(tmp_path, tls=True, licenses=5, ous=[OU]) as sim:
        sim.add_users([{"o365Id": ID, "organizationUnitId": OU,
                        "userAssignmentType": "MsTeams"}])
        ...point nimbus-sync at sim.api_base / sim.token_url / sim.scope...
        assert sim.state()["over_limit"] == 0

Each instance gets a fresh tenant id, client id and secret, runs in its own
directory under the given tmpdir, and is always stopped again (on exit of the
with block, by stop(), or at interpreter exit). Only the standard library (and
the openssl tool, for TLS material and client assertions).

Certificate credentials: Sim.start(tmp_path, client_cert=True) makes a client
certificate and key (sim.client_cert_file, sim.client_key_file) and registers
the certificate with the simulator; sim.wrong_key_file / sim.wrong_cert_file
are a key pair it does not know. sim.assertion() builds a signed client
assertion (alg="RS256" or "PS256"), sim.request_token_assertion() sends one.

Dialects (nimbus_sim.py's docstring): Sim.start(tmp, duplicate_status=400, field_case="pascal")
starts a simulator speaking them, sim.dialect(**switches) changes them at run time,
sim.api(..., host="portal") and sim.host_url("portal") address the api_host dialect.
"""

import atexit
import base64
import hashlib
import json
import os
import secrets
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import nimbus_sim

HERE = os.path.dirname(os.path.abspath(__file__))
SIM_SCRIPT = os.path.join(HERE, "nimbus_sim.py")
MKCERTS = os.path.join(HERE, "mkcerts.sh")
API_PATH = "/api/public-api-next/"
START_TIMEOUT = 15.0
HTTP_TIMEOUT = 30.0

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# The dialect switches (see nimbus_sim.py's docstring): name -> (values, default).
DIALECTS = nimbus_sim.DIALECTS
DIALECT_OPTIONS = (*DIALECTS, "rate_mode", "html_rate", "html_next", "redirect_location",
                   "redirect_status")

# Sim.start keyword -> command-line flag; list-valued ones repeat the flag.
SCALAR_OPTIONS = ("port", "scope_suffix", "licenses", "rate_ops", "rate_window",
                  "token_ttl", "seed", "client_cert", *DIALECT_OPTIONS)
LIST_OPTIONS = {"ous": "--ou", "seed_users": "--seed-user"}


class SimError(RuntimeError):
    """The simulator could not be started or answered a control call badly."""


def _seed_user_spec(value):
    if isinstance(value, str):
        return value
    return ":".join(value)


def build_command(certdir, port_file, tenant, client_id, secret, options):
    """The argv that starts nimbus_sim.py with OPTIONS (see Sim.start)."""
    cmd = [sys.executable, SIM_SCRIPT, "--tenant", tenant, "--client-id", client_id,
           "--client-secret", secret, "--port-file", port_file]
    if certdir:
        cmd += ["--tls", certdir]
    for key, value in options.items():
        if key in LIST_OPTIONS:
            for item in value:
                cmd += [LIST_OPTIONS[key], _seed_user_spec(item) if key == "seed_users" else item]
        elif key in SCALAR_OPTIONS:
            if value is not None:
                cmd += ["--" + key.replace("_", "-"), str(value)]
        elif key == "verbose":
            cmd += ["--verbose"] if value else []
        else:
            raise TypeError(f"unknown simulator option: {key}")
    return cmd


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def cert_thumbprint(cert_file):
    """x5t#S256 of a PEM certificate: base64url SHA-256 of its DER."""
    with open(cert_file, encoding="ascii") as f:
        return b64url(hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).digest())


def _merge_claims(base, patch):
    for key, value in (patch or {}).items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


PSS_OPTIONS = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest",
               "-sigopt", "rsa_mgf1_md:sha256"]


def make_assertion(key_file, cert_file, client_id, audience, header=None, claims=None,
                   workdir=None, alg="RS256"):
    """A client assertion (compact JWS) signed ALG (RS256 or PS256) with KEY_FILE by the
    openssl tool.

    The header names CERT_FILE by x5t#S256; HEADER and CLAIMS entries override the
    defaults (None removes one), so tests can build every wrong variant.
    """
    now = int(time.time())
    head = _merge_claims({"alg": alg, "typ": "JWT", "x5t#S256": cert_thumbprint(cert_file)},
                         header)
    body = _merge_claims({"aud": audience, "iss": client_id, "sub": client_id,
                          "jti": secrets.token_hex(16), "nbf": now, "exp": now + 600,
                          "iat": now}, claims)
    signed = b64url(json.dumps(head).encode()) + "." + b64url(json.dumps(body).encode())
    tmp = tempfile.mkdtemp(prefix="assertion-", dir=workdir)
    data = os.path.join(tmp, "data")
    with open(data, "w", encoding="ascii") as f:
        f.write(signed)
    pss = PSS_OPTIONS if alg == "PS256" else []
    sig = subprocess.run(["openssl", "dgst", "-sha256", *pss, "-sign", key_file, data],
                         check=True, capture_output=True).stdout
    os.unlink(data)
    os.rmdir(tmp)
    return signed + "." + b64url(sig)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hand 3xx answers back to the caller (as HTTPError) instead of following them."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Sim:
    """A running simulator process and the credentials it accepts."""

    def __init__(self, workdir, tls, tenant, client_id, secret, scope_suffix):
        self.workdir = workdir
        self.tls = tls
        self.tenant = tenant
        self.client_id = client_id
        self.secret = secret
        self.scope = ("https://admin.sim.test" + scope_suffix
                      if scope_suffix.startswith("/") else scope_suffix)
        self.certdir = os.path.join(workdir, "certs")
        self.ca_file = os.path.join(self.certdir, "ca.pem") if tls else None
        self.other_ca_file = os.path.join(self.certdir, "other-ca.pem") if tls else None
        self.client_cert_file = None    # the certificate registered with the simulator
        self.client_key_file = None     # its key, when mkcerts.sh made them
        self.wrong_key_file = None      # a key pair the simulator does not know
        self.wrong_cert_file = None
        self.proc = None
        self.url = None
        self.port = None

    # --- life cycle --------------------------------------------------------

    @classmethod
    def start(cls, tmpdir, tls=False, **options):
        """Spawn a simulator under TMPDIR and wait until it listens.

        OPTIONS: ous=[GUID...], licenses, rate_ops, rate_window, rate_mode,
        token_ttl, seed_users=[(id, ou, "MsTeams"|"SkillBased") or "id:ou:type"],
        scope_suffix, seed, port, verbose, and tenant/client_id/secret to
        override the freshly generated credentials. client_cert=True makes a
        client certificate and registers it (the secret stays valid too);
        client_cert=PATH registers that PEM certificate instead. Every dialect
        switch (DIALECT_OPTIONS, e.g. duplicate_status=400, field_case="pascal")
        is an option too; None leaves the default.
        """
        workdir = tempfile.mkdtemp(prefix="sim-", dir=os.fspath(tmpdir))
        tenant = options.pop("tenant", str(uuid.uuid4()))
        client_id = options.pop("client_id", str(uuid.uuid4()))
        secret = options.pop("secret", "sim~" + secrets.token_urlsafe(24))
        sim = cls(workdir, tls, tenant, client_id, secret,
                  options.get("scope_suffix", "/.default"))
        if tls or options.get("client_cert") is True:
            subprocess.run(["sh", MKCERTS, sim.certdir], check=True)
        if options.get("client_cert") is True:
            sim._use_generated_client_cert()
            options["client_cert"] = sim.client_cert_file
        elif options.get("client_cert"):
            sim.client_cert_file = os.fspath(options["client_cert"])
        cmd = build_command(sim.certdir if tls else None, os.path.join(workdir, "port"),
                            tenant, client_id, secret, options)
        sim._spawn(cmd)
        return sim

    def _use_generated_client_cert(self):
        self.client_cert_file = os.path.join(self.certdir, "client.pem")
        self.client_key_file = os.path.join(self.certdir, "client.key")
        self.wrong_key_file = os.path.join(self.certdir, "client-wrong.key")
        self.wrong_cert_file = os.path.join(self.certdir, "client-wrong.pem")

    def _spawn(self, cmd):
        out_path = os.path.join(self.workdir, "stdout")
        err_path = os.path.join(self.workdir, "stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        atexit.register(self.stop)
        try:
            self.url = self._wait_listening(out_path, err_path)
        except BaseException:
            self.stop()
            raise
        self.port = int(self.url.rsplit(":", 1)[1])

    def _wait_listening(self, out_path, err_path):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with open(out_path, encoding="utf-8", errors="replace") as f:
                line = f.readline()
            if line.endswith("\n") and line.startswith("LISTENING "):
                return line.split()[1]
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        with open(err_path, encoding="utf-8", errors="replace") as f:
            detail = f.read()[-4000:]
        raise SimError(f"simulator did not start (exit {self.proc.poll()}): {detail}")

    def stop(self):
        """Terminate the simulator; kill it if it has not gone after 5 s."""
        atexit.unregister(self.stop)
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    # --- addresses ---------------------------------------------------------

    @property
    def api_base(self):
        """The API prefix URL, e.g. http://127.0.0.1:P/api/public-api-next/."""
        return self.url + API_PATH

    @property
    def token_url(self):
        return f"{self.url}/{self.tenant}/oauth2/v2.0/token"

    def host_url(self, label):
        """The sim under host LABEL ("admin" or "portal"), for the api_host dialect:
        e.g. http://portal.localhost:P (curl resolves *.localhost to loopback)."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{label}.localhost:{self.port}"

    def ssl_context(self, cafile=None):
        """A verifying client context trusting CAFILE (default: the sim's CA)."""
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=cafile or self.ca_file)

    # --- raw HTTP ----------------------------------------------------------

    def request(self, method, path, body=None, headers=None, context=None):
        """One HTTP request to the sim. Return (status, headers, body bytes).

        BODY may be bytes, str or a JSON-able value. HTTP errors and redirects are
        returned, not raised or followed; network and TLS errors are raised.
        """
        data = None
        hdrs = dict(headers or {})
        if isinstance(body, (bytes, str)):
            data = body.encode() if isinstance(body, str) else body
        elif body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.url + path, data=data, headers=hdrs, method=method)
        opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context or self.ssl_context()), _NoRedirect)
        try:
            with opener.open(req, timeout=HTTP_TIMEOUT) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.headers, e.read()

    def request_token(self, client_id=None, secret=None, scope=None, tenant=None,
                      grant_type="client_credentials", form_encode=True):
        """POST to the token endpoint with a Basic header. Return (status, JSON).

        form_encode=False sends id and secret raw, not form-encoded first."""
        cid = self.client_id if client_id is None else client_id
        sec = self.secret if secret is None else secret
        enc = urllib.parse.quote_plus if form_encode else (lambda v: v)
        basic = enc(cid) + ":" + enc(sec)
        auth = "Basic " + base64.b64encode(basic.encode()).decode()
        form = urllib.parse.urlencode({"grant_type": grant_type,
                                       "scope": self.scope if scope is None else scope})
        path = f"/{self.tenant if tenant is None else tenant}/oauth2/v2.0/token"
        status, _, data = self.request("POST", path, form, {
            "Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"})
        return status, json.loads(data)

    def assertion(self, key_file=None, cert_file=None, header=None, claims=None, alg="RS256"):
        """A client assertion for this sim (its client id and token URL), signed ALG with
        KEY_FILE (default: the registered key) and naming CERT_FILE (default: the
        registered certificate); HEADER and CLAIMS override entries."""
        return make_assertion(key_file or self.client_key_file,
                              cert_file or self.client_cert_file, self.client_id,
                              self.token_url, header, claims, workdir=self.workdir, alg=alg)

    def request_token_assertion(self, assertion, client_id=None, scope=None, tenant=None,
                                assertion_type=ASSERTION_TYPE, headers=None):
        """POST to the token endpoint with a client assertion and no Basic header.
        Return (status, JSON)."""
        form = urllib.parse.urlencode({
            "grant_type": "client_credentials",
            "client_id": self.client_id if client_id is None else client_id,
            "scope": self.scope if scope is None else scope,
            "client_assertion_type": assertion_type,
            "client_assertion": assertion})
        path = f"/{self.tenant if tenant is None else tenant}/oauth2/v2.0/token"
        hdrs = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        status, _, data = self.request("POST", path, form, hdrs)
        return status, json.loads(data)

    def token(self):
        """A fresh valid access token (raises SimError if refused)."""
        status, body = self.request_token()
        if status != 200:
            raise SimError(f"token request failed: {status} {body}")
        return body["access_token"]

    def api(self, method, path, body=None, token=None, host=None):
        """Call the Nimbus API at PATH (after the prefix). Return (status, headers, body).

        The body is parsed as JSON when it is JSON, else returned as bytes. HOST
        ("admin" or "portal") sends the request as if to that host (api_host dialect).
        Redirects are returned, not followed.
        """
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if host:
            headers["Host"] = f"{host}.localhost:{self.port}"
        status, hdrs, data = self.request(method, API_PATH + path, body, headers)
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data
        return status, hdrs, parsed

    # --- simulator control -------------------------------------------------

    def _control(self, method, path, body=None):
        status, _, data = self.request(method, "/_sim/" + path, body)
        if status != 200:
            raise SimError(f"/_sim/{path}: {status} {data[:500]!r}")
        return json.loads(data)

    def state(self):
        return self._control("GET", "state")

    def config(self, **settings):
        return self._control("POST", "config", settings)["settings"]

    def dialect(self, **switches):
        """Switch dialects at run time (DIALECT_OPTIONS only); returns all settings."""
        unknown = sorted(set(switches) - set(DIALECT_OPTIONS))
        if unknown:
            raise TypeError(f"not dialect switches: {', '.join(unknown)}")
        return self.config(**switches)

    def add_users(self, users):
        return self._control("POST", "users", list(users))

    def remove_user(self, o365_id):
        return self._control("DELETE", "users/" + o365_id)

    def reset_log(self):
        return self._control("POST", "reset-log", {})

    def revoke_tokens(self):
        return self._control("POST", "revoke-tokens", {})["revoked"]

    # --- Microsoft Graph (graph_sim.py) -------------------------------------

    @property
    def graph_url(self):
        """What nimbus-sync's graph_url points at: the simulator itself."""
        return self.url

    def graph_directory(self, users=(), groups=()):
        """Upsert users ({id, displayName, userPrincipalName, accountEnabled}) and groups
        ({id, displayName, members: [ids of users or groups]})."""
        return self._control("POST", "graph/directory", {"users": list(users), "groups": list(groups)})

    def graph_generate(self, group, count, display_name="Generated", disabled_every=0, seed=None):
        """A group of COUNT synthetic users; returns their ids in member order."""
        return self._control("POST", "graph/generate", {
            "group": group, "count": count, "displayName": display_name,
            "disabled_every": disabled_every, "seed": seed})["ids"]

    def graph_members(self, group, add=(), remove=()):
        return self._control("POST", "graph/members", {"group": group, "add": list(add),
                                                       "remove": list(remove)})

    def graph_delete_group(self, group):
        return self._control("DELETE", "graph/groups/" + group)

    def graph_config(self, **settings):
        """denied=bool; fail_next=[{what, group, page, status, count, retry_after}]."""
        return self._control("POST", "graph/config", settings)["settings"]

    def graph_state(self):
        return self._control("GET", "graph/state")
