#!/bin/sh
# bench/one.sh - one measurement: a server and the load generator, run
# inside a private network namespace by bench/run.
#
#   one.sh SERVER SERVER_CPU LOADGEN_CPU LOADGEN_ARGS...
#
# SERVER is avd, avd-cg (avd under callgrind), relay, mqtt or none.
# Environment (from bench/run):
# BENCH_WORK (scratch dir holding avd and loadgen), BENCH_SRC (bench/),
# BENCH_TOKEN, BENCH_PORT, BENCH_AVD_ARGS, BENCH_CG_OUT.  Prints the load generator's result line; the server's output goes to
# $BENCH_WORK/server.log.
set -u
server=$1 scpu=$2 lcpu=$3
shift 3

ip link set lo up || exit 1
# The load generator, mosquitto and Node get the hard limit of open files.
ulimit -n "$(ulimit -Hn)" 2>/dev/null

port=$BENCH_PORT
log=$BENCH_WORK/server.log
pid=
case $server in
avd)
	# From the usual soft limit of 1024 files; avd raises its own.
	# shellcheck disable=SC2086
	(
		ulimit -Sn 1024
		exec taskset -c "$scpu" "$BENCH_WORK/avd" --port "$port" --token "$BENCH_TOKEN" \
			--log-level warn $BENCH_AVD_ARGS
	) >"$log" 2>&1 &
	pid=$!
	;;
relay)
	taskset -c "$scpu" node "$BENCH_SRC/peers/node-relay.js" "$port" "$BENCH_TOKEN" \
		>"$log" 2>&1 &
	pid=$!
	;;
avd-cg)
	# avd under callgrind; the profile goes to $BENCH_CG_OUT.
	# shellcheck disable=SC2086
	taskset -c "$scpu" valgrind --tool=callgrind --callgrind-out-file="$BENCH_CG_OUT" \
		"$BENCH_WORK/avd" --port "$port" --token "$BENCH_TOKEN" \
		--log-level warn $BENCH_AVD_ARGS >"$log" 2>&1 &
	pid=$!
	;;
mqtt)
	taskset -c "$scpu" mosquitto -c "$BENCH_WORK/mosquitto.conf" >"$log" 2>&1 &
	pid=$!
	;;
none) ;;
*)
	echo "one.sh: unknown server $server" >&2
	exit 2
	;;
esac

# alive PID: the process exists and is not a zombie.
alive() {
	state=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)
	[ -n "$state" ] && [ "$state" != Z ]
}

if [ -n "$pid" ]; then
	taskset -c "$lcpu" "$BENCH_WORK/loadgen" "$@" --port "$port" --token "$BENCH_TOKEN" \
		--pid "$pid"
else
	taskset -c "$lcpu" "$BENCH_WORK/loadgen" "$@"
fi
rc=$?

if [ -n "$pid" ]; then
	kill -TERM "$pid" 2>/dev/null
	# Whatever has not left after 10 s is killed (callgrind needs a
	# moment to write its profile).
	i=0
	while [ $i -lt 100 ] && alive "$pid"; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
fi
if [ $rc -ne 0 ] && [ -s "$log" ]; then
	echo "one.sh: $server said:" >&2
	tail -n 5 "$log" >&2
fi
exit $rc
