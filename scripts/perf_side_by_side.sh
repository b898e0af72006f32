#!/usr/bin/env bash
# Side-by-side speed and memory of `scarscope analyze` on the 12 MP reference photo, against
# decoding it alone and against the OpenCV reference pipeline (docs/performance.md).
# Needs: the anchors' Python env (../shared/anchors/perf/setup.sh), the photos
# (gen_images.py), hyperfine, GNU time. Usage: scripts/perf_side_by_side.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-7}
ANCHORS=${ANCHORS:-$(cd .. && pwd)/shared/anchors/perf}
PY=${PY:-$HOME/venvs/anchors/bin/python}
P=${PHOTO:-${ANCHOR_IMG_DIR:-/tmp/anchor-imgs}/skin_12mp_before.jpg}
P2=${PHOTO_AFTER:-${ANCHOR_IMG_DIR:-/tmp/anchor-imgs}/skin_12mp_after.jpg}
# 20 photos of 3 MP as a study (10 subjects × 2 sessions); made once (slow: ~5 CPU-minutes):
#   scarscope synth $STUDY20 --subjects 10 --sessions 2 --seed 7 --width 2000 --height 1500 --scars 12
STUDY20=${STUDY20:-/tmp/speed_study20}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
cargo build --release --quiet --bin scarscope --example decode_only
BIN=target/release/scarscope
DEC=target/release/examples/decode_only
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
hyperfine -N -w 1 -r "$RUNS" --export-json "$OUT/hyperfine.json" \
  -n decode_only "$DEC $P" \
  -n analyze_1_thread "env RAYON_NUM_THREADS=1 $BIN analyze $P --out $OUT/a1.json" \
  -n analyze_2_threads "env RAYON_NUM_THREADS=2 $BIN analyze $P --out $OUT/a2.json" \
  -n compare_12mp_pair "$BIN compare $P $P2 --out $OUT/c.json" \
  -n opencv_detect_process "$PY -c \"import sys; sys.path.insert(0, '$ANCHORS'); import common, pipeline_cv as P; P.detect('$P', common.StageTimer())\""
cmp "$OUT/a1.json" "$OUT/a2.json" && echo "== 1 and 2 threads: identical JSON"
if [ -d "$STUDY20" ]; then
  echo "== batch of 20 photos of 3 MP ($STUDY20), 1 and 2 jobs"
  hyperfine -N -w 1 -r "$RUNS" \
    -n batch_1_job "$BIN batch $STUDY20 --out $OUT/b1 --jobs 1 --quiet" \
    -n batch_2_jobs "$BIN batch $STUDY20 --out $OUT/b2 --jobs 2 --quiet"
fi
echo "== OpenCV detect inside Python (bench.py: median of 5 after 1 warm-up, default threads)"
(cd "$ANCHORS" && ANCHOR_RES_DIR="$OUT" ANCHOR_OUT_DIR="$OUT" "$PY" bench.py --impl cv --size 12mp --task detect --no-wait) | tail -1
echo "== peak RSS (GNU time, max resident set)"
for t in 1 2; do
  env RAYON_NUM_THREADS=$t /usr/bin/time -f "analyze $t thread(s): %M KB, %e s wall, %U s user" \
    "$BIN" analyze "$P" --out "$OUT/a.json" 2>&1 | grep KB
done
/usr/bin/time -f "decode_only: %M KB" "$DEC" "$P" 2>&1 | grep KB
echo "== stage times, 1 thread (--timings)"
env RAYON_NUM_THREADS=1 "$BIN" analyze "$P" --out "$OUT/a.json" --timings 2>&1 | grep '^{'
