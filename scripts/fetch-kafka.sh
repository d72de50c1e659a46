#!/usr/bin/env bash
# fetch-kafka.sh - resolve Apache Kafka (kafka_2.13) and a logging binding from Maven
# Central with Maven's dependency:copy-dependencies, into $CAIRN_CACHE/kafka-$KAFKA_VERSION/libs.
# Idempotent: a stamp file marks a complete fetch.
set -euo pipefail
KAFKA_VERSION=${KAFKA_VERSION:-3.9.1}
CACHE=${CAIRN_CACHE:-$HOME/.cache/cairn}
dest="$CACHE/kafka-$KAFKA_VERSION"
[[ -f "$dest/.complete" ]] && exit 0
mkdir -p "$dest"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>cairn</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-storage</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
  </dependencies>
</project>
POM
echo "fetch-kafka: resolving kafka_2.13:$KAFKA_VERSION from Maven Central"
mvn -q -B -f "$work/pom.xml" dependency:copy-dependencies -DoutputDirectory="$dest/libs" -DincludeScope=runtime
touch "$dest/.complete"
echo "fetch-kafka: $(ls "$dest/libs" | wc -l) jars in $dest/libs"
