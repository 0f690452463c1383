#!/usr/bin/env bash
# edgeidd supervise with the real daemons under --root in a temporary
# directory: it starts keyd and certd (and tpmd, identityd when they are built) in
# order, each as its own user when that user exists, on sockets it holds
# with the modes of the systemd socket units; `edgeid system status` shows
# them Running; a daemon killed with SIGKILL is restarted, a request made
# meanwhile waits for the new one, and status shows the restart and the
# reason; `system logs` shows what the daemons wrote, rotated at
# --log-size; `system stop` and `restart` reach it over its control socket
# (refused to other users); SIGHUP restarts everything in order; a daemon
# with a bad configuration is down with its own error sentence and is
# retried with growing delays, not in a loop; SIGTERM and `system stop`
# make it exit 0; when it is killed, the daemons go with it.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
edgeidd=$EDGEID_BUILD_ROOT/edgeidd
edgeid=$EDGEID_BUILD_ROOT/edgeid

for tool in curl jq setpriv; do
	command -v "$tool" >/dev/null || {
		echo "1..0 # SKIP $tool is not installed"
		exit 0
	}
done

tmp=$(mktemp -d)
chmod 755 "$tmp"
root=$tmp/root
run=$root/run/edgeid
fg_pid=
skip() {
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N # SKIP $*"
}
cleanup() {
	[ -n "$fg_pid" ] && kill -9 "$fg_pid" 2>/dev/null
	if [ -f "$run/supervise.pid" ]; then
		kill -9 "$(cat "$run/supervise.pid")" 2>/dev/null
	fi
	# The daemons follow their supervisor (PR_SET_PDEATHSIG); this is for
	# a supervisor that did not get to that.
	for f in "$run"/status/*.json; do
		[ -f "$f" ] || continue
		pid=$(jq -r .pid "$f" 2>/dev/null)
		[ "${pid:-0}" -gt 0 ] 2>/dev/null &&
			grep -q "^edgeidd-" "/proc/$pid/cmdline" 2>/dev/null && kill -9 "$pid"
	done
	[ "$(type -t swtpm_stop)" = function ] && swtpm_stop
	rm -rf "$tmp"
}
trap cleanup EXIT

# wait_for DESCRIPTION COMMAND...: poll (up to 30 s) until it succeeds.
wait_for() {
	local what=$1
	shift
	for _ in $(seq 1 300); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	tap_diag "timed out waiting for: $what"
	return 1
}
field() { jq -r ".$2" "$run/status/$1.json" 2>/dev/null; }
state_is() { [ "$(field "$1" state)" = "$2" ]; }
user_exists() { getent passwd "$1" >/dev/null; }
is_root() { [ "$(id -u)" -eq 0 ]; }
status_cmd() { "$edgeid" system status --root "$root" "$@"; }

# ---- which daemons are built ------------------------------------------------
daemons=(keyd certd)
mkdir -p "$root/etc/aziot/keyd/config.d" "$root/var/lib/aziot/keyd"
printf '[aziot_keys]\nhomedir_path = "/var/lib/aziot/keyd"\n' >"$root/etc/aziot/keyd/config.toml"
mkdir -p "$root/etc/aziot/certd" "$root/var/lib/aziot/certd"
printf 'homedir_path = "/var/lib/aziot/certd"\n' >"$root/etc/aziot/certd/config.toml"

tpmd_help=$("$edgeidd" tpmd --help 2>&1)
if grep -q 'not built yet' <<<"$tpmd_help"; then
	tpmd_skip="edgeidd tpmd is not built yet"
elif ! command -v swtpm >/dev/null; then
	tpmd_skip="swtpm is not installed (tpmd is run against a TPM)"
else
	. "$EDGEID_SOURCE_ROOT/tests/lib/swtpm.sh"
	if swtpm_start "$tmp/tpm" 2>"$tmp/swtpm.err"; then
		tpmd_skip=
		daemons+=(tpmd)
		mkdir -p "$root/etc/aziot/tpmd" "$root/var/lib/aziot/tpmd"
		printf 'tcti = "%s"\n' "$EDGEID_TEST_TCTI" >"$root/etc/aziot/tpmd/config.toml"
	else
		tpmd_skip="swtpm does not start: $(head -1 "$tmp/swtpm.err")"
	fi
fi
identityd_help=$("$edgeidd" identityd --help 2>&1)
if grep -q 'not built yet' <<<"$identityd_help"; then
	identityd_skip="edgeidd identityd is not built yet"
else
	identityd_skip=
	daemons+=(identityd)
	mkdir -p "$root/etc/aziot/identityd" "$root/var/lib/aziot/identityd"
	printf 'hostname = "edge-1"\nhomedir = "/var/lib/aziot/identityd"\n\n[provisioning]\nsource = "none"\n' \
		>"$root/etc/aziot/identityd/config.toml"
fi
declare -A users=([keyd]=aziotks [certd]=aziotcs [tpmd]=aziottpm [identityd]=aziotid)
for d in "${daemons[@]}"; do
	if is_root && user_exists "${users[$d]}"; then
		chown "${users[$d]}" "$root/var/lib/aziot/$d"
	fi
done
only=$(
	IFS=,
	echo "${daemons[*]}"
)
[ -n "$tpmd_skip" ] && skip "tpmd: $tpmd_skip"
[ -n "$identityd_skip" ] && skip "identityd: $identityd_skip"

# The lines `system status` prints for a set of states, in its order.
expected_status() { # expected_status DAEMON=TEXT...
	declare -A text=()
	for kv in "$@"; do text[${kv%%=*}]=${kv#*=}; done
	echo "System services:"
	for d in identityd keyd certd tpmd; do
		[ -n "${text[$d]:-}" ] && printf '    %-24s%s\n' "edgeid-$d" "${text[$d]}"
	done
	echo
	echo "Use 'edgeid system logs' to check for non-fatal errors."
}
all_running() {
	local args=()
	for d in "${daemons[@]}"; do args+=("$d=Running"); done
	expected_status "${args[@]}"
}

# ---- the command line ----------------------------------------------------------
out=$("$edgeidd" supervise --only keyd,nosuch 2>&1)
is "$?:$out" '2:edgeidd supervise: --only: unknown daemon "nosuch" (expected keyd, certd, tpmd, identityd)
Try '"'edgeidd supervise --help'." "--only with an unknown daemon is a usage error"
out=$("$edgeidd" supervise --only keyd,keyd 2>&1)
is "$?:$(head -1 <<<"$out")" '2:edgeidd supervise: --only: "keyd" is named twice' \
	"--only naming a daemon twice is a usage error"
out=$("$edgeidd" supervise --log-size 100 2>&1)
is "$?:$(head -1 <<<"$out")" '2:edgeidd supervise: --log-size: at least 4096 bytes, got "100"' \
	"--log-size below the minimum is a usage error"
out=$("$edgeidd" supervise extra 2>&1)
is "$?:$(head -1 <<<"$out")" "2:edgeidd supervise: unexpected argument 'extra'" \
	"a stray argument is a usage error"
out=$("$edgeidd" supervise --help)
like "$?:$out" '^0:Usage: edgeidd supervise \[OPTIONS\]' "--help prints the usage"

# ---- start, detached --------------------------------------------------------------
# SUPERVISE_PLANTED and LISTEN_FDNAMES must not reach the daemons.
out=$(SUPERVISE_PLANTED=planted-token LISTEN_FDNAMES=bogus AZIOT_LOG=info \
	"$edgeidd" supervise --root "$root" --only "$only" --log-size 8K 2>&1)
is "$?:$out" "0:" "edgeidd supervise detaches once every daemon answers, and exits 0"
sup=$(cat "$run/supervise.pid" 2>/dev/null)
ok $? "it wrote its pid file"
kill -0 "$sup" 2>/dev/null
ok $? "the supervisor runs in the background (pid $sup)"
for d in "${daemons[@]}"; do
	is "$(field "$d" state)" running "$d is running once the supervisor has detached"
done

out=$("$edgeidd" supervise --root "$root" --only keyd 2>&1)
rc=$?
like "$rc:$out" "^1:.*error: already running for $run \\(pid $sup\\)\$" \
	"a second supervisor for the same run directory refuses to start"

# ---- processes, users and sockets --------------------------------------------------
for d in "${daemons[@]}"; do
	pid=$(field "$d" pid)
	is "$(ps -o ppid= -p "$pid" | tr -d ' ')" "$sup" "$d (pid $pid) is a child of the supervisor"
	is "$(tr '\0' ' ' <"/proc/$pid/cmdline")" "edgeidd-$d --root $root " \
		"$d runs as edgeidd-$d with the supervisor's --root"
	if env=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null); then
		is "$(grep -E '^(SUPERVISE_PLANTED|LISTEN_|AZIOT_LOG)' <<<"$env" | sort | tr '\n' ' ')" \
			"AZIOT_LOG=info LISTEN_FDS=1 LISTEN_PID=$pid " \
			"$d's environment: AZIOT_LOG and its socket, not the supervisor's other variables"
	else
		skip "$d's environment: /proc/$pid/environ is not readable by $(id -un)"
	fi
	sock=$root/run/aziot/$d.sock
	if is_root && user_exists "${users[$d]}"; then
		is "$(ps -o user= -p "$pid" | tr -d ' ')" "${users[$d]}" "$d runs as ${users[$d]}"
		is "$(stat -c '%A %U %G' "$sock")" "srw-rw---- ${users[$d]} ${users[$d]}" \
			"$sock is 0660 and belongs to ${users[$d]}, as the socket unit makes it"
	else
		skip "$d's own user: not root, or ${users[$d]} does not exist"
		is "$(stat -c '%A' "$sock")" "srw-rw----" "$sock is 0660"
	fi
done
if is_root && user_exists aziotid && [ -z "$identityd_skip" ]; then
	pid=$(field identityd pid)
	groups=$(awk '/^Groups:/ { $1 = ""; print }' "/proc/$pid/status")
	missing=
	for g in aziotks aziottpm; do
		gid=$(getent group "$g" | cut -d: -f3)
		[ -n "$gid" ] && ! grep -qw "$gid" <<<"$groups" && missing="$missing $g"
	done
	is "$missing" "" "identityd has the groups of the sockets it calls (groups:$groups)"
else
	skip "identityd's groups: not root, aziotid does not exist or identityd is not built"
fi
is "$(stat -c '%A' "$run/supervise.sock")" "srw-------" "the control socket is 0600"
is "$(stat -c '%A' "$run/logs")" "drwxr-x---" "the log directory is 0750"

body=$(curl -s --max-time 10 --unix-socket "$root/run/aziot/keyd.sock" "http://keyd.sock/key/x")
is "$body" '{"message":"api-version not specified"}' "keyd answers on the socket the supervisor holds"

# ---- status ----------------------------------------------------------------------
out=$(status_cmd)
is "$?:$out" "0:$(all_running)" "system status: every daemon Running, exit 0"
json=$(status_cmd -o json)
is "$(jq -r '.manager' <<<"$json")" supervise "status -o json names the supervisor as the manager"
is "$(jq -r '[.services[] | .daemon + "=" + .status] | join(" ")' <<<"$json")" \
	"$(for d in identityd keyd certd tpmd; do [[ " ${daemons[*]} " == *" $d "* ]] && printf '%s=running ' "$d"; done | sed 's/ $//')" \
	"status -o json: each daemon with status running, in status order"
is "$(jq -r '.services[] | select(.daemon == "keyd") | "\(.name) \(.answering) \(.restarts)"' <<<"$json")" \
	"edgeid-keyd true 0" "status -o json: keyd's unit name, that it answers, no restarts"
if is_root; then
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$edgeid" system status --root "$root")
	is "$?:$out" "0:$(all_running)" \
		"status works for a user who may not connect to the sockets (nobody)"
else
	skip "status as another user: not root"
fi

# ---- SIGKILL: restarted, with the reason -------------------------------------------
old=$(field keyd pid)
ino=$(stat -c %i "$root/run/aziot/keyd.sock")
kill -9 "$old"
# Sent while keyd is dead: it waits in the socket's queue for the next keyd.
body=$(curl -s --max-time 20 --unix-socket "$root/run/aziot/keyd.sock" \
	"http://keyd.sock/key/during-restart")
is "$body" '{"message":"api-version not specified"}' \
	"a request made while keyd was dead is answered by the restarted keyd"
wait_for "keyd restarted" state_is keyd running
new=$(field keyd pid)
ok $([ "$new" != "$old" ] && [ -n "$new" ] && kill -0 "$new" 2>/dev/null && echo 0 || echo 1) \
	"keyd runs again with a new pid ($old -> $new)"
is "$(field keyd restarts):$(field keyd last_exit)" "1:killed by signal 9" \
	"its status file counts the restart and says why it ended"
is "$(stat -c %i "$root/run/aziot/keyd.sock")" "$ino" \
	"the socket stayed the same across the restart"
keyd_line="Running (1 restart; last exit: killed by signal 9)"
args=()
for d in "${daemons[@]}"; do
	[ "$d" = keyd ] && args+=("keyd=$keyd_line") || args+=("$d=Running")
done
out=$(status_cmd)
is "$?:$out" "0:$(expected_status "${args[@]}")" \
	"system status shows the restart count and the last exit reason"

# ---- logs ------------------------------------------------------------------------
curl -s --max-time 10 --unix-socket "$root/run/aziot/keyd.sock" "http://keyd.sock/marker-one" >/dev/null
out=$("$edgeid" system logs --root "$root" keyd)
rc=$?
like "$rc:$out" "^0:" "system logs keyd exits 0"
like "$out" "edgeidd-keyd\\[$old\\] info: ready " "the logs hold the killed keyd's lines"
like "$out" "edgeidd-keyd\\[$new\\] info: <-- GET /marker-one " "and the lines of the keyd that replaced it"
like "$out" "edgeidd-supervise\\[$sup\\] warning: keyd killed by signal 9; restarting it in 1 s" \
	"and the supervisor's note about the restart"
bad=$(grep -cvE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z ' <<<"$out")
is "$bad" 0 "every log line starts with its time"
if [ -z "$identityd_skip" ]; then
	out=$("$edgeid" system logs --root "$root" edgeid-identityd)
	ok $(grep -q 'edgeidd-keyd' <<<"$out" && echo 1 || echo 0) \
		"system logs edgeid-identityd shows only identityd's lines"
fi
out=$("$edgeid" system logs --root "$root" -n 2 keyd)
is "$(wc -l <<<"$out")" 2 "system logs -n 2 prints two lines"
out=$("$edgeid" system logs --root "$root" --since "2099-01-01 00:00:00" keyd)
is "$out" "-- No entries --" "system logs --since a time to come prints no entries"
out=$("$edgeid" system logs --root "$root" --since "-1h" keyd)
like "$out" "GET /marker-one" "system logs --since -1h includes what was just written"

"$edgeid" system logs --root "$root" -f keyd >"$tmp/follow.out" 2>&1 &
follower=$!
wait_for "the follower has printed the last lines" grep -q 'marker-one' "$tmp/follow.out"
curl -s --max-time 10 --unix-socket "$root/run/aziot/keyd.sock" "http://keyd.sock/marker-two" >/dev/null
wait_for "the follower prints the new line" grep -q 'GET /marker-two' "$tmp/follow.out"
ok $? "system logs -f prints what keyd writes afterwards"
kill "$follower" 2>/dev/null
wait "$follower" 2>/dev/null

# Rotation at --log-size 8K: enough requests to pass it.
for i in $(seq 1 40); do
	curl -s --max-time 10 --unix-socket "$root/run/aziot/keyd.sock" "http://keyd.sock/fill-$i" >/dev/null
done
wait_for "keyd.log rotated" test -f "$run/logs/keyd.log.1"
ok $? "keyd.log was rotated to keyd.log.1 at --log-size"
size=$(stat -c %s "$run/logs/keyd.log")
ok $([ "$size" -le 8192 ] && echo 0 || echo 1) "keyd.log stays within 8K ($size bytes)"
out=$("$edgeid" system logs --root "$root" -n all keyd)
like "$out" "GET /fill-40 " "system logs reads the current file"
like "$out" "GET /fill-1 " "and the rotated one"

# ---- the control socket -----------------------------------------------------------
if is_root; then
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$edgeid" system stop --root "$root" keyd 2>&1)
	is "$?:$out" "1:Stopping edgeid-keyd...Failed!
edgeid system stop: keyd: $run/supervise.sock: permission denied (run it as root)" \
		"another user cannot stop a daemon"
	state_is keyd running
	ok $? "keyd still runs"
else
	skip "control socket permissions: not root"
fi
out=$("$edgeid" system stop --root "$root" keyd)
is "$?:$out" "0:Stopping edgeid-keyd...Stopped!" "system stop keyd"
ok $([ ! -e "$root/run/aziot/keyd.sock" ] && echo 0 || echo 1) "keyd's socket is gone"
out=$(status_cmd | grep '^    edgeid-keyd')
is "$out" "    edgeid-keyd             Down - stopped" "status: keyd is Down - stopped"
status_cmd >/dev/null
is "$?" 1 "status exits 1 while a daemon is down"
out=$("$edgeid" system restart --root "$root" keyd)
is "$?:$out" "0:Stopping edgeid-keyd...Stopped!
Starting edgeid-keyd...Started!" "system restart keyd"
is "$(field keyd state):$(field keyd restarts)" "running:1" \
	"keyd runs again; a requested restart is not counted as one after a failure"

# ---- SIGHUP: everything, in order ---------------------------------------------------
declare -A before=()
for d in "${daemons[@]}"; do before[$d]=$(field "$d" pid); done
mark=$(wc -l <"$run/logs/supervise.log")
kill -HUP "$sup"
for d in "${daemons[@]}"; do
	wait_for "$d restarted after SIGHUP" \
		bash -c "[ \"\$(jq -r .pid '$run/status/$d.json')\" != '${before[$d]}' ] && [ \"\$(jq -r .state '$run/status/$d.json')\" = running ]"
	ok $? "SIGHUP restarted $d"
done
order=$(tail -n +"$((mark + 1))" "$run/logs/supervise.log" |
	sed -nE 's/.* info: (stopping|started) ([a-z]+) \(pid.*/\1 \2/p' | tr '\n' ',')
expect=
for ((i = ${#daemons[@]} - 1; i >= 0; i--)); do expect="${expect}stopping ${daemons[i]},"; done
for d in "${daemons[@]}"; do expect="${expect}started $d,"; done
is "$order" "$expect" "SIGHUP stops in reverse order, then starts in dependency order"

# ---- a daemon that cannot start --------------------------------------------------
printf 'max_requests = "ten"\n' >"$root/etc/aziot/keyd/config.d/50-bad.toml"
sentence="$root/etc/aziot/keyd/config.d/50-bad.toml:1:16: max_requests: expected an integer, got a string"
out=$("$edgeid" system restart --root "$root" keyd 2>"$tmp/err")
is "$?:$out:$(cat "$tmp/err")" "1:Stopping edgeid-keyd...Stopped!
Starting edgeid-keyd...Failed!:edgeid system restart: keyd: exited with status 1: $sentence" \
	"system restart of a keyd with a bad configuration fails with keyd's own sentence"
t0=$(date +%s)
out=$(status_cmd)
rc=$?
line=$(grep '^    edgeid-keyd' <<<"$out")
like "$rc:$line" "^1:    edgeid-keyd             Down - exited with status 1: $(sed 's/[.[\*^$()+?{|]/\\&/g' <<<"$sentence") \\(restarting (in [0-9]+ s|soon)[;)]" \
	"status: keyd is Down with keyd's own error sentence"
like "$out" "edgeid-keyd is in a bad state because:" "status explains the bad state with keyd's last lines"
r0=$(field keyd restarts)
sleep 5
r1=$(field keyd restarts)
n=$((r1 - r0))
ok $([ "$n" -ge 1 ] && [ "$n" -le 4 ] && echo 0 || echo 1) \
	"in $(($(date +%s) - t0)) s it was retried $n times: with growing delays, not in a loop"
grep -q 'keyd exited with status 1: .*; restarting it in 4 s' "$run/logs/keyd.log"
ok $? "the delay doubles from one failure to the next (1 s, 2 s, 4 s)"
rm "$root/etc/aziot/keyd/config.d/50-bad.toml"
out=$("$edgeid" system restart --root "$root" keyd)
is "$?:$out" "0:Stopping edgeid-keyd...Stopped!
Starting edgeid-keyd...Started!" "once the configuration is fixed, system restart brings keyd back"

# ---- system stop: everything, and the supervisor exits ------------------------------
out=$("$edgeid" system stop --root "$root")
exp=
for ((i = ${#daemons[@]} - 1; i >= 0; i--)); do exp="${exp}Stopping edgeid-${daemons[i]}...Stopped!
"; done
is "$?:$out" "0:${exp}Stopping edgeidd supervise...Stopped!" "system stop stops every daemon, then the supervisor"
# (Detached, it is no child of ours: whoever inherited it may not have
# reaped it yet.)
gone() { ! kill -0 "$1" 2>/dev/null || [ "$(ps -o stat= -p "$1" | cut -c1)" = Z ]; }
wait_for "the supervisor exits" gone "$sup"
ok $? "the supervisor has exited"
ok $([ ! -e "$run/supervise.pid" ] && [ ! -e "$run/supervise.sock" ] && echo 0 || echo 1) \
	"it removed its pid file and control socket"
args=()
for d in "${daemons[@]}"; do args+=("$d=Down - stopped"); done
out=$(status_cmd)
is "$?:$out" "1:$(expected_status "${args[@]}")" "status: every daemon Down - stopped, exit 1"

# ---- in the foreground: exit status -----------------------------------------------------
"$edgeidd" supervise --root "$root" --only keyd --foreground 2>"$tmp/fg.log" &
fg_pid=$!
wait_for "the foreground supervisor starts keyd" state_is keyd running
out=$("$edgeid" system stop --root "$root")
wait "$fg_pid"
is "$?" 0 "edgeidd supervise --foreground exits 0 after system stop"
fg_pid=

"$edgeidd" supervise --root "$root" --only keyd --foreground 2>"$tmp/fg.log" &
fg_pid=$!
wait_for "the foreground supervisor starts keyd" state_is keyd running
kpid=$(field keyd pid)
kill -TERM "$fg_pid"
wait "$fg_pid"
is "$?" 0 "SIGTERM: edgeidd supervise stops keyd and exits 0"
fg_pid=
ok $(kill -0 "$kpid" 2>/dev/null && echo 1 || echo 0) "keyd has stopped"
like "$(cat "$tmp/fg.log")" "info: keyd stopped \\(exited with status 0\\)" "keyd stopped cleanly"

# ---- killed: the daemons go with it ---------------------------------------------------
"$edgeidd" supervise --root "$root" --only keyd --foreground 2>"$tmp/fg.log" &
fg_pid=$!
wait_for "the foreground supervisor starts keyd" state_is keyd running
kpid=$(field keyd pid)
kill -9 "$fg_pid"
wait "$fg_pid" 2>/dev/null
fg_pid=
wait_for "keyd exits" bash -c "! kill -0 $kpid 2>/dev/null"
ok $? "when the supervisor is killed, keyd stops too"
out=$(status_cmd | grep '^    edgeid-keyd')
is "$out" "    edgeid-keyd             Down - edgeidd supervise is not running" \
	"status: Down - edgeidd supervise is not running"

# ---- a socket someone else serves is left alone ----------------------------------------
"$edgeidd" keyd --root "$root" 2>"$tmp/standalone.log" &
standalone=$!
answers() { curl -sf -o /dev/null --max-time 2 --unix-socket "$1" "http://x/" || [ $? -eq 22 ]; }
wait_for "a keyd started by hand serves" answers "$root/run/aziot/keyd.sock"
msg="$root/run/aziot/keyd.sock: another process serves this socket (a daemon started by systemd or by hand?); stop it first"
out=$("$edgeidd" supervise --root "$root" --only keyd 2>&1)
is "$?:$out" "0:edgeidd supervise: keyd did not start: $msg" \
	"the supervisor does not take over the socket of a keyd that runs already"
out=$(status_cmd | grep '^    edgeid-keyd')
is "$out" "    edgeid-keyd             Down - $msg" "status says why"
body=$(curl -s --max-time 10 --unix-socket "$root/run/aziot/keyd.sock" "http://keyd.sock/key/x")
is "$body" '{"message":"api-version not specified"}' "the keyd started by hand still serves"
"$edgeid" system stop --root "$root" >/dev/null
kill "$standalone"
wait "$standalone"

# Under ASan+UBSan a report lands in the log of the process that made it.
reports=$(grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$run"/logs/* "$tmp"/fg.log 2>/dev/null)
is "$reports" "" "no sanitizer report in the supervisor's or the daemons' logs"

done_testing
