#!/usr/bin/env bash
# Microsoft's Node SDKs against edgeid's DPS and hub (tests/interop/dps-*.js):
# the enrollment service client, and the provisioning device client over
# HTTPS with symmetric keys and X.509 followed by telemetry to the hub.
# Starts edgeid-cloud (dps + hub) on two loopback addresses of its own,
# makes the device certificates with openssl, and passes the scripts' TAP
# through, renumbered as one stream.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
. "$EDGEID_SOURCE_ROOT/tests/integration/test-dps-lib.sh"

interop=$EDGEID_SOURCE_ROOT/tests/interop
if ! command -v node >/dev/null 2>&1 || [ ! -d "$interop/node_modules/azure-iot-provisioning-service" ]; then
	echo "1..0 # SKIP node or the interop node_modules are missing (npm ci in tests/interop)"
	exit 0
fi

dir=$(mktemp -d)
trap 'cloud_env_stop >/dev/null 2>&1; rm -rf "$dir"' EXIT

if ! dps_test_env_start "$dir"; then
	ok 1 "edgeid-cloud with dps and hub starts"
	done_testing
	exit
fi
ok 0 "edgeid-cloud with dps and hub starts ($CLOUD_DPS_HOST, $CLOUD_HUB_HOST)"

# Certificates: one for the service test's X.509 enrollment, a self-signed
# device for an individual enrollment, a device signed by the device CA for
# a group.
cloud_env_device_cert "$dir" svc-x509-1 self >/dev/null &&
	cloud_env_device_cert "$dir" x509-dev-1 self >/dev/null &&
	cloud_env_device_cert "$dir" x509-grp-dev-1 ca >/dev/null
ok $? "openssl makes the device certificates"

# run_tap NAME COMMAND...: pass a TAP stream through, renumbered into ours;
# its plan is dropped and a missing or failing process is a failure.
run_tap() {
	local name=$1 line n=0 status
	shift
	while IFS= read -r line; do
		if [[ $line =~ ^(not\ )?ok\ [0-9]+(\ -\ )?(.*)$ ]]; then
			n=$((n + 1))
			ok "$([ -z "${BASH_REMATCH[1]}" ] && echo 0 || echo 1)" "$name: ${BASH_REMATCH[3]}"
		elif [[ $line =~ ^1\.\.[0-9]+ ]]; then
			:
		else
			printf '%s\n' "$line"
		fi
	done < <("$@" 2>&1)
	wait $! 2>/dev/null
	status=$?
	ok $(([ "$n" -gt 0 ] && [ "$status" -eq 0 ] && echo 0) || echo 1) "$name: exits 0 after $n checks"
}

export DPS_ID_SCOPE CLOUD_BIN CLOUD_CONFIG
export DPS_TEST_CERT=$CLOUD_PKI/devices/svc-x509-1.pem
export DPS_X509_INDIVIDUAL=$CLOUD_PKI/devices/x509-dev-1
export DPS_X509_GROUP=$CLOUD_PKI/devices/x509-grp-dev-1
export DPS_DEVICE_CA=$CLOUD_PKI/device-ca.pem

cd "$interop" || exit 1
run_tap service node dps-service.js
run_tap device node dps-device.js

kill -0 "$CLOUD_PID" 2>/dev/null
ok $? "edgeid-cloud is still running"
dps_test_stop_and_check
done_testing
