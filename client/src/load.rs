//! `nl-load`: a load generator. N concurrent streams send synthetic images
//! through `Process` for a bounded count or time, then it prints throughput
//! (images/s, MB/s), latency percentiles and errors by status code.

mod connect;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use connect::ConnectArgs;
use nlimage_client::{CHUNK_BYTES, ClientError, ImageInfo, Operation, PixelFormat};
use prost::bytes::Bytes;

/// Run concurrent Process streams against nl-server and report.
#[derive(Parser, Debug)]
#[command(
    name = "nl-load",
    version,
    after_help = "Exit codes: 0 finished (errors are reported, not fatal), 2 usage error."
)]
struct Args {
    /// Where the server is and how to talk to it.
    #[command(flatten)]
    connect: ConnectArgs,
    /// Streams running at once.
    #[arg(long, short = 'c', default_value_t = 8)]
    concurrency: usize,
    /// Requests in all (the run also ends at --duration).
    #[arg(long, short = 'n', default_value_t = 100)]
    requests: usize,
    /// Seconds at most; no new request starts after this.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Image width.
    #[arg(long, default_value_t = 4096)]
    width: u32,
    /// Image height.
    #[arg(long, default_value_t = 3072)]
    height: u32,
    /// Pixel format.
    #[arg(long, value_enum, default_value_t = Format::Rgb8)]
    format: Format,
    /// Operations, in order (repeat the flag), as nl-client's --op takes them:
    /// mean, rotate=90, blur=2, crop=0,0,640,480, gray, ...
    #[arg(long = "op", value_name = "SPEC", value_parser = parse_op, default_value = "mean")]
    ops: Vec<Operation>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Gray8,
    Rgb8,
    Rgba8,
}

fn parse_op(s: &str) -> Result<Operation, String> {
    Operation::parse(s).map_err(|e| e.to_string())
}

/// One request's outcome: latency and status code name.
type Outcome = (Duration, String);

async fn one(
    client: &mut nlimage_client::Client,
    info: ImageInfo,
    ops: &[Operation],
    pixels: &Bytes,
) -> Result<(), ClientError> {
    let total = info.byte_len();
    let src = pixels.clone();
    let chunks = tokio_stream::iter((0..total).step_by(CHUNK_BYTES).map(move |s| {
        let n = CHUNK_BYTES.min(total - s);
        src.slice(..n)
    }));
    let mut out = client.process_stream(info, ops, chunks).await?;
    let mut got = 0;
    while let Some(c) = out.next_chunk().await? {
        got += c.len();
    }
    if got != out.info().byte_len() {
        return Err(ClientError::Protocol(format!("short output: {got} bytes")));
    }
    Ok(())
}

fn code(e: &ClientError) -> String {
    match e {
        ClientError::Status(s) => nlimage_client::status_name(s.code()),
        ClientError::Connect { .. } => "connect".into(),
        other => format!("{other}"),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let format = match args.format {
        Format::Gray8 => PixelFormat::Gray8,
        Format::Rgb8 => PixelFormat::Rgb8,
        Format::Rgba8 => PixelFormat::Rgba8,
    };
    let info = match ImageInfo::new(args.width, args.height, format) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("nl-load: {e}");
            return ExitCode::from(2);
        }
    };
    let ops = args.ops.clone();
    // One chunk of pseudo-random pixels, sent again and again.
    let pixels = Bytes::from(
        (0..CHUNK_BYTES.min(info.byte_len()))
            .map(|i| ((i * 2654435761usize) >> 13) as u8)
            .collect::<Vec<u8>>(),
    );
    let client = match args.connect.connect().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nl-load: {e:#}");
            return ExitCode::from(1);
        }
    };
    let started = Instant::now();
    let stop_at = started + Duration::from_secs_f64(args.duration.max(0.0));
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        // Each stream gets its own connection, like independent clients.
        let mut client = match nlimage_client::Client::connect_with(
            client.addr().to_owned(),
            args.connect.options().expect("checked above"),
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("nl-load: {e}");
                return ExitCode::from(1);
            }
        };
        let (ops, pixels, next) = (ops.clone(), pixels.clone(), next.clone());
        let total = args.requests;
        tasks.push(tokio::spawn(async move {
            let mut outcomes: Vec<Outcome> = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < total
                && Instant::now() < stop_at
            {
                let t = Instant::now();
                let r = one(&mut client, info, &ops, &pixels).await;
                outcomes.push((t.elapsed(), r.map_or_else(|e| code(&e), |()| "OK".into())));
            }
            outcomes
        }));
    }
    let mut all: Vec<Outcome> = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    let secs = started.elapsed().as_secs_f64();
    let mut ok: Vec<Duration> = all
        .iter()
        .filter(|(_, c)| c == "OK")
        .map(|(d, _)| *d)
        .collect();
    ok.sort();
    let mut by_code: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, c) in &all {
        *by_code.entry(c.as_str()).or_default() += 1;
    }
    let mb = ok.len() as f64 * info.byte_len() as f64 / 1e6;
    println!(
        "{} requests in {secs:.2} s ({} streams, {info} [{}]): {} ok",
        all.len(),
        args.concurrency,
        ops.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        ok.len()
    );
    println!(
        "throughput: {:.2} images/s, {:.1} MB/s of pixels in (and as much out)",
        ok.len() as f64 / secs,
        mb / secs
    );
    println!(
        "latency of successful requests: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&ok, 0.5),
        percentile(&ok, 0.9),
        percentile(&ok, 0.99),
        percentile(&ok, 1.0)
    );
    println!(
        "by status: {}",
        by_code
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    ExitCode::SUCCESS
}
