#!/usr/bin/env bash
# DPS TPM attestation against a real TPM. The authentication-key blob that
# src/crypto builds in software (dps-protocol.md §3.5) is given to swtpm
# through tpm2-tools the way a device uses it (§3.6): PolicySecret on the
# endorsement hierarchy, ActivateCredential(SRK, EK), Import under the SRK
# with the recovered inner key (AES-128-CFB), Load, persist at 0x81000100,
# then TPM2_HMAC. Pass condition: the TPM's HMAC equals openssl's HMAC with
# the key the server put in the blob. Blobs made for another EK or another
# SRK, or tampered with, must be refused by the TPM.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
tool=${TPM_BLOB_TOOL:-$EDGEID_BUILD_ROOT/tpm-blob-tool}

for cmd in swtpm tpm2_createek tpm2_createprimary tpm2_evictcontrol tpm2_readpublic \
	tpm2_startauthsession tpm2_policysecret tpm2_activatecredential tpm2_import tpm2_load \
	tpm2_hmac tpm2_flushcontext tpm2_getrandom; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "1..0 # SKIP swtpm not installed ($cmd not found; install swtpm and tpm2-tools)"
		exit 0
	fi
done

if [ ! -x "$tool" ]; then
	ok 1 "tpm-blob-tool is built at $tool"
	tap_diag "it is built from tests/integration/tpm-blob-tool.c by the top-level meson.build"
	done_testing
	exit
fi

dir=$(mktemp -d)
swtpm_pid=
cleanup() {
	if [ -n "$swtpm_pid" ]; then
		kill "$swtpm_pid" 2>/dev/null
		wait "$swtpm_pid" 2>/dev/null
	fi
	rm -rf "$dir"
}
trap cleanup EXIT

# Every tpm2-tools call logs to one file; its tail is shown when a step fails.
log=$dir/tpm2.log
run() {
	echo "+ $*" >>"$log"
	"$@" >>"$log" 2>&1
}
# step STATUS DESCRIPTION: one TAP line; on failure, the log's tail too.
step() {
	local status=$1
	shift
	ok "$status" "$@"
	[ "$status" -eq 0 ] || tail -n 15 "$log" | sed 's/^/# /'
}

hex_of() {
	od -An -tx1 -v "$1" | tr -d ' \n'
}

# swtpm on a free loopback port pair: pick one, and try another if swtpm
# cannot bind it or someone else answers there.
start_swtpm() {
	local port
	mkdir -p "$dir/state"
	for _ in $(seq 1 20); do
		port=$((20000 + RANDOM % 40000))
		swtpm socket --tpm2 \
			--server type=tcp,port=$port,bindaddr=127.0.0.1 \
			--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
			--tpmstate dir="$dir/state" --flags not-need-init,startup-clear \
			--log file="$dir/swtpm.log" &
		swtpm_pid=$!
		export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$port"
		for _ in $(seq 1 50); do
			kill -0 "$swtpm_pid" 2>/dev/null || break
			if tpm2_getrandom 4 >/dev/null 2>&1; then
				sleep 0.2
				kill -0 "$swtpm_pid" 2>/dev/null && return 0
				break
			fi
			sleep 0.1
		done
		kill "$swtpm_pid" 2>/dev/null
		wait "$swtpm_pid" 2>/dev/null
		swtpm_pid=
	done
	return 1
}

if ! start_swtpm; then
	ok 1 "swtpm starts on a free loopback port"
	sed 's/^/# /' "$dir/swtpm.log" 2>/dev/null
	done_testing
	exit
fi
ok 0 "swtpm is running ($TPM2TOOLS_TCTI)"

EK=0x81010001
SRK=0x81000001
IDKEY=0x81000100

# The device's keys: the EK from the TCG L-1 template, and the SRK from the
# TCG template (tpm-identity.md §2.2, with noDA), both persisted.
run tpm2_createek -G rsa -c $EK -u "$dir/ek.pub"
step $? "tpm2_createek persists the EK at $EK"
run tpm2_createprimary -C o -G rsa2048:aes128cfb -c "$dir/srk.ctx" \
	-a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt' &&
	run tpm2_evictcontrol -C o -c "$dir/srk.ctx" $SRK &&
	run tpm2_readpublic -c $SRK -o "$dir/srk.pub" -n "$dir/srk.name" &&
	run tpm2_flushcontext -t
step $? "tpm2_createprimary + evictcontrol persist the SRK at $SRK"
is "$(stat -c %s "$dir/ek.pub") $(stat -c %s "$dir/srk.pub")" "316 284" \
	"ek.pub and srk.pub are 316- and 284-byte TPM2B_PUBLICs"

# Registration ids and Names computed by the library against coreutils and
# the TPM itself.
read -r regid_hex regid_b32 < <("$tool" regid "$dir/ek.pub")
is "$regid_hex" "$(sha256sum "$dir/ek.pub" | cut -d' ' -f1)" \
	"hex registration id is sha256sum ek.pub"
is "$regid_b32" "$(openssl dgst -sha256 -binary "$dir/ek.pub" | base32 | tr -d '=' | tr '[:upper:]' '[:lower:]')" \
	"base32 registration id is lowercase unpadded base32 of SHA-256(ek.pub)"
is "${#regid_b32}" 52 "base32 registration id is 52 characters"
is "$("$tool" name "$dir/srk.pub")" "$(hex_of "$dir/srk.name")" \
	"the SRK's Name matches tpm2_readpublic -n"

# What the device does with a blob in $1 (made by tpm-blob-tool build):
# activate the credential, import and load the ID key, persist it.
activate() {
	local b=$1
	run tpm2_startauthsession --policy-session -S "$b/session.ctx" || return 1
	run tpm2_policysecret -S "$b/session.ctx" -c e &&
		run tpm2_activatecredential -c $SRK -C $EK -i "$b/credential.bin" \
			-o "$b/inner.key" -P "session:$b/session.ctx"
	local rc=$?
	run tpm2_flushcontext "$b/session.ctx"
	return $rc
}
import_and_persist() {
	local b=$1
	run tpm2_import -C $SRK -u "$b/id_key.pub" -i "$b/duplicate.bin" -s "$b/in_sym_seed.bin" \
		-k "$b/inner.key" -r "$b/id_key.priv" || return 1
	run tpm2_load -C $SRK -u "$b/id_key.pub" -r "$b/id_key.priv" -c "$b/id_key.ctx" || return 1
	# Replace an older key, as the clients do (a failure here is expected
	# the first time).
	run tpm2_evictcontrol -C o -c $IDKEY
	run tpm2_evictcontrol -C o -c "$b/id_key.ctx" $IDKEY
	local rc=$?
	run tpm2_flushcontext -t
	return $rc
}
# The TPM's HMAC of file $1 under the persisted ID key, in hex.
tpm_hmac() {
	rm -f "$dir/tpm.mac"
	run tpm2_hmac -c $IDKEY -g sha256 -o "$dir/tpm.mac" "$1" && hex_of "$dir/tpm.mac"
}
sw_hmac() { # KEY_HEX FILE
	openssl dgst -sha256 -mac HMAC -macopt "hexkey:$1" -binary "$2" | od -An -tx1 -v | tr -d ' \n'
}

# A SAS string-to-sign as the Node TPM client builds it, and an input
# larger than the TPM's input buffer (signed with an HMAC sequence).
sas=$dir/sas.txt
printf '0ne00000A0A%%2Fregistrations%%2F%s\n%s' "$regid_b32" 1700003600 >"$sas"
big=$dir/big.bin
head -c 2500 /dev/urandom >"$big"

# K1 (32 bytes, the 401 challenge), then replacements of 16 and 64 bytes
# (the hub key of the assigned registration replaces it at the same handle).
for len in 32 16 64; do
	key=$(openssl rand -hex $len)
	b=$dir/blob$len
	mkdir -p "$b"
	"$tool" build "$dir/ek.pub" "$dir/srk.pub" "$key" "$b" 2>>"$log"
	step $? "K=$len: tpm-blob-tool builds the blob"
	if [ $len = 32 ]; then
		is "$(stat -c %s "$b/id_object.bin" "$b/secret.bin" "$b/duplicate.bin" \
			"$b/in_sym_seed.bin" "$b/id_key.pub" "$b/enc_uri.bin" | tr '\n' ' ')" \
			"54 258 144 258 50 2 " "K=32: items are 52/256/142/256/48/0 bytes plus sizes"
	fi
	activate "$b"
	step $? "K=$len: tpm2_activatecredential (SRK, EK with PolicySecret) accepts it"
	is "$(stat -c %s "$b/inner.key" 2>/dev/null)" 16 "K=$len: the credential is a 16-byte inner key"
	import_and_persist "$b"
	step $? "K=$len: tpm2_import + tpm2_load + persist at $IDKEY"
	is "$(tpm_hmac "$sas")" "$(sw_hmac "$key" "$sas")" \
		"K=$len: TPM2_HMAC of the SAS string equals HMAC-SHA256 with K"
	is "$(tpm_hmac "$big")" "$(sw_hmac "$key" "$big")" \
		"K=$len: HMAC sequence over 2500 bytes equals HMAC-SHA256 with K"
done
last_key=$key

# Another TPM's EK (the Azure Node SDK's e2e EK): the credential is not
# ours, ActivateCredential must fail and the persisted key stay as it was.
base64 -d >"$dir/other-ek.pub" <<'EOF'
AToAAQALAAMAsgAgg3GXZ0SEs/gakMyNRqXXJP1S124GUgtk8qHaGzMUaaoABgCAAEMAEAgAAAAAAAEAtKEADl/sNRgm
YAjP6gXmbccRaJoTnVixisUaek0OwAzFGN70xt9ZOYp6fhIwfcft3fdVKOrKpXYcTe72CGNkGJGlQz5ti9n2pQ0uJhcX
8aefh4Onm7lVlUCQAVp1K0r6zI8vkEXWsBIvwvxk0eMJbFaq146kbTkJHIGczb89RkFH2TX+CgXeZOG9oXQzUNwktmTU
acspamune5Wywc/ce8HsDFYchyUHogFhrZ/LPnzyTDXO8sSC5z5dvsUBtUME3iRYDyKgZOfBtmRMqQewD+4iH+ZEJjts
yJiWR8hFhyKROnOuqXfNFwjd5IcNU4wtlKO0cLyXmTOfQK6Da1pr5Q==
EOF
b=$dir/other-ek
mkdir -p "$b"
"$tool" build "$dir/other-ek.pub" "$dir/srk.pub" "$(openssl rand -hex 32)" "$b" 2>>"$log"
step $? "a blob for another TPM's EK can be built"
activate "$b"
ok $((!$?)) "tpm2_activatecredential refuses a blob built for another EK"
is "$(tpm_hmac "$sas")" "$(sw_hmac "$last_key" "$sas")" "the key at $IDKEY is unchanged"

# Our EK, but the credential bound to another SRK's Name (an SRK from an SDK
# sample request): ActivateCredential's integrity check must fail.
base64 -d >"$dir/other-srk.pub" <<'EOF'
ARoAAQALAAMEcgAAAAYAgABDABAIAAAAAAABAOtkhwZsvTyGIda0EjHC88xtr/fRzS21rxDkqNkqILJxzwEnQIQJaEtq
ezc+dvxDQP7ANLMtEzdrK8AyYz7DQ5wSoypbj8KOdeOltff/bH61SxkcJ2HszJjF9nEFkDRxY6ikUU7pGJ5D/VvtidPJ
kh53nbRPyirsU69qIQIF6vCPd9TlYSYLMUu1H4qh3ER+vP5h59iMd4qLrvseta4o9gmOxE6oLHTQoojnoiIAKGPGAedq
PsAaPJ2bjTHVJDkfmvKc1VqJIgaC8HC3YD/g56EP4Ppe53e45BckumbusvPfFLC/WsZ1lOFEVVXb4nyFpDm/myG+PwhnW
CLTMjJ6w10=
EOF
b=$dir/other-srk
mkdir -p "$b"
"$tool" build "$dir/ek.pub" "$dir/other-srk.pub" "$(openssl rand -hex 32)" "$b" 2>>"$log"
step $? "a blob bound to another SRK can be built"
activate "$b"
ok $((!$?)) "tpm2_activatecredential refuses a credential bound to another SRK's Name"

# A blob for this TPM with one flipped bit in the duplicate: the credential
# still activates, Import must fail on the outer integrity HMAC.
b=$dir/tampered
mkdir -p "$b"
"$tool" build "$dir/ek.pub" "$dir/srk.pub" "$(openssl rand -hex 32)" "$b" 2>>"$log"
step $? "a blob to tamper with can be built"
activate "$b"
step $? "its credential activates"
last=$(($(stat -c %s "$b/duplicate.bin") - 1))
byte=$(od -An -tu1 -j $last -N 1 "$b/duplicate.bin" | tr -d ' ')
printf '%b' "\\0$(printf '%03o' $((byte ^ 1)))" | dd of="$b/duplicate.bin" bs=1 seek=$last conv=notrunc 2>/dev/null
run tpm2_import -C $SRK -u "$b/id_key.pub" -i "$b/duplicate.bin" -s "$b/in_sym_seed.bin" \
	-k "$b/inner.key" -r "$b/id_key.priv"
ok $((!$?)) "tpm2_import refuses a duplicate with a flipped bit"
run tpm2_flushcontext -t

done_testing
