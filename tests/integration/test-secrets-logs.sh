#!/usr/bin/env bash
# Secrets never reach a log or a command's output. Four devices provision
# through edgeid-cloud (DPS + hub on 127.0.15.12/.13, logging at debug with
# -v) with every device daemon at debug (AZIOT_LOG=debug through
# `edgeidd supervise`): a symmetric key of an individual enrollment, the
# key derived from an enrollment group's key, an X.509 certificate and a
# TPM (swtpm); a fifth device, whose key DPS refuses, fails. Each device
# also runs `edgeid -v` config check, show and apply, system status,
# system logs and identity show, and signs a hub token through keyd; a key
# with a typo is refused by config check; the test sends the cloud requests with SAS tokens it
# computes itself (right and wrong signatures, the service policies'
# keys). Then every log file and every captured output is searched for
# each secret, in base64, hex and URL-encoded form (a prefix, so that a
# truncated print is caught too): the enrollment keys, the group key and
# the derived device key, the hub keys (for the TPM device, the key DPS
# sent inside the authenticationKey blob), the service policies' keys,
# keyd's handle-validation key, the test's SAS signatures, the device's
# private key; and in the logs for anything shaped like a secret: a
# `sig=` with a value, `SharedAccessKey=` with a value, a PEM private key,
# an authenticationKey value. A planted secret shows that the search
# finds what it looks for.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
. "$EDGEID_SOURCE_ROOT/tests/lib/cloud-env.sh"
. "$EDGEID_SOURCE_ROOT/tests/lib/swtpm.sh"

for tool in curl jq openssl swtpm sha256sum base64 od; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "1..0 # SKIP $tool is not installed"
		exit 0
	fi
done
if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP needs root (the cloud listens on port 443)"
	exit 0
fi

EDGEID=$EDGEID_BUILD_ROOT/edgeid
EDGEIDD=$EDGEID_BUILD_ROOT/edgeidd
V=api-version=2020-09-01
V2=api-version=2021-12-01
dir=$(mktemp -d)
chmod 755 "$dir"
out=$dir/out     # every command's output the test captures, searched
mkdir -p "$out"
cleanup() {
	local pidfile
	for pidfile in "$dir"/dev-*/root/run/edgeid/supervise.pid; do
		[ -f "$pidfile" ] && kill -TERM "$(cat "$pidfile")" 2>/dev/null
	done
	cloud_env_stop >/dev/null 2>&1
	swtpm_stop
	rm -rf "$dir"
}
trap cleanup EXIT

# ---- the cloud, logging at debug ------------------------------------------------------------

# cloud_env_start runs $CLOUD_BIN serve: this wrapper adds --verbose, to
# the admin commands too (their stderr is searched as well).
printf '#!/bin/sh\nexec "%s" --verbose "$@"\n' "$EDGEID_BUILD_ROOT/edgeid-cloud" >"$dir/cloud-v"
chmod 755 "$dir/cloud-v"
CLOUD_BIN=$dir/cloud-v
CLOUD_DPS_HOST=127.0.15.12
CLOUD_HUB_HOST=127.0.15.13
export CLOUD_BIN CLOUD_DPS_HOST CLOUD_HUB_HOST
mkdir -p "$dir/cloud"
cloud_env_pki "$dir/cloud" && cloud_env_config "$dir/cloud" && cloud_env_export && cloud_env_start
ok $? "edgeid-cloud --verbose serve starts" || {
	done_testing
	exit
}
swtpm_start "$dir/tpm" 2>"$dir/swtpm.err"
ok $? "swtpm starts" || {
	sed 's/^/# /' "$dir/swtpm.err"
	done_testing
	exit
}

# admin ARGS...: an edgeid-cloud admin command. Its stdout, which shows
# keys on purpose (`device show`), is the caller's and not searched; its
# stderr (its debug log) is.
admin() {
	cloud_env_cli "$@" 2>>"$out/cloud-admin.err"
}

# b64hex B64: the hex of the bytes.
b64hex() { printf '%s' "$1" | base64 -d | od -An -v -tx1 | tr -d ' \n'; }
urlenc() { jq -rn --arg s "$1" '$s|@uri'; }

KEY_IND=$(openssl rand -base64 32)
KEY_GROUP=$(openssl rand 64 | base64 -w0)
# The device key of an enrollment group member (dps-protocol.md §2.4):
# base64(HMAC-SHA256(base64-decoded group key, registration id)).
KEY_DERIVED=$(printf '%s' sym-member-1 |
	openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(b64hex "$KEY_GROUP")" -binary | base64)
cloud_env_device_cert "$dir/cloud" x509-device self >/dev/null
ok $? "a device certificate and key (EC P-256)"
admin enrollment create --registration-id sym-single --symmetric-key "$KEY_IND" >/dev/null &&
	admin group create sym-group --symmetric-key "$KEY_GROUP" >/dev/null &&
	admin enrollment create --registration-id x509-device \
		--certificate "$CLOUD_PKI/devices/x509-device.pem" >/dev/null
ok $? "enrollments: symmetric key, symmetric-key group, X.509"

# ---- the devices ----------------------------------------------------------------------------

# device NAME CONFIG-TEXT: a device root with the super-config (and the
#   cloud's CA); sets R to the root.
device() {
	R=$dir/dev-$1/root
	mkdir -p "$R/etc/aziot" "$R/etc/edgeid" || return 1
	printf '%s\n' "$2" >"$R/etc/aziot/config.toml"
	cp "$CLOUD_CA" "$R/etc/edgeid/cloud-ca.pem" || return 1
	# The state directories the package creates, owned by the daemons'
	# users (the supervisor runs each daemon as its user when it exists).
	local d owner
	for d in keyd:aziotks certd:aziotcs identityd:aziotid tpmd:aziottpm; do
		owner=()
		getent passwd "${d#*:}" >/dev/null && owner=(-o "${d#*:}" -g "${d#*:}")
		install -d -m 0700 "${owner[@]}" "$R/var/lib/aziot/${d%%:*}" || return 1
	done
}

# common HOSTNAME: the super-config's first lines.
common() {
	printf 'hostname = "%s"\ntrust_bundle_cert = "file:///etc/edgeid/cloud-ca.pem"\n' "$1"
	printf '[provisioning]\nsource = "dps"\nglobal_endpoint = "https://%s/"\nid_scope = "%s"\n' \
		"$CLOUD_DPS_HOST" "$CLOUD_DPS_ID_SCOPE"
}

# run_device NAME STATE: config check, show, apply; the daemons at debug;
#   until identityd's state is STATE (provisioned or failed); status, logs,
#   identity; when provisioned with a symmetric key, a hub token signed
#   through keyd. One TAP line per step.
run_device() {
	local name=$1 expect=$2 st handle se sr msg sig pid rc=0
	local o=$out/$name
	"$EDGEID" -v config check -c "$R/etc/aziot/config.toml" >"$o-config-check.out" 2>&1
	ok $? "$name: edgeid -v config check"
	"$EDGEID" -v config show -c "$R/etc/aziot/config.toml" >"$o-config-show.out" 2>&1
	ok $? "$name: edgeid -v config show"
	"$EDGEID" -v config apply -c "$R/etc/aziot/config.toml" --root "$R" >"$o-config-apply.out" 2>&1
	ok $? "$name: edgeid -v config apply"
	AZIOT_LOG=debug "$EDGEIDD" supervise --root "$R" --run-dir "$R/run/edgeid" \
		>"$o-supervise.out" 2>&1
	ok $? "$name: edgeidd supervise starts the daemons with AZIOT_LOG=debug"
	for _ in $(seq 1 300); do
		st=$(curl -s --unix-socket "$R/run/aziot/identityd.sock" \
			"http://identityd.sock/identities/provisioning/status?$V2")
		[ "$(jq -r '.state + " " + (.busy|tostring)' <<<"$st" 2>/dev/null)" = "$expect false" ] &&
			break
		sleep 0.1
	done
	if [ "$expect" = provisioned ]; then
		is "$(jq -r '.state + " " + (.device.hub_verified|tostring)' <<<"$st")" "provisioned true" \
			"$name: provisioned, and the hub accepts the device" || tap_diag "$st"
	else
		rc=1
		is "$(jq -r .state <<<"$st")" "$expect" "$name: identityd's state is $expect" ||
			tap_diag "$st"
	fi
	"$EDGEID" -v system status --root "$R" --run-dir "$R/run/edgeid" >"$o-system-status.out" 2>&1
	ok $? "$name: edgeid -v system status"
	"$EDGEID" -v identity show --root "$R" >"$o-identity-show.out" 2>&1
	is "$?" "$rc" "$name: edgeid -v identity show exits $rc"
	"$EDGEID" -v identity show --json --root "$R" >"$o-identity-show-json.out" 2>&1
	"$EDGEID" -v identity list --root "$R" >"$o-identity-list.out" 2>&1
	# The key handle identityd gives its callers (and `identity show --json`
	# prints) lets them ask keyd to sign; its signature must reach no log.
	handle=$(curl -s --unix-socket "$R/run/aziot/identityd.sock" -H 'Content-Type: application/json' \
		-d '{"type":"aziot"}' "http://identityd.sock/identities/device?$V" | jq -r '.spec.auth.keyHandle // empty')
	if [ -n "$handle" ] && [ "$expect" = provisioned ] && [ "$name" != x509 ]; then
		se=$(($(date +%s) + 600))
		sr="$CLOUD_HUB_HOST/devices/$(jq -r .device.device_id <<<"$st")"
		msg=$(printf '%s\n%s' "$sr" "$se" | base64 -w0)
		sig=$(curl -s --unix-socket "$R/run/aziot/keyd.sock" -H 'Content-Type: application/json' \
			-d "{\"keyHandle\":\"$handle\",\"algorithm\":\"HMAC-SHA256\",\"parameters\":{\"message\":\"$msg\"}}" \
			"http://keyd.sock/sign?api-version=2021-05-01" | jq -r .signature)
		printf '%s\n' "$sig" >>"$dir/sigs"
		printf '%s\n' "${handle##*sig=}" >>"$dir/handle-sigs"
		is "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CLOUD_CA" \
			-H "Authorization: SharedAccessSignature sr=$sr&sig=$(urlenc "$sig")&se=$se" \
			"https://$sr/messages/deviceBound?api-version=2021-04-12")" 204 \
			"$name: a hub token signed through keyd works"
	fi
	"$EDGEID" -v system logs --root "$R" --run-dir "$R/run/edgeid" -n all >"$o-system-logs.out" 2>&1
	ok $? "$name: edgeid -v system logs"
	pid=$(cat "$R/run/edgeid/supervise.pid")
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 1 100); do
		[ -d "/proc/$pid" ] || break
		sleep 0.1
	done
}

device sym "$(common sym-device)
[provisioning.attestation]
method = \"symmetric_key\"
registration_id = \"sym-single\"
symmetric_key = { value = \"$KEY_IND\" }"
# A key with a typo: the error names the place, not the value.
sed "s|$KEY_IND|$KEY_IND!|" "$R/etc/aziot/config.toml" >"$dir/typo.toml"
"$EDGEID" -v config check -c "$dir/typo.toml" >"$out/typo-config-check.out" 2>&1
is "$?" 1 "config check refuses a key that is not base64"
like "$(cat "$out/typo-config-check.out")" \
	"^$dir/typo.toml:[0-9]+:[0-9]+: provisioning\.attestation\.symmetric_key\.value: " \
	"... and names the key's place"
run_device sym provisioned

# The same registration with a key DPS does not accept: the failure is
# logged and kept in the status, the key and the token are not.
KEY_WRONG=$(openssl rand -base64 32)
device wrong "$(common wrong-device)
[provisioning.attestation]
method = \"symmetric_key\"
registration_id = \"sym-single\"
symmetric_key = { value = \"$KEY_WRONG\" }"
run_device wrong failed

device group "$(common group-device)
[provisioning.attestation]
method = \"symmetric_key\"
registration_id = \"sym-member-1\"
symmetric_key = { value = \"$KEY_DERIVED\" }"
run_device group provisioned

device x509 "$(common x509-device)
[provisioning.attestation]
method = \"x509\"
identity_cert = \"file:///etc/edgeid/device.pem\"
identity_pk = \"file:///etc/edgeid/device.key\""
cp "$CLOUD_PKI/devices/x509-device.pem" "$R/etc/edgeid/device.pem"
cp "$CLOUD_PKI/devices/x509-device.key" "$R/etc/edgeid/device.key"
# keyd reads it as its own user, as aziot's keyd does.
! getent passwd aziotks >/dev/null || chown aziotks:aziotks "$R/etc/edgeid/device.key"
run_device x509 provisioned

# The TPM: its registration id and EK, as the seeds read them.
"$EDGEID" -v tpm provisioning-info --tcti "$EDGEID_TEST_TCTI" --json >"$out/tpm-info.out" \
	2>"$out/tpm-info.err"
regid=$(jq -r .registration_id "$out/tpm-info.out")
ek=$(jq -r .endorsement_key "$out/tpm-info.out")
admin enrollment create --registration-id "$regid" --endorsement-key "$ek" \
	--device-id tpm-device >/dev/null
ok $? "a TPM enrollment"
device tpm "$(common tpm-device)
[provisioning.attestation]
method = \"tpm\"
registration_id = \"$regid\"
[tpm]
tcti = \"$EDGEID_TEST_TCTI\""
run_device tpm provisioned

# ---- requests with tokens the test computes ---------------------------------------------

# sas_sig TOKEN: the sig value of a token (URL-decoded).
sas_sig() {
	local s=${1#*sig=}
	s=${s%%&*}
	printf '%b' "${s//%/\\x}"
}

# call NAME TOKEN URL [CURL-ARGS...]: a request to the cloud with TOKEN;
#   prints the status; the signature goes to the list the logs are
#   searched for.
call() {
	local name=$1 token=$2 url=$3
	shift 3
	sas_sig "$token" >>"$dir/sigs"
	printf '\n' >>"$dir/sigs"
	curl -s -o "$out/call-$name.body" -w '%{http_code}' --cacert "$CLOUD_CA" \
		-H "Authorization: $token" "$@" "$url"
}

H=$CLOUD_HUB_HOST
D=$CLOUD_DPS_HOST
is "$(call owner "$(cloud_env_sas "$H" "$CLOUD_HUB_OWNER_KEY" iothubowner)" \
	"https://$H/devices/sym-single?api-version=2021-04-12")" 200 \
	"the hub's registry with an iothubowner token"
is "$(call registry "$(cloud_env_sas "$H" "$CLOUD_HUB_REGISTRY_KEY" registryReadWrite)" \
	"https://$H/devices?api-version=2021-04-12")" 200 "... with a registryReadWrite token"
is "$(call owner-bad "$(cloud_env_sas "$H" "$KEY_IND" iothubowner)" \
	"https://$H/devices?api-version=2021-04-12")" 401 "... refuses a token with a wrong signature"
is "$(call device "$(cloud_env_sas "$H/devices/sym-single" "$KEY_IND")" \
	"https://$H/devices/sym-single/messages/deviceBound?api-version=2021-04-12")" 204 \
	"a device token signed with the enrollment's key"
is "$(call device-bad "$(cloud_env_sas "$H/devices/sym-single" "$KEY_DERIVED")" \
	"https://$H/devices/sym-single/messages/deviceBound?api-version=2021-04-12")" 401 \
	"... and one with a wrong key is refused"
is "$(call dps-owner "$(cloud_env_sas "$D" "$CLOUD_DPS_OWNER_KEY" provisioningserviceowner)" \
	"https://$D/enrollments/sym-single?api-version=2021-10-01")" 200 \
	"the enrollment API with a provisioningserviceowner token"
is "$(call dps-register "$(cloud_env_sas "$CLOUD_DPS_ID_SCOPE/registrations/sym-member-1" \
	"$KEY_DERIVED" registration)" \
	"https://$D/$CLOUD_DPS_ID_SCOPE/registrations/sym-member-1/register?api-version=2021-06-01" \
	-X PUT -H 'Content-Type: application/json' -d '{"registrationId":"sym-member-1"}')" 202 \
	"a registration signed with the derived key"
is "$(call dps-register-bad "$(cloud_env_sas "$CLOUD_DPS_ID_SCOPE/registrations/sym-member-1" \
	"$KEY_IND" registration)" \
	"https://$D/$CLOUD_DPS_ID_SCOPE/registrations/sym-member-1/register?api-version=2021-06-01" \
	-X PUT -H 'Content-Type: application/json' -d '{"registrationId":"sym-member-1"}')" 401 \
	"... and one signed with a wrong key is refused"

is "$(call hub-malformed "SharedAccessSignature sr=$H&sig=$(urlenc "$KEY_WRONG")&se=soon&skn=iothubowner" \
	"https://$H/devices?api-version=2021-04-12")" 401 "the hub refuses a malformed token"
is "$(call dps-malformed "SharedAccessSignature sr=$D&sig=$(urlenc "$KEY_GROUP")&skn=nobody" \
	"https://$D/enrollments/sym-single?api-version=2021-10-01")" 401 \
	"the enrollment API refuses a token without an expiry"

# ---- the secrets ------------------------------------------------------------------------

# The hub's keys of each device (for the TPM device: the key DPS sent in
# the authenticationKey blob, which only the TPM should have seen).
for dev in sym-single sym-member-1 x509-device tpm-device; do
	admin device show "$dev" --json >"$dir/device-$dev.json"
done
hub_key() { jq -r ".authentication.symmetricKey.$2Key // empty" "$dir/device-$1.json"; }
tpm_hub_key=$(hub_key tpm-device primary)
like "$tpm_hub_key" '^[A-Za-z0-9+/]{40,}=*$' "the hub holds the TPM device's key DPS sent in the blob"
hub_secondary=$(sed -n '/name = "iothubowner"/,/^rights/s/^secondary_key = "\(.*\)"$/\1/p' \
	"$CLOUD_CONFIG")
enrollment_secondary=$(admin enrollment show sym-single --keys --json |
	jq -r '.attestation.symmetricKey.secondaryKey // empty')
group_secondary=$(admin group show sym-group --keys --json |
	jq -r '.attestation.symmetricKey.secondaryKey // empty')
hvk=$(find "$dir/dev-sym/root/var/lib/aziot/keyd" -name 'handlevalidationkey-*' -type f | head -n 1)
hvk_b64=
[ -n "$hvk" ] && hvk_b64=$(base64 -w0 <"$hvk")
pem_body=$(sed -n 2p "$CLOUD_PKI/devices/x509-device.key")

# The files searched: every log and every captured output.
mapfile -t files < <(find "$dir"/dev-*/root/run/edgeid/logs "$out" -type f \
	! -name 'call-*.body' | sort)
files+=("$CLOUD_DIR/cloud.log" "$CLOUD_DIR/cloud.out")
mapfile -t logs < <(find "$dir"/dev-*/root/run/edgeid/logs -type f | sort)
logs+=("$CLOUD_DIR/cloud.log" "$CLOUD_DIR/cloud.out" "$out/cloud-admin.err")
n_lines=$(cat "${files[@]}" | wc -l)
tap_diag "searching ${#files[@]} files ($n_lines lines)"
missing=
for f in "$dir"/dev-x509/root/run/edgeid/logs/{keyd,certd,tpmd,identityd}.log \
	"$CLOUD_DIR/cloud.log"; do
	grep -q '\] debug: ' "$f" || missing+=" $f"
done
is "$missing" "" "keyd, certd, tpmd, identityd and the cloud logged at debug"

# hits FIXED-STRING FILE...: file:line of each occurrence (case-insensitive
#   for hex).
hits() {
	local needle=$1
	shift
	grep -HnF -i -- "$needle" "$@" 2>/dev/null
}

# forms B64: the forms in which a base64 secret is searched for, one a
#   line: a 20-character prefix of the base64, of its URL encoding when
#   that differs, and 24 hex digits of the bytes.
forms() {
	local b64=$1 u
	printf '%s\n' "${b64:0:20}"
	u=$(urlenc "$b64")
	[ "${u:0:20}" != "${b64:0:20}" ] && printf '%s\n' "${u:0:20}"
	printf '%s\n' "$(b64hex "$b64" | cut -c1-24)"
}

# absent NAME B64 [logs]: one TAP line: no form of the secret in any file
#   (with "logs": in any log).
absent() {
	local name=$1 b64=$2 f found="" where=("${files[@]}") what="log or output"
	if [ "${3:-}" = logs ]; then
		where=("${logs[@]}")
		what=log
	fi
	if [ -z "$b64" ]; then
		ok 1 "$name: the secret is known to the test"
		return
	fi
	while read -r f; do
		found+=$(hits "$f" "${where[@]}")
	done < <(forms "$b64")
	is "$found" "" "$name appears in no $what"
}

# absent_re NAME ERE: one TAP line: no match in the logs.
absent_re() {
	local found
	found=$(grep -HnE -- "$2" "${logs[@]}" 2>/dev/null | cut -c1-300)
	is "$found" "" "no log holds $1"
}

# A planted secret: the search finds it, so that it can fail.
plant=$(dirname "${logs[0]}")/planted.log
printf 'info: key %s\n' "$(b64hex "$KEY_GROUP")" >"$plant"
files+=("$plant")
found=$(hits "$(forms "$KEY_GROUP" | tail -n 1)" "${files[@]}")
is "$found" "$plant:1:info: key $(b64hex "$KEY_GROUP")" "a planted secret (hex) is found"
printf 'x sig=%s\n-----BEGIN PRIVATE KEY-----\n' "$(urlenc "$KEY_IND")" >"$plant"
logs+=("$plant")
is "$(grep -cE 'sig=[A-Za-z0-9%+/=]{16,}|PRIVATE KEY' "$plant")" 2 \
	"a planted sig= and PEM marker are found"
unset 'files[-1]' 'logs[-1]'
rm -f "$plant"

absent "the individual enrollment's key" "$KEY_IND"
absent "the individual enrollment's secondary key" "$enrollment_secondary"
absent "the enrollment group's key" "$KEY_GROUP"
absent "the enrollment group's secondary key" "$group_secondary"
absent "the derived device key" "$KEY_DERIVED"
absent "the key DPS refused" "$KEY_WRONG"
absent "the symmetric-key device's hub key" "$(hub_key sym-single primary)"
absent "the group member's hub key" "$(hub_key sym-member-1 primary)"
absent "the TPM device's hub key (from the authenticationKey blob)" "$tpm_hub_key"
absent "the TPM device's secondary hub key" "$(hub_key tpm-device secondary)"
absent "the hub's iothubowner key" "$CLOUD_HUB_OWNER_KEY"
absent "the hub's iothubowner secondary key" "$hub_secondary"
absent "the hub's registryReadWrite key" "$CLOUD_HUB_REGISTRY_KEY"
absent "the DPS's provisioningserviceowner key" "$CLOUD_DPS_OWNER_KEY"
absent "keyd's handle-validation key" "$hvk_b64"
n=0
while read -r s; do
	[ -n "$s" ] || continue
	n=$((n + 1))
	absent "SAS signature $n" "$s"
done <"$dir/sigs"
n=0
while read -r s; do
	[ -n "$s" ] || continue
	n=$((n + 1))
	# `identity show --json` prints the handle, as identityd's API gives it.
	absent "the signature of keyd's key handle $n" "$(printf '%b' "${s//%/\\x}")" logs
done <"$dir/handle-sigs"
is "$(grep -HnF -- "${pem_body:0:40}" "${files[@]}")" "" \
	"the X.509 device's private key appears in no log or output"
is "$(grep -HnF -- 'PRIVATE KEY' "${files[@]}")" "" "no log or output holds a PEM private key"
absent_re "a SAS signature (sig=...)" 'sig=[A-Za-z0-9%+/=]{16,}'
absent_re "a connection string's key (SharedAccessKey=...)" 'SharedAccessKey=[A-Za-z0-9%+/=]'
absent_re "an authenticationKey value" 'authenticationKey"?[[:space:]]*[:=][[:space:]]*"?[A-Za-z0-9+/]{16,}'
is "$(grep -lE 'AddressSanitizer|LeakSanitizer|runtime error:' "${logs[@]}")" "" \
	"no sanitizer report in the logs"
absent_re "a symmetric key JSON value" '"(primaryKey|secondaryKey|symmetricKey|key)"[[:space:]]*:[[:space:]]*"[A-Za-z0-9+/]{16,}'
done_testing
