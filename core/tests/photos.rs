//! Real photographs (the corpus `bench/photo_corpus.sh` builds from Debian's
//! wallpaper packages; `./setup.sh test` builds it): every header is found
//! by the streaming scanner in any chunking, as the decoder reads it.

mod common;

use common::corpus;
use nlimage_core::codec::head::HeadScan;
use std::path::PathBuf;

#[test]
fn every_photos_header_is_found_in_any_chunking() {
    for path in corpus() {
        let file = std::fs::read(&path).unwrap();
        let (w, h) = image::ImageReader::new(std::io::Cursor::new(&file))
            .with_guessed_format()
            .unwrap()
            .into_dimensions()
            .unwrap();
        for chunk in [1, 7, 64 << 10] {
            let mut scan = HeadScan::new();
            let found = file
                .chunks(chunk)
                .find_map(|c| scan.push(c).unwrap())
                .unwrap_or_else(|| panic!("{}: no header", path.display()));
            assert_eq!(
                (found.format, found.width, found.height),
                ("jpeg", w, h),
                "{} in chunks of {chunk}",
                path.display()
            );
        }
    }
}

/// A real profile from Debian's `colord-data` (`./setup.sh test` installs
/// it), or a failure saying how to get it.
fn profile(name: &str) -> Vec<u8> {
    let path = format!("/usr/share/color/icc/colord/{name}");
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}: install colord-data (./setup.sh test does)"))
}

#[test]
fn photos_tagged_with_wide_gamut_profiles_decode_to_srgb() {
    use moxcms::{ColorProfile, Layout, TransformOptions};
    use nlimage_core::{Limits, PixelFormat};
    // A real photograph, shrunk to keep the test quick.
    let photo = corpus().into_iter().next().unwrap();
    let img = image::open(&photo).unwrap().thumbnail(400, 400).to_rgb8();
    let (w, h) = img.dimensions();
    for name in ["AdobeRGB1998.icc", "ProPhotoRGB.icc"] {
        let icc = profile(name);
        // The photo's sRGB pixels expressed in the profile's space, as a
        // camera or raw converter writes them, tagged with the profile.
        let to = ColorProfile::new_srgb()
            .create_transform_8bit(
                Layout::Rgb,
                &ColorProfile::new_from_slice(&icc).unwrap(),
                Layout::Rgb,
                TransformOptions::default(),
            )
            .unwrap();
        let mut wide = vec![0u8; img.len()];
        to.transform(img.as_raw(), &mut wide).unwrap();
        let mut file = Vec::new();
        {
            use image::ImageEncoder;
            let mut enc = image::codecs::png::PngEncoder::new(&mut file);
            enc.set_icc_profile(icc.clone()).unwrap();
            enc.write_image(&wide, w, h, image::ExtendedColorType::Rgb8)
                .unwrap();
        }
        let back = nlimage_core::decode(std::io::Cursor::new(&file), &Limits::DEFAULT).unwrap();
        assert_eq!(back.info().format(), PixelFormat::Rgb8);
        let diffs: Vec<u8> = back
            .data()
            .iter()
            .zip(img.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .collect();
        let worst = *diffs.iter().max().unwrap();
        let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
        // Untagged, the wide-gamut numbers are tens of levels off.
        let off = wide
            .iter()
            .zip(img.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(
            off > 20,
            "{name}: the test image has saturated colours ({off})"
        );
        assert!(
            worst <= 8 && mean < 1.0,
            "{name}: worst {worst}, mean {mean:.2}"
        );
    }
}

#[test]
fn photos_with_an_icc_profile_in_jpeg_app2_segments_decode_to_srgb() {
    use image::ImageEncoder;
    use moxcms::{ColorProfile, Layout, TransformOptions};
    use nlimage_core::Limits;
    let photo = corpus().into_iter().nth(1).unwrap();
    let img = image::open(&photo).unwrap().thumbnail(640, 640).to_rgb8();
    let (w, h) = img.dimensions();
    let icc = profile("AdobeRGB1998.icc");
    let to = ColorProfile::new_srgb()
        .create_transform_8bit(
            Layout::Rgb,
            &ColorProfile::new_from_slice(&icc).unwrap(),
            Layout::Rgb,
            TransformOptions::default(),
        )
        .unwrap();
    let mut wide = vec![0u8; img.len()];
    to.transform(img.as_raw(), &mut wide).unwrap();
    let mut file = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut file, 95);
    enc.set_icc_profile(icc).unwrap();
    enc.write_image(&wide, w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    let mean = |a: &[u8]| {
        a.iter()
            .zip(img.as_raw())
            .map(|(x, y)| f64::from(x.abs_diff(*y)))
            .sum::<f64>()
            / a.len() as f64
    };
    let back = nlimage_core::decode(std::io::Cursor::new(&file), &Limits::DEFAULT).unwrap();
    let untagged = mean(&wide);
    let converted = mean(back.data());
    // JPEG at 95 costs about a level; ignoring the profile costs several.
    assert!(
        converted < 2.0 && untagged > 2.0 * converted,
        "converted {converted:.2}, untagged {untagged:.2}"
    );
}

/// The corpus's HEIC and AVIF files (`bench/photo_corpus.sh` writes them
/// with Debian's heif-enc) with the JPEG each was made from.
fn phone_files() -> Vec<(PathBuf, PathBuf)> {
    let first = corpus().remove(0);
    let dir = first.parent().unwrap().join("phone");
    let mut files: Vec<(PathBuf, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}: run bench/photo_corpus.sh", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "heic" || x == "avif"))
        .map(|p| {
            let stem = p.file_stem().unwrap().to_str().unwrap();
            (p.clone(), dir.parent().unwrap().join(format!("{stem}.jpg")))
        })
        .collect();
    files.sort();
    assert!(files.len() >= 8, "{} phone files", files.len());
    files
}

#[test]
fn heic_and_avif_photos_decode_upright_and_close_to_their_source() {
    use nlimage_core::{Limits, PixelFormat};
    for (path, source) in phone_files() {
        let file = std::fs::read(&path).unwrap();
        // The streaming scanner finds the size, in any chunking.
        let img = nlimage_core::decode(std::io::Cursor::new(&file), &Limits::DEFAULT)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for chunk in [1, 7, 64 << 10] {
            let mut scan = HeadScan::new();
            let found = file
                .chunks(chunk)
                .find_map(|c| scan.push(c).unwrap())
                .unwrap_or_else(|| panic!("{}: no header", path.display()));
            assert_eq!(
                (found.width, found.height),
                (img.info().width(), img.info().height()),
                "{}",
                path.display()
            );
        }
        let want = nlimage_core::decode(
            std::io::Cursor::new(std::fs::read(&source).unwrap()),
            &Limits::DEFAULT,
        )
        .unwrap();
        assert_eq!(img.info().format(), PixelFormat::Rgb8);
        assert_eq!(
            (img.info().width(), img.info().height()),
            (want.info().width(), want.info().height()),
            "{}",
            path.display()
        );
        let mean = img
            .data()
            .iter()
            .zip(want.data())
            .map(|(a, b)| f64::from(a.abs_diff(*b)))
            .sum::<f64>()
            / img.data().len() as f64;
        // Quality 60 costs a level or two on average.
        assert!(mean < 4.0, "{}: mean {mean:.2}", path.display());
    }
}

/// `tiffcp` (Debian's libtiff-tools; `./setup.sh test` installs it) run
/// on `input` with `args`, the output's bytes.
fn tiffcp(input: &[u8], args: &[&str]) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("nl-tiffcp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (
        dir.join("in.tif"),
        dir.join(format!("out{}.tif", args.join("_"))),
    );
    std::fs::write(&a, input).unwrap();
    let status = std::process::Command::new("tiffcp")
        .args(args)
        .arg(&a)
        .arg(&b)
        .status()
        .expect("tiffcp (apt install libtiff-tools; ./setup.sh test does)");
    assert!(status.success(), "tiffcp {args:?}");
    std::fs::read(&b).unwrap()
}

#[test]
fn tiffs_as_scanners_write_them_decode_close_to_the_photo() {
    use nlimage_core::Limits;
    let photo = corpus().into_iter().nth(2).unwrap();
    let img = image::open(&photo).unwrap().thumbnail(601, 601).to_rgb8();
    let (w, h) = img.dimensions();
    let mut plain = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img.clone())
        .write_to(&mut plain, image::ImageFormat::Tiff)
        .unwrap();
    let plain = plain.into_inner();
    for args in [
        // New-style JPEG, YCbCr with 2x2 chroma, as scanners write.
        &["-c", "jpeg:90", "-r", "16"][..],
        &["-c", "lzw"],
        &["-c", "zip", "-p", "separate"],
        &["-c", "packbits", "-t", "-w", "64", "-l", "64"],
    ] {
        let file = tiffcp(&plain, args);
        let back = nlimage_core::decode(std::io::Cursor::new(&file), &Limits::DEFAULT)
            .unwrap_or_else(|e| panic!("tiffcp {args:?}: {e}"));
        assert_eq!(
            (back.info().width(), back.info().height()),
            (w, h),
            "{args:?}"
        );
        let mean = back
            .data()
            .iter()
            .zip(img.as_raw())
            .map(|(a, b)| f64::from(a.abs_diff(*b)))
            .sum::<f64>()
            / img.len() as f64;
        let lossless = args[1] != "jpeg:90";
        assert!(
            if lossless { mean == 0.0 } else { mean < 3.0 },
            "{args:?}: mean {mean:.2}"
        );
    }
    let _ = std::fs::remove_dir_all(
        std::env::temp_dir().join(format!("nl-tiffcp-{}", std::process::id())),
    );
}
