//! `nl-server`: parses flags, sets up logging and metrics, and calls
//! [`nlimage_server::run`].

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use nlimage_core::Limits;
use nlimage_server::exec::url::SourcePolicy;
use nlimage_server::jobs::JobsConfig;
use nlimage_server::ratelimit::RateSpec;
use nlimage_server::store::{StoreConfig, StoreLocation};
use nlimage_server::{Config, ResponseCompression, TlsPem};
use tokio::net::TcpListener;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The nlimage gRPC image service: the classic NLImageService and the
/// streaming nlimage.v1.ImageService on one port, with grpc.health.v1 and
/// server reflection.
#[derive(Parser, Debug)]
#[command(name = "nl-server", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// Log every request (id, method, size, operations, bytes, duration, status).
    #[arg(long)]
    debug: bool,
    /// Log lines as text or as JSON objects.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Largest image accepted, in pixels (width x height).
    #[arg(long, default_value_t = Limits::DEFAULT.max_pixels)]
    max_pixels: u64,
    /// Largest width or height accepted, in pixels.
    #[arg(long, default_value_t = Limits::DEFAULT.max_dimension)]
    max_dimension: u32,
    /// Images processed at once, and threads that run the kernels [default: number of cores].
    #[arg(long)]
    workers: Option<usize>,
    /// Requests that may wait for a worker or memory; more get RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 256)]
    queue_depth: usize,
    /// Seconds a request may wait in the queue before RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 30)]
    queue_timeout: u64,
    /// MiB all requests in flight may hold together [default: half the RAM].
    #[arg(long)]
    memory_budget_mib: Option<u64>,
    /// A hard ceiling on classic-contract messages, in MiB, each way
    /// [default: none: any image within --max-pixels fits; its memory comes
    /// from --memory-budget-mib].
    #[arg(long)]
    max_message_mib: Option<u64>,
    /// Compress answers with this encoding whenever the client accepts it.
    /// With `none` an answer is compressed only if its request was (raw
    /// pixels barely compress, and compressing costs more than the kernels).
    #[arg(long, value_enum, default_value_t = Compression::None)]
    response_compression: Compression,
    /// Seconds in-flight requests may run on after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
    /// Rotations of images larger than this many MiB are kept in a
    /// temporary file instead of memory.
    #[arg(long, default_value_t = 1024)]
    spill_above_mib: usize,
    /// Directory for spill files [default: the system temporary directory].
    #[arg(long)]
    spill_dir: Option<PathBuf>,
    /// The kernels' code path: auto (the widest this machine runs),
    /// portable, ssse3, avx2 or avx512; a path the machine lacks runs the
    /// widest narrower one. For comparing paths, not for production.
    #[arg(long, env = "NLIMAGE_CPU", default_value = "auto", value_parser = parse_cpu)]
    cpu: CpuChoice,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9090).
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// File holding the bearer token clients must send (`authorization: Bearer TOKEN`).
    #[arg(long)]
    auth_token_file: Option<PathBuf>,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve the HTTP gateway to the image store on HOST:PORT
    /// (GET/HEAD/POST/DELETE /v1/images, GET /healthz) [default: off]. With
    /// --tls-cert/--tls-key it serves HTTPS with the same certificate.
    #[arg(long)]
    http_addr: Option<SocketAddr>,
    /// Serve the HTTP gateway in plaintext even though gRPC serves TLS
    /// (behind a proxy that terminates TLS on the same host).
    #[arg(long)]
    http_plaintext: bool,
    /// Seconds a client may take to send a request's headers over HTTP.
    #[arg(long, default_value_t = 10)]
    http_header_timeout: u64,
    /// Seconds an upload (HTTP body or gRPC Put) may send nothing before it
    /// is cut off.
    #[arg(long, default_value_t = 10)]
    http_body_idle_timeout: u64,
    /// Seconds an HTTP request may take as a whole (uploads included).
    #[arg(long, default_value_t = 300)]
    http_request_timeout: u64,
    /// Seconds an HTTP GET's render (decode, operations, encode) may take.
    #[arg(long, default_value_t = 60)]
    render_timeout: u64,
    /// Operations one request may ask for (gRPC, HTTP and jobs).
    #[arg(long, default_value_t = 32)]
    max_operations: usize,
    /// File holding the key that HTTP image URLs must be signed with
    /// (sig=HMAC-SHA256 of path and query, hex); unsigned GETs get 403.
    #[arg(long)]
    url_signing_key_file: Option<PathBuf>,
    /// Requests each client may make, N/s or N/m (clients are told apart by
    /// bearer token, else by address); more get RESOURCE_EXHAUSTED on gRPC
    /// and 429 with Retry-After on HTTP [default: unlimited].
    #[arg(long)]
    rate_limit: Option<String>,
    /// Requests a client may make at once after a quiet spell [default: N of --rate-limit].
    #[arg(long, requires = "rate_limit")]
    rate_burst: Option<std::num::NonZeroU32>,
    /// Directory for the server's data (the image store by default)
    /// [default: $XDG_DATA_HOME/nlimage, else ~/.local/share/nlimage].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where the image store keeps images: a directory, s3://BUCKET[/PREFIX]
    /// (configured by the AWS_* variables: AWS_ENDPOINT_URL, AWS_REGION,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP=true), or
    /// `none` for no store [default: DATA_DIR/store].
    #[arg(long)]
    store: Option<String>,
    /// Largest file accepted by the store, in MiB.
    #[arg(long, default_value_t = 256)]
    max_upload_mib: u64,
    /// Cached results in a local store beyond this many MiB are evicted,
    /// least recently used first (originals never are).
    #[arg(long, default_value_t = 1024)]
    cache_max_mib: u64,
    /// MiB of recently served results also kept in memory, with a local store
    /// (0: none; not with S3, where other replicas may delete images).
    #[arg(long, default_value_t = 64)]
    memory_cache_mib: u64,
    /// Sync every write of a local store, file and directory, before it is
    /// acknowledged (false only where the disk needs no sync, such as a
    /// tmpfs: a power loss may then lose acknowledged uploads).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    store_fsync: bool,
    /// The job queue's database: sqlite://PATH (embedded, one machine),
    /// postgres://USER:PASSWORD@HOST/DB (shared by every replica), or `none`
    /// for no jobs [default: sqlite://DATA_DIR/jobs.sqlite; none without a store].
    #[arg(long, env = "NL_DATABASE_URL")]
    database: Option<String>,
    /// Seconds a replica's claim on a job lasts without renewal; a replica
    /// that dies loses its jobs to the others after this long.
    #[arg(long, default_value_t = 30)]
    job_lease_secs: u64,
    /// Jobs this replica runs at once [default: twice --workers].
    #[arg(long)]
    job_concurrency: Option<usize>,
    /// Runs of a job at most (transient failures and dead replicas count).
    #[arg(long, default_value_t = 5)]
    job_max_attempts: u32,
    /// Days ended jobs are kept before they are removed.
    #[arg(long, default_value_t = 30)]
    job_retention_days: u64,
    /// Base URL under which clients reach the HTTP gateway, for result URLs
    /// of jobs [default: http://HTTP_ADDR when --http-addr names a specific
    /// address, none for 0.0.0.0 or ::].
    #[arg(long)]
    public_url: Option<String>,
    /// Allow remote sources (URLs) from this network although it is not
    /// public (repeatable; e.g. 10.0.0.0/8). Loopback, private, link-local
    /// and other non-public addresses are refused by default.
    #[arg(long = "allow-source-net", value_name = "CIDR")]
    allow_source_net: Vec<ipnet::IpNet>,
    /// Time limit for fetching a remote source, in seconds.
    #[arg(long, default_value_t = 30)]
    source_timeout_secs: u64,
    /// Export traces (a span per request and per job, with their steps) to
    /// this OpenTelemetry collector over OTLP/gRPC, e.g. http://127.0.0.1:4317;
    /// log lines then carry the trace id [default: off].
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// Do not serve: ask the server at --host/--port (plaintext) whether it is
    /// SERVING (grpc.health.v1) and exit 0 if so, 1 if not. For container
    /// health checks.
    #[arg(long)]
    check_health: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// `--cpu`: a named code path, or `None` for auto.
#[derive(Clone, Debug)]
struct CpuChoice(Option<nlimage_core::Cpu>);

fn parse_cpu(s: &str) -> Result<CpuChoice, String> {
    if s == "auto" {
        return Ok(CpuChoice(None));
    }
    nlimage_core::Cpu::from_name(s)
        .map(|c| CpuChoice(Some(c)))
        .ok_or_else(|| format!("'{s}': use auto, portable, ssse3, avx2 or avx512"))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.check_health {
        std::process::exit(check_health(&args.host, args.port).await);
    }
    let filter = if args.debug {
        "nlimage_server=debug,nl_server=debug"
    } else {
        "nlimage_server=info"
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("NL_LOG").unwrap_or_else(|_| filter.into());
    let (otel, tracer) = match args.otlp_endpoint.as_deref() {
        Some(endpoint) => match nlimage_server::otel::Otel::start(endpoint) {
            Ok((guard, tracer)) => (Some(guard), Some(tracer)),
            Err(e) => {
                eprintln!("nl-server: {e}");
                std::process::exit(1);
            }
        },
        None => (None, None),
    };
    let traces = tracer.map(|t| tracing_opentelemetry::layer().with_tracer(t));
    let logs = tracing_subscriber::registry().with(filter).with(traces);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => logs
            .with(fmt.with_ansi(std::io::stderr().is_terminal()))
            .init(),
        LogFormat::Json => logs.with(fmt.json()).init(),
    }
    if let Err(e) = serve(args).await {
        eprintln!("nl-server: {e:#}");
        std::process::exit(1);
    }
    // Exports the traces still buffered.
    drop(otel);
}

fn read(path: &PathBuf, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the {what} '{}'", path.display()))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let defaults = Config::default();
    let auth_token = match &args.auth_token_file {
        Some(p) => {
            let token = String::from_utf8(read(p, "token file")?)
                .with_context(|| format!("the token file '{}' is not UTF-8", p.display()))?;
            let token = token.trim().to_owned();
            if token.is_empty() {
                bail!("the token file '{}' is empty", p.display());
            }
            Some(token)
        }
        None => None,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(TlsPem {
            cert: read(c, "TLS certificate")?,
            key: read(k, "TLS key")?,
        }),
        _ => None,
    };
    let config = Config {
        limits: Limits {
            max_pixels: args.max_pixels,
            max_dimension: args.max_dimension,
        },
        workers: args.workers.unwrap_or(defaults.workers).max(1),
        queue_depth: args.queue_depth,
        queue_timeout: Duration::from_secs(args.queue_timeout),
        memory_budget: args
            .memory_budget_mib
            .map_or(defaults.memory_budget, |m| m.saturating_mul(1 << 20)),
        max_message_bytes: args.max_message_mib.map(|m| m.saturating_mul(1 << 20)),
        response_compression: match args.response_compression {
            Compression::None => ResponseCompression::None,
            Compression::Gzip => ResponseCompression::Gzip,
            Compression::Zstd => ResponseCompression::Zstd,
        },
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        spill_above: args.spill_above_mib.saturating_mul(1 << 20),
        spill_dir: args.spill_dir.unwrap_or(defaults.spill_dir),
        auth_token,
        tls,
        http_addr: args.http_addr,
        url_signing_key: match &args.url_signing_key_file {
            Some(p) => {
                let mut key = read(p, "URL-signing key file")?;
                while key.last().is_some_and(|b| b.is_ascii_whitespace()) {
                    key.pop();
                }
                if key.is_empty() {
                    bail!("the URL-signing key file '{}' is empty", p.display());
                }
                Some(key)
            }
            None => None,
        },
        rate_limit: match &args.rate_limit {
            Some(r) => Some(RateSpec {
                burst: args.rate_burst,
                ..RateSpec::parse(r).map_err(anyhow::Error::msg)?
            }),
            None => None,
        },
        store: StoreConfig {
            location: match &args.store {
                Some(s) => StoreLocation::parse(s).map_err(anyhow::Error::msg)?,
                None => StoreLocation::Dir(data_dir(args.data_dir.as_deref())?.join("store")),
            },
            max_upload: args.max_upload_mib.saturating_mul(1 << 20),
            cache_max: args.cache_max_mib.saturating_mul(1 << 20),
            memory_cache: args.memory_cache_mib.saturating_mul(1 << 20),
            fsync: args.store_fsync,
        },
        jobs: JobsConfig {
            database: match args.database.as_deref() {
                Some("none") => None,
                Some(url) => Some(url.to_string()),
                None if args.store.as_deref() == Some("none") => None,
                None => Some(format!(
                    "sqlite://{}",
                    data_dir(args.data_dir.as_deref())?
                        .join("jobs.sqlite")
                        .display()
                )),
            },
            lease: Duration::from_secs(args.job_lease_secs.max(1)),
            concurrency: args.job_concurrency.unwrap_or(0),
            max_attempts: args.job_max_attempts.max(1),
            retention: Duration::from_secs(args.job_retention_days.saturating_mul(24 * 3600)),
            public_url: args.public_url.clone(),
        },
        sources: SourcePolicy {
            allow: args.allow_source_net.clone(),
            timeout: Duration::from_secs(args.source_timeout_secs.max(1)),
        },
        cpu: args.cpu.0,
        max_operations: args.max_operations.max(1),
        http_timeouts: nlimage_server::HttpTimeouts {
            header: Duration::from_secs(args.http_header_timeout.max(1)),
            body_idle: Duration::from_secs(args.http_body_idle_timeout.max(1)),
            request: Duration::from_secs(args.http_request_timeout.max(1)),
            render: Duration::from_secs(args.render_timeout.max(1)),
        },
        http_plaintext: args.http_plaintext,
    };
    keep_freed_memory(config.memory_budget);
    if let Some(addr) = args.metrics_addr {
        nlimage_server::metrics::serve(addr)
            .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?;
        tracing::info!("metrics at http://{addr}/metrics");
    }
    let addr = format!("{}:{}", args.host, args.port);
    let listener = TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    nlimage_server::run(listener, config, shutdown_signal()).await?;
    Ok(())
}

/// `--data-dir`, or the XDG data directory.
fn data_dir(given: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    if let Some(d) = given {
        return Ok(d.to_owned());
    }
    let xdg = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty());
    if let Some(x) = xdg {
        return Ok(PathBuf::from(x).join("nlimage"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/share/nlimage")),
        None => bail!("no data directory: set --data-dir (or HOME), or run with --store none"),
    }
}

/// Whole-image buffers are reused instead of mapped afresh for every call.
/// glibc's malloc serves buffers over 32 MiB with a fresh `mmap` and unmaps
/// them on free, so each large call pays a page fault per 4 KiB for each of
/// its buffers (the received message, the output, its encoded copy): for a
/// 36 MB classic call from a stock client that cost more than the kernel
/// (bench/README.md, "Stock clients"). With mmap off and the trim threshold
/// at the memory budget, freed buffers stay in the heap for the next call;
/// the process still holds no more than the budget plus a constant.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory(budget: u64) {
    let trim = libc::c_int::try_from(budget).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets glibc malloc parameters (it takes malloc's
    // own lock), and accepts any value for these two.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, trim);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory(_budget: u64) {}

/// One grpc.health.v1 Check of the whole server: 0 if SERVING, else 1.
async fn check_health(host: &str, port: u16) -> i32 {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{host}:{port}"))?
            .connect()
            .await?;
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?
            .into_inner()
            .status();
        Ok::<_, Box<dyn std::error::Error>>(status)
    };
    match tokio::time::timeout(Duration::from_secs(3), check).await {
        Ok(Ok(ServingStatus::Serving)) => 0,
        Ok(Ok(other)) => {
            eprintln!("nl-server: {host}:{port} is {}", other.as_str_name());
            1
        }
        Ok(Err(e)) => {
            eprintln!("nl-server: health check of {host}:{port} failed: {e}");
            1
        }
        Err(_) => {
            eprintln!("nl-server: health check of {host}:{port} timed out");
            1
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
