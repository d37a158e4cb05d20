//! The attacks of the security review, replayed over real sockets against a
//! running server; each test is named after what must hold, and each failed
//! before the fixes (see docs/security.md for the threat model).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use nlimage::v1::image_store_client::ImageStoreClient;
use nlimage::v1::{PutHeader, PutRequest, put_request};
use nlimage_server::ratelimit::RateSpec;
use nlimage_server::store::{StoreConfig, StoreLocation};
use nlimage_server::{Config, HttpTimeouts};
use reqwest::StatusCode;

fn config(dir: &std::path::Path) -> Config {
    Config {
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        store: StoreConfig {
            location: StoreLocation::Dir(dir.join("store")),
            ..StoreConfig::default()
        },
        ..Config::default()
    }
}

fn base(s: &nlimage_server::ServerHandle) -> String {
    format!("http://{}", s.http_addr().unwrap())
}

async fn post(
    c: &reqwest::Client,
    base: &str,
    body: Vec<u8>,
    token: Option<&str>,
) -> reqwest::Response {
    let mut r = c.post(format!("{base}/v1/images")).body(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

async fn id_of(r: reqwest::Response) -> String {
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A GIF with a `sw`x`sh` logical screen and frames of the sizes given.
fn gif(sw: u16, sh: u16, frames: &[(u16, u16)]) -> Vec<u8> {
    let mut v = b"GIF89a".to_vec();
    v.extend(sw.to_le_bytes());
    v.extend(sh.to_le_bytes());
    v.extend([0x80, 0, 0, 0, 0, 0, 255, 255, 255]);
    for &(w, h) in frames {
        v.push(0x2C);
        v.extend([0, 0, 0, 0]);
        v.extend(w.to_le_bytes());
        v.extend(h.to_le_bytes());
        v.extend([0, 2, 2, 0x4c, 0x01, 0]);
    }
    v.push(0x3B);
    v
}

#[tokio::test]
async fn callers_without_the_token_cannot_spend_a_token_holders_rate() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.auth_token = Some("s3cret".into());
    cfg.rate_limit = Some(RateSpec {
        count: NonZeroU32::new(1).unwrap(),
        per: Duration::from_secs(60),
        burst: Some(NonZeroU32::new(3).unwrap()),
    });
    let server = common::server(cfg).await;
    let (c, base) = (common::http(), base(&server));
    let url = format!("{base}/v1/images/{}", "0".repeat(64));
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(c.get(&url).send().await.unwrap().status().as_u16());
    }
    assert_eq!(
        codes,
        [401, 401, 401, 429, 429, 429],
        "floods without the token are limited"
    );
    // The token holder still has their whole burst, over HTTP ...
    let r = c.get(&url).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "authorized, not limited");
    // ... and over gRPC.
    let mut store = ImageStoreClient::new(common::channel(&server).await);
    let mut req = tonic::Request::new(nlimage::v1::StatRequest { id: "0".repeat(64) });
    req.metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    let e = store.stat(req).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
    // A wrong token is charged to the address too.
    let r = c.get(&url).bearer_auth("guess").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_gif_frame_over_the_limits_is_refused_whatever_its_screen() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.max_pixels = 4_000_000;
    let server = common::server(cfg).await;
    let (c, base) = (common::http(), base(&server));
    for bomb in [
        gif(1, 1, &[(2800, 2800)]),
        gif(1, 1, &[(8000, 8000)]),
        gif(50, 50, &[(50, 50), (4000, 4000)]),
    ] {
        let r = post(&c, &base, bomb, None).await;
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("GIF frame"),
            "{body}"
        );
    }
    // Over gRPC too, whatever the chunking.
    let mut store = ImageStoreClient::new(common::channel(&server).await);
    let mut msgs = vec![PutRequest {
        message: Some(put_request::Message::Header(PutHeader::default())),
    }];
    for b in gif(1, 1, &[(2800, 2800)]).chunks(3) {
        msgs.push(PutRequest {
            message: Some(put_request::Message::Chunk(b.to_vec().into())),
        });
    }
    let e = store.put(tokio_stream::iter(msgs)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e}");
    // A real animated GIF passes.
    let frame = |v: u8| {
        image::Frame::new(image::RgbaImage::from_pixel(
            40,
            30,
            image::Rgba([v, 0, 0, 255]),
        ))
    };
    let mut file = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut file);
        enc.encode_frames([frame(10), frame(200)]).unwrap();
    }
    let id = id_of(post(&c, &base, file, None).await).await;
    let r = c
        .get(format!("{base}/v1/images/{id}.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    server.shutdown().await.unwrap();
}

/// Sends `head` on a raw connection and leaves it open.
fn stall(addr: SocketAddr, head: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s
}

/// Whether the server closed `s` (reads EOF or an answer, then EOF) within
/// `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    let t0 = Instant::now();
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return t0.elapsed() < limit,
        }
    }
}

#[tokio::test]
async fn stalled_uploads_hold_no_memory_and_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.memory_budget = 70 << 20;
    cfg.http_timeouts = HttpTimeouts {
        header: Duration::from_secs(2),
        body_idle: Duration::from_secs(2),
        ..HttpTimeouts::default()
    };
    let server = common::server(cfg).await;
    let (c, base) = (common::http(), base(&server));
    let addr = server.http_addr().unwrap();
    let head = "POST /v1/images HTTP/1.1\r\nhost: x\r\ncontent-length: 10000000\r\n\r\n";
    let stalled = [stall(addr, head), stall(addr, head)];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let h: serde_json::Value = c
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        h["memory_in_use_bytes"], 0,
        "headers alone reserve nothing: {h}"
    );
    // Others upload and render meanwhile, at once.
    let t0 = Instant::now();
    let id = id_of(post(&c, &base, common::bmp(300, 200, 300 ^ 200), None).await).await;
    let r = c
        .get(format!("{base}/v1/images/{id}.png?op=gray"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // (Before, the two stalled uploads held 64 MiB of the 70: this one waited
    // the queue timeout, then got 503.)
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    // The stalled ones are cut off at the body-idle timeout (read on a
    // blocking thread: the server runs on this test's runtime).
    let slow = stall(addr, "GET /healthz HTTP/1.1\r\n");
    let closed = tokio::task::spawn_blocking(move || {
        let mut all: Vec<TcpStream> = stalled.into_iter().collect();
        all.push(slow);
        all.iter_mut()
            .map(|s| closed_within(s, Duration::from_secs(8)))
            .collect::<Vec<bool>>()
    })
    .await
    .unwrap();
    // The last: a request line whose headers never end, cut at the header
    // timeout.
    assert_eq!(
        closed,
        [true, true, true],
        "stalled connections stayed open"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_delete_makes_every_derived_url_404_and_leaves_no_result_behind() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::server(config(dir.path())).await;
    let (c, base) = (common::http(), base(&server));
    let id = id_of(post(&c, &base, common::bmp(900, 700, 900 ^ 700), None).await).await;
    // A cached derived result, and an expensive one in flight during the delete.
    let cached = format!("{base}/v1/images/{id}.png?op=gray");
    assert_eq!(
        c.get(&cached).send().await.unwrap().status(),
        StatusCode::OK
    );
    let slow = format!("{base}/v1/images/{id}.png?op=blur:15");
    let in_flight = tokio::spawn({
        let (c, slow) = (c.clone(), slow.clone());
        async move { c.get(slow).send().await.unwrap().status() }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let r = c
        .delete(format!("{base}/v1/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let done = in_flight.await.unwrap();
    assert!(
        done == StatusCode::NOT_FOUND || done == StatusCode::OK,
        "{done}"
    );
    for url in [
        &cached,
        &slow,
        &format!("{base}/v1/images/{id}.jpg?op=gray"),
    ] {
        assert_eq!(
            c.get(url).send().await.unwrap().status(),
            StatusCode::NOT_FOUND,
            "{url}"
        );
    }
    // Nothing of it is left in the store, and a second delete says so.
    let results = dir.path().join("store/results").join(&id);
    let left = std::fs::read_dir(&results).map_or(0, |d| d.count());
    assert_eq!(left, 0, "results left in {}", results.display());
    let r = c
        .delete(format!("{base}/v1/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn remote_sources_refuse_every_ipv6_form_of_a_private_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::server(config(dir.path())).await;
    let mut store = ImageStoreClient::new(common::channel(&server).await);
    for url in [
        "http://[::127.0.0.1]/a.png",
        "http://[::ffff:0:127.0.0.1]/a.png",
        "http://[2002:7f00:1::]/a.png",
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/a.png",
        "http://[fec0::1]/a.png",
        "http://localhost/a.png",
    ] {
        let msg = PutRequest {
            message: Some(put_request::Message::Header(PutHeader {
                source_url: url.into(),
                ..PutHeader::default()
            })),
        };
        let e = store.put(tokio_stream::iter([msg])).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{url}: {e}");
        assert!(e.message().contains("sources must be public"), "{url}: {e}");
        // The resolver's answers are not told.
        if url.contains("localhost") {
            assert!(
                !e.message().contains("127.0.0.1") && !e.message().contains("::1"),
                "{e}"
            );
        }
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn small_leaks_and_unbounded_requests_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.auth_token = Some("s3cret".into());
    cfg.http_timeouts.render = Duration::from_millis(300);
    let server = common::server(cfg).await;
    let (c, base) = (common::http(), base(&server));
    // /healthz is open, but names no path without the token.
    let open: serde_json::Value = c
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(open["store"].get("location").is_none(), "{open}");
    let with: serde_json::Value = c
        .get(format!("{base}/healthz"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(with["store"]["location"].is_string(), "{with}");
    // Location and url never echo the client's Host header.
    let r = c
        .post(format!("{base}/v1/images"))
        .bearer_auth("s3cret")
        .header("host", "evil.example")
        .body(common::bmp(64, 48, 64 ^ 48))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&base), "{location}");
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // File names are bounded.
    let r = c
        .post(format!("{base}/v1/images?filename={}", "n".repeat(60_000)))
        .bearer_auth("s3cret")
        .body(common::bmp(8, 8, 8 ^ 8))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Operations per request are capped.
    let many: String = (0..40).map(|_| "op=gray").collect::<Vec<_>>().join("&");
    let r = c
        .get(format!("{base}/v1/images/{id}.png?{many}"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // A render past --render-timeout is stopped with 504.
    let heavy: String = (0..30).map(|_| "op=blur:30").collect::<Vec<_>>().join("&");
    let r = c
        .get(format!("{base}/v1/images/{id}.png?{heavy}"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    // A store fault names the object, not the host's path.
    // (The original replaced by a symbolic link to itself: reading it fails
    // with the host's path in the backend's error.)
    let original = dir.path().join("store/images").join(&id);
    std::fs::remove_file(&original).unwrap();
    std::os::unix::fs::symlink(&original, &original).unwrap();
    let r = c
        .get(format!("{base}/v1/images/{id}.png?op=blur:1"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = r.text().await.unwrap();
    assert!(!text.contains(dir.path().to_str().unwrap()), "{text}");
    assert!(text.contains(&format!("images/{id}")), "{text}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_gateway_serves_tls_with_the_grpc_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let mut cfg = config(dir.path());
    cfg.tls = Some(nlimage_server::TlsPem {
        cert: ca.cert.pem().into_bytes(),
        key: ca.signing_key.serialize_pem().into_bytes(),
    });
    let server = common::server(cfg.clone()).await;
    let port = server.http_addr().unwrap().port();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .build()
        .unwrap();
    let r = trusting
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Plaintext is not served beside TLS gRPC ...
    assert!(
        common::http()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_err()
    );
    server.shutdown().await.unwrap();
    // ... unless asked for.
    cfg.http_plaintext = true;
    let server = common::server(cfg).await;
    let r = common::http()
        .get(format!("{}/healthz", base(&server)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    server.shutdown().await.unwrap();
}
