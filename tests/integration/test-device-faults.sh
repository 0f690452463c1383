#!/usr/bin/env bash
# Device faults, as the user meets them: the daemons run under edgeidd
# supervise (keyd, identityd, and tpmd for the TPM device) against an
# edgeid-cloud on 127.0.13.2/.3, and each fault is made for real: DPS not
# running, DPS's certificate not trusted, a disabled enrollment, a wrong ID
# scope, an identity certificate that is missing, expired or made for
# another key, a TPM (swtpm on 127.0.13.5) that is not running, tpmd
# stopped. For each: the exact line `edgeid system status` prints, the
# same sentence in `edgeid system logs`, whether it is retried (the failed
# attempts grow, "retrying in N s") and that once the fault is fixed the
# device ends provisioned without identityd being restarted. Then: the
# status probes and reads left no line in the daemons' logs.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
. "$EDGEID_SOURCE_ROOT/tests/integration/test-identityd-lib.sh"

for cmd in swtpm base64 sha256sum; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "1..0 # SKIP $cmd is not installed"
		exit 0
	fi
done

dir=$(mktemp -d)
chmod 755 "$dir"
TPM_HOST=127.0.13.5
TPM_PID=
TPM_PORT=
TPMD_PID=
cleanup() {
	stop_device
	[ -n "$TPMD_PID" ] && kill -9 "$TPMD_PID" 2>/dev/null
	stop_swtpm
	idt_stop_all
	rm -rf "$dir"
}
trap cleanup EXIT
V=api-version=2020-09-01

# ---- helpers ---------------------------------------------------------------------------

# start_device DAEMONS: edgeidd supervise --only DAEMONS on the device root,
#   each daemon's state directory owned by its user (as the packages make
#   them) when the test runs as root.
start_device() {
	local d user
	for d in keyd:aziotks certd:aziotcs tpmd:aziottpm identityd:aziotid; do
		mkdir -p "$IDT_ROOT/var/lib/aziot/${d%%:*}"
		user=${d#*:}
		if [ "$(id -u)" -eq 0 ] && getent passwd "$user" >/dev/null; then
			chown "$user:" "$IDT_ROOT/var/lib/aziot/${d%%:*}"
		fi
	done
	"$IDT_EDGEIDD" supervise --root "$IDT_ROOT" --only "$1" >"$IDT_LOGS/supervise.out" 2>&1
}

stop_device() {
	[ -n "${IDT_ROOT:-}" ] && [ -f "$IDT_ROOT/run/edgeid/supervise.pid" ] || return 0
	"$IDT_EDGEID" system stop --root "$IDT_ROOT" >/dev/null 2>&1 ||
		kill -9 "$(cat "$IDT_ROOT/run/edgeid/supervise.pid")" 2>/dev/null
	rm -f "$IDT_ROOT/run/edgeid/supervise.pid"
}

sys_status() { "$IDT_EDGEID" system status --root "$IDT_ROOT" "$@"; }

# status_line DAEMON: what `edgeid system status` prints after the name.
status_line() {
	sys_status | sed -n "s/^    edgeid-$1  *//p"
}

# pid_of DAEMON: its pid, from `edgeid system status -o json`.
pid_of() {
	sys_status -o json | jq -r ".services[] | select(.daemon == \"$1\") | .pid"
}

# wait_line DAEMON EXTENDED-REGEX [SECONDS]: until the status line matches
#   (default 120 s). Returns 1 on timeout, with the last line on stderr.
wait_line() {
	local deadline=$((SECONDS + ${3:-120})) line=
	while [ "$SECONDS" -lt "$deadline" ]; do
		line=$(status_line "$1")
		grep -Eq -- "$2" <<<"$line" && return 0
		sleep 0.2
	done
	tap_diag "timed out waiting for the $1 line to match: $2" "last line: $line"
	return 1
}

# re TEXT: TEXT as an extended regular expression matching itself.
re() {
	# shellcheck disable=SC2016 # the $ is a character to escape
	printf '%s' "$1" | sed 's/[][\.*^$()+?{}|/]/\\&/g'
}

# failed_attempts: the count in identityd's status line.
failed_attempts() {
	status_line identityd | sed -n 's/.*(\([0-9]*\) failed attempts\{0,1\})$/\1/p'
}

# reload_identityd: SIGHUP, and wait until identityd has read its settings.
reload_identityd() {
	local n
	n=$(logs identityd | grep -c 'configuration reloaded')
	kill -HUP "$(pid_of identityd)"
	for _ in $(seq 1 300); do
		[ "$(logs identityd | grep -c 'configuration reloaded')" -gt "$n" ] && return 0
		sleep 0.1
	done
	return 1
}

# logs DAEMON: what `edgeid system logs` shows of it.
logs() { "$IDT_EDGEID" system logs --root "$IDT_ROOT" -n all "$1"; }

# has_log DAEMON TEXT: whether its log has a line with TEXT (fixed string),
#   waiting up to 30 s for the supervisor to write it.
has_log() {
	local deadline=$((SECONDS + 30))
	while [ "$SECONDS" -lt "$deadline" ]; do
		logs "$1" | grep -Fq -- "$2" && return 0
		sleep 0.2
	done
	return 1
}

# Tried again: later, or (on a slow machine) already.
RETRY_RE='; (retrying in [0-9]+ s|trying again now) \([0-9]+ failed attempts?\)$'
NO_RETRY="; not retrying until the settings change or 'edgeid system reprovision'"

# ---- the cloud, and a symmetric-key device -----------------------------------------------

idt_cloud_prepare "$dir/cloud" 127.0.13.2 127.0.13.3
ok $? "the cloud's PKI and configuration" || { done_testing; exit; }
KEY=$(openssl rand -base64 32)
cloud_env_cli enrollment create --registration-id dev1 --symmetric-key "$KEY" >/dev/null
ok $? "a symmetric-key enrollment for dev1"
idt_device "$dir/sym" "hostname = \"faults-sym\"
[provisioning]
source = \"dps\"
global_endpoint = \"https://$CLOUD_DPS_HOST/\"
id_scope = \"$CLOUD_DPS_ID_SCOPE\"
[provisioning.attestation]
method = \"symmetric_key\"
registration_id = \"dev1\"
symmetric_key = { value = \"$KEY\" }"
ok $? "config apply for the symmetric-key device"

# ---- DPS is not running: retried with back-off ---------------------------------------------

start_device keyd,identityd
ok $? "edgeidd supervise starts keyd and identityd" || cat "$IDT_LOGS/supervise.out" >&2
pid=$(pid_of identityd)
unreachable="cannot reach DPS: connecting to https://$CLOUD_DPS_HOST:443: connection refused"
wait_line identityd "^$(re "Running, not provisioned: $unreachable")$RETRY_RE"
ok $? "DPS down: status says why, and that it tries again"
like "$(status_line identityd)" "^$(re "Running, not provisioned: $unreachable")$RETRY_RE" \
	"... the whole line: 'Running, not provisioned: <why>; retrying in N s (K failed attempts)'"
is "$(status_line keyd)" "Running" "keyd's line is plain Running"
has_log identityd "error: $unreachable"
ok $? "system logs has the same sentence at error level"
n=$(failed_attempts)
deadline=$((SECONDS + 120))
while [ "$SECONDS" -lt "$deadline" ] && [ "$(failed_attempts)" -le "${n:-0}" ]; do sleep 0.2; done
[ "$(failed_attempts)" -gt "${n:-0}" ]
ok $? "the failed attempts grow: identityd keeps trying (was ${n:-none}, now $(failed_attempts))"
json=$(sys_status -o json)
is "$(jq -c '.services[] | select(.daemon == "identityd") | [.status, .provisioning.state, .provisioning.fault, .provisioning.retrying]' <<<"$json")" \
	'["running","failed","network",true]' "status -o json: the provisioning status, fault network"
# The two are read a moment apart: the retry clause may have moved on.
secs='s/; (retrying in [0-9]+ s|trying again now) \([0-9]+ failed attempts?\)$/; <retry>/'
is "$(jq -r '.services[] | select(.daemon == "identityd") | .summary' <<<"$json" | sed -E "$secs")" \
	"$(status_line identityd | sed -E "s/^Running, //; $secs")" "status -o json: the same summary as the text"

cloud_env_start
ok $? "edgeid-cloud starts (the fault is fixed)"
provisioned="Running, provisioned to hub $CLOUD_HUB_HOST as device dev1"
wait_line identityd "^$(re "$provisioned")\$"
ok $? "identityd provisions by itself once DPS answers"
is "$(pid_of identityd)" "$pid" "... without being restarted"
is "$(sys_status >/dev/null; echo $?)" 0 "status exits 0"

# ---- DPS's certificate is not trusted: retried -------------------------------------------

idt_identityd_dropin 50-trust ""
reload_identityd
untrusted="DPS's TLS certificate is not trusted (https://$CLOUD_DPS_HOST/$CLOUD_DPS_ID_SCOPE/registrations/dev1/register: server certificate verification failed: unable to get local issuer certificate); add its CA to trust_bundle_cert or to the system store"
out=$("$IDT_EDGEID" system reprovision --root "$IDT_ROOT" 2>&1)
is "$?:$out" "1:edgeid system reprovision: the identity service answered 404: DPS client error
caused by: $untrusted" "reprovisioning without the cloud's CA fails with the reason"
like "$(status_line identityd)" "^$(re "Running, not provisioned: $untrusted")$RETRY_RE" \
	"status: the certificate is not trusted, what to do, and that it tries again"
has_log identityd "error: $untrusted"
ok $? "system logs has the sentence"
idt_identityd_dropin 50-trust 'trust_bundle_cert = "file:///etc/edgeid/cloud-ca.pem"'
reload_identityd
wait_line identityd "^$(re "$provisioned")\$"
ok $? "with the CA back, the next attempt provisions the device"
is "$(pid_of identityd)" "$pid" "... without a restart"

# ---- a disabled enrollment: retried, slowly ---------------------------------------------

cloud_env_cli enrollment disable dev1 >/dev/null
ok $? "the enrollment is disabled in DPS"
disabled="DPS refused registration 'dev1' in ID scope '$CLOUD_DPS_ID_SCOPE': the enrollment is disabled; enable it, then reprovision the device"
out=$("$IDT_EDGEID" system reprovision --root "$IDT_ROOT" 2>&1)
is "$?:$out" "1:edgeid system reprovision: the identity service answered 404: DPS client error
caused by: $disabled" "reprovisioning a disabled enrollment fails with the reason"
like "$(status_line identityd)" "^$(re "Running, not provisioned: $disabled")$RETRY_RE" \
	"status: the enrollment is disabled, and identityd tries again"
is "$(sys_status -o json | jq -r '.services[] | select(.daemon == "identityd") | .provisioning.fault')" \
	refused "status -o json: fault refused"
has_log identityd "error: $disabled"
ok $? "system logs has the sentence"
cloud_env_cli enrollment enable dev1 >/dev/null
ok $? "the enrollment is enabled again, in the cloud only"
wait_line identityd "^$(re "$provisioned")\$" 180
ok $? "the device registers at its next attempt, nothing done on the device"
is "$(pid_of identityd)" "$pid" "... without a restart"

# ---- a wrong ID scope: not retried until the settings change -----------------------------

idt_identityd_dropin 70-scope '[provisioning]
scope_id = "0ne0000FFFF"'
reload_identityd
scope="DPS at https://$CLOUD_DPS_HOST does not serve ID scope '0ne0000FFFF' (404 The ID scope \"0ne0000FFFF\" is not served here. (errorCode 404000)); check provisioning.id_scope"
wait_line identityd "^$(re "Running, not provisioned: $scope$NO_RETRY")\$"
ok $? "a wrong ID scope: the status line says so, and that it is not retried"
is "$(sys_status -o json | jq -c '.services[] | select(.daemon == "identityd") | [.provisioning.fault, .provisioning.retrying, .provisioning.next_attempt_in_sec]')" \
	'["permanent",false,null]' "status -o json: fault permanent, no next attempt"
has_log identityd "error: $scope"
ok $? "system logs has the sentence"
idt_identityd_dropin 70-scope ""
reload_identityd
wait_line identityd "^$(re "$provisioned")\$"
ok $? "the scope fixed in the settings: SIGHUP registers the device again"
is "$(pid_of identityd)" "$pid" "... without a restart"

# ---- the probes leave the logs alone -----------------------------------------------------

for _ in 1 2 3; do sys_status >/dev/null; done
for d in keyd identityd; do
	out=$(logs "$d" | grep -E 'api-version not specified|<-- GET /( |identities/provisioning/status)')
	is "$out" "" "$d: no line in its log from the status probes"
done
stop_device

# ---- X.509: the identity certificate ---------------------------------------------------------

thumb=$(cloud_env_device_cert "$dir/cloud" x509-faults self)
ok $? "an EC device certificate" || tap_diag "$thumb"
devs=$CLOUD_PKI/devices
cloud_env_cli enrollment create --registration-id x509-faults --certificate "$devs/x509-faults.pem" \
	>/dev/null
ok $? "an X.509 enrollment for it"
# The same key, valid only in 2020 (openssl ca sets the dates).
mkdir -p "$dir/ca" && : >"$dir/ca/index.txt" && echo 01 >"$dir/ca/serial"
printf '%s\n' "[ca]" "default_ca = d" "[d]" "database = $dir/ca/index.txt" \
	"new_certs_dir = $dir/ca" "serial = $dir/ca/serial" "default_md = sha256" "policy = p" \
	"unique_subject = no" "[p]" "commonName = supplied" >"$dir/ca/ca.cnf"
openssl req -new -key "$devs/x509-faults.key" -subj "/CN=x509-faults" -out "$dir/ca/req.csr" \
	2>/dev/null &&
	openssl ca -batch -config "$dir/ca/ca.cnf" -selfsign -keyfile "$devs/x509-faults.key" \
		-in "$dir/ca/req.csr" -startdate 20200101000000Z -enddate 20200102000000Z \
		-out "$dir/expired.pem" >/dev/null 2>&1
ok $? "an expired certificate for the same key"
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/other.key" \
	-out "$dir/other.pem" -days 30 -subj "/CN=x509-faults" 2>/dev/null
ok $? "a certificate for another key"

idt_device "$dir/x509" "hostname = \"faults-x509\"
[provisioning]
source = \"dps\"
global_endpoint = \"https://$CLOUD_DPS_HOST/\"
id_scope = \"$CLOUD_DPS_ID_SCOPE\"
[provisioning.attestation]
method = \"x509\"
identity_cert = \"file:///etc/edgeid/device.pem\"
identity_pk = \"file:///etc/edgeid/device.key\"" && cp "$devs/x509-faults.key" "$IDT_ROOT/etc/edgeid/device.key"
ok $? "config apply for the X.509 device, its certificate not installed yet"
chmod 644 "$IDT_ROOT/etc/edgeid/device.key"

start_device keyd,certd,identityd
ok $? "keyd, certd and identityd start"
pid=$(pid_of identityd)
# certd answers as aziot's does: 400 'parameter "id" has an invalid value',
# caused by "not found".
missing="cannot read the identity certificate 'device-id': certd refused GET /certificates/device-id (HTTP 400): parameter \"id\" has an invalid value"
wait_line identityd "^$(re "Running, not provisioned: $missing; caused by: not found")$RETRY_RE"
ok $? "a missing certificate: the status line (one line) says what failed, and that it tries again"
has_log identityd "error: $missing"
ok $? "system logs has the sentence"
cp "$devs/x509-faults.pem" "$IDT_ROOT/etc/edgeid/device.pem"
provisioned="Running, provisioned to hub $CLOUD_HUB_HOST as device x509-faults"
wait_line identityd "^$(re "$provisioned")\$"
ok $? "the certificate installed: provisioned at the next attempt"
is "$(pid_of identityd)" "$pid" "... without a restart"

cp "$dir/expired.pem" "$IDT_ROOT/etc/edgeid/device.pem"
expired="the identity certificate 'device-id' expired at 2020-01-02T00:00:00Z; renew it or install a new one"
out=$("$IDT_EDGEID" system reprovision --root "$IDT_ROOT" 2>&1)
is "$?:$out" "1:edgeid system reprovision: the identity service answered 404: provisioning failed
caused by: $expired" "an expired certificate: reprovisioning fails with the reason"
like "$(status_line identityd)" "^$(re "Running, not provisioned: $expired")$RETRY_RE" \
	"status: expired, and tried again"
has_log identityd "error: $expired"
ok $? "system logs has the sentence"
cp "$devs/x509-faults.pem" "$IDT_ROOT/etc/edgeid/device.pem"
wait_line identityd "^$(re "$provisioned")\$"
ok $? "a valid certificate again: provisioned at the next attempt"

cp "$dir/other.pem" "$IDT_ROOT/etc/edgeid/device.pem"
wrong_key="the identity certificate 'device-id' was not made for key pair 'device-id' in keyd; install the certificate issued for that key, or the key it was issued for"
out=$("$IDT_EDGEID" system reprovision --root "$IDT_ROOT" 2>&1)
is "$?:$out" "1:edgeid system reprovision: the identity service answered 404: provisioning failed
caused by: $wrong_key" "a certificate for another key: reprovisioning fails with the reason"
like "$(status_line identityd)" "^$(re "Running, not provisioned: $wrong_key")$RETRY_RE" \
	"status: the certificate does not fit the key, and it is tried again"
has_log identityd "error: $wrong_key"
ok $? "system logs has the sentence"
cp "$devs/x509-faults.pem" "$IDT_ROOT/etc/edgeid/device.pem"
wait_line identityd "^$(re "$provisioned")\$"
ok $? "the right certificate again: provisioned at the next attempt"
is "$(pid_of identityd)" "$pid" "... without a restart"
stop_device

# ---- the TPM ---------------------------------------------------------------------------------

# start_swtpm: swtpm on $TPM_HOST:$TPM_PORT (a port pair picked once), its
# state in $dir/tpm (kept across restarts).
start_swtpm() {
	local pid
	mkdir -p "$dir/tpm"
	for _ in $(seq 1 20); do
		[ -n "$TPM_PORT" ] || TPM_PORT=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		swtpm socket --tpm2 --server "type=tcp,port=$TPM_PORT,bindaddr=$TPM_HOST" \
			--ctrl "type=tcp,port=$((TPM_PORT + 1)),bindaddr=$TPM_HOST" \
			--tpmstate dir="$dir/tpm" --flags not-need-init,startup-clear \
			--log file="$dir/swtpm.log" &
		pid=$!
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			if (exec 3<>"/dev/tcp/$TPM_HOST/$TPM_PORT") 2>/dev/null; then
				TPM_PID=$pid
				return 0
			fi
			sleep 0.1
		done
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		TPM_PORT=
	done
	return 1
}
stop_swtpm() {
	[ -n "$TPM_PID" ] || return 0
	kill "$TPM_PID" 2>/dev/null
	wait "$TPM_PID" 2>/dev/null
	TPM_PID=
}
tpm_config() {
	printf '%s\n' "hostname = \"faults-tpm\"
[provisioning]
source = \"dps\"
global_endpoint = \"https://$CLOUD_DPS_HOST/\"
id_scope = \"$CLOUD_DPS_ID_SCOPE\"
[provisioning.attestation]
method = \"tpm\"
registration_id = \"$1\"
[tpm]
tcti = \"swtpm:host=$TPM_HOST,port=$TPM_PORT\""
}

start_swtpm
ok $? "swtpm starts on $TPM_HOST" || { done_testing; exit; }
idt_device "$dir/tpmdev" "$(tpm_config unknown)"
ok $? "config apply for the TPM device"
# The EK, from tpmd, for the enrollment; then the TPM goes away.
"$IDT_EDGEIDD" tpmd --root "$IDT_ROOT" 2>>"$IDT_LOGS/tpmd-first.log" &
TPMD_PID=$!
_idt_wait_socket "$IDT_ROOT/run/aziot/tpmd.sock" "$TPMD_PID" /get_tpm_keys
ek=$(curl -s --unix-socket "$IDT_ROOT/run/aziot/tpmd.sock" "http://tpmd.sock/get_tpm_keys?$V" |
	jq -r .endorsement_key)
kill -TERM "$TPMD_PID" && wait "$TPMD_PID"
TPMD_PID=
regid=$(base64 -d <<<"$ek" | sha256sum | cut -d' ' -f1)
is "${#regid}" 64 "the registration id from the EK"
cloud_env_cli enrollment create --registration-id "$regid" --endorsement-key "$ek" \
	--device-id tpm-faults >/dev/null
ok $? "a TPM enrollment"
printf '%s\n' "$(tpm_config "$regid")" >"$IDT_ROOT/etc/aziot/config.toml"
"$IDT_EDGEID" config apply -c "$IDT_ROOT/etc/aziot/config.toml" --root "$IDT_ROOT" >/dev/null 2>&1
ok $? "config apply with the registration id"
stop_swtpm

start_device keyd,tpmd,identityd
ok $? "keyd, tpmd and identityd start while swtpm is not running"
pid=$(pid_of identityd)
no_tpm="tpm.tcti \"swtpm:host=$TPM_HOST,port=$TPM_PORT\": cannot reach the TPM (tcti:IO failure); check that it exists and that this user may open it"
is "$(status_line tpmd)" "Running, TPM unavailable: $no_tpm; tpmd keeps trying" \
	"tpmd's status line: the TPM is unavailable, and why"
has_log tpmd "error: the TPM is unavailable: $no_tpm"
ok $? "tpmd's log says why"
from_tpmd="cannot read the TPM's keys: tpmd refused GET /get_tpm_keys (HTTP 503): the TPM is not available: $no_tpm"
wait_line identityd "^$(re "Running, not provisioned: $from_tpmd")$RETRY_RE"
ok $? "identityd's status line passes tpmd's reason on, and it tries again"
has_log identityd "error: $from_tpmd"
ok $? "identityd's log has the sentence"
start_swtpm
ok $? "swtpm starts again (the fault is fixed)"
provisioned="Running, provisioned to hub $CLOUD_HUB_HOST as device tpm-faults"
wait_line identityd "^$(re "$provisioned")\$" 240
ok $? "the device provisions through the TPM by itself"
is "$(status_line tpmd)" "Running" "tpmd's status line: plain Running once the TPM is there"
is "$(pid_of identityd)" "$pid" "... identityd was not restarted"

"$IDT_EDGEID" system stop --root "$IDT_ROOT" tpmd >/dev/null 2>&1
tpmd_down="cannot read the TPM's keys: cannot reach tpmd at $IDT_ROOT/run/aziot/tpmd.sock: no such socket (is it running?)"
out=$("$IDT_EDGEID" system reprovision --root "$IDT_ROOT" 2>&1)
is "$?:$out" "1:edgeid system reprovision: the identity service answered 404: DPS client error
caused by: $tpmd_down" "tpmd stopped: reprovisioning fails with the reason"
like "$(status_line identityd)" "^$(re "Running, not provisioned: $tpmd_down")$RETRY_RE" \
	"identityd's status line: tpmd is not running, and it tries again"
"$IDT_EDGEID" system restart --root "$IDT_ROOT" tpmd >/dev/null 2>&1
ok $? "tpmd restarted"
wait_line identityd "^$(re "$provisioned")\$" 240
ok $? "the device provisions again once tpmd runs"
is "$(pid_of identityd)" "$pid" "... identityd was not restarted"

for _ in 1 2 3; do sys_status >/dev/null; done
out=$(logs tpmd | grep -E 'api-version not specified|<-- GET /( |tpm/status)')
is "$out" "" "tpmd: no line in its log from the status probes"
out=$(grep -hE 'AddressSanitizer|LeakSanitizer|runtime error:' "$dir"/*/root/run/edgeid/logs/*.log \
	"$CLOUD_DIR/cloud.log" 2>/dev/null | head -5)
is "$out" "" "no sanitizer report in the daemons' and the cloud's logs"
stop_device
done_testing
