#!/usr/bin/env bash
# tpmd through the real `edgeidd tpmd` on a unix socket (curl
# --unix-socket) against a real TPM (swtpm): the TPM Service API with its
# exact paths and JSON; get_tpm_keys equals what tpm2_readpublic writes for
# the EK and SRK; a DPS authentication-key blob built by tpm-blob-tool for
# this TPM with a known key K is imported, and sign_with_auth_key equals
# `openssl dgst -sha256 -mac HMAC -macopt hexkey:K`; callers that are not
# principals get 403 and learn nothing; malformed requests get exact
# errors and tpmd keeps serving; SIGHUP reloads the principals; and a TPM
# that is unreachable, at start-up or later, gives 503 with the reason
# while tpmd keeps running and uses the TPM again once it is back.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
. "$EDGEID_SOURCE_ROOT/tests/lib/swtpm.sh"
edgeidd=$EDGEID_BUILD_ROOT/edgeidd
blob_tool=$EDGEID_BUILD_ROOT/tpm-blob-tool

for cmd in swtpm tpm2_readpublic tpm2_getcap tpm2_getrandom curl jq openssl setpriv base64; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "1..0 # SKIP $cmd not found (install swtpm, tpm2-tools, curl, jq, openssl)"
		exit 0
	fi
done

tmp=$(mktemp -d)
chmod 755 "$tmp"
sock=$tmp/tpmd.sock
cfg=$tmp/etc/tpmd/config.toml
log=$tmp/tpmd.log
V=api-version=2020-09-01
K=00112233445566778899aabbccddeeff0123456789abcdef0123456789abcdef
pid=

cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	swtpm_stop
	rm -rf "$tmp"
}
trap cleanup EXIT
# tpm2-tools: no tpm2-tss error lines for the refusals tests provoke.
export TSS2_LOG=all+none

if ! swtpm_start "$tmp/tpm" 2>"$tmp/swtpm.err"; then
	ok 1 "swtpm starts"
	sed 's/^/# /' "$tmp/swtpm.err"
	done_testing
	exit
fi
ok 0 "swtpm is running ($EDGEID_TEST_TCTI)"

mkdir -p "$tmp/etc/tpmd/config.d"
write_config() { # write_config [PRINCIPAL-UID...]
	{
		printf 'tcti = "%s"\n' "$EDGEID_TEST_TCTI"
		for uid in "$@"; do
			printf '[[principal]]\nuid = %s\n' "$uid"
		done
	} >"$cfg"
}
write_config 4242

start_tpmd() {
	"$edgeidd" tpmd -c "$cfg" --socket "$sock" 2>>"$log" &
	pid=$!
	for _ in $(seq 1 200); do
		code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$sock" \
			"http://tpmd.sock/get_tpm_keys" 2>/dev/null)
		[ "$code" = 400 ] && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

stop_tpmd() { # -> tpmd's exit status after SIGTERM
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
			-w '\n%{http_code}' "http://tpmd.sock$path")
	else
		out=$("${as[@]}" curl -s --unix-socket "$sock" -X "$method" \
			-w '\n%{http_code}' "http://tpmd.sock$path")
	fi
	body=${out%$'\n'*}
	status=${out##*$'\n'}
}
expect() { is "$status $body" "$1 $2" "$3"; }
msg() { jq -cn --arg m "$1" '{message: $m}'; }
json() { jq -r "$1" <<<"$body"; }
hmac_b64() { # hmac_b64 HEXKEY: HMAC-SHA256 of stdin, base64
	openssl dgst -sha256 -mac HMAC -macopt "hexkey:$1" -binary | base64 -w0
}

# ---- the binary and the configuration --------------------------------------

like "$("$edgeidd" --help)" $'\n  tpmd +the TPM service' "edgeidd --help lists tpmd"
out=$("$edgeidd" tpmd -c "$cfg" --check 2>&1)
is "$?:$out" "0:$cfg: OK" "tpmd --check accepts the configuration"
mkdir -p "$tmp/bad"
printf 'auth_key_index = "0x00_01_00"\n' >"$tmp/bad/config.toml"
out=$("$edgeidd" tpmd -c "$tmp/bad/config.toml" --check 2>&1)
is "$?:$out" "1:$tmp/bad/config.toml:1:18: auth_key_index: expected an integer, got a string" \
	"--check: auth_key_index quoted as in aziot's template is an error with file:line:column"
printf '[[principal]]\nuid = 1000\nkeys = ["x"]\n' >"$tmp/bad/config.toml"
out=$("$edgeidd" tpmd -c "$tmp/bad/config.toml" --check 2>&1)
is "$?:$out" "1:$tmp/bad/config.toml:3:8: principal[0].keys: unknown setting (tpmd principals have only a uid)" \
	"--check: a tpmd principal has only a uid"
ln -s "$edgeidd" "$tmp/aziot-tpmd"
is "$("$tmp/aziot-tpmd" --help | head -1)" "Usage: $tmp/aziot-tpmd [OPTIONS]" \
	"invoked as aziot-tpmd, it is tpmd"
is "$(tpm2_getcap handles-persistent | tr -d -- '- ' | tr '\n' ' ')" "" \
	"the fresh TPM has no persistent objects"

# ---- start: the EK and SRK are made --------------------------------------------

start_tpmd
ok $? "tpmd starts and serves $sock"
is "$(stat -c %a "$sock")" "660" "the socket is mode 0660"
req GET "/get_tpm_keys?$V"
is "$status $(json 'keys_unsorted | join(",")')" "200 endorsement_key,storage_root_key" \
	"GET /get_tpm_keys: 200 with endorsement_key and storage_root_key"
api_ek=$(json .endorsement_key)
api_srk=$(json .storage_root_key)
like "$api_ek" '^AToAAQALAAMAsgAg' "the EK is a TCG L-1 RSA EK"
stop_tpmd
is "$?" 0 "SIGTERM: tpmd exits 0"

# swtpm serves one client at a time: the tools run while tpmd is stopped.
tpm2_readpublic -c 0x81010001 -o "$tmp/ek.pub" >/dev/null &&
	tpm2_readpublic -c 0x81000001 -o "$tmp/srk.pub" >/dev/null
ok $? "tpm2_readpublic reads the EK (0x81010001) and SRK (0x81000001) tpmd persisted"
is "$api_ek" "$(base64 -w0 "$tmp/ek.pub")" \
	"endorsement_key is tpm2_readpublic -c 0x81010001 -o ek.pub, byte for byte"
is "$api_srk" "$(base64 -w0 "$tmp/srk.pub")" \
	"storage_root_key is tpm2_readpublic -c 0x81000001 -o srk.pub, byte for byte"

# ---- import and sign ---------------------------------------------------------------

mkdir -p "$tmp/blob"
"$blob_tool" build "$tmp/ek.pub" "$tmp/srk.pub" "$K" "$tmp/blob" 2>>"$log"
ok $? "tpm-blob-tool builds the authentication-key blob for this EK and SRK with key K"
blob=$(tr -d '\n' <"$tmp/blob/blob.b64")

start_tpmd
ok $? "tpmd starts again on the provisioned TPM"
req POST "/sign_with_auth_key?$V" '{"data":"aGVsbG8="}'
expect 400 "$(msg 'no authentication key has been imported (nothing at 0x81000100); import one with /import_auth_key first')" \
	"sign_with_auth_key before any import: 400 that says so"
req POST "/import_auth_key?$V" "$(jq -cn --arg k "$blob" '{key: $k}')"
expect 200 "{}" "POST /import_auth_key {key}: 200 {}"

for data in "0ne00000A0A/registrations/dev1"$'\n'"1700000000" "" \
	"$(head -c 2500 /dev/zero | tr '\0' 'x')"; do
	req POST "/sign_with_auth_key?$V" "$(jq -cn --arg d "$(printf '%s' "$data" | base64 -w0)" '{data: $d}')"
	want=$(printf '%s' "$data" | hmac_b64 "$K")
	is "$status $(json 'keys_unsorted | join(",")') $(json .digest)" "200 digest $want" \
		"sign_with_auth_key of ${#data} bytes equals openssl dgst -sha256 -mac HMAC -macopt hexkey:K"
done

# ---- who may call ----------------------------------------------------------------

chmod 666 "$sock" # so that other uids reach tpmd itself (the test is about tpmd's checks)
req --as 4242 GET "/get_tpm_keys?$V"
is "$status $(json .endorsement_key)" "200 $api_ek" "principal uid 4242: get_tpm_keys"
req --as 4242 POST "/sign_with_auth_key?$V" '{"data":"eA=="}'
is "$status $(json .digest)" "200 $(printf x | hmac_b64 "$K")" "principal uid 4242: sign_with_auth_key"
refused=$(msg "user 65534 is not authorized to use the TPM service")
req --as 65534 GET "/get_tpm_keys?$V"
expect 403 "$refused" "uid 65534 (no principal): GET /get_tpm_keys is 403"
if grep -qiE 'key|endorsement|storage|AToA|tpm2|0x81' <<<"$body"; then
	ok 1 "the 403 says nothing about keys"
	tap_diag "$body"
else
	ok 0 "the 403 says nothing about keys"
fi
req --as 65534 POST "/sign_with_auth_key?$V" '{"data":"eA=="}'
expect 403 "$refused" "uid 65534: sign_with_auth_key is 403"
req --as 65534 POST "/import_auth_key?$V" "$(jq -cn --arg k "$blob" '{key: $k}')"
expect 403 "$refused" "uid 65534: import_auth_key is 403"
req --as 65534 POST "/import_auth_key?$V" 'not json'
is "$status" 422 "uid 65534, malformed JSON: the runtime's 422 comes before the route (no TPM information)"
req --as 65534 POST "/import_auth_key?$V" '{"key":"%%"}'
expect 403 "$refused" "uid 65534, malformed base64: 403 before the body is looked at"

# SIGHUP: principals are re-read.
write_config 4343
kill -HUP "$pid"
for _ in $(seq 1 100); do
	req --as 4343 GET "/get_tpm_keys?$V"
	[ "$status" = 200 ] && break
	sleep 0.05
done
is "$status" 200 "SIGHUP: the new principal uid 4343 may call"
req --as 4242 GET "/get_tpm_keys?$V"
expect 403 "$(msg "user 4242 is not authorized to use the TPM service")" "SIGHUP: uid 4242 no longer may"
if aziotid=$(id -u aziotid 2>/dev/null); then
	write_config
	kill -HUP "$pid"
	for _ in $(seq 1 100); do
		req --as "$aziotid" GET "/get_tpm_keys?$V"
		[ "$status" = 200 ] && break
		sleep 0.05
	done
	is "$status" 200 "no [[principal]]: identityd's user aziotid (uid $aziotid) may call"
	req --as 4343 GET "/get_tpm_keys?$V"
	is "$status" 403 "no [[principal]]: other uids may not"
else
	echo "ok $((TAP_N + 1)) # SKIP no user aziotid on this system"
	TAP_N=$((TAP_N + 1))
fi
write_config 4242
kill -HUP "$pid"

# ---- malformed requests: exact errors, and tpmd keeps serving ----------------------

req POST "/import_auth_key?$V" '{"key":"not base64!"}'
expect 422 "$(msg 'key: invalid base64 at offset 3')" "malformed base64 key: exact error"
req POST "/import_auth_key?$V" '{"key":"QUJD"}'
expect 400 "$(msg 'authentication key blob: item 1 (credentialBlob): truncated')" \
	"base64 that is no blob: 400 with the reason"
req POST "/sign_with_auth_key?$V" '{"data":"aGVsbG8"}'
expect 422 "$(msg 'data: invalid base64 at offset 7')" "unpadded base64 data: exact error"
req POST "/sign_with_auth_key?$V" '{"data":42}'
expect 422 "$(msg 'data: expected a string, got a number')" "data of the wrong type"
req POST "/sign_with_auth_key?$V"
expect 400 "$(msg 'missing request body')" "no body"
req POST "/import_auth_key?$V" '{"key":'
expect 422 "$(msg 'invalid JSON at 1:7: unexpected token near end of file')" "truncated JSON"
req GET "/get_tpm_keys"
expect 400 "$(msg 'api-version not specified')" "no api-version"
req GET "/get_tpm_keys?api-version=2021-05-01"
expect 400 "$(msg 'invalid api-version "2021-05-01"')" "an api-version tpmd does not know"
req DELETE "/import_auth_key?$V"
expect 400 "$(msg 'method not allowed')" "DELETE is not a method of /import_auth_key"
req GET "/get_tpm_keys/x?$V"
expect 404 "$(msg 'not found')" "unknown path"
req POST "/sign_with_auth_key?$V" "$(jq -cn --arg d "$(head -c 70000 /dev/zero | base64 -w0)" '{data: $d}')"
expect 413 "$(msg 'data: too large (at most 65536 bytes)')" "70000 bytes to sign: 413"
req POST "/sign_with_auth_key?$V" '{"data":"eA=="}'
is "$status $(json .digest)" "200 $(printf x | hmac_b64 "$K")" "after all that, tpmd still signs with K"

# ---- the TPM goes away and comes back ------------------------------------------------

port=$SWTPM_PORT
swtpm_stop
req GET "/get_tpm_keys?$V"
is "$status" 503 "swtpm stopped: get_tpm_keys is 503"
like "$(json .message)" "^the TPM is not available: tpm.tcti \"$EDGEID_TEST_TCTI\": lost the connection to the TPM \(" \
	"the 503 says the connection to the TPM was lost"
unreachable="the TPM is not available: tpm.tcti \"$EDGEID_TEST_TCTI\": cannot reach the TPM (tcti:IO failure); check that it exists and that this user may open it"
for _ in $(seq 1 100); do
	req POST "/sign_with_auth_key?$V" '{"data":"eA=="}'
	[ "$(json .message)" = "$unreachable" ] && break
	sleep 0.05
done
expect 503 "$(msg "$unreachable")" "later requests: 503, the TPM cannot be reached"
kill -0 "$pid"
ok $? "tpmd is still running"
is "$(grep -c 'error: the TPM is unavailable: ' "$log")" 2 \
	"logged at error level when lost and when unreachable, not at every attempt"

# The same TPM back on the same port (SWTPM_PID: swtpm_stop and the EXIT
# trap stop it).
for _ in $(seq 1 20); do
	swtpm socket --tpm2 --server type=tcp,port="$port",bindaddr=127.0.0.1 \
		--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
		--tpmstate dir="$SWTPM_DIR/state" --flags not-need-init,startup-clear \
		--log file="$SWTPM_DIR/swtpm.log" &
	SWTPM_PID=$!
	sleep 0.2
	kill -0 "$SWTPM_PID" 2>/dev/null && break # else the port is not free yet
	wait "$SWTPM_PID" 2>/dev/null
	SWTPM_PID=
	sleep 0.3
done
for _ in $(seq 1 400); do
	req GET "/get_tpm_keys?$V"
	[ "$status" = 200 ] && break
	sleep 0.05
done
is "$status $(json .endorsement_key)" "200 $api_ek" "swtpm back: get_tpm_keys is 200 with the same EK"
grep -q 'notice: the TPM is available again' "$log"
ok $? "the recovery is logged"
req POST "/sign_with_auth_key?$V" '{"data":"eA=="}'
is "$status $(json .digest)" "200 $(printf x | hmac_b64 "$K")" "the key imported before still signs"
stop_tpmd
is "$?" 0 "SIGTERM: tpmd exits 0"

# ---- unreachable at start-up --------------------------------------------------------

swtpm_stop
start_tpmd
ok $? "with the TPM unreachable, tpmd starts and serves anyway (no exit, no restart loop)"
req GET "/get_tpm_keys?$V"
expect 503 "$(msg "$unreachable")" "get_tpm_keys: 503 with the reason"
sleep 1.2 # a later attempt, from the timer or this request, fails the same way
req POST "/import_auth_key?$V" "$(jq -cn --arg k "$blob" '{key: $k}')"
expect 503 "$(msg "$unreachable")" "import_auth_key: 503 with the reason"
start_line=$(grep -n 'error: the TPM is unavailable: tpm.tcti' "$log" | tail -1)
like "$start_line" "tpmd answers 503 until it is reachable, next attempt in 1s\$" \
	"the log says what tpmd does about it"
stop_tpmd
is "$?" 0 "SIGTERM: tpmd exits 0"

done_testing
