#!/usr/bin/env bash
# Static checks, each printed as one TAP line: formatting, the banned
# functions of STYLE.md, cppcheck. Run from the repository root.
set -uo pipefail
cd "$(dirname "$0")/.."

n=0
failed=0
result() { # result STATUS NAME [DETAIL-FILE]
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failed=$((failed + 1))
		[ -n "${3:-}" ] && sed 's/^/# /' "$3" | head -n 40
	fi
}

mapfile -t csrc < <(git ls-files -co --exclude-standard -- '*.c' '*.h')
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# 1. clang-format is the formatting authority.
: >"$out"
for f in "${csrc[@]}"; do
	clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || echo "$f: not clang-formatted (run clang-format -i $f)" >>"$out"
done
[ -s "$out" ]
result $((!$?)) "clang-format" "$out"

# 2. Banned functions (STYLE.md): unbounded or unchecked conversions and copies.
banned='\b(atoi|atol|atoll|sscanf|sprintf|vsprintf|strcpy|strcat|gets|strtok|tmpnam|mktemp)[[:space:]]*\('
grep -nE "$banned" "${csrc[@]}" | grep -v 'lint: allow' >"$out"
[ -s "$out" ]
result $((!$?)) "banned functions" "$out"

# 3. cppcheck: real defects only (warnings, portability), not style.
if command -v cppcheck >/dev/null 2>&1; then
	cppcheck --quiet --enable=warning,portability --inline-suppr --error-exitcode=1 \
		--std=c11 -D__GNUC__ -D_GNU_SOURCE -I src -I . \
		--suppress=missingIncludeSystem --suppress=unknownMacro \
		src tests/unit tests/toml tests/fuzz >"$out" 2>&1
	result $? "cppcheck" "$out"
else
	result 1 "cppcheck (not installed: run scripts/install-deps.sh check)"
fi

# 4. Every fd-creating call in the daemons asks for close-on-exec.
grep -nE '\b(open|openat|socket|accept|pipe)\(' $(git ls-files -co --exclude-standard -- 'src/*.c') 2>/dev/null |
	grep -vE 'O_CLOEXEC|SOCK_CLOEXEC|accept4|pipe2|lint: allow' >"$out"
[ -s "$out" ]
result $((!$?)) "O_CLOEXEC on every fd" "$out"

echo "1..$n"
[ "$failed" -eq 0 ]
