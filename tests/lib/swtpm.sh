# A real TPM 2.0 (swtpm) on loopback for shell tests. Source it, then:
#
#   swtpm_start DIR   start swtpm with its state in DIR/state (created; an
#                     existing state is reused, so persistent objects
#                     survive a stop/start), on a free loopback port pair P
#                     and P+1; wait until the TPM answers; export
#                       EDGEID_TEST_TCTI="swtpm:host=127.0.0.1,port=P"
#                       TPM2TOOLS_TCTI (the same string)
#                     and set SWTPM_PID, SWTPM_PORT, SWTPM_DIR. Returns 1
#                     (with the reason on stderr) when swtpm cannot start.
#   swtpm_stop        stop it (SIGTERM, then SIGKILL) and forget it.
#
# One swtpm at a time: swtpm_start stops the previous one first. Sourcing
# this file twice is harmless. A swtpm left running by an earlier run in the
# same DIR (its pid is in DIR/swtpm.pid) is stopped before starting. The
# swtpm is stopped when the shell exits: the first swtpm_start installs an
# EXIT trap that stops it and then runs the EXIT trap the test had set
# before. A test that sets its EXIT trap later must call swtpm_stop in it.
# Call swtpm_start in the test's own shell, not in $(...) or a pipeline.
# shellcheck shell=bash

if [ -z "${SWTPM_SH_LOADED:-}" ]; then
	SWTPM_SH_LOADED=1
	SWTPM_PID=
	SWTPM_PORT=
	SWTPM_DIR=
	SWTPM_TRAP_SET=
	SWTPM_OLD_TRAP=
fi

# Whether something accepts TCP connections on 127.0.0.1:$1.
_swtpm_port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Stop the swtpm whose pid file is $1, if that process is a swtpm serving
# that same state directory (and so one of ours from an earlier run).
_swtpm_kill_stale() {
	local pidfile=$1 statedir=$2 pid
	[ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile" 2>/dev/null)
	rm -f "$pidfile"
	case "$pid" in '' | *[!0-9]*) return 0 ;; esac
	if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "swtpm.*dir=$statedir"; then
		kill "$pid" 2>/dev/null
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || return 0
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null
	fi
}

# Whether the TPM on port $1 answers a command. tpm2_getrandom when
# tpm2-tools is installed, otherwise an accepted connection.
_swtpm_answers() {
	if command -v tpm2_getrandom >/dev/null 2>&1; then
		TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$1" tpm2_getrandom 4 >/dev/null 2>&1
	else
		_swtpm_port_busy "$1"
	fi
}

swtpm_stop() {
	local pid=$SWTPM_PID
	SWTPM_PID=
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	[ -n "$SWTPM_DIR" ] && rm -f "$SWTPM_DIR/swtpm.pid"
	return 0
}

_swtpm_on_exit() {
	swtpm_stop
}

# Called as `_swtpm_keep_trap trap -- 'COMMAND' EXIT` (the output of
# `trap -p EXIT`, quoting intact), or with no arguments when there is none.
_swtpm_keep_trap() {
	SWTPM_OLD_TRAP=${3:-}
}

swtpm_start() {
	local dir=${1:?swtpm_start: DIR expected} port attempt pid
	if ! command -v swtpm >/dev/null 2>&1; then
		echo "swtpm_start: swtpm is not installed" >&2
		return 1
	fi
	swtpm_stop
	mkdir -p "$dir/state" || return 1
	dir=$(cd "$dir" && pwd)
	_swtpm_kill_stale "$dir/swtpm.pid" "$dir/state"
	SWTPM_DIR=$dir

	if [ -z "$SWTPM_TRAP_SET" ]; then
		# Keep the test's own EXIT trap: run it after stopping swtpm.
		eval "_swtpm_keep_trap $(trap -p EXIT)"
		trap '_swtpm_on_exit; eval "$SWTPM_OLD_TRAP"' EXIT
		SWTPM_TRAP_SET=1
	fi

	for attempt in $(seq 1 20); do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		if _swtpm_port_busy "$port" || _swtpm_port_busy $((port + 1)); then
			continue
		fi
		swtpm socket --tpm2 \
			--server type=tcp,port=$port,bindaddr=127.0.0.1 \
			--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
			--tpmstate dir="$dir/state" --flags not-need-init,startup-clear \
			--pid file="$dir/swtpm.pid" --log file="$dir/swtpm.log" &
		pid=$!
		for _ in $(seq 1 100); do
			# It exits at once when another process won the port.
			kill -0 "$pid" 2>/dev/null || break
			if _swtpm_answers "$port"; then
				SWTPM_PID=$pid
				# shellcheck disable=SC2034 # for the sourcing test
				SWTPM_PORT=$port
				export EDGEID_TEST_TCTI="swtpm:host=127.0.0.1,port=$port"
				export TPM2TOOLS_TCTI=$EDGEID_TEST_TCTI
				return 0
			fi
			sleep 0.1
		done
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	echo "swtpm_start: swtpm did not start after $attempt attempts; its log:" >&2
	sed 's/^/  /' "$dir/swtpm.log" >&2 2>/dev/null
	return 1
}
