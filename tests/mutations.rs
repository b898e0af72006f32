//! Property test: valid JPEG, PNG, TIFF and WebP files, mutated (truncated, bits flipped,
//! bytes overwritten or inserted, header dimensions edited to huge or zero values), never make
//! the loader or the analysis panic. Every outcome is a typed error naming the file, or an
//! image whose size matches its metadata and the limits, with linear values in [0, 1]; an
//! analysis of it is a typed error or a report whose numbers are all finite, with an overlay
//! of the photo's size.
//!
//! The case count is fixed so the test runs in seconds in `cargo test --release`; the fuzz
//! targets in fuzz/ explore the same ground without a bound (see the README, "Fuzzing").

use std::io::Cursor;
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::tiff::TiffEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder, RgbImage};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use scarscope::analyze::{analyze, AnalyzeParams, Calibration};
use scarscope::load::{load_bytes, LoadLimits};
use scarscope::report::overlay::draw_overlay;
use scarscope::report::{analyze_doc, to_json_bytes};

const NAME: &str = "mutant.img";

/// Small limits: a mutated header may claim any size, and only small images are analysed.
const LIMITS: LoadLimits = LoadLimits {
    max_pixels: 1_000_000,
    max_alloc_bytes: 64 << 20,
};

/// A 48×40 gradient with some texture, so JPEG has AC coefficients and the analysis has
/// something to look at.
fn picture() -> RgbImage {
    RgbImage::from_fn(48, 40, |x, y| {
        let t = ((x * 7 + y * 13) % 17) as u8;
        image::Rgb([
            (5 * x) as u8 + t,
            (6 * y) as u8 + t,
            200 - (2 * x + y) as u8,
        ])
    })
}

fn encode(format: usize) -> Vec<u8> {
    let img = picture();
    let (w, h, raw) = (img.width(), img.height(), img.as_raw());
    let mut out = Vec::new();
    let t = ExtendedColorType::Rgb8;
    match format {
        0 => JpegEncoder::new_with_quality(&mut out, 85).write_image(raw, w, h, t),
        1 => PngEncoder::new(&mut out).write_image(raw, w, h, t),
        2 => TiffEncoder::new(Cursor::new(&mut out)).write_image(raw, w, h, t),
        _ => WebPEncoder::new_lossless(&mut out).write_image(raw, w, h, t),
    }
    .expect("the base file encodes");
    out
}

/// One edit of a file. Positions are fractions of the length so they fit any file.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(f64),
    FlipBit(f64, u8),
    SetByte(f64, u8),
    Insert(f64, Vec<u8>),
    Remove(f64, usize),
    /// Rewrite the header's width and height (fixing the PNG checksum or not).
    Dimensions(u32, u32, bool),
}

fn dimension() -> impl Strategy<Value = u32> {
    prop_oneof![
        0u32..=4,
        1u32..=5_000,
        Just(65_535),
        Just(100_000),
        Just(u32::MAX),
        any::<u32>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = 0.0f64..1.0;
    prop_oneof![
        at.clone().prop_map(Mutation::Truncate),
        (at.clone(), 0u8..8).prop_map(|(p, b)| Mutation::FlipBit(p, b)),
        (at.clone(), any::<u8>()).prop_map(|(p, v)| Mutation::SetByte(p, v)),
        (at.clone(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(p, v)| Mutation::Insert(p, v)),
        (at, 1usize..64).prop_map(|(p, n)| Mutation::Remove(p, n)),
        (dimension(), dimension(), any::<bool>())
            .prop_map(|(w, h, crc)| Mutation::Dimensions(w, h, crc)),
    ]
}

fn index(len: usize, at: f64) -> usize {
    ((len as f64 * at) as usize).min(len.saturating_sub(1))
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len();
    match m {
        Mutation::Truncate(at) => bytes.truncate(index(n, *at)),
        Mutation::FlipBit(at, bit) => bytes[index(n, *at)] ^= 1 << bit,
        Mutation::SetByte(at, v) => bytes[index(n, *at)] = *v,
        Mutation::Insert(at, v) => {
            let i = index(n, *at);
            bytes.splice(i..i, v.iter().copied());
        }
        Mutation::Remove(at, len) => {
            let i = index(n, *at);
            bytes.drain(i..(i + len).min(n));
        }
        Mutation::Dimensions(w, h, crc) => set_dimensions(bytes, *w, *h, *crc),
    }
}

/// Rewrite the claimed size in whichever header the file has; a no-op if none is found.
fn set_dimensions(b: &mut [u8], w: u32, h: u32, fix_crc: bool) {
    if b.starts_with(b"\x89PNG") && b.len() >= 33 {
        b[16..20].copy_from_slice(&w.to_be_bytes());
        b[20..24].copy_from_slice(&h.to_be_bytes());
        if fix_crc {
            let crc = crc32(&b[12..29]);
            b[29..33].copy_from_slice(&crc.to_be_bytes());
        }
    } else if b.starts_with(&[0xFF, 0xD8]) {
        // Baseline or progressive start-of-frame: marker, length, precision, height, width.
        if let Some(i) = b
            .windows(2)
            .position(|m| m[0] == 0xFF && (m[1] == 0xC0 || m[1] == 0xC2))
        {
            if i + 9 <= b.len() {
                b[i + 5..i + 7].copy_from_slice(&(h as u16).to_be_bytes());
                b[i + 7..i + 9].copy_from_slice(&(w as u16).to_be_bytes());
            }
        }
    } else if b.starts_with(b"II*\0") {
        set_tiff_dimensions(b, w, h);
    } else if b.starts_with(b"RIFF") && b.len() >= 30 && &b[12..16] == b"VP8L" {
        // Lossless WebP: 14-bit width−1 and height−1 after the signature byte.
        let bits = ((w.wrapping_sub(1)) & 0x3FFF) | (((h.wrapping_sub(1)) & 0x3FFF) << 14);
        let old = u32::from_le_bytes([b[21], b[22], b[23], b[24]]);
        let new = (old & !0x0FFF_FFFF) | bits;
        b[21..25].copy_from_slice(&new.to_le_bytes());
    }
}

/// Little-endian TIFF: set tags 256 (ImageWidth) and 257 (ImageLength) of the first IFD as
/// LONG values.
fn set_tiff_dimensions(b: &mut [u8], w: u32, h: u32) {
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let ifd = u32_at(b, 4) as usize;
    if ifd + 2 > b.len() {
        return;
    }
    let count = usize::from(u16::from_le_bytes([b[ifd], b[ifd + 1]]));
    for k in 0..count {
        let e = ifd + 2 + 12 * k;
        if e + 12 > b.len() {
            return;
        }
        let tag = u16::from_le_bytes([b[e], b[e + 1]]);
        let value = match tag {
            256 => w,
            257 => h,
            _ => continue,
        };
        b[e + 2..e + 4].copy_from_slice(&4u16.to_le_bytes());
        b[e + 4..e + 8].copy_from_slice(&1u32.to_le_bytes());
        b[e + 8..e + 12].copy_from_slice(&value.to_le_bytes());
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Load (and, when that succeeds, analyse) a mutant; every failure of the contract is an
/// `Err` naming what broke. A panic fails the property by itself.
fn check(bytes: &[u8], calibrated: bool) -> Result<(), TestCaseError> {
    let path = Path::new(NAME);
    let img = match load_bytes(bytes, path, &LIMITS) {
        Err(e) => {
            prop_assert_eq!(e.path(), path);
            prop_assert!(e.to_string().starts_with(NAME), "{}", e);
            return Ok(());
        }
        Ok(img) => img,
    };
    let (w, h) = (img.planes.width(), img.planes.height());
    prop_assert_eq!((w as u32, h as u32), (img.meta.width, img.meta.height));
    prop_assert!(w > 0 && h > 0 && (w * h) as u64 <= LIMITS.max_pixels);
    for p in [&img.planes.r, &img.planes.g, &img.planes.b] {
        prop_assert_eq!(p.dim(), (h, w));
        prop_assert!(p.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    let mut params = AnalyzeParams::default();
    if calibrated {
        params.calibration = Calibration {
            mm_per_px: Some(0.05),
            source: "test".into(),
        };
    }
    if let Ok(a) = analyze(&img.planes, &params) {
        let json = to_json_bytes(&analyze_doc(&img.meta, &params, &a)).expect("serialises");
        let text = String::from_utf8(json).expect("utf-8");
        // serde_json writes a NaN or an infinity as null; only calibration-dependent fields
        // may be null, and those are null for every scar or none.
        prop_assert!(a.scars.iter().all(|s| s.depth_px.is_finite()
            && s.area_px.is_finite()
            && s.type_confidence.is_finite()
            && s.redness.is_finite()
            && s.pigment.is_finite()
            && s.floor_flatness.is_finite()
            && [s.area_mm2, s.depth_mm, s.volume_mm3, s.mean_depth_mm]
                .iter()
                .all(|v| v.is_some() == calibrated && v.is_none_or(f64::is_finite))));
        prop_assert!(a.processing.depth_noise_mm.is_finite());
        prop_assert!(a.light.azimuth_deg.is_finite() && a.light.confidence.is_finite());
        prop_assert!(!text.is_empty());
        let overlay = draw_overlay(&img.planes, &a);
        prop_assert_eq!(overlay.dimensions(), (img.meta.width, img.meta.height));
    }
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1000,
        // Failures are reported with their minimal case; nothing is written into the tree.
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_jpeg_png_tiff_and_webp_files_give_a_typed_error_or_a_valid_image(
        format in 0usize..4,
        mutations in proptest::collection::vec(mutation(), 1..4),
        calibrated in any::<bool>(),
    ) {
        let mut bytes = encode(format);
        for m in &mutations {
            apply(&mut bytes, m);
        }
        check(&bytes, calibrated)?;
    }

    #[test]
    fn header_claims_of_any_size_give_a_typed_error_or_a_valid_image(
        format in 0usize..4,
        w in dimension(),
        h in dimension(),
        fix_crc in any::<bool>(),
    ) {
        let mut bytes = encode(format);
        set_dimensions(&mut bytes, w, h, fix_crc);
        check(&bytes, false)?;
    }
}

#[test]
fn the_unmutated_files_load_and_analyse_and_the_header_edits_take_effect() {
    // The property above is only as good as its edits: each must hit the real header.
    for format in 0..4 {
        let bytes = encode(format);
        let img = load_bytes(&bytes, Path::new(NAME), &LIMITS).expect("the base file loads");
        assert_eq!(
            (img.meta.width, img.meta.height),
            (48, 40),
            "format {format}"
        );
        // Mutants that still decode reach the analysis only if the picture is analysable.
        analyze(&img.planes, &AnalyzeParams::default()).expect("the base picture is analysable");
        let mut edited = bytes.clone();
        set_dimensions(&mut edited, 40, 48, true);
        assert_ne!(edited, bytes, "format {format}: no header edit");
        match load_bytes(&edited, Path::new(NAME), &LIMITS) {
            Ok(img) => assert_eq!((img.meta.width, img.meta.height), (40, 48)),
            Err(e) => assert!(e.to_string().starts_with(NAME), "{e}"),
        }
        let mut huge = bytes.clone();
        set_dimensions(&mut huge, 100_000, 100_000, true);
        let e = load_bytes(&huge, Path::new(NAME), &LIMITS).expect_err("100000² is refused");
        assert!(e.to_string().starts_with(NAME), "{e}");
    }
}
