//! Times nlimage's kernels on a raw image file, for `bench/compare_kernels.py`
//! (which times OpenCV on the same file in the same run).
//!
//! `kernel_timing RAW WIDTH HEIGHT CHANNELS THREADS REPS` prints one JSON
//! line per kernel with the median milliseconds of REPS runs, each writing
//! into a reused output buffer, plus a parallel memcpy of the same bytes (the
//! memory-bandwidth floor).

use std::time::Instant;

use nlimage_core::{ImageInfo, PixelFormat, Rotation, mean3x3_into, rotate_into};
use rayon::prelude::*;

fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up: page in the output, settle the clocks
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 6 {
        eprintln!("usage: kernel_timing RAW WIDTH HEIGHT CHANNELS THREADS REPS");
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
    let threads: usize = a[4].parse().unwrap();
    let reps: usize = a[5].parse().unwrap();
    let info = ImageInfo::new(w, h, format).unwrap();
    assert_eq!(src.len(), info.byte_len(), "raw file size");
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let mut dst = vec![0u8; src.len()];
    pool.install(|| {
        let mut report = |kernel: &str, ms: f64| {
            println!(r#"{{"kernel":"{kernel}","threads":{threads},"ms":{ms:.3}}}"#);
        };
        report(
            "memcpy",
            median_ms(reps, || {
                dst.par_chunks_mut(1 << 20)
                    .zip(src.par_chunks(1 << 20))
                    .for_each(|(d, s)| d.copy_from_slice(s))
            }),
        );
        report("mean3x3", median_ms(reps, || mean3x3_into(&src, info, &mut dst).unwrap()));
        for (name, r) in [("rotate90", Rotation::Ccw90), ("rotate180", Rotation::Ccw180), ("rotate270", Rotation::Ccw270)] {
            report(name, median_ms(reps, || rotate_into(&src, info, r, &mut dst).unwrap()));
        }
    });
}
