//! Asynchronous jobs: a durable queue (an embedded SQLite file by default,
//! PostgreSQL shared by replicas at scale) and the worker loop that claims
//! jobs under a lease and runs them on the same code as the store's fetches
//! (so the same admission, limits and compute pool).
//!
//! A job is claimed with a lease that its replica renews while it runs; a
//! replica that dies stops renewing, and when the lease runs out another
//! replica claims the job and runs it again. Results are content-addressed,
//! so a second run stores the same bytes under the same id; a job ends once
//! (the final update is conditional on still holding the lease).

pub mod db;
pub mod worker;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::Error;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use db::{Inserted, JobRow, ListFilter, NewJob, Queue};

/// How the server runs jobs.
#[derive(Clone, Debug)]
pub struct JobsConfig {
    /// `sqlite://PATH` or `postgres://...`; `None`: no jobs.
    pub database: Option<String>,
    /// How long a claim lasts without renewal.
    pub lease: Duration,
    /// Jobs one replica runs at once (0: twice the workers, so that one
    /// job's I/O overlaps another's computing).
    pub concurrency: usize,
    /// Runs of a job at most (a transient failure or a dead replica counts).
    pub max_attempts: u32,
    /// Base of result URLs on the HTTP gateway (`http://host:port`), if on.
    pub public_url: Option<String>,
    /// Ended jobs are removed after this long.
    pub retention: Duration,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            database: None,
            lease: Duration::from_secs(30),
            concurrency: 0,
            max_attempts: 5,
            public_url: None,
            retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The jobs of one replica: the queue and what this replica runs.
#[derive(Clone, Debug)]
pub struct Jobs {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    queue: Queue,
    /// This replica's name in leases.
    owner: String,
    /// Woken when this replica changes a job (watchers look again).
    changed: Notify,
    /// Woken when a job is submitted here (idle workers look again).
    submitted: Notify,
    /// Jobs running here, to stop at once when cancelled here.
    running: Mutex<HashMap<String, CancellationToken>>,
    config: JobsConfig,
}

impl Jobs {
    /// Opens the queue `config.database` names; `Ok(None)` when jobs are off.
    pub async fn open(config: &JobsConfig) -> Result<Option<Self>, String> {
        let Some(url) = &config.database else {
            return Ok(None);
        };
        if let Some(path) = url.strip_prefix("sqlite://")
            && let Some(dir) = std::path::Path::new(path.split('?').next().unwrap_or(path)).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("job database directory {}: {e}", dir.display()))?;
        }
        let queue = Queue::open(url)
            .await
            .map_err(|e| format!("job database {}: {e}", redact(url)))?;
        let host = std::env::var("HOSTNAME").unwrap_or_default();
        Ok(Some(Self {
            inner: Arc::new(Inner {
                queue,
                owner: format!("{host}/{}", uuid::Uuid::new_v4()),
                changed: Notify::new(),
                submitted: Notify::new(),
                running: Mutex::new(HashMap::new()),
                config: config.clone(),
            }),
        }))
    }

    /// The database, for the worker and the service.
    pub fn queue(&self) -> &Queue {
        &self.inner.queue
    }

    /// Where results are served over HTTP, if the gateway is on.
    pub fn public_url(&self) -> Option<&str> {
        self.inner.config.public_url.as_deref()
    }

    /// Describes the backend for logs.
    pub fn describe(&self) -> String {
        match &self.inner.config.database {
            Some(url) => redact(url),
            None => "none".into(),
        }
    }

    /// Queues a job (or returns the one its idempotency key names).
    pub async fn submit(
        &self,
        spec: Vec<u8>,
        labels: BTreeMap<String, String>,
        idempotency_key: Option<String>,
    ) -> Result<Inserted, Error> {
        let r = self
            .inner
            .queue
            .insert(NewJob {
                id: uuid::Uuid::new_v4().to_string(),
                spec,
                labels,
                idempotency_key,
                now_ms: now_ms(),
            })
            .await
            .map_err(Error::from)?;
        self.inner.submitted.notify_one();
        self.inner.changed.notify_waiters();
        Ok(r)
    }

    /// The job `id`, or NOT_FOUND.
    pub async fn get(&self, id: &str) -> Result<JobRow, Error> {
        self.inner
            .queue
            .get(id)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| Error::not_found(format!("no job with id '{id}'")))
    }

    /// Cancels `id` (nothing changes if it has ended) and returns it.
    pub async fn cancel(&self, id: &str) -> Result<JobRow, Error> {
        let cancelled = self
            .inner
            .queue
            .cancel(id, now_ms())
            .await
            .map_err(Error::from)?;
        if cancelled {
            if let Some(t) = self.running().get(id) {
                t.cancel();
            }
            self.inner.changed.notify_waiters();
        }
        self.get(id).await
    }

    /// Waits until this replica changes a job or `poll` passes (changes by
    /// other replicas are seen by polling).
    pub async fn changed(&self, poll: Duration) {
        let _ = tokio::time::timeout(poll, self.inner.changed.notified()).await;
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.inner.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `url` without its password.
fn redact(url: &str) -> String {
    // Query parameters that carry a credential (PostgreSQL's `password`,
    // `sslpassword`, and anything named like a secret).
    let secret = |k: &str| {
        let k = k.to_ascii_lowercase();
        ["pass", "secret", "token", "key"]
            .iter()
            .any(|w| k.contains(w))
    };
    let Ok(mut u) = url::Url::parse(url) else {
        // Not a URL we can take apart: show nothing of it.
        return "(a database URL)".into();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret(&k) {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_logged() {
        assert_eq!(
            redact("postgres://nl:secret@db:5432/nl"),
            "postgres://nl:***@db:5432/nl"
        );
        assert_eq!(redact("sqlite:///var/x.db"), "sqlite:///var/x.db");
        let q = redact("postgres://db/nl?user=nl&password=s3cret&sslpassword=k3y&sslmode=require");
        assert!(!q.contains("s3cret") && !q.contains("k3y"), "{q}");
        assert!(
            q.contains("user=nl") && q.contains("sslmode=require"),
            "{q}"
        );
        assert!(!redact("postgres://nl:s3cret@db/nl?password=x").contains("s3cret"));
    }
}
