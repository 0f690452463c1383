#!/usr/bin/env bash
# identityd end to end with a symmetric key, with the real processes:
# edgeid-cloud (DPS + hub on 127.0.4.2/.3), `edgeid config apply`, keyd
# and identityd with --root. The device starts before its DPS is up (one
# clear error, retried with back-off), provisions once DPS answers (SAS
# signed through keyd), saves device_info as aziot does, proves the
# identity to the hub, and answers the Identity Service API to its
# principals only. Then: a restart uses device_info without DPS; a device
# the hub no longer knows registers again; the reprovision call; a
# disabled enrollment (retried slowly) and an unknown ID scope (not
# retried) give one sentence; AlwaysOnStartup; `edgeid identity show`.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
. "$EDGEID_SOURCE_ROOT/tests/integration/test-identityd-lib.sh"

dir=$(mktemp -d)
chmod 755 "$dir"
trap 'idt_stop_all; rm -rf "$dir"' EXIT
V=api-version=2020-09-01
V2=api-version=2021-12-01

idt_cloud_prepare "$dir/cloud" 127.0.4.2 127.0.4.3
ok $? "the cloud's PKI and configuration" || { done_testing; exit; }
KEY=$(openssl rand -base64 32)
cloud_env_cli enrollment create --registration-id dev1 --symmetric-key "$KEY" >/dev/null
ok $? "a symmetric-key enrollment for dev1"

idt_device "$dir/dev" "hostname = \"sym-device\"
[provisioning]
source = \"dps\"
global_endpoint = \"https://$CLOUD_DPS_HOST/\"
id_scope = \"$CLOUD_DPS_ID_SCOPE\"
payload = { uri = \"file:///etc/edgeid/payload.json\" }
[provisioning.attestation]
method = \"symmetric_key\"
registration_id = \"dev1\"
symmetric_key = { value = \"$KEY\" }"
ok $? "edgeid config apply writes the device's files"
printf '{"site":"lab-4"}\n' >"$IDT_ROOT/etc/edgeid/payload.json"
home=$IDT_ROOT/var/lib/aziot/identityd

# ---- DPS is not up yet --------------------------------------------------------

out=$("$IDT_EDGEIDD" identityd --root "$IDT_ROOT" --check 2>&1)
is "$?:$out" "0:$IDT_ROOT/etc/aziot/identityd/config.toml: OK" "identityd --check accepts apply's files"
idt_start_keyd
ok $? "keyd starts"
idt_start_identityd
ok $? "identityd starts and serves while DPS is down"
idt_wait_state failed 30
ok $? "provisioning fails while DPS is down"
s=$(idt_status)
is "$(jq -r .last_error <<<"$s")" \
	"cannot reach DPS: connecting to https://$CLOUD_DPS_HOST:443: connection refused" \
	"the status holds one sentence saying why"
is "$(jq -c '[.state, .retrying, .device, .source, .auth]' <<<"$s")" \
	'["failed",true,null,"dps","symmetric_key"]' "... and that it is trying again"
like "$(cat "$IDT_LOGS/identityd.log")" \
	"error: cannot reach DPS: connecting to https://$CLOUD_DPS_HOST:443: connection refused" \
	"the log has the same sentence"
idt_api POST "/identities/device?$V" '{"type":"aziot"}'
is "$status $body" "400 {\"message\":\"device identity not found\\ncaused by: cannot reach DPS: connecting to https://$CLOUD_DPS_HOST:443: connection refused\"}" \
	"the device identity is not found, with the reason"
out=$("$IDT_EDGEID" identity show --root "$IDT_ROOT")
is "$?" 1 "edgeid identity show exits 1 without an identity"
like "$out" "last error: +cannot reach DPS" "edgeid identity show prints the error"

# ---- DPS comes up: provisioned --------------------------------------------------

cloud_env_start
ok $? "edgeid-cloud starts"
idt_wait_state provisioned 60
ok $? "identityd provisions once DPS answers (after its back-off)"
is "$(cat "$home/device_info")" "hub_name = \"$CLOUD_HUB_HOST\"
local_gateway_hostname = \"$CLOUD_HUB_HOST\"
device_id = \"dev1\"" "device_info holds the assignment in aziot's format"
is "$(stat -c %a "$home/device_info")" 600 "device_info is mode 0600"
is "$(cloud_env_cli device show dev1 --json | jq -r '.authentication.type + " " + .authentication.symmetricKey.primaryKey')" \
	"sas $KEY" "the hub has device dev1 with the enrollment's key"
s=$(idt_status)
is "$(jq -c '[.state, .device, .last_error, .failures, .retrying]' <<<"$s")" \
	"[\"provisioned\",{\"hub_name\":\"$CLOUD_HUB_HOST\",\"gateway_host\":\"$CLOUD_HUB_HOST\",\"device_id\":\"dev1\",\"from\":\"dps\",\"hub_verified\":true},null,0,false]" \
	"the status: provisioned by DPS, accepted by the hub"
like "$(cat "$IDT_LOGS/identityd.log")" "info: the hub $CLOUD_HUB_HOST accepted device 'dev1'" \
	"the log says the hub accepted the device"

# ---- the Identity Service API ----------------------------------------------------

idt_api POST "/identities/device?$V" '{"type":"aziot"}'
is "$status $(jq -c 'del(.spec.auth.keyHandle)' <<<"$body")" \
	"200 {\"type\":\"aziot\",\"spec\":{\"hubName\":\"$CLOUD_HUB_HOST\",\"gatewayHost\":\"$CLOUD_HUB_HOST\",\"deviceId\":\"dev1\",\"auth\":{\"type\":\"sas\"}}}" \
	"POST /identities/device: aziot's identity JSON"
handle=$(jq -r .spec.auth.keyHandle <<<"$body")
like "$handle" '^sr=.+&sig=.+$' "... with keyd's handle of device-id"
idt_api GET "/identities/device?$V"
is "$status $(jq -r .spec.deviceId <<<"$body")" "200 dev1" "GET /identities/device too"
idt_api GET "/identities/identity?$V"
is "$status $(jq -r .spec.deviceId <<<"$body")" "200 dev1" "GET /identities/identity gives root the device"
# A host process signs its own hub token with the handle (docs/develop-an-agent.md).
se=$(($(date +%s) + 600))
sr="$CLOUD_HUB_HOST/devices/dev1"
msg=$(printf '%s\n%s' "$sr" "$se" | base64 -w0)
sig=$(curl -s --unix-socket "$IDT_ROOT/run/aziot/keyd.sock" -H 'Content-Type: application/json' \
	-d "{\"keyHandle\":\"$handle\",\"algorithm\":\"HMAC-SHA256\",\"parameters\":{\"message\":\"$msg\"}}" \
	"http://keyd.sock/sign?api-version=2021-05-01" | jq -r .signature)
sig=$(jq -rn --arg s "$sig" '$s|@uri')
is "$(idt_hub_devicebound dev1 "SharedAccessSignature sr=$sr&sig=$sig&se=$se")" 204 \
	"the handle signs a hub token the hub accepts"
idt_api GET "/identities/provisioning?$V2"
is "$status $body" \
	"200 {\"source\":\"dps\",\"auth\":\"symmetric_key\",\"endpoint\":\"https://$CLOUD_DPS_HOST/\",\"scope_id\":\"$CLOUD_DPS_ID_SCOPE\",\"registration_id\":\"dev1\",\"payload\":{\"site\":\"lab-4\"}}" \
	"GET /identities/provisioning: snake_case, with the payload"
idt_api GET "/identities/provisioning?$V"
is "$status $body" '404 {"message":"not found"}' "... which needs api-version 2021-12-01"
idt_api GET "/trust-bundle?$V"
is "$status $body" '200 {"certificate":""}' "GET /trust-bundle is aziot's stub"
idt_api GET "/identities/device"
is "$status $body" '400 {"message":"api-version not specified"}' "api-version is required"

out=$("$IDT_EDGEID" identity show --root "$IDT_ROOT")
is "$?" 0 "edgeid identity show exits 0"
is "$out" "Device identity
  hub:             $CLOUD_HUB_HOST
  gateway:         $CLOUD_HUB_HOST
  device id:       dev1
  authentication:  sas (key in keyd)
  from:            DPS; accepted by the hub
Provisioning
  source:          dps (symmetric_key)
  endpoint:        https://$CLOUD_DPS_HOST/
  ID scope:        $CLOUD_DPS_ID_SCOPE
  registration id: dev1
  state:           provisioned
  last attempt:    $(jq -r .last_attempt <<<"$(idt_status)")" "edgeid identity show prints the identity"
out=$("$IDT_EDGEID" identity list --root "$IDT_ROOT")
like "$(tail -n1 <<<"$out")" "^device +dev1 +$CLOUD_HUB_HOST +sas$" "edgeid identity list"
is "$("$IDT_EDGEID" identity show --root "$IDT_ROOT" --json | jq -r '.identity.spec.deviceId + " " + .status.state')" \
	"dev1 provisioned" "edgeid identity show --json"

# ---- principals ------------------------------------------------------------------

idt_identityd_dropin 60-principals '[[principal]]
uid = 4242
name = "device-reader"
idtype = ["device"]

[[principal]]
uid = 4243
name = "some-module"
idtype = ["module"]'
kill -HUP "$IDT_IDENTITYD_PID"
sleep 0.5
chmod 666 "$IDT_ROOT/run/aziot/identityd.sock" # the test is about identityd's own checks
idt_api --as 4242 POST "/identities/device?$V" '{"type":"aziot"}'
is "$status $(jq -r .spec.deviceId <<<"$body")" "200 dev1" "a principal with idtype device gets the identity"
idt_api --as 4243 POST "/identities/device?$V" '{"type":"aziot"}'
is "$status $body" '403 {"message":"authorization error"}' "a module principal does not"
idt_api --as 65534 POST "/identities/device?$V" '{"type":"aziot"}'
is "$status $body" '403 {"message":"authorization error"}' "an unknown uid does not, and learns nothing"
idt_api --as 4242 POST "/identities/device/reprovision?$V" '{"type":"aziot"}'
is "$status $body" '403 {"message":"authorization error"}' "only root and the daemon principal may reprovision"
idt_api --as 65534 GET "/identities/provisioning?$V2"
is "$status $(jq -r .source <<<"$body")" "200 dps" "anyone connected may read the provisioning settings"
idt_api --as 65534 GET "/identities/provisioning/status?$V2"
is "$status $(jq -r .state <<<"$body")" "200 provisioned" "... and the status"
idt_identityd_dropin 60-principals ""

# ---- a restart uses device_info ---------------------------------------------------

etag=$(cloud_env_cli registration show dev1 --json | jq -r .etag)
idt_stop_identityd
is "$?" 0 "identityd stops cleanly on SIGTERM"
idt_start_identityd
idt_wait_state provisioned 30
ok $? "identityd restarts provisioned"
is "$(idt_status | jq -c '[.device.from, .device.hub_verified]')" '["device_info",true]' \
	"... from device_info, checked with the hub"
is "$(cloud_env_cli registration show dev1 --json | jq -r .etag)" "$etag" "... without registering with DPS"

# ---- the hub cannot be reached: device_info is kept -----------------------------------------

cloud_env_stop >/dev/null 2>&1
idt_stop_identityd
idt_start_identityd
idt_wait_state provisioned 60
ok $? "with the cloud down, identityd restarts provisioned"
is "$(idt_status | jq -c '[.device.from, .device.hub_verified, .last_error]')" \
	"[\"device_info\",false,\"cannot reach the hub $CLOUD_HUB_HOST: connecting to https://$CLOUD_HUB_HOST:443: connection refused\"]" \
	"... from device_info, unverified, with the reason"
like "$("$IDT_EDGEID" identity show --root "$IDT_ROOT")" \
	"warning: +cannot reach the hub $CLOUD_HUB_HOST" "edgeid identity show prints the warning"
cloud_env_start
ok $? "edgeid-cloud starts again"

# ---- the hub forgets the device: registered again -----------------------------------------

cloud_env_cli device delete dev1 >/dev/null
ok $? "the device is deleted from the hub"
idt_stop_identityd
idt_start_identityd
idt_wait_state provisioned 30
ok $? "identityd restarts provisioned"
is "$(idt_status | jq -c '[.device.from, .device.hub_verified]')" '["dps",true]' \
	"... registered with DPS again because the hub refused device_info's identity"
like "$(cat "$IDT_LOGS/identityd.log")" \
	"warning: the hub $CLOUD_HUB_HOST refused device 'dev1' \(401 .*\); registering with DPS again" \
	"the log says why"
is "$(cloud_env_cli device show dev1 --json | jq -r .authentication.symmetricKey.primaryKey)" "$KEY" \
	"the device is back in the hub"

# ---- the reprovision call --------------------------------------------------------------

etag=$(cloud_env_cli registration show dev1 --json | jq -r .etag)
idt_api POST "/identities/device/reprovision?$V" '{"type":"aziot"}'
is "$status $body" "204 " "POST /identities/device/reprovision: 204 once registered"
[ "$(cloud_env_cli registration show dev1 --json | jq -r .etag)" != "$etag" ]
ok $? "... after a new DPS registration"
is "$(idt_status | jq -r .device.from)" dps "the identity comes from DPS"

# ---- a disabled enrollment: one sentence, retried slowly ----------------------------------

cloud_env_cli enrollment disable dev1 >/dev/null
idt_api POST "/identities/device/reprovision?$V" '{"type":"aziot"}'
disabled="DPS refused registration 'dev1' in ID scope '$CLOUD_DPS_ID_SCOPE': the enrollment is disabled; enable it, then reprovision the device"
is "$status $body" "404 $(jq -cn --arg m "DPS client error
caused by: $disabled" '{message: $m}')" "reprovisioning a disabled enrollment: 404 with the reason"
s=$(idt_status)
is "$(jq -c '[.state, .retrying, .last_error]' <<<"$s")" "[\"failed\",true,\"$disabled\"]" \
	"the status: failed, retried slowly (a disabled enrollment may be enabled again)"
is "$(grep -c "error: $disabled" "$IDT_LOGS/identityd.log")" 1 "the log has the sentence once"
[ ! -e "$home/device_info" ]
ok $? "reprovisioning removed device_info"
sleep 3
is "$(idt_status | jq -c '[.state, .failures]')" '["failed",1]' "no further attempt is made"
cloud_env_cli enrollment enable dev1 >/dev/null
idt_api POST "/identities/device/reprovision?$V" '{"type":"aziot"}'
is "$status" 204 "once enabled, reprovisioning works"

# ---- an unknown ID scope (settings changed on SIGHUP) -----------------------------------------

idt_identityd_dropin 70-scope '[provisioning]
scope_id = "0ne0000FFFF"'
kill -HUP "$IDT_IDENTITYD_PID"
idt_wait_state failed 30
ok $? "changed settings on SIGHUP: registered again, and refused"
is "$(idt_status | jq -c '[.retrying, .last_error]')" \
	"[false,\"DPS at https://$CLOUD_DPS_HOST does not serve ID scope '0ne0000FFFF' (404 The ID scope \\\"0ne0000FFFF\\\" is not served here. (errorCode 404000)); check provisioning.id_scope\"]" \
	"an unknown ID scope: one sentence, not retried"
idt_identityd_dropin 70-scope ""
kill -HUP "$IDT_IDENTITYD_PID"
idt_wait_state provisioned 30
ok $? "the scope restored on SIGHUP: provisioned again"

# ---- AlwaysOnStartup ------------------------------------------------------------------------

idt_identityd_dropin 80-mode 'auto_reprovisioning_mode = "AlwaysOnStartup"'
etag=$(cloud_env_cli registration show dev1 --json | jq -r .etag)
idt_stop_identityd
idt_start_identityd
idt_wait_state provisioned 30
ok $? "AlwaysOnStartup: provisioned"
is "$(idt_status | jq -r .device.from)" dps "... by DPS although device_info is valid"
[ "$(cloud_env_cli registration show dev1 --json | jq -r .etag)" != "$etag" ]
ok $? "... with a new registration"
idt_identityd_dropin 80-mode ""

# ---- DPS's certificate is not trusted -------------------------------------------------------

idt_identityd_dropin 50-trust ""
kill -HUP "$IDT_IDENTITYD_PID"
sleep 0.5
idt_api POST "/identities/device/reprovision?$V" '{"type":"aziot"}'
is "$status" 404 "without the trust bundle, reprovisioning fails"
like "$(idt_status | jq -r '[.retrying, .last_error] | @tsv')" \
	"^true	DPS's TLS certificate is not trusted \\(https://$CLOUD_DPS_HOST/.*: server certificate verification failed: .*\\); add its CA to trust_bundle_cert or to the system store\$" \
	"... with one sentence saying what to do, and is tried again"
idt_identityd_dropin 50-trust 'trust_bundle_cert = "file:///etc/edgeid/cloud-ca.pem"'
kill -HUP "$IDT_IDENTITYD_PID"
idt_api POST "/identities/device/reprovision?$V" '{"type":"aziot"}'
is "$status" 204 "with the trust bundle back, reprovisioning works"

idt_stop_identityd
is "$?" 0 "identityd stops cleanly"
kill -TERM "$IDT_KEYD_PID"
wait "$IDT_KEYD_PID"
IDT_KEYD_PID=
idt_no_sanitizer_reports "symmetric key"

# ---- manual provisioning with a connection string ------------------------------------------

idt_device "$dir/manual" "hostname = \"manual-device\"
[provisioning]
source = \"manual\"
connection_string = \"HostName=$CLOUD_HUB_HOST;DeviceId=dev1;SharedAccessKey=$KEY\"" &&
	idt_start_keyd && idt_start_identityd
ok $? "a manual device starts"
idt_wait_state provisioned 30
ok $? "manual: provisioned"
is "$(idt_status | jq -c '[.device.device_id, .device.from, .device.hub_verified, .auth]')" \
	'["dev1","settings",true,"sas"]' "... from the settings, and the hub accepts the key"
idt_api GET "/identities/provisioning?$V2"
is "$status $body" '200 {"source":"manual","auth":"sas"}' "GET /identities/provisioning: manual"
idt_api POST "/identities/device/reprovision?$V" '{"type":"aziot"}'
is "$status" 204 "reprovisioning a manual device"
[ ! -e "$IDT_ROOT/var/lib/aziot/identityd/device_info" ] || grep -q 'device_id = "dev1"' \
	"$IDT_ROOT/var/lib/aziot/identityd/device_info"
ok $? "device_info, when written, names the device"
idt_stop_identityd
kill -TERM "$IDT_KEYD_PID" && wait "$IDT_KEYD_PID"
IDT_KEYD_PID=

# ---- no provisioning -----------------------------------------------------------------------

idt_device "$dir/none" 'hostname = "none-device"
[provisioning]
source = "none"' && idt_start_identityd
ok $? "a device without provisioning starts"
is "$(idt_status | jq -c '[.state, .device, .last_error]')" '["unprovisioned",null,null]' \
	"its status: unprovisioned"
idt_api POST "/identities/device?$V" '{"type":"aziot"}'
is "$status $body" '400 {"message":"device identity not found\ncaused by: provisioning.source is \"none\""}' \
	"it has no device identity"
idt_stop_identityd
is "$?" 0 "identityd stops cleanly"
cloud_env_stop >/dev/null 2>&1
idt_no_sanitizer_reports "manual and none"
done_testing
