#!/usr/bin/env bash
# The DPS's answers to hostile and mistaken requests, with curl against a
# real edgeid-cloud (dps + hub): exact status, errorCode, message and
# Content-Type for each, and the server still serving after each. Also
# the shape of the successful answers the clients depend on (202 +
# Retry-After, registrationState in every status answer).
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
# register_wait_ms = 0: the PUT answers "assigning" at once, the shape
# checked below (test-dps-fast-answer.sh checks the held, final answer).
if ! dps_test_env_start "$dir/cloud" "register_wait_ms = 0"; then
	ok 1 "edgeid-cloud with dps and hub starts"
	done_testing
	exit
fi
ok 0 "edgeid-cloud with dps and hub starts"
r=$dir/r
KEY=$(openssl rand -base64 32)
OTHER_KEY=$(openssl rand -base64 32)
EK='AToAAQALAAMAsgAgg3GXZ0SEs/gakMyNRqXXJP1S124GUgtk8qHaGzMUaaoABgCAAEMAEAgAAAAAAAEAtKEADl/sNRgmYAjP6gXmbccRaJoTnVixisUaek0OwAzFGN70xt9ZOYp6fhIwfcft3fdVKOrKpXYcTe72CGNkGJGlQz5ti9n2pQ0uJhcX8aefh4Onm7lVlUCQAVp1K0r6zI8vkEXWsBIvwvxk0eMJbFaq146kbTkJHIGczb89RkFH2TX+CgXeZOG9oXQzUNwktmTUacspamune5Wywc/ce8HsDFYchyUHogFhrZ/LPnzyTDXO8sSC5z5dvsUBtUME3iRYDyKgZOfBtmRMqQewD+4iH+ZEJjtsyJiWR8hFhyKROnOuqXfNFwjd5IcNU4wtlKO0cLyXmTOfQK6Da1pr5Q=='
SRK='ARoAAQALAAMEcgAAAAYAgABDABAIAAAAAAABAOtkhwZsvTyGIda0EjHC88xtr/fRzS21rxDkqNkqILJxzwEnQIQJaEtqezc+dvxDQP7ANLMtEzdrK8AyYz7DQ5wSoypbj8KOdeOltff/bH61SxkcJ2HszJjF9nEFkDRxY6ikUU7pGJ5D/VvtidPJkh53nbRPyirsU69qIQIF6vCPd9TlYSYLMUu1H4qh3ER+vP5h59iMd4qLrvseta4o9gmOxE6oLHTQoojnoiIAKGPGAedqPsAaPJ2bjTHVJDkfmvKc1VqJIgaC8HC3YD/g56EP4Ppe53e45BckumbusvPfFLC/WsZ1lOFEVVXb4nyFpDm/myG+PwhnWCLTMjJ6w10='

cli() {
	local out
	out=$(cloud_env_cli "$@" 2>&1) || {
		tap_diag "edgeid-cloud $*: $out"
		return 1
	}
}
cli enrollment create --registration-id dev1 --symmetric-key "$KEY" &&
	cli enrollment create --registration-id dev-off --symmetric-key "$KEY" --disabled &&
	cli enrollment create --registration-id tpm-dev --endorsement-key "$EK" &&
	cli group create x509-group --signing-cert "$CLOUD_PKI/device-ca.pem"
ok $? "enrollments for the tests (admin CLI)"

reg() { # reg ID: the register URL of ID
	dps_url "/$DPS_ID_SCOPE/registrations/$1/register?api-version=2021-06-01"
}
sas() { # sas ID KEY [EXPIRY]
	dps_sas "$DPS_ID_SCOPE/registrations/$1" "$2" registration "${3:-}"
}
# error_is NAME STATUS CODE MESSAGE: the last answer (files $r.*) is that error.
error_is() {
	local name=$1 status=$2 code=$3 message=$4 got
	got=$(cat "$r.status")
	is "$got $(json_get "$r.body" 'j["errorCode"]')" "$status $code" "$name: HTTP $status, errorCode $code"
	is "$(json_get "$r.body" 'j["message"]')" "$message" "$name: message"
	is "$(json_get "$r.body" 'sorted(j.keys())')" '["errorCode", "message", "timestampUtc", "trackingId"]' \
		"$name: the body has errorCode, trackingId, message, timestampUtc"
	is "$(grep -i '^content-type:' "$r.headers" | tr -d '\r')" 'Content-Type: application/json; charset=utf-8' \
		"$name: Content-Type"
	is "$(grep -i '^x-ms-error-code:' "$r.headers" | tr -d '\r' | cut -d' ' -f2)" "$code" \
		"$name: x-ms-error-code header"
}
# serving NAME: the DPS still answers a good request.
serving() {
	local s
	s=$(curl -sS --cacert "$CLOUD_CA" -o /dev/null -w '%{http_code}' \
		-H "Authorization: $(dps_service_sas)" "$(dps_url /enrollments/dev1?api-version=2021-10-01)")
	is "$s" 200 "$1: the server still serves"
}

good=$(sas dev1 "$KEY")

# --- the successful path, for reference ---------------------------------
dps_curl "$r" -X PUT -H "Authorization: $good" -H 'Content-Type: application/json' \
	-d '{"registrationId":"dev1"}' "$(reg dev1)" >/dev/null
is "$(cat "$r.status") $(grep -i '^retry-after:' "$r.headers" | tr -d '\r')" "202 Retry-After: 1" \
	"register: 202 with Retry-After: 1"
is "$(json_get "$r.body" '[j["status"], j["registrationState"]]')" \
	'["assigning", {"registrationId": "dev1", "status": "assigning"}]' "register: assigning, with registrationState"
op=$(json_get "$r.body" 'j["operationId"]')
for _ in $(seq 1 50); do
	[ "$(dps_curl "$r" -X GET -H "Authorization: $good" -H 'Content-Type: application/json' -d '{}' \
		"$(dps_url "/$DPS_ID_SCOPE/registrations/dev1/operations/$op?api-version=2021-06-01")")" = 202 ] || break
	sleep 0.1
done
is "$(cat "$r.status") $(json_get "$r.body" '[j["status"], j["registrationState"]["status"], j["registrationState"]["deviceId"]]')" \
	'200 ["assigned", "assigned", "dev1"]' "the status GET (with Node's {} body) ends 200 assigned"
dps_curl "$r" -X POST -H "Authorization: $good" -H 'Content-Type: application/json' \
	-d '{"registrationId":"dev1"}' "$(dps_url "/$DPS_ID_SCOPE/registrations/dev1?api-version=2021-06-01")" >/dev/null
is "$(cat "$r.status") $(json_get "$r.body" '[j["status"], j["assignedHub"]]')" "200 [\"assigned\", \"$CLOUD_HUB_HOST\"]" \
	"the status lookup POST answers the DeviceRegistrationResult"

# --- bodies --------------------------------------------------------------
dps_curl "$r" -X PUT -H "Authorization: $good" -H 'Content-Type: application/json' \
	-d '{"registrationId":' "$(reg dev1)" >/dev/null
error_is "malformed JSON" 400 400000 \
	"The request body is not valid JSON: invalid JSON at 1:18: unexpected token near end of file"
serving "malformed JSON"

head -c 100000 /dev/zero | tr '\0' ' ' >"$dir/big.json"
printf '{}' >>"$dir/big.json"
dps_curl "$r" -X PUT -H "Authorization: $good" -H 'Content-Type: application/json' \
	--data-binary "@$dir/big.json" "$(reg dev1)" >/dev/null
error_is "a 100 kB body" 413 413000 "The request body is larger than 98304 bytes."
serving "a 100 kB body"

head -c 2000000 /dev/zero | tr '\0' 'a' >"$dir/huge.json"
dps_curl "$r" -X PUT -H "Authorization: $good" -H 'Content-Type: application/json' \
	--data-binary "@$dir/huge.json" "$(reg dev1)" >/dev/null
is "$(cat "$r.status")" 413 "a 2 MB body: 413 before it is read"
serving "a 2 MB body"

dps_curl "$r" -X PUT -H "Authorization: $good" -H 'Content-Type: application/json' -d '[1,2]' \
	"$(reg dev1)" >/dev/null
error_is "a JSON array" 400 400004 "The request body must be a JSON object (DeviceRegistration)."

dps_curl "$r" -X PUT -H "Authorization: $good" -H 'Content-Type: application/json' \
	-d '{"registrationId":"dev2"}' "$(reg dev1)" >/dev/null
error_is "registrationId differs from the path" 400 400004 \
	'registrationId: "dev2" does not match the registration id in the path ("dev1").'

dps_curl "$r" -X PUT -H "Authorization: $good" -d '{}' "$(reg -dev1)" >/dev/null
error_is "a malformed registration id" 400 400004 \
	"The registration id must be 1 to 128 letters, digits, '-', '.', '_' or ':', starting and ending with a letter or digit."

# --- SAS -------------------------------------------------------------------
dps_curl "$r" -X PUT -H "Authorization: $(sas dev1 "$OTHER_KEY")" -d '{}' "$(reg dev1)" >/dev/null
error_is "a SAS signed with a wrong key" 401 401002 "Unauthorized"
serving "a wrong key"
dps_curl "$r" -X PUT -H "Authorization: $(sas dev9 "$KEY")" -d '{}' "$(reg dev9)" >/dev/null
error_is "an unknown registration (same answer as a wrong key)" 401 401002 "Unauthorized"
dps_curl "$r" -X PUT -H "Authorization: $(sas dev1 "$KEY" $(($(date +%s) - 3600)))" -d '{}' "$(reg dev1)" >/dev/null
error_is "an expired SAS" 401 401002 "Unauthorized: the SharedAccessSignature has expired."
dps_curl "$r" -X PUT -H "Authorization: $(sas dev-off "$KEY")" -d '{}' "$(reg dev1)" >/dev/null
error_is "a SAS for another registration" 401 401002 \
	"Unauthorized: the SharedAccessSignature is not for this registration."
dps_curl "$r" -X PUT -H 'Authorization: SharedAccessSignature sr=x' -d '{}' "$(reg dev1)" >/dev/null
error_is "a malformed SAS" 401 401002 \
	"Unauthorized: the Authorization header is not a valid SharedAccessSignature."
dps_curl "$r" -X PUT -d '{}' "$(reg dev1)" >/dev/null
error_is "no credentials at all" 401 401002 "Unauthorized"
serving "the SAS errors"

dps_curl "$r" -X PUT -H "Authorization: $good" -d '{}' \
	"$(dps_url "/0ne0000FFFF/registrations/dev1/register?api-version=2021-06-01")" >/dev/null
error_is "an unknown ID scope" 404 404000 'The ID scope "0ne0000FFFF" is not served here.'
dps_curl "$r" -H "Authorization: $good" \
	"$(dps_url "/$DPS_ID_SCOPE/registrations/dev1/operations/4.nope?api-version=2021-06-01")" >/dev/null
error_is "an unknown operation" 404 404000 'The operation "4.nope" was not found.'
dps_curl "$r" -X DELETE -H "Authorization: $good" "$(reg dev1)" >/dev/null
error_is "DELETE on register" 405 405000 "Method not allowed."
is "$(grep -i '^allow:' "$r.headers" | tr -d '\r')" "Allow: PUT" "... with Allow: PUT"
dps_curl "$r" "$(dps_url /nothing/here)" >/dev/null
error_is "an unknown path" 404 404000 "Not found."

# --- a disabled enrollment ----------------------------------------------------------
off=$(sas dev-off "$KEY")
dps_curl "$r" -X PUT -H "Authorization: $off" -d '{"registrationId":"dev-off"}' "$(reg dev-off)" >/dev/null
is "$(cat "$r.status") $(json_get "$r.body" 'j["status"]')" "202 assigning" "disabled: the PUT is still 202 assigning"
op=$(json_get "$r.body" 'j["operationId"]')
dps_curl "$r" -H "Authorization: $off" \
	"$(dps_url "/$DPS_ID_SCOPE/registrations/dev-off/operations/$op?api-version=2021-06-01")" >/dev/null
is "$(cat "$r.status") $(json_get "$r.body" '[j["status"], j["registrationState"]["registrationId"], j["registrationState"]["status"]]')" \
	'200 ["disabled", "dev-off", "disabled"]' "disabled: the status GET is 200 disabled, with registrationState"
is "$(cloud_env_cli device show dev-off 2>&1 >/dev/null | head -1)" \
	"$(cloud_env_cli device show dev-nothing 2>&1 >/dev/null | head -1 | sed 's/dev-nothing/dev-off/')" \
	"disabled: no device was created in the hub"

# --- TPM ---------------------------------------------------------------------------------
dps_curl "$r" -X PUT -H 'Content-Type: application/json' \
	-d "{\"registrationId\":\"tpm-dev\",\"tpm\":{\"endorsementKey\":\"$SRK\",\"storageRootKey\":\"$SRK\"}}" \
	"$(reg tpm-dev)" >/dev/null
error_is "a wrong EK" 401 401002 "Unauthorized"
dps_curl "$r" -X PUT -H 'Content-Type: application/json' \
	-d "{\"registrationId\":\"tpm-dev\",\"tpm\":{\"endorsementKey\":\"AAAA\",\"storageRootKey\":\"$SRK\"}}" \
	"$(reg tpm-dev)" >/dev/null
error_is "a malformed EK" 400 400004 "Endorsement key is invalid, or does not match the Enrollment."
dps_curl "$r" -X PUT -H 'Content-Type: application/json' \
	-d "{\"registrationId\":\"tpm-dev\",\"tpm\":{\"endorsementKey\":\"$EK\",\"storageRootKey\":\"$SRK\"}}" \
	"$(reg tpm-dev)" >/dev/null
is "$(cat "$r.status") $(json_get "$r.body" 'sorted(j.keys())')" \
	'401 ["authenticationKey", "keyName", "message"]' "the right EK: 401 with the challenge"
serving "the TPM errors"

# --- X.509 ------------------------------------------------------------------------
cloud_env_device_cert "$dir/cloud" x509-dev ca >/dev/null
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/other-ca.key" \
	-out "$dir/other-ca.pem" -days 30 -subj "/CN=other CA" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null &&
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/x509-foreign.key" \
		-out "$dir/x509-foreign.csr" -subj "/CN=x509-dev" 2>/dev/null &&
	openssl x509 -req -in "$dir/x509-foreign.csr" -CA "$dir/other-ca.pem" -CAkey "$dir/other-ca.key" \
		-out "$dir/x509-foreign.pem" -days 30 -set_serial 7 2>/dev/null
ok $? "openssl makes a device certificate from another CA"
devs=$CLOUD_PKI/devices
dps_curl "$r" -X PUT --cert "$devs/x509-dev-chain.pem" --key "$devs/x509-dev.key" \
	-H 'Content-Type: application/json' -d '{"registrationId":"x509-dev"}' "$(reg x509-dev)" >/dev/null
is "$(cat "$r.status")" 202 "X.509: the group's device registers (202)"
cat "$dir/x509-foreign.pem" "$dir/other-ca.pem" >"$dir/x509-foreign-chain.pem"
dps_curl "$r" -X PUT --cert "$dir/x509-foreign-chain.pem" --key "$dir/x509-foreign.key" \
	-H 'Content-Type: application/json' -d '{"registrationId":"x509-dev"}' "$(reg x509-dev)" >/dev/null
error_is "X.509: a certificate from another CA" 401 401002 "Unauthorized"
dps_curl "$r" -X PUT --cert "$devs/x509-dev-chain.pem" --key "$devs/x509-dev.key" \
	-H 'Content-Type: application/json' -d '{"registrationId":"x509-other"}' "$(reg x509-other)" >/dev/null
error_is "X.509: a CN that is not the registration id" 401 401002 \
	"Unauthorized: the client certificate's subject CN must be the registration id."
serving "the X.509 errors"

# --- the service API -------------------------------------------------------------------
svc() { # svc METHOD PATH [CURL-ARGS...]
	local m=$1 p=$2
	shift 2
	dps_curl "$r" -X "$m" -H "Authorization: $(dps_service_sas)" -H 'Content-Type: application/json' \
		"$@" "$(dps_url "$p")" >/dev/null
}
dps_curl "$r" "$(dps_url /enrollments/dev1?api-version=2021-10-01)" >/dev/null
error_is "service API without a SAS" 401 401002 "Unauthorized"
dps_curl "$r" -H "Authorization: $(dps_sas "$CLOUD_DPS_HOST" "$OTHER_KEY" provisioningserviceowner)" \
	"$(dps_url /enrollments/dev1?api-version=2021-10-01)" >/dev/null
error_is "service API with a wrong key" 401 401002 "Unauthorized"
svc GET '/ENROLLMENTS/dev1?api-version=2021-10-01'
is "$(cat "$r.status") $(json_get "$r.body" 'j["attestation"]')" '200 {"type": "symmetricKey", "symmetricKey": {}}' \
	"paths are case-insensitive; GET hides the keys"
svc PUT '/enrollments/new1?api-version=2021-10-01' -d '{"registrationId":"new1","attestation":{"type":"x509"}}'
error_is "an invalid enrollment" 400 400004 "attestation.x509: missing"
svc PUT '/enrollments/new1?api-version=2021-10-01' -d '{"attestation":'
error_is "a malformed enrollment" 400 400000 \
	"The request body is not valid JSON: invalid JSON at 1:15: unexpected token near end of file"
svc PUT '/enrollments/dev1?api-version=2021-10-01' -H 'If-Match: "stale"' -d '{"attestation":{"type":"symmetricKey"}}'
error_is "a stale If-Match" 412 412000 "The etag does not match the enrollment's current etag."
svc POST '/enrollments/query?api-version=2021-10-01' -H 'x-ms-max-item-count: 0' -d '{"query":"*"}'
error_is "x-ms-max-item-count 0" 400 400004 "x-ms-max-item-count: expected an integer from 1 to 1000."
svc POST '/enrollments/query?api-version=2021-10-01' -H 'x-ms-continuation: bogus' -d '{"query":"*"}'
error_is "a foreign continuation token" 400 400004 "x-ms-continuation: not a continuation token of this query"
svc POST '/enrollments/query?api-version=2021-10-01' -H 'x-ms-max-item-count: 2' -d '{"query":"*"}'
is "$(cat "$r.status") $(json_get "$r.body" 'len(j)') $(grep -ci '^x-ms-continuation:' "$r.headers")" \
	"200 2 1" "query page of 2: a continuation header"
svc POST '/enrollments/query?api-version=2021-10-01' -d '{"query":"*"}'
is "$(cat "$r.status") $(json_get "$r.body" 'len(j)') $(grep -ci '^x-ms-continuation:' "$r.headers")" \
	"200 3 0" "the last page: no continuation header at all"
svc DELETE '/registrations/nobody?api-version=2021-10-01'
error_is "deleting a registration that does not exist" 404 404203 'No registration record for "nobody".'
svc GET '/enrollmentGroups/nope?api-version=2021-10-01'
error_is "an unknown group" 404 404202 'The enrollment group "nope" does not exist.'
serving "the service API errors"

kill -0 "$CLOUD_PID" 2>/dev/null
ok $? "edgeid-cloud is still running"
dps_test_stop_and_check
done_testing
