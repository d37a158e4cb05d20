//! Times JPEG encoders on a raw RGB image, for `bench/compare_jpeg.py`:
//! `jpeg_timing RAW WIDTH HEIGHT REPS` prints one JSON line per encoder with
//! the median milliseconds and the file size, at quality 90.

use std::time::Instant;

use nlimage_core::{ImageBuf, OutputFormat, PixelFormat};

fn median_ms(reps: usize, mut f: impl FnMut() -> usize) -> (f64, usize) {
    let mut size = f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            size = f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2], size)
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [raw, w, h, reps] = a.as_slice() else {
        eprintln!("usage: jpeg_timing RAW WIDTH HEIGHT REPS");
        std::process::exit(2);
    };
    let data = std::fs::read(raw).unwrap();
    let img = ImageBuf::from_raw(
        w.parse().unwrap(),
        h.parse().unwrap(),
        PixelFormat::Rgb8,
        data,
    )
    .unwrap();
    let reps: usize = reps.parse().unwrap();
    let (ms, size) = median_ms(reps, || {
        let mut out = std::io::Cursor::new(Vec::new());
        nlimage_core::encode(&img, OutputFormat::Jpeg, &mut out).unwrap();
        out.into_inner().len()
    });
    let ours = "nlimage (libjpeg-turbo)";
    println!(r#"{{"encoder":"{ours}","ms":{ms:.2},"bytes":{size}}}"#);
    let (ms, size) = median_ms(reps, || {
        let mut out = std::io::Cursor::new(Vec::new());
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
        image::ImageEncoder::write_image(
            enc,
            img.data(),
            img.info().width(),
            img.info().height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
        out.into_inner().len()
    });
    println!(r#"{{"encoder":"image crate","ms":{ms:.2},"bytes":{size}}}"#);
}
