#!/bin/sh
# The quick start: builds nimbus-sync, starts the bundled Nimbus + Entra simulator on loopback
# (HTTPS with a throwaway CA), runs the daemon on a roster folder holding the example rosters,
# then changes the folder, so you can watch users being created, copied, deleted and re-created.
# Everything lives in a temporary folder that is removed at the end, together with the simulator
# and the daemon, however the demo ends (done, failed, or interrupted); nothing leaves this machine.
set -eu
cd "$(dirname "$0")/.."
sh tests/deps.sh
[ -f build/plain/build.ninja ] || meson setup build/plain >/dev/null
meson compile -C build/plain >/dev/null
BIN=$PWD/build/plain/src/nimbus-sync

DEMO=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-sync-demo.XXXXXX")
SIM_PID=""
DAEMON_PID=""
# Stops a background process of ours, if it is still running, and reaps it. Never fails: this
# runs in the exit trap under `set -e`, where a failing command would skip the rest.
stop() {
        [ -n "$1" ] || return 0
        kill "$1" 2>/dev/null || :
        wait "$1" 2>/dev/null || :
}
# The exit status is kept: the demo's, not that of the last cleanup step.
cleanup() {
        status=$?
        trap - EXIT
        stop "$DAEMON_PID"
        stop "$SIM_PID"
        rm -rf "$DEMO"
        exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TENANT=9fce70af-a632-49ca-bc0d-53db5a21c5b3
CLIENT=0b5b6d1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e
SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
sh tests/sim/mkcerts.sh "$DEMO/certs"
/usr/bin/python3 tests/sim/nimbus_sim.py --tenant $TENANT --client-id $CLIENT \
        --client-secret "$SECRET" --tls "$DEMO/certs" --port-file "$DEMO/port" \
        --rate-ops 60 --rate-window 60 >"$DEMO/sim.log" 2>&1 &
SIM_PID=$!
i=0; while [ ! -s "$DEMO/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
PORT=$(cat "$DEMO/port")

mkdir -p "$DEMO/roster.d" "$DEMO/state"
umask 077; printf '%s\n' "$SECRET" > "$DEMO/client-secret"; umask 022
cat > "$DEMO/config.yaml" <<CONF
tenant_id: $TENANT
client_id: $CLIENT
client_secret_file: client-secret
api_url: https://127.0.0.1:$PORT
token_url: https://127.0.0.1:$PORT/$TENANT/oauth2/v2.0/token
scope: https://admin.ch-01.luware.cloud/.default
ca_file: certs/ca.pem
roster_dir: roster.d
state_dir: state
organization_units:
  support: 3f2a7c4e-0c1d-4a8b-9e61-2d5f8b7a9c10
settle_time: 1s
log: {target: stderr}
CONF
export NIMBUS_SYNC_CONFIG="$DEMO/config.yaml"
cp config/examples/support-team.yaml config/examples/entra-export.csv "$DEMO/roster.d/"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
# Waits (at most 30 s) until plan has nothing left to do: the daemon has converged.
converged() {
        i=0
        until "$BIN" plan >/dev/null 2>&1; do
                i=$((i + 1)); [ $i -lt 300 ] || { echo "demo: the daemon did not converge" >&2; exit 1; }
                sleep 0.1
        done
}

step "nimbus-sync validate   # the config and the roster folder"
"$BIN" validate
step "nimbus-sync plan       # what would change; nothing is sent"
"$BIN" plan || true
step "nimbus-sync daemon &   # the service; its log follows"
"$BIN" daemon &
DAEMON_PID=$!
converged
step "nimbus-sync status"
"$BIN" status
step "rm roster.d/entra-export.csv   # the daemon notices and deletes its users"
rm "$DEMO/roster.d/entra-export.csv"
sleep 3; converged
step "cp entra-export.csv roster.d/.new.tmp && mv roster.d/.new.tmp roster.d/entra-export.csv"
cp config/examples/entra-export.csv "$DEMO/roster.d/.new.tmp"
mv "$DEMO/roster.d/.new.tmp" "$DEMO/roster.d/entra-export.csv"
sleep 3; converged
step "nimbus-sync user show 2a1b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
"$BIN" user show 2a1b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d
step "nimbus-sync licenses"
"$BIN" licenses
step "kill -TERM daemon"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || { echo "demo: the daemon did not stop cleanly" >&2; exit 1; }
DAEMON_PID=""
printf '\nDemo done. The simulator and the demo folder are removed now.\n'
