//! Helpers shared by the development examples.
use ndarray::Array2;

/// Save a plane as an 8-bit grey PNG, mapping `lo…hi` to black…white.
pub fn save(a: &Array2<f32>, lo: f32, hi: f32, p: &str) {
    let (h, w) = a.dim();
    let img = image::GrayImage::from_fn(w as u32, h as u32, |x, y| {
        image::Luma([
            (((a[[y as usize, x as usize]] - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0) as u8,
        ])
    });
    if let Err(e) = img.save(p) {
        eprintln!("cannot write {p}: {e}");
    }
}
