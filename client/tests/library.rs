//! The client library against a real server: every input kind (PNG and JPEG,
//! gray, RGB, RGBA) with every operation gives the core reference's pixels.

mod common;

use std::io::Cursor;

use nlimage_client::{ClientError, Operation, Rotation};
use nlimage_core::{ImageBuf, Limits, OutputFormat, PixelFormat};

fn op(spec: &str) -> Operation {
    Operation::parse(spec).unwrap()
}
use nlimage_server::Config;

fn reference(img: &ImageBuf, ops: &[Operation]) -> ImageBuf {
    nlimage_core::ops::naive::apply_all(img, ops).unwrap()
}

#[tokio::test]
async fn every_input_kind_and_operation_matches_the_reference() {
    let server = common::server(Config::default()).await;
    let mut client = common::client(&server).await;
    let inputs = [
        (PixelFormat::Gray8, OutputFormat::Png),
        (PixelFormat::Rgb8, OutputFormat::Png),
        (PixelFormat::Rgba8, OutputFormat::Png),
        (PixelFormat::Gray8, OutputFormat::Jpeg),
        (PixelFormat::Rgb8, OutputFormat::Jpeg),
    ];
    let op_lists: Vec<Vec<Operation>> = vec![
        vec![],
        vec![Operation::Mean3x3],
        vec![Operation::Rotate(Rotation::Ccw90)],
        vec![Operation::Rotate(Rotation::Ccw180)],
        vec![Operation::Rotate(Rotation::Ccw270)],
        vec![Operation::Rotate(Rotation::Ccw90), Operation::Mean3x3],
        // Every other operation once, then mixed lists the planner reorders.
        ["flip=h"].map(op).to_vec(),
        ["flip=v"].map(op).to_vec(),
        ["crop=3,4,50,30"].map(op).to_vec(),
        ["blur=1.5"].map(op).to_vec(),
        ["sharpen=1,2"].map(op).to_vec(),
        ["convolve=0,-1,0,-1,5,-1,0,-1,0"].map(op).to_vec(),
        ["gray"].map(op).to_vec(),
        ["brightness=40", "contrast=1.3", "gamma=2.2"]
            .map(op)
            .to_vec(),
        ["rotate=90", "crop=1,2,30,40", "gray", "flip=h", "blur=2"]
            .map(op)
            .to_vec(),
        [
            "gray",
            "convolve=1,2,1,0,0,0,-1,-2,-1/1",
            "rotate=270",
            "flip=v",
            "mean",
        ]
        .map(op)
        .to_vec(),
    ];
    for (pf, codec) in inputs {
        let file = common::encoded(&common::picture(61, 45, pf), codec);
        // What the CLI does: decode the file, then stream its pixels.
        let decoded = nlimage_core::decode(Cursor::new(file), &Limits::DEFAULT).unwrap();
        assert_eq!(decoded.info().format(), pf, "{codec:?} keeps {pf}");
        for ops in &op_lists {
            let got = client.process(&decoded, ops).await.unwrap();
            assert!(
                got == reference(&decoded, ops),
                "{pf} via {codec:?}, ops {ops:?}"
            );
        }
    }
}

#[tokio::test]
async fn large_image_spanning_many_chunks_roundtrips() {
    let server = common::server(Config::default()).await;
    let mut client = common::client(&server).await;
    let img = common::picture(1500, 1000, PixelFormat::Rgb8); // 4.5 MB: five chunks
    let ops = [Operation::Mean3x3, Operation::Rotate(Rotation::Ccw270)];
    let got = client.process(&img, &ops).await.unwrap();
    assert!(got == reference(&img, &ops));
}

#[tokio::test]
async fn server_errors_surface_with_code_and_message() {
    let config = Config {
        limits: Limits {
            max_pixels: 100,
            max_dimension: 1000,
        },
        ..Config::default()
    };
    let server = common::server(config).await;
    let mut client = common::client(&server).await;
    let e = client
        .process(&common::picture(20, 20, PixelFormat::Gray8), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Status(s) if s.code() == tonic::Code::ResourceExhausted),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("server error RESOURCE_EXHAUSTED: image is 20x20"),
        "{e}"
    );
}

#[tokio::test]
async fn unreachable_server_names_the_address() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = nlimage_client::Client::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("refused"),
        "{msg}"
    );
}

/// A sink writing into shared memory, so the test can read the file back.
#[derive(Clone, Default)]
struct Mem(std::sync::Arc<std::sync::Mutex<Cursor<Vec<u8>>>>);
impl std::io::Write for Mem {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl std::io::Seek for Mem {
    fn seek(&mut self, p: std::io::SeekFrom) -> std::io::Result<u64> {
        self.0.lock().unwrap().seek(p)
    }
}

#[tokio::test]
async fn png_streams_row_by_row_through_the_server() {
    use nlimage_core::rows;
    let server = common::server(Config::default()).await;
    let mut client = common::client(&server).await;
    let img = common::picture(700, 1900, PixelFormat::Rgb8); // 4 MB: several chunks
    let source = rows::open_reader(
        Cursor::new(common::encoded(&img, OutputFormat::Png)),
        &Limits::DEFAULT,
    )
    .unwrap();
    assert!(source.is_streaming());
    let sink = Mem::default();
    let writer = sink.clone();
    let ops = [Operation::Mean3x3, Operation::Rotate(Rotation::Ccw90)];
    let info = client
        .process_rows(source, &ops, move |info| {
            rows::open_writer(writer, info, OutputFormat::Png, Default::default())
        })
        .await
        .unwrap();
    assert_eq!((info.width(), info.height()), (1900, 700));
    let bytes = sink.0.lock().unwrap().get_ref().clone();
    let back = nlimage_core::decode(Cursor::new(bytes), &Limits::DEFAULT).unwrap();
    assert!(back == reference(&img, &ops));
}

#[tokio::test]
async fn a_truncated_png_is_reported_as_a_decode_error() {
    use nlimage_core::rows;
    let server = common::server(Config::default()).await;
    let mut client = common::client(&server).await;
    let mut png = common::encoded(
        &common::picture(300, 300, PixelFormat::Rgb8),
        OutputFormat::Png,
    );
    png.truncate(png.len() / 2);
    let source = rows::open_reader(Cursor::new(png), &Limits::DEFAULT).unwrap();
    let e = client
        .process_rows(source, &[Operation::Mean3x3], |info| {
            rows::open_writer(Mem::default(), info, OutputFormat::Png, Default::default())
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::Core(nlimage_core::CoreError::Decode(_))),
        "{e:?}"
    );
}
