#!/usr/bin/env bash
# `make check`: every test tier CI runs, in order, then one closing line
# "N passed, N failed". Exit status 0 only when nothing failed.
#
#   lint       clang-format, banned functions, cppcheck
#   gcc        hardened gcc build; unit and integration suites
#   asan       clang build with ASan+UBSan; unit and integration suites
#   fuzz       each libFuzzer harness for FUZZ_SECONDS (default 20) on its corpus
#
# CHECK_STAGES="lint gcc" limits the run to some stages.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

stages=${CHECK_STAGES:-lint gcc asan fuzz}
fuzz_seconds=${FUZZ_SECONDS:-20}
jobs=$(nproc 2>/dev/null || echo 2)
logdir=$root/build-logs
mkdir -p "$logdir"

total_pass=0
total_fail=0
total_skip=0
summary=()

add() { # add STAGE PASSED FAILED SKIPPED
	total_pass=$((total_pass + $2))
	total_fail=$((total_fail + $3))
	total_skip=$((total_skip + $4))
	summary+=("$(printf '%-6s %5d passed, %d failed, %d skipped' "$1" "$2" "$3" "$4")")
}

count_tap() { # count_tap FILE -> "passed failed skipped"
	local p f s
	p=$(grep -cE '^ok ' "$1")
	f=$(grep -cE '^not ok ' "$1")
	s=$(grep -ciE '^ok .*# *skip' "$1")
	echo "$((p - s)) $f $s"
}

setup() { # setup DIR [meson args...]
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >"$logdir/$(basename "$dir")-setup.log" 2>&1 || {
			cat "$logdir/$(basename "$dir")-setup.log"
			return 1
		}
	fi
	ninja -C "$dir" >"$logdir/$(basename "$dir")-build.log" 2>&1 || {
		grep -E 'error|FAILED' "$logdir/$(basename "$dir")-build.log" | head -n 30
		return 1
	}
}

run_suites() { # run_suites STAGE DIR
	local stage=$1 dir=$2 counts
	rm -f "$dir/meson-logs/testlog.json"
	meson test -C "$dir" --num-processes "$jobs" --print-errorlogs \
		>"$logdir/$stage-test.log" 2>&1
	grep -E '^ *[0-9]+/[0-9]+ ' "$logdir/$stage-test.log" | sed "s/^/[$stage] /"
	if [ -f "$dir/meson-logs/testlog.json" ]; then
		counts=$(python3 scripts/tap-count.py "$dir/meson-logs/testlog.json" 2>"$logdir/$stage-failures.log")
		sed "s/^/[$stage] /" "$logdir/$stage-failures.log"
		# shellcheck disable=SC2086
		add "$stage" $counts
	else
		add "$stage" 0 1 0
	fi
}

for stage in $stages; do
	echo "== $stage"
	case "$stage" in
	lint)
		bash scripts/lint.sh | tee "$logdir/lint.log"
		# shellcheck disable=SC2046
		add lint $(count_tap "$logdir/lint.log")
		;;
	gcc)
		if CC=gcc setup build; then
			run_suites gcc build
		else
			add gcc 0 1 0
		fi
		;;
	asan)
		if CC=clang setup build-asan -Db_sanitize=address,undefined -Db_lundef=false \
			-Dbuildtype=debug -Doptimization=1; then
			ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
				UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
				run_suites asan build-asan
		else
			add asan 0 1 0
		fi
		;;
	fuzz)
		if CC=clang setup build-fuzz -Dfuzz=true -Dtests=disabled -Db_lundef=false \
			-Dbuildtype=debug -Doptimization=1; then
			p=0
			f=0
			for h in build-fuzz/tests/fuzz/fuzz_*; do
				[ -f "$h" ] && [ -x "$h" ] || continue
				name=$(basename "$h")
				work=$(mktemp -d)
				seeds=tests/fuzz/corpus/${name#fuzz_}
				[ -d "$seeds" ] && cp -r "$seeds/." "$work/"
				# The config fuzzer starts from the real aziot configs.
				if [ "$name" = fuzz_config ] && [ -d ../shared/conformance/aziot-config/cases ]; then
					for c in ../shared/conformance/aziot-config/cases/*/config.toml; do
						cp "$c" "$work/$(basename "$(dirname "$c")").toml"
					done
				fi
				if "$h" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 \
					-artifact_prefix="$logdir/$name-" "$work" \
					>"$logdir/$name.log" 2>&1; then
					echo "ok - $name ran ${fuzz_seconds}s without a finding"
					p=$((p + 1))
				else
					echo "not ok - $name: see $logdir/$name.log"
					tail -n 20 "$logdir/$name.log"
					f=$((f + 1))
				fi
				rm -rf "$work"
			done
			if [ $((p + f)) -eq 0 ]; then
				echo "not ok - no fuzz harness was built (build-fuzz/tests/fuzz/fuzz_*)"
				f=1
			fi
			add fuzz "$p" "$f" 0
		else
			add fuzz 0 1 0
		fi
		;;
	*)
		echo "check: unknown stage $stage" >&2
		add "$stage" 0 1 0
		;;
	esac
done

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
if [ "$total_skip" -gt 0 ]; then
	echo "$total_pass passed, $total_fail failed, $total_skip skipped"
else
	echo "$total_pass passed, $total_fail failed"
fi
[ "$total_fail" -eq 0 ]
