-- durox embedded store: the schema the migrations produce, kept as one file to read.
-- tests/unit/test_sqlite_schema.py checks that applying migrations/ gives exactly this.

CREATE TABLE instances (
    instance_id           TEXT PRIMARY KEY,
    orchestration_name    TEXT NOT NULL,
    orchestration_version TEXT NOT NULL,
    current_execution_id  INTEGER NOT NULL,
    status                TEXT NOT NULL,
    output                TEXT,
    error                 TEXT,
    custom_status         TEXT,
    parent_instance_id    TEXT,
    pinned_engine_version TEXT,
    pinned_major          INTEGER,
    pinned_minor          INTEGER,
    pinned_patch          INTEGER,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
, turn_token TEXT);
CREATE INDEX instances_by_status ON instances (status);
CREATE INDEX instances_by_name ON instances (orchestration_name, orchestration_version);
CREATE INDEX instances_by_parent ON instances (parent_instance_id);
-- What `observe` reads: instances that have not ended, by NAME@version, oldest first (with
-- the pin, so counts per pin need only the index).
CREATE INDEX instances_not_ended ON instances
    (orchestration_name, orchestration_version, created_at, instance_id, pinned_engine_version)
    WHERE status NOT IN ('Cancelled', 'Completed', 'Failed');

CREATE TABLE executions (
    instance_id           TEXT NOT NULL,
    execution_id          INTEGER NOT NULL,
    orchestration_version TEXT NOT NULL,
    status                TEXT NOT NULL,
    output                TEXT,
    engine_version        TEXT,
    event_count           INTEGER NOT NULL DEFAULT 0,
    started_at            INTEGER NOT NULL,
    completed_at          INTEGER,
    PRIMARY KEY (instance_id, execution_id)
) WITHOUT ROWID;
-- What `observe` reads: failed executions by when they failed (columns that stay put while an
-- execution runs, so indexing them costs a turn nothing).
CREATE INDEX executions_failed_by_time ON executions (completed_at) WHERE status = 'Failed';

CREATE TABLE history (
    instance_id  TEXT NOT NULL,
    execution_id INTEGER NOT NULL,
    event_id     INTEGER NOT NULL,
    data         TEXT NOT NULL,
    PRIMARY KEY (instance_id, execution_id, event_id)
) WITHOUT ROWID;

CREATE TABLE orchestrator_queue (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id   TEXT NOT NULL,
    kind          TEXT NOT NULL,
    data          TEXT NOT NULL,
    visible_at    INTEGER NOT NULL,
    lock_token    TEXT,
    attempt_count INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);
CREATE INDEX orchestrator_queue_by_visible ON orchestrator_queue (visible_at, id);
CREATE INDEX orchestrator_queue_by_instance ON orchestrator_queue (instance_id, visible_at);
CREATE INDEX orchestrator_queue_by_lock ON orchestrator_queue (lock_token);

CREATE TABLE instance_locks (
    instance_id  TEXT PRIMARY KEY,
    lock_token   TEXT NOT NULL UNIQUE,
    locked_until INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE worker_queue (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id   TEXT NOT NULL,
    execution_id  INTEGER NOT NULL,
    event_id      INTEGER NOT NULL,
    session_id    TEXT,
    data          TEXT NOT NULL,
    visible_at    INTEGER NOT NULL,
    lock_token    TEXT,
    locked_until  INTEGER,
    attempt_count INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);
CREATE INDEX worker_queue_by_visible ON worker_queue (visible_at, id);
CREATE INDEX worker_queue_by_lock ON worker_queue (lock_token);
CREATE INDEX worker_queue_by_source ON worker_queue (instance_id, execution_id, event_id);

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
