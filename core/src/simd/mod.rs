//! The code paths and the one place the CPU is probed.
//!
//! Every kernel has a portable path (plain Rust for the baseline target) and
//! faster paths compiled for wider vector units. [`Cpu::detect`] probes the
//! machine once; the caller chooses a path once (by default the widest) and
//! hands it to the kernels -- a [`crate::Run`] carries it through a
//! pipeline into every stage and hold, and the whole-image functions take it
//! in their `*_with` forms -- so tests, benches (`NLIMAGE_CPU` in
//! `kernel_timing`) and the server (`nl-server --cpu`) can force any path
//! end to end. A path wider than the machine's is clamped by each kernel to
//! the widest it runs, so forcing never executes unsupported code. Feature
//! extensions of a path (AVX-512 VBMI, VNNI) are probed here too
//! ([`Cpu::vbmi`], [`Cpu::vnni`]).
#![allow(unsafe_code)]

use std::sync::OnceLock;

pub(crate) mod store;

/// How far ahead of the values a stencil row kernel is summing it fetches
/// the window's newest row (the one the previous output row did not read,
/// so not yet in the cache): 8 KiB, past the row's end for narrow rows,
/// where the next rows of the image usually lie. The hardware prefetcher
/// alone left the loads of that row waiting on memory: 3x3 sharpen, one
/// thread, 4000x3000 RGBA 8.7 -> 5.8 ms, 8000x8000 gray 11.9 -> 7.7 ms,
/// 3001x2003 RGB 3.1 -> 2.0 ms (2 KiB ahead gained half as much).
pub(crate) const NEWEST_ROW_AHEAD: usize = 8 << 10;

/// Asks for the cache line `ahead` bytes past the start of `row` to be
/// fetched into the cache. The address may lie past the end of `row` (a
/// prefetch never faults and reads nothing into the program): for the rows
/// of one image in one buffer, that is the next rows.
#[inline(always)]
pub(crate) fn prefetch_ahead(row: &[u8], ahead: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of every x86-64 CPU; a prefetch of any address is
    // allowed (the pointer is only formed with wrapping arithmetic, never
    // dereferenced).
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(row.as_ptr().wrapping_add(ahead).cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (row, ahead);
}

/// Asks for the cache line at the start of `line` to be fetched into the
/// cache (a hint: never faults, may be dropped); nothing off x86-64.
#[inline(always)]
pub(crate) fn prefetch(line: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of every x86-64 CPU; a prefetch reads nothing.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = line;
}

/// A code path, from the most portable to the widest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cpu {
    /// Plain Rust compiled for the baseline target; runs everywhere.
    Portable,
    /// x86-64 with SSSE3 (byte shuffles; 128-bit vectors).
    Ssse3,
    /// x86-64 with AVX2 (256-bit vectors).
    Avx2,
    /// x86-64 with AVX-512 F and BW (512-bit vectors).
    Avx512,
    /// x86-64 with AVX-512 F, BW and VL and the Ice Lake extensions VBMI
    /// (byte permutes) and VNNI (dot products): Ice Lake, Sapphire Rapids,
    /// Zen 4 and later. A level of its own, so that on such a machine the
    /// plain AVX-512 kernels can be forced and tested too.
    Avx512Icl,
}

impl Cpu {
    /// Every path, portable first.
    pub const ALL: [Cpu; 5] = [
        Cpu::Portable,
        Cpu::Ssse3,
        Cpu::Avx2,
        Cpu::Avx512,
        Cpu::Avx512Icl,
    ];

    /// The widest path this machine supports, probed once.
    pub fn detect() -> Cpu {
        static BEST: OnceLock<Cpu> = OnceLock::new();
        *BEST.get_or_init(|| Self::available().into_iter().max().unwrap_or(Cpu::Portable))
    }

    /// Every path this machine can run, portable first.
    pub fn available() -> Vec<Cpu> {
        let mut v = vec![Cpu::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("ssse3") {
                v.push(Cpu::Ssse3);
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                v.push(Cpu::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
            {
                v.push(Cpu::Avx512);
                if std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512vbmi")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
                {
                    v.push(Cpu::Avx512Icl);
                }
            }
        }
        v
    }

    /// Whether this machine can run the path.
    pub fn is_available(self) -> bool {
        Self::available().contains(&self)
    }

    /// Lower-case name, for benches and messages.
    pub fn name(self) -> &'static str {
        match self {
            Cpu::Portable => "portable",
            Cpu::Ssse3 => "ssse3",
            Cpu::Avx2 => "avx2",
            Cpu::Avx512 => "avx512",
            Cpu::Avx512Icl => "avx512icl",
        }
    }

    /// The path named `name` (as [`Cpu::name`] gives it).
    pub fn from_name(name: &str) -> Option<Cpu> {
        Cpu::ALL.into_iter().find(|c| c.name() == name)
    }

    /// `self` if this machine runs it, else the best path it does run that
    /// is not wider: forcing a path can never execute unsupported code.
    pub(crate) fn clamp(self) -> Cpu {
        self.min(Cpu::detect())
    }

    /// The path that forcing `self` runs on this machine: `self` if it runs
    /// here, else the widest narrower one (what every kernel does with a
    /// path it is handed).
    pub fn clamp_to_machine(self) -> Cpu {
        self.clamp()
    }

    /// Whether path `self` (clamped) runs the AVX-512 VBMI byte permutes
    /// (the [`Cpu::Avx512Icl`] level).
    pub(crate) fn vbmi(self) -> bool {
        self.clamp() >= Cpu::Avx512Icl
    }

    /// Whether path `self` (clamped) runs the VNNI forms of the kernels
    /// (`vpdpwssd`, `vpdpbusd`; the [`Cpu::Avx512Icl`] level).
    pub(crate) fn vnni(self) -> bool {
        self.clamp() >= Cpu::Avx512Icl
    }

    /// What a path needs of the CPU, for messages.
    pub fn needs(self) -> &'static str {
        match self {
            Cpu::Portable => "nothing",
            Cpu::Ssse3 => "x86-64 with SSSE3",
            Cpu::Avx2 => "x86-64 with AVX2",
            Cpu::Avx512 => "x86-64 with AVX-512 F and BW",
            Cpu::Avx512Icl => "x86-64 with AVX-512 F, BW, VL, VBMI and VNNI",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel's tests run on each path of [`Cpu::available`]; the
    /// paths this machine lacks are named in every test run (written past
    /// the harness's capture), never skipped in silence.
    #[test]
    fn paths_this_machine_cannot_run_are_named() {
        use std::io::Write;
        let here = Cpu::available();
        let missing: Vec<Cpu> = Cpu::ALL.into_iter().filter(|c| !here.contains(c)).collect();
        let mut err = std::io::stderr().lock();
        for c in &missing {
            let _ = writeln!(
                err,
                "nlimage-core: the {} path is not tested on this machine (it needs {})",
                c.name(),
                c.needs()
            );
        }
        assert_eq!(here.first(), Some(&Cpu::Portable));
        assert_eq!(here.len() + missing.len(), Cpu::ALL.len());
        // Levels are cumulative: a machine runs every path below its widest.
        assert!(here.iter().zip(Cpu::ALL).all(|(a, b)| *a == b));
        assert_eq!(Cpu::detect(), *here.last().unwrap());
        for c in Cpu::ALL {
            assert_eq!(Cpu::from_name(c.name()), Some(c));
            assert!(c.clamp_to_machine() <= Cpu::detect());
        }
    }
}
