#!/usr/bin/env bash
# Module identity CRUD on the hub by the device itself, as aziot-identityd
# makes it for an IoT Edge device (hub-protocol.md §7): curl against
# edgeid-cloud over real HTTPS, with the requests aziot sends
# (api-version 2017-11-08-preview, unquoted If-Match: *). An IoT Edge
# device manages its own modules with its SAS or its X.509 client
# certificate; another device's modules, a device that is not an IoT Edge
# device, a module's own SAS and a disabled device are refused with exact
# IoT Hub error bodies; services keep their policy rights.
set -uo pipefail
src=${EDGEID_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$src/tests/lib/tap.sh"
. "$src/tests/lib/cloud-env.sh"
# An address of its own, so that tests running at the same time do not collide.
CLOUD_HUB_HOST=127.0.17.3

if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP needs root to listen on port 443"
	exit 0
fi
for tool in curl jq openssl; do
	command -v "$tool" >/dev/null || {
		echo "1..0 # SKIP $tool missing"
		exit 0
	}
done

dir=$(mktemp -d)
cleanup() {
	cloud_env_stop >/dev/null 2>&1
	rm -rf "$dir"
}
trap cleanup EXIT
export CLOUD_ENV_SERVICES=hub
if ! cloud_env_setup "$dir" >"$dir/setup.err" 2>&1; then
	echo "Bail out! edgeid-cloud did not start"
	sed 's/^/# /' "$dir/setup.err"
	exit 1
fi
hub=$CLOUD_HUB_HOST
owner=$(cloud_env_sas "$hub" "$CLOUD_HUB_OWNER_KEY" iothubowner)
Q=api-version=2017-11-08-preview

# req METHOD PATH [CURL-ARGS...]: sets STATUS and BODY.
req() {
	local method=$1 path=$2
	shift 2
	STATUS=$(curl -sS --cacert "$CLOUD_CA" --max-time 20 -o "$dir/body" -w '%{http_code}' \
		-X "$method" "https://$hub$path" "$@")
	BODY=$(cat "$dir/body")
}
svc() {
	local method=$1 path=$2
	shift 2
	req "$method" "$path" -H "Authorization: $owner" "$@"
}
field() { jq -r "$1" <<<"$BODY"; }
message() { jq -r .Message <<<"$BODY"; }
# aziot's SAS for a device: sr lowercased, '/' not encoded, no skn.
device_sas() { # DEVICE KEY
	local sr se hexkey sig
	sr=$(printf '%s/devices/%s' "$hub" "$1" | tr '[:upper:]' '[:lower:]')
	se=$(($(date +%s) + 30))
	hexkey=$(printf '%s' "$2" | base64 -d | od -An -v -tx1 | tr -d ' \n')
	sig=$(printf '%s\n%s' "$sr" "$se" |
		openssl dgst -sha256 -mac HMAC -macopt "hexkey:$hexkey" -binary | base64)
	sig=$(jq -rn --arg s "$sig" '$s|@uri')
	printf 'SharedAccessSignature sr=%s&sig=%s&se=%s\n' "$sr" "$sig" "$se"
}
refused() { printf '401/ErrorCode:IotHubUnauthorizedAccess;%s' "$1"; }
bad_signature=$(refused "the SharedAccessSignature's signature does not match")

# --- devices ------------------------------------------------------------------------

EDGE_KEY=$(openssl rand -base64 32)
OTHER_KEY=$(openssl rand -base64 32)
LEAF_KEY=$(openssl rand -base64 32)
new_device() { # ID KEY EDGE
	svc PUT "/devices/$1" --data-binary "{\"deviceId\":\"$1\",\"capabilities\":{\"iotEdge\":$3},\"authentication\":{\"type\":\"sas\",\"symmetricKey\":{\"primaryKey\":\"$2\",\"secondaryKey\":\"\"}}}"
	[ "$STATUS" = 200 ]
}
new_device edge1 "$EDGE_KEY" true && new_device edge2 "$OTHER_KEY" true &&
	new_device leaf1 "$LEAF_KEY" false
ok $? "two IoT Edge devices and one leaf device"
thumb=$(cloud_env_device_cert "$dir" edgex self)
svc PUT /devices/edgex --data-binary "{\"capabilities\":{\"iotEdge\":true},\"authentication\":{\"type\":\"selfSigned\",\"x509Thumbprint\":{\"primaryThumbprint\":\"$thumb\"}}}"
is "$STATUS" 200 "an IoT Edge device with a self-signed certificate"
edge=$(device_sas edge1 "$EDGE_KEY")

# --- an IoT Edge device manages its own modules, as aziot-identityd does ------------------

req PUT "/devices/edge1/modules/m1?$Q" -H "Authorization: $edge" \
	-H 'Content-Type: application/json' --data-binary '{"moduleId":"m1","deviceId":"edge1"}'
is "$STATUS/$(field '[.moduleId, .deviceId, .authentication.type] | join(",")')" \
	"200/m1,edge1,sas" "create: PUT without If-Match, with the device's SAS: 200"
gen=$(field .generationId)
like "$gen" '^[0-9]{18}$' "... with a generationId"
like "$(field .authentication.symmetricKey.primaryKey)" '^[A-Za-z0-9+/]{43}=$' \
	"... and keys the hub made"

M1_KEY=$(openssl rand -base64 32)
M1_KEY2=$(openssl rand -base64 32)
req PUT "/devices/edge1/modules/m1?$Q" -H "Authorization: $edge" -H 'If-Match: *' \
	-H 'Content-Type: application/json' \
	--data-binary "{\"moduleId\":\"m1\",\"deviceId\":\"edge1\",\"authentication\":{\"symmetricKey\":{\"primaryKey\":\"$M1_KEY\",\"secondaryKey\":\"$M1_KEY2\"},\"type\":\"sas\"}}"
is "$STATUS/$(field '[.generationId, .authentication.symmetricKey.primaryKey, .authentication.symmetricKey.secondaryKey] | join(",")')" \
	"200/$gen,$M1_KEY,$M1_KEY2" "update: PUT with If-Match: * sets the keys the device gives"

req GET "/devices/edge1/modules/m1?$Q" -H "Authorization: $edge"
is "$STATUS/$(field '[.moduleId, .generationId, .authentication.symmetricKey.primaryKey] | join(",")')" \
	"200/m1,$gen,$M1_KEY" "get: 200 with the module"
req GET "/devices/edge1/modules?$Q" -H "Authorization: $edge"
is "$STATUS/$(field 'map(.moduleId) | join(",")')" "200/m1" "list: 200 with the device's modules"

req POST "/devices/edge1/modules/m1/messages/events?api-version=2021-04-12" \
	-H "Authorization: $(cloud_env_sas "$hub/devices/edge1/modules/m1" "$M1_KEY")" --data-binary 'from m1'
is "$STATUS/$BODY" "204/" "the module authenticates with the key the device gave it"
is "$(cloud_env_cli telemetry list edge1 --json | jq -r '.[0] | [.body, .systemProperties.connectionModuleId] | join(",")')" \
	"from m1,m1" "... and its message is stored as the module's"

cert=$dir/pki/devices
req PUT "/devices/edgex/modules/mx?$Q" --cert "$cert/edgex.pem" --key "$cert/edgex.key" \
	--data-binary '{"moduleId":"mx","deviceId":"edgex"}'
is "$STATUS/$(field '[.moduleId, .authentication.type] | join(",")')" "200/mx,sas" \
	"an X.509 IoT Edge device creates a module with its client certificate"
req GET "/devices/edgex/modules?$Q" --cert "$cert/edgex.pem" --key "$cert/edgex.key"
is "$STATUS/$(field 'map(.moduleId) | join(",")')" "200/mx" "... and lists its modules"

# --- refusals -------------------------------------------------------------------------

req PUT "/devices/edge2/modules/m9?$Q" -H "Authorization: $edge" --data-binary '{}'
is "$STATUS/$(message)" "$bad_signature" "edge1's SAS on edge2's modules: 401"
req GET "/devices/edge2/modules?$Q" -H "Authorization: $edge"
is "$STATUS/$(message)" "$bad_signature" "edge1's SAS cannot list edge2's modules either"
req PUT "/devices/edge2/modules/m9?$Q" --cert "$cert/edgex.pem" --key "$cert/edgex.key" \
	--data-binary '{}'
is "$STATUS/$(message)" "$(refused "the identity does not use X.509 authentication (type \"sas\")")" \
	"edgex's certificate on edge2's modules: 401"
req GET "/devices/edge2/modules?$Q" \
	-H "Authorization: $(device_sas edge2 "$EDGE_KEY")"
is "$STATUS/$(message)" "$bad_signature" "a SAS for edge2 signed with edge1's key: 401"
req GET "/devices/edge1/modules?$Q" \
	-H "Authorization: $(cloud_env_sas "$hub/devices/edge1/modules/m1" "$EDGE_KEY")"
is "$STATUS/$(message)" \
	"$(refused "the SharedAccessSignature's resource (sr) is not this hub or this identity")" \
	"a SAS of edge1's key for one of its modules does not speak for the device"

req PUT "/devices/leaf1/modules/m1?$Q" -H "Authorization: $(device_sas leaf1 "$LEAF_KEY")" \
	--data-binary '{"moduleId":"m1","deviceId":"leaf1"}'
is "$STATUS/$(message)" \
	"$(refused 'device "leaf1" is not an IoT Edge device: only IoT Edge devices manage their own modules')" \
	"a device that is not an IoT Edge device: 401"
req GET "/devices/leaf1/modules?$Q" -H "Authorization: $(device_sas leaf1 "$LEAF_KEY")"
is "$STATUS" 401 "... not even to list"

m1_sas=$(cloud_env_sas "$hub/devices/edge1/modules/m1" "$M1_KEY")
req PUT "/devices/edge1/modules/m2?$Q" -H "Authorization: $m1_sas" --data-binary '{}'
is "$STATUS/$(message)" "$bad_signature" "a module's SAS cannot create modules"
req GET "/devices/edge1/modules?$Q" -H "Authorization: $m1_sas"
is "$STATUS/$(message)" "$bad_signature" "... nor list them"
req GET "/devices/edge1/modules?$Q" \
	-H "Authorization: $(cloud_env_sas "$hub/devices/edge1/modules/m1" "$M1_KEY" primary)"
is "$STATUS/$(message)" "$(refused 'no shared access policy is called "primary"')" \
	"... also not with Node's skn=primary"

req PUT "/devices/edge1/modules/m3?$Q" -H "Authorization: $edge" \
	--data-binary '{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"0123456789abcdef0123456789abcdef01234567"}}}'
is "$STATUS/$(message)" \
	'400/ErrorCode:ArgumentInvalid;authentication: a device gives its modules "sas" authentication only' \
	"a device cannot give a module X.509 authentication"
req GET "/devices/edge1/modules/m3?$Q" -H "Authorization: $edge"
is "$STATUS/$(message)" '404/ErrorCode:ModuleNotFound;module "m3" does not exist on device "edge1"' \
	"... and no module was made"

req GET "/devices/edge1/modules?$Q"
is "$STATUS/$(message)" "$(refused 'no Authorization header')" "no credential: 401"
req GET "/devices/ghost/modules?$Q" -H "Authorization: $(device_sas ghost "$EDGE_KEY")"
is "$STATUS/$(message)" "$(refused 'no such device')" "a device the hub does not know: 401"
req GET "/devices/edge1/modules?$Q" -H "Authorization: $(cloud_env_sas "$hub/devices/edge1" "$EDGE_KEY" "" 1000000000)"
is "$STATUS/$(message)" "$(refused 'the SharedAccessSignature expired (se=1000000000)')" \
	"an expired device SAS: 401"

# --- services keep their rights ----------------------------------------------------------

svc GET "/devices/edge1/modules?$Q"
is "$STATUS/$(field 'map(.moduleId) | join(",")')" "200/m1" "iothubowner lists edge1's modules"
req GET "/devices/leaf1/modules?$Q" -H "Authorization: $(cloud_env_sas "$hub" "$CLOUD_HUB_REGISTRY_KEY" registryReadWrite)"
is "$STATUS/$(field length)" "200/0" "registryReadWrite lists a leaf device's modules"

# --- delete, and a disabled device --------------------------------------------------------

req DELETE "/devices/edge1/modules/m1?$Q" -H "Authorization: $edge" -H 'If-Match: *'
is "$STATUS/$BODY" "204/" "delete: DELETE with If-Match: *, 204"
req GET "/devices/edge1/modules/m1?$Q" -H "Authorization: $edge"
is "$STATUS/$(message)" '404/ErrorCode:ModuleNotFound;module "m1" does not exist on device "edge1"' \
	"the module is gone"
req POST "/devices/edge1/modules/m1/messages/events" -H "Authorization: $m1_sas" --data-binary x
is "$STATUS/$(message)" "$(refused 'no such module')" "... and its key no longer works"

svc PUT /devices/edge1 -H 'If-Match: *' --data-binary '{"status":"disabled","capabilities":{"iotEdge":true}}'
req PUT "/devices/edge1/modules/m4?$Q" -H "Authorization: $(device_sas edge1 "$EDGE_KEY")" --data-binary '{}'
is "$STATUS/$(message)" "$(refused 'the device is disabled')" "a disabled IoT Edge device: 401"

cloud_env_stop
is "$?" 0 "edgeid-cloud exits 0 on SIGTERM"
! grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$CLOUD_DIR/cloud.log"
ok $? "no sanitizer report in the server log"
done_testing
