//! The built `nl-client` binary against a real server: output files with the
//! right pixels and format, one-line errors with the documented exit codes,
//! and never a partial output file.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use nlimage_core::{Limits, OutputFormat, PixelFormat, Rotation, mean3x3_naive, rotate_naive};
use nlimage_server::{Config, ServerHandle};

fn nl_client(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nl-client"))
        .args(args)
        .output()
        .expect("runs")
}

fn port(server: &ServerHandle) -> String {
    server.addr().port().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn read(path: &Path) -> nlimage_core::ImageBuf {
    nlimage_core::decode(
        std::io::BufReader::new(std::fs::File::open(path).unwrap()),
        &Limits::DEFAULT,
    )
    .unwrap()
}

/// Files in `dir` other than `keep`: leftovers of a failed write.
fn strays(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn rotates_and_filters_into_the_named_format() {
    let server = common::server(Config::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.png");
    let img = common::picture(33, 20, PixelFormat::Rgba8);
    std::fs::write(&input, common::encoded(&img, OutputFormat::Png)).unwrap();
    let p = port(&server);

    let out = dir.path().join("out.png");
    let args = [
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    let r = nl_client(
        &[
            &args[..],
            &["--rotate", "NINETY_DEG", "--mean", "--port", &p],
        ]
        .concat(),
    );
    assert!(r.status.success(), "{}", stderr(&r));
    let want = mean3x3_naive(&rotate_naive(&img, Rotation::Ccw90));
    assert!(
        read(&out) == want,
        "RGBA PNG keeps alpha and matches the reference"
    );

    // Degrees are accepted too, and the extension picks the format.
    let tif = dir.path().join("out.tiff");
    let r = nl_client(&[
        "-i",
        input.to_str().unwrap(),
        "-o",
        tif.to_str().unwrap(),
        "--rotate",
        "180",
        "--port",
        &p,
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(
        &std::fs::read(&tif).unwrap()[..2],
        b"II",
        "a little-endian TIFF"
    );
    assert!(read(&tif) == rotate_naive(&img, Rotation::Ccw180));

    let jpg = dir.path().join("out.jpg");
    let r = nl_client(&[
        "-i",
        input.to_str().unwrap(),
        "-o",
        jpg.to_str().unwrap(),
        "--port",
        &p,
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(&std::fs::read(&jpg).unwrap()[..2], &[0xFF, 0xD8], "a JPEG");
    assert_eq!(
        strays(dir.path(), &["in.png", "out.png", "out.tiff", "out.jpg"]),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gray_stays_gray() {
    let server = common::server(Config::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("gray.png");
    let img = common::picture(8, 5, PixelFormat::Gray8);
    std::fs::write(&input, common::encoded(&img, OutputFormat::Png)).unwrap();
    let out = dir.path().join("o.png");
    let r = nl_client(&[
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--mean",
        "--port",
        &port(&server),
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    let got = read(&out);
    assert_eq!(got.info().format(), PixelFormat::Gray8);
    assert!(got == mean3x3_naive(&img));
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_exit_non_zero_with_one_line_and_no_output_file() {
    let small = Config {
        limits: Limits {
            max_pixels: 100,
            max_dimension: 1000,
        },
        ..Config::default()
    };
    let server = common::server(small).await;
    let p = port(&server);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = d.join("good.png");
    std::fs::write(
        &good,
        common::encoded(
            &common::picture(20, 20, PixelFormat::Rgb8),
            OutputFormat::Png,
        ),
    )
    .unwrap();
    let junk = d.join("junk.png");
    std::fs::write(&junk, b"this is not a png").unwrap();
    let out = d.join("out.png");
    let (g, j, o) = (
        good.to_str().unwrap(),
        junk.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let missing = d.join("missing.png");
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let xyz = d.join("out.xyz");
    let bad_token = d.join("bad.token");
    std::fs::write(&bad_token, "abc\u{7}def\n").unwrap();
    let empty_token = d.join("empty.token");
    std::fs::write(&empty_token, "\n").unwrap();
    let (bt, et) = (bad_token.to_str().unwrap(), empty_token.to_str().unwrap());

    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["-i", missing.to_str().unwrap(), "-o", o, "--port", &p],
            1,
            "cannot read",
        ),
        (vec!["-i", j, "-o", o, "--port", &p], 1, "cannot decode"),
        (
            vec!["-i", g, "-o", xyz.to_str().unwrap(), "--port", &p],
            2,
            "extension",
        ),
        (
            vec!["-i", g, "-o", o, "--port", &free_port],
            1,
            "cannot connect to the server at 127.0.0.1:",
        ),
        (
            vec!["-i", g, "-o", o, "--port", &p],
            1,
            "server error RESOURCE_EXHAUSTED",
        ),
        (
            vec!["-i", g, "-o", o, "--rotate", "45", "--port", &p],
            2,
            "NINETY_DEG",
        ),
        (vec!["-o", o], 2, "--input"),
        // Regression: a negative --timeout was an operation failure (exit 1).
        (
            vec!["-i", g, "-o", o, "--timeout", "-1", "--port", &p],
            2,
            "positive number of seconds",
        ),
        // Regression: a bad token was reported as an invalid server address.
        (
            vec!["-i", g, "-o", o, "--token-file", bt, "--port", &p],
            1,
            "invalid bearer token",
        ),
        (
            vec!["-i", g, "-o", o, "--token-file", et, "--port", &p],
            1,
            "is empty",
        ),
        // The library checks the CA; the CLI names the file.
        (
            vec!["-i", g, "-o", o, "--ca", j, "--port", &p],
            1,
            "no PEM certificate",
        ),
    ];
    for (args, code, text) in cases {
        let r = nl_client(&args);
        let err = stderr(&r);
        assert_eq!(r.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(text), "{args:?}: {err}");
        if code == 1 {
            assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
            assert!(err.starts_with("nl-client: "), "{err}");
        }
        assert!(!out.exists(), "{args:?} left an output file");
        assert_eq!(
            strays(d, &["good.png", "junk.png", "bad.token", "empty.token"]),
            Vec::<String>::new(),
            "{args:?} left a file"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_leaves_an_existing_output_untouched() {
    let small = Config {
        limits: Limits {
            max_pixels: 10,
            max_dimension: 1000,
        },
        ..Config::default()
    };
    let server = common::server(small).await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.png");
    std::fs::write(
        &input,
        common::encoded(
            &common::picture(9, 9, PixelFormat::Gray8),
            OutputFormat::Png,
        ),
    )
    .unwrap();
    let out = dir.path().join("out.png");
    std::fs::write(&out, b"previous result").unwrap();
    let r = nl_client(&[
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--port",
        &port(&server),
    ]);
    assert_eq!(r.status.code(), Some(1));
    assert_eq!(std::fs::read(&out).unwrap(), b"previous result");
}

/// A JPEG of `img` carrying EXIF orientation `tag` (an APP1 segment with a
/// one-entry TIFF directory, after the start-of-image marker).
fn jpeg_with_exif(img: &nlimage_core::ImageBuf, tag: u16) -> Vec<u8> {
    let jpeg = common::encoded(img, OutputFormat::Jpeg);
    let mut tiff = b"II*\0\x08\0\0\0\x01\0".to_vec(); // header, IFD at 8, one entry
    tiff.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0]); // Orientation, SHORT, count 1
    tiff.extend(tag.to_le_bytes());
    tiff.extend([0, 0, 0, 0, 0, 0]); // value padding, no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((app1.len() + 2) as u16).to_be_bytes());
    out.extend(app1);
    out.extend(&jpeg[2..]);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn exif_orientation_is_applied_first_unless_turned_off() {
    use nlimage_core::Operation;
    let server = common::server(Config::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let p = port(&server);
    let img = common::picture(31, 18, PixelFormat::Rgb8);
    // EXIF 6: rotate 90 clockwise to show; 5: transpose; 2: mirror.
    for (tag, upright) in [
        (6u16, vec!["rotate=270"]),
        (5, vec!["rotate=270", "flip=h"]),
        (2, vec!["flip=h"]),
        (1, vec![]),
    ] {
        let input = dir.path().join(format!("in{tag}.jpg"));
        std::fs::write(&input, jpeg_with_exif(&img, tag)).unwrap();
        let stored = read(&input); // the decoder does not orient
        let out = dir.path().join(format!("out{tag}.png"));
        let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
        let r = nl_client(&["-i", i, "-o", o, "--op", "crop=0,0,10,5", "--port", &p]);
        assert!(r.status.success(), "{}", stderr(&r));
        let mut ops: Vec<Operation> = upright
            .iter()
            .map(|s| Operation::parse(s).unwrap())
            .collect();
        ops.push(Operation::parse("crop=0,0,10,5").unwrap());
        let want = nlimage_core::ops::naive::apply_all(&stored, &ops).unwrap();
        assert!(read(&out) == want, "EXIF {tag}: upright, then the crop");
        let r = nl_client(&["-i", i, "-o", o, "--no-auto-orient", "--port", &p]);
        assert!(r.status.success(), "{}", stderr(&r));
        assert!(read(&out) == stored, "EXIF {tag} ignored when asked");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn operations_apply_in_command_line_order_with_an_overlay_file() {
    use nlimage_core::Operation;
    let server = common::server(Config::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let p = port(&server);
    let img = common::picture(40, 30, PixelFormat::Rgb8);
    let logo = common::picture(9, 5, PixelFormat::Rgba8);
    let (input, logo_path) = (dir.path().join("in.png"), dir.path().join("logo.png"));
    std::fs::write(&input, common::encoded(&img, OutputFormat::Png)).unwrap();
    std::fs::write(&logo_path, common::encoded(&logo, OutputFormat::Png)).unwrap();
    let out = dir.path().join("out.png");
    let overlay = format!("overlay={},3,-2,0.6", logo_path.display());
    let r = nl_client(&[
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--op",
        "resize=20x:fill",
        "--rotate",
        "90",
        "--op",
        &overlay,
        "--mean",
        "--op",
        "gray",
        "--port",
        &p,
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    let ops = [
        Operation::parse("resize=20x:fill").unwrap(),
        Operation::parse("rotate=90").unwrap(),
        Operation::Overlay(nlimage_core::ops::overlay::Overlay {
            image: std::sync::Arc::new(logo),
            x: 3,
            y: -2,
            opacity: 0.6,
        }),
        Operation::Mean3x3,
        Operation::Gray,
    ];
    let want = nlimage_core::ops::naive::apply_all(&img, &ops).unwrap();
    assert!(read(&out) == want);
    // A missing overlay file is a usage error naming it.
    let r = nl_client(&[
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--op",
        "overlay=nope.png",
        "--port",
        &p,
    ]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("cannot read 'nope.png'"),
        "{}",
        stderr(&r)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gray_stored_as_colour_gives_the_same_file_with_or_without_the_shortcut() {
    use nlimage_core::{ImageBuf, Operation};
    let server = common::server(Config::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let p = port(&server);
    let gray = common::picture(41, 27, PixelFormat::Gray8);
    for format in [PixelFormat::Rgb8, PixelFormat::Rgba8] {
        let c = format.channels();
        let data: Vec<u8> = gray
            .data()
            .iter()
            .flat_map(|&v| [v, v, v, 255].into_iter().take(c))
            .collect();
        let img = ImageBuf::from_raw(41, 27, format, data).unwrap();
        // BMP is decoded whole (checked by default); PNG streams (checked
        // with --gray-detect always).
        let ext = if c == 3 { "bmp" } else { "png" };
        let input = dir.path().join(format!("gray{c}.{ext}"));
        let codec = if c == 3 {
            OutputFormat::Bmp
        } else {
            OutputFormat::Png
        };
        std::fs::write(&input, common::encoded(&img, codec)).unwrap();
        for specs in [
            vec!["resize=20x:fill", "blur=1.2", "rotate=90"],
            vec!["gray", "brightness=30", "flip=h"],
            vec!["sharpen=1,2", "convolve=0,-1,0,-1,5,-1,0,-1,0", "mean"],
        ] {
            let mut args = vec!["-i", input.to_str().unwrap(), "--port", &p];
            let detect = if c == 3 { "auto" } else { "always" };
            for s in &specs {
                args.extend(["--op", s]);
            }
            let (a, b) = (dir.path().join("a.png"), dir.path().join("b.png"));
            let r = nl_client(
                &[
                    &args[..],
                    &["-o", a.to_str().unwrap(), "--gray-detect", detect],
                ]
                .concat(),
            );
            assert!(r.status.success(), "{}", stderr(&r));
            let r = nl_client(
                &[
                    &args[..],
                    &["-o", b.to_str().unwrap(), "--gray-detect", "never"],
                ]
                .concat(),
            );
            assert!(r.status.success(), "{}", stderr(&r));
            let ops: Vec<Operation> = specs.iter().map(|s| Operation::parse(s).unwrap()).collect();
            let want = nlimage_core::ops::naive::apply_all(&img, &ops).unwrap();
            assert!(read(&b) == want, "{format} {specs:?} as colour");
            assert!(
                read(&a) == want,
                "{format} {specs:?} through the gray shortcut"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn several_inputs_go_to_an_output_dir() {
    let server = common::server(Config::default()).await;
    let p = port(&server);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut inputs = Vec::new();
    for (i, (w, h)) in [(13u32, 7u32), (5, 9), (20, 20)].iter().enumerate() {
        let path = d.join(format!("in{i}.png"));
        let img = common::picture(*w, *h, PixelFormat::Rgb8);
        std::fs::write(&path, common::encoded(&img, OutputFormat::Png)).unwrap();
        inputs.push(path.to_str().unwrap().to_owned());
    }
    let out_dir = d.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let o = out_dir.to_str().unwrap();
    let mut argv = vec!["-i"];
    argv.extend(inputs.iter().map(String::as_str));
    argv.extend([
        "--output-dir",
        o,
        "--format",
        "bmp",
        "--rotate",
        "90",
        "--port",
        &p,
    ]);
    let out = nl_client(&argv);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("3 of 3 images processed"),
        "{}",
        stderr(&out)
    );
    for (i, (w, h)) in [(13u32, 7u32), (5, 9), (20, 20)].iter().enumerate() {
        let got = read(&out_dir.join(format!("in{i}.bmp")));
        assert_eq!((got.info().width(), got.info().height()), (*h, *w));
    }
    // A missing input fails alone, listed; the others are written.
    let missing = d.join("missing.png");
    let out = nl_client(&[
        "-i",
        &inputs[0],
        missing.to_str().unwrap(),
        "--output-dir",
        o,
        "--port",
        &p,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("failed: ") && stderr(&out).contains("missing.png"));
    assert!(out_dir.join("in0.png").exists());
    assert!(!out_dir.join("missing.png").exists());
    // Usage errors: several inputs and one --output; two inputs, one name.
    let out = nl_client(&["-i", &inputs[0], &inputs[1], "-o", "x.png", "--port", &p]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = nl_client(&[
        "-i",
        &inputs[0],
        &inputs[0],
        "--output-dir",
        o,
        "--port",
        &p,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("both be written"), "{}", stderr(&out));
    assert!(strays(&out_dir, &["in0.bmp", "in1.bmp", "in2.bmp", "in0.png"]).is_empty());
    server.shutdown().await.unwrap();
}
