//! Input checks run by [`crate::analyze::analyze`] before any stage: parameters and pixel
//! planes in, a typed refusal or a go-ahead out. A photo that holds nothing measurable — one
//! colour throughout, or too little that is neither pure black nor pure white — is refused
//! with [`AnalysisError::NothingMeasurable`] rather than reported as "0 scars", which a reader
//! would take as healthy skin. Photos with a weak but present signal pass here; the analysis
//! then warns (see [`empty_result_warning`]).

use ndarray::Zip;

use crate::analyze::{AnalysisError, AnalyzeParams};
use crate::load::{linear_to_srgb, PlaneSource, Reduced};

/// Why a photo holds nothing that can be measured.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unmeasurable {
    /// Some samples are NaN or infinite (only possible through the library API: the loader
    /// never produces them).
    #[error("{count} pixel values are NaN or infinite")]
    NonFinite {
        /// Number of non-finite samples over the three planes.
        count: usize,
    },
    /// Every pixel has the same colour, to within one 8-bit code per channel: a blank frame,
    /// a lens cap, a flat test card.
    #[error("every pixel has the same colour (within one 8-bit code per channel): a blank or flat frame shows no relief")]
    Uniform,
    /// Too few pixels are neither pure black nor pure white (under- or over-exposure).
    #[error("only {informative} pixels are neither pure black nor pure white, fewer than the {needed} an analysis needs: the photo is under- or over-exposed")]
    Clipped {
        /// Pixels with at least one channel off the clipping limits.
        informative: usize,
        /// Fewest informative pixels accepted.
        needed: usize,
    },
}

/// Linear value at or below which a channel carries no information (as in normalisation).
const BLACK: f32 = crate::normalize::FLOOR;
/// Linear value at or above which a channel is saturated.
const WHITE: f32 = crate::normalize::CEIL;
/// Largest sRGB-coded spread, per channel, still called uniform: one 8-bit code.
const UNIFORM_SPREAD: f32 = 1.0 / 255.0;

/// Refuse parameters that would make the analysis meaningless or degenerate: every number
/// must be finite and, where it is a size or a count of σ, positive. (Calibration and light
/// angles are checked where they are used, in [`crate::analyze::analyze`].)
///
/// # Errors
///
/// [`AnalysisError::InvalidParameter`] naming the first parameter out of range.
pub fn check_params(p: &AnalyzeParams) -> Result<(), AnalysisError> {
    for (name, v, lo, hi) in [
        ("ambient", p.ambient, 0.0, 1.0),
        ("tilt_share", p.tilt_share, 0.0, 1.0),
        ("processing_mm_per_px", p.processing_mm_per_px, 1e-3, 10.0),
        ("min_depth_mm", p.min_depth_mm, 0.0, 10.0),
        ("noise_k", p.noise_k, 0.0, 1e3),
        ("min_diameter_mm", p.min_diameter_mm, 0.0, 100.0),
        ("assumed_field_mm", p.assumed_field_mm, 1.0, 1e4),
    ] {
        if !(v.is_finite() && v >= lo && v <= hi) {
            return Err(AnalysisError::InvalidParameter {
                name,
                reason: format!("{v} is outside {lo}…{hi}"),
            });
        }
    }
    Ok(())
}

/// Refuse a photo that holds nothing measurable. `needed` is the fewest informative (not
/// clipped) camera pixels an analysis needs: the smallest analysable area at the processing
/// scale, in camera pixels. Works on the photo reduced by `factor` (block means, the scale the
/// analysis works at), so a decoded photo never needs full-resolution float planes.
///
/// # Errors
///
/// [`AnalysisError::NothingMeasurable`] with the reason.
pub fn check_planes<P: PlaneSource + ?Sized>(
    planes: &P,
    factor: usize,
    needed: usize,
) -> Result<(), AnalysisError> {
    check_reduced(&planes.reduce(factor.max(1), BLACK, WHITE), needed)
}

/// [`check_planes`] on a photo already reduced with the clipping limits of normalisation
/// ([`crate::normalize::FLOOR`], [`crate::normalize::CEIL`]), so one reduction serves both.
///
/// # Errors
///
/// [`AnalysisError::NothingMeasurable`] with the reason.
pub fn check_reduced(red: &Reduced, needed: usize) -> Result<(), AnalysisError> {
    let mut non_finite = 0usize;
    let mut lo = [f32::INFINITY; 3];
    let mut hi = [f32::NEG_INFINITY; 3];
    let [r, g, b] = &red.planes;
    Zip::from(r).and(g).and(b).for_each(|&r, &g, &b| {
        let px = [r, g, b];
        if px.iter().any(|v| !v.is_finite()) {
            non_finite += px.iter().filter(|v| !v.is_finite()).count();
            return;
        }
        for c in 0..3 {
            lo[c] = lo[c].min(px[c]);
            hi[c] = hi[c].max(px[c]);
        }
    });
    let informative = red.total.saturating_sub(red.clipped);
    let refuse = |why| Err(AnalysisError::NothingMeasurable(why));
    if non_finite > 0 {
        return refuse(Unmeasurable::NonFinite { count: non_finite });
    }
    let spread_in_codes = (0..3)
        .map(|c| linear_to_srgb(hi[c]) - linear_to_srgb(lo[c]))
        .fold(0.0f32, f32::max);
    if spread_in_codes <= UNIFORM_SPREAD {
        return refuse(Unmeasurable::Uniform);
    }
    if informative < needed {
        return refuse(Unmeasurable::Clipped {
            informative,
            needed,
        });
    }
    Ok(())
}

/// The warning an analysis must carry when it found no scar on a photo whose relief signal
/// was too weak to trust: "0 scars" there means "unknown", not "healthy skin".
pub fn empty_result_warning(scar_count: usize, low_relief: bool) -> Option<String> {
    (scar_count == 0 && low_relief).then(|| {
        "nothing measurable here: no scar was found, but the photo carries too little relief \
         signal to tell a smooth skin from an unreadable photo; treat the count as unknown, \
         not as zero"
            .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use crate::load::RgbPlanes;

    use super::*;

    fn planes(w: usize, h: usize, f: impl Fn(usize, usize) -> [f32; 3]) -> RgbPlanes {
        let chan = |c: usize| Array2::from_shape_fn((h, w), |(y, x)| f(x, y)[c]);
        RgbPlanes {
            r: chan(0),
            g: chan(1),
            b: chan(2),
        }
    }

    fn reason(p: &RgbPlanes, needed: usize) -> Option<Unmeasurable> {
        match check_planes(p, 1, needed) {
            Ok(()) => None,
            Err(AnalysisError::NothingMeasurable(why)) => Some(why),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }

    #[test]
    fn a_single_colour_frame_is_refused_as_uniform() {
        for v in [0.0, 0.3, 1.0] {
            assert_eq!(
                reason(&planes(40, 30, |_, _| [v, v * 0.8, v * 0.7]), 1),
                Some(Unmeasurable::Uniform)
            );
        }
    }

    #[test]
    fn a_frame_varying_by_less_than_one_code_is_uniform_but_two_codes_is_not() {
        let code = |k: f32| crate::load::srgb_to_linear(k / 255.0);
        let half = planes(40, 30, |x, _| {
            [if x % 2 == 0 { code(100.0) } else { code(100.9) }; 3]
        });
        assert_eq!(reason(&half, 1), Some(Unmeasurable::Uniform));
        let two = planes(40, 30, |x, _| {
            [if x % 2 == 0 { code(100.0) } else { code(102.0) }; 3]
        });
        assert_eq!(reason(&two, 1), None);
    }

    #[test]
    fn a_frame_clipped_to_black_and_white_is_refused_with_the_counts() {
        // A black-and-white checkerboard with one small grey patch of 10 × 10 pixels.
        let p = planes(40, 30, |x, y| {
            if x < 10 && y < 10 {
                [0.2; 3]
            } else {
                [((x + y) % 2) as f32; 3]
            }
        });
        assert_eq!(
            reason(&p, 101),
            Some(Unmeasurable::Clipped {
                informative: 100,
                needed: 101
            })
        );
        assert_eq!(reason(&p, 100), None);
    }

    #[test]
    fn a_pixel_with_a_clipped_channel_is_not_informative() {
        // The analysis treats a pixel with any channel at black or white as clipped (its
        // optical density is unknown there), so the check counts it the same way.
        let p = planes(20, 20, |x, _| [1.0, 0.1 + 0.01 * x as f32, 0.3]);
        assert!(matches!(
            reason(&p, 400),
            Some(Unmeasurable::Clipped { informative: 0, .. })
        ));
    }

    #[test]
    fn nan_and_infinite_samples_are_refused_and_counted() {
        let p = planes(8, 8, |x, y| match (x, y) {
            (0, 0) => [f32::NAN, f32::INFINITY, 0.5],
            (1, 0) => [0.5, 0.5, f32::NEG_INFINITY],
            _ => [0.1 * x as f32, 0.5, 0.5],
        });
        assert_eq!(reason(&p, 1), Some(Unmeasurable::NonFinite { count: 3 }));
    }

    #[test]
    fn non_finite_or_out_of_range_parameters_are_refused_by_name() {
        assert!(check_params(&AnalyzeParams::default()).is_ok());
        type Edit = fn(&mut AnalyzeParams);
        let cases: [(&str, Edit); 7] = [
            ("ambient", |p| p.ambient = f64::NAN),
            ("tilt_share", |p| p.tilt_share = 1.5),
            ("processing_mm_per_px", |p| p.processing_mm_per_px = 0.0),
            ("min_depth_mm", |p| p.min_depth_mm = -1.0),
            ("noise_k", |p| p.noise_k = f64::INFINITY),
            ("min_diameter_mm", |p| p.min_diameter_mm = -0.1),
            ("assumed_field_mm", |p| p.assumed_field_mm = 0.0),
        ];
        for (want, edit) in cases {
            let mut p = AnalyzeParams::default();
            edit(&mut p);
            match check_params(&p) {
                Err(AnalysisError::InvalidParameter { name, .. }) => assert_eq!(name, want),
                other => panic!("{want}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_empty_result_on_a_weak_signal_says_nothing_is_measurable() {
        let w = empty_result_warning(0, true).expect("warns");
        assert!(w.starts_with("nothing measurable here"));
        assert_eq!(empty_result_warning(3, true), None);
        assert_eq!(empty_result_warning(0, false), None);
    }
}
