#!/usr/bin/env bash
# bench/tune.sh - cairn-only parameter sweep used to pick the engine defaults (chunk size,
# zstd level, threads). Needs the datasets of run.sh. Prints one TSV line per run:
#   chunk zstd threads extra | initial s, bytes | incremental s, bytes | restore s
# Knobs: DATA, BUILD, RUNS (2), CHUNKS ("1M 2M 4M"), LEVELS ("1 2 3"), THREADS (""), EXTRA ("").
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=${DATA:-$ROOT/bench-data}
BUILD=${BUILD:-$ROOT/build-bench}
RUNS=${RUNS:-2}
CHUNKS=${CHUNKS:-"1M 2M 4M"}
LEVELS=${LEVELS:-"1 2 3"}
THREADS=${THREADS:-""}
EXTRA=${EXTRA:-""}
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSANITIZE=OFF -DWERROR=OFF >/dev/null
cmake --build "$BUILD" --target tool_engine >/dev/null
E=$BUILD/libs/engine/cairn-engine
W=$DATA/tune; rm -rf "$W"; mkdir -p "$W/stage"
head -c 32 /dev/urandom > "$W/mk"; export CAIRN_MASTER_KEY_FILE=$W/mk
t() { /usr/bin/time -f "%e" -o "$W/t" "$@" > /dev/null; cat "$W/t"; }
echo -e "chunk\tzstd\tthreads\textra\tinit_s\tinit_MiB\tincr_s\tincr_MiB\trestore_s\tload"
for r in $(seq 1 "$RUNS"); do
 for cs in $CHUNKS; do for lv in $LEVELS; do for th in ${THREADS:-0}; do
  R=$W/repo; rm -rf "$R"
  a=(--repo "$R" --keys "$W/keys" --tenant t --chunk-size "$cs" --zstd-level "$lv")
  [[ $th == 0 ]] || a+=(--threads "$th")
  # shellcheck disable=SC2086
  ln -f "$DATA/vm1.img" "$W/stage/d"; cat "$DATA/vm1.img" > /dev/null
  s1=$(t "$E" backup "${a[@]}" --disk vm1="$W/stage/d" --rp-id a $EXTRA); b1=$(du -sb "$R" | cut -f1)
  ln -f "$DATA/vm1-changed.img" "$W/stage/d"; cat "$DATA/vm1-changed.img" > /dev/null
  s2=$(t "$E" backup "${a[@]}" --disk vm1="$W/stage/d" --rp-id b --parent a $EXTRA); b2=$(du -sb "$R" | cut -f1)
  s3=$(t "$E" restore --repo "$R" --keys "$W/keys" --tenant t --rp a --disk vm1 --out "$W/out" --no-fsync)
  rm -f "$W/out"
  echo -e "$cs\t$lv\t$th\t${EXTRA:--}\t$s1\t$((b1>>20))\t$s2\t$(((b2-b1)>>20))\t$s3\t$(cut -d' ' -f1 /proc/loadavg)"
 done; done; done
done
rm -rf "$W"
