#!/usr/bin/env bash
# edgeid check against a real device: edgeid-cloud (DPS + hub on
# 127.0.12.2/.3), swtpm, `edgeid config apply`, keyd, certd, tpmd and
# identityd with --root, provisioned with a symmetric key. Then one thing
# breaks at a time and the exact lines `edgeid check` prints for it are
# asserted: a malformed config.toml and drop-in, a daemon down, tpmd down
# (the TPM is then read directly), no TPM (tpm.tcti pointing at nothing on
# 127.0.20.6: tpmd's reason, and /get_tpm_keys never asked), the clock not
# synchronized or off, a disabled enrollment, DPS's certificate not
# trusted, DPS unreachable (nothing on 127.0.20.5: for a provisioned device
# and for one never provisioned), a wrong ID scope (not retried), expired
# and expiring identity certificates, an X.509 identity certificate made
# for another key; identityd's sentences are the ones
# test-device-faults.sh asserts for `system status` and `system logs`.
# Also --output json, colour, exit codes.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
. "$EDGEID_SOURCE_ROOT/tests/integration/test-identityd-lib.sh"
. "$EDGEID_SOURCE_ROOT/tests/lib/swtpm.sh"

if ! command -v swtpm >/dev/null 2>&1; then
	echo "1..0 # SKIP swtpm is not installed"
	exit 0
fi

dir=$(mktemp -d)
chmod 755 "$dir"
TPMD_PID=
CERTD_PID=
FAKE_PID=
stop_tpmd() {
	[ -n "$TPMD_PID" ] || return 0
	kill -TERM "$TPMD_PID" 2>/dev/null
	wait "$TPMD_PID" 2>/dev/null
	TPMD_PID=
}
trap 'stop_tpmd; [ -n "$CERTD_PID" ] && kill -9 "$CERTD_PID"; [ -n "$FAKE_PID" ] && kill "$FAKE_PID"; idt_stop_all; swtpm_stop; rm -rf "$dir"' EXIT
V=api-version=2020-09-01

# What the host's time daemons say is the test's to choose: timedatectl
# answers what $dir/ntp holds, chronyc is not there to ask.
mkdir -p "$dir/bin"
printf '#!/bin/sh\ncat "%s/ntp"\n' "$dir" >"$dir/bin/timedatectl"
printf '#!/bin/sh\nexit 1\n' >"$dir/bin/chronyc"
chmod 755 "$dir/bin/timedatectl" "$dir/bin/chronyc"
echo yes >"$dir/ntp"
export PATH="$dir/bin:$PATH"
unset NO_COLOR EDGEID_ROOT

idt_cloud_prepare "$dir/cloud" 127.0.12.2 127.0.12.3
ok $? "the cloud's PKI and configuration" || { done_testing; exit; }
KEY=$(openssl rand -base64 32)
cloud_env_cli enrollment create --registration-id dev1 --symmetric-key "$KEY" >/dev/null
ok $? "a symmetric-key enrollment for dev1"
swtpm_start "$dir/tpm"
ok $? "swtpm starts" || { done_testing; exit; }

SUPER="hostname = \"check-device\"
[provisioning]
source = \"dps\"
global_endpoint = \"https://$CLOUD_DPS_HOST/\"
id_scope = \"$CLOUD_DPS_ID_SCOPE\"
[provisioning.attestation]
method = \"symmetric_key\"
registration_id = \"dev1\"
symmetric_key = { value = \"$KEY\" }
[tpm]
tcti = \"$EDGEID_TEST_TCTI\""
idt_device "$dir/dev" "$SUPER"
ok $? "edgeid config apply writes the device's files"
R=$IDT_ROOT

start_certd() {
	"$IDT_EDGEIDD" certd --root "$R" 2>>"$IDT_LOGS/certd.log" &
	CERTD_PID=$!
	_idt_wait_socket "$R/run/aziot/certd.sock" "$CERTD_PID" /certificates/x
}

start_tpmd() {
	"$IDT_EDGEIDD" tpmd --root "$R" 2>>"$IDT_LOGS/tpmd.log" &
	TPMD_PID=$!
	_idt_wait_socket "$R/run/aziot/tpmd.sock" "$TPMD_PID" /get_tpm_keys
}

# shellcheck disable=SC2119 # no extra options for identityd
cloud_env_start && idt_start_keyd && start_certd && start_tpmd && idt_start_identityd
ok $? "the cloud, keyd, certd, tpmd and identityd start"
idt_wait_state provisioned 60
ok $? "the device is provisioned"

# run_check ARGS...: $out (stdout and stderr) and $rc of edgeid check.
run_check() {
	out=$("$IDT_EDGEID" check --root "$R" "$@" 2>&1)
	rc=$?
}

# lines_of DESCRIPTION: the line of that check and its reason lines.
lines_of() {
	awk -v d="$1" '
		found && /^    / { print; next }
		found { exit }
		{ rest = $0; sub(/^[^ ]+ /, "", rest) }
		index(rest, d " - ") == 1 { found = 1; print }' <<<"$out"
}

# provisioned_lines: the identityd-provisioned lines of $out, the retry
#   line's numbers (which depend on timing) left out: "<retrying>" stands
#   for "identityd is retrying in N s (K failed attempts); once the cause
#   is fixed, 'edgeid system reprovision' tries at once" and for "identityd
#   is trying again now (K failed attempts)".
provisioned_lines() {
	lines_of "identityd has provisioned the device" | sed -E \
		-e "s/^    identityd is retrying in [0-9]+ s \\([0-9]+ failed attempts?\\); once the cause is fixed, 'edgeid system reprovision' tries at once\$/    <retrying>/" \
		-e 's/^    identityd is trying again now \([0-9]+ failed attempts?\)$/    <retrying>/'
}
NO_RETRY="identityd is not retrying until the settings change or 'edgeid system reprovision'"

# json_of ID: that check's object in the JSON output ($out).
json_of() {
	jq -c --arg id "$1" '.checks[] | select(.id == $id) | [.result, .reason]' <<<"$out"
}

# ---- everything works ------------------------------------------------------------------

run_check
is "$rc" 0 "all OK: exit status 0"
is "$out" "Configuration checks
--------------------
√ config.toml is well-formed - OK
√ keyd configuration is well-formed - OK
√ certd configuration is well-formed - OK
√ tpmd configuration is well-formed - OK
√ identityd configuration is well-formed - OK
√ daemon configurations up-to-date with config.toml - OK
√ host time is close to reference time - OK
- identity certificates are valid for at least 7 days - Skipped
    no certificate files are configured
√ trusted CA certificates are valid for at least 7 days - OK
- certificates in certd's store are valid for at least 7 days - Skipped
    $R/var/lib/aziot/certd/certs holds no certificates
√ keyd is running - OK
√ certd is running - OK
√ tpmd is running - OK
√ identityd is running - OK
√ TPM is reachable and has an endorsement key - OK
√ identityd has provisioned the device - OK

Connectivity checks
-------------------
√ host can connect to and perform TLS handshake with DPS endpoint - OK
√ host can connect to and perform TLS handshake with IoT Hub HTTPS port - OK

16 check(s) succeeded. 0 check(s) raised warnings. 0 check(s) raised errors. 2 check(s) were skipped." \
	"all OK: one line per check, grouped, and the summary"

run_check --verbose
is "$(lines_of "identityd has provisioned the device")" "√ identityd has provisioned the device - OK
    device 'dev1' in hub $CLOUD_HUB_HOST (from dps)" "--verbose: what an OK check found"
is "$(lines_of "host time is close to reference time" | sed 's/within [0-9]* s/within N s/')" \
	"√ host time is close to reference time - OK
    within N s of the clock of $CLOUD_DPS_HOST
    timedatectl: NTPSynchronized=yes" "... the clock compared with DPS's Date and timedatectl"
like "$(lines_of "TPM is reachable and has an endorsement key")" \
	"^√ TPM is reachable and has an endorsement key - OK
    through tpmd: endorsement key present; registration id [0-9a-f]{64}\$" \
	"... the TPM read through tpmd"
is "$(lines_of "trusted CA certificates are valid for at least 7 days" | sed 's/ on .*//')" \
	"√ trusted CA certificates are valid for at least 7 days - OK
    1 certificate in 1 file; the first to expire: $R/etc/edgeid/cloud-ca.pem" \
	"... the trust bundle identityd uses"

# ---- --output json ---------------------------------------------------------------------

run_check --output json
is "$rc" 0 "--output json: exit status 0"
python3 -c 'import json, sys; json.loads(sys.stdin.read())' <<<"$out"
ok $? "--output json prints one JSON document"
is "$(jq -r '[.checks[].id] | join(" ")' <<<"$out")" \
	"config-well-formed keyd-config-well-formed certd-config-well-formed tpmd-config-well-formed identityd-config-well-formed configs-up-to-date host-local-time identity-certificate-expiry trust-bundle-expiry certd-store-expiry keyd-running certd-running tpmd-running identityd-running tpm-endorsement-key identityd-provisioned host-connect-dps-endpoint host-connect-iothub" \
	"... with every check id, in order"
is "$(jq -c '.summary' <<<"$out")" '{"succeeded":16,"warnings":0,"errors":0,"skipped":2}' \
	"... and the summary"
is "$(jq -c '.checks[] | select(.id == "keyd-running")' <<<"$out")" \
	"{\"id\":\"keyd-running\",\"group\":\"configuration\",\"description\":\"keyd is running\",\"result\":\"ok\",\"reason\":\"answers on $R/run/aziot/keyd.sock\"}" \
	"... each check with its id, group, description, result and reason"
is "$(json_of identity-certificate-expiry)" '["skipped","no certificate files are configured"]' \
	"... a skipped check says why"
run_check -o json --dont-run "keyd-running, tpm-endorsement-key"
is "$(json_of keyd-running) $(json_of tpm-endorsement-key)" \
	'["skipped","not run (--dont-run)"] ["skipped","not run (--dont-run)"]' \
	"--dont-run skips the checks named"

# ---- options -------------------------------------------------------------------------

run_check --dont-run keyd-runing
is "$rc:$out" "2:edgeid check: --dont-run: unknown check 'keyd-runing'; 'edgeid check --list' lists them
Try 'edgeid check --help'." "--dont-run with an unknown id: usage error"
run_check --output yaml
is "$rc:$out" "2:edgeid check: --output: expected text or json, got \"yaml\"
Try 'edgeid check --help'." "--output yaml: usage error"
run_check --list
is "$rc:$(sed -n '1p;$p' <<<"$out")" "0:CHECK                          DESCRIPTION
host-connect-iothub            host can connect to and perform TLS handshake with IoT Hub HTTPS port" \
	"--list lists the checks"
run_check --help
is "$rc:$(head -n1 <<<"$out")" \
	"0:Usage: edgeid check [-c FILE] [--root DIR] [-o text|json] [--dont-run IDS]" "--help"
out=$("$IDT_EDGEID" check 2>&1 --root "$R" --bogus)
is "$?:$out" "2:edgeid check: unknown option '--bogus'
Try 'edgeid check --help'." "an unknown option: usage error"
out=$(EDGEID_ROOT=$R "$IDT_EDGEID" check -o json | jq -r '.checks[] | select(.id == "keyd-running") | .result')
is "$out" ok "EDGEID_ROOT works as --root"

# ---- colour only on a terminal, and not with NO_COLOR ------------------------------------------

out=$(script -qec "'$IDT_EDGEID' check --root '$R' --dont-run identityd-provisioned" /dev/null)
like "$out" $'\e\\[32m√ keyd is running - OK\e\\[0m' "on a terminal: OK lines are green"
out=$(NO_COLOR=1 script -qec "'$IDT_EDGEID' check --root '$R'" /dev/null)
if grep -q $'\e\\[' <<<"$out"; then ok 1 "NO_COLOR: no colour"; else ok 0 "NO_COLOR: no colour"; fi
run_check
if grep -q $'\e\\[' <<<"$out"; then ok 1 "not a terminal: no colour"; else ok 0 "not a terminal: no colour"; fi

# ---- a malformed config.toml ---------------------------------------------------------------------

printf 'hostname = "x"\n[provisioning\nsource = "dps"\n' >"$dir/bad.toml"
run_check -c "$dir/bad.toml"
is "$rc" 1 "a malformed config.toml: exit status 1"
is "$(lines_of "config.toml is well-formed")" \
	"× config.toml is well-formed - Error
    $dir/bad.toml:2:14: expected ']' to close the table header, got end of line" \
	"... the error with file:line:column"
is "$(lines_of "daemon configurations up-to-date with config.toml")" \
	"× daemon configurations up-to-date with config.toml - Error
    $dir/bad.toml was modified after the configuration of keyd, certd, identityd, tpmd and edged was written from it; run 'edgeid config apply'" \
	"... and it is newer than what was applied"
is "$(lines_of "identity certificates are valid for at least 7 days")" \
	"- identity certificates are valid for at least 7 days - Skipped
    $dir/bad.toml cannot be read" "... the checks that need it are skipped"
like "$out" "
14 check\\(s\\) succeeded. 0 check\\(s\\) raised warnings. 2 check\\(s\\) raised errors. 2 check\\(s\\) were skipped.\$" \
	"... and the summary counts the errors"

printf '[aziot_keys\n' >"$R/etc/aziot/keyd/config.d/90-bad.toml"
run_check
is "$rc $(lines_of "keyd configuration is well-formed")" \
	"1 × keyd configuration is well-formed - Error
    $R/etc/aziot/keyd/config.d/90-bad.toml:1:12: expected ']' to close the table header, got end of line" \
	"a malformed keyd drop-in: keyd's own check says where"
rm -f "$R/etc/aziot/keyd/config.d/90-bad.toml"

# ---- a daemon down -----------------------------------------------------------------------

kill -TERM "$IDT_KEYD_PID"
wait "$IDT_KEYD_PID"
IDT_KEYD_PID=
run_check
is "$rc" 1 "keyd down: exit status 1"
is "$(lines_of "keyd is running")" "× keyd is running - Error
    not answering on $R/run/aziot/keyd.sock: connecting to $R/run/aziot/keyd.sock: no such file or directory
    see 'edgeid system status' and 'edgeid system logs keyd'" "... keyd is not running, and why"
like "$out" "
15 check\\(s\\) succeeded. 0 check\\(s\\) raised warnings. 1 check\\(s\\) raised errors. 2 check\\(s\\) were skipped.\$" \
	"... one error"
run_check -o json
is "$rc $(json_of keyd-running | jq -r '.[0]') $(jq -c .summary <<<"$out")" \
	'1 error {"succeeded":15,"warnings":0,"errors":1,"skipped":2}' "... and in JSON"
idt_start_keyd
ok $? "keyd starts again"

# ---- tpmd down: the TPM is read directly ---------------------------------------------------------

stop_tpmd
run_check -o json
is "$rc $(json_of tpmd-running | jq -r '.[0]')" "1 error" "tpmd down: tpmd-running is an error"
tpm_reason=$(json_of tpm-endorsement-key)
regid=$("$IDT_EDGEID" tpm provisioning-info --tcti "$EDGEID_TEST_TCTI" --json | jq -r .registration_id)
is "$tpm_reason" \
	"[\"ok\",\"directly (tpmd is not answering): the TPM at $EDGEID_TEST_TCTI: endorsement key present; registration id $regid\"]" \
	"... the TPM is read directly, and its registration id is the one provisioning-info prints"
start_tpmd
ok $? "tpmd starts again"

# ---- no TPM: tpm.tcti points at nothing ----------------------------------------------------

# tpmd runs, but nothing answers at its TCTI: tpmd says the TPM is
# unavailable, in the sentence `edgeid system status` and `system logs`
# show too, and the check asks only tpmd's /tpm/status (it never calls
# /get_tpm_keys, which may create an EK).
NO_TPM=swtpm:host=127.0.20.6,port=2321
no_tpm="tpm.tcti \"$NO_TPM\": cannot reach the TPM (tcti:IO failure); check that it exists and that this user may open it"
printf 'tcti = "%s"\n' "$NO_TPM" >"$R/etc/aziot/tpmd/config.d/60-no-tpm.toml"
stop_tpmd
start_tpmd
ok $? "tpmd starts with tpm.tcti pointing at nothing"
keys_calls=$(grep -c 'GET /get_tpm_keys' "$IDT_LOGS/tpmd.log")
run_check
is "$rc" 0 "no TPM, provisioning by symmetric key: exit status 0"
is "$(lines_of "tpmd is running")" "√ tpmd is running - OK" "... tpmd is running"
is "$(lines_of "TPM is reachable and has an endorsement key")" \
	"- TPM is reachable and has an endorsement key - Skipped
    through tpmd: the TPM is unavailable: $no_tpm
    tpmd keeps trying; see 'edgeid system logs tpmd'
    provisioning does not use the TPM" \
	"... the TPM check is skipped with tpmd's reason, as provisioning does not use it"
is "$(grep -c 'GET /get_tpm_keys' "$IDT_LOGS/tpmd.log")" "$keys_calls" \
	"... the check did not ask tpmd for the TPM's keys"
grep -q "error: the TPM is unavailable: $no_tpm" "$IDT_LOGS/tpmd.log"
ok $? "... tpmd's log has the same sentence"

# Only the check is told that provisioning uses the TPM (identityd is not
# reloaded).
idt_identityd_dropin 60-tpm '[provisioning.attestation]
method = "tpm"
registration_id = "dev1"'
run_check
is "$rc $(lines_of "TPM is reachable and has an endorsement key")" \
	"1 × TPM is reachable and has an endorsement key - Error
    through tpmd: the TPM is unavailable: $no_tpm
    tpmd keeps trying; see 'edgeid system logs tpmd'" \
	"no TPM, provisioning by TPM: an error with tpmd's reason, exit status 1"
run_check -o json
is "$(json_of tpm-endorsement-key)" \
	"[\"error\",\"through tpmd: the TPM is unavailable: ${no_tpm//\"/\\\"}\\ntpmd keeps trying; see 'edgeid system logs tpmd'\"]" \
	"... and in JSON"
stop_tpmd
run_check
is "$rc $(lines_of "TPM is reachable and has an endorsement key")" \
	"1 × TPM is reachable and has an endorsement key - Error
    directly (tpmd is not answering): $no_tpm" \
	"no TPM and tpmd down: the TPM library's sentence, read directly"
idt_identityd_dropin 60-tpm ""
rm -f "$R/etc/aziot/tpmd/config.d/60-no-tpm.toml"
start_tpmd
ok $? "tpmd starts again with the TPM"
run_check
is "$(lines_of "TPM is reachable and has an endorsement key")" \
	"√ TPM is reachable and has an endorsement key - OK" "... and the TPM check passes again"

# ---- the clock is not synchronized ------------------------------------------------------

echo no >"$dir/ntp"
run_check
is "$rc $(lines_of "host time is close to reference time")" \
	"0 ‼ host time is close to reference time - Warning
    timedatectl: the system clock is not synchronized (NTPSynchronized=no)" \
	"timedatectl says the clock is not synchronized: a warning, exit status 0"
run_check --warnings-as-errors
is "$rc" 1 "... exit status 1 with --warnings-as-errors"
echo yes >"$dir/ntp"

# ---- the clock is off: a DPS whose Date is in 1994 ------------------------------------------------

# A stand-in DPS on 127.0.12.4 with a certificate of the cloud's CA; only
# the check is pointed at it (identityd is not told to reload).
FAKE_DPS=127.0.12.4
_cloud_env_key "$dir/fake.key" &&
	_cloud_env_openssl req -new -key "$dir/fake.key" -subj "/CN=$FAKE_DPS" -out "$dir/fake.csr" &&
	_cloud_env_sign "$dir/fake.csr" "$CLOUD_PKI/ca.pem" "$CLOUD_PKI/ca.key" "$dir/fake.pem" 30 \
		"subjectAltName=IP:$FAKE_DPS\nextendedKeyUsage=serverAuth"
ok $? "a certificate for the stand-in DPS"
python3 -c '
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def date_time_string(self, timestamp=None):
        return "Sun, 06 Nov 1994 08:49:37 GMT"
    def do_GET(self):
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
srv = http.server.HTTPServer((sys.argv[1], 443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()' "$FAKE_DPS" "$dir/fake.pem" "$dir/fake.key" 2>"$dir/fake.log" &
FAKE_PID=$!
for _ in $(seq 1 100); do
	curl -s -o /dev/null --cacert "$CLOUD_CA" "https://$FAKE_DPS/" && break
	sleep 0.05
done
idt_identityd_dropin 60-fake "[provisioning]
global_endpoint = \"https://$FAKE_DPS/\""
run_check
like "$(lines_of "host time is close to reference time")" \
	"^‼ host time is close to reference time - Warning
    the local clock is [0-9]+ s ahead of $FAKE_DPS \\(its Date: 1994-11-06T08:49:37Z\\); set the time, or TLS and SAS tokens may fail\$" \
	"a DPS whose clock says 1994: the local clock is ahead of it, a warning"
is "$(lines_of "host can connect to and perform TLS handshake with DPS endpoint")" \
	"√ host can connect to and perform TLS handshake with DPS endpoint - OK" \
	"... its TLS handshake is fine"
idt_identityd_dropin 60-fake ""
kill "$FAKE_PID"
wait "$FAKE_PID" 2>/dev/null
FAKE_PID=

# ---- a disabled enrollment ---------------------------------------------------------------------

cloud_env_cli enrollment disable dev1 >/dev/null
idt_api POST "/identities/device/reprovision?$V" '{"type":"aziot"}'
is "$status" 404 "the enrollment is disabled and the device reprovisioned: refused"
run_check
is "$rc" 1 "a disabled enrollment: exit status 1"
is "$(provisioned_lines)" "× identityd has provisioned the device - Error
    DPS refused registration 'dev1' in ID scope '$CLOUD_DPS_ID_SCOPE': the enrollment is disabled; enable it, then reprovision the device
    $(if [ "$(idt_status | jq -r .retrying)" = true ]; then echo "<retrying>"; else echo "$NO_RETRY"; fi)" \
	"... identityd's error, and whether it tries again"
is "$(lines_of "host can connect to and perform TLS handshake with IoT Hub HTTPS port")" \
	"- host can connect to and perform TLS handshake with IoT Hub HTTPS port - Skipped
    no hub is known yet: the device is not provisioned" "... no hub to connect to"
cloud_env_cli enrollment enable dev1 >/dev/null
idt_api POST "/identities/device/reprovision?$V" '{"type":"aziot"}'
is "$status" 204 "enabled again: reprovisioned"

# ---- DPS's certificate is not trusted --------------------------------------------------------

cp "$CLOUD_PKI/device-ca.pem" "$R/etc/edgeid/other-ca.pem"
idt_identityd_dropin 50-trust 'trust_bundle_cert = "file:///etc/edgeid/other-ca.pem"'
run_check
is "$rc" 1 "a trust bundle of another CA: exit status 1"
like "$(lines_of "host can connect to and perform TLS handshake with DPS endpoint")" \
	"^× host can connect to and perform TLS handshake with DPS endpoint - Error
    https://$CLOUD_DPS_HOST/: server certificate verification failed: .+
    trusted: $R/etc/edgeid/other-ca.pem and the system store; add the CA of DPS's certificate to trust_bundle_cert or to the system store\$" \
	"... DPS's certificate is not trusted, with the verification error"
verify=$(lines_of "host can connect to and perform TLS handshake with DPS endpoint" | sed -n 2p)
is "$verify" "    https://$CLOUD_DPS_HOST/: server certificate verification failed: unable to get local issuer certificate" \
	"... the verification error is OpenSSL's"
is "$(lines_of "host can connect to and perform TLS handshake with IoT Hub HTTPS port" | head -n1)" \
	"× host can connect to and perform TLS handshake with IoT Hub HTTPS port - Error" \
	"... nor the hub's"
idt_identityd_dropin 50-trust 'trust_bundle_cert = "file:///etc/edgeid/cloud-ca.pem"'

# ---- DPS unreachable: nothing listens at global_endpoint -----------------------------------

# reload_identityd: SIGHUP, and wait until identityd has read its settings
#   (new provisioning settings make it provision again).
reload_identityd() {
	local n
	n=$(grep -c 'configuration reloaded' "$IDT_LOGS/identityd.log")
	kill -HUP "$IDT_IDENTITYD_PID"
	for _ in $(seq 1 300); do
		[ "$(grep -c 'configuration reloaded' "$IDT_LOGS/identityd.log")" -gt "$n" ] && return 0
		sleep 0.1
	done
	return 1
}

# wait_status STATE TEXT: until identityd's state is STATE and its last
#   error TEXT (30 s). Returns 1 on timeout, with its status on stderr.
wait_status() {
	local s
	for _ in $(seq 1 300); do
		s=$(idt_status)
		[ "$(jq -r '.state + "|" + (.last_error // "")' <<<"$s")" = "$1|$2" ] && return 0
		sleep 0.1
	done
	tap_diag "identityd's status: $s"
	return 1
}

# A provisioned device whose DPS is now unreachable keeps the identity it
# had (device_info), unverified.
NO_DPS=127.0.20.5
idt_identityd_dropin 60-unreachable "[provisioning]
global_endpoint = \"https://$NO_DPS/\""
reload_identityd
ok $? "identityd reloads with a global_endpoint where nothing listens"
unreachable="cannot reach DPS: connecting to https://$NO_DPS:443: connection refused"
wait_status provisioned "$unreachable"
ok $? "... keeps its identity, and says why it could not register again"
run_check
is "$rc $(lines_of "identityd has provisioned the device")" \
	"1 ‼ identityd has provisioned the device - Warning
    device 'dev1' in hub $CLOUD_HUB_HOST (from device_info), not verified: $unreachable
    identityd keeps the identity it had; once the cause is fixed, 'edgeid system reprovision' registers again" \
	"... a warning with identityd's sentence: the identity is the one it had (exit status 1: DPS)"
is "$(lines_of "host can connect to and perform TLS handshake with DPS endpoint")" \
	"× host can connect to and perform TLS handshake with DPS endpoint - Error
    connecting to https://$NO_DPS:443: connection refused
    check provisioning.global_endpoint, and that DPS runs there and this host can reach it" \
	"... DPS: the connection error, and what to look at"

# A device that has never been provisioned (no device_info) while DPS is
# unreachable.
idt_stop_identityd
rm -f "$R/var/lib/aziot/identityd/device_info"
# shellcheck disable=SC2119 # no extra options for identityd
idt_start_identityd
ok $? "identityd starts again without device_info"
wait_status failed "$unreachable"
ok $? "... and fails to provision"
run_check
is "$rc" 1 "DPS unreachable, never provisioned: exit status 1"
is "$(provisioned_lines)" "× identityd has provisioned the device - Error
    $unreachable
    <retrying>" "... identityd's sentence, and that it tries again"
is "$(lines_of "host can connect to and perform TLS handshake with DPS endpoint")" \
	"× host can connect to and perform TLS handshake with DPS endpoint - Error
    connecting to https://$NO_DPS:443: connection refused
    check provisioning.global_endpoint, and that DPS runs there and this host can reach it" \
	"... DPS: the connection error, and what to look at"
is "$(lines_of "host can connect to and perform TLS handshake with IoT Hub HTTPS port")" \
	"- host can connect to and perform TLS handshake with IoT Hub HTTPS port - Skipped
    no hub is known yet: the device is not provisioned" "... no hub to connect to"
run_check -o json
is "$(json_of host-connect-dps-endpoint | jq -r '.[0]') $(json_of identityd-provisioned | jq -r '.[0]')" \
	"error error" "... both errors in JSON"
idt_identityd_dropin 60-unreachable ""
reload_identityd && idt_wait_state provisioned 60
ok $? "the endpoint fixed: identityd provisions the device again"

# ---- a wrong ID scope: not retried ---------------------------------------------------------

idt_identityd_dropin 70-scope '[provisioning]
scope_id = "0ne0000FFFF"'
reload_identityd
scope="DPS at https://$CLOUD_DPS_HOST does not serve ID scope '0ne0000FFFF' (404 The ID scope \"0ne0000FFFF\" is not served here. (errorCode 404000)); check provisioning.id_scope"
wait_status failed "$scope"
ok $? "a wrong ID scope: identityd fails to provision"
run_check
is "$rc $(lines_of "identityd has provisioned the device")" \
	"1 × identityd has provisioned the device - Error
    $scope
    $NO_RETRY" "... identityd's sentence, and that it does not retry"
is "$(lines_of "host can connect to and perform TLS handshake with DPS endpoint")" \
	"√ host can connect to and perform TLS handshake with DPS endpoint - OK" \
	"... DPS itself is reachable"
idt_identityd_dropin 70-scope ""
reload_identityd && idt_wait_state provisioned 60
ok $? "the scope fixed: identityd provisions the device again"
run_check
is "$rc $(lines_of "identityd has provisioned the device")" \
	"0 √ identityd has provisioned the device - OK" "... and the check passes"

# ---- certificates close to expiry ----------------------------------------------------------------

# An expired certificate (openssl ca sets the dates) and one valid 3 days.
mkdir -p "$dir/ca/new"
: >"$dir/ca/index.txt"
echo 01 >"$dir/ca/serial"
cat >"$dir/ca/ca.cnf" <<EOF
[ca]
default_ca = d
[d]
database = $dir/ca/index.txt
new_certs_dir = $dir/ca/new
serial = $dir/ca/serial
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = supplied
EOF
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$R/etc/edgeid/id.key" 2>/dev/null &&
	openssl req -new -key "$R/etc/edgeid/id.key" -subj /CN=dev1 -out "$dir/id.csr" &&
	openssl ca -batch -config "$dir/ca/ca.cnf" -selfsign -keyfile "$R/etc/edgeid/id.key" \
		-in "$dir/id.csr" -startdate 20200101000000Z -enddate 20200201000000Z \
		-out "$R/etc/edgeid/expired.pem" >/dev/null 2>&1 &&
	openssl req -x509 -new -key "$R/etc/edgeid/id.key" -subj /CN=dev1-soon -days 3 \
		-out "$R/etc/edgeid/soon.pem"
ok $? "openssl makes an expired certificate and one valid for 3 days"
x509_config() {
	printf '%s\n' "hostname = \"check-device\"
[provisioning]
source = \"dps\"
global_endpoint = \"https://$CLOUD_DPS_HOST/\"
id_scope = \"$CLOUD_DPS_ID_SCOPE\"
[provisioning.attestation]
method = \"x509\"
registration_id = \"dev1\"
identity_cert = \"file:///etc/edgeid/$1\"
identity_pk = \"file:///etc/edgeid/id.key\"" >"$dir/x509.toml"
}
rfc3339_end() {
	date -u -d "$(openssl x509 -in "$1" -noout -enddate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ
}

x509_config expired.pem
run_check -c "$dir/x509.toml" --dont-run configs-up-to-date
is "$rc" 1 "an expired identity certificate: exit status 1"
is "$(lines_of "identity certificates are valid for at least 7 days")" \
	"× identity certificates are valid for at least 7 days - Error
    $R/etc/edgeid/expired.pem: \"CN=dev1\" expired on 2020-02-01T00:00:00Z" \
	"... the file, the certificate and when it expired"

x509_config soon.pem
run_check -c "$dir/x509.toml" --dont-run configs-up-to-date
is "$rc" 0 "an identity certificate that expires in 3 days: exit status 0"
is "$(lines_of "identity certificates are valid for at least 7 days")" \
	"‼ identity certificates are valid for at least 7 days - Warning
    $R/etc/edgeid/soon.pem: \"CN=dev1-soon\" expires on $(rfc3339_end "$R/etc/edgeid/soon.pem") (in 3 days)" \
	"... a warning with the date"
like "$out" "
15 check\\(s\\) succeeded. 1 check\\(s\\) raised warnings. 0 check\\(s\\) raised errors. 2 check\\(s\\) were skipped.\$" \
	"... one warning in the summary"
run_check -c "$dir/x509.toml" --dont-run configs-up-to-date -o json
is "$(json_of identity-certificate-expiry | jq -r '.[0]')" warning "... and in JSON"

# The same in certd's store.
mkdir -p "$R/var/lib/aziot/certd/certs"
cp "$R/etc/edgeid/expired.pem" "$R/var/lib/aziot/certd/certs/deviceid-1.cer"
cp "$R/etc/edgeid/soon.pem" "$R/var/lib/aziot/certd/certs/deviceid-2.cer"
run_check
is "$rc $(lines_of "certificates in certd's store are valid for at least 7 days")" \
	"1 × certificates in certd's store are valid for at least 7 days - Error
    $R/var/lib/aziot/certd/certs/deviceid-1.cer: \"CN=dev1\" expired on 2020-02-01T00:00:00Z
    $R/var/lib/aziot/certd/certs/deviceid-2.cer: \"CN=dev1-soon\" expires on $(rfc3339_end "$R/etc/edgeid/soon.pem") (in 3 days)" \
	"certd's store: the expired certificate is an error, and the other one is listed too"
rm -rf "$R/var/lib/aziot/certd/certs"

# ---- an X.509 identity certificate made for another key ------------------------------------

# The device is switched to X.509 attestation, with an enrollment for
# x509dev's certificate, but the certificate installed is one made for
# another key.
cloud_env_device_cert "$dir/cloud" x509dev self >/dev/null &&
	cloud_env_cli enrollment create --registration-id x509dev \
		--certificate "$CLOUD_PKI/devices/x509dev.pem" >/dev/null
ok $? "an X.509 enrollment for x509dev"
cp "$CLOUD_PKI/devices/x509dev.key" "$R/etc/edgeid/device.key" &&
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/other.key" -out "$R/etc/edgeid/device.pem" -days 30 -subj /CN=x509dev \
		2>/dev/null
ok $? "x509dev's key, and a certificate made for another key"
printf '%s\n' "hostname = \"check-device\"
[provisioning]
source = \"dps\"
global_endpoint = \"https://$CLOUD_DPS_HOST/\"
id_scope = \"$CLOUD_DPS_ID_SCOPE\"
[provisioning.attestation]
method = \"x509\"
registration_id = \"x509dev\"
identity_cert = \"file:///etc/edgeid/device.pem\"
identity_pk = \"file:///etc/edgeid/device.key\"
[tpm]
tcti = \"$EDGEID_TEST_TCTI\"" >"$R/etc/aziot/config.toml"
"$IDT_EDGEID" config apply -c "$R/etc/aziot/config.toml" --root "$R" >"$IDT_LOGS/apply-x509.out" 2>&1
ok $? "config apply for X.509 attestation"
kill -TERM "$IDT_KEYD_PID" "$CERTD_PID" && wait "$IDT_KEYD_PID" "$CERTD_PID"
IDT_KEYD_PID=
CERTD_PID=
idt_stop_identityd
# shellcheck disable=SC2119 # no extra options for identityd
idt_start_keyd && start_certd && idt_start_identityd
ok $? "keyd, certd and identityd start again with it"
wrong_key="the identity certificate 'device-id' was not made for key pair 'device-id' in keyd; install the certificate issued for that key, or the key it was issued for"
wait_status failed "$wrong_key"
ok $? "... identityd fails to provision"
run_check --verbose
is "$rc" 1 "a certificate for another key: exit status 1"
is "$(provisioned_lines)" "× identityd has provisioned the device - Error
    $wrong_key
    <retrying>" "... identityd's sentence, and that it tries again"
is "$(lines_of "identity certificates are valid for at least 7 days")" \
	"√ identity certificates are valid for at least 7 days - OK
    1 certificate in 1 file; the first to expire: $R/etc/edgeid/device.pem on $(rfc3339_end "$R/etc/edgeid/device.pem")" \
	"... its validity is fine: identity-certificate-expiry is OK"
cp "$CLOUD_PKI/devices/x509dev.pem" "$R/etc/edgeid/device.pem"
idt_api POST "/identities/device/reprovision?$V" '{"type":"aziot"}'
is "$status" 204 "the right certificate installed: reprovisioned"
run_check
is "$rc $(lines_of "identityd has provisioned the device")" \
	"0 √ identityd has provisioned the device - OK" "... and the check passes"

# ---- identityd down ---------------------------------------------------------------------

idt_stop_identityd
run_check
is "$(lines_of "identityd has provisioned the device")" \
	"- identityd has provisioned the device - Skipped
    identityd is not running" "identityd down: its status is not asked for"
is "$(lines_of "identityd is running" | head -n1)" "× identityd is running - Error" \
	"... and identityd-running is the error"

stop_tpmd
kill -TERM "$IDT_KEYD_PID" && wait "$IDT_KEYD_PID"
IDT_KEYD_PID=
idt_no_sanitizer_reports "edgeid check"
done_testing
