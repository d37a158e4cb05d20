//! `nl-client put|get|rm|ls` against a real server with a store: ids on
//! stdout, files written whole, one-line errors, and bulk uploads that ride
//! out a server restart on their retries.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use nlimage_core::{Limits, OutputFormat, PixelFormat};
use nlimage_server::Config;
use nlimage_server::store::{StoreConfig, StoreLocation};

fn nl_client(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nl-client"))
        .args(args)
        .output()
        .expect("runs")
}

fn with_store(dir: &Path) -> Config {
    Config {
        store: StoreConfig {
            location: StoreLocation::Dir(dir.to_owned()),
            ..StoreConfig::default()
        },
        ..Config::default()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_images(dir: &Path, n: usize, side: u32) -> Vec<Vec<u8>> {
    std::fs::create_dir_all(dir).unwrap();
    (0..n)
        .map(|i| {
            let mut img = common::picture(side + (i % 7) as u32, side, PixelFormat::Rgb8);
            // Every file different.
            img.data_mut()[0] = i as u8;
            img.data_mut()[1] = (i >> 8) as u8;
            let bytes = common::encoded(&img, OutputFormat::Png);
            std::fs::write(dir.join(format!("img{i:04}.png")), &bytes).unwrap();
            bytes
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn put_get_ls_rm_from_the_command_line() {
    let store = tempfile::tempdir().unwrap();
    let server = common::server(with_store(store.path())).await;
    let port = server.addr().port().to_string();
    let work = tempfile::tempdir().unwrap();
    let d = work.path().join("in");
    let files = write_images(&d, 2, 30);
    std::fs::write(d.join("notes.txt"), "not an image").unwrap();

    let out = nl_client(&["put", d.to_str().unwrap(), "--port", &port, "--jobs", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "the text file is not an image: {lines:?}");
    let id0 = nlimage_server::store::id::of(&files[0]);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{id0}  ")) && l.ends_with("img0000.png"))
    );
    assert!(
        stderr(&out).contains("2 of 2 files stored"),
        "{}",
        stderr(&out)
    );

    // Fetched with an operation, in another format, written whole.
    let target = work.path().join("thumb.jpg");
    let out = nl_client(&[
        "get",
        &id0,
        target.to_str().unwrap(),
        "--op",
        "thumbnail=10",
        "--port",
        &port,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let img = nlimage_core::decode(
        std::io::Cursor::new(std::fs::read(&target).unwrap()),
        &Limits::DEFAULT,
    )
    .unwrap();
    assert_eq!((img.info().width(), img.info().height()), (10, 10));
    // In its own format: the bytes as uploaded.
    let same = work.path().join("same.png");
    let out = nl_client(&["get", &id0, same.to_str().unwrap(), "--port", &port]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&same).unwrap(), files[0]);

    let out = nl_client(&["ls", "--port", &port]);
    assert!(out.status.success());
    assert_eq!(stdout(&out).lines().count(), 2);
    assert!(stdout(&out).contains(&format!("{id0}  png  30x30  {}", files[0].len())));

    // An unknown id: one line, exit 1, no output file.
    let missing = work.path().join("missing.png");
    let out = nl_client(&[
        "get",
        &"ab".repeat(32),
        missing.to_str().unwrap(),
        "--port",
        &port,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("NOT_FOUND"), "{}", stderr(&out));
    assert!(!missing.exists());
    assert_eq!(
        std::fs::read_dir(work.path())
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".part"))
            .count(),
        0
    );
    // An upload the server refuses: listed, exit 1.
    let out = nl_client(&[
        "put",
        d.join("notes.txt").to_str().unwrap(),
        "--port",
        &port,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("failed: "), "{}", stderr(&out));
    assert!(stderr(&out).contains("not an image"), "{}", stderr(&out));

    let out = nl_client(&["rm", &id0, "--port", &port]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("(1 cached results)"),
        "{}",
        stdout(&out)
    );
    let out = nl_client(&["ls", "--port", &port]);
    assert_eq!(stdout(&out).lines().count(), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_upload_survives_a_server_restart_on_its_retries() {
    let store = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let d = work.path().join("many");
    let files = write_images(&d, 300, 24);
    let server = common::server(with_store(store.path())).await;
    let addr = server.addr();
    let port = addr.port().to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_nl-client"))
        .args(["put", d.to_str().unwrap(), "--port", &port, "--jobs", "16"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for some uploads to land, then restart the server on the same port.
    let images = store.path().join("images");
    let t0 = std::time::Instant::now();
    while std::fs::read_dir(&images).map_or(0, |d| d.count()) < 40 {
        assert!(t0.elapsed().as_secs() < 60, "no uploads arrived");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    server.shutdown().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let server = nlimage_server::spawn(addr, with_store(store.path()))
        .await
        .expect("restarts on the same port");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 300);
    assert!(
        stderr(&out).contains("300 of 300 files stored"),
        "{}",
        stderr(&out)
    );
    let client = common::client(&server).await;
    let (page, _) = client.list(1000, "").await.unwrap();
    assert_eq!(page.len(), 300);
    for f in [&files[0], &files[150], &files[299]] {
        let id = nlimage_server::store::id::of(f);
        let got = client
            .get(&id, &nlimage_client::GetOptions::default())
            .await
            .unwrap();
        assert!(got.bytes == f[..], "every file stored whole");
    }
    server.shutdown().await.unwrap();
}
