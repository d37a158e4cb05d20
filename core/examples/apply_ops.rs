//! Applies operation specs to a raw image with the core pipeline, for the
//! cross-checks in `bench/check_exact.py`.
//!
//! `apply_ops IN.raw WIDTH HEIGHT CHANNELS OUT.raw SPEC...` writes the output
//! pixels to OUT.raw and prints `WIDTH HEIGHT CHANNELS` of the output.

use nlimage_core::{ImageInfo, Operation, Pipeline, PixelFormat};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 5 {
        eprintln!("usage: apply_ops IN.raw WIDTH HEIGHT CHANNELS OUT.raw SPEC...");
        std::process::exit(2);
    }
    let data = std::fs::read(&a[0]).expect("input file");
    let format = match a[3].as_str() {
        "1" => PixelFormat::Gray8,
        "3" => PixelFormat::Rgb8,
        "4" => PixelFormat::Rgba8,
        c => panic!("channels {c}"),
    };
    let info = ImageInfo::new(a[1].parse().unwrap(), a[2].parse().unwrap(), format).unwrap();
    let ops: Vec<Operation> = a[5..]
        .iter()
        .map(|s| Operation::parse(s).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let mut p = Pipeline::new(info, &ops).unwrap();
    let out_info = p.output_info();
    let mut out = Vec::new();
    for chunk in data.chunks(1 << 20) {
        p.push(chunk, &mut out).unwrap();
    }
    let mut rest = p.finish().unwrap();
    while let Some(b) = rest.next_band(1 << 20).unwrap() {
        out.extend(b);
    }
    std::fs::write(&a[4], &out).expect("output file");
    println!(
        "{} {} {}",
        out_info.width(),
        out_info.height(),
        out_info.channels()
    );
}
