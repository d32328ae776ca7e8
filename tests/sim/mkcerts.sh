#!/bin/sh
# mkcerts.sh DIR: throwaway TLS material for the Nimbus simulator.
#
# Creates, with the openssl CLI:
#   DIR/ca.pem, DIR/ca.key          a test CA valid for 2 days
#   DIR/server.pem, DIR/server.key  a server certificate signed by that CA for
#                                   IP:127.0.0.1, DNS:localhost and DNS:{admin,portal}.localhost
#   DIR/other-ca.pem                an unrelated CA, for "wrong CA is refused" tests
#   DIR/client.pem, DIR/client.key  an application's certificate credential (RSA 2048,
#                                   self-signed, as Entra ID takes them): give client.pem to
#                                   the simulator (--client-cert), both to nimbus-sync
#   DIR/client-wrong.key            another RSA key, which does not belong to client.pem,
#   DIR/client-wrong.pem            and its own certificate, which the simulator does not know
# Prints nothing on success; on failure shows openssl's output and exits non-zero.
set -eu

if [ "$#" -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
dir=$1
mkdir -p "$dir"
umask 077
log="$dir/.mkcerts.log"

# Run one openssl step quietly; its output is only worth seeing when it fails.
run() {
	if ! "$@" >"$log" 2>&1; then
		echo "mkcerts.sh: failed: $*" >&2
		cat "$log" >&2
		exit 1
	fi
}

# make_ca NAME SUBJECT: a self-signed CA certificate NAME.pem with key NAME.key.
make_ca() {
	run openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
		-keyout "$dir/$1.key" -out "$dir/$1.pem" -days 2 -subj "$2" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-addext "subjectKeyIdentifier=hash"
}

# make_client NAME: a self-signed RSA certificate NAME.pem with key NAME.key.
make_client() {
	run openssl req -x509 -new -nodes -newkey rsa:2048 \
		-keyout "$dir/$1.key" -out "$dir/$1.pem" -days 2 -subj "/CN=nimbus-sync test app ($1)"
}

make_ca ca "/CN=nimbus-sim test CA"
make_ca other-ca "/CN=nimbus-sim unrelated CA"
rm -f "$dir/other-ca.key"

cat >"$dir/.server.ext" <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:admin.localhost,DNS:portal.localhost
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF

run openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
	-keyout "$dir/server.key" -out "$dir/.server.csr" -subj "/CN=localhost"
run openssl x509 -req -in "$dir/.server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
	-CAcreateserial -CAserial "$dir/.ca.srl" -days 2 -sha256 \
	-extfile "$dir/.server.ext" -out "$dir/server.pem"

make_client client
make_client client-wrong

chmod 644 "$dir/ca.pem" "$dir/other-ca.pem" "$dir/server.pem" "$dir/client.pem" "$dir/client-wrong.pem"
rm -f "$dir/.server.csr" "$dir/.server.ext" "$dir/.ca.srl" "$log"
