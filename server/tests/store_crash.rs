//! The store after a crash: the built `nl-server` is SIGKILLed during 100
//! concurrent uploads (small ones written in one go, large ones through
//! staging), started again on the same directory, and then serves every
//! upload it had confirmed, each whole, and no partial one.

mod common;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nlimage::v1::image_store_client::ImageStoreClient;
use nlimage::v1::{GetRequest, ListRequest, PutHeader, PutRequest, get_response, put_request};
use prost::bytes::Bytes;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(port: u16, store: &std::path::Path) -> Server {
    Server(
        Command::new(env!("CARGO_BIN_EXE_nl-server"))
            .args(["--port", &port.to_string(), "--store"])
            .arg(store)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

async fn connect(port: u16) -> ImageStoreClient<Channel> {
    let t0 = Instant::now();
    loop {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await;
        if let Ok(ch) = ch {
            return ImageStoreClient::new(ch)
                .max_decoding_message_size(2 << 20)
                .max_encoding_message_size(2 << 20);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "nl-server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn upload(mut c: ImageStoreClient<Channel>, file: Arc<Vec<u8>>) -> Option<String> {
    let mut msgs = vec![PutRequest {
        message: Some(put_request::Message::Header(PutHeader::default())),
    }];
    for chunk in file.chunks(1 << 20) {
        msgs.push(PutRequest {
            message: Some(put_request::Message::Chunk(Bytes::copy_from_slice(chunk))),
        });
    }
    c.put(tokio_stream::iter(msgs))
        .await
        .ok()
        .map(|r| r.into_inner().id)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkill_during_uploads_leaves_only_whole_images() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let server = start(port, dir.path());
    let client = connect(port).await;
    // 80 small files (one PUT each) and 20 over 8 MiB (multipart, staging).
    let files: Vec<Arc<Vec<u8>>> = (0..100u32)
        .map(|i| {
            Arc::new(if i % 5 == 0 {
                common::bmp(1800, 1650, i)
            } else {
                common::bmp(60 + i, 40, i)
            })
        })
        .collect();
    let confirmed = Arc::new(Mutex::new(HashSet::new()));
    let mut tasks = Vec::new();
    for f in &files {
        let (c, f, confirmed) = (client.clone(), Arc::clone(f), Arc::clone(&confirmed));
        tasks.push(tokio::spawn(async move {
            if let Some(id) = upload(c, f).await {
                confirmed.lock().unwrap().insert(id);
            }
        }));
    }
    // Kill once some have been confirmed and others are still under way.
    let t0 = Instant::now();
    while confirmed.lock().unwrap().len() < 20 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no upload completed"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    drop(server); // SIGKILL
    for t in tasks {
        t.await.unwrap();
    }
    let confirmed = confirmed.lock().unwrap().clone();
    assert!(
        confirmed.len() < 100,
        "the kill came too late to test anything"
    );

    let _server = start(port, dir.path());
    let mut client = connect(port).await;
    let listed = client
        .list(ListRequest {
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .images;
    let ids: HashSet<String> = listed.iter().map(|i| i.id.clone()).collect();
    assert!(
        confirmed.is_subset(&ids),
        "every confirmed upload survives: missing {:?}",
        confirmed.difference(&ids).collect::<Vec<_>>()
    );
    let known: HashSet<String> = files
        .iter()
        .map(|f| hex::encode(Sha256::digest(&f[..])))
        .collect();
    for image in &listed {
        assert!(known.contains(&image.id), "an id no upload had");
        let mut stream = client
            .get(GetRequest {
                id: image.id.clone(),
                ..GetRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut bytes = Vec::new();
        while let Some(m) = stream.message().await.unwrap() {
            if let Some(get_response::Message::Chunk(c)) = m.message {
                bytes.extend_from_slice(&c);
            }
        }
        assert_eq!(bytes.len() as u64, image.bytes);
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            image.id,
            "whole, not partial"
        );
    }
    eprintln!(
        "{} uploads confirmed before the kill, {} listed after the restart",
        confirmed.len(),
        listed.len()
    );
}
