//! The gaussian blur's row kernel compiled for each CPU level: one portable
//! body ([`crate::ops::blur::blur_row`], written so that the compiler
//! vectorises its u16 and u32 multiply-adds) instantiated again with AVX2
//! enabled, where the same loops use 256-bit vectors. Bit-exact by
//! construction (integer arithmetic; the same code).

use super::Cpu;
use crate::ops::blur::{Scratch, blur_row as body};

/// One output row of the blur on the best path of this machine.
pub(crate) fn blur_row(
    taps: &[u16],
    rows: &[&[u8]],
    channels: usize,
    s: &mut Scratch,
    out: &mut [u8],
) {
    blur_row_with(Cpu::detect(), taps, rows, channels, s, out)
}

/// One output row of the blur on path `cpu` (clamped to what this machine runs).
pub(crate) fn blur_row_with(
    cpu: Cpu,
    taps: &[u16],
    rows: &[&[u8]],
    channels: usize,
    s: &mut Scratch,
    out: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if cpu.clamp() >= Cpu::Avx2 {
        // SAFETY: the CPU runs AVX2 (checked by `clamp`).
        return unsafe { blur_row_avx2(taps, rows, channels, s, out) };
    }
    let _ = cpu;
    body(taps, rows, channels, s, out)
}

/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn blur_row_avx2(
    taps: &[u16],
    rows: &[&[u8]],
    channels: usize,
    s: &mut Scratch,
    out: &mut [u8],
) {
    body(taps, rows, channels, s, out)
}
