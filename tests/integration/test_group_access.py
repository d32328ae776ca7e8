"""Members of the service's group run `status` and `plan` (nimbus-sync(8), RUNNING COMMANDS BY
HAND): the state store and its -wal and -shm files are readable by the group, and a reader that
may not write in state_dir still opens the store, while a writer has it open and after the writer
has closed it. Nobody else may read it.

The service user, its group and an admin in that group are numeric ids here (setpriv needs no
account); the set-up lives in a folder everyone may traverse, as /var/lib does.
"""

import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import describe, guid, guids, poll

SERVICE_UID = 64101
GROUP_GID = 64102
ADMIN_UID = 64103      # a member of GROUP_GID
OTHER_UID = 64104      # not a member
OU = guid()


def as_user(uid, *groups):
    return ["setpriv", f"--reuid={uid}", f"--regid={groups[0] if groups else uid}",
            "--groups=" + ",".join(map(str, groups)) if groups else "--clear-groups"]


@pytest.fixture
def shared(ns):
    """ns moved to a tree laid out as the package does: state_dir 0750 and roster.d 2770, both
    of the service's group; the config readable by all, the secret by the service user alone."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to act as other users")
    top = Path(tempfile.mkdtemp(prefix="nimbus-group-", dir="/tmp"))
    os.chmod(top, 0o755)
    ns.dir = top                      # the config names the folders below it
    ns.state_dir, ns.roster_dir = top / "state", top / "roster.d"
    ns.secret_file, ns.config_path = top / "client-secret", top / "config.yaml"
    ns.state_dir.mkdir(mode=0o750)
    os.chown(ns.state_dir, SERVICE_UID, GROUP_GID)
    os.chmod(ns.state_dir, 0o750)
    ns.roster_dir.mkdir()
    os.chown(ns.roster_dir, SERVICE_UID, GROUP_GID)
    os.chmod(ns.roster_dir, 0o2770)
    ns.write_secret(ns.sim.secret)
    os.chown(ns.secret_file, SERVICE_UID, GROUP_GID)
    ns.configure()
    os.chmod(ns.config_path, 0o644)
    yield ns
    shutil.rmtree(top)


def run_as(ns, user, *args, umask=0o077):
    p = subprocess.run(user + ns.argv(*args), capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL, preexec_fn=lambda: os.umask(umask))
    ns.check_output(p.stdout, p.stderr)
    return p


def service(ns, *args):
    return run_as(ns, as_user(SERVICE_UID, GROUP_GID), *args)


def admin(ns, *args):
    return run_as(ns, as_user(ADMIN_UID, GROUP_GID), *args)


def test_group_members_run_status_and_plan(shared):
    ns = shared
    users = [{"o365_id": i, "ou": OU} for i in guids(3)]
    ns.write_roster(users)
    for p in ns.roster_dir.iterdir():
        os.chown(p, ADMIN_UID, GROUP_GID)
        os.chmod(p, 0o640)

    # The service applies the roster, under the unit's UMask=0077.
    p = service(ns, "apply")
    assert p.returncode == 0, describe(p)
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        st = os.stat(ns.state_dir / name)
        assert stat.S_IMODE(st.st_mode) == 0o640, name
        assert (st.st_uid, st.st_gid) == (SERVICE_UID, GROUP_GID), name

    # No writer has the store open now: an admin of the group reads it all the same.
    p = admin(ns, "status", "--json")
    assert p.returncode == 0, describe(p)
    assert json.loads(p.stdout)["users"]["created"] == 3
    p = admin(ns, "plan")
    assert p.returncode == 0 and "No changes" in p.stdout, describe(p)

    # ... and while a writer has it open.
    daemon = subprocess.Popen(as_user(SERVICE_UID, GROUP_GID) + ns.argv("daemon"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: os.umask(0o077))
    try:
        ns.write_roster(users + [{"o365_id": guid(), "ou": OU}], name="more.yaml")
        os.chown(ns.roster_dir / "more.yaml", ADMIN_UID, GROUP_GID)
        assert poll(lambda: json.loads(admin(ns, "status", "--json").stdout)["users"]["created"] == 4,
                    timeout=30)
        p = admin(ns, "status")
        assert p.returncode == 0 and "Daemon:        running" in p.stdout, describe(p)
        p = admin(ns, "plan")
        assert p.returncode == 0, describe(p)
    finally:
        daemon.terminate()
        assert daemon.wait(timeout=30) == 0, daemon.stderr.read()

    # Others may not read it.
    p = run_as(ns, as_user(OTHER_UID), "status")
    assert p.returncode == 1 and "Permission denied" in p.stderr, describe(p)


def test_status_shows_what_the_daemon_read_not_what_root_reads(shared):
    """A file the service user may not read: root can, and used to see "ok" in status while the
    daemon had rejected the roster. status shows the daemon's verdict, without reading the roster."""
    ns = shared
    users = [{"o365_id": i, "ou": OU} for i in guids(2)]
    ns.write_roster(users)
    private = ns.write_roster([{"o365_id": guid(), "ou": OU}], name="private.yaml")
    os.chmod(private, 0o600)          # root's own file, as an admin might copy one in

    daemon = subprocess.Popen(as_user(SERVICE_UID, GROUP_GID) + ns.argv("daemon"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: os.umask(0o077))
    try:
        def rejected():
            p = ns.run("status", "--json")
            return p.returncode == 0 and (json.loads(p.stdout).get("roster") or {}).get("error")

        error = poll(rejected, timeout=30)
        assert error and "private.yaml" in error and "Permission denied" in error, error
        p = ns.run("status")
        assert "REJECTED by the daemon" in p.stdout and "Permission denied" in p.stdout, describe(p)
        p = ns.run("status", "--check")
        assert p.returncode == 2 and "roster rejected: " in p.stdout and "Permission denied" in p.stdout, \
            describe(p)
        # An admin of the group sees the same.
        p = admin(ns, "status")
        assert "REJECTED by the daemon" in p.stdout, describe(p)
    finally:
        daemon.terminate()
        assert daemon.wait(timeout=30) == 0, daemon.stderr.read()


def test_without_a_daemon_status_reads_the_roster_and_says_so(ns):
    users = [{"o365_id": i, "ou": OU} for i in guids(2)]
    ns.write_roster(users)
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    p = ns.run("status")
    assert "2 users in 1 files, as root reads it now (no daemon has recorded what it read)" in p.stdout, \
        describe(p)
    assert json.loads(ns.run("status", "--json").stdout)["roster"]["seen_by"] == "status"
