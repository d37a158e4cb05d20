//! A real browser against the gateway: headless Chromium (Debian's package;
//! `./setup.sh test` installs it) loads a page of `<img>` tags pointing at
//! `format=auto` URLs of real photographs and an image with alpha. Every
//! image must decode in the browser at the thumbnail's size (read back from
//! the page), and the server's metrics must show that Chromium was given
//! AVIF, the first format its `Accept` header lists.

mod common;
#[path = "common/services.rs"]
mod services;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use services::{Replica, free_port};

fn chromium() -> PathBuf {
    let path = PathBuf::from("/usr/bin/chromium");
    assert!(
        path.exists(),
        "no /usr/bin/chromium: apt-get install chromium (./setup.sh test does)"
    );
    path
}

#[tokio::test]
async fn chromium_decodes_every_negotiated_image_and_is_given_webp() {
    let browser = chromium();
    let dir = tempfile::tempdir().unwrap();
    let (http, metrics) = (free_port(), free_port());
    let args: Vec<String> = [
        "--store",
        &dir.path().join("store").display().to_string(),
        "--database",
        "none",
        "--http-addr",
        &format!("127.0.0.1:{http}"),
        "--metrics-addr",
        &format!("127.0.0.1:{metrics}"),
    ]
    .map(String::from)
    .into();
    let _server = Replica::start(&args, &[], None);
    let base = format!("http://127.0.0.1:{http}");
    let client = common::http();
    // Uploads, and the size each thumbnail must have.
    let mut files: Vec<Vec<u8>> = common::photo_corpus()[..6]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let mut rgba = Vec::new();
    image::RgbaImage::from_pixel(300, 200, image::Rgba([20, 200, 40, 100]))
        .write_to(
            &mut std::io::Cursor::new(&mut rgba),
            image::ImageFormat::Png,
        )
        .unwrap();
    files.push(rgba);
    let mut expected = Vec::new();
    let mut imgs = String::new();
    for (i, file) in files.iter().enumerate() {
        let r = client
            .post(format!("{base}/v1/images"))
            .body(file.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let meta: serde_json::Value = r.json().await.unwrap();
        let id = meta["id"].as_str().unwrap();
        let resize = nlimage_core::ops::resize::Resize {
            width: Some(256),
            height: Some(256),
            fit: nlimage_core::ops::resize::Fit::Inside,
            filter: nlimage_core::ops::resize::Filter::Lanczos3,
        };
        let (w, h, _) = resize.plan(
            meta["width"].as_u64().unwrap() as u32,
            meta["height"].as_u64().unwrap() as u32,
        );
        expected.push(format!("img{i}:{w}x{h}"));
        imgs.push_str(&format!(
            r#"<img id="img{i}" src="{base}/v1/images/{id}?op=thumbnail:256&format=auto">"#
        ));
    }
    let page = dir.path().join("page.html");
    std::fs::write(
        &page,
        format!(
            r#"<!doctype html><html><body>{imgs}<pre id="out"></pre><script>
window.addEventListener("load", () => {{
  document.getElementById("out").textContent = Array.from(document.images)
    .map(i => i.id + ":" + i.naturalWidth + "x" + i.naturalHeight).join(" ");
}});
</script></body></html>"#
        ),
    )
    .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(browser)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=20000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--dump-dom")
            .arg(format!("file://{}", page.display()))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let shown: Vec<&str> = dom
        .split("<pre id=\"out\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .unwrap_or_else(|| panic!("no result in the page: {dom}"))
        .split_whitespace()
        .collect();
    assert_eq!(shown, expected, "what Chromium decoded");
    // The server says what it gave: AVIF for each image.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = client
        .get(format!("http://127.0.0.1:{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let avif = text
        .lines()
        .find(|l| l.starts_with("nlimage_negotiated_total") && l.contains("format=\"avif\""))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        avif >= files.len() as f64,
        "AVIF given {avif} times:\n{text}"
    );
}
