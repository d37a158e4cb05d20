//! The plain-HTTP gateway over a real socket: uploads, fetches with
//! operations, ETag/304, HEAD, deletes, signed URLs, rate limits, the bearer
//! token, and /healthz.

mod common;

use std::io::Cursor;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use nlimage_core::{ImageBuf, ImageInfo, Limits, OutputFormat, PixelFormat};
use nlimage_server::Config;
use nlimage_server::http::sign;
use nlimage_server::ratelimit::RateSpec;
use nlimage_server::store::{StoreConfig, StoreLocation};
use reqwest::StatusCode;

fn config(dir: &std::path::Path) -> Config {
    Config {
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        store: StoreConfig {
            location: StoreLocation::Dir(dir.join("store")),
            ..StoreConfig::default()
        },
        jobs: nlimage_server::jobs::JobsConfig {
            database: Some(format!("sqlite://{}", dir.join("jobs.sqlite").display())),
            ..Default::default()
        },
        ..Config::default()
    }
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let info = ImageInfo::new(w, h, PixelFormat::Rgb8).unwrap();
    let data = (0..info.byte_len()).map(|i| (i * 7 % 251) as u8).collect();
    let img = ImageBuf::new(info, data).unwrap();
    let mut out = Cursor::new(Vec::new());
    nlimage_core::encode(&img, OutputFormat::Png, &mut out).unwrap();
    out.into_inner()
}

async fn upload(c: &reqwest::Client, base: &str, bytes: Vec<u8>) -> serde_json::Value {
    let r = c
        .post(format!("{base}/v1/images?filename=a.png"))
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

fn base(addr: Option<SocketAddr>) -> String {
    format!("http://{}", addr.expect("the gateway is on"))
}

#[tokio::test]
async fn upload_fetch_cache_and_delete_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::server(config(dir.path())).await;
    let base = base(server.http_addr());
    let c = common::http();
    let file = png(64, 48);
    let up = upload(&c, &base, file.clone()).await;
    let id = up["id"].as_str().unwrap().to_owned();
    assert_eq!(id, nlimage_server::store::id::of(&file));
    assert_eq!(
        (up["width"].as_u64(), up["height"].as_u64()),
        (Some(64), Some(48))
    );
    assert!(
        up["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v1/images/{id}.png"))
    );

    // The original, by its own extension and with none.
    for url in [
        format!("{base}/v1/images/{id}.png"),
        format!("{base}/v1/images/{id}"),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "image/png");
        assert_eq!(r.bytes().await.unwrap(), file);
    }

    // A thumbnail as WebP: computed once, then served from the cache.
    let url = format!("{base}/v1/images/{id}.webp?op=thumbnail:16&op=blur:1");
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/webp");
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(r.headers()["x-nlimage-cache"], "miss");
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let body = r.bytes().await.unwrap();
    let img = nlimage_core::decode(Cursor::new(&body[..]), &Limits::DEFAULT).unwrap();
    assert_eq!((img.info().width(), img.info().height()), (16, 12));
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.headers()["x-nlimage-cache"], "hit");
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(r.bytes().await.unwrap(), body);

    // Conditional and HEAD.
    let r = c
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = c.head(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-length"],
        body.len().to_string().as_str()
    );
    assert!(r.bytes().await.unwrap().is_empty());

    // Byte ranges.
    let r = c
        .get(&url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes 10-19/{}", body.len())
    );
    assert_eq!(r.bytes().await.unwrap(), body.slice(10..20));
    let r = c
        .get(&url)
        .header("range", format!("bytes={}-", body.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // Mistakes say what is wrong.
    let r = c
        .get(format!("{base}/v1/images/{id}.png?op=wobble:2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let e: serde_json::Value = r.json().await.unwrap();
    assert!(e["error"].as_str().unwrap().contains("wobble"), "{e}");
    let r = c
        .get(format!("{base}/v1/images/{id}.xyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .post(format!("{base}/v1/images"))
        .body("not an image, only some text")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Deleted: gone, with its results.
    let r = c
        .delete(format!("{base}/v1/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let d: serde_json::Value = r.json().await.unwrap();
    assert_eq!(d["results_removed"], 1);
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Health for load balancers.
    let r = c.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let h: serde_json::Value = r.json().await.unwrap();
    assert_eq!(h["status"], "serving");
    assert_eq!(h["store"]["reachable"], true);
    assert_eq!(h["jobs"]["reachable"], true);
    assert_eq!(h["jobs"]["queued"], 0);
    assert!(h["memory_budget_bytes"].as_u64().unwrap() > 0);
    assert!(h["workers"].as_u64().unwrap() >= 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn signed_urls_are_required_when_a_key_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.url_signing_key = Some(b"k3y".to_vec());
    // A signing key without a token would leave writes open: refused.
    let Err(e) = nlimage_server::spawn("127.0.0.1:0", cfg.clone()).await else {
        panic!("started with a signing key and no token");
    };
    assert!(e.to_string().contains("--auth-token-file"), "{e}");
    cfg.auth_token = Some("t0k".into());
    let server = common::server(cfg).await;
    let base = base(server.http_addr());
    let c = common::http();
    let r = c
        .post(format!("{base}/v1/images"))
        .body(png(10, 10))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "writes need the token"
    );
    let r = c
        .post(format!("{base}/v1/images"))
        .bearer_auth("t0k")
        .body(png(10, 10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/images/{id}.jpg");
    let query = "op=gray&q=80";
    let get = |q: String| {
        let c = c.clone();
        let url = format!("{base}{path}?{q}");
        async move { c.get(url).send().await.unwrap().status() }
    };
    assert_eq!(get(query.to_owned()).await, StatusCode::FORBIDDEN);
    let wrong = sign::sign(b"other", &format!("{path}?{query}"));
    assert_eq!(
        get(format!("{query}&sig={wrong}")).await,
        StatusCode::FORBIDDEN
    );
    let sig = sign::sign(b"k3y", &format!("{path}?{query}"));
    assert_eq!(get(format!("{query}&sig={sig}")).await, StatusCode::OK);
    // The signature covers the query: another operation needs another one.
    assert_eq!(
        get(format!("op=blur:3&sig={sig}")).await,
        StatusCode::FORBIDDEN
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn rate_limits_answer_429_on_http_and_resource_exhausted_on_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.rate_limit = Some(RateSpec {
        count: NonZeroU32::new(1).unwrap(),
        per: Duration::from_secs(60),
        burst: Some(NonZeroU32::new(3).unwrap()),
    });
    let server = common::server(cfg).await;
    let base = base(server.http_addr());
    let c = common::http();
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(
            c.get(format!("{base}/v1/images/{}", "0".repeat(64)))
                .send()
                .await
                .unwrap()
                .status(),
        );
    }
    assert_eq!(codes, [StatusCode::NOT_FOUND; 3], "the burst passes");
    let r = c
        .get(format!("{base}/v1/images/{}", "0".repeat(64)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // The same client (by address) over gRPC shares the bucket.
    let mut grpc = common::streaming(&server).await;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    drop(tx);
    let e = grpc
        .process(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert!(e.message().contains("rate limit"), "{}", e.message());
    // Health checks are not limited.
    let r = c.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_bearer_token_guards_http_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.auth_token = Some("s3cret".into());
    let server = common::server(cfg).await;
    let base = base(server.http_addr());
    let c = common::http();
    let r = c
        .post(format!("{base}/v1/images"))
        .body(png(4, 4))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .post(format!("{base}/v1/images"))
        .bearer_auth("s3cret")
        .body(png(4, 4))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("{base}/v1/images/{id}.png");
    assert_eq!(
        c.get(&url).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        c.get(&url)
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    server.shutdown().await.unwrap();
}
