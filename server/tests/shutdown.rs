//! Graceful shutdown: a request in flight when the signal comes finishes,
//! new connections are refused, and `run` returns Ok.

mod common;

use common::msg;

use std::time::Duration;

use nlimage::v1::{PixelFormat, ProcessRequest, process_request::Message as Req};
use nlimage_server::Config;
use prost::bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

#[tokio::test]
async fn in_flight_request_finishes_after_the_signal() {
    let server = common::server(Config::default()).await;
    let addr = server.addr();
    let mut client = common::streaming(&server).await;
    let (tx, mut inbound) = common::open_process(
        &mut client,
        msg::header(10, 10, PixelFormat::Gray8, vec![msg::mean()]),
    )
    .await;

    let stopping = tokio::spawn(server.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!stopping.is_finished(), "waits for the request in flight");
    // New connections are no longer accepted.
    let fresh = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await;
    assert!(fresh.is_err(), "a new connection during shutdown must fail");

    tx.send(ProcessRequest {
        message: Some(Req::Chunk(Bytes::from(vec![9u8; 100]))),
    })
    .await
    .unwrap();
    drop(tx);
    let out = common::read_chunks(&mut inbound).await;
    assert_eq!(out.len(), 100);
    assert!(out.iter().all(|&v| v == 9));
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown completes")
        .unwrap()
        .expect("run returns Ok");
}

#[tokio::test]
async fn grace_limit_bounds_a_stuck_request() {
    let config = Config {
        shutdown_grace: Duration::from_millis(300),
        ..Config::default()
    };
    let server = common::server(config).await;
    let mut client = common::streaming(&server).await;
    let (tx, rx) = mpsc::channel::<ProcessRequest>(1);
    tx.send(msg::header(10, 10, PixelFormat::Gray8, vec![]))
        .await
        .unwrap();
    let _inbound = client.process(ReceiverStream::new(rx)).await.unwrap();
    // The client never finishes its upload; shutdown still ends.
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("the grace limit ends the wait")
        .expect("run returns Ok");
    drop(tx);
}
