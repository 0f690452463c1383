#!/usr/bin/env bash
# The edgeid command line as a user meets it: help, version, usage errors,
# and man pages that render without warnings.
set -uo pipefail
. "$EDGEID_SOURCE_ROOT/tests/lib/tap.sh"
edgeid=$EDGEID_BUILD_ROOT/edgeid
src=$EDGEID_SOURCE_ROOT

out=$("$edgeid" --help)
ok $? "edgeid --help exits 0"
lines=$(printf '%s\n' "$out" | wc -l)
width=$(printf '%s\n' "$out" | awk '{ if (length > w) w = length } END { print w }')
ok $((lines > 24)) "--help fits a 24-line screen ($lines lines)"
ok $((width > 80)) "--help fits 80 columns ($width)"
like "$out" '^Usage: edgeid ' "--help starts with the usage line"
like "$out" "^  config +validate, apply and show config.toml$" "--help lists the config command"
like "$("$edgeid" config --help)" "apply +validate config.toml" "config --help lists apply"

is "$("$edgeid" version)" "edgeid $(sed -n "s/^ *version : '\(.*\)',/\1/p" "$src/meson.build")" \
	"version matches meson.build"
is "$("$edgeid" --version)" "$("$edgeid" version)" "--version is the same as version"

err=$("$edgeid" frobnicate 2>&1 >/dev/null)
is $? 2 "unknown command exits 2"
is "$err" "edgeid: unknown command 'frobnicate'
Try 'edgeid --help'." "unknown command message"

err=$("$edgeid" --frob 2>&1 >/dev/null)
is $? 2 "unknown option exits 2"
is "$err" "edgeid: unknown option '--frob'
Try 'edgeid --help'." "unknown option message"

"$edgeid" >/dev/null 2>&1
is $? 2 "no command is a usage error"

# Option errors of the daemons name the option as written, long or short.
edgeidd=$EDGEID_BUILD_ROOT/edgeidd
is "$("$edgeidd" supervise --root 2>&1 >/dev/null)" "edgeidd supervise: --root: unknown option or missing argument
Try 'edgeidd supervise --help'." "a long option missing its argument is named"
is "$("$edgeidd" keyd -x 2>&1 >/dev/null)" "edgeidd keyd: option -x: unknown or missing its argument
Try 'edgeidd keyd --help'." "an unknown short option is named"
is "$("$edgeidd" keyd stray 2>&1 >/dev/null)" "edgeidd keyd: unexpected argument 'stray'
Try 'edgeidd keyd --help'." "a stray operand is refused"

for page in "$src"/docs/man/*.[0-9]; do
	warnings=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$page" 2>&1)
	is "$warnings" "" "man page $(basename "$page") renders without warnings"
done

done_testing
