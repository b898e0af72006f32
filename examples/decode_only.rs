//! Decode a photo to 8-bit RGB and nothing else: the floor `analyze` is measured against
//! (docs/performance.md). Same decoder as the loader (the image crate; zune-jpeg for JPEG).
//!
//! `cargo run --release --example decode_only -- PHOTO.jpg`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .ok_or("usage: decode_only PHOTO")?;
    let bytes = std::fs::read(&path)?;
    let img = image::load_from_memory(&bytes)?;
    println!("{}×{}", img.width(), img.height());
    Ok(())
}
