#!/usr/bin/env bash
# The enrollment's reprovisionPolicy when a device registers again after
# its enrollment moved to another hub. A DPS (127.0.16.12) is linked to two
# hubs: 127.0.16.13 in the same edgeid-cloud, 127.0.16.14 in a second one
# with its own store. Each device registers (curl, symmetric-key SAS) and
# gets its enrollment's initialTwin in hub 1; its twin there is then
# changed through the hub's service API (tags, desired properties); the
# enrollment moves to hub 2; the device registers again.
# The outcomes (DeviceRegistrationState.substatus in the DPS REST API;
# dps-protocol.md §5 ReprovisionPolicy):
#   migrateDeviceData true     deviceDataMigrated: hub 2 has the device with
#                              hub 1's twin (tags, desired); hub 1 no longer
#                              has it
#   migrateDeviceData false    deviceDataReset: hub 2 has the device with the
#                              initialTwin; hub 1 no longer has it
#   updateHubAssignment false  reprovisionedToInitialAssignment: the device
#                              stays in hub 1 with its twin; hub 2 never
#                              has it
# Also: a stale device of the same id in hub 2 is replaced, not merged; a
# move an earlier assignment finished without recording (hub 1 empty,
# hub 2 has the device) keeps hub 2's data; moving back works the same way.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
. "$EDGEID_SOURCE_ROOT/tests/integration/test-dps-lib.sh"

for cmd in curl python3 openssl jq; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "1..0 # SKIP $cmd not installed"
		exit 0
	fi
done

dir=$(mktemp -d)
hub2_pid=
cleanup() {
	[ -n "$hub2_pid" ] && kill -KILL "$hub2_pid" 2>/dev/null && wait "$hub2_pid" 2>/dev/null
	cloud_env_stop >/dev/null 2>&1
	rm -rf "$dir"
}
trap cleanup EXIT

HUB1=127.0.16.13
HUB2=127.0.16.14
HUB2_KEY=$(openssl rand -base64 32)
CLOUD_DPS_HOST=127.0.16.12
CLOUD_HUB_HOST=$HUB1
# shellcheck disable=SC2016,SC2089,SC2090 # TOML text with placeholders, quotes included
CLOUD_ENV_DPS_EXTRA='id_scope = "@ID_SCOPE@"

[[dps.shared_access_policy]]
name = "provisioningserviceowner"
primary_key = "@DPS_OWNER_KEY@"

[[dps.linked_hub]]
connection_string = "@HUB_CONNECTION_STRING@"
ca_file = "@PKI@/ca.pem"

[[dps.linked_hub]]
connection_string = "HostName='$HUB2';SharedAccessKeyName=iothubowner;SharedAccessKey='$HUB2_KEY'"
ca_file = "@PKI@/ca.pem"'
# shellcheck disable=SC2090
export CLOUD_DPS_HOST CLOUD_HUB_HOST CLOUD_ENV_DPS_EXTRA
cloud_env_setup "$dir/cloud" 2>"$dir/setup.err"
ok $? "edgeid-cloud with the DPS and hub 1 starts" || {
	sed 's/^/# /' "$dir/setup.err"
	done_testing
	exit
}

# Hub 2: its own process, store and certificate from the same CA.
h2=$dir/hub2
mkdir -p "$h2"
cloud_env_server_cert "$h2/hub" "$HUB2"
ok $? "a certificate for hub 2"
cat >"$h2/cloud.toml" <<EOF
[store]
url = "sqlite://$h2/cloud.db"

[tls]
client_ca = "$CLOUD_PKI/ca.pem"

[hub]
listen = ["$HUB2:443"]
host_name = "$HUB2"
workers = 1
tls_cert = "$h2/hub.pem"
tls_key = "$h2/hub.key"

[[hub.shared_access_policy]]
name = "iothubowner"
primary_key = "$HUB2_KEY"
rights = "RegistryWrite ServiceConnect DeviceConnect"
EOF
"$CLOUD_BIN" serve --config "$h2/cloud.toml" >"$h2/cloud.out" 2>"$h2/cloud.log" &
hub2_pid=$!
for _ in $(seq 1 200); do
	grep -q '^edgeid-cloud: hub ready on ' "$h2/cloud.out" && break
	sleep 0.05
done
grep -q '^edgeid-cloud: hub ready on ' "$h2/cloud.out"
ok $? "hub 2 starts" || sed 's/^/# /' "$h2/cloud.log"

r=$dir/r
KEY=$(openssl rand -base64 32)

# svc METHOD PATH [CURL-ARGS...]: the DPS service API; answer in $r.*
svc() {
	local m=$1 p=$2
	shift 2
	dps_curl "$r" -X "$m" -H "Authorization: $(dps_service_sas)" -H 'Content-Type: application/json' \
		"$@" "$(dps_url "$p?api-version=2021-10-01")" >/dev/null
}
# register ID: PUT register and poll until the answer is final; the last
# answer in $r.*; fails unless the PUT was accepted and the poll ended.
register() {
	local id=$1 token op
	token=$(dps_sas "$DPS_ID_SCOPE/registrations/$id" "$KEY" registration)
	dps_curl "$r" -X PUT -H "Authorization: $token" -H 'Content-Type: application/json' \
		-d "{\"registrationId\":\"$id\"}" \
		"$(dps_url "/$DPS_ID_SCOPE/registrations/$id/register?api-version=2021-06-01")" >/dev/null
	[ "$(cat "$r.status")" = 202 ] || return 1
	op=$(json_get "$r.body" 'j["operationId"]')
	for _ in $(seq 1 100); do
		[ "$(dps_curl "$r" -H "Authorization: $token" \
			"$(dps_url "/$DPS_ID_SCOPE/registrations/$id/operations/$op?api-version=2021-06-01")")" = 202 ] ||
			return 0
		sleep 0.1
	done
	return 1
}
# outcome: status, assignedHub and substatus of the last answer.
outcome() {
	json_get "$r.body" '" ".join([j["status"], j["registrationState"].get("assignedHub", "-"), j["registrationState"].get("substatus", "-")])'
}
# hub HOST METHOD PATH [CURL-ARGS...]: the hub's service API (owner
# policy); prints the HTTP status, the body in $r.hub.
hub() {
	local host=$1 m=$2 p=$3 key=$CLOUD_HUB_OWNER_KEY
	shift 3
	[ "$host" = "$HUB2" ] && key=$HUB2_KEY
	curl -sS --cacert "$CLOUD_CA" -o "$r.hub" -w '%{http_code}' -X "$m" \
		-H "Authorization: $(dps_sas "$host" "$key" iothubowner)" -H 'Content-Type: application/json' \
		"$@" "https://$host$p?api-version=2021-04-12"
}
# twin_data HOST ID: the device twin's tags and desired properties (no
# $metadata/$version), compact JSON with sorted keys; "404" when the hub
# has no such device.
twin_data() {
	local status
	status=$(hub "$1" GET "/twins/$2")
	[ "$status" = 200 ] || {
		echo "$status"
		return
	}
	python3 -c 'import json,sys
t = json.load(open(sys.argv[1]))
d = {k: v for k, v in t.get("properties", {}).get("desired", {}).items() if not k.startswith("$")}
print(json.dumps({"tags": t.get("tags", {}), "desired": d}, sort_keys=True))' "$r.hub"
}
# device_sends HOST ID: the device, with the enrollment's key, sends a
# telemetry message to the hub; prints the HTTP status (204: accepted).
device_sends() {
	curl -sS --cacert "$CLOUD_CA" -o /dev/null -w '%{http_code}' -X POST \
		-H "Authorization: $(cloud_env_sas "$1/devices/$2" "$KEY")" -H 'Content-Type: application/json' \
		-d '{"t":1}' "https://$1/devices/$2/messages/events?api-version=2020-09-30"
}
# enroll ID POLICY-JSON: an individual enrollment in hub 1 with the
# initial twin.
INITIAL='{"tags":{"fleet":"initial"},"properties":{"desired":{"mode":"initial"}}}'
enroll() {
	svc PUT "/enrollments/$1" -d "{\"attestation\":{\"type\":\"symmetricKey\",\"symmetricKey\":{\"primaryKey\":\"$KEY\"}},
		\"iotHubs\":[\"$HUB1\"],\"initialTwin\":$INITIAL,\"reprovisionPolicy\":$2}"
	is "$(cat "$r.status")" 200 "$1: an enrollment in hub 1 with reprovisionPolicy $2"
}
# move ID HUB: the enrollment now lists only HUB (keys and policy kept).
move() {
	local etag policy
	svc GET "/enrollments/$1"
	etag=$(json_get "$r.body" 'j["etag"]')
	policy=$(json_get "$r.body" 'j["reprovisionPolicy"]')
	svc PUT "/enrollments/$1" -H "If-Match: $etag" -d "{\"attestation\":{\"type\":\"symmetricKey\"},
		\"iotHubs\":[\"$2\"],\"initialTwin\":$INITIAL,\"reprovisionPolicy\":$policy}"
	is "$(cat "$r.status")" 200 "$1: the enrollment moves to $2"
}
# first_registration ID: registers in hub 1, then changes the twin there.
FIELD='{"tags":{"site":"lab-7"},"properties":{"desired":{"mode":"field","interval":30}}}'
FIELD_DATA='{"desired": {"interval": 30, "mode": "field"}, "tags": {"fleet": "initial", "site": "lab-7"}}'
INITIAL_DATA='{"desired": {"mode": "initial"}, "tags": {"fleet": "initial"}}'
first_registration() {
	register "$1"
	is "$(outcome)" "assigned $HUB1 initialAssignment" "$1: assigned to hub 1 (initialAssignment)"
	is "$(twin_data "$HUB1" "$1")" "$INITIAL_DATA" "$1: hub 1's twin is the initialTwin"
	is "$(hub "$HUB1" PATCH "/twins/$1" -H 'If-Match: "*"' -d "$FIELD")" 200 \
		"$1: the twin in hub 1 gets tags and desired properties of its own"
	is "$(twin_data "$HUB1" "$1")" "$FIELD_DATA" "$1: ... merged into the initial ones"
}

# ---- migrateDeviceData true ---------------------------------------------------------------
enroll mig-dev '{"updateHubAssignment":true,"migrateDeviceData":true}'
first_registration mig-dev
# A device of the same id left in hub 2 from long ago: stale, not to be merged.
is "$(hub "$HUB2" PUT /devices/mig-dev -d '{"deviceId":"mig-dev"}')" 200 "hub 2 has a stale mig-dev"
is "$(hub "$HUB2" PATCH /twins/mig-dev -H 'If-Match: "*"' -d '{"tags":{"stale":true}}')" 200 \
	"... with a tag of its own"
move mig-dev "$HUB2"
register mig-dev
is "$(outcome)" "assigned $HUB2 deviceDataMigrated" "mig-dev: registered again: hub 2, deviceDataMigrated"
is "$(twin_data "$HUB2" mig-dev)" "$FIELD_DATA" "mig-dev: hub 2's twin is hub 1's (tags, desired), nothing stale"
is "$(twin_data "$HUB1" mig-dev)" 404 "mig-dev: hub 1 no longer has the device"
is "$(hub "$HUB2" GET /devices/mig-dev >/dev/null && json_get "$r.hub" 'j["authentication"]["symmetricKey"]["primaryKey"]')" \
	"$KEY" "mig-dev: hub 2's device has the enrollment's key"
is "$(device_sends "$HUB2" mig-dev)" 204 "mig-dev: the device sends to hub 2 with its key"
is "$(device_sends "$HUB1" mig-dev)" 401 "mig-dev: ... and hub 1 refuses it"
show=$(cloud_env_cli registration show mig-dev --json)
is "$(jq -r '[.status, .assignedHub, .deviceId, .substatus] | join(" ")' <<<"$show")" \
	"assigned $HUB2 mig-dev deviceDataMigrated" "mig-dev: registration show --json has the new hub and substatus"

# Back to hub 1: the data comes along again.
move mig-dev "$HUB1"
register mig-dev
is "$(outcome)" "assigned $HUB1 deviceDataMigrated" "mig-dev: moved back: hub 1, deviceDataMigrated"
is "$(twin_data "$HUB1" mig-dev)" "$FIELD_DATA" "mig-dev: hub 1 has the twin back"
is "$(twin_data "$HUB2" mig-dev)" 404 "mig-dev: hub 2 no longer has the device"

# ---- migrateDeviceData false ----------------------------------------------------------------
enroll reset-dev '{"updateHubAssignment":true,"migrateDeviceData":false}'
first_registration reset-dev
move reset-dev "$HUB2"
register reset-dev
is "$(outcome)" "assigned $HUB2 deviceDataReset" "reset-dev: registered again: hub 2, deviceDataReset"
is "$(twin_data "$HUB2" reset-dev)" "$INITIAL_DATA" "reset-dev: hub 2's twin is the initialTwin"
is "$(twin_data "$HUB1" reset-dev)" 404 "reset-dev: hub 1 no longer has the device"
is "$(device_sends "$HUB2" reset-dev)" 204 "reset-dev: the device sends to hub 2 with its key"

# ---- updateHubAssignment false --------------------------------------------------------------
enroll stay-dev '{"updateHubAssignment":false,"migrateDeviceData":true}'
first_registration stay-dev
move stay-dev "$HUB2"
register stay-dev
is "$(outcome)" "assigned $HUB1 reprovisionedToInitialAssignment" \
	"stay-dev: registered again: stays in hub 1, reprovisionedToInitialAssignment"
is "$(twin_data "$HUB1" stay-dev)" "$FIELD_DATA" "stay-dev: hub 1's twin is kept"
is "$(twin_data "$HUB2" stay-dev)" 404 "stay-dev: hub 2 never had the device"
is "$(device_sends "$HUB1" stay-dev)" 204 "stay-dev: the device still sends to hub 1"

# ---- a move finished but not recorded -------------------------------------------------------
# What an assignment that died after removing the device from hub 1 (the
# last step of a move) leaves behind: the record still names hub 1, hub 1
# has no device, hub 2 has the moved one. Doing the move again keeps hub
# 2's data rather than starting over from the initialTwin.
enroll redo-dev '{"updateHubAssignment":true,"migrateDeviceData":true}'
first_registration redo-dev
is "$(hub "$HUB2" PUT /devices/redo-dev -d '{"deviceId":"redo-dev"}')" 200 \
	"redo-dev: hub 2 has the device as a move left it"
is "$(hub "$HUB2" PATCH /twins/redo-dev -H 'If-Match: "*"' -d "$FIELD")" 200 "redo-dev: ... with its data"
is "$(hub "$HUB1" DELETE /devices/redo-dev -H 'If-Match: "*"')" 204 "redo-dev: ... and hub 1 has none"
move redo-dev "$HUB2"
register redo-dev
is "$(outcome)" "assigned $HUB2 deviceDataMigrated" "redo-dev: registered again: hub 2, deviceDataMigrated"
is "$(twin_data "$HUB2" redo-dev)" '{"desired": {"interval": 30, "mode": "field"}, "tags": {"site": "lab-7"}}' \
	"redo-dev: hub 2's data is kept, not reset to the initialTwin"
is "$(device_sends "$HUB2" redo-dev)" 204 "redo-dev: the device sends to hub 2 with its key"

kill -TERM "$hub2_pid" && wait "$hub2_pid"
ok $? "hub 2 stops cleanly"
hub2_pid=
if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$h2/cloud.log"; then
	ok 1 "no sanitizer report in hub 2's log"
	grep -E -A12 'AddressSanitizer|LeakSanitizer|runtime error:' "$h2/cloud.log" | head -60 | sed 's/^/# /'
else
	ok 0 "no sanitizer report in hub 2's log"
fi
dps_test_stop_and_check
done_testing
