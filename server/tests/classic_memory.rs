//! Classic calls as large as the image limits allow, with their memory
//! reserved from the budget before the message is read: large images pass
//! with default flags, a message over the limits is refused from its 5-byte
//! prefix alone, and a call that does not fit the budget yet waits unread.

mod common;

use std::time::Duration;

use bytes::Bytes;
use nlimage::classic::nl_image_rotate_request::Rotation as Wire;
use nlimage::classic::{NlImage, NlImageRotateRequest};
use nlimage::v1::PixelFormat;
use nlimage_core::{ImageBuf, ImageInfo, Limits, mean3x3};
use nlimage_server::Config;
use tonic::Code;

fn gray(w: i32, h: i32, seed: u32) -> NlImage {
    NlImage {
        color: false,
        data: common::noise((w * h) as usize, seed).into(),
        width: w,
        height: h,
    }
}

#[tokio::test]
async fn an_8192_square_gray_mean_filter_passes_with_default_flags() {
    // 64 MiB of pixels: one byte over the old 64 MiB message limit.
    let server = common::server(Config::default()).await;
    let mut client = common::classic(&server).await;
    let img = gray(8192, 8192, 7);
    let want = mean3x3(
        &ImageBuf::from_raw(
            8192,
            8192,
            nlimage_core::PixelFormat::Gray8,
            img.data.to_vec(),
        )
        .unwrap(),
    )
    .unwrap();
    let out = client.mean_filter(img).await.unwrap().into_inner();
    assert_eq!((out.width, out.height, out.color), (8192, 8192, false));
    assert!(out.data[..] == want.data()[..], "bit-exact with the kernel");
}

#[tokio::test]
async fn a_288_mb_rgb_rotation_passes_with_default_flags() {
    let (w, h) = (12000usize, 8000usize);
    let server = common::server(Config::default()).await;
    let mut client = common::classic(&server)
        .await
        .max_decoding_message_size(300 << 20)
        .max_encoding_message_size(300 << 20);
    let data = common::noise(w * h * 3, 11);
    let img = NlImage {
        color: true,
        data: Bytes::from(data.clone()),
        width: w as i32,
        height: h as i32,
    };
    let out = client
        .rotate_image(NlImageRotateRequest {
            rotation: Wire::NinetyDeg as i32,
            image: Some(img),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((out.width, out.height), (h as i32, w as i32));
    // np.rot90: output row r, column c = input row c, column W-1-r. Checked on
    // every 7th row and column of the output (the kernels themselves are
    // checked against the naive reference elsewhere).
    for r in (0..w).step_by(7).chain([w - 1]) {
        for c in (0..h).step_by(7).chain([h - 1]) {
            let o = (r * h + c) * 3;
            let i = (c * w + (w - 1 - r)) * 3;
            assert_eq!(out.data[o..o + 3], data[i..i + 3], "output ({r}, {c})");
        }
    }
}

/// The gRPC status of a raw HTTP/2 request that sends only `prefix` and
/// keeps its stream open: a server that waited for the body would hang.
async fn status_of_prefix_only(addr: std::net::SocketAddr, prefix: [u8; 5]) -> (String, String) {
    let (response, mut send) = common::raw_open(addr, "/NLImageService/MeanFilter", &[]).await;
    send.send_data(Bytes::copy_from_slice(&prefix), false)
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("answered without the body")
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let message = percent_decode(&header("grpc-message"));
    (header("grpc-status"), message)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn a_message_over_the_image_limits_is_refused_before_its_body_is_read() {
    let server = common::server(Config {
        limits: Limits {
            max_pixels: 1000,
            max_dimension: 1000,
        },
        ..Config::default()
    })
    .await;
    // Claims a 1 MiB message; a 1000-pixel RGB image is at most 3000 bytes.
    let (code, message) = status_of_prefix_only(server.addr(), [0, 0, 0x10, 0, 0]).await;
    assert_eq!(
        code,
        (Code::ResourceExhausted as i32).to_string(),
        "{message}"
    );
    assert!(message.contains("1048576 bytes"), "{message}");
    assert!(message.contains("--max-pixels"), "{message}");
    // A hard ceiling below the limits names its own flag.
    let capped = common::server(Config {
        max_message_bytes: Some(100),
        ..Config::default()
    })
    .await;
    let (code, message) = status_of_prefix_only(capped.addr(), [0, 0, 0, 1, 0]).await;
    assert_eq!(
        code,
        (Code::ResourceExhausted as i32).to_string(),
        "{message}"
    );
    assert!(message.contains("--max-message-mib"), "{message}");
}

#[tokio::test]
async fn a_message_that_does_not_fit_the_budget_yet_waits_for_it_unread() {
    let server = common::server(Config {
        memory_budget: 16 << 20,
        queue_timeout: Duration::from_secs(2),
        ..Config::default()
    })
    .await;
    // A mean-filter stream left open holds about 8 MiB of the budget.
    let mut streaming = common::streaming(&server).await;
    let (tx, inbound) = common::open_process(
        &mut streaming,
        common::msg::header(1000, 1000, PixelFormat::Gray8, vec![common::msg::mean()]),
    )
    .await;
    // A 5 MB image needs 10 MB (its message and its answer): not free yet.
    let mut classic = common::classic(&server).await;
    let started = std::time::Instant::now();
    let e = classic.mean_filter(gray(2500, 2000, 1)).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    assert!(e.message().contains("did not come free"), "{}", e.message());
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "it waited"
    );
    // The same call, with the stream closed while it waits, goes through.
    let img = gray(2500, 2000, 2);
    let want = mean3x3(
        &ImageBuf::new(
            ImageInfo::new(2500, 2000, nlimage_core::PixelFormat::Gray8).unwrap(),
            img.data.to_vec(),
        )
        .unwrap(),
    )
    .unwrap();
    let mut c2 = classic.clone();
    let call = tokio::spawn(async move { c2.mean_filter(img).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!call.is_finished(), "waits while the budget is held");
    drop((tx, inbound));
    let out = call.await.unwrap().unwrap().into_inner();
    assert!(out.data[..] == want.data()[..]);
}
