#!/usr/bin/env bash
# `edgeid tpm provisioning-info` against the seeds' own script on the same
# TPM (swtpm). The seed (seeds/000, IoT Edge "provision devices at scale
# with a TPM") reads or creates the EK with tpm2-tools and prints the
# registration id (sha256sum -b ek.pub) and the endorsement key (base64 -w0
# ek.pub); edgeid must print exactly the same bytes, whichever of the two
# created the EK. Then --base32 (the Azure C SDK's registration id, checked
# against sha256sum + python3's base64.b32encode), --json, the tcti from
# the super-config, hierarchy authorization, and the exact errors for a
# TPM that cannot be reached or opened.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
. "$EDGEID_SOURCE_ROOT/tests/lib/swtpm.sh"
edgeid=$EDGEID_BUILD_ROOT/edgeid

for cmd in swtpm tpm2_createek tpm2_createprimary tpm2_evictcontrol tpm2_readpublic \
	tpm2_flushcontext tpm2_getcap tpm2_changeauth tpm2_getrandom sha256sum base64 python3 \
	jq setpriv; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "1..0 # SKIP $cmd not found (install swtpm, tpm2-tools, jq, python3)"
		exit 0
	fi
done

tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
export TSS2_LOG=all+none
log=$tmp/tools.log

# The seeds' script, as published (without its sudo prefix: the tests run
# with the rights they have). It runs in its own directory and removes
# ek.pub and srk.ctx when done.
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
persistent_handles() { tpm2_getcap handles-persistent 2>>"$log" | tr -d -- '- ' | tr '\n' ' '; }
# The line after heading $2 in file $1.
value_after() { awk -v h="$2:" 'found { print; exit } $0 == h { found = 1 }' "$1"; }
# cmp two files; on a difference, show both.
same_bytes() { # same_bytes A B DESCRIPTION
	if cmp -s "$1" "$2"; then
		ok 0 "$3"
	else
		ok 1 "$3"
		tap_diag "--- $1" "$(cat "$1")" "--- $2" "$(cat "$2")"
	fi
}
start() { # start NAME: a fresh swtpm
	if ! swtpm_start "$tmp/$1" 2>>"$log"; then
		ok 1 "swtpm $1 starts"
		tail -n 5 "$log" | sed 's/^/# /'
		done_testing
		exit
	fi
}
mkdir -p "$tmp/seed"

# ---- help and usage ------------------------------------------------------------

"$edgeid" tpm --help >"$tmp/out" 2>&1
is "$?:$(sed -n 4p "$tmp/out")" "0:  provisioning-info   print the TPM's registration id and endorsement key" \
	"edgeid tpm --help lists provisioning-info"
"$edgeid" tpm provisioning-info --help >"$tmp/out" 2>&1
is "$?:$(head -1 "$tmp/out")" "0:Usage: edgeid tpm provisioning-info [--tcti TCTI] [-c FILE] [--base32] [--json]" \
	"provisioning-info --help"
"$edgeid" tpm provisioning-info --bogus >"$tmp/out" 2>&1
is "$?:$(cat "$tmp/out")" "2:edgeid tpm provisioning-info: unknown option '--bogus'
Try 'edgeid tpm provisioning-info --help'." "an unknown option is a usage error"
"$edgeid" tpm provisioning-info --tcti >"$tmp/out" 2>&1
is "$?:$(head -1 "$tmp/out")" "2:edgeid tpm provisioning-info: option '--tcti' needs a value" \
	"--tcti without a value"
"$edgeid" tpm nosuch >"$tmp/out" 2>&1
is "$?:$(head -1 "$tmp/out")" "2:edgeid tpm: unknown command 'nosuch'" "an unknown tpm command"

# ---- A: edgeid creates the EK and SRK, the seed script reads them ------------------

start a
is "$(persistent_handles)" "" "swtpm A is fresh: no persistent objects"
"$edgeid" tpm provisioning-info --tcti "$EDGEID_TEST_TCTI" >"$tmp/a-edgeid.out" 2>"$tmp/err"
is "$?:$(cat "$tmp/err")" "0:" "provisioning-info on a fresh TPM succeeds, nothing on stderr"
is "$(persistent_handles)" "0x81000001 0x81010001 " "it persisted the SRK and the EK"
seed_script "$tmp/seed" >"$tmp/a-seed.out" 2>>"$log"
same_bytes "$tmp/a-seed.out" "$tmp/a-edgeid.out" \
	"edgeid's output is the seed script's, byte for byte (EK made by edgeid)"
like "$(value_after "$tmp/a-edgeid.out" "Registration Id")" '^[0-9a-f]{64}$' \
	"the registration id is 64 lowercase hex digits"
"$edgeid" tpm provisioning-info --tcti "$EDGEID_TEST_TCTI" >"$tmp/a-again.out" 2>>"$log"
same_bytes "$tmp/a-again.out" "$tmp/a-edgeid.out" "a second run reads the same EK"

# --base32: the Azure IoT C SDK's convention over the same EK bytes.
tpm2_readpublic -c 0x81010001 -o "$tmp/ek.pub" >>"$log" 2>&1
b32=$(python3 -c 'import base64, sys; print(base64.b32encode(bytes.fromhex(sys.argv[1])).decode().lower().rstrip("="))' \
	"$(sha256sum -b "$tmp/ek.pub" | cut -d' ' -f1)")
"$edgeid" tpm provisioning-info --tcti "$EDGEID_TEST_TCTI" --base32 >"$tmp/a-b32.out" 2>>"$log"
is "$?:$(value_after "$tmp/a-b32.out" "Registration Id")" "0:$b32" \
	"--base32: lowercase unpadded base32 of sha256sum ek.pub"
is "${#b32}" 52 "the base32 registration id has 52 characters"
diff <(sed 4d "$tmp/a-b32.out") <(sed 4d "$tmp/a-edgeid.out") >/dev/null
ok $? "--base32 changes only the registration id line"

# --json
"$edgeid" tpm provisioning-info --tcti "$EDGEID_TEST_TCTI" --json >"$tmp/a.json" 2>>"$log"
is "$?:$(jq -r 'keys_unsorted | join(",")' "$tmp/a.json")" "0:registration_id,endorsement_key" \
	"--json: registration_id and endorsement_key"
is "$(jq -r .registration_id "$tmp/a.json")" "$(sha256sum -b "$tmp/ek.pub" | cut -d' ' -f1)" \
	"--json registration_id is sha256sum -b ek.pub"
is "$(jq -r .endorsement_key "$tmp/a.json")" "$(base64 -w0 "$tmp/ek.pub")" \
	"--json endorsement_key is base64 -w0 ek.pub"
is "$(jq -r .registration_id <("$edgeid" tpm provisioning-info --tcti "$EDGEID_TEST_TCTI" --json --base32 2>>"$log"))" \
	"$b32" "--json --base32: the base32 registration id"

# The tcti from the super-config's [tpm].
cat >"$tmp/config.toml" <<EOF
[provisioning]
source = "dps"
global_endpoint = "https://global.azure-devices-provisioning.net/"
id_scope = "0ne00000A0A"

[provisioning.attestation]
method = "tpm"
registration_id = "$(value_after "$tmp/a-edgeid.out" "Registration Id")"

[tpm]
tcti = "$EDGEID_TEST_TCTI"
EOF
"$edgeid" tpm provisioning-info -c "$tmp/config.toml" >"$tmp/a-config.out" 2>"$tmp/err"
is "$?:$(cat "$tmp/err")" "0:" "-c config.toml: [tpm] tcti is used"
same_bytes "$tmp/a-config.out" "$tmp/a-edgeid.out" "the same output through the super-config"

# ---- B: the seed script creates the EK and SRK, edgeid reads them ------------------

start b
seed_script "$tmp/seed" >"$tmp/b-seed.out" 2>>"$log"
is "$(persistent_handles)" "0x81000001 0x81010001 " "the seed script persisted the SRK and the EK on swtpm B"
"$edgeid" tpm provisioning-info --tcti "$EDGEID_TEST_TCTI" >"$tmp/b-edgeid.out" 2>>"$log"
same_bytes "$tmp/b-edgeid.out" "$tmp/b-seed.out" \
	"edgeid's output is the seed script's, byte for byte (EK made by tpm2-tools)"
is "$(persistent_handles)" "0x81000001 0x81010001 " "edgeid created nothing more"
if cmp -s "$tmp/b-edgeid.out" "$tmp/a-edgeid.out"; then
	ok 1 "two TPMs give two registration ids"
else
	ok 0 "two TPMs give two registration ids"
fi

# ---- C: hierarchy authorization from the super-config ------------------------------

start c
tpm2_changeauth -c o owner-secret >>"$log" 2>&1
ok $? "swtpm C: the owner hierarchy has a password"
sed -i "s|^tcti = .*|tcti = \"$EDGEID_TEST_TCTI\"|" "$tmp/config.toml"
"$edgeid" tpm provisioning-info -c "$tmp/config.toml" >"$tmp/out" 2>"$tmp/err"
is "$?:$(cat "$tmp/err")" "1:edgeid tpm provisioning-info: TPM2_EvictControl(0x81010001): tpm:session(1):authorization failure without DA implications; check [tpm.hierarchy_authorization] in $tmp/config.toml" \
	"without the owner password: the TPM refuses, and the error says where to set it"
printf '\n[tpm.hierarchy_authorization]\nowner = "owner-secret"\n' >>"$tmp/config.toml"
"$edgeid" tpm provisioning-info -c "$tmp/config.toml" >"$tmp/c-edgeid.out" 2>"$tmp/err"
is "$?:$(cat "$tmp/err")" "0:" "with [tpm.hierarchy_authorization] owner: the EK and SRK are made"
tpm2_readpublic -c 0x81010001 -o "$tmp/c-ek.pub" >>"$log" 2>&1
is "$(value_after "$tmp/c-edgeid.out" "Endorsement Key")" "$(base64 -w0 "$tmp/c-ek.pub")" \
	"and the endorsement key printed is the EK's"
swtpm_stop

# ---- errors ---------------------------------------------------------------------------

port=$SWTPM_PORT # stopped: nothing listens there now
tcti="swtpm:host=127.0.0.1,port=$port"
"$edgeid" tpm provisioning-info --tcti "$tcti" >"$tmp/out" 2>"$tmp/err"
is "$?:$(cat "$tmp/out")$(cat "$tmp/err")" "1:edgeid tpm provisioning-info: cannot reach the TPM at $tcti (from --tcti): tcti:IO failure; is the TPM service running and is [tpm] tcti right?" \
	"an unreachable TPM: exit 1, where and why, nothing on stdout"
"$edgeid" tpm provisioning-info -c "$tmp/config.toml" >"$tmp/out" 2>"$tmp/err"
is "$?:$(cat "$tmp/err")" "1:edgeid tpm provisioning-info: cannot reach the TPM at $tcti ([tpm] tcti of $tmp/config.toml): tcti:IO failure; is the TPM service running and is [tpm] tcti right?" \
	"the message says where the tcti came from"
"$edgeid" tpm provisioning-info --tcti nosuchtcti 2>"$tmp/err"
is "$?:$(cat "$tmp/err")" '1:edgeid tpm provisioning-info: tpm.tcti "nosuchtcti": no TCTI of that name could be loaded (tcti:Functionality not supported); expected e.g. "device:/dev/tpmrm0", "swtpm:host=127.0.0.1,port=2321" or "tabrmd"' \
	"an unknown TCTI"
"$edgeid" tpm provisioning-info --tcti "device:$tmp/no-such-tpm" 2>"$tmp/err"
is "$?:$(cat "$tmp/err")" "1:edgeid tpm provisioning-info: cannot reach the TPM at device:$tmp/no-such-tpm (from --tcti): $tmp/no-such-tpm does not exist; is there a TPM, with its driver loaded, and is [tpm] tcti right?" \
	"a TPM device that does not exist"
if [ "$(id -u)" -eq 0 ]; then
	# A device node stand-in only root may open.
	install -m 0600 /dev/null "$tmp/tpmrm0"
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$edgeid" tpm provisioning-info --tcti "device:$tmp/tpmrm0" 2>"$tmp/err"
	is "$?:$(cat "$tmp/err")" "1:edgeid tpm provisioning-info: cannot open the TPM at device:$tmp/tpmrm0 (from --tcti): $tmp/tpmrm0: permission denied; run as root (sudo)" \
		"no access to the TPM device: says to run as root"
	chgrp tss "$tmp/tpmrm0" 2>/dev/null && chmod 0660 "$tmp/tpmrm0"
	if [ "$(stat -c %G "$tmp/tpmrm0")" = tss ]; then
		setpriv --reuid=65534 --regid=65534 --clear-groups \
			"$edgeid" tpm provisioning-info --tcti "device:$tmp/tpmrm0" 2>"$tmp/err"
		is "$?:$(cat "$tmp/err")" "1:edgeid tpm provisioning-info: cannot open the TPM at device:$tmp/tpmrm0 (from --tcti): $tmp/tpmrm0: permission denied; run as root (sudo) or as a member of group tss" \
			"a group-accessible TPM device: names the group"
	else
		echo "ok $((TAP_N + 1)) # SKIP no group tss on this system"
		TAP_N=$((TAP_N + 1))
	fi
	chmod 0600 "$tmp/config.toml"
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$edgeid" tpm provisioning-info -c "$tmp/config.toml" 2>"$tmp/err"
	is "$?:$(cat "$tmp/err")" "1:edgeid tpm provisioning-info: $tmp/config.toml: cannot read: Permission denied; run as root, or give the TPM with --tcti" \
		"an unreadable super-config"
else
	for _ in 1 2 3; do
		echo "ok $((TAP_N + 1)) # SKIP needs root to run as another user"
		TAP_N=$((TAP_N + 1))
	done
fi
"$edgeid" tpm provisioning-info -c "$tmp/missing.toml" 2>"$tmp/err"
is "$?:$(cat "$tmp/err")" "1:edgeid tpm provisioning-info: $tmp/missing.toml: cannot read: No such file or directory" \
	"-c with a missing file"

done_testing
