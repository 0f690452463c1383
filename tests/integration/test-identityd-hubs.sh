#!/usr/bin/env bash
# identityd when the enrollment moves to another hub: a DPS (127.0.4.22)
# linked to two hubs (127.0.4.23 in one edgeid-cloud, 127.0.4.24 in a
# second one). After the move, a restart keeps using device_info (the old
# hub still knows the device: aziot's behaviour), the reprovision call
# moves the device to the new hub, and a hub that no longer knows the
# device makes identityd register again on its own.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
. "$EDGEID_SOURCE_ROOT/tests/integration/test-identityd-lib.sh"

dir=$(mktemp -d)
chmod 755 "$dir"
hub2_pid=
trap '[ -n "$hub2_pid" ] && kill -9 "$hub2_pid" 2>/dev/null; idt_stop_all; rm -rf "$dir"' EXIT
V=api-version=2020-09-01
HUB1=127.0.4.23
HUB2=127.0.4.24
HUB2_KEY=$(openssl rand -base64 32)

# shellcheck disable=SC2016,SC2089,SC2090 # TOML text, quotes included
CLOUD_ENV_DPS_EXTRA='id_scope = "@ID_SCOPE@"
hub_ca_file = "@PKI@/ca.pem"

[[dps.shared_access_policy]]
name = "provisioningserviceowner"
primary_key = "@DPS_OWNER_KEY@"

[[dps.linked_hub]]
connection_string = "@HUB_CONNECTION_STRING@"

[[dps.linked_hub]]
connection_string = "HostName='$HUB2';SharedAccessKeyName=iothubowner;SharedAccessKey='$HUB2_KEY'"'
# shellcheck disable=SC2090
export CLOUD_ENV_DPS_EXTRA
idt_cloud_prepare "$dir/cloud" 127.0.4.22 "$HUB1" && cloud_env_start
ok $? "edgeid-cloud with the DPS and the first hub starts" || { done_testing; exit; }

# The second hub: its own process, store and certificate from the same CA.
h2=$dir/hub2
mkdir -p "$h2"
cloud_env_server_cert "$h2/hub" "$HUB2"
ok $? "a certificate for the second hub"
cat >"$h2/cloud.toml" <<EOF
[store]
url = "sqlite://$h2/cloud.db"

[tls]
client_ca = "$CLOUD_PKI/ca.pem"

[hub]
listen = ["$HUB2:443"]
host_name = "$HUB2"
workers = 1
tls_cert = "$h2/hub.pem"
tls_key = "$h2/hub.key"
ca = ["$CLOUD_PKI/device-ca.pem"]

[[hub.shared_access_policy]]
name = "iothubowner"
primary_key = "$HUB2_KEY"
rights = "RegistryWrite ServiceConnect DeviceConnect"
EOF
"$CLOUD_BIN" serve --config "$h2/cloud.toml" >"$h2/cloud.out" 2>"$h2/cloud.log" &
hub2_pid=$!
for _ in $(seq 1 200); do
	grep -q '^edgeid-cloud: hub ready on ' "$h2/cloud.out" && break
	sleep 0.05
done
grep -q '^edgeid-cloud: hub ready on ' "$h2/cloud.out"
ok $? "the second hub starts" || sed 's/^/# /' "$h2/cloud.log"
hub2() { "$CLOUD_BIN" --config "$h2/cloud.toml" "$@"; }

KEY=$(openssl rand -base64 32)
cloud_env_cli enrollment create --registration-id mover --symmetric-key "$KEY" --hub "$HUB1" >/dev/null
ok $? "an enrollment assigned to the first hub"

idt_device "$dir/dev" "hostname = \"mover\"
[provisioning]
source = \"dps\"
global_endpoint = \"https://$CLOUD_DPS_HOST/\"
id_scope = \"$CLOUD_DPS_ID_SCOPE\"
[provisioning.attestation]
method = \"symmetric_key\"
registration_id = \"mover\"
symmetric_key = { value = \"$KEY\" }" && idt_start_keyd && idt_start_identityd
ok $? "the device starts"
idt_wait_state provisioned 60
ok $? "provisioned"
home=$IDT_ROOT/var/lib/aziot/identityd
is "$(sed -n 1p "$home/device_info")" "hub_name = \"$HUB1\"" "device_info names the first hub"

# ---- the enrollment moves to the second hub ----------------------------------------------

cloud_env_cli enrollment delete mover >/dev/null &&
	cloud_env_cli enrollment create --registration-id mover --symmetric-key "$KEY" --hub "$HUB2" >/dev/null
ok $? "the enrollment now assigns the second hub"
idt_stop_identityd
idt_start_identityd
idt_wait_state provisioned 30
is "$(idt_status | jq -c '[.device.hub_name, .device.from]')" "[\"$HUB1\",\"device_info\"]" \
	"a restart keeps device_info's hub while that hub still accepts the device"
idt_api POST "/identities/device/reprovision?$V" '{"type":"aziot"}'
is "$status" 204 "the reprovision call succeeds"
is "$(idt_status | jq -c '[.device.hub_name, .device.from, .device.hub_verified]')" \
	"[\"$HUB2\",\"dps\",true]" "... and moves the device to the second hub, which accepts it"
is "$(sed -n 1p "$home/device_info")" "hub_name = \"$HUB2\"" "device_info names the second hub"
is "$(hub2 device show mover --json | jq -r .authentication.symmetricKey.primaryKey)" "$KEY" \
	"the second hub has the device with its key"
idt_api POST "/identities/device?$V" '{"type":"aziot"}'
is "$(jq -r '.spec.hubName + " " + .spec.gatewayHost' <<<"$body")" "$HUB2 $HUB2" \
	"the identity names the second hub"

# ---- back to the first hub, noticed through the hub's refusal ----------------------------------

cloud_env_cli enrollment delete mover >/dev/null &&
	cloud_env_cli enrollment create --registration-id mover --symmetric-key "$KEY" --hub "$HUB1" >/dev/null &&
	hub2 device delete mover >/dev/null
ok $? "the enrollment goes back to the first hub; the second hub forgets the device"
idt_stop_identityd
idt_start_identityd
idt_wait_state provisioned 30
is "$(idt_status | jq -c '[.device.hub_name, .device.from]')" "[\"$HUB1\",\"dps\"]" \
	"the second hub refuses the device at start-up: registered again, in the first hub"

idt_stop_identityd
ok $? "identityd stops cleanly"
kill -TERM "$hub2_pid" && wait "$hub2_pid"
hub2_pid=
cp "$h2/cloud.log" "$IDT_LOGS/hub2.log"
idt_no_sanitizer_reports "two hubs"
done_testing
