#!/usr/bin/env bash
# init-secrets.sh - create the secrets docker-compose.yml needs, once.
#   deploy/compose/secrets/master.key   provider master key: 64 hex digits (32 random bytes)
# An existing key is never overwritten: losing or replacing it makes every tenant's
# backups unreadable. Back it up somewhere safe, apart from the repositories.
# The key is made readable by uid 10001 (the `cairn` user of the image) only.
set -euo pipefail
dir=$(cd "$(dirname "$0")" && pwd)/secrets
key=${CAIRN_MASTER_KEY_HOST_FILE:-$dir/master.key}
mkdir -p "$(dirname "$key")"
if [[ -s $key ]]; then
  echo "init-secrets: $key exists, left unchanged"
else
  umask 077
  openssl rand -hex 32 >"$key"
  echo "init-secrets: wrote $key (back it up!)"
fi
if [[ $(id -u) -eq 0 ]]; then
  chown 10001:10001 "$key" && chmod 0400 "$key"
else
  echo "init-secrets: not root: run 'sudo chown 10001:10001 $key && sudo chmod 0400 $key'" \
       "so the containers (uid 10001) can read it, or chmod 0444 on a single-user host"
fi
