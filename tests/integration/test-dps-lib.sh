# Shared by the test-dps-*.sh tests (sourced, not a test itself): an
# edgeid-cloud with the DPS and a hub on loopback addresses of the test's
# own (127.X.Y.2 and 127.X.Y.3, port 443), so that tests running at the
# same time do not collide, and helpers to talk to them with curl.
# shellcheck shell=bash

. "$EDGEID_SOURCE_ROOT/tests/lib/cloud-env.sh"

DPS_ID_SCOPE=0ne00000A0A

# dps_test_env_start DIR [EXTRA-DPS-TOML]
#   PKI, config (the DPS with id scope DPS_ID_SCOPE, the owner policy and
#   the hub linked) and start. Tries a few address pairs. Returns 1 (with
#   the reason on stderr) when edgeid-cloud does not start.
dps_test_env_start() {
	local dir=$1 extra=${2:-} attempt
	mkdir -p "$dir" || return 1
	CLOUD_ENV_DPS_EXTRA="id_scope = \"$DPS_ID_SCOPE\"
$extra
[[dps.shared_access_policy]]
name = \"provisioningserviceowner\"
primary_key = \"@DPS_OWNER_KEY@\"
[[dps.linked_hub]]
connection_string = \"@HUB_CONNECTION_STRING@\"
ca_file = \"@PKI@/ca.pem\""
	export CLOUD_ENV_DPS_EXTRA
	for attempt in 1 2 3 4; do
		local net="127.$((100 + ($$ + attempt * 37) % 150)).$((RANDOM % 250 + 1))"
		CLOUD_DPS_HOST=$net.2
		CLOUD_HUB_HOST=$net.3
		export CLOUD_DPS_HOST CLOUD_HUB_HOST
		rm -rf "$dir/pki" "$dir/cloud.db"* "$dir/cloud.log" "$dir/cloud.out"
		unset CLOUD_PKI CLOUD_CA
		if cloud_env_setup "$dir" 2>"$dir/setup.err"; then
			export DPS_ID_SCOPE
			return 0
		fi
		grep -q 'already in use' "$dir/setup.err" || break
	done
	cat "$dir/setup.err" >&2
	return 1
}

# dps_url PATH: the DPS URL of PATH.
dps_url() {
	printf 'https://%s%s' "$CLOUD_DPS_HOST" "$1"
}

# dps_sas RESOURCE KEY [SKN] [EXPIRY]: a SAS token (sr as given, not encoded).
dps_sas() {
	python3 - "$@" <<'PY'
import base64, hashlib, hmac, sys, time, urllib.parse
res, key = sys.argv[1], sys.argv[2]
skn = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None
se = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else str(int(time.time()) + 3600)
mac = hmac.new(base64.b64decode(key), (res + "\n" + se).encode(), hashlib.sha256).digest()
sig = urllib.parse.quote(base64.b64encode(mac).decode(), safe="")
token = "SharedAccessSignature sr=%s&sig=%s&se=%s" % (res, sig, se)
if skn:
    token += "&skn=" + skn
print(token)
PY
}

# dps_service_sas: a token for the enrollment API (owner policy).
dps_service_sas() {
	dps_sas "$CLOUD_DPS_HOST" "$CLOUD_DPS_OWNER_KEY" provisioningserviceowner
}

# dps_curl OUT-PREFIX CURL-ARGS...: run curl against the DPS; the status goes
#   to OUT-PREFIX.status, headers to .headers, the body to .body. Prints the
#   status.
dps_curl() {
	local out=$1
	shift
	curl -sS --cacert "$CLOUD_CA" -o "$out.body" -D "$out.headers" -w '%{http_code}' "$@" \
		>"$out.status" 2>"$out.err"
	cat "$out.status"
}

# json_get FILE EXPR: a field of a JSON file (python expression on j).
json_get() {
	python3 -c 'import json,sys
j = json.load(open(sys.argv[1]))
v = eval(sys.argv[2])
print(v if not isinstance(v, (dict, list, bool)) and v is not None else json.dumps(v))' "$1" "$2"
}

# dps_test_stop_and_check: stop edgeid-cloud, then one TAP line: its log has
# no sanitizer report (ASan, LSan, UBSan) from any process.
dps_test_stop_and_check() {
	local log=$CLOUD_DIR/cloud.log
	cloud_env_stop >/dev/null 2>&1
	if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$log"; then
		ok 1 "no sanitizer report in the server log"
		grep -E -A12 'AddressSanitizer|LeakSanitizer|runtime error:' "$log" | head -60 | sed 's/^/# /'
	else
		ok 0 "no sanitizer report in the server log"
	fi
}
