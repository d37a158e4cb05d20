//! Rotation kernels per CPU level. Each computes a band of output rows
//! `first..first + dst.len() / out_row_bytes` exactly as
//! [`crate::rotate_naive`] does.
//!
//! - Quarter turns: square blocks transposed in registers (gray 16x16 bytes:
//!   AVX2 with rows i and i+8 in the two lanes, else SSE2; RGB/RGBA 8x8
//!   pixels with AVX2, 4x4 with SSSE3, RGB widened to 32 bits per pixel by
//!   a byte shuffle), visited in an order measured for the caches: sub-bands
//!   about one cache line of input wide, walked right to left over the
//!   input, tiles of 128 input rows, the next tile prefetched (see
//!   `walk_blocks`). Scalar pixel copies in cache-sized tiles otherwise.
//! - Half turns of RGB: with AVX-512 VBMI, 16-pixel blocks reversed by one
//!   byte permute of one load (plain stores), or, where non-temporal stores
//!   pay (images past the cache, see `vbmi_half_turn_streams`), 64-byte
//!   output blocks gathered from two loads, stored aligned and
//!   non-temporally; else 16-pixel blocks reversed with SSSE3 byte
//!   shuffles. RGBA half turns with AVX-512: 16 pixels by one dword permute,
//!   streamed for images past 16 MB. Gray half turns reverse 32-byte blocks
//!   with AVX2; RGBA below AVX-512 and gray below AVX2 are loops the
//!   compiler vectorises on its own.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;

use crate::pixel::ImageInfo;
use crate::rotate::Rotation;
use crate::simd::Cpu;
use crate::simd::store::as_uninit;

/// Input rows a scalar quarter-turn tile spans. With 64 output rows per band
/// a tile touches 16 input and 64 output pages at most, within the L1 TLB;
/// measured best of 8/16/32 x 16..128 on 4096x3072 RGB.
const TILE_ROWS: usize = 16;

/// Computes the output rows of `dst` (see the module docs); `nontemporal`
/// lets a kernel that can write with non-temporal stores do so (the caller
/// fences before another thread reads `dst`).
pub(crate) fn rows_with(
    cpu: Cpu,
    src: &[u8],
    info: ImageInfo,
    rotation: Rotation,
    first: usize,
    dst: &mut [u8],
    nontemporal: bool,
) {
    let cpu = cpu.clamp();
    let c = info.channels();
    match rotation {
        Rotation::None => {
            let start = first * info.row_bytes();
            dst.copy_from_slice(&src[start..start + dst.len()]);
        }
        // SAFETY: the half turns only store bytes.
        Rotation::Ccw180 => half_turn_with(
            cpu,
            src,
            info,
            first,
            unsafe { as_uninit(dst) },
            nontemporal,
        ),
        Rotation::Ccw90 | Rotation::Ccw270 => {
            let ccw90 = rotation == Rotation::Ccw90;
            match c {
                1 => {
                    #[cfg(target_arch = "x86_64")]
                    if cpu >= Cpu::Avx2 {
                        // SAFETY: clamp() returned Avx2 or wider.
                        return unsafe {
                            x86::quarter_turn_gray_avx2(src, info, ccw90, first, dst)
                        };
                    }
                    #[cfg(target_arch = "x86_64")]
                    if cpu >= Cpu::Ssse3 {
                        // SAFETY: SSE2 is part of every x86-64 CPU.
                        return unsafe {
                            x86::quarter_turn_gray_sse2(src, info, ccw90, first, dst)
                        };
                    }
                    quarter_turn::<1>(src, info, ccw90, first, dst)
                }
                3 => quarter_turn_px::<3>(cpu, src, info, ccw90, first, dst),
                _ => quarter_turn_px::<4>(cpu, src, info, ccw90, first, dst),
            }
        }
    }
}

/// Output rows `first..` of a half turn of `src` (geometry `info`) into
/// `dst` (whole rows), which need not be initialised: every byte is
/// written. `cpu` is clamped; `nontemporal` as for [`rows_with`].
pub(crate) fn half_turn_with(
    cpu: Cpu,
    src: &[u8],
    info: ImageInfo,
    first: usize,
    dst: &mut [MaybeUninit<u8>],
    nontemporal: bool,
) {
    let cpu = cpu.clamp();
    let c = info.channels();
    match c {
        1 => {
            #[cfg(target_arch = "x86_64")]
            if cpu.vbmi() && info.width() >= 64 {
                // SAFETY: the CPU has AVX-512 F, BW (clamp() returned
                // Avx512) and VBMI (just checked).
                return unsafe { x86::half_turn_gray_vbmi(src, info, first, dst) };
            }
            #[cfg(target_arch = "x86_64")]
            if cpu >= Cpu::Avx2 {
                // SAFETY: clamp() returned Avx2 or wider.
                return unsafe { x86::half_turn_gray_avx2(src, info, first, dst) };
            }
            half_turn::<1>(src, info, first, dst)
        }
        3 => {
            #[cfg(target_arch = "x86_64")]
            if cpu.vbmi() {
                // SAFETY: the CPU has AVX-512 F, BW (clamp() returned
                // Avx512) and VBMI (just checked).
                return unsafe {
                    if nontemporal && vbmi_half_turn_streams(info.byte_len()) {
                        x86::half_turn_rgb_vbmi_streaming(src, info, first, dst)
                    } else {
                        x86::half_turn_rgb_vbmi(src, info, first, dst)
                    }
                };
            }
            #[cfg(target_arch = "x86_64")]
            if cpu >= Cpu::Ssse3 {
                // Non-temporal stores only for images past 1.5x the
                // last-level cache of the machines measured (32 MB):
                // 1.2x at 6000x4000 (72 MB), par at 4000x3000 (36 MB),
                // 1.35x slower at 3001x2003 (18 MB, mostly cached).
                let nt = nontemporal && info.byte_len() >= 48 << 20;
                // SAFETY: clamp() returned Ssse3 or wider, so the CPU has SSSE3.
                return unsafe { x86::half_turn_rgb_ssse3(src, info, first, dst, nt, false) };
            }
            half_turn::<3>(src, info, first, dst)
        }
        // RGBA: with AVX-512, its kernel (for the non-temporal stores
        // of images past 16 MB; with plain stores it measured the same
        // as the compiled loop); else the compiled loop (an SSSE3
        // kernel, plain or with non-temporal stores, measured 1.0-1.9x
        // slower on 24-48 MB images, and an AVX2 dword permute no
        // faster, on an AVX2 host).
        _ => {
            #[cfg(target_arch = "x86_64")]
            if cpu >= Cpu::Avx512 {
                // SAFETY: clamp() returned Avx512, so the CPU has AVX-512 F.
                return unsafe { x86::half_turn_rgba_512(src, info, first, dst, nontemporal) };
            }
            half_turn::<4>(src, info, first, dst)
        }
    }
}

/// Mirrors each row of `src` (`row` its geometry) into the same row of
/// `dst` (which need not be initialised) in one call, the last row first:
/// gray with AVX-512 VBMI or AVX2, RGB with SSSE3 where there is no VBMI.
/// False, doing nothing, for the rest (the caller runs them row by row):
/// a call per row through the dispatch was a third of a 640x480 gray
/// `flip=h` on an AVX2 host.
pub(crate) fn mirror_rows_with(
    cpu: Cpu,
    src: &[u8],
    row: ImageInfo,
    dst: &mut [MaybeUninit<u8>],
    nontemporal: bool,
) -> bool {
    let (w, cpu) = (row.row_bytes(), cpu.clamp());
    #[cfg(target_arch = "x86_64")]
    match row.channels() {
        1 if cpu.vbmi() && w >= 64 => {
            // SAFETY: the CPU has AVX-512 F, BW and VBMI (`vbmi`).
            unsafe { x86::mirror_gray_vbmi(src, w, dst) };
            return true;
        }
        1 if cpu >= Cpu::Avx2 && w >= 32 => {
            // SAFETY: clamp() returned Avx2 or wider.
            unsafe { x86::mirror_gray_avx2(src, w, dst) };
            return true;
        }
        3 if !cpu.vbmi() && cpu >= Cpu::Ssse3 => {
            let rows = u32::try_from(src.len() / w).expect("rows of an image");
            let all = ImageInfo::new(row.width(), rows, row.format()).expect("the image's rows");
            // As `half_turn_with` decides for the half turn.
            let nt = nontemporal && all.byte_len() >= 48 << 20;
            // SAFETY: clamp() returned Ssse3 or wider, so the CPU has SSSE3.
            unsafe { x86::half_turn_rgb_ssse3(src, all, 0, dst, nt, true) };
            return true;
        }
        _ => {}
    }
    let _ = (cpu, src, w, dst, nontemporal);
    false
}

/// Whether the VBMI half turn of an RGB image of `bytes` bytes writes
/// non-temporally (`half_turn_rgb_vbmi_streaming`) rather than with plain
/// stores (`half_turn_rgb_vbmi`). Measured on a 32 MB-cache AVX-512 host,
/// interleaved, ms plain / non-temporal: one thread, 18 MB 0.60 / 0.79,
/// 72 MB 3.28 / 3.38, 432 MB 21.7 / 18.2; two threads, 18 MB 0.37 / 0.44,
/// 36 MB 1.10 / 1.03, 72 MB 2.79 / 2.60, 432 MB 19.2 / 15.1. One thread
/// cannot fill memory's bandwidth, so sparing the read of each output line
/// pays only far past the cache; two threads can, and it pays from about
/// the cache's size.
fn vbmi_half_turn_streams(bytes: usize) -> bool {
    bytes >= 128 << 20 || (bytes >= 32 << 20 && rayon::current_num_threads() > 1)
}

/// A quarter turn of RGB (`C` = 3) or RGBA (`C` = 4) rows on the widest
/// path `cpu` (already clamped) allows.
fn quarter_turn_px<const C: usize>(
    cpu: Cpu,
    src: &[u8],
    info: ImageInfo,
    ccw90: bool,
    first: usize,
    dst: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if cpu >= Cpu::Avx2 {
        // SAFETY: clamp() returned Avx2 or wider.
        return unsafe { x86::quarter_turn_px_avx2::<C>(src, info, ccw90, first, dst) };
    }
    #[cfg(target_arch = "x86_64")]
    if cpu >= Cpu::Ssse3 {
        // SAFETY: clamp() returned Ssse3 or wider.
        return unsafe { x86::quarter_turn_px_ssse3::<C>(src, info, ccw90, first, dst) };
    }
    let _ = cpu;
    quarter_turn::<C>(src, info, ccw90, first, dst)
}

/// Output rows per parallel band for `rotation` of `info`. Quarter turns:
/// 256 rows, several sub-bands each (a band walks its sub-bands in the
/// order the kernels want; see `walk_blocks`), and still a dozen bands
/// for two threads on a 3000-pixel-wide image (512 measured no better;
/// 64, with bands taken in rayon's order, 1.1-1.5x slower for 270).
pub(crate) fn band_rows(info: ImageInfo, rotation: Rotation) -> usize {
    match rotation {
        Rotation::Ccw90 | Rotation::Ccw270 => 256,
        _ => (128 * 1024 / info.row_bytes()).clamp(1, 256),
    }
}

fn half_turn<const C: usize>(
    src: &[u8],
    info: ImageInfo,
    first: usize,
    dst: &mut [MaybeUninit<u8>],
) {
    let (rb, h) = (info.row_bytes(), info.height() as usize);
    for (i, out) in dst.chunks_exact_mut(rb).enumerate() {
        let sr = h - 1 - (first + i);
        let input = &src[sr * rb..(sr + 1) * rb];
        for (o, s) in out.chunks_exact_mut(C).zip(input.chunks_exact(C).rev()) {
            let o: &mut [MaybeUninit<u8>; C] = o.try_into().expect("C bytes");
            let s: [u8; C] = s.try_into().expect("C bytes");
            *o = s.map(MaybeUninit::new);
        }
    }
}

/// Output pixels `pixels` of a row reversed by pixel (`C` bytes each): out
/// pixel `p` is input pixel `w - 1 - p`. The vector kernels' heads and
/// tails.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn mirror_pixels<const C: usize>(
    input: &[u8],
    out: &mut [MaybeUninit<u8>],
    pixels: std::ops::Range<usize>,
) {
    let w = input.len() / C;
    for p in pixels {
        let q = w - 1 - p;
        let s: [u8; C] = input[C * q..C * q + C].try_into().expect("C bytes");
        let o: &mut [MaybeUninit<u8>; C] =
            (&mut out[C * p..C * p + C]).try_into().expect("C bytes");
        *o = s.map(MaybeUninit::new);
    }
}

/// Output row `r` of a quarter turn is input column `w-1-r` read top-down
/// (90) or column `r` read bottom-up (270). Tiles: for each block of input
/// rows, every output row of the band, so a tile's input lines stay in L1.
fn quarter_turn<const C: usize>(
    src: &[u8],
    info: ImageInfo,
    ccw90: bool,
    first: usize,
    dst: &mut [u8],
) {
    quarter_turn_cols::<C>(src, info, ccw90, first, dst, 0, info.height() as usize)
}

/// [`quarter_turn`] for output columns `c0..c1` only.
fn quarter_turn_cols<const C: usize>(
    src: &[u8],
    info: ImageInfo,
    ccw90: bool,
    first: usize,
    dst: &mut [u8],
    c0: usize,
    c1: usize,
) {
    let (w, h) = (info.width() as usize, info.height() as usize);
    let (src_row, out_row) = (w * C, h * C);
    let rows = dst.len() / out_row;
    for t0 in (c0..c1).step_by(TILE_ROWS) {
        let t1 = (t0 + TILE_ROWS).min(c1);
        for i in 0..rows {
            let r = first + i;
            let sc = if ccw90 { w - 1 - r } else { r };
            let out = &mut dst[i * out_row..(i + 1) * out_row];
            if C == 3 && t1 < h && (ccw90 || t0 > 0) {
                // Move RGB pixels as 4-byte words: each store's fourth byte
                // lands on the next column, which this tile or a later one
                // (tiles go left to right) overwrites. Tiles holding the
                // row's last column (t1 == h), or reading the image's last
                // pixel (whose fourth byte is past `src`: column h-1 for 90,
                // column 0 for 270), take the 3-byte path below.
                let step = if ccw90 {
                    src_row as isize
                } else {
                    -(src_row as isize)
                };
                let mut s = (if ccw90 { t0 } else { h - 1 - t0 }) * src_row + sc * 3;
                for col in t0..t1 {
                    let word: [u8; 4] = src[s..s + 4].try_into().expect("4 bytes");
                    out[col * 3..col * 3 + 4].copy_from_slice(&word);
                    s = s.wrapping_add_signed(step);
                }
                continue;
            }
            for col in t0..t1 {
                let sr = if ccw90 { col } else { h - 1 - col };
                let s = sr * src_row + sc * C;
                let o: &mut [u8; C] = (&mut out[col * C..col * C + C])
                    .try_into()
                    .expect("C bytes");
                *o = src[s..s + C].try_into().expect("C bytes");
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    use super::quarter_turn_cols;
    use crate::pixel::ImageInfo;

    /// Byte `j` of a reversed 16-pixel RGB block comes from byte
    /// `(15 - j/3) * 3 + j%3` of the block; `MASKS[r][s]` picks, for output
    /// register `r`, the bytes that come from input register `s` (0x80 =
    /// zero, so the three shuffles can be OR-ed).
    const MASKS: [[[u8; 16]; 3]; 3] = {
        let mut m = [[[0x80u8; 16]; 3]; 3];
        let mut j = 0;
        while j < 48 {
            let from = (15 - j / 3) * 3 + j % 3;
            m[j / 16][from / 16][j % 16] = (from % 16) as u8;
            j += 1;
        }
        m
    };

    /// Half turn of RGB rows by 16-pixel blocks, each 16 output bytes three
    /// SSSE3 byte shuffles ([`MASKS`]) of the block's 48 input bytes. With
    /// `nontemporal` the blocks start at the first pixel whose output byte
    /// is 16-byte aligned and are stored non-temporally (an image larger
    /// than the cache is bound by memory traffic, and these stores skip
    /// reading each output line first); the few pixels before and after the
    /// blocks are copied one by one. With `in_place` each row is mirrored
    /// into the same row of `dst` (a left-right flip, `src` as long as
    /// `dst`), the last row first, instead.
    ///
    /// # Safety
    /// The CPU must support SSSE3.
    #[target_feature(enable = "ssse3")]
    pub(super) unsafe fn half_turn_rgb_ssse3(
        src: &[u8],
        info: ImageInfo,
        first: usize,
        dst: &mut [MaybeUninit<u8>],
        nontemporal: bool,
        in_place: bool,
    ) {
        let (w, rb, h) = (
            info.width() as usize,
            info.row_bytes(),
            info.height() as usize,
        );
        // SAFETY: each mask is a 16-byte array.
        let masks = MASKS.map(|r| r.map(|m| unsafe { _mm_loadu_si128(m.as_ptr().cast()) }));
        let rows = dst.chunks_exact_mut(rb).enumerate();
        let rows: Box<dyn Iterator<Item = _>> = if in_place {
            Box::new(rows.rev())
        } else {
            Box::new(rows)
        };
        for (i, out) in rows {
            let sr = if in_place { i } else { h - 1 - (first + i) };
            let input = &src[sr * rb..(sr + 1) * rb];
            // The first block's pixel p0: with non-temporal stores, its
            // output byte 16-byte aligned (3 * p0 = -address mod 16, and
            // 3 * 11 = 1 mod 16).
            let p0 = if nontemporal {
                ((16 - out.as_ptr() as usize % 16) % 16 * 11 % 16).min(w)
            } else {
                0
            };
            let blocks = (w - p0) / 16;
            for k in 0..blocks {
                // Output pixels p..p+16 are input pixels w-16-p.. reversed.
                let p = p0 + 16 * k;
                let s = (w - 16 - p) * 3;
                let inp: &[u8; 48] = input[s..s + 48].try_into().expect("48 bytes");
                let o: &mut [MaybeUninit<u8>; 48] =
                    (&mut out[p * 3..p * 3 + 48]).try_into().expect("48 bytes");
                // SAFETY: `inp` and `o` are 48-byte arrays: three 16-byte
                // loads and stores stay inside them, and with `nontemporal`
                // the stores are 16-byte aligned (p0 above).
                unsafe {
                    let regs = [0, 16, 32].map(|off| _mm_loadu_si128(inp.as_ptr().add(off).cast()));
                    for (r, mr) in masks.iter().enumerate() {
                        let v = _mm_or_si128(
                            _mm_or_si128(
                                _mm_shuffle_epi8(regs[0], mr[0]),
                                _mm_shuffle_epi8(regs[1], mr[1]),
                            ),
                            _mm_shuffle_epi8(regs[2], mr[2]),
                        );
                        let d = o.as_mut_ptr().add(16 * r).cast();
                        if nontemporal {
                            _mm_stream_si128(d, v)
                        } else {
                            _mm_storeu_si128(d, v)
                        }
                    }
                }
            }
            // The pixels before and after the blocks: input pixels from
            // the other end of the row.
            super::mirror_pixels::<3>(input, out, 0..p0);
            super::mirror_pixels::<3>(input, out, p0 + blocks * 16..w);
        }
    }

    /// Half turn of gray rows at least 64 bytes wide with AVX-512 VBMI: each
    /// 64-byte output block is the input block at the mirrored place
    /// reversed by one byte permute; the row's last output block is the
    /// first input block reversed, overlapping the one before it, so no
    /// byte is copied alone.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW and VBMI, and rows must be at
    /// least 64 bytes wide.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) unsafe fn half_turn_gray_vbmi(
        src: &[u8],
        info: ImageInfo,
        first: usize,
        dst: &mut [MaybeUninit<u8>],
    ) {
        let (w, h) = (info.width() as usize, info.height() as usize);
        assert!(w >= 64, "rows of at least 64 bytes");
        for (i, out) in dst.chunks_exact_mut(w).enumerate() {
            let sr = h - 1 - (first + i);
            mirror_row_gray_vbmi(&src[sr * w..(sr + 1) * w], out);
        }
    }

    /// Each `w`-byte row of `src` mirrored into the same row of `dst`, the
    /// last row first (see `orient::mirror_rows_into_uninit`), in one call:
    /// a call per row through the dispatch was a sixteenth of a 3001x2003
    /// gray `flip=h`.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW and VBMI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) unsafe fn mirror_gray_vbmi(src: &[u8], w: usize, dst: &mut [MaybeUninit<u8>]) {
        assert!(w >= 64 && src.len() == dst.len() && src.len().is_multiple_of(w));
        for (s, d) in src.chunks_exact(w).zip(dst.chunks_exact_mut(w)).rev() {
            mirror_row_gray_vbmi(s, d);
        }
    }

    /// One gray row of at least 64 bytes mirrored into `out` (as long).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    fn mirror_row_gray_vbmi(input: &[u8], out: &mut [MaybeUninit<u8>]) {
        let w = input.len();
        assert!(w >= 64 && out.len() == w, "rows of at least 64 bytes");
        let index: [u8; 64] = std::array::from_fn(|j| (63 - j) as u8);
        // SAFETY: `index` is 64 bytes.
        let reverse = unsafe { _mm512_loadu_si512(index.as_ptr().cast()) };
        mirror_row_blocks::<64>(input, out, |inp, to| {
            // SAFETY: `inp` and `to` are 64-byte arrays.
            unsafe {
                let v = _mm512_permutexvar_epi8(reverse, _mm512_loadu_si512(inp.as_ptr().cast()));
                _mm512_storeu_si512(to.as_mut_ptr().cast(), v);
            }
        });
    }

    /// Walks a gray row of at least `B` bytes in `B`-byte blocks, `block`
    /// reversing one (input bytes `w - B - o..` into output bytes
    /// `o..o + B`): stores aligned from the first `B`-byte boundary of the
    /// output row on, the row's first block (when the row starts unaligned)
    /// and last overlapping them. The 512- and 256-bit mirrors' one walk;
    /// inlined into each, so `block` keeps its caller's target features.
    #[inline(always)]
    fn mirror_row_blocks<const B: usize>(
        input: &[u8],
        out: &mut [MaybeUninit<u8>],
        block: impl Fn(&[u8; B], &mut [MaybeUninit<u8>; B]),
    ) {
        let w = input.len();
        let head = out.as_ptr().align_offset(B).min(w - B);
        let mut at = |o: usize| {
            let inp: &[u8; B] = input[w - B - o..w - o].try_into().expect("B bytes");
            let to: &mut [MaybeUninit<u8>; B] = (&mut out[o..o + B]).try_into().expect("B bytes");
            block(inp, to);
        };
        if head > 0 {
            at(0);
        }
        let mut o = head;
        while o + B <= w {
            at(o);
            o += B;
        }
        if o < w {
            at(w - B);
        }
    }

    /// [`mirror_gray_vbmi`] with AVX2: 32-byte blocks, each an in-lane byte
    /// shuffle and a lane swap. A call per row through `half_turn_with`
    /// was a third of a 640x480 gray `flip=h` on an AVX2 host (0.59x
    /// OpenCV's speed).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn mirror_gray_avx2(src: &[u8], w: usize, dst: &mut [MaybeUninit<u8>]) {
        assert!(w >= 32 && src.len() == dst.len() && src.len().is_multiple_of(w));
        for (s, d) in src.chunks_exact(w).zip(dst.chunks_exact_mut(w)).rev() {
            mirror_row_gray_avx2(s, d);
        }
    }

    /// One gray row of at least 32 bytes mirrored into `out` (as long).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn mirror_row_gray_avx2(input: &[u8], out: &mut [MaybeUninit<u8>]) {
        let w = input.len();
        assert!(w >= 32 && out.len() == w, "rows of at least 32 bytes");
        let reverse = _mm256_setr_epi8(
            15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8, 7,
            6, 5, 4, 3, 2, 1, 0,
        );
        mirror_row_blocks::<32>(input, out, |inp, to| {
            // SAFETY: `inp` and `to` are 32-byte arrays.
            unsafe {
                let v = _mm256_loadu_si256(inp.as_ptr().cast());
                let v = _mm256_permute4x64_epi64::<0x4E>(_mm256_shuffle_epi8(v, reverse));
                _mm256_storeu_si256(to.as_mut_ptr().cast(), v);
            }
        });
    }

    /// Half turn of gray rows with AVX2: each 32-byte output block is the
    /// input block at the mirrored place reversed (an in-lane byte shuffle
    /// and a lane swap; the baseline x86-64 build has no byte shuffle); the
    /// bytes past the last whole block are copied one by one.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn half_turn_gray_avx2(
        src: &[u8],
        info: ImageInfo,
        first: usize,
        dst: &mut [MaybeUninit<u8>],
    ) {
        let (w, h) = (info.width() as usize, info.height() as usize);
        let reverse = _mm256_setr_epi8(
            15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8, 7,
            6, 5, 4, 3, 2, 1, 0,
        );
        for (i, out) in dst.chunks_exact_mut(w).enumerate() {
            let sr = h - 1 - (first + i);
            let input = &src[sr * w..(sr + 1) * w];
            let blocks = w / 32;
            for k in 0..blocks {
                // Output bytes 32k.. are input bytes w-32-32k.. reversed.
                let s = w - 32 - 32 * k;
                let inp: &[u8; 32] = input[s..s + 32].try_into().expect("32 bytes");
                let o: &mut [MaybeUninit<u8>; 32] = (&mut out[32 * k..32 * k + 32])
                    .try_into()
                    .expect("32 bytes");
                // SAFETY: `inp` and `o` are 32-byte arrays.
                unsafe {
                    let v = _mm256_loadu_si256(inp.as_ptr().cast());
                    let v = _mm256_permute4x64_epi64::<0x4E>(_mm256_shuffle_epi8(v, reverse));
                    _mm256_storeu_si256(o.as_mut_ptr().cast(), v);
                }
            }
            super::mirror_pixels::<1>(input, out, blocks * 32..w);
        }
    }

    /// For each phase `o % 3` of a 64-byte output block at `o` of a reversed
    /// RGB row: where output byte `j` is found in the 128 bytes of two loads,
    /// the first at the block's lowest input byte and the second ending at
    /// its highest (the block draws on 66 input bytes; see
    /// [`half_turn_rgb_vbmi`]). Lanes 64.. of an index pick the second load.
    const VBMI_INDEX: [[u8; 64]; 3] = {
        let mut t = [[0u8; 64]; 3];
        let mut phase = 0;
        while phase < 3 {
            // Relative to a row of n bytes, input byte of output byte j is
            // n - 3 - 3 * (j / 3) + j % 3; take n = 66 + 3 * 64 (any n with
            // the block inside gives the same offsets).
            let n = 66 + 192;
            let o = phase;
            let lo = n - 3 - 3 * ((o + 63) / 3);
            let hi = n - 1 - 3 * (o / 3);
            let mut j = 0;
            while j < 64 {
                let x = n - 3 - 3 * ((o + j) / 3) + (o + j) % 3;
                t[phase][j] = if x < lo + 64 {
                    (x - lo) as u8
                } else {
                    (64 + x - (hi - 63)) as u8
                };
                j += 1;
            }
            phase += 1;
        }
        t
    };

    /// Half turn of RGB rows with AVX-512 VBMI, written non-temporally (no
    /// read of each output line first; see `vbmi_half_turn_streams` for
    /// when that pays): each 64-byte output block is one two-source byte
    /// permute of the two 64-byte loads that cover the 66 input bytes it
    /// draws on. The blocks start where the output is 64-byte aligned, so
    /// they can be streamed; the row's first and last 64 bytes are
    /// unaligned blocks with plain stores, overlapping the aligned ones.
    /// Rows shorter than 64 bytes go to the SSSE3 kernel.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW and VBMI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) unsafe fn half_turn_rgb_vbmi_streaming(
        src: &[u8],
        info: ImageInfo,
        first: usize,
        dst: &mut [MaybeUninit<u8>],
    ) {
        let (rb, h) = (info.row_bytes(), info.height() as usize);
        if rb < 64 {
            // SAFETY: AVX-512 implies SSSE3.
            return unsafe { half_turn_rgb_ssse3(src, info, first, dst, false, false) };
        }
        // SAFETY: each index is a 64-byte array.
        let index = VBMI_INDEX.map(|t| unsafe { _mm512_loadu_si512(t.as_ptr().cast()) });
        for (i, out) in dst.chunks_exact_mut(rb).enumerate() {
            let sr = h - 1 - (first + i);
            let input = &src[sr * rb..(sr + 1) * rb];
            let block = |o: usize| {
                let lo = rb - 3 - 3 * ((o + 63) / 3);
                let hi = rb - 1 - 3 * (o / 3);
                let a: &[u8; 64] = input[lo..lo + 64].try_into().expect("64 bytes");
                let b: &[u8; 64] = input[hi - 63..=hi].try_into().expect("64 bytes");
                // SAFETY: `a` and `b` are 64 readable bytes.
                let (a, b) = unsafe {
                    (
                        _mm512_loadu_si512(a.as_ptr().cast()),
                        _mm512_loadu_si512(b.as_ptr().cast()),
                    )
                };
                _mm512_permutex2var_epi8(a, index[o % 3], b)
            };
            let store = |out: &mut [MaybeUninit<u8>], o: usize, aligned: bool| {
                let v = block(o);
                let d: &mut [MaybeUninit<u8>; 64] =
                    (&mut out[o..o + 64]).try_into().expect("64 bytes");
                // SAFETY: `d` is 64 writable bytes, 64-byte aligned if `aligned`.
                unsafe {
                    if aligned {
                        _mm512_stream_si512(d.as_mut_ptr().cast(), v)
                    } else {
                        _mm512_storeu_si512(d.as_mut_ptr().cast(), v)
                    }
                }
            };
            let start = out.as_ptr().align_offset(64);
            // The unaligned first and last blocks overlap aligned ones with
            // plain stores. (Writing only the bytes they alone cover, with
            // masked stores, measured 1.3x slower in all.)
            if start > 0 {
                store(out, 0, false);
            }
            let mut o = start;
            while o + 64 <= rb {
                store(out, o, true);
                o += 64;
            }
            if o < rb {
                store(out, rb - 64, false);
            }
        }
    }

    /// Half turn of RGBA rows with AVX-512: 16 pixels reversed by one
    /// dword permute of one load. With `nontemporal` the blocks start where
    /// the output row is 64-byte aligned and are streamed (pixels before and
    /// after them copied one by one): on a 32 MB-cache host, one thread,
    /// 24 MB 0.96 -> 0.79 ms, 48 MB 2.06 -> 1.80 ms, 96 MB 4.87 -> 3.97 ms
    /// against plain stores (which measured the same as the compiled loop).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn half_turn_rgba_512(
        src: &[u8],
        info: ImageInfo,
        first: usize,
        dst: &mut [MaybeUninit<u8>],
        nontemporal: bool,
    ) {
        let (rb, h, w) = (
            info.row_bytes(),
            info.height() as usize,
            info.width() as usize,
        );
        let reverse = _mm512_setr_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
        for (i, out) in dst.chunks_exact_mut(rb).enumerate() {
            let sr = h - 1 - (first + i);
            let input = &src[sr * rb..(sr + 1) * rb];
            let head = out.as_ptr().align_offset(64);
            let (start, stream) = if nontemporal && head % 4 == 0 && head + 64 <= rb {
                (head, true)
            } else {
                (0, false)
            };
            super::mirror_pixels::<4>(input, out, 0..start / 4);
            let mut o = start;
            while o + 64 <= rb {
                // SAFETY: input bytes rb - o - 64..rb - o and output bytes
                // o..o + 64 lie in their rows; with `stream` the output is
                // 64-byte aligned (`start` is the row's aligned offset).
                unsafe {
                    let v = _mm512_loadu_si512(input.as_ptr().add(rb - o - 64).cast());
                    let v = _mm512_permutexvar_epi32(reverse, v);
                    let to = out.as_mut_ptr().add(o).cast();
                    if stream {
                        _mm512_stream_si512(to, v)
                    } else {
                        _mm512_storeu_si512(to, v)
                    }
                }
                o += 64;
            }
            super::mirror_pixels::<4>(input, out, o / 4..w);
        }
    }

    /// Output byte `j` of a reversed 16-pixel RGB block is input byte
    /// `BLOCK48[j]` of the 48 the block reverses (lanes 48.. unused).
    const BLOCK48: [u8; 64] = {
        let mut t = [0u8; 64];
        let mut j = 0;
        while j < 48 {
            t[j] = (3 * (15 - j / 3) + j % 3) as u8;
            j += 1;
        }
        t
    };

    /// Half turn of RGB rows with AVX-512 VBMI and plain stores: output
    /// pixels `16m..16m + 16` are the 48 input bytes ending `48m` bytes
    /// before the row's end, reversed by pixel with one byte permute of one
    /// load. Inside the row the load and the store are whole 64-byte vectors
    /// (the store's last 16 bytes are rewritten by the next block, or by the
    /// tail after the last); at the row's ends they are masked to the 48
    /// bytes (a masked store every block measured 2x slower). One load per
    /// 48 bytes rather than two per 64: 4000x3000 RGB 1.54 -> 1.40 ms,
    /// 3001x2003 0.68 -> 0.60 ms on one thread.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW and VBMI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) unsafe fn half_turn_rgb_vbmi(
        src: &[u8],
        info: ImageInfo,
        first: usize,
        dst: &mut [MaybeUninit<u8>],
    ) {
        let (rb, h, w) = (
            info.row_bytes(),
            info.height() as usize,
            info.width() as usize,
        );
        // SAFETY: BLOCK48 is 64 bytes.
        let index = unsafe { _mm512_loadu_si512(BLOCK48.as_ptr().cast()) };
        const MASK: u64 = (1 << 48) - 1;
        let blocks = w / 16;
        for (i, out) in dst.chunks_exact_mut(rb).enumerate() {
            let sr = h - 1 - (first + i);
            let input = &src[sr * rb..(sr + 1) * rb];
            for m in 0..blocks {
                let from = rb - 48 * (m + 1);
                // SAFETY: with m >= 1 the load's 64 bytes end at
                // rb - 48m + 16 <= rb, and the store's 64 start at 48m and
                // end within the row (checked); otherwise only the 48 bytes
                // from `from` and from 48m, inside the row, are touched.
                unsafe {
                    let (at, to) = (input.as_ptr().add(from), out.as_mut_ptr().add(48 * m));
                    if m >= 1 && 48 * m + 64 <= rb {
                        let v = _mm512_permutexvar_epi8(index, _mm512_loadu_si512(at.cast()));
                        _mm512_storeu_si512(to.cast(), v);
                    } else {
                        let v = _mm512_permutexvar_epi8(
                            index,
                            _mm512_maskz_loadu_epi8(MASK, at.cast()),
                        );
                        _mm512_mask_storeu_epi8(to.cast(), MASK, v);
                    }
                }
            }
            super::mirror_pixels::<3>(input, out, blocks * 16..w);
        }
    }

    /// Transposes the 16x16 byte block whose rows are `rows` (each 16 bytes)
    /// and returns its columns.
    #[inline]
    #[target_feature(enable = "sse2")]
    fn transpose16(a: [__m128i; 16]) -> [__m128i; 16] {
        let mut b = [_mm_setzero_si128(); 16];
        for i in 0..8 {
            b[2 * i] = _mm_unpacklo_epi8(a[2 * i], a[2 * i + 1]);
            b[2 * i + 1] = _mm_unpackhi_epi8(a[2 * i], a[2 * i + 1]);
        }
        // b[2i + h]: columns 8h..8h+8 of rows 2i, 2i+1, interleaved.
        let mut c = [_mm_setzero_si128(); 16];
        for j in 0..4 {
            for h in 0..2 {
                c[4 * j + 2 * h] = _mm_unpacklo_epi16(b[4 * j + h], b[4 * j + 2 + h]);
                c[4 * j + 2 * h + 1] = _mm_unpackhi_epi16(b[4 * j + h], b[4 * j + 2 + h]);
            }
        }
        // c[4j + q]: columns 4q..4q+4 of rows 4j..4j+4.
        let mut d = [_mm_setzero_si128(); 16];
        for k in 0..2 {
            for q in 0..4 {
                d[8 * k + 2 * q] = _mm_unpacklo_epi32(c[8 * k + q], c[8 * k + 4 + q]);
                d[8 * k + 2 * q + 1] = _mm_unpackhi_epi32(c[8 * k + q], c[8 * k + 4 + q]);
            }
        }
        // d[8k + p]: columns 2p, 2p+1 of rows 8k..8k+8.
        let mut e = [_mm_setzero_si128(); 16];
        for p in 0..8 {
            e[2 * p] = _mm_unpacklo_epi64(d[p], d[8 + p]);
            e[2 * p + 1] = _mm_unpackhi_epi64(d[p], d[8 + p]);
        }
        e
    }

    /// Quarter turn of an RGB (`C` = 3) or RGBA (`C` = 4) band by 4x4 pixel
    /// blocks: each pixel is widened to 32 bits (RGB: one byte shuffle), the
    /// block transposed with dword unpacks, and narrowed back; blocks are
    /// visited in the order of [`walk_blocks`].
    ///
    /// # Safety
    /// The CPU must support SSSE3.
    #[target_feature(enable = "ssse3")]
    pub(super) unsafe fn quarter_turn_px_ssse3<const C: usize>(
        src: &[u8],
        info: ImageInfo,
        ccw90: bool,
        first: usize,
        dst: &mut [u8],
    ) {
        let (w, h) = (info.width() as usize, info.height() as usize);
        let (src_row, out_row) = (w * C, h * C);
        let widen = _mm_setr_epi8(0, 1, 2, -128, 3, 4, 5, -128, 6, 7, 8, -128, 9, 10, 11, -128);
        let narrow = _mm_setr_epi8(
            0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -128, -128, -128, -128,
        );
        // Loads read 16 bytes for an RGB block's 12: the last input bytes
        // are read through a copy instead.
        let load = |s: usize| -> __m128i {
            let v = if s + 16 <= src.len() {
                let line: &[u8; 16] = src[s..s + 16].try_into().expect("16 bytes");
                // SAFETY: `line` is a 16-byte array.
                unsafe { _mm_loadu_si128(line.as_ptr().cast()) }
            } else {
                let mut tmp = [0u8; 16];
                tmp[..4 * C].copy_from_slice(&src[s..s + 4 * C]);
                // SAFETY: `tmp` is a 16-byte array.
                unsafe { _mm_loadu_si128(tmp.as_ptr().cast()) }
            };
            if C == 3 {
                _mm_shuffle_epi8(v, widen)
            } else {
                v
            }
        };
        walk_blocks::<4, C>(src, info, ccw90, first, dst, |dst, x0, y0| {
            // Input rows of output columns y0..y0+4, in that order.
            let sr: [usize; 4] =
                std::array::from_fn(|i| if ccw90 { y0 + i } else { h - 1 - (y0 + i) });
            let a: [__m128i; 4] = std::array::from_fn(|i| load(sr[i] * src_row + x0 * C));
            let t0 = _mm_unpacklo_epi32(a[0], a[1]);
            let t1 = _mm_unpacklo_epi32(a[2], a[3]);
            let t2 = _mm_unpackhi_epi32(a[0], a[1]);
            let t3 = _mm_unpackhi_epi32(a[2], a[3]);
            // cols[j]: input column x0 + j, for output columns y0..y0+4.
            let cols = [
                _mm_unpacklo_epi64(t0, t1),
                _mm_unpackhi_epi64(t0, t1),
                _mm_unpacklo_epi64(t2, t3),
                _mm_unpackhi_epi64(t2, t3),
            ];
            for (j, v) in cols.into_iter().enumerate() {
                // Input column x0 + j is output row w-1-(x0+j) (90) or x0+j (270).
                let r = if ccw90 { w - 1 - (x0 + j) } else { x0 + j };
                let o = (r - first) * out_row + y0 * C;
                if C == 3 {
                    let v = _mm_shuffle_epi8(v, narrow);
                    if y0 * 3 + 16 <= out_row {
                        // The 4 bytes past the block, in this row, are
                        // written again later by the same group's next
                        // block of the row (blocks and tiles go left to
                        // right; the row's last block, shifted back to the
                        // edge, comes last).
                        let cell: &mut [u8; 16] =
                            (&mut dst[o..o + 16]).try_into().expect("16 bytes");
                        // SAFETY: `cell` is a 16-byte array.
                        unsafe { _mm_storeu_si128(cell.as_mut_ptr().cast(), v) };
                    } else {
                        let mut tmp = [0u8; 16];
                        // SAFETY: `tmp` is a 16-byte array.
                        unsafe { _mm_storeu_si128(tmp.as_mut_ptr().cast(), v) };
                        dst[o..o + 12].copy_from_slice(&tmp[..12]);
                    }
                } else {
                    let cell: &mut [u8; 16] = (&mut dst[o..o + 16]).try_into().expect("16 bytes");
                    // SAFETY: `cell` is a 16-byte array.
                    unsafe { _mm_storeu_si128(cell.as_mut_ptr().cast(), v) };
                }
            }
        });
    }

    /// Quarter turn of an RGB (`C` = 3) or RGBA (`C` = 4) band by 8x8 pixel
    /// blocks with AVX2: each input row's 8 pixels are loaded as two
    /// 4-pixel halves into the two lanes (RGB widened to 32 bits per pixel
    /// by an in-lane byte shuffle), the block transposed with dword and
    /// qword unpacks and lane permutes, and each output row's 8 pixels
    /// narrowed back and stored; blocks are visited in the order of
    /// [`walk_blocks`].
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn quarter_turn_px_avx2<const C: usize>(
        src: &[u8],
        info: ImageInfo,
        ccw90: bool,
        first: usize,
        dst: &mut [u8],
    ) {
        let (w, h) = (info.width() as usize, info.height() as usize);
        let (src_row, out_row) = (w * C, h * C);
        let rows = dst.len() / out_row;
        let widen = _mm256_setr_epi8(
            0, 1, 2, -128, 3, 4, 5, -128, 6, 7, 8, -128, 9, 10, 11, -128, 0, 1, 2, -128, 3, 4, 5,
            -128, 6, 7, 8, -128, 9, 10, 11, -128,
        );
        let narrow = _mm256_setr_epi8(
            0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -128, -128, -128, -128, 0, 1, 2, 4, 5, 6, 8, 9,
            10, 12, 13, 14, -128, -128, -128, -128,
        );
        // Lane 1's 12 bytes follow lane 0's.
        let pack = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7);
        let (sp, len) = (src.as_ptr(), src.len());
        // An RGB half reads 16 bytes for its 12: the image's last bytes are
        // read through a copy.
        let load = |s: usize| -> __m256i {
            if s + 4 * C + 16 <= len {
                // SAFETY: bytes s..s + 4C + 16 are inside `src` (just checked).
                unsafe { _mm256_loadu2_m128i(sp.add(s + 4 * C).cast(), sp.add(s).cast()) }
            } else {
                let mut tmp = [0u8; 32];
                tmp[..4 * C].copy_from_slice(&src[s..s + 4 * C]);
                tmp[16..16 + 4 * C].copy_from_slice(&src[s + 4 * C..s + 8 * C]);
                // SAFETY: `tmp` is a 32-byte array.
                unsafe { _mm256_loadu_si256(tmp.as_ptr().cast()) }
            }
        };
        walk_blocks::<8, C>(src, info, ccw90, first, dst, |dst, x0, y0| {
            // Output column y0 + i comes from input row y0 + i (90) or
            // h-1-(y0+i) (270): rows `s0 + i * step`, each read at x0.
            let (s0, step) = if ccw90 {
                (y0 * src_row + x0 * C, src_row as isize)
            } else {
                ((h - 1 - y0) * src_row + x0 * C, -(src_row as isize))
            };
            assert!(x0 + 8 <= w && y0 + 8 <= h, "block inside the image");
            let a: [__m256i; 8] = std::array::from_fn(|i| {
                let v = load((s0 as isize + i as isize * step) as usize);
                if C == 3 {
                    _mm256_shuffle_epi8(v, widen)
                } else {
                    v
                }
            });
            // a[i]: pixels x0..x0+4 (lane 0) and x0+4..x0+8 (lane 1) of row i.
            let t: [__m256i; 8] = std::array::from_fn(|i| {
                let (x, y) = (a[i & !1], a[i | 1]);
                if i & 1 == 0 {
                    _mm256_unpacklo_epi32(x, y)
                } else {
                    _mm256_unpackhi_epi32(x, y)
                }
            });
            // t[2k + hh]: per lane, pixels 2hh, 2hh+1 of rows 2k, 2k+1.
            let u: [__m256i; 8] = std::array::from_fn(|i| {
                let (g, p) = (i / 4, i % 4); // rows 4g..4g+4, pixel p of the lane
                let (x, y) = (t[4 * g + p / 2], t[4 * g + 2 + p / 2]);
                if p % 2 == 0 {
                    _mm256_unpacklo_epi64(x, y)
                } else {
                    _mm256_unpackhi_epi64(x, y)
                }
            });
            // u[4g + p]: per lane, pixel p (lane 0) or 4 + p (lane 1) of rows
            // 4g..4g+4; the lane permutes put rows 0..8 of one pixel together.
            let cols: [__m256i; 8] = std::array::from_fn(|j| {
                let (x, y) = (u[j % 4], u[4 + j % 4]);
                if j < 4 {
                    _mm256_permute2x128_si256::<0x20>(x, y)
                } else {
                    _mm256_permute2x128_si256::<0x31>(x, y)
                }
            });
            // Input column x0 + j is output row w-1-(x0+j) (90) or x0+j
            // (270): offsets `o0 + j * ostep` in `dst`.
            let (r0, ostep) = if ccw90 {
                (w - 1 - x0, -(out_row as isize))
            } else {
                (x0, out_row as isize)
            };
            let last = if ccw90 { r0 - 7 } else { r0 + 7 };
            assert!(
                r0.min(last) >= first && r0.max(last) < first + rows,
                "rows in the band"
            );
            let o0 = ((r0 - first) * out_row + y0 * C) as isize;
            let dp = dst.as_mut_ptr();
            for (j, v) in cols.into_iter().enumerate() {
                // SAFETY: the 8 output rows are in the band and columns
                // y0..y0+8 inside a row (asserted), so each store of the
                // row's 8C bytes stays in `dst`.
                unsafe {
                    let o = dp.offset(o0 + j as isize * ostep);
                    if C == 3 {
                        let v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, narrow), pack);
                        _mm_storeu_si128(o.cast(), _mm256_castsi256_si128(v));
                        _mm_storel_epi64(o.add(16).cast(), _mm256_extracti128_si256::<1>(v));
                    } else {
                        _mm256_storeu_si256(o.cast(), v);
                    }
                }
            }
        });
    }

    /// Input rows per tile of [`walk_blocks`]: a tile's input lines (128
    /// rows of the sub-band's columns) stay in L1 while its groups use
    /// them. Measured with sub-bands of 4 blocks (4000x3000, 6000x4000 and
    /// 3001x2003 RGB, 8000x8000 and 3001x2003 gray, AVX2, 1 thread,
    /// interleaved): 64 and 256 rows were 5-25% slower, and sub-bands of 8
    /// or 16 blocks 10-30% slower on RGB (2 blocks: within the noise).
    const TILE: usize = 128;

    /// Runs `block(dst, x0, y0)` over `B`x`B` blocks (input columns
    /// `x0..x0 + B`, output columns `y0..y0 + B`) covering a quarter turn of
    /// output rows `first..first + dst.len() / out_row`. Where the rows or
    /// columns are not a multiple of `B`, the last block of a row or column
    /// is shifted back to end at the edge, overlapping its neighbour (which
    /// it rewrites with the same bytes), so every pixel goes through the
    /// vector kernel; bands narrower or images shorter than one block go to
    /// the scalar tiles.
    ///
    /// The order, measured on an AVX2 machine (4000x3000 and 6000x4000 RGB,
    /// 1 thread, interleaved A/B): the band is cut into sub-bands of
    /// about 64 bytes of input row (gray 64 pixels, RGB 24, RGBA 16; RGBA
    /// at 32 measured 15% slower) taken so that the input columns they read go
    /// right to left (90: output rows top down; 270: bottom up; the other
    /// way round measured 1.5-2x slower); a sub-band into tiles of
    /// [`TILE`] input rows, top to bottom, so a tile's input (a few
    /// cache lines of each of its rows) and output (a few lines of each
    /// output row) stay in L1/L2 while they are used; within a tile, groups
    /// of `B` output rows whose input columns go left to right, each down
    /// the tile. The next tile's input lines are prefetched during the
    /// tile's first group (without: 1.3-1.6x slower).
    #[inline(always)]
    fn walk_blocks<const B: usize, const C: usize>(
        src: &[u8],
        info: ImageInfo,
        ccw90: bool,
        first: usize,
        dst: &mut [u8],
        mut block: impl FnMut(&mut [u8], usize, usize),
    ) {
        let (w, h) = (info.width() as usize, info.height() as usize);
        let (src_row, out_row) = (w * C, h * C);
        let rows = dst.len() / out_row;
        if rows < B || h < B {
            return quarter_turn_cols::<C>(src, info, ccw90, first, dst, 0, h);
        }
        // Sub-bands about one cache line of each input row wide.
        let (sub, tile) = ((64 / C).next_multiple_of(B), TILE.max(B));
        let subs = rows.div_ceil(sub);
        let last_row = first + rows - B; // the last group's first output row
        // Gray also fetches the next tile's output lines into the cache
        // before they are written (interleaved A/B, 1 thread: 3001x2003 2.2
        // -> 1.4 ms, 12000x12000 56.5 -> 52.9 ms; RGB measured 1.1-1.2x
        // slower with it, RGBA even).
        let pfw = C == 1;
        for k in 0..subs {
            let k = if ccw90 { k } else { subs - 1 - k };
            let s0 = first + k * sub; // first output row of the sub-band
            let s_rows = sub.min(first + rows - s0);
            let groups = s_rows.div_ceil(B);
            // The sub-band's input columns, for the prefetches.
            let band_x0 = if ccw90 { w - s0 - s_rows } else { s0 };
            let band_bytes = s_rows * C;
            for t0 in (0..h).step_by(tile) {
                let t1 = (t0 + tile).min(h);
                for gi in 0..groups {
                    // Input columns left to right: 90 reads column w-1-r
                    // for output row r, so its groups go bottom up.
                    let g = if ccw90 { groups - 1 - gi } else { gi };
                    let r0 = (s0 + g * B).min(last_row);
                    let x0 = if ccw90 { w - B - r0 } else { r0 };
                    for y0 in (t0..t1).step_by(B) {
                        if gi == 0 && t1 < h {
                            for i in 0..B {
                                let y = y0 + tile + i;
                                if y < h {
                                    let sr = if ccw90 { y } else { h - 1 - y };
                                    let line = &src[sr * src_row + band_x0 * C..];
                                    for o in (0..band_bytes).step_by(64) {
                                        crate::simd::prefetch(&line[o..]);
                                    }
                                }
                            }
                            if pfw {
                                // The next tile's output lines: rows j,
                                // j + n, ... of the sub-band at the tile's
                                // j-th block.
                                let n = tile / B;
                                let (c0, c1) = (t1 * C, (t1 + tile).min(h) * C);
                                for r in ((y0 - t0) / B..s_rows).step_by(n) {
                                    let row = &dst[(s0 + r - first) * out_row..][..out_row];
                                    for c in ((c0 & !63)..c1).step_by(64) {
                                        crate::simd::prefetch(&row[c..]);
                                    }
                                }
                            }
                        }
                        block(dst, x0, y0.min(h - B));
                    }
                }
            }
        }
    }

    /// Quarter turn of a gray band by 16x16 byte blocks held in eight
    /// 256-bit registers (input rows i and i + 8 in the two lanes), so the
    /// transpose needs no spills: three rounds of in-lane unpacks leave
    /// each register with two columns, rows 0..8 in one lane and 8..16 in
    /// the other, and one 64-bit permute puts each column together. Blocks
    /// are visited in the order of [`walk_blocks`].
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn quarter_turn_gray_avx2(
        src: &[u8],
        info: ImageInfo,
        ccw90: bool,
        first: usize,
        dst: &mut [u8],
    ) {
        let (w, h) = (info.width() as usize, info.height() as usize);
        let out_row = h; // output width = input height
        let rows = dst.len() / out_row;
        let (sp, len) = (src.as_ptr(), src.len());
        walk_blocks::<16, 1>(src, info, ccw90, first, dst, |dst, x0, y0| {
            // Output column y0 + i comes from input row y0 + i (90) or
            // h-1-(y0+i) (270): rows `s0 + i * step`, each read at x0.
            let (s0, step) = if ccw90 {
                (y0 * w + x0, w as isize)
            } else {
                ((h - 1 - y0) * w + x0, -(w as isize))
            };
            assert!(
                x0 + 16 <= w && y0 + 16 <= h && s0 + 16 <= len,
                "block inside the image"
            );
            // SAFETY: rows y0..y0+16 (or their mirror) and columns
            // x0..x0+16 are inside the image (asserted), so every 16-byte
            // load stays in `src`.
            let a: [__m256i; 8] = std::array::from_fn(|i| unsafe {
                let lo = sp.offset((s0 as isize) + i as isize * step);
                let hi = sp.offset((s0 as isize) + (i + 8) as isize * step);
                _mm256_loadu2_m128i(hi.cast(), lo.cast())
            });
            let b: [__m256i; 8] = std::array::from_fn(|i| {
                let (x, y) = (a[i & !1], a[i | 1]);
                if i & 1 == 0 {
                    _mm256_unpacklo_epi8(x, y)
                } else {
                    _mm256_unpackhi_epi8(x, y)
                }
            });
            // b[2k + h]: per lane, columns 8h..8h+8 of rows 2k, 2k+1.
            let c: [__m256i; 8] = std::array::from_fn(|i| {
                let (j, hh, lohi) = (i / 4, (i / 2) % 2, i % 2);
                let (x, y) = (b[4 * j + hh], b[4 * j + 2 + hh]);
                if lohi == 0 {
                    _mm256_unpacklo_epi16(x, y)
                } else {
                    _mm256_unpackhi_epi16(x, y)
                }
            });
            // c[4j + q]: per lane, columns 4q..4q+4 of rows 4j..4j+4.
            let d: [__m256i; 8] = std::array::from_fn(|i| {
                let (q, lohi) = (i / 2, i % 2);
                let (x, y) = (c[q], c[4 + q]);
                if lohi == 0 {
                    _mm256_unpacklo_epi32(x, y)
                } else {
                    _mm256_unpackhi_epi32(x, y)
                }
            });
            // d[p]: per lane, columns 2p, 2p+1 of rows 0..8 (lane 0) or
            // 8..16 (lane 1); the permute makes lane 0 column 2p, lane 1
            // column 2p + 1, each of all 16 rows.
            // Input column x0 + col is output row w-1-(x0+col) (90) or
            // x0 + col (270): offsets `o0 + col * ostep` in `dst`.
            let (r0, ostep) = if ccw90 {
                (w - 1 - x0, -(out_row as isize))
            } else {
                (x0, out_row as isize)
            };
            let last = if ccw90 { r0 - 15 } else { r0 + 15 };
            assert!(
                r0.min(last) >= first && r0.max(last) < first + rows,
                "rows in the band"
            );
            let o0 = ((r0 - first) * out_row + y0) as isize;
            let dp = dst.as_mut_ptr();
            for (p, v) in d.into_iter().enumerate() {
                let v = _mm256_permute4x64_epi64::<0b11_01_10_00>(v);
                // SAFETY: the 16 output rows are in the band (asserted) and
                // columns y0..y0+16 inside a row, so each store stays in `dst`.
                unsafe {
                    let lo = dp.offset(o0 + (2 * p) as isize * ostep);
                    let hi = dp.offset(o0 + (2 * p + 1) as isize * ostep);
                    _mm_storeu_si128(lo.cast(), _mm256_castsi256_si128(v));
                    _mm_storeu_si128(hi.cast(), _mm256_extracti128_si256::<1>(v));
                }
            }
        });
    }

    /// Quarter turn of a gray band by 16x16 byte transposes, visited in the
    /// order of [`walk_blocks`].
    #[target_feature(enable = "sse2")]
    pub(super) fn quarter_turn_gray_sse2(
        src: &[u8],
        info: ImageInfo,
        ccw90: bool,
        first: usize,
        dst: &mut [u8],
    ) {
        let (w, h) = (info.width() as usize, info.height() as usize);
        let out_row = h; // output width = input height
        walk_blocks::<16, 1>(src, info, ccw90, first, dst, |dst, x0, y0| {
            // Output columns y0..y0+16 come from input rows: 90 reads them
            // top-down, 270 bottom-up (so the transpose needs no reversal).
            let a: [__m128i; 16] = std::array::from_fn(|i| {
                let sr = if ccw90 { y0 + i } else { h - 1 - (y0 + i) };
                let s = sr * w + x0;
                let line: &[u8; 16] = src[s..s + 16].try_into().expect("16 bytes");
                // SAFETY: `line` is a 16-byte array.
                unsafe { _mm_loadu_si128(line.as_ptr().cast()) }
            });
            let e = transpose16(a);
            // e[j] is input column x0 + j: output row w-1-x0-j (90) or x0+j (270).
            for (j, v) in e.iter().enumerate() {
                let r = if ccw90 { w - 1 - (x0 + j) } else { x0 + j };
                let o = (r - first) * out_row + y0;
                let cell: &mut [u8; 16] = (&mut dst[o..o + 16]).try_into().expect("16 bytes");
                // SAFETY: `cell` is a 16-byte array.
                unsafe { _mm_storeu_si128(cell.as_mut_ptr().cast(), *v) };
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixel::PixelFormat;

    /// The non-temporal RGB half turns only run on images past 32-128 MB in
    /// `rows_with`; here they run (and the plain VBMI one) on small odd
    /// shapes, output rows at every alignment, against the portable loop.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn nontemporal_rgb_half_turn_matches_the_portable_loop() {
        if !Cpu::Ssse3.is_available() {
            return;
        }
        let vbmi = Cpu::Avx512Icl.vbmi();
        for (w, h) in [
            (1u32, 1u32),
            (5, 3),
            (16, 2),
            (17, 4),
            (21, 3),
            (22, 2),
            (32, 3),
            (33, 5),
            (47, 2),
            (48, 3),
            (100, 7),
        ] {
            let info = ImageInfo::new(w, h, PixelFormat::Rgb8).unwrap();
            let src: Vec<u8> = (0..info.byte_len())
                .map(|i| (i * 7 + i / 5) as u8)
                .collect();
            let mut want = vec![0; info.byte_len()];
            // SAFETY: the loop only stores bytes.
            half_turn::<3>(&src, info, 0, unsafe { as_uninit(&mut want) });
            // Each kernel writes over the complement of the answer, so a
            // byte it failed to write shows.
            let unlike: Vec<u8> = want.iter().map(|b| !b).collect();
            for shift in 0..16 {
                // `dst` starts `shift` bytes into a buffer, so rows meet
                // every alignment.
                let mut buf = vec![0u8; info.byte_len() + 16];
                let dst = &mut buf[shift..shift + info.byte_len()];
                dst.copy_from_slice(&unlike);
                // SAFETY: the CPU has SSSE3 (checked above); the kernel only
                // stores bytes.
                unsafe { x86::half_turn_rgb_ssse3(&src, info, 0, as_uninit(dst), true, false) };
                crate::simd::store::fence();
                assert_eq!(dst, &want[..], "{w}x{h}, shift {shift}");
                if !vbmi {
                    continue;
                }
                // Both VBMI kernels, whichever `rows_with` would pick here.
                dst.copy_from_slice(&unlike);
                // SAFETY: the CPU has AVX-512 F, BW and VBMI (checked above).
                unsafe { x86::half_turn_rgb_vbmi_streaming(&src, info, 0, as_uninit(dst)) };
                crate::simd::store::fence();
                assert_eq!(dst, &want[..], "{w}x{h}, shift {shift}, VBMI streaming");
                dst.copy_from_slice(&unlike);
                // SAFETY: as above.
                unsafe { x86::half_turn_rgb_vbmi(&src, info, 0, as_uninit(dst)) };
                assert_eq!(dst, &want[..], "{w}x{h}, shift {shift}, VBMI");
            }
        }
    }
}
