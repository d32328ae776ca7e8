#!/bin/sh
# Installs what building and testing nimbus-sync needs, from Debian's packages, when missing.
# Used by tests/run.sh, tests/demo.sh and CI, so a fresh Debian 12 machine needs nothing else.
set -eu

PACKAGES="meson ninja-build pkg-config gcc libc6-dev libcurl4-openssl-dev libuv1-dev libyaml-dev
libjson-c-dev libsystemd-dev libsqlite3-dev libcsv-dev libssl-dev libcmocka-dev
python3 python3-pytest python3-yaml python3-prometheus-client openssl ca-certificates sqlite3
systemd scdoc man-db bash-completion zsh procps"

missing=""
for p in $PACKAGES; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "Installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
