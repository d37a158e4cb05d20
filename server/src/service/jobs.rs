//! The `nlimage.v1.Jobs` RPCs: validate a submission, queue it, and answer
//! for any job from the shared queue (whichever replica runs it).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use nlimage::convert;
use nlimage::v1::jobs_server::Jobs as JobsRpc;
use nlimage::v1::{
    CancelJobRequest, GetJobRequest, Job, JobError, JobSpec, JobState, ListJobsRequest,
    ListJobsResponse, SubmitRequest, WatchJobRequest, job_spec,
};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::store::stored_image;
use crate::error::{Error, Result};
use crate::gate;
use crate::jobs::{Inserted, JobRow, Jobs, ListFilter, db::state};
use crate::log::RequestLog;
use crate::store::Meta;
use crate::store::upload::check_labels;

/// How often Watch looks at the queue for changes made by other replicas.
const WATCH_POLL: Duration = Duration::from_millis(200);

/// The jobs service.
#[derive(Clone, Debug)]
pub struct JobsService {
    jobs: Option<Jobs>,
    /// Whether the server has a store (jobs need one).
    has_store: bool,
    /// Operations one job may ask for (`--max-operations`).
    max_operations: usize,
}

impl JobsService {
    /// A service on `jobs` (absent: every call is UNAVAILABLE).
    pub fn new(jobs: Option<Jobs>, has_store: bool, max_operations: usize) -> Self {
        Self {
            jobs,
            has_store,
            max_operations,
        }
    }

    /// The job queue, or UNAVAILABLE saying the server runs without one.
    fn jobs(&self) -> Result<&Jobs> {
        self.jobs.as_ref().ok_or_else(|| {
            Error::unavailable("this server runs without jobs (nl-server --database none)")
        })
    }
}

/// Checks everything about a spec that does not need its source.
pub fn check_spec(spec: &JobSpec) -> Result<()> {
    match &spec.source {
        Some(job_spec::Source::SourceId(id)) => {
            crate::store::id::check(id).map_err(Error::InvalidInput)?;
        }
        Some(job_spec::Source::SourceUrl(url)) => {
            let u = url::Url::parse(url)
                .map_err(|e| Error::invalid(format!("source URL '{url}': {e}")))?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err(Error::invalid(format!(
                    "source URL '{url}': use http:// or https://"
                )));
            }
        }
        None => {
            return Err(Error::invalid(
                "a job needs a source: source_id (a stored image) or source_url",
            ));
        }
    }
    if convert::output_format(&spec.format)?.is_none() {
        return Err(Error::invalid(
            "a job needs an output format: png, jpg, webp, ...",
        ));
    }
    convert::operations(&spec.operations)?;
    convert::encode_options(spec.encode.as_ref())?;
    Ok(())
}

/// The wire form of a stored job.
pub fn job(row: &JobRow, public_url: Option<&str>) -> Job {
    let state = match row.state {
        state::QUEUED => JobState::Queued,
        state::RUNNING => JobState::Running,
        state::SUCCEEDED => JobState::Succeeded,
        state::FAILED => JobState::Failed,
        state::CANCELLED => JobState::Cancelled,
        _ => JobState::Unspecified,
    };
    let done = matches!(
        state,
        JobState::Succeeded | JobState::Failed | JobState::Cancelled
    );
    let result: Option<Meta> = row
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok());
    let result_url = match (&result, public_url) {
        (Some(m), Some(base)) => format!(
            "{}/v1/images/{}.{}",
            base.trim_end_matches('/'),
            m.id,
            m.format
        ),
        _ => String::new(),
    };
    let labels: BTreeMap<String, String> = serde_json::from_str(&row.labels).unwrap_or_default();
    let error = (matches!(state, JobState::Failed | JobState::Cancelled)).then(|| JobError {
        code: row.error_code as i32,
        message: row.error_message.clone(),
    });
    Job {
        id: row.id.clone(),
        state: state as i32,
        done,
        stage: row.stage.clone(),
        progress: row.progress as f32,
        spec: JobSpec::decode(row.spec.as_slice()).ok(),
        labels: labels.into_iter().collect(),
        idempotency_key: row.idempotency_key.clone().unwrap_or_default(),
        result: result.map(stored_image),
        result_url,
        error,
        created_unix_ms: row.created_ms,
        started_unix_ms: row.started_ms,
        finished_unix_ms: row.finished_ms,
        attempts: row.attempts as u32,
    }
}

fn page_token(row: &JobRow) -> String {
    format!("{}.{}", row.created_ms, row.id)
}

fn parse_token(t: &str) -> Result<Option<(i64, String)>> {
    if t.is_empty() {
        return Ok(None);
    }
    let bad = || Error::invalid(format!("page token '{t}' is not one List returned"));
    let (ms, id) = t.split_once('.').ok_or_else(bad)?;
    Ok(Some((ms.parse().map_err(|_| bad())?, id.to_string())))
}

type WatchStream = Pin<Box<dyn Stream<Item = std::result::Result<Job, Status>> + Send>>;

/// Runs a unary call's `work`, logged and counted like every request.
async fn logged<T>(
    method: &'static str,
    request_id: String,
    detail: String,
    work: impl std::future::Future<Output = Result<T>>,
) -> std::result::Result<Response<T>, Status> {
    let mut log = RequestLog::start(method, request_id);
    log.describe(detail);
    let result = work.await;
    log.finish(result.as_ref().map(|_| ()));
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl JobsRpc for JobsService {
    async fn submit(
        &self,
        request: Request<SubmitRequest>,
    ) -> std::result::Result<Response<Job>, Status> {
        let rid = gate::request_id(request.metadata());
        let r = request.into_inner();
        let detail = format!(
            "submit ({} ops)",
            r.spec.as_ref().map_or(0, |s| s.operations.len())
        );
        logged("nlimage.v1.Jobs/Submit", rid, detail, self.submit_job(r)).await
    }

    async fn get(
        &self,
        request: Request<GetJobRequest>,
    ) -> std::result::Result<Response<Job>, Status> {
        let rid = gate::request_id(request.metadata());
        let id = request.into_inner().id;
        let work = async {
            let jobs = self.jobs()?;
            let row = jobs.get(&id).await?;
            Ok(job(&row, jobs.public_url()))
        };
        logged("nlimage.v1.Jobs/Get", rid, format!("job {id}"), work).await
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<WatchJobRequest>,
    ) -> std::result::Result<Response<Self::WatchStream>, Status> {
        // Logged and counted when the stream opens (or is refused).
        let rid = gate::request_id(request.metadata());
        let detail = format!("watch {}", request.get_ref().id);
        logged("nlimage.v1.Jobs/Watch", rid, detail, async {
            self.watch_job(request).await
        })
        .await
    }

    async fn cancel(
        &self,
        request: Request<CancelJobRequest>,
    ) -> std::result::Result<Response<Job>, Status> {
        let rid = gate::request_id(request.metadata());
        let id = request.into_inner().id;
        let work = async {
            let jobs = self.jobs()?;
            let row = jobs.cancel(&id).await?;
            Ok(job(&row, jobs.public_url()))
        };
        logged("nlimage.v1.Jobs/Cancel", rid, format!("job {id}"), work).await
    }

    async fn list(
        &self,
        request: Request<ListJobsRequest>,
    ) -> std::result::Result<Response<ListJobsResponse>, Status> {
        let rid = gate::request_id(request.metadata());
        let r = request.into_inner();
        logged(
            "nlimage.v1.Jobs/List",
            rid,
            String::new(),
            self.list_jobs(r),
        )
        .await
    }
}

impl JobsService {
    async fn submit_job(&self, r: SubmitRequest) -> Result<Job> {
        let jobs = self.jobs()?;
        if !self.has_store {
            return Err(Error::unavailable(
                "this server runs without a store (nl-server --store none)",
            ));
        }
        let spec = r.spec.ok_or_else(|| Error::invalid("a job needs a spec"))?;
        check_spec(&spec)?;
        if spec.operations.len() > self.max_operations {
            return Err(Error::too_large(
                format!(
                    "{} operations in one job, over the limit of {} (nl-server --max-operations)",
                    spec.operations.len(),
                    self.max_operations
                ),
                "--max-operations",
            ));
        }
        let labels: BTreeMap<String, String> = r.labels.into_iter().collect();
        check_labels(&labels)?;
        if r.idempotency_key.len() > 256 {
            return Err(Error::invalid(
                "the idempotency key is longer than 256 bytes",
            ));
        }
        let key = (!r.idempotency_key.is_empty()).then_some(r.idempotency_key);
        let bytes = spec.encode_to_vec();
        let row = match jobs.submit(bytes.clone(), labels, key).await? {
            Inserted::New(row) => row,
            Inserted::Existing(row) if row.spec == bytes => row,
            Inserted::Existing(row) => {
                return Err(Error::already_exists(format!(
                    "idempotency key '{}' was used for another job ({}) with a different spec",
                    row.idempotency_key.unwrap_or_default(),
                    row.id
                )));
            }
        };
        Ok(job(&row, jobs.public_url()))
    }

    async fn watch_job(&self, request: Request<WatchJobRequest>) -> Result<WatchStream> {
        let jobs = self.jobs()?.clone();
        let id = request.into_inner().id;
        let mut last = jobs.get(&id).await?;
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let first = job(&last, jobs.public_url());
            let mut done = first.done;
            if tx.send(Ok(first)).await.is_err() {
                return;
            }
            while !done {
                tokio::select! {
                    () = jobs.changed(WATCH_POLL) => {}
                    () = tx.closed() => return,
                }
                let row = match jobs.get(&id).await {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
                if row != last {
                    let j = job(&row, jobs.public_url());
                    done = j.done;
                    if tx.send(Ok(j)).await.is_err() {
                        return;
                    }
                    last = row;
                }
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    async fn list_jobs(&self, r: ListJobsRequest) -> Result<ListJobsResponse> {
        let jobs = self.jobs()?;
        let size = match r.page_size {
            0 => 100,
            n @ 1..=1000 => i64::from(n),
            n => {
                return Err(Error::invalid(format!("page_size {n}: use 1 to 1000")));
            }
        };
        let state = match JobState::try_from(r.state) {
            Ok(JobState::Unspecified) => None,
            Ok(s) => Some(i64::from(s as i32)),
            Err(_) => {
                return Err(Error::invalid(format!("unknown job state {}", r.state)));
            }
        };
        let filter = ListFilter {
            state,
            labels: r.labels.into_iter().collect(),
            before: parse_token(&r.page_token)?,
            limit: size + 1,
        };
        let mut rows = jobs.queue().list(&filter).await.map_err(Error::from)?;
        let more = rows.len() as i64 > size;
        rows.truncate(size as usize);
        let next_page_token = if more {
            rows.last().map(page_token).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(ListJobsResponse {
            jobs: rows.iter().map(|r| job(r, jobs.public_url())).collect(),
            next_page_token,
        })
    }
}
