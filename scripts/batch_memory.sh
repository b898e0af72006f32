#!/usr/bin/env bash
# Peak memory of `scarscope batch` on a 10-photo and a 100-photo phantom study (same photo
# size, same --jobs): it must not grow with the study's size, only with the jobs in flight.
#
#   scripts/batch_memory.sh [JOBS] [WIDTH] [HEIGHT]
#
# Prints the maximum resident set size reported by /usr/bin/time -v for each study.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-2}
width=${2:-800}
height=${3:-600}
cargo build --release --quiet
bin=target/release/scarscope
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for subjects in 5 50; do
  "$bin" synth "$work/study$subjects" --subjects "$subjects" --sessions 2 \
    --width "$width" --height "$height" --scars 12 --seed 9 >/dev/null
  photos=$((subjects * 2))
  /usr/bin/time -v "$bin" batch "$work/study$subjects" --out "$work/out$subjects" \
    --jobs "$jobs" --quiet >/dev/null 2>"$work/time$subjects.txt" || true
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time$subjects.txt")
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/time$subjects.txt")
  echo "$photos photos (${width}x${height}), --jobs $jobs: peak RSS $((rss / 1024)) MiB, wall $wall"
done
