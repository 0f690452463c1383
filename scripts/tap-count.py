#!/usr/bin/env python3
"""Count results in a meson testlog.json: every TAP line of a TAP test,
one result for any other test. Prints "PASSED FAILED SKIPPED" and, on
stderr, the names of what failed."""
import json
import re
import sys

TAP = re.compile(r'^(not ok|ok)\b(.*)$')


def main(path):
    passed = failed = skipped = 0
    with open(path, encoding='utf-8', errors='replace') as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            t = json.loads(line)
            name, result = t.get('name', '?'), t.get('result', '')
            p = fl = s = 0
            for out in (t.get('stdout') or '').splitlines():
                m = TAP.match(out)
                if not m:
                    continue
                if re.search(r'#\s*skip', m.group(2), re.I):
                    s += 1
                elif m.group(1) == 'ok':
                    p += 1
                else:
                    fl += 1
                    print(f'FAILED: {name}: {out}', file=sys.stderr)
            bad = result not in ('OK', 'SKIP', 'EXPECTEDFAIL')
            if bad and fl == 0:
                fl = 1  # crashed, timed out or exited non-zero without saying so
                print(f'FAILED: {name}: {result}', file=sys.stderr)
            if p + fl + s == 0:
                if result == 'SKIP':
                    s = 1
                elif not bad:
                    p = 1
            passed, failed, skipped = passed + p, failed + fl, skipped + s
    print(passed, failed, skipped)


if __name__ == '__main__':
    main(sys.argv[1])
