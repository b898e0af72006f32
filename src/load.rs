//! Load stage: file bytes → oriented, linear-light RGB planes plus metadata.
//!
//! Input is a JPEG (baseline or progressive, grey, YCbCr or CMYK), PNG, TIFF or WebP file of 8 or
//! 16 bits per sample (or 32-bit float RGB TIFF). The format is recognised from the content,
//! never from the file name. Size limits are checked from the header before any pixel buffer is
//! allocated. The output is three `f32` planes in `[0, 1]` with the sRGB transfer curve removed
//! (float TIFF is taken as already linear), turned the way the camera meant by the EXIF
//! orientation, and an [`ImageMeta`] recording the file's SHA-256, format, sample depth, colour
//! model and the orientation applied. Grey images become R = G = B. Alpha is dropped, not
//! composited: a skin photo's colour is in its RGB samples whatever their opacity. Embedded ICC
//! profiles are ignored; every file is taken to be sRGB.

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use image::metadata::Orientation;
use image::{
    DynamicImage, ExtendedColorType, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits,
};
use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::LoadError;

/// Files larger than this on disk are refused before being read: even a 100 MP 16-bit TIFF
/// stored uncompressed is 600 MB.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// Bytes per pixel of the three `f32` output planes.
const PLANE_BYTES_PER_PIXEL: u64 = 3 * 4;

/// How big an image the loader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    /// Largest width × height accepted, checked from the header before decoding.
    pub max_pixels: u64,
    /// Largest estimated peak memory for one decode: the decoder's output buffer, what the
    /// decoder holds besides (the stored samples when it converts, as for CMYK TIFF; for JPEG
    /// a copy of the file, and all coefficients when progressive), and the three `f32` planes.
    pub max_alloc_bytes: u64,
}

impl Default for LoadLimits {
    /// 100 megapixels and 2 GiB: a 100 MP 8-bit RGB photo needs about 1.5 GB with its planes,
    /// so every camera or phone photo fits.
    fn default() -> Self {
        Self {
            max_pixels: 100_000_000,
            max_alloc_bytes: 2 << 30,
        }
    }
}

/// Linear-light RGB planes, values in `[0, 1]`, row-major and indexed `[[y, x]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbPlanes {
    /// Red.
    pub r: Array2<f32>,
    /// Green.
    pub g: Array2<f32>,
    /// Blue.
    pub b: Array2<f32>,
}

impl RgbPlanes {
    /// Width in pixels (number of columns).
    pub fn width(&self) -> usize {
        self.r.ncols()
    }

    /// Height in pixels (number of rows).
    pub fn height(&self) -> usize {
        self.r.nrows()
    }
}

/// What is known about a photo besides its pixels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMeta {
    /// The path the photo was loaded from (as given, not canonicalised).
    pub path: PathBuf,
    /// Width in pixels after orientation.
    pub width: u32,
    /// Height in pixels after orientation.
    pub height: u32,
    /// SHA-256 of the file bytes, lowercase hex.
    pub sha256: String,
    /// EXIF orientation applied, 1–8; 1 when the file has none.
    pub orientation: u8,
    /// "jpeg", "png", "tiff" or "webp".
    pub format: String,
    /// Bits per sample as stored: 8, 16 or 32 (float). Palette and sub-byte PNGs report 8,
    /// the depth the decoder expands them to.
    pub bit_depth: u8,
    /// Colour model and depth as stored, e.g. "rgb8", "rgba16", "l8", "la16", "cmyk8", "rgb32f".
    pub color: String,
}

/// A decoded photo.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedImage {
    /// The pixels, oriented and linear.
    pub planes: RgbPlanes,
    /// Where they came from.
    pub meta: ImageMeta,
}

/// Reads and decodes the photo at `path`.
///
/// # Errors
///
/// [`LoadError::Io`] if the file cannot be read, [`LoadError::FileTooLarge`] if it is larger
/// than [`MAX_FILE_BYTES`] on disk (checked before reading), and any error of [`load_bytes`].
pub fn load_path(path: &Path, limits: &LoadLimits) -> Result<LoadedImage, LoadError> {
    let bytes = read_file(path)?;
    load_bytes(&bytes, path, limits)
}

/// Decodes a photo already in memory; `path` is only used in errors and in the metadata.
///
/// # Errors
///
/// [`LoadError::Empty`], [`LoadError::UnknownFormat`] or [`LoadError::UnsupportedFormat`] from
/// the first bytes; [`LoadError::TooLarge`] or [`LoadError::MemoryBudget`] from the header,
/// before any pixel buffer is allocated; [`LoadError::Decode`] for truncated or corrupt data;
/// [`LoadError::UnsupportedFeature`], [`LoadError::DecoderLimit`] or
/// [`LoadError::Orientation`] when the decoder gives up.
pub fn load_bytes(
    bytes: &[u8],
    path: &Path,
    limits: &LoadLimits,
) -> Result<LoadedImage, LoadError> {
    let DecodedImage { photo, meta } = decode_bytes(bytes, path, limits)?;
    Ok(LoadedImage {
        planes: photo.to_planes(),
        meta,
    })
}

/// A photo decoded but not yet converted: the decoder's samples (8 or 16 bits, or float) and
/// the orientation still to apply. A fifth of the memory of [`RgbPlanes`] for 8-bit photos;
/// [`PlaneSource::reduce`] turns it into linear planes at a coarser scale in one pass, so the
/// full-resolution `f32` planes never exist.
#[derive(Debug, Clone)]
pub struct DecodedPhoto {
    image: DynamicImage,
    orientation: Orientation,
    format: Format,
}

/// A decoded photo and its metadata.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    /// The samples, to be converted on demand.
    pub photo: DecodedPhoto,
    /// Where they came from.
    pub meta: ImageMeta,
}

/// Reads and decodes the photo at `path`, without converting it to planes.
///
/// # Errors
///
/// As [`load_path`].
pub fn decode_path(path: &Path, limits: &LoadLimits) -> Result<DecodedImage, LoadError> {
    let bytes = read_file(path)?;
    decode_bytes(&bytes, path, limits)
}

/// Decodes a photo already in memory, without converting it to planes.
///
/// # Errors
///
/// As [`load_bytes`]: every error a full load would give is given here, including a decoded
/// layout the conversion does not support.
pub fn decode_bytes(
    bytes: &[u8],
    path: &Path,
    limits: &LoadLimits,
) -> Result<DecodedImage, LoadError> {
    let (decoder, header) = open_decoder(bytes, path, limits)?;
    let image =
        DynamicImage::from_decoder(decoder).map_err(|e| map_image_error(e, header.format, path))?;
    let photo = DecodedPhoto {
        image,
        orientation: header.orientation,
        format: header.format,
    };
    // Refuse now what the conversion would refuse later, so conversions cannot fail.
    visit_samples(&photo.image, photo.orientation, Check)
        .ok_or_else(|| conversion_error(&photo.image, photo.format, path))?;
    Ok(DecodedImage {
        photo,
        meta: header.meta(path, bytes),
    })
}

impl DecodedPhoto {
    /// The full-resolution linear planes, as [`load_bytes`] gives them.
    pub fn to_planes(&self) -> RgbPlanes {
        visit_samples(&self.image, self.orientation, ToPlanes).unwrap_or_else(empty_planes)
    }
}

/// Linear planes averaged over `factor`×`factor` blocks, and how many full-resolution pixels
/// were clipped: what normalisation needs of a photo.
#[derive(Debug, Clone, PartialEq)]
pub struct Reduced {
    /// R, G, B block means (partial blocks at the right and bottom edges average the pixels
    /// they hold), as [`crate::filters::downsample`] computes them.
    pub planes: [Array2<f32>; 3],
    /// Full-resolution pixels with some channel at or below `floor` or at or above `ceil`.
    pub clipped: usize,
    /// Full-resolution pixel count.
    pub total: usize,
}

/// Something that can give its linear planes at a coarser scale: full planes, or a decoded
/// photo converted and reduced in one pass. Both give bit-identical results.
pub trait PlaneSource: Sync {
    /// Width in pixels, after orientation.
    fn width(&self) -> usize;
    /// Height in pixels, after orientation.
    fn height(&self) -> usize;
    /// Block means over `factor`×`factor` blocks, counting as clipped every pixel whose
    /// darkest channel is at most `floor` or whose brightest is at least `ceil`.
    fn reduce(&self, factor: usize, floor: f32, ceil: f32) -> Reduced;
}

impl PlaneSource for RgbPlanes {
    fn width(&self) -> usize {
        self.r.ncols()
    }

    fn height(&self) -> usize {
        self.r.nrows()
    }

    fn reduce(&self, factor: usize, floor: f32, ceil: f32) -> Reduced {
        let clipped = match (self.r.as_slice(), self.g.as_slice(), self.b.as_slice()) {
            (Some(r), Some(g), Some(b)) => count_clipped(r, g, b, floor, ceil),
            _ => ndarray::Zip::from(&self.r)
                .and(&self.g)
                .and(&self.b)
                .fold(0, |n, r, g, b| {
                    n + usize::from(is_clipped(*r, *g, *b, floor, ceil))
                }),
        };
        let down = |p: &Array2<f32>| crate::filters::downsample(&p.view(), factor);
        Reduced {
            planes: [down(&self.r), down(&self.g), down(&self.b)],
            clipped,
            total: self.r.len(),
        }
    }
}

impl PlaneSource for DecodedPhoto {
    fn width(&self) -> usize {
        let (w, h) = (self.image.width(), self.image.height());
        (if swaps_axes(self.orientation) { h } else { w }) as usize
    }

    fn height(&self) -> usize {
        let (w, h) = (self.image.width(), self.image.height());
        (if swaps_axes(self.orientation) { w } else { h }) as usize
    }

    fn reduce(&self, factor: usize, floor: f32, ceil: f32) -> Reduced {
        visit_samples(
            &self.image,
            self.orientation,
            Reduce {
                factor,
                floor,
                ceil,
            },
        )
        .unwrap_or_else(|| Reduced {
            planes: std::array::from_fn(|_| Array2::zeros((0, 0))),
            clipped: 0,
            total: 0,
        })
    }
}

/// A photo with one reduction already made (e.g. while the other photo of a pair was being
/// reduced): the first request for exactly that reduction gets it; any
/// other request, or a repeated one, is reduced from the photo.
pub struct Prereduced<'a, P: ?Sized> {
    source: &'a P,
    spec: (usize, f32, f32),
    reduced: std::sync::Mutex<Option<Reduced>>,
}

impl<'a, P: PlaneSource + ?Sized> Prereduced<'a, P> {
    /// `reduced` must be `source.reduce(spec.0, spec.1, spec.2)` (None: nothing kept, every
    /// request goes to `source`).
    pub fn new(source: &'a P, spec: (usize, f32, f32), reduced: Option<Reduced>) -> Self {
        Prereduced {
            source,
            spec,
            reduced: std::sync::Mutex::new(reduced),
        }
    }
}

impl<P: PlaneSource + ?Sized> PlaneSource for Prereduced<'_, P> {
    fn width(&self) -> usize {
        self.source.width()
    }

    fn height(&self) -> usize {
        self.source.height()
    }

    fn reduce(&self, factor: usize, floor: f32, ceil: f32) -> Reduced {
        let (f, lo, hi) = self.spec;
        let same = f.max(1) == factor.max(1)
            && lo.to_bits() == floor.to_bits()
            && hi.to_bits() == ceil.to_bits();
        let kept = if same {
            self.reduced.lock().ok().and_then(|mut r| r.take())
        } else {
            None
        };
        kept.unwrap_or_else(|| self.source.reduce(factor, floor, ceil))
    }
}

#[inline]
fn is_clipped(r: f32, g: f32, b: f32, floor: f32, ceil: f32) -> bool {
    r.min(g).min(b) <= floor || r.max(g).max(b) >= ceil
}

fn count_clipped(r: &[f32], g: &[f32], b: &[f32], floor: f32, ceil: f32) -> usize {
    r.par_chunks(1 << 16)
        .zip(g.par_chunks(1 << 16))
        .zip(b.par_chunks(1 << 16))
        .map(|((r, g), b)| {
            r.iter()
                .zip(g)
                .zip(b)
                .filter(|((r, g), b)| is_clipped(**r, **g, **b, floor, ceil))
                .count()
        })
        .sum()
}

/// Reads only the header of the photo at `path` (the whole file is hashed): the metadata
/// [`load_path`] would record, without decoding pixels. The same limits are enforced, so a
/// probe succeeds only for files a load would not refuse for their size.
///
/// # Errors
///
/// As [`load_path`], except the errors that only decoding the pixels can find.
pub fn probe_path(path: &Path, limits: &LoadLimits) -> Result<ImageMeta, LoadError> {
    let bytes = read_file(path)?;
    let (_, header) = open_decoder(&bytes, path, limits)?;
    Ok(header.meta(path, &bytes))
}

/// sRGB-encoded value in `[0, 1]` → linear light, by the exact piecewise sRGB EOTF.
/// Out-of-range inputs are clamped; NaN gives 0.
pub fn srgb_to_linear(v: f32) -> f32 {
    srgb_to_linear_f64(f64::from(v)) as f32
}

/// Linear light in `[0, 1]` → sRGB-encoded value in `[0, 1]` (exact inverse EOTF).
/// Out-of-range inputs are clamped; NaN gives 0.
pub fn linear_to_srgb(v: f32) -> f32 {
    linear_to_srgb_f64(f64::from(v)) as f32
}

/// Linear light → 8-bit sRGB code, rounded to nearest. Out-of-range inputs are clamped; NaN
/// gives 0. Exact; see [`linear_to_srgb_u8_fast`] for hot loops.
pub fn linear_to_srgb_u8(v: f32) -> u8 {
    // The clamp in linear_to_srgb_f64 keeps the product in [0, 255], so the cast cannot wrap.
    (linear_to_srgb_f64(f64::from(v)) * 255.0).round() as u8
}

/// Same as [`linear_to_srgb_u8`] but by a binary search over the 255 linear values that sit
/// half-way between consecutive codes: eight comparisons instead of a `powf`. Round-trips every
/// code exactly (`linear_to_srgb_u8_fast(srgb_to_linear(k / 255)) == k`); it can differ from the
/// exact version only for inputs within an `f32` rounding step of a half-way point.
pub fn linear_to_srgb_u8_fast(v: f32) -> u8 {
    // NaN compares false, so it lands on code 0 like in the exact version.
    SRGB_U8_THRESHOLDS.partition_point(|&t| t <= v) as u8
}

fn srgb_to_linear_f64(v: f64) -> f64 {
    let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
    if v <= 0.04045 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

fn linear_to_srgb_f64(v: f64) -> f64 {
    let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
    if v <= 0.0031308 {
        v * 12.92
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    }
}

/// Linear values half-way (in sRGB code space) between codes k and k + 1.
static SRGB_U8_THRESHOLDS: LazyLock<[f32; 255]> = LazyLock::new(|| {
    let mut t = [0.0f32; 255];
    for (k, slot) in t.iter_mut().enumerate() {
        *slot = srgb_to_linear_f64((k as f64 + 0.5) / 255.0) as f32;
    }
    t
});

/// 8-bit sRGB code → linear, so the u8 → f32 conversion and the EOTF are one table load.
static LUT8: LazyLock<[f32; 256]> = LazyLock::new(|| {
    let mut t = [0.0f32; 256];
    for (k, slot) in t.iter_mut().enumerate() {
        *slot = srgb_to_linear_f64(k as f64 / 255.0) as f32;
    }
    t
});

/// 16-bit sRGB code → linear. 256 KiB, built once; a `powf` per sample would cost more than
/// the decode itself.
static LUT16: LazyLock<Vec<f32>> = LazyLock::new(|| {
    (0..=u16::MAX)
        .map(|k| srgb_to_linear_f64(f64::from(k) / 65535.0) as f32)
        .collect()
});

fn read_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    let io_error = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    let on_disk = file.metadata().map_err(io_error)?.len();
    let too_large = |bytes| LoadError::FileTooLarge {
        path: path.to_path_buf(),
        bytes,
        max_bytes: MAX_FILE_BYTES,
    };
    if on_disk > MAX_FILE_BYTES {
        return Err(too_large(on_disk));
    }
    // `take` also bounds files whose size changes after the metadata call, and special files
    // that report a length of 0 but never end.
    let mut bytes = Vec::with_capacity(usize::try_from(on_disk).unwrap_or(0));
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// The supported formats, with the names used in metadata and in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Jpeg,
    Png,
    Tiff,
    WebP,
}

impl Format {
    fn id(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Tiff => "tiff",
            Self::WebP => "webp",
        }
    }

    fn display(self) -> &'static str {
        match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::Tiff => "TIFF",
            Self::WebP => "WebP",
        }
    }
}

/// What the header said, kept until the metadata is assembled.
struct Header {
    format: Format,
    /// As stored, before orientation.
    width: u32,
    height: u32,
    orientation: Orientation,
    bit_depth: u8,
    color: &'static str,
}

impl Header {
    fn meta(&self, path: &Path, bytes: &[u8]) -> ImageMeta {
        let (width, height) = if swaps_axes(self.orientation) {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        };
        ImageMeta {
            path: path.to_path_buf(),
            width,
            height,
            sha256: sha256_hex(bytes),
            orientation: self.orientation.to_exif(),
            format: self.format.id().to_owned(),
            bit_depth: self.bit_depth,
            color: self.color.to_owned(),
        }
    }
}

/// Recognises the format, reads the header and enforces the limits, so that nothing
/// proportional to the claimed size has been allocated when a file is refused.
fn open_decoder<'a>(
    bytes: &'a [u8],
    path: &Path,
    limits: &LoadLimits,
) -> Result<(impl ImageDecoder + 'a, Header), LoadError> {
    if bytes.is_empty() {
        return Err(LoadError::Empty {
            path: path.to_path_buf(),
        });
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let format = match reader.format() {
        None => {
            return Err(LoadError::UnknownFormat {
                path: path.to_path_buf(),
            })
        }
        Some(ImageFormat::Jpeg) => Format::Jpeg,
        Some(ImageFormat::Png) => Format::Png,
        Some(ImageFormat::Tiff) => Format::Tiff,
        Some(ImageFormat::WebP) => Format::WebP,
        Some(other) => {
            return Err(LoadError::UnsupportedFormat {
                path: path.to_path_buf(),
                format: other
                    .extensions_str()
                    .first()
                    .map_or_else(|| format!("{other:?}"), |e| e.to_ascii_uppercase()),
            })
        }
    };

    let too_large = |width: u32, height: u32| {
        (u64::from(width) * u64::from(height) > limits.max_pixels).then(|| LoadError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
            max_pixels: limits.max_pixels,
        })
    };
    // The png crate sizes its row buffers from IHDR while reading the header, so the claim is
    // checked before the decoder exists.
    if let Some(e) = png_ihdr_size(bytes).and_then(|(w, h)| too_large(w, h)) {
        return Err(e);
    }

    // No width/height cap yet: those would fail inside `into_decoder` with an anonymous limit
    // error, before we can report the claimed size. The allocation cap matters now for PNG,
    // whose decoder takes its chunk-buffer limits only at construction.
    let mut construct = Limits::no_limits();
    construct.max_alloc = Some(limits.max_alloc_bytes);
    reader.limits(construct);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| map_image_error(e, format, path))?;

    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(LoadError::Decode {
            path: path.to_path_buf(),
            format: format.display().to_owned(),
            message: format!("the header claims an empty {width}×{height} image"),
        });
    }
    if let Some(e) = too_large(width, height) {
        return Err(e);
    }
    let pixels = u64::from(width) * u64::from(height);

    let color_type = decoder.color_type();
    let original = decoder.original_color_type();
    let (mut color, bit_depth) = describe_color(original);

    // Decoders that convert (CMYK TIFF) hold the stored samples and the output at once.
    let mut decoder_extra = if original == ExtendedColorType::from(color_type) {
        0
    } else {
        pixels.saturating_mul(u64::from(original.bits_per_pixel())) / 8
    };
    if format == Format::Jpeg {
        // zune-jpeg reports CMYK as the RGB it converts to; the marker walk sees the truth. It
        // also fills a truncated scan with grey without complaint, which would put a flat band
        // into a measurement, so a JPEG must reach its end-of-image marker.
        let info = scan_jpeg(bytes).map_err(|message| LoadError::Decode {
            path: path.to_path_buf(),
            format: format.display().to_owned(),
            message: message.to_owned(),
        })?;
        if info.components == 4 {
            color = "cmyk8";
        }
        // The decoder keeps its own copy of the file, and a progressive decode keeps every
        // component's coefficients (2 bytes each) until the last scan.
        decoder_extra = bytes.len() as u64;
        if info.progressive {
            decoder_extra =
                decoder_extra.saturating_add(pixels.saturating_mul(2 * u64::from(info.components)));
        }
    }

    let needed_bytes = decoder
        .total_bytes()
        .saturating_add(decoder_extra)
        .saturating_add(pixels.saturating_mul(PLANE_BYTES_PER_PIXEL));
    if needed_bytes > limits.max_alloc_bytes {
        return Err(LoadError::MemoryBudget {
            path: path.to_path_buf(),
            width,
            height,
            needed_bytes,
            budget_bytes: limits.max_alloc_bytes,
        });
    }

    // Second line of defence, in case a decoder allocates more than its header implies. A
    // side longer than `max_pixels` could only pass the check above with the other side 0.
    let side = u32::try_from(limits.max_pixels).unwrap_or(u32::MAX);
    let mut strict = Limits::no_limits();
    strict.max_image_width = Some(side);
    strict.max_image_height = Some(side);
    strict.max_alloc = Some(limits.max_alloc_bytes);
    decoder
        .set_limits(strict)
        .map_err(|e| map_image_error(e, format, path))?;

    let orientation = decoder.orientation().map_err(|e| LoadError::Orientation {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;

    Ok((
        decoder,
        Header {
            format,
            width,
            height,
            orientation,
            bit_depth,
            color,
        },
    ))
}

/// Width and height from a PNG's IHDR chunk, which the format requires to come first.
fn png_ihdr_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let ihdr = bytes.get(12..24)?;
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") || !ihdr.starts_with(b"IHDR") {
        return None;
    }
    let be = |b: &[u8]| Some(u32::from_be_bytes(b.try_into().ok()?));
    Some((be(ihdr.get(4..8)?)?, be(ihdr.get(8..12)?)?))
}

/// Colour model name and bits per sample of what the file stores.
fn describe_color(c: ExtendedColorType) -> (&'static str, u8) {
    use ExtendedColorType as E;
    match c {
        E::L1 => ("l1", 1),
        E::La1 => ("la1", 1),
        E::Rgb1 => ("rgb1", 1),
        E::Rgba1 => ("rgba1", 1),
        E::L2 => ("l2", 2),
        E::La2 => ("la2", 2),
        E::Rgb2 => ("rgb2", 2),
        E::Rgba2 => ("rgba2", 2),
        E::L4 => ("l4", 4),
        E::La4 => ("la4", 4),
        E::Rgb4 => ("rgb4", 4),
        E::Rgba4 => ("rgba4", 4),
        E::L8 => ("l8", 8),
        E::La8 => ("la8", 8),
        E::Rgb8 => ("rgb8", 8),
        E::Rgba8 => ("rgba8", 8),
        E::Bgr8 => ("bgr8", 8),
        E::Bgra8 => ("bgra8", 8),
        E::L16 => ("l16", 16),
        E::La16 => ("la16", 16),
        E::Rgb16 => ("rgb16", 16),
        E::Rgba16 => ("rgba16", 16),
        E::Rgb32F => ("rgb32f", 32),
        E::Rgba32F => ("rgba32f", 32),
        E::Cmyk8 => ("cmyk8", 8),
        E::Cmyk16 => ("cmyk16", 16),
        _ => ("other", c.bits_per_pixel().min(255) as u8),
    }
}

fn map_image_error(e: ImageError, format: Format, path: &Path) -> LoadError {
    let path = path.to_path_buf();
    let format = format.display().to_owned();
    match e {
        ImageError::Unsupported(u) => LoadError::UnsupportedFeature {
            path,
            format,
            message: u.to_string(),
        },
        ImageError::Limits(l) => LoadError::DecoderLimit {
            path,
            format,
            message: l.to_string(),
        },
        // Decoders read from an in-memory cursor, so an I/O error can only mean the data ran out.
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            LoadError::Decode {
                path,
                format,
                message: "the data ends early (file truncated?)".to_owned(),
            }
        }
        other => LoadError::Decode {
            path,
            format,
            message: other.to_string(),
        },
    }
}

/// What the JPEG marker walk learned.
struct JpegInfo {
    /// Components in the frame header: 1 grey, 3 YCbCr/RGB, 4 CMYK/YCCK.
    components: u8,
    /// Progressive (SOF2, SOF6, SOF10, SOF14) rather than sequential.
    progressive: bool,
}

/// Walks a JPEG's marker segments and entropy-coded scans up to the end-of-image marker.
/// Fails if the data stops before it. Only reads; never allocates.
fn scan_jpeg(b: &[u8]) -> Result<JpegInfo, &'static str> {
    const TRUNCATED: &str = "the data stops before the end-of-image marker (file truncated?)";
    if !b.starts_with(&[0xFF, 0xD8]) {
        return Err("no start-of-image marker");
    }
    let mut frame = None;
    let mut i = 2;
    loop {
        // Tolerate junk between segments (some writers leave it) by skipping to the next 0xFF,
        // then over fill bytes.
        i += b
            .get(i..)
            .and_then(|rest| rest.iter().position(|&x| x == 0xFF))
            .ok_or(TRUNCATED)?;
        while b.get(i) == Some(&0xFF) {
            i += 1;
        }
        let marker = *b.get(i).ok_or(TRUNCATED)?;
        i += 1;
        match marker {
            0xD9 => return frame.ok_or("no frame header before the end-of-image marker"),
            // Stand-alone markers without a length: TEM, RSTn, and a stuffed zero outside a
            // scan (junk).
            0x00 | 0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let len_bytes = b.get(i..i + 2).ok_or(TRUNCATED)?;
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if len < 2 {
            return Err("a marker segment has an impossible length");
        }
        let segment = b.get(i + 2..i + len).ok_or(TRUNCATED)?;
        // SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC): byte 5 is the component count.
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            frame = Some(JpegInfo {
                components: *segment.get(5).ok_or("a frame header is too short")?,
                progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
            });
        }
        i += len;
        if marker == 0xDA {
            // Entropy-coded data: 0xFF is followed by 0x00 (stuffing), RSTn, or a fill byte;
            // anything else is the next marker.
            loop {
                i += b
                    .get(i..)
                    .and_then(|rest| rest.iter().position(|&x| x == 0xFF))
                    .ok_or(TRUNCATED)?;
                match b.get(i + 1) {
                    None => return Err(TRUNCATED),
                    Some(0x00 | 0xD0..=0xD7) => i += 2,
                    Some(0xFF) => i += 1,
                    Some(_) => break,
                }
            }
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for byte in digest.iter() {
        s.push(char::from(HEX[usize::from(byte >> 4)]));
        s.push(char::from(HEX[usize::from(byte & 0x0F)]));
    }
    s
}

/// Why a decoded buffer cannot be converted: a layout we do not read, or too few samples.
fn conversion_error(image: &DynamicImage, format: Format, path: &Path) -> LoadError {
    let supported = matches!(
        image,
        DynamicImage::ImageLuma8(_)
            | DynamicImage::ImageLumaA8(_)
            | DynamicImage::ImageRgb8(_)
            | DynamicImage::ImageRgba8(_)
            | DynamicImage::ImageLuma16(_)
            | DynamicImage::ImageLumaA16(_)
            | DynamicImage::ImageRgb16(_)
            | DynamicImage::ImageRgba16(_)
            | DynamicImage::ImageRgb32F(_)
            | DynamicImage::ImageRgba32F(_)
    );
    if !supported {
        return LoadError::UnsupportedFeature {
            path: path.to_path_buf(),
            format: format.display().to_owned(),
            message: format!("decoded sample layout {:?}", image.color()),
        };
    }
    LoadError::Decode {
        path: path.to_path_buf(),
        format: format.display().to_owned(),
        message: "the decoder returned fewer samples than the image size implies".to_owned(),
    }
}

fn empty_planes() -> RgbPlanes {
    RgbPlanes {
        r: Array2::zeros((0, 0)),
        g: Array2::zeros((0, 0)),
        b: Array2::zeros((0, 0)),
    }
}

/// Interleaved samples (`channels` per pixel; 1–2 grey, 3–4 RGB, the extra one alpha,
/// dropped) read as oriented rows of linear values.
struct Samples<'a, T, F> {
    src: &'a [T],
    channels: usize,
    walk: SourceWalk,
    to_linear: F,
}

impl<T: Copy, F: Fn(T) -> f32> Samples<'_, T, F> {
    /// Oriented row `oy` into `r`, `g`, `b` (each `walk.out_w` long).
    fn row(&self, oy: usize, r: &mut [f32], g: &mut [f32], b: &mut [f32]) {
        let (walk, channels, src, f) = (&self.walk, self.channels, self.src, &self.to_linear);
        let (ow, grey) = (walk.out_w, channels < 3);
        let row_start = walk.start + oy as isize * walk.dy;
        // Every index below lies in [0, n) by construction of `SourceWalk`, and src holds at
        // least n pixels (checked in `visit_samples`), so the slicing cannot fail.
        if walk.dx == 1 || walk.dx == -1 {
            let first = if walk.dx == 1 {
                row_start
            } else {
                row_start - (ow as isize - 1)
            } as usize;
            let row = src[first * channels..(first + ow) * channels].chunks_exact(channels);
            if walk.dx == 1 {
                fill_row(row, grey, f, r, g, b);
            } else {
                fill_row(row.rev(), grey, f, r, g, b);
            }
        } else {
            let pixels = (0..ow).map(|ox| {
                let i = (row_start + ox as isize * walk.dx) as usize * channels;
                &src[i..i + channels]
            });
            fill_row(pixels, grey, f, r, g, b);
        }
    }
}

impl<T: Sample, F: Fn(T) -> f32> Samples<'_, T, F> {
    /// Add oriented row `oy` into block sums: output pixel `x` goes to `r[x / factor]` (and
    /// `g`, `b`), in increasing `x`, so each sum sees the same additions in the same order as
    /// converting the row with [`Samples::row`] first. Returns the row's pixels with a channel
    /// at or below `limits.0` or at or above `limits.1` (clipped).
    fn accumulate_row(&self, oy: usize, sums: BlockSums<'_>) -> usize {
        let (walk, channels, src, f) = (&self.walk, self.channels, self.src, &self.to_linear);
        let (ow, grey) = (walk.out_w, channels < 3);
        let row_start = walk.start + oy as isize * walk.dy;
        // Indices as in `row`: in [0, n) by construction of `SourceWalk`.
        if walk.dx == 1 || walk.dx == -1 {
            let first = if walk.dx == 1 {
                row_start
            } else {
                row_start - (ow as isize - 1)
            } as usize;
            let samples = &src[first * channels..(first + ow) * channels];
            // The bit comparison of `accumulate_forward` needs positive limits.
            let (_, (floor, ceil), ..) = sums;
            let positive = floor >= 0.0 && ceil > 0.0;
            match (walk.dx, channels) {
                _ if !positive => {}
                (1, 3) => return accumulate_forward::<_, _, 3>(samples, f, sums),
                (1, 4) => return accumulate_forward::<_, _, 4>(samples, f, sums),
                _ => {}
            }
            let row = samples.chunks_exact(channels);
            if walk.dx == 1 {
                accumulate(row, grey, f, sums)
            } else {
                accumulate(row.rev(), grey, f, sums)
            }
        } else {
            let pixels = (0..ow).map(|ox| {
                let i = (row_start + ox as isize * walk.dx) as usize * channels;
                &src[i..i + channels]
            });
            accumulate(pixels, grey, f, sums)
        }
    }
}

/// Block width, clipping limits and the R, G, B block sums a row is added into.
type BlockSums<'a> = (
    usize,
    (f32, f32),
    &'a mut [f32],
    &'a mut [f32],
    &'a mut [f32],
);

/// Block sums of one row of pixels (see [`Samples::accumulate_row`]).
#[inline]
fn accumulate<'a, T, F, I>(pixels: I, grey: bool, f: &F, sums: BlockSums<'_>) -> usize
where
    T: Copy + 'a,
    F: Fn(T) -> f32,
    I: Iterator<Item = &'a [T]>,
{
    let (factor, (floor, ceil), r, g, b) = sums;
    let mut clipped = 0;
    let (mut k, mut n) = (0, 0);
    for px in pixels {
        let (vr, vg, vb) = match *px {
            [sr, sg, sb, ..] if !grey => (f(sr), f(sg), f(sb)),
            [s, ..] => {
                let v = f(s);
                (v, v, v)
            }
            [] => (0.0, 0.0, 0.0),
        };
        // As `is_clipped`, without branches (the values are never NaN here).
        clipped += usize::from(
            (vr <= floor)
                | (vg <= floor)
                | (vb <= floor)
                | (vr >= ceil)
                | (vg >= ceil)
                | (vb >= ceil),
        );
        if let (Some(ar), Some(ag), Some(ab)) = (r.get_mut(k), g.get_mut(k), b.get_mut(k)) {
            *ar += vr;
            *ag += vg;
            *ab += vb;
        }
        n += 1;
        if n == factor {
            (k, n) = (k + 1, 0);
        }
    }
    clipped
}

/// [`accumulate`] of a row of colour pixels stored in order (`channels` ≥ 3 samples each, the
/// first three R, G, B): the same additions in the same order, a block at a time with its
/// three sums held in registers. The common case (an upright colour photo), about four times
/// faster than the general walk.
#[inline]
fn accumulate_forward<T: Sample, F: Fn(T) -> f32, const C: usize>(
    samples: &[T],
    f: &F,
    sums: BlockSums<'_>,
) -> usize {
    let (factor, (floor, ceil), r, g, b) = sums;
    let (lo_bits, hi_bits) = (floor.to_bits(), ceil.to_bits());
    // As `is_clipped`, on the magnitudes' bits, whose integer order is the order of the
    // values (never NaN, never below −0.0 here; −0.0 counts as 0.0 as it does in the float
    // comparison).
    let m = |v: f32| v.to_bits() & 0x7fff_ffff;
    if T::EIGHT_BIT {
        // Each code's clip class, so a pixel's test is three table reads (the same test).
        let mut class = [0u8; 256];
        for (c, k) in (0..=255u8).zip(class.iter_mut()) {
            let v = m(f(T::from_code(c)));
            *k = u8::from((v <= lo_bits) | (v >= hi_bits));
        }
        let test = |px: &[T], _: [f32; 3]| {
            u32::from(class[px[0].code()] | class[px[1].code()] | class[px[2].code()])
        };
        return accumulate_blocks::<T, F, C>(samples, f, test, (factor, r, g, b));
    }
    let test = |_: &[T], [vr, vg, vb]: [f32; 3]| {
        let (br, bg, bb) = (m(vr), m(vg), m(vb));
        u32::from((br.min(bg).min(bb) <= lo_bits) | (br.max(bg).max(bb) >= hi_bits))
    };
    accumulate_blocks::<T, F, C>(samples, f, test, (factor, r, g, b))
}

/// The loop of [`accumulate_forward`]: block sums of the pixels' values `f` in order, and the
/// pixels `clipped_test` (given a pixel's samples and values) counts as clipped.
#[inline(always)]
fn accumulate_blocks<T: Sample, F: Fn(T) -> f32, const C: usize>(
    samples: &[T],
    f: &F,
    clipped_test: impl Fn(&[T], [f32; 3]) -> u32,
    (factor, r, g, b): (usize, &mut [f32], &mut [f32], &mut [f32]),
) -> usize {
    let mut clipped = 0usize;
    let blocks = samples.chunks(factor * C);
    let block_sums = r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut());
    for (block, ((ar, ag), ab)) in blocks.zip(block_sums) {
        let (mut sr, mut sg, mut sb) = (*ar, *ag, *ab);
        let mut n = 0u32;
        for px in block.chunks_exact(C) {
            let (vr, vg, vb) = (f(px[0]), f(px[1]), f(px[2]));
            n += clipped_test(px, [vr, vg, vb]);
            sr += vr;
            sg += vg;
            sb += vb;
        }
        clipped += n as usize;
        (*ar, *ag, *ab) = (sr, sg, sb);
    }
    clipped
}

/// A sample type of decoded photos: 8-bit codes, 16-bit codes or linear floats.
trait Sample: Copy + Sync {
    /// Whether the samples are 8-bit codes (so a table of 256 entries covers every value).
    const EIGHT_BIT: bool = false;
    /// The sample's 8-bit code (only meaningful when [`Sample::EIGHT_BIT`]).
    fn code(self) -> usize {
        0
    }
    /// The sample of an 8-bit code (only meaningful when [`Sample::EIGHT_BIT`]).
    fn from_code(c: u8) -> Self;
}

impl Sample for u8 {
    const EIGHT_BIT: bool = true;
    #[inline]
    fn code(self) -> usize {
        usize::from(self)
    }
    fn from_code(c: u8) -> Self {
        c
    }
}

impl Sample for u16 {
    fn from_code(c: u8) -> Self {
        u16::from(c)
    }
}

impl Sample for f32 {
    fn from_code(c: u8) -> Self {
        f32::from(c)
    }
}

/// Something done with a photo's samples, whatever their type.
trait SampleVisitor {
    type Out;
    fn visit<T: Sample, F: Fn(T) -> f32 + Sync>(self, s: Samples<'_, T, F>) -> Self::Out;
}

/// Run `v` on the samples of `image`; `None` for a layout we do not read, an empty image or
/// fewer samples than its size implies.
fn visit_samples<V: SampleVisitor>(
    image: &DynamicImage,
    orientation: Orientation,
    v: V,
) -> Option<V::Out> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let lut8: &[f32; 256] = &LUT8;
    let lut16: &[f32] = &LUT16;
    let from_u8 = |v: u8| lut8[usize::from(v)];
    let from_u16 = |v: u16| lut16.get(usize::from(v)).copied().unwrap_or(1.0);
    // Float TIFF holds linear values already; only the range needs enforcing.
    let from_f32 = |v: f32| if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
    fn go<T: Sample, F: Fn(T) -> f32 + Sync, V: SampleVisitor>(
        src: &[T],
        (w, h, channels): (usize, usize, usize),
        orientation: Orientation,
        to_linear: F,
        v: V,
    ) -> Option<V::Out> {
        let n = w.checked_mul(h)?;
        if n == 0 || src.len() < n.checked_mul(channels)? || isize::try_from(n).is_err() {
            return None;
        }
        let walk = SourceWalk::new(w, h, orientation);
        Some(v.visit(Samples {
            src,
            channels,
            walk,
            to_linear,
        }))
    }
    let o = orientation;
    match image {
        DynamicImage::ImageLuma8(b) => go(b.as_raw(), (w, h, 1), o, from_u8, v),
        DynamicImage::ImageLumaA8(b) => go(b.as_raw(), (w, h, 2), o, from_u8, v),
        DynamicImage::ImageRgb8(b) => go(b.as_raw(), (w, h, 3), o, from_u8, v),
        DynamicImage::ImageRgba8(b) => go(b.as_raw(), (w, h, 4), o, from_u8, v),
        DynamicImage::ImageLuma16(b) => go(b.as_raw(), (w, h, 1), o, from_u16, v),
        DynamicImage::ImageLumaA16(b) => go(b.as_raw(), (w, h, 2), o, from_u16, v),
        DynamicImage::ImageRgb16(b) => go(b.as_raw(), (w, h, 3), o, from_u16, v),
        DynamicImage::ImageRgba16(b) => go(b.as_raw(), (w, h, 4), o, from_u16, v),
        DynamicImage::ImageRgb32F(b) => go(b.as_raw(), (w, h, 3), o, from_f32, v),
        DynamicImage::ImageRgba32F(b) => go(b.as_raw(), (w, h, 4), o, from_f32, v),
        _ => None,
    }
}

/// Whether the samples can be converted at all.
struct Check;

impl SampleVisitor for Check {
    type Out = ();
    fn visit<T: Sample, F: Fn(T) -> f32 + Sync>(self, _: Samples<'_, T, F>) {}
}

/// Full-resolution oriented planes, one output row per rayon task.
struct ToPlanes;

impl SampleVisitor for ToPlanes {
    type Out = RgbPlanes;
    fn visit<T: Sample, F: Fn(T) -> f32 + Sync>(self, s: Samples<'_, T, F>) -> RgbPlanes {
        let (ow, oh) = (s.walk.out_w, s.walk.out_h);
        let n = ow * oh;
        let (mut r, mut g, mut b) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
        r.par_chunks_exact_mut(ow)
            .zip(g.par_chunks_exact_mut(ow))
            .zip(b.par_chunks_exact_mut(ow))
            .enumerate()
            .with_min_len(8)
            .for_each(|(oy, ((r, g), b))| s.row(oy, r, g, b));
        let plane = |v: Vec<f32>| Array2::from_shape_vec((oh, ow), v);
        match (plane(r), plane(g), plane(b)) {
            (Ok(r), Ok(g), Ok(b)) => RgbPlanes { r, g, b },
            _ => empty_planes(),
        }
    }
}

/// Oriented linear planes averaged over blocks, converted a row at a time: the same sums in
/// the same order as converting to full planes and then calling
/// [`crate::filters::downsample`], so the values are bit-identical, without the
/// full-resolution planes (12 bytes per pixel) ever existing. Counts the pixels with a channel
/// at or below `floor` or at or above `ceil`.
struct Reduce {
    factor: usize,
    floor: f32,
    ceil: f32,
}

impl SampleVisitor for Reduce {
    type Out = Reduced;
    fn visit<T: Sample, F: Fn(T) -> f32 + Sync>(self, s: Samples<'_, T, F>) -> Reduced {
        let (f, lo, hi) = (self.factor.max(1), self.floor, self.ceil);
        let (w, h) = (s.walk.out_w, s.walk.out_h);
        let ow = w.div_ceil(f);
        // One band of `f` full-resolution rows per block row.
        let rows: Vec<([Vec<f32>; 3], usize)> = (0..h.div_ceil(f))
            .into_par_iter()
            .map(|oy| {
                let (y0, y1) = (oy * f, ((oy + 1) * f).min(h));
                let [mut r, mut g, mut b] = std::array::from_fn(|_| vec![0f32; ow]);
                let mut clipped = 0;
                for y in y0..y1 {
                    clipped +=
                        s.accumulate_row(y, (f, (lo, hi), &mut r[..], &mut g[..], &mut b[..]));
                }
                let n_rows = y1 - y0;
                for acc in [&mut r, &mut g, &mut b] {
                    for (x, a) in acc.iter_mut().enumerate() {
                        let cols = ((x + 1) * f).min(w) - x * f;
                        *a /= (n_rows * cols).max(1) as u32 as f32;
                    }
                }
                ([r, g, b], clipped)
            })
            .collect();
        let oh = rows.len();
        Reduced {
            planes: std::array::from_fn(|c| {
                let mut v = Vec::with_capacity(oh * ow);
                for (row, _) in &rows {
                    v.extend_from_slice(&row[c]);
                }
                Array2::from_shape_vec((oh, ow), v).unwrap_or_else(|_| Array2::zeros((0, 0)))
            }),
            clipped: rows.iter().map(|(_, n)| n).sum(),
            total: w * h,
        }
    }
}

/// Whether the orientation turns the image a quarter turn, swapping width and height.
fn swaps_axes(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// Where output pixel (ox, oy) comes from in the stored image: source pixel index
/// `start + ox * dx + oy * dy`.
struct SourceWalk {
    out_w: usize,
    out_h: usize,
    start: isize,
    dx: isize,
    dy: isize,
}

impl SourceWalk {
    /// `w`, `h`: stored size. Orientation names the transform that turns the stored image into
    /// the displayed one (image's convention: rotations clockwise, flip after rotation).
    fn new(w: usize, h: usize, o: Orientation) -> Self {
        let (wi, hi) = (w as isize, h as isize);
        let last_row = (hi - 1) * wi;
        let (start, dx, dy) = match o {
            Orientation::NoTransforms => (0, 1, wi),
            Orientation::FlipHorizontal => (wi - 1, -1, wi),
            Orientation::Rotate180 => (last_row + wi - 1, -1, -wi),
            Orientation::FlipVertical => (last_row, 1, -wi),
            // Transpose: out (ox, oy) = stored (oy, ox).
            Orientation::Rotate90FlipH => (0, wi, 1),
            // Clockwise: out (ox, oy) = stored (oy, h-1-ox).
            Orientation::Rotate90 => (last_row, -wi, 1),
            // Transverse: out (ox, oy) = stored (w-1-oy, h-1-ox).
            Orientation::Rotate270FlipH => (last_row + wi - 1, -wi, -1),
            // Counter-clockwise: out (ox, oy) = stored (w-1-oy, ox).
            Orientation::Rotate270 => (wi - 1, wi, -1),
        };
        let (out_w, out_h) = if swaps_axes(o) { (h, w) } else { (w, h) };
        Self {
            out_w,
            out_h,
            start,
            dx,
            dy,
        }
    }
}

#[inline]
fn fill_row<'a, T, F, I>(pixels: I, grey: bool, f: &F, r: &mut [f32], g: &mut [f32], b: &mut [f32])
where
    T: Copy + 'a,
    F: Fn(T) -> f32,
    I: Iterator<Item = &'a [T]>,
{
    let out = r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut());
    if grey {
        for (px, ((r, g), b)) in pixels.zip(out) {
            let v = px.first().map_or(0.0, |&s| f(s));
            (*r, *g, *b) = (v, v, v);
        }
    } else {
        for (px, ((r, g), b)) in pixels.zip(out) {
            if let [sr, sg, sb, ..] = *px {
                (*r, *g, *b) = (f(sr), f(sg), f(sb));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;
    use image::codecs::png::PngEncoder;
    use image::codecs::tiff::TiffEncoder;
    use image::codecs::webp::WebPEncoder;
    use image::{ImageBuffer, ImageEncoder, Luma, Rgb, RgbImage, Rgba};
    use std::time::{Duration, Instant};

    const NAME: &str = "subject-07/cheek_left.jpg";

    fn path() -> PathBuf {
        PathBuf::from(NAME)
    }

    fn load(bytes: &[u8]) -> Result<LoadedImage, LoadError> {
        load_bytes(bytes, &path(), &LoadLimits::default())
    }

    /// The sRGB EOTF written out independently of the module's implementation.
    fn reference_linear(code: f64, max: f64) -> f32 {
        let v = code / max;
        (if v <= 0.04045 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }) as f32
    }

    fn encode(f: impl FnOnce(&mut Vec<u8>) -> image::ImageResult<()>) -> Vec<u8> {
        let mut buf = Vec::new();
        f(&mut buf).expect("test image encodes");
        buf
    }

    fn png(raw: &[u8], w: u32, h: u32, c: ExtendedColorType) -> Vec<u8> {
        encode(|b| PngEncoder::new(b).write_image(raw, w, h, c))
    }

    fn tiff(raw: &[u8], w: u32, h: u32, c: ExtendedColorType) -> Vec<u8> {
        encode(|b| TiffEncoder::new(Cursor::new(b)).write_image(raw, w, h, c))
    }

    fn webp(raw: &[u8], w: u32, h: u32, c: ExtendedColorType) -> Vec<u8> {
        encode(|b| WebPEncoder::new_lossless(b).write_image(raw, w, h, c))
    }

    fn jpeg(raw: &[u8], w: u32, h: u32, c: ExtendedColorType) -> Vec<u8> {
        encode(|b| JpegEncoder::new_with_quality(b, 100).write_image(raw, w, h, c))
    }

    fn u16_bytes(samples: &[u16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_ne_bytes()).collect()
    }

    /// Asserts every pixel of `img` equals the linear value of the expected codes.
    fn assert_pixels(img: &LoadedImage, expect: impl Fn(usize, usize) -> [f32; 3], tol: f32) {
        let p = &img.planes;
        for y in 0..p.height() {
            for x in 0..p.width() {
                let got = [p.r[[y, x]], p.g[[y, x]], p.b[[y, x]]];
                let want = expect(x, y);
                for c in 0..3 {
                    assert!(
                        (got[c] - want[c]).abs() <= tol,
                        "pixel ({x}, {y}) channel {c}: got {}, want {}",
                        got[c],
                        want[c]
                    );
                }
            }
        }
    }

    /// A gradient whose three channels each vary differently with x and y, so any flip or
    /// transpose changes it. Smooth, so JPEG keeps it within a few codes.
    fn gradient_code(x: u32, y: u32) -> [u8; 3] {
        [(5 * x) as u8, (7 * y) as u8, (255 - 2 * x - 3 * y) as u8]
    }

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb(gradient_code(x, y)))
    }

    fn gradient_linear(x: usize, y: usize) -> [f32; 3] {
        gradient_code(x as u32, y as u32).map(|c| reference_linear(f64::from(c), 255.0))
    }

    // ---------------------------------------------------------------- formats and colour types

    #[test]
    fn png_grey8_becomes_equal_rgb_with_exact_srgb_eotf() {
        let raw: Vec<u8> = (0..=255).collect();
        let img = load(&png(&raw, 16, 16, ExtendedColorType::L8)).unwrap();
        assert_pixels(
            &img,
            |x, y| [reference_linear((y * 16 + x) as f64, 255.0); 3],
            1e-7,
        );
        assert_eq!((img.meta.bit_depth, img.meta.color.as_str()), (8, "l8"));
        assert_eq!(img.meta.format, "png");
    }

    #[test]
    fn png_grey_alpha8_drops_alpha() {
        let raw: Vec<u8> = (0..=255u8).flat_map(|v| [v, 255 - v]).collect();
        let img = load(&png(&raw, 16, 16, ExtendedColorType::La8)).unwrap();
        assert_pixels(
            &img,
            |x, y| [reference_linear((y * 16 + x) as f64, 255.0); 3],
            1e-7,
        );
        assert_eq!(img.meta.color, "la8");
    }

    #[test]
    fn png_rgb8_gives_exact_linear_values() {
        let img = load(&png(
            gradient(48, 32).as_raw(),
            48,
            32,
            ExtendedColorType::Rgb8,
        ))
        .unwrap();
        assert_pixels(&img, gradient_linear, 1e-7);
        assert_eq!((img.meta.width, img.meta.height), (48, 32));
        assert_eq!((img.meta.bit_depth, img.meta.color.as_str()), (8, "rgb8"));
    }

    #[test]
    fn png_rgba8_keeps_rgb_of_transparent_pixels() {
        let rgba = ImageBuffer::from_fn(48, 32, |x, y| {
            let [r, g, b] = gradient_code(x, y);
            Rgba([r, g, b, if x % 2 == 0 { 0 } else { 128 }])
        });
        let img = load(&png(rgba.as_raw(), 48, 32, ExtendedColorType::Rgba8)).unwrap();
        assert_pixels(&img, gradient_linear, 1e-7);
        assert_eq!(img.meta.color, "rgba8");
    }

    /// 16-bit codes spread over the whole range, including 0 and 65535.
    fn code16(i: usize) -> u16 {
        (i * 65535 / 255) as u16 ^ (i as u16 & 3)
    }

    #[test]
    fn png_grey16_uses_all_sixteen_bits() {
        let samples: Vec<u16> = (0..256).map(code16).collect();
        let img = load(&png(&u16_bytes(&samples), 16, 16, ExtendedColorType::L16)).unwrap();
        assert_pixels(
            &img,
            |x, y| [reference_linear(f64::from(code16(y * 16 + x)), 65535.0); 3],
            1e-7,
        );
        assert_eq!((img.meta.bit_depth, img.meta.color.as_str()), (16, "l16"));
    }

    #[test]
    fn png_grey_alpha16_drops_alpha() {
        let samples: Vec<u16> = (0..256).flat_map(|i| [code16(i), 1000]).collect();
        let img = load(&png(&u16_bytes(&samples), 16, 16, ExtendedColorType::La16)).unwrap();
        assert_pixels(
            &img,
            |x, y| [reference_linear(f64::from(code16(y * 16 + x)), 65535.0); 3],
            1e-7,
        );
        assert_eq!(img.meta.color, "la16");
    }

    fn rgb16_code(x: usize, y: usize) -> [u16; 3] {
        let i = y * 16 + x;
        [code16(i), code16(255 - i), code16((i * 7) % 256)]
    }

    fn rgb16_linear(x: usize, y: usize) -> [f32; 3] {
        rgb16_code(x, y).map(|c| reference_linear(f64::from(c), 65535.0))
    }

    fn rgb16_samples(alpha: bool) -> Vec<u16> {
        let mut s = Vec::new();
        for y in 0..16 {
            for x in 0..16 {
                s.extend(rgb16_code(x, y));
                if alpha {
                    s.push(7);
                }
            }
        }
        s
    }

    #[test]
    fn png_rgb16_gives_exact_linear_values() {
        let img = load(&png(
            &u16_bytes(&rgb16_samples(false)),
            16,
            16,
            ExtendedColorType::Rgb16,
        ))
        .unwrap();
        assert_pixels(&img, rgb16_linear, 1e-7);
        assert_eq!((img.meta.bit_depth, img.meta.color.as_str()), (16, "rgb16"));
    }

    #[test]
    fn png_rgba16_drops_alpha() {
        let img = load(&png(
            &u16_bytes(&rgb16_samples(true)),
            16,
            16,
            ExtendedColorType::Rgba16,
        ))
        .unwrap();
        assert_pixels(&img, rgb16_linear, 1e-7);
        assert_eq!(img.meta.color, "rgba16");
    }

    #[test]
    fn tiff_rgb8_gives_exact_linear_values() {
        let img = load(&tiff(
            gradient(48, 32).as_raw(),
            48,
            32,
            ExtendedColorType::Rgb8,
        ))
        .unwrap();
        assert_pixels(&img, gradient_linear, 1e-7);
        assert_eq!(
            (img.meta.format.as_str(), img.meta.color.as_str()),
            ("tiff", "rgb8")
        );
    }

    #[test]
    fn tiff_grey8_becomes_equal_rgb() {
        let raw: Vec<u8> = (0..=255).collect();
        let img = load(&tiff(&raw, 16, 16, ExtendedColorType::L8)).unwrap();
        assert_pixels(
            &img,
            |x, y| [reference_linear((y * 16 + x) as f64, 255.0); 3],
            1e-7,
        );
    }

    #[test]
    fn tiff_rgb16_gives_exact_linear_values() {
        let img = load(&tiff(
            &u16_bytes(&rgb16_samples(false)),
            16,
            16,
            ExtendedColorType::Rgb16,
        ))
        .unwrap();
        assert_pixels(&img, rgb16_linear, 1e-7);
        assert_eq!((img.meta.bit_depth, img.meta.color.as_str()), (16, "rgb16"));
    }

    #[test]
    fn tiff_grey16_becomes_equal_rgb() {
        let samples: Vec<u16> = (0..256).map(code16).collect();
        let img = load(&tiff(&u16_bytes(&samples), 16, 16, ExtendedColorType::L16)).unwrap();
        assert_pixels(
            &img,
            |x, y| [reference_linear(f64::from(code16(y * 16 + x)), 65535.0); 3],
            1e-7,
        );
    }

    #[test]
    fn tiff_float_is_taken_as_linear_and_clamped_to_unit_range() {
        let values = [0.0f32, 0.25, 1.0, -0.5, 2.0, f32::NAN, 0.001, 0.75];
        let samples: Vec<f32> = values.iter().flat_map(|&v| [v, 0.5, 1.0 - v]).collect();
        let raw: Vec<u8> = samples.iter().flat_map(|s| s.to_ne_bytes()).collect();
        let img = load(&tiff(&raw, 4, 2, ExtendedColorType::Rgb32F)).unwrap();
        let clamp = |v: f32| if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
        assert_pixels(
            &img,
            |x, y| {
                let v = values[y * 4 + x];
                [clamp(v), 0.5, clamp(1.0 - v)]
            },
            0.0,
        );
        assert_eq!(
            (img.meta.bit_depth, img.meta.color.as_str()),
            (32, "rgb32f")
        );
    }

    #[test]
    fn webp_lossless_rgb_gives_exact_linear_values() {
        let img = load(&webp(
            gradient(48, 32).as_raw(),
            48,
            32,
            ExtendedColorType::Rgb8,
        ))
        .unwrap();
        assert_pixels(&img, gradient_linear, 1e-7);
        assert_eq!(img.meta.format, "webp");
    }

    #[test]
    fn webp_lossless_rgba_drops_alpha() {
        let rgba = ImageBuffer::from_fn(48, 32, |x, y| {
            let [r, g, b] = gradient_code(x, y);
            Rgba([r, g, b, (x * 5) as u8])
        });
        let img = load(&webp(rgba.as_raw(), 48, 32, ExtendedColorType::Rgba8)).unwrap();
        assert_pixels(&img, gradient_linear, 1e-7);
    }

    /// Largest difference in 8-bit sRGB codes between the loaded image and the gradient.
    fn max_code_error(img: &LoadedImage) -> i32 {
        let p = &img.planes;
        let mut worst = 0;
        for y in 0..p.height() {
            for x in 0..p.width() {
                let want = gradient_code(x as u32, y as u32);
                let got = [p.r[[y, x]], p.g[[y, x]], p.b[[y, x]]].map(linear_to_srgb_u8);
                for c in 0..3 {
                    worst = worst.max((i32::from(got[c]) - i32::from(want[c])).abs());
                }
            }
        }
        worst
    }

    #[test]
    fn jpeg_baseline_rgb_is_within_jpeg_error_of_the_source() {
        let img = load(&jpeg(
            gradient(48, 32).as_raw(),
            48,
            32,
            ExtendedColorType::Rgb8,
        ))
        .unwrap();
        assert!(max_code_error(&img) <= 4, "error {}", max_code_error(&img));
        assert_eq!(
            (img.meta.format.as_str(), img.meta.color.as_str()),
            ("jpeg", "rgb8")
        );
    }

    #[test]
    fn jpeg_grey_becomes_equal_rgb() {
        let raw: Vec<u8> = (0..16 * 16).map(|i| (i % 16 * 16 + i / 16) as u8).collect();
        let img = load(&jpeg(&raw, 16, 16, ExtendedColorType::L8)).unwrap();
        let p = &img.planes;
        assert_eq!(p.r, p.g);
        assert_eq!(p.r, p.b);
        for (i, &want) in raw.iter().enumerate() {
            let got = linear_to_srgb_u8(p.r[[i / 16, i % 16]]);
            assert!(
                (i32::from(got) - i32::from(want)).abs() <= 2,
                "pixel {i}: {got} vs {want}"
            );
        }
        assert_eq!(img.meta.color, "l8");
    }

    #[test]
    fn jpeg_progressive_decodes_like_its_source() {
        // Made by fixtures/formats/make_fixtures.py (Pillow, progressive=True, 4:4:4, q95).
        let bytes = include_bytes!("../fixtures/formats/progressive.jpg");
        assert!(
            bytes.windows(2).any(|m| m == [0xFF, 0xC2]),
            "fixture has a SOF2 marker"
        );
        let img = load(bytes).unwrap();
        assert_eq!((img.meta.width, img.meta.height), (32, 24));
        assert!(max_code_error(&img) <= 4, "error {}", max_code_error(&img));
    }

    #[test]
    fn jpeg_cmyk_adobe_becomes_rgb_of_the_inks() {
        // Made by fixtures/formats/make_fixtures.py: Adobe APP14 transform 0, inverted CMYK
        // as Photoshop and Pillow write it. Quadrant inks (C, M, Y, K): none, full cyan,
        // half black, half magenta + full yellow.
        let img = load(include_bytes!("../fixtures/formats/cmyk.jpg")).unwrap();
        assert_eq!(img.meta.color, "cmyk8");
        // RGB = (1 - ink) * (1 - K), in 8-bit codes.
        let quadrants = [
            [255, 255, 255],
            [0, 255, 255],
            [127, 127, 127],
            [255, 127, 0],
        ];
        for (q, want) in quadrants.iter().enumerate() {
            let (x, y) = (4 + 8 * (q % 2), 4 + 8 * (q / 2));
            let p = &img.planes;
            let got = [p.r[[y, x]], p.g[[y, x]], p.b[[y, x]]].map(linear_to_srgb_u8);
            for c in 0..3 {
                assert!(
                    (i32::from(got[c]) - want[c]).abs() <= 3,
                    "quadrant {q}: got {got:?}, want {want:?}"
                );
            }
        }
    }

    // ---------------------------------------------------------------- orientation

    /// A minimal big-endian EXIF (TIFF) block holding only the Orientation tag.
    fn exif_orientation(o: u8) -> Vec<u8> {
        let mut e = b"MM\0\x2a\0\0\0\x08\0\x01".to_vec();
        e.extend([0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, o, 0, 0]);
        e.extend([0, 0, 0, 0]);
        e
    }

    /// A little-endian, uncompressed, single-strip RGB8 TIFF with an Orientation tag, written
    /// by hand because the image crate's encoder cannot set it.
    fn tiff_with_orientation(img: &RgbImage, o: u16) -> Vec<u8> {
        let (w, h) = img.dimensions();
        let entries: [(u16, u16, u32, u32); 10] = [
            (256, 4, 1, w),
            (257, 4, 1, h),
            (258, 3, 3, 134), // BitsPerSample: three SHORTs stored after the IFD
            (259, 3, 1, 1),
            (262, 3, 1, 2),
            (273, 4, 1, 140), // StripOffsets
            (274, 3, 1, u32::from(o)),
            (277, 3, 1, 3),
            (278, 4, 1, h),
            (279, 4, 1, w * h * 3),
        ];
        let mut t = b"II\x2a\0\x08\0\0\0".to_vec();
        t.extend(10u16.to_le_bytes());
        for (tag, kind, count, value) in entries {
            t.extend(tag.to_le_bytes());
            t.extend(kind.to_le_bytes());
            t.extend(count.to_le_bytes());
            if kind == 3 && count == 1 {
                t.extend((value as u16).to_le_bytes());
                t.extend([0, 0]);
            } else {
                t.extend(value.to_le_bytes());
            }
        }
        t.extend([0, 0, 0, 0]);
        assert_eq!(t.len(), 134);
        for _ in 0..3 {
            t.extend(8u16.to_le_bytes());
        }
        t.extend_from_slice(img.as_raw());
        t
    }

    /// The stored pixels that orientation `o` turns into `canonical`.
    fn stored_for(canonical: &RgbImage, o: u8) -> RgbImage {
        let inverse = match o {
            6 => 8,
            8 => 6,
            other => other,
        };
        let mut img = DynamicImage::ImageRgb8(canonical.clone());
        img.apply_orientation(Orientation::from_exif(inverse).unwrap());
        img.to_rgb8()
    }

    fn check_orientation(kind: &str, o: u8, bytes: &[u8], tolerance: i32) {
        let img = load(bytes).unwrap_or_else(|e| panic!("{kind} orientation {o}: {e}"));
        assert_eq!(img.meta.orientation, o, "{kind}");
        assert_eq!(
            (img.meta.width, img.meta.height),
            (48, 32),
            "{kind} orientation {o}"
        );
        assert_eq!((img.planes.width(), img.planes.height()), (48, 32));
        let err = max_code_error(&img);
        assert!(err <= tolerance, "{kind} orientation {o}: error {err}");
    }

    #[test]
    fn exif_orientations_1_to_8_give_the_canonical_pattern_in_every_format() {
        let canonical = gradient(48, 32);
        for o in 1..=8u8 {
            let stored = stored_for(&canonical, o);
            let (w, h) = stored.dimensions();
            let raw = stored.as_raw();
            let exif = exif_orientation(o);
            let c = ExtendedColorType::Rgb8;

            let mut enc_png = Vec::new();
            let mut e = PngEncoder::new(&mut enc_png);
            e.set_exif_metadata(exif.clone()).unwrap();
            e.write_image(raw, w, h, c).unwrap();
            check_orientation("png eXIf", o, &enc_png, 0);

            let mut enc_webp = Vec::new();
            let mut e = WebPEncoder::new_lossless(&mut enc_webp);
            e.set_exif_metadata(exif.clone()).unwrap();
            e.write_image(raw, w, h, c).unwrap();
            check_orientation("webp EXIF", o, &enc_webp, 0);

            let mut enc_jpeg = Vec::new();
            let mut e = JpegEncoder::new_with_quality(&mut enc_jpeg, 100);
            e.set_exif_metadata(exif.clone()).unwrap();
            e.write_image(raw, w, h, c).unwrap();
            check_orientation("jpeg APP1", o, &enc_jpeg, 4);

            check_orientation(
                "tiff tag",
                o,
                &tiff_with_orientation(&stored, u16::from(o)),
                0,
            );
        }
    }

    #[test]
    fn reducing_a_decoded_photo_equals_downsampling_its_planes_bit_for_bit() {
        // Odd sizes leave partial blocks; every orientation walks the samples differently;
        // 16-bit and grey take other conversion paths. Codes 0 and 255 count as clipped.
        let canonical = RgbImage::from_fn(37, 23, |x, y| {
            let v = (x * 7 + y * 13) % 256;
            image::Rgb([v as u8, (255 - v) as u8, ((x * y) % 256) as u8])
        });
        let grey16 =
            ImageBuffer::<Luma<u16>, _>::from_fn(29, 17, |x, y| Luma([(x * 2000 + y * 97) as u16]));
        let mut cases: Vec<Vec<u8>> = (1..=8u8)
            .map(|o| tiff_with_orientation(&stored_for(&canonical, o), u16::from(o)))
            .collect();
        cases.push(png(
            &u16_bytes(grey16.as_raw()),
            29,
            17,
            ExtendedColorType::L16,
        ));
        // Four samples per pixel (the alpha dropped) take the upright fast path too.
        let rgba: Vec<u8> = canonical
            .pixels()
            .flat_map(|p| [p[0], p[1], p[2], p[0] ^ 0x5a])
            .collect();
        cases.push(png(&rgba, 37, 23, ExtendedColorType::Rgba8));
        for (i, bytes) in cases.iter().enumerate() {
            let full = load(bytes).unwrap_or_else(|e| panic!("case {i}: {e}"));
            let dec = decode_bytes(bytes, &path(), &LoadLimits::default())
                .unwrap_or_else(|e| panic!("case {i}: {e}"));
            assert_eq!(dec.meta, full.meta, "case {i}");
            assert_eq!(dec.photo.to_planes(), full.planes, "case {i}");
            assert_eq!(
                (dec.photo.width(), dec.photo.height()),
                (full.planes.width(), full.planes.height())
            );
            let bits = |r: &Reduced| -> Vec<u32> {
                r.planes
                    .iter()
                    .flat_map(|p| p.iter().map(|v| v.to_bits()))
                    .collect()
            };
            for f in [1, 2, 3, 5] {
                let a = dec.photo.reduce(f, 1e-6, 0.999);
                let b = full.planes.reduce(f, 1e-6, 0.999);
                assert_eq!(bits(&a), bits(&b), "case {i}, factor {f}");
                assert_eq!((a.clipped, a.total), (b.clipped, b.total), "case {i}");
                assert_eq!(
                    a.planes[0].dim(),
                    (
                        full.planes.height().div_ceil(f),
                        full.planes.width().div_ceil(f)
                    )
                );
            }
            if i == 0 {
                assert!(dec.photo.reduce(1, 1e-6, 0.999).clipped > 0);
            }
            // A kept reduction is handed out once, then made afresh; other requests go to
            // the photo.
            for (fa, fb) in [(2, 3), (4, 6), (5, 5)] {
                let (sa, sb) = ((fa, 1e-6, 0.999), (fb, 0.2, 0.8));
                let one = [
                    dec.photo.reduce(fa, sa.1, sa.2),
                    dec.photo.reduce(fb, sb.1, sb.2),
                ];
                let kept = Prereduced::new(&dec.photo, sb, Some(one[1].clone()));
                assert_eq!(bits(&kept.reduce(fb, sb.1, sb.2)), bits(&one[1]));
                assert_eq!(bits(&kept.reduce(fb, sb.1, sb.2)), bits(&one[1]));
                assert_eq!(bits(&kept.reduce(fa, sa.1, sa.2)), bits(&one[0]));
            }
        }
    }

    #[test]
    fn file_without_exif_records_orientation_1() {
        let img = load(&png(
            gradient(48, 32).as_raw(),
            48,
            32,
            ExtendedColorType::Rgb8,
        ))
        .unwrap();
        assert_eq!(img.meta.orientation, 1);
    }

    #[test]
    fn invalid_orientation_value_is_ignored() {
        let bytes = tiff_with_orientation(&gradient(48, 32), 9);
        let img = load(&bytes).unwrap();
        assert_eq!(img.meta.orientation, 1);
        assert_eq!(max_code_error(&img), 0);
    }

    #[test]
    fn orientation_of_grey_and_16_bit_images_is_applied_too() {
        let canonical = ImageBuffer::from_fn(5, 3, |x, y| Luma([(x * 3 + y * 20) as u16 * 1000]));
        let mut stored = DynamicImage::ImageLuma16(canonical.clone());
        stored.apply_orientation(Orientation::Rotate270); // inverse of 6
        let stored = stored.to_luma16();
        let mut bytes = Vec::new();
        let mut e = PngEncoder::new(&mut bytes);
        e.set_exif_metadata(exif_orientation(6)).unwrap();
        e.write_image(&u16_bytes(stored.as_raw()), 3, 5, ExtendedColorType::L16)
            .unwrap();
        let img = load(&bytes).unwrap();
        assert_pixels(
            &img,
            |x, y| {
                [reference_linear(
                    f64::from(canonical.get_pixel(x as u32, y as u32).0[0]),
                    65535.0,
                ); 3]
            },
            1e-7,
        );
    }

    // ---------------------------------------------------------------- refusals

    /// Refusals must be decided from the header: quick, and without allocating the claim.
    fn refuse(bytes: &[u8]) -> LoadError {
        let t = Instant::now();
        let e = load(bytes).expect_err("must be refused");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "took {:?}",
            t.elapsed()
        );
        let msg = e.to_string();
        assert!(msg.starts_with(NAME), "message names the file: {msg}");
        assert_eq!(e.path(), Path::new(NAME));
        e
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

    /// A valid small PNG whose IHDR is rewritten to claim `w` × `h` (CRC fixed up).
    fn png_claiming(w: u32, h: u32) -> Vec<u8> {
        let mut b = png(gradient(8, 8).as_raw(), 8, 8, ExtendedColorType::Rgb8);
        // Signature (8), length (4), "IHDR" (4), then width and height.
        b[16..20].copy_from_slice(&w.to_be_bytes());
        b[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32(&b[12..29]);
        b[29..33].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// A valid small JPEG whose SOF0 is rewritten to claim `w` × `h`.
    fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
        let mut b = jpeg(gradient(8, 8).as_raw(), 8, 8, ExtendedColorType::Rgb8);
        let sof = b.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
        // Marker (2), length (2), precision (1), then height and width.
        b[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
        b[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
        b
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn empty_file_is_refused_as_empty() {
        assert!(matches!(refuse(&[]), LoadError::Empty { .. }));
    }

    #[test]
    fn truncated_png_is_refused_as_decode_error() {
        let b = png(gradient(48, 32).as_raw(), 48, 32, ExtendedColorType::Rgb8);
        let e = refuse(&b[..b.len() / 2]);
        assert!(matches!(e, LoadError::Decode { .. }), "{e:?}");
    }

    #[test]
    fn truncated_jpeg_is_refused_not_filled_with_grey() {
        let b = jpeg(gradient(48, 32).as_raw(), 48, 32, ExtendedColorType::Rgb8);
        let e = refuse(&b[..b.len() / 2]);
        assert!(matches!(e, LoadError::Decode { .. }), "{e:?}");
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    #[test]
    fn jpeg_cut_just_before_its_end_marker_is_refused() {
        let b = jpeg(gradient(48, 32).as_raw(), 48, 32, ExtendedColorType::Rgb8);
        assert!(matches!(
            refuse(&b[..b.len() - 2]),
            LoadError::Decode { .. }
        ));
    }

    #[test]
    fn jpeg_with_trailing_bytes_after_end_marker_loads() {
        let mut b = jpeg(gradient(48, 32).as_raw(), 48, 32, ExtendedColorType::Rgb8);
        b.extend_from_slice(b"\0\0trailing junk\xFF\xD8");
        assert!(load(&b).is_ok());
    }

    #[test]
    fn truncated_tiff_and_webp_are_refused_as_decode_errors() {
        let t = tiff(gradient(48, 32).as_raw(), 48, 32, ExtendedColorType::Rgb8);
        let e = refuse(&t[..t.len() / 2]);
        assert!(matches!(e, LoadError::Decode { .. }), "{e:?}");
        let w = webp(gradient(48, 32).as_raw(), 48, 32, ExtendedColorType::Rgb8);
        let e = refuse(&w[..w.len() / 2]);
        assert!(matches!(e, LoadError::Decode { .. }), "{e:?}");
    }

    #[test]
    fn random_bytes_are_refused_as_unknown_format() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let bytes: Vec<u8> = (0..512)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        assert!(matches!(refuse(&bytes), LoadError::UnknownFormat { .. }));
    }

    #[test]
    fn text_file_named_jpg_is_refused_as_unknown_format() {
        let e = refuse(b"Patient 07, left cheek, session 3: see photo.\n");
        assert!(matches!(e, LoadError::UnknownFormat { .. }));
        assert!(e.to_string().contains("not an image"), "{e}");
    }

    #[test]
    fn gif_is_refused_as_unsupported_format() {
        let gif = b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xff\xff\xff!\xf9\x04\x01\0\0\0\0,\0\0\0\0\x01\0\x01\0\0\x02\x02D\x01\0;";
        let e = refuse(gif);
        assert!(
            matches!(&e, LoadError::UnsupportedFormat { format, .. } if format == "GIF"),
            "{e:?}"
        );
    }

    #[test]
    fn png_header_claiming_100000x100000_is_refused_before_decoding() {
        let e = refuse(&png_claiming(100_000, 100_000));
        assert!(
            matches!(
                e,
                LoadError::TooLarge {
                    width: 100_000,
                    height: 100_000,
                    max_pixels: 100_000_000,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "{NAME}: header claims 100000×100000 pixels (10000 MP), above the limit of 100 MP \
                 (raise it with --max-megapixels)"
            )
        );
    }

    #[test]
    fn jpeg_header_claiming_65535x65535_is_refused_before_decoding() {
        let e = refuse(&jpeg_claiming(65535, 65535));
        assert!(
            matches!(
                e,
                LoadError::TooLarge {
                    width: 65535,
                    height: 65535,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn png_header_claiming_a_long_thin_strip_is_refused() {
        // Within any per-side cap one might pick, but over the pixel count.
        let e = refuse(&png_claiming(4_000_000_000, 1_000));
        assert!(matches!(e, LoadError::TooLarge { .. }), "{e:?}");
    }

    #[test]
    fn png_header_claiming_zero_width_is_refused() {
        assert!(matches!(
            refuse(&png_claiming(0, 8)),
            LoadError::Decode { .. }
        ));
    }

    #[test]
    fn image_over_the_memory_budget_is_refused_before_decoding() {
        let b = png(gradient(48, 32).as_raw(), 48, 32, ExtendedColorType::Rgb8);
        let limits = LoadLimits {
            max_pixels: 100_000_000,
            max_alloc_bytes: 10_000,
        };
        let e = load_bytes(&b, &path(), &limits).unwrap_err();
        // 48 × 32 × (3 decoded + 12 planar) bytes.
        assert!(
            matches!(
                e,
                LoadError::MemoryBudget {
                    needed_bytes: 23_040,
                    budget_bytes: 10_000,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().starts_with(NAME));
    }

    #[test]
    fn progressive_jpeg_budget_counts_the_coefficients_kept_by_the_decoder() {
        let bytes = include_bytes!("../fixtures/formats/progressive.jpg");
        let limits = LoadLimits {
            max_pixels: 100_000_000,
            max_alloc_bytes: 1_000,
        };
        let e = load_bytes(bytes, &path(), &limits).unwrap_err();
        let pixels = 32 * 24;
        // Output RGB8 + file copy + 3 components × 2 bytes + 3 f32 planes.
        let want = pixels * 3 + bytes.len() as u64 + pixels * 6 + pixels * 12;
        assert!(
            matches!(e, LoadError::MemoryBudget { needed_bytes, .. } if needed_bytes == want),
            "{e:?}"
        );
    }

    #[test]
    fn pixel_limit_is_configurable() {
        let b = png(gradient(48, 32).as_raw(), 48, 32, ExtendedColorType::Rgb8);
        let limits = LoadLimits {
            max_pixels: 48 * 32 - 1,
            ..LoadLimits::default()
        };
        let e = load_bytes(&b, &path(), &limits).unwrap_err();
        assert!(matches!(e, LoadError::TooLarge { .. }), "{e:?}");
        let limits = LoadLimits {
            max_pixels: 48 * 32,
            ..LoadLimits::default()
        };
        assert!(load_bytes(&b, &path(), &limits).is_ok());
    }

    #[test]
    fn every_prefix_of_a_jpeg_and_png_is_refused_or_loaded_without_panicking() {
        let j = jpeg(gradient(24, 16).as_raw(), 24, 16, ExtendedColorType::Rgb8);
        for n in 0..j.len() {
            assert!(load(&j[..n]).is_err(), "jpeg prefix {n} loaded");
        }
        let p = png(gradient(24, 16).as_raw(), 24, 16, ExtendedColorType::Rgb8);
        for n in 0..p.len() {
            let _ = load(&p[..n]);
        }
    }

    #[test]
    fn single_byte_corruptions_never_panic() {
        let files = [
            jpeg(gradient(24, 16).as_raw(), 24, 16, ExtendedColorType::Rgb8),
            png(gradient(24, 16).as_raw(), 24, 16, ExtendedColorType::Rgb8),
            tiff(gradient(24, 16).as_raw(), 24, 16, ExtendedColorType::Rgb8),
            webp(gradient(24, 16).as_raw(), 24, 16, ExtendedColorType::Rgb8),
        ];
        for f in &files {
            for i in 0..f.len() {
                for v in [0x00, 0xFF, f[i] ^ 0x55] {
                    let mut g = f.clone();
                    g[i] = v;
                    let _ = load(&g);
                }
            }
        }
    }

    // ---------------------------------------------------------------- metadata

    #[test]
    fn sha256_matches_the_standard_test_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn meta_records_sha256_of_the_file_bytes_size_and_orientation() {
        let canonical = gradient(48, 32);
        let stored = stored_for(&canonical, 6);
        let mut bytes = Vec::new();
        let mut e = PngEncoder::new(&mut bytes);
        e.set_exif_metadata(exif_orientation(6)).unwrap();
        e.write_image(stored.as_raw(), 32, 48, ExtendedColorType::Rgb8)
            .unwrap();
        let img = load(&bytes).unwrap();
        let independent: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            img.meta,
            ImageMeta {
                path: path(),
                width: 48,
                height: 32,
                sha256: independent,
                orientation: 6,
                format: "png".into(),
                bit_depth: 8,
                color: "rgb8".into(),
            }
        );
    }

    #[test]
    fn load_path_reads_the_file_and_probe_path_agrees() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("photo.png");
        let bytes = png(gradient(48, 32).as_raw(), 48, 32, ExtendedColorType::Rgb8);
        std::fs::write(&file, &bytes).unwrap();
        let limits = LoadLimits::default();
        let img = load_path(&file, &limits).unwrap();
        assert_eq!(img.meta.path, file);
        assert_eq!(img.meta.sha256, sha256_hex(&bytes));
        assert_eq!(probe_path(&file, &limits).unwrap(), img.meta);
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("absent.jpg");
        let e = load_path(&file, &LoadLimits::default()).unwrap_err();
        assert!(matches!(e, LoadError::Io { .. }), "{e:?}");
        assert!(e.to_string().contains("absent.jpg"), "{e}");
        assert_eq!(e.path(), file);
    }

    #[test]
    fn directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_path(dir.path(), &LoadLimits::default()).unwrap_err();
        assert!(matches!(e, LoadError::Io { .. }), "{e:?}");
    }

    #[test]
    fn meta_round_trips_through_serde() {
        let img = load(&png(gradient(4, 4).as_raw(), 4, 4, ExtendedColorType::Rgb8)).unwrap();
        let json = serde_json::to_string(&img.meta).unwrap();
        assert_eq!(serde_json::from_str::<ImageMeta>(&json).unwrap(), img.meta);
    }

    // ---------------------------------------------------------------- transfer functions

    #[test]
    fn srgb_transfer_round_trips_every_8_bit_code() {
        for k in 0..=255u8 {
            let lin = srgb_to_linear(f32::from(k) / 255.0);
            assert_eq!(linear_to_srgb_u8(lin), k);
            assert_eq!(linear_to_srgb_u8_fast(lin), k);
        }
    }

    #[test]
    fn fast_linear_to_srgb_u8_agrees_with_the_exact_one_except_at_ties() {
        for i in 0..=1_000_000u32 {
            let v = i as f32 / 1_000_000.0;
            let (exact, fast) = (linear_to_srgb_u8(v), linear_to_srgb_u8_fast(v));
            if exact != fast {
                let s = linear_to_srgb_f64(f64::from(v)) * 255.0;
                assert!(
                    (s - s.floor() - 0.5).abs() < 1e-4,
                    "v = {v}: {exact} vs {fast}"
                );
            }
        }
    }

    #[test]
    fn transfer_functions_clamp_and_map_nan_to_zero() {
        for f in [linear_to_srgb_u8, linear_to_srgb_u8_fast] {
            assert_eq!(f(-1.0), 0);
            assert_eq!(f(2.0), 255);
            assert_eq!(f(f32::NAN), 0);
            assert_eq!(f(f32::INFINITY), 255);
        }
        assert_eq!(srgb_to_linear(f32::NAN), 0.0);
        assert_eq!(srgb_to_linear(1.5), 1.0);
        assert!((linear_to_srgb(srgb_to_linear(0.3)) - 0.3).abs() < 1e-6);
    }
}
