#!/usr/bin/env bash
# e2e_platform: the five services start against the real stack, apply their migrations,
# answer /readyz on their own port and through nginx, serve /metrics, refuse a bad
# configuration naming the variable, carry an event from one service's outbox to another
# service's consumer exactly once, and stop cleanly on SIGTERM.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
: "${CAIRN_STACK_DIR:?run through scripts/test (needs the test stack)}"
source "$CAIRN_STACK_DIR/env"
fail() { echo "FAIL: $*" >&2; exit 1; }
svcs=(auth scheduler mover restore stats)
trap '"$repo/scripts/services" stop >/dev/null 2>&1 || true' EXIT

echo "-- a bad setting stops a service with a message naming the variable"
out=$(CAIRN_MOVER_HTTP_PORT=80x "$CAIRN_BIN_DIR/services/mover/cairn-mover" 2>&1) && fail "mover started with a bad port"
grep -q 'CAIRN_MOVER_HTTP_PORT' <<<"$out" || fail "error does not name CAIRN_MOVER_HTTP_PORT: $out"
out=$(CAIRN_STATS_HTTP_PROT=1 "$CAIRN_BIN_DIR/services/stats/cairn-stats" 2>&1) && fail "stats started with an unknown setting"
grep -q 'CAIRN_STATS_HTTP_PROT' <<<"$out" || fail "error does not name CAIRN_STATS_HTTP_PROT: $out"
out=$(env -u CAIRN_DATABASE_URL "$CAIRN_BIN_DIR/services/auth/cairn-auth" 2>&1) && fail "auth started without a database"
grep -q 'DATABASE_URL' <<<"$out" || fail "error does not name the database variable: $out"

echo "-- start all five"
"$repo/scripts/services" start

echo "-- /readyz on each port and through the front door, /livez, /metrics"
for s in "${svcs[@]}"; do
  v="CAIRN_${s^^}_HTTP_PORT"; port=${!v}
  code=$(curl -s -o /tmp/e2e-ready.$$ -w '%{http_code}' "127.0.0.1:$port/readyz")
  [[ $code == 200 ]] || fail "$s /readyz on its port: $code $(cat /tmp/e2e-ready.$$)"
  grep -q '"postgresql":"ok"' /tmp/e2e-ready.$$ && grep -q '"kafka":"ok"' /tmp/e2e-ready.$$ || fail "$s readyz body"
  code=$(curl -s -o /dev/null -w '%{http_code}' "$CAIRN_HTTP_URL/api/v1/services/$s/readyz")
  [[ $code == 200 ]] || fail "$s /readyz through nginx: $code"
  code=$(curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:$port/livez")
  [[ $code == 200 ]] || fail "$s /livez: $code"
  curl -s "127.0.0.1:$port/metrics" | grep -q '^# TYPE http_requests_total counter' || fail "$s /metrics"
  # migrations recorded once
  n=$(psql -qAt -c "select count(*) from pg_namespace where nspname = (case '$s' when 'auth' then 'identity' when 'scheduler' then 'jobs' when 'mover' then 'catalog' when 'restore' then 'restores' else 'stats' end)")
  [[ $n == 1 ]] || fail "$s schema missing"
done
rm -f /tmp/e2e-ready.$$
code=$(curl -s -o /tmp/e2e-404.$$ -w '%{http_code}' "$CAIRN_HTTP_URL/api/v1/services/stats/no-such-route")
[[ $code == 404 ]] && grep -q '"error":{"code":"not_found"' /tmp/e2e-404.$$ || fail "unknown route: $code $(cat /tmp/e2e-404.$$)"
rm -f /tmp/e2e-404.$$
for s in scheduler mover restore stats; do
  code=$(curl -s -o /tmp/e2e-401.$$ -w '%{http_code}' "$CAIRN_HTTP_URL/api/v1/services/$s/whoami")
  [[ $code == 401 ]] && grep -q '"code":"unauthorized"' /tmp/e2e-401.$$ || fail "$s whoami without a token: $code"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer not.a.jwt' "$CAIRN_HTTP_URL/api/v1/services/$s/whoami")
  [[ $code == 401 ]] || fail "$s whoami with a bad token: $code"
done
rm -f /tmp/e2e-401.$$

echo "-- 500 events from the scheduler's outbox are counted exactly once by stats"
run=$(cat /proc/sys/kernel/random/uuid)
psql -q -v ON_ERROR_STOP=1 <<SQL
BEGIN;
INSERT INTO jobs.outbox (id, topic, key, type, source, tenant_id, data)
SELECT gen_random_uuid(), 'cairn.jobs', 'job-' || (g % 7), 'e2e.$run', '/cairn/scheduler',
       'tenant-e2e', jsonb_build_object('seq', g)
FROM generate_series(1, 500) g;
NOTIFY cairn_outbox_jobs;
COMMIT;
SQL
deadline=$((SECONDS + 60)); n=0
while ((SECONDS < deadline)); do
  n=$(PGOPTIONS='-c app.system=on' psql -qAt -c "select coalesce(sum(count),0) from stats.event_counts where type = 'e2e.$run'")
  [[ $n -ge 500 ]] && break; sleep 0.5
done
[[ $n == 500 ]] || fail "stats counted $n of 500 events"
sent=$(psql -qAt -c "select count(*) from jobs.outbox where type = 'e2e.$run' and sent_at is not null")
[[ $sent == 500 ]] || fail "outbox marked $sent of 500 sent"
echo "   counted 500, outbox sent 500"

echo "-- restart stats: the consumed offsets hold, nothing is counted twice"
"$repo/scripts/services" stop stats
"$repo/scripts/services" start stats
sleep 3
n=$(PGOPTIONS='-c app.system=on' psql -qAt -c "select coalesce(sum(count),0) from stats.event_counts where type = 'e2e.$run'")
[[ $n == 500 ]] || fail "after restart stats counts $n"
# Row-level security: the counts belong to tenant-e2e; another tenant sees none of them.
[[ $(psql -qAt -c "BEGIN; SET LOCAL ROLE cairn_stats_rt; SELECT set_config('app.tenant_id', 'tenant-other', true); SELECT count(*) FROM stats.event_counts WHERE type = 'e2e.$run'; COMMIT" | tail -n 1) == 0 ]] || fail "stats counts visible to another tenant"
[[ $(psql -qAt -c "BEGIN; SET LOCAL ROLE cairn_stats_rt; SELECT set_config('app.tenant_id', 'tenant-e2e', true); SELECT sum(count) FROM stats.event_counts WHERE type = 'e2e.$run'; COMMIT" | tail -n 1) == 500 ]] || fail "stats counts not visible to their tenant"
curl -s "127.0.0.1:$CAIRN_STATS_HTTP_PORT/metrics" | grep -q 'cairn_events_total' || fail "stats events metric"

echo "-- SIGTERM: each service stops cleanly"
"$repo/scripts/services" stop
for s in "${svcs[@]}"; do
  tail -n 5 "$CAIRN_STACK_DIR/logs/$s.log" | grep -q "\"$s stopped cleanly\"" || fail "$s did not log a clean stop"
done
echo "PASS"
