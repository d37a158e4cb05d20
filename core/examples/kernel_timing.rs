//! Times nlimage's kernels on a raw image file, for `bench/compare_kernels.py`
//! (which times OpenCV on the same file in the same run, interleaved).
//!
//! `kernel_timing RAW WIDTH HEIGHT CHANNELS` loads the image, then reads
//! commands from stdin, one per line: `KERNEL THREADS [RUNS]` runs KERNEL
//! (`memcpy`, `mean3x3`, `rotate90`, `rotate180`, `rotate270`) RUNS times
//! back to back (default 2) on a pool of THREADS threads, writing into a
//! reused output buffer, and prints the milliseconds of each run on one line.
//! `memcpy` is a parallel copy of the same bytes: the memory-bandwidth floor;
//! `flush 1` evicts the caches (prints a byte).
//! `NLIMAGE_CPU=portable|ssse3|avx2|avx512` forces a code path.

use std::io::{BufRead, Write};
use std::time::Instant;

use nlimage_core::{Cpu, ImageInfo, PixelFormat, Rotation, mean3x3_into_with, rotate_into_with};
use rayon::prelude::*;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 4 {
        eprintln!("usage: kernel_timing RAW WIDTH HEIGHT CHANNELS < commands");
        std::process::exit(2);
    }
    let src = std::fs::read(&a[0]).expect("raw file");
    let (w, h): (u32, u32) = (a[1].parse().unwrap(), a[2].parse().unwrap());
    let format = match a[3].as_str() {
        "1" => PixelFormat::Gray8,
        "3" => PixelFormat::Rgb8,
        "4" => PixelFormat::Rgba8,
        c => panic!("channels {c}"),
    };
    let info = ImageInfo::new(w, h, format).unwrap();
    assert_eq!(src.len(), info.byte_len(), "raw file size");
    let cpu = std::env::var("NLIMAGE_CPU")
        .ok()
        .map(|n| Cpu::from_name(&n).expect("NLIMAGE_CPU: portable, ssse3, avx2 or avx512"))
        .unwrap_or_else(Cpu::detect);
    let pools: Vec<rayon::ThreadPool> = (1..=2)
        .map(|n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        })
        .collect();
    let mut dst = vec![0u8; src.len()];
    // `flush` evicts both images from the caches, as another program's work would.
    let mut evict = vec![0u8; 128 << 20];
    dst.fill(1); // fault the pages in before any timing
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let mut parts = line.split_whitespace();
        let (Some(kernel), Some(threads)) = (parts.next(), parts.next()) else {
            continue;
        };
        if kernel == "flush" {
            evict.iter_mut().for_each(|b| *b = b.wrapping_add(1));
            writeln!(stdout.lock(), "{}", evict[12345]).unwrap();
            continue;
        }
        let pool = &pools[threads.parse::<usize>().unwrap().clamp(1, 2) - 1];
        let runs: usize = parts.next().map_or(2, |r| r.parse().unwrap()).max(1);
        let mut run = || {
            pool.install(|| match kernel {
                "memcpy" => dst
                    .par_chunks_mut(1 << 20)
                    .zip(src.par_chunks(1 << 20))
                    .for_each(|(d, s)| d.copy_from_slice(s)),
                "mean3x3" => mean3x3_into_with(cpu, &src, info, &mut dst).unwrap(),
                "rotate90" => rotate_into_with(cpu, &src, info, Rotation::Ccw90, &mut dst).unwrap(),
                "rotate180" => {
                    rotate_into_with(cpu, &src, info, Rotation::Ccw180, &mut dst).unwrap()
                }
                "rotate270" => {
                    rotate_into_with(cpu, &src, info, Rotation::Ccw270, &mut dst).unwrap()
                }
                k => panic!("unknown kernel {k}"),
            })
        };
        let times: Vec<String> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                run();
                format!("{:.4}", start.elapsed().as_secs_f64() * 1e3)
            })
            .collect();
        let mut out = stdout.lock();
        writeln!(out, "{}", times.join(" ")).unwrap();
        out.flush().unwrap();
    }
}
