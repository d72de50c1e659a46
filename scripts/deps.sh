#!/usr/bin/env bash
# deps.sh - install every Debian package the build, tests, demo and bench need,
# and fetch Apache Kafka 3.9.x from Maven Central into a cache.
# Idempotent: when everything is present it returns in about a second.
#
#   CAIRN_CACHE   where the Kafka jars go (default: ~/.cache/cairn)
#   KAFKA_VERSION Kafka release to fetch (default: 3.9.1)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

PKGS=(
  build-essential cmake ninja-build pkg-config git curl ca-certificates
  librdkafka-dev libpq-dev libjansson-dev libmicrohttpd-dev libcurl4-openssl-dev libssl-dev
  libjwt-dev libargon2-dev libzstd-dev libext2fs-dev e2fsprogs fdisk libcmocka-dev uuid-dev
  xfsprogs
  postgresql-15 postgresql-client-15 nginx-light
  openjdk-17-jdk-headless maven
  clang-format clang-tidy cppcheck
  restic borgbackup time hyperfine
  docker-compose
  chromium chromium-driver
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts a system nginx/postgresql on install; cairn runs its own private
  # servers, so stop only the system units the install just started (not ours).
  if command -v service >/dev/null; then
    for s in nginx postgresql; do
      [[ " ${missing[*]} " == *" $s"* ]] && $SUDO service "$s" stop >/dev/null 2>&1 || true
    done
  fi
fi

command -v npm >/dev/null || { echo "deps: node/npm missing (install Node.js 20 with npm)"; exit 1; }
"$here/fetch-kafka.sh"
