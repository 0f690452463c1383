#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Run the toml-test cases against build/toml-decoder and print TAP.

Every tests/valid/**/X.toml must decode (exit 0, nothing on stderr) to
the tagged JSON in X.json; every tests/invalid/**/X.toml must be rejected
with exit status 1 and exactly one line on stderr of the form
"NAME:LINE:COL: message".

Comparison follows the suite's README: tables and arrays structurally,
integers and floats numerically (nan equals nan, "+inf" equals "inf"),
offset date-times as instants, local date/times as text after
normalising ('T' separator, upper case, no trailing zeros in the
fraction of a second), strings and booleans exactly.

The decoder is $EDGEID_BUILD_ROOT/toml-decoder unless --decoder names
another; the cases are under $EDGEID_SHARED/toml-test/tests, by default
$EDGEID_SOURCE_ROOT/../shared/toml-test/tests, unless --tests names them.
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys

MESSAGE_RE = re.compile(r"^.+:[0-9]+:[0-9]+: \S.*$")
OFFSET_DT_RE = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)


def days_from_civil(y, m, d):
    """Days since 1970-01-01 in the proleptic Gregorian calendar (any year,
    including 0000, which Python's datetime cannot represent)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def instant(text):
    """An offset date-time as (seconds since the epoch in UTC, fraction
    digits without trailing zeros), or None when it does not parse."""
    m = OFFSET_DT_RE.match(text)
    if not m:
        return None
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    frac = (m.group(7) or "").rstrip("0")
    off = m.group(8)
    offset = 0
    if off not in ("Z", "z"):
        sign = -1 if off[0] == "-" else 1
        offset = sign * (int(off[1:3]) * 3600 + int(off[4:6]) * 60)
    secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset
    return (secs, frac)


def normalise_local(text):
    text = text.upper().replace(" ", "T")
    if "." in text:
        whole, frac = text.split(".", 1)
        frac = frac.rstrip("0")
        text = whole + ("." + frac if frac else "")
    return text


def parse_float(text):
    return float(text.replace("_", ""))


def is_leaf(x):
    return (
        isinstance(x, dict)
        and set(x) == {"type", "value"}
        and isinstance(x["type"], str)
        and isinstance(x["value"], str)
    )


def describe(x):
    if is_leaf(x):
        return "%s %s" % (x["type"], json.dumps(x["value"]))
    if isinstance(x, dict):
        return "a table"
    if isinstance(x, list):
        return "an array"
    return json.dumps(x)


def leaf_equal(exp, got):
    t = exp["type"]
    a, b = exp["value"], got["value"]
    if t == "integer":
        return int(a.replace("_", "")) == int(b.replace("_", ""))
    if t == "float":
        fa, fb = parse_float(a), parse_float(b)
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        return fa == fb
    if t == "datetime":
        ia, ib = instant(a), instant(b)
        return ia is not None and ia == ib
    if t in ("datetime-local", "date-local", "time-local"):
        return normalise_local(a) == normalise_local(b)
    return a == b


def compare(exp, got, path):
    """None when equal, otherwise a sentence about the first difference."""
    where = path or "(root)"
    if is_leaf(exp):
        if not is_leaf(got):
            return "%s: expected %s, got %s" % (where, describe(exp), describe(got))
        if exp["type"] != got["type"]:
            return "%s: expected %s, got %s" % (where, describe(exp), describe(got))
        try:
            same = leaf_equal(exp, got)
        except ValueError:
            same = False
        if not same:
            return "%s: expected %s, got %s" % (where, describe(exp), describe(got))
        return None
    if isinstance(exp, dict):
        if not isinstance(got, dict) or is_leaf(got):
            return "%s: expected a table, got %s" % (where, describe(got))
        missing = sorted(set(exp) - set(got))
        extra = sorted(set(got) - set(exp))
        if missing:
            return "%s: missing key %s" % (where, json.dumps(missing[0]))
        if extra:
            return "%s: unexpected key %s" % (where, json.dumps(extra[0]))
        for k in sorted(exp):
            err = compare(exp[k], got[k], "%s.%s" % (path, k) if path else k)
            if err:
                return err
        return None
    if isinstance(exp, list):
        if not isinstance(got, list):
            return "%s: expected an array, got %s" % (where, describe(got))
        if len(exp) != len(got):
            return "%s: expected %d elements, got %d" % (where, len(exp), len(got))
        for i, (e, g) in enumerate(zip(exp, got)):
            err = compare(e, g, "%s[%d]" % (path, i))
            if err:
                return err
        return None
    return "%s: unexpected %s in the expected JSON" % (where, json.dumps(exp))


def find_cases(tests_dir):
    cases = []
    for kind in ("valid", "invalid"):
        top = os.path.join(tests_dir, kind)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for f in sorted(filenames):
                if f.endswith(".toml"):
                    full = os.path.join(dirpath, f)
                    name = os.path.relpath(full, tests_dir)[: -len(".toml")]
                    cases.append((kind, name.replace(os.sep, "/"), full))
    return cases


def run_decoder(decoder, path, name, timeout):
    with open(path, "rb") as f:
        return subprocess.run(
            [decoder, name + ".toml"],
            stdin=f,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout,
        )


def check_valid(decoder, name, path, timeout):
    """A list of diagnostic lines; empty when the case passes."""
    try:
        with open(path[: -len(".toml")] + ".json", encoding="utf-8") as f:
            expected = json.load(f)
    except (OSError, ValueError) as exc:
        return ["cannot read the expected JSON: %s" % exc]
    proc = run_decoder(decoder, path, name, timeout)
    err = proc.stderr.decode("utf-8", "replace").rstrip("\n")
    if proc.returncode != 0:
        return ["decoder exited with %d, expected 0" % proc.returncode] + err.splitlines()
    if err:
        return ["decoder wrote to stderr for a valid document:"] + err.splitlines()
    try:
        got = json.loads(proc.stdout.decode("utf-8"))
    except ValueError as exc:
        return ["decoder output is not JSON: %s" % exc]
    diff = compare(expected, got, "")
    return [diff] if diff else []


def check_invalid(decoder, name, path, timeout):
    proc = run_decoder(decoder, path, name, timeout)
    err = proc.stderr.decode("utf-8", "replace").rstrip("\n")
    lines = err.splitlines()
    if proc.returncode == 0:
        return ["decoder accepted an invalid document"]
    if proc.returncode != 1:
        return ["decoder exited with %d, expected 1" % proc.returncode] + lines
    if len(lines) != 1 or not MESSAGE_RE.match(lines[0]) or "runtime error" in err:
        return ["expected one 'NAME:LINE:COL: message' line on stderr, got:"] + lines
    return []


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decoder", help="the decoder program (default $EDGEID_BUILD_ROOT/toml-decoder)")
    ap.add_argument("--tests", help="the toml-test tests/ directory")
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds per case (default 5)")
    ap.add_argument("--verbose", action="store_true", help="also show the messages of rejected documents")
    args = ap.parse_args()

    decoder = args.decoder
    if not decoder and os.environ.get("EDGEID_BUILD_ROOT"):
        decoder = os.path.join(os.environ["EDGEID_BUILD_ROOT"], "toml-decoder")
    if not decoder:
        print("Bail out! no decoder: set EDGEID_BUILD_ROOT or pass --decoder")
        return 1
    if not os.access(decoder, os.X_OK):
        print("Bail out! %s is not an executable decoder" % decoder)
        return 1

    tests_dir = args.tests
    if not tests_dir:
        shared = os.environ.get("EDGEID_SHARED")
        if not shared:
            src = os.environ.get("EDGEID_SOURCE_ROOT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
            shared = os.path.join(src, "..", "shared")
        tests_dir = os.path.join(shared, "toml-test", "tests")
    cases = find_cases(tests_dir)
    if not any(kind == "valid" for kind, _, _ in cases) or not any(kind == "invalid" for kind, _, _ in cases):
        print("Bail out! no valid and invalid cases under %s" % tests_dir)
        return 1

    print("1..%d" % len(cases))
    failed = 0
    for n, (kind, name, path) in enumerate(cases, 1):
        check = check_valid if kind == "valid" else check_invalid
        try:
            diags = check(decoder, name, path, args.timeout)
        except subprocess.TimeoutExpired:
            diags = ["decoder did not finish within %g s" % args.timeout]
        except OSError as exc:
            diags = ["cannot run the decoder: %s" % exc]
        if diags:
            failed += 1
            print("not ok %d - %s" % (n, name))
            for line in diags:
                print("# " + line)
        else:
            print("ok %d - %s" % (n, name))
            if args.verbose and kind == "invalid":
                proc = run_decoder(decoder, path, name, args.timeout)
                print("# " + proc.stderr.decode("utf-8", "replace").strip())
        sys.stdout.flush()
    print("# %d passed, %d failed" % (len(cases) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
