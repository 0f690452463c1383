#!/usr/bin/env bash
# `edgeid system` apart from the supervisor's own behaviour: usage errors
# (exit 2) and --help of each verb; status and logs with nothing running;
# `system restart` starting edgeidd supervise when it is not running;
# `system reprovision` against an identity service that records the
# request it gets (exact method, path, api-version, body) and answers 204
# or an aziot error; the systemd side (status from `systemctl show`,
# journalctl and systemctl command lines, failures) through stand-in
# systemctl and journalctl programs; and the packaged units and udev rule:
# `systemd-analyze verify` and `security`, and the settings they must have.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
edgeidd=$EDGEID_BUILD_ROOT/edgeidd
edgeid=$EDGEID_BUILD_ROOT/edgeid
pkg=$EDGEID_SOURCE_ROOT/packaging

for tool in python3 jq; do
	command -v "$tool" >/dev/null || {
		echo "1..0 # SKIP $tool is not installed"
		exit 0
	}
done

tmp=$(mktemp -d)
chmod 755 "$tmp"
root=$tmp/root
fake=$tmp/fake
keyd_pid=
ident_pid=
skip() {
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N # SKIP $*"
}
cleanup() {
	[ -n "$keyd_pid" ] && kill -9 "$keyd_pid" 2>/dev/null
	[ -n "$ident_pid" ] && kill -9 "$ident_pid" 2>/dev/null
	if [ -f "$root/run/edgeid/supervise.pid" ]; then
		kill -9 "$(cat "$root/run/edgeid/supervise.pid")" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
wait_for() {
	for _ in $(seq 1 300); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}
# run_cli ARGS...: sets $rc, $out (stdout) and $err (stderr).
run_cli() {
	out=$("$edgeid" "$@" 2>"$tmp/stderr")
	rc=$?
	err=$(cat "$tmp/stderr")
}
mkdir -p "$root"

# ---- usage ------------------------------------------------------------------------
run_cli system
like "$rc:$err" "^2:Usage: edgeid system COMMAND" "edgeid system without a command: usage, exit 2"
run_cli system --help
like "$rc:$out" "^0:Usage: edgeid system COMMAND" "edgeid system --help"
for v in status logs restart stop reprovision; do
	run_cli system "$v" --help
	like "$rc:$out" "^0:Usage: edgeid system $v" "edgeid system $v --help"
done
run_cli system frobnicate
like "$rc:$err" "^2:edgeid system: unknown command 'frobnicate'" "an unknown command is a usage error"
run_cli system status --bogus
is "$rc:$err" "2:edgeid system status: unknown option '--bogus'
Usage: edgeid system status [-o text|json] [--root DIR] [--run-dir DIR]
Try 'edgeid system status --help'." "an unknown option: the sentence, the usage, exit 2"
run_cli system status keyd
is "$rc:$(head -1 <<<"$err")" "2:edgeid system status: unexpected argument 'keyd'" \
	"status takes no service"
run_cli system status -o xml
is "$rc:$(head -1 <<<"$err")" '2:edgeid system status: --output: expected text or json, got "xml"' \
	"status -o accepts text and json only"
run_cli system logs nosuchd
is "$rc:$(head -1 <<<"$err")" \
	"2:edgeid system logs: unknown service 'nosuchd' (expected keyd, certd, tpmd or identityd)" \
	"logs names the services it knows"
run_cli system logs --lines ten
is "$rc:$(head -1 <<<"$err")" '2:edgeid system logs: --lines: expected a number or all, got "ten"' \
	"logs --lines takes a number"
run_cli system logs --root "$root" --since "next tuesday"
is "$rc:$(head -1 <<<"$err")" \
	'2:edgeid system logs: --since: expected a time such as "2026-11-23 07:00:00", "-10m" or "2 hours ago", got "next tuesday"' \
	"logs --since rejects what it cannot read"
run_cli system logs --root "$root" -- -o json
like "$rc:$(head -1 <<<"$err")" "^2:edgeid system logs: arguments after -- are for journalctl" \
	"journalctl arguments without journalctl are a usage error"
run_cli system restart --root
is "$rc:$(head -1 <<<"$err")" "2:edgeid system restart: option '--root' needs a value" \
	"an option without its value"
out=$(EDGEID_SYSTEM_MANAGER=launchd "$edgeid" system status 2>&1)
like "$?:$out" '^2:edgeid system status: EDGEID_SYSTEM_MANAGER: expected systemd or supervise, got "launchd"' \
	"EDGEID_SYSTEM_MANAGER is checked"

# ---- nothing running -------------------------------------------------------------------
run_cli system status --root "$root"
is "$rc:$out" "1:System services:
    edgeid-identityd        Down - not running (edgeidd supervise is not running)
    edgeid-keyd             Down - not running (edgeidd supervise is not running)
    edgeid-certd            Down - not running (edgeidd supervise is not running)
    edgeid-tpmd             Down - not running (edgeidd supervise is not running)

Use 'edgeid system logs' to check for non-fatal errors." "status with nothing running: every daemon Down, exit 1"
run_cli system status --root "$root" -o json
is "$rc:$(jq -c '[.manager, (.services[] | [.name, .status, .detail])]' <<<"$out")" \
	'1:["supervise",["edgeid-identityd","down","not running (edgeidd supervise is not running)"],["edgeid-keyd","down","not running (edgeidd supervise is not running)"],["edgeid-certd","down","not running (edgeidd supervise is not running)"],["edgeid-tpmd","down","not running (edgeidd supervise is not running)"]]' \
	"status -o json with nothing running"
run_cli system logs --root "$root"
is "$rc:$out" "0:-- No entries --" "logs with no log files"
run_cli system stop --root "$root"
is "$rc:$out" "0:edgeidd supervise is not running: nothing to stop." "stop with nothing running"

# ---- restart starts the supervisor --------------------------------------------------------
mkdir -p "$root/etc/aziot/keyd" "$root/var/lib/aziot/keyd"
printf '[aziot_keys]\nhomedir_path = "/var/lib/aziot/keyd"\n' >"$root/etc/aziot/keyd/config.toml"
[ "$(id -u)" -eq 0 ] && getent passwd aziotks >/dev/null && chown aziotks "$root/var/lib/aziot/keyd"
run_cli system restart --root "$root" keyd
is "$rc:$out" "0:Starting edgeidd supervise...Started!" \
	"restart without a supervisor starts edgeidd supervise"
run_cli system status --root "$root"
is "$rc:$out" "0:System services:
    edgeid-keyd             Running

Use 'edgeid system logs' to check for non-fatal errors." "it runs the daemons named (--only keyd)"
run_cli system stop --root "$root"
is "$rc:$out" "0:Stopping edgeid-keyd...Stopped!
Stopping edgeidd supervise...Stopped!" "and system stop ends it"

# ---- reprovision -------------------------------------------------------------------------
cat >"$tmp/identityd.py" <<'EOF'
import os, socket, sys
path, mode, record = sys.argv[1:4]
try:
    os.unlink(path)
except FileNotFoundError:
    pass
os.makedirs(os.path.dirname(path), exist_ok=True)
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(4)
open(path + ".ready", "w").close()
while True:
    c, _ = s.accept()
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    length = 0
    for l in lines[1:]:
        k, _, v = l.partition(":")
        if k.lower() == "content-length":
            length = int(v)
    while len(body) < length:
        body += c.recv(4096)
    with open(record, "w") as f:
        f.write(lines[0] + "\n")
        f.write("\n".join(l for l in lines[1:] if l.lower().startswith("content-type")) + "\n")
        f.write(body.decode() + "\n")
    if open(mode).read().strip() == "204":
        c.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
    else:
        msg = b'{"message":"device identity not found"}'
        c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(msg) + msg)
    c.close()
EOF
isock=$root/run/aziot/identityd.sock
run_cli system reprovision --root "$root"
like "$rc:$err" "^1:edgeid system reprovision: cannot reach the identity service: connecting to $isock: .*; see 'edgeid system status'\$" \
	"reprovision with no identity service: exit 1, saying where it looked"
echo 204 >"$tmp/mode"
python3 "$tmp/identityd.py" "$isock" "$tmp/mode" "$tmp/request" &
ident_pid=$!
wait_for test -e "$isock.ready"
run_cli system reprovision --root "$root"
is "$rc:$out" "0:Successfully reprovisioned with IoT Hub." "reprovision: 204 is success"
is "$(cat "$tmp/request")" 'POST /identities/device/reprovision?api-version=2021-12-01 HTTP/1.1
Content-Type: application/json
{"type":"aziot"}' "the request: POST /identities/device/reprovision, api-version 2021-12-01, {\"type\":\"aziot\"}"
echo 404 >"$tmp/mode"
run_cli system reprovision --root "$root"
is "$rc:$out:$err" "1::edgeid system reprovision: the identity service answered 404: device identity not found" \
	"reprovision: an aziot error is shown with its status and message, exit 1"
kill "$ident_pid" 2>/dev/null
wait "$ident_pid" 2>/dev/null
ident_pid=

# ---- the systemd side, with stand-ins for systemctl and journalctl ------------------
mkdir -p "$fake/bin" "$fake/units"
cat >"$fake/bin/systemctl" <<'EOF'
#!/usr/bin/env bash
echo "systemctl $*" >>"$FAKE/calls"
case "$1" in
show)
	unit=${*: -1}
	if [ -f "$FAKE/units/$unit" ]; then
		cat "$FAKE/units/$unit"
	else
		printf 'LoadState=not-found\nActiveState=inactive\nSubState=dead\nResult=success\nMainPID=0\nNRestarts=0\n'
	fi
	;;
start | stop)
	if [ -f "$FAKE/fail-$1-$2" ]; then
		cat "$FAKE/fail-$1-$2" >&2
		exit 1
	fi
	;;
esac
EOF
cat >"$fake/bin/journalctl" <<'EOF'
#!/usr/bin/env bash
echo "journalctl $*" >>"$FAKE/calls"
echo "journal: $*"
EOF
chmod +x "$fake/bin/systemctl" "$fake/bin/journalctl"
unit() { # unit NAME ACTIVE SUB RESULT PID RESTARTS
	printf 'LoadState=loaded\nActiveState=%s\nSubState=%s\nResult=%s\nMainPID=%s\nNRestarts=%s\n' \
		"$2" "$3" "$4" "$5" "$6" >"$fake/units/$1"
}
unit edgeid-keyd.service active running success 4242 2
unit edgeid-keyd.socket active running success 0 0
unit edgeid-tpmd.service inactive dead success 0 0
unit edgeid-tpmd.socket active listening success 0 0
unit edgeid-identityd.service failed failed exit-code 0 5
unit edgeid-identityd.socket active listening success 0 0
sd() { FAKE=$fake PATH="$fake/bin:$PATH" EDGEID_SYSTEM_MANAGER=systemd "$edgeid" system "$@"; }
calls() { grep -v '^systemctl show' "$fake/calls" 2>/dev/null; }

# keyd really runs, where status looks for its socket.
"$edgeidd" keyd --root "$root" 2>"$tmp/keyd.log" &
keyd_pid=$!
wait_for test -S "$root/run/aziot/keyd.sock"
out=$(sd status --root "$root")
is "$?:$out" "1:System services:
    edgeid-identityd        Down - failed (exit-code)
    edgeid-keyd             Running (2 restarts)
    edgeid-tpmd             Ready

edgeid-identityd is in a bad state because:
journal: -u edgeid-identityd.service -u edgeid-identityd.socket --no-pager -e -n 10

Use 'edgeid system logs' to check for non-fatal errors." \
	"systemd: active and answering is Running, an idle service with its socket listening is Ready, failed is Down with its journal"
grep -q '^systemctl show -p LoadState,ActiveState,SubState,Result,MainPID,NRestarts edgeid-keyd.service$' "$fake/calls"
ok $? "status reads the units with systemctl show"
out=$(sd status --root "$root" -o json)
is "$(jq -c '.manager, (.services[] | select(.daemon == "identityd") | [.status, .detail, .active_state, .result, .restarts])' <<<"$out" | tr '\n' ' ')" \
	'"systemd" ["down","failed (exit-code)","failed","exit-code",5] ' "systemd: status -o json carries the unit's states"
unit edgeid-keyd.socket inactive dead success 0 0
out=$(sd status --root "$root" | grep '^    edgeid-keyd')
is "$out" "    edgeid-keyd             Down - socket error: edgeid-keyd.socket is inactive" \
	"systemd: a running service without its socket is Down - socket error"
unit edgeid-keyd.socket active running success 0 0
kill "$keyd_pid"
wait "$keyd_pid" 2>/dev/null
keyd_pid=
out=$(sd status --root "$root" | grep '^    edgeid-keyd')
like "$out" "^    edgeid-keyd             Down - not answering: connecting to $root/run/aziot/keyd.sock: " \
	"systemd: an active service whose socket does not answer is Down, with why"

: >"$fake/calls"
out=$(sd logs)
is "$out" "journal: -u edgeid-keyd.service -u edgeid-tpmd.service -u edgeid-identityd.service --no-pager -e" \
	"systemd: logs is journalctl -u each installed unit --no-pager -e"
out=$(sd logs -f --since "1 hour ago" keyd)
is "$out" "journal: -u edgeid-keyd.service --no-pager -f --since 1 hour ago" "systemd: logs -f --since SERVICE"
out=$(sd logs identityd -n 50 -- -o json)
is "$out" "journal: -u edgeid-identityd.service --no-pager -n 50 -o json" \
	"systemd: logs -n, and arguments after -- go to journalctl"

: >"$fake/calls"
out=$(sd restart)
is "$?:$out" "0:Stopping edgeid-identityd...Stopped!
Stopping edgeid-tpmd...Stopped!
Stopping edgeid-keyd...Stopped!
Starting edgeid-keyd...Started!
Starting edgeid-tpmd...Started!
Starting edgeid-identityd...Started!" "systemd: restart prints each step"
is "$(calls)" "systemctl stop edgeid-identityd.service
systemctl stop edgeid-tpmd.service
systemctl stop edgeid-keyd.service
systemctl start edgeid-keyd.socket
systemctl start edgeid-tpmd.socket
systemctl start edgeid-identityd.socket
systemctl start edgeid-identityd.service" \
	"systemd: restart stops the services, starts the sockets, then identityd (as aziotctl)"
: >"$fake/calls"
out=$(sd stop keyd)
is "$?:$out:$(calls | tr '\n' ,)" \
	"0:Stopping edgeid-keyd...Stopped!:systemctl stop edgeid-keyd.service,systemctl stop edgeid-keyd.socket," \
	"systemd: stop SERVICE stops its service and its socket"
echo "Failed to stop edgeid-keyd.service: Access denied" >"$fake/fail-stop-edgeid-keyd.service"
out=$(sd stop keyd 2>"$tmp/stderr")
is "$?:$out:$(cat "$tmp/stderr")" "1:Stopping edgeid-keyd...Failed!:edgeid system stop: systemctl stop edgeid-keyd.service: Failed to stop edgeid-keyd.service: Access denied" \
	"systemd: a failing systemctl is reported with its message, exit 1"
rm "$fake/fail-stop-edgeid-keyd.service"

# ---- the packaged units ---------------------------------------------------------------------
declare -A users=([keyd]=aziotks [certd]=aziotcs [tpmd]=aziottpm [identityd]=aziotid)
declare -A families=([keyd]="AF_UNIX" [certd]="AF_UNIX AF_INET AF_INET6"
	[tpmd]="AF_UNIX" [identityd]="AF_UNIX AF_INET AF_INET6")
units=$tmp/units
mkdir -p "$units"
for d in keyd certd tpmd identityd; do
	svc=$pkg/systemd/edgeid-$d.service.in
	sock=$pkg/systemd/edgeid-$d.socket
	missing=
	for line in "ExecStart=@bindir@/edgeidd $d" "User=${users[$d]}" "DynamicUser=no" \
		"ProtectSystem=strict" "ReadWritePaths=/var/lib/aziot/$d" "PrivateTmp=yes" \
		"NoNewPrivileges=yes" "RestrictAddressFamilies=${families[$d]}" \
		"SystemCallFilter=@system-service" "CapabilityBoundingSet=" \
		"Requires=edgeid-$d.socket" "Type=notify"; do
		grep -qxF -- "$line" "$svc" || missing="$missing [$line]"
	done
	is "$missing" "" "edgeid-$d.service has its user, the hardening and the socket"
	missing=
	for line in "ListenStream=/run/aziot/$d.sock" "SocketMode=0660" "DirectoryMode=0755" \
		"SocketUser=${users[$d]}" "SocketGroup=${users[$d]}"; do
		grep -qxF -- "$line" "$sock" || missing="$missing [$line]"
	done
	is "$missing" "" "edgeid-$d.socket listens at /run/aziot/$d.sock, 0660, owned by ${users[$d]}"
	sed "s|@bindir@|$EDGEID_BUILD_ROOT|" "$svc" >"$units/edgeid-$d.service"
	cp "$sock" "$units/"
done
grep -qxF "SupplementaryGroups=aziotcs aziotks aziottpm" "$pkg/systemd/edgeid-identityd.service.in"
ok $? "identityd's unit gives it the groups of the sockets it calls"
if command -v systemd-analyze >/dev/null; then
	out=$(cd "$units" && systemd-analyze verify --man=no ./*.service ./*.socket 2>&1)
	is "$?:$out" "0:" "systemd-analyze verify: the units load without a warning"
	for d in keyd certd tpmd identityd; do
		level=$(cd "$units" && systemd-analyze security --offline=yes "./edgeid-$d.service" 2>/dev/null |
			sed -nE 's/.*Overall exposure level for [^:]*: ([0-9.]+).*/\1/p')
		if [ -z "$level" ]; then
			skip "systemd-analyze security --offline is not supported here"
			continue
		fi
		ok $(awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }' && echo 0 || echo 1) \
			"systemd-analyze security: edgeid-$d.service exposure $level (at most 2.0)"
	done
else
	skip "systemd-analyze is not installed (it comes with systemd)"
fi

rules=$pkg/udev/70-edgeid-tpm.rules
is "$(grep -v '^#' "$rules" | grep -v '^$')" 'KERNEL=="tpm0", SUBSYSTEM=="tpm", OWNER="aziottpm", MODE="0660"
KERNEL=="tpmrm0", SUBSYSTEM=="tpmrm", OWNER="aziottpm", MODE="0660"' \
	"the udev rule gives aziottpm /dev/tpm0 and /dev/tpmrm0, mode 0660"
if udevadm verify --help >/dev/null 2>&1; then
	out=$(udevadm verify --no-style "$rules" 2>&1)
	is "$?" 0 "udevadm verify accepts the rule ($out)"
else
	skip "udevadm verify is not available (systemd 254 or later)"
fi

done_testing
