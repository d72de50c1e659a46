# shellcheck shell=bash
# stack-kafka.sh - the stack's single-node Apache Kafka broker (KRaft, broker+controller)
# on Java 17, run from the Maven Central jars that scripts/fetch-kafka.sh caches.

KAFKA_TOPICS=(cairn.identity cairn.jobs cairn.backup cairn.restore cairn.repository cairn.dlq)
declare -A KAFKA_TOPIC_PARTITIONS=(
  [cairn.identity]=3 [cairn.jobs]=3 [cairn.backup]=3 [cairn.restore]=3
  [cairn.repository]=3 [cairn.dlq]=1
)

kafka_init_paths() {
  KAFKA_DIR=$STACK_DIR/kafka
  KAFKA_DATA=$KAFKA_DIR/data
  KAFKA_CONF=$KAFKA_DIR/server.properties
  KAFKA_LOG_DIR=$STACK_LOGS/kafka
  KAFKA_LOG=$KAFKA_LOG_DIR/server.log
  KAFKA_PID_FILE=$STACK_RUN/kafka.pid
  KAFKA_STOPPING_PID=
  KAFKA_TOPIC_LIST=
}

kafka_pid() {
  [[ -r "$KAFKA_PID_FILE" ]] || return 1
  head -n 1 "$KAFKA_PID_FILE" 2>/dev/null
}

kafka_running() {
  local pid
  pid=$(kafka_pid) || return 1
  stack_pid_alive "$pid" "$KAFKA_CONF"
}

kafka_ensure_jars() {
  if [[ ! -f "$KAFKA_HOME/.complete" ]]; then
    stack_say "kafka: jars missing in $KAFKA_LIBS, running scripts/fetch-kafka.sh"
    KAFKA_VERSION=$KAFKA_VERSION "$REPO/scripts/fetch-kafka.sh" ||
      stack_die "kafka: scripts/fetch-kafka.sh failed"
  fi
  compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null ||
    stack_die "kafka: no kafka_2.13 jar in $KAFKA_LIBS"
  command -v java >/dev/null || stack_die "kafka: java not found (Java 17, see scripts/deps.sh)"
}

# Client-side files the command-line tools use (also needed by `scripts/stack topics`).
kafka_write_tool_conf() {
  mkdir -p "$KAFKA_DIR"
  cat >"$KAFKA_DIR/tools-log4j.properties" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
  cat >"$KAFKA_DIR/admin.properties" <<'EOF'
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF
}

kafka_tool() {
  [[ -f "$KAFKA_DIR/tools-log4j.properties" ]] || kafka_write_tool_conf
  java -Xmx256m -Xms32m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto \
    -Djava.awt.headless=true -Dlog4j.configuration="file:$KAFKA_DIR/tools-log4j.properties" \
    -cp "$KAFKA_LIBS/*" "$@"
}

# kafka_topics ARGS... - TopicCommand against this stack's broker.
kafka_topics() {
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$CAIRN_KAFKA_PORT" \
    --command-config "$KAFKA_DIR/admin.properties" "$@"
}

kafka_write_conf() {
  mkdir -p "$KAFKA_DATA" "$KAFKA_LOG_DIR"
  cat >"$KAFKA_CONF" <<EOF
# written by scripts/stack up
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CAIRN_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$CAIRN_KAFKA_PORT,CONTROLLER://127.0.0.1:$CAIRN_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$CAIRN_KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
group.initial.rebalance.delay.ms=0
# a broker killed with SIGKILL re-registers after its old session expires: keep it short
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
auto.create.topics.enable=false
delete.topic.enable=true
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
EOF
  cat >"$KAFKA_DIR/log4j.properties" <<'EOF'
# written by scripts/stack up (reload4j); kafka.logs.dir is set on the java command line
log4j.rootLogger=INFO, server
log4j.appender.server=org.apache.log4j.RollingFileAppender
log4j.appender.server.File=${kafka.logs.dir}/server.log
log4j.appender.server.MaxFileSize=20MB
log4j.appender.server.MaxBackupIndex=5
log4j.appender.server.layout=org.apache.log4j.PatternLayout
log4j.appender.server.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.appender.state=org.apache.log4j.RollingFileAppender
log4j.appender.state.File=${kafka.logs.dir}/state-change.log
log4j.appender.state.MaxFileSize=20MB
log4j.appender.state.MaxBackupIndex=2
log4j.appender.state.layout=org.apache.log4j.PatternLayout
log4j.appender.state.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.state.change.logger=INFO, state
log4j.additivity.state.change.logger=false
log4j.logger.kafka.request.logger=WARN
EOF
  kafka_write_tool_conf
}

# The cluster id lives in the formatted data dir; kafka/cluster.id keeps a copy.
kafka_cluster_id() {
  local meta=$KAFKA_DATA/meta.properties id
  if [[ -r "$meta" ]]; then
    id=$(sed -n 's/^cluster\.id=//p' "$meta")
  elif [[ -r "$KAFKA_DIR/cluster.id" ]]; then
    id=$(<"$KAFKA_DIR/cluster.id")
  else
    # 16 random bytes, URL-safe base64 without padding: a Kafka Uuid
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
  fi
  printf '%s\n' "$id" >"$KAFKA_DIR/cluster.id"
  printf '%s' "$id"
}

kafka_start() {
  kafka_ensure_jars
  kafka_write_conf
  local cid
  cid=$(kafka_cluster_id)
  if [[ ! -f "$KAFKA_DATA/meta.properties" ]]; then
    stack_say "kafka: formatting $KAFKA_DATA (cluster id $cid)"
    if ! kafka_tool kafka.tools.StorageTool format -t "$cid" -c "$KAFKA_CONF" \
      --ignore-formatted >>"$KAFKA_LOG_DIR/format.log" 2>&1; then
      stack_err "kafka: storage format failed"
      stack_log_tail "$KAFKA_LOG_DIR/format.log"
      return 1
    fi
  fi
  local heap
  read -r -a heap <<<"$CAIRN_KAFKA_HEAP_OPTS"
  stack_say "kafka: starting on 127.0.0.1:$CAIRN_KAFKA_PORT (controller $CAIRN_KAFKA_CONTROLLER_PORT)"
  printf '\n==== %s scripts/stack up ====\n' "$(date -u +%FT%TZ)" >>"$KAFKA_LOG_DIR/stdout.log"
  # setsid: its own session, so a terminal's ^C or a job runner's process-group
  # kill does not take the broker down; setsid execs java, so $! is java's pid.
  setsid java "${heap[@]}" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true -Dlog4j.configuration="file:$KAFKA_DIR/log4j.properties" \
    -Dkafka.logs.dir="$KAFKA_LOG_DIR" -cp "$KAFKA_LIBS/*" \
    kafka.Kafka "$KAFKA_CONF" >>"$KAFKA_LOG_DIR/stdout.log" 2>&1 </dev/null 9>&- &
  echo "$!" >"$KAFKA_PID_FILE"
}

# Answers when the broker serves metadata: the topic list succeeds.
kafka_wait_ready() {
  local deadline=$((SECONDS + STACK_TIMEOUT)) pid
  pid=$(kafka_pid)
  while :; do
    if ! stack_pid_alive "$pid" "$KAFKA_CONF"; then
      stack_err "kafka exited while starting (pid $pid)"
      stack_log_tail "$KAFKA_LOG"
      stack_log_tail "$KAFKA_LOG_DIR/stdout.log" 10
      return 1
    fi
    if stack_tcp_open "$CAIRN_KAFKA_PORT" &&
      KAFKA_TOPIC_LIST=$(kafka_topics --list 2>"$KAFKA_LOG_DIR/topics.err"); then
      return 0
    fi
    if ((SECONDS >= deadline)); then
      stack_err "kafka did not answer within ${STACK_TIMEOUT}s"
      stack_log_tail "$KAFKA_LOG"
      stack_log_tail "$KAFKA_LOG_DIR/topics.err" 5
      return 1
    fi
    sleep 0.5
  done
}

# Create the cairn topics missing from KAFKA_TOPIC_LIST (set by kafka_wait_ready) (in parallel; --if-not-exists makes a race
# with another creator harmless).
kafka_ensure_topics() {
  local t missing=() pids=() rc=0 i
  for t in "${KAFKA_TOPICS[@]}"; do
    grep -qxF -- "$t" <<<"$KAFKA_TOPIC_LIST" || missing+=("$t")
  done
  ((${#missing[@]} == 0)) && return 0
  stack_say "kafka: creating topics ${missing[*]}"
  for t in "${missing[@]}"; do
    kafka_topics --create --if-not-exists --topic "$t" \
      --partitions "${KAFKA_TOPIC_PARTITIONS[$t]}" --replication-factor 1 \
      >"$KAFKA_LOG_DIR/create-$t.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    if ! wait "${pids[i]}"; then
      stack_err "kafka: creating topic ${missing[i]} failed"
      stack_log_tail "$KAFKA_LOG_DIR/create-${missing[i]}.log" 10
      rc=1
    fi
  done
  return "$rc"
}

kafka_up() {
  local t0=$SECONDS
  if kafka_running; then
    stack_say "kafka: already running (pid $(kafka_pid))"
  else
    kafka_start || return 1
  fi
  kafka_wait_ready || return 1
  kafka_ensure_topics || return 1
  stack_say "kafka: ready in $((SECONDS - t0))s (pid $(kafka_pid), port $CAIRN_KAFKA_PORT)"
}

kafka_signal_stop() {
  KAFKA_STOPPING_PID=
  if ! kafka_running; then
    stack_say "kafka: not running"
    rm -f "$KAFKA_PID_FILE"
    return 0
  fi
  KAFKA_STOPPING_PID=$(kafka_pid)
  kill -TERM "$KAFKA_STOPPING_PID" 2>/dev/null || true
}

kafka_wait_stop() {
  local pid=$KAFKA_STOPPING_PID
  [[ -n "$pid" ]] || return 0
  local deadline=$((SECONDS + STACK_STOP_TIMEOUT))
  while stack_pid_alive "$pid" "$KAFKA_CONF"; do
    if ((SECONDS >= deadline)); then
      stack_err "kafka: pid $pid ignored SIGTERM for ${STACK_STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  if stack_pid_alive "$pid" "$KAFKA_CONF"; then
    stack_err "kafka: pid $pid still alive"
    return 1
  fi
  rm -f "$KAFKA_PID_FILE"
  stack_say "kafka: stopped (pid $pid)"
}

kafka_status() {
  local pid=- state=down
  if kafka_running; then
    pid=$(kafka_pid)
    stack_tcp_open "$CAIRN_KAFKA_PORT" && state=up
  fi
  printf '%-11s %-5s %-8s %-6s %s\n' kafka "$state" "$pid" "$CAIRN_KAFKA_PORT" \
    "controller $CAIRN_KAFKA_CONTROLLER_PORT, $KAFKA_DATA"
  [[ $state == up ]]
}
