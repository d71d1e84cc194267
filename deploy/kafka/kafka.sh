#!/usr/bin/env bash
# Runs a real single-node Apache Kafka broker (KRaft, combined broker+controller) on
# 127.0.0.1 without Docker. Jars come from Maven Central via deploy/kafka/pom.xml.
#
#   deploy/kafka/kafka.sh fetch    resolve the jars into the cache (idempotent)
#   deploy/kafka/kafka.sh up       fetch if needed, format storage, start, wait until ready
#   deploy/kafka/kafka.sh down     stop the broker started by `up` (by its own PID)
#   deploy/kafka/kafka.sh status   print whether it runs and where
#
# Environment (all optional):
#   DFIP_KAFKA_HOME        state folder (data, logs, pid)       default: .dfip/kafka
#   DFIP_KAFKA_CACHE       jar cache                            default: ~/.cache/dfip/kafka-<version>
#   DFIP_KAFKA_PORT        client listener port                 default: 9092
#   DFIP_KAFKA_CONTROLLER_PORT  controller listener port        default: 9093
#   DFIP_KAFKA_EXTRA_CONFIG     file appended to server.properties (e.g. SASL/TLS listeners)
#   DFIP_KAFKA_FRESH=1     wipe the data folder before starting
#   DFIP_KAFKA_TIMEOUT     seconds to wait for readiness        default: 90
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$HERE/pom.xml")"
HOME_DIR="${DFIP_KAFKA_HOME:-$PWD/.dfip/kafka}"
CACHE="${DFIP_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dfip/kafka-$KAFKA_VERSION}"
PORT="${DFIP_KAFKA_PORT:-9092}"
CPORT="${DFIP_KAFKA_CONTROLLER_PORT:-9093}"
TIMEOUT="${DFIP_KAFKA_TIMEOUT:-90}"
PIDFILE="$HOME_DIR/kafka.pid"

die() { echo "dfip kafka: $*" >&2; exit 1; }

for var in DFIP_KAFKA_PORT DFIP_KAFKA_CONTROLLER_PORT DFIP_KAFKA_TIMEOUT; do
  value="${!var:-}"
  if [[ -n "$value" ]] && ! [[ "$value" =~ ^[0-9]{1,5}$ && "$value" -ge 1 && "$value" -le 65535 ]]; then
    die "$var=$value is not a number from 1 to 65535"
  fi
done

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

write_config() {
  mkdir -p "$HOME_DIR/data" "$HOME_DIR/logs"
  cat >"$HOME_DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL
log.dirs=$HOME_DIR/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=12
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.segment.bytes=67108864
log.cleaner.dedupe.buffer.size=33554432
EOF
  if [[ -n "${DFIP_KAFKA_EXTRA_CONFIG:-}" ]]; then
    # Later keys win in java.util.Properties, so the extra file can override listeners.
    cat "$DFIP_KAFKA_EXTRA_CONFIG" >>"$HOME_DIR/server.properties"
  fi
  cat >"$HOME_DIR/log4j2.properties" <<EOF
status = error
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $HOME_DIR/logs/server.log
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
  java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HOME_DIR/log4j2.properties" \
    -cp "$CACHE/*" "$@"
}

up() {
  need java "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
  if running; then
    echo "dfip kafka: already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT" >&2
    return 0
  fi
  for p in "$PORT" "$CPORT"; do
    port_open "$p" && die "port $p on 127.0.0.1 is taken by another process; set DFIP_KAFKA_PORT/DFIP_KAFKA_CONTROLLER_PORT"
  done
  fetch
  [[ "${DFIP_KAFKA_FRESH:-0}" == "1" ]] && rm -rf "$HOME_DIR/data"
  write_config
  if [[ ! -f "$HOME_DIR/data/meta.properties" ]]; then
    java_cmd kafka.tools.StorageTool format --standalone -t "$(java_cmd kafka.tools.StorageTool random-uuid)" \
      -c "$HOME_DIR/server.properties" >"$HOME_DIR/logs/format.log" 2>&1 \
      || die "formatting storage failed (see $HOME_DIR/logs/format.log)"
  fi
  # Readiness is read from server.log, which log4j appends to: move the previous run's log
  # (and its "Kafka Server started") aside so only this run's lines are searched.
  if [[ -f "$HOME_DIR/logs/server.log" ]]; then
    mv -f "$HOME_DIR/logs/server.log" "$HOME_DIR/logs/server.log.1"
  fi
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HOME_DIR/log4j2.properties" \
    -cp "$CACHE/*" kafka.Kafka "$HOME_DIR/server.properties" \
    >"$HOME_DIR/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local waited=0
  until grep -q "Kafka Server started" "$HOME_DIR/logs/server.log" 2>/dev/null && port_open "$PORT"; do
    if ! running; then
      rm -f "$PIDFILE"
      die "broker exited during start-up (see $HOME_DIR/logs/server.log and stdout.log)"
    fi
    ((waited >= TIMEOUT * 5)) && { down; die "broker not ready after ${TIMEOUT}s (see $HOME_DIR/logs/server.log)"; }
    sleep 0.2
    waited=$((waited + 1))
  done
  echo "dfip kafka: Apache Kafka $KAFKA_VERSION ready on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))" >&2
}

down() {
  if ! running; then
    rm -f "$PIDFILE"
    echo "dfip kafka: not running" >&2
    return 0
  fi
  local pid
  pid="$(cat "$PIDFILE")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
  echo "dfip kafka: stopped" >&2
}

status() {
  if running; then
    echo "running pid=$(cat "$PIDFILE") bootstrap=127.0.0.1:$PORT version=$KAFKA_VERSION home=$HOME_DIR"
  else
    echo "stopped version=$KAFKA_VERSION home=$HOME_DIR"
    return 3
  fi
}

case "${1:-}" in
  fetch) fetch ;;
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 fetch|up|down|status" >&2; exit 2 ;;
esac
