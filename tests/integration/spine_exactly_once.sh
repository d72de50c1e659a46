#!/usr/bin/env bash
# Integration test (b): exactly-once across processes, with a SIGKILL mid-stream.
#
#   spine_exactly_once.sh BIN_DIR MIGRATIONS_DIR [N] [KILL_AT]
#
# The writer (one "service": own schema + outbox + relay) writes N events; the applier
# (another "service": own schema, consumer group) applies them. When the applier has applied
# about KILL_AT events it is killed with SIGKILL and restarted; at the end the applied table
# must have exactly N rows, no duplicates, counter = N, per-key order kept.
# Needs CAIRN_DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS: fails (does not skip) without them.
set -euo pipefail

BIN=${1:?usage: spine_exactly_once.sh BIN_DIR MIGRATIONS_DIR [N] [KILL_AT]}
MIG=${2:?usage: spine_exactly_once.sh BIN_DIR MIGRATIONS_DIR [N] [KILL_AT]}
N=${3:-10000}
KILL_AT=${4:-3000}

for v in CAIRN_DATABASE_URL KAFKA_BOOTSTRAP_SERVERS; do
	if [ -z "${!v:-}" ]; then
		echo "FAIL: $v is not set. The integration tests need a running stack" \
			"(scripts/stack up, then source its env file); they fail rather than skip." >&2
		exit 1
	fi
done

run="$(date +%s)_$$"
topic="spine.eo.$run"
group="spine-eo-$run"
wschema="spine_w_$run"
aschema="spine_a_$run"
work=$(mktemp -d /tmp/spine-eo.XXXXXX)
pids=()

cleanup() {
	for p in "${pids[@]}"; do
		kill -9 "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }

echo "run $run: topic=$topic group=$group writer=$wschema applier=$aschema N=$N"
t0=$(now_ms)

"$BIN/spine_writer" "$topic" "$wschema" "$N" 10 >"$work/writer.log" 2>&1 &
writer=$!
pids+=("$writer")

# The writer creates the topic; the applier subscribes and waits for it to appear.
"$BIN/spine_applier" run "$MIG" "$topic" "$group" "$aschema" "$N" 150 \
	>"$work/applier1.log" 2>&1 &
applier=$!
pids+=("$applier")

# Wait until the applier is mid-stream, then SIGKILL it.
deadline=$(($(date +%s) + 90))
have=0
while :; do
	have=$("$BIN/spine_applier" count "$aschema" 2>/dev/null || echo 0)
	[ "$have" -ge "$KILL_AT" ] && break
	if ! kill -0 "$applier" 2>/dev/null; then
		echo "FAIL: applier exited before reaching $KILL_AT applied events" >&2
		cat "$work/applier1.log" "$work/writer.log" >&2
		exit 1
	fi
	if [ "$(date +%s)" -ge "$deadline" ]; then
		echo "FAIL: applier did not reach $KILL_AT applied events within 90 s ($have)" >&2
		cat "$work/applier1.log" "$work/writer.log" >&2
		exit 1
	fi
	sleep 0.05
done
kill -9 "$applier"
wait "$applier" 2>/dev/null || true
killed_at=$("$BIN/spine_applier" count "$aschema")
echo "killed the applier with SIGKILL at $killed_at applied events"
[ "$killed_at" -lt "$N" ] || { echo "FAIL: applier finished before it could be killed" >&2; exit 1; }

t_restart=$(now_ms)
"$BIN/spine_applier" run "$MIG" "$topic" "$group" "$aschema" "$N" 120 \
	>"$work/applier2.log" 2>&1 &
applier=$!
pids+=("$applier")

rc=0
wait "$writer" || rc=$?
cat "$work/writer.log"
if [ "$rc" -ne 0 ]; then
	echo "FAIL: writer exited with $rc" >&2
	exit 1
fi
rc=0
wait "$applier" || rc=$?
cat "$work/applier2.log"
if [ "$rc" -ne 0 ]; then
	echo "FAIL: restarted applier did not reach $N applied events (exit $rc)" >&2
	exit 1
fi
t_end=$(now_ms)

"$BIN/spine_applier" verify "$aschema" "$group" "$N"
echo "timing: $N events end to end in $((t_end - t0)) ms;" \
	"restart to completion $((t_end - t_restart)) ms"
"$BIN/spine_applier" drop "$wschema" "$aschema"
echo "spine_exactly_once: passed"
