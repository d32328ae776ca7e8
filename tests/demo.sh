#!/bin/sh
# The quick start: builds nimbus-sync, starts the bundled Nimbus + Entra simulator on loopback,
# drops the example rosters into a roster folder and provisions them, so you can watch users
# being created, copied and then deleted. Everything lives in a temporary folder that is removed
# at the end; nothing leaves this machine.
set -eu
cd "$(dirname "$0")/.."
sh tests/deps.sh
[ -f build/plain/build.ninja ] || meson setup build/plain >/dev/null
meson compile -C build/plain >/dev/null
BIN=$PWD/build/plain/src/nimbus-sync

DEMO=$(mktemp -d)
SIM_PID=""
cleanup() { [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null; rm -rf "$DEMO"; }
trap cleanup EXIT INT TERM

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
log: {target: stderr}
CONF
export NIMBUS_SYNC_CONFIG="$DEMO/config.yaml"
cp config/examples/support-team.yaml config/examples/entra-export.csv "$DEMO/roster.d/"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
step nimbus-sync validate;  "$BIN" validate
step nimbus-sync plan;      "$BIN" plan || true
step nimbus-sync apply;     "$BIN" apply
step nimbus-sync status;    "$BIN" status
step "rm roster.d/entra-export.csv && nimbus-sync plan"
rm "$DEMO/roster.d/entra-export.csv"; "$BIN" plan || true
step nimbus-sync apply;     "$BIN" apply
step "nimbus-sync user show 1f0e6b8a-5c3d-4e2f-9a1b-7c8d9e0f1a2b"
"$BIN" user show 1f0e6b8a-5c3d-4e2f-9a1b-7c8d9e0f1a2b
step nimbus-sync licenses;  "$BIN" licenses
printf '\nDemo done. The simulator and the demo folder are removed now.\n'
