//! nl-server as a library: [`run`] serves the classic `NLImageService` and the
//! streaming `nlimage.v1.ImageService` on one listener until a shutdown
//! future resolves. The `nl-server` binary and the integration tests both
//! call it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod compute;
pub mod config;
pub mod handle;
pub mod log;
pub mod service;
pub mod spill;
pub mod status;

use std::future::Future;

use nlimage::classic::nl_image_service_server::NlImageServiceServer;
use nlimage::v1::image_service_server::ImageServiceServer;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

pub use config::{Config, MAX_CHUNK_BYTES};

/// HTTP/2 flow-control window per stream: four pixel chunks.
const STREAM_WINDOW: u32 = 4 * MAX_CHUNK_BYTES as u32;
pub use handle::{ServerHandle, spawn};

use compute::Compute;
use service::Shared;
use service::classic::ClassicService;
use service::process::ProcessService;

/// What can stop the server from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    /// The compute pool could not be started.
    #[error("cannot start the compute pool: {0}")]
    Pool(#[from] rayon::ThreadPoolBuildError),
    /// The gRPC transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves both services on `listener` until `shutdown` resolves; then stops
/// accepting connections, lets in-flight requests finish for up to
/// `config.shutdown_grace`, and returns `Ok`.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let addr = listener.local_addr()?;
    let shared = Shared {
        compute: Compute::new(config.workers)?,
        limits: config.limits,
        spill_above: config.spill_above,
        spill_dir: config.spill_dir.clone().into(),
    };
    let classic = NlImageServiceServer::new(ClassicService::new(shared.clone()))
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);
    // A Process message holds at most one chunk plus a few bytes of framing.
    let streaming = ImageServiceServer::new(ProcessService::new(shared))
        .max_decoding_message_size(MAX_CHUNK_BYTES + 4096)
        .max_encoding_message_size(MAX_CHUNK_BYTES + 4096);

    // Small messages (headers, errors) must not wait for Nagle's algorithm.
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|s| {
            let _ = s.set_nodelay(true);
        })
    });
    let stop = CancellationToken::new();
    // Flow-control windows of several chunks let the client keep sending
    // while a chunk is being filtered (the 64 KiB HTTP/2 default would stall
    // it on every chunk).
    let server = Server::builder()
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(2 * STREAM_WINDOW)
        .add_service(classic)
        .add_service(streaming)
        .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned());
    tokio::pin!(server);
    tracing::info!(
        "nl-server listening on {addr} (workers: {}, max image: {} px)",
        config.workers,
        config.limits.max_pixels
    );
    tokio::select! {
        r = &mut server => return Ok(r?),
        () = shutdown => {}
    }
    tracing::info!(
        "shutting down: no new connections; in-flight requests have {:?} to finish",
        config.shutdown_grace
    );
    stop.cancel();
    match tokio::time::timeout(config.shutdown_grace, server).await {
        Ok(r) => r?,
        Err(_) => tracing::warn!("grace period over: closing with requests still in flight"),
    }
    tracing::info!("stopped");
    Ok(())
}
