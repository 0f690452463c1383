#!/usr/bin/env bash
# The shipped programs carry the hardening the build promises: PIE, full
# RELRO (GNU_RELRO segment + BIND_NOW), non-executable stack, stack
# protector and fortified libc calls.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"

for prog in edgeid edgeidd edgeid-cloud; do
	bin=$EDGEID_BUILD_ROOT/$prog
	hdr=$(readelf -h "$bin")
	like "$hdr" 'Type:[[:space:]]+DYN' "$prog is position-independent (ELF type DYN)"
	seg=$(readelf -lW "$bin")
	like "$seg" 'GNU_RELRO' "$prog has a RELRO segment"
	stack=$(printf '%s\n' "$seg" | awk '/GNU_STACK/ { print $7 }')
	is "$stack" "RW" "$prog has a non-executable stack"
	dyn=$(readelf -dW "$bin")
	like "$dyn" 'BIND_NOW|FLAGS_1.*NOW' "$prog binds symbols at start-up (full RELRO)"
	syms=$(readelf -sW "$bin")
	# Sanitizer builds instrument memory accesses instead of using the
	# stack protector and fortified calls; check those in optimised builds.
	if grep -q '__asan_init' <<<"$syms"; then
		ok 0 "$prog: stack protector check skipped in a sanitizer build # SKIP asan"
		ok 0 "$prog: fortify check skipped in a sanitizer build # SKIP asan"
	else
		like "$syms" '__stack_chk_fail' "$prog is built with the stack protector"
		like "$syms" '__[a-z]+_chk@' "$prog calls fortified libc functions (_FORTIFY_SOURCE)"
	fi
done

done_testing
