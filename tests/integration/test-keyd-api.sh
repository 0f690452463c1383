#!/usr/bin/env bash
# keyd through the real `edgeidd keyd` on a unix socket (curl --unix-socket):
# every Keys Service endpoint with its exact JSON; signatures checked by
# openssl against the public key keyd returns; HMAC and derived keys
# recomputed by openssl; encrypt/decrypt; callers that are not principals
# get 403 and learn nothing; no response ever carries a private or secret
# key; key files 0600 under aziot's names; handles survive a restart;
# hostile requests get exact errors and keyd keeps serving; SIGHUP reloads
# principals; max_requests; and SIGKILL during key creation never leaves
# a torn key file.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
edgeidd=$EDGEID_BUILD_ROOT/edgeidd

for tool in curl jq openssl xxd python3; do
	command -v "$tool" >/dev/null || {
		echo "not ok 1 - $tool is not installed"
		echo "1..1"
		exit 1
	}
done

tmp=$(mktemp -d)
chmod 755 "$tmp"
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

mkdir -p "$root/etc/aziot/keyd/config.d" "$root/var/secrets/aziot/keyd"
cat >"$root/etc/aziot/keyd/config.toml" <<'EOF'
[aziot_keys]
homedir_path = "/var/lib/aziot/keyd"

[preloaded_keys]
preloaded-sym = "file:///var/secrets/aziot/keyd/device-id"
EOF
cat >"$root/etc/aziot/keyd/config.d/00-super.toml" <<'EOF'
[[principal]]
uid = 4242
keys = ["mod-*", "shared"]
EOF
cat >"$root/etc/aziot/keyd/config.d/50-extra.toml" <<'EOF'
[[principal]]
uid = 4242
keys = ["extra"]
EOF
printf '0123456789abcdef0123456789abcdef' >"$root/var/secrets/aziot/keyd/device-id"

start_keyd() {
	"$edgeidd" keyd --root "$root" --socket "$sock" 2>>"$log" &
	pid=$!
	for _ in $(seq 1 200); do
		code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$sock" \
			"http://keyd.sock/key/x" 2>/dev/null)
		[ "$code" = 400 ] && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

stop_keyd() { # stop_keyd -> exit status of keyd after SIGTERM
	kill -TERM "$pid"
	wait "$pid"
	local rc=$?
	pid=
	return $rc
}

# req [--as UID] METHOD PATH [BODY]: sets $status and $body.
req() {
	local as=()
	if [ "$1" = --as ]; then
		as=(setpriv --reuid="$2" --regid="$2" --clear-groups)
		shift 2
	fi
	local method=$1 path=$2 out
	shift 2
	if [ $# -gt 0 ]; then
		out=$("${as[@]}" curl -s --unix-socket "$sock" -X "$method" \
			-H 'Content-Type: application/json' --data-binary "$1" \
			-w '\n%{http_code}' "http://keyd.sock$path")
	else
		out=$("${as[@]}" curl -s --unix-socket "$sock" -X "$method" \
			-w '\n%{http_code}' "http://keyd.sock$path")
	fi
	body=${out%$'\n'*}
	status=${out##*$'\n'}
	printf '%s\n' "$body" >>"$responses"
}

# expect STATUS BODY DESCRIPTION (after req)
expect() {
	is "$status $body" "$1 $2" "$3"
}

json() { jq -r "$1" <<<"$body"; }
b64() { base64 -w0; }
unb64() { base64 -d; }
keyfile() { # the aziot file name of a key id
	local id=$1 alnum hash
	alnum=$(printf '%s' "$id" | tr -cd 'A-Za-z0-9')
	hash=$(printf '%s' "$id" | sha256sum | cut -c1-64)
	echo "$keys/$alnum-$hash.key"
}
msg() { jq -cn --arg m "$1" '{message: $m}'; }
is_root() { [ "$(id -u)" -eq 0 ]; }
skip() { echo "ok $((TAP_N + 1)) # SKIP $*"; TAP_N=$((TAP_N + 1)); }

# ---- the binary --------------------------------------------------------------

out=$("$edgeidd" --help)
like "$out" '^  keyd +the keys service' "edgeidd --help lists keyd"
is "$("$edgeidd" version)" "edgeidd 0.1.0" "edgeidd version"
"$edgeidd" nosuchd >/dev/null 2>"$tmp/err"
is "$?:$(head -1 "$tmp/err")" "2:edgeidd: unknown daemon or command 'nosuchd'" "unknown daemon"
out=$("$edgeidd" keyd --root "$root" --check 2>&1)
is "$?:$out" "0:$root/etc/aziot/keyd/config.toml: OK" "keyd --check accepts the configuration"
mkdir -p "$tmp/bad/config.d"
printf '[[principal]]\nuid = "aziotid"\nkeys = []\n' >"$tmp/bad/config.d/00-super.toml"
out=$("$edgeidd" keyd -c "$tmp/bad/config.toml" --check 2>&1)
is "$?:$out" "1:$tmp/bad/config.d/00-super.toml:2:7: principal[0].uid: expected an integer, got a string" \
	"keyd --check names file, line and column of a bad principal"
printf '[aziot_keys]\nhomedir_path = "/x"\nhsm = "y"\n' >"$tmp/bad/config.toml"
rm "$tmp/bad/config.d/00-super.toml"
out=$("$edgeidd" keyd -c "$tmp/bad/config.toml" --check 2>&1)
is "$?:$out" "1:$tmp/bad/config.toml:3:7: aziot_keys.hsm: unknown setting (expected homedir_path, pkcs11_lib_path or pkcs11_base_slot)" \
	"keyd --check rejects unknown [aziot_keys] settings"
ln -s "$edgeidd" "$tmp/aziot-keyd"
out=$("$tmp/aziot-keyd" --help | head -1)
is "$out" "Usage: $tmp/aziot-keyd [OPTIONS]" "invoked as aziot-keyd, it is keyd"

# ---- start ----------------------------------------------------------------------

start_keyd
ok $? "keyd starts and serves $sock"
is "$(stat -c %a "$sock")" "660" "the socket is mode 0660"
is "$(stat -c %a "$keys")" "700" "keys/ is mode 0700"
hvk=$(keyfile handle-validation-key)
is "$(stat -c '%a %s' "$hvk" 2>&1)" "600 32" "the handle key exists at first start: $(basename "$hvk"), 0600, 32 bytes"
chmod 666 "$sock" # so that other uids reach keyd itself (the test is about keyd's checks)

# ---- common request rules -----------------------------------------------------------

req GET "/keypair/device-id"
expect 400 '{"message":"api-version not specified"}' "no api-version: 400"
req GET "/keypair/device-id?api-version=2022-01-01"
expect 400 '{"message":"invalid api-version \"2022-01-01\""}' "unknown api-version: 400"
req GET "/keys?$V"
expect 404 '{"message":"not found"}' "unknown path: 404"
req GET "/sign?$V"
expect 400 '{"message":"method not allowed"}' "GET /sign: 400 method not allowed"
req PUT "/key?$V" '{}'
expect 400 '{"message":"method not allowed"}' "PUT /key: 400 method not allowed"
req POST "/keypair?$V"
expect 400 '{"message":"missing request body"}' "POST without a body: 400"
req POST "/keypair?$V" '{"keyId":'
expect 422 '{"message":"invalid JSON at 1:9: unexpected token near end of file"}' "truncated JSON: 422 with where"
req POST "/keypair?$V" '[1,2]'
expect 422 '{"message":"expected a JSON object, got an array"}' "a JSON array: 422"
req POST "/keypair?$V" '{"keyId":7}'
expect 422 '{"message":"keyId: expected a string, got a number"}' "wrong field type: 422 names the field"
out=$(curl -s --unix-socket "$sock" -H 'Content-Type: text/plain' -d '{"keyId":"x"}' "http://keyd.sock/keypair?$V")
is "$out" '{"message":"missing request body"}' "a body that is not JSON is ignored, as in aziot"

# ---- key pairs: EC ------------------------------------------------------------------

req POST "/keypair?api-version=2020-09-01" '{"keyId":"device-id","preferredAlgorithms":"ec-p256:rsa-2048"}'
is "$status" 200 "POST /keypair creates an EC key pair (api-version 2020-09-01)"
like "$body" '^\{"keyHandle":"sr=[A-Za-z0-9+/]+=*&sig=[A-Za-z0-9+/]{43}="\}$' "the answer is {\"keyHandle\": \"sr=...&sig=...\"}"
ec=$(json .keyHandle)
f=$(keyfile device-id)
is "$(basename "$f")" "deviceid-bd732105ef89cf8edd2606a5309c8a26b7b5599a4e124a0fe6199b6b2f60e655.key" "the file has aziot's name"
is "$(stat -c %a "$f")" 600 "the key file is mode 0600"
is "$(head -1 "$f")" "-----BEGIN PRIVATE KEY-----" "the key file is PKCS#8 PEM"
like "$(openssl pkey -in "$f" -noout -text 2>&1)" 'prime256v1|P-256' "the key is on P-256"
sum1=$(sha256sum <"$f")
req POST "/keypair?$V" '{"keyId":"device-id"}'
is "$status:$(sha256sum <"$f")" "200:$sum1" "creating it again keeps the existing key"
req GET "/keypair/device-id?$V"
is "$status" 200 "GET /keypair/device-id"
ec2=$(json .keyHandle)

req POST "/parameters/algorithm?$V" "{\"keyHandle\":\"$ec\"}"
is "$status $body" '200 {"value":"ECDSA"}' "parameters/algorithm: ECDSA"
req POST "/parameters/ec-curve-oid?$V" "{\"keyHandle\":\"$ec\"}"
is "$status $body" '200 {"value":"BggqhkjOPQMBBw=="}' "ec-curve-oid is the DER OID of P-256"
req POST "/parameters/ec-point?$V" "{\"keyHandle\":\"$ec2\"}"
point=$(json .value)
want=$(openssl ec -in "$f" -pubout -conv_form compressed -outform DER 2>/dev/null | tail -c 33 | b64)
is "$point" "$want" "ec-point is the compressed public point"
req POST "/parameters/rsa-modulus?$V" "{\"keyHandle\":\"$ec\"}"
expect 400 "$(msg 'a parameter has an invalid value
caused by: key pair "device-id" is not an RSA key pair')" "rsa-modulus of an EC key: 400"
req POST "/parameters/secret?$V" "{\"keyHandle\":\"$ec\"}"
is "$status" 400 "an unknown parameter name: 400"

# The public key as keyd gives it: SubjectPublicKeyInfo around the point.
{
	printf '3039301306072a8648ce3d020106082a8648ce3d030107032200' | xxd -r -p
	unb64 <<<"$point"
} >"$tmp/ec-pub.der"
openssl pkey -pubin -inform DER -in "$tmp/ec-pub.der" -out "$tmp/ec-pub.pem" 2>/dev/null
printf 'message to sign' >"$tmp/data"
digest=$(openssl dgst -sha256 -binary "$tmp/data" | b64)
req POST "/sign?$V" "{\"keyHandle\":\"$ec\",\"algorithm\":\"ECDSA\",\"parameters\":{\"digest\":\"$digest\"}}"
is "$status" 200 "ECDSA sign"
json .signature | unb64 >"$tmp/sig.der"
is "$(openssl asn1parse -inform DER -in "$tmp/sig.der" 2>/dev/null | head -1 | grep -c SEQUENCE)" 1 "the signature is a DER SEQUENCE"
out=$(openssl dgst -sha256 -verify "$tmp/ec-pub.pem" -signature "$tmp/sig.der" "$tmp/data" 2>&1)
is "$out" "Verified OK" "openssl verifies the ECDSA signature with the public key keyd returned"
printf 'other message' >"$tmp/data2"
out=$(openssl dgst -sha256 -verify "$tmp/ec-pub.pem" -signature "$tmp/sig.der" "$tmp/data2" 2>&1)
is "$out" "Verification failure" "... and it does not verify another message"
req POST "/sign?$V" "{\"keyHandle\":\"$ec\",\"algorithm\":\"ECDSA\"}"
expect 422 '{"message":"parameters: missing"}' "ECDSA without parameters: 422"
req POST "/sign?$V" "{\"keyHandle\":\"$ec\",\"algorithm\":\"RSA\",\"parameters\":{}}"
expect 422 '{"message":"algorithm: unknown value \"RSA\", expected \"ECDSA\" or \"HMAC-SHA256\""}' "unknown sign algorithm: 422"
req POST "/sign?$V" "{\"keyHandle\":\"$ec\",\"algorithm\":\"HMAC-SHA256\",\"parameters\":{\"message\":\"aGk=\"}}"
expect 400 "$(msg 'parameter "mechanism" has an invalid value
caused by: mechanism cannot be used with this key type')" "HMAC with a key pair handle: 400 (wrong mechanism)"
req POST "/encrypt?$V" "{\"keyHandle\":\"$ec\",\"algorithm\":\"RSA-PKCS1\",\"plaintext\":\"aGk=\"}"
expect 400 "$(msg 'a parameter has an invalid value
caused by: RSA-PKCS1 needs an RSA key pair; "device-id" is not one')" "RSA-PKCS1 with an EC key: 400"

# ---- key pairs: RSA ------------------------------------------------------------------

req POST "/keypair?$V" '{"keyId":"rsa-id","preferredAlgorithms":"rsa-2048"}'
rsa=$(json .keyHandle)
frsa=$(keyfile rsa-id)
like "$(openssl pkey -in "$frsa" -noout -text 2>&1 | head -1)" '2048 bit' "rsa-2048 makes a 2048-bit RSA key"
openssl pkey -in "$frsa" -pubout -out "$tmp/rsa-pub.pem" 2>/dev/null
req POST "/parameters/algorithm?$V" "{\"keyHandle\":\"$rsa\"}"
is "$body" '{"value":"RSA"}' "algorithm is RSA"
req POST "/parameters/rsa-exponent?$V" "{\"keyHandle\":\"$rsa\"}"
is "$body" '{"value":"AQAB"}' "rsa-exponent is 65537"
req POST "/parameters/rsa-modulus?$V" "{\"keyHandle\":\"$rsa\"}"
mod=$(json .value | unb64 | xxd -p -c 1000 | tr a-f A-F)
want=$(openssl rsa -in "$frsa" -noout -modulus 2>/dev/null | cut -d= -f2)
is "$mod" "$want" "rsa-modulus is the big-endian modulus"
# RSA-PKCS1 "encrypt" is the private-key operation: a PKCS#1 v1.5 signature
# over the DigestInfo the caller builds.
di=$({
	printf '3031300d060960864801650304020105000420' | xxd -r -p
	openssl dgst -sha256 -binary "$tmp/data"
} | b64)
req POST "/encrypt?$V" "{\"keyHandle\":\"$rsa\",\"algorithm\":\"RSA-PKCS1\",\"plaintext\":\"$di\"}"
json .ciphertext | unb64 >"$tmp/rsa-sig"
out=$(openssl dgst -sha256 -verify "$tmp/rsa-pub.pem" -signature "$tmp/rsa-sig" "$tmp/data" 2>&1)
is "$status:$out" "200:Verified OK" "RSA-PKCS1 gives a signature openssl verifies"
{
	printf '\0'
	head -c 255 /dev/urandom
} >"$tmp/raw"
req POST "/encrypt?$V" "{\"keyHandle\":\"$rsa\",\"algorithm\":\"RSA-NO-PADDING\",\"plaintext\":\"$(b64 <"$tmp/raw")\"}"
json .ciphertext | unb64 >"$tmp/raw-sig"
openssl pkeyutl -verifyrecover -pubin -inkey "$tmp/rsa-pub.pem" -pkeyopt rsa_padding_mode:none \
	-in "$tmp/raw-sig" -out "$tmp/raw-back" 2>/dev/null
cmp -s "$tmp/raw" "$tmp/raw-back"
ok $? "RSA-NO-PADDING is the raw private-key operation (openssl recovers the input)"
req POST "/encrypt?$V" "{\"keyHandle\":\"$rsa\",\"algorithm\":\"RSA-NO-PADDING\",\"plaintext\":\"aGk=\"}"
expect 400 "$(msg 'a parameter has an invalid value
caused by: RSA-NO-PADDING input is 2 bytes; this 2048-bit key takes exactly 256')" "RSA-NO-PADDING with a short input: 400"
req POST "/decrypt?$V" "{\"keyHandle\":\"$rsa\",\"algorithm\":\"RSA-PKCS1\",\"ciphertext\":\"aGk=\"}"
expect 400 "$(msg 'parameter "mechanism" has an invalid value
caused by: mechanism cannot be used with this key type')" "there is no RSA decrypt: 400"
req POST "/sign?$V" "{\"keyHandle\":\"$rsa\",\"algorithm\":\"ECDSA\",\"parameters\":{\"digest\":\"$digest\"}}"
expect 400 "$(msg 'a parameter has an invalid value
caused by: ECDSA needs an EC key pair; "rsa-id" is not one')" "ECDSA with an RSA key: 400"
req POST "/keypair?$V" '{"keyId":"rsa4k","preferredAlgorithms":"rsa-4096:ec-p256"}'
like "$status $(openssl pkey -in "$(keyfile rsa4k)" -noout -text 2>&1 | head -1)" '^200 .*4096 bit' "rsa-4096 first: a 4096-bit key"
req POST "/keypair?$V" '{"keyId":"none","preferredAlgorithms":"ed25519"}'
expect 400 "$(msg 'a parameter has an invalid value
caused by: preferredAlgorithms names no algorithm keyd supports (ec-p256, rsa-2048, rsa-4096, *)')" "no usable algorithm: 400"
req POST "/keypair?$V" '{"keyId":"default"}'
like "$(openssl pkey -in "$(keyfile default)" -noout -text 2>&1)" 'prime256v1|P-256' "no preferredAlgorithms: EC P-256 (\"*\")"

# ---- symmetric keys --------------------------------------------------------------

req POST "/key?$V" '{"keyId":"master","usage":"derive,sign"}'
is "$status" 200 "POST /key generates a symmetric key"
sym=$(json .keyHandle)
fs=$(keyfile master)
is "$(stat -c '%a %s' "$fs")" "600 32" "a generated symmetric key: 32 bytes, mode 0600"
hexkey=$(xxd -p -c 100 "$fs")
msgb64=$(printf 'sign me' | b64)
req POST "/sign?$V" "{\"keyHandle\":\"$sym\",\"algorithm\":\"HMAC-SHA256\",\"parameters\":{\"message\":\"$msgb64\"}}"
want=$(printf 'sign me' | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$hexkey" -binary | b64)
is "$status $(json .signature)" "200 $want" "HMAC-SHA256 equals openssl's"
req POST "/key?$V" '{"keyId":"master","usage":"sign"}'
is "$(xxd -p -c 100 "$fs")" "$hexkey" "generating an existing key keeps it"
req POST "/key?$V" '{"keyId":"imported","usage":"sign","keyBytes":"c2VjcmV0LWJ5dGVz"}'
imp=$(json .keyHandle)
is "$status:$(cat "$(keyfile imported)")" "200:secret-bytes" "import stores the given bytes"
req POST "/sign?$V" "{\"keyHandle\":\"$imp\",\"algorithm\":\"HMAC-SHA256\",\"parameters\":{\"message\":\"$msgb64\"}}"
want=$(printf 'sign me' | openssl dgst -sha256 -mac HMAC -macopt key:secret-bytes -binary | b64)
is "$(json .signature)" "$want" "HMAC with the imported key equals openssl's"
req POST "/key?$V" '{"keyId":"imported","usage":"sign","keyBytes":"b3RoZXI="}'
is "$(cat "$(keyfile imported)")" "other" "import overwrites"
req GET "/key/preloaded-sym?$V"
pre=$(json .keyHandle)
req POST "/sign?$V" "{\"keyHandle\":\"$pre\",\"algorithm\":\"HMAC-SHA256\",\"parameters\":{\"message\":\"$msgb64\"}}"
want=$(printf 'sign me' | openssl dgst -sha256 -mac HMAC -macopt key:0123456789abcdef0123456789abcdef -binary | b64)
is "$(json .signature)" "$want" "a [preloaded_keys] file:// key is used from its file"
req POST "/key?$V" '{"keyId":"x"}'
expect 422 '{"message":"usage: missing"}' "POST /key without usage: 422 (required, as in aziot)"
req POST "/key?$V" '{"keyId":"x","usage":"sign,wrap"}'
expect 422 '{"message":"usage: unknown value \"wrap\", expected \"derive\", \"encrypt\" or \"sign\""}' "an unknown usage: 422"
req POST "/key?$V" '{"keyId":"x","usage":"sign","keyBytes":"not base64!"}'
expect 422 '{"message":"keyBytes: invalid base64 at offset 3"}' "keyBytes that is not base64: 422"
req GET "/key/nope?$V"
expect 400 "$(msg 'a parameter has an invalid value
caused by: key "nope" not found')" "GET /key/unknown: 400"
req GET "/keypair/nope?$V"
expect 400 "$(msg 'a parameter has an invalid value
caused by: key pair "nope" not found')" "GET /keypair/unknown: 400"
req GET "/key/device-id?$V"
expect 400 "$(msg 'a parameter has an invalid value
caused by: "device-id" is a key pair, not a symmetric key')" "GET /key of a key pair: 400"
req GET "/key/handle-validation-key?$V"
expect 400 "$(msg 'parameter "id" has an invalid value
caused by: "handle-validation-key" is keyd'"'"'s own key')" "keyd's handle key is never handed out, even to root"

# ---- AEAD --------------------------------------------------------------------------

req POST "/key?$V" '{"keyId":"enc","usage":"encrypt"}'
enc=$(json .keyHandle)
iv=$(printf 'iv-twelve-by' | b64)
aad=$(printf 'aad' | b64)
pt=$(printf 'the secret plaintext' | b64)
req POST "/encrypt?$V" "{\"keyHandle\":\"$enc\",\"algorithm\":\"AEAD\",\"parameters\":{\"iv\":\"$iv\",\"aad\":\"$aad\"},\"plaintext\":\"$pt\"}"
ct=$(json .ciphertext)
is "$status:$(unb64 <<<"$ct" | head -c 1 | xxd -p):$(unb64 <<<"$ct" | wc -c)" "200:02:37" "AEAD ciphertext is 0x02 || ct || 16-byte tag"
req POST "/decrypt?$V" "{\"keyHandle\":\"$enc\",\"algorithm\":\"AEAD\",\"parameters\":{\"iv\":\"$iv\",\"aad\":\"$aad\"},\"ciphertext\":\"$ct\"}"
is "$status $(json .plaintext)" "200 $pt" "decrypt gives the plaintext back"
req POST "/decrypt?$V" "{\"keyHandle\":\"$enc\",\"algorithm\":\"AEAD\",\"parameters\":{\"iv\":\"$iv\",\"aad\":\"\"},\"ciphertext\":\"$ct\"}"
expect 400 "$(msg 'parameter "ciphertext" has an invalid value
caused by: it does not authenticate with this key, IV and AAD')" "decrypt with another AAD: 400"
req POST "/encrypt?$V" "{\"keyHandle\":\"$enc\",\"algorithm\":\"AEAD\",\"plaintext\":\"$pt\"}"
expect 422 '{"message":"parameters: missing"}' "AEAD without parameters: 422"

# ---- derived keys ----------------------------------------------------------------------

dd=$(printf 'module-1' | b64)
req POST "/derivedkey?$V" "{\"baseKeyHandle\":\"$sym\",\"derivationData\":\"$dd\"}"
der=$(json .keyHandle)
is "$status" 200 "POST /derivedkey"
req POST "/derivedkey/export?$V" "{\"keyHandle\":\"$der\"}"
derived=$(json .key)
want=$(printf 'module-1' | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$hexkey" -binary | b64)
is "$status $derived" "200 $want" "the derived key is HMAC-SHA256(base key, derivationData)"
dhex=$(unb64 <<<"$derived" | xxd -p -c 100)
req POST "/sign?$V" "{\"keyHandle\":\"$der\",\"algorithm\":\"HMAC-SHA256\",\"parameters\":{\"message\":\"$msgb64\"}}"
want=$(printf 'sign me' | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$dhex" -binary | b64)
is "$(json .signature)" "$want" "HMAC with a derived handle uses the derived key"
req POST "/encrypt?$V" "{\"keyHandle\":\"$der\",\"algorithm\":\"AEAD\",\"parameters\":{\"iv\":\"$iv\",\"aad\":\"$aad\"},\"plaintext\":\"$pt\"}"
dct=$(json .ciphertext)
req POST "/decrypt?$V" "{\"keyHandle\":\"$der\",\"algorithm\":\"AEAD\",\"parameters\":{\"iv\":\"$iv\",\"aad\":\"$aad\"},\"ciphertext\":\"$dct\"}"
is "$(json .plaintext)" "$pt" "AEAD round trip with a derived handle"
req POST "/derivedkey?$V" "{\"baseKeyHandle\":\"$der\",\"derivationData\":\"$dd\"}"
expect 400 "$(msg 'parameter "handle" has an invalid value
caused by: nested derived keys are not supported, import the outer derived key first')" "nested derivation: 400"
req POST "/derivedkey/export?$V" "{\"keyHandle\":\"$sym\"}"
expect 400 "$(msg 'parameter "handle" has an invalid value
caused by: handle is not for a derived key')" "export of a non-derived handle: 400"
req POST "/derivedkey?$V" "{\"baseKeyHandle\":\"$ec\",\"derivationData\":\"$dd\"}"
is "$status" 400 "deriving from a key pair: 400"

# ---- handles ------------------------------------------------------------------------

bad=${ec/sr=eyJ/sr=eyK}
req POST "/sign?$V" "{\"keyHandle\":\"$bad\",\"algorithm\":\"ECDSA\",\"parameters\":{\"digest\":\"$digest\"}}"
expect 400 "$(msg 'parameter "handle" has an invalid value
caused by: invalid handle')" "an altered handle: 400 invalid handle"
# A handle for another key id with this handle's MAC.
forged_sr=$(printf '{"key_id":{"KeyPair":"rsa-id"},"nonce":"AAAA"}' | b64)
req POST "/parameters/algorithm?$V" "{\"keyHandle\":\"sr=$forged_sr&${ec#*&}\"}"
expect 400 "$(msg 'parameter "handle" has an invalid value
caused by: invalid handle')" "a forged handle: 400 invalid handle"
req POST "/parameters/algorithm?$V" '{"keyHandle":"device-id"}'
is "$status" 400 "a key id instead of a handle: 400"

# ---- move and delete --------------------------------------------------------------------

req POST "/keypair?$V" '{"keyId":"mv-from"}'
mvsum=$(sha256sum <"$(keyfile mv-from)")
req POST "/keypair/mv-to?$V" '{"from":"mv-from"}'
is "$status:$body" "204:" "POST /keypair/{to} moves a key pair: 204"
is "$(sha256sum <"$(keyfile mv-to)"):$([ -e "$(keyfile mv-from)" ]; echo $?)" "$mvsum:1" "the file was renamed"
req POST "/keypair/mv-to?$V" '{"from":"mv-to"}'
expect 400 '{"message":"source and destination for move are identical"}' "move onto itself: 400"
req POST "/key/a?$V" '{"from":"b"}'
expect 400 '{"message":"invalid type \"key\""}' "POST /key/{id}: 400 invalid type"
req GET "/keypair/mv-to?$V"
mv=$(json .keyHandle)
req DELETE "/keypair?$V" "{\"keyHandle\":\"$sym\"}"
expect 400 "$(msg 'parameter "handle" has an invalid value
caused by: handle is not for a key pair')" "DELETE /keypair with a key handle: 400"
req DELETE "/keypair?$V" "{\"keyHandle\":\"$mv\"}"
is "$status:$body:$([ -e "$(keyfile mv-to)" ]; echo $?)" "204::1" "DELETE /keypair: 204 and the file is gone"
req DELETE "/key?$V" "{\"keyHandle\":\"$imp\"}"
is "$status:$([ -e "$(keyfile imported)" ]; echo $?)" "204:1" "DELETE /key: 204 and the file is gone"

# ---- callers that are not principals ----------------------------------------------------

if is_root; then
	req --as 4242 POST "/keypair?$V" '{"keyId":"mod-a"}'
	is "$status" 200 "uid 4242 may create mod-a (principal pattern mod-*)"
	req --as 4242 GET "/key/extra?$V"
	expect 400 "$(msg 'a parameter has an invalid value
caused by: key "extra" not found')" "uid 4242 is granted extra by a second config.d file (arrays concatenate)"
	req --as 4242 GET "/keypair/device-id?$V"
	expect 403 '{"message":"user 4242 is not authorized to access the key device-id"}' "uid 4242 may not load device-id: 403"
	req --as 4242 POST "/keypair/mod-b?$V" '{"from":"device-id"}'
	expect 403 '{"message":"user 4242 is not authorized to access the key device-id"}' "moving from a key it may not use: 403"
	req --as 65534 GET "/keypair/device-id?$V"
	expect 403 '{"message":"user 65534 is not authorized to access the key device-id"}' "nobody (no principal): 403"
	req --as 65534 GET "/keypair/no-such-key?$V"
	expect 403 '{"message":"user 65534 is not authorized to access the key no-such-key"}' "... the same answer for a key that does not exist"
	req --as 65534 POST "/key?$V" '{"keyId":"device-id","usage":"sign","keyBytes":"eA=="}'
	expect 403 '{"message":"user 65534 is not authorized to access the key device-id"}' "nobody may not overwrite a key: 403"
	is "$(head -1 "$(keyfile device-id)")" "-----BEGIN PRIVATE KEY-----" "... and device-id is untouched"
	req --as 65534 GET "/key/handle-validation-key?$V"
	expect 403 '{"message":"user 65534 is not authorized to access the key handle-validation-key"}' "nobody may not reach the handle key"
else
	for _ in 1 2 3 4 5 6 7 8 9; do skip "uid tests need root (setpriv)"; done
fi

# ---- hostile input; still serving -----------------------------------------------------

head -c 1100000 /dev/zero | tr '\0' 'a' >"$tmp/big"
out=$(curl -s --unix-socket "$sock" -H 'Content-Type: application/json' --data-binary @"$tmp/big" -w ' %{http_code}' "http://keyd.sock/sign?$V")
like "$out" ' 413$' "a body over 1 MiB: 413"
req POST "/sign?$V" "{\"keyHandle\":\"$(head -c 9000 /dev/zero | tr '\0' 'A')\",\"algorithm\":\"ECDSA\",\"parameters\":{\"digest\":\"$digest\"}}"
is "$status" 400 "an oversized handle: 400"
req GET "/keypair/%ff?$V"
expect 404 '{"message":"not found"}' "a key id that is not UTF-8: 404, as in aziot"
req GET "/keypair/device-id?$V"
is "$status" 200 "keyd still serves after all that"

# ---- no secrets in any answer ------------------------------------------------------------

ok "$(grep -c 'PRIVATE KEY' "$responses")" "no response contains \"PRIVATE KEY\""
leaks=0
for k in "$keys"/*.key "$root/var/secrets/aziot/keyd/device-id"; do
	kb=$(b64 <"$k")
	kh=$(xxd -p -c 10000 "$k")
	if grep -qF -e "$kb" -e "$kh" "$responses"; then
		leaks=$((leaks + 1))
		tap_diag "$(basename "$k") appears in a response"
	fi
done
is "$leaks" 0 "no response contains the bytes of any key file (base64 or hex)"
is "$(find "$keys" -type f ! -perm 0600 | wc -l)" 0 "every key file is mode 0600"

# ---- reload, restart ---------------------------------------------------------------------

if is_root; then
	printf '[[principal]]\nuid = 4343\nkeys = ["late"]\n' >"$root/etc/aziot/keyd/config.d/60-late.toml"
	req --as 4343 GET "/key/late?$V"
	is "$status" 403 "uid 4343 is not a principal yet"
	kill -HUP "$pid"
	sleep 0.3
	req --as 4343 GET "/key/late?$V"
	expect 400 "$(msg 'a parameter has an invalid value
caused by: key "late" not found')" "after SIGHUP, the new principal is in effect"
else
	skip "reload test needs root"
	skip "reload test needs root"
fi

stop_keyd
is "$?" 0 "SIGTERM: keyd exits 0"
ok "$([ -e "$sock" ]; echo $((!$?)))" "... and removes its socket"
ok "$(grep -cE 'AddressSanitizer|LeakSanitizer|runtime error' "$log")" "no sanitizer reports"

start_keyd
chmod 666 "$sock"
req POST "/sign?$V" "{\"keyHandle\":\"$ec\",\"algorithm\":\"ECDSA\",\"parameters\":{\"digest\":\"$digest\"}}"
json .signature | unb64 >"$tmp/sig2.der"
out=$(openssl dgst -sha256 -verify "$tmp/ec-pub.pem" -signature "$tmp/sig2.der" "$tmp/data" 2>&1)
is "$status:$out" "200:Verified OK" "after a restart, an old handle still signs"
req POST "/derivedkey/export?$V" "{\"keyHandle\":\"$der\"}"
is "$(json .key)" "$derived" "after a restart, an old derived handle gives the same key"

# ---- max_requests ----------------------------------------------------------------------

stop_keyd
printf 'max_requests = 2\n' >"$root/etc/aziot/keyd/config.d/70-max.toml"
start_keyd
out=$(python3 - "$sock" <<'EOF'
import socket, sys
def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sys.argv[1])
    return s
req = b"GET /key/x HTTP/1.1\r\nHost: keyd.sock\r\n\r\n"
held = [conn(), conn()]
for h in held:
    h.sendall(req)
    h.recv(4096)           # answered; the connection stays open (keep-alive)
third = conn()
try:
    third.sendall(req)
    print("third:", "closed" if third.recv(4096) == b"" else "answered")
except OSError:
    print("third: closed")
for h in held:
    h.close()
import time; time.sleep(0.2)
again = conn()
again.sendall(req)
print("after:", again.recv(4096).split(b"\r\n")[0].decode())
EOF
)
is "$out" "third: closed
after: HTTP/1.1 400 Bad Request" "max_requests = 2: a third connection of the same uid is closed unanswered; freed slots serve again"
rm "$root/etc/aziot/keyd/config.d/70-max.toml"
stop_keyd

# ---- systemd: socket activation and readiness ---------------------------------------------

if command -v systemd-socket-activate >/dev/null; then
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(30)
print(s.recv(100).decode(), flush=True)
' "$tmp/notify" >"$tmp/notified" &
	npid=$!
	for _ in $(seq 1 100); do [ -S "$tmp/notify" ] && break; sleep 0.05; done
	systemd-socket-activate -E "NOTIFY_SOCKET=$tmp/notify" -l "$tmp/act.sock" \
		"$edgeidd" keyd --root "$root" 2>>"$log" &
	apid=$!
	for _ in $(seq 1 100); do [ -S "$tmp/act.sock" ] && break; sleep 0.05; done
	out=$(curl -s --unix-socket "$tmp/act.sock" "http://keyd.sock/keypair/device-id?$V")
	like "$out" '^\{"keyHandle":"sr=' "socket activation: keyd serves the socket systemd passes"
	wait "$npid"
	is "$(cat "$tmp/notified")" "READY=1" "keyd tells systemd READY=1"
	ok "$([ -e "$root/run/aziot/keyd.sock" ]; echo $((!$?)))" "... and binds no socket of its own"
	kill -TERM "$apid"
	wait "$apid"
	is "$?" 0 "the socket-activated keyd stops cleanly"
else
	for _ in 1 2 3 4; do skip "systemd-socket-activate is not installed"; done
fi

# ---- SIGKILL during key creation -----------------------------------------------------------

torn=0
absent=0
complete=0
for i in $(seq 1 20); do
	start_keyd || break
	curl -s --unix-socket "$sock" -H 'Content-Type: application/json' \
		-d "{\"keyId\":\"crash-$i\",\"preferredAlgorithms\":\"rsa-2048\"}" \
		"http://keyd.sock/keypair?$V" >/dev/null 2>&1 &
	cpid=$!
	sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	wait "$cpid" 2>/dev/null
	pid=
	f=$(keyfile "crash-$i")
	if [ -e "$f" ]; then
		if openssl pkey -in "$f" -noout 2>/dev/null && [ "$(stat -c %a "$f")" = 600 ]; then
			complete=$((complete + 1))
		else
			torn=$((torn + 1))
		fi
	else
		absent=$((absent + 1))
	fi
	start_keyd || break
	req GET "/keypair/crash-$i?$V"
	if [ -e "$f" ] && [ "$status" != 200 ]; then torn=$((torn + 1)); fi
	req POST "/keypair?$V" "{\"keyId\":\"crash-$i\"}"
	h=$(json .keyHandle)
	req POST "/parameters/algorithm?$V" "{\"keyHandle\":\"$h\"}"
	[ "$status" = 200 ] || torn=$((torn + 1))
	stop_keyd
done
tap_diag "20 kills: $complete complete, $absent absent"
is "$torn:$((complete + absent))" "0:20" "SIGKILL during creation: every key file is absent or complete (never torn)"
is "$(find "$keys" -name '.*' -type f | wc -l)" 0 "no temporary key files are left after restarts"

done_testing
