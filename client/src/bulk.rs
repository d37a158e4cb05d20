//! Bulk work shared by `nl-client --input A B ... --output-dir DIR` and
//! `nl-client put`: retries with exponential backoff and full jitter on
//! transient failures, and progress on stderr (a bar on a terminal, a plain
//! line every few seconds otherwise).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use nlimage_client::{Client, ClientError};
use tonic::Code;

use crate::cli::{Args, Failure};

/// A client error as one line (a server status's message once, not again
/// as its cause).
pub fn plain(e: ClientError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Whether an error is worth another attempt.
pub fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Status(s) => {
            matches!(
                s.code(),
                Code::Unavailable | Code::ResourceExhausted | Code::DeadlineExceeded
            )
            // A connection that broke mid-call (the server restarting):
            // tonic reports the HTTP/2 reset as CANCELLED (this program
            // cancels nothing), INTERNAL or UNKNOWN.
            || s.code() == Code::Cancelled
            || (matches!(s.code(), Code::Internal | Code::Unknown)
                && (s.message().starts_with("h2 protocol error")
                    || s.message().contains("transport error")))
        }
        ClientError::Connect { .. } => true,
        _ => false,
    }
}

pub fn backoff(retries: usize) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(retries)
        .with_jitter()
}

/// Progress on stderr: a bar on a terminal, a line every few seconds
/// otherwise.
pub struct Progress {
    pub bar: Option<indicatif::ProgressBar>,
    files: u64,
    done: AtomicU64,
    pub bytes: AtomicU64,
    pub started: Instant,
    last_line: std::sync::Mutex<Instant>,
    /// Counting items (jobs) named so, rather than files and bytes.
    unit: Option<&'static str>,
    /// Nothing shown (one item: its own line says it all).
    quiet: bool,
}

impl Progress {
    pub fn new(files: u64, total_bytes: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total_bytes);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        Self {
            bar,
            files,
            done: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            started: Instant::now(),
            last_line: std::sync::Mutex::new(Instant::now()),
            unit: None,
            quiet: false,
        }
    }

    /// Shows nothing.
    pub fn quiet(mut self) -> Self {
        self.bar = None;
        self.quiet = true;
        self
    }

    /// Progress over `n` items (each [`Progress::file_done`] with 1).
    pub fn items(n: u64, unit: &'static str) -> Self {
        let mut p = Self::new(n, n);
        if let Some(bar) = &p.bar {
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(unit);
        }
        p.unit = Some(unit);
        p
    }

    pub fn file_done(&self, bytes: u64) {
        if self.quiet {
            return;
        }
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let sent = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        match &self.bar {
            Some(bar) if self.unit.is_some() => bar.inc(bytes),
            Some(bar) => {
                bar.inc(bytes);
                bar.set_message(format!("{done}/{} files", self.files));
            }
            None if self.unit.is_some() => {
                let mut last = self.last_line.lock().unwrap_or_else(|p| p.into_inner());
                if last.elapsed() >= Duration::from_secs(2) || done == self.files {
                    *last = Instant::now();
                    eprintln!(
                        "nl-client: {done}/{} {}",
                        self.files,
                        self.unit.unwrap_or_default()
                    );
                }
            }
            None => {
                let mut last = self.last_line.lock().unwrap_or_else(|p| p.into_inner());
                if last.elapsed() >= Duration::from_secs(2) || done == self.files {
                    *last = Instant::now();
                    let secs = self.started.elapsed().as_secs_f64().max(1e-3);
                    eprintln!(
                        "nl-client: {done}/{} files, {:.1} MiB, {:.1} MiB/s",
                        self.files,
                        sent as f64 / 1048576.0,
                        sent as f64 / 1048576.0 / secs
                    );
                }
            }
        }
    }

    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }
}

/// Runs [`crate::cli::run_one`] for every (input, output) pair, `--jobs` at
/// once, retrying each on transient failures (safe: an output is written
/// whole or not at all); prints `OUTPUT` per file, a summary, and fails
/// listing what did not work.
pub async fn process_all(
    args: Arc<Args>,
    client: Client,
    jobs: Vec<(PathBuf, PathBuf)>,
) -> Result<(), Failure> {
    let total: u64 = jobs
        .iter()
        .map(|(i, _)| std::fs::metadata(i).map_or(0, |m| m.len()))
        .sum();
    let progress = Arc::new(Progress::new(jobs.len() as u64, total));
    let gate = Arc::new(tokio::sync::Semaphore::new(args.jobs.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (input, output) in jobs.iter().cloned() {
        let (args, client, progress, gate) = (
            Arc::clone(&args),
            client.clone(),
            Arc::clone(&progress),
            Arc::clone(&gate),
        );
        tasks.spawn(async move {
            let _slot = gate.acquire_owned().await;
            let size = std::fs::metadata(&input).map_or(0, |m| m.len());
            let result = (|| crate::cli::run_one(&args, client.clone(), &input, &output))
                .retry(backoff(args.retries))
                .when(|f: &Failure| f.error.downcast_ref::<ClientError>().is_some_and(retryable))
                .await;
            progress.file_done(if result.is_ok() { size } else { 0 });
            if result.is_ok() {
                progress.println(&output.display().to_string());
            }
            (input, result)
        });
    }
    let mut failed = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (input, result) = joined.map_err(|e| anyhow::anyhow!("a transfer failed: {e}"))?;
        if let Err(f) = result {
            failed.push((input, f));
        }
    }
    if let Some(bar) = &progress.bar {
        bar.finish_and_clear();
    }
    eprintln!(
        "nl-client: {} of {} images processed in {:.1} s",
        jobs.len() - failed.len(),
        jobs.len(),
        progress.started.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        return Ok(());
    }
    failed.sort_by(|a, b| a.0.cmp(&b.0));
    for (input, f) in &failed {
        eprintln!("nl-client: failed: {}: {:#}", input.display(), f.error);
    }
    Err(anyhow::anyhow!(
        "{} of {} images failed (listed above)",
        failed.len(),
        jobs.len()
    )
    .into())
}
