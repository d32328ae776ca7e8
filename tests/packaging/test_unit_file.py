"""The systemd unit, sysusers.d and tmpfiles.d files: what PRODUCT §8 asks of them, checked with
systemd's own tools where they work without a running systemd."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pkgtest import REPO, c_string_define, need, nimbus_bin  # noqa: F401 (a fixture)

UNIT = REPO / "systemd" / "nimbus-sync.service"
SYSUSERS = REPO / "systemd" / "nimbus-sync.sysusers"
TMPFILES = REPO / "systemd" / "nimbus-sync.tmpfiles"
MAX_EXPOSURE = 2.0


def unit_settings(path=UNIT):
    """(section, key) -> list of values, in order; an empty assignment resets the list."""
    settings, section = {}, None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            section = m.group(1)
            continue
        key, sep, value = line.partition("=")
        assert sep and section, f"{path.name}: not a setting: {raw!r}"
        values = settings.setdefault((section, key.strip()), [])
        if value.strip():
            values.append(value.strip())
        else:
            values.clear()
    return settings


def one(settings, section, key):
    values = settings.get((section, key), [])
    assert len(values) == 1, f"[{section}] {key}= is set {len(values)} times: {values}"
    return values[0]


def exposure(unit_path):
    systemd_analyze = need("systemd-analyze", "systemd")
    out = subprocess.run([systemd_analyze, "security", "--offline=true", str(unit_path)],
                         capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", text)
    assert m, f"no exposure level in systemd-analyze's output (exit {out.returncode}):\n{text}"
    return float(m.group(1)), text


def test_security_exposure_is_at_most_2():
    level, text = exposure(UNIT)
    assert level <= MAX_EXPOSURE, f"exposure {level} > {MAX_EXPOSURE}:\n{text}"


def test_security_figure_reacts_to_the_sandbox(tmp_path):
    # The figure above must come from this unit's settings: without its sandbox the same
    # analysis rates the unit far worse.
    bare = tmp_path / "nimbus-sync.service"
    kept = ("Type", "ExecStart", "ExecReload", "User", "Group", "StateDirectory", "Description")
    lines = [l for l in UNIT.read_text().splitlines()
             if not l or l.startswith(("[", "#")) or l.split("=", 1)[0] in kept]
    bare.write_text("\n".join(lines) + "\n")
    level, text = exposure(bare)
    assert level > 5.0, text


def test_unit_verifies(nimbus_bin, tmp_path):
    systemd_analyze = need("systemd-analyze", "systemd")
    # verify checks that ExecStart= exists: point it at the built binary, as installed it is
    # /usr/bin/nimbus-sync. Documentation= is checked by packaging/ci-check.sh after install.
    text = UNIT.read_text().replace("ExecStart=/usr/bin/nimbus-sync ", f"ExecStart={nimbus_bin} ")
    assert nimbus_bin in text
    unit = tmp_path / "nimbus-sync.service"
    unit.write_text(text)
    out = subprocess.run([systemd_analyze, "verify", "--man=no", str(unit)],
                         capture_output=True, text=True, timeout=60)
    complaints = [l for l in (out.stdout + out.stderr).splitlines() if "nimbus-sync" in l]
    assert out.returncode == 0 and not complaints, out.stdout + out.stderr


def test_unit_runs_the_daemon_as_the_contract_says():
    s = unit_settings()
    assert one(s, "Service", "Type") == "notify"
    assert one(s, "Service", "ExecStart") == "/usr/bin/nimbus-sync daemon"
    reload = one(s, "Service", "ExecReload").split()
    assert reload[0] in ("kill", "/bin/kill", "/usr/bin/kill") and reload[1:] == ["-HUP", "$MAINPID"]
    assert re.fullmatch(r"[1-9]\d*(s|min)?", one(s, "Service", "WatchdogSec"))
    assert one(s, "Service", "Restart") == "on-failure"
    assert one(s, "Service", "User") == one(s, "Service", "Group") == "nimbus-sync"
    assert one(s, "Service", "StateDirectory") == "nimbus-sync"
    assert one(s, "Service", "StateDirectoryMode") == "0750"
    assert one(s, "Service", "ConfigurationDirectory") == "nimbus-sync"
    assert "network-online.target" in one(s, "Unit", "After").split()
    assert "network-online.target" in one(s, "Unit", "Wants").split()
    assert one(s, "Install", "WantedBy") == "multi-user.target"
    families = set(" ".join(s[("Service", "RestrictAddressFamilies")]).split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6"}


def test_unit_waits_for_the_admins_config():
    # Not started on the example: the package ships config.yaml.example only.
    s = unit_settings()
    assert one(s, "Unit", "ConditionPathExists") == c_string_define("include/config.h",
                                                                    "CONFIG_DEFAULT_PATH")


def test_credential_name_matches_the_example_config():
    s = unit_settings()
    name, _, path = one(s, "Service", "LoadCredential").partition(":")
    example = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert example["client_secret_credential"] == name
    assert path.startswith("/etc/nimbus-sync/")


def test_folders_agree_with_the_code_and_the_example():
    state_dir = c_string_define("src/config.c", "DEFAULT_STATE_DIR")
    roster_dir = c_string_define("src/config.c", "DEFAULT_ROSTER_DIR")
    example = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    s = unit_settings()
    assert state_dir == "/var/lib/" + one(s, "Service", "StateDirectory") == example["state_dir"]
    lines = [l.split() for l in TMPFILES.read_text().splitlines() if l and not l.startswith("#")]
    assert ["d", roster_dir, "2770", "nimbus-sync", "nimbus-sync", "-"] in lines
    assert example["roster_dir"] == roster_dir


def test_sysusers_and_tmpfiles_make_the_user_and_the_roster_folder(tmp_path):
    sysusers = need("systemd-sysusers", "systemd")
    tmpfiles = need("systemd-tmpfiles", "systemd")
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles must run as root to give the roster folder its owner")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for src, sub in ((SYSUSERS, "usr/lib/sysusers.d"), (TMPFILES, "usr/lib/tmpfiles.d")):
        (root / sub).mkdir(parents=True)
        shutil.copy(src, root / sub / "nimbus-sync.conf")
    for cmd in ([sysusers, f"--root={root}", "nimbus-sync.conf"],
                [tmpfiles, f"--root={root}", "--create", "nimbus-sync.conf"]):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr

    passwd = {l.split(":")[0]: l.split(":") for l in (root / "etc/passwd").read_text().splitlines()}
    group = {l.split(":")[0]: l.split(":") for l in (root / "etc/group").read_text().splitlines()}
    user = passwd["nimbus-sync"]
    assert int(user[2]) < 1000, "not a system user"
    assert user[5] == "/var/lib/nimbus-sync"
    assert user[6].endswith(("/nologin", "/false"))
    st = (root / "var/lib/nimbus-sync/roster.d").stat()
    assert oct(st.st_mode & 0o7777) == oct(0o2770)
    assert (st.st_uid, st.st_gid) == (int(user[2]), int(group["nimbus-sync"][2]))
