#!/usr/bin/env bash
# integration_mover: the mover service on the real stack (PostgreSQL, Kafka), fed
# backup.task.requested events through Kafka, against a real datastore of ext4 images.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../.." && pwd)
: "${CAIRN_STACK_DIR:?run through scripts/test (needs the test stack)}"
source "$CAIRN_STACK_DIR/env"
BIN=${CAIRN_BIN_DIR:?}
export CAIRN_SQL_DIR=${CAIRN_SQL_DIR:-$repo/schemas/sql}
DS=$BIN/libs/engine/cairn-datastore
work=$(mktemp -d /tmp/cairn-mover-it.XXXXXX)
run=$(cat /proc/sys/kernel/random/uuid); run=${run:0:8}
pids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; echo "--- mover log tail" >&2; tail -n 30 "$work"/mover*.log >&2 || true; exit 1; }
# The catalog's tenant tables have FORCE ROW LEVEL SECURITY: the test looks across tenants
# the way the mover's claim does (app.system).
q() { PGOPTIONS='-c app.system=on' psql -qAt -v ON_ERROR_STOP=1 -c "$1"; }

mkdir -p "$work/ds" "$work/repo" "$work/content/etc" "$work/content/usr"
head -c 32 /dev/urandom >"$work/master.key"
echo "hello from web01" >"$work/content/etc/motd"
# plaintext canary: inside the guest, never in the mover's logs or events (checked at the end)
CANARY="cairn-canary-$run-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo "$CANARY" >"$work/content/etc/canary.txt"
cp -r /usr/include/linux "$work/content/usr/"
"$DS" create-vm --root "$work/ds" --org acme --vdc vdc1 --vapp web --vm web01 --disk disk0=96M:"$work/content" >/dev/null
"$DS" create-vm --root "$work/ds" --org acme --vdc vdc1 --vapp big --vm big01 --disk disk0=2G:raw >/dev/null
"$DS" write --vm "$work/ds/acme/vdc1/big/big01" --disk disk0 --offset 0 --random 1500000000 --seed 5 >/dev/null
"$DS" create-vm --root "$work/ds" --org globex --vdc vdc1 --vapp big --vm big02 --disk disk0=1G:raw >/dev/null
"$DS" create-vm --root "$work/ds" --org initech --vdc vdc1 --vapp web --vm web03 --disk disk0=96M:raw >/dev/null
"$DS" write --vm "$work/ds/initech/vdc1/web/web03" --disk disk0 --offset 0 --random 60000000 --seed 7 >/dev/null
"$DS" write --vm "$work/ds/globex/vdc1/big/big02" --disk disk0 --offset 0 --random 900000000 --seed 6 >/dev/null
vm_id() { "$DS" show --vm "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
WEB=$(vm_id "$work/ds/acme/vdc1/web/web01"); BIG=$(vm_id "$work/ds/acme/vdc1/big/big01"); BIG2=$(vm_id "$work/ds/globex/vdc1/big/big02"); WEB3=$(vm_id "$work/ds/initech/vdc1/web/web03")
TEN=$(cat /proc/sys/kernel/random/uuid); REPO=$(cat /proc/sys/kernel/random/uuid)

start_mover() { # $1 = log suffix
  CAIRN_MOVER_HTTP_PORT=0 CAIRN_DATASTORE_ROOT="$work/ds" CAIRN_MASTER_KEY_FILE="$work/master.key" \
  CAIRN_MOVER_LEASE_SECONDS=3 CAIRN_MOVER_CONSUMER_GROUP="cairn-mover-it-$run" CAIRN_MOVER_WORKERS=2 \
  CAIRN_MOVER_PER_TENANT=1 CAIRN_MOVER_SNAPSHOT_MODE=lock \
    "$BIN/services/mover/cairn-mover" >>"$work/mover$1.log" 2>&1 &
  mover_pid=$!; pids+=("$mover_pid")
  for _ in $(seq 1 100); do
    if grep -q 'ready to serve' "$work/mover$1.log"; then
      maddr=$(grep -o 'ready to serve on [^ ]*' "$work/mover$1.log" | tail -n 1 | sed 's/.* on //')
      return
    fi
    sleep 0.2
  done
  fail "mover did not start"
}
# Publish through Kafka: a row in an outbox that the running mover's relay sends.
send() { # type key data [event id]
  local id=${4:-$(uuid)}
  q "BEGIN; INSERT INTO catalog.outbox (id, topic, key, type, source, tenant_id, data) VALUES
     ('$id', 'cairn.backup', '$2', '$1', '/tests/mover', '$TEN', '$3'::jsonb);
     NOTIFY cairn_outbox_catalog; COMMIT;"
}
task() { # task_id vm mode index [event id]
  send backup.task.requested "$2" "{\"task_id\":\"$1\",\"session_id\":\"$1\",\"tenant_id\":\"$TEN\",\"vm_id\":\"$2\",\"repository_id\":\"$REPO\",\"mode\":\"$3\",\"options\":{\"index_files\":$4,\"zstd_level\":3}}" "${5:-}"
}
state() { q "SELECT state FROM catalog.tasks WHERE task_id = '$1'"; }
wait_state() { # task state timeout_s
  local deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do [[ $(state "$1") == "$2" ]] && return 0; sleep 0.1; done
  fail "task $1 is '$(state "$1")', expected $2"
}
uuid() { cat /proc/sys/kernel/random/uuid; }

start_mover 1   # applies the catalog migrations
q "INSERT INTO catalog.repositories (id, name, path) VALUES ('$REPO', 'it-$run', '$work/repo')"

echo "-- full backup with file index"
T1=$(uuid); task "$T1" "$WEB" full true
wait_state "$T1" success 60
[[ $(q "SELECT count(*) FROM catalog.restore_points WHERE task_id = '$T1'") == 1 ]] || fail "no restore point"
n=$(q "SELECT count(*) FROM catalog.file_index WHERE restore_point_id = '$T1'")
expect=$(( $(find "$work/content" -mindepth 1 | wc -l) + 1 )) # + lost+found
[[ $n == "$expect" ]] || fail "file index has $n rows, the tree has $expect entries"
[[ $(q "SELECT size FROM catalog.file_index WHERE restore_point_id = '$T1' AND path = '/etc/motd'") == 17 ]] || fail "/etc/motd not indexed"
fps=$(q "SELECT figures->>'files_per_second' FROM catalog.tasks WHERE task_id = '$T1'")
[[ -n $fps && $fps -gt 0 ]] || fail "no files_per_second in the task's figures ('$fps')"
echo "   restore point $T1, $n files indexed ($fps files/s)"

echo "-- the same task delivered twice is one task and one restore point"
DUP=$(uuid); task "$T1" "$WEB" full true "$DUP"
for _ in $(seq 1 300); do
  [[ $(q "SELECT count(*) FROM catalog.applied_events WHERE event_id = '$DUP'") == 1 ]] && break; sleep 0.1
done
[[ $(q "SELECT count(*) FROM catalog.applied_events WHERE event_id = '$DUP'") == 1 ]] || fail "the duplicate delivery was never consumed"
[[ $(q "SELECT count(*) FROM catalog.tasks WHERE task_id = '$T1'") == 1 ]] || fail "duplicate task rows"
[[ $(q "SELECT count(*) FROM catalog.restore_points WHERE task_id = '$T1'") == 1 ]] || fail "duplicate restore points"

echo "-- incremental with change tracking reads only the changed chunk"
"$DS" write --vm "$work/ds/acme/vdc1/web/web01" --disk disk0 --offset 50000000 --random 4096 --seed 9 >/dev/null
T2=$(uuid); task "$T2" "$WEB" incremental false
wait_state "$T2" success 60
read -r rd new total < <(q "SELECT bytes_read, chunks_new, chunks_total FROM catalog.restore_points WHERE task_id = '$T2'" | tr '|' ' ')
[[ $rd -le 2097152 && $new -le 1 ]] || fail "incremental read $rd bytes, $new new chunks (one 2 MiB chunk changed)"
[[ $(q "SELECT parent_id FROM catalog.restore_points WHERE task_id = '$T2'") == "$T1" ]] || fail "parent"
echo "   read $rd bytes, $new new of $total chunks"

echo "-- both restore points restore byte-exact (keys as the mover stores them)"
web_img=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["disks"][0]["file"])' "$work/ds/acme/vdc1/web/web01/vm.json")
[[ $web_img == /* ]] || web_img=$work/ds/acme/vdc1/web/web01/$web_img
"${CAIRN_RP_RESTORE:?}" "$work/master.key" "$work/repo" "$TEN" "$T2" disk0 "$work/restored-t2.img" >/dev/null \
  || fail "restore of $T2"
cmp -s "$work/restored-t2.img" "$web_img" || fail "restore of $T2 differs from the disk"
"$CAIRN_RP_RESTORE" "$work/master.key" "$work/repo" "$TEN" "$T1" disk0 "$work/restored-t1.img" >/dev/null \
  || fail "restore of $T1"
cmp -s "$work/restored-t1.img" "$web_img" && fail "restore of $T1 should predate the write"
cmp -s <(head -c 50000000 "$work/restored-t1.img") <(head -c 50000000 "$web_img") || fail "restore of $T1: unchanged region differs"
rm -f "$work"/restored-*.img
echo "   $T2 equals the disk; $T1 differs only where the guest wrote afterwards"

echo "-- cairn-engine (the provider's troubleshooting tool) on the mover's repository"
# The wrapped tenant key is the same blob in catalog.tenant_keys and in a file keystore:
# export it (docs/engine.md, "Inspecting a mover repository"), then verify and restore.
mkdir -m 700 "$work/keys"
q "SELECT encode(wrapped, 'hex') FROM catalog.tenant_keys WHERE tenant_id = '$TEN'" \
  | python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read().strip()))' >"$work/keys/$TEN.key"
[[ -s $work/keys/$TEN.key ]] || fail "no wrapped key for tenant $TEN in the catalog"
eng() { CAIRN_MASTER_KEY_FILE="$work/master.key" "$BIN/libs/engine/cairn-engine" "$@" --repo "$work/repo" --keys "$work/keys" --tenant "$TEN"; }
eng list | grep -q "$T2" || fail "cairn-engine list does not show $T2"
eng verify --rp "$T2" >/dev/null || fail "cairn-engine verify $T2"
eng restore --rp "$T2" --disk disk0 --out "$work/restored-cli.img" >/dev/null || fail "cairn-engine restore $T2"
cmp -s "$work/restored-cli.img" "$web_img" || fail "cairn-engine restore of $T2 differs from the disk"
rm -f "$work/restored-cli.img"
echo "   list, verify and restore work with the key exported from the catalog"

echo "-- a stop request ends a running task within 2 s as stopped"
T3=$(uuid); task "$T3" "$BIG" full false
wait_state "$T3" running 30
sleep 0.5
t0=$(date +%s.%N)
send backup.task.stop.requested "$BIG" "{\"task_id\":\"$T3\",\"tenant_id\":\"$TEN\",\"requested_at\":\"2026-01-01T00:00:00Z\"}"
wait_state "$T3" stopped 10
dt=$(python3 -c "print(round($(date +%s.%N) - $t0, 2))")
python3 -c "import sys; sys.exit(0 if $dt <= 2.0 else 1)" || fail "stop took ${dt}s"
[[ $(q "SELECT count(*) FROM catalog.restore_points WHERE task_id = '$T3'") == 0 ]] || fail "stopped task left a restore point"
echo "   stopped in ${dt}s"

echo "-- SIGKILL mid-task leaves no restore point; the retry completes reusing stored chunks"
T4=$(uuid); task "$T4" "$BIG" full false
wait_state "$T4" running 30
for _ in $(seq 1 100); do
  stored=$(du -sb "$work/repo" | cut -f1); ((stored > 300000000)) && break; sleep 0.1
done
kill -KILL "$mover_pid"; wait "$mover_pid" 2>/dev/null || true
[[ $(q "SELECT count(*) FROM catalog.restore_points WHERE task_id = '$T4'") == 0 ]] || fail "killed task left a restore point"
[[ $(state "$T4") == running ]] || fail "killed task is $(state "$T4")"
start_mover 2
wait_state "$T4" success 90
read -r att st2 < <(q "SELECT attempts, figures->>'bytes_stored' FROM catalog.tasks WHERE task_id = '$T4'" | tr '|' ' ')
[[ $att == 2 ]] || fail "attempts $att"
((st2 < 1500000000)) || fail "retry stored $st2 bytes: nothing reused"
[[ $(q "SELECT count(*) FROM catalog.restore_points WHERE task_id = '$T4'") == 1 ]] || fail "restore point after retry"
echo "   resumed on attempt $att, stored $st2 new bytes (the rest reused)"

echo "-- tasks run in parallel across tenants, one at a time per tenant (per_tenant=1), at most 2 (workers=2)"
TEN2=$(uuid); TEN3=$(uuid)
T6=$(uuid); T7=$(uuid); T8=$(uuid); T9=$(uuid)
task "$T6" "$BIG" full false; task "$T7" "$WEB" full false
TEN_SAVE=$TEN; TEN=$TEN2; task "$T8" "$BIG2" full false; TEN=$TEN3; task "$T9" "$WEB3" full false; TEN=$TEN_SAVE
same=0; across=0; most=0; gmost=-1
for _ in $(seq 1 900); do
  # the mover's own gauge of attempts running in it (a task run twice would count twice)
  g=$(curl -s --max-time 2 "http://$maddr/metrics" | awk '/^cairn_mover_tasks_running/ {print int($2)}')
  [[ -n $g ]] && ((g > gmost)) && gmost=$g
  running=$(q "SELECT string_agg(task_id::text, ' ') FROM catalog.tasks WHERE state = 'running' AND task_id IN ('$T6', '$T7', '$T8', '$T9')")
  [[ $running == *$T6* && $running == *$T7* ]] && same=1
  [[ ($running == *$T6* || $running == *$T7*) && $running == *$T8* ]] && across=1
  n_run=$(wc -w <<<"$running"); ((n_run > most)) && most=$n_run
  done_n=$(q "SELECT count(*) FROM catalog.tasks WHERE task_id IN ('$T6', '$T7', '$T8', '$T9') AND state IN ('success', 'warning', 'failed', 'stopped')")
  [[ $done_n == 4 ]] && break
  sleep 0.1
done
[[ $done_n == 4 ]] || fail "parallel tasks did not finish"
[[ $same == 0 ]] || fail "two tasks of one tenant ran at once"
[[ $across == 1 ]] || fail "tasks of two tenants never ran at once"
((most <= 2)) || fail "$most tasks ran at once with CAIRN_MOVER_WORKERS=2"
((gmost >= 1 && gmost <= 2)) || fail "cairn_mover_tasks_running peaked at $gmost (workers=2; -1: never scraped)"
for t in $T6 $T7 $T8 $T9; do [[ $(state "$t") == success ]] || fail "task $t: $(state "$t")"; done
echo "   two tenants in parallel, never two of one tenant, never more than 2 of 3 tenants (gauge peak $gmost)"

echo "-- row-level security: the mover's role sees one tenant's rows, and only when scoped"
for t in tasks restore_points restore_point_disks file_index tenant_keys; do
  [[ $(q "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = 'catalog.$t'::regclass") == t ]] || fail "catalog.$t lacks FORCE RLS"
done
[[ $(q "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = 'cairn_mover_rt'") == f ]] || fail "cairn_mover_rt is privileged"
[[ $(q "SELECT count(*) FROM pg_tables WHERE tableowner = 'cairn_mover_rt'") == 0 ]] || fail "cairn_mover_rt owns tables"
rls() { psql -qAt -v ON_ERROR_STOP=1 -c "BEGIN; SET LOCAL ROLE cairn_mover_rt; $1; $2; COMMIT;" | tail -n 1; }
[[ $(rls "SELECT set_config('app.tenant_id', '$TEN', true)" "SELECT count(*) FROM catalog.restore_points") -ge 3 ]] || fail "own tenant's restore points not visible"
[[ $(rls "SELECT set_config('app.tenant_id', '$(uuid)', true)" "SELECT count(*) FROM catalog.restore_points") == 0 ]] || fail "another tenant's restore points visible"
[[ $(rls "SELECT 1" "SELECT count(*) FROM catalog.file_index") == 0 ]] || fail "file index visible without a tenant"
psql -qAt -c "BEGIN; SET LOCAL ROLE cairn_mover_rt; SELECT set_config('app.tenant_id', '$(uuid)', true); INSERT INTO catalog.tenant_keys VALUES ('$TEN', '\\x00'); COMMIT;" >/dev/null 2>&1 \
  && fail "wrote a row for another tenant"
echo "   FORCE RLS on 5 tables; other tenants' rows invisible and unwritable"

echo "-- an undecodable task does not block the ones behind it"
send backup.task.requested "$WEB" '{"task_id":"not-a-uuid"}'
T5=$(uuid); task "$T5" "$WEB" incremental false
wait_state "$T5" success 60

echo "-- events reached Kafka: task events on cairn.backup, chunk.stored on cairn.repository"
# Read both topics with throwaway consumer groups through the stack's Kafka tooling.
consume() { timeout 60 java -cp "$CAIRN_KAFKA_LIBS/*" org.apache.kafka.tools.consumer.ConsoleConsumer \
  --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --topic "$1" --from-beginning \
  --property print.headers=true --property print.timestamp=true --property print.key=true \
  --timeout-ms 8000 2>/dev/null || true; }
out=$(consume cairn.backup); rout=$(consume cairn.repository)
for t in backup.task.progress snapshot.taken backup.task.finished; do
  grep -q "ce_type:$t" <<<"$out" || fail "no $t event on cairn.backup"
done
# one grep per check: `grep | grep -q` under pipefail returns 141 (SIGPIPE) on large output
grep -qE "ce_type:chunk\.stored.*$REPO" <<<"$out" && fail "chunk.stored on cairn.backup (it belongs on cairn.repository)"
grep -qE "ce_type:chunk\.stored.*$REPO" <<<"$rout" || fail "no chunk.stored event on cairn.repository"
grep -q "\"task_id\":\"$T3\".*\"status\":\"stopped\"\|\"status\":\"stopped\".*\"task_id\":\"$T3\"" <<<"$out" || fail "no stopped finish event for $T3"
# T8 (one attempt, ~860 new chunks): chunk.stored is batched and adds up to the restore
# point's new chunks; progress events carry every field and, over all of this run's tasks,
# come about once a second (a task shorter than ~2 s has only a timed report and the final
# one, hence no interior interval; the long tasks of this run provide several). T4 is left
# out: its two attempts, around a mover restart, share one task id.
new8=$(q "SELECT chunks_new FROM catalog.restore_points WHERE task_id = '$T8'")
cat >"$work/events.py" <<'PY'
import json, sys
task, repo, new, tasks = sys.argv[1], sys.argv[2], int(sys.argv[3]), set(sys.argv[4:])
prog, stored, allprog, durations = [], [], {}, {}
for line in sys.stdin:
    parts = line.rstrip("\n").split("\t")  # CreateTime:ms, headers, key, value
    if len(parts) < 4 or not parts[3].startswith("{"):
        continue
    ts, headers, key, value = int(parts[0].split(":")[1]), parts[1], parts[2], json.loads(parts[3])
    tid = value.get("task_id")
    if tid not in tasks:
        continue
    if "ce_type:backup.task.progress" in headers:
        allprog.setdefault(tid, []).append(ts)
    elif "ce_type:backup.task.finished" in headers:
        durations[tid] = value["figures"]["duration_ms"]
    if tid != task:
        continue
    if "ce_type:backup.task.progress" in headers:
        prog.append((ts, value))
    elif "ce_type:chunk.stored" in headers:
        if key != repo:
            sys.exit(f"chunk.stored keyed by {key}, not the repository {repo}")
        stored.append(value)
total = sum(v["count"] for v in stored)
if total != new or not stored or len(stored) > max(1, new // 10):
    sys.exit(f"chunk.stored: {len(stored)} events adding up to {total} chunks; the restore point has {new}")
for _, v in prog:
    missing = [k for k in ("bytes_read", "bytes_stored", "percent", "speed_bps") if k not in v]
    if missing:
        sys.exit(f"progress event without {missing}")
if not prog:
    sys.exit(f"no progress events for {task}")
gaps = sorted(g for v in allprog.values() for g in ((b - a) / 1000 for a, b in zip(v, v[1:-1])))
if any(d >= 4000 for d in durations.values()) and not gaps:
    sys.exit(f"a task ran for 4 s or more, yet no progress interval was seen: {durations}")
if gaps and (not 0.8 <= gaps[len(gaps) // 2] <= 1.5 or gaps[-1] > 3.0):
    sys.exit(f"progress intervals {gaps}")
print(f"   {task}: {len(stored)} chunk.stored events for {total} chunks; {len(gaps)} progress intervals"
      + (f", median {gaps[len(gaps) // 2]:.2f} s, max {gaps[-1]:.2f} s" if gaps else " (every task under 2 s)"))
PY
python3 "$work/events.py" "$T8" "$REPO" "$new8" "$T1" "$T2" "$T3" "$T5" "$T6" "$T7" "$T8" "$T9" \
  <<<"$out"$'\n'"$rout" || fail "event checks for $T8"
echo "-- no plaintext canary or master key in the mover's logs or events"
keyhex=$(od -An -tx1 "$work/master.key" | tr -d ' \n'); keyb64=$(base64 -w0 "$work/master.key")
printf '%s\n%s\n' "$out" "$rout" >"$work/events.txt"
for f in "$work"/mover*.log "$work/events.txt"; do
  grep -qF "$CANARY" "$f" && fail "guest plaintext canary found in $f"
  grep -qF "canary.txt" "$f" && fail "a guest path found in $f"
  grep -qiF "$keyhex" "$f" && fail "master key (hex) found in $f"
  grep -qF "$keyb64" "$f" && fail "master key (base64) found in $f"
done
echo "   canary and key absent"
echo "PASS"
