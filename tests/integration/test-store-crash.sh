#!/usr/bin/env bash
# Crash safety of the SQLite store. In each round two writers (one
# committing every registration, one committing sixteen at a time) insert
# enrollments, registration records and hub devices into one database as
# fast as they can; each prints a key only after the commit that wrote it
# returned. Both are SIGKILLed at random moments (the first round usually
# in the middle of creating the database and its schema). After every
# round the database is reopened and every key acknowledged so far, in
# any round, must be there with exactly the content written, and the
# database must pass its integrity check.
#
# SIGKILL tests what a process crash can do (torn transactions, a writer
# dying with the lock held, recovery of the WAL by the next opener), not a
# power cut: the page cache survives here. synchronous=FULL is what
# covers power loss; see src/cloud/store/store_sqlite.c.
#
# STORE_CRASH_ROUNDS (default 10) and STORE_CRASH_SEED make a run repeatable
# in its timing choices.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
tool=${STORE_LOAD_TOOL:-$EDGEID_BUILD_ROOT/store-load-tool}
rounds=${STORE_CRASH_ROUNDS:-10}
seed=${STORE_CRASH_SEED:-$$}

if [ ! -x "$tool" ]; then
	ok 1 "store-load-tool is built at $tool"
	tap_diag "it is built from tests/integration/store-load-tool.c by the top-level meson.build"
	done_testing
	exit
fi

dir=$(mktemp -d)
writers=()
cleanup() {
	local p
	for p in "${writers[@]}"; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$dir"
}
trap cleanup EXIT

db=$dir/store.db
RANDOM=$seed
tap_diag "seed $seed (set STORE_CRASH_SEED to repeat the timing)"

# Random delay in seconds, from $1 to $2 milliseconds.
pause() {
	local ms=$(($1 + RANDOM % ($2 - $1 + 1)))
	sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
}

for round in $(seq 1 "$rounds"); do
	a=$dir/acked-$round-a
	b=$dir/acked-$round-b
	# The same file by URL and by plain path.
	"$tool" load "sqlite://$db" "r$round-a" 1 >"$a" 2>"$dir/err-$round-a" &
	pa=$!
	"$tool" load "$db" "r$round-b" 16 >"$b" 2>"$dir/err-$round-b" &
	pb=$!
	writers=("$pa" "$pb")
	if [ "$round" -eq 1 ]; then
		pause 5 60
	else
		pause 80 700
	fi
	# Reaped at once, so that the shell's "Killed" notice goes to the
	# wait's stderr.
	kill -KILL "$pa"
	wait "$pa" 2>/dev/null
	sa=$?
	pause 0 200
	kill -KILL "$pb"
	wait "$pb" 2>/dev/null
	sb=$?
	writers=()
	# 137 = killed by SIGKILL: neither gave up on an error of its own.
	is "$sa $sb" "137 137" "round $round: both writers were still writing when killed"
	cat "$dir/err-$round-a" "$dir/err-$round-b" | head -n 5 | sed 's/^/# /'

	out=$("$tool" verify "$db" "$dir"/acked-* 2>&1)
	status=$?
	ok "$status" "round $round: $(wc -l <"$a") + $(wc -l <"$b") keys acknowledged;" \
		"all so far present and intact (${out##*$'\n'})"
	[ "$status" -eq 0 ] && continue
	printf '%s\n' "$out" | head -n 20 | sed 's/^/# /'
done

total=$(cat "$dir"/acked-* | wc -l)
ok $((total < 200)) "$total keys acknowledged over $rounds rounds (a test that wrote nothing proves nothing)"

if command -v sqlite3 >/dev/null 2>&1; then
	is "$(sqlite3 "$db" 'PRAGMA integrity_check' 2>&1)" "ok" "the sqlite3 shell finds the database intact"
	is "$(sqlite3 "$db" 'SELECT max(version) FROM schema_version' 2>&1)" "1" \
		"the schema was created once and completely"
fi

done_testing
