#!/usr/bin/env bash
# `make demo`: the seeds' whole flow on one machine, with nobody touching
# the device after it is enrolled.
#
#   1. a TPM (swtpm) and the cloud side (edgeid-cloud: DPS and hub, a
#      throwaway CA, SQLite) on loopback;
#   2. the TPM's registration id and endorsement key, read as the seeds do;
#   3. an individual TPM enrollment, edge-enabled, with a tag;
#   4. a config.toml like the seeds', applied; the device daemons started;
#   5. the device provisions itself: enrollment assigned, device in the hub,
#      and a hub request signed inside the TPM accepted.
#
#   scripts/demo.sh         run it, then stop what it started
#   KEEP=1 scripts/demo.sh  leave it running and write demo/env
#   scripts/demo.sh stop    stop what a KEEP=1 run left running
#
# Everything lives under demo/ in the source tree; nothing outside it is
# touched (the device's root is demo/device, not /). It needs root: the
# services listen on port 443 (the only port Microsoft's SDKs use) and the
# daemons run as their own users.
set -uo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
demo=$src/demo
export EDGEID_SOURCE_ROOT=$src EDGEID_BUILD_ROOT=$src/build
edgeid=$src/build/edgeid
edgeidd=$src/build/edgeidd
dev=$demo/device

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '%s\n' "$*"; }
run() {
	printf '\033[2m$ %s\033[0m\n' "$*"
	"$@"
}
die() {
	printf 'demo: %s\n' "$*" >&2
	exit 1
}

# Stop what a run started, from the pid files it left.
stop_all() {
	local pidfile pid
	for pidfile in "$demo"/supervise.pid "$demo"/cloud/cloud.pid "$demo"/tpm/swtpm.pid; do
		[ -f "$pidfile" ] || continue
		pid=$(cat "$pidfile" 2>/dev/null) || continue
		if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null
			for _ in $(seq 50); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			kill -KILL "$pid" 2>/dev/null
		fi
		rm -f "$pidfile"
	done
}

if [ "${1:-}" = stop ]; then
	if [ -d "$demo" ]; then
		stop_all
		echo "demo: stopped; its files are in demo/ (rm -rf demo to remove them)"
	else
		echo "demo: nothing to stop"
	fi
	exit 0
fi

[ "$(id -u)" -eq 0 ] || die "run me as root (sudo make demo): the services listen on port 443"
for p in "$edgeid" "$edgeidd" "$src/build/edgeid-cloud"; do
	[ -x "$p" ] || die "$p is missing; run 'make' first"
done
command -v swtpm >/dev/null || die "swtpm is missing; run 'scripts/install-deps.sh demo'"

stop_all
rm -rf "$demo"
mkdir -p "$demo"
chmod 755 "$demo"
trap '[ "${KEEP:-0}" = 1 ] || stop_all' EXIT

bold "1. A TPM and the cloud side"
# shellcheck source=tests/lib/swtpm.sh
. "$src/tests/lib/swtpm.sh"
# shellcheck source=tests/lib/cloud-env.sh
. "$src/tests/lib/cloud-env.sh"
swtpm_start "$demo/tpm" >/dev/null || die "swtpm did not start"
say "swtpm (a TPM 2.0 simulator) answers at $EDGEID_TEST_TCTI"
CLOUD_ENV_WORKERS=1 cloud_env_setup "$demo/cloud" || die "edgeid-cloud did not start (see $demo/cloud/cloud.log)"
cp "$CLOUD_DIR/cloud.pid" "$demo/cloud/cloud.pid" 2>/dev/null || true
sed 's/^/  /' "$CLOUD_DIR/cloud.out"
say "provisioning service: https://$CLOUD_DPS_HOST (ID scope $CLOUD_DPS_ID_SCOPE)"
say "hub:                  https://$CLOUD_HUB_HOST"

bold "2. The TPM's registration id and endorsement key (as the seeds read them)"
run "$edgeid" tpm provisioning-info --tcti "$EDGEID_TEST_TCTI" | tee "$demo/provisioning-info.txt"
regid=$("$edgeid" tpm provisioning-info --tcti "$EDGEID_TEST_TCTI" --json | jq -r .registration_id)
ek=$("$edgeid" tpm provisioning-info --tcti "$EDGEID_TEST_TCTI" --json | jq -r .endorsement_key)
[ ${#regid} -eq 64 ] || die "could not read the registration id"

bold "3. An individual TPM enrollment, edge-enabled, with a tag"
device_id=edge-demo-01
run "$src/build/edgeid-cloud" --config "$CLOUD_CONFIG" enrollment create \
	--registration-id "$regid" --endorsement-key "$ek" --device-id "$device_id" \
	--edge-enabled --tag environment=demo || die "enrollment failed"

bold "4. The device's config.toml, like the seeds', applied"
mkdir -p "$dev/etc/aziot" "$dev/etc/edgeid"
cp "$CLOUD_CA" "$dev/etc/edgeid/cloud-ca.pem"
cat >"$dev/etc/aziot/config.toml" <<TOML
hostname = "$device_id"
auto_reprovisioning_mode = "Dynamic"
# The self-hosted cloud's CA (a device using Azure needs no such line).
trust_bundle_cert = "file:///etc/edgeid/cloud-ca.pem"

[provisioning]
source = "dps"
global_endpoint = "https://$CLOUD_DPS_HOST/"
id_scope = "$CLOUD_DPS_ID_SCOPE"

[provisioning.attestation]
method = "tpm"
registration_id = "$regid"

[tpm]
tcti = "$EDGEID_TEST_TCTI"
TOML
sed 's/^/    /' "$dev/etc/aziot/config.toml"
run "$edgeid" config apply -c "$dev/etc/aziot/config.toml" --root "$dev" || die "config apply failed"
# What the package installs (packaging/tmpfiles.d): each daemon's state
# directory, owned by its user.
for d in keyd:aziotks certd:aziotcs identityd:aziotid tpmd:aziottpm; do
	install -d -m 0700 -o "${d#*:}" -g "${d#*:}" "$dev/var/lib/aziot/${d%%:*}"
done

bold "5. The device daemons start and the device provisions itself"
run "$edgeidd" supervise --root "$dev" --run-dir "$dev/run/edgeid" || die "edgeidd supervise failed"
cat "$dev/run/edgeid/supervise.pid" >"$demo/supervise.pid" 2>/dev/null
printf 'waiting for the device to be provisioned'
provisioned=
for _ in $(seq 120); do
	if out=$("$edgeid" identity show --root "$dev" 2>/dev/null) && grep -q "$device_id" <<<"$out"; then
		provisioned=1
		break
	fi
	printf '.'
	sleep 0.5
done
echo
run "$edgeid" system status --root "$dev" --run-dir "$dev/run/edgeid"
[ -n "$provisioned" ] || {
	run "$edgeid" system logs --root "$dev" --run-dir "$dev/run/edgeid" identityd | tail -n 20
	die "the device did not provision itself"
}
run "$edgeid" identity show --root "$dev"

bold "6. What the cloud sees"
run "$src/build/edgeid-cloud" --config "$CLOUD_CONFIG" registration show "$regid"
run "$src/build/edgeid-cloud" --config "$CLOUD_CONFIG" device show "$device_id"
run "$src/build/edgeid-cloud" --config "$CLOUD_CONFIG" device twin "$device_id"

bold "7. The device authenticated in the hub, with a SAS signed inside the TPM"
# The hub key DPS sent lives in the TPM; tpmd signs with it.
sr="$CLOUD_HUB_HOST%2Fdevices%2F$device_id"
se=$(($(date +%s) + 3600))
data=$(printf '%s\n%s' "$sr" "$se" | base64 -w0)
sig=$(curl -s --unix-socket "$dev/run/aziot/tpmd.sock" -H 'Content-Type: application/json' \
	-d "{\"data\":\"$data\"}" "http://tpmd.sock/sign_with_auth_key?api-version=2020-09-01" |
	jq -r .digest)
sig=${sig//+/%2B}
sig=${sig//\//%2F}
sig=${sig//=/%3D}
printf '\033[2m$ curl --cacert ca.pem -H "Authorization: SharedAccessSignature sr=...&sig=<signed in the TPM>&se=..." https://%s/devices/%s/messages/events\033[0m\n' "$CLOUD_HUB_HOST" "$device_id"
status=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CLOUD_CA" \
	-H "Authorization: SharedAccessSignature sr=$sr&sig=$sig&se=$se" \
	-H 'Content-Type: application/json' --data '{"hello":"from the TPM"}' \
	"https://$CLOUD_HUB_HOST/devices/$device_id/messages/events?api-version=2020-09-30")
say "the hub answered $status"
run "$src/build/edgeid-cloud" --config "$CLOUD_CONFIG" telemetry list "$device_id"
[ "$status" = 204 ] || die "the hub refused the TPM-signed request"

if [ "${KEEP:-0}" = 1 ]; then
	cat >"$demo/env" <<ENV
# Written by make demo KEEP=1; 'make demo-stop' stops the services.
EDGEID_ID_SCOPE=$CLOUD_DPS_ID_SCOPE
EDGEID_DPS_HOST=$CLOUD_DPS_HOST
EDGEID_HUB_HOST=$CLOUD_HUB_HOST
EDGEID_CA_CERT=$CLOUD_CA
EDGEID_DPS_CONNECTION_STRING='$CLOUD_DPS_CONNECTION_STRING'
EDGEID_HUB_CONNECTION_STRING='$CLOUD_HUB_CONNECTION_STRING'
EDGEID_CLOUD_CONFIG=$CLOUD_CONFIG
NODE_EXTRA_CA_CERTS=$CLOUD_CA
export EDGEID_ID_SCOPE EDGEID_DPS_HOST EDGEID_HUB_HOST EDGEID_CA_CERT EDGEID_DPS_CONNECTION_STRING EDGEID_HUB_CONNECTION_STRING EDGEID_CLOUD_CONFIG NODE_EXTRA_CA_CERTS
ENV
	bold "Left running (KEEP=1)"
	say "Shell variables for Microsoft's SDKs and edgeid-cloud: . demo/env"
	say "Stop everything with: make demo-stop"
else
	bold "Done; stopping what the demo started"
fi
exit 0
