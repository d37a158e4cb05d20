//! Shrink-on-load on real photographs: the DCT scale chosen for a sweep of
//! reductions and for every JPEG sampling (4:4:4, 4:2:2, 4:2:0, gray,
//! CMYK), and its thumbnail against the full decode's within the bar the
//! server's Pillow comparison holds it to.

mod common;

use std::io::Cursor;

use nlimage_core::codec::{self, Colour};
use nlimage_core::{ImageBuf, Limits, Operation, Pipeline, PixelFormat};

/// A corpus photo brought to 1200x800 (a real photo's content at a size
/// the sweep can reason about), as RGB.
fn photo() -> ImageBuf {
    let path = &common::corpus()[3];
    let img = codec::decode(Cursor::new(std::fs::read(path).unwrap()), &Limits::DEFAULT).unwrap();
    let img = Pipeline::apply(&img, &[Operation::parse("resize=1200x800:exact").unwrap()]).unwrap();
    assert_eq!(img.info().format(), PixelFormat::Rgb8);
    img
}

/// `img` as a JPEG at quality 90 with `sampling`, or gray, or CMYK ink
/// (`(255 - r, 255 - g, 255 - b, 0)`, no Adobe marker: read as it stands).
fn jpeg(img: &ImageBuf, sampling: &str) -> Vec<u8> {
    use turbojpeg::{Colorspace, PixelFormat as P, Subsamp};
    let (w, h) = (img.info().width() as usize, img.info().height() as usize);
    let rgb = img.data();
    let (pixels, format, subsamp, colorspace): (Vec<u8>, _, _, _) = match sampling {
        "gray" => (
            rgb.chunks_exact(3)
                .map(|p| {
                    ((u32::from(p[0]) * 299 + u32::from(p[1]) * 587 + u32::from(p[2]) * 114) / 1000)
                        as u8
                })
                .collect(),
            P::GRAY,
            Subsamp::Gray,
            Colorspace::Gray,
        ),
        "cmyk" => (
            rgb.chunks_exact(3)
                .flat_map(|p| [255 - p[0], 255 - p[1], 255 - p[2], 0])
                .collect(),
            P::CMYK,
            Subsamp::None,
            Colorspace::CMYK,
        ),
        s => (
            rgb.to_vec(),
            P::RGB,
            match s {
                "4:4:4" => Subsamp::None,
                "4:2:2" => Subsamp::Sub2x1,
                _ => Subsamp::Sub2x2,
            },
            Colorspace::YCbCr,
        ),
    };
    let mut c = turbojpeg::Compressor::new().unwrap();
    c.set_quality(90).unwrap();
    c.set_subsamp(subsamp).unwrap();
    c.set_colorspace(colorspace).unwrap();
    let channels = format.size();
    c.compress_to_vec(turbojpeg::Image {
        pixels: &pixels[..],
        width: w,
        pitch: w * channels,
        height: h,
        format,
    })
    .unwrap()
}

fn resized(img: &ImageBuf, w: u32, h: u32) -> ImageBuf {
    Pipeline::apply(
        img,
        &[Operation::parse(&format!("resize={w}x{h}:exact")).unwrap()],
    )
    .unwrap()
}

/// Mean and 99th percentile of |a - b|.
fn distance(a: &ImageBuf, b: &ImageBuf) -> (f64, u8) {
    assert_eq!(a.info(), b.info());
    let mut d: Vec<u8> = a
        .data()
        .iter()
        .zip(b.data())
        .map(|(x, y)| x.abs_diff(*y))
        .collect();
    let mean = d.iter().map(|&v| f64::from(v)).sum::<f64>() / d.len() as f64;
    d.sort_unstable();
    (mean, d[d.len() * 99 / 100])
}

#[test]
fn the_scale_chosen_keeps_twice_the_target_and_stays_close_to_the_full_decode() {
    let source = photo();
    // The reduction asked (1200 / target width) and the scale that keeps at
    // least twice the target: 1/2 keeps 600, 1/4 300, 1/8 150 wide.
    let sweep: [(f64, Option<u32>); 6] = [
        (1.9, None),
        (2.0, None),
        (3.9, None),
        (4.0, Some(2)),
        (8.0, Some(4)),
        (20.0, Some(8)),
    ];
    for sampling in ["4:4:4", "4:2:2", "4:2:0", "gray", "cmyk"] {
        let file = jpeg(&source, sampling);
        let full = codec::decode(Cursor::new(&file), &Limits::DEFAULT).unwrap();
        assert_eq!((full.info().width(), full.info().height()), (1200, 800));
        for (reduction, scale) in sweep {
            let (tw, th) = (
                (1200.0 / reduction).round() as u32,
                (800.0 / reduction).round() as u32,
            );
            let shrunk =
                codec::decode_jpeg_reduced(&file, 2 * tw, 2 * th, &Limits::DEFAULT, Colour::Srgb)
                    .unwrap();
            let what = format!("{sampling}, {reduction}x to {tw}x{th}");
            let Some(shrunk) = shrunk else {
                assert_eq!(scale, None, "{what}: decoded whole, not at 1/{scale:?}");
                continue;
            };
            let s = scale.unwrap_or_else(|| panic!("{what}: shrunk, but no scale keeps twice"));
            assert_eq!(
                (shrunk.info().width(), shrunk.info().height()),
                (1200 / s, 800 / s),
                "{what}: decoded at 1/{s}"
            );
            assert_eq!(shrunk.info().format(), full.info().format(), "{what}");
            let (mean, p99) = distance(&resized(&shrunk, tw, th), &resized(&full, tw, th));
            assert!(mean < 2.0 && p99 <= 12, "{what}: mean {mean:.3}, p99 {p99}");
        }
    }
}

#[test]
fn a_shrunk_decode_is_checked_against_the_limits_of_the_whole_image() {
    let file = jpeg(&photo(), "4:2:0");
    // 1200x800 is over a 500 000-pixel limit even though 1/8 of it is not.
    let tight = Limits {
        max_pixels: 500_000,
        max_dimension: 10_000,
    };
    assert!(codec::decode_jpeg_reduced(&file, 100, 60, &tight, Colour::Srgb).is_err());
}
