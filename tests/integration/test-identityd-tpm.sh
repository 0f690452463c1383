#!/usr/bin/env bash
# identityd with TPM attestation, end to end with the real processes:
# swtpm, tpmd, keyd, identityd and edgeid-cloud (127.0.4.32/.33). The
# EK and SRK come from tpmd; the unauthenticated PUT gets the 401 with
# DPS's authentication key, which tpmd imports; the registration SAS and
# later the hub SAS are signed in the TPM; the final hub key DPS sends is
# imported too, and the hub accepts the device with it, also after a
# restart (the key lives in the TPM) and after reprovisioning. A tpmd that
# is not running gives one clear sentence.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
. "$EDGEID_SOURCE_ROOT/tests/integration/test-identityd-lib.sh"
. "$EDGEID_SOURCE_ROOT/tests/lib/swtpm.sh"

for cmd in swtpm sha256sum base64; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "1..0 # SKIP $cmd is not installed"
		exit 0
	fi
done

dir=$(mktemp -d)
chmod 755 "$dir"
tpmd_pid=
cleanup() {
	[ -n "$tpmd_pid" ] && kill -9 "$tpmd_pid" 2>/dev/null
	idt_stop_all
	swtpm_stop
	rm -rf "$dir"
}
trap cleanup EXIT
V=api-version=2020-09-01
export TSS2_LOG=all+none

idt_cloud_prepare "$dir/cloud" 127.0.4.32 127.0.4.33 && cloud_env_start
ok $? "edgeid-cloud starts" || { done_testing; exit; }
swtpm_start "$dir/tpm" 2>"$dir/swtpm.err"
ok $? "swtpm starts" || { sed 's/^/# /' "$dir/swtpm.err"; done_testing; exit; }

# config REGISTRATION-ID: the device's super-config.
config() {
	printf '%s\n' "hostname = \"tpm-device\"
[provisioning]
source = \"dps\"
global_endpoint = \"https://$CLOUD_DPS_HOST/\"
id_scope = \"$CLOUD_DPS_ID_SCOPE\"
[provisioning.attestation]
method = \"tpm\"
registration_id = \"$1\"
[tpm]
tcti = \"$EDGEID_TEST_TCTI\""
}

start_tpmd() {
	"$IDT_EDGEIDD" tpmd --root "$IDT_ROOT" 2>>"$IDT_LOGS/tpmd.log" &
	tpmd_pid=$!
	_idt_wait_socket "$IDT_ROOT/run/aziot/tpmd.sock" "$tpmd_pid" /get_tpm_keys
}

# The registration id is known once the EK is: apply, start tpmd, read the
# EK, apply again with the id (aziot's docs: sha256 of ek.pub, in hex).
idt_device "$dir/dev" "$(config unknown)"
ok $? "config apply"
start_tpmd
ok $? "tpmd starts"
keys=$(curl -s --unix-socket "$IDT_ROOT/run/aziot/tpmd.sock" "http://tpmd.sock/get_tpm_keys?$V")
ek=$(jq -r .endorsement_key <<<"$keys")
regid=$(base64 -d <<<"$ek" | sha256sum | cut -d' ' -f1)
is "${#regid}" 64 "tpmd gives the EK; its SHA-256 is the registration id"
printf '%s\n' "$(config "$regid")" >"$IDT_ROOT/etc/aziot/config.toml"
"$IDT_EDGEID" config apply -c "$IDT_ROOT/etc/aziot/config.toml" --root "$IDT_ROOT" >/dev/null 2>&1
ok $? "config apply with the registration id"
out=$(cloud_env_cli enrollment create --registration-id "$regid" --endorsement-key "$ek" \
	--device-id tpm-device-1 2>&1)
ok $? "a TPM enrollment with the EK" || tap_diag "$out"

# ---- tpmd is not running -----------------------------------------------------------------

kill -TERM "$tpmd_pid" && wait "$tpmd_pid"
tpmd_pid=
idt_start_keyd && idt_start_identityd
ok $? "keyd and identityd start"
idt_wait_state failed 30
ok $? "without tpmd, provisioning fails"
is "$(idt_status | jq -c '[.retrying, .last_error]')" \
	"[true,\"cannot read the TPM's keys: cannot reach tpmd at $IDT_ROOT/run/aziot/tpmd.sock: no such socket (is it running?)\"]" \
	"... with one sentence, and is tried again"

# ---- provisioned through the TPM ------------------------------------------------------------

start_tpmd
ok $? "tpmd starts"
idt_wait_state provisioned 60
ok $? "identityd provisions once tpmd answers"
is "$(idt_status | jq -c '[.device.device_id, .device.from, .device.hub_verified]')" \
	'["tpm-device-1","dps",true]' "... by DPS, and the hub accepts the SAS signed in the TPM"
is "$(cloud_env_cli device show tpm-device-1 --json | jq -r .authentication.type)" sas \
	"the hub has the device, with the key DPS put in the TPM"
is "$(cloud_env_cli registration show "$regid" --json | jq -r '.status + " " + .deviceId')" \
	"assigned tpm-device-1" "DPS's registration record"
idt_api POST "/identities/device?$V" '{"type":"aziot"}'
is "$status $body" \
	"200 {\"type\":\"aziot\",\"spec\":{\"hubName\":\"$CLOUD_HUB_HOST\",\"gatewayHost\":\"$CLOUD_HUB_HOST\",\"deviceId\":\"tpm-device-1\",\"auth\":{\"type\":\"tpm\"}}}" \
	"POST /identities/device: a tpm identity, without a key handle"
out=$("$IDT_EDGEID" identity show --root "$IDT_ROOT")
like "$out" 'authentication:  tpm \(key in the TPM\)' "edgeid identity show: tpm"
n=$(grep -c 'info: <-- POST /import_auth_key ' "$IDT_LOGS/tpmd.log")
is "$n" 2 "tpmd imported two keys: the registration key and the hub key"

# ---- restart: the hub key is still in the TPM ---------------------------------------------------

idt_stop_identityd
idt_start_identityd
idt_wait_state provisioned 30
is "$(idt_status | jq -c '[.device.from, .device.hub_verified]')" '["device_info",true]' \
	"after a restart the hub accepts the device with the key kept in the TPM"

# ---- reprovisioning: a new hub key ---------------------------------------------------------

old=$(cloud_env_cli device show tpm-device-1 --json | jq -r .authentication.symmetricKey.primaryKey)
idt_api POST "/identities/device/reprovision?$V" '{"type":"aziot"}'
is "$status" 204 "the reprovision call succeeds"
is "$(idt_status | jq -c '[.device.from, .device.hub_verified]')" '["dps",true]' \
	"... and the hub accepts the device"
new=$(cloud_env_cli device show tpm-device-1 --json | jq -r .authentication.symmetricKey.primaryKey)
[ "$old" != "$new" ]
ok $? "... with the new key DPS sent"

idt_stop_identityd
ok $? "identityd stops cleanly"
kill -TERM "$tpmd_pid" && wait "$tpmd_pid"
tpmd_pid=
idt_no_sanitizer_reports "TPM"
done_testing
