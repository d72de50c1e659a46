# shellcheck shell=bash
# stack-common.sh - configuration, ports, locking and small helpers for scripts/stack.
# Sourced by scripts/stack (which sets REPO); defines no behaviour on its own.

STACK_PORT_VARS=(
  CAIRN_PG_PORT CAIRN_KAFKA_PORT CAIRN_KAFKA_CONTROLLER_PORT CAIRN_HTTP_PORT
  CAIRN_AUTH_HTTP_PORT CAIRN_SCHEDULER_HTTP_PORT CAIRN_MOVER_HTTP_PORT
  CAIRN_RESTORE_HTTP_PORT CAIRN_STATS_HTTP_PORT
)
declare -A STACK_DEFAULTS=(
  [CAIRN_PG_PORT]=55432
  [CAIRN_KAFKA_PORT]=59092
  [CAIRN_KAFKA_CONTROLLER_PORT]=59093
  [CAIRN_HTTP_PORT]=8080
  [CAIRN_AUTH_HTTP_PORT]=8101
  [CAIRN_SCHEDULER_HTTP_PORT]=8102
  [CAIRN_MOVER_HTTP_PORT]=8103
  [CAIRN_RESTORE_HTTP_PORT]=8104
  [CAIRN_STATS_HTTP_PORT]=8105
  [CAIRN_PG_FSYNC]=on
  [CAIRN_PG_MAX_CONNECTIONS]=200
  [CAIRN_KAFKA_HEAP_OPTS]="-Xmx512m -Xms256m"
)
# Settings remembered in $CAIRN_STACK_DIR/stack.conf (CAIRN_PORTAL_DIR only when set
# explicitly, so a later portal build is picked up by default).
STACK_SAVED_VARS=("${STACK_PORT_VARS[@]}" CAIRN_PG_FSYNC CAIRN_PG_MAX_CONNECTIONS
  CAIRN_KAFKA_HEAP_OPTS CAIRN_PORTAL_DIR)
STACK_SERVICES=(auth scheduler mover restore stats)
KAFKA_VERSION=${KAFKA_VERSION:-3.9.1}
PG_BIN=${CAIRN_PG_BIN:-/usr/lib/postgresql/15/bin}

declare -A STACK_EXPLICIT=() # variables the caller set in the environment
declare -A STACK_SAVED=()    # values from stack.conf

stack_say() { printf 'stack: %s\n' "$*"; }
stack_err() { printf 'stack: error: %s\n' "$*" >&2; }
stack_die() {
  stack_err "$*"
  exit 1
}

# stack_log_tail FILE [LINES] - the end of a server's log, indented, on stderr.
stack_log_tail() {
  local f=$1 n=${2:-30}
  if [[ -r "$f" ]]; then
    printf '  --- last %d lines of %s ---\n' "$n" "$f" >&2
    tail -n "$n" "$f" | sed 's/^/  | /' >&2
  else
    printf '  (no log at %s)\n' "$f" >&2
  fi
}

stack_is_root() { [[ $(id -u) -eq 0 ]]; }

# stack_load_config - resolve every knob: environment > stack.conf > default.
stack_load_config() {
  STACK_DIR=$(realpath -m -- "${CAIRN_STACK_DIR:-$REPO/var/stack}")
  CAIRN_STACK_DIR=$STACK_DIR
  local v k val foreign=0
  STACK_PORTAL_AUTO=0
  if [[ "${CAIRN_PORTAL_DIR:-}" == auto ]]; then
    # forget a remembered portal dir and choose the default again
    STACK_PORTAL_AUTO=1
    unset CAIRN_PORTAL_DIR
  fi
  # Variables exported by another stack's env file do not configure this one.
  if [[ -n "${CAIRN_STACK_ENV_FOR:-}" && $(realpath -m -- "$CAIRN_STACK_ENV_FOR") != "$STACK_DIR" ]]; then
    foreign=1
  fi
  for v in "${STACK_SAVED_VARS[@]}"; do
    if ((foreign == 0)) && [[ -n "${!v+x}" && -n "${!v}" ]]; then
      STACK_EXPLICIT[$v]=1
    fi
  done
  if [[ -r "$STACK_DIR/stack.conf" ]]; then
    while IFS='=' read -r k val; do
      [[ -z "$k" || "$k" == \#* ]] && continue
      STACK_SAVED[$k]=$val
    done <"$STACK_DIR/stack.conf"
  fi
  for v in "${STACK_SAVED_VARS[@]}"; do
    [[ -n "${STACK_EXPLICIT[$v]:-}" ]] && continue
    unset "$v"
    [[ "$v" == CAIRN_PORTAL_DIR && $STACK_PORTAL_AUTO == 1 ]] && continue
    if [[ -n "${STACK_SAVED[$v]:-}" ]]; then
      printf -v "$v" '%s' "${STACK_SAVED[$v]}"
    elif [[ -n "${STACK_DEFAULTS[$v]:-}" ]]; then
      printf -v "$v" '%s' "${STACK_DEFAULTS[$v]}"
    fi
  done
  for v in "${STACK_PORT_VARS[@]}"; do
    [[ "${!v}" =~ ^[0-9]+$ ]] && ((${!v} > 0 && ${!v} < 65536)) ||
      stack_die "$v='${!v}' is not a TCP port"
  done
  case "$CAIRN_PG_FSYNC" in
    on | off) ;;
    *) stack_die "CAIRN_PG_FSYNC='$CAIRN_PG_FSYNC' must be on or off" ;;
  esac
  [[ "$CAIRN_PG_MAX_CONNECTIONS" =~ ^[0-9]+$ ]] ||
    stack_die "CAIRN_PG_MAX_CONNECTIONS='$CAIRN_PG_MAX_CONNECTIONS' is not a number"
  STACK_TIMEOUT=${CAIRN_STACK_TIMEOUT:-90}
  STACK_STOP_TIMEOUT=${CAIRN_STACK_STOP_TIMEOUT:-30}
  [[ "$STACK_TIMEOUT" =~ ^[0-9]+$ ]] || stack_die "CAIRN_STACK_TIMEOUT is not a number"
  [[ "$STACK_STOP_TIMEOUT" =~ ^[0-9]+$ ]] || stack_die "CAIRN_STACK_STOP_TIMEOUT is not a number"

  KAFKA_HOME=${CAIRN_CACHE:-$HOME/.cache/cairn}/kafka-$KAFKA_VERSION
  KAFKA_LIBS=$KAFKA_HOME/libs

  STACK_RUN=$STACK_DIR/run
  STACK_LOGS=$STACK_DIR/logs
  stack_resolve_portal
  pg_init_paths
  kafka_init_paths
  nginx_init_paths
}

# The portal folder: explicit CAIRN_PORTAL_DIR, else the first of portal/dist and
# portal holding an index.html, else a placeholder page inside the stack dir.
stack_resolve_portal() {
  STACK_PORTAL_PLACEHOLDER=0
  if [[ -n "${CAIRN_PORTAL_DIR:-}" ]]; then
    CAIRN_PORTAL_DIR=$(realpath -m -- "$CAIRN_PORTAL_DIR")
    return
  fi
  local d
  for d in "$REPO/portal/dist" "$REPO/portal"; do
    if [[ -f "$d/index.html" ]]; then
      CAIRN_PORTAL_DIR=$d
      return
    fi
  done
  CAIRN_PORTAL_DIR=$STACK_DIR/portal
  STACK_PORTAL_PLACEHOLDER=1
}

stack_prepare_dirs() {
  mkdir -p "$STACK_DIR" "$STACK_RUN" "$STACK_LOGS"
}

# stack_lock - one `up`/`down` at a time per stack dir (released when the script exits).
# Every server is started with fd 9 closed (9>&-), or it would hold the lock forever.
stack_lock() {
  exec 9>"$STACK_RUN/stack.lock"
  flock -w 300 9 || stack_die "another scripts/stack up/down holds $STACK_RUN/stack.lock"
}

# stack_pid_alive PID NEEDLE - the process exists and its command line contains NEEDLE
# (guards against a recycled pid).
stack_pid_alive() {
  local pid=$1 needle=$2 cmdline
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ "$cmdline" == *"$needle"* ]]
}

# stack_tcp_open PORT - something accepts connections on 127.0.0.1:PORT.
stack_tcp_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

stack_service_port() {
  local var="CAIRN_${1^^}_HTTP_PORT"
  printf '%s' "${!var}"
}

# stack_pick_free_ports N - N distinct ports in 20000..32767 that 127.0.0.1 can bind now.
stack_pick_free_ports() {
  python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
chosen = []
tries = 0
while len(chosen) < n:
    tries += 1
    if tries > 10000:
        sys.exit("no free ports found")
    p = random.randint(20000, 32767)
    if p in chosen:
        continue
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    chosen.append(p)
print(" ".join(map(str, chosen)))
PY
}

stack_pick_ports_exports() {
  local ports i=0 v
  read -r -a ports <<<"$(stack_pick_free_ports "${#STACK_PORT_VARS[@]}")"
  for v in "${STACK_PORT_VARS[@]}"; do
    printf 'export %s=%s\n' "$v" "${ports[i]}"
    i=$((i + 1))
  done
}

stack_any_running() {
  pg_running || kafka_running || nginx_running
}

# With CAIRN_STACK_FREE_PORTS=1 and nothing of this stack running, choose fresh free
# ports for every port variable the caller did not set.
stack_resolve_ports_for_up() {
  [[ "${CAIRN_STACK_FREE_PORTS:-0}" == 1 ]] || return 0
  if stack_any_running; then
    stack_say "CAIRN_STACK_FREE_PORTS=1 ignored: this stack is already running, keeping its ports"
    return 0
  fi
  local ports i=0 v
  read -r -a ports <<<"$(stack_pick_free_ports "${#STACK_PORT_VARS[@]}")"
  for v in "${STACK_PORT_VARS[@]}"; do
    if [[ -z "${STACK_EXPLICIT[$v]:-}" ]]; then
      printf -v "$v" '%s' "${ports[i]}"
    fi
    i=$((i + 1))
  done
}

# A running server keeps its port: refuse an `up` that asks for another one.
stack_check_running_ports() {
  local bad=()
  if pg_running && [[ "${STACK_SAVED[CAIRN_PG_PORT]:-$CAIRN_PG_PORT}" != "$CAIRN_PG_PORT" ]]; then
    bad+=("CAIRN_PG_PORT (running on ${STACK_SAVED[CAIRN_PG_PORT]})")
  fi
  if kafka_running; then
    [[ "${STACK_SAVED[CAIRN_KAFKA_PORT]:-$CAIRN_KAFKA_PORT}" != "$CAIRN_KAFKA_PORT" ]] &&
      bad+=("CAIRN_KAFKA_PORT (running on ${STACK_SAVED[CAIRN_KAFKA_PORT]})")
    [[ "${STACK_SAVED[CAIRN_KAFKA_CONTROLLER_PORT]:-$CAIRN_KAFKA_CONTROLLER_PORT}" != \
      "$CAIRN_KAFKA_CONTROLLER_PORT" ]] &&
      bad+=("CAIRN_KAFKA_CONTROLLER_PORT (running on ${STACK_SAVED[CAIRN_KAFKA_CONTROLLER_PORT]})")
  fi
  if ((${#bad[@]} > 0)); then
    stack_die "the stack in $STACK_DIR is running with other ports: ${bad[*]}; run 'scripts/stack down' first or unset these variables"
  fi
  return 0
}

# Fail before starting anything when a port this stack needs is taken by someone else.
stack_check_ports_free() {
  local busy=() v
  local -a check=()
  pg_running || check+=(CAIRN_PG_PORT)
  kafka_running || check+=(CAIRN_KAFKA_PORT CAIRN_KAFKA_CONTROLLER_PORT)
  nginx_running || check+=(CAIRN_HTTP_PORT)
  for v in "${check[@]}"; do
    stack_tcp_open "${!v}" && busy+=("$v=${!v}")
  done
  if ((${#busy[@]} > 0)); then
    stack_die "port(s) already in use by another process: ${busy[*]} (another stack? try CAIRN_STACK_FREE_PORTS=1 or 'scripts/stack pick-ports')"
  fi
  return 0
}

stack_save_conf() {
  local v tmp="$STACK_DIR/stack.conf.tmp"
  {
    echo "# written by scripts/stack up; environment variables override these"
    for v in "${STACK_SAVED_VARS[@]}"; do
      if [[ "$v" == CAIRN_PORTAL_DIR && -z "${STACK_EXPLICIT[$v]:-}" &&
        (-z "${STACK_SAVED[$v]:-}" || $STACK_PORTAL_AUTO == 1) ]]; then
        continue
      fi
      printf '%s=%s\n' "$v" "${!v}"
    done
  } >"$tmp"
  mv -f "$tmp" "$STACK_DIR/stack.conf"
  for v in "${STACK_SAVED_VARS[@]}"; do
    [[ "$v" == CAIRN_PORTAL_DIR ]] && continue
    STACK_SAVED[$v]=${!v}
  done
}

stack_env_lines() {
  local v svc
  printf 'export CAIRN_STACK_DIR=%q\n' "$STACK_DIR"
  printf 'export CAIRN_STACK_ENV_FOR=%q\n' "$STACK_DIR"
  printf 'export CAIRN_DATABASE_URL=%q\n' "postgresql://cairn@127.0.0.1:$CAIRN_PG_PORT/cairn"
  printf 'export CAIRN_PG_ADMIN_URL=%q\n' "postgresql://postgres@127.0.0.1:$CAIRN_PG_PORT/postgres"
  printf 'export PGHOST=127.0.0.1\n'
  printf 'export PGPORT=%s\n' "$CAIRN_PG_PORT"
  printf 'export PGUSER=cairn\n'
  printf 'export PGDATABASE=cairn\n'
  printf 'export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:%s\n' "$CAIRN_KAFKA_PORT"
  printf 'export CAIRN_KAFKA_HOME=%q\n' "$KAFKA_HOME"
  printf 'export CAIRN_KAFKA_LIBS=%q\n' "$KAFKA_LIBS"
  printf 'export CAIRN_HTTP_URL=%q\n' "http://127.0.0.1:$CAIRN_HTTP_PORT"
  for v in "${STACK_PORT_VARS[@]}"; do
    printf 'export %s=%s\n' "$v" "${!v}"
  done
}

stack_write_env() {
  stack_env_lines >"$STACK_DIR/env.tmp"
  mv -f "$STACK_DIR/env.tmp" "$STACK_DIR/env"
}

stack_print_summary() {
  cat <<EOF
stack: $STACK_DIR
  postgresql  postgresql://cairn@127.0.0.1:$CAIRN_PG_PORT/cairn   (admin: postgres, socket $PG_SOCK_DIR)
  kafka       127.0.0.1:$CAIRN_KAFKA_PORT   (controller $CAIRN_KAFKA_CONTROLLER_PORT, topics: ${KAFKA_TOPICS[*]})
  front door  http://127.0.0.1:$CAIRN_HTTP_PORT/   (portal: $CAIRN_PORTAL_DIR)
  services    auth $CAIRN_AUTH_HTTP_PORT, scheduler $CAIRN_SCHEDULER_HTTP_PORT, mover $CAIRN_MOVER_HTTP_PORT, restore $CAIRN_RESTORE_HTTP_PORT, stats $CAIRN_STATS_HTTP_PORT (upstreams, not started by the stack)
  logs        $STACK_LOGS/
  env         source $STACK_DIR/env
EOF
}

# stack_wait SECONDS WHAT LOG CHECK... - run CHECK until it succeeds; on timeout fail
# naming WHAT and showing the end of LOG.
stack_wait() {
  local timeout=$1 what=$2 log=$3
  shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      stack_err "$what did not answer within ${timeout}s"
      stack_log_tail "$log"
      return 1
    fi
    sleep 0.2
  done
}
