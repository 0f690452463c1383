#!/usr/bin/env bash
# certd through the real `edgeidd certd` and `edgeidd keyd`, set up by
# `edgeid config apply` with a local CA, each running as its own user
# (aziotcs, aziotks) when the test runs as root: import, get and delete;
# certificates issued from CSRs (openssl req) by the local CA, self-signed
# by keyd's key pair of the same id, and by an explicit issuer with a key
# handle (RSA), each checked with `openssl verify` and `openssl x509`
# (subject, issuer, validity, serial, extensions); preloaded certificates
# and bundles; 403 for callers that are not principals; exact errors for
# malformed PEM and CSRs, unknown certificates and refused issuers; files
# 0600 under aziot's names, owned by certd's user; certd keeps serving
# after bad input; SIGHUP reloads principals; EST is refused clearly.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
edgeidd=$EDGEID_BUILD_ROOT/edgeidd
edgeid=$EDGEID_BUILD_ROOT/edgeid

for tool in curl jq openssl setpriv sha256sum; do
	command -v "$tool" >/dev/null || {
		echo "1..0 # SKIP $tool is not installed"
		exit 0
	}
done

tmp=$(mktemp -d)
chmod 755 "$tmp"
root=$tmp/root
pki=$root/etc/edgeid-test
certs=$root/var/lib/aziot/certd/certs
csock=$root/run/aziot/certd.sock
ksock=$root/run/aziot/keyd.sock
logs=$tmp/logs
V=api-version=2020-09-01
KV=api-version=2021-05-01
keyd_pid=
certd_pid=

cleanup() {
	[ -n "$certd_pid" ] && kill -9 "$certd_pid" 2>/dev/null
	[ -n "$keyd_pid" ] && kill -9 "$keyd_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

skip() {
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N # SKIP $*"
}
user_exists() { getent passwd "$1" >/dev/null; }
# Run as the daemons' users when the test is root and they exist.
as_users=0
if [ "$(id -u)" -eq 0 ] && user_exists aziotks && user_exists aziotcs; then
	as_users=1
	cs_uid=$(id -u aziotcs)
	ks_gid=$(getent group aziotks | cut -d: -f3)
	cs_gid=$(getent group aziotcs | cut -d: -f3)
else
	cs_uid=$(id -u)
fi

# ---- the PKI: a local CA, an RSA CA for an explicit issuer, keys ---------------

mkdir -p "$pki" "$logs"
cd "$tmp" || exit 1
openssl ecparam -name prime256v1 -genkey -noout -out "$pki/ca.key.pem" 2>/dev/null
openssl req -x509 -new -key "$pki/ca.key.pem" -subj "/CN=edgeid test local CA/O=edgeid" \
	-days 3650 -addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" -out "$pki/ca.pem" 2>/dev/null
openssl genrsa -out "$pki/short-ca.key.pem" 2048 2>/dev/null
openssl req -x509 -new -key "$pki/short-ca.key.pem" -subj "/CN=edgeid short-lived CA" \
	-days 2 -addext "basicConstraints=critical,CA:TRUE" -out "$pki/short-ca.pem" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$pki/selfie.key.pem" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/leaf.key" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/other.key" 2>/dev/null
# A preloaded certificate certd may replace: its directory is certd's, as
# the file is replaced atomically (a temporary next to it, renamed).
mkdir -p "$pki/certd"
openssl req -x509 -new -key "$tmp/other.key" -subj "/CN=an extra CA" -days 30 \
	-out "$pki/certd/extra-ca.pem" 2>/dev/null
chmod 644 "$pki/certd/extra-ca.pem"
openssl req -x509 -new -key "$tmp/other.key" -subj "/CN=imported" -days 30 \
	-out "$tmp/imported.pem" 2>/dev/null
chmod 644 "$pki"/*.pem
chmod 600 "$pki"/*.key.pem
if [ "$as_users" = 1 ]; then
	chown aziotks "$pki"/*.key.pem
	chown aziotcs "$pki/certd"
fi

# ---- the device: config apply, then the drop-ins the test needs ----------------

mkdir -p "$root/etc/aziot"
cat >"$root/etc/aziot/config.toml" <<'EOF'
hostname = "certd-test"

[provisioning]
source = "none"

[cert_issuance.local_ca]
cert = "file:///etc/edgeid-test/ca.pem"
pk = "file:///etc/edgeid-test/ca.key.pem"

[cert_issuance.module-a]
method = "local_ca"
expiry_days = 10
common_name = "module-a.example"

[cert_issuance.module-b]
method = "local_ca"
subject = { O = "Edge Org", CN = "module-b", L = "Lisbon" }

[cert_issuance.selfie]
method = "self_signed"
expiry_days = 400

[cert_issuance.est-thing]
method = "est"
url = "https://est.example.com/.well-known/est"
username = "u"
password = "p"

[preloaded_keys]
selfie = "file:///etc/edgeid-test/selfie.key.pem"
short-ca-key = "file:///etc/edgeid-test/short-ca.key.pem"

[preloaded_certs]
extra-ca = "file:///etc/edgeid-test/certd/extra-ca.pem"
bundle = ["extra-ca", "module-a", "no-such-cert"]
EOF
"$edgeid" config apply -c "$root/etc/aziot/config.toml" --root "$root" >"$logs/apply.out" 2>&1
ok $? "edgeid config apply writes the daemons' configuration" || sed 's/^/# /' "$logs/apply.out"
super=$root/etc/aziot/certd/config.d/00-super.toml
like "$(cat "$super")" '^homedir_path = "/var/lib/aziot/certd"' "certd's 00-super.toml has homedir_path"
like "$(tr -d '\n' <"$super")" '\[cert_issuance.local_ca\]cert = "local-ca"pk = "local-ca"' \
	"... and [cert_issuance.local_ca] names the ids local-ca"

# certd (aziotcs) signs with keyd's key pair "selfie" for the self-signed
# certificate; config apply grants it local-ca only.
printf '[[principal]]\nuid = %s\nkeys = ["selfie"]\n' "$cs_uid" \
	>"$root/etc/aziot/keyd/config.d/50-test.toml"
# uid 4242 may write module-* and a few others; 4243 nothing (yet).
cat >"$root/etc/aziot/certd/config.d/50-test.toml" <<'EOF'
[[principal]]
uid = 4242
certs = ["module-*", "imported"]
EOF
if [ "$as_users" = 1 ]; then
	chown aziotks "$root/etc/aziot/keyd/config.d/50-test.toml"
	chown aziotcs "$root/etc/aziot/certd/config.d/50-test.toml"
fi
mkdir -p "$root/var/lib/aziot/keyd" "$root/var/lib/aziot/certd" "$root/run/aziot"
chmod 700 "$root/var/lib/aziot/keyd" "$root/var/lib/aziot/certd"
# The daemons make their own sockets here (the supervisor or systemd would
# hand them over); a sticky, world-writable directory lets both users.
chmod 1777 "$root/run/aziot"
if [ "$as_users" = 1 ]; then
	chown aziotks "$root/var/lib/aziot/keyd"
	chown aziotcs "$root/var/lib/aziot/certd"
fi

# ---- --check ---------------------------------------------------------------------

out=$("$edgeidd" certd --root "$root" --check 2>&1)
is "$?:$out" "0:$root/etc/aziot/certd/config.toml: OK" "certd --check accepts what config apply wrote"
bad=$tmp/bad
mkdir -p "$bad"
check_bad() { # check_bad TOML EXPECTED DESCRIPTION
	printf '%s\n' "$1" >"$bad/config.toml"
	out=$("$edgeidd" certd -c "$bad/config.toml" --check 2>&1)
	is "$?:$out" "1:$bad/config.toml:$2" "$3"
}
check_bad $'[cert_issuance.x]\nmethod = "ca"' \
	'2:10: cert_issuance.x.method: expected one of "self_signed", "local_ca", "est", got "ca"' \
	"--check: an unknown issuance method"
check_bad $'[cert_issuance.x]\nmethod = "local_ca"\nexpiry_days = 0' \
	'3:15: cert_issuance.x.expiry_days: expected a number of days from 1 to 4294967295, got 0' \
	"--check: expiry_days = 0 is refused, as in aziot"
check_bad $'[cert_issuance.x]\nmethod = "local_ca"\nexpiry = 3' \
	'3:10: cert_issuance.x.expiry: unknown setting (expected method, expiry_days, common_name, subject, or the EST settings url, username, password, identity_cert, identity_pk, bootstrap_identity_cert, bootstrap_identity_pk)' \
	"--check: a misspelt issuance setting"
check_bad $'[cert_issuance.x]\nmethod = "self_signed"\nsubject = { CN = "a", XYZ = "b" }' \
	'3:11: cert_issuance.x.subject: "XYZ" is not a name attribute OpenSSL knows (CN, O, OU, L, ST, C, ...)' \
	"--check: an unknown subject field"
check_bad $'[preloaded_certs]\na = "file:///a.pem"\nb = ["a"]\nc = ["a", "b"]' \
	'4:11: preloaded_certs.c[1]: "b" is itself a list; a list'"'"'s members must be certificates' \
	"--check: a bundle inside a bundle"
check_bad $'[preloaded_certs]\na = "/etc/a.pem"' \
	'2:5: preloaded_certs.a: expected a file:///path URI or a list of certificate ids, got "/etc/a.pem"' \
	"--check: a preloaded certificate that is not a file URI"
check_bad $'[cert_issuance.local_ca]\ncert = "local-ca"' \
	'1:1: cert_issuance.local_ca.pk: missing (the keyd id of the local CA'"'"'s private key)' \
	"--check: a local CA without its key"

# ---- start keyd and certd ------------------------------------------------------------

# The daemons run as their users when possible; certd calls keyd, so it is
# in keyd's socket group, as aziot's preinst makes it.
as_keyd=()
as_certd=()
if [ "$as_users" = 1 ]; then
	as_keyd=(setpriv --reuid=aziotks --regid="$ks_gid" --groups="$ks_gid")
	as_certd=(setpriv --reuid=aziotcs --regid="$cs_gid" --groups="$ks_gid")
fi
wait_socket() { # wait_socket SOCKET PID
	for _ in $(seq 1 200); do
		if [ -S "$1" ] && curl -s -o /dev/null --unix-socket "$1" "http://x/"; then
			return 0
		fi
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
start_keyd() {
	"${as_keyd[@]}" "$edgeidd" keyd --root "$root" 2>>"$logs/keyd.log" &
	keyd_pid=$!
	wait_socket "$ksock" "$keyd_pid"
}
start_certd() {
	"${as_certd[@]}" "$edgeidd" certd --root "$root" 2>>"$logs/certd.log" &
	certd_pid=$!
	wait_socket "$csock" "$certd_pid"
}
start_keyd
ok $? "keyd starts" || sed 's/^/# /' "$logs/keyd.log"
start_certd
ok $? "certd starts and serves $csock" || sed 's/^/# /' "$logs/certd.log"
if [ "$as_users" = 1 ]; then
	is "$(ps -o user= -p "$certd_pid" | tr -d ' ')" aziotcs "certd runs as aziotcs"
	is "$(stat -c '%a %U' "$csock")" "660 aziotcs" "its socket is 0660 and aziotcs's"
else
	skip "certd's user: not root, or aziotcs does not exist"
	is "$(stat -c '%a' "$csock")" "660" "its socket is 0660"
fi
is "$(stat -c %a "$certs")" 700 "certs/ is mode 0700"
chmod 666 "$csock" # so that other uids reach certd itself (the test is about its checks)

# req [--as UID] METHOD PATH [BODY]: sets $status and $body.
req() {
	local as=()
	if [ "$1" = --as ]; then
		as=(setpriv --reuid="$2" --regid="$2" --clear-groups)
		shift 2
	fi
	local method=$1 path=$2 out
	shift 2
	if [ $# -gt 0 ]; then
		out=$("${as[@]}" curl -s --unix-socket "$csock" -X "$method" \
			-H 'Content-Type: application/json' --data-binary "$1" \
			-w '\n%{http_code}' "http://certd.sock$path")
	else
		out=$("${as[@]}" curl -s --unix-socket "$csock" -X "$method" \
			-w '\n%{http_code}' "http://certd.sock$path")
	fi
	body=${out%$'\n'*}
	status=${out##*$'\n'}
}
expect() { is "$status $body" "$1 $2" "$3"; }
msg() { jq -cn --arg m "$1" '{message: $m}'; }
json() { jq -r "$1" <<<"$body"; }
certfile() { # the aziot file name of a certificate id
	local alnum hash
	alnum=$(printf '%s' "$1" | tr -cd 'A-Za-z0-9')
	hash=$(printf '%s' "$1" | sha256sum | cut -c1-64)
	echo "$certs/$alnum-$hash.cer"
}
create_body() { # create_body ID CSR-FILE [ISSUER-JSON]
	if [ $# -ge 3 ]; then
		jq -cn --arg id "$1" --rawfile csr "$2" --argjson issuer "$3" \
			'{certId: $id, csr: $csr, issuer: $issuer}'
	else
		jq -cn --arg id "$1" --rawfile csr "$2" '{certId: $id, csr: $csr}'
	fi
}
put_body() { jq -cn --rawfile pem "$1" '{pem: $pem}'; }
x509() { # x509 FILE ARGS...: one field of openssl x509, without its label
	openssl x509 -in "$1" -noout "${@:2}" 2>&1
}
ext() { # ext FILE NAME: the value of extension NAME (openssl's short name)
	openssl x509 -in "$1" -noout -ext "$2" 2>/dev/null | tail -n +2 | sed 's/^ *//'
}
days_valid() { # days between notBefore and notAfter
	local nb na
	nb=$(date -d "$(x509 "$1" -startdate | cut -d= -f2)" +%s)
	na=$(date -d "$(x509 "$1" -enddate | cut -d= -f2)" +%s)
	echo $(((na - nb) / 86400))
}

# ---- common request rules -----------------------------------------------------------

req GET "/certificates/x"
expect 400 '{"message":"api-version not specified"}' "no api-version: 400"
req GET "/certificates/x?$KV"
expect 400 '{"message":"invalid api-version \"2021-05-01\""}' "keyd's api-version is not certd's: 400"
req GET "/certificates?$V"
expect 400 '{"message":"method not allowed"}' "GET /certificates: 400 method not allowed"
req POST "/certificates/x?$V" '{}'
expect 400 '{"message":"method not allowed"}' "POST /certificates/{id}: 400 method not allowed"
req GET "/certs/x?$V"
expect 404 '{"message":"not found"}' "unknown path: 404"
req POST "/certificates?$V"
expect 400 '{"message":"missing request body"}' "POST without a body: 400"
req POST "/certificates?$V" '{"certId":"module-a","csr":'
expect 422 '{"message":"invalid JSON at 1:27: unexpected token near end of file"}' "truncated JSON: 422"
req POST "/certificates?$V" '{"certId":"module-a"}'
expect 422 '{"message":"csr: missing"}' "no csr: 422"
req POST "/certificates?$V" '{"certId":"module-a","csr":"x","issuer":"ca"}'
expect 422 '{"message":"issuer: expected an object, got a string"}' "issuer of the wrong type: 422"

# ---- import, get, delete ------------------------------------------------------------------

req GET "/certificates/imported?$V"
expect 400 "$(msg 'parameter "id" has an invalid value
caused by: not found')" "GET of an unknown certificate: 400 not found, aziot's text"
req PUT "/certificates/imported?$V" "$(put_body "$tmp/imported.pem")"
is "$status" 201 "PUT imports a certificate: 201"
is "$(json .pem)" "$(cat "$tmp/imported.pem")" "... and answers with the same PEM"
f=$(certfile imported)
is "$(cat "$f" 2>&1)" "$(cat "$tmp/imported.pem")" "it is stored as given in certs/$(basename "$f")"
if [ "$as_users" = 1 ]; then
	is "$(stat -c '%a %U %G' "$f")" "600 aziotcs aziotcs" "the file is 0600, owned by aziotcs"
else
	is "$(stat -c '%a' "$f")" "600" "the file is 0600"
fi
req GET "/certificates/imported?$V"
is "$status:$(json .pem)" "200:$(cat "$tmp/imported.pem")" "GET returns it"
req --as 4243 GET "/certificates/imported?$V"
is "$status:$(json .pem)" "200:$(cat "$tmp/imported.pem")" "any caller may read it"
cat "$pki/certd/extra-ca.pem" "$tmp/imported.pem" >"$tmp/chain.pem"
req --as 4242 PUT "/certificates/imported?$V" "$(put_body "$tmp/chain.pem")"
is "$status:$(cat "$f")" "201:$(cat "$tmp/chain.pem")" "a principal replaces it with a chain"

req PUT "/certificates/imported?$V" '{"pem":"hello"}'
expect 400 "$(msg 'parameter "pem" has an invalid value
caused by: the text holds no PEM certificate (expected "-----BEGIN CERTIFICATE-----")')" \
	"PUT of text that is not PEM: 400, exact text"
req PUT "/certificates/imported?$V" "$(put_body "$pki/selfie.key.pem")"
expect 400 "$(msg 'parameter "pem" has an invalid value
caused by: PEM block 1 is a "EC PRIVATE KEY", not a "CERTIFICATE"')" \
	"PUT of a private key: 400, certd stores no keys"
head -c 300 "$tmp/imported.pem" >"$tmp/truncated.pem"
req PUT "/certificates/imported?$V" "$(put_body "$tmp/truncated.pem")"
expect 400 "$(msg 'parameter "pem" has an invalid value
caused by: PEM block 1 is malformed (a BEGIN line without its END line, or bad base64)')" \
	"PUT of a truncated certificate: 400"
{
	echo "-----BEGIN CERTIFICATE-----"
	printf 'MIIBkTCB+wIJAKHHIG11kO4QMA0GCSqGSIb3DQEBBQUAMA0xCzAJBgNVBAYTAlVT\n'
	echo "-----END CERTIFICATE-----"
} >"$tmp/garbage.pem"
req PUT "/certificates/imported?$V" "$(put_body "$tmp/garbage.pem")"
expect 400 "$(msg 'parameter "pem" has an invalid value
caused by: certificate 1 is not a valid X.509 certificate')" \
	"PUT of a block that is not a certificate: 400"
req PUT "/certificates/imported?$V" '{"pem":7}'
expect 422 '{"message":"pem: expected a string, got a number"}' "PUT with pem of the wrong type: 422"
out=$(curl -s --unix-socket "$csock" -X PUT -H 'Content-Type: text/plain' -d x \
	"http://certd.sock/certificates/imported?$V")
is "$out" '{"message":"request body must be application/json"}' "PUT that is not JSON: 415"
is "$(cat "$f")" "$(cat "$tmp/chain.pem")" "none of the refused imports touched the stored certificate"

req DELETE "/certificates/imported?$V"
is "$status:$body" "204:" "DELETE: 204"
ok "$([ ! -e "$f" ] && echo 0 || echo 1)" "the file is gone"
req GET "/certificates/imported?$V"
is "$status" 400 "GET after DELETE: not found"
req DELETE "/certificates/imported?$V"
is "$status:$body" "204:" "DELETE of what does not exist: 204, as in aziot"

# ---- authorization --------------------------------------------------------------------------

openssl req -new -key "$tmp/leaf.key" -subj "/CN=leaf" -out "$tmp/leaf.csr" 2>/dev/null
req --as 4243 PUT "/certificates/imported?$V" "$(put_body "$tmp/imported.pem")"
expect 403 '{"message":"user 4243 is not authorized to modify the cert imported"}' \
	"PUT by a uid that is not a principal: 403"
req --as 4243 DELETE "/certificates/module-a?$V"
expect 403 '{"message":"user 4243 is not authorized to modify the cert module-a"}' \
	"DELETE by a uid that is not a principal: 403"
req --as 4243 POST "/certificates?$V" "$(create_body module-a "$tmp/leaf.csr")"
expect 403 '{"message":"user 4243 is not authorized to modify the cert module-a"}' \
	"POST by a uid that is not a principal: 403"
req --as 4243 POST "/certificates?$V" '{"certId":"module-a","csr":"garbage"}'
is "$status" 403 "... decided before the CSR is looked at"
req --as 4242 PUT "/certificates/other?$V" "$(put_body "$tmp/imported.pem")"
expect 403 '{"message":"user 4242 is not authorized to modify the cert other"}' \
	"a principal outside its patterns: 403"
ok "$([ ! -e "$(certfile other)" ] && echo 0 || echo 1)" "... and nothing was written"

# ---- CSR input ----------------------------------------------------------------------------------

req POST "/certificates?$V" '{"certId":"module-a","csr":"not a csr"}'
expect 400 "$(msg 'parameter "csr" has an invalid value
caused by: not a PEM certificate request (expected "-----BEGIN CERTIFICATE REQUEST-----")')" \
	"a CSR that is not PEM: 400, exact text"
req POST "/certificates?$V" "$(create_body module-a "$tmp/imported.pem")"
expect 400 "$(msg 'parameter "csr" has an invalid value
caused by: the PEM block is a "CERTIFICATE", not a "CERTIFICATE REQUEST"')" \
	"a certificate in place of a CSR: 400"
# Flip a bit in the last byte of the DER (inside the signature).
openssl req -in "$tmp/leaf.csr" -outform DER -out "$tmp/leaf.der" 2>/dev/null
python3 - "$tmp/leaf.der" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[-1] ^= 0x01
open(p, "wb").write(bytes(b))
EOF
{
	echo "-----BEGIN CERTIFICATE REQUEST-----"
	base64 -w 64 "$tmp/leaf.der"
	echo "-----END CERTIFICATE REQUEST-----"
} >"$tmp/tampered.csr"
req POST "/certificates?$V" "$(create_body module-a "$tmp/tampered.csr")"
expect 400 "$(msg 'parameter "csr" has an invalid value
caused by: the CSR'"'"'s signature does not verify with its public key')" \
	"a CSR whose signature does not verify: 400"
{
	echo "-----BEGIN CERTIFICATE REQUEST-----"
	echo "MIIBAjCBqAIBADAPMQ0wCwYDVQQDDARsZWFmMFkwEwYHKoZIzj0CAQYIKoZIzj0D"
	echo "-----END CERTIFICATE REQUEST-----"
} >"$tmp/short.csr"
req POST "/certificates?$V" "$(create_body module-a "$tmp/short.csr")"
expect 400 "$(msg 'parameter "csr" has an invalid value
caused by: the PEM block does not hold a valid PKCS#10 request')" "a truncated CSR: 400"
cat "$tmp/leaf.csr" "$tmp/leaf.csr" >"$tmp/two.csr"
req POST "/certificates?$V" "$(create_body module-a "$tmp/two.csr")"
expect 400 "$(msg 'parameter "csr" has an invalid value
caused by: unexpected data after the certificate request')" "two CSRs in one: 400"
req POST "/certificates?$V" "$(create_body "" "$tmp/leaf.csr")"
expect 400 "$(msg 'parameter "certId" has an invalid value
caused by: a certificate id cannot be empty')" "an empty certificate id: 400"
req PUT "/certificates/module-%0Aforged?$V" "$(put_body "$tmp/imported.pem")"
expect 400 "$(msg 'parameter "id" has an invalid value
caused by: a certificate id cannot contain control characters')" \
	"an id with a control character (a newline, percent-encoded): 400"
ok "$([ ! -e "$(certfile module-a)" ] && echo 0 || echo 1)" "no refused request wrote a certificate"

# ---- issued by the local CA ------------------------------------------------------------------------

openssl req -new -key "$tmp/leaf.key" -subj "/CN=asked-for/O=ignored" \
	-addext "extendedKeyUsage=clientAuth" -addext "subjectAltName=DNS:module-a.local" \
	-out "$tmp/module-a.csr" 2>/dev/null
req --as 4242 POST "/certificates?$V" "$(create_body module-a "$tmp/module-a.csr")"
is "$status" 201 "POST /certificates with a CSR: the local CA issues module-a (201)"
json .pem >"$tmp/module-a.pem"
is "$(grep -c 'BEGIN CERTIFICATE' "$tmp/module-a.pem")" 2 "the answer is the new certificate, then the CA's"
openssl x509 -in "$tmp/module-a.pem" -out "$tmp/module-a.leaf.pem" 2>/dev/null
out=$(openssl verify -CAfile "$pki/ca.pem" "$tmp/module-a.leaf.pem" 2>&1)
is "$out" "$tmp/module-a.leaf.pem: OK" "openssl verify: the local CA signed it"
is "$(x509 "$tmp/module-a.leaf.pem" -subject)" "subject=CN = module-a.example" \
	"the subject is common_name from cert_issuance, not the CSR's"
is "$(x509 "$tmp/module-a.leaf.pem" -issuer)" "issuer=CN = edgeid test local CA, O = edgeid" \
	"the issuer is the CA's subject"
is "$(days_valid "$tmp/module-a.leaf.pem")" 10 "valid for expiry_days = 10 days"
nb=$(date -d "$(x509 "$tmp/module-a.leaf.pem" -startdate | cut -d= -f2)" +%s)
ok "$([ $((nb - $(date +%s))) -le 5 ] && [ $(($(date +%s) - nb)) -le 120 ] && echo 0 || echo 1)" \
	"notBefore is now"
serial_a=$(x509 "$tmp/module-a.leaf.pem" -serial | cut -d= -f2)
like "$serial_a" '^[4-7][0-9A-F]{31}$' "the serial is 16 random bytes, positive ($serial_a)"
like "$(openssl x509 -in "$tmp/module-a.leaf.pem" -noout -text)" 'Version: 3 \(0x2\)' "X.509 v3"
like "$(openssl x509 -in "$tmp/module-a.leaf.pem" -noout -text)" 'Signature Algorithm: ecdsa-with-SHA256' \
	"signed with SHA-256"
is "$(ext "$tmp/module-a.leaf.pem" extendedKeyUsage)" "TLS Web Client Authentication" \
	"the CSR's extendedKeyUsage is copied"
is "$(ext "$tmp/module-a.leaf.pem" subjectAltName)" "DNS:module-a.local" \
	"the CSR's subjectAltName is copied"
skid=$(openssl x509 -in "$tmp/module-a.leaf.pem" -noout -pubkey | openssl pkey -pubin -outform DER 2>/dev/null |
	tail -c 65 | openssl dgst -sha1 -binary | xxd -p | tr a-f A-F | sed 's/../&:/g; s/:$//')
is "$(ext "$tmp/module-a.leaf.pem" subjectKeyIdentifier)" "$skid" \
	"a SubjectKeyIdentifier: SHA-1 of the public key"
ca_skid=$(ext "$pki/ca.pem" subjectKeyIdentifier)
like "$ca_skid" '^([0-9A-F]{2}:){19}[0-9A-F]{2}$' "(the CA has a SubjectKeyIdentifier)"
like "$(ext "$tmp/module-a.leaf.pem" authorityKeyIdentifier)" "^(keyid:)?$ca_skid\$" \
	"an AuthorityKeyIdentifier: the CA's key identifier"
is "$(openssl x509 -in "$tmp/module-a.leaf.pem" -noout -pubkey)" "$(openssl pkey -in "$tmp/leaf.key" -pubout)" \
	"the public key is the CSR's"
f=$(certfile module-a)
is "$(cat "$f" 2>&1)" "$(cat "$tmp/module-a.pem")" "stored in certs/$(basename "$f") as answered"
if [ "$as_users" = 1 ]; then
	is "$(stat -c '%a %U' "$f")" "600 aziotcs" "the file is 0600, owned by aziotcs"
else
	is "$(stat -c '%a' "$f")" "600" "the file is 0600"
fi
req GET "/certificates/module-a?$V"
is "$(json .pem)" "$(cat "$tmp/module-a.pem")" "GET returns the issued chain"

req POST "/certificates?$V" "$(create_body module-a "$tmp/module-a.csr")"
json .pem | openssl x509 -noout -serial 2>/dev/null | cut -d= -f2 >"$tmp/serial2"
ok "$([ -n "$(cat "$tmp/serial2")" ] && [ "$(cat "$tmp/serial2")" != "$serial_a" ] && echo 0 || echo 1)" \
	"issuing again gives another serial"

openssl req -new -key "$tmp/leaf.key" -subj "/CN=whatever" -out "$tmp/module-b.csr" 2>/dev/null
req POST "/certificates?$V" "$(create_body module-b "$tmp/module-b.csr")"
json .pem >"$tmp/module-b.pem"
is "$status:$(x509 "$tmp/module-b.pem" -subject)" "201:subject=CN = module-b, L = Lisbon, O = Edge Org" \
	"a subject table is written in aziot's order (fields sorted)"
is "$(days_valid "$tmp/module-b.pem")" 30 "without expiry_days: 30 days"

req POST "/certificates?$V" "$(create_body module-c "$tmp/module-b.csr")"
expect 400 "$(msg 'parameter "issuer" has an invalid value
caused by: issuer is required for locally-issued certs')" \
	"no issuer and no cert_issuance entry: aziot's 400"
req POST "/certificates?$V" "$(create_body est-thing "$tmp/module-b.csr")"
expect 500 "$(msg 'cannot issue certificate "est-thing": it is configured to be issued by EST, and EST issuance is not supported yet')" \
	"a certificate to be issued by EST: 500, said plainly"

# ---- self-signed, with keyd's key pair of the same id ---------------------------------------------------

openssl req -new -key "$pki/selfie.key.pem" -subj "/CN=selfie" \
	-addext "basicConstraints=critical,CA:TRUE" -out "$tmp/selfie.csr" 2>/dev/null
req POST "/certificates?$V" "$(create_body selfie "$tmp/selfie.csr")"
is "$status" 201 "a self-signed certificate (signed through keyd)"
json .pem >"$tmp/selfie.pem"
is "$(grep -c 'BEGIN CERTIFICATE' "$tmp/selfie.pem")" 1 "the answer is the certificate alone"
out=$(openssl verify -CAfile "$tmp/selfie.pem" "$tmp/selfie.pem" 2>&1)
is "$out" "$tmp/selfie.pem: OK" "openssl verify: it is signed by its own key"
is "$(x509 "$tmp/selfie.pem" -issuer)" "issuer=CN = selfie" "issuer = subject"
is "$(days_valid "$tmp/selfie.pem")" 400 "valid for expiry_days = 400 days (no issuer to cap it)"
is "$(ext "$tmp/selfie.pem" basicConstraints)" "CA:TRUE" "basicConstraints from the CSR"
is "$(ext "$tmp/selfie.pem" authorityKeyIdentifier)" "" "no AuthorityKeyIdentifier without an issuer"
req POST "/certificates?$V" "$(create_body selfie "$tmp/leaf.csr")"
expect 400 "$(msg 'parameter "csr" has an invalid value
caused by: its public key is not that of the key pair in keyd that signs this self-signed certificate')" \
	"a self-signed certificate for a CSR made with another key: 400"
is "$(cat "$(certfile selfie)")" "$(cat "$tmp/selfie.pem")" "... and the stored one is unchanged"

# ---- an explicit issuer: a certificate and a keyd handle (RSA) -----------------------------------------

req PUT "/certificates/short-ca?$V" "$(put_body "$pki/short-ca.pem")"
is "$status" 201 "import the short-lived RSA CA"
handle=$(curl -s --unix-socket "$ksock" "http://keyd.sock/keypair/short-ca-key?$KV" | jq -r .keyHandle)
like "$handle" '^sr=' "keyd gives root a handle for its key"
issuer=$(jq -cn --arg h "$handle" '{certId: "short-ca", privateKeyHandle: $h}')
req --as 4242 POST "/certificates?$V" "$(create_body module-x "$tmp/leaf.csr" "$issuer")"
is "$status" 201 "POST with issuer {certId, privateKeyHandle}: 201"
json .pem >"$tmp/module-x.pem"
openssl x509 -in "$tmp/module-x.pem" -out "$tmp/module-x.leaf.pem" 2>/dev/null
out=$(openssl verify -CAfile "$pki/short-ca.pem" "$tmp/module-x.leaf.pem" 2>&1)
is "$out" "$tmp/module-x.leaf.pem: OK" "openssl verify: the RSA issuer signed it through keyd"
like "$(openssl x509 -in "$tmp/module-x.leaf.pem" -noout -text)" 'Signature Algorithm: sha256WithRSAEncryption' \
	"RSA PKCS#1 v1.5 with SHA-256"
is "$(x509 "$tmp/module-x.leaf.pem" -enddate)" "$(x509 "$pki/short-ca.pem" -enddate)" \
	"notAfter is capped at the issuer's (2 days, not 30)"
is "$(x509 "$tmp/module-x.leaf.pem" -subject)" "subject=CN = leaf" "without an issuance entry, the CSR's subject"
short_skid=$(ext "$pki/short-ca.pem" subjectKeyIdentifier)
like "$(ext "$tmp/module-x.leaf.pem" authorityKeyIdentifier)" "^(keyid:)?${short_skid:-none}\$" \
	"AuthorityKeyIdentifier from the issuer's"

bad_issuer=$(jq -cn '{certId: "short-ca", privateKeyHandle: "sr=eyJ9&sig=AAAA"}')
req POST "/certificates?$V" "$(create_body module-x "$tmp/leaf.csr" "$bad_issuer")"
expect 400 "$(msg 'parameter "issuer.privateKeyHandle" has an invalid value
caused by: keyd refused POST /parameters/algorithm (HTTP 400): parameter "handle" has an invalid value
caused by: invalid handle')" "a handle keyd does not accept: 400 with keyd's reason"
ca_handle=$(curl -s --unix-socket "$ksock" "http://keyd.sock/keypair/local-ca?$KV" | jq -r .keyHandle)
wrong=$(jq -cn --arg h "$ca_handle" '{certId: "short-ca", privateKeyHandle: $h}')
req POST "/certificates?$V" "$(create_body module-x "$tmp/leaf.csr" "$wrong")"
expect 400 "$(msg 'parameter "issuer.privateKeyHandle" has an invalid value
caused by: the signing key is not the issuer certificate'"'"'s key')" \
	"the handle of another key than the issuer's: 400"
selfie_handle=$(curl -s --unix-socket "$ksock" "http://keyd.sock/keypair/selfie?$KV" | jq -r .keyHandle)
wrong=$(jq -cn --arg h "$selfie_handle" '{certId: "local-ca", privateKeyHandle: $h}')
req POST "/certificates?$V" "$(create_body module-x "$tmp/leaf.csr" "$wrong")"
expect 400 "$(msg 'parameter "issuer.privateKeyHandle" has an invalid value
caused by: the signing key is not the issuer certificate'"'"'s key')" \
	"an EC key that is not the EC issuer's: 400 (the new signature is checked)"
is "$(cat "$(certfile module-x)")" "$(cat "$tmp/module-x.pem")" \
	"... and module-x is still the certificate issued before"
missing=$(jq -cn --arg h "$handle" '{certId: "no-such-ca", privateKeyHandle: $h}')
req POST "/certificates?$V" "$(create_body module-x "$tmp/leaf.csr" "$missing")"
expect 400 "$(msg 'parameter "issuer.certId" has an invalid value
caused by: not found')" "an issuer certificate that does not exist: 400"
req POST "/certificates?$V" '{"certId":"module-x","csr":"x","issuer":{"certId":"short-ca"}}'
expect 400 "$(msg 'parameter "csr" has an invalid value
caused by: not a PEM certificate request (expected "-----BEGIN CERTIFICATE REQUEST-----")')" \
	"the CSR is checked before the issuer"
req POST "/certificates?$V" "$(jq -cn --rawfile csr "$tmp/leaf.csr" '{certId: "module-x", csr: $csr, issuer: {certId: "short-ca"}}')"
expect 422 '{"message":"privateKeyHandle: missing"}' "an issuer without its key handle: 422"

# ---- preloaded certificates and bundles ---------------------------------------------------------------

req GET "/certificates/extra-ca?$V"
is "$status:$(json .pem)" "200:$(cat "$pki/certd/extra-ca.pem")" "a preloaded certificate is served by id"
req GET "/certificates/bundle?$V"
is "$status:$(json .pem)" "200:$(cat "$pki/certd/extra-ca.pem" "$(certfile module-a)")" \
	"a bundle is its members' certificates in order (a missing member is skipped)"
req PUT "/certificates/bundle?$V" "$(put_body "$tmp/imported.pem")"
expect 400 "$(msg 'parameter "id" has an invalid value
caused by: "bundle" is a preloaded list of other certificates; it cannot be written or deleted')" \
	"PUT to a bundle: 400"
req DELETE "/certificates/bundle?$V"
is "$status" 400 "DELETE of a bundle: 400"
req PUT "/certificates/extra-ca?$V" "$(put_body "$tmp/imported.pem")"
is "$status:$(cat "$pki/certd/extra-ca.pem")" "201:$(cat "$tmp/imported.pem")" \
	"PUT to a preloaded id writes its file, as aziot does"
is "$(stat -c %a "$pki/certd/extra-ca.pem")" 644 "... keeping the file's mode"

# ---- still serving; reload; shutdown -------------------------------------------------------------------

kill -0 "$certd_pid"
ok $? "certd is still running after all the bad input"
req GET "/certificates/module-a?$V"
is "$status" 200 "... and still answers"

cat >>"$root/etc/aziot/certd/config.d/50-test.toml" <<'EOF'

[[principal]]
uid = 4243
certs = ["imported"]
EOF
kill -HUP "$certd_pid"
for _ in $(seq 1 100); do
	grep -q 'configuration reloaded' "$logs/certd.log" && break
	sleep 0.05
done
req --as 4243 PUT "/certificates/imported?$V" "$(put_body "$tmp/imported.pem")"
is "$status" 201 "after SIGHUP a new principal may write"

kill -TERM "$keyd_pid"
wait "$keyd_pid"
keyd_pid=
req POST "/certificates?$V" "$(create_body module-a "$tmp/module-a.csr")"
like "$status $(json .message)" "^500 cannot issue certificate \"module-a\": its signing key \"local-ca\": cannot reach keyd at $ksock: " \
	"keyd is not running: 500 that says so"

kill -TERM "$certd_pid"
wait "$certd_pid"
is $? 0 "certd exits 0 on SIGTERM"
certd_pid=
found=0
for f in "$logs"/*.log; do
	if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$f"; then
		found=1
		grep -E -A12 'AddressSanitizer|LeakSanitizer|runtime error:' "$f" | head -40 | sed 's/^/# /'
	fi
done
ok $found "no sanitizer report in the daemons' logs"

done_testing
