#!/usr/bin/env bash
# Microsoft's Node SDKs (azure-iothub Registry, azure-iot-device over HTTP)
# against edgeid's hub: starts the hub on port 443 of a loopback address through
# tests/lib/cloud-env.sh and passes tests/interop/hub-registry.js's TAP
# through. Needs root (port 443) and Node with tests/interop/node_modules.
set -uo pipefail
src=${EDGEID_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$src/tests/lib/cloud-env.sh"
# An address of its own, so that tests running at the same time do not collide.
CLOUD_HUB_HOST=127.0.3.3

if ! command -v node >/dev/null || [ ! -d "$src/tests/interop/node_modules/azure-iothub" ]; then
	echo "1..0 # SKIP node or tests/interop/node_modules missing"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP needs root to listen on port 443"
	exit 0
fi

dir=$(mktemp -d)
cleanup() {
	cloud_env_stop >/dev/null 2>&1
	rm -rf "$dir"
}
trap cleanup EXIT

export CLOUD_ENV_SERVICES=hub
if ! cloud_env_pki "$dir" || ! cloud_env_config "$dir" || ! cloud_env_export; then
	echo "Bail out! cannot set up the test PKI and config"
	exit 1
fi
HUB_SELF_THUMBPRINT=$(cloud_env_device_cert "$dir" self-device self) &&
	cloud_env_device_cert "$dir" ca-device ca >/dev/null || {
	echo "Bail out! cannot make the device certificates"
	exit 1
}
export HUB_SELF_THUMBPRINT
export HUB_SELF_CERT=$CLOUD_PKI/devices/self-device.pem HUB_SELF_KEY=$CLOUD_PKI/devices/self-device.key
export HUB_CA_DEVICE_ID=ca-device HUB_CA_CERT=$CLOUD_PKI/devices/ca-device-chain.pem HUB_CA_KEY=$CLOUD_PKI/devices/ca-device.key
if ! cloud_env_start 30 >"$dir/start.err" 2>&1; then
	echo "Bail out! edgeid-cloud did not start"
	sed 's/^/# /' "$dir/start.err"
	exit 1
fi

node "$src/tests/interop/hub-registry.js"
status=$?
cloud_env_stop || status=1
if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$CLOUD_DIR/cloud.log"; then
	echo "# sanitizer report in the server log"
	status=1
fi
if [ "$status" -ne 0 ]; then
	echo "# edgeid-cloud log:"
	sed 's/^/#   /' "$CLOUD_DIR/cloud.log"
fi
exit $status
