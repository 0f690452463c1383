#!/usr/bin/env bash
# SIGKILL during provisioning. One edgeid-cloud (DPS 127.0.14.2, hub
# 127.0.14.3), one swtpm, and two devices, each run by `edgeidd supervise`
# as a user runs it: "tpm" (keyd, tpmd, identityd; TPM attestation) and
# "sym" (keyd, identityd; symmetric key). Each round makes a device
# provision itself again (the reprovision call; or the DPS registration
# deleted first; or the device deleted in the hub and identityd
# restarted, so that device_info is refused and DPS runs again), kills
# identityd, tpmd or keyd with SIGKILL after a random delay, lets the
# supervisor restart it, and waits until the device is provisioned. Then
# the state must be consistent:
#   - device_info names the hub and device of DPS's registration record,
#     and identityd's status says the same;
#   - that device exists in that hub, and a hub request signed with the
#     device's own key (in the TPM through tpmd, or in keyd through the
#     handle identityd gives) is accepted;
#   - keyd's, tpmd's and identityd's home directories hold the same files
#     with the same owners and modes as before the first round (0600
#     files, 0700 directories), and no temporary file;
#   - the TPM holds the EK, the SRK and the authentication key at
#     auth_key_index, each once, and no transient object or session that
#     a killed tpmd left behind.
# One TAP line per round. The choices (device, daemon, delay, how the
# device is reset) come from a generator seeded with EDGEID_SIGKILL_SEED,
# printed first; set it to replay a run. EDGEID_SIGKILL_ROUNDS (50) and
# EDGEID_SIGKILL_MAX_MS (the longest delay, 1500) are for debugging.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
. "$EDGEID_SOURCE_ROOT/tests/lib/cloud-env.sh"
. "$EDGEID_SOURCE_ROOT/tests/lib/swtpm.sh"

edgeid=$EDGEID_BUILD_ROOT/edgeid
edgeidd=$EDGEID_BUILD_ROOT/edgeidd
V=api-version=2020-09-01
V2=api-version=2021-12-01
AUTH_KEY_HANDLE=0x81000100

for tool in curl jq openssl swtpm tpm2_getcap base64; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "1..0 # SKIP $tool is not installed"
		exit 0
	fi
done
if [ "$(id -u)" -ne 0 ]; then
	# The cloud listens on port 443; the daemons run as their own users.
	echo "1..0 # SKIP needs root"
	exit 0
fi

seed=${EDGEID_SIGKILL_SEED:-$(($(date +%s%N) / 1000 % 2147483647))}
rounds=${EDGEID_SIGKILL_ROUNDS:-50}
max_ms=${EDGEID_SIGKILL_MAX_MS:-1500}
echo "# EDGEID_SIGKILL_SEED=$seed (set it to replay this run's choices)"

# A linear congruential generator of our own, so that the sequence does not
# depend on bash's RANDOM (which swtpm.sh uses too). rand N sets R to 0..N-1.
rng=$seed
rand() {
	rng=$(((rng * 1103515245 + 12345) & 0x7fffffff))
	R=$(((rng >> 8) % $1))
}

dir=$(mktemp -d)
chmod 755 "$dir"
declare -A ROOT RUN REGID DEVICE_ID ONLY
cleanup() {
	local d pid
	for d in tpm sym; do
		[ -n "${RUN[$d]:-}" ] || continue
		pid=$(cat "${RUN[$d]}/supervise.pid" 2>/dev/null)
		[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
		for f in "${RUN[$d]}"/status/*.json; do
			[ -f "$f" ] || continue
			pid=$(jq -r .pid "$f" 2>/dev/null)
			[ "${pid:-0}" -gt 0 ] 2>/dev/null &&
				grep -q "^edgeidd-" "/proc/$pid/cmdline" 2>/dev/null && kill -9 "$pid"
		done
	done
	cloud_env_stop >/dev/null 2>&1
	swtpm_stop
	rm -rf "$dir"
}
trap cleanup EXIT
export TSS2_LOG=all+none

# ---- the cloud and the TPM ----------------------------------------------------------

CLOUD_DPS_HOST=127.0.14.2
CLOUD_HUB_HOST=127.0.14.3
CLOUD_ENV_WORKERS=1 cloud_env_setup "$dir/cloud"
ok $? "edgeid-cloud starts" || {
	done_testing
	exit
}
swtpm_start "$dir/tpm" 2>"$dir/swtpm.err"
ok $? "swtpm starts" || {
	sed 's/^/# /' "$dir/swtpm.err"
	done_testing
	exit
}

info=$("$edgeid" tpm provisioning-info --tcti "$EDGEID_TEST_TCTI" --json)
REGID[tpm]=$(jq -r .registration_id <<<"$info")
ek=$(jq -r .endorsement_key <<<"$info")
DEVICE_ID[tpm]=sigkill-tpm
out=$(cloud_env_cli enrollment create --registration-id "${REGID[tpm]}" --endorsement-key "$ek" \
	--device-id "${DEVICE_ID[tpm]}" 2>&1)
ok $? "a TPM enrollment with the swtpm's EK" || tap_diag "$out"
REGID[sym]=sigkill-sym
DEVICE_ID[sym]=sigkill-sym
sym_key=$(openssl rand -base64 32)
out=$(cloud_env_cli enrollment create --registration-id "${REGID[sym]}" --symmetric-key "$sym_key" 2>&1)
ok $? "a symmetric-key enrollment" || tap_diag "$out"

# ---- the devices ---------------------------------------------------------------------

# device NAME ATTESTATION-TOML: a device root with the super-config applied
# and the state directories the package would make (packaging/tmpfiles.d).
device() {
	local name=$1 root=$dir/$1/root d user
	ROOT[$name]=$root
	RUN[$name]=$root/run/edgeid
	mkdir -p "$root/etc/aziot" "$root/etc/edgeid" || return 1
	cp "$CLOUD_CA" "$root/etc/edgeid/cloud-ca.pem" || return 1
	cat >"$root/etc/aziot/config.toml" <<-TOML
		hostname = "sigkill-$name"
		trust_bundle_cert = "file:///etc/edgeid/cloud-ca.pem"

		[provisioning]
		source = "dps"
		global_endpoint = "https://$CLOUD_DPS_HOST/"
		id_scope = "$CLOUD_DPS_ID_SCOPE"

		[provisioning.attestation]
		$2

		[tpm]
		tcti = "$EDGEID_TEST_TCTI"
	TOML
	"$edgeid" config apply -c "$root/etc/aziot/config.toml" --root "$root" \
		>"$dir/$name/apply.out" 2>&1 || {
		sed 's/^/# /' "$dir/$name/apply.out"
		return 1
	}
	for d in keyd:aziotks identityd:aziotid tpmd:aziottpm; do
		user=${d#*:}
		getent passwd "$user" >/dev/null || user=root
		install -d -m 0700 -o "$user" -g "$(id -gn "$user")" "$root/var/lib/aziot/${d%%:*}" ||
			return 1
	done
}

device tpm "method = \"tpm\"
registration_id = \"${REGID[tpm]}\""
ok $? "the TPM device's config.toml is applied"
device sym "method = \"symmetric_key\"
registration_id = \"${REGID[sym]}\"
symmetric_key = { value = \"$sym_key\" }"
ok $? "the symmetric-key device's config.toml is applied"
ONLY[tpm]=keyd,tpmd,identityd
ONLY[sym]=keyd,identityd

sock() { printf '%s/run/aziot/%s.sock' "${ROOT[$1]}" "$2"; }
# field DEVICE DAEMON KEY: from the supervisor's status file of DAEMON.
field() { jq -r ".$3" "${RUN[$1]}/status/$2.json" 2>/dev/null; }
# status DEVICE: identityd's provisioning status ("" when it does not answer).
status() {
	curl -s --max-time 10 --unix-socket "$(sock "$1" identityd)" \
		"http://identityd.sock/identities/provisioning/status?$V2"
}
# wait_provisioned DEVICE SECONDS: until identityd is provisioned and idle.
wait_provisioned() {
	local deadline=$((SECONDS + $2)) s
	while [ "$SECONDS" -lt "$deadline" ]; do
		s=$(status "$1")
		[ "$(jq -r '"\(.state) \(.busy)"' <<<"$s" 2>/dev/null)" = "provisioned false" ] && return 0
		sleep 0.1
	done
	tap_diag "$1: not provisioned after $2 s; identityd's status: $s"
	return 1
}
# wait_running DEVICE DAEMON NOT-PID SECONDS: until the supervisor runs
# DAEMON with another pid than NOT-PID.
wait_running() {
	local deadline=$((SECONDS + $4))
	while [ "$SECONDS" -lt "$deadline" ]; do
		if [ "$(field "$1" "$2" state)" = running ] && [ "$(field "$1" "$2" pid)" != "$3" ]; then
			return 0
		fi
		sleep 0.05
	done
	tap_diag "$1: $2 is not running again after $4 s ($(field "$1" "$2" state))"
	return 1
}

for d in tpm sym; do
	out=$("$edgeidd" supervise --root "${ROOT[$d]}" --only "${ONLY[$d]}" 2>&1)
	ok $? "edgeidd supervise starts the $d device's daemons" || tap_diag "$out"
done
for d in tpm sym; do
	wait_provisioned "$d" 60
	ok $? "the $d device provisions itself"
done

# ---- what each round checks ------------------------------------------------------------

# The files in the daemons' home directories: path, owner, group, mode.
listing() {
	local d
	for d in keyd identityd tpmd; do
		find "${ROOT[$1]}/var/lib/aziot/$d" -printf "$d/%P %u:%g %m\n" 2>&1
	done | sort
}
declare -A BASELINE
for d in tpm sym; do BASELINE[$d]=$(listing "$d"); done
ok "$(grep -cvE ' (600|700)$' <<<"${BASELINE[tpm]}${BASELINE[sym]}")" \
	"before the first round, the daemons' files are 0600 and their directories 0700"

# sign_tpm DATA: the HMAC tpmd computes with the key at auth_key_index, base64.
sign_tpm() {
	curl -s --max-time 10 --unix-socket "$(sock tpm tpmd)" -H 'Content-Type: application/json' \
		-d "{\"data\":\"$(printf '%s' "$1" | base64 -w0)\"}" \
		"http://tpmd.sock/sign_with_auth_key?$V" | jq -r '.digest // empty'
}
# sign_keyd DEVICE DATA: the HMAC keyd computes with the device's key, found
# through the key handle identityd hands out, base64.
sign_keyd() {
	local handle
	handle=$(curl -s --max-time 10 --unix-socket "$(sock "$1" identityd)" \
		-H 'Content-Type: application/json' -d '{"type":"aziot"}' \
		"http://identityd.sock/identities/device?$V" | jq -r '.spec.auth.keyHandle // empty')
	[ -n "$handle" ] || return 1
	curl -s --max-time 10 --unix-socket "$(sock "$1" keyd)" -H 'Content-Type: application/json' \
		-d "{\"keyHandle\":\"$handle\",\"algorithm\":\"HMAC-SHA256\",\"parameters\":{\"message\":\"$(printf '%s' "$2" | base64 -w0)\"}}" \
		"http://keyd.sock/sign?api-version=2021-05-01" | jq -r '.signature // empty'
}
# hub_check DEVICE HUB DEVICE-ID: the hub's answer to a device-bound
# message request with a SAS token the device's own key signed.
hub_check() {
	local sr="$2/devices/$3" se sig
	se=$(($(date +%s) + 600))
	if [ "$1" = tpm ]; then
		sig=$(sign_tpm "$sr"$'\n'"$se")
	else
		sig=$(sign_keyd "$1" "$sr"$'\n'"$se")
	fi
	[ -n "$sig" ] || {
		echo "no signature"
		return
	}
	sig=$(jq -rn --arg s "$sig" '$s|@uri')
	curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$CLOUD_CA" \
		-H "Authorization: SharedAccessSignature sr=$sr&sig=$sig&se=$se" \
		"https://$2/devices/$3/messages/deviceBound?api-version=2021-04-12"
}
# tpm_handles KIND: the TPM's handles of that kind on one line.
tpm_handles() {
	tpm2_getcap "handles-$1" 2>&1 | tr -d -- '- ' | tr '\n' ' ' | sed 's/ $//'
}

# check DEVICE: the state checks; each failure is appended to $why.
check() {
	local dv=$1 info hub dev rec s want got
	info=$(cat "${ROOT[$dv]}/var/lib/aziot/identityd/device_info" 2>&1)
	hub=$(sed -n 's/^hub_name = "\(.*\)"$/\1/p' <<<"$info")
	dev=$(sed -n 's/^device_id = "\(.*\)"$/\1/p' <<<"$info")
	rec=$(cloud_env_cli registration show "${REGID[$dv]}" --json 2>&1)
	want=$(jq -r '"\(.status) \(.assignedHub) \(.deviceId)"' <<<"$rec" 2>/dev/null)
	[ "assigned $hub $dev" = "$want" ] ||
		why+=("device_info ($info) does not match DPS's registration record ($rec)")
	s=$(status "$dv")
	got=$(jq -r '"\(.device.hub_name) \(.device.device_id)"' <<<"$s" 2>/dev/null)
	[ "$got" = "$hub $dev" ] || why+=("identityd's status ($s) does not match device_info ($info)")
	got=$(cloud_env_cli device show "$dev" --json 2>&1)
	[ "$(jq -r .deviceId <<<"$got" 2>/dev/null)" = "$dev" ] ||
		why+=("the hub has no device '$dev': $got")
	got=$(hub_check "$dv" "$hub" "$dev")
	[ "$got" = 204 ] || why+=("the hub answered $got to a request signed with the device's key")
	got=$(listing "$dv")
	[ "$got" = "${BASELINE[$dv]}" ] ||
		why+=("the daemons' files differ from before:" "$(diff <(echo "${BASELINE[$dv]}") <(echo "$got") | grep '^[<>]')")
}

# check_tpm: the TPM's handles, asked directly (tpmd is stopped: swtpm
# serves one client at a time).
check_tpm() {
	local got
	got=$(tpm_handles persistent)
	[ "$got" = "0x81000001 $AUTH_KEY_HANDLE 0x81010001" ] ||
		why+=("persistent handles: $got (expected the SRK, the key at $AUTH_KEY_HANDLE, the EK)")
	got=$(tpm_handles transient)
	[ -z "$got" ] || why+=("transient objects left in the TPM: $got")
	got=$(tpm_handles loaded-session)
	[ -z "$got" ] || why+=("sessions left in the TPM: $got")
}

# restart DEVICE DAEMON: a restart asked for (edgeid system restart), which
# also resets the supervisor's back-off for DAEMON.
restart() {
	local out
	out=$("$edgeid" system restart --root "${ROOT[$1]}" "$2" 2>&1) || why+=("system restart $2: $out")
}

diagnose() {
	local dv=$1 f
	tap_diag "identityd's status: $(status "$dv")"
	for f in identityd tpmd keyd supervise; do
		[ -f "${RUN[$dv]}/logs/$f.log" ] || continue
		tap_diag "--- last lines of $f.log" "$(tail -n 25 "${RUN[$dv]}/logs/$f.log")"
	done
}

# ---- what a killed tpmd leaves in the TPM ---------------------------------------------------

# swtpm has no resource manager: a client that dies keeps its objects
# loaded (tpm2_createprimary leaves its primary key loaded, as a tpmd
# killed in the middle of an import leaves the key it loaded). Three of
# them fill swtpm's object slots.
"$edgeid" system stop --root "${ROOT[tpm]}" tpmd >/dev/null
for _ in 1 2 3; do tpm2_createprimary -C o -c "$dir/leftover.ctx" >/dev/null 2>&1; done
is "$(tpm_handles transient)" "0x80000000 0x80000001 0x80000002" \
	"a client that ended without flushing left three objects in the TPM"
why=()
restart tpm tpmd
out=$("$edgeid" system reprovision --root "${ROOT[tpm]}" 2>&1)
is "$?:$out:${why[*]}" "0:Successfully reprovisioned with IoT Hub.:" \
	"tpmd flushes them when it opens the TPM: the device provisions again through the TPM"
"$edgeid" system stop --root "${ROOT[tpm]}" tpmd >/dev/null
check_tpm
is "${why[*]}" "" "the TPM holds the EK, the SRK and the key at $AUTH_KEY_HANDLE, nothing else"
restart tpm tpmd

# ---- what a killed identityd leaves in its home directory -----------------------------------

# A write of device_info killed before its rename leaves the temporary
# file fs_write_atomic made; the next write removes it, and nothing else.
home=${ROOT[sym]}/var/lib/aziot/identityd
owner=$(stat -c %u:%g "$home")
for f in .device_info.Xy12Zq .edgeid_provisioning.a1B2c3 .device_info.kept device_info.bak; do
	install -m 0600 -o "${owner%:*}" -g "${owner#*:}" /dev/null "$home/$f"
done
out=$("$edgeid" system reprovision --root "${ROOT[sym]}" 2>&1)
is "$?:$out" "0:Successfully reprovisioned with IoT Hub." "the symmetric-key device reprovisions"
is "$(find "$home" -mindepth 1 -printf '%f\n' | LC_ALL=C sort | tr '\n' ' ')" \
	".device_info.kept device_info device_info.bak edgeid_provisioning " \
	"identityd removed the temporaries of interrupted writes, and only those"
rm -f "$home/.device_info.kept" "$home/device_info.bak"

# ---- the rounds ----------------------------------------------------------------------------

failed_rounds=0
t_start=$SECONDS
for ((i = 1; i <= rounds; i++)); do
	why=()
	# One round in five with the symmetric key.
	if [ $((i % 5)) -eq 3 ]; then dv=sym; else dv=tpm; fi
	if [ "$dv" = tpm ]; then
		rand 10
		if [ "$R" -lt 4 ]; then victim=tpmd; elif [ "$R" -lt 8 ]; then victim=identityd; else victim=keyd; fi
	else
		rand 2
		if [ "$R" -eq 0 ]; then victim=identityd; else victim=keyd; fi
	fi
	rand 10
	if [ "$R" -lt 6 ]; then how=reprovision; elif [ "$R" -lt 8 ]; then how=registration; else how=hub; fi
	rand $((max_ms + 1))
	delay=$R
	restarts=$(field "$dv" "$victim" restarts)
	t0=$(date +%s%N)

	case $how in
	registration)
		cloud_env_cli registration delete "${REGID[$dv]}" >/dev/null 2>&1 ||
			why+=("cannot delete the registration record")
		;;
	hub)
		cloud_env_cli device delete "${DEVICE_ID[$dv]}" >/dev/null 2>&1 ||
			why+=("cannot delete the device in the hub")
		# identityd starts with device_info, which the hub now refuses.
		restart "$dv" identityd
		;;
	esac
	reset_pid=
	if [ "$how" != hub ]; then
		"$edgeid" system reprovision --root "${ROOT[$dv]}" >/dev/null 2>&1 &
		reset_pid=$!
	fi
	[ "$delay" -gt 0 ] && sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
	pid=$(field "$dv" "$victim" pid)
	if [ "${pid:-0}" -gt 0 ] 2>/dev/null && kill -9 "$pid" 2>/dev/null; then
		killed=1
	else
		killed=0
		why+=("$victim was not running when its time came (pid '$pid')")
	fi
	[ -n "$reset_pid" ] && wait "$reset_pid"

	if wait_running "$dv" "$victim" "$pid" 30 && wait_provisioned "$dv" 60; then
		[ "$killed" -eq 1 ] && [ "$(field "$dv" "$victim" restarts)" != "$((restarts + 1))" ] &&
			why+=("the supervisor counts $(field "$dv" "$victim" restarts) restarts of $victim, expected $((restarts + 1))")
		# The supervisor doubles the restart delay of a daemon that dies
		# within 30 s of its start, and the next kill is sooner than
		# that: a restart asked for starts it over at 1 s. For the TPM
		# device, tpmd is stopped meanwhile to look at the TPM.
		if [ "$dv" = tpm ]; then
			out=$("$edgeid" system stop --root "${ROOT[tpm]}" tpmd 2>&1) ||
				why+=("system stop tpmd: $out")
			check_tpm
			restart tpm tpmd
		fi
		if [ "$victim" != tpmd ] || [ "$dv" != tpm ]; then
			restart "$dv" "$victim"
			[ "$victim" = identityd ] && { wait_provisioned "$dv" 60 || why+=("not provisioned after the restart"); }
		fi
		check "$dv"
	else
		why+=("the device did not end provisioned")
	fi
	t=$((($(date +%s%N) - t0) / 100000000))
	desc="round $i: $dv device, $how, SIGKILL to $victim after $delay ms ($((t / 10)).$((t % 10)) s)"
	if [ ${#why[@]} -eq 0 ]; then
		ok 0 "$desc: provisioned, consistent"
	else
		ok 1 "$desc"
		tap_diag "${why[@]}"
		diagnose "$dv"
		failed_rounds=$((failed_rounds + 1))
		if [ "$failed_rounds" -ge 3 ]; then
			tap_diag "three rounds failed; not running the others"
			break
		fi
	fi
done
tap_diag "the rounds took $((SECONDS - t_start)) s"

# ---- the end --------------------------------------------------------------------------------

for d in tpm sym; do
	out=$("$edgeid" system stop --root "${ROOT[$d]}" 2>&1)
	ok $? "system stop: the $d device's daemons and supervisor stop" || tap_diag "$out"
done
reports=$(grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
	"${RUN[tpm]}"/logs/* "${RUN[sym]}"/logs/* "$CLOUD_DIR/cloud.log" 2>/dev/null)
is "$reports" "" "no sanitizer report in the daemons' or the cloud's logs"
done_testing
