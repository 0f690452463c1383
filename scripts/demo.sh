#!/usr/bin/env bash
# `make demo`: what edgeid can do today, on one machine, end to end.
#
# Today that is the first step of the seeds' flow: write the config.toml a
# seeds reader writes for DPS provisioning with a TPM, validate it, and
# apply it into a private root, showing what each daemon would read. The
# provisioning service, the hub and the device daemons come next; this
# script says so rather than pretending.
#
#   scripts/demo.sh         run the demo (KEEP=1 keeps demo/ afterwards)
#   scripts/demo.sh stop    stop what a KEEP=1 demo left running
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
demo=$root/demo

if [ "${1:-}" = stop ]; then
	if [ -d "$demo" ]; then
		rm -rf "$demo"
		echo "demo: removed demo/ (no services run in this version of the demo)"
	else
		echo "demo: nothing to stop"
	fi
	exit 0
fi

edgeid=$root/build/edgeid
[ -x "$edgeid" ] || { echo "demo: build/edgeid is missing; run 'make' first" >&2; exit 1; }

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

rm -rf "$demo"
mkdir -p "$demo/root"

step "1. The device's config.toml, as the seeds write it (DPS, TPM attestation)"
cat >"$demo/config.toml" <<'TOML'
# DPS provisioning with TPM attestation (seeds 000/001)
hostname = "edge-demo-01"
auto_reprovisioning_mode = "Dynamic"

[provisioning]
source = "dps"
global_endpoint = "https://global.azure-devices-provisioning.net"
id_scope = "0ne00AAAAAA"

[provisioning.attestation]
method = "tpm"
registration_id = "edge-demo-01"

[tpm]
tcti = "swtpm:host=127.0.0.1,port=2321"
TOML
sed 's/^/    /' "$demo/config.toml"

step "2. Validate it"
run "$edgeid" config check -c "$demo/config.toml"

step "3. A typo is caught with its file, line, column and what was expected"
sed 's/method = "tpm"/method = "tmp"/' "$demo/config.toml" >"$demo/config-typo.toml"
printf '$ %s\n' "edgeid config check -c $demo/config-typo.toml"
"$edgeid" config check -c "$demo/config-typo.toml" || true

step "4. Apply it into a private root (demo/root instead of /)"
run "$edgeid" config apply -c "$demo/config.toml" --root "$demo/root"

step "5. What the identity service will read"
run cat "$demo/root/etc/aziot/identityd/config.d/00-super.toml"

step "6. The effective configuration, with defaults filled in"
run "$edgeid" config show -c "$demo/config.toml"

step "Not in this version yet"
cat <<'TXT'
The next steps of the seeds' flow (swtpm, the self-hosted provisioning
service and hub, the TPM enrollment, the device daemons provisioning
themselves) are being built; `make demo` will run them here as they land.
TXT

if [ "${KEEP:-0}" = 1 ]; then
	echo
	echo "demo: KEEP=1: files left in demo/; 'make demo-stop' removes them"
else
	rm -rf "$demo"
fi
