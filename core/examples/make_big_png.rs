//! Writes a large deterministic RGB PNG a row at a time (the whole image is
//! never in memory), for `bench/big_image.sh`.
//!
//! `make_big_png OUT WIDTH HEIGHT`

use std::fs::File;
use std::io::BufWriter;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [out, w, h] = a.as_slice() else {
        eprintln!("usage: make_big_png OUT WIDTH HEIGHT");
        std::process::exit(2);
    };
    let (w, h): (u32, u32) = (w.parse().unwrap(), h.parse().unwrap());
    let mut enc = png::Encoder::new(BufWriter::new(File::create(out).unwrap()), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let mut stream = enc.write_header().unwrap().into_stream_writer().unwrap();
    let mut row = vec![0u8; w as usize * 3];
    let mut seed = 0x9E37_79B9u32;
    for y in 0..h {
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let noise = (seed >> 28) as u8; // a little texture, so it compresses like a photo-ish image
            px[0] = (x as u32 * 255 / w) as u8 ^ noise;
            px[1] = (y * 255 / h) as u8 ^ noise;
            px[2] = ((x as u32 + y) % 256) as u8;
        }
        std::io::Write::write_all(&mut stream, &row).unwrap();
    }
    stream.finish().unwrap();
}
