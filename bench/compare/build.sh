#!/usr/bin/env bash
# Build the Kafka Streams side of bench/compare: kstreams/target/compare-kstreams.jar.
# Offline first (once the dependencies are in ~/.m2), else fetch them from Maven Central.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pom="$here/kstreams/pom.xml"
if ! mvn -q -B -o -f "$pom" package -DskipTests >/dev/null 2>&1; then
  mvn -q -B -f "$pom" package -DskipTests
fi
test -s "$here/kstreams/target/compare-kstreams.jar"
echo "$here/kstreams/target/compare-kstreams.jar"
