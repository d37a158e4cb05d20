//! The image store end to end: the client library against a real server on
//! 127.0.0.1 with a local-directory store in a temporary directory.

mod common;

use std::io::Cursor;
use std::sync::Arc;

use common::{encoded, picture};
use nlimage_client::{Client, GetOptions, Operation, PutOptions, Rotation};
use nlimage_core::{Limits, OutputFormat, PixelFormat};
use nlimage_server::Config;
use nlimage_server::store::{StoreConfig, StoreLocation};
use prost::bytes::Bytes;
use tonic::Code;

fn with_store(dir: &std::path::Path) -> Config {
    Config {
        store: StoreConfig {
            location: StoreLocation::Dir(dir.to_owned()),
            max_upload: 16 << 20,
            ..StoreConfig::default()
        },
        ..Config::default()
    }
}

fn code(e: nlimage_client::ClientError) -> Code {
    match e {
        nlimage_client::ClientError::Status(s) => s.code(),
        other => panic!("not a status: {other}"),
    }
}

fn decode(bytes: &[u8]) -> nlimage_core::ImageBuf {
    nlimage_core::decode(Cursor::new(bytes), &Limits::DEFAULT).unwrap()
}

#[tokio::test]
async fn put_is_content_addressed_and_get_converts_and_applies_operations() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::server(with_store(dir.path())).await;
    let client = common::client(&server).await;
    let img = picture(37, 23, PixelFormat::Rgb8);
    let png = encoded(&img, OutputFormat::Png);
    let options = PutOptions {
        filename: "a.png".into(),
        labels: [("team".to_owned(), "x".to_owned())].into(),
        ..PutOptions::default()
    };
    let stored = client
        .put(Bytes::from(png.clone()), options.clone())
        .await
        .unwrap();
    assert_eq!(stored.id, nlimage_server::store::id::of(&png));
    assert_eq!(
        (stored.format.as_str(), stored.width, stored.height),
        ("png", 37, 23)
    );
    assert_eq!(stored.bytes, png.len() as u64);
    assert_eq!(stored.filename, "a.png");
    // The same bytes again: the same id, the first upload's metadata.
    let again = client
        .put(Bytes::from(png.clone()), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(again.id, stored.id);
    assert_eq!(again.filename, "a.png");
    assert_eq!(client.stat(&stored.id).await.unwrap(), stored);

    // As uploaded: the very bytes, tagged by the id.
    let orig = client
        .get(&stored.id, &GetOptions::default())
        .await
        .unwrap();
    assert_eq!(orig.bytes, png);
    assert_eq!(orig.header.content_type, "image/png");

    // Converted, with operations: the same pixels as the core pipeline.
    let ops = vec![Operation::Rotate(Rotation::Ccw90), Operation::Gray];
    let get = GetOptions {
        format: Some("bmp".into()),
        ops: ops.clone(),
        ..GetOptions::default()
    };
    let first = client.get(&stored.id, &get).await.unwrap();
    assert!(!first.header.cached);
    assert_eq!(first.header.content_type, "image/bmp");
    assert_eq!((first.header.width, first.header.height), (23, 37));
    let want = nlimage_core::Pipeline::apply(&img, &ops).unwrap();
    let got = decode(&first.bytes);
    let gray: Vec<u8> = got.data().chunks_exact(3).map(|p| p[0]).collect();
    assert_eq!(gray, want.data(), "BMP stores gray as R=G=B");

    // The second time from the cache, identical, with the same tag.
    let second = client.get(&stored.id, &get).await.unwrap();
    assert!(second.header.cached);
    assert_eq!(second.bytes, first.bytes);
    assert_eq!(second.header.tag, first.header.tag);
    assert_eq!((second.header.width, second.header.height), (23, 37));

    // Not modified: a header and no bytes.
    let cond = GetOptions {
        if_none_match: Some(first.header.tag.clone()),
        ..get.clone()
    };
    let nm = client.get(&stored.id, &cond).await.unwrap();
    assert!(nm.header.not_modified);
    assert!(nm.bytes.is_empty());
    let nm = client
        .get(
            &stored.id,
            &GetOptions {
                if_none_match: Some(orig.header.tag.clone()),
                ..GetOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(nm.header.not_modified);

    // JPEG quality changes the result.
    let q = |quality| GetOptions {
        format: Some("jpg".into()),
        jpeg_quality: Some(quality),
        ..GetOptions::default()
    };
    let low = client.get(&stored.id, &q(10)).await.unwrap();
    let high = client.get(&stored.id, &q(95)).await.unwrap();
    assert!(low.bytes.len() < high.bytes.len());
    assert_ne!(low.header.tag, high.header.tag);

    // Listed, then deleted with its results.
    let (page, next) = client.list(10, "").await.unwrap();
    assert_eq!(page.len(), 1);
    assert!(next.is_empty());
    let removed = client.delete(&stored.id).await.unwrap();
    assert_eq!(removed, 3, "the BMP and the two JPEG results");
    assert_eq!(
        code(client.stat(&stored.id).await.unwrap_err()),
        Code::NotFound
    );
    assert_eq!(
        code(client.get(&stored.id, &get).await.unwrap_err()),
        Code::NotFound
    );
    assert_eq!(
        code(client.delete(&stored.id).await.unwrap_err()),
        Code::NotFound
    );
    let mut left = Vec::new();
    for e in walk(dir.path()) {
        left.push(e);
    }
    assert!(
        left.iter().all(|p| !p.contains(&stored.id)),
        "nothing of the image is left: {left:?}"
    );
    server.shutdown().await.unwrap();
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[tokio::test]
async fn bad_uploads_are_refused_before_anything_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = with_store(dir.path());
    config.limits = Limits {
        max_pixels: 1000,
        max_dimension: 100,
    };
    let server = common::server(config).await;
    let client = common::client(&server).await;
    let put = |b: Vec<u8>| client.put(Bytes::from(b), PutOptions::default());
    let e = put(b"just some text, not an image at all".to_vec())
        .await
        .unwrap_err();
    assert_eq!(code(e), Code::InvalidArgument);
    assert_eq!(
        code(put(Vec::new()).await.unwrap_err()),
        Code::InvalidArgument
    );
    // A header declaring too many pixels: refused from the header.
    let big = encoded(&picture(200, 50, PixelFormat::Gray8), OutputFormat::Png);
    let e = put(big).await.unwrap_err();
    assert_eq!(code(e), Code::ResourceExhausted);
    // Over --max-upload-mib (16 MiB here): a PNG header, then too many bytes.
    let mut huge = encoded(&picture(10, 10, PixelFormat::Gray8), OutputFormat::Png);
    huge.resize(17 << 20, 0);
    let e = put(huge).await.unwrap_err();
    assert_eq!(code(e), Code::ResourceExhausted);
    // A truncated file whose header is incomplete.
    let png = encoded(&picture(10, 10, PixelFormat::Gray8), OutputFormat::Png);
    let e = put(png[..20].to_vec()).await.unwrap_err();
    assert_eq!(code(e), Code::InvalidArgument);
    let (page, _) = client.list(10, "").await.unwrap();
    assert!(page.is_empty());
    assert!(
        walk(dir.path()).is_empty(),
        "no file left: {:?}",
        walk(dir.path())
    );
    // Malformed and unknown ids.
    assert_eq!(
        code(client.stat("../etc").await.unwrap_err()),
        Code::InvalidArgument
    );
    assert_eq!(
        code(client.stat(&"ab".repeat(32)).await.unwrap_err()),
        Code::NotFound
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn large_files_stream_through_staging_and_concurrent_gets_compute_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::server(with_store(dir.path())).await;
    let client = common::client(&server).await;
    // An uncompressed BMP over the single-PUT size (8 MiB): a multipart upload.
    let img = picture(1700, 1800, PixelFormat::Rgb8);
    let bmp = encoded(&img, OutputFormat::Bmp);
    assert!(bmp.len() > 8 << 20);
    let stored = client
        .put(Bytes::from(bmp.clone()), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(stored.id, nlimage_server::store::id::of(&bmp));
    let orig = client
        .get(&stored.id, &GetOptions::default())
        .await
        .unwrap();
    assert!(orig.bytes == bmp);
    assert!(walk(&dir.path().join("staging")).is_empty());

    let client = Arc::new(client);
    let get = GetOptions {
        format: Some("png".into()),
        ops: vec![Operation::parse("thumbnail=64").unwrap()],
        ..GetOptions::default()
    };
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (c, g, id) = (Arc::clone(&client), get.clone(), stored.id.clone());
            tokio::spawn(async move { c.get(&id, &g).await.unwrap() })
        })
        .collect();
    let mut computed = 0;
    let mut tags = std::collections::HashSet::new();
    for t in tasks {
        let f = t.await.unwrap();
        computed += usize::from(!f.header.cached);
        tags.insert(f.header.tag);
    }
    assert_eq!(
        computed, 1,
        "single flight: one computation for eight requests"
    );
    assert_eq!(tags.len(), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_server_without_a_store_says_so() {
    let server = common::server(Config::default()).await;
    let client: Client = common::client(&server).await;
    let e = client.list(1, "").await.unwrap_err();
    assert_eq!(code(e), Code::Unavailable);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn process_takes_a_stored_image_as_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::server(with_store(dir.path())).await;
    let mut client = common::client(&server).await;
    let img = picture(29, 31, PixelFormat::Rgba8);
    let png = encoded(&img, OutputFormat::Png);
    let id = client
        .put(Bytes::from(png), PutOptions::default())
        .await
        .unwrap()
        .id;
    let ops = [
        Operation::parse("blur=1.5").unwrap(),
        Operation::Rotate(Rotation::Ccw270),
    ];
    let mut out = client.process_stored(&id, &ops).await.unwrap();
    let info = out.info();
    let mut pixels = Vec::new();
    while let Some(c) = out.next_chunk().await.unwrap() {
        pixels.extend_from_slice(&c);
    }
    let want = nlimage_core::Pipeline::apply(&img, &ops).unwrap();
    assert_eq!(info, want.info());
    assert!(pixels == want.data(), "the same pixels as uploading them");
    let e = client
        .process_stored(&"cd".repeat(32), &ops)
        .await
        .err()
        .unwrap();
    assert_eq!(code(e), Code::NotFound);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn shrink_on_load_gives_the_same_size_as_exact_and_close_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::server(with_store(dir.path())).await;
    let client = common::client(&server).await;
    // A smooth photo-like gradient, as a JPEG.
    let info = nlimage_core::ImageInfo::new(640, 480, PixelFormat::Rgb8).unwrap();
    let data = (0..info.byte_len())
        .map(|i| {
            let (p, c) = (i / 3, i % 3);
            let (x, y) = (p % 640, p / 640);
            ((x / 3 + y / 4 + c * 50) % 256) as u8
        })
        .collect();
    let img = nlimage_core::ImageBuf::new(info, data).unwrap();
    let jpg = encoded(&img, OutputFormat::Jpeg);
    let id = client
        .put(Bytes::from(jpg), PutOptions::default())
        .await
        .unwrap()
        .id;
    for spec in [
        "thumbnail=64",
        "resize=100x90:fill",
        "resize=300x:fit:linear",
    ] {
        let exact = GetOptions {
            format: Some("png".into()),
            ops: vec![Operation::parse(spec).unwrap(), Operation::Gray],
            exact: true,
            ..GetOptions::default()
        };
        let shrunk = GetOptions {
            exact: false,
            ..exact.clone()
        };
        let a = decode(&client.get(&id, &exact).await.unwrap().bytes);
        let fetched = client.get(&id, &shrunk).await.unwrap();
        assert!(!fetched.header.cached, "{spec}: a result of its own");
        let b = decode(&fetched.bytes);
        assert_eq!(a.info(), b.info(), "{spec}: the same size");
        let diffs: Vec<u32> = a
            .data()
            .iter()
            .zip(b.data())
            .map(|(x, y)| u32::from(x.abs_diff(*y)))
            .collect();
        let mean = diffs.iter().sum::<u32>() as f64 / diffs.len() as f64;
        assert!(mean < 1.5, "{spec}: mean |diff| {mean}");
        if spec == "thumbnail=64" {
            // 1/4 of 640x480 is still twice 64x48: shrink-on-load ran.
            assert!(a.data() != b.data(), "{spec}: decoded at a reduced size");
        }
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_result_the_cache_cannot_keep_is_still_answered_whole() {
    // No memory tier: what is not written to the store is not kept at all.
    let dir = tempfile::tempdir().unwrap();
    let mut config = with_store(dir.path());
    config.store.memory_cache = 0;
    let server = common::server(config).await;
    let client = common::client(&server).await;
    let img = picture(61, 47, PixelFormat::Rgb8);
    let id = client
        .put(
            Bytes::from(encoded(&img, OutputFormat::Png)),
            PutOptions::default(),
        )
        .await
        .unwrap()
        .id;
    // A file where the image's results directory would go: every write of
    // a result fails (as a full or broken disk would), behind the answer.
    let results = dir.path().join("results");
    std::fs::create_dir_all(&results).unwrap();
    std::fs::write(results.join(&id), b"in the way").unwrap();
    let get = GetOptions {
        format: Some("png".into()),
        ops: vec![Operation::Gray],
        ..GetOptions::default()
    };
    let want = nlimage_core::Pipeline::apply(&img, &[Operation::Gray]).unwrap();
    for _ in 0..2 {
        let r = client.get(&id, &get).await.unwrap();
        assert!(!r.header.cached, "nothing could be kept, so it is computed");
        assert_eq!(decode(&r.bytes).data(), want.data(), "answered whole");
    }
    // A shutdown waits for the writes behind the answers (here, failures);
    // once the store takes writes again, the result is kept (behind its
    // answer) and the next request reads it.
    server.shutdown().await.unwrap();
    std::fs::remove_file(results.join(&id)).unwrap();
    let mut config = with_store(dir.path());
    config.store.memory_cache = 0;
    let server = common::server(config).await;
    let client = common::client(&server).await;
    let first = client.get(&id, &get).await.unwrap();
    assert!(!first.header.cached);
    let second = client.get(&id, &get).await.unwrap();
    assert!(second.header.cached, "kept after the first answer");
    assert_eq!(second.bytes, first.bytes);
    assert_eq!(client.delete(&id).await.unwrap(), 1, "one result swept");
    server.shutdown().await.unwrap();
}

/// Yields `data`, then fails: a file that cannot be read to its end.
struct Failing {
    data: std::io::Cursor<Vec<u8>>,
}

impl tokio::io::AsyncRead for Failing {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::io::Read;
        let mut tmp = vec![0; buf.remaining().min(1 << 20)];
        let n = self.data.read(&mut tmp).unwrap();
        if n == 0 {
            return std::task::Poll::Ready(Err(std::io::Error::other("disk on fire")));
        }
        buf.put_slice(&tmp[..n]);
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn an_upload_that_fails_part_way_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::server(with_store(dir.path())).await;
    let client = common::client(&server).await;
    // Over 8 MiB, so the first part already went to staging.
    let bmp = encoded(&picture(1800, 1700, PixelFormat::Rgb8), OutputFormat::Bmp);
    let half = bmp[..bmp.len() / 2 + (1 << 20)].to_vec();
    let options = PutOptions {
        length: Some(bmp.len() as u64),
        ..PutOptions::default()
    };
    let e = client
        .put_reader(
            Failing {
                data: std::io::Cursor::new(half.clone()),
            },
            options.clone(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("disk on fire"), "{e}");
    // A stream that ends short of its announced length.
    let e = client
        .put_reader(std::io::Cursor::new(half), options)
        .await
        .unwrap_err();
    assert_eq!(code(e), Code::InvalidArgument);
    let (page, _) = client.list(10, "").await.unwrap();
    assert!(page.is_empty());
    assert!(walk(dir.path()).is_empty(), "{:?}", walk(dir.path()));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn concurrent_uploads_of_the_same_bytes_store_one_image() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::server(with_store(dir.path())).await;
    let client = Arc::new(common::client(&server).await);
    // Small (one PUT) and large (staging, then a rename), eight at once each.
    for (w, h) in [(40, 30), (1800, 1700)] {
        let bmp = Bytes::from(encoded(
            &picture(w, h, PixelFormat::Rgb8),
            OutputFormat::Bmp,
        ));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (c, b) = (Arc::clone(&client), bmp.clone());
                let options = PutOptions {
                    filename: format!("copy{i}.bmp"),
                    ..PutOptions::default()
                };
                tokio::spawn(async move { c.put(b, options).await.unwrap() })
            })
            .collect();
        let mut ids = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for t in tasks {
            let s = t.await.unwrap();
            ids.insert(s.id);
            names.insert(s.filename);
        }
        assert_eq!(ids.len(), 1);
        assert_eq!(
            names.len(),
            1,
            "every upload reports the first one's metadata"
        );
        let id = ids.into_iter().next().unwrap();
        let got = client.get(&id, &GetOptions::default()).await.unwrap();
        assert!(got.bytes == bmp);
    }
    let (page, _) = client.list(10, "").await.unwrap();
    assert_eq!(page.len(), 2);
    assert!(walk(&dir.path().join("staging")).is_empty());
    server.shutdown().await.unwrap();
}
