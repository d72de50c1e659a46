#!/usr/bin/env bash
# bench/run.sh - cairn's engine vs restic vs borg on the same data, in the same run.
# One command; see bench/README.md. Environment knobs:
#   DATA=<dir>        datasets + scratch (default <repo>/bench-data, gitignored)
#   RUNS=5            repetitions (medians are reported; ~8 min on 2 cores)
#   TOOLS="cairn restic borg"
#   CAIRN_ARGS=""     extra cairn-engine backup args (e.g. "--chunk-size 4M --zstd-level -1")
#   BUILD=<dir>       Release build dir for cairn-engine (default <repo>/build-bench)
#   MKDATA=<file>     dataset recipe (default <repo>/../shared/bench/mkdata.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=${DATA:-$ROOT/bench-data}
RUNS=${RUNS:-5}
TOOLS=${TOOLS:-"cairn restic borg"}
CAIRN_ARGS=${CAIRN_ARGS:-}
BUILD=${BUILD:-$ROOT/build-bench}
MKDATA=${MKDATA:-$ROOT/../shared/bench/mkdata.sh}
OUT=${OUT:-$ROOT/bench/out}
W=$DATA/work
PASS=cairn-bench-passphrase-not-secret

need() { command -v "$1" >/dev/null || { echo "missing $1"; exit 1; }; }
need restic; need borg; need cmake; need python3; [[ -x /usr/bin/time ]] || { echo "missing /usr/bin/time"; exit 1; }

echo "== disk space"; df -h "$(dirname "$DATA")" | tail -1
echo "== datasets"; DATA=$DATA bash "$MKDATA" | tail -6

echo "== build cairn-engine (Release, no sanitizers) in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSANITIZE=OFF -DWERROR=OFF >/dev/null
cmake --build "$BUILD" --target tool_engine >/dev/null
CAIRN=$BUILD/libs/engine/cairn-engine

echo "== change-tracking inputs"
[[ -s $DATA/vm1-changed.extents ]] || python3 "$ROOT/bench/mkextents.py" extents "$DATA/vm1.img" "$DATA/vm1-changed.img" "$DATA/vm1-changed.extents"
# a change confined to 1% of cairn's default 2 MiB chunks (10 of 1024), for the change-tracking target
[[ -s $DATA/vm1-ct2m.img && -s $DATA/vm1-ct2m.extents ]] || python3 "$ROOT/bench/mkextents.py" ctimage "$DATA/vm1.img" "$DATA/vm1-ct2m.img" "$DATA/vm1-ct2m.extents" 2097152 10 7

mkdir -p "$OUT"
rm -f "$OUT/cairn-timing.tsv"
rm -rf "$W"; mkdir -p "$W"
head -c 32 /dev/urandom > "$W/master.key"
export CAIRN_MASTER_KEY_FILE=$W/master.key
echo "$PASS" > "$W/restic.pass"
export BORG_PASSPHRASE=$PASS BORG_BASE_DIR=$W/borg-home RESTIC_CACHE_DIR=$W/restic-cache
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
TSV=$OUT/measurements.tsv
{
  echo "# started $(date -u +%FT%TZ) host=$(hostname) nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# restic: $(restic version | head -1) | borg: $(borg --version) | cairn args: ${CAIRN_ARGS:-default}"
} > "$TSV"
MIB=$(( $(stat -c %s "$DATA/vm1.img") >> 20 ))
RMIB=$(( $(stat -c %s "$DATA/rand.bin") >> 20 ))
SMIB=$(( $(stat -c %s "$DATA/vm1-shifted.img") >> 20 ))

warm() { cat "$@" > /dev/null; }
size() { du -sb "$1" | cut -f1; }
stage() { ln -f "$1" "$W/stage/disk.img"; }   # one stable path, like a VM disk that changes
# Repositories are moved aside, not deleted, until the end of the script. This ext4 has no
# journal, and without one the inode allocator skips inodes freed in the last 60-360 s
# (fs/ext4/ialloc.c, recently_deleted()): a tool that creates many files right after the
# previous step deleted many (cairn: one file per chunk) paid up to 30% of its CPU in
# __ext4_new_inode. A journaled file system, as any production repository has, does not do
# this. Applies to every tool's repositories alike; ~6 GiB per run until the end.
TRASH=0
trash() { local p; for p in "$@"; do [[ -e $p ]] || continue; TRASH=$((TRASH + 1)); mv "$p" "$W/trash/$TRASH"; done; }

# measure RUN TOOL OP MIB BYTES_DIR -- command...   (records seconds, peak RSS, repo growth)
measure() {
  local run=$1 tool=$2 op=$3 mib=$4 dir=$5; shift 6
  local before=0; [[ -d $dir ]] && before=$(size "$dir")
  local load; load=$(cut -d' ' -f1 /proc/loadavg)   # 1-min load average before the step
  if ! /usr/bin/time -f "%e %M %U %S" -o "$W/time.txt" "$@" > "$W/last.out" 2> "$W/last.err"; then
    echo "FAILED: $tool $op: $*"; tail -5 "$W/last.err"; exit 1
  fi
  read -r sec rss usr sys < "$W/time.txt"
  local cpu; cpu=$(python3 -c "print('%.2f' % ($usr + $sys))")
  local grown=0; [[ -d $dir ]] && grown=$(( $(size "$dir") - before ))
  printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$run" "$tool" "$op" "$sec" "$rss" "$grown" "$mib" "$load" "$cpu" >> "$TSV"
  printf "  run %s %-6s %-15s %7.2f s  %6d MiB/s  rss %4d MiB  +%d MiB  load %s  cpu %s s\n" "$run" "$tool" "$op" \
    "$sec" "$(python3 -c "print(int($mib/max($sec,0.001)))")" $((rss/1024)) $((grown>>20)) "$load" "$cpu"
  # cairn prints where its time went (timing counters): keep them for the record
  [[ $tool != cairn ]] || grep -o '"timing":{[^}]*}' "$W/last.out" | sed "s/^/$run\t$op\t/" >> "$OUT/cairn-timing.tsv" || true
}

cairn() { "$CAIRN" "$1" --repo "$2" --keys "$W/cairn-keys" --tenant bench "${@:3}"; }

bench_cairn() {
  local r=$1 R=$W/cairn-repo
  # shellcheck disable=SC2086
  stage "$DATA/vm1.img"; warm "$DATA/vm1.img"
  measure "$r" cairn initial "$MIB" "$R" -- "$CAIRN" backup --repo "$R" --keys "$W/cairn-keys" --tenant bench --disk vm1="$W/stage/disk.img" --rp-id initial $CAIRN_ARGS
  cp -a "$R" "$W/cairn-repo-ct"
  stage "$DATA/vm1-changed.img"; warm "$DATA/vm1-changed.img"
  measure "$r" cairn incremental "$MIB" "$R" -- "$CAIRN" backup --repo "$R" --keys "$W/cairn-keys" --tenant bench --disk vm1="$W/stage/disk.img" --rp-id incr --parent initial $CAIRN_ARGS
  measure "$r" cairn incremental-ct "$MIB" "$W/cairn-repo-ct" -- "$CAIRN" backup --repo "$W/cairn-repo-ct" --keys "$W/cairn-keys" --tenant bench --disk vm1="$W/stage/disk.img" --rp-id incr-ct --parent initial --changed-extents "$DATA/vm1-changed.extents" $CAIRN_ARGS
  stage "$DATA/vm1-ct2m.img"; warm "$DATA/vm1-ct2m.img"
  measure "$r" cairn ct-1pct-chunks "$MIB" "$W/cairn-repo-ct" -- "$CAIRN" backup --repo "$W/cairn-repo-ct" --keys "$W/cairn-keys" --tenant bench --disk vm1="$W/stage/disk.img" --rp-id ct1 --parent initial --changed-extents "$DATA/vm1-ct2m.extents" $CAIRN_ARGS
  trash "$W/cairn-repo-ct"
  stage "$DATA/vm1-shifted.img"; warm "$DATA/vm1-shifted.img"
  measure "$r" cairn shifted "$SMIB" "$R" -- "$CAIRN" backup --repo "$R" --keys "$W/cairn-keys" --tenant bench --disk vm1="$W/stage/disk.img" --rp-id shifted --parent incr $CAIRN_ARGS
  mkdir -p "$W/restore"
  measure "$r" cairn restore "$MIB" "" -- "$CAIRN" restore --repo "$R" --keys "$W/cairn-keys" --tenant bench --rp initial --disk vm1 --out "$W/restore/disk.img" --no-fsync
  [[ $r != 1 ]] || cmp "$W/restore/disk.img" "$DATA/vm1.img" || { echo "cairn restore differs"; exit 1; }
  rm -rf "$W/restore"; trash "$R"
  warm "$DATA/rand.bin"
  measure "$r" cairn random "$RMIB" "$W/cairn-rand" -- "$CAIRN" backup --repo "$W/cairn-rand" --keys "$W/cairn-keys" --tenant bench --disk rand="$DATA/rand.bin" $CAIRN_ARGS
  trash "$W/cairn-rand"
}

bench_restic() {
  local r=$1 R=$W/restic-repo
  local rs=(restic --repo "$R" --password-file "$W/restic.pass" --quiet)
  "${rs[@]}" init --repository-version 2 >/dev/null
  stage "$DATA/vm1.img"; warm "$DATA/vm1.img"
  measure "$r" restic initial "$MIB" "$R" -- "${rs[@]}" backup --tag initial "$W/stage/disk.img"
  stage "$DATA/vm1-changed.img"; warm "$DATA/vm1-changed.img"
  measure "$r" restic incremental "$MIB" "$R" -- "${rs[@]}" backup --tag incr "$W/stage/disk.img"
  stage "$DATA/vm1-shifted.img"; warm "$DATA/vm1-shifted.img"
  measure "$r" restic shifted "$SMIB" "$R" -- "${rs[@]}" backup --tag shifted "$W/stage/disk.img"
  measure "$r" restic restore "$MIB" "" -- "${rs[@]}" restore latest --tag initial --target "$W/restore"
  [[ $r != 1 ]] || cmp "$W/restore$W/stage/disk.img" "$DATA/vm1.img" || { echo "restic restore differs"; exit 1; }
  rm -rf "$W/restore"; trash "$R" "$RESTIC_CACHE_DIR"
  restic --repo "$W/restic-rand" --password-file "$W/restic.pass" --quiet init --repository-version 2 >/dev/null
  warm "$DATA/rand.bin"
  measure "$r" restic random "$RMIB" "$W/restic-rand" -- restic --repo "$W/restic-rand" --password-file "$W/restic.pass" --quiet backup "$DATA/rand.bin"
  trash "$W/restic-rand" "$RESTIC_CACHE_DIR"
}

bench_borg() {
  local r=$1 R=$W/borg-repo
  borg init --encryption repokey "$R" 2>/dev/null
  stage "$DATA/vm1.img"; warm "$DATA/vm1.img"
  cd "$W/stage"
  measure "$r" borg initial "$MIB" "$R" -- borg create "$R::initial" disk.img
  stage "$DATA/vm1-changed.img"; warm "$DATA/vm1-changed.img"
  measure "$r" borg incremental "$MIB" "$R" -- borg create "$R::incr" disk.img
  stage "$DATA/vm1-shifted.img"; warm "$DATA/vm1-shifted.img"
  measure "$r" borg shifted "$SMIB" "$R" -- borg create "$R::shifted" disk.img
  mkdir -p "$W/restore"; cd "$W/restore"
  measure "$r" borg restore "$MIB" "" -- borg extract --sparse "$R::initial" disk.img
  [[ $r != 1 ]] || cmp "$W/restore/disk.img" "$DATA/vm1.img" || { echo "borg restore differs"; exit 1; }
  cd "$W"; rm -rf "$W/restore"; trash "$R" "$BORG_BASE_DIR"
  borg init --encryption repokey "$W/borg-rand" 2>/dev/null
  cd "$DATA"; warm "$DATA/rand.bin"
  measure "$r" borg random "$RMIB" "$W/borg-rand" -- borg create "$W/borg-rand::rand" rand.bin
  cd "$W"; trash "$W/borg-rand" "$BORG_BASE_DIR"
}

mkdir -p "$W/stage" "$W/trash"
avail=$(df --output=avail -B1G "$W" | tail -1 | tr -d ' ')
if (( avail < 7 * RUNS )); then
  echo "need about $((7 * RUNS)) GiB free in $W for $RUNS runs' repositories (they are deleted at the end); $avail GiB free"
  exit 1
fi
for r in $(seq 1 "$RUNS"); do
  echo "== run $r of $RUNS (load $(cut -d' ' -f1-3 /proc/loadavg))"
  for t in $TOOLS; do "bench_$t" "$r"; done
done
echo "# finished $(date -u +%FT%TZ) load=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$TSV"
cd "$ROOT"; rm -rf "$W"
echo "== medians ($RUNS runs, warm page cache for every tool)"
python3 "$ROOT/bench/summarize.py" "$TSV" "$OUT/summary.json" | tee "$OUT/summary.md"
