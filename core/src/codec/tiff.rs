//! TIFF through libtiff (the reference library, libtiff licence: BSD-like;
//! the system's, `libtiff-dev`): every layout scanners and cameras write --
//! YCbCr with subsampled chroma, 1/2/4-bit gray and palettes, CMYK, JPEG
//! (new and old style), LZW, Deflate, PackBits, tiles and strips -- read
//! through `TIFFReadRGBAImageOriented`, which turns each into upright 8-bit
//! RGBA. The `tiff` crate the `image` crate uses refuses several of these;
//! what it reads it reads first (exactly, 16-bit and straight alpha
//! included), libtiff the rest.
//!
//! libtiff reads from the file's bytes in memory (client procedures), with
//! its largest single allocation capped near the image's size and its
//! messages kept off stderr. The hand-written bindings below are the few
//! functions used, as `tiffio.h` (libtiff 4.5) declares them: the one
//! module of the codecs that calls C itself, hence its `unsafe`.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void};

use crate::error::{CoreError, Result};
use crate::limits::Limits;
use crate::pixel::{ImageBuf, ImageInfo, PixelFormat};

#[allow(non_camel_case_types)]
type thandle_t = *mut c_void;
#[allow(non_camel_case_types)]
type tmsize_t = isize;
#[allow(non_camel_case_types)]
type toff_t = u64;

#[repr(C)]
struct Tiff {
    _private: [u8; 0],
}
#[repr(C)]
struct OpenOptions {
    _private: [u8; 0],
}

/// `TIFFErrorHandlerExtR`; the `va_list` is passed as a pointer on the
/// supported targets and never read.
type Handler =
    extern "C" fn(*mut Tiff, *mut c_void, *const c_char, *const c_char, *mut c_void) -> c_int;

#[link(name = "tiff")]
unsafe extern "C" {
    fn TIFFOpenOptionsAlloc() -> *mut OpenOptions;
    fn TIFFOpenOptionsFree(o: *mut OpenOptions);
    fn TIFFOpenOptionsSetMaxSingleMemAlloc(o: *mut OpenOptions, max: tmsize_t);
    fn TIFFOpenOptionsSetErrorHandlerExtR(o: *mut OpenOptions, h: Handler, data: *mut c_void);
    fn TIFFOpenOptionsSetWarningHandlerExtR(o: *mut OpenOptions, h: Handler, data: *mut c_void);
    #[allow(clippy::too_many_arguments)]
    fn TIFFClientOpenExt(
        name: *const c_char,
        mode: *const c_char,
        handle: thandle_t,
        read: extern "C" fn(thandle_t, *mut c_void, tmsize_t) -> tmsize_t,
        write: extern "C" fn(thandle_t, *mut c_void, tmsize_t) -> tmsize_t,
        seek: extern "C" fn(thandle_t, toff_t, c_int) -> toff_t,
        close: extern "C" fn(thandle_t) -> c_int,
        size: extern "C" fn(thandle_t) -> toff_t,
        map: extern "C" fn(thandle_t, *mut *mut c_void, *mut toff_t) -> c_int,
        unmap: extern "C" fn(thandle_t, *mut c_void, toff_t),
        options: *mut OpenOptions,
    ) -> *mut Tiff;
    fn TIFFClose(t: *mut Tiff);
    fn TIFFGetField(t: *mut Tiff, tag: u32, ...) -> c_int;
    fn TIFFReadRGBAImageOriented(
        t: *mut Tiff,
        w: u32,
        h: u32,
        raster: *mut u32,
        orientation: c_int,
        stop_on_error: c_int,
    ) -> c_int;
}

const TAG_IMAGEWIDTH: u32 = 256;
const TAG_IMAGELENGTH: u32 = 257;
const TAG_SAMPLESPERPIXEL: u32 = 277;
const TAG_PHOTOMETRIC: u32 = 262;
const TAG_EXTRASAMPLES: u32 = 338;
const TAG_ICCPROFILE: u32 = 34675;
const TAG_ORIENTATION: u32 = 274;

/// The file being read and where.
struct Source<'a> {
    data: &'a [u8],
    pos: u64,
    /// Whether libtiff reported an error.
    failed: bool,
}

extern "C" fn read(h: thandle_t, buf: *mut c_void, n: tmsize_t) -> tmsize_t {
    // SAFETY: `h` is the `Source` `decode` passed, alive for the handle's
    // life; `buf` has room for `n` bytes (libtiff's contract).
    let s = unsafe { &mut *(h as *mut Source) };
    let start = s.pos.min(s.data.len() as u64) as usize;
    let k = (n.max(0) as usize).min(s.data.len() - start);
    unsafe { std::ptr::copy_nonoverlapping(s.data.as_ptr().add(start), buf as *mut u8, k) };
    s.pos = (start + k) as u64;
    k as tmsize_t
}

extern "C" fn write(_: thandle_t, _: *mut c_void, _: tmsize_t) -> tmsize_t {
    -1
}

extern "C" fn seek(h: thandle_t, off: toff_t, whence: c_int) -> toff_t {
    // SAFETY: as in `read`.
    let s = unsafe { &mut *(h as *mut Source) };
    let base = match whence {
        0 => 0,
        1 => s.pos,
        2 => s.data.len() as u64,
        _ => return u64::MAX,
    };
    // Offsets are unsigned; a "negative" one wraps, as libtiff expects.
    s.pos = base.wrapping_add(off);
    s.pos
}

extern "C" fn close(_: thandle_t) -> c_int {
    0
}

extern "C" fn size(h: thandle_t) -> toff_t {
    // SAFETY: as in `read`.
    let s = unsafe { &*(h as *mut Source) };
    s.data.len() as u64
}

extern "C" fn map(_: thandle_t, _: *mut *mut c_void, _: *mut toff_t) -> c_int {
    0
}

extern "C" fn unmap(_: thandle_t, _: *mut c_void, _: toff_t) {}

extern "C" fn on_error(
    _: *mut Tiff,
    data: *mut c_void,
    _: *const c_char,
    _: *const c_char,
    _: *mut c_void,
) -> c_int {
    // SAFETY: `data` is the `Source` `decode` registered.
    unsafe { (*(data as *mut Source)).failed = true };
    1
}

extern "C" fn on_warning(
    _: *mut Tiff,
    _: *mut c_void,
    _: *const c_char,
    _: *const c_char,
    _: *mut c_void,
) -> c_int {
    1
}

/// An open libtiff handle, closed on drop.
struct Handle(*mut Tiff);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: opened by TIFFClientOpenExt, closed once.
        unsafe { TIFFClose(self.0) }
    }
}

impl Handle {
    fn u32_field(&self, tag: u32) -> Option<u32> {
        let mut v: u32 = 0;
        // SAFETY: these tags' values are one uint32_t.
        (unsafe { TIFFGetField(self.0, tag, &mut v as *mut u32) } == 1).then_some(v)
    }
    fn u16_field(&self, tag: u32) -> Option<u16> {
        let mut v: u16 = 0;
        // SAFETY: these tags' values are one uint16_t.
        (unsafe { TIFFGetField(self.0, tag, &mut v as *mut u16) } == 1).then_some(v)
    }
    /// A field given as a count and a pointer into libtiff's memory.
    fn bytes_field<T: Copy>(&self, tag: u32, count_u32: bool) -> Option<Vec<T>> {
        let mut ptr: *const T = std::ptr::null();
        let n = if count_u32 {
            let mut n: u32 = 0;
            // SAFETY: ICCPROFILE takes (uint32_t*, void**).
            let ok = unsafe { TIFFGetField(self.0, tag, &mut n as *mut u32, &mut ptr) };
            (ok == 1).then_some(n as usize)?
        } else {
            let mut n: u16 = 0;
            // SAFETY: EXTRASAMPLES takes (uint16_t*, uint16_t**).
            let ok = unsafe { TIFFGetField(self.0, tag, &mut n as *mut u16, &mut ptr) };
            (ok == 1).then_some(usize::from(n))?
        };
        if ptr.is_null() {
            return None;
        }
        // SAFETY: libtiff's array of `n` values, valid while the handle is.
        Some(unsafe { std::slice::from_raw_parts(ptr, n) }.to_vec())
    }
}

/// Opens the TIFF `src` reads, libtiff's allocations capped for `limits`.
fn open(src: &mut Source, limits: &Limits) -> Result<Handle> {
    let src_ptr = src as *mut Source as *mut c_void;
    // SAFETY: the options live until the handle is open; the handlers'
    // data is `src`, which the caller keeps alive longer than the handle.
    let handle = unsafe {
        let o = TIFFOpenOptionsAlloc();
        if o.is_null() {
            return Err(CoreError::OutOfMemory(0));
        }
        let cap = limits.max_pixels.saturating_mul(4).saturating_add(1 << 20);
        TIFFOpenOptionsSetMaxSingleMemAlloc(o, isize::try_from(cap).unwrap_or(isize::MAX));
        TIFFOpenOptionsSetErrorHandlerExtR(o, on_error, src_ptr);
        TIFFOpenOptionsSetWarningHandlerExtR(o, on_warning, std::ptr::null_mut());
        let t = TIFFClientOpenExt(
            c"memory".as_ptr(),
            c"rm".as_ptr(),
            src_ptr,
            read,
            write,
            seek,
            close,
            size,
            map,
            unmap,
            o,
        );
        TIFFOpenOptionsFree(o);
        t
    };
    if handle.is_null() {
        return Err(CoreError::Decode(
            "TIFF: libtiff cannot read the file's header".into(),
        ));
    }
    Ok(Handle(handle))
}

/// The TIFF orientation tag of `file` (1-8; 1 when absent or unreadable).
pub(crate) fn orientation_tag(file: &[u8]) -> u16 {
    let mut src = Source {
        data: file,
        pos: 0,
        failed: false,
    };
    open(&mut src, &Limits::DEFAULT)
        .ok()
        .and_then(|h| h.u16_field(TAG_ORIENTATION))
        .filter(|o| (1..=8).contains(o))
        .unwrap_or(1)
}

/// Decodes the first image of the TIFF `file`, refusing one over `limits`
/// before its pixels are read. Gray stays gray; alpha is kept; the pixels
/// are converted to sRGB from an embedded ICC profile unless `colour` says
/// to keep them.
pub(crate) fn decode(file: &[u8], limits: &Limits, colour: super::Colour) -> Result<ImageBuf> {
    let mut src = Source {
        data: file,
        pos: 0,
        failed: false,
    };
    let handle = open(&mut src, limits)?;
    let (Some(w), Some(h)) = (
        handle.u32_field(TAG_IMAGEWIDTH),
        handle.u32_field(TAG_IMAGELENGTH),
    ) else {
        return Err(CoreError::Decode("TIFF: no image size".into()));
    };
    limits.check(&ImageInfo::new(w, h, PixelFormat::Rgba8)?)?;
    let samples = handle.u16_field(TAG_SAMPLESPERPIXEL).unwrap_or(1);
    let photometric = handle.u16_field(TAG_PHOTOMETRIC).unwrap_or(1);
    let extra = handle
        .bytes_field::<u16>(TAG_EXTRASAMPLES, false)
        .unwrap_or_default();
    // Associated (1) or unassociated (2) alpha.
    let alpha = extra.iter().any(|&e| e == 1 || e == 2);
    // Min-is-white or min-is-black with one colour sample: gray.
    let gray = photometric <= 1 && samples.saturating_sub(extra.len() as u16) <= 1;
    let icc = handle.bytes_field::<u8>(TAG_ICCPROFILE, true);
    // Rows as stored: the orientation is applied with the other formats'
    // (see `orientation`), so libtiff is asked for the file's own.
    let stored = c_int::from(handle.u16_field(TAG_ORIENTATION).unwrap_or(1));
    let n = w as usize * h as usize;
    let mut raster = vec![0u32; n];
    // SAFETY: `raster` holds w x h values, as the call needs.
    let ok = unsafe { TIFFReadRGBAImageOriented(handle.0, w, h, raster.as_mut_ptr(), stored, 1) };
    drop(handle);
    if ok != 1 || src.failed {
        return Err(CoreError::Decode(
            "TIFF: libtiff cannot read the pixels (damaged or of an unsupported kind)".into(),
        ));
    }
    // Each value is ABGR packed: R in the low byte.
    let format = match (gray, alpha) {
        (_, true) => PixelFormat::Rgba8,
        (true, false) => PixelFormat::Gray8,
        (false, false) => PixelFormat::Rgb8,
    };
    let c = format.channels();
    let mut data = Vec::with_capacity(n * c);
    for v in raster {
        let mut px = v.to_le_bytes();
        if alpha {
            // libtiff gives alpha premultiplied; ours is straight.
            let a = u32::from(px[3]);
            for v in &mut px[..3] {
                *v = (u32::from(*v) * 255 + a / 2)
                    .checked_div(a)
                    .map_or(0, |x| x.min(255) as u8);
            }
        }
        data.extend_from_slice(&px[..c]);
    }
    let mut img = ImageBuf::new(ImageInfo::new(w, h, format)?, data)?;
    if let Some(icc) = icc.filter(|_| colour == super::Colour::Srgb) {
        let _ = super::colour::to_srgb(&mut img, &icc);
    }
    Ok(img)
}

/// Whether `file` starts as a TIFF does.
pub(crate) fn is_tiff(file: &[u8]) -> bool {
    file.starts_with(b"II*\0") || file.starts_with(b"MM\0*")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Colour;

    /// A one-strip, uncompressed little-endian TIFF of `pixels` with the
    /// given tags (SHORT values, or LONG where noted), as scanners write.
    fn tiff(w: u32, h: u32, tags: &[(u16, Vec<u16>)], pixels: &[u8]) -> Vec<u8> {
        let mut all: Vec<(u16, u16, Vec<u32>)> = vec![
            (256, 4, vec![w]),
            (257, 4, vec![h]),
            (259, 3, vec![1]),
            (273, 4, vec![0]),
            (278, 4, vec![h]),
            (279, 4, vec![pixels.len() as u32]),
        ];
        for (tag, v) in tags {
            all.push((*tag, 3, v.iter().map(|&x| u32::from(x)).collect()));
        }
        all.sort_by_key(|t| t.0);
        let ifd_len = 2 + 12 * all.len() + 4;
        let mut extra = Vec::new();
        let extra_at = 8 + ifd_len;
        // Values that do not fit in four bytes go after the directory;
        // the pixels after them.
        let sizes: Vec<usize> = all
            .iter()
            .map(|t| t.2.len() * if t.1 == 3 { 2 } else { 4 })
            .collect();
        let extra_len: usize = sizes.iter().filter(|&&n| n > 4).sum();
        let pixels_at = (extra_at + extra_len) as u32;
        let mut out = b"II*\0".to_vec();
        out.extend(8u32.to_le_bytes());
        out.extend((all.len() as u16).to_le_bytes());
        for ((tag, typ, values), n) in all.iter().zip(&sizes) {
            let values: Vec<u32> = if *tag == 273 {
                vec![pixels_at]
            } else {
                values.clone()
            };
            let mut bytes = Vec::new();
            for v in &values {
                if *typ == 3 {
                    bytes.extend((*v as u16).to_le_bytes());
                } else {
                    bytes.extend(v.to_le_bytes());
                }
            }
            out.extend(tag.to_le_bytes());
            out.extend(typ.to_le_bytes());
            out.extend((values.len() as u32).to_le_bytes());
            if *n <= 4 {
                bytes.resize(4, 0);
                out.extend(bytes);
            } else {
                out.extend(((extra_at + extra.len()) as u32).to_le_bytes());
                extra.extend(bytes);
            }
        }
        out.extend(0u32.to_le_bytes());
        out.extend(extra);
        out.extend_from_slice(pixels);
        out
    }

    /// The file through libtiff, checked to be what the codec's decoding
    /// (the `tiff` crate first) gives too.
    fn decode_ok(file: &[u8]) -> ImageBuf {
        let img = decode(file, &Limits::DEFAULT, Colour::Srgb).unwrap();
        let via = crate::codec::decode(std::io::Cursor::new(file), &Limits::DEFAULT).unwrap();
        assert_eq!(via, img);
        img
    }

    #[test]
    fn two_and_four_bit_gray_and_palettes_come_out_as_their_levels() {
        // 4-bit gray, 5x3 (odd: rows pad to a byte).
        let (w, h) = (5u32, 3u32);
        let levels: Vec<u8> = (0..w * h).map(|i| (i * 7 % 16) as u8).collect();
        let mut packed = Vec::new();
        for row in levels.chunks(w as usize) {
            for pair in row.chunks(2) {
                packed.push(pair[0] << 4 | pair.get(1).copied().unwrap_or(0));
            }
        }
        let gray4 = tiff(
            w,
            h,
            &[(258, vec![4]), (262, vec![1]), (277, vec![1])],
            &packed,
        );
        let img = decode_ok(&gray4);
        assert_eq!(img.info().format(), PixelFormat::Gray8);
        let want: Vec<u8> = levels.iter().map(|v| v * 17).collect();
        assert_eq!(img.data(), &want[..]);
        // 2-bit gray, min-is-white.
        let levels: Vec<u8> = (0..w * h).map(|i| (i % 4) as u8).collect();
        let mut packed = Vec::new();
        for row in levels.chunks(w as usize) {
            let mut bytes = vec![0u8; row.len().div_ceil(4)];
            for (i, v) in row.iter().enumerate() {
                bytes[i / 4] |= v << (6 - 2 * (i % 4));
            }
            packed.extend(bytes);
        }
        let gray2 = tiff(
            w,
            h,
            &[(258, vec![2]), (262, vec![0]), (277, vec![1])],
            &packed,
        );
        let want: Vec<u8> = levels.iter().map(|v| 255 - v * 85).collect();
        assert_eq!(decode_ok(&gray2).data(), &want[..]);
        // A 4-bit palette: 16 colours of 16-bit R, G, B.
        let mut map = Vec::new();
        for c in 0..3u16 {
            map.extend((0..16u16).map(|i| (i * 4096 + c * 1000) & 0xFF00));
        }
        let idx: Vec<u8> = (0..w * h).map(|i| (i * 5 % 16) as u8).collect();
        let mut packed = Vec::new();
        for row in idx.chunks(w as usize) {
            for pair in row.chunks(2) {
                packed.push(pair[0] << 4 | pair.get(1).copied().unwrap_or(0));
            }
        }
        let pal = tiff(
            w,
            h,
            &[
                (258, vec![4]),
                (262, vec![3]),
                (277, vec![1]),
                (320, map.clone()),
            ],
            &packed,
        );
        let img = decode_ok(&pal);
        assert_eq!(img.info().format(), PixelFormat::Rgb8);
        for (px, &i) in img.data().chunks(3).zip(&idx) {
            let want: Vec<u8> = (0..3)
                .map(|c| (map[c * 16 + usize::from(i)] >> 8) as u8)
                .collect();
            assert_eq!(px, &want[..]);
        }
    }

    #[test]
    fn ycbcr_with_subsampled_chroma_is_upsampled_to_rgb() {
        // 4x4 in 2x2 blocks: four Y, then Cb and Cr per block.
        let (w, h) = (4u32, 4u32);
        let blocks = [
            (60u8, 100u8, 160u8),
            (200, 128, 128),
            (128, 200, 90),
            (90, 80, 220),
        ];
        let mut data = Vec::new();
        for &(y, cb, cr) in &blocks {
            data.extend([y, y, y, y, cb, cr]);
        }
        let file = tiff(
            w,
            h,
            &[
                (258, vec![8, 8, 8]),
                (262, vec![6]),
                (277, vec![3]),
                (530, vec![2, 2]),
            ],
            &data,
        );
        let img = decode_ok(&file);
        assert_eq!(img.info().format(), PixelFormat::Rgb8);
        for (b, &(y, cb, cr)) in blocks.iter().enumerate() {
            // JFIF's conversion (TIFF's default coefficients).
            let (y, cb, cr) = (f64::from(y), f64::from(cb) - 128.0, f64::from(cr) - 128.0);
            let want = [
                y + 1.402 * cr,
                y - 0.344136 * cb - 0.714136 * cr,
                y + 1.772 * cb,
            ]
            .map(|v| v.round().clamp(0.0, 255.0) as u8);
            let (bx, by) = ((b % 2) * 2, (b / 2) * 2);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let at = ((by + dy) * w as usize + bx + dx) * 3;
                let got = &img.data()[at..at + 3];
                for c in 0..3 {
                    assert!(
                        got[c].abs_diff(want[c]) <= 2,
                        "block {b}: {got:?} vs {want:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn rows_come_as_stored_the_orientation_is_read_and_limits_hold() {
        let (w, h) = (3u32, 2u32);
        let data: Vec<u8> = (0..6).collect();
        let file = tiff(
            w,
            h,
            &[
                (258, vec![8]),
                (262, vec![1]),
                (277, vec![1]),
                (274, vec![3]),
            ],
            &data,
        );
        assert_eq!(decode_ok(&file).data(), &data[..]);
        assert_eq!(orientation_tag(&file), 3);
        let o = crate::codec::orientation(std::io::Cursor::new(&file)).unwrap();
        assert_eq!(o.rotation, crate::rotate::Rotation::Ccw180);
        let tight = Limits {
            max_pixels: 5,
            max_dimension: 100,
        };
        let e = decode(&file, &tight, Colour::Srgb).unwrap_err();
        assert!(matches!(e, CoreError::LimitExceeded(_)), "{e}");
        // Cut off: named, never a panic.
        for cut in [4, 8, 20, file.len() - 3] {
            assert!(decode(&file[..cut], &Limits::DEFAULT, Colour::Srgb).is_err());
        }
    }
}
