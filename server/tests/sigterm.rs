//! The built `nl-server` binary under SIGTERM: a request in flight finishes,
//! new work is refused, and the process exits 0.

mod common;

use common::msg;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nlimage::v1::image_service_client::ImageServiceClient;
use nlimage::v1::{
    PixelFormat, ProcessRequest, process_request::Message as Req, process_response::Message as Resp,
};
use prost::bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

async fn connect(port: u16) -> Option<ImageServiceClient<tonic::transport::Channel>> {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .ok()?;
    Some(ImageServiceClient::new(ch))
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_in_flight_work_finish_and_exits_zero() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_nl-server"))
        .args(["--port", &port.to_string(), "--shutdown-grace", "20"])
        .env("XDG_DATA_HOME", data.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let started = Instant::now();
    let mut client = loop {
        if let Some(c) = connect(port).await {
            break c;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nl-server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The container health probe sees it serving.
    let probe = Command::new(env!("CARGO_BIN_EXE_nl-server"))
        .args(["--check-health", "--port", &port.to_string()])
        .status()
        .unwrap();
    assert_eq!(probe.code(), Some(0), "--check-health of a serving server");

    // A request in flight: header and half the pixels sent.
    let (tx, rx) = mpsc::channel(4);
    tx.send(msg::header(100, 100, PixelFormat::Gray8, vec![msg::mean()]))
        .await
        .unwrap();
    tx.send(ProcessRequest {
        message: Some(Req::Chunk(Bytes::from(vec![5u8; 5000]))),
    })
    .await
    .unwrap();
    let mut inbound = client
        .process(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        inbound.message().await.unwrap().unwrap().message,
        Some(Resp::Header(_))
    ));

    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New work is refused: no new connection is accepted.
    assert!(
        connect(port).await.is_none(),
        "a new connection after SIGTERM must fail"
    );
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "still running while a request is in flight"
    );

    // The request in flight completes.
    tx.send(ProcessRequest {
        message: Some(Req::Chunk(Bytes::from(vec![5u8; 5000]))),
    })
    .await
    .unwrap();
    drop(tx);
    let out = common::read_chunks(&mut inbound).await;
    assert_eq!(out.len(), 10_000);
    assert!(out.iter().all(|&v| v == 5));
    drop(inbound);
    drop(client);
    let waited = Instant::now();
    let status = loop {
        if let Some(s) = server.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "nl-server did not exit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
    let probe = Command::new(env!("CARGO_BIN_EXE_nl-server"))
        .args(["--check-health", "--port", &port.to_string()])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(probe.code(), Some(1), "--check-health of a stopped server");
}
