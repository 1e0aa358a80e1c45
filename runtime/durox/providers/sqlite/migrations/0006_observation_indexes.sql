-- Schema version 6: what `observe` reads, indexed so its cost follows the instances that have
-- not ended and the recent failures, not every instance the store keeps. Numbered as the
-- PostgreSQL migration that brings the same indexes, so one number names one change.

-- Instances that have not ended, by NAME@version, oldest first; the pin rides along so the
-- counts per pin are read from the index alone.
CREATE INDEX instances_not_ended ON instances
    (orchestration_name, orchestration_version, created_at, instance_id, pinned_engine_version)
    WHERE status NOT IN ('Cancelled', 'Completed', 'Failed');

-- Failed executions by when they failed (a failed instance's current execution is one). Not
-- instances.updated_at: every turn changes that column, and indexing it would cost every turn
-- an index write (on PostgreSQL, its HOT update); completed_at and status stay put while an
-- execution runs.
CREATE INDEX executions_failed_by_time ON executions (completed_at) WHERE status = 'Failed';
