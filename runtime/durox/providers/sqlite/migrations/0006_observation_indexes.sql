-- Schema version 6: what `observe` reads, indexed so its cost follows the instances that have
-- not ended and the recent failures, not every instance the store keeps. Numbered as the
-- PostgreSQL migration that brings the same indexes, so one number names one change.

-- Instances that have not ended, by NAME@version, oldest first; the pin rides along so the
-- counts per pin are read from the index alone.
CREATE INDEX instances_not_ended ON instances
    (orchestration_name, orchestration_version, created_at, instance_id, pinned_engine_version)
    WHERE status NOT IN ('Cancelled', 'Completed', 'Failed');

-- Failed instances by when they failed (the last update of a failed instance is its failure).
CREATE INDEX instances_failed_by_time ON instances (updated_at) WHERE status = 'Failed';
