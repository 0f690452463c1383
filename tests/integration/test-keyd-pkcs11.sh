#!/usr/bin/env bash
# keyd with a PKCS#11 token (SoftHSM2): with pkcs11_lib_path and
# pkcs11_base_slot set, new key pairs and symmetric keys (the handle key
# too) are made in the token and used there; signatures verify with
# openssl against the public key keyd returns and against pkcs11-tool's
# export of a preloaded key; HMAC, derived keys and AES-GCM work with token
# keys; move and delete relabel and destroy token objects; handles survive
# a restart; no key file is written; a wrong pin stops keyd at start.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
edgeidd=$EDGEID_BUILD_ROOT/edgeidd
lib=/usr/lib/softhsm/libsofthsm2.so

if ! command -v softhsm2-util >/dev/null || ! command -v pkcs11-tool >/dev/null || [ ! -e "$lib" ]; then
	echo "1..0 # SKIP softhsm2 and opensc are not installed (scripts/install-deps.sh)"
	exit 0
fi

for tool in curl jq openssl xxd python3; do
	command -v "$tool" >/dev/null || {
		echo "not ok 1 - $tool is not installed"
		echo "1..1"
		exit 1
	}
done

tmp=$(mktemp -d)
root=$tmp/root
sock=$tmp/keyd.sock
keys=$root/var/lib/aziot/keyd/keys
log=$tmp/keyd.log
responses=$tmp/responses
V=api-version=2021-05-01
pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
[ -n "${KEEP_LOG:-}" ] && trap 'cp "$log" "$KEEP_LOG"; cleanup' EXIT

export SOFTHSM2_CONF=$tmp/softhsm2.conf
mkdir -p "$tmp/tokens" "$root/etc/aziot/keyd"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$tmp/tokens" >"$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label edgeid --pin 1234 --so-pin 5678 >/dev/null
p11() { pkcs11-tool --module "$lib" --token-label edgeid --login --pin 1234 "$@" 2>/dev/null; }
labels() { p11 --list-objects --type "$1" | sed -n 's/^ *label: *//p' | sort | tr '\n' ' '; }
p11 --keypairgen --key-type EC:prime256v1 --label preloaded-ec >/dev/null
p11 --read-object --type pubkey --label preloaded-ec -o "$tmp/preloaded-pub.der"
openssl pkey -pubin -inform DER -in "$tmp/preloaded-pub.der" -out "$tmp/preloaded-pub.pem" 2>/dev/null

write_config() { # write_config PIN
	cat >"$root/etc/aziot/keyd/config.toml" <<EOF
[aziot_keys]
homedir_path = "/var/lib/aziot/keyd"
pkcs11_lib_path = "$lib"
pkcs11_base_slot = "pkcs11:token=edgeid?pin-value=$1"

[preloaded_keys]
preloaded-ec = "pkcs11:token=edgeid;object=preloaded-ec?pin-value=$1"
EOF
}

start_keyd() {
	"$edgeidd" keyd --root "$root" --socket "$sock" 2>>"$log" &
	pid=$!
	for _ in $(seq 1 200); do
		code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$sock" "http://keyd.sock/key/x" 2>/dev/null)
		[ "$code" = 400 ] && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
stop_keyd() {
	kill -TERM "$pid"
	wait "$pid"
	local rc=$?
	pid=
	return $rc
}
req() { # req METHOD PATH [BODY]
	local out
	out=$(curl -s --unix-socket "$sock" -X "$1" -H 'Content-Type: application/json' \
		${3:+--data-binary "$3"} -w '\n%{http_code}' "http://keyd.sock$2")
	body=${out%$'\n'*}
	status=${out##*$'\n'}
	printf '%s\n' "$body" >>"$responses"
}
json() { jq -r "$1" <<<"$body"; }
b64() { base64 -w0; }
unb64() { base64 -d; }

# ---- start -------------------------------------------------------------------

write_config 9999
"$edgeidd" keyd --root "$root" --socket "$sock" 2>"$tmp/err"
is "$?" 1 "a wrong pin-value: keyd does not start"
like "$(cat "$tmp/err")" 'pkcs11_base_slot: PKCS#11 C_Login \(check pin-value\) failed' "... and says why"

write_config 1234
start_keyd
ok $? "keyd starts with the token as its base slot"
is "$(labels secrkey)" "handle-validation-key " "the handle key is made in the token"
is "$(ls -A "$keys" | wc -l)" 0 "no key file is written"

# ---- key pairs in the token --------------------------------------------------------

req POST "/keypair?$V" '{"keyId":"device-id","preferredAlgorithms":"ec-p256"}'
ec=$(json .keyHandle)
is "$status:$(labels privkey)" "200:device-id preloaded-ec " "POST /keypair generates the EC key pair in the token"
req POST "/keypair?$V" '{"keyId":"device-id","preferredAlgorithms":"rsa-2048"}'
is "$status:$(p11 --list-objects --type privkey | grep -c 'RSA')" "200:0" "creating it again keeps the token's key"
req POST "/parameters/ec-point?$V" "{\"keyHandle\":\"$ec\"}"
{
	printf '3039301306072a8648ce3d020106082a8648ce3d030107032200' | xxd -r -p
	json .value | unb64
} >"$tmp/ec-pub.der"
openssl pkey -pubin -inform DER -in "$tmp/ec-pub.der" -out "$tmp/ec-pub.pem" 2>/dev/null
p11 --read-object --type pubkey --label device-id -o "$tmp/tok-pub.der"
is "$(openssl pkey -pubin -inform DER -in "$tmp/tok-pub.der" -outform DER 2>/dev/null | sha256sum)" \
	"$(openssl ec -pubin -in "$tmp/ec-pub.pem" -conv_form uncompressed -outform DER 2>/dev/null | sha256sum)" \
	"ec-point is the token's public key"
req POST "/parameters/ec-curve-oid?$V" "{\"keyHandle\":\"$ec\"}"
is "$(json .value)" "BggqhkjOPQMBBw==" "ec-curve-oid"
printf 'message to sign' >"$tmp/data"
digest=$(openssl dgst -sha256 -binary "$tmp/data" | b64)
req POST "/sign?$V" "{\"keyHandle\":\"$ec\",\"algorithm\":\"ECDSA\",\"parameters\":{\"digest\":\"$digest\"}}"
json .signature | unb64 >"$tmp/sig.der"
out=$(openssl dgst -sha256 -verify "$tmp/ec-pub.pem" -signature "$tmp/sig.der" "$tmp/data" 2>&1)
is "$status:$out" "200:Verified OK" "ECDSA in the token, DER-encoded, verified by openssl"

req GET "/keypair/preloaded-ec?$V"
pre=$(json .keyHandle)
req POST "/sign?$V" "{\"keyHandle\":\"$pre\",\"algorithm\":\"ECDSA\",\"parameters\":{\"digest\":\"$digest\"}}"
json .signature | unb64 >"$tmp/sig2.der"
out=$(openssl dgst -sha256 -verify "$tmp/preloaded-pub.pem" -signature "$tmp/sig2.der" "$tmp/data" 2>&1)
is "$status:$out" "200:Verified OK" "a preloaded pkcs11: key signs; verified with pkcs11-tool's export of its public key"

req POST "/keypair?$V" '{"keyId":"rsa-id","preferredAlgorithms":"rsa-2048"}'
rsa=$(json .keyHandle)
is "$status:$(p11 --list-objects --type privkey | grep -c 'RSA')" "200:1" "an RSA-2048 key pair in the token"
req POST "/parameters/rsa-modulus?$V" "{\"keyHandle\":\"$rsa\"}"
n=$(json .value | unb64 | xxd -p -c 1000)
req POST "/parameters/rsa-exponent?$V" "{\"keyHandle\":\"$rsa\"}"
is "$(json .value)" "AQAB" "rsa-exponent"
printf 'asn1=SEQUENCE:k\n[k]\nn=INTEGER:0x%s\ne=INTEGER:0x010001\n' "$n" >"$tmp/rsa.cnf"
openssl asn1parse -genconf "$tmp/rsa.cnf" -noout -out "$tmp/rsa.der" >/dev/null 2>&1
openssl rsa -RSAPublicKey_in -inform DER -in "$tmp/rsa.der" -pubout -out "$tmp/rsa-pub.pem" 2>/dev/null
di=$({
	printf '3031300d060960864801650304020105000420' | xxd -r -p
	openssl dgst -sha256 -binary "$tmp/data"
} | b64)
req POST "/encrypt?$V" "{\"keyHandle\":\"$rsa\",\"algorithm\":\"RSA-PKCS1\",\"plaintext\":\"$di\"}"
json .ciphertext | unb64 >"$tmp/rsa-sig"
out=$(openssl dgst -sha256 -verify "$tmp/rsa-pub.pem" -signature "$tmp/rsa-sig" "$tmp/data" 2>&1)
is "$status:$out" "200:Verified OK" "RSA-PKCS1 in the token verifies with the modulus keyd returned"
{
	printf '\0'
	head -c 255 /dev/urandom
} >"$tmp/raw"
req POST "/encrypt?$V" "{\"keyHandle\":\"$rsa\",\"algorithm\":\"RSA-NO-PADDING\",\"plaintext\":\"$(b64 <"$tmp/raw")\"}"
json .ciphertext | unb64 >"$tmp/raw-sig"
openssl pkeyutl -verifyrecover -pubin -inkey "$tmp/rsa-pub.pem" -pkeyopt rsa_padding_mode:none \
	-in "$tmp/raw-sig" -out "$tmp/raw-back" 2>/dev/null
cmp -s "$tmp/raw" "$tmp/raw-back"
ok $? "RSA-NO-PADDING in the token is the raw private-key operation"

# ---- symmetric keys in the token ----------------------------------------------------

req POST "/key?$V" '{"keyId":"master","usage":"derive,sign"}'
sym=$(json .keyHandle)
like "$status:$(labels secrkey)" '^200:.*master' "POST /key generates an HMAC key in the token"
data=$(printf 'module-1' | b64)
req POST "/sign?$V" "{\"keyHandle\":\"$sym\",\"algorithm\":\"HMAC-SHA256\",\"parameters\":{\"message\":\"$data\"}}"
mac=$(json .signature)
is "$(json .signature | unb64 | wc -c)" 32 "HMAC-SHA256 in the token gives 32 bytes"
req POST "/derivedkey?$V" "{\"baseKeyHandle\":\"$sym\",\"derivationData\":\"$data\"}"
der=$(json .keyHandle)
req POST "/derivedkey/export?$V" "{\"keyHandle\":\"$der\"}"
is "$(json .key)" "$mac" "the derived key is the token's HMAC of the derivation data"
req POST "/key?$V" '{"keyId":"imported","usage":"sign","keyBytes":"c2VjcmV0LWJ5dGVzLXNlY3JldC1ieXRlcy0zMmJ5dGU="}'
imp=$(json .keyHandle)
req POST "/sign?$V" "{\"keyHandle\":\"$imp\",\"algorithm\":\"HMAC-SHA256\",\"parameters\":{\"message\":\"$data\"}}"
want=$(printf 'module-1' | openssl dgst -sha256 -mac HMAC -macopt key:secret-bytes-secret-bytes-32byte -binary | b64)
is "$status:$(json .signature)" "200:$want" "an imported key lives in the token and HMACs like openssl"
is "$(ls -A "$keys" | wc -l)" 0 "still no key file"
req POST "/key?$V" '{"keyId":"aes","usage":"encrypt"}'
aes=$(json .keyHandle)
like "$(p11 --list-objects --type secrkey | grep -B1 'label: *aes' | head -1)" 'AES' "usage encrypt makes an AES key in the token"
iv=$(printf 'iv-twelve-by' | b64)
aad=$(printf 'aad' | b64)
pt=$(printf 'the secret plaintext' | b64)
req POST "/encrypt?$V" "{\"keyHandle\":\"$aes\",\"algorithm\":\"AEAD\",\"parameters\":{\"iv\":\"$iv\",\"aad\":\"$aad\"},\"plaintext\":\"$pt\"}"
ct=$(json .ciphertext)
is "$status:$(unb64 <<<"$ct" | head -c 1 | xxd -p):$(unb64 <<<"$ct" | wc -c)" "200:02:37" "AES-GCM in the token: 0x02 || ct || tag"
req POST "/decrypt?$V" "{\"keyHandle\":\"$aes\",\"algorithm\":\"AEAD\",\"parameters\":{\"iv\":\"$iv\",\"aad\":\"$aad\"},\"ciphertext\":\"$ct\"}"
is "$status:$(json .plaintext)" "200:$pt" "... and decrypts"
req POST "/decrypt?$V" "{\"keyHandle\":\"$aes\",\"algorithm\":\"AEAD\",\"parameters\":{\"iv\":\"$iv\",\"aad\":\"\"},\"ciphertext\":\"$ct\"}"
is "$status" 400 "... but not with another AAD"

# ---- move, delete, restart ---------------------------------------------------------------

req POST "/keypair/device-id-2?$V" '{"from":"device-id"}'
is "$status:$(labels privkey)" "204:device-id-2 preloaded-ec rsa-id " "move relabels the token's key pair"
is "$(labels pubkey)" "device-id-2 preloaded-ec rsa-id " "... public object too"
req GET "/keypair/device-id-2?$V"
moved=$(json .keyHandle)
req POST "/sign?$V" "{\"keyHandle\":\"$moved\",\"algorithm\":\"ECDSA\",\"parameters\":{\"digest\":\"$digest\"}}"
json .signature | unb64 >"$tmp/sig3.der"
out=$(openssl dgst -sha256 -verify "$tmp/ec-pub.pem" -signature "$tmp/sig3.der" "$tmp/data" 2>&1)
is "$out" "Verified OK" "the moved key is the same key"
req DELETE "/keypair?$V" "{\"keyHandle\":\"$rsa\"}"
is "$status:$(labels privkey)" "204:device-id-2 preloaded-ec " "DELETE /keypair destroys the token's key pair"
req DELETE "/key?$V" "{\"keyHandle\":\"$imp\"}"
is "$status:$(labels secrkey | grep -c imported)" "204:0" "DELETE /key destroys the token's secret key"

stop_keyd
is "$?" 0 "keyd stops cleanly (and closes the module)"
start_keyd
req POST "/sign?$V" "{\"keyHandle\":\"$moved\",\"algorithm\":\"ECDSA\",\"parameters\":{\"digest\":\"$digest\"}}"
is "$status" 200 "after a restart, handles made with the token's handle key still work"
req POST "/derivedkey/export?$V" "{\"keyHandle\":\"$der\"}"
is "$(json .key)" "$mac" "... derived handles too"
stop_keyd

ok "$(grep -c 'PRIVATE KEY' "$responses")" "no response contains \"PRIVATE KEY\""
ok "$(grep -cE 'AddressSanitizer|LeakSanitizer|runtime error' "$log")" "no sanitizer reports"

done_testing
