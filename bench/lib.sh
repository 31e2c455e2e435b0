# bench/lib.sh - shared by bench/run and bench/callgrind (sourced, POSIX sh).
#
# Environment:
#   AVD_BIN   the avd to measure (default: daemon/avd next to bench/)
#   LOADGEN   a built load generator (default: built here from loadgen.c)
#   CC        compiler for the load generator (default: cc)

die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

# Stops the measurements still running (their `timeout` passes the signal
# on to everything it started), then removes the scratch directory.
bench_cleanup() {
	if [ -n "${BENCH_WORK:-}" ] && [ -s "$BENCH_WORK/running" ]; then
		for p in $(cat "$BENCH_WORK/running"); do
			kill -TERM "$p" 2>/dev/null
		done
		sleep 1
	fi
	[ -n "${BENCH_WORK:-}" ] && rm -rf "$BENCH_WORK"
}

# Sets up a scratch directory with private copies of avd (a concurrent
# rebuild cannot swap it mid-run) and of the load generator.
bench_setup() {
	BENCH_SRC=$(cd "$(dirname "$0")" && pwd)
	bench_top=$(cd "$BENCH_SRC/.." && pwd)
	AVD_BIN=${AVD_BIN:-$bench_top/daemon/avd}
	[ -x "$AVD_BIN" ] || die "no avd binary at $AVD_BIN (run make, or set AVD_BIN)"
	command -v taskset >/dev/null || die "taskset (util-linux) is needed"
	command -v ip >/dev/null || die "ip (iproute2) is needed"
	if unshare -n true 2>/dev/null; then
		BENCH_NS="unshare -n"
	elif unshare -rn true 2>/dev/null; then
		BENCH_NS="unshare -rn"
	else
		die "cannot create a network namespace (unshare -n); run as root"
	fi
	BENCH_WORK=$(mktemp -d "${TMPDIR:-/tmp}/avd-bench.XXXXXX") || die "mktemp failed"
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM HUP
	cp "$AVD_BIN" "$BENCH_WORK/avd" || die "cannot copy $AVD_BIN"
	if [ -n "${LOADGEN:-}" ]; then
		cp "$LOADGEN" "$BENCH_WORK/loadgen" || die "cannot copy $LOADGEN"
	else
		${CC:-cc} -O2 -Wall -Wextra -Werror -o "$BENCH_WORK/loadgen" \
			"$BENCH_SRC/loadgen.c" || die "cannot build the load generator"
	fi
	BENCH_TOKEN=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
	# Every measurement has a network namespace of its own, so a fixed
	# port is always free.
	BENCH_PORT=7700
	BENCH_AVD_ARGS=
	BENCH_CG_OUT=$BENCH_WORK/callgrind.out
	export BENCH_SRC BENCH_WORK BENCH_TOKEN BENCH_PORT BENCH_AVD_ARGS BENCH_CG_OUT
}

# one SERVER SERVER_CPU LOADGEN_CPU LOADGEN_ARGS...
# Runs one measurement in a fresh network namespace, bounded in time;
# prints the load generator's result line.
one() {
	timeout -k 5 "${BENCH_STEP_TIMEOUT:-90}" $BENCH_NS sh "$BENCH_SRC/one.sh" "$@" \
		>"$BENCH_WORK/one.out" &
	bench_cur=$!
	echo "$bench_cur" >>"$BENCH_WORK/running"
	wait "$bench_cur"
	bench_rc=$?
	grep -vx "$bench_cur" "$BENCH_WORK/running" >"$BENCH_WORK/running.new"
	mv "$BENCH_WORK/running.new" "$BENCH_WORK/running"
	cat "$BENCH_WORK/one.out"
	return $bench_rc
}

# kv KEY LINE: the value of KEY=... in a result line.
kv() {
	printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}
