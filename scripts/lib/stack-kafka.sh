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

# A small Admin-client program (source below) waits for the broker and creates the
# missing topics in one JVM, instead of one TopicCommand JVM per poll and per topic
# (which matters on a busy 2-core machine). It is compiled once per source version
# into $KAFKA_HOME/cairn-admin-<hash>/. Without javac, the TopicCommand path is used.
kafka_admin_source() {
  cat <<'JAVA'
import java.util.*;
import java.util.concurrent.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.errors.TopicExistsException;

/** scripts/stack helper: wait until the broker answers, create missing topics, list topics. */
public final class CairnKafkaAdmin {
  public static void main(String[] args) throws Exception {
    if (args.length < 2) {
      System.err.println("usage: CairnKafkaAdmin BOOTSTRAP TIMEOUT_MS [TOPIC:PARTITIONS...]");
      System.exit(64);
    }
    long deadline = System.currentTimeMillis() + Long.parseLong(args[1]);
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "3000");
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "5000");
    p.put(AdminClientConfig.RETRY_BACKOFF_MS_CONFIG, "100");
    p.put(AdminClientConfig.RECONNECT_BACKOFF_MS_CONFIG, "100");
    p.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");
    try (Admin admin = Admin.create(p)) {
      Set<String> have = null;
      Exception last = null;
      while (have == null) {
        try {
          have = admin.listTopics().names().get(3, TimeUnit.SECONDS);
        } catch (ExecutionException | TimeoutException e) {
          last = e;
          if (System.currentTimeMillis() >= deadline) {
            System.err.println("kafka did not answer: " + last);
            System.exit(2);
          }
          Thread.sleep(200);
        }
      }
      List<NewTopic> missing = new ArrayList<>();
      for (int i = 2; i < args.length; i++) {
        String[] tp = args[i].split(":", 2);
        if (!have.contains(tp[0]))
          missing.add(new NewTopic(tp[0], Integer.parseInt(tp[1]), (short) 1));
      }
      if (!missing.isEmpty()) {
        CreateTopicsResult r = admin.createTopics(missing);
        for (Map.Entry<String, KafkaFuture<Void>> e : r.values().entrySet()) {
          try {
            e.getValue().get(30, TimeUnit.SECONDS);
            System.err.println("created topic " + e.getKey());
          } catch (ExecutionException ex) {
            if (!(ex.getCause() instanceof TopicExistsException)) {
              System.err.println("creating topic " + e.getKey() + " failed: " + ex.getCause());
              System.exit(1);
            }
          }
        }
        have = admin.listTopics().names().get(10, TimeUnit.SECONDS);
      }
      new TreeSet<>(have).forEach(System.out::println);
    }
  }
}
JAVA
}

kafka_admin_build() {
  KAFKA_ADMIN_CP=
  [[ "${CAIRN_KAFKA_ADMIN:-helper}" == helper ]] || return 1
  command -v javac >/dev/null || return 1
  local hash dir tmp
  hash=$(kafka_admin_source | sha256sum | cut -c1-12)
  dir=$KAFKA_HOME/cairn-admin-$hash
  if [[ ! -f "$dir/CairnKafkaAdmin.class" ]]; then
    tmp=$(mktemp -d "$KAFKA_HOME/.cairn-admin.XXXXXX") || return 1
    kafka_admin_source >"$tmp/CairnKafkaAdmin.java"
    if ! javac -nowarn -cp "$KAFKA_LIBS/*" -d "$tmp" "$tmp/CairnKafkaAdmin.java" \
      >>"$KAFKA_LOG_DIR/admin-build.log" 2>&1; then
      stack_say "kafka: compiling the admin helper failed (see $KAFKA_LOG_DIR/admin-build.log), using TopicCommand"
      rm -rf "$tmp"
      return 1
    fi
    chmod 755 "$tmp"
    mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp" # another stack was faster
  fi
  KAFKA_ADMIN_CP=$dir
}

# Wait for the broker and create missing topics with the admin helper, watching that
# the broker stays alive meanwhile.
kafka_admin_ready_and_topics() {
  local pid deadline specs=() t apid rc=0
  pid=$(kafka_pid)
  deadline=$((SECONDS + STACK_TIMEOUT))
  for t in "${KAFKA_TOPICS[@]}"; do
    specs+=("$t:${KAFKA_TOPIC_PARTITIONS[$t]}")
  done
  java -Xmx256m -Xms32m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto \
    -Djava.awt.headless=true -Dlog4j.configuration="file:$KAFKA_DIR/tools-log4j.properties" \
    -cp "$KAFKA_LIBS/*:$KAFKA_ADMIN_CP" CairnKafkaAdmin "127.0.0.1:$CAIRN_KAFKA_PORT" \
    "$((STACK_TIMEOUT * 1000))" "${specs[@]}" >"$KAFKA_DIR/topics.out" 2>"$KAFKA_LOG_DIR/admin.log" &
  apid=$!
  while [[ -d "/proc/$apid" ]] && kill -0 "$apid" 2>/dev/null; do
    if ! stack_pid_alive "$pid" "$KAFKA_CONF"; then
      kill -TERM "$apid" 2>/dev/null || true
      wait "$apid" 2>/dev/null || true
      stack_err "kafka exited while starting (pid $pid)"
      stack_log_tail "$KAFKA_LOG"
      stack_log_tail "$KAFKA_LOG_DIR/stdout.log" 10
      return 1
    fi
    if ((SECONDS > deadline + 15)); then
      kill -TERM "$apid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  wait "$apid" || rc=$?
  if ((rc != 0)); then
    if ((rc == 2)); then
      stack_err "kafka did not answer within ${STACK_TIMEOUT}s"
    else
      stack_err "kafka: waiting for the broker / creating topics failed (exit $rc)"
    fi
    stack_log_tail "$KAFKA_LOG"
    stack_log_tail "$KAFKA_LOG_DIR/admin.log" 10
    return 1
  fi
  KAFKA_TOPIC_LIST=$(<"$KAFKA_DIR/topics.out")
  local created
  created=$(sed -n 's/^created topic //p' "$KAFKA_LOG_DIR/admin.log" | tr '\n' ' ')
  [[ -n "$created" ]] && stack_say "kafka: created topics $created"
  for t in "${KAFKA_TOPICS[@]}"; do
    grep -qxF -- "$t" <<<"$KAFKA_TOPIC_LIST" || {
      stack_err "kafka: topic $t missing after creation"
      return 1
    }
  done
}

kafka_up() {
  local t0=$SECONDS
  if kafka_running; then
    stack_say "kafka: already running (pid $(kafka_pid))"
  else
    kafka_start || return 1
  fi
  kafka_write_tool_conf
  if kafka_admin_build; then
    kafka_admin_ready_and_topics || return 1
  else
    kafka_wait_ready || return 1
    kafka_ensure_topics || return 1
  fi
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
