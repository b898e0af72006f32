//! Any byte string given to the loader gives a typed error or a valid image; never a panic,
//! an abort, or an allocation beyond the limits.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use scarscope::load::{load_bytes, LoadLimits};

/// Small limits keep every accepted decode far below libFuzzer's memory limit, so a
/// decompression bomb shows up as a refusal, not as an out-of-memory finding.
const LIMITS: LoadLimits = LoadLimits {
    max_pixels: 4_000_000,
    max_alloc_bytes: 256 << 20,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = load_bytes(data, Path::new("fuzz.bin"), &LIMITS) {
        let (w, h) = (img.planes.width(), img.planes.height());
        assert_eq!((w as u32, h as u32), (img.meta.width, img.meta.height));
        assert!((w as u64) * (h as u64) <= LIMITS.max_pixels);
        for p in [&img.planes.r, &img.planes.g, &img.planes.b] {
            assert!(
                p.iter().all(|v| (0.0..=1.0).contains(v)),
                "linear values in [0, 1]"
            );
        }
    }
});
