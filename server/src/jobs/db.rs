//! The job queue's database: an embedded SQLite file by default, PostgreSQL
//! shared by every replica at scale. One implementation on sqlx's `Any`
//! driver: the schema uses only types both map the same way (BIGINT
//! milliseconds, TEXT, a float, bytes), and the SQL differs in one place, the
//! claim, where PostgreSQL adds `FOR UPDATE SKIP LOCKED` so that replicas
//! claiming at the same time skip each other's rows instead of queueing on
//! them (SQLite runs one writer at a time, so its claim is atomic as it is).

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
// Every dynamic statement below is built from constants and numbered
// placeholders only; values are always bound.
use sqlx::{AnyPool, AssertSqlSafe, Executor, Row};

/// Job states as stored (the proto's `JobState` numbers).
pub mod state {
    /// Waiting for a worker.
    pub const QUEUED: i64 = 1;
    /// Claimed by a replica holding a lease.
    pub const RUNNING: i64 = 2;
    /// Ended with a result.
    pub const SUCCEEDED: i64 = 3;
    /// Ended with an error.
    pub const FAILED: i64 = 4;
    /// Cancelled.
    pub const CANCELLED: i64 = 5;
}

/// One job as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRow {
    /// Its id (a UUID).
    pub id: String,
    /// One of [`state`].
    pub state: i64,
    /// What it is doing.
    pub stage: String,
    /// 0 to 1.
    pub progress: f64,
    /// The encoded `JobSpec`.
    pub spec: Vec<u8>,
    /// Labels, as JSON.
    pub labels: String,
    /// The submitter's idempotency key.
    pub idempotency_key: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// When the first worker started it (0: never).
    pub started_ms: i64,
    /// When it ended (0: not yet).
    pub finished_ms: i64,
    /// How many times a worker claimed it.
    pub attempts: i64,
    /// The stored result's metadata, as JSON.
    pub result: Option<String>,
    /// A gRPC status code when it failed or was cancelled.
    pub error_code: i64,
    /// Why.
    pub error_message: String,
}

const COLUMNS: &str = "id, state, stage, progress, spec, labels, idempotency_key, created_ms, \
                       started_ms, finished_ms, attempts, result, error_code, error_message";

fn row(r: &AnyRow) -> Result<JobRow, sqlx::Error> {
    Ok(JobRow {
        id: r.try_get("id")?,
        state: r.try_get("state")?,
        stage: r.try_get("stage")?,
        progress: r.try_get("progress")?,
        spec: r.try_get("spec")?,
        labels: r.try_get("labels")?,
        idempotency_key: r.try_get("idempotency_key")?,
        created_ms: r.try_get("created_ms")?,
        started_ms: r.try_get("started_ms")?,
        finished_ms: r.try_get("finished_ms")?,
        attempts: r.try_get("attempts")?,
        result: r.try_get("result")?,
        error_code: r.try_get("error_code")?,
        error_message: r.try_get("error_message")?,
    })
}

/// A new job.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// Its id.
    pub id: String,
    /// The encoded `JobSpec`.
    pub spec: Vec<u8>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The submitter's idempotency key, if any.
    pub idempotency_key: Option<String>,
    /// Now, in milliseconds.
    pub now_ms: i64,
}

/// What [`Queue::insert`] did.
#[derive(Debug)]
pub enum Inserted {
    /// A new job was queued.
    New(JobRow),
    /// A job with the same idempotency key existed: this one.
    Existing(JobRow),
}

/// A page of [`Queue::list`].
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Only this state.
    pub state: Option<i64>,
    /// Only jobs with all of these labels.
    pub labels: BTreeMap<String, String>,
    /// Only jobs older than this (created_ms, id), newest first.
    pub before: Option<(i64, String)>,
    /// At most this many.
    pub limit: i64,
}

/// The queue: a pool on one database.
#[derive(Clone, Debug)]
pub struct Queue {
    pool: AnyPool,
    postgres: bool,
}

impl Queue {
    /// Connects to `url` (`sqlite://PATH`, `postgres://...`), creating an
    /// SQLite file if it does not exist, and brings the schema up to date.
    pub async fn open(url: &str) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
        let sqlite = url.starts_with("sqlite:");
        if !postgres && !sqlite {
            return Err(sqlx::Error::Configuration(
                format!("unsupported database '{url}': use sqlite://PATH or postgres://...").into(),
            ));
        }
        let options = AnyPoolOptions::new()
            .max_connections(if postgres { 8 } else { 4 })
            .acquire_timeout(Duration::from_secs(15));
        let pool = if sqlite {
            // WAL (sqlx's default journal) with NORMAL sync: a committed job
            // survives the process being killed (the OS has the log); the
            // busy timeout lets writers from several connections take turns.
            let url = if url.contains('?') {
                url.to_string()
            } else {
                format!("{url}?mode=rwc")
            };
            options
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;")
                            .await?;
                        Ok(())
                    })
                })
                .connect(&url)
                .await?
        } else {
            options.connect(url).await?
        };
        let migrator = if postgres {
            sqlx::migrate!("./migrations/postgres")
        } else {
            sqlx::migrate!("./migrations/sqlite")
        };
        migrator.run(&pool).await?;
        Ok(Self { pool, postgres })
    }

    /// Whether this is the PostgreSQL backend.
    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    /// Whether the database answers.
    pub async fn reachable(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Queues `job`, or returns the job its idempotency key already names.
    pub async fn insert(&self, job: NewJob) -> Result<Inserted, sqlx::Error> {
        let labels = serde_json::to_string(&job.labels).unwrap_or_else(|_| "{}".into());
        // Without labels one statement does (no transaction round trips).
        let mut tx = if job.labels.is_empty() {
            None
        } else {
            Some(self.pool.begin().await?)
        };
        let insert = sqlx::query(
            "INSERT INTO jobs (id, state, stage, progress, spec, labels, idempotency_key, created_ms, run_after_ms) \
             VALUES ($1, $2, 'queued', 0, $3, $4, $5, $6, $6) ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&job.id)
        .bind(state::QUEUED)
        .bind(&job.spec)
        .bind(&labels)
        .bind(&job.idempotency_key)
        .bind(job.now_ms);
        let done = match tx.as_mut() {
            Some(tx) => insert.execute(&mut **tx).await?,
            None => insert.execute(&self.pool).await?,
        };
        if done.rows_affected() == 0 {
            if let Some(tx) = tx {
                tx.rollback().await?;
            }
            let key = job.idempotency_key.unwrap_or_default();
            let sql = format!("SELECT {COLUMNS} FROM jobs WHERE idempotency_key = $1");
            let r = sqlx::query(AssertSqlSafe(sql))
                .bind(key)
                .fetch_one(&self.pool)
                .await?;
            return Ok(Inserted::Existing(row(&r)?));
        }
        if let Some(mut tx) = tx {
            for (k, v) in &job.labels {
                sqlx::query("INSERT INTO job_labels (job_id, key, value) VALUES ($1, $2, $3)")
                    .bind(&job.id)
                    .bind(k)
                    .bind(v)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
        Ok(Inserted::New(JobRow {
            id: job.id,
            state: state::QUEUED,
            stage: "queued".into(),
            progress: 0.0,
            spec: job.spec,
            labels,
            idempotency_key: job.idempotency_key,
            created_ms: job.now_ms,
            started_ms: 0,
            finished_ms: 0,
            attempts: 0,
            result: None,
            error_code: 0,
            error_message: String::new(),
        }))
    }

    /// The job `id`, if it exists.
    pub async fn get(&self, id: &str) -> Result<Option<JobRow>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
        let r = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        r.as_ref().map(row).transpose()
    }

    /// Claims the oldest runnable job for `owner` until `lease_until`: a
    /// queued job whose time has come, or a running one whose lease expired
    /// (its replica died). Counts an attempt.
    pub async fn claim(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until: i64,
    ) -> Result<Option<JobRow>, sqlx::Error> {
        let lock = if self.postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE jobs SET state = $1, stage = 'processing', progress = 0.1, lease_owner = $2, lease_until_ms = $3, \
             attempts = attempts + 1, started_ms = CASE WHEN started_ms = 0 THEN $4 ELSE started_ms END \
             WHERE id = (SELECT id FROM jobs WHERE (state = $5 AND run_after_ms <= $4) \
             OR (state = $1 AND lease_until_ms < $4) ORDER BY created_ms LIMIT 1{lock}) \
             AND (state = $5 OR lease_until_ms < $4) RETURNING {COLUMNS}"
        );
        let r = sqlx::query(AssertSqlSafe(sql))
            .bind(state::RUNNING)
            .bind(owner)
            .bind(lease_until)
            .bind(now_ms)
            .bind(state::QUEUED)
            .fetch_optional(&self.pool)
            .await?;
        r.as_ref().map(row).transpose()
    }

    /// Extends `owner`'s lease on a running job; false if it is no longer
    /// theirs (cancelled, or its lease expired and another replica took it).
    pub async fn renew(&self, id: &str, owner: &str, until: i64) -> Result<bool, sqlx::Error> {
        let r = sqlx::query(
            "UPDATE jobs SET lease_until_ms = $1 WHERE id = $2 AND lease_owner = $3 AND state = $4",
        )
        .bind(until)
        .bind(id)
        .bind(owner)
        .bind(state::RUNNING)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Whether `owner` still holds the running job `id`.
    pub async fn holds(&self, id: &str, owner: &str) -> Result<bool, sqlx::Error> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM jobs WHERE id = $1 AND lease_owner = $2 AND state = $3",
        )
        .bind(id)
        .bind(owner)
        .bind(state::RUNNING)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        Ok(n == 1)
    }

    /// Records progress; false if the job is no longer `owner`'s.
    pub async fn progress(
        &self,
        id: &str,
        owner: &str,
        stage: &str,
        progress: f64,
    ) -> Result<bool, sqlx::Error> {
        let r = sqlx::query(
            "UPDATE jobs SET stage = $1, progress = $2 WHERE id = $3 AND lease_owner = $4 AND state = $5",
        )
        .bind(stage)
        .bind(progress)
        .bind(id)
        .bind(owner)
        .bind(state::RUNNING)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Ends `owner`'s running job in `state` with a result or an error;
    /// false (and nothing changes) if it is no longer theirs.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish(
        &self,
        id: &str,
        owner: &str,
        state: i64,
        result: Option<&str>,
        error_code: i64,
        error_message: &str,
        now_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        let r = sqlx::query(
            "UPDATE jobs SET state = $1, stage = 'done', progress = 1, result = $2, error_code = $3, \
             error_message = $4, finished_ms = $5, lease_owner = NULL \
             WHERE id = $6 AND lease_owner = $7 AND state = $8",
        )
        .bind(state)
        .bind(result)
        .bind(error_code)
        .bind(error_message)
        .bind(now_ms)
        .bind(id)
        .bind(owner)
        .bind(state::RUNNING)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Puts `owner`'s running job back in the queue, to run again after
    /// `run_after` (a transient failure).
    pub async fn requeue(
        &self,
        id: &str,
        owner: &str,
        run_after: i64,
        why: &str,
    ) -> Result<bool, sqlx::Error> {
        let r = sqlx::query(
            "UPDATE jobs SET state = $1, stage = 'queued', progress = 0, run_after_ms = $2, \
             error_message = $3, lease_owner = NULL WHERE id = $4 AND lease_owner = $5 AND state = $6",
        )
        .bind(state::QUEUED)
        .bind(run_after)
        .bind(why)
        .bind(id)
        .bind(owner)
        .bind(state::RUNNING)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Cancels a queued or running job; false if it had ended (or does not
    /// exist).
    pub async fn cancel(&self, id: &str, now_ms: i64) -> Result<bool, sqlx::Error> {
        let r = sqlx::query(
            "UPDATE jobs SET state = $1, stage = 'done', finished_ms = $2, error_code = $3, \
             error_message = 'cancelled', lease_owner = NULL WHERE id = $4 AND state IN ($5, $6)",
        )
        .bind(state::CANCELLED)
        .bind(now_ms)
        .bind(i64::from(tonic::Code::Cancelled as i32))
        .bind(id)
        .bind(state::QUEUED)
        .bind(state::RUNNING)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Jobs matching `filter`, newest first.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<JobRow>, sqlx::Error> {
        let mut sql = format!("SELECT {COLUMNS} FROM jobs WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if filter.state.is_some() {
            sql += &format!(" AND state = {}", next());
        }
        if filter.before.is_some() {
            let (a, b, c) = (next(), next(), next());
            sql += &format!(" AND (created_ms < {a} OR (created_ms = {b} AND id < {c}))");
        }
        for _ in &filter.labels {
            let (k, v) = (next(), next());
            sql += &format!(
                " AND EXISTS (SELECT 1 FROM job_labels l WHERE l.job_id = jobs.id AND l.key = {k} AND l.value = {v})"
            );
        }
        sql += &format!(" ORDER BY created_ms DESC, id DESC LIMIT {}", next());
        let mut q = sqlx::query(AssertSqlSafe(sql));
        if let Some(s) = filter.state {
            q = q.bind(s);
        }
        if let Some((ms, id)) = &filter.before {
            q = q.bind(*ms).bind(*ms).bind(id.clone());
        }
        for (k, v) in &filter.labels {
            q = q.bind(k.clone()).bind(v.clone());
        }
        let rows = q.bind(filter.limit).fetch_all(&self.pool).await?;
        rows.iter().map(row).collect()
    }

    /// Removes jobs that ended before `before_ms` (and their labels);
    /// returns how many went.
    pub async fn purge(&self, before_ms: i64) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM job_labels WHERE job_id IN \
             (SELECT id FROM jobs WHERE state IN ($1, $2, $3) AND finished_ms < $4)",
        )
        .bind(state::SUCCEEDED)
        .bind(state::FAILED)
        .bind(state::CANCELLED)
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        let r = sqlx::query("DELETE FROM jobs WHERE state IN ($1, $2, $3) AND finished_ms < $4")
            .bind(state::SUCCEEDED)
            .bind(state::FAILED)
            .bind(state::CANCELLED)
            .bind(before_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }

    /// How many jobs are in `state`.
    pub async fn count(&self, state: i64) -> Result<i64, sqlx::Error> {
        sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE state = $1")
            .bind(state)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")
    }
}

#[cfg(test)]
#[path = "db_tests.rs"]
mod tests;
