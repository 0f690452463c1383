#!/usr/bin/env bash
# identityd's module identities end to end, with the real processes:
# edgeid-cloud (DPS + hub on 127.0.17.12/.13), `edgeid config apply`, keyd
# and identityd with --root. A symmetric-key IoT Edge device provisions
# through DPS; then IoT Edge's principal (the iotedge user, a principal
# without idtype) creates, lists, reads, updates and deletes module
# identities through identityd's socket. identityd makes them in the hub
# with the device's own SAS, derives the module keys in keyd
# (aziot_identityd_master_id), and hands out the derived key's handle: a
# SAS signed through keyd /sign with it authenticates the module to the
# hub. A host-process principal gets its own module only; other callers
# get 403. With the hub down, reads come from the module backups.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
. "$EDGEID_SOURCE_ROOT/tests/integration/test-identityd-lib.sh"

if ! EDGE_UID=$(id -u iotedge 2>/dev/null); then
	echo "1..0 # SKIP the iotedge user does not exist"
	exit 0
fi
dir=$(mktemp -d)
chmod 755 "$dir"
trap 'idt_stop_all; rm -rf "$dir"' EXIT
V=api-version=2020-09-01
HOST_UID=4243
OTHER_UID=65534

idt_cloud_prepare "$dir/cloud" 127.0.17.12 127.0.17.13 && cloud_env_start
ok $? "edgeid-cloud (DPS and hub) starts" || { done_testing; exit; }
hub=$CLOUD_HUB_HOST
owner=$(cloud_env_sas "$hub" "$CLOUD_HUB_OWNER_KEY" iothubowner)
KEY=$(openssl rand -base64 32)
cloud_env_cli enrollment create --registration-id edge1 --symmetric-key "$KEY" --edge-enabled \
	>/dev/null
ok $? "an IoT Edge symmetric-key enrollment for edge1"

idt_device "$dir/dev" "hostname = \"edge-device\"
[provisioning]
source = \"dps\"
global_endpoint = \"https://$CLOUD_DPS_HOST/\"
id_scope = \"$CLOUD_DPS_ID_SCOPE\"
[provisioning.attestation]
method = \"symmetric_key\"
registration_id = \"edge1\"
symmetric_key = { value = \"$KEY\" }"
ok $? "edgeid config apply writes the device's files"
# config apply makes IoT Edge (the iotedge user) identityd's daemon
# principal, "aziot-edge" without idtype, as `iotedge config apply` does;
# hostmod is a host process with a module identity.
is "$(grep -A1 "^uid = $EDGE_UID$" "$IDT_ROOT/etc/aziot/identityd/config.d/00-super.toml" | tail -n1)" \
	'name = "aziot-edge"' "identityd's configuration names the iotedge user as IoT Edge"
idt_identityd_dropin 60-principals "[[principal]]
uid = $HOST_UID
name = \"hostmod\"
idtype = [\"module\"]"
home=$IDT_ROOT/var/lib/aziot/identityd
idt_start_keyd
ok $? "keyd starts"
# shellcheck disable=SC2119 # no options
idt_start_identityd
ok $? "identityd starts"
idt_wait_state provisioned 60
ok $? "the device is provisioned through DPS"
is "$(cloud_env_cli device show edge1 --json | jq -r .capabilities.iotEdge)" true \
	"the hub has edge1 as an IoT Edge device"
chmod 666 "$IDT_ROOT/run/aziot/identityd.sock" # the test is about identityd's own checks

# hubget PATH: the hub's registry as iothubowner; sets $hstatus and $hbody.
hubget() {
	local out
	out=$(curl -s --cacert "$CLOUD_CA" -H "Authorization: $owner" -w '\n%{http_code}' \
		"https://$hub$1")
	hbody=${out%$'\n'*}
	hstatus=${out##*$'\n'}
}
# keyd_call PATH JSON: keyd's answer.
keyd_call() {
	curl -s --unix-socket "$IDT_ROOT/run/aziot/keyd.sock" -H 'Content-Type: application/json' \
		-d "$2" "http://keyd.sock$1?api-version=2021-05-01"
}
# module_sas MODULE HANDLE: a hub SAS for the module signed by keyd with
# HANDLE, as docs/develop-an-agent.md builds it.
module_sas() {
	local sr se msg sig
	sr=$(jq -rn --arg s "$hub/devices/edge1/modules/$1" '$s|@uri')
	se=$(($(date +%s) + 600))
	msg=$(printf '%s\n%s' "$sr" "$se" | base64 -w0)
	sig=$(keyd_call /sign "{\"keyHandle\":\"$2\",\"algorithm\":\"HMAC-SHA256\",\"parameters\":{\"message\":\"$msg\"}}" |
		jq -r .signature)
	printf 'SharedAccessSignature sr=%s&sig=%s&se=%s\n' "$sr" "$(jq -rn --arg s "$sig" '$s|@uri')" "$se"
}
# module_send MODULE TOKEN BODY: the hub's status for a module's message.
module_send() {
	curl -s -o /dev/null -w '%{http_code}' --cacert "$CLOUD_CA" -H "Authorization: $2" \
		--data-binary "$3" "https://$hub/devices/edge1/modules/$1/messages/events?api-version=2021-04-12"
}

# ---- create ------------------------------------------------------------------------------

idt_api --as "$EDGE_UID" POST "/identities/modules?$V" '{"type":"aziot","moduleId":"edgeAgent"}'
is "$status $(jq -c 'del(.spec.genId, .spec.auth.keyHandle)' <<<"$body")" \
	"200 {\"type\":\"aziot\",\"spec\":{\"hubName\":\"$hub\",\"gatewayHost\":\"$hub\",\"deviceId\":\"edge1\",\"moduleId\":\"edgeAgent\",\"auth\":{\"type\":\"sas\"}}}" \
	"IoT Edge creates module edgeAgent: aziot's identity JSON"
gen=$(jq -r .spec.genId <<<"$body")
handle=$(jq -r .spec.auth.keyHandle <<<"$body")
like "$gen $handle" '^[0-9]+ sr=.+&sig=.+$' "... with the genId and a keyd handle"
hubget /devices/edge1/modules/edgeAgent
is "$hstatus $(jq -r '[.moduleId, .generationId, .authentication.type] | join(",")' <<<"$hbody")" \
	"200 edgeAgent,$gen,sas" "the hub has the module, with the genId identityd reports"
hub_primary=$(jq -r .authentication.symmetricKey.primaryKey <<<"$hbody")
like "$hub_primary" '^[A-Za-z0-9+/]{43}=$' "... and a key of 32 bytes"
is "$(keyd_call /derivedkey/export "{\"keyHandle\":\"$handle\"}" | jq -r .key)" "$hub_primary" \
	"the keyHandle is keyd's derived key, the module's primary key in the hub"
master=$(keyd_call /key '{"keyId":"aziot_identityd_master_id","usage":"derive,sign"}' | jq -r .keyHandle)
derive() { # DATA: the key keyd derives from the master key for DATA
	local h
	h=$(keyd_call /derivedkey "{\"baseKeyHandle\":\"$master\",\"derivationData\":\"$(printf '%s' "$1" | base64 -w0)\"}" |
		jq -r .keyHandle)
	keyd_call /derivedkey/export "{\"keyHandle\":\"$h\"}" | jq -r .key
}
is "$(derive "edgeAgent:$gen:primary") $(derive "edgeAgent:$gen:secondary")" \
	"$hub_primary $(jq -r .authentication.symmetricKey.secondaryKey <<<"$hbody")" \
	"both keys are HMAC(aziot_identityd_master_id, \"{module}:{genId}:primary|secondary\")"

is "$(module_send edgeAgent "$(module_sas edgeAgent "$handle")" 'hello from edgeAgent')" 204 \
	"a SAS signed through keyd with the handle authenticates the module to the hub"
is "$(cloud_env_cli telemetry list edge1 --json | jq -r '.[0] | [.body, .systemProperties.connectionModuleId] | join(",")')" \
	"hello from edgeAgent,edgeAgent" "... and the hub stores the message as edgeAgent's"

backup_dir=$home/modules/$(printf '%s' "$hub" | sha256sum | cut -d' ' -f1)-$(printf edge1 | sha256sum | cut -d' ' -f1)
backup=$backup_dir/edgeAgent-$(printf edgeAgent | sha256sum | cut -d' ' -f1)
is "$(cat "$backup" 2>&1)" "{\"moduleId\":\"edgeAgent\",\"deviceId\":\"edge1\",\"generationId\":\"$gen\"}" \
	"the module is backed up where aziot keeps it, without keys"
is "$(stat -c %a "$backup")" 600 "... mode 0600"

idt_api --as "$EDGE_UID" POST "/identities/modules?$V" '{"type":"aziot","moduleId":"edgeAgent"}'
is "$status $body" \
	"404 $(jq -cn --arg m "Hub client error
caused by: the hub $hub refused to create module 'edgeAgent' of device 'edge1' (409 ErrorCode:ModuleAlreadyExistsOnDevice;a module with id \"edgeAgent\" already exists)" '{message: $m}')" \
	"creating it twice: aziot's Hub client error (404) with the hub's reason"

# ---- list, get, update -----------------------------------------------------------------------

idt_api --as "$EDGE_UID" POST "/identities/modules?$V" '{"type":"aziot","moduleId":"hostmod"}'
is "$status" 200 "IoT Edge creates module hostmod"
idt_api --as "$EDGE_UID" GET "/identities/modules?$V&type=aziot"
is "$status $(jq -c '.identities | map(.spec | del(.genId))' <<<"$body")" \
	"200 [{\"hubName\":\"$hub\",\"gatewayHost\":\"$hub\",\"deviceId\":\"edge1\",\"moduleId\":\"edgeAgent\"},{\"hubName\":\"$hub\",\"gatewayHost\":\"$hub\",\"deviceId\":\"edge1\",\"moduleId\":\"hostmod\"}]" \
	"the list: both modules, without auth"
is "$(jq -r '.identities[0].spec.genId' <<<"$body")" "$gen" "... with their genId"

idt_api --as "$EDGE_UID" GET "/identities/modules/edgeAgent?$V&type=aziot"
is "$status $(jq -r '[.spec.moduleId, .spec.genId, .spec.auth.type] | join(",")' <<<"$body")" \
	"200 edgeAgent,$gen,sas" "GET one module: its identity"
handle2=$(jq -r .spec.auth.keyHandle <<<"$body")
is "$(module_send edgeAgent "$(module_sas edgeAgent "$handle2")" again)" 204 "... whose handle signs for it"

idt_api --as "$EDGE_UID" PUT "/identities/modules/edgeAgent?$V&type=aziot" '{}'
is "$status $(jq -r '[.spec.moduleId, .spec.genId, .spec.auth.type] | join(",")' <<<"$body")" \
	"200 edgeAgent,$gen,sas" "PUT (update): the same identity"
hubget /devices/edge1/modules/edgeAgent
is "$(jq -r .authentication.symmetricKey.primaryKey <<<"$hbody")" "$hub_primary" \
	"... and the same keys: they are derived, not random"

idt_api --as "$EDGE_UID" GET "/identities/modules/nope?$V&type=aziot"
is "$status $body" \
	"404 $(jq -cn --arg m "Hub client error
caused by: the hub $hub refused to get module 'nope' of device 'edge1' (404 ErrorCode:ModuleNotFound;module \"nope\" does not exist on device \"edge1\")" '{message: $m}')" \
	"an unknown module: 404 with the hub's reason"

# ---- parameters ------------------------------------------------------------------------

idt_api --as "$EDGE_UID" GET "/identities/modules?$V"
is "$status $body" '400 {"message":"parameter \"type\" has an invalid value\ncaused by: missing parameter"}' \
	"the list needs ?type="
idt_api --as "$EDGE_UID" GET "/identities/modules/edgeAgent?$V&type=local"
is "$status $body" '400 {"message":"local identities are not supported"}' "type=local: 400"
idt_api --as "$EDGE_UID" DELETE "/identities/modules/edgeAgent?$V&type=x509"
is "$status $body" '400 {"message":"parameter \"type\" has an invalid value\ncaused by: invalid type: x509"}' \
	"an unknown type: 400"
idt_api --as "$EDGE_UID" POST "/identities/modules?$V" '{"type":"aziot","moduleId":"  "}'
is "$status $body" '400 {"message":"parameter \"module_id\" has an invalid value\ncaused by: module name cannot be empty"}' \
	"a blank module name: 400"
idt_api --as "$EDGE_UID" POST "/identities/modules?$V" '{"type":"aziot"}'
is "$status $body" '400 {"message":"parameter \"module_id\" has an invalid value\ncaused by: moduleId: expected a string"}' \
	"no moduleId: 400"

# ---- principals ----------------------------------------------------------------------------

idt_api --as "$HOST_UID" GET "/identities/identity?$V"
is "$status $(jq -r '[.spec.deviceId, .spec.moduleId, .spec.auth.type] | join(",")' <<<"$body")" \
	"200 edge1,hostmod,sas" "the host process hostmod gets its own module from /identities/identity"
host_handle=$(jq -r .spec.auth.keyHandle <<<"$body")
is "$(module_send hostmod "$(module_sas hostmod "$host_handle")" 'from hostmod')" 204 \
	"... and authenticates to the hub as hostmod"
idt_api --as "$HOST_UID" GET "/identities/modules/hostmod?$V&type=aziot"
is "$status $(jq -r .spec.moduleId <<<"$body")" "200 hostmod" "... and may GET it by name"
for call in "GET /identities/modules/edgeAgent?$V&type=aziot" "GET /identities/modules?$V&type=aziot" \
	"DELETE /identities/modules/hostmod?$V&type=aziot"; do
	# shellcheck disable=SC2086 # method and path
	idt_api --as "$HOST_UID" $call
	is "$status $body" '403 {"message":"authorization error"}' "the host process may not $call"
done
idt_api --as "$HOST_UID" POST "/identities/modules?$V" '{"type":"aziot","moduleId":"x"}'
is "$status $body" '403 {"message":"authorization error"}' "... nor create a module"
for call in "GET /identities/modules?$V&type=aziot" "GET /identities/modules/edgeAgent?$V&type=aziot" \
	"GET /identities/identity?$V"; do
	# shellcheck disable=SC2086 # method and path
	idt_api --as "$OTHER_UID" $call
	is "$status $body" '403 {"message":"authorization error"}' "an unknown uid: $call is refused"
done
idt_api --as "$OTHER_UID" POST "/identities/modules?$V" '{"type":"aziot","moduleId":"edgeHub"}'
is "$status $body" '403 {"message":"authorization error"}' "an unknown uid cannot create a module"
hubget /devices/edge1/modules/edgeHub
is "$hstatus" 404 "... and none was made"
idt_api GET "/identities/identity?$V"
is "$status $(jq -r '.spec.deviceId + " " + (.spec.moduleId // "-")' <<<"$body")" "200 edge1 -" \
	"root still gets the device identity from /identities/identity"

# ---- the hub is down: reads come from the backups ---------------------------------------------

cloud_env_stop >/dev/null 2>&1
idt_api --as "$EDGE_UID" GET "/identities/modules/edgeAgent?$V&type=aziot"
is "$status $(jq -r '[.spec.moduleId, .spec.genId] | join(",")' <<<"$body")" "200 edgeAgent,$gen" \
	"with the hub down, GET answers from the module's backup"
like "$(cat "$IDT_LOGS/identityd.log")" \
	"warning: cannot reach the hub $hub to get module 'edgeAgent' of device 'edge1': .*; answering from the module's backup" \
	"... and says so in the log"
idt_api --as "$EDGE_UID" GET "/identities/modules?$V&type=aziot"
is "$status $(jq -r '.identities | map(.spec.moduleId) | join(",")' <<<"$body")" "200 edgeAgent,hostmod" \
	"... and so does the list"
idt_api --as "$EDGE_UID" POST "/identities/modules?$V" '{"type":"aziot","moduleId":"edgeHub"}'
like "$status $body" "^404 \{\"message\":\"Hub client error\\\\ncaused by: cannot reach the hub $hub to create module 'edgeHub' of device 'edge1': " \
	"a create needs the hub"
cloud_env_start
ok $? "edgeid-cloud starts again"

# ---- delete ------------------------------------------------------------------------------------

idt_api --as "$EDGE_UID" DELETE "/identities/modules/edgeAgent?$V&type=aziot"
is "$status $body" "204 " "IoT Edge deletes edgeAgent: 204"
hubget /devices/edge1/modules/edgeAgent
is "$hstatus" 404 "the hub no longer has it"
[ ! -e "$backup" ]
ok $? "its backup is removed"
is "$(module_send edgeAgent "$(module_sas edgeAgent "$handle")" late)" 401 "its key no longer works"
idt_api --as "$EDGE_UID" GET "/identities/modules?$V&type=aziot"
is "$status $(jq -r '.identities | map(.spec.moduleId) | join(",")' <<<"$body")" "200 hostmod" \
	"the list has hostmod only"

idt_stop_identityd
is "$?" 0 "identityd stops cleanly"
idt_no_sanitizer_reports "identityd_modules"
done_testing
