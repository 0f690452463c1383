#!/usr/bin/env bash
# An acknowledged enrollment or registration survives the death of the
# server. edgeid-cloud serve (DPS and hub, two workers each, one SQLite
# store) runs in a process group of its own; bench/dps-load drives
# concurrent devices against it, each creating its individual enrollment
# through the service API, registering (symmetric key) and polling until
# assigned, and appends to a log every acknowledgement the moment it
# arrives:
#   enrollment ID                  the PUT of the enrollment answered 200/201
#   accepted ID OPERATION-ID       PUT register answered 202
#   registration ID HUB DEVICE-ID  the operation answered 200 "assigned"
# At a random moment in the middle of the load the whole process group
# (the supervisor and every worker) gets SIGKILL. The store must pass
# PRAGMA integrity_check; the server is started again on it, and then
# through its APIs:
#   - every acknowledged enrollment exists;
#   - every assigned registration is "assigned" with its hub and device id,
#     and that hub has the device, with the enrollment's key;
#   - every accepted registration has its record, and polling its
#     operation with the device's SAS ends "assigned" (a record that was
#     "assigning" when the server died is finished by a later poll).
# Three kills, each after a random number of acknowledgements plus a
# random delay; the acknowledgements of every round are checked after
# every restart.
#
# SIGKILL tests what a process crash can do, not a power cut (the page
# cache survives); synchronous=FULL is what covers power loss.
# DPS_CRASH_SEED repeats a run's random choices; DPS_CRASH_ROUNDS (3).
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
. "$EDGEID_SOURCE_ROOT/tests/lib/cloud-env.sh"

load=${DPS_LOAD:-$EDGEID_BUILD_ROOT/bench/dps-load}
rounds=${DPS_CRASH_ROUNDS:-3}
seed=${DPS_CRASH_SEED:-$$}
for cmd in python3 openssl sqlite3 setsid jq; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "1..0 # SKIP $cmd not installed"
		exit 0
	fi
done
if [ ! -x "$load" ]; then
	ok 1 "dps-load is built at $load"
	tap_diag "it is built from bench/dps-load.c (ninja -C \$EDGEID_BUILD_ROOT bench/dps-load)"
	done_testing
	exit
fi

dir=$(mktemp -d)
load_pid=
CLOUD_PID=
cleanup() {
	[ -n "$load_pid" ] && kill -KILL "$load_pid" 2>/dev/null && wait "$load_pid" 2>/dev/null
	[ -n "$CLOUD_PID" ] && kill -KILL -- "-$CLOUD_PID" 2>/dev/null && wait "$CLOUD_PID" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

RANDOM=$seed
tap_diag "seed $seed (set DPS_CRASH_SEED to repeat the random choices)"

CLOUD_DPS_HOST=127.0.16.2
CLOUD_HUB_HOST=127.0.16.3
CLOUD_ENV_WORKERS=2
# shellcheck disable=SC2016,SC2089,SC2090 # TOML text with placeholders, quotes included
CLOUD_ENV_DPS_EXTRA='id_scope = "@ID_SCOPE@"
hub_ca_file = "@PKI@/ca.pem"
assignment_stale_seconds = 5

[[dps.shared_access_policy]]
name = "provisioningserviceowner"
primary_key = "@DPS_OWNER_KEY@"

[[dps.linked_hub]]
connection_string = "@HUB_CONNECTION_STRING@"'
# shellcheck disable=SC2090
export CLOUD_DPS_HOST CLOUD_HUB_HOST CLOUD_ENV_WORKERS CLOUD_ENV_DPS_EXTRA
cloud_env_pki "$dir/cloud" && cloud_env_config "$dir/cloud" && cloud_env_export
ok $? "a PKI and a config for the DPS ($CLOUD_DPS_HOST) and the hub ($CLOUD_HUB_HOST)" ||
	{ done_testing; exit; }
db=$CLOUD_DIR/cloud.db

# start_server: edgeid-cloud serve in a new session (its own process
# group, so that one kill reaches every worker and nothing else); waits
# for both services to be ready.
start_server() {
	local deadline=$((SECONDS + 60))
	: >"$CLOUD_DIR/cloud.out"
	setsid "$CLOUD_BIN" serve --config "$CLOUD_CONFIG" >>"$CLOUD_DIR/cloud.out" \
		2>>"$CLOUD_DIR/cloud.log" &
	CLOUD_PID=$!
	until grep -q '^edgeid-cloud: dps ready on ' "$CLOUD_DIR/cloud.out" &&
		grep -q '^edgeid-cloud: hub ready on ' "$CLOUD_DIR/cloud.out"; do
		if ! kill -0 "$CLOUD_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
			sed 's/^/# /' "$CLOUD_DIR/cloud.log" | tail -n 20
			return 1
		fi
		sleep 0.05
	done
}

# group_pids: the processes of the server's process group.
group_pids() {
	ps -e -o pid= -o pgid= | awk -v g="$CLOUD_PID" '$2 == g { print $1 }'
}

# pause FROM TO: sleep a random time, FROM to TO milliseconds.
pause() {
	local ms=$(($1 + RANDOM % ($2 - $1 + 1)))
	sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
}

# The checker: reads every acknowledgement log and asks the restarted
# server (service APIs of the DPS and the hub, one keep-alive connection
# each) about each.
cat >"$dir/check.py" <<'PY'
import base64, hashlib, hmac, http.client, json, ssl, sys, time, urllib.parse

ca, dps, hub, scope, dps_key, hub_key, seed = sys.argv[1:8]
logs = sys.argv[8:]
ctx = ssl.create_default_context(cafile=ca)

def sas(resource, key, skn):
    se = str(int(time.time()) + 3600)
    mac = hmac.new(base64.b64decode(key), (resource + "\n" + se).encode(), hashlib.sha256).digest()
    sig = urllib.parse.quote(base64.b64encode(mac).decode(), safe="")
    return "SharedAccessSignature sr=%s&sig=%s&se=%s&skn=%s" % (resource, sig, se, skn)

def device_key(rid):
    # bench_sym_key(): HMAC-SHA256(seed, "<registration id>/0"), base64.
    return base64.b64encode(hmac.new(seed.encode(), (rid + "/0").encode(), hashlib.sha256).digest()).decode()

class Api:
    def __init__(self, host, token):
        self.host, self.token, self.c = host, token, None
    def get(self, path, token=None):
        for attempt in range(3):
            try:
                if self.c is None:
                    self.c = http.client.HTTPSConnection(self.host, 443, context=ctx, timeout=30)
                self.c.request("GET", path, headers={"Authorization": token or self.token,
                                                     "Accept": "application/json"})
                r = self.c.getresponse()
                body = r.read()
                return r.status, (json.loads(body) if body else None)
            except (OSError, http.client.HTTPException):
                self.c = None
                time.sleep(0.2)
        return 0, None

dps_api = Api(dps, sas(dps, dps_key, "provisioningserviceowner"))
hub_api = Api(hub, sas(hub, hub_key, "iothubowner"))
enrolled, accepted, assigned = set(), {}, {}
for log in logs:
    for line in open(log):
        f = line.split()
        if f[0] == "enrollment" and len(f) == 2:
            enrolled.add(f[1])
        elif f[0] == "accepted" and len(f) == 3:
            accepted[f[1]] = f[2]
        elif f[0] == "registration" and len(f) == 4:
            assigned[f[1]] = (f[2], f[3])
        else:
            print("malformed line in %s: %r" % (log, line))
            sys.exit(1)

problems = []
def problem(msg):
    problems.append(msg)

def check_device(rid, hub_host, device_id):
    if hub_host != hub:
        return problem("%s: assigned to %s, not the linked hub" % (rid, hub_host))
    st, d = hub_api.get("/devices/%s?api-version=2021-04-12" % device_id)
    if st != 200:
        return problem("%s: the hub answers %s for device %s" % (rid, st, device_id))
    key = ((d.get("authentication") or {}).get("symmetricKey") or {}).get("primaryKey")
    if d.get("deviceId") != device_id or key != device_key(rid):
        problem("%s: the hub's device %s is not the enrollment's (deviceId %r)"
                % (rid, device_id, d.get("deviceId")))

for rid in sorted(enrolled):
    st, e = dps_api.get("/enrollments/%s?api-version=2021-10-01" % rid)
    if st != 200 or e.get("registrationId") != rid or \
       (e.get("attestation") or {}).get("type") != "symmetricKey":
        problem("enrollment %s: the service answers %s %s" % (rid, st, json.dumps(e)[:200]))

for rid, (hub_host, device_id) in sorted(assigned.items()):
    st, r = dps_api.get("/registrations/%s?api-version=2021-10-01" % rid)
    got = (st, r.get("status"), r.get("assignedHub"), r.get("deviceId")) if r else (st,)
    if got != (200, "assigned", hub_host, device_id):
        problem("registration %s: acknowledged assigned to %s/%s, now %r"
                % (rid, hub_host, device_id, got))
    check_device(rid, hub_host, device_id)

# Accepted and not seen assigned: the record exists; polling finishes it.
finished = 0
for rid, op in sorted(accepted.items()):
    if rid in assigned:
        continue
    if rid not in enrolled:
        problem("%s: registered without an acknowledged enrollment" % rid)
    st, r = dps_api.get("/registrations/%s?api-version=2021-10-01" % rid)
    if st != 200 or r.get("status") not in ("assigning", "assigned"):
        problem("registration %s: accepted (202), now %s %s" % (rid, st, json.dumps(r)[:200]))
        continue
    token = sas("%s/registrations/%s" % (scope, rid), device_key(rid), "registration")
    path = "/%s/registrations/%s/operations/%s?api-version=2021-06-01" % (scope, rid, op)
    deadline = time.time() + 30
    while True:
        st, r = dps_api.get(path, token)
        if st != 202 or time.time() > deadline:
            break
        time.sleep(0.25)
    state = (r or {}).get("registrationState") or {}
    if st != 200 or state.get("status") != "assigned":
        problem("registration %s: polling the accepted operation ends %s %s"
                % (rid, st, json.dumps(r)[:200]))
        continue
    finished += 1
    check_device(rid, state.get("assignedHub"), state.get("deviceId"))

print("%d enrollments, %d assigned, %d more accepted and finished by polling"
      % (len(enrolled), len(assigned), finished))
for p in problems[:20]:
    print(p)
sys.exit(1 if problems else 0)
PY

start_server
ok $? "edgeid-cloud serve starts in a process group of its own" || { done_testing; exit; }
is "$(ps -o pgid= -p "$CLOUD_PID" | tr -d ' ')" "$CLOUD_PID" "... which it leads"

logs=()
for round in $(seq 1 "$rounds"); do
	acks=$dir/acks-$round
	: >"$acks"
	logs+=("$acks")
	# Devices of this round: enrollments round * 100000 + i, created now.
	"$load" --kind sym --ca "$CLOUD_CA" --host "$CLOUD_DPS_HOST" \
		--id-scope "$CLOUD_DPS_ID_SCOPE" --first $((round * 100000)) --count 50000 \
		--connections 8 --inflight 48 --poll-ms 50 --max-seconds 300 \
		--enroll-key "$CLOUD_DPS_OWNER_KEY" --ack-log "$acks" \
		>"$dir/load-$round.out" 2>&1 &
	load_pid=$!
	# Kill after a random number of acknowledgements (of any kind; 60 s
	# at most), then a random delay.
	threshold=$((1 + RANDOM % 400))
	deadline=$((SECONDS + 60))
	while [ "$(wc -l <"$acks")" -lt "$threshold" ] && [ "$SECONDS" -lt "$deadline" ] &&
		kill -0 "$load_pid" 2>/dev/null; do
		sleep 0.02
	done
	pause 0 1500
	before=$(wc -l <"$acks")
	pids=$(group_pids | wc -l)
	kill -0 "$load_pid" 2>/dev/null
	load_running=$?
	kill -KILL -- "-$CLOUD_PID"
	wait "$CLOUD_PID" 2>/dev/null
	is "$load_running" 0 "round $round: the load was still running when the server was killed"
	ok $((pids < 5)) "round $round: SIGKILL to the whole group ($pids processes: supervisor, 2 DPS and 2 hub workers) after $before acknowledgements"
	# Whatever answers were already on their way are taken in; then the
	# client stops.
	sleep 0.5
	kill -TERM "$load_pid" 2>/dev/null
	wait "$load_pid" 2>/dev/null
	load_pid=
	left=
	for _ in $(seq 1 100); do
		left=$(group_pids)
		[ -z "$left" ] && break
		sleep 0.05
	done
	is "$left" "" "round $round: no process of the group is left"
	tap_diag "round $round: $(grep -c '^enrollment ' "$acks") enrollments, $(grep -c '^accepted ' "$acks") accepted, $(grep -c '^registration ' "$acks") assigned acknowledged"

	is "$(sqlite3 "$db" 'PRAGMA integrity_check' 2>&1)" ok "round $round: the killed store passes PRAGMA integrity_check"

	CLOUD_PID=
	start_server
	ok $? "round $round: edgeid-cloud starts again on the same store" || break
	out=$(python3 "$dir/check.py" "$CLOUD_CA" "$CLOUD_DPS_HOST" "$CLOUD_HUB_HOST" \
		"$CLOUD_DPS_ID_SCOPE" "$CLOUD_DPS_OWNER_KEY" "$CLOUD_HUB_OWNER_KEY" edgeid-bench \
		"${logs[@]}" 2>&1)
	status=$?
	ok "$status" "round $round: every acknowledgement so far holds (${out%%$'\n'*})"
	[ "$status" -eq 0 ] || printf '%s\n' "$out" | head -n 25 | sed 's/^/# /'
	# The admin command reads the store itself: the last assignment the
	# round acknowledged.
	last=$(grep '^registration ' "$acks" | tail -n 1)
	if [ -n "$last" ]; then
		read -r _ id hub_host device_id <<<"$last"
		is "$(cloud_env_cli registration show "$id" --json | jq -r '[.status, .assignedHub, .deviceId] | join(" ")')" \
			"assigned $hub_host $device_id" "round $round: registration show --json agrees for the last one ($id)"
	fi
done

total=$(cat "${logs[@]}" | grep -c '^registration ')
ok $((total < 50)) "$total registrations acknowledged assigned over $rounds rounds (a test that acknowledged nothing proves nothing)"

kill -TERM "$CLOUD_PID"
wait "$CLOUD_PID"
is "$?" 0 "edgeid-cloud stops cleanly at the end"
CLOUD_PID=
is "$(sqlite3 "$db" 'PRAGMA integrity_check' 2>&1)" ok "the store passes PRAGMA integrity_check at the end"
if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$CLOUD_DIR/cloud.log"; then
	ok 1 "no sanitizer report in the server log"
	grep -E -A12 'AddressSanitizer|LeakSanitizer|runtime error:' "$CLOUD_DIR/cloud.log" | head -60 | sed 's/^/# /'
else
	ok 0 "no sanitizer report in the server log"
fi
done_testing
