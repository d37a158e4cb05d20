//! Shared test helpers: a real server on 127.0.0.1 with an ephemeral port.
#![allow(dead_code)]

use nlimage::classic::nl_image_service_client::NlImageServiceClient;
use nlimage::v1::image_service_client::ImageServiceClient;
use nlimage_server::{Config, ServerHandle};
use tonic::transport::Channel;

pub async fn server(config: Config) -> ServerHandle {
    nlimage_server::spawn("127.0.0.1:0", config)
        .await
        .expect("server starts")
}

pub async fn channel(server: &ServerHandle) -> Channel {
    Channel::from_shared(format!("http://{}", server.addr()))
        .unwrap()
        .connect()
        .await
        .expect("connects")
}

pub async fn classic(server: &ServerHandle) -> NlImageServiceClient<Channel> {
    NlImageServiceClient::new(channel(server).await)
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20)
}

pub async fn streaming(server: &ServerHandle) -> ImageServiceClient<Channel> {
    ImageServiceClient::new(channel(server).await)
        .max_decoding_message_size(2 << 20)
        .max_encoding_message_size(2 << 20)
}

/// Deterministic pseudo-random bytes.
pub fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 11) as u8
        })
        .collect()
}

/// An uncompressed BMP of `w`x`h` RGB noise (distinct per `seed`): cheap
/// to decode, so that a request's cost is its operations.
pub fn bmp(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let info = nlimage_core::ImageInfo::new(w, h, nlimage_core::PixelFormat::Rgb8).unwrap();
    let img = nlimage_core::ImageBuf::new(info, noise(info.byte_len(), seed)).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    nlimage_core::encode(&img, nlimage_core::OutputFormat::Bmp, &mut out).unwrap();
    out.into_inner()
}

/// An HTTP client (rustls on ring, as the server).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// The real-photograph corpus (`bench/photo_corpus.sh`, which
/// `./setup.sh test` runs), sorted, or a failure saying how to build it.
pub fn photo_corpus() -> Vec<std::path::PathBuf> {
    let dir = std::env::var_os("NL_PHOTO_CORPUS").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/photo-corpus"),
        std::path::PathBuf::from,
    );
    let mut photos: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "no photo corpus in {} ({e}): run bench/photo_corpus.sh (./setup.sh test does)",
                dir.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    photos.sort();
    assert!(photos.len() >= 40, "the corpus has {} photos", photos.len());
    photos
}

/// Messages of a `Process` stream, built tersely.
pub mod msg {
    use nlimage::v1::{
        ImageHeader, MeanFilter, Operation, PixelFormat, ProcessHeader, ProcessRequest, Rotate,
        operation, process_request::Message as Req,
    };
    use prost::bytes::Bytes;

    pub fn header(w: u32, h: u32, format: PixelFormat, ops: Vec<Operation>) -> ProcessRequest {
        let image = Some(ImageHeader {
            width: w,
            height: h,
            format: format as i32,
        });
        ProcessRequest {
            message: Some(Req::Header(ProcessHeader {
                image,
                operations: ops,
                source_id: String::new(),
            })),
        }
    }

    pub fn chunk(data: &[u8]) -> ProcessRequest {
        ProcessRequest {
            message: Some(Req::Chunk(Bytes::copy_from_slice(data))),
        }
    }

    pub fn mean() -> Operation {
        Operation {
            op: Some(operation::Op::Mean(MeanFilter {})),
        }
    }

    pub fn rotate(r: i32) -> Operation {
        Operation {
            op: Some(operation::Op::Rotate(Rotate { rotation: r })),
        }
    }
}

/// Opens a `Process` call whose requests come from the returned sender,
/// sends `header`, and checks that the answer starts with an output header.
pub async fn open_process(
    client: &mut ImageServiceClient<Channel>,
    header: nlimage::v1::ProcessRequest,
) -> (
    tokio::sync::mpsc::Sender<nlimage::v1::ProcessRequest>,
    tonic::Streaming<nlimage::v1::ProcessResponse>,
) {
    use nlimage::v1::process_response::Message as Resp;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(header).await.unwrap();
    let mut inbound = client
        .process(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = inbound.message().await.unwrap().unwrap().message;
    assert!(
        matches!(first, Some(Resp::Header(_))),
        "first answer is a header"
    );
    (tx, inbound)
}

/// Reads the rest of a `Process` answer: every message must be a chunk.
pub async fn read_chunks(inbound: &mut tonic::Streaming<nlimage::v1::ProcessResponse>) -> Vec<u8> {
    use nlimage::v1::process_response::Message as Resp;
    let mut out = Vec::new();
    while let Some(m) = inbound.message().await.unwrap() {
        let Some(Resp::Chunk(c)) = m.message else {
            panic!("expected a chunk")
        };
        out.extend_from_slice(&c);
    }
    out
}

/// What a raw HTTP/2 gRPC call got back: headers, body bytes and trailers.
#[derive(Debug)]
pub struct Raw {
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    pub trailers: http::HeaderMap,
}

/// One gRPC call made with the bare `h2` crate, as a stock client of another
/// language would make it: `extra` request headers, then `body` (already
/// framed) and the end of the stream.
pub async fn raw_call(
    addr: std::net::SocketAddr,
    path: &str,
    extra: &[(&'static str, &'static str)],
    body: Vec<u8>,
) -> Raw {
    let (response, mut send) = raw_open(addr, path, extra).await;
    send.send_data(body.into(), true).unwrap();
    let response = response.await.unwrap();
    let headers = response.headers().clone();
    let mut recv = response.into_body();
    let mut body = Vec::new();
    while let Some(data) = recv.data().await {
        let data = data.unwrap();
        let _ = recv.flow_control().release_capacity(data.len());
        body.extend_from_slice(&data);
    }
    let trailers = recv.trailers().await.unwrap().unwrap_or_default();
    Raw {
        headers,
        body,
        trailers,
    }
}

/// Opens a gRPC call with the bare `h2` crate: its response, and the stream
/// to send the (framed) request body on.
pub async fn raw_open(
    addr: std::net::SocketAddr,
    path: &str,
    extra: &[(&'static str, &'static str)],
) -> (h2::client::ResponseFuture, h2::SendStream<bytes::Bytes>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in extra {
        request = request.header(*k, *v);
    }
    client
        .send_request(request.body(()).unwrap(), false)
        .unwrap()
}

/// `msg` gzip-compressed at `level` and framed as one compressed gRPC
/// message.
pub fn frame_gzip(msg: &impl prost::Message, level: flate2::Compression) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), level);
    gz.write_all(&msg.encode_to_vec()).unwrap();
    let payload = gz.finish().unwrap();
    let mut out = vec![1u8];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// `msg` framed as one uncompressed gRPC message.
pub fn frame(msg: &impl prost::Message) -> Vec<u8> {
    let bytes = msg.encode_to_vec();
    let mut out = vec![0u8];
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(&bytes);
    out
}
