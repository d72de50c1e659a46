# shellcheck shell=bash
# stack-pg.sh - the stack's private PostgreSQL 15 cluster (initdb + pg_ctl).
# When run as root, every PostgreSQL binary that touches the data dir runs as the
# `postgres` user (runuser), and the cluster's files are owned by it.

pg_init_paths() {
  PG_DIR=$STACK_DIR/pg
  PG_DATA=$PG_DIR/data
  PG_SOCK_DIR=$PG_DIR/run
  PG_LOG=$STACK_LOGS/postgresql.log
}

# pg_as_owner CMD... - run CMD as the cluster's owner (postgres when we are root).
pg_as_owner() {
  if stack_is_root; then
    (cd "$PG_DIR" && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

pg_admin_psql() {
  psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK_DIR" -p "$CAIRN_PG_PORT" -U postgres -d postgres "$@"
}

pg_pid() {
  [[ -r "$PG_DATA/postmaster.pid" ]] || return 1
  head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null
}

pg_running() {
  local pid
  pid=$(pg_pid) || return 1
  stack_pid_alive "$pid" postgres
}

# The postgres user must be able to reach the stack dir: give o+x to any parent
# directory it cannot traverse (mktemp -d makes 0700 directories, for example).
pg_fix_traversal() {
  stack_is_root || return 0
  local d="" part parts
  IFS=/ read -r -a parts <<<"${STACK_DIR#/}"
  for part in "${parts[@]}"; do
    d+=/$part
    if ! runuser -u postgres -- test -x "$d" 2>/dev/null; then
      chmod o+x "$d"
      stack_say "postgresql: chmod o+x $d (so the postgres user can reach the stack dir)"
    fi
  done
}

pg_write_conf() {
  local sync=on
  [[ "$CAIRN_PG_FSYNC" == off ]] && sync=off
  cat >"$PG_DATA/cairn.conf" <<EOF
# written by scripts/stack up; overrides postgresql.conf
listen_addresses = '127.0.0.1'
port = $CAIRN_PG_PORT
unix_socket_directories = '$PG_SOCK_DIR'
max_connections = $CAIRN_PG_MAX_CONNECTIONS
shared_buffers = 128MB
fsync = $CAIRN_PG_FSYNC
synchronous_commit = $sync
full_page_writes = $sync
timezone = 'UTC'
log_timezone = 'UTC'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
log_connections = off
EOF
  stack_is_root && chown postgres:postgres "$PG_DATA/cairn.conf"
  return 0
}

pg_start() {
  [[ -x "$PG_BIN/initdb" ]] ||
    stack_die "postgresql: $PG_BIN/initdb not found (run scripts/deps.sh; CAIRN_PG_BIN overrides)"
  pg_fix_traversal
  mkdir -p "$PG_DIR" "$PG_SOCK_DIR"
  touch "$PG_LOG"
  if stack_is_root; then
    chown postgres:postgres "$PG_DIR" "$PG_SOCK_DIR" "$PG_LOG"
    if [[ -d "$PG_DATA" && $(stat -c %U "$PG_DATA") != postgres ]]; then
      chown -R postgres:postgres "$PG_DATA"
    fi
  fi
  if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
    stack_say "postgresql: initdb $PG_DATA"
    local nosync=()
    [[ "$CAIRN_PG_FSYNC" == off ]] && nosync=(--no-sync)
    if ! pg_as_owner "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 \
      --locale=C.UTF-8 --no-instructions "${nosync[@]}" >>"$PG_LOG" 2>&1; then
      stack_err "postgresql: initdb failed"
      stack_log_tail "$PG_LOG"
      return 1
    fi
    echo "include_if_exists = 'cairn.conf'" >>"$PG_DATA/postgresql.conf"
  fi
  pg_write_conf
  stack_say "postgresql: starting on 127.0.0.1:$CAIRN_PG_PORT"
  if ! pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$STACK_TIMEOUT" -s \
    start >>"$PG_LOG" 2>&1 9>&-; then
    stack_err "postgresql failed to start (pg_ctl start)"
    stack_log_tail "$PG_LOG"
    return 1
  fi
}

# Roles and database, idempotent. `cairn` owns database cairn (so it may create the
# per-service schemas); `cairn_analyst` is the read-only analyst role (NOLOGIN for now);
# `cairn_auth_rt` is the role auth's requests run as, under row-level security.
pg_bootstrap() {
  pg_admin_psql >>"$PG_LOG" 2>&1 <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cairn') THEN
    CREATE ROLE cairn LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cairn_analyst') THEN
    CREATE ROLE cairn_analyst NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
  END IF;
  -- auth's request role: row-level security binds it (not an owner, not BYPASSRLS);
  -- cairn switches to it per transaction (SET LOCAL ROLE), see docs/auth.md.
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cairn_auth_rt') THEN
    CREATE ROLE cairn_auth_rt NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
  END IF;
  GRANT cairn_auth_rt TO cairn;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cairn_mover_rt') THEN
    CREATE ROLE cairn_mover_rt NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
  END IF;
  GRANT cairn_mover_rt TO cairn;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cairn_stats_rt') THEN
    CREATE ROLE cairn_stats_rt NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
  END IF;
  GRANT cairn_stats_rt TO cairn;
END
$$;
SELECT 'CREATE DATABASE cairn OWNER cairn ENCODING ''UTF8'' TEMPLATE template0'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'cairn')
\gexec
SQL
}

pg_up() {
  local t0=$SECONDS
  if pg_running; then
    stack_say "postgresql: already running (pid $(pg_pid))"
  else
    pg_start || return 1
  fi
  stack_wait "$STACK_TIMEOUT" postgresql "$PG_LOG" \
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$CAIRN_PG_PORT" || return 1
  if ! pg_bootstrap; then
    stack_err "postgresql: creating roles/database failed"
    stack_log_tail "$PG_LOG"
    return 1
  fi
  local one
  one=$(psql -X -At -h 127.0.0.1 -p "$CAIRN_PG_PORT" -U cairn -d cairn -c 'select 1' 2>&1) ||
    true
  if [[ "$one" != 1 ]]; then
    stack_err "postgresql: 'select 1' as cairn failed: $one"
    stack_log_tail "$PG_LOG"
    return 1
  fi
  stack_say "postgresql: ready in $((SECONDS - t0))s (pid $(pg_pid), port $CAIRN_PG_PORT)"
}

pg_down() {
  if ! pg_running; then
    stack_say "postgresql: not running"
    return 0
  fi
  local pid
  pid=$(pg_pid)
  if pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$STACK_STOP_TIMEOUT" -s \
    stop >>"$PG_LOG" 2>&1; then
    stack_say "postgresql: stopped (pid $pid)"
    return 0
  fi
  stack_err "postgresql: fast shutdown timed out, using immediate"
  pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t "$STACK_STOP_TIMEOUT" -s \
    stop >>"$PG_LOG" 2>&1 || {
    stack_err "postgresql: pid $pid did not stop"
    return 1
  }
}

pg_status() {
  local pid=- state=down
  if pg_running; then
    pid=$(pg_pid)
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$CAIRN_PG_PORT" && state=up
  fi
  printf '%-11s %-5s %-8s %-6s %s\n' postgresql "$state" "$pid" "$CAIRN_PG_PORT" "$PG_DATA"
  [[ $state == up ]]
}
