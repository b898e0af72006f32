"""Held-out check (README, "Independent renderings"): eight skin photos rendered by this script,
which shares no code or constants with scarscope's phantom (src/phantom.rs): scars with other
profiles (paraboloid icepicks, steep-walled cylinders, cosine bowls), other chromophore colour
vectors, erythema centred on half the scars, horizontal furrows, cast shadows (six of eight),
vignetting, sRGB JPEG at quality 92. Each photo is analysed by the release binary with the
light given and estimated and scored like `scarscope eval` (one-to-one matching, centroid
within max(1 mm, true radius), scars >= 1 mm wide).

    cargo build --release && python3 scripts/independent_renders.py [OUT_DIR]

Needs numpy, scipy and pillow. Prints per-photo and pooled precision / recall / F1
and, over the matched scars >= 1 mm, median relative area and depth error and depth Spearman
(env SCARSCOPE_BIN: another binary, e.g. an older build to compare; INDEPENDENT_SET=steep:
eight other photos under 55-65° light).
"""
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter, map_coordinates
from scipy.stats import spearmanr

BIN = os.environ.get("SCARSCOPE_BIN") or os.path.join(os.path.dirname(__file__), "..", "target", "release", "scarscope")
# seed, px/mm, elevation, azimuth (DOMAIN.md convention), skin melanin, cast shadows
CASES = [(1, 20, 35, 60, 0.6, 1), (2, 10, 45, 200, 1.5, 1), (3, 20, 28, 300, 0.2, 1),
         (4, 15, 55, 120, 1.0, 1), (5, 20, 40, 20, 2.0, 1), (6, 10, 30, 250, 0.4, 1),
         (7, 15, 50, 160, 0.8, 0), (8, 20, 33, 90, 1.2, 0)]
# INDEPENDENT_SET=steep: eight photos under steep light (55-65°), where the wall facing the
# light is past the brightest normal (README, "A pit's ridge is not texture").
if os.environ.get("INDEPENDENT_SET") == "steep":
    CASES = [(11, 20, 60, 60, 0.2, 1), (12, 10, 60, 200, 0.6, 1), (13, 30, 60, 300, 0.1, 1),
             (14, 15, 58, 120, 1.0, 0), (15, 20, 62, 20, 2.0, 1), (16, 30, 55, 250, 0.4, 0),
             (17, 15, 60, 160, 0.1, 0), (18, 20, 65, 90, 1.2, 0)]


def render(seed, ppm, el, az, mel, shadows, out, W=1200, H=900):
    rng = np.random.default_rng(seed)
    h = 1.0 / ppm
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    X, Y = x * h, y * h
    z = 1e-4 * ((X - X.mean()) ** 2 + 0.5 * (Y - Y.mean()) ** 2)
    z += gaussian_filter(rng.standard_normal((H, W)), 0.08 * ppm) * 0.02 / (0.08 * ppm)
    furrow = gaussian_filter(rng.standard_normal((H, W)), [0.05 * ppm, 0.6 * ppm])
    z += 0.01 * furrow / furrow.std()
    scars, placed, tries = [], [], 0
    while len(scars) < 18 and tries < 2000:
        tries += 1
        kind = rng.choice(["icepick", "boxcar", "rolling"], p=[0.45, 0.35, 0.2])
        if kind == "icepick":
            D, d = rng.uniform(0.6, 1.6), rng.uniform(0.3, 0.8)
        elif kind == "boxcar":
            D, d = rng.uniform(1.5, 3.8), rng.uniform(0.15, 0.5)
        else:
            D, d = rng.uniform(4.5, 8.0), rng.uniform(0.12, 0.35)
        cx, cy = rng.uniform(D, W * h - D), rng.uniform(D, H * h - D)
        if any(np.hypot(cx - px, cy - py) < 0.6 * (D + pD) + 1.0 for px, py, pD in placed):
            continue
        placed.append((cx, cy, D))
        r = np.hypot(X - cx, Y - cy) / (D / 2)
        if kind == "icepick":
            p = np.clip(1 - r ** 2, 0, None)
        elif kind == "boxcar":
            p = 0.5 * (1 - np.tanh((r - 0.88) / 0.06))
            p = p / p.max()
        else:
            p = np.where(r < 1.3, 0.5 * (1 + np.cos(np.pi * np.clip(r / 1.3, 0, 1))), 0)
        z -= d * p
        scars.append(dict(kind=str(kind), cx=cx, cy=cy, diam=D, depth=d, p=p))
    truth = []
    for s in scars:
        m = s["p"] > 0.1
        truth.append(dict(kind=s["kind"], centroid_px=[float(x[m].mean()), float(y[m].mean())],
                          area_mm2=float(m.sum() * h * h), depth_mm=float(s["depth"] * s["p"].max()),
                          diam=s["diam"]))
    melmap = mel * np.ones((H, W))
    for _ in range(25):
        cx, cy, rr = rng.uniform(0, W * h), rng.uniform(0, H * h), rng.uniform(0.5, 3)
        melmap += rng.uniform(0.1, 0.5) * np.exp(-((X - cx) ** 2 + (Y - cy) ** 2) / (2 * rr * rr))
    hae = 0.3 + gaussian_filter(rng.standard_normal((H, W)), 2 * ppm)
    for s in scars:
        if rng.uniform() < 0.5:
            hae += rng.uniform(0.2, 0.6) * np.exp(-((X - s["cx"]) ** 2 + (Y - s["cy"]) ** 2) / (2 * s["diam"] ** 2))
    od = (np.array([0.08, 0.15, 0.22]) + melmap[..., None] * np.array([0.28, 0.45, 0.75])
          + hae[..., None] * np.array([0.05, 0.6, 0.3]))
    rho = np.exp(-od)
    e, a = np.radians(el), np.radians(az)
    l = np.array([np.cos(e) * np.cos(a), -np.cos(e) * np.sin(a), np.sin(e)])
    zx, zy = np.gradient(z, h, axis=1), np.gradient(z, h, axis=0)
    ndl = np.maximum((-zx * l[0] - zy * l[1] + l[2]) / np.sqrt(1 + zx ** 2 + zy ** 2), 0)
    if shadows:
        lit = np.ones((H, W), bool)
        dx, dy = l[0] / np.hypot(l[0], l[1]), l[1] / np.hypot(l[0], l[1])
        for k in range(1, int(2.0 / np.tan(e) / (0.5 * h)) + 1):
            zs = map_coordinates(z, [y + 0.5 * k * dy, x + 0.5 * k * dx], order=1, mode="nearest")
            lit &= zs <= z + 0.5 * k * h * np.tan(e)
        ndl = ndl * lit
    img = rho * (gaussian_filter(ndl, 0.04 * ppm) + 0.12)[..., None]
    img *= 0.18 / np.median(img[..., 1])
    img *= (1 - 0.25 * (((x - W / 2) / W) ** 2 + ((y - H / 2) / H) ** 2))[..., None]
    img = np.clip(img + np.sqrt(0.0004 * (img + 0.01)) * rng.standard_normal(img.shape), 0, 1)
    srgb = np.where(img <= 0.0031308, 12.92 * img, 1.055 * img ** (1 / 2.4) - 0.055)
    Image.fromarray((srgb * 255 + 0.5).astype(np.uint8)).save(out + ".jpg", quality=92)
    t = dict(mm_per_px=h, elevation_deg=el, azimuth_deg=az, scars=truth)
    json.dump(t, open(out + ".truth.json", "w"))
    return t


def score(t, found):
    mm = t["mm_per_px"]
    pairs = []
    for ti, s in enumerate(t["scars"]):
        tol = max(1.0, 0.5 * s["diam"]) / mm
        for fi, f in enumerate(found):
            d = np.hypot(s["centroid_px"][0] - f["centroid_px"][0], s["centroid_px"][1] - f["centroid_px"][1])
            if d <= tol:
                pairs.append((d, ti, fi))
    pairs.sort()
    tu, fu, m = set(), set(), []
    for _, ti, fi in pairs:
        if ti not in tu and fi not in fu:
            tu.add(ti), fu.add(fi), m.append((ti, fi))
    big = {i for i, s in enumerate(t["scars"]) if s["diam"] >= 1.0}
    tp = sum(1 for ti, _ in m if ti in big)
    nd = len(found) - sum(1 for ti, _ in m if ti not in big)
    # (true, measured) depth and area of each matched scar >= 1 mm.
    meas = [(t["scars"][ti]["depth_mm"], found[fi]["depth_mm"], t["scars"][ti]["area_mm2"], found[fi]["area_mm2"])
            for ti, fi in m if ti in big and found[fi].get("depth_mm") is not None]
    return tp, nd, len(big), meas


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/scarscope_independent"
    os.makedirs(out, exist_ok=True)
    tot = {"given": [0, 0, 0], "estimated": [0, 0, 0]}
    meas = {"given": [], "estimated": []}
    rho = {"given": [], "estimated": []}
    for seed, ppm, el, az, mel, sh in CASES:
        stem = os.path.join(out, f"s{seed}")
        t = render(seed, ppm, el, az, mel, sh, stem)
        line = f"photo {seed}: {ppm:2d} px/mm, elevation {el}, melanin {mel}, shadows {sh}:"
        for mode, extra in [("given", ["--light-azimuth", str(az), "--light-elevation", str(el)]),
                            ("estimated", [])]:
            res = f"{stem}.{mode}.json"
            subprocess.run([BIN, "analyze", stem + ".jpg", "--mm-per-px", str(t["mm_per_px"]),
                            "--out", res] + extra, check=True, capture_output=True)
            r = json.load(open(res))
            tp, nd, n, mp = score(t, r["scars"])
            for i, v in enumerate((tp, nd, n)):
                tot[mode][i] += v
            meas[mode] += mp
            if len(mp) >= 3:
                rho[mode].append(spearmanr([a for a, _, _, _ in mp], [b for _, b, _, _ in mp])[0])
            p, rc = tp / max(nd, 1), tp / max(n, 1)
            line += f"  {mode} F1 {2 * p * rc / max(p + rc, 1e-9):.2f}"
            if len(mp) >= 3:
                line += f" (depth rho {rho[mode][-1]:.2f})"
        print(line)
    for mode, (tp, nd, n) in tot.items():
        p, rc = tp / max(nd, 1), tp / max(n, 1)
        print(f"pooled, light {mode}: precision {p:.3f} recall {rc:.3f} F1 {2 * p * rc / (p + rc):.3f}")
    for mode, mp in meas.items():
        area = np.median([abs(am / at - 1) for _, _, at, am in mp])
        depth = np.median([abs(dm / dt - 1) for dt, dm, _, _ in mp])
        bias = np.median([dm / dt - 1 for dt, dm, _, _ in mp])
        print(f"matched, light {mode}: {len(mp)} scars, median relative area error {area:.3f}, depth error "
              f"{depth:.3f} (bias {bias:+.3f}), depth Spearman median per photo {np.median(rho[mode]):.2f}, "
              f"pooled {spearmanr([a for a, _, _, _ in mp], [b for _, b, _, _ in mp])[0]:.2f}")


if __name__ == "__main__":
    main()
