//! Real photographs through the store's fronts: every photo of the corpus
//! (`bench/photo_corpus.sh`, which `./setup.sh test` runs: 1-24 MP JPEGs
//! from Debian's wallpaper packages, baseline and progressive, with EXIF,
//! XMP and ICC segments) uploads over HTTP in small body frames and over
//! gRPC in 64 KiB chunks, some in 1- and 7-byte chunks through their
//! headers; and a refused upload's client gets its answer even when it
//! sends the whole body before reading.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use bytes::Bytes;
use nlimage::v1::image_store_client::ImageStoreClient;
use nlimage::v1::{PutHeader, PutRequest, put_request};
use nlimage_core::{Limits, OutputFormat};
use nlimage_server::Config;
use nlimage_server::store::{StoreConfig, StoreLocation};

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

/// The file in messages: `first` bytes in chunks of `small`, the rest in
/// chunks of `large`.
fn messages(file: &[u8], small: usize, first: usize, large: usize) -> Vec<PutRequest> {
    let mut msgs = vec![PutRequest {
        message: Some(put_request::Message::Header(PutHeader {
            length: file.len() as u64,
            ..PutHeader::default()
        })),
    }];
    let first = first.min(file.len());
    let chunk = |c: &[u8]| PutRequest {
        message: Some(put_request::Message::Chunk(Bytes::copy_from_slice(c))),
    };
    msgs.extend(file[..first].chunks(small).map(chunk));
    msgs.extend(file[first..].chunks(large).map(chunk));
    msgs
}

#[tokio::test]
async fn every_photo_uploads_over_both_fronts_whatever_the_chunking() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::server(config(dir.path())).await;
    let base = format!("http://{}", server.http_addr().unwrap());
    let http = common::http();
    let mut store = ImageStoreClient::new(common::channel(&server).await)
        .max_decoding_message_size(2 << 20)
        .max_encoding_message_size(2 << 20);
    for (i, path) in common::photo_corpus().into_iter().enumerate() {
        let file = std::fs::read(&path).unwrap();
        let (w, h) = image::ImageReader::new(std::io::Cursor::new(&file))
            .with_guessed_format()
            .unwrap()
            .into_dimensions()
            .unwrap();
        let id = nlimage_server::store::id::of(&file);
        // HTTP, the body in 1000-byte frames.
        let frames: Vec<Result<Bytes, std::io::Error>> = file
            .chunks(1000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let r = http
            .post(format!("{base}/v1/images"))
            .body(reqwest::Body::wrap_stream(tokio_stream::iter(frames)))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            201,
            "{}: {}",
            path.display(),
            r.text().await.unwrap()
        );
        let meta: serde_json::Value = r.json().await.unwrap();
        assert_eq!(meta["id"], id.as_str());
        assert_eq!(
            (meta["width"].as_u64(), meta["height"].as_u64()),
            (Some(w.into()), Some(h.into()))
        );
        // gRPC: 64 KiB chunks, and for some photos 1- or 7-byte chunks
        // through their first 256 KiB (where EXIF, XMP and ICC segments lie).
        let small = match i % 8 {
            0 => 1,
            1 => 7,
            _ => 64 << 10,
        };
        let stored = store
            .put(tokio_stream::iter(messages(
                &file,
                small,
                256 << 10,
                64 << 10,
            )))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .into_inner();
        assert_eq!((stored.id, stored.width, stored.height), (id, w, h));
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_refused_upload_answers_a_client_that_sends_its_whole_body_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::server(config(dir.path())).await;
    let addr = server.http_addr().unwrap();
    let body = vec![b'x'; 20 << 20];
    // As Python's requests does: the whole body written, then the answer read
    // (on a blocking thread: the server runs on this test's runtime).
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!(
            "POST /v1/images HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&body)
            .expect("the whole body is taken, not reset");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("refused before storing"), "{answer}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn format_auto_gives_each_client_the_format_it_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::server(config(dir.path())).await;
    let base = format!("http://{}", server.http_addr().unwrap());
    let http = common::http();
    let photo = std::fs::read(&common::photo_corpus()[0]).unwrap();
    let mut rgba = Vec::new();
    image::RgbaImage::from_pixel(40, 30, image::Rgba([200, 10, 10, 128]))
        .write_to(
            &mut std::io::Cursor::new(&mut rgba),
            image::ImageFormat::Png,
        )
        .unwrap();
    let mut ids = Vec::new();
    for file in [photo, rgba] {
        let r = http
            .post(format!("{base}/v1/images"))
            .body(file)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        ids.push(
            r.json::<serde_json::Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let chromium = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
    let get = |url: String, accept: &'static str| {
        let http = http.clone();
        async move {
            let r = http.get(url).header("accept", accept).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let h = r.headers().clone();
            (h, r.bytes().await.unwrap())
        }
    };
    for (id, plain) in [(&ids[0], "image/jpeg"), (&ids[1], "image/png")] {
        for url in [
            format!("{base}/v1/images/{id}.auto?op=thumbnail:128"),
            format!("{base}/v1/images/{id}?op=thumbnail:128&format=auto"),
        ] {
            let (h, body) = get(url.clone(), chromium).await;
            assert_eq!(h["content-type"], "image/avif", "{url}");
            assert_eq!(h["vary"], "accept");
            assert_eq!(&body[4..12], b"ftypavif");
            let avif = nlimage_core::decode(std::io::Cursor::new(&body), &Limits::DEFAULT).unwrap();
            assert!(avif.info().width() <= 128 && avif.info().height() <= 128);
            let avif_tag = h["etag"].clone();
            // A browser without AVIF: WebP.
            let (h, body) = get(url.clone(), "image/webp,*/*").await;
            assert_eq!(h["content-type"], "image/webp", "{url}");
            assert_eq!(&body[..4], b"RIFF");
            let webp_tag = h["etag"].clone();
            assert_ne!(webp_tag, avif_tag, "each variant its own tag");
            let (h, body) = get(url.clone(), "*/*").await;
            assert_eq!(h["content-type"], plain, "{url}");
            assert_ne!(h["etag"], webp_tag, "each variant its own tag");
            let img = image::load_from_memory(&body).unwrap();
            assert!(img.width() <= 128 && img.height() <= 128);
            // Each variant its own cache entry.
            for (accept, media) in [(chromium, "image/avif"), ("image/webp", "image/webp")] {
                let (h, _) = get(url.clone(), accept).await;
                assert_eq!(
                    (h["content-type"].clone(), h["x-nlimage-cache"].clone()),
                    (media.parse().unwrap(), "hit".parse().unwrap())
                );
            }
        }
    }
    // gRPC: format "auto" with the accepted list.
    let mut store =
        ImageStoreClient::new(common::channel(&server).await).max_decoding_message_size(2 << 20);
    let mut stream = store
        .get(nlimage::v1::GetRequest {
            id: ids[0].clone(),
            format: "auto".into(),
            operations: vec![nlimage::convert::to_wire(
                &nlimage_core::Operation::parse("thumbnail=64").unwrap(),
            )],
            accept: vec!["image/webp".into()],
            ..nlimage::v1::GetRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let Some(nlimage::v1::GetResponse {
        message: Some(nlimage::v1::get_response::Message::Header(h)),
    }) = stream.message().await.unwrap()
    else {
        panic!("no header")
    };
    assert_eq!(h.content_type, "image/webp");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn phone_photos_upload_and_come_back_in_every_format_asked() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::server(config(dir.path())).await;
    let base = format!("http://{}", server.http_addr().unwrap());
    let http = common::http();
    let mut store = ImageStoreClient::new(common::channel(&server).await)
        .max_decoding_message_size(2 << 20)
        .max_encoding_message_size(2 << 20);
    let phone = common::photo_corpus()[0].parent().unwrap().join("phone");
    let mut files: Vec<_> = std::fs::read_dir(&phone)
        .unwrap_or_else(|e| panic!("{}: {e}: run bench/photo_corpus.sh", phone.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "heic" || x == "avif"))
        .collect();
    files.sort();
    assert!(files.len() >= 8);
    for path in files {
        let file = std::fs::read(&path).unwrap();
        let format = path.extension().unwrap().to_str().unwrap().to_owned();
        // HTTP in 1000-byte frames, gRPC in 7-byte chunks.
        let frames: Vec<Result<Bytes, std::io::Error>> = file
            .chunks(1000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let r = http
            .post(format!("{base}/v1/images"))
            .body(reqwest::Body::wrap_stream(tokio_stream::iter(frames)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", path.display());
        let meta: serde_json::Value = r.json().await.unwrap();
        assert_eq!(meta["format"], format.as_str());
        let id = meta["id"].as_str().unwrap().to_owned();
        let stored = store
            .put(tokio_stream::iter(messages(&file, 7, file.len(), 64 << 10)))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .into_inner();
        assert_eq!(stored.id, id);
        let (w, h) = (
            meta["width"].as_u64().unwrap(),
            meta["height"].as_u64().unwrap(),
        );
        // Thumbnails in each output format, decodable, at the right size.
        for (ext, magic) in [
            ("jpg", &b"\xFF\xD8\xFF"[..]),
            ("webp", b"RIFF"),
            ("avif", b"\0\0\0"),
            ("png", b"\x89PNG"),
        ] {
            let r = http
                .get(format!("{base}/v1/images/{id}.{ext}?op=thumbnail:200"))
                .send()
                .await
                .unwrap();
            let status = r.status();
            if status != 200 {
                panic!(
                    "{} as {ext}: {status} {}",
                    path.display(),
                    r.text().await.unwrap()
                );
            }
            let body = r.bytes().await.unwrap();
            assert!(body.starts_with(magic), "{} as {ext}", path.display());
            let img = nlimage_core::decode(std::io::Cursor::new(&body), &Limits::DEFAULT).unwrap();
            let scale = 200.0 / w.max(h) as f64;
            let want = |v: u64| (v as f64 * scale).round() as u32;
            assert_eq!(
                (img.info().width(), img.info().height()),
                (want(w), want(h)),
                "{} as {ext}",
                path.display()
            );
        }
    }
    // JPEG output options: progressive on request, AVIF effort checked.
    let photo = std::fs::read(&common::photo_corpus()[3]).unwrap();
    let r = http
        .post(format!("{base}/v1/images"))
        .body(photo)
        .send()
        .await
        .unwrap();
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let get = |q: &str| {
        http.get(format!("{base}/v1/images/{id}.jpg?op=thumbnail:300{q}"))
            .send()
    };
    let base_jpeg = get("").await.unwrap().bytes().await.unwrap();
    let prog = get("&progressive=1").await.unwrap().bytes().await.unwrap();
    let sof = |b: &[u8], m: u8| b.windows(2).any(|w| w == [0xFF, m]);
    assert!(sof(&base_jpeg, 0xC0) && !sof(&base_jpeg, 0xC2));
    assert!(sof(&prog, 0xC2), "a progressive frame header");
    let r = http
        .get(format!(
            "{base}/v1/images/{id}.avif?op=thumbnail:100&effort=10"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("effort 10"));
    server.shutdown().await.unwrap();
}

/// A little-endian EXIF: orientation 1, an artist, a copyright and a GPS
/// directory with a latitude, as a phone writes one.
fn exif_with_gps() -> Vec<u8> {
    let mut e = b"II*\0".to_vec();
    e.extend(8u32.to_le_bytes());
    // IFD0: 4 entries at 8, values after it (8 + 2 + 48 + 4 = 62).
    e.extend(4u16.to_le_bytes());
    let entry = |e: &mut Vec<u8>, tag: u16, typ: u16, count: u32, value: u32| {
        e.extend(tag.to_le_bytes());
        e.extend(typ.to_le_bytes());
        e.extend(count.to_le_bytes());
        e.extend(value.to_le_bytes());
    };
    let artist = b"A. Photographer\0";
    let copyright = b"(c) 2026 A. Photographer\0";
    entry(&mut e, 0x0112, 3, 1, 1);
    entry(&mut e, 0x013B, 2, artist.len() as u32, 62);
    entry(
        &mut e,
        0x8298,
        2,
        copyright.len() as u32,
        62 + artist.len() as u32,
    );
    let gps_at = 62 + (artist.len() + copyright.len()) as u32;
    entry(&mut e, 0x8825, 4, 1, gps_at);
    e.extend(0u32.to_le_bytes());
    e.extend_from_slice(artist);
    e.extend_from_slice(copyright);
    // The GPS directory: latitude ref "N" and a latitude of 3 rationals.
    e.extend(2u16.to_le_bytes());
    entry(&mut e, 0x0001, 2, 2, u32::from_le_bytes(*b"N\0\0\0"));
    entry(&mut e, 0x0002, 5, 3, gps_at + 2 + 24 + 4);
    e.extend(0u32.to_le_bytes());
    for v in [48u32, 1, 51, 1, 2999, 100] {
        e.extend(v.to_le_bytes());
    }
    e
}

#[tokio::test]
async fn derived_images_carry_no_gps_unless_asked_and_profiles_only_on_request() {
    use nlimage_core::codec::meta::{self, Metadata};
    let dir = tempfile::tempdir().unwrap();
    let server = common::server(config(dir.path())).await;
    let base = format!("http://{}", server.http_addr().unwrap());
    let http = common::http();
    // A real photo, re-tagged with GPS EXIF and the Adobe RGB profile (its
    // pixels left as they are: this is about what travels, not colour).
    // The smallest, as a dozen renders of it follow.
    let smallest = common::photo_corpus()
        .into_iter()
        .min_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let photo = std::fs::read(smallest).unwrap();
    let adobe = std::fs::read("/usr/share/color/icc/colord/AdobeRGB1998.icc")
        .expect("colord-data (./setup.sh test installs it)");
    let exif = exif_with_gps();
    let tagged = meta::embed(
        OutputFormat::Jpeg,
        photo,
        &Metadata {
            icc: Some(adobe.clone()),
            exif: Some(exif.clone()),
            xmp: Some(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>where</x:xmpmeta>".to_vec()),
        },
    )
    .unwrap();
    assert_eq!(meta::read(&tagged).exif.as_deref(), Some(&exif[..]));
    let r = http
        .post(format!("{base}/v1/images"))
        .body(tagged.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let get = |path: String| {
        let http = http.clone();
        async move {
            let r = http.get(path).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap()
        }
    };
    // The original is served as stored.
    assert_eq!(get(format!("{base}/v1/images/{id}")).await, tagged);
    let gps = |e: &[u8]| e.windows(2).any(|w| w == 0x8825u16.to_le_bytes());
    for ext in ["jpg", "png", "webp", "avif"] {
        // By default: nothing travels.
        let out = get(format!("{base}/v1/images/{id}.{ext}?op=thumbnail:160")).await;
        assert!(meta::read(&out).is_empty(), "{ext}: {:?}", meta::read(&out));
        // Copyright: the artist and copyright, no GPS.
        let out = get(format!(
            "{base}/v1/images/{id}.{ext}?op=thumbnail:160&meta=copyright"
        ))
        .await;
        let m = meta::read(&out);
        let e = m.exif.unwrap_or_else(|| panic!("{ext}: no EXIF"));
        assert!(e.windows(8).any(|w| w == b"(c) 2026"), "{ext}");
        assert!(!gps(&e), "{ext}: GPS left with the copyright");
        assert_eq!((m.icc, m.xmp), (None, None), "{ext}");
        // Keep: all of it; icc=keep: the profile too.
        let out = get(format!(
            "{base}/v1/images/{id}.{ext}?op=thumbnail:160&meta=keep&icc=keep"
        ))
        .await;
        let m = meta::read(&out);
        assert_eq!(m.exif.as_deref(), Some(&exif[..]), "{ext}");
        assert!(m.xmp.is_some(), "{ext}");
        assert_eq!(m.icc.as_deref(), Some(&adobe[..]), "{ext}");
    }
    // icc=keep leaves the pixels in the source's space: the default
    // converts them (Adobe RGB to sRGB changes saturated colours).
    let kept = get(format!(
        "{base}/v1/images/{id}.png?op=thumbnail:160&icc=keep"
    ))
    .await;
    let srgb = get(format!("{base}/v1/images/{id}.png?op=thumbnail:160")).await;
    let src = nlimage_core::codec::Colour::Source;
    let a =
        nlimage_core::codec::decode_in(std::io::Cursor::new(&kept), &Limits::DEFAULT, src).unwrap();
    let b =
        nlimage_core::codec::decode_in(std::io::Cursor::new(&srgb), &Limits::DEFAULT, src).unwrap();
    assert_ne!(a, b);
    // And a viewer that applies the kept profile sees what sRGB shows.
    let shown = nlimage_core::decode(std::io::Cursor::new(&kept), &Limits::DEFAULT).unwrap();
    // (Up to resampling in another space: a level on average.)
    let mean = shown
        .data()
        .iter()
        .zip(b.data())
        .map(|(x, y)| f64::from(x.abs_diff(*y)))
        .sum::<f64>()
        / b.data().len() as f64;
    let unconverted = a
        .data()
        .iter()
        .zip(b.data())
        .map(|(x, y)| f64::from(x.abs_diff(*y)))
        .sum::<f64>()
        / b.data().len() as f64;
    assert!(
        mean < 1.0 && unconverted > 2.0 * mean,
        "{mean:.2} vs {unconverted:.2}"
    );
    // Wrong values are named.
    let r = http
        .get(format!("{base}/v1/images/{id}.jpg?meta=gps"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    server.shutdown().await.unwrap();
}

/// The photo at `path`, 1200 px, with its pixels converted into the space
/// of colord-data's profile `name` and tagged with it, as a JPEG at 95.
fn tagged_photo(path: &std::path::Path, name: &str) -> Vec<u8> {
    use nlimage_core::codec::meta::{Metadata, embed};
    let icc = std::fs::read(format!("/usr/share/color/icc/colord/{name}"))
        .expect("colord-data (./setup.sh test installs it)");
    let srgb = image::open(path).unwrap().thumbnail(1200, 1200).to_rgb8();
    let (w, h) = srgb.dimensions();
    // The pixels as a camera set to that space writes them.
    let wide = nlimage_core::codec::colour::from_srgb(srgb.as_raw(), &icc).unwrap();
    let img =
        nlimage_core::ImageBuf::from_raw(w, h, nlimage_core::PixelFormat::Rgb8, wide).unwrap();
    let options = nlimage_core::EncodeOptions::new(Some(95), Default::default(), false).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    nlimage_core::encode_options(&img, OutputFormat::Jpeg, options, &mut out).unwrap();
    let meta = Metadata {
        icc: Some(icc),
        ..Metadata::default()
    };
    embed(OutputFormat::Jpeg, out.into_inner(), &meta).unwrap()
}

/// Pillow's reference thumbnails (`common/pillow_thumbs.py`, run with
/// `.ci/.venv`'s Python) of `photos` at the sizes given.
fn pillow_thumbnails(photos: &[(std::path::PathBuf, u32, u32)]) -> Vec<Vec<u8>> {
    use std::process::{Command, Stdio};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".ci/.venv/bin/python");
    let mut child = Command::new(&python)
        .arg(root.join("server/tests/common/pillow_thumbs.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}: run ./setup.sh test", python.display()));
    let mut input = String::new();
    for (p, w, h) in photos {
        input.push_str(&format!("{} {w} {h}\n", p.display()));
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "pillow_thumbs.py failed");
    let mut at = 0;
    photos
        .iter()
        .map(|(_, w, h)| {
            let n = (*w * *h * 3) as usize;
            at += n;
            out.stdout[at - n..at].to_vec()
        })
        .collect()
}

/// The mean and the 99th percentile of |a - b| over all samples.
fn distance(a: &[u8], b: &[u8]) -> (f64, u8) {
    let mut d: Vec<u8> = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).collect();
    let mean = d.iter().map(|&v| f64::from(v)).sum::<f64>() / d.len() as f64;
    d.sort_unstable();
    (mean, d[d.len() * 99 / 100])
}

/// The default path's bar against a full-decode Lanczos. Measured on the
/// corpus at 256 pixels: means 0.03-1.63, 99th percentiles 1-9 (the worst a
/// detailed 18 MP progressive photo decoded at 1/8); sharp's thumbnails of
/// the same photos, in bench/compare_sharp.py, are farther.
const SHRUNK_MEAN: f64 = 2.0;
const SHRUNK_P99: u8 = 12;

#[tokio::test]
async fn thumbnails_of_every_photo_match_pillows_full_decode_lanczos() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::server(config(dir.path())).await;
    let base = format!("http://{}", server.http_addr().unwrap());
    let http = common::http();
    let mut ours = Vec::new();
    let mut shrunk = Vec::new();
    let mut sized = Vec::new();
    let mut photos = common::photo_corpus();
    // And a photo re-expressed in wide-gamut spaces, tagged with Debian's
    // real profiles: moxcms against Pillow's ImageCms (LittleCMS).
    for name in ["AdobeRGB1998.icc", "ProPhotoRGB.icc"] {
        let path = dir.path().join(name.replace(".icc", ".jpg"));
        std::fs::write(&path, tagged_photo(&photos[9], name)).unwrap();
        photos.push(path);
    }
    for path in photos {
        let r = http
            .post(format!("{base}/v1/images"))
            .body(std::fs::read(&path).unwrap())
            .send()
            .await
            .unwrap();
        let id = r.json::<serde_json::Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // PNG, so that only the resize and the colour are compared: the
        // exact path, and the default one (shrink-on-load for JPEGs).
        let mut got = Vec::new();
        for query in ["&exact=1", ""] {
            let r = http
                .get(format!("{base}/v1/images/{id}.png?op=thumbnail:256{query}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{}", path.display());
            let img = nlimage_core::decode(
                std::io::Cursor::new(r.bytes().await.unwrap()),
                &Limits::DEFAULT,
            )
            .unwrap();
            // Gray photos stay gray; the reference is RGB.
            let rgb: Vec<u8> = match img.info().format() {
                nlimage_core::PixelFormat::Gray8 => {
                    img.data().iter().flat_map(|&v| [v, v, v]).collect()
                }
                nlimage_core::PixelFormat::Rgb8 => img.data().to_vec(),
                other => panic!("{}: {other}", path.display()),
            };
            got.push((img.info().width(), img.info().height(), rgb));
        }
        let (w, h, exact) = got.remove(0);
        let (sw, sh, default) = got.remove(0);
        assert_eq!((sw, sh), (w, h), "{}: the same size", path.display());
        sized.push((path, w, h));
        ours.push(exact);
        shrunk.push(default);
    }
    let reference = pillow_thumbnails(&sized);
    let mut worst_mean = 0f64;
    let mut worst_shrunk = 0f64;
    for (((img, small), want), (path, _, _)) in ours.iter().zip(&shrunk).zip(&reference).zip(&sized)
    {
        let (mean, p99) = distance(img, want);
        let (smean, sp99) = distance(small, want);
        eprintln!(
            "{}: exact mean {mean:.3}, p99 {p99}; default mean {smean:.3}, p99 {sp99}",
            path.display()
        );
        worst_shrunk = worst_shrunk.max(smean);
        // Shrink-on-load decodes at 1/2-1/8 (DCT scaling averages 8x8
        // blocks' frequencies, not Lanczos taps) and resizes the rest: no
        // farther from the full decode than libvips' thumbnails are
        // (bench/compare_sharp.py reports both).
        assert!(
            smean < SHRUNK_MEAN && sp99 <= SHRUNK_P99,
            "{}: default mean {smean:.3}, p99 {sp99}",
            path.display()
        );
        worst_mean = worst_mean.max(mean);
        // libjpeg-turbo decodes as Pillow's does and the resampler computes
        // Pillow's integer sums: identical but for colour management
        // (moxcms against LittleCMS) where a photo has a profile (measured:
        // mean 0.045, 99th percentile 1 for Adobe RGB and ProPhoto).
        assert!(
            mean < 0.5 && p99 <= 4,
            "{}: mean {mean:.3}, p99 {p99}",
            path.display()
        );
    }
    eprintln!(
        "worst mean |diff| over {} photos: exact {worst_mean:.3}, default {worst_shrunk:.3}",
        ours.len()
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_cmyk_jpeg_from_pillow_reads_as_pillow_reads_it() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let server = common::server(config(dir.path())).await;
    let base = format!("http://{}", server.http_addr().unwrap());
    let http = common::http();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cmyk = dir.path().join("cmyk.jpg");
    let out = Command::new(root.join(".ci/.venv/bin/python"))
        .arg(root.join("server/tests/common/pillow_thumbs.py"))
        .arg("cmyk")
        .arg(&common::photo_corpus()[7])
        .arg(&cmyk)
        .output()
        .expect("run ./setup.sh test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = http
        .post(format!("{base}/v1/images"))
        .body(std::fs::read(&cmyk).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let png = http
        .get(format!("{base}/v1/images/{id}.png"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let img = nlimage_core::decode(std::io::Cursor::new(&png), &Limits::DEFAULT).unwrap();
    assert_eq!(img.info().format(), nlimage_core::PixelFormat::Rgb8);
    assert_eq!(img.data().len(), out.stdout.len());
    let worst = img
        .data()
        .iter()
        .zip(&out.stdout)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    // The same formula, rounded alike or within a level.
    assert!(worst <= 1, "worst |diff| {worst}");
    server.shutdown().await.unwrap();
}
