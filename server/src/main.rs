//! `nl-server`: parses flags, sets up logging and calls [`nlimage_server::run`].

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use nlimage_core::Limits;
use nlimage_server::Config;
use tokio::net::TcpListener;

/// The nlimage gRPC image service: the classic NLImageService and the
/// streaming nlimage.v1.ImageService on one port.
#[derive(Parser, Debug)]
#[command(name = "nl-server", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// Log every request (method, size, operations, duration, status).
    #[arg(long)]
    debug: bool,
    /// Largest image accepted, in pixels (width x height).
    #[arg(long, default_value_t = Limits::DEFAULT.max_pixels)]
    max_pixels: u64,
    /// Largest width or height accepted, in pixels.
    #[arg(long, default_value_t = Limits::DEFAULT.max_dimension)]
    max_dimension: u32,
    /// Threads that run the kernels [default: number of cores].
    #[arg(long)]
    workers: Option<usize>,
    /// Largest classic-contract message, in MiB, each way.
    #[arg(long, default_value_t = 64)]
    max_message_mib: usize,
    /// Seconds in-flight requests may run on after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
    /// Rotations of images larger than this many MiB are kept in a
    /// temporary file instead of memory.
    #[arg(long, default_value_t = 1024)]
    spill_above_mib: usize,
    /// Directory for spill files [default: the system temporary directory].
    #[arg(long)]
    spill_dir: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let filter = if args.debug {
        "nlimage_server=debug,nl_server=debug"
    } else {
        "nlimage_server=info"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NL_LOG").unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Err(e) = serve(args).await {
        eprintln!("nl-server: {e:#}");
        std::process::exit(1);
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let defaults = Config::default();
    let config = Config {
        limits: Limits {
            max_pixels: args.max_pixels,
            max_dimension: args.max_dimension,
        },
        workers: args.workers.unwrap_or(defaults.workers).max(1),
        max_message_bytes: args.max_message_mib.saturating_mul(1 << 20),
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        spill_above: args.spill_above_mib.saturating_mul(1 << 20),
        spill_dir: args.spill_dir.unwrap_or(defaults.spill_dir),
    };
    let addr = format!("{}:{}", args.host, args.port);
    let listener = TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    nlimage_server::run(listener, config, shutdown_signal()).await?;
    Ok(())
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
