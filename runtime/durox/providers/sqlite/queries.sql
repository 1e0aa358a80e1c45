-- The SQLite store's statements, used by name (durox.providers._sql). `?` parameters are
-- positional; {RUNNING}, {FAILED}, {TERMINAL}, {INSTANCE_COLUMNS} and {EXECUTION_COLUMNS} are
-- filled in at load time from durox.status and durox.providers._rows.

-- ---- orchestration queue ------------------------------------------------------------------

-- name: instance_taken
-- An instance row, or a client start still queued, holds the id.
SELECT 1 FROM instances WHERE instance_id = ?
UNION ALL
SELECT 1 FROM orchestrator_queue WHERE instance_id = ? AND kind = 'StartOrchestration'
LIMIT 1;

-- name: enqueue_orchestrator
INSERT INTO orchestrator_queue (instance_id, kind, data, visible_at, created_at)
VALUES (?, ?, ?, ?, ?);

-- name: enqueue_event
-- (instance id, kind (ExternalEvent or CancelRequest), message, visible at, now, instance id,
-- instance id): only for an instance that exists or whose client start is queued; one
-- statement, so nothing can come between the check and the insert.
INSERT INTO orchestrator_queue (instance_id, kind, data, visible_at, created_at)
SELECT ?, ?, ?, ?, ?
WHERE EXISTS (SELECT 1 FROM instances WHERE instance_id = ?)
   OR EXISTS (SELECT 1 FROM orchestrator_queue
              WHERE instance_id = ? AND kind = 'StartOrchestration');

-- name: next_instance
-- The instance of the oldest visible message that no live lease holds. Sticky: not one whose
-- last turn another worker ran and kept (a turn token not of the caller's prefix), for a
-- message visible only since the sticky window began (now, prefix length, prefix,
-- now again, window start).
SELECT q.instance_id FROM orchestrator_queue q
LEFT JOIN instance_locks l ON l.instance_id = q.instance_id
LEFT JOIN instances i ON i.instance_id = q.instance_id
WHERE q.visible_at <= ? AND (l.instance_id IS NULL OR l.locked_until <= ?)
  AND NOT (i.turn_token IS NOT NULL AND substr(i.turn_token, 1, ?) != ?
           AND q.visible_at > ?)
ORDER BY q.id LIMIT 1;

-- name: next_instance_in_range
-- As next_instance, among instances not yet pinned or pinned inside [low, high].
SELECT q.instance_id FROM orchestrator_queue q
LEFT JOIN instance_locks l ON l.instance_id = q.instance_id
LEFT JOIN instances i ON i.instance_id = q.instance_id
WHERE q.visible_at <= ? AND (l.instance_id IS NULL OR l.locked_until <= ?)
  AND NOT (i.turn_token IS NOT NULL AND substr(i.turn_token, 1, ?) != ?
           AND q.visible_at > ?)
  AND (i.pinned_major IS NULL OR (
    (i.pinned_major, i.pinned_minor, i.pinned_patch) >= (?, ?, ?) AND
    (i.pinned_major, i.pinned_minor, i.pinned_patch) <= (?, ?, ?)))
ORDER BY q.id LIMIT 1;

-- name: lock_instance
INSERT INTO instance_locks (instance_id, lock_token, locked_until) VALUES (?, ?, ?)
ON CONFLICT (instance_id) DO UPDATE SET
  lock_token = excluded.lock_token, locked_until = excluded.locked_until;

-- name: take_messages
UPDATE orchestrator_queue SET lock_token = ?, attempt_count = attempt_count + 1
WHERE instance_id = ? AND visible_at <= ?
RETURNING id, data, attempt_count;

-- name: instance_for_turn
SELECT orchestration_name, orchestration_version, current_execution_id, status,
  pinned_engine_version, turn_token
FROM instances WHERE instance_id = ?;

-- name: history_length
-- The highest event id, read from the rows themselves (never from a counter a newer engine
-- may have kept differently), so a poison record appends cleanly.
SELECT coalesce(max(event_id), 0) FROM history WHERE instance_id = ? AND execution_id = ?;

-- name: read_history
SELECT data FROM history WHERE instance_id = ? AND execution_id = ? ORDER BY event_id;

-- name: lock_of_token
SELECT instance_id, locked_until FROM instance_locks WHERE lock_token = ?;

-- name: delete_locked_messages
DELETE FROM orchestrator_queue WHERE lock_token = ?;

-- name: insert_execution
INSERT INTO executions (instance_id, execution_id, orchestration_version, status,
  engine_version, started_at)
VALUES (?, ?, ?, {RUNNING}, ?, ?);

-- name: upsert_instance
INSERT INTO instances (instance_id, orchestration_name, orchestration_version,
  current_execution_id, status, output, error, custom_status, parent_instance_id,
  pinned_engine_version, pinned_major, pinned_minor, pinned_patch, created_at, updated_at,
  turn_token)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (instance_id) DO UPDATE SET
  orchestration_name = excluded.orchestration_name,
  orchestration_version = excluded.orchestration_version,
  current_execution_id = excluded.current_execution_id,
  status = excluded.status, output = excluded.output, error = excluded.error,
  custom_status = excluded.custom_status,
  pinned_engine_version = excluded.pinned_engine_version,
  pinned_major = excluded.pinned_major, pinned_minor = excluded.pinned_minor,
  pinned_patch = excluded.pinned_patch, updated_at = excluded.updated_at,
  turn_token = excluded.turn_token;

-- name: set_turn_token
-- A turn that changed no instance record still says it was the last to write (token, instance)
UPDATE instances SET turn_token = ? WHERE instance_id = ?;

-- name: update_execution
-- (status, output, new event count, status again, now, instance, execution)
UPDATE executions SET status = ?, output = ?, event_count = event_count + ?,
  completed_at = CASE WHEN ? = {RUNNING} THEN NULL ELSE ? END
WHERE instance_id = ? AND execution_id = ?;

-- name: insert_history
INSERT INTO history (instance_id, execution_id, event_id, data) VALUES (?, ?, ?, ?);

-- name: insert_work
INSERT INTO worker_queue (instance_id, execution_id, event_id, session_id, data, visible_at,
  created_at)
VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: cancel_work
DELETE FROM worker_queue WHERE instance_id = ? AND execution_id = ? AND event_id = ?;

-- name: unlock_instance
DELETE FROM instance_locks WHERE lock_token = ?;

-- name: release_messages
-- (visible at, 1 to give the attempt back else 0, lock token)
UPDATE orchestrator_queue SET lock_token = NULL, visible_at = MAX(visible_at, ?),
  attempt_count = attempt_count - ?
WHERE lock_token = ?;

-- ---- activity queue ----------------------------------------------------------------------

-- name: sessions_owned
SELECT count(*) FROM sessions WHERE owner_id = ? AND locked_until > ?;

-- name: take_work
-- (token, locked until, now, now, worker, now, now, 1 if it may claim a session else 0):
-- the oldest visible unleased item that has no session, or whose session this worker owns,
-- or whose session is unowned or lapsed and this worker may claim one.
UPDATE worker_queue SET lock_token = ?, locked_until = ?, attempt_count = attempt_count + 1
WHERE id = (
  SELECT q.id FROM worker_queue q
  LEFT JOIN sessions s ON s.session_id = q.session_id
  WHERE q.visible_at <= ? AND (q.lock_token IS NULL OR q.locked_until <= ?)
    AND (q.session_id IS NULL
      OR (s.owner_id = ? AND s.locked_until > ?)
      OR ((s.session_id IS NULL OR s.locked_until <= ?) AND ? = 1))
  ORDER BY q.id LIMIT 1)
RETURNING data, attempt_count, session_id;

-- name: claim_session
INSERT INTO sessions (session_id, owner_id, locked_until, last_activity_at) VALUES (?, ?, ?, ?)
ON CONFLICT (session_id) DO UPDATE SET
  owner_id = excluded.owner_id, locked_until = excluded.locked_until,
  last_activity_at = excluded.last_activity_at;

-- name: renew_sessions
-- (locked until, worker, now, active since, now): live sessions of this worker that were
-- active lately or have an item running.
UPDATE sessions SET locked_until = ?
WHERE owner_id = ? AND locked_until > ?
  AND (last_activity_at >= ? OR EXISTS (
    SELECT 1 FROM worker_queue q
    WHERE q.session_id = sessions.session_id AND q.locked_until > ?));

-- name: drop_lapsed_sessions
DELETE FROM sessions WHERE locked_until <= ?;

-- name: delete_work
DELETE FROM worker_queue WHERE lock_token = ? AND locked_until >= ? RETURNING session_id;

-- name: touch_session
UPDATE sessions SET last_activity_at = ? WHERE session_id = ?;

-- name: release_work
-- (visible at, 1 to give the attempt back else 0, lock token)
UPDATE worker_queue SET lock_token = NULL, locked_until = NULL, visible_at = ?,
  attempt_count = attempt_count - ?
WHERE lock_token = ?;

-- name: renew_work
UPDATE worker_queue SET locked_until = ? WHERE lock_token = ? AND locked_until >= ?;

-- ---- worker capability records ------------------------------------------------------------

-- name: upsert_worker
INSERT INTO workers (worker_id, node_id, pool, engine_version, record, config_revision,
  started_at, heartbeat_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (worker_id) DO UPDATE SET
  node_id = excluded.node_id, pool = excluded.pool, engine_version = excluded.engine_version,
  record = excluded.record, config_revision = excluded.config_revision,
  started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at;

-- name: remove_worker
DELETE FROM workers WHERE worker_id = ?;

-- name: drop_stale_workers
DELETE FROM workers WHERE heartbeat_at < ?;

-- name: list_workers
-- (pool or NULL for every pool, the same again)
SELECT worker_id, node_id, pool, engine_version, record, config_revision, started_at,
  heartbeat_at
FROM workers WHERE (? IS NULL OR pool = ?) ORDER BY worker_id;

-- ---- reads ----------------------------------------------------------------------------------

-- name: drain_report
-- Per NAME and pinned engine version outside [low, high]: running, queued, highest attempt,
-- poisoned.
SELECT i.orchestration_name, i.pinned_engine_version,
  sum(i.status = {RUNNING}), coalesce(sum(q.n), 0), coalesce(max(q.a), 0),
  sum(i.status = {FAILED} AND json_extract(i.error, '$.kind') = 'poison')
FROM instances i
LEFT JOIN (
  SELECT instance_id, count(*) AS n, max(attempt_count) AS a
  FROM orchestrator_queue GROUP BY instance_id) q ON q.instance_id = i.instance_id
WHERE i.pinned_major IS NOT NULL AND NOT (
  (i.pinned_major, i.pinned_minor, i.pinned_patch) >= (?, ?, ?) AND
  (i.pinned_major, i.pinned_minor, i.pinned_patch) <= (?, ?, ?))
GROUP BY i.orchestration_name, i.pinned_engine_version
ORDER BY i.orchestration_name, i.pinned_engine_version;

-- name: observe_usage
-- Per NAME@version and pin, the instances that have not ended, with the version's oldest
-- (created first, then by id). Both parts walk instances_not_ended, whose WHERE this repeats.
WITH counts AS (
  SELECT orchestration_name AS n, orchestration_version AS v, pinned_engine_version AS p,
    count(*) AS c
  FROM instances WHERE status NOT IN ({TERMINAL})
  GROUP BY orchestration_name, orchestration_version, pinned_engine_version),
oldest AS (
  SELECT k.n, k.v, (
    SELECT i.instance_id FROM instances i
    WHERE i.orchestration_name = k.n AND i.orchestration_version = k.v
      AND i.status NOT IN ({TERMINAL})
    ORDER BY i.created_at, i.instance_id LIMIT 1) AS id
  FROM (SELECT DISTINCT n, v FROM counts) k)
SELECT c.n, c.v, c.p, c.c, o.id, i.created_at
FROM counts c
JOIN oldest o ON o.n = c.n AND o.v = c.v
JOIN instances i ON i.instance_id = o.id;

-- name: observe_failures
-- (failed since): per NAME@version, instances whose current execution failed since then, and
-- how many of them were poisoned. Named index: without statistics SQLite would rather walk
-- every failed execution some other way than the window through this one.
SELECT i.orchestration_name, x.orchestration_version, count(*),
  sum(json_extract(i.error, '$.kind') = 'poison')
FROM executions x INDEXED BY executions_failed_by_time
JOIN instances i ON i.instance_id = x.instance_id
  AND i.current_execution_id = x.execution_id
WHERE x.status = {FAILED} AND x.completed_at >= ?
GROUP BY i.orchestration_name, x.orchestration_version;

-- name: outcomes
-- (since ms): per NAME@version, the instances created since then: started, ended, failed and
-- poisoned (a ramp step's analysis).
SELECT orchestration_name, orchestration_version, count(*),
  sum(status IN ({TERMINAL})),
  sum(status = {FAILED}),
  sum(status = {FAILED} AND json_extract(error, '$.kind') = 'poison')
FROM instances WHERE created_at >= ?
GROUP BY orchestration_name, orchestration_version;

-- name: observe_workers
-- (pool or NULL for every pool, the same again): every record, stale ones too (nothing is
-- reaped: observing writes nothing).
SELECT worker_id, node_id, pool, engine_version, record, config_revision, started_at,
  heartbeat_at
FROM workers WHERE (? IS NULL OR pool = ?) ORDER BY worker_id;

-- name: start_pending
SELECT 1 FROM orchestrator_queue
WHERE instance_id = ? AND kind = 'StartOrchestration' LIMIT 1;

-- name: get_instance
SELECT {INSTANCE_COLUMNS} FROM instances WHERE instance_id = ?;

-- name: list_instances
-- (status, status, name, name, version, version, pin, pin, created at or after (ms) twice,
-- created before (ms) twice, limit, offset): NULL leaves a filter out.
SELECT {INSTANCE_COLUMNS} FROM instances
WHERE (? IS NULL OR status = ?) AND (? IS NULL OR orchestration_name = ?)
  AND (? IS NULL OR orchestration_version = ?) AND (? IS NULL OR pinned_engine_version = ?)
  AND (? IS NULL OR created_at >= ?) AND (? IS NULL OR created_at < ?)
ORDER BY created_at, instance_id LIMIT ? OFFSET ?;

-- name: list_executions
SELECT {EXECUTION_COLUMNS} FROM executions WHERE instance_id = ? ORDER BY execution_id;

-- ---- management (delete, prune, depths, metrics) ------------------------------------------

-- name: instance_tree
-- An instance and its descendants (through parent_instance_id), with their statuses.
WITH RECURSIVE tree(instance_id, status) AS (
  SELECT instance_id, status FROM instances WHERE instance_id = ?
  UNION
  SELECT c.instance_id, c.status FROM instances c
  JOIN tree t ON c.parent_instance_id = t.instance_id)
SELECT instance_id, status FROM tree;

-- name: deletable_instances
-- (status, status, name, name, updated before, the same): terminal instances, filtered.
SELECT instance_id FROM instances
WHERE status IN ({TERMINAL})
  AND (? IS NULL OR status = ?) AND (? IS NULL OR orchestration_name = ?)
  AND (? IS NULL OR updated_at < ?)
ORDER BY instance_id;

-- The delete_tree_* statements take the instance ids as one JSON array.

-- name: delete_tree_history
DELETE FROM history WHERE instance_id IN (SELECT value FROM json_each(?));

-- name: delete_tree_executions
DELETE FROM executions WHERE instance_id IN (SELECT value FROM json_each(?));

-- name: delete_tree_orchestrator_queue
DELETE FROM orchestrator_queue WHERE instance_id IN (SELECT value FROM json_each(?));

-- name: delete_tree_worker_queue
DELETE FROM worker_queue WHERE instance_id IN (SELECT value FROM json_each(?));

-- name: delete_tree_instance_locks
DELETE FROM instance_locks WHERE instance_id IN (SELECT value FROM json_each(?));

-- name: delete_tree_instances
DELETE FROM instances WHERE instance_id IN (SELECT value FROM json_each(?));

-- name: current_execution
SELECT current_execution_id FROM instances WHERE instance_id = ?;

-- name: prune_history
DELETE FROM history WHERE instance_id = ? AND execution_id <= ?;

-- name: prune_executions
DELETE FROM executions WHERE instance_id = ? AND execution_id <= ?;

-- name: queue_depths
-- Orchestrator messages ready, delayed and held (their instance under a live lease); work
-- items ready, delayed and running.
SELECT
  (SELECT count(*) FROM orchestrator_queue o WHERE visible_at <= :now
    AND NOT EXISTS (SELECT 1 FROM instance_locks l
      WHERE l.instance_id = o.instance_id AND l.locked_until > :now)),
  (SELECT count(*) FROM orchestrator_queue o WHERE visible_at > :now),
  (SELECT count(*) FROM orchestrator_queue o WHERE visible_at <= :now
    AND EXISTS (SELECT 1 FROM instance_locks l
      WHERE l.instance_id = o.instance_id AND l.locked_until > :now)),
  (SELECT count(*) FROM worker_queue w WHERE visible_at <= :now
    AND (w.lock_token IS NULL OR w.locked_until <= :now)),
  (SELECT count(*) FROM worker_queue w WHERE visible_at > :now
    AND (w.lock_token IS NULL OR w.locked_until <= :now)),
  (SELECT count(*) FROM worker_queue w WHERE lock_token IS NOT NULL AND locked_until > :now);

-- name: instances_by_status
SELECT status, count(*) FROM instances GROUP BY status ORDER BY status;

-- name: store_counts
-- (now, now): executions, history events, live instance locks, live sessions, workers.
SELECT (SELECT count(*) FROM executions), (SELECT count(*) FROM history),
  (SELECT count(*) FROM instance_locks WHERE locked_until > ?),
  (SELECT count(*) FROM sessions WHERE locked_until > ?),
  (SELECT count(*) FROM workers);

-- ---- replay-check reads ----------------------------------------------------------------------
-- Executions running, or ended well (completed, continued as new: the two words given) since a
-- time (NULL: none); an execution's NAME is its instance's.

-- name: execution_versions
-- (ended since ms, the same, completed word, continued word)
SELECT i.orchestration_name, e.orchestration_version,
  SUM(e.status = {RUNNING}), SUM(e.status <> {RUNNING})
FROM executions e JOIN instances i ON i.instance_id = e.instance_id
WHERE e.status = {RUNNING} OR (? IS NOT NULL AND e.completed_at >= ? AND e.status IN (?, ?))
GROUP BY i.orchestration_name, e.orchestration_version
ORDER BY i.orchestration_name, e.orchestration_version;

-- name: sample_executions_longest
-- (name, version, ended since ms, the same, completed word, continued word, limit)
SELECT e.instance_id, e.execution_id, e.status, e.event_count,
  COALESCE(e.completed_at, i.updated_at) AS last_active
FROM executions e JOIN instances i ON i.instance_id = e.instance_id
WHERE i.orchestration_name = ? AND e.orchestration_version = ?
  AND (e.status = {RUNNING} OR (? IS NOT NULL AND e.completed_at >= ? AND e.status IN (?, ?)))
ORDER BY e.status = {RUNNING} DESC, e.event_count DESC, last_active DESC, e.instance_id,
  e.execution_id
LIMIT ?;

-- name: sample_executions_recent
-- (name, version, ended since ms, the same, completed word, continued word, limit)
SELECT e.instance_id, e.execution_id, e.status, e.event_count,
  COALESCE(e.completed_at, i.updated_at) AS last_active
FROM executions e JOIN instances i ON i.instance_id = e.instance_id
WHERE i.orchestration_name = ? AND e.orchestration_version = ?
  AND (e.status = {RUNNING} OR (? IS NOT NULL AND e.completed_at >= ? AND e.status IN (?, ?)))
ORDER BY e.status = {RUNNING} DESC, last_active DESC, e.event_count DESC, e.instance_id,
  e.execution_id
LIMIT ?;
