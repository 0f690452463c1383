#!/usr/bin/env bash
# The DPS holds a register answer while the assignment runs ([dps]
# register_wait_ms, 250 ms by default), so that a quick assignment is
# answered by the PUT itself, always 202 (aziot accepts nothing else):
#   - symmetric key: 202 "assigned", the very body of the later status GET
#     (200), with Retry-After;
#   - a disabled enrollment: 202 "disabled", the GET's body;
#   - a failed assignment (the webhook names a hub that is not linked):
#     202 "failed" with errorCode and errorMessage, the GET's body;
#   - an assignment slower than the hold (a webhook that takes 2 s): 202
#     "assigning" with Retry-After as before, and the poll ends assigned;
#   - TPM (bench/dps-load with software TPMs): the first PUT is still 401
#     with the challenge, the second 202 with the final result and the
#     hub key blob, no poll;
#   - register_wait_ms = 0: 202 "assigning" at once (also for a disabled
#     enrollment), exactly as before the hold;
#   - register_wait_ms = 5000: a client that disconnects while its answer
#     is held (its assignment waits in the webhook) leaves the server
#     serving, and the assignment still completes; a request still held
#     when the server stops does not keep it from stopping cleanly;
#   - register_wait_ms = 5001 is refused with the key and its range.
# Run with an ASan build, the server log must hold no sanitizer report.
# Addresses: 127.0.18.12 (DPS), 127.0.18.13 (hub), 127.0.18.14 (webhook).
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
. "$EDGEID_SOURCE_ROOT/tests/integration/test-dps-lib.sh"

for cmd in curl python3 openssl; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "1..0 # SKIP $cmd not installed"
		exit 0
	fi
done
load=${DPS_LOAD:-$EDGEID_BUILD_ROOT/bench/dps-load}

dir=$(mktemp -d)
webhook_pid=
cleanup() {
	[ -n "$webhook_pid" ] && kill "$webhook_pid" 2>/dev/null && wait "$webhook_pid" 2>/dev/null
	cloud_env_stop >/dev/null 2>&1
	rm -rf "$dir"
}
trap cleanup EXIT

# The webhook (plain HTTP): writes each request to HOOK-DIR/ID.N.json
# first, then answers after a delay that depends on the registration id:
# slow-* 2 s, gone-* 3 s, others at once; fail-dev gets a hub that is not
# linked.
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
        if rid.startswith("slow-"):
            time.sleep(2)
        elif rid.startswith("gone-"):
            time.sleep(3)
        answer = {"iotHubHostName": "nowhere.example" if rid == "fail-dev" else hub}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
s = ThreadingHTTPServer((sys.argv[3], 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY

# The held client: PUT register over TLS, wait until the webhook has the
# device's request (its assignment is running, so the answer is held),
# then print "held" and either close the socket ("close") or read what
# comes back ("read": prints "closed" when the connection ends without an
# answer, else the status line).
cat >"$dir/held.py" <<'PY'
import os, socket, ssl, sys, time
host, ca, path, token, body, hook_file, mode = sys.argv[1:8]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection((host, 443), timeout=30), server_hostname=host)
req = ("PUT %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Type: application/json\r\n"
       "Content-Length: %d\r\n\r\n%s" % (path, host, token, len(body), body))
s.sendall(req.encode())
deadline = time.time() + 20
while not os.path.exists(hook_file) and time.time() < deadline:
    time.sleep(0.02)
print("held" if os.path.exists(hook_file) else "no webhook call", flush=True)
if mode == "close":
    s.close()
    sys.exit(0)
sys.stdin.readline()
try:
    data = s.recv(4096)
except (OSError, ssl.SSLError):
    data = b""
print(data.split(b"\r\n")[0].decode() if data else "closed", flush=True)
PY

CLOUD_DPS_HOST=127.0.18.12
CLOUD_HUB_HOST=127.0.18.13
HOOK_HOST=127.0.18.14
CLOUD_ENV_WORKERS=2
export CLOUD_DPS_HOST CLOUD_HUB_HOST CLOUD_ENV_WORKERS
# dps_table [EXTRA-KEYS]: the [dps] table text.
dps_table() {
	printf 'id_scope = "%s"\n%s\n' "$DPS_ID_SCOPE" "${1:-}"
	printf '[[dps.shared_access_policy]]\nname = "provisioningserviceowner"\n'
	printf 'primary_key = "@DPS_OWNER_KEY@"\n'
	printf '[[dps.linked_hub]]\nconnection_string = "@HUB_CONNECTION_STRING@"\n'
	printf 'ca_file = "@PKI@/ca.pem"\n'
}
CLOUD_ENV_DPS_EXTRA=$(dps_table)
export CLOUD_ENV_DPS_EXTRA
cloud_env_pki "$dir/cloud" && cloud_env_config "$dir/cloud" && cloud_env_export &&
	cloud_env_start 60 2>"$dir/start.err"
ok $? "edgeid-cloud (dps $CLOUD_DPS_HOST, hub $CLOUD_HUB_HOST) starts with the default settings" || {
	sed 's/^/# /' "$dir/start.err"
	done_testing
	exit
}
# restart EXTRA-KEYS: the same store and keys, another [dps] table.
restart() {
	cloud_env_stop >/dev/null 2>&1
	CLOUD_ENV_DPS_EXTRA=$(dps_table "$1")
	cloud_env_config "$CLOUD_DIR" && cloud_env_start 60 2>"$dir/start.err"
}

mkdir -p "$dir/hook"
coproc WEBHOOK { exec python3 "$dir/webhook.py" "$dir/hook" "$CLOUD_HUB_HOST" "$HOOK_HOST"; }
# shellcheck disable=SC2153 # WEBHOOK_PID is set by coproc
webhook_pid=$WEBHOOK_PID
read -r -t 10 port <&"${WEBHOOK[0]}"
ok $? "the webhook listens on $HOOK_HOST:${port:-?}"

r=$dir/r
KEY=$(openssl rand -base64 32)
svc() { # svc METHOD PATH [CURL-ARGS...]: the enrollment service API; answer in $r.*
	local m=$1 p=$2
	shift 2
	dps_curl "$r" -X "$m" -H "Authorization: $(dps_service_sas)" -H 'Content-Type: application/json' \
		"$@" "$(dps_url "$p?api-version=2021-10-01")" >/dev/null
}
enroll() { # enroll ID [EXTRA-JSON]: a symmetric-key individual enrollment
	svc PUT "/enrollments/$1" -d "{\"attestation\":{\"type\":\"symmetricKey\",\"symmetricKey\":{\"primaryKey\":\"$KEY\"}}${2:-}}"
	[ "$(cat "$r.status")" = 200 ] || [ "$(cat "$r.status")" = 201 ]
}
custom=",\"allocationPolicy\":\"custom\",\"customAllocationDefinition\":{\"webhookUrl\":\"http://$HOOK_HOST:$port/allocate\",\"apiVersion\":\"2021-10-01\"}"
enroll dev1 && enroll dev-off ',"provisioningStatus":"disabled"' && enroll fail-dev "$custom" &&
	enroll slow-dev "$custom" && enroll gone-dev "$custom" && enroll gone-stop "$custom"
ok $? "enrollments: dev1, dev-off (disabled), fail-dev, slow-dev, gone-dev, gone-stop (custom)" ||
	sed 's/^/# /' "$r.body"

path_of() { # path_of ID: the register path of ID
	printf '/%s/registrations/%s/register?api-version=2021-06-01' "$DPS_ID_SCOPE" "$1"
}
token_of() { # token_of ID: the device's registration SAS
	dps_sas "$DPS_ID_SCOPE/registrations/$1" "$KEY" registration
}
put() { # put ID: PUT register; answer in $r.put.*
	dps_curl "$r.put" -X PUT -H "Authorization: $(token_of "$1")" -H 'Content-Type: application/json' \
		-d "{\"registrationId\":\"$1\"}" "$(dps_url "$(path_of "$1")")" >/dev/null
}
get() { # get ID OPERATION: the status GET; answer in $r.get.*
	dps_curl "$r.get" -H "Authorization: $(token_of "$1")" \
		"$(dps_url "/$DPS_ID_SCOPE/registrations/$1/operations/$2?api-version=2021-06-01")" >/dev/null
}
header() { # header FILE NAME: a header's value
	grep -i "^$2:" "$1" | tr -d '\r' | cut -d' ' -f2-
}
same_json() { # same_json A B: the two files hold equal JSON
	python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' "$1" "$2"
}
# final_matches_get NAME ID: the last PUT answer is final and its body is the
# status GET's (200); prints nothing.
final_matches_get() {
	local op
	op=$(json_get "$r.put.body" 'j["operationId"]')
	get "$2" "$op"
	is "$(cat "$r.get.status")" 200 "$1: the status GET afterwards is 200"
	same_json "$r.put.body" "$r.get.body"
	ok $? "$1: the PUT answer's body is exactly the status GET's" ||
		tap_diag "PUT: $(cat "$r.put.body")" "GET: $(cat "$r.get.body")"
}

# --- the default hold: 250 ms ------------------------------------------------------
put dev1
is "$(cat "$r.put.status") $(header "$r.put.headers" Retry-After)" "202 1" \
	"symmetric key: the PUT is answered 202, with Retry-After: 1"
is "$(header "$r.put.headers" Content-Type)" "application/json; charset=utf-8" "... as JSON"
is "$(json_get "$r.put.body" '" ".join([j["status"], j["registrationState"]["status"], j["registrationState"]["assignedHub"], j["registrationState"]["deviceId"], j["registrationState"]["substatus"]])')" \
	"assigned assigned $CLOUD_HUB_HOST dev1 initialAssignment" \
	"symmetric key: the PUT answer is final: assigned to the hub as dev1"
is "$(json_get "$r.put.body" 'sorted(j["registrationState"].keys())')" \
	'["assignedHub", "createdDateTimeUtc", "deviceId", "etag", "lastUpdatedDateTimeUtc", "registrationId", "status", "substatus", "symmetricKey"]' \
	"symmetric key: registrationState has the fields of a final result"
final_matches_get "symmetric key" dev1
is "$(cloud_env_cli device show dev1 --json 2>/dev/null | json_get /dev/stdin 'j["deviceId"]')" dev1 \
	"symmetric key: the hub has the device"

put dev-off
is "$(cat "$r.put.status") $(json_get "$r.put.body" '[j["status"], j["registrationState"]["registrationId"], j["registrationState"]["status"]]')" \
	'202 ["disabled", "dev-off", "disabled"]' "a disabled enrollment: 202 with the final status disabled"
final_matches_get "a disabled enrollment" dev-off

put fail-dev
is "$(cat "$r.put.status") $(json_get "$r.put.body" '[j["status"], j["registrationState"]["status"], j["registrationState"]["errorCode"]]')" \
	'202 ["failed", "failed", 400208]' "a failed assignment: 202 failed, errorCode 400208"
is "$(json_get "$r.put.body" 'j["registrationState"]["errorMessage"]')" \
	"The custom allocation webhook returned \"nowhere.example\", which is not one of the enrollment's linked IoT hubs." \
	"a failed assignment: its errorMessage"
final_matches_get "a failed assignment" fail-dev

put slow-dev
is "$(cat "$r.put.status") $(header "$r.put.headers" Retry-After)" "202 1" \
	"an assignment slower than the hold: 202 with Retry-After: 1"
op=$(json_get "$r.put.body" 'j["operationId"]')
is "$(json_get "$r.put.body" 'j')" \
	"{\"operationId\": \"$op\", \"status\": \"assigning\", \"registrationState\": {\"registrationId\": \"slow-dev\", \"status\": \"assigning\"}}" \
	"... and the body says assigning, exactly as before"
for _ in $(seq 1 100); do
	get slow-dev "$op"
	[ "$(cat "$r.get.status")" = 202 ] || break
	sleep 0.1
done
is "$(cat "$r.get.status") $(json_get "$r.get.body" 'j["status"]')" "200 assigned" \
	"... and the status poll ends assigned"

# --- TPM, with bench/dps-load's software TPMs ---------------------------------------
if [ -x "$load" ]; then
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/ek.pem" 2>/dev/null &&
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/srk.pem" 2>/dev/null &&
		cat "$dir/ek.pem" "$dir/srk.pem" >"$dir/tpm-pool.pem"
	ok $? "a software TPM (an EK and an SRK key)"
	"$load" --kind tpm --tpm-keys "$dir/tpm-pool.pem" --unwrap-final --ca "$CLOUD_CA" \
		--host "$CLOUD_DPS_HOST" --id-scope "$DPS_ID_SCOPE" --enroll-key "$CLOUD_DPS_OWNER_KEY" \
		--count 2 --connections 2 --inflight 2 --ack-log "$dir/tpm-acks" --json "$dir/tpm.json" \
		>"$dir/tpm.out" 2>&1
	ok $? "TPM: two devices enroll, get the 401 challenge, register and are assigned (dps-load)" ||
		sed 's/^/# /' "$dir/tpm.out"
	is "$(json_get "$dir/tpm.json" '[j["requests"]["PUT register (TPM challenge)"]["count"], j["requests"]["PUT register"]["count"], j["final_put_answers"], j["polls_per_device"]]')" \
		'[2, 2, 2, 0.0]' "TPM: one 401 challenge and one PUT each; the PUT answers are final, no poll"
	is "$(cut -d' ' -f1 "$dir/tpm-acks" | sort | uniq -c | tr -s ' ' | tr '\n' ',')" \
		" 2 accepted, 2 enrollment, 2 registration," \
		"TPM: each PUT was answered 202 (accepted), assigned with the hub key blob (registration)"
else
	ok 1 "dps-load is built at $load"
fi

# --- register_wait_ms = 0: as before the hold ------------------------------------------
restart "register_wait_ms = 0"
ok $? "edgeid-cloud restarts with register_wait_ms = 0" || sed 's/^/# /' "$dir/start.err"
put dev1
op=$(json_get "$r.put.body" 'j["operationId"]')
is "$(cat "$r.put.status") $(header "$r.put.headers" Retry-After)" "202 1" \
	"register_wait_ms = 0: 202 with Retry-After: 1"
is "$(json_get "$r.put.body" 'j')" \
	"{\"operationId\": \"$op\", \"status\": \"assigning\", \"registrationState\": {\"registrationId\": \"dev1\", \"status\": \"assigning\"}}" \
	"register_wait_ms = 0: the body says assigning"
put dev-off
is "$(cat "$r.put.status") $(json_get "$r.put.body" 'j["status"]')" "202 assigning" \
	"register_wait_ms = 0: a disabled enrollment's PUT is 202 assigning too"

# --- register_wait_ms = 5000: clients that leave -----------------------------------------
restart "register_wait_ms = 5000"
ok $? "edgeid-cloud restarts with register_wait_ms = 5000" || sed 's/^/# /' "$dir/start.err"
python3 "$dir/held.py" "$CLOUD_DPS_HOST" "$CLOUD_CA" "$(path_of gone-dev)" "$(token_of gone-dev)" \
	'{"registrationId":"gone-dev"}' "$dir/hook/gone-dev.1.json" close >"$dir/gone.out" 2>&1
is "$(cat "$dir/gone.out")" held "a client closes its connection while its answer is held"
put dev1
is "$(cat "$r.put.status") $(json_get "$r.put.body" 'j["status"]')" "202 assigned" \
	"... the server still serves (dev1 registers again, assigned)"
token=$(token_of gone-dev)
status=
for _ in $(seq 1 100); do
	status=$(dps_curl "$r.lookup" -X POST -H "Authorization: $token" -H 'Content-Type: application/json' \
		-d '{"registrationId":"gone-dev"}' \
		"$(dps_url "/$DPS_ID_SCOPE/registrations/gone-dev?api-version=2021-06-01")")
	[ "$status" = 200 ] && [ "$(json_get "$r.lookup.body" 'j["status"]')" != assigning ] && break
	sleep 0.1
done
is "$status $(json_get "$r.lookup.body" 'j["status"]')" "200 assigned" \
	"... and the assignment of the client that left still completed"

# wait_line FILE N: wait (at most 30 s) until FILE has N lines; print line N.
wait_line() {
	for _ in $(seq 1 300); do
		[ "$(wc -l <"$1")" -ge "$2" ] && break
		sleep 0.1
	done
	sed -n "$2p" "$1"
}
mkfifo "$dir/held.in"
python3 "$dir/held.py" "$CLOUD_DPS_HOST" "$CLOUD_CA" "$(path_of gone-stop)" "$(token_of gone-stop)" \
	'{"registrationId":"gone-stop"}' "$dir/hook/gone-stop.1.json" read <"$dir/held.in" \
	>"$dir/held.out" 2>&1 &
held_pid=$!
exec {held_in}>"$dir/held.in"
is "$(wait_line "$dir/held.out" 1)" held "a client whose answer is held while the server stops"
cloud_env_stop 30
is $? 0 "... the server stops cleanly (exit status 0)"
echo >&"$held_in"
is "$(wait_line "$dir/held.out" 2)" closed "... and the client sees its connection closed without an answer"
exec {held_in}>&-
wait "$held_pid" 2>/dev/null

# --- the setting's range -----------------------------------------------------------------
CLOUD_ENV_DPS_EXTRA=$(dps_table "register_wait_ms = 5001")
cloud_env_config "$CLOUD_DIR"
line=$(grep -n '^register_wait_ms' "$CLOUD_CONFIG" | cut -d: -f1)
is "$(cloud_env_cli enrollment list 2>&1; echo "exit $?")" \
	"edgeid-cloud: $CLOUD_CONFIG:$line:20: dps.register_wait_ms: expected an integer from 0 to 5000
exit 1" "register_wait_ms = 5001 is refused with the key and its range"

if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$CLOUD_DIR/cloud.log"; then
	ok 1 "no sanitizer report in the server log"
	grep -E -A12 'AddressSanitizer|LeakSanitizer|runtime error:' "$CLOUD_DIR/cloud.log" | head -60 |
		sed 's/^/# /'
else
	ok 0 "no sanitizer report in the server log"
fi
done_testing
