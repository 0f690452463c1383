#!/usr/bin/env bash
# The DPS registration benchmark (bench/README.md): a throwaway PKI and
# config (tests/lib/cloud-env.sh), one store with 10 thousand and one with
# 1 million enrollments (dps-populate), edgeid-cloud serve with as many
# workers as CPUs, and dps-load registering symmetric-key and TPM devices
# against it, three runs per kind and size:
#   capacity     closed loop, BENCH_*_INFLIGHT devices registering at once,
#                each polling every BENCH_POLL_MS: how many registrations
#                per second the server completes (the throughput figure);
#   latency      open loop at a fixed rate, polling every BENCH_POLL_MS:
#                the server's own latency at that load (the p99 figure);
#   Retry-After  open loop at the same rate, devices waiting Retry-After
#                between polls as real clients do: what devices see.
# The fixed rate is the target (2000/s symmetric key, 500/s TPM), or 70%
# of the median capacity at the first size when that is lower, so that both
# sizes are compared at the same load below saturation.
# Before every run the server is stopped, the registration records and hub
# devices are deleted and the server is started again on the run's store,
# so every run registers devices for the first time. Every run is
# repeated BENCH_REPEAT times, the sizes interleaved (all capacity runs
# first), and the figures compared with the targets are the medians.
#
# Writes bench/out/dps-YYYYmmdd-HHMMSS.md and prints its summary. Prints
# numbers only: it never fails on timing. Exit status 0, 1 when the setup
# failed (nothing measured), 2 on bad usage.
#
# Needs: a build (ninja -C build), openssl, and permission to listen on
# port 443 (root or CAP_NET_BIND_SERVICE). Everything stays on loopback.
# Knobs (environment):
#   BENCH_SIZES="10000 1000000"   enrollments in the store (20% TPM)
#   BENCH_SYM_DEVICES=8000 BENCH_TPM_DEVICES=2000   devices per run
#   BENCH_REPEAT=5
#   BENCH_CONNECTIONS=64          keep-alive TLS connections
#   BENCH_SYM_INFLIGHT=128 BENCH_TPM_INFLIGHT=64    (capacity runs)
#   BENCH_SYM_RATE BENCH_TPM_RATE the fixed rate (default: see above)
#   BENCH_POLL_MS=20
#   BENCH_WORKERS=$(nproc)        workers per service
#   BENCH_STORE_QUERY=""          appended to the SQLite URL, e.g.
#                                 "?synchronous=normal" for an experiment
#   BENCH_NICE=0                  nice value for the server and the client
#                                 (root may give e.g. -10 to be less
#                                 disturbed by other work on the machine)
#   BENCH_RUN_MAX_SECONDS=60 BENCH_BUDGET_SECONDS=840
#   BENCH_OUT=bench/out  EDGEID_BUILD_ROOT=build
set -uo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${EDGEID_BUILD_ROOT:-$src/build}
export EDGEID_SOURCE_ROOT=$src EDGEID_BUILD_ROOT=$build

sizes=${BENCH_SIZES:-"10000 1000000"}
sym_devices=${BENCH_SYM_DEVICES:-8000}
tpm_devices=${BENCH_TPM_DEVICES:-2000}
repeat=${BENCH_REPEAT:-5}
connections=${BENCH_CONNECTIONS:-64}
sym_inflight=${BENCH_SYM_INFLIGHT:-128}
tpm_inflight=${BENCH_TPM_INFLIGHT:-64}
sym_rate=${BENCH_SYM_RATE:-}
tpm_rate=${BENCH_TPM_RATE:-}
poll_ms=${BENCH_POLL_MS:-20}
nice_value=${BENCH_NICE:-0}
workers=${BENCH_WORKERS:-$(nproc)}
store_query=${BENCH_STORE_QUERY:-}
run_max=${BENCH_RUN_MAX_SECONDS:-60}
budget=${BENCH_BUDGET_SECONDS:-840}
outdir=${BENCH_OUT:-$src/bench/out}
sym_target=2000
tpm_target=500

load=$build/bench/dps-load
populate=$build/bench/dps-populate
for prog in "$load" "$populate" "$build/edgeid-cloud"; do
	if [ ! -x "$prog" ]; then
		echo "run-dps: $prog is missing; build first (ninja -C $build)" >&2
		exit 2
	fi
done
for n in $sizes $sym_devices $tpm_devices $repeat $connections $sym_inflight $tpm_inflight \
	${sym_rate:-1} ${tpm_rate:-1} $poll_ms $workers $run_max $budget "${nice_value#-}"; do
	case $n in
	'' | *[!0-9]*)
		echo "run-dps: \"$n\" is not a number (see the knobs at the top of $0)" >&2
		exit 2
		;;
	esac
done
if [ "$repeat" -lt 1 ] || [ -z "${sizes// /}" ]; then
	echo "run-dps: BENCH_REPEAT must be at least 1 and BENCH_SIZES not empty" >&2
	exit 2
fi
if [ "$nice_value" != 0 ] && ! renice -n "$nice_value" -p $$ >/dev/null; then
	echo "run-dps: cannot set the nice value $nice_value" >&2
	exit 2
fi

# shellcheck source=../tests/lib/cloud-env.sh
. "$src/tests/lib/cloud-env.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/edgeid-bench.XXXXXX") || exit 1
cleanup() {
	cloud_env_stop >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stamp=$(date +%Y%m%d-%H%M%S)
mkdir -p "$outdir" || exit 1
report=$outdir/dps-$stamp.md
rows=$tmp/rows.md
details=$tmp/details.txt
notes=$tmp/notes.md
: >"$rows"
: >"$details"
: >"$notes"

say() { printf 'run-dps: %s\n' "$*" >&2; }

# json_num FILE KEY: a top-level number of a dps-load --json file.
json_num() {
	sed -n "s/^  \"$2\": \([-0-9.eE+]*\),\{0,1\}\$/\1/p" "$1"
}

# median KEY FILE...: the median of KEY over the files that exist.
median() {
	local key=$1 f
	shift
	for f in "$@"; do
		[ -s "$f" ] && json_num "$f" "$key"
	done | sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) exit
		print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
	}'
}

# quiet FILE...: the files of runs during which other processes kept at
# most quiet_cpus CPUs busy.
quiet_cpus=0.1
quiet() {
	local f o
	for f in "$@"; do
		[ -s "$f" ] || continue
		o=$(json_num "$f" other_processes_cpus)
		awk -v o="${o:-1}" -v q="$quiet_cpus" 'BEGIN { exit !(o <= q) }' && echo "$f"
	done
}

human() { # 10000 -> 10k, 1000000 -> 1M
	if [ "$1" -ge 1000000 ] && [ $(($1 % 1000000)) -eq 0 ]; then
		echo "$(($1 / 1000000))M"
	elif [ "$1" -ge 1000 ] && [ $(($1 % 1000)) -eq 0 ]; then
		echo "$(($1 / 1000))k"
	else
		echo "$1"
	fi
}

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
[ -n "$cpu_model" ] || cpu_model=$(uname -m)
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$src" status --porcelain 2>/dev/null | head -n 1)" ]; then
	commit="$commit with uncommitted changes"
fi
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

say "setting up in $tmp ($(nproc) CPUs: $cpu_model)"
CLOUD_ENV_WORKERS=$workers
export CLOUD_ENV_WORKERS
if ! { cloud_env_pki "$tmp" && cloud_env_config "$tmp" && cloud_env_export; }; then
	say "the PKI or config could not be made"
	exit 1
fi

say "generating the TPM pool (16 EK/SRK pairs of RSA-2048 keys)"
if ! "$populate" keys --tpm-keys "$tmp/tpm-pool.pem" --tpm-pairs 16 >/dev/null; then
	say "cannot make the TPM pool"
	exit 1
fi

# store_url SIZE-LABEL: the SQLite URL of that size's store.
store_url() {
	echo "sqlite://$tmp/store-$1.db$store_query"
}

populated=""
for size in $sizes; do
	h=$(human "$size")
	tpm_n=$((size / 5))
	sym_n=$((size - tpm_n))
	say "populating $size enrollments ($sym_n symmetric-key, $tpm_n TPM)"
	start=$SECONDS
	if ! out=$("$populate" enroll --store "$(store_url "$h")" --sym "$sym_n" --tpm "$tpm_n" \
		--tpm-keys "$tmp/tpm-pool.pem" 2>&1); then
		say "populating failed: $out"
		exit 1
	fi
	populated="$populated
- $h: $sym_n symmetric-key and $tpm_n TPM enrollments in $((SECONDS - start)) s (database $(du -sh "$tmp/store-$h.db" | cut -f1))."
done

# run_one NAME LABEL STORE KIND COUNT STRIDE ARGS...: one dps-load run on a
# reset store and a freshly started server.
run_one() {
	local name=$1 label=$2 url=$3 kind=$4 count=$5 stride=$6 out
	shift 6
	if [ $((SECONDS + run_max + 30)) -gt "$budget" ]; then
		say "skipping \"$label\": the time budget (${budget} s) is spent"
		printf -- '- "%s" skipped: the time budget of %s s was spent.\n' "$label" \
			"$budget" >>"$notes"
		return
	fi
	cloud_env_stop >/dev/null 2>&1
	sed -i "s|^url = \".*\"\$|url = \"$url\"|" "$CLOUD_CONFIG" || return
	if ! out=$("$populate" reset --store "$url" --hub "$CLOUD_HUB_HOST" 2>&1); then
		say "reset failed: $out"
		return
	fi
	if ! cloud_env_start 60; then
		say "edgeid-cloud did not start for \"$label\""
		printf -- '- "%s": edgeid-cloud did not start.\n' "$label" >>"$notes"
		return
	fi
	say "$label"
	"$load" --kind "$kind" --ca "$CLOUD_CA" --host "$CLOUD_DPS_HOST" \
		--id-scope "$CLOUD_DPS_ID_SCOPE" --tpm-keys "$tmp/tpm-pool.pem" \
		--count "$count" --stride "$stride" --connections "$connections" \
		--max-seconds "$run_max" --verify-store "$url" --server-pid "$CLOUD_PID" \
		--json "$tmp/$name.json" --md-row "$rows" --label "$label" "$@" \
		>"$tmp/$name.txt" 2>&1
	sed 's/^/    /' "$tmp/$name.txt" >&2
	{
		printf '### %s\n\n```\n' "$label"
		cat "$tmp/$name.txt"
		printf '```\n\n'
	} >>"$details"
}

# rate_for KIND: the fixed rate of the latency and Retry-After runs.
rate_for() {
	local kind=$1 given target cap
	if [ "$kind" = sym ]; then
		given=$sym_rate target=$sym_target
	else
		given=$tpm_rate target=$tpm_target
	fi
	if [ -n "$given" ]; then
		echo "$given"
		return
	fi
	cap=$(median registrations_per_s "$tmp/$kind-$(human "${sizes%% *}")-capacity"-*.json)
	awk -v c="${cap:-0}" -v t="$target" 'BEGIN {
		r = int(c * 0.7 / 10) * 10
		print (r > 0 && r < t) ? r : t
	}'
}

# runs_for KIND SIZE REPEAT PHASE: the capacity run (phase 1) or the
# latency and Retry-After runs (phase 2) of a kind on a size's store.
runs_for() {
	local kind=$1 size=$2 r=$3 phase=$4 h enrolled devices inflight n stride rate name url
	local flight
	h=$(human "$size")
	url=$(store_url "$h")
	if [ "$kind" = sym ]; then
		enrolled=$((size - size / 5)) devices=$sym_devices inflight=$sym_inflight name=sym
	else
		enrolled=$((size / 5)) devices=$tpm_devices inflight=$tpm_inflight name=TPM
	fi
	n=$((devices < enrolled ? devices : enrolled))
	[ "$n" -gt 0 ] || return
	stride=$((enrolled / n))
	flight=$((n < 20000 ? n : 20000))
	if [ "$phase" = 1 ]; then
		run_one "$kind-$h-capacity-$r" "$name, $h, capacity (poll ${poll_ms} ms) #$r" \
			"$url" "$kind" "$n" "$stride" --poll-ms "$poll_ms" --inflight "$inflight"
		return
	fi
	rate=$(rate_for "$kind")
	run_one "$kind-$h-latency-$r" "$name, $h, ${rate}/s, poll ${poll_ms} ms #$r" "$url" \
		"$kind" "$n" "$stride" --poll-ms "$poll_ms" --rate "$rate" --inflight "$flight"
	run_one "$kind-$h-ra-$r" "$name, $h, ${rate}/s, Retry-After #$r" "$url" "$kind" "$n" \
		"$stride" --rate "$rate" --inflight "$flight"
}

# The capacity runs first: the fixed rate comes from their medians.
for phase in 1 2; do
	for r in $(seq 1 "$repeat"); do
		for size in $sizes; do
			runs_for sym "$size" "$r" "$phase"
			runs_for tpm "$size" "$r" "$phase"
		done
	done
done
cloud_env_stop >/dev/null 2>&1

# The medians of each kind, size and mode, as a table: over all runs, and
# over the quiet runs (see quiet()).
summary() {
	local kind h mode label files quiet_files
	printf '| kind | enrollments | run | runs | reg/s | p50 ms | p90 ms | p99 ms | max ms | other processes | quiet runs | reg/s (quiet) | p99 ms (quiet) |\n'
	printf '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
	for kind in sym tpm; do
		for size in $sizes; do
			h=$(human "$size")
			for mode in capacity latency ra; do
				files=("$tmp/$kind-$h-$mode"-*.json)
				[ -s "${files[0]}" ] || continue
				mapfile -t quiet_files < <(quiet "${files[@]}")
				case $mode in
				capacity) label="capacity (poll $poll_ms ms)" ;;
				latency) label="$(rate_for "$kind")/s, poll $poll_ms ms" ;;
				ra) label="$(rate_for "$kind")/s, Retry-After" ;;
				esac
				printf '| %s | %s | %s | %s | %.0f | %.1f | %.1f | %.1f | %.1f | %.2f CPUs | %s | %s | %s |\n' \
					"$kind" "$h" "$label" "${#files[@]}" \
					"$(median registrations_per_s "${files[@]}")" \
					"$(median p50_ms "${files[@]}")" "$(median p90_ms "${files[@]}")" \
					"$(median p99_ms "${files[@]}")" "$(median max_ms "${files[@]}")" \
					"$(median other_processes_cpus "${files[@]}")" "${#quiet_files[@]}" \
					"$(median registrations_per_s "${quiet_files[@]}" | awk '{ printf "%.0f", $1 }')" \
					"$(median p99_ms "${quiet_files[@]}" | awk '{ printf "%.1f", $1 }')"
			done
		done
	done
}

# target_lines WHICH: the targets of the provisioning issue, from the
# medians of all runs (WHICH=all) or of the quiet runs (WHICH=quiet).
target_lines() {
	local which=$1 kind h rate target first_size last_size mode p1 p2 files
	first_size=$(human "${sizes%% *}")
	last_size=$(human "${sizes##* }")
	# pick MODE SIZE-LABEL: the files of those runs that count.
	pick() {
		local all=("$tmp/$kind-$2-$1"-*.json)
		if [ "$which" = quiet ]; then quiet "${all[@]}"; else printf '%s\n' "${all[@]}"; fi
	}
	for kind in sym tpm; do
		if [ "$kind" = sym ]; then target=$sym_target; else target=$tpm_target; fi
		for size in $sizes; do
			h=$(human "$size")
			mapfile -t files < <(pick capacity "$h")
			rate=$(median registrations_per_s "${files[@]}")
			[ -n "$rate" ] || continue
			awk -v k="$kind" -v h="$h" -v r="$rate" -v t="$target" -v n="${#files[@]}" 'BEGIN {
				printf("- %s, %s enrollments: %.0f registrations/s (capacity, median of %d) %s the target of %d/s.\n",
				       k, h, r, n, r >= t ? "meets" : "is below", t)
			}'
		done
		[ "$first_size" != "$last_size" ] || continue
		for mode in latency ra; do
			mapfile -t files < <(pick "$mode" "$first_size")
			p1=$(median p99_ms "${files[@]}")
			mapfile -t files < <(pick "$mode" "$last_size")
			p2=$(median p99_ms "${files[@]}")
			if [ -z "$p1" ] || [ -z "$p2" ]; then
				continue
			fi
			awk -v k="$kind" -v m="$mode" -v s1="$first_size" -v s2="$last_size" \
				-v p1="$p1" -v p2="$p2" 'BEGIN {
				ratio = p1 > 0 ? p2 / p1 : 0
				printf("- %s, %s runs: p99 %.1f ms at %s, %.1f ms at %s (medians): ratio %.2f, %s the target of at most 2.\n",
				       k, m == "ra" ? "Retry-After" : "latency", p1, s1, p2, s2, ratio,
				       ratio <= 2 ? "meets" : "above")
			}'
		done
	done
}

{
	printf '# DPS registration benchmark, %s\n\n' "$(date '+%Y-%m-%d %H:%M:%S %Z')"
	printf 'Machine: %s CPUs (%s), %s RAM, Linux %s; load average before the runs: %s.\n' \
		"$(nproc)" "$cpu_model" "$mem" "$(uname -r)" "$load_before"
	printf 'Source: %s. Build: %s.\n\n' "$commit" "$build"
	# shellcheck disable=SC2016
	printf 'Server: `edgeid-cloud serve`, DPS and hub with %s workers each, SQLite store `%s` ' \
		"$workers" "${store_query:-(defaults: WAL, synchronous=full)}"
	printf '(the DPS defaults otherwise: retry_after 1 s, 16 assignment threads per worker).\n'
	# shellcheck disable=SC2016
	printf 'Client: `dps-load`, %s keep-alive TLS connections on loopback, one thread. ' \
		"$connections"
	printf 'Latency: from the first PUT of a device to its 200 "assigned". '
	printf 'reg/s: between the 10th and 90th percentile of completions.\n'
	printf 'Capacity runs: closed loop, %s sym / %s TPM devices in flight, polling every %s ms. ' \
		"$sym_inflight" "$tpm_inflight" "$poll_ms"
	printf 'Latency runs: devices started at the rate shown, polling every %s ms. ' "$poll_ms"
	printf 'Retry-After runs: the same rate, waiting Retry-After between polls. '
	printf '%s devices per symmetric-key run, %s per TPM run, %s repetitions. ' \
		"$sym_devices" "$tpm_devices" "$repeat"
	printf 'Nice value of server and client: %s.\n\n' "$nice_value"
	printf 'Stores:%s\n\n' "$populated"
	printf '## Summary (medians)\n\n'
	summary
	printf '\nother processes: how many CPUs work other than server and client kept busy '
	printf '(median). Quiet runs: those with at most %s.\n' "$quiet_cpus"
	printf '\n## Targets (all runs)\n\n'
	target_lines all
	printf '\n## Targets (quiet runs only)\n\n'
	target_lines quiet
	if [ -s "$notes" ]; then
		printf '\n## Notes\n\n'
		cat "$notes"
	fi
	printf '\n## Every run\n\n'
	printf 'other processes: CPUs busy with work other than server and client during the run.\n\n'
	printf '| run | reg/s | p50 ms | p90 ms | p99 ms | max ms | assigned | errors | polls/reg | server CPU ms/reg | client CPU ms/reg | other processes | hub devices |\n'
	printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
	cat "$rows"
	printf '\n## Output of each run\n\n'
	cat "$details"
} >"$report"

printf '\n'
sed -n '1,/^## Every run/p' "$report" | sed '$d'
printf 'Report: %s\n' "$report"
