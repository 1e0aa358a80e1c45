-- Schema version 6: what `observe` reads, indexed so its cost follows the instances that have
-- not ended and the recent failures, not every instance the store keeps (docs/postgres.md,
-- "Reading the store at scale"). Indexes only: nothing the previous release calls changes.
-- IF NOT EXISTS: on a large store a DBA may build them beforehand with CREATE INDEX
-- CONCURRENTLY (same names, same definitions), so this migration does not hold writes to
-- the tables while it builds them.

-- Instances that have not ended, by NAME@version, oldest first; the pin rides along so the
-- counts per pin are an index-only scan.
CREATE INDEX IF NOT EXISTS instances_not_ended ON instances
    (orchestration_name, orchestration_version, created_at, instance_id, pinned_engine_version)
    WHERE status NOT IN ('Cancelled', 'Completed', 'Failed');

-- Failed executions by when they failed (a failed instance's current execution is one). Not
-- instances.updated_at: every turn changes that column, and indexing it would cost every turn
-- an index write (on PostgreSQL, its HOT update); completed_at and status stay put while an
-- execution runs.
CREATE INDEX IF NOT EXISTS executions_failed_by_time ON executions (completed_at)
    WHERE status = 'Failed';
