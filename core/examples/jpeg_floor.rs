//! The floor under a thumbnail of a JPEG, for `bench/README.md`:
//! `jpeg_floor PHOTO.jpg [REPS] [M]` prints one JSON line per DCT scale M/8
//! (M = 1..8, or the one M given) with the median milliseconds libjpeg-turbo alone takes to
//! decode the file to RGB at that scale, and nothing else (no probe, no
//! colour conversion, no resize). It is what shrink-on-load's choice of
//! scales (1/8, 1/4, 1/2) rests on, and the floor a cold request's time is
//! compared with.

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: jpeg_floor PHOTO.jpg [REPS] [M]");
        std::process::exit(2);
    };
    let reps: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(7);
    let file = std::fs::read(path).expect("read the photo");
    let header = turbojpeg::read_header(&file).expect("a JPEG");
    let scales = match args.get(3).and_then(|m| m.parse::<usize>().ok()) {
        Some(m) if (1..=8).contains(&m) => m..=m,
        _ => 1..=8,
    };
    for m in scales {
        let scale = turbojpeg::ScalingFactor::new(m, 8);
        let mut d = turbojpeg::Decompressor::new().expect("a decompressor");
        d.set_scaling_factor(scale)
            .expect("a scale libjpeg-turbo has");
        let size = header.scaled(scale);
        let mut pixels = vec![0u8; size.width * size.height * 3];
        let mut times: Vec<f64> = (0..reps)
            .map(|_| {
                let start = Instant::now();
                let image = turbojpeg::Image {
                    pixels: &mut pixels[..],
                    width: size.width,
                    pitch: size.width * 3,
                    height: size.height,
                    format: turbojpeg::PixelFormat::RGB,
                };
                d.decompress(&file, image).expect("decode");
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "{{\"file\":{path:?},\"scale\":\"{m}/8\",\"width\":{},\"height\":{},\"ms\":{:.2}}}",
            size.width,
            size.height,
            times[times.len() / 2]
        );
    }
}
