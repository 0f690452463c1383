# TAP helpers for shell integration tests. Source it, call ok/fail/is,
# then done_testing. Each assertion prints one TAP line.
# shellcheck shell=bash

TAP_N=0
TAP_FAILED=0

tap_diag() {
	printf '%s\n' "$@" | sed 's/^/# /'
}

ok() { # ok CONDITION-EXIT-STATUS DESCRIPTION
	local status=$1
	shift
	TAP_N=$((TAP_N + 1))
	if [ "$status" -eq 0 ]; then
		echo "ok $TAP_N - $*"
	else
		echo "not ok $TAP_N - $*"
		TAP_FAILED=$((TAP_FAILED + 1))
	fi
}

is() { # is GOT EXPECTED DESCRIPTION
	local got=$1 expected=$2
	shift 2
	if [ "$got" = "$expected" ]; then
		ok 0 "$*"
	else
		ok 1 "$*"
		tap_diag "expected: $expected" "     got: $got"
	fi
}

# A one-line REGEX matches when some line of GOT matches it (grep -E). A
# REGEX of several lines is one pattern for the whole of GOT (grep would
# take each of its lines as an alternative): ^ and $ are then GOT's start
# and end.
like() { # like GOT EXTENDED-REGEX DESCRIPTION
	local got=$1 re=$2 hit=1
	shift 2
	if [[ $re == *$'\n'* ]]; then
		[[ $got =~ $re ]] && hit=0
	else
		grep -Eq -- "$re" <<<"$got" && hit=0
	fi
	if [ "$hit" -eq 0 ]; then
		ok 0 "$*"
	else
		ok 1 "$*"
		tap_diag "expected to match: $re" "got: $got"
	fi
}

done_testing() {
	echo "1..$TAP_N"
	[ "$TAP_FAILED" -eq 0 ]
}
