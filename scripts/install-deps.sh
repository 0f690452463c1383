#!/usr/bin/env bash
# Installs what edgeid needs on Debian 12, by package name, and nothing
# that is already there. Safe to run any number of times.
#
#   scripts/install-deps.sh build   compilers, libraries, meson
#   scripts/install-deps.sh check   build + test tools (sanitizer runtimes,
#                                   linters, python3), system users
#   scripts/install-deps.sh demo    build + what the demo runs
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-check}

build_pkgs=(
	gcc make meson ninja-build pkg-config
	libssl-dev libevent-dev libjansson-dev libcurl4-openssl-dev
	libsqlite3-dev libsystemd-dev libcmocka-dev libtss2-dev libp11-kit-dev
	openssl ca-certificates binutils
)
check_pkgs=(
	clang libclang-rt-14-dev clang-format clang-tidy cppcheck
	python3 git sqlite3 curl jq xxd systemd
	swtpm swtpm-tools tpm2-tools libtss2-dev
	softhsm2 libp11-kit-dev opensc
)
demo_pkgs=()

case "$what" in
build) want=("${build_pkgs[@]}") ;;
check) want=("${build_pkgs[@]}" "${check_pkgs[@]}") ;;
demo) want=("${build_pkgs[@]}" "${demo_pkgs[@]}") ;;
*)
	echo "usage: $0 build|check|demo" >&2
	exit 2
	;;
esac

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "install-deps: need root to run: $*" >&2
		return 1
	fi
}

missing=()
for p in "${want[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

# Node.js runs Microsoft's SDKs in the interop tests; the machine's own
# installation is used when there is one.
if [ "$what" != build ] && ! command -v npm >/dev/null 2>&1; then
	missing+=(nodejs npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	as_root apt-get update -qq
	as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
	echo "install-deps: all ${#want[@]} packages present"
fi

# The daemons' system users (config apply chowns to them when run as root).
if [ "$what" != build ] && [ "$(id -u)" -eq 0 ]; then
	conf="$here/packaging/sysusers.d/edgeid.conf"
	for u in $(awk '$1 == "u" { print $2 }' "$conf"); do
		if ! getent passwd "$u" >/dev/null; then
			home=$(awk -v u="$u" '$1 == "u" && $2 == u { print $NF }' "$conf")
			useradd --system --no-create-home --home-dir "$home" \
				--shell /usr/sbin/nologin --user-group "$u"
			echo "install-deps: created system user $u"
		fi
	done
fi

# npm packages for the interop tests, once they exist.
if [ "$what" != build ] && [ -f "$here/tests/interop/package.json" ]; then
	# npm ci again whenever the lock file is newer than what is installed.
	stamp=$here/tests/interop/node_modules/.package-lock.json
	if [ ! -f "$stamp" ] || [ "$here/tests/interop/package-lock.json" -nt "$stamp" ]; then
		echo "install-deps: installing the interop tests' npm packages"
		(cd "$here/tests/interop" && npm ci --no-audit --no-fund --loglevel=error)
	fi
fi
