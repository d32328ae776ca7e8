"""The systemd units (nimbus-sync.service, and the template nimbus-sync@.service for more tenants
on one host), sysusers.d and tmpfiles.d files, checked with systemd's own tools where they work
without a running systemd. See nimbus-sync(8), SYSTEMD and MANY TENANTS."""

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pkgtest import REPO, c_string_define, need, nimbus_bin  # noqa: F401 (a fixture)

UNIT = REPO / "systemd" / "nimbus-sync.service"
TEMPLATE = REPO / "systemd" / "nimbus-sync@.service"
# The unit, and the file systemd-analyze is given for it: a template only as an instance.
UNITS = {"nimbus-sync.service": UNIT, "nimbus-sync@customer-a.service": TEMPLATE}
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


def placed(unit_name, path, directory):
    """The unit file as systemd-analyze must see it: an instance of a template is named by the
    instance, next to the template file."""
    if "@" in unit_name:
        (directory / path.name).write_text(path.read_text())
    else:
        (directory / unit_name).write_text(path.read_text())
    return directory / unit_name


@pytest.mark.parametrize("unit_name", UNITS)
def test_security_exposure_is_at_most_2(unit_name, tmp_path):
    level, text = exposure(placed(unit_name, UNITS[unit_name], tmp_path))
    assert level <= MAX_EXPOSURE, f"exposure {level} > {MAX_EXPOSURE}:\n{text}"


@pytest.mark.parametrize("unit_name", UNITS)
def test_security_figure_reacts_to_the_sandbox(unit_name, tmp_path):
    # The figure above must come from this unit's settings: without its sandbox the same
    # analysis rates the unit far worse.
    kept = ("Type", "ExecStart", "ExecReload", "User", "Group", "StateDirectory", "Description")
    lines = [l for l in UNITS[unit_name].read_text().splitlines()
             if not l or l.startswith(("[", "#")) or l.split("=", 1)[0] in kept]
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / UNITS[unit_name].name).write_text("\n".join(lines) + "\n")
    level, text = exposure(placed(unit_name, bare / UNITS[unit_name].name, tmp_path))
    assert level > 5.0, text


@pytest.mark.parametrize("unit_name", UNITS)
def test_unit_verifies(unit_name, nimbus_bin, tmp_path):
    systemd_analyze = need("systemd-analyze", "systemd")
    # verify checks that the Exec*= commands exist: point them at the built binary, as installed
    # it is /usr/bin/nimbus-sync. Documentation= is checked by packaging/ci-check.sh after install.
    text = UNITS[unit_name].read_text().replace("=/usr/bin/nimbus-sync ", f"={nimbus_bin} ")
    assert "/usr/bin/nimbus-sync" not in re.sub(r"^#.*", "", text, flags=re.M)
    source = tmp_path / "source"
    source.mkdir()
    (source / UNITS[unit_name].name).write_text(text)
    unit = placed(unit_name, source / UNITS[unit_name].name, tmp_path)
    out = subprocess.run([systemd_analyze, "verify", "--man=no", str(unit)],
                         capture_output=True, text=True, timeout=60)
    complaints = [l for l in (out.stdout + out.stderr).splitlines() if "nimbus-sync" in l]
    assert out.returncode == 0 and not complaints, out.stdout + out.stderr


def config_option(unit):
    """The `-c PATH ` the template passes to every nimbus-sync command; nothing for the main unit,
    which reads the default config."""
    return "-c /etc/nimbus-sync/%i.yaml " if "@" in unit.name else ""


@pytest.mark.parametrize("unit", UNITS.values(), ids=[u.name for u in UNITS.values()])
def test_unit_runs_the_daemon_as_the_contract_says(unit):
    s = unit_settings(unit)
    config = config_option(unit)
    assert one(s, "Service", "Type") == "notify"
    assert one(s, "Service", "ExecStart") == f"/usr/bin/nimbus-sync {config}daemon"
    assert re.fullmatch(r"[1-9]\d*(s|min)?", one(s, "Service", "WatchdogSec"))
    assert one(s, "Service", "Restart") == "on-failure"
    assert one(s, "Service", "User") == one(s, "Service", "Group") == "nimbus-sync"
    assert one(s, "Service", "StateDirectoryMode") == "0750"
    # metrics_file: the textfile collector's usual folder is writable, if it exists.
    assert "-/var/lib/prometheus/node-exporter" in s[("Service", "ReadWritePaths")]
    assert one(s, "Service", "ProtectSystem") == "strict"
    assert one(s, "Service", "ConfigurationDirectory") == "nimbus-sync"
    assert "network-online.target" in one(s, "Unit", "After").split()
    assert "network-online.target" in one(s, "Unit", "Wants").split()
    assert one(s, "Install", "WantedBy") == "multi-user.target"
    families = set(" ".join(s[("Service", "RestrictAddressFamilies")]).split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6"}


@pytest.mark.parametrize("unit", UNITS.values(), ids=[u.name for u in UNITS.values()])
def test_reload_validates_before_signalling(unit):
    # systemd runs ExecReload= lines in order and stops at the first that fails: an invalid
    # config or roster makes `systemctl reload` fail, saying why, and the daemon is not signalled.
    reload = unit_settings(unit)[("Service", "ExecReload")]
    assert len(reload) == 2, reload
    assert reload[0] == f"/usr/bin/nimbus-sync {config_option(unit)}validate"
    kill = reload[1].split()
    assert kill[0] in ("/bin/kill", "/usr/bin/kill") and kill[1:] == ["-HUP", "$MAINPID"]


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
    assert ["d", state_dir, "0750", "nimbus-sync", "nimbus-sync", "-"] in lines
    assert example["roster_dir"] == roster_dir


# Settings that name the instance; everything else of the template must equal the main unit.
INSTANCE_SETTINGS = {("Unit", "Description"), ("Unit", "ConditionPathExists"),
                     ("Service", "ExecStart"), ("Service", "ExecReload"),
                     ("Service", "ExecStartPre"), ("Service", "StateDirectory"),
                     ("Service", "LoadCredential")}


def test_template_is_as_hardened_as_the_main_unit():
    main, template = unit_settings(UNIT), unit_settings(TEMPLATE)
    assert set(main) - INSTANCE_SETTINGS == set(template) - INSTANCE_SETTINGS
    for key in set(main) - INSTANCE_SETTINGS:
        assert main[key] == template[key], f"[{key[0]}] {key[1]}= differs from nimbus-sync.service"


def test_template_instance_has_its_own_config_secret_state_and_roster():
    s = unit_settings(TEMPLATE)
    assert one(s, "Unit", "ConditionPathExists") == "/etc/nimbus-sync/%i.yaml"
    assert one(s, "Service", "StateDirectory") == "nimbus-sync/%i"
    assert one(s, "Service", "LoadCredential") == "client-secret:/etc/nimbus-sync/%i.client-secret"
    assert "%i" in one(s, "Unit", "Description")
    pre = one(s, "Service", "ExecStartPre")
    assert pre.startswith("+/bin/sh -c ") and pre.endswith(" sh %i")
    assert "d /var/lib/nimbus-sync/$$1/roster.d 2770 nimbus-sync nimbus-sync -" in pre


def start_pre_argv(instance, root):
    """The template's ExecStartPre= command line, as systemd would run it for `instance`, with
    systemd-tmpfiles working under `root` instead of /."""
    pre = one(unit_settings(TEMPLATE), "Service", "ExecStartPre")
    pre = pre.lstrip("+").replace("$$", "$").replace("%i", instance)
    pre = pre.replace("systemd-tmpfiles --create", f"systemd-tmpfiles --root={root} --create")
    assert f"--root={root}" in pre
    return shlex.split(pre)


def test_template_makes_the_instance_roster_folder(tmp_path):
    sysusers = need("systemd-sysusers", "systemd")
    need("systemd-tmpfiles", "systemd")
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles must run as root to give the roster folder its owner")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "usr/lib/sysusers.d").mkdir(parents=True)
    shutil.copy(SYSUSERS, root / "usr/lib/sysusers.d" / "nimbus-sync.conf")
    out = subprocess.run([sysusers, f"--root={root}", "nimbus-sync.conf"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for _ in range(2):   # every start runs it: the second time finds the folder in place
        out = subprocess.run(start_pre_argv("customer-a", root), capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0 and not out.stderr, out.stderr

    passwd = {l.split(":")[0]: l.split(":") for l in (root / "etc/passwd").read_text().splitlines()}
    group = {l.split(":")[0]: l.split(":") for l in (root / "etc/group").read_text().splitlines()}
    st = (root / "var/lib/nimbus-sync/customer-a/roster.d").stat()
    assert oct(st.st_mode & 0o7777) == oct(0o2770)
    assert (st.st_uid, st.st_gid) == (int(passwd["nimbus-sync"][2]), int(group["nimbus-sync"][2]))
    assert not (root / "var/lib/nimbus-sync/roster.d").exists(), "touched the main instance's folder"


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
    # The state folder: the group reads the store in it (status, plan), others nothing.
    st = (root / "var/lib/nimbus-sync").stat()
    assert oct(st.st_mode & 0o7777) == oct(0o750)
    assert (st.st_uid, st.st_gid) == (int(user[2]), int(group["nimbus-sync"][2]))
