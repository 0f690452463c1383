#!/usr/bin/env bash
# src/tpm against tpm2-tools on the same TPM (swtpm), byte for byte.
#
# The seeds' provisioning script (seeds/000, "Récupération des informations
# de provisionnement de votre module TPM") reads or creates the EK with
# tpm2-tools and prints the registration id (sha256sum -b ek.pub) and the
# EK (base64 -w0 ek.pub). edgeid must report exactly those values:
#   1. on a TPM the script provisioned, for the EK the library reads;
#   2. on a fresh TPM, for the EK and SRK the library creates: tpm2_createek
#      -G rsa and tpm2_createprimary -C o, run on the same TPM seeds, must
#      give the same keys, so the templates are the same.
# Then the DPS key flow through the library, cross-checked with openssl and
# tpm2_hmac, hierarchy authorization, and TCTI errors.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
. "$EDGEID_SOURCE_ROOT/tests/lib/swtpm.sh"
tool=${TPM_TOOL:-$EDGEID_BUILD_ROOT/tpm-tool}
blob_tool=${TPM_BLOB_TOOL:-$EDGEID_BUILD_ROOT/tpm-blob-tool}

for cmd in swtpm tpm2_createek tpm2_createprimary tpm2_evictcontrol tpm2_readpublic \
	tpm2_flushcontext tpm2_getcap tpm2_hmac tpm2_changeauth sha256sum base64 openssl; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "1..0 # SKIP $cmd not found (install swtpm and tpm2-tools)"
		exit 0
	fi
done
for prog in "$tool" "$blob_tool"; do
	if [ ! -x "$prog" ]; then
		ok 1 "$prog is built"
		tap_diag "tpm-tool is built from tests/integration/tpm-tool.c, tpm-blob-tool from" \
			"tests/integration/tpm-blob-tool.c, by the top-level meson.build"
		done_testing
		exit
	fi
done

# tpm2-tss prints its own error lines for commands the TPM refuses; the
# tools and tpm-tool report failures themselves.
export TSS2_LOG=all+none

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

log=$dir/tools.log
run() {
	echo "+ $*" >>"$log"
	"$@" >>"$log" 2>&1
}
step() { # step STATUS DESCRIPTION: a TAP line, and the log's tail on failure
	local status=$1
	shift
	ok "$status" "$@"
	[ "$status" -eq 0 ] || tail -n 15 "$log" | sed 's/^/# /'
}
b64() { base64 -w0 "$1"; }
regid() { sha256sum -b "$1" | cut -d' ' -f1; }
persistent_handles() { tpm2_getcap handles-persistent 2>>"$log" | tr -d -- '- ' | tr '\n' ' '; }
transient_handles() { tpm2_getcap handles-transient 2>>"$log" | tr -d -- '- ' | tr '\n' ' '; }

# The seeds' script, as published, without its sudo prefix. It runs in its
# own directory and removes ek.pub and srk.ctx when done.
seed_script() {
	(
		cd "$1" || exit 1
		tpm2_readpublic -Q -c 0x81010001 -o ek.pub 2>/dev/null
		# shellcheck disable=SC2181 # as the seed writes it
		if [ $? -gt 0 ]; then
			# Create the endorsement key (EK)
			tpm2_createek -c 0x81010001 -G rsa -u ek.pub

			# Create the storage root key (SRK)
			tpm2_createprimary -Q -C o -c srk.ctx >/dev/null

			# make the SRK persistent
			tpm2_evictcontrol -c srk.ctx 0x81000001 >/dev/null

			# open transient handle space for the TPM
			tpm2_flushcontext -t >/dev/null
		fi

		# shellcheck disable=SC2046
		printf "Gathering the registration information...\n\nRegistration Id:\n%s\n\nEndorsement Key:\n%s\n" $(sha256sum -b ek.pub | cut -d' ' -f1 | sed -e 's/[^[:alnum:]]//g') $(base64 -w0 ek.pub)
		rm ek.pub srk.ctx 2>/dev/null
	)
}
# The value printed under heading $2 in the script's output $1.
seed_value() {
	awk -v h="$2:" 'found { print; exit } $0 == h { found = 1 }' <<<"$1"
}

# ---- 1. a TPM provisioned by the seeds' script ---------------------------
if ! swtpm_start "$dir/a" 2>>"$log"; then
	step 1 "swtpm starts"
	done_testing
	exit
fi
ok 0 "swtpm A is running ($EDGEID_TEST_TCTI)"

mkdir -p "$dir/seed"
out=$(seed_script "$dir/seed" 2>>"$log")
seed_regid=$(seed_value "$out" "Registration Id")
seed_ek=$(seed_value "$out" "Endorsement Key")
like "$seed_regid" '^[0-9a-f]{64}$' "seed script prints a 64-hex-digit registration id"
is "${#seed_ek}" 424 "seed script prints a 424-character base64 EK"
like "$seed_ek" '^AToAAQALAAMAsgAg' "the EK is a TCG L-1 RSA EK (TPM2B size 314, attributes 0x000300b2)"
is "$(persistent_handles)" "0x81000001 0x81010001 " "the script persisted the SRK and the EK"

run "$tool" read-public 0x81010001 "$dir/a-lib-ek.pub"
step $? "tpm-tool read-public 0x81010001"
is "$(b64 "$dir/a-lib-ek.pub")" "$seed_ek" "the EK the library reads is the seed script's, byte for byte"
is "$(regid "$dir/a-lib-ek.pub")" "$seed_regid" "sha256sum -b of it is the seed script's registration id"

run "$tool" ensure-ek "$dir/a-ensure-ek.pub"
step $? "tpm-tool ensure-ek on a provisioned TPM"
is "$(b64 "$dir/a-ensure-ek.pub")" "$seed_ek" "tpm_ensure_ek returns the existing EK"
run tpm2_readpublic -c 0x81010001 -o "$dir/a-tools-ek.pub"
cmp -s "$dir/a-tools-ek.pub" "$dir/a-ensure-ek.pub"
ok $? "tpm2_readpublic -c 0x81010001 -o ek.pub writes the same file"

run "$tool" ensure-srk "$dir/a-lib-srk.pub" &&
	run tpm2_readpublic -c 0x81000001 -o "$dir/a-tools-srk.pub"
step $? "tpm-tool ensure-srk and tpm2_readpublic -c 0x81000001"
cmp -s "$dir/a-tools-srk.pub" "$dir/a-lib-srk.pub"
ok $? "the SRK the library returns is what tpm2_readpublic writes"
is "$(persistent_handles)" "0x81000001 0x81010001 " "the library created nothing more"
is "$("$blob_tool" regid "$dir/a-lib-ek.pub" | cut -d' ' -f1)" "$seed_regid" \
	"src/crypto's hex registration id is the seed script's"

out=$(seed_script "$dir/seed" 2>>"$log")
is "$(seed_value "$out" "Endorsement Key")" "$seed_ek" "a second run of the script reads the same EK"

# ---- 2. a fresh TPM, EK and SRK created by the library -------------------
if ! swtpm_start "$dir/b" 2>>"$log"; then
	step 1 "a second swtpm starts"
	done_testing
	exit
fi
ok 0 "swtpm B (fresh state) is running"
is "$(persistent_handles)" "" "it has no persistent objects"

run "$tool" ensure-ek "$dir/b-lib-ek.pub" && run "$tool" ensure-srk "$dir/b-lib-srk.pub"
step $? "tpm-tool ensure-ek and ensure-srk create the keys"
is "$(stat -c %s "$dir/b-lib-ek.pub") $(stat -c %s "$dir/b-lib-srk.pub")" "316 284" \
	"ek.pub and srk.pub are 316- and 284-byte TPM2B_PUBLICs"
is "$(persistent_handles)" "0x81000001 0x81010001 " "both are persisted at 0x81000001 and 0x81010001"
is "$(transient_handles)" "" "no transient object is left loaded"

run tpm2_readpublic -c 0x81010001 -o "$dir/b-read-ek.pub"
cmp -s "$dir/b-read-ek.pub" "$dir/b-lib-ek.pub"
ok $? "tpm2_readpublic reads back the library's EK byte for byte"

mkdir -p "$dir/seed-b"
out=$(seed_script "$dir/seed-b" 2>>"$log")
is "$(seed_value "$out" "Endorsement Key")" "$(b64 "$dir/b-lib-ek.pub")" \
	"the seed script prints the library's EK"
is "$(seed_value "$out" "Registration Id")" "$(regid "$dir/b-lib-ek.pub")" \
	"and its registration id"

# Same seeds, same template, same key: replace the library's keys by the
# tools' and compare.
run tpm2_evictcontrol -C o -c 0x81010001 &&
	run tpm2_createek -c 0x81010001 -G rsa -u "$dir/b-tools-ek.pub"
step $? "tpm2_createek -c 0x81010001 -G rsa re-creates the EK"
cmp -s "$dir/b-tools-ek.pub" "$dir/b-lib-ek.pub"
ok $? "tpm2_createek -G rsa gives the library's EK, byte for byte (same template)"

run tpm2_evictcontrol -C o -c 0x81000001 &&
	run tpm2_createprimary -Q -C o -c "$dir/srk.ctx" &&
	run tpm2_evictcontrol -c "$dir/srk.ctx" 0x81000001 &&
	run tpm2_flushcontext -t &&
	run tpm2_readpublic -c 0x81000001 -o "$dir/b-tools-srk.pub"
step $? "tpm2_createprimary -C o + tpm2_evictcontrol re-create the SRK"
cmp -s "$dir/b-tools-srk.pub" "$dir/b-lib-srk.pub"
ok $? "tpm2_createprimary -C o gives the library's SRK, byte for byte (same template)"

# ---- 3. the DPS authentication key ---------------------------------------
sw_hmac() { # KEY_HEX FILE
	openssl dgst -sha256 -mac HMAC -macopt "hexkey:$1" -binary "$2" | od -An -tx1 -v | tr -d ' \n'
}
tools_hmac() { # FILE
	rm -f "$dir/tools.mac"
	run tpm2_hmac -c 0x81000100 -g sha256 -o "$dir/tools.mac" "$1" &&
		od -An -tx1 -v "$dir/tools.mac" | tr -d ' \n'
}
sas=$dir/sas.txt
printf '0ne00000a0a%%2fregistrations%%2f%s\n%s' "$(regid "$dir/b-lib-ek.pub")" 1700003600 >"$sas"
big=$dir/big.bin
head -c 2500 /dev/urandom >"$big"

# The keys as they are now in the TPM (the same as above when the templates
# match; read again so that a template mismatch fails only its own test).
run "$tool" read-public 0x81010001 "$dir/b-ek.pub" && run "$tool" read-public 0x81000001 "$dir/b-srk.pub"
step $? "tpm-tool read-public reads the EK and SRK"
key=$(openssl rand -hex 32)
mkdir -p "$dir/blob"
run "$blob_tool" build "$dir/b-ek.pub" "$dir/b-srk.pub" "$key" "$dir/blob" &&
	run "$tool" import 0x81000100 "$dir/blob/blob.b64"
step $? "tpm-tool import persists a DPS authentication key at 0x81000100"
is "$("$tool" hmac 0x81000100 "$sas" 2>>"$log")" "$(sw_hmac "$key" "$sas")" \
	"tpm_hmac of a SAS string-to-sign equals HMAC-SHA256 with K"
is "$("$tool" hmac 0x81000100 "$big" 2>>"$log")" "$(sw_hmac "$key" "$big")" \
	"tpm_hmac of 2500 bytes (HMAC sequence) equals HMAC-SHA256 with K"
is "$(tools_hmac "$sas")" "$(sw_hmac "$key" "$sas")" "tpm2_hmac signs with the key the library imported"
is "$("$tool" handles 2>>"$log")" "transient 0 sessions 0" "nothing is left loaded"

mkdir -p "$dir/other"
base64 -d >"$dir/other-ek.pub" <<'EOF'
AToAAQALAAMAsgAgg3GXZ0SEs/gakMyNRqXXJP1S124GUgtk8qHaGzMUaaoABgCAAEMAEAgAAAAAAAEAtKEADl/sNRgm
YAjP6gXmbccRaJoTnVixisUaek0OwAzFGN70xt9ZOYp6fhIwfcft3fdVKOrKpXYcTe72CGNkGJGlQz5ti9n2pQ0uJhcX
8aefh4Onm7lVlUCQAVp1K0r6zI8vkEXWsBIvwvxk0eMJbFaq146kbTkJHIGczb89RkFH2TX+CgXeZOG9oXQzUNwktmTU
acspamune5Wywc/ce8HsDFYchyUHogFhrZ/LPnzyTDXO8sSC5z5dvsUBtUME3iRYDyKgZOfBtmRMqQewD+4iH+ZEJjts
yJiWR8hFhyKROnOuqXfNFwjd5IcNU4wtlKO0cLyXmTOfQK6Da1pr5Q==
EOF
run "$blob_tool" build "$dir/other-ek.pub" "$dir/b-srk.pub" "$(openssl rand -hex 32)" "$dir/other"
msg=$("$tool" import 0x81000100 "$dir/other/blob.b64" 2>&1)
ok $((!$?)) "a blob made for another TPM's EK is refused"
is "$msg" "tpm-tool: TPM2_ActivateCredential: tpm:error(2.0): commands not being accepted because of a TPM failure; the authentication key was not made for this TPM's EK and SRK (check the endorsement key enrolled for this device)" \
	"with the sentence naming TPM2_ActivateCredential"
is "$("$tool" hmac 0x81000100 "$sas" 2>>"$log")" "$(sw_hmac "$key" "$sas")" "the key at 0x81000100 is unchanged"
is "$(transient_handles)" "" "nothing is left loaded after the failure"

# ---- 4. hierarchy authorization ------------------------------------------
run tpm2_changeauth -c o owner-pw && run tpm2_changeauth -c e endorsement-pw
step $? "tpm2_changeauth sets owner and endorsement authorizations"
msg=$("$tool" evict 0x81000100 2>&1)
ok $((!$?)) "without the owner authorization, evict fails"
is "$msg" "tpm-tool: TPM2_EvictControl(0x81000100): tpm:session(1):authorization failure without DA implications" \
	"with the TPM's reason"
key2=$(openssl rand -hex 32)
mkdir -p "$dir/blob2"
run "$blob_tool" build "$dir/b-ek.pub" "$dir/b-srk.pub" "$key2" "$dir/blob2" &&
	run "$tool" -e endorsement-pw -o owner-pw import 0x81000100 "$dir/blob2/blob.b64"
step $? "with both authorizations configured, import replaces the key"
is "$("$tool" hmac 0x81000100 "$sas" 2>>"$log")" "$(sw_hmac "$key2" "$sas")" "and the new key signs"
run tpm2_changeauth -c o -p owner-pw && run tpm2_changeauth -c e -p endorsement-pw
step $? "authorizations reset"

# ---- 5. TCTI errors -------------------------------------------------------
msg=$("$tool" -T nosuchtcti handles 2>&1)
ok $((!$?)) "an unknown TCTI fails"
is "$msg" 'tpm-tool: tpm.tcti "nosuchtcti": no TCTI of that name could be loaded (tcti:Functionality not supported); expected e.g. "device:/dev/tpmrm0", "swtpm:host=127.0.0.1,port=2321" or "tabrmd"' \
	"with a sentence naming the configured TCTI"
port=$SWTPM_PORT
swtpm_stop
msg=$("$tool" -T "swtpm:host=127.0.0.1,port=$port" handles 2>&1)
ok $((!$?)) "a TPM that is gone fails"
is "$msg" "tpm-tool: tpm.tcti \"swtpm:host=127.0.0.1,port=$port\": cannot reach the TPM (tcti:IO failure); check that it exists and that this user may open it" \
	"with a sentence saying the TPM cannot be reached"

done_testing
