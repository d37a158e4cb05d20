//! Times the codecs on a real photograph, for `bench/README.md`:
//! `codec_timing PHOTO.jpg REPS` prints one JSON line per measurement:
//! the JPEG decoded whole and DCT-scaled (libjpeg-turbo), then a 256- and a
//! 1024-pixel thumbnail of it encoded as JPEG (baseline and progressive),
//! WebP (lossy 80) and AVIF at each effort up to `MAX_EFFORT` (quality
//! 50), with the median milliseconds, the bytes and the PSNR of the decoded
//! result against the thumbnail (dB, all channels).

use std::io::Cursor;
use std::time::Instant;

use nlimage_core::codec::{self, Colour, EncodeOptions, OutputFormat};
use nlimage_core::{Limits, Operation, Pipeline};

fn median_ms<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut out = f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            out = f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2], out)
}

/// Peak signal-to-noise ratio of `b` against `a`, in dB.
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (path, reps, max_effort) = match &args[..] {
        [_, path, reps] => (path, reps, 9),
        [_, path, reps, e] => (path, reps, e.parse().expect("MAX_EFFORT")),
        _ => {
            eprintln!("usage: codec_timing PHOTO.jpg REPS [MAX_EFFORT]");
            std::process::exit(2);
        }
    };
    let reps: usize = reps.parse().expect("REPS");
    let file = std::fs::read(path).expect("PHOTO");
    let (ms, full) = median_ms(reps, || {
        codec::decode_in(Cursor::new(&file), &Limits::DEFAULT, Colour::Srgb).unwrap()
    });
    let (w, h) = (full.info().width(), full.info().height());
    println!(r#"{{"step":"decode {w}x{h}","ms":{ms:.2}}}"#);
    for min in [1024u32, 256] {
        let (ms, img) = median_ms(reps, || {
            codec::decode_jpeg_reduced(&file, min, min, &Limits::DEFAULT, Colour::Srgb).unwrap()
        });
        if let Some(img) = img {
            let (rw, rh) = (img.info().width(), img.info().height());
            println!(r#"{{"step":"decode scaled to {rw}x{rh} (>= {min})","ms":{ms:.2}}}"#);
        }
    }
    for side in [256u32, 1024] {
        let op = Operation::parse(&format!("thumbnail={side}")).unwrap();
        let thumb = Pipeline::apply(&full, &[op]).unwrap();
        let mut cases: Vec<(String, OutputFormat, EncodeOptions)> = vec![
            (
                "jpeg q90".into(),
                OutputFormat::Jpeg,
                EncodeOptions::default(),
            ),
            (
                "jpeg q90 progressive".into(),
                OutputFormat::Jpeg,
                EncodeOptions {
                    progressive: true,
                    ..EncodeOptions::default()
                },
            ),
            (
                "webp q80".into(),
                OutputFormat::WebP,
                EncodeOptions::default(),
            ),
        ];
        for effort in 0..=max_effort {
            let o = EncodeOptions::default().with_effort(Some(effort)).unwrap();
            cases.push((format!("avif q50 effort {effort}"), OutputFormat::Avif, o));
        }
        for (name, format, options) in cases {
            let (ms, file) = median_ms(reps, || {
                let mut out = Cursor::new(Vec::new());
                codec::encode_options(&thumb, format, options, &mut out).unwrap();
                out.into_inner()
            });
            let back =
                codec::decode_in(Cursor::new(&file), &Limits::DEFAULT, Colour::Srgb).unwrap();
            let bytes = file.len();
            let psnr = psnr(thumb.data(), back.data());
            println!(
                r#"{{"step":"encode {side}px {name}","ms":{ms:.2},"bytes":{bytes},"psnr":{psnr:.2}}}"#
            );
        }
    }
}
