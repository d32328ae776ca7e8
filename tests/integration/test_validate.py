"""`validate` finds what only use would find otherwise: the secret or key file missing or readable
by others, the certificate, a ca_file that is missing or not PEM, the example's placeholder ids;
and a FIFO as config or secret file is refused at once instead of hanging. At run time a ca_file
that cannot be loaded is named as such, not taken for refused credentials.
"""

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import REPO, describe, guid, guids, roster_users

OU = guid()
ZERO = "00000000-0000-0000-0000-000000000000"
PROMPT = 10   # seconds: a refused FIFO takes milliseconds; the old code waited for ever


def validate(ns, *args, **kw):
    return ns.run("validate", *args, **kw)


def assert_invalid(p, *messages):
    assert p.returncode == 1, describe(p)
    assert "config ok" not in p.stdout, describe(p)
    for m in messages:
        assert m in p.stderr, describe(p)


@pytest.fixture
def roster(ns):
    ns.write_roster(roster_users(guids(2), OU))


def test_missing_secret_file(ns, roster):
    ns.secret_file.unlink()
    p = validate(ns)
    assert_invalid(p, f"{ns.secret_file}: error: cannot open secret file: No such file or directory")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_secret_file_readable_by_others(ns, roster, mode):
    p = validate(ns)
    assert p.returncode == 0, describe(p)
    assert "config ok; roster ok: 2 users in 1 files" in p.stdout
    assert p.stderr == ""
    os.chmod(ns.secret_file, mode)
    p = validate(ns)
    assert_invalid(p, f"{ns.secret_file}: error: secret file is readable by group or others "
                      f"(mode {mode:04o}); run chmod 600 {ns.secret_file}")


def test_empty_secret_file(ns, roster):
    ns.secret_file.write_text("\n")
    p = validate(ns)
    assert_invalid(p, f"{ns.secret_file}: error: secret file is empty")


def test_secret_from_a_systemd_credential(ns, roster, tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    ns.configure(client_secret_file=None, client_secret_credential="client-secret")
    # By hand without $CREDENTIALS_DIRECTORY it cannot be checked: said, but not an error.
    p = validate(ns)
    assert p.returncode == 0, describe(p)
    assert "warning: client_secret_credential not checked: $CREDENTIALS_DIRECTORY is not set" in p.stderr
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    p = validate(ns, env=env)
    assert_invalid(p, f"{creds}/client-secret: error: cannot open secret file: No such file or directory")
    shutil.copyfile(ns.secret_file, creds / "client-secret")
    os.chmod(creds / "client-secret", 0o444)
    p = validate(ns, env=env)
    assert_invalid(p, "secret file is readable by group or others (mode 0444)")
    os.chmod(creds / "client-secret", 0o400)
    p = validate(ns, env=env)
    assert p.returncode == 0, describe(p)


def test_missing_ca_file(ns, roster, tmp_path):
    ca = tmp_path / "proxy-ca.pem"
    ns.configure(ca_file=str(ca))
    p = validate(ns)
    assert_invalid(p, f"{ca}: error: cannot read ca_file: No such file or directory")


@pytest.mark.sim(tls=True)
def test_ca_file_that_is_not_pem(ns, sim, roster, tmp_path):
    ns.configure(ca_file=sim.ca_file)
    p = validate(ns)
    assert p.returncode == 0, describe(p)
    ca = tmp_path / "proxy-ca.crt"
    ca.write_bytes(b"0\x82\x01\x94 DER bytes, not PEM\n")
    ns.configure(ca_file=str(ca))
    p = validate(ns)
    assert_invalid(p, f"{ca}: error: ca_file holds no PEM certificate (-----BEGIN CERTIFICATE-----)")


@pytest.mark.parametrize("key", ["tenant_id", "client_id"])
def test_the_examples_zero_ids(ns, roster, key):
    ns.configure(**{key: ZERO})
    p = validate(ns)
    assert_invalid(p, f"error: {key}: {ZERO} is still the example's placeholder; set ")


def test_the_shipped_example_is_not_valid_unedited(ns, tmp_path):
    config = tmp_path / "example.yaml"
    config.write_text((REPO / "config" / "config.yaml").read_text())
    p = subprocess.run([ns.binary, "-c", str(config), "validate"], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, describe(p)
    assert f"{config}:4:12: error: tenant_id: {ZERO} is still the example's placeholder; set your " \
           f"Entra tenant id" in p.stderr
    assert f"{config}:5:12: error: client_id: {ZERO} is still the example's placeholder; set the app " \
           f"registration's client id" in p.stderr


# --- certificate credentials -----------------------------------------------------------------

def use_certificate(ns, tmp_path, sim, key_mode=0o600):
    key = tmp_path / "app.key"
    shutil.copyfile(sim.client_key_file, key)
    os.chmod(key, key_mode)
    ns.configure(client_secret_file=None, client_certificate_file=sim.client_cert_file,
                 client_key_file=str(key))
    return key


@pytest.mark.sim(client_cert=True)
def test_certificate_credentials(ns, sim, roster, tmp_path):
    key = use_certificate(ns, tmp_path, sim)
    p = validate(ns)
    assert p.returncode == 0, describe(p)

    os.chmod(key, 0o644)
    p = validate(ns)
    assert_invalid(p, f"{key}: error: key file is readable by group or others (mode 0644)")

    os.chmod(key, 0o600)
    shutil.copyfile(sim.wrong_key_file, key)
    p = validate(ns)
    assert_invalid(p, f"{key}: error: private key does not belong to the certificate {sim.client_cert_file}")

    key.unlink()
    p = validate(ns)
    assert_invalid(p, f"{key}: error: cannot open key file: No such file or directory")

    key = use_certificate(ns, tmp_path, sim)
    ns.configure(client_secret_file=None, client_certificate_file=str(tmp_path / "missing.pem"),
                 client_key_file=str(key))
    p = validate(ns)
    assert_invalid(p, f"{tmp_path / 'missing.pem'}: error: cannot read certificate file: No such file "
                      f"or directory")


# --- FIFOs: refused at once, never waited on --------------------------------------------------

def test_fifo_as_config(ns, tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    for command in ("validate", "plan", "status"):
        p = subprocess.run([ns.binary, "-c", str(fifo), command], capture_output=True, text=True,
                           timeout=PROMPT, stdin=subprocess.DEVNULL)
        assert p.returncode == 1, describe(p)
        assert f"{fifo}: error: cannot read config: not a regular file" in p.stderr, describe(p)


@pytest.mark.parametrize("command", [("validate",), ("licenses",), ("apply",), ("doctor",)])
def test_fifo_as_secret_file(ns, roster, command):
    ns.secret_file.unlink()
    os.mkfifo(ns.secret_file, 0o600)
    p = ns.run(*command, timeout=PROMPT, env={"NIMBUS_SYNC_SERVICE_USER": "root"})
    assert p.returncode == 1, describe(p)
    assert f"{ns.secret_file}: error: secret file is not a regular file" in p.stdout + p.stderr, describe(p)


def test_fifo_as_ca_file_and_certificate(ns, roster, tmp_path):
    fifo = tmp_path / "ca.pem"
    os.mkfifo(fifo)
    ns.configure(ca_file=str(fifo))
    p = validate(ns, timeout=PROMPT)
    assert_invalid(p, f"{fifo}: error: ca_file is not a regular file")


# --- at run time --------------------------------------------------------------------------------

@pytest.mark.sim(tls=True)
@pytest.mark.parametrize("problem", ["missing", "not-pem"])
def test_an_unloadable_ca_file_is_named_at_run_time(ns, sim, tmp_path, problem):
    ns.write_roster(roster_users(guids(1), OU))
    ca = tmp_path / "proxy-ca.pem"
    if problem == "not-pem":
        ca.write_text("not a certificate\n")
    ns.configure(ca_file=str(ca))
    p = ns.run("apply")
    assert p.returncode == 1, describe(p)
    reason = "No such file or directory" if problem == "missing" else "no PEM certificate in it"
    assert f"cannot load ca_file {ca}: {reason}" in p.stderr, describe(p)
    assert "refused our credentials" not in p.stderr, describe(p)
    st = sim.state()
    assert st["token_requests"] == [] and st["requests"] == []
