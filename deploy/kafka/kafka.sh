#!/usr/bin/env bash
# Runs a real Apache Kafka broker (KRaft, combined broker+controller) on 127.0.0.1 without
# Docker, or a cluster of DFIP_KAFKA_NODES such nodes (a controller quorum of all of them).
# Jars come from Maven Central via deploy/kafka/pom.xml.
#
#   deploy/kafka/kafka.sh fetch    resolve the jars into the cache (idempotent)
#   deploy/kafka/kafka.sh up       fetch if needed, format storage, start, wait until ready
#   deploy/kafka/kafka.sh down     stop the broker(s) started by `up` (by their own PIDs)
#   deploy/kafka/kafka.sh status   print whether it runs and where
#   deploy/kafka/kafka.sh start-node N | stop-node N | kill-node N
#                                  one node of a cluster: start (and wait), controlled stop,
#                                  SIGKILL (fault tests, rolling restarts)
#
# Environment (all optional):
#   DFIP_KAFKA_HOME        state folder (data, logs, pid)       default: .dfip/kafka
#   DFIP_KAFKA_CACHE       jar cache                            default: ~/.cache/dfip/kafka-<version>
#   DFIP_KAFKA_PORT        client listener port                 default: 9092
#   DFIP_KAFKA_CONTROLLER_PORT  controller listener port        default: 9093
#   DFIP_KAFKA_EXTRA_CONFIG     file appended to server.properties (e.g. SASL/TLS listeners)
#   DFIP_KAFKA_FRESH=1     wipe the data folder before starting
#   DFIP_KAFKA_TIMEOUT     seconds to wait for readiness        default: 90
#   DFIP_KAFKA_NODES       nodes (1 = single broker, 3 = a production-like cluster)
#                          default: as DFIP_KAFKA_HOME was set up (its node folders), else 1
#   DFIP_KAFKA_HEAP        JVM heap per node                    default: 1g, 384m in a cluster
#
# A cluster of N nodes lives in DFIP_KAFKA_HOME/node1..nodeN; node i listens on
# DFIP_KAFKA_PORT + 2(i-1) (clients) and DFIP_KAFKA_CONTROLLER_PORT + 2(i-1) (controller),
# so the defaults give 9092/9093, 9094/9095, 9096/9097. With 3 nodes or more, topics and the
# internal topics (offsets, transaction state) default to replication 3, min.insync.replicas 2.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$HERE/pom.xml")"
HOME_DIR="${DFIP_KAFKA_HOME:-$PWD/.dfip/kafka}"
CACHE="${DFIP_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dfip/kafka-$KAFKA_VERSION}"
PORT="${DFIP_KAFKA_PORT:-9092}"
CPORT="${DFIP_KAFKA_CONTROLLER_PORT:-9093}"
TIMEOUT="${DFIP_KAFKA_TIMEOUT:-90}"
# Unset, the node count is the one the folder was set up with (so `down` after `up` with
# DFIP_KAFKA_NODES=3 stops the whole cluster), else a single broker.
if [[ -z "${DFIP_KAFKA_NODES:-}" && -s "$HOME_DIR/cluster.id" ]]; then
  NODES="$(find "$HOME_DIR" -mindepth 1 -maxdepth 1 -type d -name 'node[0-9]' | wc -l)"
else
  NODES="${DFIP_KAFKA_NODES:-1}"
fi

die() { echo "dfip kafka: $*" >&2; exit 1; }
# a DFIP_KAFKA_* value that cannot work: a configuration error, exit 2 as for every dfip command
bad_setting() { echo "dfip kafka: $*" >&2; exit 2; }

for var in DFIP_KAFKA_PORT DFIP_KAFKA_CONTROLLER_PORT DFIP_KAFKA_TIMEOUT; do
  value="${!var:-}"
  if [[ -n "$value" ]] && ! [[ "$value" =~ ^[0-9]{1,5}$ && "$value" -ge 1 && "$value" -le 65535 ]]; then
    bad_setting "$var=$value is not a number from 1 to 65535"
  fi
done
[[ "$NODES" =~ ^[1-5]$ ]] || bad_setting "DFIP_KAFKA_NODES=$NODES is not a number from 1 to 5"
if ((NODES > 1)) && ((CPORT > PORT && CPORT < PORT + 2 * NODES && (CPORT - PORT) % 2 == 0)); then
  bad_setting "DFIP_KAFKA_CONTROLLER_PORT=$CPORT collides with a client port of the $NODES nodes (PORT + 2(i-1)); pick an odd offset from DFIP_KAFKA_PORT"
fi
if ((NODES > 1)) && ((PORT + 2 * NODES > 65537 || CPORT + 2 * NODES > 65537)); then
  bad_setting "ports for $NODES nodes would pass 65535; lower DFIP_KAFKA_PORT/DFIP_KAFKA_CONTROLLER_PORT"
fi

# Replication for the cluster's size: 3 copies and 2 in sync once there are 3 brokers, so one
# broker can be lost without stopping producers (acks=all) or transactions.
if ((NODES >= 3)); then RF=3; MIN_ISR=2; else RF=$NODES; MIN_ISR=1; fi
if ((NODES == 1)); then HEAP="${DFIP_KAFKA_HEAP:-1g}"; XMS=256m; else HEAP="${DFIP_KAFKA_HEAP:-384m}"; XMS=128m; fi
[[ "$HEAP" =~ ^[0-9]+[mMgG]$ ]] || bad_setting "DFIP_KAFKA_HEAP=$HEAP is not a size like 384m or 1g"

# Per-node layout, set by select_node. A single broker keeps the layout it always had
# (DFIP_KAFKA_HOME/data, kafka.pid); node i of a cluster lives in DFIP_KAFKA_HOME/node<i>.
NODE=1 NODE_HOME="" NPORT="" NCPORT="" PIDFILE=""
select_node() {
  NODE="$1"
  [[ "$NODE" =~ ^[0-9]+$ ]] && ((NODE >= 1 && NODE <= NODES)) || die "node $NODE does not exist (DFIP_KAFKA_NODES=$NODES)"
  if ((NODES == 1)); then NODE_HOME="$HOME_DIR"; else NODE_HOME="$HOME_DIR/node$NODE"; fi
  NPORT=$((PORT + 2 * (NODE - 1)))
  NCPORT=$((CPORT + 2 * (NODE - 1)))
  PIDFILE="$NODE_HOME/kafka.pid"
}

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is missing: $2"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running() {
  [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

cache_ok() {
  # A complete cache has the manifest written after a successful resolve (name and size of
  # every jar); a missing, truncated or replaced jar fails the comparison and is re-fetched.
  [[ -f "$CACHE/.complete" ]] || return 1
  local name size
  while read -r name size; do
    [[ "$(stat -c %s "$CACHE/$name" 2>/dev/null)" == "$size" ]] || return 1
  done <"$CACHE/.complete"
}

fetch() {
  if cache_ok; then return 0; fi
  need java "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
  need mvn "install Maven (Debian: apt-get install maven)"
  echo "dfip kafka: resolving Apache Kafka $KAFKA_VERSION from Maven Central into $CACHE" >&2
  rm -rf "$CACHE"
  mkdir -p "$CACHE"
  if ! mvn -q -B -f "$HERE/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$CACHE" >"$CACHE.mvn.log" 2>&1; then
    rm -rf "$CACHE"
    die "Maven could not resolve the Kafka jars (see $CACHE.mvn.log); check network access to Maven Central"
  fi
  local jar
  for jar in "$CACHE"/*.jar; do
    unzip -tqq "$jar" >/dev/null 2>&1 || { rm -rf "$CACHE"; die "downloaded jar $jar is corrupt; run again"; }
    echo "$(basename "$jar") $(stat -c %s "$jar")"
  done >"$CACHE/.complete"
}

quorum_config() {
  if ((NODES == 1)); then
    echo "controller.quorum.bootstrap.servers=127.0.0.1:$CPORT"
  else
    # a static quorum of every node: formatted alike, no dynamic voter changes needed
    local i voters=""
    for ((i = 1; i <= NODES; i++)); do
      voters+="${voters:+,}$i@127.0.0.1:$((CPORT + 2 * (i - 1)))"
    done
    echo "controller.quorum.voters=$voters"
  fi
}

write_config() {
  mkdir -p "$NODE_HOME/data" "$NODE_HOME/logs"
  cat >"$NODE_HOME/server.properties" <<EOF
process.roles=broker,controller
node.id=$NODE
$(quorum_config)
listeners=PLAINTEXT://127.0.0.1:$NPORT,CONTROLLER://127.0.0.1:$NCPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$NPORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL
log.dirs=$NODE_HOME/data
num.partitions=1
default.replication.factor=$RF
min.insync.replicas=$MIN_ISR
offsets.topic.replication.factor=$RF
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=$RF
transaction.state.log.min.isr=$MIN_ISR
transaction.state.log.num.partitions=12
share.coordinator.state.topic.replication.factor=$RF
share.coordinator.state.topic.min.isr=$MIN_ISR
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
unclean.leader.election.enable=false
log.segment.bytes=67108864
log.cleaner.dedupe.buffer.size=33554432
EOF
  if ((NODES > 1)); then
    # three JVMs share two cores with the workers: fewer threads than a server's defaults
    cat >>"$NODE_HOME/server.properties" <<EOF
num.network.threads=2
num.io.threads=4
num.replica.fetchers=1
background.threads=4
EOF
  fi
  if [[ -n "${DFIP_KAFKA_EXTRA_CONFIG:-}" ]]; then
    # Later keys win in java.util.Properties, so the extra file can override listeners.
    cat "$DFIP_KAFKA_EXTRA_CONFIG" >>"$NODE_HOME/server.properties"
  fi
  cat >"$NODE_HOME/log4j2.properties" <<EOF
status = error
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $NODE_HOME/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
EOF
}

java_cmd() {
  java -Xms$XMS -Xmx$HEAP -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$NODE_HOME/log4j2.properties" \
    -cp "$CACHE/*" "$@"
}

cluster_id() {
  # every node of a cluster is formatted with the same id, kept next to the node folders
  if ((NODES == 1)); then java_cmd kafka.tools.StorageTool random-uuid; return; fi
  if [[ ! -s "$HOME_DIR/cluster.id" ]]; then
    mkdir -p "$HOME_DIR"
    java_cmd kafka.tools.StorageTool random-uuid >"$HOME_DIR/cluster.id"
  fi
  cat "$HOME_DIR/cluster.id"
}

# Starts the selected node in the background (config, format on first use); no waiting.
launch() {
  if running; then return 0; fi
  write_config
  if [[ ! -f "$NODE_HOME/data/meta.properties" ]]; then
    local mode=()
    ((NODES == 1)) && mode=(--standalone)
    java_cmd kafka.tools.StorageTool format "${mode[@]}" -t "$(cluster_id)" \
      -c "$NODE_HOME/server.properties" >"$NODE_HOME/logs/format.log" 2>&1 \
      || die "formatting storage failed (see $NODE_HOME/logs/format.log)"
  fi
  # Readiness is read from server.log, which log4j appends to: move the previous run's log
  # (and its "Kafka Server started") aside so only this run's lines are searched.
  if [[ -f "$NODE_HOME/logs/server.log" ]]; then
    mv -f "$NODE_HOME/logs/server.log" "$NODE_HOME/logs/server.log.1"
  fi
  nohup java -Xms$XMS -Xmx$HEAP -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$NODE_HOME/log4j2.properties" \
    -cp "$CACHE/*" kafka.Kafka "$NODE_HOME/server.properties" \
    >"$NODE_HOME/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
}

# True when the selected node's start-up failed only because one of its ports was briefly
# taken: a port in the kernel's ephemeral range can be the local end of some client's
# outgoing connection at the instant the broker binds, although nothing listens on it.
bind_collision() {
  grep -q "BindException: Address already in use" "$NODE_HOME/logs/server.log" 2>/dev/null \
    && ! port_open "$NPORT" && ! port_open "$NCPORT"
}

# Waits until the selected node says it started and its port answers.
await_ready() {
  local waited=0 relaunches=0
  until grep -q "Kafka Server started" "$NODE_HOME/logs/server.log" 2>/dev/null && port_open "$NPORT"; do
    if ! running; then
      rm -f "$PIDFILE"
      if ((relaunches < 3)) && bind_collision; then
        relaunches=$((relaunches + 1))
        echo "dfip kafka: node $NODE could not bind 127.0.0.1:$NPORT or :$NCPORT (taken for a moment, now free); starting it again" >&2
        sleep 1
        launch
        continue
      fi
      die "broker exited during start-up (see $NODE_HOME/logs/server.log and stdout.log)"
    fi
    ((waited >= TIMEOUT * 5)) && { down; die "broker not ready after ${TIMEOUT}s (see $NODE_HOME/logs/server.log)"; }
    sleep 0.2
    waited=$((waited + 1))
  done
}

check_ports() {
  local p
  for p in "$NPORT" "$NCPORT"; do
    port_open "$p" && die "port $p on 127.0.0.1 is taken by another process; set DFIP_KAFKA_PORT/DFIP_KAFKA_CONTROLLER_PORT"
  done
  return 0
}

bootstrap() {
  local i out=""
  for ((i = 1; i <= NODES; i++)); do out+="${out:+,}127.0.0.1:$((PORT + 2 * (i - 1)))"; done
  echo "$out"
}

up() {
  need java "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
  local i started=0
  for ((i = 1; i <= NODES; i++)); do
    select_node "$i"
    running || { check_ports; started=1; }
  done
  if ((started == 0)); then
    select_node 1
    echo "dfip kafka: already running (pid $(cat "$PIDFILE")) on $(bootstrap)" >&2
    return 0
  fi
  fetch
  [[ "${DFIP_KAFKA_FRESH:-0}" == "1" ]] && fresh
  # every node first, then the waits: a quorum of several only forms once most of them run
  for ((i = 1; i <= NODES; i++)); do select_node "$i"; launch; done
  for ((i = 1; i <= NODES; i++)); do select_node "$i"; await_ready; done
  if ((NODES == 1)); then
    echo "dfip kafka: Apache Kafka $KAFKA_VERSION ready on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))" >&2
  else
    echo "dfip kafka: Apache Kafka $KAFKA_VERSION cluster of $NODES ready on $(bootstrap)" >&2
  fi
}

fresh() {
  if ((NODES == 1)); then rm -rf "$HOME_DIR/data"; return; fi
  local i
  for ((i = 1; i <= NODES; i++)); do rm -rf "$HOME_DIR/node$i/data"; done
  rm -f "$HOME_DIR/cluster.id"
}

# Sends a signal to the selected node and waits for it to end (SIGKILL after 30 s).
stop_selected() {
  local sig="$1" pid
  running || { rm -f "$PIDFILE"; return 1; }
  pid="$(cat "$PIDFILE")"
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}

down() {
  local i pids=() any=0
  # every node at once: one by one, the last ones would wait for a quorum already gone
  for ((i = 1; i <= NODES; i++)); do
    select_node "$i"
    if running; then
      any=1
      (stop_selected TERM) &
      pids+=($!)
    else
      rm -f "$PIDFILE"
    fi
  done
  if ((any == 0)); then
    echo "dfip kafka: not running" >&2
    return 0
  fi
  for i in "${pids[@]}"; do wait "$i" || true; done
  echo "dfip kafka: stopped" >&2
}

node_action() {
  local action="$1"
  [[ -n "${2:-}" ]] || die "usage: $0 $action N (a node from 1 to $NODES)"
  select_node "$2"
  case "$action" in
    start-node)
      need java "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
      if running; then echo "dfip kafka: node $NODE already running" >&2; return 0; fi
      check_ports
      fetch
      launch
      await_ready
      echo "dfip kafka: node $NODE ready on 127.0.0.1:$NPORT (pid $(cat "$PIDFILE"))" >&2
      ;;
    stop-node) stop_selected TERM && echo "dfip kafka: node $NODE stopped" >&2 || echo "dfip kafka: node $NODE not running" >&2 ;;
    kill-node) stop_selected KILL && echo "dfip kafka: node $NODE killed" >&2 || echo "dfip kafka: node $NODE not running" >&2 ;;
  esac
}

status() {
  local i up_count=0 line=""
  for ((i = 1; i <= NODES; i++)); do
    select_node "$i"
    if running; then
      up_count=$((up_count + 1))
      line+="${line:+ }pid=$(cat "$PIDFILE")"
    elif ((NODES > 1)); then
      line+="${line:+ }node$i=stopped"
    fi
  done
  if ((up_count == NODES)); then
    echo "running $line bootstrap=$(bootstrap) version=$KAFKA_VERSION home=$HOME_DIR"
  elif ((up_count > 0)); then
    echo "degraded $up_count/$NODES $line bootstrap=$(bootstrap) version=$KAFKA_VERSION home=$HOME_DIR"
    return 1
  else
    echo "stopped version=$KAFKA_VERSION home=$HOME_DIR"
    return 3
  fi
}

select_node 1
case "${1:-}" in
  fetch) fetch ;;
  up) up ;;
  down) down ;;
  status) status ;;
  start-node | stop-node | kill-node) node_action "$1" "${2:-}" ;;
  *) echo "usage: $0 fetch|up|down|status|start-node N|stop-node N|kill-node N" >&2; exit 2 ;;
esac
