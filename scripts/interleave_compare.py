#!/usr/bin/env python3
"""Time two scarscope binaries' `analyze` and `compare` on the 12 MP reference pair in
interleaved rounds (each round runs all four once), so that a VM's drifting speed falls on
both binaries alike (docs/performance.md). Usage:
  scripts/interleave_compare.py OLD_BINARY NEW_BINARY [ROUNDS]
Photos: $PHOTO / $PHOTO_AFTER, default the anchors' /tmp/anchor-imgs/skin_12mp_{before,after}.jpg.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

old, new = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 20
img = os.environ.get("ANCHOR_IMG_DIR", "/tmp/anchor-imgs")
p1 = os.environ.get("PHOTO", f"{img}/skin_12mp_before.jpg")
p2 = os.environ.get("PHOTO_AFTER", f"{img}/skin_12mp_after.jpg")
out = tempfile.mkdtemp()
cmds = {
    "analyze old": [old, "analyze", p1, "--out", f"{out}/a_old.json"],
    "analyze new": [new, "analyze", p1, "--out", f"{out}/a_new.json"],
    "compare old": [old, "compare", p1, p2, "--out", f"{out}/c_old.json"],
    "compare new": [new, "compare", p1, p2, "--out", f"{out}/c_new.json"],
}
times = {k: [] for k in cmds}
for r in range(rounds + 1):  # round 0 warms the caches up and is not counted
    for k, c in cmds.items():
        start = time.perf_counter()
        subprocess.run(c, capture_output=True, check=True)
        if r:
            times[k].append(1000 * (time.perf_counter() - start))
med = {k: statistics.median(v) for k, v in times.items()}
for k, v in times.items():
    print(f"{k}: median {med[k]:.1f} ms, mean {statistics.mean(v):.1f} ± {statistics.stdev(v):.1f}")
for b in ("old", "new"):
    per_round = [c / a for c, a in zip(times[f"compare {b}"], times[f"analyze {b}"])]
    print(f"compare / analyze, {b}: {med[f'compare {b}'] / med[f'analyze {b}']:.2f}x "
          f"(per-round median {statistics.median(per_round):.2f}x)")
