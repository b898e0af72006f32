//! Any decodable byte string goes through the whole analysis, into the JSON report and the
//! overlay: a typed error or a report with no NaN or infinity in it and an overlay of the
//! photo's size; never a panic. The parameters vary with
//! the input's length so the calibrated, uncalibrated and given-light paths are all reached.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use scarscope::analyze::{analyze, AnalyzeParams, Calibration};
use scarscope::load::{load_bytes, LoadLimits};
use scarscope::report::overlay::draw_overlay;
use scarscope::report::{analyze_doc, to_json_bytes, AnalyzeDoc};

/// Small images only: the analysis of a 256×256 photo takes milliseconds, so the fuzzer
/// explores inputs instead of waiting on large ones (the load target covers large headers).
const LIMITS: LoadLimits = LoadLimits {
    max_pixels: 65_536,
    max_alloc_bytes: 64 << 20,
};

fn params(variant: usize) -> AnalyzeParams {
    let mut p = AnalyzeParams::default();
    let calibrated = |mm| Calibration {
        mm_per_px: Some(mm),
        source: "fuzz".into(),
    };
    match variant % 4 {
        0 => {}
        1 => p.calibration = calibrated(0.05),
        2 => {
            p.calibration = calibrated(0.2);
            p.light_azimuth_deg = Some(135.0);
            p.light_elevation_deg = Some(30.0);
        }
        _ => p.light_azimuth_deg = Some(-30.0),
    }
    p
}

fuzz_target!(|data: &[u8]| {
    let Ok(img) = load_bytes(data, Path::new("fuzz.bin"), &LIMITS) else {
        return;
    };
    let p = params(data.len());
    if let Ok(a) = analyze(&img.planes, &p) {
        let doc = analyze_doc(&img.meta, &p, &a);
        let json = to_json_bytes(&doc).expect("the report serialises");
        // serde_json writes NaN and infinities as null, which reads back as a different
        // document (or not at all): equality after the round trip means every number is finite.
        let back: AnalyzeDoc = serde_json::from_slice(&json).expect("the report reads back");
        let overlay = draw_overlay(&img.planes, &a);
        assert_eq!(overlay.dimensions(), (img.meta.width, img.meta.height));
        assert_eq!(
            back, doc,
            "report changed in a JSON round trip (NaN or infinity?)"
        );
    }
});
