//! Compression is a choice, never a tax: a stock client that merely accepts
//! gzip (as grpcio does by default) gets uncompressed answers; a client that
//! compressed its request gets its answer in the same encoding; the operator
//! may turn compression on with `--response-compression`.

mod common;

use std::io::Read;

use nlimage::classic::NlImage;
use nlimage_server::{Config, ResponseCompression};
use prost::Message;

const GRPCIO_ACCEPT: (&str, &str) = ("grpc-accept-encoding", "identity,deflate,gzip");

fn image() -> NlImage {
    NlImage {
        color: false,
        data: vec![7u8; 64 * 64].into(),
        width: 64,
        height: 64,
    }
}

/// The answer's message, decompressed if its flag says so.
fn answer(raw: &common::Raw) -> NlImage {
    assert_eq!(
        raw.trailers.get("grpc-status").unwrap(),
        "0",
        "{:?}",
        raw.trailers
    );
    let len = u32::from_be_bytes(raw.body[1..5].try_into().unwrap()) as usize;
    let payload = &raw.body[5..5 + len];
    let bytes = if raw.body[0] == 1 {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(payload)
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        payload.to_vec()
    };
    NlImage::decode(&bytes[..]).unwrap()
}

fn encoding(raw: &common::Raw) -> Option<&str> {
    raw.headers
        .get("grpc-encoding")
        .map(|v| v.to_str().unwrap())
        .filter(|e| *e != "identity")
}

/// A classic MeanFilter call with these extra headers and body.
async fn mean_filter(
    addr: std::net::SocketAddr,
    extra: &[(&'static str, &'static str)],
    body: Vec<u8>,
) -> common::Raw {
    common::raw_call(addr, "/NLImageService/MeanFilter", extra, body).await
}

#[tokio::test]
async fn a_client_that_only_accepts_gzip_gets_raw_pixels() {
    let server = common::server(Config::default()).await;
    let raw = mean_filter(server.addr(), &[GRPCIO_ACCEPT], common::frame(&image())).await;
    assert_eq!(encoding(&raw), None);
    assert_eq!(raw.body[0], 0, "the message is not compressed");
    assert_eq!(answer(&raw).data.len(), 64 * 64);
}

#[tokio::test]
async fn a_compressed_request_gets_a_compressed_answer() {
    let server = common::server(Config::default()).await;
    let body = common::frame_gzip(&image(), flate2::Compression::fast());
    let raw = mean_filter(
        server.addr(),
        &[GRPCIO_ACCEPT, ("grpc-encoding", "gzip")],
        body,
    )
    .await;
    assert_eq!(encoding(&raw), Some("gzip"));
    assert_eq!(raw.body[0], 1);
    assert_eq!(answer(&raw).data[..], [7u8; 64 * 64][..]);
}

#[tokio::test]
async fn the_operator_can_turn_response_compression_on() {
    let server = common::server(Config {
        response_compression: ResponseCompression::Gzip,
        ..Config::default()
    })
    .await;
    let raw = mean_filter(server.addr(), &[GRPCIO_ACCEPT], common::frame(&image())).await;
    assert_eq!(encoding(&raw), Some("gzip"));
    assert_eq!(raw.body[0], 1);
    assert!(raw.body.len() < 64 * 64 / 4, "a flat image compresses");
    assert_eq!(answer(&raw).data[..], [7u8; 64 * 64][..]);
    // Never in an encoding the client did not list.
    let raw = mean_filter(
        server.addr(),
        &[("grpc-accept-encoding", "identity")],
        common::frame(&image()),
    )
    .await;
    assert_eq!(encoding(&raw), None);
}

#[tokio::test]
async fn a_compressed_request_that_inflates_past_the_budget_is_cut_off() {
    let server = common::server(Config {
        memory_budget: 8 << 20,
        ..Config::default()
    })
    .await;
    // 16 MB of zeros gzip to a few KB: a decompression bomb for this budget.
    let bomb = NlImage {
        color: false,
        data: vec![0u8; 4000 * 4000].into(),
        width: 4000,
        height: 4000,
    };
    let body = common::frame_gzip(&bomb, flate2::Compression::best());
    assert!(body.len() < 100_000);
    let raw = mean_filter(
        server.addr(),
        &[GRPCIO_ACCEPT, ("grpc-encoding", "gzip")],
        body,
    )
    .await;
    let status = raw
        .trailers
        .get("grpc-status")
        .or(raw.headers.get("grpc-status"))
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    // tonic stops inflating at the limit: RESOURCE_EXHAUSTED, nothing allocated past it.
    assert_eq!(
        status,
        (tonic::Code::ResourceExhausted as i32).to_string(),
        "{raw:?}"
    );
    // The server still serves.
    let ok = mean_filter(server.addr(), &[GRPCIO_ACCEPT], common::frame(&image())).await;
    assert_eq!(answer(&ok).data.len(), 64 * 64);
}
