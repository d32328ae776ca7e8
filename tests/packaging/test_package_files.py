"""The Debian and RPM packaging agree with the build: one version everywhere, and every
library meson.build depends on is a build dependency of both packages. The Debian maintainer
scripts are valid, and purge (only purge) removes the state and the roster folders."""

import os
import re
import shutil
import subprocess

import pytest

from pkgtest import REPO

DEBIAN = REPO / "packaging" / "debian"
SPEC = REPO / "packaging" / "rpm" / "nimbus-sync.spec"

# meson dependency (or find_library) name -> (Debian build dependency, RPM BuildRequires).
PACKAGES = {
    "libcurl": ("libcurl4-openssl-dev", "pkgconfig(libcurl)"),
    "libuv": ("libuv1-dev", "pkgconfig(libuv)"),
    "yaml-0.1": ("libyaml-dev", "pkgconfig(yaml-0.1)"),
    "json-c": ("libjson-c-dev", "pkgconfig(json-c)"),
    "libsystemd": ("libsystemd-dev", "pkgconfig(libsystemd)"),
    "sqlite3": ("libsqlite3-dev", "pkgconfig(sqlite3)"),
    "csv": ("libcsv-dev", "libcsv-devel"),
    "openssl": ("libssl-dev", "pkgconfig(openssl)"),
    "cmocka": ("libcmocka-dev", "pkgconfig(cmocka)"),
    "systemd": ("systemd", "pkgconfig(systemd)"),
    "bash-completion": ("bash-completion", "pkgconfig(bash-completion)"),
}


def meson_version():
    m = re.search(r"^project\(.*?version\s*:\s*'([^']+)'", (REPO / "meson.build").read_text(), re.S | re.M)
    assert m
    return m.group(1)


def meson_dependencies():
    names = set()
    for path in REPO.glob("**/meson.build"):
        if "build" in path.relative_to(REPO).parts[:1] or path.parts[-2].startswith("obj-"):
            continue
        text = path.read_text()
        names |= set(re.findall(r"\bdependency\('([^']+)'", text))
        names |= set(re.findall(r"\bfind_library\('([^']+)'", text))
    return names


def debian_build_depends():
    control = (DEBIAN / "control").read_text()
    field = re.search(r"^Build-Depends:(.*?)^\S", control, re.S | re.M).group(1)
    return {re.split(r"[\s(<\[]", item.strip())[0] for item in field.split(",") if item.strip()}


def test_one_version_everywhere():
    version = meson_version()
    changelog = (DEBIAN / "changelog").read_text().splitlines()[0]
    assert re.match(rf"nimbus-sync \({re.escape(version)}(-\d+)?\) ", changelog), changelog
    spec = SPEC.read_text()
    assert re.search(rf"^Version:\s+{re.escape(version)}$", spec, re.M)


def test_every_meson_dependency_is_a_build_dependency():
    deps = meson_dependencies()
    assert "libcurl" in deps and "csv" in deps
    unknown = deps - set(PACKAGES)
    assert not unknown, f"add the Debian and RPM package names of {sorted(unknown)} to PACKAGES"
    deb = debian_build_depends()
    spec = SPEC.read_text()
    for name in deps:
        debian_pkg, rpm_req = PACKAGES[name]
        assert debian_pkg in deb, f"{name}: {debian_pkg} is not in debian/control Build-Depends"
        assert re.search(rf"^BuildRequires:\s+{re.escape(rpm_req)}", spec, re.M), \
            f"{name}: {rpm_req} is not a BuildRequires of the spec"


def test_debian_files():
    rules = DEBIAN / "rules"
    assert os.access(rules, os.X_OK)
    assert "--buildsystem=meson" in rules.read_text()
    control = (DEBIAN / "control").read_text()
    assert "debhelper-compat (= 13)" in control
    assert re.search(r"^Depends:.*\$\{shlibs:Depends\}", control, re.S | re.M)
    assert (DEBIAN / "source" / "format").read_text().strip() in ("3.0 (native)", "3.0 (quilt)")


def test_ci_check_script():
    script = REPO / "packaging" / "ci-check.sh"
    assert os.access(script, os.X_OK)
    assert "set -eu" in script.read_text()
    out = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


MAINTAINER_SCRIPTS = ("postinst", "prerm", "postrm")


def test_maintainer_scripts_are_shell_with_the_debhelper_slot():
    for name in MAINTAINER_SCRIPTS:
        script = DEBIAN / f"nimbus-sync.{name}"
        assert os.access(script, os.X_OK), script
        text = script.read_text()
        assert text.startswith("#!/bin/sh\n") and "\nset -e\n" in text and "#DEBHELPER#" in text
        out = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr


UNSHARE = shutil.which("unshare")


@pytest.mark.skipif(os.geteuid() != 0 or not UNSHARE,
                    reason="needs root and unshare(1) to run the postrm on a private /var/lib")
def test_purge_removes_state_and_rosters_remove_keeps_them(tmp_path):
    # The postrm runs in a private mount namespace whose /var/lib is an overlay with its changes
    # in a tmpfs: the host's /var/lib is never touched.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    script = """
        set -e
        mount -t tmpfs tmpfs "$SCRATCH"
        mkdir "$SCRATCH/upper" "$SCRATCH/work"
        mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$SCRATCH/upper,workdir=$SCRATCH/work" /var/lib
        echo namespace ready >&2
        mkdir -p /var/lib/nimbus-sync/roster.d /var/lib/nimbus-sync/customer-a/roster.d
        touch /var/lib/nimbus-sync/state.db /var/lib/nimbus-sync/customer-a/roster.d/export.csv
        for action in remove upgrade purge; do
                sh "$POSTRM" "$action"
                if [ -e /var/lib/nimbus-sync/customer-a/roster.d/export.csv ]; then echo "$action: kept"
                elif [ -e /var/lib/nimbus-sync ]; then echo "$action: partly removed"
                else echo "$action: removed"; fi
        done
    """
    env = dict(os.environ, SCRATCH=str(scratch), POSTRM=str(DEBIAN / "nimbus-sync.postrm"))
    out = subprocess.run([UNSHARE, "-m", "sh", "-c", script], capture_output=True, text=True,
                         timeout=60, env=env)
    if out.returncode != 0 and "namespace ready" not in out.stderr:
        pytest.skip(f"no private mount namespace with an overlay here: {out.stderr.strip()}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["remove: kept", "upgrade: kept", "purge: removed"]
