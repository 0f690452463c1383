#!/usr/bin/env bash
# The hub's REST API over real HTTPS (curl against edgeid-cloud on
# port 443 of a loopback address): exact statuses, IoT Hub error bodies and JSON fields for
# the registry, twins, authentication and the device-facing endpoints.
set -uo pipefail
src=${EDGEID_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$src/tests/lib/tap.sh"
. "$src/tests/lib/cloud-env.sh"
# An address of its own, so that tests running at the same time do not collide.
CLOUD_HUB_HOST=127.0.2.3

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

# req METHOD PATH [CURL-ARGS...]: sets STATUS, BODY and HDRS (lowercased names).
req() {
	local method=$1 path=$2
	shift 2
	STATUS=$(curl -sS --cacert "$CLOUD_CA" --max-time 20 -o "$dir/body" -D "$dir/hdrs" \
		-w '%{http_code}' -X "$method" "https://$hub$path" "$@")
	BODY=$(cat "$dir/body")
	HDRS=$(tr -d '\r' <"$dir/hdrs" | tr '[:upper:]' '[:lower:]')
}
# svc METHOD PATH [CURL-ARGS...]: req as iothubowner.
svc() {
	local method=$1 path=$2
	shift 2
	req "$method" "$path" -H "Authorization: $owner" "$@"
}
field() { jq -r "$1" <<<"$BODY"; }
message() { jq -r .Message <<<"$BODY"; }

# --- authentication -------------------------------------------------------

req GET "/devices?api-version=2021-04-12"
is "$STATUS" 401 "no Authorization: 401"
is "$(message)" "ErrorCode:IotHubUnauthorizedAccess;no Authorization header" \
	"no Authorization: IoT Hub error body"
like "$(field .ExceptionMessage)" '^Tracking ID:[0-9a-f]{32}-G:[0-9]+-TimeStamp:[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}$' \
	"error body has a tracking id"
like "$HDRS" $'content-type: application/json; charset=utf-8' "errors are application/json; charset=utf-8"
like "$HDRS" 'iothub-errorcode: iothubunauthorizedaccess' "iothub-errorcode header"

req GET /devices -H "Authorization: $(cloud_env_sas "$hub" "$CLOUD_HUB_OWNER_KEY" iothubowner 1000000000)"
is "$STATUS/$(message)" "401/ErrorCode:IotHubUnauthorizedAccess;the SharedAccessSignature expired (se=1000000000)" \
	"expired token: 401 with the expiry"

req GET /devices -H "Authorization: $(cloud_env_sas "$hub" "$CLOUD_HUB_REGISTRY_KEY" iothubowner)"
is "$STATUS/$(message)" "401/ErrorCode:IotHubUnauthorizedAccess;the SharedAccessSignature's signature does not match" \
	"wrong key: 401"

req GET /devices -H "Authorization: $(cloud_env_sas "$hub" "$CLOUD_HUB_OWNER_KEY" nobody)"
is "$STATUS/$(message)" '401/ErrorCode:IotHubUnauthorizedAccess;no shared access policy is called "nobody"' \
	"unknown policy: 401"

req GET /devices -H "Authorization: $(cloud_env_sas other.example "$CLOUD_HUB_OWNER_KEY" iothubowner)"
is "$STATUS/$(message)" "401/ErrorCode:IotHubUnauthorizedAccess;the SharedAccessSignature's resource (sr) is not this hub or this identity" \
	"token for another hub: 401"

req GET /devices -H "Authorization: Bearer abc"
is "$STATUS/$(message)" "401/ErrorCode:IotHubUnauthorizedAccess;the Authorization header is not a valid SharedAccessSignature" \
	"not a SAS: 401"

# --- devices ----------------------------------------------------------------

svc PUT /devices/dev1 -H 'Content-Type: application/json' --data-binary '{"deviceId":'
is "$STATUS" 400 "truncated JSON: 400"
like "$(message)" '^ErrorCode:ArgumentInvalid;the request body is not valid JSON: invalid JSON at 1:12: ' \
	"truncated JSON: says where"

svc PUT /devices/dev1 --data-binary '{"deviceId":"dev2"}'
is "$STATUS/$(message)" '400/ErrorCode:ArgumentInvalid;deviceId: "dev2" in the body is not "dev1" of the request path' \
	"deviceId mismatch: 400"

svc PUT /devices/dev1 --data-binary '{"authentication":{"type":"magic"}}'
is "$STATUS/$(message)" '400/ErrorCode:ArgumentInvalid;authentication.type: expected one of "sas", "selfSigned", "certificateAuthority", "none", got "magic"' \
	"unknown authentication type: 400"

svc PUT /devices/dev1 --data-binary '{"authentication":{"symmetricKey":{"primaryKey":"c2hvcnQ="}}}'
is "$STATUS/$(message)" '400/ErrorCode:ArgumentInvalid;authentication.symmetricKey.primaryKey: expected a base64 key of 16 to 64 bytes' \
	"short key: 400"

svc PUT /devices/dev1 --data-binary '{"status":"enabled","capabilities":{"iotEdge":"yes"}}'
is "$STATUS/$(message)" '400/ErrorCode:ArgumentInvalid;capabilities.iotEdge: expected a boolean, got a string' \
	"iotEdge not a boolean: 400"

svc PUT /devices/dev1 --data-binary '{"deviceId":"dev1","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}'
is "$STATUS" 200 "create dev1: 200"
like "$HDRS" $'content-type: application/json; charset=utf-8' "create dev1: JSON content type"
is "$(field '[.deviceId, .status, .connectionState, .authentication.type, .capabilities.iotEdge, .cloudToDeviceMessageCount] | join(",")')" \
	"dev1,enabled,Disconnected,sas,false,0" "create dev1: fields"
like "$(field .authentication.symmetricKey.primaryKey)" '^[A-Za-z0-9+/]{43}=$' "create dev1: primary key generated"
is "$(field '.authentication.x509Thumbprint | [.primaryThumbprint, .secondaryThumbprint] | map(tostring) | join(",")')" \
	"null,null" "create dev1: no thumbprints"
is "$(field 'keys_unsorted | join(",")')" \
	"deviceId,generationId,etag,connectionState,status,statusReason,connectionStateUpdatedTime,statusUpdatedTime,lastActivityTime,cloudToDeviceMessageCount,authentication,capabilities,deviceScope,parentScopes" \
	"create dev1: Azure's field order"
etag=$(field .etag)
key=$(field .authentication.symmetricKey.primaryKey)
key2=$(field .authentication.symmetricKey.secondaryKey)

svc PUT /devices/dev1 --data-binary '{}'
is "$STATUS/$(message)" '409/ErrorCode:DeviceAlreadyExists;a device with id "dev1" already exists' \
	"create twice: 409"

svc PUT /devices/dev1 -H 'If-Match: "not-the-etag"' --data-binary '{}'
is "$STATUS/$(message)" "412/ErrorCode:PreconditionFailed;the device's etag does not match If-Match: it was changed since it was read" \
	"stale If-Match: 412"

svc PUT /devices/dev1 -H "If-Match: \"$etag\"" --data-binary '{"status":"disabled"}'
is "$STATUS/$(field .status)/$(field .authentication.symmetricKey.primaryKey)" "200/disabled/$key" \
	"update with the quoted etag: 200, keys kept"
[ "$(field .etag)" != "$etag" ]
ok $? "update: a new etag"

svc PUT /devices/dev1 -H 'If-Match: *' --data-binary '{"status":"enabled"}'
is "$STATUS/$(field .status)" "200/enabled" "update with unquoted *: 200"

svc PUT /devices/ghost -H 'If-Match: "*"' --data-binary '{}'
is "$STATUS/$(message)" '404/ErrorCode:DeviceNotFound;device "ghost" does not exist' \
	"update a missing device: 404"

svc GET "/DEVICES/dev1?api-version=2020-03-13"
is "$STATUS/$(field .deviceId)" "200/dev1" "paths are case-insensitive, any api-version"

svc GET /devices/nobody
is "$STATUS/$(message)" '404/ErrorCode:DeviceNotFound;device "nobody" does not exist' \
	"unknown device: 404 DeviceNotFound"

svc PUT /devices/dev2 --data-binary '{"authentication":{"x509Thumbprint":{"primaryThumbprint":"0123456789abcdef0123456789abcdef01234567"}}}'
is "$STATUS/$(field .authentication.type)/$(field .authentication.x509Thumbprint.primaryThumbprint)" \
	"200/selfSigned/0123456789ABCDEF0123456789ABCDEF01234567" "selfSigned device: thumbprint stored uppercase"

svc PUT /devices/dev3 --data-binary '{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"xyz"}}}'
is "$STATUS/$(message)" "400/ErrorCode:ArgumentInvalid;authentication.x509Thumbprint.primaryThumbprint: expected a SHA-1 or SHA-256 thumbprint (40 or 64 hex digits)" \
	"bad thumbprint: 400"

svc GET "/devices/?top=1&api-version=2021-04-12"
is "$STATUS/$(field length)/$(field '.[0].deviceId')" "200/1/dev1" "list with top=1"
svc GET /devices/
is "$STATUS/$(field 'map(.deviceId) | join(",")')" "200/dev1,dev2" "list (Node's trailing slash)"
svc GET "/devices?top=0"
is "$STATUS/$(message)" "400/ErrorCode:ArgumentInvalid;top: expected a number from 1 to 1000" "top=0: 400"

# --- modules ---------------------------------------------------------------

svc PUT /devices/dev1/modules/m1 --data-binary '{"moduleId":"m1","deviceId":"dev1"}'
is "$STATUS/$(field .moduleId)/$(field .deviceId)/$(field .authentication.type)" "200/m1/dev1/sas" "create a module"
svc PUT /devices/dev1/modules/m1 --data-binary '{}'
is "$STATUS/$(message)" '409/ErrorCode:ModuleAlreadyExistsOnDevice;a module with id "m1" already exists' \
	"create a module twice: 409"
svc PUT /devices/nobody/modules/m1 --data-binary '{}'
is "$STATUS/$(message)" '404/ErrorCode:DeviceNotFound;device "nobody" does not exist' "module of a missing device: 404"
svc GET /devices/dev1/modules/m9
is "$STATUS/$(message)" '404/ErrorCode:ModuleNotFound;module "m9" does not exist on device "dev1"' "missing module: 404"

# --- twins -------------------------------------------------------------------

svc GET /twins/dev1
is "$STATUS/$(field '[.deviceId, .version, .properties.desired."$version", .properties.reported."$version", .authenticationType] | map(tostring) | join(",")')" \
	"200/dev1,1,1,1,sas" "twin of a new device"
twin_etag=$(field .etag)

svc PATCH /twins/dev1 -H "If-Match: \"$twin_etag\"" --data-binary '{"tags":{"site":"lab"},"properties":{"desired":{"rate":5}}}'
is "$STATUS/$(field '[.tags.site, .properties.desired.rate, .properties.desired."$version", .version] | map(tostring) | join(",")')" \
	"200/lab,5,2,2" "twin patch: merged, versions incremented"
is "$(field '.properties.desired."$metadata".rate."$lastUpdatedVersion"')" 2 "twin patch: \$metadata"

svc PATCH /twins/dev1 -H "If-Match: \"$twin_etag\"" --data-binary '{"tags":{"x":1}}'
is "$STATUS/$(message)" "412/ErrorCode:PreconditionFailed;the twin's etag does not match If-Match: it was changed since it was read" \
	"twin patch with a stale etag: 412"

svc PATCH /twins/dev1 -H 'If-Match: "*"' --data-binary '{"properties":{"desired":{"$bad":1}}}'
is "$STATUS/$(message)" "400/ErrorCode:ArgumentInvalid;properties.desired.\$bad: a property name must be 1 to 1024 bytes without '.', '\$', spaces or control characters" \
	"twin patch with a \$ key: 400"

svc PATCH /twins/dev1 -H 'If-Match: "*"' --data-binary '{"properties":{"reported":{"a":1}}}'
is "$STATUS/$(message)" "400/ErrorCode:ArgumentInvalid;properties.reported: reported properties are written by the device, not by a service" \
	"twin patch of reported properties: 400"

svc PUT /twins/dev1 -H 'If-Match: "*"' --data-binary '{"tags":{"only":"this"},"properties":{"desired":{"b":2}}}'
is "$STATUS/$(field '[(.tags | keys | join("+")), (.properties.desired | del(."$metadata", ."$version") | keys | join("+")), .properties.desired."$version"] | map(tostring) | join(",")')" \
	"200/only,b,3" "twin replace (PUT)"

req GET /twins/dev1 -H "Authorization: $(cloud_env_sas "$hub" "$CLOUD_HUB_REGISTRY_KEY" registryReadWrite)"
is "$STATUS/$(message)" '401/ErrorCode:IotHubUnauthorizedAccess;the policy "registryReadWrite" does not grant ServiceConnect' \
	"a policy without ServiceConnect cannot read twins"

# --- device-facing ---------------------------------------------------------

dev_token=$(cloud_env_sas "$hub/devices/dev1" "$key2")
req POST "/devices/dev1/messages/events?api-version=2021-04-12" -H "Authorization: $dev_token" \
	-H 'Transfer-Encoding: chunked' -H 'iothub-app-temperature: 21.5' -H 'IoTHub-MessageId: msg-1' \
	-H 'iothub-contenttype: text/plain' --data-binary 'hello hub'
is "$STATUS/$BODY" "204/" "telemetry with the device's secondary key, chunked: 204"

tel=$(cloud_env_cli telemetry list dev1 --json)
is "$(jq -r '.[0] | [.body, .properties.temperature, .systemProperties.messageId, .systemProperties.contentType, .systemProperties.connectionDeviceId, .size] | map(tostring) | join(",")' <<<"$tel")" \
	"hello hub,21.5,msg-1,text/plain,dev1,9" "the message is stored with its properties"

# sendEventBatch: base64 bodies, iothub-app- properties per message.
req POST /devices/dev1/messages/events -H "Authorization: $dev_token" \
	-H 'Content-Type: application/vnd.microsoft.iothub.json' \
	--data-binary '[{"body": "b25l", "properties":{"iothub-app-n":"1","dt-subject":"s"}},{"body": "dHdv"}]'
is "$STATUS/$BODY" "204/" "a batch of two messages: 204"
tel=$(cloud_env_cli telemetry list dev1 --limit 2 --json)
is "$(jq -r 'map([.body, (.properties | tojson), .systemProperties."dt-subject"] | map(tostring) | join(" ")) | join(",")' <<<"$tel")" \
	'two {} null,one {"n":"1"} s' "the batch's messages are stored in order, each with its properties"
req POST /devices/dev1/messages/events -H "Authorization: $dev_token" \
	-H 'Content-Type: application/vnd.microsoft.iothub.json' --data-binary '[{"body": "***"}]'
is "$STATUS/$(message)" "400/ErrorCode:ArgumentInvalid;[0].body: expected base64" "a batch with a bad body: 400"

req POST /devices/dev1/messages/events -H "Authorization: $(cloud_env_sas "$hub/devices/dev9" "$key2")" \
	--data-binary x
is "$STATUS/$(message)" "401/ErrorCode:IotHubUnauthorizedAccess;the SharedAccessSignature's resource (sr) is not this hub or this identity" \
	"a token for another device's resource: 401"

req POST /devices/dev2/messages/events -H "Authorization: $dev_token" --data-binary x
is "$STATUS/$(message)" "401/ErrorCode:IotHubUnauthorizedAccess;the identity uses X.509 authentication, not keys (type \"selfSigned\")" \
	"a key token for an X.509 device: 401"

req POST /devices/dev1/messages/events --data-binary x
is "$STATUS/$(message)" "401/ErrorCode:IotHubUnauthorizedAccess;no Authorization header and no client certificate" \
	"telemetry without credentials: 401"

head -c $((256 * 1024 + 1)) /dev/zero >"$dir/big"
req POST /devices/dev1/messages/events -H "Authorization: $dev_token" --data-binary @"$dir/big"
is "$STATUS/$(message)" "413/ErrorCode:MessageTooLarge;a message is at most 262144 bytes, got 262145" \
	"a message over 256 KiB: 413"

req GET /devices/dev1/messages/deviceBound -H "Authorization: $dev_token"
is "$STATUS/$BODY" "204/" "cloud-to-device poll: 204"

svc PUT /devices/dev1 -H 'If-Match: *' --data-binary '{"status":"disabled"}'
req POST /devices/dev1/messages/events -H "Authorization: $dev_token" --data-binary x
is "$STATUS/$(message)" "401/ErrorCode:IotHubUnauthorizedAccess;the device is disabled" \
	"a disabled device: 401"

req POST /devices/dev1/messages/events -H "Authorization: $(cloud_env_sas "$hub/devices/dev1" "$CLOUD_HUB_OWNER_KEY" iothubowner)" \
	--data-binary 'policy'
is "$STATUS" 401 "a policy token for a disabled device: 401"

# --- deletes and unknown paths -------------------------------------------------

svc DELETE /devices/dev1 -H 'If-Match: "*"'
is "$STATUS/$BODY" "204/" "delete: 204"
svc GET /devices/dev1
is "$STATUS" 404 "deleted device: 404"
svc GET /devices/dev1/modules
is "$STATUS/$(message)" '404/ErrorCode:DeviceNotFound;device "dev1" does not exist' "its modules went with it"
svc GET /nothing/here
is "$STATUS/$(message)" "404/ErrorCode:NotFound;no such resource: /nothing/here" "unknown path: 404"
svc POST /devices/dev2
is "$STATUS/$(message)" "405/ErrorCode:MethodNotAllowed;use GET, PUT or DELETE on a device" "wrong method: 405"

cloud_env_stop
is "$?" 0 "edgeid-cloud exits 0 on SIGTERM"
! grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$CLOUD_DIR/cloud.log"
ok $? "no sanitizer report in the server log"
done_testing
