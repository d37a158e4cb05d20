//! Asynchronous jobs from the client: [`Client::submit`] queues one and
//! returns at once; [`Client::job`], [`Client::watch`], [`Client::cancel`]
//! and [`Client::jobs`] follow it from any replica; [`Client::wait`] waits
//! for its end.

use std::collections::HashMap;

use nlimage::convert;
use nlimage::v1::jobs_client::JobsClient;
use nlimage::v1::{
    CancelJobRequest, EncodeOptions, GetJobRequest, JobSpec, ListJobsRequest, SubmitRequest,
    WatchJobRequest, job_spec,
};
use tokio_stream::StreamExt;

pub use nlimage::v1::{Job, JobState};

use crate::{Client, ClientError, Operation, Stub};

/// Where a job's input comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A stored image's id.
    Stored(String),
    /// An http(s) URL the server fetches.
    Url(String),
}

/// A job to submit.
#[derive(Clone, Debug)]
pub struct JobRequest {
    /// Its input.
    pub source: Source,
    /// Operations, in order.
    pub ops: Vec<Operation>,
    /// The result's format as an extension ("png", "jpg", "webp", ...).
    pub format: String,
    /// Quality of the lossy encodings, 1-100 [default: the server's, JPEG
    /// 90, WebP 80].
    pub jpeg_quality: Option<u32>,
    /// PNG compression: none, fast, balanced, best [default: fast].
    pub png_compression: Option<String>,
    /// WebP: lossless instead of lossy.
    pub lossless: bool,
    /// JPEG: progressive scans instead of baseline.
    pub progressive: bool,
    /// What of the source's EXIF and XMP the result keeps: strip (the
    /// default), copyright or keep.
    pub meta: Option<String>,
    /// Keep the source's ICC profile instead of converting to sRGB.
    pub keep_icc: bool,
    /// Decode whole even before a first downscale (no shrink-on-load).
    pub exact: bool,
    /// Labels to find it by.
    pub labels: HashMap<String, String>,
    /// Submitting again with the same key returns the same job.
    pub idempotency_key: Option<String>,
}

impl JobRequest {
    /// A job converting `source` to `format`.
    pub fn new(source: Source, format: impl Into<String>) -> Self {
        Self {
            source,
            ops: Vec::new(),
            format: format.into(),
            jpeg_quality: None,
            png_compression: None,
            lossless: false,
            progressive: false,
            meta: None,
            keep_icc: false,
            exact: false,
            labels: HashMap::new(),
            idempotency_key: None,
        }
    }
}

/// A job's state, from its wire number.
pub fn state(job: &Job) -> JobState {
    JobState::try_from(job.state).unwrap_or(JobState::Unspecified)
}

impl Client {
    fn jobs_stub(&self) -> JobsClient<Stub> {
        let mut stub = JobsClient::new(self.stub());
        if let Some(c) = self.options.compression {
            stub = stub.send_compressed(c).accept_compressed(c);
        }
        stub
    }

    /// Queues `job`; returns it at once (QUEUED, or as it is now if its
    /// idempotency key names an earlier job).
    pub async fn submit(&self, job: &JobRequest) -> Result<Job, ClientError> {
        let source = match &job.source {
            Source::Stored(id) => job_spec::Source::SourceId(id.clone()),
            Source::Url(u) => job_spec::Source::SourceUrl(u.clone()),
        };
        let req = SubmitRequest {
            spec: Some(JobSpec {
                source: Some(source),
                operations: job.ops.iter().map(convert::to_wire).collect(),
                format: job.format.clone(),
                encode: Some(EncodeOptions {
                    jpeg_quality: job.jpeg_quality,
                    png_compression: job.png_compression.clone().unwrap_or_default(),
                    lossless: job.lossless,
                    progressive: job.progressive,
                    effort: None,
                    meta: job.meta.clone().unwrap_or_default(),
                    keep_icc: job.keep_icc,
                }),
                exact: job.exact,
                draft: false,
            }),
            labels: job.labels.clone(),
            idempotency_key: job.idempotency_key.clone().unwrap_or_default(),
        };
        Ok(self
            .jobs_stub()
            .submit(self.request(req))
            .await?
            .into_inner())
    }

    /// The job `id` as it is now.
    pub async fn job(&self, id: &str) -> Result<Job, ClientError> {
        let req = GetJobRequest { id: id.to_owned() };
        Ok(self.jobs_stub().get(self.request(req)).await?.into_inner())
    }

    /// The job `id` now and at every change until it ends.
    pub async fn watch(
        &self,
        id: &str,
    ) -> Result<impl tokio_stream::Stream<Item = Result<Job, ClientError>> + use<>, ClientError>
    {
        let req = WatchJobRequest { id: id.to_owned() };
        let stream = self
            .jobs_stub()
            .watch(self.request(req))
            .await?
            .into_inner();
        Ok(stream.map(|r| r.map_err(ClientError::from)))
    }

    /// Waits for the job `id` to end and returns it, calling `progress` at
    /// every change.
    pub async fn wait(&self, id: &str, mut progress: impl FnMut(&Job)) -> Result<Job, ClientError> {
        let mut stream = Box::pin(self.watch(id).await?);
        while let Some(job) = stream.next().await.transpose()? {
            progress(&job);
            if job.done {
                return Ok(job);
            }
        }
        Err(ClientError::Protocol(format!(
            "the watch of job {id} ended before the job did"
        )))
    }

    /// Cancels the job `id`; returns it.
    pub async fn cancel(&self, id: &str) -> Result<Job, ClientError> {
        let req = CancelJobRequest { id: id.to_owned() };
        Ok(self
            .jobs_stub()
            .cancel(self.request(req))
            .await?
            .into_inner())
    }

    /// One page of jobs, newest first, in `state` (UNSPECIFIED: all) and
    /// carrying all of `labels`; returns them and the next page's token
    /// (empty on the last page).
    pub async fn jobs(
        &self,
        state: JobState,
        labels: &HashMap<String, String>,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<Job>, String), ClientError> {
        let req = ListJobsRequest {
            state: state as i32,
            labels: labels.clone(),
            page_size,
            page_token: page_token.to_owned(),
        };
        let r = self.jobs_stub().list(self.request(req)).await?.into_inner();
        Ok((r.jobs, r.next_page_token))
    }
}
