//! Times nlimage's kernels on a raw image file, for `bench/compare_kernels.py`
//! (which times OpenCV on the same file in the same run, interleaved).
//!
//! `kernel_timing RAW WIDTH HEIGHT CHANNELS` loads the image, then reads
//! commands from stdin, one per line: `KERNEL THREADS [RUNS]` runs KERNEL
//! (`memcpy`, `mean3x3`, `rotate90`, `rotate180`, `rotate270`, or any
//! operation spec run through the core pipeline on the whole image:
//! `op:blur=2`, `op:gray`, `op:flip=h`, `op:sharpen=2` ...) RUNS times
//! back to back (default 2) on a pool of THREADS threads that includes the
//! thread reading the commands (one thread count per process), writing into
//! a reused output buffer, and prints the milliseconds of each run on one
//! line. Both images are on transparent huge pages where Linux offers them,
//! as numpy's arrays are.
//! `memcpy` is a parallel copy of the same bytes: the memory-bandwidth floor;
//! `flush 1` evicts the caches (prints a byte).
//! `NLIMAGE_CPU=portable|ssse3|avx2|avx512` forces a code path.

use std::io::{BufRead, Write};
use std::time::Instant;

use nlimage_core::{
    Cpu, ImageInfo, Operation, Pipeline, PixelFormat, Rotation, mean3x3_into_with, rotate_into_with,
};
use rayon::prelude::*;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 4 {
        eprintln!("usage: kernel_timing RAW WIDTH HEIGHT CHANNELS < commands");
        std::process::exit(2);
    }
    // As nl-server sets glibc's malloc (`keep_freed_memory` in
    // server/src/main.rs): no mmap per buffer, freed memory kept in the
    // heap, so a stage's fresh buffers are not page faults on every run.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("KT_NO_MALLOPT").is_none() {
        // SAFETY: mallopt only sets glibc malloc parameters.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
        }
    }
    let file = std::fs::read(&a[0]).expect("raw file");
    let src: &[u8] = {
        let b = buffer(file.len());
        b.copy_from_slice(&file);
        b
    };
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
    // The pool, built at the first command for its thread count, with this
    // thread as one of its workers: the kernels run on the thread that read
    // the command, as OpenCV's run on their caller. A thread can be in one
    // such pool only, so a process serves one thread count.
    let mut pool: Option<(usize, rayon::ThreadPool)> = None;
    let dst = buffer(src.len());
    // `flush` evicts both images from the caches, as another program's work would.
    let mut evict = vec![0u8; 128 << 20];
    dst.fill(1); // fault the pages in before any timing
    // The pipeline's output, reused from run to run.
    let mut out: Vec<u8> = Vec::with_capacity(src.len());
    out.resize(src.len(), 1);
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
        let threads = threads.parse::<usize>().unwrap().clamp(1, 2);
        let (n, pool) = pool.get_or_insert_with(|| {
            let builder = rayon::ThreadPoolBuilder::new().num_threads(threads);
            (threads, builder.use_current_thread().build().unwrap())
        });
        assert_eq!(*n, threads, "one thread count per process");
        let runs: usize = parts.next().map_or(2, |r| r.parse().unwrap()).max(1);
        let mut run = || {
            pool.install(|| match kernel {
                "memcpy" => dst
                    .par_chunks_mut(1 << 20)
                    .zip(src.par_chunks(1 << 20))
                    .for_each(|(d, s)| d.copy_from_slice(s)),
                "mean3x3" => mean3x3_into_with(cpu, src, info, dst).unwrap(),
                "rotate90" => rotate_into_with(cpu, src, info, Rotation::Ccw90, dst).unwrap(),
                "rotate180" => rotate_into_with(cpu, src, info, Rotation::Ccw180, dst).unwrap(),
                "rotate270" => rotate_into_with(cpu, src, info, Rotation::Ccw270, dst).unwrap(),
                k => {
                    // An operation through the pipeline, as the server runs
                    // it, on the whole image in one push; the output vector
                    // is reused, so only the stages' own buffers are fresh.
                    // The bands a hold gives after the input ends are made
                    // and dropped one by one, as the server sends them (its
                    // encoder copies every operation's output alike, held or
                    // streamed, so no figure here includes that copy).
                    let spec = k
                        .strip_prefix("op:")
                        .unwrap_or_else(|| panic!("unknown kernel {k}"));
                    let ops: Vec<Operation> = spec
                        .split('+')
                        .map(|s| Operation::parse(s).expect("operation spec"))
                        .collect();
                    let mut p = Pipeline::new(info, &ops).unwrap();
                    let p_out_len = p.output_info().byte_len();
                    out.clear();
                    p.push(src, &mut out).unwrap();
                    let mut rest = p.finish().unwrap();
                    let mut len = out.len();
                    while let Some(b) = rest.next_band(1 << 20).unwrap() {
                        len += b.len();
                    }
                    assert_eq!(len, p_out_len, "the whole output");
                }
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

/// A zeroed buffer for the whole run, on transparent huge pages where Linux
/// offers them: numpy asks for them for its arrays over 4 MiB
/// (`madvise(MADV_HUGEPAGE)`), so OpenCV's side of
/// `bench/compare_kernels.py` has them, and both sides should work on the
/// same kind of memory.
fn buffer(len: usize) -> &'static mut [u8] {
    #[cfg(target_os = "linux")]
    if len >= 4 << 20 {
        // SAFETY: a fresh private anonymous read-write mapping of `len`
        // bytes (zeroed by the kernel; failure checked), never unmapped, so
        // the slice is valid and unaliased for the rest of the process.
        // `madvise` only advises.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert!(p != libc::MAP_FAILED, "mmap of {len} bytes failed");
            libc::madvise(p, len, libc::MADV_HUGEPAGE);
            return std::slice::from_raw_parts_mut(p.cast(), len);
        }
    }
    vec![0u8; len].leak()
}
