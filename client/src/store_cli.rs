//! `nl-client put|get|rm|ls` (and `job`, in [`crate::job_cli`]): the image
//! store from the command line, for
//! people (a progress bar on a terminal) and for scripts (`id  path` lines on
//! stdout, plain progress lines on stderr otherwise, a summary, and exit 1
//! listing what failed).
//!
//! Bulk uploads run `--jobs` transfers at once and retry each with
//! exponential backoff and full jitter on UNAVAILABLE, RESOURCE_EXHAUSTED and
//! DEADLINE_EXCEEDED (and on a refused or broken connection): safe, because an upload
//! is content-addressed and storing the same bytes twice is harmless.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use backon::Retryable;
use clap::Subcommand;
use nlimage_client::{Client, ClientError, GetOptions, Operation};
use nlimage_core::OutputFormat;

use crate::bulk::{Progress, backoff, plain, retryable};
use crate::cli::Failure;
use crate::connect::ConnectArgs;

/// A store command with the flags that go with it (parsed by
/// [`crate::cli::Invocation`]).
#[derive(Debug)]
pub struct StoreArgs {
    /// What to do.
    pub command: Command,
    /// Where the server is and how to talk to it.
    pub connect: ConnectArgs,
    /// Attempts per transfer after the first (`--retries`).
    pub retries: usize,
}

/// What a fetch or a job makes of an image: operations and encoder options
/// (`get` and `job submit` take the same flags).
#[derive(clap::Args, Debug, Clone)]
pub struct Rendering {
    /// An operation, as for the default command (repeatable, in order).
    #[arg(long = "op", value_name = "SPEC", value_parser = parse_op)]
    pub ops: Vec<Operation>,
    /// Quality of the lossy encodings, 1-100 [default: JPEG 90, WebP 80].
    #[arg(long)]
    pub quality: Option<u32>,
    /// WebP: lossless instead of lossy.
    #[arg(long)]
    pub lossless: bool,
    /// JPEG: progressive scans instead of baseline.
    #[arg(long)]
    pub progressive: bool,
    /// What of the source's EXIF and XMP the result keeps: strip (the
    /// default: nothing, no GPS), copyright, keep.
    #[arg(long, value_name = "WHAT")]
    pub meta: Option<String>,
    /// Keep the source's ICC profile (pixels in its space) instead of
    /// converting to sRGB.
    #[arg(long)]
    pub keep_icc: bool,
    /// PNG compression: none, fast, balanced or best.
    #[arg(long)]
    pub png_compression: Option<String>,
    /// Have the server decode a JPEG whole even when the first operation is
    /// a downscale (by default it shrinks it while decoding: faster
    /// thumbnails, close to but not the exact result).
    #[arg(long)]
    pub exact: bool,
    /// Accepted for older scripts and ignored: shrinking while decoding is
    /// the default now (see --exact).
    #[arg(long, hide = true, conflicts_with = "exact")]
    pub draft: bool,
}

/// What to do.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Upload files, and the images in directories (recursively, by
    /// extension); prints `ID  PATH` per file.
    Put {
        /// Files and directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Transfers at once.
        #[arg(long, short, default_value_t = 4)]
        jobs: usize,
        /// A label for every upload, KEY=VALUE (repeatable).
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Fetch an image into OUT; OUT's extension picks the format (the same
    /// format and no operations: the stored bytes as uploaded).
    Get {
        /// The image's id.
        id: String,
        /// Where to write it.
        out: PathBuf,
        /// Operations and encoder options.
        #[command(flatten)]
        rendering: Rendering,
    },
    /// Delete images and their cached results.
    Rm {
        /// Ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// List stored images: ID  FORMAT  WIDTHxHEIGHT  BYTES  FILENAME.
    Ls,
    /// Asynchronous jobs: submit, watch, ls, cancel.
    #[command(subcommand)]
    Job(crate::job_cli::JobCommand),
}

pub fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| "use KEY=VALUE".into())
}

pub fn parse_op(s: &str) -> Result<Operation, String> {
    Operation::parse(s).map_err(|e| e.to_string())
}

/// Connects, retrying while the server is not there yet.
async fn connect(args: &StoreArgs) -> Result<Client> {
    let options = args.connect.options()?;
    let addr = args.connect.addr();
    let client = (|| Client::connect_with(addr.clone(), options.clone()))
        .retry(backoff(args.retries))
        .when(retryable)
        .await
        .map_err(plain)?;
    Ok(client)
}

/// Runs a store command.
pub async fn run(args: StoreArgs) -> Result<(), Failure> {
    match &args.command {
        Command::Put {
            paths,
            jobs,
            labels,
        } => put(&args, paths, (*jobs).max(1), labels).await,
        Command::Get { id, out, rendering } => {
            let format = OutputFormat::from_path(out).map_err(|e| Failure {
                code: 2,
                error: e.into(),
            })?;
            let client = connect(&args).await?;
            let options = GetOptions {
                format: Some(format.extension().to_owned()),
                ops: rendering.ops.clone(),
                jpeg_quality: rendering.quality,
                png_compression: rendering.png_compression.clone(),
                lossless: rendering.lossless,
                progressive: rendering.progressive,
                meta: rendering.meta.clone(),
                keep_icc: rendering.keep_icc,
                accept: Vec::new(),
                if_none_match: None,
                exact: rendering.exact,
            };
            let fetched = (|| client.get(id, &options))
                .retry(backoff(args.retries))
                .when(retryable)
                .await
                .map_err(plain)?;
            write_atomically(out, &fetched.bytes)?;
            Ok(())
        }
        Command::Rm { ids } => {
            let client = connect(&args).await?;
            let mut failed = Vec::new();
            for id in ids {
                match client.delete(id).await {
                    Ok(n) => println!("deleted {id} ({n} cached results)"),
                    Err(e) => {
                        eprintln!("nl-client: {id}: {e}");
                        failed.push(id.clone());
                    }
                }
            }
            if !failed.is_empty() {
                return Err(
                    anyhow::anyhow!("{} of {} not deleted", failed.len(), ids.len()).into(),
                );
            }
            Ok(())
        }
        Command::Job(command) => {
            let client = connect(&args).await?;
            crate::job_cli::run(client, command, args.retries).await
        }
        Command::Ls => {
            let client = connect(&args).await?;
            let mut token = String::new();
            let mut out = std::io::stdout().lock();
            loop {
                let (page, next) = client.list(1000, &token).await.map_err(plain)?;
                for i in page {
                    writeln!(
                        out,
                        "{}  {}  {}x{}  {}  {}",
                        i.id, i.format, i.width, i.height, i.bytes, i.filename
                    )?;
                }
                if next.is_empty() {
                    return Ok(());
                }
                token = next;
            }
        }
    }
}

/// Writes `bytes` to `out` through a temporary file beside it.
fn write_atomically(out: &Path, bytes: &[u8]) -> Result<()> {
    let context = || format!("cannot write '{}'", out.display());
    let mut tmp = crate::cli::temp_beside(out).with_context(context)?;
    tmp.write_all(bytes).with_context(context)?;
    tmp.persist(out)
        .map_err(|e| e.error)
        .with_context(context)?;
    Ok(())
}

/// The files to upload: each file named, and the images under each
/// directory (by extension, sorted).
fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read the directory '{}'", dir.display()))?
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("cannot read the directory '{}'", dir.display()))?;
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| OutputFormat::from_extension(x).is_some())
            {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        let meta =
            std::fs::metadata(p).with_context(|| format!("cannot read '{}'", p.display()))?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

async fn put(
    args: &StoreArgs,
    paths: &[PathBuf],
    jobs: usize,
    labels: &[(String, String)],
) -> Result<(), Failure> {
    let files = collect(paths).map_err(|e| Failure { code: 2, error: e })?;
    if files.is_empty() {
        return Err(Failure {
            code: 2,
            error: anyhow::anyhow!(
                "no image files among the {} paths given (directories are searched for png, jpg, jpeg, bmp, tif, tiff, webp, gif)",
                paths.len()
            ),
        });
    }
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    let client = connect(args).await?;
    let progress = Arc::new(Progress::new(files.len() as u64, total));
    let gate = Arc::new(tokio::sync::Semaphore::new(jobs));
    let labels: std::collections::HashMap<_, _> = labels.iter().cloned().collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, file) in files.iter().enumerate() {
        let (client, progress, gate, file) = (
            client.clone(),
            Arc::clone(&progress),
            Arc::clone(&gate),
            file.clone(),
        );
        let (retries, labels) = (args.retries, labels.clone());
        tasks.spawn(async move {
            let _slot = gate.acquire_owned().await;
            let result = (|| async {
                let reader = tokio::fs::File::open(&file).await.map_err(|e| {
                    ClientError::Io(format!("cannot read '{}': {e}", file.display()))
                })?;
                let length = reader.metadata().await.ok().map(|m| m.len());
                let options = nlimage_client::PutOptions {
                    filename: file
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    labels: labels.clone(),
                    length,
                    ..Default::default()
                };
                client.put_reader(reader, options).await
            })
            .retry(backoff(retries))
            .when(retryable)
            .await;
            match &result {
                Ok(stored) => {
                    progress.file_done(stored.bytes);
                    progress.println(&format!("{}  {}", stored.id, file.display()));
                }
                Err(_) => progress.file_done(0),
            }
            (i, file, result)
        });
    }
    let mut failed = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (_, file, result) = joined.map_err(|e| anyhow::anyhow!("a transfer failed: {e}"))?;
        if let Err(e) = result {
            failed.push((file, e));
        }
    }
    if let Some(bar) = &progress.bar {
        bar.finish_and_clear();
    }
    let secs = progress.started.elapsed().as_secs_f64();
    let stored = files.len() - failed.len();
    eprintln!(
        "nl-client: {stored} of {} files stored ({:.1} MiB) in {secs:.1} s",
        files.len(),
        progress.bytes.load(Ordering::Relaxed) as f64 / 1048576.0
    );
    if failed.is_empty() {
        return Ok(());
    }
    failed.sort_by(|a, b| a.0.cmp(&b.0));
    for (file, e) in &failed {
        eprintln!("nl-client: failed: {}: {e}", file.display());
    }
    Err(anyhow::anyhow!(
        "{} of {} files failed (listed above)",
        failed.len(),
        files.len()
    )
    .into())
}
