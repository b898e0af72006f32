//! Every file in fixtures/hostile/ must be refused by the loader with the error its name
//! announces, quickly, with the file named in the message. The fixtures are made by
//! fixtures/formats/make_fixtures.py.

use std::path::Path;
use std::time::{Duration, Instant};

use scarscope::error::LoadError;
use scarscope::load::{load_path, LoadLimits};

/// What must happen to each fixture. A new fixture must be added here.
const EXPECTED: &[(&str, &str)] = &[
    ("decompression_bomb_12000x12000.png", "TooLarge"),
    ("empty.jpg", "Empty"),
    ("gif_named.jpg", "UnsupportedFormat"),
    ("huge_header_100000x100000.png", "TooLarge"),
    ("huge_header_16383x16383.webp", "TooLarge"),
    ("huge_header_65535x65535.jpg", "TooLarge"),
    ("no_frame_header.jpg", "Decode"),
    (
        "over_memory_budget_10000x10000_rgba_float.tiff",
        "MemoryBudget",
    ),
    ("random_bytes.png", "UnknownFormat"),
    ("text_named.jpg", "UnknownFormat"),
    ("truncated.jpg", "Decode"),
    ("truncated.png", "Decode"),
    ("zero_width.png", "Decode"),
];

fn variant(e: &LoadError) -> &'static str {
    match e {
        LoadError::Io { .. } => "Io",
        LoadError::FileTooLarge { .. } => "FileTooLarge",
        LoadError::Empty { .. } => "Empty",
        LoadError::UnknownFormat { .. } => "UnknownFormat",
        LoadError::UnsupportedFormat { .. } => "UnsupportedFormat",
        LoadError::UnsupportedFeature { .. } => "UnsupportedFeature",
        LoadError::TooLarge { .. } => "TooLarge",
        LoadError::MemoryBudget { .. } => "MemoryBudget",
        LoadError::DecoderLimit { .. } => "DecoderLimit",
        LoadError::Decode { .. } => "Decode",
        LoadError::Orientation { .. } => "Orientation",
        _ => "unknown variant",
    }
}

#[test]
fn every_hostile_fixture_is_refused_with_its_announced_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hostile");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures/hostile exists")
        .map(|entry| {
            entry
                .expect("readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    found.sort();
    let listed: Vec<&str> = EXPECTED.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        found, listed,
        "fixtures/hostile and EXPECTED must list the same files"
    );

    let mut failures = Vec::new();
    for (name, want) in EXPECTED {
        let path = dir.join(name);
        let start = Instant::now();
        match load_path(&path, &LoadLimits::default()) {
            Ok(img) => failures.push(format!("{name}: loaded as {:?}", img.meta)),
            Err(e) => {
                let message = e.to_string();
                if variant(&e) != *want {
                    failures.push(format!("{name}: want {want}, got {e:?}"));
                }
                if !message.contains(name) {
                    failures.push(format!("{name}: message does not name the file: {message}"));
                }
                if e.path() != path {
                    failures.push(format!("{name}: error path is {}", e.path().display()));
                }
            }
        }
        let took = start.elapsed();
        if took > Duration::from_secs(1) {
            failures.push(format!("{name}: took {took:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
