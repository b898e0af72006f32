//! Registration accuracy on phantom pairs at one resolution (renders cached in the temp dir).
//! `cargo run --release --example register_probe [N_SEEDS] [PX_PER_MM]`; NOSCARS=1 for skin only.
use std::path::Path;

use scarscope::load::{load_bytes, LoadLimits};
use scarscope::phantom::{Subject, SubjectConfig};
use scarscope::register::{register, Affine, RegisterParams, RegistrationPlane};

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let ppm: f64 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20.0);
    let p = RegisterParams::default();
    let cache = std::env::temp_dir().join("scarscope-register-probe");
    std::fs::create_dir_all(&cache).unwrap();
    let mut all = Vec::new();
    for seed in 11..11 + n {
        let cfg = SubjectConfig {
            width: 900,
            height: 700,
            px_per_mm: ppm,
            n_scars: 20,
            sessions: 2,
            scars: std::env::var("NOSCARS").is_err(),
            ..Default::default()
        };
        let tag = if cfg.scars { "" } else { "ns" };
        let s = Subject::generate("r", seed, &cfg);
        let planes: Vec<_> = (0..2)
            .map(|k| {
                let f = cache.join(format!("{seed}_{ppm}_{k}{tag}.jpg"));
                let bytes = std::fs::read(&f).unwrap_or_else(|_| {
                    let b = s.render_jpeg(k);
                    std::fs::write(&f, &b).unwrap();
                    b
                });
                load_bytes(&bytes, Path::new("x.jpg"), &LoadLimits::default())
                    .unwrap()
                    .planes
            })
            .collect();
        let t0 = std::time::Instant::now();
        let a = RegistrationPlane::from_planes(&planes[0], &p).unwrap();
        let b = RegistrationPlane::from_planes(&planes[1], &p).unwrap();
        let t1 = std::time::Instant::now();
        let reg = register(&a, &b, &p);
        let t2 = std::time::Instant::now();
        let ses = &s.sessions[1];
        match reg {
            Err(e) => println!("seed {seed}: ERR {e}"),
            Ok(reg) => {
                let truth = Affine(ses.to_baseline);
                let est = reg.affine();
                let mut e: Vec<f64> = s
                    .truth(1, "v")
                    .scars
                    .iter()
                    .map(|t| {
                        let (x, y) = (truth.apply(t.centroid_px), est.apply(t.centroid_px));
                        (x[0] - y[0]).hypot(x[1] - y[1])
                    })
                    .collect();
                e.push(0.0);
                e.sort_by(f64::total_cmp);
                let c = [450.0, 350.0];
                let (x, y) = (truth.apply(c), est.apply(c));
                all.extend(e.iter().copied());
                println!("seed {seed}: az {:.0}->{:.0} ev {:+.2} rot {:.2} sc {:.3}  err_c ({:+.2},{:+.2}) med {:.2} max {:.2} inl {}/{} res {:.2} ncc {:.2} peak {:.1}  t {:?} {:?}",
                    s.sessions[0].light_azimuth_deg, ses.light_azimuth_deg, ses.exposure_ev, truth.rotation_deg(), truth.scale(),
                    y[0]-x[0], y[1]-x[1], e[e.len()/2], e[e.len()-1], reg.inliers, reg.tiles, reg.residual_px, reg.median_ncc, reg.peak_sigma, t1-t0, t2-t1);
            }
        }
        // Unrelated pair: baseline of this seed vs session of another.
        if seed == 11 {
            let other = Subject::generate("o", seed + 100, &cfg);
            let f = cache.join(format!("{}_{ppm}_1.jpg", seed + 100));
            let bytes = std::fs::read(&f).unwrap_or_else(|_| {
                let b = other.render_jpeg(1);
                std::fs::write(&f, &b).unwrap();
                b
            });
            let o = load_bytes(&bytes, Path::new("x.jpg"), &LoadLimits::default())
                .unwrap()
                .planes;
            let ob = RegistrationPlane::from_planes(&o, &p).unwrap();
            match register(&a, &ob, &p) {
                Ok(r) => println!(
                    "UNRELATED ACCEPTED inl {}/{} peak {:.1} ncc {:.2}",
                    r.inliers, r.tiles, r.peak_sigma, r.median_ncc
                ),
                Err(e) => println!("unrelated refused: {e}"),
            }
        }
    }
    all.sort_by(f64::total_cmp);
    if !all.is_empty() {
        println!(
            "ALL median {:.3} p95 {:.3}",
            all[all.len() / 2],
            all[all.len() * 95 / 100]
        );
    }
}
