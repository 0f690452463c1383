#!/usr/bin/env bash
# Assignment with a real edgeid-cloud (dps + hub): the custom allocation
# webhook (the device's payload in, hub + initial twin + payload out),
# reprovisioning policies (same hub with and without migrateDeviceData),
# a linked hub that is down (the registration fails with 500208), and an
# acknowledged registration surviving the death of the worker processes
# in the middle of its assignment (a later status poll finishes it).
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
webhook_pid=
cleanup() {
	[ -n "$webhook_pid" ] && kill "$webhook_pid" 2>/dev/null && wait "$webhook_pid" 2>/dev/null
	cloud_env_stop >/dev/null 2>&1
	rm -rf "$dir"
}
trap cleanup EXIT
DEAD_HUB=127.255.255.254

# The webhook: plain HTTP on loopback. It records each request body, and
# holds the first request for "slow-dev" for 60 s (the crash test).
cat >"$dir/webhook.py" <<'PY'
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
out_dir, hub = sys.argv[1], sys.argv[2]
seen = {}
class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        rid = body["deviceRuntimeContext"]["registrationId"]
        seen[rid] = seen.get(rid, 0) + 1
        with open("%s/%s.%d.json" % (out_dir, rid, seen[rid]), "w") as f:
            json.dump(body, f)
        if rid == "slow-dev" and seen[rid] == 1:
            time.sleep(60)
        answer = {"iotHubHostName": hub,
                  "initialTwin": {"tags": {"chosenBy": "webhook"}, "properties": {"desired": {"n": seen[rid]}}},
                  "payload": {"echo": body["deviceRuntimeContext"].get("payload")}}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY

extra="assignment_stale_seconds = 5
[[dps.linked_hub]]
connection_string = \"HostName=$DEAD_HUB;SharedAccessKeyName=iothubowner;SharedAccessKey=$(openssl rand -base64 32)\"
apply_allocation_policy = false"
if ! dps_test_env_start "$dir/cloud" "$extra"; then
	ok 1 "edgeid-cloud with dps and hub starts"
	done_testing
	exit
fi
ok 0 "edgeid-cloud with dps and hub starts"

mkdir -p "$dir/hook"
coproc WEBHOOK { exec python3 "$dir/webhook.py" "$dir/hook" "$CLOUD_HUB_HOST"; }
webhook_pid=$WEBHOOK_PID
read -r -t 10 port <&"${WEBHOOK[0]}"
ok $? "the webhook listens on 127.0.0.1:${port:-?}"
r=$dir/r
KEY=$(openssl rand -base64 32)

reg() {
	dps_url "/$DPS_ID_SCOPE/registrations/$1/register?api-version=2021-06-01"
}
# register ID [BODY]: PUT and poll to the end; leaves the last answer in $r.*
register() {
	local id=$1 body=${2:-"{\"registrationId\":\"$1\"}"} token op
	token=$(dps_sas "$DPS_ID_SCOPE/registrations/$id" "$KEY" registration)
	dps_curl "$r" -X PUT -H "Authorization: $token" -H 'Content-Type: application/json' -d "$body" \
		"$(reg "$id")" >/dev/null
	[ "$(cat "$r.status")" = 202 ] || return 1
	op=$(json_get "$r.body" 'j["operationId"]')
	poll "$id" "$op" 100
}
# poll ID OP TRIES: poll every 0.1 s until the answer is not 202 (no
# answer at all, while workers restart, counts as 202).
poll() {
	local token status
	token=$(dps_sas "$DPS_ID_SCOPE/registrations/$1" "$KEY" registration)
	for _ in $(seq 1 "$3"); do
		status=$(dps_curl "$r" -H "Authorization: $token" \
			"$(dps_url "/$DPS_ID_SCOPE/registrations/$1/operations/$2?api-version=2021-06-01")")
		[ "$status" = 202 ] || [ "$status" = 000 ] || return 0
		sleep 0.1
	done
}
state() { # state EXPR: of the last answer's registrationState
	json_get "$r.body" "$1"
}
svc() { # svc METHOD PATH [CURL-ARGS...]
	local m=$1 p=$2
	shift 2
	dps_curl "$r" -X "$m" -H "Authorization: $(dps_service_sas)" -H 'Content-Type: application/json' \
		"$@" "$(dps_url "$p?api-version=2021-10-01")" >/dev/null
}
twin_tags() { # twin_tags DEVICE: the tags of the device's twin in the hub, compact JSON
	cloud_env_cli device twin "$1" --json | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin).get("tags", {}), sort_keys=True))'
}

# --- custom allocation ------------------------------------------------------------
svc PUT /enrollments/custom-dev -d "{\"attestation\":{\"type\":\"symmetricKey\",\"symmetricKey\":{\"primaryKey\":\"$KEY\"}},
	\"allocationPolicy\":\"custom\",\"customAllocationDefinition\":{\"webhookUrl\":\"http://127.0.0.1:$port/allocate?code=x\",\"apiVersion\":\"2021-10-01\"}}"
is "$(cat "$r.status")" 200 "an enrollment with a custom allocation webhook"
register custom-dev '{"registrationId":"custom-dev","payload":{"model":"m1"}}'
is "$(state '[j["status"], j["registrationState"]["assignedHub"], j["registrationState"]["payload"]]')" \
	"[\"assigned\", \"$CLOUD_HUB_HOST\", {\"echo\": {\"model\": \"m1\"}}]" \
	"custom: assigned to the webhook's hub, the webhook's payload returned to the device"
is "$(json_get "$dir/hook/custom-dev.1.json" '[j["deviceRuntimeContext"]["payload"], j["individualEnrollment"]["registrationId"], j["linkedHubs"], j["individualEnrollment"]["attestation"]["symmetricKey"]]')" \
	"[{\"model\": \"m1\"}, \"custom-dev\", [\"$CLOUD_HUB_HOST\"], {}]" \
	"custom: the webhook got the device's payload, the enrollment (no keys) and the linked hubs"
is "$(twin_tags custom-dev)" '{"chosenBy": "webhook"}' "custom: the webhook's initial twin is in the hub"

# --- reprovisioning -----------------------------------------------------------------
svc PUT /enrollments/re-dev -d "{\"attestation\":{\"type\":\"symmetricKey\",\"symmetricKey\":{\"primaryKey\":\"$KEY\"}},
	\"initialTwin\":{\"tags\":{\"a\":1}}}"
register re-dev
is "$(state '[j["registrationState"]["substatus"], j["registrationState"]["deviceId"]]')" \
	'["initialAssignment", "re-dev"]' "first registration: initialAssignment"
hub_sas=$(dps_sas "$CLOUD_HUB_HOST" "$CLOUD_HUB_OWNER_KEY" iothubowner)
status=$(curl -sS --cacert "$CLOUD_CA" -o /dev/null -w '%{http_code}' -X PATCH -H "Authorization: $hub_sas" \
	-H 'If-Match: "*"' -H 'Content-Type: application/json' -d '{"tags":{"b":2}}' \
	"https://$CLOUD_HUB_HOST/twins/re-dev?api-version=2021-04-12")
is "$status" 200 "the hub's twin gets a tag of its own (b)"
register re-dev
is "$(state 'j["registrationState"]["substatus"]')" reprovisionedToInitialAssignment \
	"again, migrateDeviceData: reprovisionedToInitialAssignment"
is "$(twin_tags re-dev)" '{"a": 1, "b": 2}' "... the device's data is kept"
svc GET /enrollments/re-dev
etag=$(json_get "$r.body" 'j["etag"]')
svc PUT /enrollments/re-dev -H "If-Match: $etag" -d '{"attestation":{"type":"symmetricKey"},
	"initialTwin":{"tags":{"a":1}},"reprovisionPolicy":{"updateHubAssignment":true,"migrateDeviceData":false}}'
is "$(cat "$r.status")" 200 "the enrollment now resets device data (its keys kept)"
register re-dev
is "$(state '[j["status"], j["registrationState"]["substatus"]]')" '["assigned", "deviceDataReset"]' \
	"again, without migrateDeviceData: deviceDataReset"
is "$(twin_tags re-dev)" '{"a": 1}' "... the twin is back to the initial twin"

# --- a linked hub that is down -------------------------------------------------------
svc PUT /enrollments/dead-dev -d "{\"attestation\":{\"type\":\"symmetricKey\",\"symmetricKey\":{\"primaryKey\":\"$KEY\"}},
	\"allocationPolicy\":\"static\",\"iotHubHostName\":\"$DEAD_HUB\"}"
register dead-dev
is "$(state '[j["status"], j["registrationState"]["status"], j["registrationState"]["errorCode"]]')" \
	'["failed", "failed", 500208]' "a hub that refuses connections: failed, errorCode 500208"
like "$(state 'j["registrationState"]["errorMessage"]')" "$DEAD_HUB.*refused" \
	"... the errorMessage says why"

# --- a worker dies during an assignment -------------------------------------------------
svc PUT /enrollments/slow-dev -d "{\"attestation\":{\"type\":\"symmetricKey\",\"symmetricKey\":{\"primaryKey\":\"$KEY\"}},
	\"allocationPolicy\":\"custom\",\"customAllocationDefinition\":{\"webhookUrl\":\"http://127.0.0.1:$port/allocate\"}}"
token=$(dps_sas "$DPS_ID_SCOPE/registrations/slow-dev" "$KEY" registration)
dps_curl "$r" -X PUT -H "Authorization: $token" -d '{"registrationId":"slow-dev"}' "$(reg slow-dev)" >/dev/null
is "$(cat "$r.status")" 202 "slow: the registration is acknowledged (202)"
op=$(json_get "$r.body" 'j["operationId"]')
for _ in $(seq 1 50); do
	[ -f "$dir/hook/slow-dev.1.json" ] && break
	sleep 0.1
done
ok $([ -f "$dir/hook/slow-dev.1.json" ] && echo 0 || echo 1) "slow: the webhook holds the assignment"
# Kill every worker process of our edgeid-cloud (by pid; the runtime restarts them).
workers=$(ps -o pid= --ppid "$CLOUD_PID" | tr -d ' ')
for pid in $workers; do kill -KILL "$pid"; done
ok 0 "slow: the worker processes are killed ($(echo $workers | wc -w))"
poll slow-dev "$op" 150
is "$(state '[j["status"], j["registrationState"]["assignedHub"]]')" "[\"assigned\", \"$CLOUD_HUB_HOST\"]" \
	"slow: a later poll finds it stale and finishes the assignment"
ok $([ -f "$dir/hook/slow-dev.2.json" ] && echo 0 || echo 1) "slow: ... by calling the webhook again"

kill -0 "$CLOUD_PID" 2>/dev/null
ok $? "edgeid-cloud is still running"
dps_test_stop_and_check
done_testing
