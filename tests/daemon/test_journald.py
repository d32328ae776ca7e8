"""journald as the audit trail (nimbus-sync(8), LOGS AND AUDIT): `log: {target: journal}` sends
every event with its NIMBUS_* fields and a MESSAGE_ID from include/log.h, and no secret ever
reaches it. The README's promises hold: every call entry carries NIMBUS_ROSTER_FILE, and
`journalctl NIMBUS_ACTION=delete` lists held, skipped and approved deletes one user at a time.

One daemon drives a create, a copy, a failed user (OU not allowed), held deletes that are then
approved, an empty roster (deletes skipped), a roster error and an auth failure; the tests below
read the entries back with journalctl. Without a running journald the module starts
/lib/systemd/systemd-journald itself (root only) and stops that process, and only it, at the
end."""

import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from .conftest import REPO, Daemon, Sim, guid, roster_text, wait_for, wait_users, write_atomic

JOURNAL_SOCKET = "/run/systemd/journal/socket"
JOURNALD = "/lib/systemd/systemd-journald"
OU_OK, OU_BAD = guid(), guid()
A, B, C, D1, D2, E = (guid() for _ in range(6))
ACTIONS = {"create", "copy", "delete", "verify", "licenses", "token", "roster", "run"}
RESULTS = {"ok", "exists", "gone", "retry", "failed", "held", "skipped", "quarantined", "approved"}
MID_DELETE_HELD = "0a85c132a5e14ab888f3e04d4c7f1490"
MID_DELETE_APPROVED = "54905d0976db4295850b054d043e89ba"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def message_ids():
    """The MESSAGE_IDs defined in include/log.h."""
    text = (REPO / "include" / "log.h").read_text()
    ids = set(re.findall(r'#define\s+MID_\w+\s+"([0-9a-f]{32})"', text))
    assert len(ids) >= 10, "no MESSAGE_IDs found in include/log.h"
    return ids


def journal_alive():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.connect(JOURNAL_SOCKET)
        return True
    except OSError:
        return False
    finally:
        s.close()


@pytest.fixture(scope="module")
def journald():
    """A running journald: the system's, or one started here for this module."""
    if shutil.which("journalctl") is None:
        pytest.fail("journalctl is missing: install Debian's `systemd` package", pytrace=False)
    if journal_alive():
        yield None
        return
    if os.geteuid() != 0:
        pytest.skip("no journald is running, and starting one needs root")
    if not os.access(JOURNALD, os.X_OK):
        pytest.fail(f"{JOURNALD} is missing: install Debian's `systemd` package", pytrace=False)
    os.makedirs("/run/systemd/journal", exist_ok=True)
    proc = subprocess.Popen([JOURNALD], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(journal_alive, 10, "systemd-journald to listen")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Journal:
    """The entries one process wrote (any process of ours, pid None), read back with journalctl."""

    def __init__(self, pid, since):
        self.pid = pid
        self.since = since

    def entries(self, *matches):
        who = [f"_PID={self.pid}"] if self.pid else ["SYSLOG_IDENTIFIER=nimbus-sync"]
        p = subprocess.run(["journalctl", "-o", "json", "--no-pager", f"--since=@{self.since}",
                            *who, *matches], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]

    def wait(self, timeout=15, **fields):
        """Wait for an entry with all these field values; return it."""
        def find():
            for e in self.entries(*(f"{k}={v}" for k, v in fields.items())):
                return e
            return None
        return wait_for(find, timeout, lambda: f"a journal entry with {fields}")


def roster(*users):
    return roster_text(users)


@pytest.fixture(scope="module")
def scenario(journald, nimbus_bin, tmp_path_factory):
    """Runs the daemon through every kind of event; yields (Journal, Sim)."""
    tmp = tmp_path_factory.mktemp("journal")
    since = int(time.time()) - 1
    sim = Sim.start(tmp, ous=[OU_OK], rate_ops=200, rate_window=1)
    d = Daemon(nimbus_bin, tmp, sim)
    try:
        d.configure(log={"target": "journal"}, deletes={"max_per_run": 1, "max_percent": 100})
        path = d.roster_dir / "roster.yaml"
        a = {"o365_id": A, "ou": OU_OK, "name": "Alice"}
        b = {"o365_id": B, "template": A}
        c = {"o365_id": C, "ou": OU_BAD}
        write_atomic(path, roster(a, b, c, {"o365_id": D1, "ou": OU_OK},
                                  {"o365_id": D2, "ou": OU_OK}))
        d.start()
        j = Journal(d.proc.pid, since)
        j.wait(NIMBUS_ACTION="run", NIMBUS_RESULT="failed")       # C failed, the others done
        wait_users(sim, [A, B, D1, D2], 10)

        write_atomic(path, roster(a, b, c))                       # 2 deletes > max_per_run 1
        j.wait(NIMBUS_ACTION="delete", NIMBUS_RESULT="held")
        assert d.run("approve-deletes", env={"SUDO_USER": "auditor"}).returncode == 0
        wait_users(sim, [A, B], 10)

        write_atomic(path, "users: []\n")                        # empty: deletes skipped
        j.wait(NIMBUS_ACTION="delete", NIMBUS_RESULT="skipped", NIMBUS_O365_ID=B)

        broken = roster(a, b, c).splitlines()
        broken.insert(3, "  - o365_id: [unclosed")
        write_atomic(path, "\n".join(broken) + "\n")
        j.wait(NIMBUS_ACTION="roster", NIMBUS_RESULT="failed")

        sim.config(provisioning_disabled=True)
        write_atomic(path, roster(a, b, c, {"o365_id": E, "ou": OU_OK}))
        j.wait(NIMBUS_ACTION="token", NIMBUS_RESULT="failed")

        rc, _, stderr = d.stop()
        assert rc == 0, stderr
        assert stderr == "", f"log.target journal, yet this went to stderr:\n{stderr[-3000:]}"
        yield j, sim
    finally:
        d.close()
        sim.stop()


def one(entries, **fields):
    found = [e for e in entries if all(e.get(k) == v for k, v in fields.items())]
    assert len(found) == 1, f"{len(found)} entries with {fields}"
    return found[0]


def test_every_entry_is_well_formed(scenario):
    j, _ = scenario
    entries = j.entries()
    ids = message_ids()
    catalog = (REPO / "systemd" / "nimbus-sync.catalog").read_text()
    assert len(entries) >= 10
    for e in entries:
        assert e["SYSLOG_IDENTIFIER"] == "nimbus-sync"
        assert "CODE_FILE" not in e, "every entry would name the logger's own source line"
        assert e.get("NIMBUS_ACTION", "run") in ACTIONS, e
        assert e.get("NIMBUS_RESULT", "ok") in RESULTS, e
        if "MESSAGE_ID" in e:
            assert e["MESSAGE_ID"] in ids, e
            assert f"-- {e['MESSAGE_ID']}" in catalog, f"{e['MESSAGE_ID']} is not in the catalog"
        if "NIMBUS_RUN_ID" in e:
            assert RUN_ID.match(e["NIMBUS_RUN_ID"]), e
    seen = {e["MESSAGE_ID"] for e in entries if "MESSAGE_ID" in e}
    # user action, user failed, deletes held, auth failed, roster error, roster loaded, run
    # started, run finished
    assert len(seen) >= 8, seen


def test_create_and_copy_fields(scenario):
    j, _ = scenario
    entries = j.entries()
    mid_action = "f544dbdcf1e6475eae3322a09282b80c"
    create = one(entries, NIMBUS_ACTION="create", NIMBUS_O365_ID=A)
    assert create["NIMBUS_RESULT"] == "ok" and create["NIMBUS_HTTP_STATUS"] == "200"
    assert create["NIMBUS_OU_ID"] == OU_OK and "NIMBUS_TEMPLATE_ID" not in create
    assert create["MESSAGE_ID"] == mid_action and create["PRIORITY"] == "6"
    assert create["NIMBUS_ROSTER_FILE"].endswith("roster.yaml")
    assert "Alice" in create["MESSAGE"]
    # The run id ties the call to its run.
    run = [e for e in entries if e.get("NIMBUS_ACTION") == "run"
           and e.get("NIMBUS_RUN_ID") == create["NIMBUS_RUN_ID"]]
    assert run, "no run entry with the create's NIMBUS_RUN_ID"

    copy = one(entries, NIMBUS_ACTION="copy", NIMBUS_O365_ID=B)
    assert copy["NIMBUS_RESULT"] == "ok" and copy["NIMBUS_HTTP_STATUS"] == "200"
    assert copy["NIMBUS_TEMPLATE_ID"] == A and "NIMBUS_OU_ID" not in copy
    assert copy["MESSAGE_ID"] == mid_action
    assert RUN_ID.match(copy["NIMBUS_RUN_ID"])


def test_failed_user_fields(scenario):
    j, _ = scenario
    entries = [e for e in j.entries() if e.get("NIMBUS_O365_ID") == C]
    assert entries, "no entry about the user whose OU is not allowed"
    failed = entries[0]
    assert failed["NIMBUS_ACTION"] == "create" and failed["NIMBUS_RESULT"] == "failed"
    assert failed["NIMBUS_HTTP_STATUS"] == "403" and failed["NIMBUS_OU_ID"] == OU_BAD
    assert failed["MESSAGE_ID"] == "858b3c08ae104dd490eaad9b3afbd5eb"
    assert failed["PRIORITY"] == "3"
    assert "Organization Unit not allowed" in failed["MESSAGE"]


def test_deletes_are_listed_by_action(scenario):
    """`journalctl NIMBUS_ACTION=delete` lists each held delete, its approval (and who gave it),
    each delete made and each delete skipped, one user per entry, with name, OU and roster file."""
    j, sim = scenario
    deletes = j.entries("NIMBUS_ACTION=delete")
    held = [e for e in deletes if e["NIMBUS_RESULT"] == "held"]
    summary = [e for e in held if "NIMBUS_O365_ID" not in e]
    assert len(summary) == 1 and summary[0]["MESSAGE_ID"] == "a3635efec21348e3982b8c0a7b3fde21"
    assert summary[0]["PRIORITY"] == "4" and "2 deletes held" in summary[0]["MESSAGE"]
    per_user = {e["NIMBUS_O365_ID"]: e for e in held if "NIMBUS_O365_ID" in e}
    assert set(per_user) == {D1, D2}
    for uid, e in per_user.items():
        assert e["MESSAGE_ID"] == MID_DELETE_HELD and e["PRIORITY"] == "4"
        assert e["NIMBUS_OU_ID"] == OU_OK and e["NIMBUS_ROSTER_FILE"].endswith("/roster.yaml")
        assert f"delete held: {uid}" in e["MESSAGE"] and "max_per_run" in e["MESSAGE"]

    done = {e["NIMBUS_O365_ID"]: e for e in deletes if e["NIMBUS_RESULT"] == "ok"}
    assert set(done) == {D1, D2} == set(sim.state()["deleted_ok"])
    for e in done.values():
        assert e["NIMBUS_HTTP_STATUS"] == "200" and RUN_ID.match(e["NIMBUS_RUN_ID"])
        assert e["NIMBUS_ROSTER_FILE"].endswith("/roster.yaml") and e["NIMBUS_OU_ID"] == OU_OK

    skipped = {e["NIMBUS_O365_ID"]: e for e in deletes
               if e["NIMBUS_RESULT"] == "skipped" and "NIMBUS_O365_ID" in e}
    assert set(skipped) == {A, B}
    assert skipped[A]["NIMBUS_USER_NAME"] == "Alice" and skipped[A]["MESSAGE_ID"] == MID_DELETE_HELD
    assert all(e["NIMBUS_ROSTER_FILE"].endswith("/roster.yaml") for e in skipped.values())
    assert any(e["NIMBUS_RESULT"] == "skipped" and "allow_empty" in e["MESSAGE"] and
               "NIMBUS_O365_ID" not in e for e in deletes)


def test_approvals_name_the_user_and_who_approved(scenario):
    j, _ = scenario
    approved = Journal(None, j.since).entries("NIMBUS_ACTION=delete", "NIMBUS_RESULT=approved")
    per_user = {e["NIMBUS_O365_ID"]: e for e in approved if "NIMBUS_O365_ID" in e}
    assert set(per_user) == {D1, D2}
    for e in approved:
        assert e["MESSAGE_ID"] == MID_DELETE_APPROVED and e["_PID"] != str(j.pid)
        assert e["NIMBUS_UID"] == str(os.getuid()) and e["NIMBUS_SUDO_USER"] == "auditor"
        login = open("/proc/self/loginuid").read().strip()
        assert e["NIMBUS_LOGIN_UID"] == ("unset" if login == "4294967295" else login)
        assert "auditor" in e["MESSAGE"]
    assert all(e["NIMBUS_ROSTER_FILE"].endswith("/roster.yaml") and e["NIMBUS_OU_ID"] == OU_OK
               for e in per_user.values())
    assert any("2 of 2 held deletes approved" in e["MESSAGE"] for e in approved)


def test_every_call_entry_names_its_roster_file(scenario):
    """The README: every call entry carries NIMBUS_ROSTER_FILE (the file that listed the user)."""
    j, _ = scenario
    calls = [e for e in j.entries() if e.get("NIMBUS_ACTION") in ("create", "copy", "delete")
             and "NIMBUS_HTTP_STATUS" in e]
    assert {e["NIMBUS_ACTION"] for e in calls} == {"create", "copy", "delete"}
    for e in calls:
        assert e.get("NIMBUS_ROSTER_FILE", "").endswith("/roster.yaml"), e


def test_roster_load_names_the_files_that_changed(scenario):
    j, _ = scenario
    loads = j.entries("NIMBUS_ACTION=roster", "NIMBUS_RESULT=ok")
    first, later = loads[0], loads[1]
    assert first["MESSAGE_ID"] == "cef34580482e41c89aa558df4bbacb71"
    assert first["NIMBUS_FILES_ADDED"] == "1" and first["NIMBUS_USERS"] == "5"
    assert "added roster.yaml (5 users)" in first["MESSAGE"]
    assert later["NIMBUS_FILES_CHANGED"] == "1" and later["NIMBUS_FILES_ADDED"] == "0"
    assert later["NIMBUS_ROSTER_FILE"].endswith("/roster.yaml")
    assert "changed roster.yaml (3 users, was 5)" in later["MESSAGE"]


def test_roster_error_fields(scenario):
    j, _ = scenario
    err = one(j.entries(), NIMBUS_ACTION="roster", NIMBUS_RESULT="failed")
    assert err["MESSAGE_ID"] == "f15da30fa1d049fdbb7bdac9eb1eafdc" and err["PRIORITY"] == "3"
    assert err["NIMBUS_ROSTER_FILE"].endswith("roster.yaml")
    assert re.search(r"roster\.yaml:4:\d+: error: ", err["MESSAGE"]), err["MESSAGE"]


def test_auth_failure_is_critical(scenario):
    j, _ = scenario
    auth = one(j.entries(), MESSAGE_ID="cdae17968b2f4bf8bae47289dd64b678")
    assert auth["PRIORITY"] == "2"                                   # crit
    assert auth["NIMBUS_ACTION"] == "token" and auth["NIMBUS_RESULT"] == "failed"
    assert auth["NIMBUS_HTTP_STATUS"] == "401"
    assert "Provisioning Api disabled by admin" in auth["MESSAGE"]


def test_no_secret_or_token_in_the_journal(scenario):
    j, sim = scenario
    assert sim.state()["tokens_issued"] >= 1          # there were tokens to leak
    for e in j.entries():
        for key, value in e.items():
            text = json.dumps(value)
            assert sim.secret not in text, f"the client secret is in {key}"
            assert "Bearer" not in text, f"a bearer token is in {key}"
            assert "access_token" not in text, f"a token answer is in {key}"


def test_commands_by_hand_log_to_the_journal_too(journald, nimbus_bin, tmp_path):
    """apply and approve-deletes run on a terminal (log target auto, stderr no journal stream)
    keep their terminal lines and also leave the audit trail in the journal."""
    since = int(time.time()) - 1
    sim = Sim.start(tmp_path, ous=[OU_OK], rate_ops=200, rate_window=1)
    d = Daemon(nimbus_bin, tmp_path, sim)
    users = [{"o365_id": guid(), "ou": OU_OK, "name": f"Hand {n}"} for n in range(3)]
    try:
        d.configure(log={"target": "auto"}, deletes={"max_per_run": 1, "max_percent": 100})
        d.write_roster(users)
        p = d.run("apply")
        assert p.returncode == 0, p.stderr
        uid = users[0]["o365_id"]
        assert f"create {uid} (Hand 0): ok" in p.stderr
        e = Journal(None, since).wait(NIMBUS_O365_ID=uid, NIMBUS_ACTION="create")
        assert e["NIMBUS_RESULT"] == "ok" and e["NIMBUS_ROSTER_FILE"].endswith("/roster.yaml")
        assert e["NIMBUS_USER_NAME"] == "Hand 0"

        d.write_roster(users[:1])
        p = d.run("apply")
        assert p.returncode == 2 and "delete held: " in p.stderr, p.stderr
        p = d.run("approve-deletes")
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith("Approved 2 held deletes")
        assert p.stderr == ""                   # the audit entries went to the journal only
        gone = users[2]["o365_id"]
        e = Journal(None, since).wait(NIMBUS_O365_ID=gone, NIMBUS_RESULT="approved")
        assert e["NIMBUS_USER_NAME"] == "Hand 2" and e["NIMBUS_UID"] == str(os.getuid())
    finally:
        d.close()
        sim.stop()
