//! The worker loop: claims runnable jobs while this replica has room, runs
//! each under a lease it renews, and ends it -- succeeded with its stored
//! result, failed with a status, or queued again after a transient failure.
//! A job runs on the executor ([`crate::exec::Executor::render`], the code
//! behind `ImageStore.Get` and the HTTP gateway), so it goes through the
//! same admission (worker slots, the memory budget), limits and compute pool
//! as requests do; a job cancelled (or taken over) drops its work, which
//! stops at its next band and keeps its reservation until it has stopped.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nlimage::convert;
use nlimage::v1::{JobSpec, job_spec};
use prost::Message;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tracing::Instrument;

use super::db::{JobRow, state};
use super::{Jobs, now_ms};
use crate::error::{Error, Result};
use crate::exec::Executor;
use crate::exec::render::RenderRequest;
use crate::store::{Meta, PutInfo};

/// How often a running job checks that it is still its replica's (not
/// cancelled elsewhere, lease not lost).
const CHECK_EVERY: Duration = Duration::from_millis(250);
/// How long an idle worker waits before looking at the queue again (a job
/// submitted to this replica wakes it at once).
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Runs jobs until `stop`; then waits up to `grace` for running jobs and
/// puts the rest back in the queue for another replica.
pub async fn run(jobs: Jobs, exec: Executor, stop: CancellationToken, grace: Duration) {
    let concurrency = match jobs.inner.config.concurrency {
        0 => 2 * exec.workers(),
        n => n,
    };
    let room = Arc::new(Semaphore::new(concurrency));
    tokio::spawn(purge_ended(jobs.clone(), stop.clone()));
    let mut tasks = JoinSet::new();
    let lease = jobs.inner.config.lease;
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&room).acquire_owned() => p.expect("never closed"),
            () = stop.cancelled() => break,
        };
        while tasks.try_join_next().is_some() {}
        let now = now_ms();
        let claimed = jobs
            .queue()
            .claim(&jobs.inner.owner, now, now + lease.as_millis() as i64)
            .await;
        match claimed {
            Ok(Some(row)) => {
                jobs.inner.changed.notify_waiters();
                let (jobs, exec) = (jobs.clone(), exec.clone());
                tasks.spawn(async move {
                    run_one(&jobs, &exec, row).await;
                    drop(permit);
                });
            }
            Ok(None) => {
                drop(permit);
                tokio::select! {
                    () = jobs.inner.submitted.notified() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                    () = stop.cancelled() => break,
                }
            }
            Err(e) => {
                drop(permit);
                tracing::warn!("job queue: cannot claim: {e}");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = stop.cancelled() => break,
                }
            }
        }
    }
    if tasks.is_empty() {
        return;
    }
    tracing::info!(
        "jobs: {} running; they have {grace:?} to finish",
        tasks.len()
    );
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        // Whatever is still running goes back to the queue now, rather than
        // when its lease runs out.
        let left: Vec<String> = jobs.running().keys().cloned().collect();
        tasks.abort_all();
        for id in left {
            let _ = jobs
                .queue()
                .requeue(
                    &id,
                    &jobs.inner.owner,
                    now_ms(),
                    "the replica running it shut down",
                )
                .await;
        }
    }
}

/// Removes ended jobs older than the retention, every hour (any replica may:
/// the deletes are idempotent).
async fn purge_ended(jobs: Jobs, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let before = now_ms() - jobs.inner.config.retention.as_millis() as i64;
        match jobs.queue().purge(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                "jobs: removed {n} ended more than {:?} ago",
                jobs.inner.config.retention
            ),
            Err(e) => tracing::warn!("jobs: cannot remove old jobs: {e}"),
        }
    }
}

/// Runs one claimed job to its end (or until it is no longer ours).
async fn run_one(jobs: &Jobs, exec: &Executor, row: JobRow) {
    let id = row.id.clone();
    let owner = jobs.inner.owner.clone();
    let max = i64::from(jobs.inner.config.max_attempts);
    let queue = jobs.queue();
    if row.attempts > max {
        let why = format!(
            "gave up after {} attempts (last: {})",
            row.attempts - 1,
            if row.error_message.is_empty() {
                "the replica running it stopped"
            } else {
                &row.error_message
            }
        );
        let _ = queue
            .finish(
                &id,
                &owner,
                state::FAILED,
                None,
                Code::Aborted as i64,
                &why,
                now_ms(),
            )
            .await;
        jobs.inner.changed.notify_waiters();
        return;
    }
    let token = CancellationToken::new();
    let running = {
        let mut r = jobs.running();
        r.insert(id.clone(), token.clone());
        r.len()
    };
    let claimed_at = std::time::Instant::now();
    let waited = (now_ms() - row.created_ms).max(0) as f64 / 1e3;
    crate::metrics::job_claimed(waited, running);
    let span = tracing::info_span!(
        "job",
        job.id = %id,
        job.attempt = row.attempts,
        trace_id = tracing::field::Empty,
    );
    crate::otel::record_trace_id(&span);
    // The wait in the queue, from submission to this claim.
    let since = std::time::UNIX_EPOCH + Duration::from_millis(row.created_ms.max(0) as u64);
    crate::otel::past_span(&span, "queue wait", since, std::time::SystemTime::now());
    let work = execute(jobs, exec, &id, &row.spec).instrument(span);
    let outcome = tokio::select! {
        r = work => Some(r),
        () = keep_lease(jobs, &id) => None,
        () = token.cancelled() => None,
    };
    // The work's future is gone with the select: whatever still computes
    // for this job stops at its next band.
    token.cancel();
    let running = {
        let mut r = jobs.running();
        r.remove(&id);
        r.len()
    };
    let now = now_ms();
    let label = match &outcome {
        None => "stopped",
        Some(Ok(_)) => "succeeded",
        Some(Err(e)) if e.is_transient() && row.attempts < max => "retried",
        Some(Err(_)) => "failed",
    };
    crate::metrics::job_ended(label, claimed_at.elapsed().as_secs_f64(), running);
    let done = match outcome {
        None => {
            tracing::info!(job = %id, "job stopped: cancelled or taken over");
            Ok(false)
        }
        Some(Ok(meta)) => {
            let result = serde_json::to_string(&meta).unwrap_or_default();
            queue
                .finish(&id, &owner, state::SUCCEEDED, Some(&result), 0, "", now)
                .await
        }
        Some(Err(e)) if e.is_transient() && row.attempts < max => {
            let backoff = 1000i64 << (row.attempts - 1).clamp(0, 6);
            tracing::warn!(job = %id, "job failed ({:?}), will retry: {e}", e.code());
            queue
                .requeue(&id, &owner, now + backoff, &e.to_string())
                .await
        }
        Some(Err(e)) => {
            queue
                .finish(
                    &id,
                    &owner,
                    state::FAILED,
                    None,
                    e.code() as i64,
                    &e.to_string(),
                    now,
                )
                .await
        }
    };
    if let Err(e) = done {
        // The lease runs out and another replica runs it again.
        tracing::warn!(job = %id, "job queue: cannot record the end of the job: {e}");
    }
    jobs.inner.changed.notify_waiters();
}

/// Returns when the job is no longer ours: cancelled (here or on another
/// replica) or its lease lost; renews the lease meanwhile.
async fn keep_lease(jobs: &Jobs, id: &str) {
    let lease = jobs.inner.config.lease;
    let renew_every = lease / 3;
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let queue = jobs.queue();
        let mine = if last_renewal.elapsed() >= renew_every {
            last_renewal = tokio::time::Instant::now();
            queue
                .renew(id, &jobs.inner.owner, now_ms() + lease.as_millis() as i64)
                .await
        } else {
            queue.holds(id, &jobs.inner.owner).await
        };
        match mine {
            Ok(true) => {}
            Ok(false) => return,
            // The database is away: keep working; the final update decides.
            Err(e) => tracing::warn!(job = %id, "job queue: cannot check the lease: {e}"),
        }
    }
}

async fn set_stage(jobs: &Jobs, id: &str, stage: &str, progress: f64) {
    let _ = jobs
        .queue()
        .progress(id, &jobs.inner.owner, stage, progress)
        .await;
    jobs.inner.changed.notify_waiters();
}

/// The job's work: source, operations, encoding, the stored result.
async fn execute(jobs: &Jobs, exec: &Executor, id: &str, spec: &[u8]) -> Result<Meta> {
    let spec = JobSpec::decode(spec)
        .map_err(|e| Error::internal(format!("the stored job cannot be read: {e}")))?;
    let store = exec.store()?;
    let source = match spec.source {
        Some(job_spec::Source::SourceId(s)) => s,
        Some(job_spec::Source::SourceUrl(url)) => {
            set_stage(jobs, id, "fetching", 0.05).await;
            let fetched = exec.upload_url(&url, Default::default()).await?.id;
            set_stage(jobs, id, "processing", 0.3).await;
            fetched
        }
        None => return Err(Error::invalid("the job has no source")),
    };
    // (A claimed job is already at "processing".)
    let format = convert::output_format(&spec.format)?
        .ok_or_else(|| Error::invalid("a job needs an output format"))?;
    let ops = convert::operations(&spec.operations)?;
    let request = RenderRequest {
        id: source,
        format: Some(format),
        auto: None,
        ops,
        options: convert::encode_options(spec.encode.as_ref())?,
        if_none_match: None,
        exact: spec.exact,
        no_cache: true,
    };
    let rendered = exec.render(request, None).await?;
    let body: Bytes = rendered
        .body
        .ok_or_else(|| Error::internal("the result came back empty"))?;
    let info = PutInfo {
        filename: format!("{id}.{}", format.extension()),
        content_type: format.mime().to_string(),
        labels: Default::default(),
        length: Some(body.len() as u64),
    };
    let chunks = tokio_stream::iter([Ok::<_, Error>(body)]);
    store.put(info, &exec.limits, chunks).await
}
