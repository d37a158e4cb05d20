//! The store on S3-compatible storage: a real S3 server (moto, from PyPI,
//! started here on 127.0.0.1), two nl-servers sharing one bucket, and the
//! store surviving the S3 server's restart.
//!
//! moto is found through `NL_MOTO_PYTHON` (a Python with `moto[server]`),
//! else `.ci/.venv` (which `.ci/run` fills), else `bench/.venv`. Without it
//! the test fails and says how to install it; `NL_SKIP_S3=1` skips it.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{encoded, picture};
use nlimage_client::{ClientError, GetOptions, Operation, PutOptions};
use nlimage_core::{OutputFormat, PixelFormat};
use nlimage_server::Config;
use nlimage_server::store::{StoreConfig, StoreLocation};
use prost::bytes::Bytes;
use tonic::Code;

fn moto_python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates = std::env::var_os("NL_MOTO_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            root.join(".ci/.venv/bin/python"),
            root.join("bench/.venv/bin/python"),
        ]);
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import moto.server"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// A moto server on `port`, stopped when dropped.
struct Moto {
    child: Child,
}

impl Moto {
    fn start(python: &PathBuf, port: u16) -> Moto {
        let child = Command::new(python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto starts");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let t0 = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(30), "moto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto { child }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn create_bucket(port: u16, bucket: &str) {
    // moto takes unsigned requests; a bucket is a PUT on its name.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = reqwest::Client::new()
        .put(format!("http://127.0.0.1:{port}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

fn s3_config(url: &str) -> Config {
    Config {
        store: StoreConfig {
            location: StoreLocation::S3(url.into()),
            max_upload: 64 << 20,
            ..StoreConfig::default()
        },
        ..Config::default()
    }
}

fn code(e: ClientError) -> Code {
    match e {
        ClientError::Status(s) => s.code(),
        other => panic!("not a status: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_share_one_bucket_and_outlive_an_s3_restart() {
    if std::env::var_os("NL_SKIP_S3").is_some() {
        eprintln!("NL_SKIP_S3 set: the S3 store test is skipped");
        return;
    }
    let python = moto_python().expect(
        "no Python with moto: run .ci/run once, or `pip install 'moto[server]'` and set NL_MOTO_PYTHON \
         (NL_SKIP_S3=1 skips this test)",
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let moto = Moto::start(&python, port);
    // The standard AWS variables, as an operator would set them. (This test
    // binary is its own process: no other test reads them.)
    // SAFETY: set before any thread of this process reads the environment.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
        std::env::set_var("AWS_ALLOW_HTTP", "true");
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_REGION", "us-east-1");
    }
    create_bucket(port, "images").await;
    let url = "s3://images/nl";
    let a = common::server(s3_config(url)).await;
    let b = common::server(s3_config(url)).await;
    let (ca, cb) = (common::client(&a).await, common::client(&b).await);

    // Small (one PUT) and large (a multipart upload through staging).
    let small = encoded(&picture(41, 29, PixelFormat::Rgb8), OutputFormat::Png);
    let large = encoded(&picture(1800, 1700, PixelFormat::Rgb8), OutputFormat::Bmp);
    assert!(large.len() > 8 << 20);
    let s = ca
        .put(Bytes::from(small.clone()), PutOptions::default())
        .await
        .unwrap();
    let l = ca
        .put(Bytes::from(large.clone()), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(l.id, nlimage_server::store::id::of(&large));

    // The other replica serves what the first stored, originals and results.
    assert_eq!(cb.stat(&s.id).await.unwrap(), s);
    let got = cb.get(&l.id, &GetOptions::default()).await.unwrap();
    assert!(got.bytes == large[..]);
    let thumb = GetOptions {
        format: Some("jpg".into()),
        ops: vec![Operation::parse("thumbnail=32").unwrap()],
        ..GetOptions::default()
    };
    let first = ca.get(&l.id, &thumb).await.unwrap();
    assert!(!first.header.cached);
    let second = cb.get(&l.id, &thumb).await.unwrap();
    assert!(second.header.cached, "B finds A's result in the bucket");
    assert_eq!(second.bytes, first.bytes);
    assert_eq!(second.header.tag, first.header.tag);
    let (page, _) = cb.list(10, "").await.unwrap();
    assert_eq!(page.len(), 2);

    // Nothing was left in staging; a range of the stored object is the
    // file's bytes (read back through object_store, as a replica would).
    let s3 = object_store::aws::AmazonS3Builder::from_env()
        .with_url(url)
        .build()
        .unwrap();
    use object_store::{ObjectStore, ObjectStoreExt};
    let range = s3
        .get_range(
            &object_store::path::Path::from(format!("nl/images/{}", l.id)),
            1000..1100,
        )
        .await
        .unwrap();
    assert_eq!(&range[..], &large[1000..1100]);
    let staged = {
        use tokio_stream::StreamExt;
        let prefix = object_store::path::Path::from("nl/staging");
        s3.list(Some(&prefix)).collect::<Vec<_>>().await
    };
    assert!(staged.is_empty(), "{staged:?}");

    // Deleted on A: gone for B, with its results.
    assert_eq!(ca.delete(&l.id).await.unwrap(), 1);
    assert_eq!(code(cb.stat(&l.id).await.unwrap_err()), Code::NotFound);
    assert_eq!(
        code(cb.get(&l.id, &thumb).await.unwrap_err()),
        Code::NotFound
    );

    // S3 goes away: calls fail with UNAVAILABLE in seconds, not hang.
    drop(moto);
    let t0 = Instant::now();
    let e = ca.stat(&s.id).await.unwrap_err();
    assert_eq!(code(e), Code::Unavailable);
    assert!(t0.elapsed() < Duration::from_secs(40), "{:?}", t0.elapsed());
    // It comes back (empty: moto keeps data in memory): the same servers
    // work again without a restart.
    let _moto = Moto::start(&python, port);
    create_bucket(port, "images").await;
    let again = ca
        .put(Bytes::from(small.clone()), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(again.id, s.id);
    assert_eq!(
        cb.get(&s.id, &GetOptions::default()).await.unwrap().bytes,
        small
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
