#!/usr/bin/env bash
# The device footprint benchmark (bench/README.md, "The footprint
# benchmark"): what the device side costs a device.
#
#   size    a release build (meson buildtype=release) installed with
#           `meson install --destdir --strip`: the size of each stripped
#           program; edgeid and edgeidd are what a device installs (the
#           system libraries they load are listed, not counted);
#   time    a TPM device whose EK and SRK are already persisted in the TPM
#           (swtpm), an individual TPM enrollment in a local edgeid-cloud
#           (DPS + hub on loopback); from the start of `edgeid config
#           apply` on a fresh device root, through `edgeidd supervise`,
#           to identityd reporting "provisioned" (its status call, polled
#           every BENCH_POLL_MS), measured with a monotonic clock;
#   memory  right after provisioning, /proc/PID/smaps_rollup of every
#           daemon the supervisor started (and of the supervisor):
#           RSS, PSS, Private_Dirty and USS (private clean + dirty), and
#           from /proc/PID/smaps of the last run, where each daemon's
#           memory goes (heap, OpenSSL, libcurl and the libraries only
#           libcurl needs, ...).
# Every run starts from nothing on the device: a new root, `config apply`,
# new daemons; the cloud forgets the registration record and the hub
# device between runs, so every run is a first registration. BENCH_RUNS
# runs; the report gives the median and the maximum.
#
# Writes bench/out/footprint-YYYYmmdd-HHMMSS.md and prints its summary.
# Prints numbers only: it never fails on a figure. Exit status 0, 1 when
# the setup failed (nothing measured), 2 on bad usage.
#
# Needs: root (the daemons run as their own users, the cloud listens on
# port 443), swtpm, python3, openssl, meson and ninja. Everything stays on
# loopback. Knobs (environment):
#   BENCH_RUNS=10
#   BENCH_POLL_MS=10              how often identityd's status is read
#   BENCH_BUILD=bench/out/build-release   the release build; set up with
#                                 meson buildtype=release when missing
#   BENCH_DPS_HOST=127.0.0.2 BENCH_HUB_HOST=127.0.0.3   loopback addresses
#   BENCH_NICE=0                  nice value for everything the run starts
#   BENCH_OUT=bench/out
set -uo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BENCH_BUILD:-$src/bench/out/build-release}
runs=${BENCH_RUNS:-10}
poll_ms=${BENCH_POLL_MS:-10}
nice_value=${BENCH_NICE:-0}
outdir=${BENCH_OUT:-$src/bench/out}
CLOUD_DPS_HOST=${BENCH_DPS_HOST:-127.0.0.2}
CLOUD_HUB_HOST=${BENCH_HUB_HOST:-127.0.0.3}
export CLOUD_DPS_HOST CLOUD_HUB_HOST

say() { printf 'run-footprint: %s\n' "$*" >&2; }

for n in "$runs" "$poll_ms" "${nice_value#-}"; do
	case $n in
	'' | *[!0-9]*)
		say "\"$n\" is not a number (see the knobs at the top of $0)"
		exit 2
		;;
	esac
done
if [ "$runs" -lt 1 ] || [ "$poll_ms" -lt 1 ]; then
	say "BENCH_RUNS and BENCH_POLL_MS must be at least 1"
	exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
	say "run me as root: the daemons run as their own users and the cloud listens on port 443"
	exit 2
fi
for tool in swtpm python3 openssl meson ninja; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		say "$tool is missing (scripts/install-deps.sh demo installs what the benchmark needs)"
		exit 2
	fi
done
if [ "$nice_value" != 0 ] && ! renice -n "$nice_value" -p $$ >/dev/null; then
	say "cannot set the nice value $nice_value"
	exit 2
fi

# ---- the release build ---------------------------------------------------------------------

# werror is off: at -O3 gcc warns where -O2 does not (maybe-uninitialized,
# format-truncation), and a measurement must not depend on that.
if [ ! -f "$build/build.ninja" ]; then
	say "setting up the release build in $build"
	if ! out=$(meson setup "$build" "$src" -Dbuildtype=release -Dwerror=false \
		-Dtests=disabled 2>&1); then
		printf '%s\n' "$out" >&2
		say "meson setup failed"
		exit 1
	fi
fi
say "building edgeid, edgeidd and edgeid-cloud in $build"
if ! out=$(ninja -C "$build" edgeid edgeidd edgeid-cloud 2>&1); then
	printf '%s\n' "$out" | tail -n 30 >&2
	say "the build failed"
	exit 1
fi
buildtype=$(meson introspect --buildoptions "$build" |
	python3 -c 'import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print("buildtype=%s, -O%s, b_pie=%s" % (o["buildtype"], o["optimization"], o["b_pie"]))')
cc_version=$(sed -n 's/^C compiler for the host machine: [^ ]* (\([^ ]* [^ ]*\) .*/\1/p' \
	"$build/meson-logs/meson-log.txt" 2>/dev/null | head -n 1)

export EDGEID_SOURCE_ROOT=$src EDGEID_BUILD_ROOT=$build
# shellcheck source=../tests/lib/cloud-env.sh
. "$src/tests/lib/cloud-env.sh"
# shellcheck source=../tests/lib/swtpm.sh
. "$src/tests/lib/swtpm.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/edgeid-footprint.XXXXXX") || exit 1
# The daemons run as their own users and look up their files under the
# device roots inside.
chmod 755 "$tmp"
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local pidfile pid
	for pidfile in "$tmp"/dev-*/run/edgeid/supervise.pid; do
		[ -f "$pidfile" ] || continue
		pid=$(cat "$pidfile" 2>/dev/null)
		case $pid in '' | *[!0-9]*) continue ;; esac
		kill -TERM "$pid" 2>/dev/null
	done
	cloud_env_stop >/dev/null 2>&1
	swtpm_stop
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stamp=$(date +%Y%m%d-%H%M%S)
mkdir -p "$outdir" || exit 1
report=$outdir/footprint-$stamp.md

# ---- installed size ------------------------------------------------------------------------

say "installing into $tmp/dest (stripped)"
if ! out=$(meson install -C "$build" --destdir "$tmp/dest" --strip --no-rebuild --quiet 2>&1); then
	printf '%s\n' "$out" >&2
	say "meson install failed"
	exit 1
fi
sizes=$tmp/sizes.tsv
: >"$sizes"
for prog in edgeid edgeidd edgeid-cloud; do
	f=$(find "$tmp/dest" -name "$prog" -type f | head -n 1)
	if [ -z "$f" ]; then
		say "meson install did not install $prog"
		exit 1
	fi
	printf '%s\t%s\t%s\n' "$prog" "$(stat -c %s "$f")" "${f#"$tmp/dest"}" >>"$sizes"
done
other_files=$(find "$tmp/dest" -type f ! -name edgeid ! -name edgeidd ! -name edgeid-cloud |
	wc -l)
other_bytes=$(find "$tmp/dest" -type f ! -name edgeid ! -name edgeidd ! -name edgeid-cloud \
	-printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
printf 'other\t%s\t%s files: systemd units, sysusers.d, tmpfiles.d, udev rules\n' \
	"$other_bytes" "$other_files" >>"$sizes"

# ---- the cloud and the TPM -----------------------------------------------------------------

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
[ -n "$cpu_model" ] || cpu_model=$(uname -m)
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$src" status --porcelain 2>/dev/null | head -n 1)" ]; then
	commit="$commit with uncommitted changes"
fi
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

say "starting edgeid-cloud (DPS on $CLOUD_DPS_HOST:443, hub on $CLOUD_HUB_HOST:443) and swtpm"
mkdir -p "$tmp/cloud" || exit 1
CLOUD_ENV_WORKERS=1
export CLOUD_ENV_WORKERS
if ! { cloud_env_pki "$tmp/cloud" && cloud_env_config "$tmp/cloud" && cloud_env_export &&
	cloud_env_start 60; }; then
	say "edgeid-cloud did not start"
	exit 1
fi
if ! swtpm_start "$tmp/tpm" 2>"$tmp/swtpm.err"; then
	cat "$tmp/swtpm.err" >&2
	say "swtpm did not start"
	exit 1
fi
# The EK and SRK are created and persisted once, as a device's first boot
# (or its manufacturer) does; every run finds them in the TPM.
if ! "$build/edgeid" tpm provisioning-info --tcti "$EDGEID_TEST_TCTI" --json >"$tmp/ek.json" \
	2>"$tmp/ek.err"; then
	cat "$tmp/ek.err" >&2
	say "edgeid tpm provisioning-info failed"
	exit 1
fi
regid=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["registration_id"])' \
	<"$tmp/ek.json")
ek=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["endorsement_key"])' \
	<"$tmp/ek.json")
device_id=footprint-device
if ! out=$(cloud_env_cli enrollment create --registration-id "$regid" --endorsement-key "$ek" \
	--device-id "$device_id" 2>&1); then
	printf '%s\n' "$out" >&2
	say "the TPM enrollment could not be created"
	exit 1
fi

# ---- the runs ------------------------------------------------------------------------------

# The device's super-config, as the seeds write it for a TPM device.
cat >"$tmp/config.toml" <<TOML
hostname = "$device_id"
trust_bundle_cert = "file:///etc/edgeid/cloud-ca.pem"

[provisioning]
source = "dps"
global_endpoint = "https://$CLOUD_DPS_HOST/"
id_scope = "$CLOUD_DPS_ID_SCOPE"

[provisioning.attestation]
method = "tpm"
registration_id = "$regid"

[tpm]
tcti = "$EDGEID_TEST_TCTI"
TOML

# prepare_root DIR: what exists before `config apply` on a device: the
# super-config, the cloud's CA, and the state directories the package
# creates (packaging/tmpfiles.d) with their owners.
prepare_root() {
	local root=$1 d owner
	mkdir -p "$root/etc/aziot" "$root/etc/edgeid" || return 1
	cp "$tmp/config.toml" "$root/etc/aziot/config.toml" || return 1
	cp "$CLOUD_CA" "$root/etc/edgeid/cloud-ca.pem" || return 1
	for d in keyd:aziotks certd:aziotcs identityd:aziotid tpmd:aziottpm; do
		owner=()
		getent passwd "${d#*:}" >/dev/null && owner=(-o "${d#*:}" -g "${d#*:}")
		install -d -m 0700 "${owner[@]}" "$root/var/lib/aziot/${d%%:*}" || return 1
	done
}

# forget: the cloud forgets the device, so that the next run registers it
# for the first time.
forget() {
	cloud_env_cli registration delete "$regid" >/dev/null 2>&1
	cloud_env_cli device delete "$device_id" >/dev/null 2>&1
	return 0
}

cat >"$tmp/run.py" <<'PYTHON'
# One run: the timed part (config apply, supervise, until provisioned) and
# the memory of each daemon afterwards. Prints one JSON object.
import json, os, socket, subprocess, sys, time

build, root, poll_ms, smaps_out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
run_dir = root + "/run/edgeid"
sock = root + "/run/aziot/identityd.sock"
res = {"ok": False}

def status():
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        s.settimeout(2)
        s.connect(sock)
        s.sendall(b"GET /identities/provisioning/status?api-version=2021-12-01 HTTP/1.1\r\n"
                  b"Host: identityd.sock\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        body = data.split(b"\r\n\r\n", 1)[1]
        return json.loads(body[body.index(b"{"):body.rindex(b"}") + 1])
    except (OSError, ValueError, IndexError):
        return None

def ms(a, b):
    return round((b - a) / 1e6, 1)

with open(root + "/apply.out", "w") as out:
    t0 = time.monotonic_ns()
    apply = subprocess.run([build + "/edgeid", "config", "apply", "-c",
                            root + "/etc/aziot/config.toml", "--root", root],
                           stdout=out, stderr=subprocess.STDOUT)
    t1 = time.monotonic_ns()
    if apply.returncode != 0:
        res["error"] = "edgeid config apply exited with status %d" % apply.returncode
        print(json.dumps(res))
        sys.exit(0)
    sup = subprocess.run([build + "/edgeidd", "supervise", "--root", root, "--run-dir", run_dir],
                         stdout=out, stderr=subprocess.STDOUT)
    t2 = time.monotonic_ns()
if sup.returncode != 0:
    res["error"] = "edgeidd supervise exited with status %d" % sup.returncode
    print(json.dumps(res))
    sys.exit(0)
st = None
deadline = t2 + 60 * 10**9
polls = 0
while time.monotonic_ns() < deadline:
    st = status()
    polls += 1
    if st and st.get("state") == "provisioned" and not st.get("busy"):
        break
    time.sleep(poll_ms / 1000)
t3 = time.monotonic_ns()
res.update({"apply_ms": ms(t0, t1), "started_ms": ms(t1, t2), "provisioned_ms": ms(t2, t3),
            "total_ms": ms(t0, t3), "polls": polls, "status": st})
if not (st and st.get("state") == "provisioned"):
    res["error"] = "not provisioned after 60 s: %s" % json.dumps(st)
    print(json.dumps(res))
    sys.exit(0)

def rollup(pid):
    v = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                v[k] = int(rest.split()[0])
    return v

def comm(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        arg0 = f.read().split(b"\0")[0].decode()
    return os.path.basename(arg0)

with open(run_dir + "/supervise.pid") as f:
    sup_pid = int(f.read().strip())
pids = [sup_pid]
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == sup_pid:
            pids.append(int(d))
procs = []
for pid in pids:
    try:
        name = "supervise" if pid == sup_pid else comm(pid)
        v = rollup(pid)
        with open("/proc/%d/smaps" % pid) as f:
            smaps = f.read()
    except OSError:
        continue
    name = name.replace("edgeidd-", "")
    with open("%s.%s" % (smaps_out, name), "w") as f:
        f.write(smaps)
    procs.append({"name": name, "pid": pid, "rss": v.get("Rss", 0), "pss": v.get("Pss", 0),
                  "private_dirty": v.get("Private_Dirty", 0),
                  "uss": v.get("Private_Clean", 0) + v.get("Private_Dirty", 0),
                  "anon": v.get("Anonymous", 0)})
res["procs"] = procs
res["ok"] = True
print(json.dumps(res))
PYTHON

# stop_run ROOT: stop the supervisor (and so its daemons) of a run.
stop_run() {
	local pidfile=$1/run/edgeid/supervise.pid pid
	[ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile" 2>/dev/null)
	case $pid in '' | *[!0-9]*) return 0 ;; esac
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 100); do
		[ -d "/proc/$pid" ] || return 0
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null
}

: >"$tmp/runs.jsonl"
for i in $(seq 1 "$runs"); do
	forget
	root=$tmp/dev-$i
	if ! prepare_root "$root"; then
		say "cannot prepare $root"
		exit 1
	fi
	python3 "$tmp/run.py" "$build" "$root" "$poll_ms" "$tmp/smaps-$i" >>"$tmp/runs.jsonl"
	line=$(tail -n 1 "$tmp/runs.jsonl")
	python3 -c 'import json, sys
r = json.loads(sys.argv[1])
if r["ok"]:
    mem = ", ".join("%s %.1f/%.1f" % (p["name"], p["pss"] / 1024, p["rss"] / 1024)
                    for p in r["procs"])
    print("run-footprint: run %s: apply %.0f ms, daemons started %.0f ms, provisioned %.0f ms: "
          "%.0f ms; PSS/RSS MB: %s" % (sys.argv[2], r["apply_ms"], r["started_ms"],
          r["provisioned_ms"], r["total_ms"], mem))
else:
    print("run-footprint: run %s failed: %s" % (sys.argv[2], r.get("error")))' "$line" "$i" >&2
	if ! grep -q '"ok": true' <<<"$line"; then
		for log in "$root"/run/edgeid/logs/*.log; do
			[ -f "$log" ] || continue
			printf '\n%s:\n' "$log" >>"$tmp/failed-$i.txt"
			tail -n 20 "$log" >>"$tmp/failed-$i.txt"
		done
	fi
	stop_run "$root"
done

# ---- the report ----------------------------------------------------------------------------

# The libraries edgeidd loads, each with the group it counts in (the first
# of: the C library, OpenSSL, libevent and jansson, tpm2-tss, libsystemd,
# libcurl, whose dependency closure holds it), for the breakdown.
libs=$tmp/libs.tsv
python3 - "$build/edgeidd" >"$libs" <<'PYTHON'
import os, re, subprocess, sys

def closure(path):
    out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
    libs = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
        if m:
            p = m.group(m.lastindex)
            libs[os.path.basename(os.path.realpath(p))] = os.path.realpath(p)
    return libs

exe = sys.argv[1]
alllibs = closure(exe)
needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]",
                    subprocess.run(["readelf", "-d", exe], capture_output=True, text=True).stdout)
soname_path = {}
out = subprocess.run(["ldd", exe], capture_output=True, text=True).stdout
for line in out.splitlines():
    m = re.match(r"\s*(\S+)\s+=>\s+(/\S+)", line)
    if m:
        soname_path[m.group(1)] = m.group(2)
groups = [
    ("the C library", lambda n: n.startswith(("libc.so", "ld-linux", "libm.so"))),
    ("OpenSSL", lambda n: n.startswith(("libcrypto", "libssl"))),
    ("libevent, jansson", lambda n: n.startswith(("libevent", "libjansson"))),
    ("tpm2-tss", lambda n: n.startswith("libtss2")),
    ("libsystemd", lambda n: n.startswith("libsystemd")),
    ("libcurl", lambda n: n.startswith("libcurl")),
]
group_of = {}
for gname, match in groups:
    for soname in needed:
        if not match(soname) or soname not in soname_path:
            continue
        members = {os.path.basename(os.path.realpath(soname_path[soname]))}
        members |= set(closure(soname_path[soname]).keys())
        for m in sorted(members):
            group_of.setdefault(m, gname)
for base, path in sorted(alllibs.items()):
    print("%s\t%s\t%d" % (base, group_of.get(base, "other libraries"), os.path.getsize(path)))
PYTHON

python3 - "$tmp/runs.jsonl" "$sizes" "$libs" "$tmp/smaps-$runs" "$tmp" >"$tmp/body.md" <<'PYTHON'
import glob, json, os, statistics, sys

runs_file, sizes_file, libs_file, smaps_prefix, tmp = sys.argv[1:6]
runs = [json.loads(l) for l in open(runs_file) if l.strip()]
good = [r for r in runs if r.get("ok")]
sizes = [l.rstrip("\n").split("\t") for l in open(sizes_file)]
libs = {l.split("\t")[0]: (l.split("\t")[1], int(l.split("\t")[2])) for l in open(libs_file)}
PSS_TARGET, RSS_TARGET, SIZE_TARGET, TIME_TARGET = 4 * 1024, 10 * 1024, 1024 * 1024, 500
# identityd's shortest wait before its first status poll.

def med(v):
    return statistics.median(v) if v else 0

def mb(kb):
    return "%.1f" % (kb / 1024)

def verdict(ok):
    return "met" if ok else "**not met**"

order = ["keyd", "certd", "tpmd", "identityd"]
names = []
for r in good:
    for p in r["procs"]:
        if p["name"] not in names:
            names.append(p["name"])
names.sort(key=lambda n: (n == "supervise", order.index(n) if n in order else 99, n))
daemons = [n for n in names if n != "supervise"]

def per_proc(name, key):
    return med([p[key] for r in good for p in r["procs"] if p["name"] == name])

def total(key, with_supervisor=False):
    # The median over runs of each run's sum.
    return med([sum(p[key] for p in r["procs"] if with_supervisor or p["name"] != "supervise")
                for r in good])

counted = sum(int(s[1]) for s in sizes if s[0] in ("edgeid", "edgeidd"))
times = [r["total_ms"] for r in good]
out = []
w = out.append

w("## Summary\n")
w("| target | measured | |")
w("|---|---|---|")
if good:
    pss = total("pss")
    rss = total("rss")
    w("| PSS of the device daemons ≤ 4 MB in total | %s MB (%s) | %s |" % (
        mb(pss), ", ".join("%s %s" % (n, mb(per_proc(n, "pss"))) for n in daemons),
        verdict(pss <= PSS_TARGET)))
    w("| RSS of the device daemons ≤ 10 MB in total | %s MB (%s) | %s |" % (
        mb(rss), ", ".join("%s %s" % (n, mb(per_proc(n, "rss"))) for n in daemons),
        verdict(rss <= RSS_TARGET)))
w("| stripped binaries ≤ 1 MB | %.0f KiB (edgeid + edgeidd, %d bytes) | %s |" % (
    counted / 1024, counted, verdict(counted <= SIZE_TARGET)))
if good:
    w("| `config apply` → provisioned ≤ 0.5 s (EK, SRK in the TPM, local DPS) | median %.0f ms, "
      "max %.0f ms (%d runs) | %s |" % (med(times), max(times), len(good),
                                       verdict(med(times) <= TIME_TARGET)))
else:
    w("| `config apply` → provisioned ≤ 0.5 s | no run provisioned | **not measured** |")
if len(good) != len(runs):
    w("\n%d of %d runs did not provision; their errors are under \"Every run\"." % (
        len(runs) - len(good), len(runs)))
w("\nMemory figures: medians over the runs, read right after provisioning, without the "
  "supervisor (`edgeidd supervise`, which systemd replaces); with it: PSS %s MB, RSS %s MB." % (
      mb(total("pss", True)), mb(total("rss", True))) if good else "")

w("\n## Installed size (stripped)\n")
w("| file | bytes | KiB | |")
w("|---|---:|---:|---|")
for name, size, where in sizes:
    note = {"edgeid": "the command line; counted",
            "edgeidd": "every device daemon (multi-call); counted",
            "edgeid-cloud": "the cloud side; not on a device"}.get(name, where)
    if name != "other":
        note = "`%s`: %s" % (where, note)
    w("| %s | %s | %.0f | %s |" % (name, size, int(size) / 1024, note))
w("| **edgeid + edgeidd** | %d | %.0f | the figure compared with the 1 MB target |" % (
    counted, counted / 1024))
lib_total = sum(s for _, s in libs.values())
by_group = {}
for base, (g, s) in libs.items():
    by_group.setdefault(g, []).append((base, s))
w("\nNot counted: the %d system libraries edgeidd loads (%.1f MB of files), by what needs "
  "them:\n" % (len(libs), lib_total / 1048576))
w("| group | libraries | MB |")
w("|---|---|---:|")
for g in sorted(by_group, key=lambda g: -sum(s for _, s in by_group[g])):
    w("| %s | %s | %.1f |" % (g, " ".join(sorted(b for b, _ in by_group[g])),
                              sum(s for _, s in by_group[g]) / 1048576))

if good:
    w("\n## Time from `config apply` to provisioned\n")
    w("| phase | median ms | max ms |")
    w("|---|---:|---:|")
    for key, label in (("apply_ms", "`edgeid config apply`"),
                       ("started_ms", "`edgeidd supervise`: every daemon started and answering"),
                       ("provisioned_ms", "identityd: DPS registration (TPM), hub check"),
                       ("total_ms", "**total**")):
        v = [r[key] for r in good]
        w("| %s | %.1f | %.1f |" % (label, med(v), max(v)))
    w("\nThe DPS holds its answer to the registration until the assignment is committed "
      "(at most its `register_wait_ms`, 250 ms by default) and answers with the final "
      "result, so identityd does not poll; with `register_wait_ms = 0` it would answer "
      "\"assigning\" with `Retry-After: 1` and identityd would wait that second.")
    w("\n## Memory after provisioning (kB, medians)\n")
    w("| process | RSS | PSS | Private_Dirty | USS | anonymous |")
    w("|---|---:|---:|---:|---:|---:|")
    for n in names:
        w("| %s | %d | %d | %d | %d | %d |" % (
            n, per_proc(n, "rss"), per_proc(n, "pss"), per_proc(n, "private_dirty"),
            per_proc(n, "uss"), per_proc(n, "anon")))
    w("| **daemons** | %d | %d | %d | %d | %d |" % tuple(
        total(k) for k in ("rss", "pss", "private_dirty", "uss", "anon")))
    w("| daemons and supervisor | %d | %d | %d | %d | %d |" % tuple(
        total(k, True) for k in ("rss", "pss", "private_dirty", "uss", "anon")))
    w("\nUSS: private clean + private dirty, what the process alone uses. PSS divides each "
      "shared page by the number of processes mapping it, on this machine: other processes "
      "that map the same system libraries (the cloud's, other work) lower it; on a device "
      "that runs only these daemons it lies between the USS and the RSS.")

    # Where the memory goes: /proc/PID/smaps of the last run, by group.
    def groups_of(path):
        acc = {}
        name = None
        for line in open(path):
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" not in parts[0]:
                p = parts[5] if len(parts) >= 6 else ""
                base = os.path.basename(p)
                if p == "[heap]":
                    name = "heap (malloc)"
                elif p in ("", "[stack]") or p.startswith("[anon"):
                    name = "stack and anonymous mappings"
                elif p in ("[vvar]", "[vdso]", "[vsyscall]"):
                    name = None
                elif base == "edgeidd":
                    name = "edgeidd (text, data)"
                elif base in libs:
                    name = libs[base][0]
                else:
                    name = "other files"
                continue
            if name and parts[0] in ("Rss:", "Pss:", "Private_Dirty:"):
                acc.setdefault(name, {}).setdefault(parts[0][:-1], 0)
                acc[name][parts[0][:-1]] += int(parts[1])
        return acc

    files = {n: "%s.%s" % (smaps_prefix, n) for n in names}
    if all(os.path.exists(f) for f in files.values()):
        data = {n: groups_of(f) for n, f in files.items()}
        gnames = sorted({g for d in data.values() for g in d},
                        key=lambda g: -sum(d.get(g, {}).get("Pss", 0) for d in data.values()))
        w("\n## Where the memory goes (kB, last run, PSS / Private_Dirty / RSS)\n")
        w("| mapping | " + " | ".join(names) + " | daemons' PSS | daemons' RSS |")
        w("|---|" + "---:|" * (len(names) + 2))
        for g in gnames:
            cells = []
            for n in names:
                v = data[n].get(g, {})
                cells.append("%d / %d / %d" % (v.get("Pss", 0), v.get("Private_Dirty", 0),
                                               v.get("Rss", 0)))
            w("| %s | %s | %d | %d |" % (
                g, " | ".join(cells),
                sum(data[n].get(g, {}).get("Pss", 0) for n in daemons),
                sum(data[n].get(g, {}).get("Rss", 0) for n in daemons)))
        w("\nGroups: a system library counts in the first of the C library, OpenSSL, libevent "
          "and jansson, tpm2-tss, libsystemd, libcurl whose dependencies hold it, so "
          "\"libcurl\" is libcurl and the libraries only libcurl needs (GnuTLS, Kerberos, "
          "LDAP, SSH, ...).")

w("\n## Every run\n")
w("| run | apply ms | started ms | provisioned ms | total ms | polls | " +
  " | ".join("%s PSS/RSS kB" % n for n in names) + " | |")
w("|---:|---:|---:|---:|---:|---:|" + "---:|" * len(names) + "---|")
for i, r in enumerate(runs, 1):
    if not r.get("ok"):
        w("| %d | | | | | | %s | %s |" % (i, " | ".join("" for _ in names),
                                          r.get("error", "failed")))
        continue
    cells = []
    for n in names:
        p = [p for p in r["procs"] if p["name"] == n]
        cells.append("%d / %d" % (p[0]["pss"], p[0]["rss"]) if p else "")
    w("| %d | %.1f | %.1f | %.1f | %.1f | %d | %s | |" % (
        i, r["apply_ms"], r["started_ms"], r["provisioned_ms"], r["total_ms"], r["polls"],
        " | ".join(cells)))
for f in sorted(glob.glob(os.path.join(tmp, "failed-*.txt"))):
    w("\n### %s\n\n```\n%s```" % (os.path.basename(f), open(f).read()))
print("\n".join(out))
PYTHON

# shellcheck disable=SC2016 # the backquotes are markdown
{
	printf '# Device footprint benchmark, %s\n\n' "$(date '+%Y-%m-%d %H:%M:%S %Z')"
	printf 'Machine: %s CPUs (%s), %s RAM, Linux %s; load average before the runs: %s.\n' \
		"$(nproc)" "$cpu_model" "$mem" "$(uname -r)" "$load_before"
	printf 'Source: %s. Build: %s (%s, %s).\n\n' "$commit" "$build" "$buildtype" \
		"${cc_version:-compiler unknown}"
	printf 'Device: a TPM (swtpm) with the EK at 0x81010001 and the SRK at 0x81000001 already '
	printf 'persisted; `edgeid config apply` on a fresh root, then `edgeidd supervise` (every '
	printf 'daemon it starts by default, each as its own user), identityd provisioning with TPM '
	printf 'attestation. '
	printf 'Cloud: `edgeid-cloud serve` on loopback (DPS %s:443, hub %s:443, one worker each, ' \
		"$CLOUD_DPS_HOST" "$CLOUD_HUB_HOST"
	printf 'SQLite), an individual TPM enrollment; the registration record and the hub device '
	printf 'are deleted before every run. '
	printf 'Time: monotonic clock, from the start of `config apply` to identityd'"'"'s status '
	printf 'saying "provisioned" (read every %s ms). %s runs; nice value %s.\n\n' "$poll_ms" \
		"$runs" "$nice_value"
	cat "$tmp/body.md"
} >"$report"

printf '\n'
sed -n '1,/^## Installed size/p' "$report" | sed '$d'
printf 'Report: %s\n' "$report"
exit 0
