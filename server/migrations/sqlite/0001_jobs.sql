-- The job queue (SQLite, the embedded default). Times are milliseconds since
-- the Unix epoch; states: 1 queued, 2 running, 3 succeeded, 4 failed, 5 cancelled.
CREATE TABLE jobs (
    id              TEXT PRIMARY KEY NOT NULL,
    state           INTEGER NOT NULL,
    stage           TEXT NOT NULL,
    progress        REAL NOT NULL DEFAULT 0,
    spec            BLOB NOT NULL,
    labels          TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    created_ms      INTEGER NOT NULL,
    run_after_ms    INTEGER NOT NULL,
    started_ms      INTEGER NOT NULL DEFAULT 0,
    finished_ms     INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until_ms  INTEGER NOT NULL DEFAULT 0,
    result          TEXT,
    error_code      INTEGER NOT NULL DEFAULT 0,
    error_message   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX jobs_claim ON jobs (state, run_after_ms, created_ms);
CREATE INDEX jobs_created ON jobs (created_ms, id);

CREATE TABLE job_labels (
    job_id TEXT NOT NULL REFERENCES jobs (id),
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (job_id, key)
);
CREATE INDEX job_labels_kv ON job_labels (key, value);
