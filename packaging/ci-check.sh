#!/bin/sh
# Checks that nimbus-sync packages and installs like a good Debian package, as root on a Debian 12
# CI machine (after tests/deps.sh):
#   1. the Debian package builds (dpkg-buildpackage -b) and lintian finds no errors;
#   2. it installs with apt-get, and everything is in place: binary, unit and template unit,
#      sysusers.d and tmpfiles.d files, journal catalog, man pages, bash and zsh completion, the
#      example config (and no config.yaml); the system user and the roster folder
#      (nimbus-sync:nimbus-sync, 2770) exist;
#   3. the installed units verify and rate 2.0 or lower in systemd-analyze security;
#   4. apt-get purge removes /var/lib/nimbus-sync, state and rosters;
#   5. the RPM spec builds with rpmbuild -bb.
# Rerunnable: a previously installed nimbus-sync is purged first, and the temporary folder goes
# away on exit (unless NIMBUS_SYNC_KEEP_WORK=1, for debugging). Build logs are kept out of the CI
# log unless a step fails.
set -eu
cd "$(dirname "$0")/.."
src=$PWD
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

step() { printf '== packaging: %s\n' "$*"; }
fail() { printf 'packaging: FAILED: %s\n' "$*" >&2; exit 1; }

# Runs a command with its output in $work/NAME.log, shown (the end of it) only on failure.
logged() {
        name=$1; shift
        if ! "$@" >"$work/$name.log" 2>&1; then
                tail -n 60 "$work/$name.log" >&2
                fail "$name: $*"
        fi
}

install_tools() {
        missing=""
        for p in debhelper dpkg-dev lintian rpm scdoc systemd fakeroot build-essential \
                 bash-completion man-db pkg-config zsh; do
                dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" ||
                        missing="$missing $p"
        done
        [ -z "$missing" ] && return 0
        step "installing$missing"
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
                { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null; }
}

project_version() {
        sed -n "s/^[[:space:]]*version[[:space:]]*:[[:space:]]*'\([^']*\)'.*/\1/p" meson.build | head -n 1
}

check_versions() {
        deb=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
        rpm=$(sed -n 's/^Version:[[:space:]]*//p' packaging/rpm/nimbus-sync.spec)
        [ "$deb" = "$version" ] || fail "packaging/debian/changelog says $deb, meson.build $version"
        [ "$rpm" = "$version" ] || fail "packaging/rpm/nimbus-sync.spec says $rpm, meson.build $version"
}

# The source tree as a release tarball would hold it: no build output, no VCS, no caches.
copy_tree() {
        mkdir "$tree"
        tar -C "$src" --exclude=./build --exclude=./.git --exclude=./.pytest_cache \
            --exclude='__pycache__' --exclude='./obj-*' -cf - . | tar -C "$tree" -xf -
}

build_deb() {
        step "dpkg-buildpackage -b"
        cp -r "$tree/packaging/debian" "$tree/debian"
        (cd "$tree" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" logged deb-build \
                dpkg-buildpackage -b -us -uc)
        rm -rf "$tree/debian"
        set -- "$work"/nimbus-sync_"$version"_*.deb
        [ -f "$1" ] || fail "no nimbus-sync_${version}_*.deb was built"
        deb_file=$1
}

run_lintian() {
        step "lintian"
        lintian --fail-on error --tag-display-limit 0 "$work"/nimbus-sync_"$version"_*.changes ||
                fail "lintian reported errors"
}

install_deb() {
        step "apt-get install ./$(basename "$deb_file")"
        if dpkg-query -W -f='${Status}\n' nimbus-sync 2>/dev/null | grep -q "install ok installed"; then
                logged purge apt-get purge -y nimbus-sync
        fi
        (cd "$work" && logged install apt-get install -y --no-install-recommends "./$(basename "$deb_file")")
}

check_file() {
        [ -f "$1" ] || fail "missing after install: $1"
}

check_installed_files() {
        step "installed files"
        unitdir=$(pkg-config --variable=systemdsystemunitdir systemd)
        unit=$unitdir/nimbus-sync.service
        template=$unitdir/nimbus-sync@.service
        check_file /usr/bin/nimbus-sync
        check_file "$unit"
        check_file "$template"
        check_file /usr/lib/sysusers.d/nimbus-sync.conf
        check_file /usr/lib/tmpfiles.d/nimbus-sync.conf
        check_file /usr/lib/systemd/catalog/nimbus-sync.catalog
        check_file /usr/share/bash-completion/completions/nimbus-sync
        check_file /usr/share/zsh/vendor-completions/_nimbus-sync
        check_file /usr/share/nimbus-sync/grafana/nimbus-sync.json
        check_file /etc/nimbus-sync/config.yaml.example
        [ ! -e /etc/nimbus-sync/config.yaml ] || fail "the package must not ship /etc/nimbus-sync/config.yaml"
        dpkg-query --control-show nimbus-sync conffiles | grep -q '^ */etc/nimbus-sync/config.yaml.example\( \|$\)' ||
                fail "config.yaml.example is not a conffile"

        got=$(nimbus-sync --version)
        [ "$got" = "nimbus-sync $version" ] || fail "nimbus-sync --version says \"$got\""

        for page in 8:nimbus-sync 5:nimbus-sync.yaml; do
                man -w "${page%%:*}" "${page#*:}" >/dev/null || fail "man ${page%%:*} ${page#*:} not found"
        done
        MANWIDTH=80 man 8 nimbus-sync 2>/dev/null | grep -q TROUBLESHOOTING || fail "man nimbus-sync does not render"
        MANWIDTH=80 man 5 nimbus-sync.yaml 2>/dev/null | grep -q 'CSV rosters' ||
                fail "man nimbus-sync.yaml does not render"

        bash -c '. /usr/share/bash-completion/bash_completion
                 . /usr/share/bash-completion/completions/nimbus-sync
                 complete -p nimbus-sync' >/dev/null || fail "the bash completion does not load"
        got=$(zsh -fc 'fpath=(/usr/share/zsh/vendor-completions $fpath)
                       autoload -Uz compinit && compinit -u -D && print -r -- $_comps[nimbus-sync]')
        [ "$got" = _nimbus-sync ] || fail "zsh does not find the completion (got \"$got\")"
}

check_catalog() {
        step "journal catalog"
        journalctl --update-catalog
        n_ids=$(grep -c '^#define MID_' include/log.h)
        n_cat=$(journalctl --list-catalog | grep -c ' nimbus-sync: ' || :)
        [ "$n_cat" -eq "$n_ids" ] || fail "the journal knows $n_cat nimbus-sync catalog entries, log.h has $n_ids"
}

check_user_and_folders() {
        step "system user and roster folder"
        # Again by hand: the postinst ran them already, and both must be idempotent.
        systemd-sysusers nimbus-sync.conf
        systemd-tmpfiles --create nimbus-sync.conf
        shell=$(getent passwd nimbus-sync | cut -d: -f7) || fail "no user nimbus-sync"
        case $shell in */nologin | */false) ;; *) fail "nimbus-sync has a login shell: $shell" ;; esac
        getent group nimbus-sync >/dev/null || fail "no group nimbus-sync"
        got=$(stat -c '%U:%G %a' /var/lib/nimbus-sync/roster.d)
        [ "$got" = "nimbus-sync:nimbus-sync 2770" ] ||
                fail "/var/lib/nimbus-sync/roster.d is $got, not nimbus-sync:nimbus-sync 2770"
        # The unedited example is refused for its placeholder ids; with ids filled in it is valid,
        # and the service user can read the roster folder with it.
        if runuser -u nimbus-sync -- nimbus-sync -c /etc/nimbus-sync/config.yaml.example validate \
                >"$work/placeholder.log" 2>&1; then
                fail "validate accepted the example's all-zero tenant_id and client_id"
        fi
        grep -q "still the example's placeholder" "$work/placeholder.log" ||
                { cat "$work/placeholder.log" >&2; fail "validate did not name the example's placeholders"; }
        sed -e "s/^tenant_id: 0\{8\}-0\{4\}-0\{4\}-0\{4\}-0\{12\}/tenant_id: 9fce70af-a632-49ca-bc0d-53db5a21c5b3/" \
            -e "s/^client_id: 0\{8\}-0\{4\}-0\{4\}-0\{4\}-0\{12\}/client_id: 0b5b2c1e-8f4d-4c3a-9b2e-7d6f5a4b3c2d/" \
            /etc/nimbus-sync/config.yaml.example >"$work/filled.yaml"
        filled=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-sync-example.XXXXXX")
        chmod 755 "$filled"
        install -m 644 "$work/filled.yaml" "$filled/config.yaml"
        logged validate runuser -u nimbus-sync -- nimbus-sync -c "$filled/config.yaml" validate
        rm -rf "$filled"
}

# Verifies one installed unit (a template as an instance of it) and checks its exposure level.
check_one_unit() {
        name=$1 path=$2
        systemd-analyze verify "$path" || fail "systemd-analyze verify $path"
        systemd-analyze security --offline=true "$path" >"$work/security.txt" 2>&1 ||
                { cat "$work/security.txt" >&2; fail "systemd-analyze security $name"; }
        level=$(sed -n "s/.*Overall exposure level for $name: \([0-9.]*\).*/\1/p" "$work/security.txt")
        [ -n "$level" ] || { cat "$work/security.txt" >&2; fail "no exposure level in systemd-analyze's output"; }
        echo "systemd-analyze security $name: exposure $level"
        awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }' || fail "$name: exposure $level is above 2.0"
}

check_unit() {
        step "systemd units"
        check_one_unit nimbus-sync.service "$unit"
        check_one_unit nimbus-sync@customer-a.service "$unitdir/nimbus-sync@customer-a.service"
}

# Purge deletes the state and the roster folders (they hold user lists); remove keeps them.
check_purge() {
        step "apt-get remove, apt-get purge"
        mkdir -p /var/lib/nimbus-sync/customer-a/roster.d
        echo "users: []" >/var/lib/nimbus-sync/roster.d/ci-check.yaml
        echo "users: []" >/var/lib/nimbus-sync/customer-a/roster.d/ci-check.yaml
        logged remove apt-get remove -y nimbus-sync
        [ -f /var/lib/nimbus-sync/customer-a/roster.d/ci-check.yaml ] || fail "apt-get remove deleted the rosters"
        logged purge apt-get purge -y nimbus-sync
        [ ! -e /var/lib/nimbus-sync ] || fail "apt-get purge left /var/lib/nimbus-sync"
}

build_rpm() {
        step "rpmbuild -bb"
        mkdir -p "$work/rpm/SOURCES"
        mv "$tree" "$work/nimbus-sync-$version"
        tar -C "$work" -czf "$work/rpm/SOURCES/nimbus-sync-$version.tar.gz" "nimbus-sync-$version"
        # --nodeps: Debian's rpm database knows none of the Fedora BuildRequires, which are
        # installed here as Debian packages. --nocheck: the suite ran above and in tests/run.sh.
        logged rpmbuild rpmbuild -bb --nodeps --nocheck --define "_topdir $work/rpm" \
                packaging/rpm/nimbus-sync.spec
        set -- "$work"/rpm/RPMS/*/nimbus-sync-"$version"-*.rpm
        [ -f "$1" ] || fail "no nimbus-sync-$version-*.rpm was built"
        rpm -qlp "$1" >"$work/rpm-files.txt" 2>/dev/null
        for f in /usr/bin/nimbus-sync /usr/lib/systemd/system/nimbus-sync.service \
                 /usr/lib/systemd/system/nimbus-sync@.service /usr/share/zsh/site-functions/_nimbus-sync \
                 /usr/lib/sysusers.d/nimbus-sync.conf /usr/lib/tmpfiles.d/nimbus-sync.conf \
                 /usr/lib/systemd/catalog/nimbus-sync.catalog /etc/nimbus-sync/config.yaml.example; do
                grep -qx "$f" "$work/rpm-files.txt" || fail "the rpm lacks $f"
        done
        grep -q '^/usr/share/man/man8/nimbus-sync.8' "$work/rpm-files.txt" || fail "the rpm lacks the man page"
        echo "built $(basename "$1")"
}

[ "$(id -u)" -eq 0 ] || fail "run as root (it installs packages)"
install_tools
version=$(project_version)
[ -n "$version" ] || fail "cannot read the version from meson.build"
check_versions
work=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-sync-packaging.XXXXXX")
if [ "${NIMBUS_SYNC_KEEP_WORK:-0}" = 1 ]; then
        trap 'echo "packaging: work folder kept: $work"' EXIT
else
        trap 'rm -rf "$work"' EXIT
fi
trap 'exit 1' INT TERM
tree=$work/tree
copy_tree
build_deb
run_lintian
install_deb
check_installed_files
check_catalog
check_user_and_folders
check_unit
check_purge
build_rpm
step "all checks passed"
