-- Schema version 2: session affinity and worker capability records.

-- A session is owned by one worker while its lock is alive; its activities go only there.
CREATE TABLE sessions (
    session_id       TEXT PRIMARY KEY,
    owner_id         TEXT NOT NULL,
    locked_until     INTEGER NOT NULL,
    last_activity_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_by_owner ON sessions (owner_id);

-- One row per live runtime, refreshed by heartbeat, removed on clean shutdown.
CREATE TABLE workers (
    worker_id       TEXT PRIMARY KEY,
    node_id         TEXT,
    pool            TEXT NOT NULL,
    engine_version  TEXT NOT NULL,
    record          TEXT NOT NULL,
    config_revision TEXT NOT NULL,
    started_at      INTEGER NOT NULL,
    heartbeat_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX workers_by_pool ON workers (pool);
CREATE INDEX worker_queue_by_session ON worker_queue (session_id);
