//! Production behaviour over real sockets: overload sheds with
//! RESOURCE_EXHAUSTED and recovers, deadlines are honoured, a client that
//! leaves frees its slot, tokens are checked, health, reflection,
//! compression and TLS work.

mod common;

use std::time::{Duration, Instant};

use nlimage_client::{
    Client, ClientError, CompressionEncoding, ImageInfo, Operation, Options, PixelFormat,
};
use nlimage_server::{Config, ServerHandle};
use prost::bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

fn small() -> ImageInfo {
    ImageInfo::new(64, 64, PixelFormat::Gray8).unwrap()
}

/// Starts a Process call whose upload stays open until the returned sender
/// sends the rest (or is dropped, which ends the upload short).
async fn open_stream(client: &mut Client) -> (mpsc::Sender<Bytes>, nlimage_client::ProcessOutput) {
    let (tx, rx) = mpsc::channel(4);
    tx.send(Bytes::from(vec![1u8; 64 * 10])).await.unwrap();
    let out = client
        .process_stream(small(), &[Operation::Mean3x3], ReceiverStream::new(rx))
        .await
        .unwrap();
    (tx, out)
}

fn status(e: &ClientError) -> Code {
    match e {
        ClientError::Status(s) => s.code(),
        other => panic!("expected a status, got {other:?}"),
    }
}

async fn quick(server: &ServerHandle, options: Options) -> Result<(), ClientError> {
    let mut client = Client::connect_with(server.addr().to_string(), options).await?;
    let img = common::picture(32, 16, PixelFormat::Rgb8);
    client
        .process(&img, &[Operation::Mean3x3])
        .await
        .map(|_| ())
}

fn one_worker_no_queue() -> Config {
    Config {
        workers: 1,
        queue_depth: 0,
        ..Config::default()
    }
}

#[tokio::test]
async fn overload_is_refused_and_the_server_recovers() {
    let server = common::server(one_worker_no_queue()).await;
    let mut holder = common::client(&server).await;
    let (tx, mut out) = open_stream(&mut holder).await;
    let e = quick(&server, Options::default()).await.unwrap_err();
    assert_eq!(status(&e), Code::ResourceExhausted, "{e}");
    assert!(e.to_string().contains("server busy"), "{e}");
    // The first request completes normally ...
    tx.send(Bytes::from(vec![1u8; 64 * 54])).await.unwrap();
    drop(tx);
    let mut got = 0;
    while let Some(c) = out.next_chunk().await.unwrap() {
        got += c.len();
    }
    assert_eq!(got, 64 * 64);
    // ... and the server serves again.
    quick(&server, Options::default()).await.unwrap();
}

#[tokio::test]
async fn a_deadline_stops_the_work_with_deadline_exceeded() {
    let server = common::server(one_worker_no_queue()).await;
    let options = Options {
        timeout: Some(Duration::from_millis(300)),
        ..Options::default()
    };
    let mut client = Client::connect_with(server.addr().to_string(), options)
        .await
        .unwrap();
    let started = Instant::now();
    let (_tx, mut out) = open_stream(&mut client).await; // never finishes its upload
    let e = loop {
        match out.next_chunk().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream cannot complete"),
            Err(e) => break e,
        }
    };
    assert_eq!(status(&e), Code::DeadlineExceeded, "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Its slot is free again.
    quick(&server, Options::default()).await.unwrap();
}

#[tokio::test]
async fn a_client_that_leaves_frees_its_slot_within_a_second() {
    let server = common::server(one_worker_no_queue()).await;
    let mut leaver = common::client(&server).await;
    let (tx, out) = open_stream(&mut leaver).await;
    assert_eq!(
        status(&quick(&server, Options::default()).await.unwrap_err()),
        Code::ResourceExhausted
    );
    // The client goes away mid-stream: connection and all.
    drop((tx, out, leaver));
    let left = Instant::now();
    loop {
        match quick(&server, Options::default()).await {
            Ok(()) => break,
            Err(e) if left.elapsed() < Duration::from_secs(1) => {
                assert_eq!(status(&e), Code::ResourceExhausted);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the slot was not freed within a second: {e}"),
        }
    }
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_unauthenticated() {
    let config = Config {
        auth_token: Some("open sesame".into()),
        ..Config::default()
    };
    let server = common::server(config).await;
    for token in [None, Some("wrong".to_owned())] {
        let e = quick(
            &server,
            Options {
                token,
                ..Options::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(status(&e), Code::Unauthenticated, "{e}");
    }
    let right = Options {
        token: Some("open sesame".into()),
        ..Options::default()
    };
    quick(&server, right.clone()).await.unwrap();
    // The classic service is guarded too.
    let client = Client::connect(server.addr().to_string()).await.unwrap();
    let img = nlimage::classic::NlImage {
        color: false,
        data: vec![1, 2, 3, 4].into(),
        width: 2,
        height: 2,
    };
    let e = client.classic().mean_filter(img.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let client = Client::connect_with(server.addr().to_string(), right)
        .await
        .unwrap();
    assert_eq!(
        client
            .classic()
            .mean_filter(img)
            .await
            .unwrap()
            .into_inner()
            .width,
        2
    );
}

#[tokio::test]
async fn health_reports_serving_then_not_serving_on_shutdown() {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let server = common::server(Config::default()).await;
    let client = common::client(&server).await;
    let mut health = client.health();
    for service in ["", "nlimage.v1.ImageService", "NLImageService"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "{service:?}");
    }
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "nlimage.v1.ImageService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );
    let stopping = tokio::spawn(server.shutdown());
    let next = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("a status change");
    assert_eq!(next.unwrap().unwrap().status(), ServingStatus::NotServing);
    drop(watch);
    drop(health);
    stopping.await.unwrap().unwrap();
}

#[tokio::test]
async fn reflection_lists_every_service() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let server = common::server(Config::default()).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = client
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        resp.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "nlimage.v1.ImageService",
        "NLImageService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
}

#[tokio::test]
async fn gzip_and_zstd_work_both_ways() {
    let server = common::server(Config::default()).await;
    for c in [CompressionEncoding::Gzip, CompressionEncoding::Zstd] {
        quick(
            &server,
            Options {
                compression: Some(c),
                ..Options::default()
            },
        )
        .await
        .unwrap();
        let client = Client::connect_with(
            server.addr().to_string(),
            Options {
                compression: Some(c),
                ..Options::default()
            },
        )
        .await
        .unwrap();
        let img = nlimage::classic::NlImage {
            color: false,
            data: vec![7; 100].into(),
            width: 10,
            height: 10,
        };
        let out = client
            .classic()
            .mean_filter(img)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&out.data[..], &[7; 100][..], "{c:?}");
    }
}

#[tokio::test]
async fn tls_with_a_private_ca() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let config = Config {
        tls: Some(nlimage_server::TlsPem {
            cert: cert_pem.clone().into_bytes(),
            key: key_pem.into_bytes(),
        }),
        ..Config::default()
    };
    let server = common::server(config).await;
    let tls = Options {
        tls: Some(Some(cert_pem.into_bytes())),
        tls_domain: Some("localhost".into()),
        ..Options::default()
    };
    quick(&server, tls).await.unwrap();
    // Plain text against a TLS port fails.
    assert!(quick(&server, Options::default()).await.is_err());
}
