#!/usr/bin/env bash
# DPS TPM attestation end to end, with swtpm and tpm2-tools playing the
# device (dps-protocol.md §3.3, §3.6): the first PUT (EK + SRK, no
# Authorization) gets 401 with the authenticationKey blob; the device
# activates it (PolicySecret, ActivateCredential, Import, Load, persist),
# signs the registration SAS with TPM2_HMAC and PUTs again (202); the
# status poll ends "assigned" with a second blob carrying the hub key, which
# the device imports the same way; the hub accepts telemetry with a device
# SAS signed in the TPM. Both second-PUT styles: Node's (tpm object again,
# encodeURIComponent'd sr) and aziot's (no tpm object, lowercased sr).
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
. "$EDGEID_SOURCE_ROOT/tests/integration/test-dps-lib.sh"
. "$EDGEID_SOURCE_ROOT/tests/lib/swtpm.sh"

for cmd in swtpm tpm2_createek tpm2_createprimary tpm2_evictcontrol tpm2_readpublic \
	tpm2_startauthsession tpm2_policysecret tpm2_activatecredential tpm2_import tpm2_load \
	tpm2_hmac tpm2_flushcontext curl python3; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "1..0 # SKIP $cmd not installed (swtpm, tpm2-tools, curl, python3 are needed)"
		exit 0
	fi
done

dir=$(mktemp -d)
trap 'cloud_env_stop >/dev/null 2>&1; swtpm_stop; rm -rf "$dir"' EXIT

if ! dps_test_env_start "$dir/cloud"; then
	ok 1 "edgeid-cloud with dps and hub starts"
	done_testing
	exit
fi
ok 0 "edgeid-cloud with dps and hub starts"
swtpm_start "$dir/tpm" 2>"$dir/swtpm.err"
ok $? "swtpm starts" || { cat "$dir/swtpm.err" | sed 's/^/# /'; done_testing; exit; }

log=$dir/tpm2.log
run() {
	echo "+ $*" >>"$log"
	"$@" >>"$log" 2>&1
}
step() {
	local status=$1
	shift
	ok "$status" "$@"
	[ "$status" -eq 0 ] || tail -n 15 "$log" | sed 's/^/# /'
}

EK=0x81010001
SRK=0x81000001
IDKEY=0x81000100
t=$dir/t
mkdir -p "$t"

run tpm2_createek -G rsa -c $EK -u "$t/ek.pub" &&
	run tpm2_createprimary -C o -G rsa2048:aes128cfb -c "$t/srk.ctx" \
		-a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt' &&
	run tpm2_evictcontrol -C o -c "$t/srk.ctx" $SRK &&
	run tpm2_readpublic -c $SRK -o "$t/srk.pub" &&
	run tpm2_flushcontext -t
step $? "the device's EK and SRK are persisted"
ek_b64=$(base64 -w0 "$t/ek.pub")
srk_b64=$(base64 -w0 "$t/srk.pub")
regid=$(sha256sum "$t/ek.pub" | cut -d' ' -f1)

out=$(cloud_env_cli enrollment create --registration-id "$regid" --endorsement-key "$ek_b64" \
	--device-id tpm-device-1 --json 2>&1)
ok $? "edgeid-cloud enrollment create --endorsement-key" || tap_diag "$out"

# split_blob B64 DIR: the six TPM2B items of an authenticationKey blob, one
# file each (sizes included), plus the credential file tpm2_activatecredential
# reads (magic, version, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET).
split_blob() {
	python3 - "$1" "$2" <<'PY'
import base64, struct, sys
blob = base64.b64decode(sys.argv[1])
names = ["id_object.bin", "secret.bin", "duplicate.bin", "in_sym_seed.bin", "id_key.pub", "enc_uri.bin"]
items, off = [], 0
for n in names:
    (size,) = struct.unpack(">H", blob[off:off + 2])
    items.append(blob[off:off + 2 + size])
    off += 2 + size
assert off == len(blob), "trailing bytes"
for n, item in zip(names, items):
    open(sys.argv[2] + "/" + n, "wb").write(item)
open(sys.argv[2] + "/credential.bin", "wb").write(bytes.fromhex("badcc0de00000001") + items[0] + items[1])
PY
}

# activate DIR: what a device does with a blob.
activate() {
	local b=$1 rc
	run tpm2_startauthsession --policy-session -S "$b/session.ctx" || return 1
	run tpm2_policysecret -S "$b/session.ctx" -c e &&
		run tpm2_activatecredential -c $SRK -C $EK -i "$b/credential.bin" -o "$b/inner.key" \
			-P "session:$b/session.ctx"
	rc=$?
	run tpm2_flushcontext "$b/session.ctx"
	[ $rc -eq 0 ] || return 1
	run tpm2_import -C $SRK -u "$b/id_key.pub" -i "$b/duplicate.bin" -s "$b/in_sym_seed.bin" \
		-k "$b/inner.key" -r "$b/id_key.priv" || return 1
	run tpm2_load -C $SRK -u "$b/id_key.pub" -r "$b/id_key.priv" -c "$b/id_key.ctx" || return 1
	run tpm2_evictcontrol -C o -c $IDKEY
	run tpm2_evictcontrol -C o -c "$b/id_key.ctx" $IDKEY
	rc=$?
	run tpm2_flushcontext -t
	return $rc
}

# tpm_sas SR [SKN]: a SAS token for SR (as it will be sent) signed in the TPM.
tpm_sas() {
	local sr=$1 skn=${2:-} se sig
	se=$(($(date +%s) + 3600))
	printf '%s\n%s' "$sr" "$se" >"$t/sts.txt"
	rm -f "$t/sts.mac"
	run tpm2_hmac -c $IDKEY -g sha256 -o "$t/sts.mac" "$t/sts.txt" || return 1
	sig=$(python3 -c 'import base64,sys,urllib.parse; print(urllib.parse.quote(base64.b64encode(open(sys.argv[1],"rb").read()).decode(), safe=""))' "$t/sts.mac")
	printf 'SharedAccessSignature sr=%s&sig=%s&se=%s%s' "$sr" "$sig" "$se" "${skn:+&skn=$skn}"
}

register_url=$(dps_url "/$DPS_ID_SCOPE/registrations/$regid/register?api-version=2019-03-31")
tpm_body="{\"registrationId\":\"$regid\",\"tpm\":{\"endorsementKey\":\"$ek_b64\",\"storageRootKey\":\"$srk_b64\"}}"

# register STYLE: the whole device flow; STYLE node or aziot.
register() {
	local style=$1 b=$t/$1 status sr token body op
	mkdir -p "$b"
	status=$(dps_curl "$b/challenge" -X PUT -H 'Content-Type: application/json' \
		-d "$tpm_body" "$register_url")
	is "$status" 401 "$style: the first PUT (EK + SRK, no Authorization) is answered 401"
	is "$(json_get "$b/challenge.body" 'sorted(j.keys())')" \
		'["authenticationKey", "keyName", "message"]' "$style: the 401 body has exactly message, authenticationKey, keyName"
	is "$(json_get "$b/challenge.body" 'j["message"] + "|" + j["keyName"]')" \
		'Authorization required, resend request using supplied key|registration' \
		"$style: its message and keyName"
	split_blob "$(json_get "$b/challenge.body" 'j["authenticationKey"]')" "$b" 2>>"$log"
	step $? "$style: the blob splits into six TPM2B items"
	activate "$b"
	step $? "$style: the TPM activates and imports K1 (PolicySecret, ActivateCredential, Import, Load)"

	if [ "$style" = node ]; then
		sr="$DPS_ID_SCOPE%2Fregistrations%2F$regid"
		body=$tpm_body
	else
		sr=$(printf '%s/registrations/%s' "$DPS_ID_SCOPE" "$regid" | tr '[:upper:]' '[:lower:]')
		body="{\"registrationId\":\"$regid\"}"
	fi
	token=$(tpm_sas "$sr" registration)
	status=$(dps_curl "$b/put" -X PUT -H 'Content-Type: application/json' \
		-H "Authorization: $token" -d "$body" "$register_url")
	is "$status" 202 "$style: the PUT with the SAS signed by TPM2_HMAC under K1 is answered 202"
	is "$(json_get "$b/put.body" 'j["status"]')" assigned "$style: ... final at once: status assigned (the answer was held, register_wait_ms)"
	op=$(json_get "$b/put.body" 'j["operationId"]')

	for _ in $(seq 1 50); do
		status=$(dps_curl "$b/poll" -H "Authorization: $token" \
			"$(dps_url "/$DPS_ID_SCOPE/registrations/$regid/operations/$op?api-version=2019-03-31")")
		[ "$status" = 202 ] || break
		sleep 0.1
	done
	is "$status" 200 "$style: the status poll ends with 200"
	is "$(json_get "$b/poll.body" 'j["status"] + " " + j["registrationState"]["assignedHub"] + " " + j["registrationState"]["deviceId"]')" \
		"assigned $CLOUD_HUB_HOST tpm-device-1" "$style: assigned to the hub as tpm-device-1"
	mkdir -p "$b/k2"
	split_blob "$(json_get "$b/poll.body" 'j["registrationState"]["tpm"]["authenticationKey"]')" \
		"$b/k2" 2>>"$log"
	step $? "$style: registrationState.tpm.authenticationKey is a second blob"
	activate "$b/k2"
	step $? "$style: the TPM imports the hub key K2 from it"

	sr=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' \
		"$CLOUD_HUB_HOST/devices/tpm-device-1")
	token=$(tpm_sas "$sr")
	status=$(curl -sS --cacert "$CLOUD_CA" -o "$b/telemetry.body" -w '%{http_code}' -X POST \
		-H "Authorization: $token" -H 'Content-Type: text/plain' --data "hello from $style" \
		"https://$CLOUD_HUB_HOST/devices/tpm-device-1/messages/events?api-version=2021-04-12")
	is "$status" 204 "$style: the hub accepts telemetry with a device SAS signed in the TPM under K2"
}

register node
register aziot

out=$(cloud_env_cli telemetry list tpm-device-1 --json 2>&1)
like "$out" '"body": "hello from aziot"' "the hub stored the message sent with the TPM-signed SAS"
is "$(cloud_env_cli registration show "$regid" --json | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["status"], j["substatus"])')" \
	"assigned reprovisionedToInitialAssignment" "the second registration reprovisioned to the same hub"

# A K1-signed SAS from an old challenge no longer works once K2 replaced it
# in the TPM (the key at 0x81000100 is K2): the DPS answers 401.
token=$(tpm_sas "$DPS_ID_SCOPE%2Fregistrations%2F$regid" registration)
status=$(dps_curl "$t/stale" -X PUT -H 'Content-Type: application/json' -H "Authorization: $token" \
	-d "$tpm_body" "$register_url")
is "$status $(json_get "$t/stale.body" 'j["errorCode"]')" "401 401002" \
	"a SAS signed with another key than the last challenge's is refused"

# Another TPM's EK for this enrollment: 401, no blob; a malformed EK: 400.
other_ek='AToAAQALAAMAsgAgg3GXZ0SEs/gakMyNRqXXJP1S124GUgtk8qHaGzMUaaoABgCAAEMAEAgAAAAAAAEAtKEADl/sNRgmYAjP6gXmbccRaJoTnVixisUaek0OwAzFGN70xt9ZOYp6fhIwfcft3fdVKOrKpXYcTe72CGNkGJGlQz5ti9n2pQ0uJhcX8aefh4Onm7lVlUCQAVp1K0r6zI8vkEXWsBIvwvxk0eMJbFaq146kbTkJHIGczb89RkFH2TX+CgXeZOG9oXQzUNwktmTUacspamune5Wywc/ce8HsDFYchyUHogFhrZ/LPnzyTDXO8sSC5z5dvsUBtUME3iRYDyKgZOfBtmRMqQewD+4iH+ZEJjtsyJiWR8hFhyKROnOuqXfNFwjd5IcNU4wtlKO0cLyXmTOfQK6Da1pr5Q=='
status=$(dps_curl "$t/wrong-ek" -X PUT -H 'Content-Type: application/json' \
	-d "{\"registrationId\":\"$regid\",\"tpm\":{\"endorsementKey\":\"$other_ek\",\"storageRootKey\":\"$srk_b64\"}}" \
	"$register_url")
is "$status $(json_get "$t/wrong-ek.body" 'j["errorCode"], j["message"], "authenticationKey" in j')" \
	"401 (401002, 'Unauthorized', False)" "a wrong EK: 401 401002 Unauthorized, no authenticationKey"
status=$(dps_curl "$t/bad-ek" -X PUT -H 'Content-Type: application/json' \
	-d "{\"registrationId\":\"$regid\",\"tpm\":{\"endorsementKey\":\"AAEC\",\"storageRootKey\":\"$srk_b64\"}}" \
	"$register_url")
is "$status $(json_get "$t/bad-ek.body" 'j["errorCode"], j["message"]')" \
	"400 (400004, 'Endorsement key is invalid, or does not match the Enrollment.')" \
	"a malformed EK: 400 400004"

kill -0 "$CLOUD_PID" 2>/dev/null
ok $? "edgeid-cloud is still running"
dps_test_stop_and_check
done_testing
