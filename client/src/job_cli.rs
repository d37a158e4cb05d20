//! `nl-client job submit|watch|ls|cancel`: asynchronous jobs from the
//! command line. `submit` takes stored ids, URLs and files (uploaded first),
//! or one per line with `--from FILE`, runs `--jobs` submissions at once with
//! retries (each carries an idempotency key, so a retried submission never
//! makes a second job), prints `JOB_ID  SOURCE` per source, and with `--wait`
//! follows every job to its end (`JOB_ID  STATE  RESULT_ID  SOURCE`).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use backon::Retryable;
use clap::Subcommand;
use nlimage_client::jobs::state;
use nlimage_client::{Client, ClientError, Job, JobRequest, JobState, Source};

use crate::bulk::{Progress, backoff, plain, retryable};
use crate::cli::Failure;

/// The job commands.
#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// Queue jobs: one per source, each a stored id, an http(s) URL (the
    /// server fetches it) or a file (uploaded to the store first).
    Submit {
        /// Sources: IDs, URLs or files.
        sources: Vec<String>,
        /// Read more sources from this file, one per line ('-': stdin).
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// The result's format: png, jpg, webp, ...
        #[arg(long)]
        format: String,
        /// Operations and encoder options, as for `get`.
        #[command(flatten)]
        rendering: crate::store_cli::Rendering,
        /// A label for every job, KEY=VALUE (repeatable).
        #[arg(long = "label", value_parser = crate::store_cli::parse_label)]
        labels: Vec<(String, String)>,
        /// An idempotency key (with several sources, `KEY-N` for the N-th)
        /// [default: a fresh key per run, so retries within it are safe].
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Wait for every job to end; exit 1 if any did not succeed.
        #[arg(long)]
        wait: bool,
        /// Submissions at once.
        #[arg(long, short, default_value_t = 8)]
        jobs: usize,
    },
    /// Follow a job until it ends (a progress bar on a terminal, a line per
    /// change otherwise); exit 1 unless it succeeded.
    Watch {
        /// The job's id.
        id: String,
    },
    /// List jobs, newest first: ID  STATE  STAGE  ATTEMPTS  RESULT.
    Ls {
        /// Only jobs in this state: queued, running, succeeded, failed, cancelled.
        #[arg(long, value_parser = parse_state)]
        state: Option<JobState>,
        /// Only jobs with this label, KEY=VALUE (repeatable).
        #[arg(long = "label", value_parser = crate::store_cli::parse_label)]
        labels: Vec<(String, String)>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Cancel jobs: a queued one never runs, a running one stops.
    Cancel {
        /// Job ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

fn parse_state(s: &str) -> Result<JobState, String> {
    JobState::from_str_name(&format!("JOB_STATE_{}", s.to_ascii_uppercase()))
        .filter(|s| *s != JobState::Unspecified)
        .ok_or_else(|| "use queued, running, succeeded, failed or cancelled".into())
}

fn state_name(job: &Job) -> &'static str {
    match state(job) {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
        JobState::Unspecified => "unknown",
    }
}

/// A stored id is 64 lowercase hex digits.
fn looks_like_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Runs a job command.
pub async fn run(client: Client, command: &JobCommand, retries: usize) -> Result<(), Failure> {
    match command {
        JobCommand::Submit {
            sources,
            from,
            format,
            rendering,
            labels,
            idempotency_key,
            wait,
            jobs,
        } => {
            let mut all = sources.clone();
            if let Some(f) = from {
                all.extend(read_sources(f).map_err(|e| Failure { code: 2, error: e })?);
            }
            if all.is_empty() {
                return Err(Failure {
                    code: 2,
                    error: anyhow::anyhow!("no sources: give IDs, URLs or files, or --from FILE"),
                });
            }
            let mut template = JobRequest::new(Source::Stored(String::new()), format.clone());
            template.ops = rendering.ops.clone();
            template.jpeg_quality = rendering.quality;
            template.png_compression = rendering.png_compression.clone();
            template.lossless = rendering.lossless;
            template.progressive = rendering.progressive;
            template.meta = rendering.meta.clone();
            template.keep_icc = rendering.keep_icc;
            template.exact = rendering.exact;
            template.labels = labels.iter().cloned().collect();
            let run_key = idempotency_key.clone().unwrap_or_else(fresh_key);
            let single = all.len() == 1 && idempotency_key.is_some();
            submit_all(
                client,
                all,
                template,
                run_key,
                single,
                *wait,
                (*jobs).max(1),
                retries,
            )
            .await
        }
        JobCommand::Watch { id } => {
            let job = watch(&client, id).await.map_err(plain)?;
            print_end(&job);
            if state(&job) == JobState::Succeeded {
                Ok(())
            } else {
                Err(anyhow::anyhow!("job {id} {}", ended_how(&job)).into())
            }
        }
        JobCommand::Ls {
            state: want,
            labels,
            limit,
        } => {
            let labels: HashMap<_, _> = labels.iter().cloned().collect();
            let want = want.unwrap_or(JobState::Unspecified);
            let mut token = String::new();
            let mut shown = 0;
            let mut out = std::io::stdout().lock();
            while shown < *limit {
                let size = (*limit - shown).min(1000) as u32;
                let (page, next) = client
                    .jobs(want, &labels, size, &token)
                    .await
                    .map_err(plain)?;
                for j in &page {
                    let result = j.result.as_ref().map_or("-", |r| r.id.as_str());
                    writeln!(
                        out,
                        "{}  {}  {}  {}  {}",
                        j.id,
                        state_name(j),
                        j.stage,
                        j.attempts,
                        result
                    )?;
                }
                shown += page.len();
                if next.is_empty() || page.is_empty() {
                    break;
                }
                token = next;
            }
            Ok(())
        }
        JobCommand::Cancel { ids } => {
            let mut failed = 0;
            for id in ids {
                match client.cancel(id).await {
                    Ok(j) => println!("{}  {}", j.id, state_name(&j)),
                    Err(e) => {
                        eprintln!("nl-client: {id}: {e}");
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                return Err(anyhow::anyhow!("{failed} of {} not cancelled", ids.len()).into());
            }
            Ok(())
        }
    }
}

fn fresh_key() -> String {
    // Unique per run: time and process id, enough to tell runs apart.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("nl-client-{nanos:x}-{:x}", std::process::id())
}

fn read_sources(path: &Path) -> Result<Vec<String>> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("cannot read sources from stdin")?
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read sources from '{}'", path.display()))?
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

fn ended_how(job: &Job) -> String {
    match (&job.error, state(job)) {
        (_, JobState::Succeeded) => "succeeded".into(),
        (Some(e), s) => format!(
            "{}: {} ({})",
            if s == JobState::Cancelled {
                "was cancelled"
            } else {
                "failed"
            },
            e.message,
            nlimage_client::status_name(tonic::Code::from(e.code))
        ),
        (None, _) => state_name(job).into(),
    }
}

fn print_end(job: &Job) {
    if let Some(r) = &job.result {
        println!("{}  {}", job.id, r.id);
        if !job.result_url.is_empty() {
            println!("{}", job.result_url);
        }
    }
}

/// Follows `id` to its end with a bar on a terminal.
async fn watch(client: &Client, id: &str) -> Result<Job, ClientError> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(100);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}% {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    });
    let job = client
        .wait(id, |j| match &bar {
            Some(b) => {
                b.set_message(j.stage.clone());
                b.set_position((j.progress * 100.0) as u64);
            }
            None => eprintln!(
                "nl-client: {}  {}  {}  {:.0}%",
                j.id,
                state_name(j),
                j.stage,
                j.progress * 100.0
            ),
        })
        .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    job
}

/// Where a source comes from.
async fn source(client: &Client, s: &str) -> Result<Source, ClientError> {
    if s.starts_with("http://") || s.starts_with("https://") {
        return Ok(Source::Url(s.to_owned()));
    }
    let path = Path::new(s);
    if looks_like_id(s) && !path.exists() {
        return Ok(Source::Stored(s.to_owned()));
    }
    if !path.is_file() {
        return Err(ClientError::Io(format!(
            "'{s}' is neither a stored id, an http(s) URL nor a file"
        )));
    }
    Ok(Source::Stored(client.put_file(path).await?.id))
}

#[allow(clippy::too_many_arguments)]
async fn submit_all(
    client: Client,
    sources: Vec<String>,
    template: JobRequest,
    run_key: String,
    single: bool,
    wait: bool,
    jobs: usize,
    retries: usize,
) -> Result<(), Failure> {
    let n = sources.len();
    let progress = Progress::items(n as u64, if wait { "jobs done" } else { "submitted" });
    // One source: its own line says it all.
    let progress = Arc::new(if n == 1 { progress.quiet() } else { progress });
    let gate = Arc::new(tokio::sync::Semaphore::new(jobs));
    let template = Arc::new(template);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, s) in sources.into_iter().enumerate() {
        let (client, progress, gate, template) = (
            client.clone(),
            Arc::clone(&progress),
            Arc::clone(&gate),
            Arc::clone(&template),
        );
        let key = if single {
            run_key.clone()
        } else {
            format!("{run_key}-{i}")
        };
        tasks.spawn(async move {
            let slot = gate.acquire_owned().await;
            let result = async {
                let src = (|| source(&client, &s))
                    .retry(backoff(retries))
                    .when(retryable)
                    .await?;
                let mut req = (*template).clone();
                req.source = src;
                req.idempotency_key = Some(key.clone());
                let job = (|| client.submit(&req))
                    .retry(backoff(retries))
                    .when(retryable)
                    .await?;
                drop(slot);
                if !wait {
                    progress.println(&format!("{}  {s}", job.id));
                    return Ok(job);
                }
                let job = (|| client.wait(&job.id, |_| {}))
                    .retry(backoff(retries))
                    .when(retryable)
                    .await?;
                let result = job.result.as_ref().map_or("-", |r| r.id.as_str());
                progress.println(&format!("{}  {}  {result}  {s}", job.id, state_name(&job)));
                Ok::<Job, ClientError>(job)
            }
            .await;
            progress.file_done(1);
            (s, result)
        });
    }
    let mut failed = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (s, result) = joined.map_err(|e| anyhow::anyhow!("a submission failed: {e}"))?;
        match result {
            Err(e) => failed.push((s, e.to_string())),
            Ok(job) if wait && state(&job) != JobState::Succeeded => {
                failed.push((s, format!("job {} {}", job.id, ended_how(&job))));
            }
            Ok(_) => {}
        }
    }
    if let Some(bar) = &progress.bar {
        bar.finish_and_clear();
    }
    if n == 1 && failed.is_empty() {
        return Ok(());
    }
    eprintln!(
        "nl-client: {} of {n} jobs {} in {:.1} s",
        n - failed.len(),
        if wait { "succeeded" } else { "submitted" },
        progress.started.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        return Ok(());
    }
    failed.sort();
    for (s, e) in &failed {
        eprintln!("nl-client: failed: {s}: {e}");
    }
    Err(anyhow::anyhow!("{} of {n} sources failed (listed above)", failed.len()).into())
}
