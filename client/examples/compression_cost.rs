//! What response compression costs and saves, for `bench/README.md`: for a
//! photo and for noise, each encoding's compressed size and compression time
//! (flate2 level 6 and zstd level 3, the crates and levels tonic uses), and a
//! classic MeanFilter round trip through nl-server with the request (and so,
//! by the server's rule, the answer) compressed that way.
//!
//! `compression_cost ADDR PHOTO.png [REPS]`: PHOTO is any RGB photo; the
//! noise image has its size.

use std::io::Write;
use std::time::Instant;

use nlimage::classic::NlImage;
use nlimage_client::{Client, CompressionEncoding, Options};

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9e3779b9u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 11) as u8
        })
        .collect()
}

fn compress(enc: Option<CompressionEncoding>, data: &[u8]) -> Vec<u8> {
    match enc {
        None => data.to_vec(),
        Some(CompressionEncoding::Gzip) => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Some(_) => zstd::encode_all(data, zstd::DEFAULT_COMPRESSION_LEVEL).unwrap(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (addr, photo) = (&args[1], &args[2]);
    let reps: usize = args.get(3).map_or(Ok(5), |r| r.parse())?;
    let img = image::open(photo)?.to_rgb8();
    let (w, h) = img.dimensions();
    let images = [
        ("photo", img.into_raw()),
        ("noise", noise((w * h * 3) as usize)),
    ];
    println!("| image | encoding | answer bytes | of raw | compress ms | round trip ms |");
    println!("|---|---|---|---|---|---|");
    for (name, data) in &images {
        for (label, enc) in [
            ("none", None),
            ("gzip", Some(CompressionEncoding::Gzip)),
            ("zstd", Some(CompressionEncoding::Zstd)),
        ] {
            // The answer is the filtered image: that is what gets compressed.
            let answer = nlimage_core::mean3x3(&nlimage_core::ImageBuf::from_raw(
                w,
                h,
                nlimage_core::PixelFormat::Rgb8,
                data.clone(),
            )?)?;
            let t = Instant::now();
            let packed = compress(enc, answer.data());
            let compress_ms = t.elapsed().as_secs_f64() * 1e3;
            let client = Client::connect_with(
                addr.clone(),
                Options {
                    compression: enc,
                    ..Options::default()
                },
            )
            .await?;
            let mut classic = client.classic();
            let request = NlImage {
                color: true,
                data: data.clone().into(),
                width: w as i32,
                height: h as i32,
            };
            classic.mean_filter(request.clone()).await?; // warm-up
            let mut times = Vec::new();
            for _ in 0..reps {
                let t = Instant::now();
                classic.mean_filter(request.clone()).await?;
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            println!(
                "| {name} {w}x{h} | {label} | {} | {:.0}% | {:.1} | {:.1} |",
                packed.len(),
                100.0 * packed.len() as f64 / answer.data().len() as f64,
                if enc.is_some() { compress_ms } else { 0.0 },
                median(times)
            );
        }
    }
    Ok(())
}
