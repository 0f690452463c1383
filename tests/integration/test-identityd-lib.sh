# Shared by the test-identityd-*.sh tests (sourced, not a test itself): a
# device root with `edgeid config apply`, the real keyd and identityd
# started with --root, an edgeid-cloud (dps + hub) on loopback addresses
# the calling test chooses (127.0.4.x, so that suites run in parallel),
# and helpers for identityd's API.
# shellcheck shell=bash

. "$EDGEID_SOURCE_ROOT/tests/lib/cloud-env.sh"

IDT_EDGEID=$EDGEID_BUILD_ROOT/edgeid
IDT_EDGEIDD=$EDGEID_BUILD_ROOT/edgeidd
IDT_KEYD_PID=
IDT_IDENTITYD_PID=
IDT_ROOT=
IDT_LOGS=

for tool in curl jq openssl setpriv; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "1..0 # SKIP $tool is not installed"
		exit 0
	fi
done

# idt_cloud_prepare DIR DPS-HOST HUB-HOST: the PKI and config of a cloud
#   (not started), so that a device can be set up before its DPS runs.
idt_cloud_prepare() {
	CLOUD_DPS_HOST=$2
	CLOUD_HUB_HOST=$3
	export CLOUD_DPS_HOST CLOUD_HUB_HOST
	mkdir -p "$1" && cloud_env_pki "$1" && cloud_env_config "$1" && cloud_env_export
}

# idt_device DIR SUPER-CONFIG-TEXT: a device root DIR/root with the
#   super-config applied, the cloud's CA trusted by identityd
#   (trust_bundle_cert in identityd's config.d) and logs in DIR/logs.
idt_device() {
	IDT_ROOT=$1/root
	IDT_LOGS=$1/logs
	mkdir -p "$IDT_ROOT/etc/aziot" "$IDT_ROOT/etc/edgeid" "$IDT_LOGS" || return 1
	printf '%s\n' "$2" >"$IDT_ROOT/etc/aziot/config.toml"
	cp "$CLOUD_CA" "$IDT_ROOT/etc/edgeid/cloud-ca.pem" || return 1
	"$IDT_EDGEID" config apply -c "$IDT_ROOT/etc/aziot/config.toml" --root "$IDT_ROOT" \
		>"$IDT_LOGS/apply.out" 2>&1 || {
		cat "$IDT_LOGS/apply.out" >&2
		return 1
	}
	idt_identityd_dropin 50-trust 'trust_bundle_cert = "file:///etc/edgeid/cloud-ca.pem"'
}

# idt_identityd_dropin NAME TEXT: identityd's config.d/NAME.toml (TEXT ""
#   removes it).
idt_identityd_dropin() {
	local f=$IDT_ROOT/etc/aziot/identityd/config.d/$1.toml
	if [ -z "$2" ]; then
		rm -f "$f"
	else
		printf '%s\n' "$2" >"$f"
	fi
}

# _idt_wait_socket SOCKET PID PATH: until the daemon answers on SOCKET.
_idt_wait_socket() {
	for _ in $(seq 1 200); do
		if [ -S "$1" ] && curl -s -o /dev/null --unix-socket "$1" "http://x$3"; then
			return 0
		fi
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

idt_start_keyd() {
	"$IDT_EDGEIDD" keyd --root "$IDT_ROOT" 2>>"$IDT_LOGS/keyd.log" &
	IDT_KEYD_PID=$!
	_idt_wait_socket "$IDT_ROOT/run/aziot/keyd.sock" "$IDT_KEYD_PID" /key/x
}

# idt_start_identityd [OPTIONS...]
idt_start_identityd() {
	"$IDT_EDGEIDD" identityd --root "$IDT_ROOT" "$@" 2>>"$IDT_LOGS/identityd.log" &
	IDT_IDENTITYD_PID=$!
	_idt_wait_socket "$IDT_ROOT/run/aziot/identityd.sock" "$IDT_IDENTITYD_PID" /trust-bundle
}

# idt_stop_identityd: SIGTERM; returns its exit status.
idt_stop_identityd() {
	local rc=0
	[ -n "$IDT_IDENTITYD_PID" ] || return 0
	kill -TERM "$IDT_IDENTITYD_PID" 2>/dev/null
	wait "$IDT_IDENTITYD_PID"
	rc=$?
	IDT_IDENTITYD_PID=
	return $rc
}

idt_stop_all() {
	[ -n "$IDT_IDENTITYD_PID" ] && kill -9 "$IDT_IDENTITYD_PID" 2>/dev/null
	[ -n "$IDT_KEYD_PID" ] && kill -9 "$IDT_KEYD_PID" 2>/dev/null
	IDT_IDENTITYD_PID=
	IDT_KEYD_PID=
	cloud_env_stop >/dev/null 2>&1
}

# idt_api [--as UID] METHOD PATH [BODY]: identityd's API; sets $status and
#   $body. PATH carries its own api-version.
# shellcheck disable=SC2034 # status and body are for the caller
idt_api() {
	local as=() out
	if [ "$1" = --as ]; then
		as=(setpriv --reuid="$2" --regid="$2" --clear-groups)
		shift 2
	fi
	local method=$1 path=$2
	shift 2
	if [ $# -gt 0 ]; then
		out=$("${as[@]}" curl -s --unix-socket "$IDT_ROOT/run/aziot/identityd.sock" \
			-X "$method" -H 'Content-Type: application/json' --data-binary "$1" \
			-w '\n%{http_code}' "http://identityd.sock$path")
	else
		out=$("${as[@]}" curl -s --unix-socket "$IDT_ROOT/run/aziot/identityd.sock" \
			-X "$method" -w '\n%{http_code}' "http://identityd.sock$path")
	fi
	body=${out%$'\n'*}
	status=${out##*$'\n'}
}

# idt_status: identityd's provisioning status JSON.
idt_status() {
	idt_api GET "/identities/provisioning/status?api-version=2021-12-01"
	printf '%s\n' "$body"
}

# idt_wait_state STATE [SECONDS]: until the status says STATE and no job
#   runs (default 60 s). Returns 1 on timeout, with the status on stderr.
idt_wait_state() {
	local want=$1 limit=${2:-60} deadline s
	deadline=$((SECONDS + limit))
	while [ "$SECONDS" -lt "$deadline" ]; do
		s=$(idt_status)
		if [ "$(jq -r '.state + " " + (.busy|tostring)' <<<"$s" 2>/dev/null)" = "$want false" ]; then
			return 0
		fi
		sleep 0.1
	done
	printf 'identityd did not reach "%s"; status: %s\n' "$want" "$s" >&2
	return 1
}

# idt_hub_get_devicebound DEVICE TOKEN: the hub's answer status to a
#   device-bound message request authenticated with TOKEN.
idt_hub_devicebound() {
	curl -s -o /dev/null -w '%{http_code}' --cacert "$CLOUD_CA" -H "Authorization: $2" \
		"https://$CLOUD_HUB_HOST/devices/$1/messages/deviceBound?api-version=2021-04-12"
}

# idt_no_sanitizer_reports NAME: one TAP line: no ASan/UBSan/LSan report in
#   the device and cloud logs.
idt_no_sanitizer_reports() {
	local f found=0
	for f in "$IDT_LOGS"/*.log "${CLOUD_DIR:-/nonexistent}/cloud.log"; do
		[ -f "$f" ] || continue
		if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$f"; then
			found=1
			grep -E -A12 'AddressSanitizer|LeakSanitizer|runtime error:' "$f" | head -40 |
				sed 's/^/# /'
		fi
	done
	ok $found "$1: no sanitizer report in the logs"
}
