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

// Not every example that shares this module uses it.
#[allow(dead_code)]
/// Save the relief, the shading and the scar mask of an analysis as `{prefix}_relief.png`,
/// `{prefix}_shading.png` and `{prefix}_labels.png`.
pub fn save_maps(a: &scarscope::analyze::Analysis, relief: &Array2<f32>, prefix: &str) {
    save(relief, -0.4, 0.2, &format!("{prefix}_relief.png"));
    save(
        &a.intrinsics.shading,
        -0.5,
        0.5,
        &format!("{prefix}_shading.png"),
    );
    let mask = a.regions.labels.mapv(|v| if v > 0 { 1.0f32 } else { 0.0 });
    save(&mask, 0.0, 1.0, &format!("{prefix}_labels.png"));
}
