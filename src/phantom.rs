//! Synthetic skin phantom: the ground-truth oracle of the tests and benches.
//!
//! A subject is a continuous skin surface in millimetres (cheek curvature, crossing furrows,
//! pores, atrophic scars of the three clinical types) with an albedo built from melanin and
//! haemoglobin optical densities that is deliberately *not* tied to depth. Each session renders
//! that surface through its own camera (similarity transform onto baseline), key light,
//! exposure and white balance, with subsurface softening, sheen, flash fall-off, sensor noise
//! and JPEG encoding. The truth of every photo is measured on the height field sampled on that
//! photo's own pixel grid with the footprint rule of DOMAIN.md §4; nothing here calls the
//! analysis code it is used to check.

use std::f64::consts::PI;

use image::{codecs::jpeg::JpegEncoder, RgbImage};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Clinical scar type (Jacob et al. 2001).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ScarType {
    /// Narrow (< 2 mm), deep, V-shaped.
    Icepick,
    /// 1.5–4 mm, flat floor, steep walls.
    Boxcar,
    /// Wide (> 4 mm), shallow, smooth.
    Rolling,
}

impl ScarType {
    /// Lower-case name as used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ScarType::Icepick => "icepick",
            ScarType::Boxcar => "boxcar",
            ScarType::Rolling => "rolling",
        }
    }
}

/// Small deterministic generator (SplitMix64): the phantom's bytes must not depend on the
/// version of an external RNG crate.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [a, b).
    pub fn range(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.unit()
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
    }
    /// A child generator, independent of how many draws the parent makes later.
    pub fn fork(&mut self, tag: u64) -> Rng {
        Rng::new(self.next_u64() ^ mix64(tag))
    }
}

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Noise for one pixel, a pure function of (seed, index) so rendering order never matters.
fn hash_normal(seed: u64, idx: u64) -> f64 {
    let a = mix64(seed ^ idx.wrapping_mul(0xD1B5_4A32_D192_ED03));
    let b = mix64(a ^ 0x2545_F491_4F6C_DD1D);
    let u1 = ((a >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let u2 = (b >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

/// A march towards the light: camera pixels per step, and how far the ray rises per step (mm).
#[derive(Debug, Clone, Copy)]
struct March {
    dx: f64,
    dy: f64,
    rise_mm: f64,
}

/// One scar of the phantom, in skin millimetres (baseline camera frame, origin top-left).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScarSpec {
    /// Stable id across sessions (1-based).
    pub id: u32,
    /// Clinical type.
    pub kind: ScarType,
    /// Centre x in skin mm.
    pub cx: f64,
    /// Centre y in skin mm.
    pub cy: f64,
    /// Equivalent diameter of the 10 %-depth footprint at baseline, mm.
    pub diameter_mm: f64,
    /// Maximum depth at baseline, mm.
    pub depth_mm: f64,
    /// Minor/major axis ratio (≤ 1).
    pub aspect: f64,
    /// Orientation of the major axis, radians.
    pub angle: f64,
}

/// Normalised depression profile p(ρ) with p(0) = 1 and p(1) = 0.1, ρ = r / footprint radius.
fn profile(kind: ScarType, rho: f64) -> f64 {
    match kind {
        // Gaussian: smooth, undulating rolling scar.
        ScarType::Rolling => {
            if rho > 2.2 {
                0.0
            } else {
                (-rho * rho * std::f64::consts::LN_10).exp()
            }
        }
        // U: flat floor, steep walls (logistic wall centred so that p(1) = 0.1).
        ScarType::Boxcar => {
            const S: f64 = 0.055;
            let r0 = 1.0 - S * 9f64.ln();
            if rho > 1.6 {
                return 0.0;
            }
            let f = |r: f64| 1.0 / (1.0 + ((r - r0) / S).exp());
            f(rho) / f(0.0)
        }
        // V: a cone reaching zero at ρ = 1/0.9, so p(1) = 0.1; the tip rounded over 5 %.
        ScarType::Icepick => {
            let rc = 1.0 / 0.9;
            let t = rho.hypot(0.05 * rc);
            let t0 = 0.05 * rc;
            ((rc - t) / (rc - t0)).clamp(0.0, 1.0)
        }
    }
}

/// Support radius of a profile in units of the footprint radius.
fn support(kind: ScarType) -> f64 {
    match kind {
        ScarType::Rolling => 2.2,
        ScarType::Boxcar => 1.6,
        ScarType::Icepick => 1.0 / 0.9,
    }
}

/// A scar's state in one session.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ScarState {
    /// Depth multiplier relative to baseline (0 = resolved).
    pub depth_factor: f64,
    /// Width multiplier relative to baseline.
    pub width_factor: f64,
}

impl ScarSpec {
    /// Depth (positive, mm) of this scar's depression at skin point (x, y) mm, given its state.
    pub fn depression(&self, st: ScarState, x: f64, y: f64) -> f64 {
        if st.depth_factor <= 0.0 {
            return 0.0;
        }
        let r = 0.5 * self.diameter_mm * st.width_factor;
        let (dx, dy) = (x - self.cx, y - self.cy);
        let lim = r * support(self.kind) / self.aspect.sqrt();
        if dx.abs() > lim || dy.abs() > lim {
            return 0.0;
        }
        let (s, c) = self.angle.sin_cos();
        let u = dx * c + dy * s;
        let v = -dx * s + dy * c;
        // Semi-axes a·b = r² keep the equivalent diameter.
        let a = r / self.aspect.sqrt();
        let b = r * self.aspect.sqrt();
        let rho = ((u / a).powi(2) + (v / b).powi(2)).sqrt();
        self.depth_mm * st.depth_factor * profile(self.kind, rho)
    }
    /// Steepest wall of the scar in degrees (its profile's largest slope, along the minor axis,
    /// where walls are steepest), given its state; 0 for a resolved scar.
    pub fn steepest_wall_deg(&self, st: ScarState) -> f64 {
        if st.depth_factor <= 0.0 {
            return 0.0;
        }
        let b = 0.5 * self.diameter_mm * st.width_factor * self.aspect.sqrt();
        let n = 4000;
        let step = support(self.kind) / n as f64;
        let steepest = (0..n)
            .map(|i| {
                let rho = i as f64 * step;
                (profile(self.kind, rho) - profile(self.kind, rho + step)).abs() / step
            })
            .fold(0.0, f64::max);
        (self.depth_mm * st.depth_factor * steepest / b)
            .atan()
            .to_degrees()
    }
    /// Radius (mm) beyond which the scar has no effect.
    pub fn reach_mm(&self, st: ScarState) -> f64 {
        0.5 * self.diameter_mm * st.width_factor * support(self.kind) / self.aspect.sqrt()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Blob {
    x: f64,
    y: f64,
    r: f64,
    amp: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Wave {
    kx: f64,
    ky: f64,
    phase: f64,
    amp: f64,
}

fn waves_at(ws: &[Wave], x: f64, y: f64) -> f64 {
    ws.iter()
        .map(|w| w.amp * (w.kx * x + w.ky * y + w.phase).sin())
        .sum()
}

fn random_waves(rng: &mut Rng, n: usize, wavelength: (f64, f64), amp: f64) -> Vec<Wave> {
    (0..n)
        .map(|_| {
            let th = rng.range(0.0, PI);
            let k = 2.0 * PI / rng.range(wavelength.0, wavelength.1);
            Wave {
                kx: k * th.cos(),
                ky: k * th.sin(),
                phase: rng.range(0.0, 2.0 * PI),
                amp: amp / (n as f64).sqrt(),
            }
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FurrowFamily {
    angle: f64,
    spacing: f64,
    width: f64,
    depth: f64,
    warp: Vec<Wave>,
    modulation: Vec<Wave>,
}

/// Spatial hash of small blobs (pores, freckles) for O(1) lookup.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BlobGrid {
    cell: f64,
    nx: usize,
    ny: usize,
    cells: Vec<Vec<u32>>,
    blobs: Vec<Blob>,
}

impl BlobGrid {
    fn new(blobs: Vec<Blob>, w_mm: f64, h_mm: f64, cell: f64) -> Self {
        let nx = (w_mm / cell).ceil().max(1.0) as usize + 1;
        let ny = (h_mm / cell).ceil().max(1.0) as usize + 1;
        let mut cells = vec![Vec::new(); nx * ny];
        for (i, b) in blobs.iter().enumerate() {
            let reach = 3.0 * b.r;
            let x0 = ((b.x - reach) / cell).floor().max(0.0) as usize;
            let x1 = (((b.x + reach) / cell).floor().max(0.0) as usize).min(nx - 1);
            let y0 = ((b.y - reach) / cell).floor().max(0.0) as usize;
            let y1 = (((b.y + reach) / cell).floor().max(0.0) as usize).min(ny - 1);
            for cy in y0..=y1.max(y0) {
                for cx in x0..=x1.max(x0) {
                    if cy < ny && cx < nx {
                        cells[cy * nx + cx].push(i as u32);
                    }
                }
            }
        }
        BlobGrid {
            cell,
            nx,
            ny,
            cells,
            blobs,
        }
    }
    /// Sum of Gaussian blobs at (x, y).
    fn at(&self, x: f64, y: f64) -> f64 {
        if x < 0.0 || y < 0.0 {
            return 0.0;
        }
        let cx = (x / self.cell) as usize;
        let cy = (y / self.cell) as usize;
        if cx >= self.nx || cy >= self.ny {
            return 0.0;
        }
        self.cells[cy * self.nx + cx]
            .iter()
            .map(|&i| {
                let b = &self.blobs[i as usize];
                let d2 = (x - b.x).powi(2) + (y - b.y).powi(2);
                b.amp * (-d2 / (2.0 * b.r * b.r)).exp()
            })
            .sum()
    }
}

/// Optical-density colour vectors (R, G, B) of the phantom's chromophores. Melanin absorbs
/// more towards blue; haemoglobin mostly in green. Shading is achromatic.
const MELANIN_OD: [f64; 3] = [0.6, 0.85, 1.1];
const HAEM_OD: [f64; 3] = [0.25, 1.0, 0.65];
const BASE_OD: [f64; 3] = [0.18, 0.50, 0.70];

/// Everything about one subject's skin that stays fixed across sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subject {
    /// Subject id.
    pub id: String,
    /// Photo width, px.
    pub width: usize,
    /// Photo height, px.
    pub height: usize,
    /// Baseline pixel spacing, mm.
    pub mm_per_px: f64,
    /// Melanin concentration of the healthy skin (0.05 very light … 2.0 very dark).
    pub skin_melanin: f64,
    /// Scars, ids 1..
    pub scars: Vec<ScarSpec>,
    /// Per session, per scar state.
    pub states: Vec<Vec<ScarState>>,
    /// Per session camera, light and exposure.
    pub sessions: Vec<SessionSetup>,
    curvature: (f64, f64, f64, f64),
    furrows: Vec<FurrowFamily>,
    pores: BlobGrid,
    melanin_field: Vec<Wave>,
    melanin_spots: BlobGrid,
    erythema: BlobGrid,
    haem_field: Vec<Wave>,
    seed: u64,
}

/// Camera, light and exposure of one session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionSetup {
    /// Session name.
    pub name: String,
    /// 2×3 matrix mapping this photo's pixels to baseline pixels.
    pub to_baseline: [[f64; 3]; 2],
    /// Key light azimuth, degrees (0 = from the right, counter-clockwise on screen).
    pub light_azimuth_deg: f64,
    /// Key light elevation above the skin plane, degrees.
    pub light_elevation_deg: f64,
    /// Ambient irradiance as a fraction of the key light's.
    pub ambient: f64,
    /// Exposure change, EV.
    pub exposure_ev: f64,
    /// White-balance gains (R, G, B).
    pub white_balance: [f64; 3],
    /// Strength of the smooth illumination fall-off (0 = none).
    pub falloff: f64,
    /// Specular sheen strength relative to the key light.
    pub specular: f64,
    /// Subsurface-scattering blur, mm.
    pub sss_mm: f64,
    /// Sensor noise standard deviation at full scale (linear).
    pub noise: f64,
    /// JPEG quality.
    pub jpeg_quality: u8,
    /// Whether the skin casts shadows on itself (a steep wall's rim darkens the floor behind
    /// it, as under any real raking light); false shades each point by its normal alone.
    #[serde(default)]
    pub cast_shadows: bool,
}

/// What a subject is made of; every knob has a physically sensible default.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubjectConfig {
    /// Photo width, px.
    pub width: usize,
    /// Photo height, px.
    pub height: usize,
    /// Baseline resolution, px per mm.
    pub px_per_mm: f64,
    /// Number of scars wanted (placed without overlap; fewer if they do not fit).
    pub n_scars: usize,
    /// Number of sessions including baseline.
    pub sessions: usize,
    /// Baseline light azimuth (None: random).
    pub light_azimuth_deg: Option<f64>,
    /// Baseline light elevation (None: random 25–60°).
    pub light_elevation_deg: Option<f64>,
    /// Healthy-skin melanin (None: random 0.05–2.0).
    pub skin_melanin: Option<f64>,
    /// Whether scars are present at all (false: pigment and erythema only).
    pub scars: bool,
    /// Whether later sessions move the camera and change light/exposure.
    pub vary_sessions: bool,
    /// Whether later sessions change the scars (false: a null series).
    pub treat: bool,
    /// Amount of pigment marks (melanin spots, freckles, erythema), 1 = typical.
    pub pigment: f64,
    /// Whether the rendered skin casts shadows on itself (see [`SessionSetup::cast_shadows`]).
    #[serde(default)]
    pub cast_shadows: bool,
}

impl Default for SubjectConfig {
    fn default() -> Self {
        SubjectConfig {
            width: 1200,
            height: 900,
            px_per_mm: 20.0,
            n_scars: 25,
            sessions: 3,
            light_azimuth_deg: None,
            light_elevation_deg: None,
            skin_melanin: None,
            scars: true,
            vary_sessions: true,
            treat: true,
            pigment: 1.0,
            cast_shadows: false,
        }
    }
}

impl Subject {
    /// Draw a subject from a seed and a configuration. Same inputs, same subject.
    pub fn generate(id: &str, seed: u64, cfg: &SubjectConfig) -> Subject {
        let mut rng = Rng::new(seed);
        let mm_per_px = 1.0 / cfg.px_per_mm;
        let w_mm = cfg.width as f64 * mm_per_px;
        let h_mm = cfg.height as f64 * mm_per_px;
        // Margin so every scar stays in frame after the largest camera move.
        let margin_mm = 100.0 * mm_per_px;

        let mut srng = rng.fork(1);
        let mut scars: Vec<ScarSpec> = Vec::new();
        if cfg.scars {
            // Types in turn, so that big rolling scars are not crowded out by small ones.
            let order = [ScarType::Rolling, ScarType::Boxcar, ScarType::Icepick];
            let mut attempts = 0;
            let mut turn = 0usize;
            while scars.len() < cfg.n_scars && attempts < cfg.n_scars * 200 {
                attempts += 1;
                if attempts % 50 == 0 {
                    turn += 1;
                }
                let kind = order[(scars.len() + turn) % 3];
                let (d, depth) = match kind {
                    ScarType::Icepick => (srng.range(0.6, 1.8), srng.range(0.3, 0.8)),
                    ScarType::Boxcar => (srng.range(1.6, 4.0), srng.range(0.12, 0.6)),
                    ScarType::Rolling => (srng.range(4.5, 8.0), srng.range(0.12, 0.45)),
                };
                let aspect = srng.range(0.75, 1.0);
                let angle = srng.range(0.0, PI);
                let reach = 0.5 * d * support(kind) / aspect.sqrt();
                let m = margin_mm + reach;
                if w_mm < 2.0 * m || h_mm < 2.0 * m {
                    continue;
                }
                let cx = srng.range(m, w_mm - m);
                let cy = srng.range(m, h_mm - m);
                let clear = scars.iter().all(|s| {
                    let other = 0.5 * s.diameter_mm * support(s.kind) / s.aspect.sqrt();
                    (s.cx - cx).hypot(s.cy - cy) > reach + other + 0.6
                });
                if clear {
                    scars.push(ScarSpec {
                        id: 0,
                        kind,
                        cx,
                        cy,
                        diameter_mm: d,
                        depth_mm: depth,
                        aspect,
                        angle,
                    });
                }
            }
            // Ids in reading order, so a truth file is easy to eyeball.
            scars.sort_by(|a, b| {
                (a.cy, a.cx)
                    .partial_cmp(&(b.cy, b.cx))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            for (i, s) in scars.iter_mut().enumerate() {
                s.id = i as u32 + 1;
            }
        }

        // Treatment course: a final improvement per scar reached linearly over the sessions.
        let mut trng = rng.fork(2);
        let n_sess = cfg.sessions.max(1);
        let finals: Vec<(f64, f64, Option<usize>)> = scars
            .iter()
            .map(|_| {
                if !cfg.treat || n_sess == 1 {
                    return (0.0, 0.0, None);
                }
                let u = trng.unit();
                if u < 0.10 {
                    // Resolved from some session on.
                    let at = 1 + (trng.unit() * (n_sess - 1) as f64) as usize;
                    (1.0, 0.3, Some(at.min(n_sess - 1)))
                } else if u < 0.20 {
                    (0.0, 0.0, None)
                } else {
                    (trng.range(0.0, 0.7), trng.range(0.0, 0.3), None)
                }
            })
            .collect();
        let states: Vec<Vec<ScarState>> = (0..n_sess)
            .map(|k| {
                let t = if n_sess > 1 {
                    k as f64 / (n_sess - 1) as f64
                } else {
                    0.0
                };
                finals
                    .iter()
                    .map(|&(dd, dw, resolved_at)| match resolved_at {
                        Some(at) if k >= at => ScarState {
                            depth_factor: 0.0,
                            width_factor: 1.0 - dw,
                        },
                        _ => ScarState {
                            depth_factor: 1.0 - dd * t,
                            width_factor: 1.0 - dw * t,
                        },
                    })
                    .collect()
            })
            .collect();

        // Cameras and lights.
        let mut lrng = rng.fork(3);
        let az0 = cfg
            .light_azimuth_deg
            .unwrap_or_else(|| lrng.range(0.0, 360.0));
        let el0 = cfg
            .light_elevation_deg
            .unwrap_or_else(|| lrng.range(25.0, 60.0));
        let (cxp, cyp) = (
            (cfg.width as f64 - 1.0) / 2.0,
            (cfg.height as f64 - 1.0) / 2.0,
        );
        let sessions: Vec<SessionSetup> = (0..n_sess)
            .map(|k| {
                let base = k == 0 || !cfg.vary_sessions;
                let (rot, scale, tx, ty) = if base {
                    (0.0, 1.0, 0.0, 0.0)
                } else {
                    (
                        lrng.range(-5.0, 5.0).to_radians(),
                        lrng.range(0.95, 1.05),
                        lrng.range(-80.0, 80.0),
                        lrng.range(-80.0, 80.0),
                    )
                };
                let (s, c) = rot.sin_cos();
                // q = scale·R·(p − centre) + centre + t
                let a = scale * c;
                let b = -scale * s;
                let cc = scale * s;
                let d = scale * c;
                let to_baseline = [
                    [a, b, cxp + tx - a * cxp - b * cyp],
                    [cc, d, cyp + ty - cc * cxp - d * cyp],
                ];
                let (az, el) = if base {
                    (az0, el0)
                } else {
                    (
                        (az0 + lrng.range(-40.0, 40.0)).rem_euclid(360.0),
                        (el0 + lrng.range(-12.0, 12.0)).clamp(20.0, 70.0),
                    )
                };
                let exposure_ev = if base && k > 0 {
                    0.0
                } else if k == 0 {
                    lrng.range(-0.3, 0.3)
                } else {
                    lrng.range(-1.0, 1.0)
                };
                let wb = if k == 0 || !cfg.vary_sessions {
                    [1.0, 1.0, 1.0]
                } else {
                    [
                        lrng.range(-0.12, 0.12).exp(),
                        1.0,
                        lrng.range(-0.12, 0.12).exp(),
                    ]
                };
                SessionSetup {
                    name: format!("s{}", k + 1),
                    to_baseline,
                    light_azimuth_deg: az,
                    light_elevation_deg: el,
                    ambient: lrng.range(0.05, 0.2),
                    exposure_ev,
                    white_balance: wb,
                    falloff: lrng.range(0.15, 0.4),
                    specular: lrng.range(0.01, 0.03),
                    sss_mm: lrng.range(0.03, 0.08),
                    noise: lrng.range(0.004, 0.01),
                    jpeg_quality: 88,
                    cast_shadows: cfg.cast_shadows,
                }
            })
            .collect();

        // Surface texture.
        let mut grng = rng.fork(4);
        let curv = (
            grng.range(0.3, 0.7) * w_mm,
            grng.range(0.3, 0.7) * h_mm,
            grng.range(80.0, 150.0),
            grng.range(80.0, 150.0),
        );
        let n_fam = 2 + (grng.unit() * 2.0) as usize;
        let base_angle = grng.range(0.0, PI);
        let furrows: Vec<FurrowFamily> = (0..n_fam)
            .map(|i| FurrowFamily {
                angle: base_angle + i as f64 * PI / n_fam as f64 + grng.range(-0.2, 0.2),
                spacing: grng.range(0.6, 1.3),
                width: grng.range(0.04, 0.07),
                depth: grng.range(0.02, 0.06),
                warp: random_waves(&mut grng, 3, (2.0, 6.0), 0.25),
                modulation: random_waves(&mut grng, 3, (3.0, 10.0), 0.3),
            })
            .collect();
        let pore_density = grng.range(1.0, 2.5); // per mm²
        let n_pores = (pore_density * (w_mm + 20.0) * (h_mm + 20.0)) as usize;
        let pores: Vec<Blob> = (0..n_pores)
            .map(|_| Blob {
                x: grng.range(-10.0, w_mm + 10.0),
                y: grng.range(-10.0, h_mm + 10.0),
                r: grng.range(0.1, 0.2) / 4.0,
                amp: -grng.range(0.02, 0.06),
            })
            .filter(|b| b.x >= 0.0 && b.y >= 0.0)
            .collect();
        let pores = BlobGrid::new(pores, w_mm + 10.0, h_mm + 10.0, 0.5);

        // Albedo: melanin and haemoglobin, independent of depth.
        let mut arng = rng.fork(5);
        let skin_melanin = cfg.skin_melanin.unwrap_or_else(|| arng.range(0.05, 2.5));
        let melanin_field = random_waves(&mut arng, 6, (8.0, 40.0), 0.08 * (0.3 + skin_melanin));
        let haem_field = random_waves(&mut arng, 6, (6.0, 30.0), 0.06);
        let mut spots = Vec::new();
        let n_spots = (cfg.pigment * arng.range(0.003, 0.008) * w_mm * h_mm) as usize;
        for _ in 0..n_spots {
            // Melanin spots of scar-like sizes (lentigines, PIH) and small freckles.
            let freckle = arng.unit() < 0.6;
            spots.push(Blob {
                x: arng.range(0.0, w_mm),
                y: arng.range(0.0, h_mm),
                r: if freckle {
                    arng.range(0.2, 0.6)
                } else {
                    arng.range(0.8, 2.5)
                },
                amp: arng.range(0.15, 0.6) * (0.4 + skin_melanin).min(1.5),
            });
        }
        // Some scars carry PIH (brown) and many carry erythema (red), offset from the pit.
        let mut ery = Vec::new();
        for s in &scars {
            if arng.unit() < 0.5 * cfg.pigment.min(1.0) {
                ery.push(Blob {
                    x: s.cx + arng.range(-0.3, 0.3) * s.diameter_mm,
                    y: s.cy + arng.range(-0.3, 0.3) * s.diameter_mm,
                    r: s.diameter_mm * arng.range(0.5, 1.0),
                    amp: arng.range(0.2, 0.6),
                });
            }
            if arng.unit() < 0.2 * cfg.pigment.min(1.0) {
                spots.push(Blob {
                    x: s.cx + arng.range(-0.3, 0.3) * s.diameter_mm,
                    y: s.cy + arng.range(-0.3, 0.3) * s.diameter_mm,
                    r: s.diameter_mm * arng.range(0.4, 0.8),
                    amp: arng.range(0.15, 0.4),
                });
            }
        }
        let n_ery = (cfg.pigment * arng.range(0.002, 0.005) * w_mm * h_mm) as usize;
        for _ in 0..n_ery {
            ery.push(Blob {
                x: arng.range(0.0, w_mm),
                y: arng.range(0.0, h_mm),
                r: arng.range(0.8, 4.0),
                amp: arng.range(0.2, 0.7),
            });
        }
        let spot_cell = 2.0;
        let melanin_spots = BlobGrid::new(spots, w_mm, h_mm, spot_cell);
        let erythema = BlobGrid::new(ery, w_mm, h_mm, 4.0);

        Subject {
            id: id.to_string(),
            width: cfg.width,
            height: cfg.height,
            mm_per_px,
            skin_melanin,
            scars,
            states,
            sessions,
            curvature: curv,
            furrows,
            pores,
            melanin_field,
            melanin_spots,
            erythema,
            haem_field,
            seed,
        }
    }

    /// Height (mm, up positive) of the skin without its scars at skin point (x, y) mm.
    pub fn healthy_height(&self, x: f64, y: f64) -> f64 {
        let (x0, y0, rx, ry) = self.curvature;
        let mut z = -0.5 * ((x - x0).powi(2) / rx + (y - y0).powi(2) / ry);
        for f in &self.furrows {
            let (s, c) = f.angle.sin_cos();
            let t = x * c + y * s + waves_at(&f.warp, x, y);
            let q = t / f.spacing;
            let dist = (q - q.round()).abs() * f.spacing;
            let amp = f.depth * (1.0 + waves_at(&f.modulation, x, y)).clamp(0.3, 1.7);
            z -= amp * (-(dist / f.width).powi(2)).exp();
        }
        z + self.pores.at(x, y)
    }

    /// Whether the camera sample (sx, sy) of session `k`, at height `z0` mm, is hidden from
    /// the key light by skin between it and the light. The skin never rises above its smooth
    /// curvature (furrows, pores and scars only cut into it), so the march stops once that
    /// bound has fallen below the ray for good (the bound minus the ray is concave along it).
    fn in_cast_shadow(&self, k: usize, sx: f64, sy: f64, z0: f64, m: March) -> bool {
        let (x0, y0, rx, ry) = self.curvature;
        // −∞: the first step cannot tell whether the bound is falling.
        let mut prev = f64::NEG_INFINITY;
        for j in 1..=20_000 {
            let t = j as f64;
            let (x, y) = self.skin_of(k, sx + t * m.dx, sy + t * m.dy);
            let ray = z0 + t * m.rise_mm;
            let bound = -0.5 * ((x - x0).powi(2) / rx + (y - y0).powi(2) / ry) - ray;
            if bound < 0.0 && bound < prev {
                return false;
            }
            prev = bound;
            if self.height(k, x, y) > ray {
                return true;
            }
        }
        false
    }

    /// Height (mm) of the skin in session `k` at skin point (x, y) mm.
    pub fn height(&self, k: usize, x: f64, y: f64) -> f64 {
        let mut z = self.healthy_height(x, y);
        for (s, st) in self.scars.iter().zip(&self.states[k]) {
            z -= s.depression(*st, x, y);
        }
        z
    }

    /// Linear RGB albedo of the skin at skin point (x, y) mm.
    pub fn albedo(&self, x: f64, y: f64) -> [f64; 3] {
        let m =
            (self.skin_melanin + waves_at(&self.melanin_field, x, y) + self.melanin_spots.at(x, y))
                .max(0.0);
        let h = (0.35 + waves_at(&self.haem_field, x, y) + self.erythema.at(x, y)).max(0.0);
        let mut out = [0.0; 3];
        for c in 0..3 {
            out[c] = (-(BASE_OD[c] + m * MELANIN_OD[c] + h * HAEM_OD[c])).exp();
        }
        out
    }

    /// Skin mm of the pixel centre (px, py) of session `k`'s photo.
    fn skin_of(&self, k: usize, px: f64, py: f64) -> (f64, f64) {
        let m = &self.sessions[k].to_baseline;
        let qx = m[0][0] * px + m[0][1] * py + m[0][2];
        let qy = m[1][0] * px + m[1][1] * py + m[1][2];
        (qx * self.mm_per_px, qy * self.mm_per_px)
    }

    /// Pixel spacing of session `k`'s photo, mm.
    pub fn session_mm_per_px(&self, k: usize) -> f64 {
        let m = &self.sessions[k].to_baseline;
        (m[0][0] * m[1][1] - m[0][1] * m[1][0]).abs().sqrt() * self.mm_per_px
    }

    /// Render session `k` to an 8-bit sRGB image.
    pub fn render(&self, k: usize) -> RgbImage {
        let lin = self.render_linear(k);
        let (w, h) = (self.width, self.height);
        let mut img = RgbImage::new(w as u32, h as u32);
        for (i, px) in img.pixels_mut().enumerate() {
            for c in 0..3 {
                px.0[c] = encode_srgb(lin[i * 3 + c]);
            }
        }
        img
    }

    /// Render session `k` as linear-light RGB (interleaved, row-major), before quantisation.
    pub fn render_linear(&self, k: usize) -> Vec<f64> {
        let ses = &self.sessions[k];
        let (w, h) = (self.width, self.height);
        const SS: usize = 2;
        let step = 1.0 / SS as f64;
        let mmpp = self.session_mm_per_px(k);
        let d_mm = mmpp * step;
        let az = ses.light_azimuth_deg.to_radians();
        let el = ses.light_elevation_deg.to_radians();
        // Light vector in image axes (x right, y down, z out of the skin).
        let l = [el.cos() * az.cos(), -el.cos() * az.sin(), el.sin()];
        let hv = {
            let v = [l[0], l[1], l[2] + 1.0];
            let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
            [v[0] / n, v[1] / n, v[2] / n]
        };
        // Cast shadows are found by marching from each sample towards the light, half a
        // sample at a time, rising at tan e.
        let march = March {
            dx: 0.5 * step * az.cos(),
            dy: -0.5 * step * az.sin(),
            rise_mm: 0.5 * d_mm * el.tan(),
        };
        // Irradiance (diffuse) and sheen per pixel, each averaged over SS×SS samples.
        let rows: Vec<(Vec<f64>, Vec<f64>)> = (0..h)
            .into_par_iter()
            .map(|py| {
                // Heights on an (SS+2)-row strip with a one-sample border for differences.
                let ncols = w * SS + 2;
                let nrows = SS + 2;
                let mut zs = vec![0.0; ncols * nrows];
                for r in 0..nrows {
                    let sy = py as f64 - 0.5 + step * (r as f64 - 0.5);
                    for cidx in 0..ncols {
                        let sx = -0.5 + step * (cidx as f64 - 0.5);
                        let (x, y) = self.skin_of(k, sx, sy);
                        zs[r * ncols + cidx] = self.height(k, x, y);
                    }
                }
                let mut diff = vec![0.0; w];
                let mut spec = vec![0.0; w];
                for (px, (dv, sv)) in diff.iter_mut().zip(spec.iter_mut()).enumerate() {
                    let mut acc_d = 0.0;
                    let mut acc_s = 0.0;
                    for r in 1..=SS {
                        for cc in 1..=SS {
                            let cidx = px * SS + cc;
                            let zx = (zs[r * ncols + cidx + 1] - zs[r * ncols + cidx - 1])
                                / (2.0 * d_mm);
                            let zy = (zs[(r + 1) * ncols + cidx] - zs[(r - 1) * ncols + cidx])
                                / (2.0 * d_mm);
                            let nn = (1.0 + zx * zx + zy * zy).sqrt();
                            let n = [-zx / nn, -zy / nn, 1.0 / nn];
                            let mut ndl = n[0] * l[0] + n[1] * l[1] + n[2] * l[2];
                            if ndl > 0.0 && ses.cast_shadows {
                                let sx = -0.5 + step * (cidx as f64 - 0.5);
                                let sy = py as f64 - 0.5 + step * (r as f64 - 0.5);
                                if self.in_cast_shadow(k, sx, sy, zs[r * ncols + cidx], march) {
                                    ndl = 0.0;
                                }
                            }
                            acc_d += ndl.max(0.0);
                            let ndh = (n[0] * hv[0] + n[1] * hv[1] + n[2] * hv[2]).max(0.0);
                            if ndl > 0.0 {
                                acc_s += ndh.powf(30.0);
                            }
                        }
                    }
                    let nss = (SS * SS) as f64;
                    *dv = acc_d / nss;
                    *sv = acc_s / nss;
                }
                (diff, spec)
            })
            .collect();
        let mut diffuse = Vec::with_capacity(w * h);
        let mut sheen = Vec::with_capacity(w * h);
        for (d, s) in rows {
            diffuse.extend(d);
            sheen.extend(s);
        }
        // Subsurface scattering spreads the diffuse irradiance before the albedo acts.
        let sigma_px = ses.sss_mm / mmpp;
        let diffuse = blur(&diffuse, w, h, sigma_px);

        // The camera meters on the skin: healthy skin's green lands near 15 % linear (mid grey
        // in sRGB) whatever the skin tone, then the session's exposure error applies.
        let skin_g = (-(BASE_OD[1] + self.skin_melanin * MELANIN_OD[1] + 0.35 * HAEM_OD[1])).exp();
        let flat_irr = el.sin() + ses.ambient;
        let gain = 0.15 / (skin_g * flat_irr) * 2f64.powf(ses.exposure_ev);
        let (cxp, cyp) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
        let rad = (cxp * cxp + cyp * cyp).sqrt();
        let fx = 0.5 * ses.falloff;
        let noise_seed = self.seed ^ mix64(k as u64 + 77);
        let out: Vec<f64> = (0..h)
            .into_par_iter()
            .flat_map_iter(|py| {
                let diffuse = &diffuse;
                let sheen = &sheen;
                (0..w).flat_map(move |px| {
                    let i = py * w + px;
                    let (x, y) = self.skin_of(k, px as f64, py as f64);
                    let rho = self.albedo(x, y);
                    let dx = (px as f64 - cxp) / rad;
                    let dy = (py as f64 - cyp) / rad;
                    // Flash fall-off: radial vignetting plus an off-centre tilt.
                    let fall =
                        (1.0 - ses.falloff * (dx * dx + dy * dy)) * (1.0 + fx * dx - 0.5 * fx * dy);
                    let irr = diffuse[i] + ses.ambient;
                    let mut pix = [0.0; 3];
                    for c in 0..3 {
                        let v = gain
                            * ses.white_balance[c]
                            * fall
                            * (rho[c] * irr + ses.specular * sheen[i]);
                        let sd = (ses.noise * ses.noise * (0.2 + v)).sqrt();
                        pix[c] =
                            (v + sd * hash_normal(noise_seed, (i * 3 + c) as u64)).clamp(0.0, 1.0);
                    }
                    pix
                })
            })
            .collect();
        out
    }

    /// Truth of session `k`'s photo, measured on the height field sampled at its pixel centres.
    pub fn truth(&self, k: usize, view: &str) -> PhotoTruth {
        let ses = &self.sessions[k];
        let mmpp = self.session_mm_per_px(k);
        let inv = invert_affine(&ses.to_baseline);
        let scars = self
            .scars
            .iter()
            .zip(&self.states[k])
            .map(|(s, st)| {
                // Bounding box of the scar's reach in this photo's pixels.
                let reach_px = s.reach_mm(*st).max(0.5 * s.diameter_mm) / mmpp + 2.0;
                let (bx, by) = (s.cx / self.mm_per_px, s.cy / self.mm_per_px);
                let cpx = inv[0][0] * bx + inv[0][1] * by + inv[0][2];
                let cpy = inv[1][0] * bx + inv[1][1] * by + inv[1][2];
                let x0 = (cpx - reach_px).floor().max(0.0) as usize;
                let y0 = (cpy - reach_px).floor().max(0.0) as usize;
                let x1 = ((cpx + reach_px).ceil().max(0.0) as usize).min(self.width - 1);
                let y1 = ((cpy + reach_px).ceil().max(0.0) as usize).min(self.height - 1);
                let mut samples = Vec::new();
                let mut max_d: f64 = 0.0;
                for py in y0..=y1 {
                    for px in x0..=x1 {
                        let (x, y) = self.skin_of(k, px as f64, py as f64);
                        let d = s.depression(*st, x, y);
                        if d > 0.0 {
                            samples.push((px, py, d));
                            max_d = max_d.max(d);
                        }
                    }
                }
                let thr = 0.1 * max_d;
                let foot: Vec<_> = samples.iter().filter(|p| p.2 > thr).collect();
                let n = foot.len() as f64;
                let resolved = st.depth_factor <= 0.0 || foot.is_empty();
                let (sx, sy, sd) = foot.iter().fold((0.0, 0.0, 0.0), |a, p| {
                    (a.0 + p.0 as f64, a.1 + p.1 as f64, a.2 + p.2)
                });
                let px_area = mmpp * mmpp;
                let centroid = if n > 0.0 {
                    [sx / n, sy / n]
                } else {
                    [cpx, cpy]
                };
                TruthScar {
                    id: s.id,
                    kind: s.kind,
                    centroid_px: centroid,
                    area_px: n,
                    area_mm2: n * px_area,
                    equivalent_diameter_mm: 2.0 * (n * px_area / PI).sqrt(),
                    depth_mm: max_d,
                    mean_depth_mm: if n > 0.0 { sd / n } else { 0.0 },
                    volume_mm3: sd * px_area,
                    resolved,
                    nominal_diameter_mm: s.diameter_mm * st.width_factor,
                    nominal_depth_mm: s.depth_mm * st.depth_factor,
                }
            })
            .collect();
        PhotoTruth {
            schema: "scarscope-phantom-truth/1".into(),
            subject: self.id.clone(),
            session: ses.name.clone(),
            session_index: k,
            view: view.into(),
            width: self.width,
            height: self.height,
            mm_per_px: mmpp,
            light: TruthLight {
                azimuth_deg: ses.light_azimuth_deg,
                elevation_deg: ses.light_elevation_deg,
                ambient: ses.ambient,
            },
            to_baseline: ses.to_baseline,
            exposure_ev: ses.exposure_ev,
            white_balance: ses.white_balance,
            skin_melanin: self.skin_melanin,
            scars,
        }
    }

    /// JPEG bytes of session `k`'s photo.
    pub fn render_jpeg(&self, k: usize) -> Vec<u8> {
        let img = self.render(k);
        let mut out = Vec::new();
        let mut enc = JpegEncoder::new_with_quality(&mut out, self.sessions[k].jpeg_quality);
        // Encoding an in-memory RGB buffer of the right size cannot fail.
        if enc.encode_image(&img).is_err() {
            out.clear();
        }
        out
    }
}

/// Invert a 2×3 affine matrix (identity if singular).
pub fn invert_affine(m: &[[f64; 3]; 2]) -> [[f64; 3]; 2] {
    let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    if det.abs() < 1e-12 {
        return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
    }
    let a = m[1][1] / det;
    let b = -m[0][1] / det;
    let c = -m[1][0] / det;
    let d = m[0][0] / det;
    [
        [a, b, -(a * m[0][2] + b * m[1][2])],
        [c, d, -(c * m[0][2] + d * m[1][2])],
    ]
}

/// sRGB encoding of a linear value to 8 bits.
fn encode_srgb(v: f64) -> u8 {
    let v = v.clamp(0.0, 1.0);
    let s = if v <= 0.003_130_8 {
        12.92 * v
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    };
    (s * 255.0 + 0.5).floor().clamp(0.0, 255.0) as u8
}

/// Separable Gaussian blur with clamped borders (the phantom's own, independent of `filters`).
fn blur(src: &[f64], w: usize, h: usize, sigma: f64) -> Vec<f64> {
    if sigma < 0.2 {
        return src.to_vec();
    }
    let rad = (3.5 * sigma).ceil() as isize;
    let k: Vec<f64> = (-rad..=rad)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let ks: f64 = k.iter().sum();
    let k: Vec<f64> = k.iter().map(|v| v / ks).collect();
    let mut tmp = vec![0.0; w * h];
    tmp.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, o) in row.iter_mut().enumerate() {
            let mut acc = 0.0;
            for (j, kv) in k.iter().enumerate() {
                let xx = (x as isize + j as isize - rad).clamp(0, w as isize - 1) as usize;
                acc += kv * src[y * w + xx];
            }
            *o = acc;
        }
    });
    let mut out = vec![0.0; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, o) in row.iter_mut().enumerate() {
            let mut acc = 0.0;
            for (j, kv) in k.iter().enumerate() {
                let yy = (y as isize + j as isize - rad).clamp(0, h as isize - 1) as usize;
                acc += kv * tmp[yy * w + x];
            }
            *o = acc;
        }
    });
    out
}

/// Light of a phantom photo.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TruthLight {
    /// Azimuth, degrees.
    pub azimuth_deg: f64,
    /// Elevation, degrees.
    pub elevation_deg: f64,
    /// Ambient fraction of the key light.
    pub ambient: f64,
}

/// Truth of one scar in one photo.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TruthScar {
    /// Stable id across sessions.
    pub id: u32,
    /// Type.
    #[serde(rename = "type")]
    pub kind: ScarType,
    /// Footprint centroid in this photo's pixels.
    pub centroid_px: [f64; 2],
    /// Footprint area, px.
    pub area_px: f64,
    /// Footprint area, mm².
    pub area_mm2: f64,
    /// Diameter of the disc of the same area, mm.
    pub equivalent_diameter_mm: f64,
    /// Maximum depth, mm.
    pub depth_mm: f64,
    /// Mean depth over the footprint, mm.
    pub mean_depth_mm: f64,
    /// Depth integrated over the footprint, mm³.
    pub volume_mm3: f64,
    /// True when the scar is gone in this session.
    pub resolved: bool,
    /// Generator's nominal diameter this session (footprint-equivalent), mm.
    pub nominal_diameter_mm: f64,
    /// Generator's nominal maximum depth this session, mm.
    pub nominal_depth_mm: f64,
}

/// Truth of one phantom photo.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhotoTruth {
    /// Truth format id.
    pub schema: String,
    /// Subject id.
    pub subject: String,
    /// Session name.
    pub session: String,
    /// Session index (0 = baseline).
    pub session_index: usize,
    /// View name.
    pub view: String,
    /// Width, px.
    pub width: usize,
    /// Height, px.
    pub height: usize,
    /// Pixel spacing, mm.
    pub mm_per_px: f64,
    /// Key light.
    pub light: TruthLight,
    /// 2×3 matrix mapping this photo's pixels to baseline pixels.
    pub to_baseline: [[f64; 3]; 2],
    /// Exposure change, EV.
    pub exposure_ev: f64,
    /// White-balance gains.
    pub white_balance: [f64; 3],
    /// Healthy-skin melanin.
    pub skin_melanin: f64,
    /// Every scar of the subject (resolved ones flagged).
    pub scars: Vec<TruthScar>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_scar_subject(kind: ScarType, d: f64, depth: f64, px_per_mm: f64) -> Subject {
        let cfg = SubjectConfig {
            width: 200,
            height: 200,
            px_per_mm,
            n_scars: 0,
            sessions: 1,
            scars: false,
            ..Default::default()
        };
        let mut s = Subject::generate("t", 1, &cfg);
        let c = 99.5 / px_per_mm + 0.5 / px_per_mm;
        s.scars = vec![ScarSpec {
            id: 1,
            kind,
            cx: c,
            cy: c,
            diameter_mm: d,
            depth_mm: depth,
            aspect: 1.0,
            angle: 0.0,
        }];
        s.states = vec![vec![ScarState {
            depth_factor: 1.0,
            width_factor: 1.0,
        }]];
        s
    }

    /// Length (px) of the dark run along the row through a boxcar's centre, light from the
    /// right at 30°: pixels lit by ambient light alone, against flat skin away from the scar.
    fn shadow_run(cast: bool) -> (usize, f64) {
        let mut s = one_scar_subject(ScarType::Boxcar, 3.0, 0.5, 20.0);
        let ses = &mut s.sessions[0];
        ses.light_azimuth_deg = 0.0;
        ses.light_elevation_deg = 30.0;
        (ses.noise, ses.falloff, ses.specular, ses.sss_mm) = (0.0, 0.0, 0.0, 1e-6);
        ses.cast_shadows = cast;
        let lin = s.render_linear(0);
        let (w, y) = (s.width, s.height / 2);
        let g = |x: usize| lin[(y * w + x) * 3 + 1];
        // Flat skin returns sin e + ambient; shadowed skin the ambient alone.
        let (flat, ambient, se) = (g(5), s.sessions[0].ambient, 30f64.to_radians().sin());
        let dark = (ambient + 0.05) / (se + ambient) * flat;
        // The longest dark run (furrows and pores make short ones of their own).
        let (mut run, mut cur) = (0, 0);
        for x in 0..w {
            cur = if g(x) < dark { cur + 1 } else { 0 };
            run = run.max(cur);
        }
        // Where the shadow should end: the ray from the rim (where the wall turns steeper than
        // the light) down to the floor, depth / tan e, in px.
        let expected = 0.5 / 30f64.to_radians().tan() * 20.0;
        (run, expected)
    }

    #[test]
    fn a_raking_light_casts_a_shadow_as_long_as_the_depth_over_tan_e() {
        let (cast, expected) = shadow_run(true);
        assert!(
            (cast as f64 - expected).abs() <= 3.0,
            "shadow {cast} px, depth / tan e = {expected:.1} px"
        );
        // Without cast shadows only the wall steeper than the light is dark.
        let (attached, _) = shadow_run(false);
        assert!(
            attached + 5 <= cast,
            "attached {attached} px, cast {cast} px"
        );
    }

    #[test]
    fn steepest_wall_matches_the_largest_slope_of_the_depression() {
        let st = ScarState {
            depth_factor: 0.8,
            width_factor: 1.1,
        };
        for kind in [ScarType::Icepick, ScarType::Boxcar, ScarType::Rolling] {
            let spec = ScarSpec {
                id: 1,
                kind,
                cx: 0.0,
                cy: 0.0,
                diameter_mm: 2.0,
                depth_mm: 0.4,
                aspect: 0.8,
                angle: 0.3,
            };
            // Largest central-difference slope of the depression itself, on a 5 µm grid.
            let (h, reach) = (0.005, spec.reach_mm(st));
            let n = (reach / h) as i32;
            let mut steepest: f64 = 0.0;
            for i in -n..=n {
                for j in -n..=n {
                    let (x, y) = (i as f64 * h, j as f64 * h);
                    let gx = spec.depression(st, x + h, y) - spec.depression(st, x - h, y);
                    let gy = spec.depression(st, x, y + h) - spec.depression(st, x, y - h);
                    steepest = steepest.max(gx.hypot(gy) / (2.0 * h));
                }
            }
            let want = steepest.atan().to_degrees();
            let got = spec.steepest_wall_deg(st);
            assert!(
                (got - want).abs() < 1.0,
                "{kind:?}: {got:.2}° vs {want:.2}°"
            );
        }
    }

    /// Independent measurement on the full rendered height field (furrows, pores and curvature
    /// included) against the scar-free surface, with the 10 % footprint rule.
    fn measure_from_height_field(s: &Subject) -> (f64, f64) {
        let mmpp = s.mm_per_px;
        let n = s.width;
        let z: Vec<f64> = (0..n * n)
            .map(|i| s.height(0, (i % n) as f64 * mmpp, (i / n) as f64 * mmpp))
            .collect();
        let healthy: Vec<f64> = (0..n * n)
            .map(|i| s.healthy_height((i % n) as f64 * mmpp, (i / n) as f64 * mmpp))
            .collect();
        // The reference is the scar-free surface itself, so depth = healthy − actual.
        let dep: Vec<f64> = z.iter().zip(&healthy).map(|(a, b)| b - a).collect();
        let max = dep.iter().cloned().fold(0.0, f64::max);
        let area = dep.iter().filter(|&&d| d > 0.1 * max).count() as f64 * mmpp * mmpp;
        (max, 2.0 * (area / PI).sqrt())
    }

    #[test]
    fn generated_scar_measures_its_nominal_depth_and_width_within_2_percent() {
        for (kind, d, depth) in [
            (ScarType::Icepick, 1.2, 0.6),
            (ScarType::Boxcar, 3.0, 0.3),
            (ScarType::Rolling, 6.0, 0.25),
        ] {
            let s = one_scar_subject(kind, d, depth, 25.0);
            let (max, diam) = measure_from_height_field(&s);
            assert!(
                (max - depth).abs() / depth < 0.02,
                "{kind:?}: depth {max} vs {depth}"
            );
            assert!((diam - d).abs() / d < 0.02, "{kind:?}: width {diam} vs {d}");
            let t = s.truth(0, "v");
            assert!((t.scars[0].depth_mm - max).abs() < 1e-9);
            assert!((t.scars[0].equivalent_diameter_mm - diam).abs() / diam < 1e-6);
        }
    }

    #[test]
    fn same_seed_gives_identical_bytes() {
        let cfg = SubjectConfig {
            width: 160,
            height: 120,
            n_scars: 5,
            ..Default::default()
        };
        let a = Subject::generate("a", 42, &cfg);
        let b = Subject::generate("a", 42, &cfg);
        assert_eq!(a.render_jpeg(1), b.render_jpeg(1));
        let c = Subject::generate("a", 43, &cfg);
        assert_ne!(a.render_jpeg(1), c.render_jpeg(1));
    }
}
