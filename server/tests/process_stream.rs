//! The streaming `Process` RPC over a real socket: correct output for valid
//! streams, output that flows before the upload ends, and INVALID_ARGUMENT
//! (or RESOURCE_EXHAUSTED) with a readable message for every malformed stream.

mod common;

use std::time::Duration;

use common::msg::{chunk, header, mean, rotate};
use nlimage::v1::{
    ImageHeader, Operation, PixelFormat, ProcessHeader, ProcessRequest,
    process_request::Message as Req, process_response::Message as Resp,
};
use nlimage_core::{ImageBuf, mean3x3_naive};
use nlimage_server::Config;
use tonic::{Code, Status};

/// Sends `msgs`, returns the output header, the output bytes, or the status.
async fn call(
    server: &nlimage_server::ServerHandle,
    msgs: Vec<ProcessRequest>,
) -> Result<(ImageHeader, Vec<u8>), Status> {
    let mut client = common::streaming(server).await;
    let mut inbound = client.process(tokio_stream::iter(msgs)).await?.into_inner();
    let header = match inbound.message().await?.and_then(|m| m.message) {
        Some(Resp::Header(h)) => h,
        other => panic!("first response is not a header: {other:?}"),
    };
    let mut out = Vec::new();
    while let Some(m) = inbound.message().await? {
        match m.message {
            Some(Resp::Chunk(c)) => out.extend_from_slice(&c),
            other => panic!("unexpected response {other:?}"),
        }
    }
    Ok((header, out))
}

async fn expect_error(msgs: Vec<ProcessRequest>, code: Code, text: &str) {
    let server = common::server(Config::default()).await;
    let e = call(&server, msgs).await.expect_err("must fail");
    assert_eq!(e.code(), code, "{e:?}");
    assert!(
        e.message().contains(text),
        "message {:?} lacks {text:?}",
        e.message()
    );
}

#[tokio::test]
async fn valid_stream_with_odd_chunks_gives_the_reference_output() {
    let server = common::server(Config::default()).await;
    let (w, h) = (37u32, 21u32);
    let data = common::noise((w * h * 4) as usize, 5);
    let mut msgs = vec![header(
        w,
        h,
        PixelFormat::Rgba8,
        vec![mean(), rotate(1), mean()],
    )];
    msgs.extend(data.chunks(333).map(chunk));
    let (out_header, out) = call(&server, msgs).await.unwrap();
    assert_eq!((out_header.width, out_header.height), (h, w));
    let img = ImageBuf::from_raw(w, h, nlimage_core::PixelFormat::Rgba8, data).unwrap();
    let want = mean3x3_naive(&nlimage_core::rotate_naive(
        &mean3x3_naive(&img),
        nlimage_core::Rotation::Ccw90,
    ));
    assert_eq!(out, want.data());
}

#[tokio::test]
async fn output_flows_before_the_upload_ends() {
    let server = common::server(Config::default()).await;
    let mut client = common::streaming(&server).await;
    let (w, h) = (64u32, 100u32);
    let data = common::noise((w * h) as usize, 9);
    let (tx, mut inbound) =
        common::open_process(&mut client, header(w, h, PixelFormat::Gray8, vec![mean()])).await;
    // Send ten rows in tiny chunks, keep the stream open, and wait for output.
    for piece in data[..(w * 10) as usize].chunks(7) {
        tx.send(chunk(piece)).await.unwrap();
    }
    let first = tokio::time::timeout(Duration::from_secs(10), inbound.message())
        .await
        .expect("output arrives while the upload is still open")
        .unwrap()
        .unwrap();
    let Some(Resp::Chunk(first)) = first.message else {
        panic!("expected a chunk")
    };
    assert!(!first.is_empty() && first.len() <= (w * 9) as usize);
    let want = mean3x3_naive(
        &ImageBuf::from_raw(w, h, nlimage_core::PixelFormat::Gray8, data.clone()).unwrap(),
    );
    assert_eq!(&first[..], &want.data()[..first.len()]);
    // Finish the upload; the rest of the output follows.
    let mut out = first.to_vec();
    for piece in data[(w * 10) as usize..].chunks(1000) {
        tx.send(chunk(piece)).await.unwrap();
    }
    drop(tx);
    while let Some(m) = inbound.message().await.unwrap() {
        let Some(Resp::Chunk(c)) = m.message else {
            panic!("expected a chunk")
        };
        out.extend_from_slice(&c);
    }
    assert_eq!(out, want.data());
}

#[tokio::test]
async fn no_header_is_invalid() {
    expect_error(
        vec![chunk(&[1, 2, 3])],
        Code::InvalidArgument,
        "send a header first",
    )
    .await;
    expect_error(vec![], Code::InvalidArgument, "ended before its header").await;
}

#[tokio::test]
async fn a_second_header_is_invalid() {
    let msgs = vec![
        header(2, 2, PixelFormat::Gray8, vec![]),
        chunk(&[1, 2]),
        header(2, 2, PixelFormat::Gray8, vec![]),
    ];
    expect_error(
        msgs,
        Code::InvalidArgument,
        "second header arrived after 2 bytes",
    )
    .await;
}

#[tokio::test]
async fn too_many_bytes_are_invalid() {
    let msgs = vec![
        header(2, 2, PixelFormat::Gray8, vec![mean()]),
        chunk(&[1, 2, 3]),
        chunk(&[4, 5]),
    ];
    expect_error(
        msgs,
        Code::InvalidArgument,
        "more pixel data than the header declares",
    )
    .await;
}

#[tokio::test]
async fn too_few_bytes_then_end_are_invalid() {
    let msgs = vec![
        header(3, 3, PixelFormat::Rgb8, vec![rotate(2)]),
        chunk(&[1; 20]),
    ];
    expect_error(
        msgs,
        Code::InvalidArgument,
        "ended early: a 3x3 rgb8 image has 27 bytes, got 20",
    )
    .await;
}

#[tokio::test]
async fn bad_headers_are_invalid() {
    expect_error(
        vec![header(0, 5, PixelFormat::Gray8, vec![])],
        Code::InvalidArgument,
        "at least 1",
    )
    .await;
    expect_error(
        vec![header(5, 5, PixelFormat::Unspecified, vec![])],
        Code::InvalidArgument,
        "unspecified",
    )
    .await;
    let mut unknown = header(5, 5, PixelFormat::Gray8, vec![]);
    if let Some(Req::Header(h)) = &mut unknown.message {
        h.image.as_mut().unwrap().format = 42;
    }
    expect_error(
        vec![unknown],
        Code::InvalidArgument,
        "unknown pixel format 42",
    )
    .await;
    let empty_op = Operation { op: None };
    expect_error(
        vec![header(5, 5, PixelFormat::Gray8, vec![mean(), empty_op])],
        Code::InvalidArgument,
        "operation 1",
    )
    .await;
    expect_error(
        vec![header(5, 5, PixelFormat::Gray8, vec![rotate(9)])],
        Code::InvalidArgument,
        "unknown rotation 9",
    )
    .await;
    let no_image = ProcessRequest {
        message: Some(Req::Header(ProcessHeader {
            image: None,
            operations: vec![],
            source_id: String::new(),
        })),
    };
    expect_error(vec![no_image], Code::InvalidArgument, "no image").await;
}

#[tokio::test]
async fn huge_claims_are_refused_before_allocation() {
    // u32::MAX x u32::MAX RGBA would be 2^66 bytes; refused by the limits,
    // not by the allocator, even with a rotation that must buffer.
    let msgs = vec![
        header(u32::MAX, u32::MAX, PixelFormat::Rgba8, vec![rotate(1)]),
        chunk(&[0; 16]),
    ];
    let server = common::server(Config::default()).await;
    let e = call(&server, msgs).await.unwrap_err();
    assert!(
        matches!(e.code(), Code::ResourceExhausted | Code::InvalidArgument),
        "{e:?}"
    );
    let msgs = vec![header(
        100_000,
        100_000,
        PixelFormat::Gray8,
        vec![rotate(1)],
    )];
    let e = call(&server, msgs).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(
        e.message()
            .contains("100000x100000 (10.0 Gpx), over the limit of 1.1 Gpx"),
        "{}",
        e.message()
    );
    // ... and the server still serves.
    let (h, out) = call(
        &server,
        vec![
            header(1, 1, PixelFormat::Gray8, vec![mean()]),
            chunk(&[200]),
        ],
    )
    .await
    .unwrap();
    assert_eq!((h.width, out), (1, vec![200]));
}

#[tokio::test]
async fn oversized_chunks_are_refused() {
    let server = common::server(Config::default()).await;
    let msgs = vec![
        header(2048, 1024, PixelFormat::Gray8, vec![]),
        chunk(&vec![0; (1 << 20) + 1]),
    ];
    let e = call(&server, msgs).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(
        e.message().contains("over the limit of 1048576 bytes"),
        "{}",
        e.message()
    );
}

#[tokio::test]
async fn rotations_spilled_to_disk_match_the_reference_and_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        spill_above: 0,
        spill_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    let server = common::server(config).await;
    let (w, h) = (301u32, 77u32);
    let data = common::noise((w * h * 3) as usize, 11);
    let img = ImageBuf::from_raw(w, h, nlimage_core::PixelFormat::Rgb8, data.clone()).unwrap();
    for (wire, rot) in [
        (1, nlimage_core::Rotation::Ccw90),
        (2, nlimage_core::Rotation::Ccw180),
        (3, nlimage_core::Rotation::Ccw270),
    ] {
        let mut msgs = vec![header(w, h, PixelFormat::Rgb8, vec![mean(), rotate(wire)])];
        msgs.extend(data.chunks(4099).map(chunk));
        let (_, out) = call(&server, msgs).await.unwrap();
        assert_eq!(
            out,
            nlimage_core::rotate_naive(&mean3x3_naive(&img), rot).data(),
            "{rot:?}"
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "spill files are gone"
    );
}

#[tokio::test]
async fn a_rotation_over_the_memory_budget_spills_instead_of_failing() {
    // 20 MB of pixels cannot be held in a 28 MiB budget next to the stream's
    // own buffers (9 chunks in flight), so the rotation goes to a file (one
    // 16 MiB strip at a time).
    let config = Config {
        memory_budget: 28 << 20,
        ..Config::default()
    };
    let server = common::server(config).await;
    let (w, h) = (4000u32, 5000u32);
    let data = common::noise((w * h) as usize, 3);
    let mut msgs = vec![header(w, h, PixelFormat::Gray8, vec![rotate(1)])];
    msgs.extend(data.chunks(1 << 20).map(chunk));
    let (out_header, out) = call(&server, msgs).await.unwrap();
    assert_eq!((out_header.width, out_header.height), (h, w));
    // Spot checks of out[r][c] = in[c][w-1-r] on a grid.
    for r in (0..w as usize).step_by(397) {
        for c in (0..h as usize).step_by(331) {
            assert_eq!(
                out[r * h as usize + c],
                data[c * w as usize + (w as usize - 1 - r)],
                "({r}, {c})"
            );
        }
    }
    // A budget too small even for a spilled rotation's strip is refused.
    let tiny = common::server(Config {
        memory_budget: 12 << 20,
        ..Config::default()
    })
    .await;
    let e = call(
        &tiny,
        vec![header(w, h, PixelFormat::Gray8, vec![rotate(1)])],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(
        e.message().contains("--memory-budget-mib"),
        "{}",
        e.message()
    );
}

fn spec(s: &str) -> Operation {
    Operation {
        op: Some(nlimage::v1::operation::Op::Spec(s.into())),
    }
}

#[tokio::test]
async fn bad_operations_are_invalid_and_named() {
    // A crop box outside the image it meets (after the turn: 5 wide, 8 high).
    expect_error(
        vec![header(
            8,
            5,
            PixelFormat::Gray8,
            vec![rotate(1), spec("crop=0,0,6,2")],
        )],
        Code::InvalidArgument,
        "operation 1 (crop=0,0,6,2): crop box 6x2 at (0, 0)",
    )
    .await;
    expect_error(
        vec![header(8, 5, PixelFormat::Gray8, vec![spec("blur=0")])],
        Code::InvalidArgument,
        "operation 0: 'blur=0': sigma must be > 0",
    )
    .await;
    expect_error(
        vec![header(8, 5, PixelFormat::Gray8, vec![spec("sepia")])],
        Code::InvalidArgument,
        "unknown operation 'sepia'",
    )
    .await;
}

#[tokio::test]
async fn an_enlargement_over_the_limits_is_refused_before_allocation() {
    expect_error(
        vec![header(
            4,
            4,
            PixelFormat::Rgb8,
            vec![spec("resize=1048576x1048576:exact")],
        )],
        Code::ResourceExhausted,
        "the operations make a 1048576x1048576",
    )
    .await;
}

#[tokio::test]
async fn new_operations_stream_and_match_the_reference() {
    // On every code path this machine runs, forced end to end (--cpu).
    for cpu in nlimage_core::Cpu::available() {
        let config = Config {
            cpu: Some(cpu),
            ..Config::default()
        };
        operations_match_the_reference(config).await;
    }
}

async fn operations_match_the_reference(config: Config) {
    let server = common::server(config).await;
    let (w, h) = (61u32, 47u32);
    let data = common::noise((w * h * 3) as usize, 11);
    let img = ImageBuf::from_raw(w, h, nlimage_core::PixelFormat::Rgb8, data.clone()).unwrap();
    for specs in [
        vec!["resize=30x:fill:cubic", "blur=1.5", "gray"],
        vec!["crop=3,4,40,30", "sharpen=1,0.7", "flip=h", "contrast=1.2"],
        vec!["flip=v", "convolve=1,2,1,2,4,2,1,2,1", "thumbnail=20"],
    ] {
        let ops: Vec<Operation> = specs.iter().map(|s| spec(s)).collect();
        let mut msgs = vec![header(w, h, PixelFormat::Rgb8, ops)];
        msgs.extend(data.chunks(1001).map(chunk));
        let (out_header, out) = call(&server, msgs).await.unwrap();
        let core_ops: Vec<nlimage_core::Operation> = specs
            .iter()
            .map(|s| nlimage_core::Operation::parse(s).unwrap())
            .collect();
        let want = nlimage_core::ops::naive::apply_all(&img, &core_ops).unwrap();
        assert_eq!(
            (out_header.width, out_header.height),
            (want.info().width(), want.info().height())
        );
        assert_eq!(out, want.data(), "{specs:?}");
    }
}
