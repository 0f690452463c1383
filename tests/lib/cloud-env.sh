# shellcheck shell=bash disable=SC2119,SC2120
# A throwaway edgeid-cloud for tests and the demo: a PKI made with the
# openssl command line, a config file, the services started in the
# background and stopped again. Source it (bash), then for example:
#
#   . "$EDGEID_SOURCE_ROOT/tests/lib/cloud-env.sh"
#   dir=$(mktemp -d)
#   cloud_env_setup "$dir" || exit 1      # PKI + config + start + export
#   curl --cacert "$CLOUD_CA" "https://$CLOUD_HUB_HOST/devices" ...
#   cloud_env_stop                        # returns edgeid-cloud's exit status
#
# Addresses: the DPS listens on 127.0.0.2:443 and the hub on 127.0.0.3:443
# (Microsoft's Node HTTPS transports always use port 443). Clients use the
# IP addresses as host names; the server certificates carry them as IP
# SANs (and names under .edgeid.localhost as DNS SANs), so nothing needs
# /etc/hosts and Node accepts them with NODE_EXTRA_CA_CERTS. Tests that may
# run at the same time as others set CLOUD_DPS_HOST / CLOUD_HUB_HOST to
# loopback addresses of their own before cloud_env_pki.
#
# Variables the caller may set before cloud_env_config / cloud_env_setup:
#   CLOUD_ENV_SERVICES   "hub dps" (default) or a subset
#   CLOUD_ENV_WORKERS    workers per service (default 2)
#   CLOUD_ENV_DPS_EXTRA  TOML text for the [dps] table; when unset, a DPS with
#                        id scope $CLOUD_DPS_ID_SCOPE, the policy
#                        provisioningserviceowner and the hub linked
#                        (CLOUD_ENV_DPS_DEFAULT below); set it (even to "")
#                        to write your own
#   CLOUD_ENV_HUB_EXTRA  TOML text for the [hub] table (after its plain keys)
#   CLOUD_ENV_TOP_EXTRA  TOML text written after everything else
# In the *_EXTRA texts these placeholders are replaced:
#   @DIR@ @PKI@ @HUB_HOST@ @DPS_HOST@ @HUB_OWNER_KEY@ @DPS_OWNER_KEY@ @ID_SCOPE@
#   @HUB_CONNECTION_STRING@ @DPS_CONNECTION_STRING@
# Each extra text is written right after its table's own plain keys, so it
# may hold plain keys and then sub-tables ([[dps.linked_hub]] ...); the
# hub's [[hub.shared_access_policy]] tables come after it.
#
# The default DPS table text (its keys are the DPS's, see edgeid-cloud(1)).
CLOUD_DPS_ID_SCOPE=${CLOUD_DPS_ID_SCOPE:-0ne00000A0A}
export CLOUD_DPS_ID_SCOPE
# shellcheck disable=SC2016
CLOUD_ENV_DPS_DEFAULT='id_scope = "@ID_SCOPE@"
hub_ca_file = "@PKI@/ca.pem"

[[dps.shared_access_policy]]
name = "provisioningserviceowner"
primary_key = "@DPS_OWNER_KEY@"

[[dps.linked_hub]]
connection_string = "@HUB_CONNECTION_STRING@"'

# Variables the functions set (and export):
#   CLOUD_DIR CLOUD_PKI CLOUD_CA CLOUD_CONFIG EDGEID_CLOUD_CONFIG
#   CLOUD_HUB_HOST CLOUD_DPS_HOST CLOUD_HUB_OWNER_KEY CLOUD_DPS_OWNER_KEY
#   CLOUD_HUB_REGISTRY_KEY (policy "registryReadWrite": RegistryWrite only)
#   CLOUD_HUB_CONNECTION_STRING CLOUD_DPS_CONNECTION_STRING
#   NODE_EXTRA_CA_CERTS CLOUD_BIN CLOUD_PID

CLOUD_HUB_HOST=${CLOUD_HUB_HOST:-127.0.0.3}
CLOUD_DPS_HOST=${CLOUD_DPS_HOST:-127.0.0.2}
CLOUD_BIN=${CLOUD_BIN:-${EDGEID_BUILD_ROOT:-$(pwd)/build}/edgeid-cloud}
export CLOUD_HUB_HOST CLOUD_DPS_HOST CLOUD_BIN

# _cloud_env_openssl ARGS...: openssl, quiet unless it fails.
_cloud_env_openssl() {
	local out
	if ! out=$(openssl "$@" 2>&1); then
		printf 'cloud-env: openssl %s failed:\n%s\n' "$1" "$out" >&2
		return 1
	fi
}

# _cloud_env_key FILE: a new P-256 private key (PEM, mode 0600).
_cloud_env_key() {
	(umask 077 && _cloud_env_openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$1")
}

# _cloud_env_sign CSR CA CAKEY OUT DAYS EXTENSIONS: sign CSR with the CA.
_cloud_env_sign() {
	local ext
	ext=$(mktemp) || return 1
	printf '%b\n' "$6" >"$ext"
	_cloud_env_openssl x509 -req -in "$1" -CA "$2" -CAkey "$3" -out "$4" -days "$5" \
		-set_serial "0x$(openssl rand -hex 16)" -sha256 -extfile "$ext"
	local r=$?
	rm -f "$ext"
	return $r
}

# _cloud_env_server_cert PKI BASE IP [NAME]: BASE.key and BASE.pem, a
# server certificate for IP (and DNS:NAME.edgeid.localhost) from PKI's root.
_cloud_env_server_cert() {
	local pki=$1 base=$2 ip=$3 san="IP:$3"
	[ -n "${4:-}" ] && san="$san,DNS:$4.edgeid.localhost"
	_cloud_env_key "$base.key" || return 1
	_cloud_env_openssl req -new -key "$base.key" -out "$base.csr" -subj "/CN=$ip" || return 1
	_cloud_env_sign "$base.csr" "$pki/ca.pem" "$pki/ca.key" "$base.pem" 825 \
		"subjectAltName=$san\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth" ||
		return 1
	rm -f "$base.csr"
}

# cloud_env_server_cert BASE IP: BASE.key and BASE.pem, a server certificate
# for IP from the root of cloud_env_pki (a second hub, say).
cloud_env_server_cert() {
	_cloud_env_server_cert "$CLOUD_PKI" "$1" "$2"
}

# cloud_env_pki DIR
#   Make DIR/pki with:
#     ca.pem ca.key           the root CA the servers' certificates chain to
#     dps.pem dps.key         DPS server: SAN IP:127.0.0.2, DNS:dps.edgeid.localhost
#     hub.pem hub.key         hub server: SAN IP:127.0.0.3, DNS:hub.edgeid.localhost
#     device-ca.pem .key      a CA for devices' certificates (certificateAuthority
#                             devices, X.509 enrollment groups); not the root above
#   Sets CLOUD_PKI and CLOUD_CA. Returns non-zero (with the openssl output on
#   stderr) on failure.
cloud_env_pki() {
	local dir=$1 pki=$1/pki name ip
	mkdir -p "$pki" || return 1
	_cloud_env_key "$pki/ca.key" || return 1
	_cloud_env_openssl req -x509 -new -key "$pki/ca.key" -out "$pki/ca.pem" -days 3650 \
		-sha256 -subj "/CN=edgeid test root CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" || return 1
	for name in dps hub; do
		if [ "$name" = dps ]; then ip=$CLOUD_DPS_HOST; else ip=$CLOUD_HUB_HOST; fi
		_cloud_env_server_cert "$pki" "$pki/$name" "$ip" "$name" || return 1
	done
	_cloud_env_key "$pki/device-ca.key" || return 1
	_cloud_env_openssl req -x509 -new -key "$pki/device-ca.key" -out "$pki/device-ca.pem" \
		-days 3650 -sha256 -subj "/CN=edgeid test device CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" || return 1
	CLOUD_PKI=$pki
	CLOUD_CA=$pki/ca.pem
	export CLOUD_PKI CLOUD_CA
}

# cloud_env_device_cert DIR ID [self|ca]
#   A device certificate with CN=ID and clientAuth in DIR/pki/devices:
#   ID.pem, ID.key, and for "ca" (signed by device-ca) ID-chain.pem (leaf +
#   device CA). "self" (default) is self-signed. Prints the SHA-1
#   thumbprint (40 uppercase hex digits, as the hub registry stores it).
cloud_env_device_cert() {
	local pki=$1/pki id=$2 kind=${3:-self} d
	d=$pki/devices
	mkdir -p "$d" || return 1
	_cloud_env_key "$d/$id.key" || return 1
	if [ "$kind" = self ]; then
		_cloud_env_openssl req -x509 -new -key "$d/$id.key" -out "$d/$id.pem" -days 365 \
			-sha256 -subj "/CN=$id" -addext "basicConstraints=critical,CA:FALSE" \
			-addext "extendedKeyUsage=clientAuth" || return 1
	else
		_cloud_env_openssl req -new -key "$d/$id.key" -out "$d/$id.csr" -subj "/CN=$id" ||
			return 1
		_cloud_env_sign "$d/$id.csr" "$pki/device-ca.pem" "$pki/device-ca.key" "$d/$id.pem" \
			365 "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth" ||
			return 1
		rm -f "$d/$id.csr"
		cat "$d/$id.pem" "$pki/device-ca.pem" >"$d/$id-chain.pem"
	fi
	cloud_env_thumbprint "$d/$id.pem"
}

# cloud_env_thumbprint PEM: the certificate's SHA-1 thumbprint, uppercase hex.
cloud_env_thumbprint() {
	openssl x509 -in "$1" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g'
}

# cloud_env_keys: make the access-policy keys (base64 of 32 random bytes)
#   unless already set: CLOUD_HUB_OWNER_KEY ("iothubowner" on the hub),
#   CLOUD_HUB_REGISTRY_KEY ("registryReadWrite"), CLOUD_DPS_OWNER_KEY
#   (for the DPS's "provisioningserviceowner"), and the connection strings
#   CLOUD_HUB_CONNECTION_STRING / CLOUD_DPS_CONNECTION_STRING built from them.
cloud_env_keys() {
	CLOUD_HUB_OWNER_KEY=${CLOUD_HUB_OWNER_KEY:-$(openssl rand -base64 32)}
	CLOUD_HUB_REGISTRY_KEY=${CLOUD_HUB_REGISTRY_KEY:-$(openssl rand -base64 32)}
	CLOUD_DPS_OWNER_KEY=${CLOUD_DPS_OWNER_KEY:-$(openssl rand -base64 32)}
	CLOUD_HUB_CONNECTION_STRING="HostName=$CLOUD_HUB_HOST;SharedAccessKeyName=iothubowner;SharedAccessKey=$CLOUD_HUB_OWNER_KEY"
	CLOUD_DPS_CONNECTION_STRING="HostName=$CLOUD_DPS_HOST;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=$CLOUD_DPS_OWNER_KEY"
	export CLOUD_HUB_OWNER_KEY CLOUD_HUB_REGISTRY_KEY CLOUD_DPS_OWNER_KEY \
		CLOUD_HUB_CONNECTION_STRING CLOUD_DPS_CONNECTION_STRING
}

# _cloud_env_subst TEXT: TEXT with the @...@ placeholders replaced.
_cloud_env_subst() {
	local t=$1
	t=${t//@DIR@/$CLOUD_DIR}
	t=${t//@PKI@/$CLOUD_PKI}
	t=${t//@HUB_HOST@/$CLOUD_HUB_HOST}
	t=${t//@DPS_HOST@/$CLOUD_DPS_HOST}
	t=${t//@ID_SCOPE@/$CLOUD_DPS_ID_SCOPE}
	t=${t//@HUB_OWNER_KEY@/$CLOUD_HUB_OWNER_KEY}
	t=${t//@DPS_OWNER_KEY@/$CLOUD_DPS_OWNER_KEY}
	t=${t//@HUB_CONNECTION_STRING@/$CLOUD_HUB_CONNECTION_STRING}
	t=${t//@DPS_CONNECTION_STRING@/$CLOUD_DPS_CONNECTION_STRING}
	printf '%s\n' "$t"
}

# cloud_env_config DIR
#   Write DIR/cloud.toml: SQLite store DIR/cloud.db, [tls] with the root CA
#   as client_ca, and for each of CLOUD_ENV_SERVICES a table listening on
#   its address:443 with its certificate. The hub gets two access policies:
#   iothubowner (RegistryWrite ServiceConnect DeviceConnect) and
#   registryReadWrite (RegistryWrite), and trusts device-ca.pem for
#   certificateAuthority devices. CLOUD_ENV_DPS_EXTRA / CLOUD_ENV_HUB_EXTRA
#   go right after their table's plain keys (before the hub's policy
#   tables) and CLOUD_ENV_TOP_EXTRA at the end. Needs cloud_env_pki first; calls
#   cloud_env_keys. Sets CLOUD_DIR, CLOUD_CONFIG, EDGEID_CLOUD_CONFIG.
cloud_env_config() {
	local dir=$1 svc workers=${CLOUD_ENV_WORKERS:-2}
	CLOUD_DIR=$(cd "$dir" && pwd) || return 1
	CLOUD_PKI=${CLOUD_PKI:-$CLOUD_DIR/pki}
	CLOUD_CONFIG=$CLOUD_DIR/cloud.toml
	EDGEID_CLOUD_CONFIG=$CLOUD_CONFIG
	export CLOUD_DIR CLOUD_PKI CLOUD_CONFIG EDGEID_CLOUD_CONFIG
	cloud_env_keys
	{
		printf '# Written by tests/lib/cloud-env.sh\n'
		printf '[store]\nurl = "sqlite://%s/cloud.db"\n\n' "$CLOUD_DIR"
		printf '[tls]\nclient_ca = "%s/ca.pem"\n\n' "$CLOUD_PKI"
		for svc in ${CLOUD_ENV_SERVICES:-hub dps}; do
			case $svc in
			dps)
				printf '[dps]\nlisten = ["%s:443"]\nhost_name = "%s"\nworkers = %s\n' \
					"$CLOUD_DPS_HOST" "$CLOUD_DPS_HOST" "$workers"
				printf 'tls_cert = "%s/dps.pem"\ntls_key = "%s/dps.key"\n' "$CLOUD_PKI" "$CLOUD_PKI"
				_cloud_env_subst "${CLOUD_ENV_DPS_EXTRA-$CLOUD_ENV_DPS_DEFAULT}"
				printf '\n'
				;;
			hub)
				printf '[hub]\nlisten = ["%s:443"]\nhost_name = "%s"\nworkers = %s\n' \
					"$CLOUD_HUB_HOST" "$CLOUD_HUB_HOST" "$workers"
				printf 'tls_cert = "%s/hub.pem"\ntls_key = "%s/hub.key"\n' "$CLOUD_PKI" "$CLOUD_PKI"
				printf 'ca = ["%s/device-ca.pem"]\n' "$CLOUD_PKI"
				[ -n "${CLOUD_ENV_HUB_EXTRA:-}" ] && _cloud_env_subst "$CLOUD_ENV_HUB_EXTRA"
				printf '\n[[hub.shared_access_policy]]\nname = "iothubowner"\n'
				printf 'primary_key = "%s"\nsecondary_key = "%s"\n' "$CLOUD_HUB_OWNER_KEY" \
					"$(openssl rand -base64 32)"
				printf 'rights = "RegistryWrite ServiceConnect DeviceConnect"\n'
				printf '\n[[hub.shared_access_policy]]\nname = "registryReadWrite"\n'
				printf 'primary_key = "%s"\nrights = "RegistryWrite"\n' "$CLOUD_HUB_REGISTRY_KEY"
				printf '\n'
				;;
			*)
				printf 'cloud-env: unknown service "%s" in CLOUD_ENV_SERVICES\n' "$svc" >&2
				return 1
				;;
			esac
		done
		[ -n "${CLOUD_ENV_TOP_EXTRA:-}" ] && _cloud_env_subst "$CLOUD_ENV_TOP_EXTRA"
		true
	} >"$CLOUD_CONFIG" || return 1
	chmod 600 "$CLOUD_CONFIG"
}

# cloud_env_start [TIMEOUT-SECONDS]
#   Start "edgeid-cloud serve" on CLOUD_CONFIG in the background (stdout to
#   CLOUD_DIR/cloud.out, stderr to CLOUD_DIR/cloud.log, pid file
#   CLOUD_DIR/cloud.pid) and wait (default 30 s) for the readiness line of
#   every service in the config file. Sets CLOUD_PID. On failure (the
#   process exits, or the timeout passes) prints why on stderr with the log,
#   stops whatever is left, and returns 1.
cloud_env_start() {
	local timeout=${1:-30} svc want=() deadline
	for svc in ${CLOUD_ENV_SERVICES:-hub dps}; do
		grep -q "^\[$svc\]" "$CLOUD_CONFIG" && want+=("$svc")
	done
	: >"$CLOUD_DIR/cloud.out"
	"$CLOUD_BIN" serve --config "$CLOUD_CONFIG" --pid-file "$CLOUD_DIR/cloud.pid" \
		>>"$CLOUD_DIR/cloud.out" 2>>"$CLOUD_DIR/cloud.log" &
	CLOUD_PID=$!
	export CLOUD_PID
	deadline=$((SECONDS + timeout))
	while :; do
		local missing=0
		for svc in "${want[@]}"; do
			grep -q "^edgeid-cloud: $svc ready on " "$CLOUD_DIR/cloud.out" || missing=1
		done
		[ "$missing" -eq 0 ] && return 0
		if ! _cloud_env_alive "$CLOUD_PID"; then
			wait "$CLOUD_PID"
			printf 'cloud-env: edgeid-cloud exited with status %s before it was ready:\n' "$?" >&2
			sed 's/^/  /' "$CLOUD_DIR/cloud.log" >&2
			CLOUD_PID=
			return 1
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			printf 'cloud-env: edgeid-cloud not ready after %s s (waiting for: %s); log:\n' \
				"$timeout" "${want[*]}" >&2
			sed 's/^/  /' "$CLOUD_DIR/cloud.log" >&2
			cloud_env_stop >/dev/null 2>&1
			return 1
		fi
		sleep 0.05
	done
}

# cloud_env_stop [TIMEOUT-SECONDS]
#   SIGTERM to edgeid-cloud, wait (default 15 s), then SIGKILL. Returns its
#   exit status (0 after a clean shutdown; 137 when it had to be killed);
#   0 when nothing was running.
cloud_env_stop() {
	local timeout=${1:-15} deadline status
	[ -n "${CLOUD_PID:-}" ] || return 0
	kill -TERM "$CLOUD_PID" 2>/dev/null
	deadline=$((SECONDS + timeout))
	while _cloud_env_alive "$CLOUD_PID" && [ "$SECONDS" -lt "$deadline" ]; do
		sleep 0.05
	done
	if _cloud_env_alive "$CLOUD_PID"; then
		printf 'cloud-env: edgeid-cloud did not stop within %s s; killing it\n' "$timeout" >&2
		kill -KILL "$CLOUD_PID" 2>/dev/null
	fi
	wait "$CLOUD_PID" 2>/dev/null
	status=$?
	CLOUD_PID=
	return $status
}

# _cloud_env_alive PID: true while PID runs (a zombie does not count).
_cloud_env_alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# cloud_env_export
#   Export what clients need: NODE_EXTRA_CA_CERTS (the root CA), and the
#   connection strings and hosts (already exported by cloud_env_keys and at
#   the top of this file). Call after cloud_env_pki and cloud_env_config.
cloud_env_export() {
	NODE_EXTRA_CA_CERTS=$CLOUD_CA
	export NODE_EXTRA_CA_CERTS CLOUD_CA CLOUD_HUB_CONNECTION_STRING CLOUD_DPS_CONNECTION_STRING \
		CLOUD_HUB_HOST CLOUD_DPS_HOST EDGEID_CLOUD_CONFIG
}

# cloud_env_setup DIR [TIMEOUT-SECONDS]
#   All of the above in order: cloud_env_pki, cloud_env_config,
#   cloud_env_export, cloud_env_start. Returns non-zero on any failure.
cloud_env_setup() {
	cloud_env_pki "$1" && cloud_env_config "$1" && cloud_env_export && cloud_env_start "${2:-30}"
}

# cloud_env_sas RESOURCE KEY [KEY-NAME] [EXPIRY]
#   Print a SharedAccessSignature for RESOURCE ("127.0.0.3" for a service,
#   "127.0.0.3/devices/dev1" for a device) signed with the base64 KEY, with
#   skn=KEY-NAME when given (non-empty), expiring at EXPIRY (seconds since
#   the epoch; default now + 3600). sr is encoded as Node's device clients
#   do ('/' as %2F); sig is URL-encoded.
cloud_env_sas() {
	local resource=$1 key=$2 skn=${3:-} se=${4:-$(($(date +%s) + 3600))} hexkey sr sig
	hexkey=$(printf '%s' "$key" | base64 -d | od -An -v -tx1 | tr -d ' \n') || return 1
	sr=${resource//\//%2F}
	sig=$(printf '%s\n%s' "$sr" "$se" |
		openssl dgst -sha256 -mac HMAC -macopt "hexkey:$hexkey" -binary | base64) || return 1
	sig=${sig//+/%2B}
	sig=${sig//\//%2F}
	sig=${sig//=/%3D}
	printf 'SharedAccessSignature sr=%s&sig=%s&se=%s%s\n' "$sr" "$sig" "$se" "${skn:+&skn=$skn}"
}

# cloud_env_cli ARGS...: run "edgeid-cloud ARGS" on CLOUD_CONFIG.
cloud_env_cli() {
	"$CLOUD_BIN" --config "$CLOUD_CONFIG" "$@"
}
