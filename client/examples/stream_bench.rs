//! Raw pixel-stream throughput over gRPC on 127.0.0.1, no codecs: the
//! transport ceiling (a bare tonic echo of the same messages) against
//! nl-server's `Process` with the mean filter, for `bench/big_image.sh`.
//!
//! `stream_bench serve-echo PORT` serves an echo of the `ImageService`
//! messages on 127.0.0.1:PORT (a separate process, like nl-server);
//! `stream_bench run ADDR WIDTH HEIGHT [mean]` streams an RGB image of that
//! size through the server at ADDR (with the mean filter if asked) and prints
//! one JSON line: seconds and MB/s of pixels (each byte goes up and back).

use std::pin::Pin;
use std::time::Instant;

use nlimage::v1::image_service_server::{ImageService, ImageServiceServer};
use nlimage::v1::{ProcessRequest, ProcessResponse, process_request, process_response};
use nlimage_client::{CHUNK_BYTES, Client, ImageInfo, Operation, PixelFormat};
use prost::bytes::Bytes;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// Echoes every chunk back, after a header equal to the input's: the same
/// messages and framing as `Process`, with no pipeline behind them.
struct Echo;

#[tonic::async_trait]
impl ImageService for Echo {
    type ProcessStream = Pin<Box<dyn Stream<Item = Result<ProcessResponse, Status>> + Send>>;

    async fn process(
        &self,
        req: Request<Streaming<ProcessRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        let out = req.into_inner().map(|m| {
            let m = m?;
            Ok(ProcessResponse {
                message: Some(match m.message {
                    Some(process_request::Message::Header(h)) => {
                        process_response::Message::Header(h.image.unwrap_or_default())
                    }
                    Some(process_request::Message::Chunk(c)) => process_response::Message::Chunk(c),
                    None => return Err(Status::invalid_argument("empty")),
                }),
            })
        });
        Ok(Response::new(Box::pin(out)))
    }
}

async fn run(addr: String, info: ImageInfo, ops: &[Operation]) -> f64 {
    let mut client = Client::connect(addr).await.expect("connect");
    // One chunk of pixels, sent again and again: the source costs nothing.
    let chunk = Bytes::from((0..CHUNK_BYTES).map(|i| (i * 7) as u8).collect::<Vec<u8>>());
    let total = info.byte_len();
    let chunks = tokio_stream::iter(
        (0..total)
            .step_by(CHUNK_BYTES)
            .map(move |s| chunk.slice(..CHUNK_BYTES.min(total - s))),
    );
    let start = Instant::now();
    let mut out = client
        .process_stream(info, ops, chunks)
        .await
        .expect("process");
    let mut got = 0;
    while let Some(c) = out.next_chunk().await.expect("chunk") {
        got += c.len();
    }
    assert_eq!(got, total);
    start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    match a.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["serve-echo", port] => {
            let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
                .await
                .unwrap();
            let svc = ImageServiceServer::new(Echo)
                .max_decoding_message_size(2 << 20)
                .max_encoding_message_size(2 << 20);
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|c| {
                c.inspect(|s| {
                    let _ = s.set_nodelay(true);
                })
            });
            // The same flow-control windows as nl-server's.
            tonic::transport::Server::builder()
                .initial_stream_window_size(4 * CHUNK_BYTES as u32)
                .initial_connection_window_size(8 * CHUNK_BYTES as u32)
                .add_service(svc)
                .serve_with_incoming(incoming)
                .await
                .unwrap();
        }
        ["run", addr, w, h, rest @ ..] => {
            let info =
                ImageInfo::new(w.parse().unwrap(), h.parse().unwrap(), PixelFormat::Rgb8).unwrap();
            let ops: &[Operation] = if rest == ["mean"] {
                &[Operation::Mean3x3]
            } else {
                &[]
            };
            let secs = run(addr.to_string(), info, ops).await;
            let mb = info.byte_len() as f64 / 1e6;
            println!(r#"{{"seconds":{secs:.3},"MB_per_s":{:.1}}}"#, mb / secs);
        }
        _ => {
            eprintln!("usage: stream_bench serve-echo PORT | stream_bench run ADDR W H [mean]");
            std::process::exit(2);
        }
    }
}
