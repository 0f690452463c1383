#!/usr/bin/env bash
# edgeid-cloud serve as a process supervisor: readiness line, pid file,
# worker restart after SIGKILL, serving through a flood of slow
# connections, clean exit on SIGTERM, and the one-sentence errors that stop
# it before it serves. Also the admin command line's output.
set -uo pipefail
src=${EDGEID_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$src/tests/lib/tap.sh"
. "$src/tests/lib/cloud-env.sh"
# An address of its own, so that tests running at the same time do not collide.
CLOUD_HUB_HOST=127.0.1.3

if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP needs root to listen on port 443"
	exit 0
fi

dir=$(mktemp -d)
cleanup() {
	cloud_env_stop >/dev/null 2>&1
	rm -rf "$dir"
}
trap cleanup EXIT

# children PID: the pids whose parent is PID.
children() {
	local f stat
	for f in /proc/[0-9]*/stat; do
		stat=$(cat "$f" 2>/dev/null) || continue
		stat=${stat##*) }
		# shellcheck disable=SC2086 # split into fields on purpose
		set -- $stat
		[ "$2" = "$1" ] && continue
		[ "$2" = "$_parent" ] && basename "$(dirname "$f")"
	done
}
workers() {
	_parent=$CLOUD_PID
	children | sort -n
}
# status_of: the HTTP status of an unauthenticated GET /devices.
status_of() {
	curl -sS --cacert "$CLOUD_CA" --max-time 10 -o /dev/null -w '%{http_code}' \
		"https://$CLOUD_HUB_HOST/devices" 2>/dev/null
}
wait_for() { # wait_for SECONDS COMMAND...: true once COMMAND succeeds
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -ge "$deadline" ] && return 1
		sleep 0.1
	done
}

export CLOUD_ENV_SERVICES=hub CLOUD_ENV_WORKERS=2
if ! cloud_env_setup "$dir" >"$dir/setup.err" 2>&1; then
	echo "Bail out! edgeid-cloud did not start"
	sed 's/^/# /' "$dir/setup.err"
	exit 1
fi

is "$(cat "$CLOUD_DIR/cloud.out")" "edgeid-cloud: hub ready on $CLOUD_HUB_HOST:443 (2 workers)" \
	"readiness line once every listener is bound"
is "$(cat "$CLOUD_DIR/cloud.pid")" "$CLOUD_PID" "pid file holds the supervisor's pid"
mapfile -t before < <(workers)
is "${#before[@]}" 2 "two worker processes"
is "$(status_of)" 401 "the hub answers"

# --- a worker killed with SIGKILL is restarted ------------------------------
victim=${before[0]}
kill -KILL "$victim"
has_new_worker() {
	local w
	mapfile -t now < <(workers)
	[ "${#now[@]}" -eq 2 ] || return 1
	for w in "${now[@]}"; do [ "$w" = "$victim" ] && return 1; done
	return 0
}
wait_for 10 has_new_worker
ok $? "the killed worker is replaced by a new process"
like "$(cat "$CLOUD_DIR/cloud.log")" \
	'warning: worker hub/[01] was killed by signal 9 \(Killed\); restarting it in 0\.1 s' \
	"the supervisor logs why the worker died"
wait_for 10 grep -q 'worker hub/[01] restarted (pid' "$CLOUD_DIR/cloud.log"
ok $? "the supervisor logs the restart"
answers=""
for _ in 1 2 3 4 5 6 7 8; do answers+="$(status_of) "; done
is "$answers" "401 401 401 401 401 401 401 401 " "every request is answered after the restart"

# --- a flood of slow connections does not stop a normal request ------------
# 200 TCP connections that never start TLS and 20 TLS connections that send
# half a request, all held open while a normal request is made.
flood=$(python3 - "$CLOUD_HUB_HOST" "$CLOUD_CA" <<'PY'
import socket, ssl, subprocess, sys, time
host, ca = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
held = []
for _ in range(200):
    held.append(socket.create_connection((host, 443)))
for _ in range(20):
    s = ctx.wrap_socket(socket.create_connection((host, 443)), server_hostname=host)
    s.sendall(b"GET /devices HTTP/1.1\r\nHost: " + host.encode() + b"\r\nX-Slow: ")
    held.append(s)
time.sleep(1)
r = subprocess.run(["curl", "-sS", "--cacert", ca, "--max-time", "10", "-o", "/dev/null",
                    "-w", "%{http_code}", "https://%s/devices" % host],
                   capture_output=True, text=True)
print(len(held), r.stdout)
for s in held:
    s.close()
PY
)
is "$flood" "220 401" "a normal request is served while 220 slow connections hang"

# --- admin output ------------------------------------------------------------
cloud_env_cli device create dev-a --json >/dev/null
cloud_env_cli device create edge-b --edge --json >/dev/null
table=$(cloud_env_cli device list | sed -E 's/[0-9]{18}/GEN/')
is "$table" "DEVICE ID  STATUS   AUTHENTICATION  IOT EDGE  GENERATION ID
dev-a      enabled  sas             false     GEN
edge-b     enabled  sas             true      GEN" "device list prints an aligned table"
is "$(cloud_env_cli device list --json | jq -r 'map(.deviceId) | join(",")')" "dev-a,edge-b" \
	"device list --json prints the array"
# Keys align on the longest, authentication.x509Thumbprint.secondaryThumbprint.
is "$(cloud_env_cli device show dev-a | grep -E '^(deviceId|authentication.type|capabilities.iotEdge):')" \
	"deviceId:                                          dev-a
authentication.type:                               sas
capabilities.iotEdge:                              false" "device show prints aligned key: value lines"
is "$(cloud_env_cli device twin edge-b --json | jq -r '.properties.desired."$version"')" 1 \
	"device twin --json"
cloud_env_cli device show nobody >/dev/null 2>"$dir/err"
is "$?/$(cat "$dir/err")" '1/edgeid-cloud device: device "nobody" does not exist (DeviceNotFound)' \
	"device show of an unknown device: one sentence, exit 1"
cloud_env_cli telemetry list dev-a --limit 0 >/dev/null 2>"$dir/err"
is "$?/$(head -n1 "$dir/err")" "2/edgeid-cloud telemetry: --limit: expected a number from 1 to 1000, got '0'" \
	"a bad --limit is a usage error"

# --- errors before serving: one sentence, exit 1 ----------------------------
"$CLOUD_BIN" serve --config "$CLOUD_CONFIG" >"$dir/out" 2>"$dir/err"
is "$?/$(cat "$dir/err")" "1/edgeid-cloud: hub: cannot listen on $CLOUD_HUB_HOST:443: the address is already in use" \
	"a second instance on the same address fails"
is "$(cat "$dir/out")" "" "and prints no readiness line"

sed 's/^workers = 2$/workers = 0/' "$CLOUD_CONFIG" >"$dir/bad-workers.toml"
line=$(grep -n '^workers = 0$' "$dir/bad-workers.toml" | cut -d: -f1)
"$CLOUD_BIN" serve --config "$dir/bad-workers.toml" 2>"$dir/err"
is "$?/$(cat "$dir/err")" "1/edgeid-cloud: $dir/bad-workers.toml:$line:11: hub.workers: expected an integer from 1 to 256, got 0" \
	"a bad value: FILE:LINE:COL: KEY: expected ..."

sed 's|/hub.pem"|/missing.pem"|' "$CLOUD_CONFIG" >"$dir/bad-cert.toml"
"$CLOUD_BIN" serve --config "$dir/bad-cert.toml" 2>"$dir/err"
is "$?/$(cat "$dir/err")" "1/edgeid-cloud: hub: TLS certificate $CLOUD_PKI/missing.pem: cannot read: No such file or directory" \
	"an unreadable certificate"

printf '[store]\nurl = "sqlite://%s/other.db"\n' "$dir" >"$dir/empty.toml"
"$CLOUD_BIN" serve --config "$dir/empty.toml" 2>"$dir/err"
is "$?/$(cat "$dir/err")" "1/edgeid-cloud: $dir/empty.toml: no service to serve: add a [hub] or [dps] table" \
	"a config without services"

printf '[hub]\nlisten = ["127.0.0.1:443"]\nworkerz = 2\n' >"$dir/typo.toml"
"$CLOUD_BIN" serve --config "$dir/typo.toml" 2>"$dir/err"
is "$?/$(cat "$dir/err")" "1/edgeid-cloud: $dir/typo.toml:3:1: hub.workerz: unknown key" \
	"an unknown key"

"$CLOUD_BIN" --help >"$dir/help"
is "$?" 0 "--help exits 0"
[ "$(wc -l <"$dir/help")" -le 24 ]
ok $? "--help fits a screen (24 lines)"
is "$("$CLOUD_BIN" version)" "edgeid-cloud $(sed -n "s/^  version : '\(.*\)',$/\1/p" "$src/meson.build")" "version"

# --- SIGTERM: every worker stops, exit 0 --------------------------------------
mapfile -t last < <(workers)
cloud_env_stop
is "$?" 0 "SIGTERM: edgeid-cloud exits 0"
alive=0
for w in "${last[@]}"; do [ -e "/proc/$w" ] && alive=1; done
is "$alive" 0 "no worker is left running"
[ ! -e "$CLOUD_DIR/cloud.pid" ]
ok $? "the pid file is removed"
! grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$CLOUD_DIR/cloud.log"
ok $? "no sanitizer report in the server log"

done_testing
