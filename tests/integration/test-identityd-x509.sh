#!/usr/bin/env bash
# identityd with X.509 attestation, end to end with the real processes
# (edgeid-cloud on 127.0.4.12/.13, keyd, identityd): the identity
# certificate comes from the file `config apply` preloads, its private key
# stays in keyd and signs the TLS handshakes with DPS and the hub through
# keyd (EC P-256 with an individual enrollment; RSA-2048, chained to a CA,
# with an enrollment group), the registration id is the certificate's CN.
# A certificate DPS does not know gives one clear sentence.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
. "$EDGEID_SOURCE_ROOT/tests/integration/test-identityd-lib.sh"

dir=$(mktemp -d)
chmod 755 "$dir"
trap 'idt_stop_all; rm -rf "$dir"' EXIT
V=api-version=2020-09-01
V2=api-version=2021-12-01

idt_cloud_prepare "$dir/cloud" 127.0.4.12 127.0.4.13 && cloud_env_start
ok $? "edgeid-cloud starts" || { done_testing; exit; }
pki=$CLOUD_PKI
devs=$pki/devices

# An EC device (self-signed, individual enrollment) and an RSA device
# (signed by the device CA, enrollment group).
thumb=$(cloud_env_device_cert "$dir/cloud" x509-ec self)
ok $? "openssl makes the EC device certificate"
openssl req -new -newkey rsa:2048 -nodes -keyout "$devs/x509-rsa.key" -out "$devs/x509-rsa.csr" \
	-subj "/CN=x509-rsa" 2>/dev/null &&
	printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' \
		>"$devs/ext" &&
	openssl x509 -req -in "$devs/x509-rsa.csr" -CA "$pki/device-ca.pem" -CAkey "$pki/device-ca.key" \
		-out "$devs/x509-rsa.pem" -days 30 -set_serial 77 -extfile "$devs/ext" 2>/dev/null &&
	cat "$devs/x509-rsa.pem" "$pki/device-ca.pem" >"$devs/x509-rsa-chain.pem"
ok $? "openssl makes the RSA device certificate and its chain"
cloud_env_cli enrollment create --registration-id x509-ec --certificate "$devs/x509-ec.pem" >/dev/null &&
	cloud_env_cli group create x509-group --signing-cert "$pki/device-ca.pem" >/dev/null
ok $? "an individual enrollment (EC) and an enrollment group (RSA)"

# device DIR NAME CERT KEY: a device root provisioning with CERT and KEY.
device() {
	idt_device "$1" "hostname = \"$2\"
[provisioning]
source = \"dps\"
global_endpoint = \"https://$CLOUD_DPS_HOST/\"
id_scope = \"$CLOUD_DPS_ID_SCOPE\"
[provisioning.attestation]
method = \"x509\"
identity_cert = \"file:///etc/edgeid/device.pem\"
identity_pk = \"file:///etc/edgeid/device.key\"" &&
		cp "$3" "$IDT_ROOT/etc/edgeid/device.pem" && cp "$4" "$IDT_ROOT/etc/edgeid/device.key"
}

# ---- EC, individual enrollment ------------------------------------------------------

device "$dir/ec" ec-device "$devs/x509-ec.pem" "$devs/x509-ec.key"
ok $? "config apply for the EC device"
idt_start_keyd && idt_start_identityd
ok $? "keyd and identityd start"
idt_wait_state provisioned 60
ok $? "the EC device is provisioned"
is "$(idt_status | jq -c '[.device.device_id, .device.from, .device.hub_verified]')" \
	'["x509-ec","dps",true]' "... by DPS, and the hub accepted its certificate"
is "$(cloud_env_cli device show x509-ec --json | jq -r '.authentication.type + " " + .authentication.x509Thumbprint.primaryThumbprint')" \
	"selfSigned $thumb" "the hub has the device with the certificate's thumbprint"
idt_api POST "/identities/device?$V" '{"type":"aziot"}'
is "$status $(jq -c 'del(.spec.auth.keyHandle)' <<<"$body")" \
	"200 {\"type\":\"aziot\",\"spec\":{\"hubName\":\"$CLOUD_HUB_HOST\",\"gatewayHost\":\"$CLOUD_HUB_HOST\",\"deviceId\":\"x509-ec\",\"auth\":{\"type\":\"x509\",\"certId\":\"device-id\"}}}" \
	"POST /identities/device: an x509 identity with certId device-id"
like "$(jq -r .spec.auth.keyHandle <<<"$body")" '^sr=.+&sig=.+$' "... and keyd's handle of the key pair"
idt_api GET "/identities/provisioning?$V2"
is "$status $body" \
	"200 {\"source\":\"dps\",\"auth\":\"x509\",\"endpoint\":\"https://$CLOUD_DPS_HOST/\",\"scope_id\":\"$CLOUD_DPS_ID_SCOPE\",\"registration_id\":\"x509-ec\",\"payload\":null}" \
	"GET /identities/provisioning: the registration id is the certificate's CN"
out=$("$IDT_EDGEID" identity show --root "$IDT_ROOT")
like "$out" 'authentication:  x509 \(certificate device-id, key in keyd\)' "edgeid identity show: x509"
grep -q 'PRIVATE KEY' "$IDT_LOGS/identityd.log"
ok $((!$?)) "the private key never appears in identityd's log"
# identityd read no key file: each TLS handshake's signature came from keyd.
n_sign=$(grep -c 'info: <-- POST /sign ' "$IDT_LOGS/keyd.log")
ok $((n_sign < 2)) "keyd made the ECDSA signatures of the handshakes with DPS and the hub ($n_sign)"

# A certificate DPS does not know, with the same CN: refused, retried.
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/other.key" \
	-out "$dir/other.pem" -days 30 -subj "/CN=x509-ec" 2>/dev/null
cp "$dir/other.pem" "$IDT_ROOT/etc/edgeid/device.pem"
cp "$dir/other.key" "$IDT_ROOT/etc/edgeid/device.key"
kill -HUP "$IDT_KEYD_PID" # nothing to reload, but keyd reads key files per use
idt_api POST "/identities/device/reprovision?$V" '{"type":"aziot"}'
refused="DPS refused registration 'x509-ec' in ID scope '$CLOUD_DPS_ID_SCOPE' (401 Unauthorized (errorCode 401002)); check that an enrollment for it exists and that the device's certificate matches it"
is "$status $(jq -r .message <<<"$body")" "404 DPS client error
caused by: $refused" "an unknown certificate: 404 with the reason"
is "$(idt_status | jq -c '[.state, .retrying, .last_error]')" "[\"failed\",true,\"$refused\"]" \
	"the status: failed, trying again later (the enrollment may still come)"
idt_stop_identityd
ok $? "identityd stops cleanly"
kill -TERM "$IDT_KEYD_PID" && wait "$IDT_KEYD_PID"
IDT_KEYD_PID=

# ---- RSA, enrollment group, certificate chain -------------------------------------------

device "$dir/rsa" rsa-device "$devs/x509-rsa-chain.pem" "$devs/x509-rsa.key"
ok $? "config apply for the RSA device"
idt_start_keyd && idt_start_identityd
ok $? "keyd and identityd start"
idt_wait_state provisioned 60
ok $? "the RSA device is provisioned through the group"
is "$(idt_status | jq -c '[.device.device_id, .device.hub_verified]')" '["x509-rsa",true]' \
	"... and the hub accepted its chain"
is "$(cloud_env_cli device show x509-rsa --json | jq -r .authentication.type)" certificateAuthority \
	"the hub has the group's device as certificateAuthority"
n_enc=$(grep -c 'info: <-- POST /encrypt ' "$IDT_LOGS/keyd.log")
ok $((n_enc < 2)) "keyd made the RSA signatures (private-key operations) of the handshakes ($n_enc)"
idt_stop_identityd
ok $? "identityd stops cleanly"
kill -TERM "$IDT_KEYD_PID" && wait "$IDT_KEYD_PID"
IDT_KEYD_PID=
cloud_env_stop >/dev/null 2>&1
idt_no_sanitizer_reports "X.509"
done_testing
