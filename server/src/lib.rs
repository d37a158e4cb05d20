//! nl-server as a library: [`run`] serves, on one listener, the classic
//! `NLImageService`, the streaming `nlimage.v1` services (`ImageService`,
//! `ImageStore`, `Jobs`), health and reflection -- and, with
//! `--http-addr`, the plain-HTTP gateway on a second -- until a shutdown
//! future resolves. The `nl-server` binary and the integration tests both
//! call it.
//!
//! Inside: the fronts ([`service`] for gRPC, [`http`], the job worker in
//! [`jobs`]) are thin layers over one executor ([`exec`]: limits, planning,
//! admission, the compute pool, decode, pipeline, encode, cancellation),
//! which keeps images in the [`store`]; every layer speaks one error type
//! ([`error`]), turned into statuses and HTTP answers only at the edges.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admission;
pub mod config;
pub mod error;
pub mod exec;
pub mod gate;
pub mod handle;
pub mod http;
pub mod jobs;
pub mod log;
pub mod metrics;
pub mod middleware;
pub mod otel;
pub mod ratelimit;
pub mod service;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nlimage::classic::nl_image_service_server::NlImageServiceServer;
use nlimage::v1::image_service_server::ImageServiceServer;
use nlimage::v1::image_store_server::ImageStoreServer;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

pub use config::{Config, HttpTimeouts, MAX_CHUNK_BYTES, ResponseCompression, TlsPem};
pub use handle::{ServerHandle, spawn};

use admission::Admission;
use exec::Executor;
use exec::compute::Compute;
use exec::spill::SpillConfig;
use gate::Gate;
use middleware::classic_admission::ClassicAdmission;
use middleware::compression::CompressionPolicy;
use nlimage::v1::jobs_server::JobsServer;
use service::classic::ClassicService;
use service::jobs::JobsService;
use service::process::ProcessService;
use service::store::StoreService;

/// HTTP/2 flow-control window per stream: four pixel chunks.
const STREAM_WINDOW: u32 = 4 * MAX_CHUNK_BYTES as u32;

/// Streams a connection may have open at once; more wait at the client.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 32;

/// HTTP/2 window per connection: every stream's window and one more. Data a
/// stream received but did not read yet (one waiting for admission) holds
/// connection window too, so a smaller connection window would let a few
/// waiting streams starve the admitted one on the same connection until
/// their queue timeout (measured: 16 classic calls on one grpcio channel).
const CONNECTION_WINDOW: u32 = (MAX_STREAMS_PER_CONNECTION + 1) * STREAM_WINDOW;

/// What can stop the server from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    /// The compute pool could not be started.
    #[error("cannot start the compute pool: {0}")]
    Pool(#[from] rayon::ThreadPoolBuildError),
    /// The gRPC transport failed (or the TLS identity is unusable).
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The store could not be opened.
    #[error("{0}")]
    Store(String),
    /// The reflection service could not be built.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The settings contradict each other or leave something open.
    #[error("{0}")]
    Config(String),
}

/// Refuses settings that would leave a surface open without saying so.
pub(crate) fn check_config(config: &Config) -> Result<(), ServerError> {
    if config.url_signing_key.is_some() && config.auth_token.is_none() {
        return Err(ServerError::Config(
            "--url-signing-key-file protects image GETs, but without --auth-token-file anyone could \
             still upload and delete: add --auth-token-file (signed URLs stand in for the token on GETs)"
                .into(),
        ));
    }
    Ok(())
}

/// The jobs' settings, with result URLs on the HTTP gateway's own address
/// when no public URL is given and the gateway listens on a specific one.
fn jobs_config(config: &jobs::JobsConfig, http: Option<&TcpListener>) -> jobs::JobsConfig {
    let mut c = config.clone();
    if c.public_url.is_none()
        && let Some(addr) = http.and_then(|l| l.local_addr().ok())
        && !addr.ip().is_unspecified()
    {
        c.public_url = Some(format!("http://{addr}"));
    }
    c
}

/// Both compression encodings, accepted and able to be sent; which answers
/// are compressed is decided per request by [`CompressionPolicy`].
macro_rules! compressed {
    ($svc:expr) => {
        $svc.accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .send_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Zstd)
    };
}

/// Serves the classic `NLImageService`, the streaming `nlimage.v1` service,
/// `grpc.health.v1` and server reflection on `listener` until `shutdown`
/// resolves. Then health turns NOT_SERVING, new requests get UNAVAILABLE,
/// new connections are refused, in-flight requests finish for up to
/// `config.shutdown_grace`, and it returns `Ok`.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    check_config(&config)?;
    let http = match config.http_addr {
        Some(a) => Some(TcpListener::bind(a).await?),
        None => None,
    };
    serve(listener, http, config, shutdown).await
}

/// [`run`] with the HTTP gateway's listener bound by the caller.
pub(crate) async fn serve(
    listener: TcpListener,
    http: Option<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let addr = listener.local_addr()?;
    let started = std::time::Instant::now();
    let admission = Admission::new(
        config.workers,
        config.memory_budget,
        config.queue_depth,
        config.queue_timeout,
    );
    let cpu = config.cpu.map_or_else(nlimage_core::Cpu::detect, |c| {
        let run = c.clamp_to_machine();
        if run != c {
            tracing::warn!(
                "--cpu {} is not available on this machine: running {}",
                c.name(),
                run.name()
            );
        }
        run
    });
    let exec = Executor {
        compute: Compute::new(config.workers)?,
        limits: config.limits,
        admission,
        cpu,
        spill: SpillConfig {
            above: config.spill_above,
            dir: config.spill_dir.clone().into(),
        },
        store: store::Store::open(&config.store)
            .await
            .map_err(ServerError::Store)?,
        sources: exec::url::Fetcher::new(config.sources.clone()).map_err(ServerError::Store)?,
        max_operations: config.max_operations,
        body_idle: config.http_timeouts.body_idle,
    };
    let job_queue = jobs::Jobs::open(&jobs_config(&config.jobs, http.as_ref()))
        .await
        .map_err(ServerError::Store)?;
    if let Some(j) = &job_queue {
        tracing::info!("job queue: {}", j.describe());
    }
    if let Some(s) = &exec.store {
        tracing::info!("image store: {}", s.describe());
    }
    tracing::info!("kernels: {} code path", cpu.name());
    let draining = Arc::new(AtomicBool::new(false));
    let rate = config.rate_limit.map(|spec| {
        let limiter = Arc::new(ratelimit::RateLimit::new(spec));
        let idle = Arc::downgrade(&limiter);
        // Buckets of clients gone quiet are forgotten every minute.
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                match idle.upgrade() {
                    Some(l) => l.forget_idle(),
                    None => break,
                }
            }
        });
        limiter
    });
    let gate = Gate::new(config.auth_token.clone(), Arc::clone(&draining)).with_rate_limit(rate);
    // Classic messages are as large as the image limits allow; the memory
    // of each is reserved from the budget before its body is read.
    let limit = config.classic_message_limit();
    let max_message = usize::try_from(limit.bytes).unwrap_or(usize::MAX);
    // A message is decoded only if twice it fits the budget (uncompressed
    // ones are refused before that, from their prefix): a compressed one
    // that inflates past it is cut off by tonic, not allocated.
    let max_decoded = usize::try_from(exec.admission.budget() / 2)
        .unwrap_or(usize::MAX)
        .min(max_message);
    let classic = compressed!(NlImageServiceServer::new(ClassicService::new(exec.clone())))
        .max_decoding_message_size(max_decoded)
        .max_encoding_message_size(max_message);
    let classic = CompressionPolicy::new(
        ClassicAdmission::new(classic, gate.clone(), Arc::clone(&exec.admission), limit),
        config.response_compression,
    );
    // A Process message holds at most one chunk plus a few bytes of framing.
    // Put and Get carry encoded files in chunks of at most 1 MiB too.
    let store_service = compressed!(ImageStoreServer::new(StoreService::new(exec.clone())))
        .max_decoding_message_size(MAX_CHUNK_BYTES + 4096)
        .max_encoding_message_size(MAX_CHUNK_BYTES + 4096);
    let jobs_service = compressed!(JobsServer::new(JobsService::new(
        job_queue.clone(),
        exec.store.is_some(),
        config.max_operations,
    )));
    let streaming = compressed!(ImageServiceServer::new(ProcessService::new(exec.clone())))
        .max_decoding_message_size(MAX_CHUNK_BYTES + 4096)
        .max_encoding_message_size(MAX_CHUNK_BYTES + 4096);

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<NlImageServiceServer<ClassicService>>()
        .await;
    health
        .set_serving::<ImageServiceServer<ProcessService>>()
        .await;
    health.set_serving::<ImageStoreServer<StoreService>>().await;
    health.set_serving::<JobsServer<JobsService>>().await;
    let reflection = |b: tonic_reflection::server::Builder<'static>| {
        b.register_encoded_file_descriptor_set(nlimage::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection(tonic_reflection::server::Builder::configure()).build_v1()?;
    let reflection_v1alpha =
        reflection(tonic_reflection::server::Builder::configure()).build_v1alpha()?;

    // Small messages (headers, errors) must not wait for Nagle's algorithm.
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|s| {
            let _ = s.set_nodelay(true);
        })
    });
    let mut builder = Server::builder().trace_fn(|request| {
        let span = tracing::info_span!(
            "grpc",
            otel.name = %request.uri().path(),
            rpc.method = %request.uri().path(),
            trace_id = tracing::field::Empty,
        );
        otel::continue_trace(&span, request.headers());
        otel::record_trace_id(&span);
        span
    });
    if let Some(tls) = &config.tls {
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert, &tls.key)))?;
    }
    let stop = CancellationToken::new();
    let worker = job_queue.clone().map(|j| {
        // Running jobs get three quarters of the grace period, so that what
        // is still running can be handed back to the queue within it.
        tokio::spawn(jobs::worker::run(
            j,
            exec.clone(),
            stop.clone(),
            config.shutdown_grace.mul_f64(0.75),
        ))
    });
    let http_task = match http {
        Some(l) => {
            let http_addr = l.local_addr()?;
            // With a TLS identity the gateway serves HTTPS with it too,
            // unless told to stay plaintext (behind a local TLS proxy).
            let tls = match (&config.tls, config.http_plaintext) {
                (Some(pem), false) => {
                    Some(http::serve::tls_config(pem).map_err(ServerError::Config)?)
                }
                _ => None,
            };
            let scheme = if tls.is_some() { "https" } else { "http" };
            tracing::info!("HTTP gateway on {scheme}://{http_addr}");
            let app = http::App {
                exec: exec.clone(),
                jobs: job_queue.clone(),
                gate: gate.clone(),
                signing_key: config.url_signing_key.clone().map(Into::into),
                started,
                workers: config.workers,
                public_url: config.jobs.public_url.clone(),
                https: tls.is_some(),
                timeouts: config.http_timeouts,
            };
            Some(tokio::spawn(http::serve(l, app, tls, stop.clone())))
        }
        None => None,
    };
    // Flow-control windows of several chunks let the client keep sending
    // while a chunk is being filtered (the 64 KiB HTTP/2 default would stall
    // it on every chunk).
    let server = builder
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .add_service(classic)
        .add_service(CompressionPolicy::new(
            InterceptedService::new(streaming, gate.clone()),
            config.response_compression,
        ))
        .add_service(CompressionPolicy::new(
            InterceptedService::new(store_service, gate.clone()),
            config.response_compression,
        ))
        .add_service(CompressionPolicy::new(
            InterceptedService::new(jobs_service, gate),
            config.response_compression,
        ))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned());
    tokio::pin!(server);
    tracing::info!(
        "nl-server listening on {addr}{} (workers: {}, queue: {}, memory budget: {} MiB, max image: {} px{})",
        if config.tls.is_some() {
            " with TLS"
        } else {
            ""
        },
        config.workers,
        config.queue_depth,
        config.memory_budget >> 20,
        config.limits.max_pixels,
        if config.auth_token.is_some() {
            ", bearer token required"
        } else {
            ""
        },
    );
    tokio::select! {
        r = &mut server => return Ok(r?),
        () = shutdown => {}
    }
    tracing::info!(
        "shutting down: health NOT_SERVING, new requests refused; in-flight requests have {:?} to finish",
        config.shutdown_grace
    );
    draining.store(true, Ordering::SeqCst);
    health
        .set_not_serving::<NlImageServiceServer<ClassicService>>()
        .await;
    health
        .set_not_serving::<ImageServiceServer<ProcessService>>()
        .await;
    health
        .set_not_serving::<ImageStoreServer<StoreService>>()
        .await;
    health.set_not_serving::<JobsServer<JobsService>>().await;
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    stop.cancel();
    let both = async {
        let r = server.await;
        if let Some(t) = http_task {
            let _ = t.await;
        }
        if let Some(w) = worker {
            let _ = w.await;
        }
        // Results written behind their answers are kept, not cut off.
        if let Some(s) = &exec.store {
            s.cache.settled().await;
        }
        r
    };
    match tokio::time::timeout(config.shutdown_grace, both).await {
        Ok(r) => r?,
        Err(_) => tracing::warn!("grace period over: closing with requests still in flight"),
    }
    tracing::info!("stopped");
    Ok(())
}
