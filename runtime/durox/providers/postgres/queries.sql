-- Every statement the PostgreSQL store sends, by name (`-- name: <name>` starts one; the lines
-- up to the next name are its SQL, comments included). `_queries.py` loads them and fills in
-- the placeholders: {schema} (the deployment's quoted schema, so a statement never depends
-- on the connection's search_path), {instance_columns} and {execution_columns} (the columns
-- the shared row readers in `durox.providers._rows` expect, in their order), {terminal} and
-- {failed} (`durox.status`'s words, for statements written since).
-- A statement that calls a function names the version it means (`_v2`): see docs/postgres.md.

-- ---- orchestration queue -------------------------------------------------------------

-- name: start_instance
-- (instance id, StartOrchestration message, clock or NULL)
SELECT {schema}.durox_start_instance($1, $2, $3)

-- name: enqueue
-- (instance id, message kind, message, delay ms, clock)
SELECT {schema}.durox_enqueue($1, $2, $3, $4, $5)

-- name: enqueue_event
-- (instance id, message, clock or NULL, kind: ExternalEvent or CancelRequest) -> the new
-- row's id, or no row (and
-- nothing enqueued) when there is no instance and no client start queued for it. One
-- statement, one snapshot: a first turn inserts the instance row and deletes its start in one
-- commit, so the snapshot sees one or the other, never neither. No row locks: after waiting
-- for a lock, READ COMMITTED rechecks only the locked row, against a newer state than the
-- other EXISTS reads, and could then see neither.
WITH known AS (
    SELECT coalesce($3::bigint, {schema}.durox_now_ms()) AS now
    WHERE EXISTS (SELECT 1 FROM {schema}.instances WHERE instance_id = $1)
       OR EXISTS (SELECT 1 FROM {schema}.orchestrator_queue
                  WHERE instance_id = $1 AND kind = 'StartOrchestration')
), queued AS (
    INSERT INTO {schema}.orchestrator_queue (instance_id, kind, data, visible_at, created_at)
    SELECT $1, $4::text, $2, now, now FROM known
    RETURNING id
)
SELECT q.id FROM queued q
CROSS JOIN LATERAL (SELECT pg_notify({schema}.durox_channel(), 'o1')) AS notified

-- name: fetch_orchestration
-- (clock, lease ms, token, replay range low, high, the caller's token prefix, leave out the
-- histories of its own last turns, sticky window ms); the token is echoed back as a column
SELECT $3::text AS lock_token, *
FROM {schema}.durox_fetch_orchestration_v2($1, $2, $3, $4, $5, $6, $7, $8)

-- name: fetch_orchestration_batch
-- (clock, lease ms, one token per instance wanted, replay range low, high, token prefix,
-- leave out own histories, sticky window ms)
SELECT * FROM {schema}.durox_fetch_orchestration_batch_v3($1, $2, $3, $4, $5, $6, $7, $8)

-- name: ack_orchestration_batch
-- (durox_turn[], whether the worker keeps each one's state, clock) -> one NULL (applied) or
-- 'SQLSTATE message' per turn
SELECT {schema}.durox_ack_orchestration_batch_v3($1::{schema}.durox_turn[], $2, $3)

-- name: abandon_orchestration
-- (token, delay ms, give the attempt back, clock)
SELECT {schema}.durox_abandon_orchestration($1, $2, $3, $4)

-- ---- activity queue ----------------------------------------------------------------

-- name: fetch_work_batch
-- (clock, lease ms, one token per item wanted, worker id, session lease ms, session cap)
SELECT * FROM {schema}.durox_fetch_work_batch($1, $2, $3, $4, $5, $6)

-- name: ack_work_batch
-- (tokens, instance ids, ActivityResult messages, clock) -> one boolean per item
SELECT {schema}.durox_ack_work_batch($1, $2, $3, $4)

-- name: abandon_work
-- (token, delay ms, give the attempt back, clock)
SELECT {schema}.durox_abandon_work($1, $2, $3, $4)

-- name: renew_work
-- (token, lease ms, clock) -> NULL when the lease had lapsed or the activity was cancelled
SELECT {schema}.durox_renew_work($1, $2, $3)

-- name: renew_sessions
-- (worker id, session lease ms, idle timeout ms, clock) -> sessions renewed
SELECT {schema}.durox_renew_sessions($1, $2, $3, $4)

-- ---- worker capability records -------------------------------------------------------

-- name: upsert_worker
-- (worker id, node id, pool, engine version, record, config revision, started ms, clock)
INSERT INTO {schema}.workers (worker_id, node_id, pool, engine_version, record,
    config_revision, started_at, heartbeat_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, {schema}.durox_now_ms()))
ON CONFLICT (worker_id) DO UPDATE SET node_id = excluded.node_id,
    pool = excluded.pool, engine_version = excluded.engine_version,
    record = excluded.record, config_revision = excluded.config_revision,
    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at

-- name: remove_worker
-- (worker id)
DELETE FROM {schema}.workers WHERE worker_id = $1

-- name: list_workers
-- (clock, stale after ms, pool or NULL). One round trip: reap stale rows and read the live
-- ones (the read filters by age too, since it sees the table as it was before the delete).
WITH t AS (SELECT coalesce($1, {schema}.durox_now_ms()) - $2 AS since),
gone AS (DELETE FROM {schema}.workers w USING t WHERE w.heartbeat_at < t.since)
SELECT worker_id, node_id, pool, engine_version, record, config_revision,
    started_at, heartbeat_at
FROM {schema}.workers w, t
WHERE w.heartbeat_at >= t.since AND ($3::text IS NULL OR w.pool = $3)
ORDER BY worker_id

-- name: drain_report
-- (replay range low major, minor, patch, high major, minor, patch): per orchestration and pin
-- outside the range, running instances, queued messages, highest attempt, poisoned instances
SELECT i.orchestration_name, i.pinned_engine_version,
    count(*) FILTER (WHERE i.status = 'Running'), coalesce(sum(q.n), 0),
    coalesce(max(q.a), 0), count(*) FILTER (WHERE i.status = 'Failed'
    AND (i.error::json ->> 'kind') = 'poison')
FROM {schema}.instances i LEFT JOIN (SELECT instance_id, count(*) AS n,
    max(attempt_count) AS a FROM {schema}.orchestrator_queue GROUP BY instance_id) q
    ON q.instance_id = i.instance_id
WHERE i.pinned_major IS NOT NULL AND NOT (
    (i.pinned_major, i.pinned_minor, i.pinned_patch) >= ($1, $2, $3) AND
    (i.pinned_major, i.pinned_minor, i.pinned_patch) <= ($4, $5, $6))
GROUP BY i.orchestration_name, i.pinned_engine_version
ORDER BY i.orchestration_name, i.pinned_engine_version

-- name: observe
-- (clock, failed since ms, pool or NULL): one row, one snapshot. The clock; per NAME@version
-- and pin, the instances that have not ended with the version's oldest (a JSON array of
-- [name, version, pin, count, oldest id, oldest created]); per NAME@version, failures and
-- poisonings since then ([name, version, failed, poisoned]); the pool's capability records,
-- stale ones too (observing writes nothing, so a read-only role may call it). The counts and
-- the oldest walk instances_not_ended (their WHERE repeats its predicate), the failures
-- executions_failed_by_time (a failed instance's current execution failed with it), each
-- looked up by key: the LIMIT keeps that a per-row lookup even in a generic plan (asyncpg
-- prepares statements, and a generic plan guessing a third of all failures in the window
-- would hash-join the whole instances table instead).
WITH t AS (SELECT coalesce($1, {schema}.durox_now_ms()) AS now),
counts AS (
    SELECT orchestration_name AS n, orchestration_version AS v, pinned_engine_version AS p,
        count(*) AS c
    FROM {schema}.instances WHERE status NOT IN ({terminal})
    GROUP BY orchestration_name, orchestration_version, pinned_engine_version),
oldest AS (
    SELECT k.n, k.v, o.instance_id, o.created_at
    FROM (SELECT DISTINCT n, v FROM counts) k
    CROSS JOIN LATERAL (SELECT i.instance_id, i.created_at FROM {schema}.instances i
        WHERE i.orchestration_name = k.n AND i.orchestration_version = k.v
            AND i.status NOT IN ({terminal})
        ORDER BY i.created_at, i.instance_id LIMIT 1) o)
SELECT t.now,
    (SELECT coalesce(json_agg(json_build_array(c.n, c.v, c.p, c.c, o.instance_id,
        o.created_at)), '[]')::text
        FROM counts c JOIN oldest o ON o.n = c.n AND o.v = c.v),
    (SELECT coalesce(json_agg(json_build_array(f.orchestration_name,
        f.orchestration_version, f.failed, f.poisoned)), '[]')::text
        FROM (SELECT i.orchestration_name, x.orchestration_version, count(*) AS failed,
            count(*) FILTER (WHERE (i.error::json ->> 'kind') = 'poison') AS poisoned
            FROM {schema}.executions x CROSS JOIN LATERAL (
                SELECT orchestration_name, error FROM {schema}.instances
                WHERE instance_id = x.instance_id AND current_execution_id = x.execution_id
                LIMIT 1) i
            WHERE x.status = {failed} AND x.completed_at >= $2
            GROUP BY i.orchestration_name, x.orchestration_version) f),
    (SELECT coalesce(json_agg(json_build_array(w.worker_id, w.node_id, w.pool,
        w.engine_version, w.record, w.config_revision, w.started_at, w.heartbeat_at)
        ORDER BY w.worker_id), '[]')::text
        FROM {schema}.workers w WHERE $3::text IS NULL OR w.pool = $3)
FROM t

-- name: outcomes
-- (since ms): per NAME@version, the instances created since then: started, ended, failed and
-- poisoned. Walks instances_by_created over the window only, so a ramp step's analysis costs
-- the instances the step started, not the store's history.
SELECT orchestration_name, orchestration_version, count(*),
    count(*) FILTER (WHERE status IN ({terminal})),
    count(*) FILTER (WHERE status = {failed}),
    count(*) FILTER (WHERE status = {failed} AND (error::json ->> 'kind') = 'poison')
FROM {schema}.instances WHERE created_at >= $1
GROUP BY orchestration_name, orchestration_version

-- ---- reads -------------------------------------------------------------------------

-- name: start_pending
-- (instance id)
SELECT EXISTS (SELECT 1 FROM {schema}.orchestrator_queue WHERE instance_id = $1
    AND kind = 'StartOrchestration')

-- name: get_instance
-- (instance id)
SELECT {instance_columns} FROM {schema}.instances WHERE instance_id = $1

-- name: list_instances
-- (status, name, version, pin, created at or after (ms), created before (ms): each NULL for
-- any; limit, offset)
SELECT {instance_columns} FROM {schema}.instances
WHERE ($1::text IS NULL OR status = $1)
    AND ($2::text IS NULL OR orchestration_name = $2)
    AND ($3::text IS NULL OR orchestration_version = $3)
    AND ($4::text IS NULL OR pinned_engine_version = $4)
    AND ($5::bigint IS NULL OR created_at >= $5)
    AND ($6::bigint IS NULL OR created_at < $6)
ORDER BY created_at, instance_id LIMIT $7 OFFSET $8

-- name: list_executions
-- (instance id)
SELECT {execution_columns} FROM {schema}.executions
WHERE instance_id = $1 ORDER BY execution_id

-- name: read_history
-- (instance id, execution id)
SELECT data FROM {schema}.history WHERE instance_id = $1 AND execution_id = $2
ORDER BY event_id

-- ---- management --------------------------------------------------------------------

-- name: delete_instance
-- (instance id, force) -> instances deleted
SELECT {schema}.durox_delete_instance($1, $2)

-- name: delete_instances
-- (status, name, updated before ms: each NULL for any) -> instances deleted
SELECT {schema}.durox_delete_instances($1, $2, $3)

-- name: prune_executions
-- (instance id, executions to keep) -> executions deleted
SELECT {schema}.durox_prune_executions($1, $2)

-- name: queue_depths
-- (clock): orchestrations ready, delayed, locked; activities ready, delayed, locked
WITH t AS (SELECT coalesce($1, {schema}.durox_now_ms()) AS now)
SELECT
    (SELECT count(*) FROM {schema}.orchestrator_queue o, t WHERE o.visible_at <= t.now
        AND NOT EXISTS (SELECT 1 FROM {schema}.instance_locks l WHERE
            l.instance_id = o.instance_id AND l.locked_until > t.now)),
    (SELECT count(*) FROM {schema}.orchestrator_queue o, t WHERE o.visible_at > t.now),
    (SELECT count(*) FROM {schema}.orchestrator_queue o, t WHERE o.visible_at <= t.now
        AND EXISTS (SELECT 1 FROM {schema}.instance_locks l WHERE
            l.instance_id = o.instance_id AND l.locked_until > t.now)),
    (SELECT count(*) FROM {schema}.worker_queue w, t WHERE w.visible_at <= t.now
        AND (w.lock_token IS NULL OR w.locked_until <= t.now)),
    (SELECT count(*) FROM {schema}.worker_queue w, t WHERE w.visible_at > t.now
        AND (w.lock_token IS NULL OR w.locked_until <= t.now)),
    (SELECT count(*) FROM {schema}.worker_queue w, t WHERE w.lock_token IS NOT NULL
        AND w.locked_until > t.now)
FROM t

-- name: system_metrics
-- (clock): instances by status (JSON), executions, history rows, live instance locks, live
-- sessions, worker records
WITH t AS (SELECT coalesce($1, {schema}.durox_now_ms()) AS now)
SELECT
    (SELECT coalesce(json_object_agg(status, n), '{}')::text FROM (SELECT status,
        count(*) AS n FROM {schema}.instances GROUP BY status) s),
    (SELECT count(*) FROM {schema}.executions),
    (SELECT count(*) FROM {schema}.history),
    (SELECT count(*) FROM {schema}.instance_locks l WHERE l.locked_until > t.now),
    (SELECT count(*) FROM {schema}.sessions s WHERE s.locked_until > t.now),
    (SELECT count(*) FROM {schema}.workers)
FROM t

-- ---- replay-check reads ----------------------------------------------------------------------
-- Executions running, or ended well (completed, continued as new: the words in $2) since a
-- time ($1, NULL: none); an execution's NAME is its instance's.

-- name: execution_versions
-- (ended since ms, ended-well words)
SELECT i.orchestration_name, e.orchestration_version,
    count(*) FILTER (WHERE e.status = 'Running'), count(*) FILTER (WHERE e.status <> 'Running')
FROM {schema}.executions e JOIN {schema}.instances i ON i.instance_id = e.instance_id
WHERE e.status = 'Running'
    OR ($1::bigint IS NOT NULL AND e.completed_at >= $1 AND e.status = ANY($2::text[]))
GROUP BY i.orchestration_name, e.orchestration_version
ORDER BY i.orchestration_name, e.orchestration_version

-- name: sample_executions_longest
-- (name, version, ended since ms, ended-well words, limit)
SELECT e.instance_id, e.execution_id, e.status, e.event_count,
    coalesce(e.completed_at, i.updated_at) AS last_active
FROM {schema}.executions e JOIN {schema}.instances i ON i.instance_id = e.instance_id
WHERE i.orchestration_name = $1 AND e.orchestration_version = $2
    AND (e.status = 'Running'
        OR ($3::bigint IS NOT NULL AND e.completed_at >= $3 AND e.status = ANY($4::text[])))
ORDER BY (e.status = 'Running') DESC, e.event_count DESC, last_active DESC, e.instance_id,
    e.execution_id
LIMIT $5

-- name: sample_executions_recent
-- (name, version, ended since ms, ended-well words, limit)
SELECT e.instance_id, e.execution_id, e.status, e.event_count,
    coalesce(e.completed_at, i.updated_at) AS last_active
FROM {schema}.executions e JOIN {schema}.instances i ON i.instance_id = e.instance_id
WHERE i.orchestration_name = $1 AND e.orchestration_version = $2
    AND (e.status = 'Running'
        OR ($3::bigint IS NOT NULL AND e.completed_at >= $3 AND e.status = ANY($4::text[])))
ORDER BY (e.status = 'Running') DESC, last_active DESC, e.event_count DESC, e.instance_id,
    e.execution_id
LIMIT $5
