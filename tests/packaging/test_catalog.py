"""The journal message catalog: one complete entry per MESSAGE_ID of include/log.h, in a form
journalctl accepts, that tells the admin what happened and what to do."""

import re
import shutil
import subprocess

from pkgtest import REPO, message_ids, need

CATALOG = REPO / "systemd" / "nimbus-sync.catalog"


def entries():
    """MESSAGE_ID -> (headers dict, body text). Asserts that no id appears twice."""
    result, current = {}, None
    for line in CATALOG.read_text().splitlines():
        m = re.fullmatch(r"-- ([0-9a-f]{32})", line)
        if m:
            assert m.group(1) not in result, f"{m.group(1)} has two entries"
            current = result[m.group(1)] = {"headers": {}, "body": [], "in_body": False}
        elif current is None:
            assert line == "" or line.startswith("#"), f"text before the first entry: {line!r}"
        elif not current["in_body"] and line == "":
            current["in_body"] = True
        elif not current["in_body"]:
            key, sep, value = line.partition(": ")
            assert sep, f"not a header line: {line!r}"
            current["headers"][key] = value
        else:
            current["body"].append(line)
    return {k: (v["headers"], "\n".join(v["body"]).strip()) for k, v in result.items()}


def test_every_message_id_has_an_entry():
    assert set(entries()) == set(message_ids().values())


def test_entries_are_complete():
    for mid, (headers, body) in entries().items():
        assert headers.get("Subject"), mid
        assert headers.get("Defined-By") == "nimbus-sync", mid
        assert headers.get("Support"), mid
        assert headers.get("Documentation", "").startswith("man:nimbus-sync"), mid
        assert len(body.split()) >= 30, f"{mid}: the body says too little"


def test_entries_tell_the_admin_what_to_do():
    ids, cat = message_ids(), entries()
    expect = {
        "MID_DELETES_HELD": ["nimbus-sync plan", "approve-deletes", "max_per_run", "max_percent"],
        "MID_AUTH_FAILED": ["Provisioning.User.Create", "Provisioning.User.Delete",
                            "Provisioning.User.Read", "Provisioning.Tenant.Read", "admin consent",
                            "Provisioning Api disabled", "No app permission found", "secret"],
        "MID_NO_LICENSES": ["License Management", "nimbus-sync licenses"],
        "MID_ROSTER_ERROR": ["last", "valid roster", "nimbus-sync validate"],
        "MID_USER_FAILED": ["nimbus-sync status", "failed_retry"],
        "MID_USER_QUARANT": ["retry.quarantine", "proxy"],
        "MID_DRIFT": ["Nimbus Admin Portal"],
        "MID_DELETE_HELD": ["approve-deletes --dry-run", "--only", "--except", "NIMBUS_ROSTER_FILE"],
        "MID_DELETE_APPROVED": ["NIMBUS_LOGIN_UID", "NIMBUS_SUDO_USER", "back in the roster"],
    }
    for name, phrases in expect.items():
        body = " ".join(cat[ids[name]][1].split())
        for phrase in phrases:
            assert phrase in body, f"{name}: the catalog entry does not mention {phrase!r}"


def test_substitutions_name_fields_that_are_logged():
    # journalctl replaces @FIELD@ with the entry's field, or with the bare name when the entry
    # has no such field; a misspelt name would show up as is in every explanation.
    log_c = (REPO / "src" / "log.c").read_text()
    logged = set(re.findall(r'"([A-Z][A-Z0-9_]+)=', log_c))
    logged |= set(re.findall(r'field_guid\(\w+, "([A-Z0-9_]+)"', log_c))
    assert {"NIMBUS_ACTION", "NIMBUS_O365_ID", "MESSAGE_ID"} <= logged
    used = set(re.findall(r"@([A-Za-z0-9_]+)@", CATALOG.read_text()))
    assert used and used <= logged, f"not fields of log.c: {used - logged}"
    # journalctl substitutes only names of A-Z and _: @NIMBUS_O365_ID@ would stay as it is.
    unusable = {name for name in used if not re.fullmatch(r"[A-Z_]+", name)}
    assert not unusable, f"journalctl cannot substitute {sorted(unusable)}"


def test_journalctl_loads_the_catalog(tmp_path):
    journalctl = need("journalctl", "systemd")
    catalog_dir = tmp_path / "usr/lib/systemd/catalog"
    catalog_dir.mkdir(parents=True)
    shutil.copy(CATALOG, catalog_dir)
    out = subprocess.run([journalctl, f"--root={tmp_path}", "--update-catalog"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "nimbus-sync" not in out.stderr, out.stderr

    out = subprocess.run([journalctl, f"--root={tmp_path}", "--list-catalog"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    listed = dict(line.split(" ", 1) for line in out.stdout.splitlines() if line)
    for mid, (headers, _) in entries().items():
        assert listed.get(mid) == "nimbus-sync: " + headers["Subject"]

    held = message_ids()["MID_DELETES_HELD"]
    out = subprocess.run([journalctl, f"--root={tmp_path}", "--dump-catalog", held],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "approve-deletes" in out.stdout, out.stdout + out.stderr
