#!/usr/bin/env bash
# The DPS admin nouns of edgeid-cloud on the store of a running service:
# enrollment, group, ca (with the proof of possession made by openssl) and
# registration; table and --json output, usage errors (exit 2), failures
# (exit 1), and a device registering through what the CLI created.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
. "$EDGEID_SOURCE_ROOT/tests/integration/test-dps-lib.sh"

for cmd in curl python3 openssl; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "1..0 # SKIP $cmd not installed"
		exit 0
	fi
done

dir=$(mktemp -d)
trap 'cloud_env_stop >/dev/null 2>&1; rm -rf "$dir"' EXIT
if ! dps_test_env_start "$dir/cloud"; then
	ok 1 "edgeid-cloud with dps and hub starts"
	done_testing
	exit
fi
ok 0 "edgeid-cloud with dps and hub starts"
KEY=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=
EK='AToAAQALAAMAsgAgg3GXZ0SEs/gakMyNRqXXJP1S124GUgtk8qHaGzMUaaoABgCAAEMAEAgAAAAAAAEAtKEADl/sNRgmYAjP6gXmbccRaJoTnVixisUaek0OwAzFGN70xt9ZOYp6fhIwfcft3fdVKOrKpXYcTe72CGNkGJGlQz5ti9n2pQ0uJhcX8aefh4Onm7lVlUCQAVp1K0r6zI8vkEXWsBIvwvxk0eMJbFaq146kbTkJHIGczb89RkFH2TX+CgXeZOG9oXQzUNwktmTUacspamune5Wywc/ce8HsDFYchyUHogFhrZ/LPnzyTDXO8sSC5z5dvsUBtUME3iRYDyKgZOfBtmRMqQewD+4iH+ZEJjtsyJiWR8hFhyKROnOuqXfNFwjd5IcNU4wtlKO0cLyXmTOfQK6Da1pr5Q=='
j=$dir/out.json

# run EXPECTED-STATUS ARGS...: the CLI's stdout in $dir/out, stderr in $dir/err.
run() {
	local want=$1 got
	shift
	cloud_env_cli "$@" >"$dir/out" 2>"$dir/err"
	got=$?
	[ "$got" = "$want" ] || tap_diag "edgeid-cloud $*: exit $got" "$(cat "$dir/err")"
	[ "$got" = "$want" ]
}
jq_() { # jq_ EXPR: of $dir/out (JSON)
	json_get "$dir/out" "$1"
}

run 0 enrollment create --registration-id sym-1 --symmetric-key --json
ok $? "enrollment create --symmetric-key"
is "$(jq_ '[len(__import__("base64").b64decode(j["attestation"]["symmetricKey"][k])) for k in ("primaryKey", "secondaryKey")]')" \
	"[64, 64]" "... generates two 64-byte keys and shows them"
run 0 enrollment create --registration-id sym-2 --symmetric-key "$KEY" --device-id dev-two \
	--edge-enabled --tag site=lab --tag floor=2 --hub "$CLOUD_HUB_HOST" --allocation static --disabled --json
ok $? "enrollment create with every option"
is "$(jq_ '[j["attestation"]["symmetricKey"]["primaryKey"], j["deviceId"], j["capabilities"]["iotEdge"], j["initialTwin"]["tags"], j["iotHubHostName"], j["allocationPolicy"], j["provisioningStatus"]]')" \
	"[\"$KEY\", \"dev-two\", true, {\"site\": \"lab\", \"floor\": \"2\"}, \"$CLOUD_HUB_HOST\", \"static\", \"disabled\"]" \
	"... key, device id, IoT Edge, tags, hub, allocation, status"
run 0 enrollment create --registration-id tpm-1 --endorsement-key "$EK"
ok $? "enrollment create --endorsement-key"
cloud_env_device_cert "$dir/cloud" x509-1 self >/dev/null
run 0 enrollment create --registration-id x509-1 --certificate "$CLOUD_PKI/devices/x509-1.pem" --json
ok $? "enrollment create --certificate FILE"
is "$(jq_ 'j["attestation"]["x509"]["clientCertificates"]["primary"]["info"]["sha1Thumbprint"]')" \
	"$(cloud_env_thumbprint "$CLOUD_PKI/devices/x509-1.pem")" "... the SHA-1 thumbprint is the certificate's"

run 2 enrollment create --registration-id two --symmetric-key --endorsement-key "$EK"
ok $? "two attestation methods: exit 2"
is "$(head -1 "$dir/err")" \
	"edgeid-cloud enrollment: give exactly one of --endorsement-key, --symmetric-key, --certificate" \
	"... with the reason"
run 1 enrollment create --registration-id sym-1 --symmetric-key
ok $? "an existing id: exit 1"
is "$(cat "$dir/err")" 'edgeid-cloud enrollment: "sym-1" already exists' "... with the reason"
run 1 enrollment create --registration-id bad-1 --endorsement-key AAAA
ok $? "a malformed EK: exit 1"
like "$(cat "$dir/err")" '^edgeid-cloud enrollment: attestation.tpm.endorsementKey: TPM2B_PUBLIC: ' "... naming the field"
run 2 enrollment frobnicate
ok $? "an unknown verb: exit 2"

run 0 enrollment list
ok $? "enrollment list"
hubs="[\"$CLOUD_HUB_HOST\"]"
w=${#hubs}
row() { printf "%-15s  %-12s  %-9s  %-8s  %-8s  %-${w}s  %s\n" "$@"; }
expected=$(row "REGISTRATION ID" ATTESTATION "DEVICE ID" STATUS "IOT EDGE" HUBS ALLOCATION
	row sym-1 symmetricKey - enabled false - -
	row sym-2 symmetricKey dev-two disabled true "$hubs" static
	row tpm-1 tpm - enabled false - -
	row x509-1 x509 - enabled false - -)
is "$(cat "$dir/out")" "$expected" "... the table"
run 0 enrollment show sym-2 --json
is "$(jq_ 'j["attestation"]["symmetricKey"]')" "{}" "enrollment show hides the keys"
run 0 enrollment show sym-2 --keys --json
is "$(jq_ 'j["attestation"]["symmetricKey"]["primaryKey"]')" "$KEY" "enrollment show --keys shows them"
run 0 enrollment enable sym-2 --json
is "$(jq_ 'j["provisioningStatus"]')" enabled "enrollment enable"
run 0 enrollment disable sym-2 --json
is "$(jq_ 'j["provisioningStatus"]')" disabled "enrollment disable"
run 0 enrollment delete sym-1
is "$(cat "$dir/out")" "deleted enrollment sym-1" "enrollment delete"
run 1 enrollment show sym-1
is "$(cat "$dir/err")" 'edgeid-cloud enrollment: The enrollment "sym-1" does not exist.' "a deleted enrollment is gone"

# CA certificates and their proof of possession.
run 0 ca add root --certificate "$CLOUD_PKI/device-ca.pem" --json
is "$(jq_ '[j["isVerified"], j["info"]["subjectName"]]')" '[false, "CN=edgeid test device CA"]' \
	"ca add: not verified yet"
run 1 ca add leaf --certificate "$CLOUD_PKI/devices/x509-1.pem"
is "$(cat "$dir/err")" \
	"edgeid-cloud ca: the certificate is not a CA certificate (basicConstraints CA:TRUE is missing)" \
	"ca add refuses a leaf"
run 0 group create ca-group --ca root --json
ok $? "group create --ca"
run 0 ca verification-code root --json
code=$(jq_ 'j["verificationCode"]')
like "$code" '^[0-9a-f]{48}$' "ca verification-code prints a code"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/proof.key" \
	-out "$dir/proof.csr" -subj "/CN=$code" 2>/dev/null &&
	openssl x509 -req -in "$dir/proof.csr" -CA "$CLOUD_PKI/device-ca.pem" -CAkey "$CLOUD_PKI/device-ca.key" \
		-out "$dir/proof.pem" -days 1 -set_serial 9 2>/dev/null
ok $? "openssl signs the proof (CN = the code) with the CA's key"
run 1 ca verify root --certificate "$CLOUD_PKI/devices/x509-1.pem"
like "$(cat "$dir/err")" "not signed by the CA's key" "ca verify refuses a certificate the CA did not sign"
run 0 ca verify root --certificate "$dir/proof.pem" --json
is "$(jq_ 'j["isVerified"]')" true "ca verify accepts the proof"
run 0 ca list
is "$(sed -n 2p "$dir/out" | awk '{print $1, $2}')" "root true" "ca list shows it verified"

# A device of the CA group registers (the chain verifies to the verified CA).
cloud_env_device_cert "$dir/cloud" ca-dev-1 ca >/dev/null
status=$(dps_curl "$dir/r" -X PUT --cert "$CLOUD_PKI/devices/ca-dev-1-chain.pem" \
	--key "$CLOUD_PKI/devices/ca-dev-1.key" -H 'Content-Type: application/json' \
	-d '{"registrationId":"ca-dev-1"}' "$(dps_url "/$DPS_ID_SCOPE/registrations/ca-dev-1/register?api-version=2021-06-01")")
is "$status" 202 "a device of the CA group registers"

run 0 group create sym-group --symmetric-key "$KEY"
ok $? "group create --symmetric-key KEY"
run 0 group create signed-group --signing-cert "$CLOUD_PKI/device-ca.pem"
ok $? "group create --signing-cert"
run 0 group list
is "$(awk 'NR > 1 {print $1, $2}' "$dir/out" | tr '\n' ' ')" \
	"ca-group x509 signed-group x509 sym-group symmetricKey " "group list"
run 0 group show sym-group --keys --json
is "$(jq_ 'j["attestation"]["symmetricKey"]["primaryKey"]')" "$KEY" "group show --keys"

# A device of the symmetric-key group, then its registration record.
devkey=$(python3 -c 'import base64,hashlib,hmac,sys; print(base64.b64encode(hmac.new(base64.b64decode(sys.argv[1]), b"grp-dev-1", hashlib.sha256).digest()).decode())' "$KEY")
token=$(dps_sas "$DPS_ID_SCOPE/registrations/grp-dev-1" "$devkey" registration)
status=$(dps_curl "$dir/r" -X PUT -H "Authorization: $token" -H 'Content-Type: application/json' \
	-d '{"registrationId":"grp-dev-1"}' "$(dps_url "/$DPS_ID_SCOPE/registrations/grp-dev-1/register?api-version=2021-06-01")")
is "$status" 202 "a device of the symmetric-key group registers"
for _ in $(seq 1 50); do
	run 0 registration show grp-dev-1 --json && [ "$(jq_ 'j["status"]')" = assigned ] && break
	sleep 0.1
done
is "$(jq_ '[j["status"], j["deviceId"], j["assignedHub"]]')" "[\"assigned\", \"grp-dev-1\", \"$CLOUD_HUB_HOST\"]" \
	"registration show"
run 0 registration list --group sym-group --json
is "$(jq_ '[x["registrationId"] for x in j]')" '["grp-dev-1"]' "registration list --group"
run 0 registration delete grp-dev-1
is "$(cat "$dir/out")" "deleted registration record grp-dev-1" "registration delete"
run 1 registration show grp-dev-1
is "$(cat "$dir/err")" 'edgeid-cloud registration: No registration record for "grp-dev-1".' "... it is gone"
run 0 group delete sym-group
ok $? "group delete"

run 0 enrollment --help
like "$(cat "$dir/out")" '^Usage: edgeid-cloud enrollment VERB' "enrollment --help"

kill -0 "$CLOUD_PID" 2>/dev/null
ok $? "edgeid-cloud is still running"
dps_test_stop_and_check
done_testing
