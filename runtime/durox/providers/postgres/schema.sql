-- durox PostgreSQL store: the whole schema as the migrations leave it (a test checks that
-- they agree). Apply with search_path set to the deployment's schema.
-- Applied with search_path set to the deployment's schema; every function pins that schema
-- (SET search_path FROM CURRENT), so a caller's search_path never changes what it touches.
-- Times are milliseconds since the Unix epoch (bigint); payloads are JSON text.
-- Every store operation is one function call: one round trip, one transaction.
-- Custom SQLSTATEs: DX001 lock lost, DX002 instance exists, DX003 instance running.

CREATE TABLE instances (
    instance_id           text PRIMARY KEY,
    orchestration_name    text NOT NULL,
    orchestration_version text NOT NULL,
    current_execution_id  bigint NOT NULL,
    status                text NOT NULL,
    output                text,
    error                 text,
    custom_status         text,
    parent_instance_id    text,
    pinned_engine_version text,
    pinned_major          integer,
    pinned_minor          integer,
    pinned_patch          integer,
    created_at            bigint NOT NULL,
    updated_at            bigint NOT NULL,
    turn_token            text
);
CREATE INDEX instances_by_status ON instances (status);
CREATE INDEX instances_by_name ON instances (orchestration_name, orchestration_version);
CREATE INDEX instances_by_parent ON instances (parent_instance_id);
CREATE INDEX instances_by_created ON instances (created_at, instance_id);
-- What `observe` reads: instances that have not ended, by NAME@version, oldest first (with
-- the pin, for index-only counts per pin).
CREATE INDEX instances_not_ended ON instances
    (orchestration_name, orchestration_version, created_at, instance_id, pinned_engine_version)
    WHERE status NOT IN ('Cancelled', 'Completed', 'Failed');

CREATE TABLE executions (
    instance_id           text NOT NULL,
    execution_id          bigint NOT NULL,
    orchestration_version text NOT NULL,
    status                text NOT NULL,
    output                text,
    engine_version        text,
    event_count           bigint NOT NULL DEFAULT 0,
    started_at            bigint NOT NULL,
    completed_at          bigint,
    PRIMARY KEY (instance_id, execution_id)
);
-- What `observe` reads: failed executions by when they failed (columns that stay put while an
-- execution runs, so indexing them costs a turn nothing).
CREATE INDEX executions_failed_by_time ON executions (completed_at) WHERE status = 'Failed';

CREATE TABLE history (
    instance_id  text NOT NULL,
    execution_id bigint NOT NULL,
    event_id     bigint NOT NULL,
    data         text NOT NULL,
    PRIMARY KEY (instance_id, execution_id, event_id)
);

CREATE TABLE orchestrator_queue (
    id            bigserial PRIMARY KEY,
    instance_id   text NOT NULL,
    kind          text NOT NULL,
    data          text NOT NULL,
    visible_at    bigint NOT NULL,
    lock_token    text,
    attempt_count integer NOT NULL DEFAULT 0,
    created_at    bigint NOT NULL
);
CREATE INDEX orchestrator_queue_by_visible ON orchestrator_queue (visible_at, id);
CREATE INDEX orchestrator_queue_by_instance ON orchestrator_queue (instance_id, visible_at);
CREATE INDEX orchestrator_queue_by_lock ON orchestrator_queue (lock_token);

CREATE TABLE instance_locks (
    instance_id  text PRIMARY KEY,
    lock_token   text NOT NULL UNIQUE,
    locked_until bigint NOT NULL
);

CREATE TABLE worker_queue (
    id            bigserial PRIMARY KEY,
    instance_id   text NOT NULL,
    execution_id  bigint NOT NULL,
    event_id      bigint NOT NULL,
    session_id    text,
    data          text NOT NULL,
    visible_at    bigint NOT NULL,
    lock_token    text,
    locked_until  bigint,
    attempt_count integer NOT NULL DEFAULT 0,
    created_at    bigint NOT NULL
);
CREATE INDEX worker_queue_by_visible ON worker_queue (visible_at, id);
CREATE INDEX worker_queue_by_lock ON worker_queue (lock_token);
CREATE INDEX worker_queue_by_source ON worker_queue (instance_id, execution_id, event_id);
CREATE INDEX worker_queue_by_session ON worker_queue (session_id);

-- A session is owned by one worker while its lock is alive; its activities go only there.
CREATE TABLE sessions (
    session_id       text PRIMARY KEY,
    owner_id         text NOT NULL,
    locked_until     bigint NOT NULL,
    last_activity_at bigint NOT NULL
);
CREATE INDEX sessions_by_owner ON sessions (owner_id);

-- One row per live runtime, refreshed by heartbeat, removed on clean shutdown.
CREATE TABLE workers (
    worker_id       text PRIMARY KEY,
    node_id         text,
    pool            text NOT NULL,
    engine_version  text NOT NULL,
    record          text NOT NULL,
    config_revision text NOT NULL,
    started_at      bigint NOT NULL,
    heartbeat_at    bigint NOT NULL
);
CREATE INDEX workers_by_pool ON workers (pool);

-- ---- helpers ---------------------------------------------------------------------------

CREATE FUNCTION durox_now_ms() RETURNS bigint
LANGUAGE sql VOLATILE
AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

-- The NOTIFY channel of this schema (one per deployment sharing the database).
CREATE FUNCTION durox_channel() RETURNS text
LANGUAGE sql STABLE SET search_path FROM CURRENT
AS $$ SELECT 'durox.' || current_schema() $$;

-- A 64-bit advisory lock key for one name in this schema.
CREATE FUNCTION durox_lock_key(p_kind text, p_name text) RETURNS bigint
LANGUAGE sql STABLE SET search_path FROM CURRENT
AS $$ SELECT hashtextextended(current_schema() || '/' || p_kind || '/' || p_name, 0) $$;

-- ---- orchestration queue -------------------------------------------------------------

CREATE FUNCTION durox_start_instance(p_id text, p_data text, p_now bigint) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    v_now bigint := coalesce(p_now, durox_now_ms());
BEGIN
    -- Serialise starts of one id so two racing clients cannot both enqueue.
    PERFORM pg_advisory_xact_lock(durox_lock_key('start', p_id));
    IF EXISTS (SELECT 1 FROM instances WHERE instance_id = p_id)
       OR EXISTS (SELECT 1 FROM orchestrator_queue
                  WHERE instance_id = p_id AND kind = 'StartOrchestration') THEN
        RAISE EXCEPTION 'instance % exists', quote_literal(p_id) USING ERRCODE = 'DX002';
    END IF;
    INSERT INTO orchestrator_queue (instance_id, kind, data, visible_at, created_at)
    VALUES (p_id, 'StartOrchestration', p_data, v_now, v_now);
    PERFORM pg_notify(durox_channel(), 'o1');
END $$;

CREATE FUNCTION durox_enqueue(p_id text, p_kind text, p_data text, p_delay bigint, p_now bigint)
RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    v_now bigint := coalesce(p_now, durox_now_ms());
    v_visible bigint := v_now + greatest(p_delay, 0);
BEGIN
    INSERT INTO orchestrator_queue (instance_id, kind, data, visible_at, created_at)
    VALUES (p_id, p_kind, p_data, v_visible, v_now);
    IF v_visible <= v_now THEN
        PERFORM pg_notify(durox_channel(), 'o1');
    ELSE
        PERFORM pg_notify(durox_channel(), 'o@' || v_visible);
    END IF;
    RETURN v_visible;
END $$;

-- Lock the oldest instance with visible messages whose pin lies in [p_lo, p_hi] (NULL: any),
-- and return its messages and current history. Candidates another fetch is looking at are
-- skipped (pg_try_advisory_xact_lock never waits). The lease is computed from the clock at
-- the moment it is written, so a fetch that was slow never writes a lease already expired.
CREATE FUNCTION durox_fetch_orchestration(
    p_now bigint, p_lock_ms bigint, p_token text, p_lo integer[], p_hi integer[]
) RETURNS TABLE (
    instance_id text, execution_id bigint, orchestration_name text,
    orchestration_version text, status text, pinned_engine_version text,
    history_length bigint, attempt_count integer, messages text[], history text[],
    locked_until bigint
)
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
#variable_conflict use_column
DECLARE
    v_now bigint := coalesce(p_now, durox_now_ms());
    v_id text;
    v_tried text[] := '{}';
    v_until bigint;
    v_msgs text[];
    v_attempts integer;
    v_inst instances%ROWTYPE;
BEGIN
    -- Walk the queue oldest first along its primary key and stop at the first instance that
    -- can be taken, so the cost follows the rows skipped, not the backlog (a join over the whole
    -- queue and a sort cost O(queue) per fetch). Locks and pins are checked per instance.
    FOR v_id IN
        SELECT q.instance_id FROM orchestrator_queue q
        WHERE q.visible_at <= v_now
        ORDER BY q.id
    LOOP
        CONTINUE WHEN v_id = ANY (v_tried);
        EXIT WHEN cardinality(v_tried) >= 1024;  -- bounded even when nearly all is locked
        v_tried := v_tried || v_id;
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM instance_locks l
            WHERE l.instance_id = v_id AND l.locked_until > v_now);
        CONTINUE WHEN p_lo IS NOT NULL AND EXISTS (
            SELECT 1 FROM instances i
            WHERE i.instance_id = v_id AND i.pinned_major IS NOT NULL AND NOT (
                (i.pinned_major, i.pinned_minor, i.pinned_patch) >= (p_lo[1], p_lo[2], p_lo[3])
                AND (i.pinned_major, i.pinned_minor, i.pinned_patch)
                    <= (p_hi[1], p_hi[2], p_hi[3])));
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(durox_lock_key('instance', v_id));
        v_until := coalesce(p_now, durox_now_ms()) + p_lock_ms;
        INSERT INTO instance_locks AS l (instance_id, lock_token, locked_until)
        VALUES (v_id, p_token, v_until)
        ON CONFLICT ON CONSTRAINT instance_locks_pkey DO UPDATE
            SET lock_token = excluded.lock_token, locked_until = excluded.locked_until
            WHERE l.locked_until <= v_now;
        CONTINUE WHEN NOT FOUND;
        WITH taken AS (
            UPDATE orchestrator_queue q SET lock_token = p_token,
                attempt_count = q.attempt_count + 1
            WHERE q.instance_id = v_id AND q.visible_at <= v_now
            RETURNING q.id, q.data, q.attempt_count
        )
        SELECT array_agg(t.data ORDER BY t.id), max(t.attempt_count)
        INTO v_msgs, v_attempts FROM taken t;
        IF v_msgs IS NULL THEN
            -- Acknowledged by the previous holder in the meantime: nothing left to do here.
            DELETE FROM instance_locks WHERE lock_token = p_token;
            CONTINUE;
        END IF;
        SELECT * INTO v_inst FROM instances i WHERE i.instance_id = v_id;
        instance_id := v_id;
        messages := v_msgs;
        attempt_count := v_attempts;
        locked_until := v_until;
        history := '{}';
        IF FOUND THEN
            execution_id := v_inst.current_execution_id;
            orchestration_name := v_inst.orchestration_name;
            orchestration_version := v_inst.orchestration_version;
            status := v_inst.status;
            pinned_engine_version := v_inst.pinned_engine_version;
            -- The highest event id, read from the rows themselves (never from a counter).
            SELECT coalesce(max(h.event_id), 0) INTO history_length FROM history h
            WHERE h.instance_id = v_id AND h.execution_id = v_inst.current_execution_id;
            IF v_inst.status = 'Running' THEN
                SELECT coalesce(array_agg(h.data ORDER BY h.event_id), '{}') INTO history
                FROM history h
                WHERE h.instance_id = v_id AND h.execution_id = v_inst.current_execution_id;
            END IF;
        ELSE
            execution_id := 0;
            history_length := 0;
        END IF;
        RETURN NEXT;
        RETURN;
    END LOOP;
END $$;

CREATE FUNCTION durox_ack_orchestration(
    p_token text, p_now bigint, p_execution_id bigint,
    p_has_update boolean, p_started boolean, p_name text, p_version text, p_status text,
    p_output text, p_error text, p_custom text, p_parent text, p_engine text,
    p_major integer, p_minor integer, p_patch integer,
    p_ev_ids bigint[], p_ev_data text[],
    p_w_inst text[], p_w_exec bigint[], p_w_event bigint[], p_w_session text[], p_w_data text[],
    p_q_inst text[], p_q_kind text[], p_q_data text[], p_q_visible bigint[],
    p_cancelled bigint[]
) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    v_now bigint := coalesce(p_now, durox_now_ms());
    v_id text;
    v_until bigint;
    v_due bigint;
    v_n integer;
BEGIN
    SELECT l.instance_id, l.locked_until INTO v_id, v_until
    FROM instance_locks l WHERE l.lock_token = p_token FOR UPDATE;
    IF NOT FOUND OR v_until < v_now THEN
        RAISE EXCEPTION 'orchestration lock expired or was taken before the ack'
            USING ERRCODE = 'DX001';
    END IF;
    DELETE FROM orchestrator_queue WHERE lock_token = p_token;
    IF p_has_update THEN
        IF p_started THEN
            INSERT INTO executions (instance_id, execution_id, orchestration_version, status,
                                    engine_version, started_at)
            VALUES (v_id, p_execution_id, p_version, 'Running', p_engine, v_now);
        END IF;
        INSERT INTO instances AS i (instance_id, orchestration_name, orchestration_version,
            current_execution_id, status, output, error, custom_status, parent_instance_id,
            pinned_engine_version, pinned_major, pinned_minor, pinned_patch, created_at,
            updated_at)
        VALUES (v_id, p_name, p_version, p_execution_id, p_status, p_output, p_error, p_custom,
            p_parent, p_engine, p_major, p_minor, p_patch, v_now, v_now)
        ON CONFLICT (instance_id) DO UPDATE SET
            orchestration_name = excluded.orchestration_name,
            orchestration_version = excluded.orchestration_version,
            current_execution_id = excluded.current_execution_id,
            status = excluded.status, output = excluded.output, error = excluded.error,
            custom_status = excluded.custom_status,
            pinned_engine_version = excluded.pinned_engine_version,
            pinned_major = excluded.pinned_major, pinned_minor = excluded.pinned_minor,
            pinned_patch = excluded.pinned_patch, updated_at = excluded.updated_at;
        UPDATE executions SET status = p_status, output = p_output,
            event_count = event_count + coalesce(cardinality(p_ev_ids), 0),
            completed_at = CASE WHEN p_status = 'Running' THEN NULL ELSE v_now END
        WHERE instance_id = v_id AND execution_id = p_execution_id;
    END IF;
    IF cardinality(p_ev_ids) > 0 THEN
        INSERT INTO history (instance_id, execution_id, event_id, data)
        SELECT v_id, p_execution_id, e.id, e.data FROM unnest(p_ev_ids, p_ev_data) AS e(id, data);
    END IF;
    IF cardinality(p_w_inst) > 0 THEN
        INSERT INTO worker_queue (instance_id, execution_id, event_id, session_id, data,
                                  visible_at, created_at)
        SELECT w.i, w.x, w.e, w.s, w.d, v_now, v_now
        FROM unnest(p_w_inst, p_w_exec, p_w_event, p_w_session, p_w_data) AS w(i, x, e, s, d);
        PERFORM pg_notify(durox_channel(), 'a' || cardinality(p_w_inst));
    END IF;
    IF cardinality(p_q_inst) > 0 THEN
        INSERT INTO orchestrator_queue (instance_id, kind, data, visible_at, created_at)
        SELECT m.i, m.k, m.d, coalesce(m.v, v_now), v_now
        FROM unnest(p_q_inst, p_q_kind, p_q_data, p_q_visible) AS m(i, k, d, v);
        SELECT count(*) INTO v_n FROM unnest(p_q_visible) AS v(at) WHERE coalesce(v.at, v_now) <= v_now;
        IF v_n > 0 THEN
            PERFORM pg_notify(durox_channel(), 'o' || v_n);
        END IF;
        FOR v_due IN SELECT DISTINCT v.at FROM unnest(p_q_visible) AS v(at) WHERE v.at > v_now
        LOOP
            PERFORM pg_notify(durox_channel(), 'o@' || v_due);
        END LOOP;
    END IF;
    IF cardinality(p_cancelled) > 0 THEN
        DELETE FROM worker_queue
        WHERE instance_id = v_id AND execution_id = p_execution_id
          AND event_id = ANY (p_cancelled);
    END IF;
    DELETE FROM instance_locks WHERE lock_token = p_token;
    -- Messages that arrived while the instance was locked are ready for the next fetch now.
    IF EXISTS (SELECT 1 FROM orchestrator_queue q
               WHERE q.instance_id = v_id AND q.visible_at <= v_now) THEN
        PERFORM pg_notify(durox_channel(), 'o1');
    END IF;
END $$;

CREATE FUNCTION durox_abandon_orchestration(
    p_token text, p_delay bigint, p_ignore_attempt boolean, p_now bigint
) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    v_now bigint := coalesce(p_now, durox_now_ms());
    v_visible bigint := v_now + greatest(p_delay, 0);
BEGIN
    UPDATE orchestrator_queue SET lock_token = NULL,
        visible_at = greatest(visible_at, v_visible),
        attempt_count = attempt_count - CASE WHEN p_ignore_attempt THEN 1 ELSE 0 END
    WHERE lock_token = p_token;
    DELETE FROM instance_locks WHERE lock_token = p_token;
    IF v_visible <= v_now THEN
        PERFORM pg_notify(durox_channel(), 'o1');
    ELSE
        PERFORM pg_notify(durox_channel(), 'o@' || v_visible);
    END IF;
    RETURN v_visible;
END $$;

CREATE FUNCTION durox_renew_orchestration(p_token text, p_lock_ms bigint, p_now bigint)
RETURNS boolean
LANGUAGE sql SET search_path FROM CURRENT
AS $$
    WITH n AS (SELECT coalesce(p_now, durox_now_ms()) AS now)
    UPDATE instance_locks SET locked_until = n.now + p_lock_ms FROM n
    WHERE lock_token = p_token AND locked_until >= n.now
    RETURNING true
$$;

-- ---- activity queue ----------------------------------------------------------------

CREATE FUNCTION durox_fetch_work(
    p_now bigint, p_lock_ms bigint, p_token text, p_worker text, p_session_ms bigint,
    p_max_sessions integer
) RETURNS TABLE (data text, attempt_count integer, session_id text)
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
#variable_conflict use_column
DECLARE
    v_now bigint := coalesce(p_now, durox_now_ms());
    v_can_claim boolean;
    v_rejected text[] := '{}';
    v_row record;
    v_owned integer;
BEGIN
    IF p_max_sessions IS NULL THEN
        v_can_claim := true;
    ELSIF p_max_sessions <= 0 THEN
        v_can_claim := false;
    ELSE
        SELECT count(*) < p_max_sessions INTO v_can_claim FROM sessions s
        WHERE s.owner_id = p_worker AND s.locked_until > v_now;
    END IF;
    FOR i IN 1..4 LOOP
        SELECT q.id, q.session_id, s.owner_id, s.locked_until AS session_until INTO v_row
        FROM worker_queue q LEFT JOIN sessions s ON s.session_id = q.session_id
        WHERE q.visible_at <= v_now AND (q.lock_token IS NULL OR q.locked_until <= v_now)
          AND (q.session_id IS NULL
               OR (s.owner_id = p_worker AND s.locked_until > v_now)
               OR ((s.session_id IS NULL OR s.locked_until <= v_now) AND v_can_claim))
          AND (q.session_id IS NULL OR NOT q.session_id = ANY (v_rejected))
        ORDER BY q.id LIMIT 1
        FOR UPDATE OF q SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        IF v_row.session_id IS NOT NULL THEN
            IF NOT (v_row.owner_id IS NOT DISTINCT FROM p_worker
                    AND v_row.session_until > v_now) AND p_max_sessions IS NOT NULL THEN
                -- Claiming a new session: count this worker's sessions under its own lock.
                PERFORM pg_advisory_xact_lock(durox_lock_key('sessions', p_worker));
                SELECT count(*) INTO v_owned FROM sessions s
                WHERE s.owner_id = p_worker AND s.locked_until > v_now;
                IF v_owned >= p_max_sessions THEN
                    v_rejected := v_rejected || v_row.session_id;
                    CONTINUE;
                END IF;
            END IF;
            INSERT INTO sessions AS s (session_id, owner_id, locked_until, last_activity_at)
            VALUES (v_row.session_id, p_worker, v_now + p_session_ms, v_now)
            ON CONFLICT ON CONSTRAINT sessions_pkey DO UPDATE SET owner_id = excluded.owner_id,
                locked_until = excluded.locked_until,
                last_activity_at = excluded.last_activity_at
            WHERE s.owner_id = p_worker OR s.locked_until <= v_now;
            IF NOT FOUND THEN
                -- Another worker claimed the session a moment ago.
                v_rejected := v_rejected || v_row.session_id;
                CONTINUE;
            END IF;
        END IF;
        RETURN QUERY
        UPDATE worker_queue q SET lock_token = p_token,
            locked_until = coalesce(p_now, durox_now_ms()) + p_lock_ms,
            attempt_count = q.attempt_count + 1
        WHERE q.id = v_row.id
        RETURNING q.data, q.attempt_count, q.session_id;
        RETURN;
    END LOOP;
END $$;

CREATE FUNCTION durox_ack_work(p_token text, p_instance text, p_data text, p_now bigint)
RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    v_now bigint := coalesce(p_now, durox_now_ms());
    v_session text;
BEGIN
    DELETE FROM worker_queue WHERE lock_token = p_token AND locked_until >= v_now
    RETURNING session_id INTO v_session;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'activity lock expired, or the activity was cancelled'
            USING ERRCODE = 'DX001';
    END IF;
    IF v_session IS NOT NULL THEN
        UPDATE sessions SET last_activity_at = v_now WHERE session_id = v_session;
    END IF;
    INSERT INTO orchestrator_queue (instance_id, kind, data, visible_at, created_at)
    VALUES (p_instance, 'ActivityResult', p_data, v_now, v_now);
    PERFORM pg_notify(durox_channel(), 'o1');
END $$;

CREATE FUNCTION durox_abandon_work(
    p_token text, p_delay bigint, p_ignore_attempt boolean, p_now bigint
) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    v_now bigint := coalesce(p_now, durox_now_ms());
    v_visible bigint := v_now + greatest(p_delay, 0);
BEGIN
    UPDATE worker_queue SET lock_token = NULL, locked_until = NULL, visible_at = v_visible,
        attempt_count = attempt_count - CASE WHEN p_ignore_attempt THEN 1 ELSE 0 END
    WHERE lock_token = p_token;
    IF FOUND THEN
        IF v_visible <= v_now THEN
            PERFORM pg_notify(durox_channel(), 'a1');
        ELSE
            PERFORM pg_notify(durox_channel(), 'a@' || v_visible);
        END IF;
    END IF;
    RETURN v_visible;
END $$;

CREATE FUNCTION durox_renew_work(p_token text, p_lock_ms bigint, p_now bigint)
RETURNS boolean
LANGUAGE sql SET search_path FROM CURRENT
AS $$
    WITH n AS (SELECT coalesce(p_now, durox_now_ms()) AS now)
    UPDATE worker_queue SET locked_until = n.now + p_lock_ms FROM n
    WHERE lock_token = p_token AND locked_until >= n.now
    RETURNING true
$$;

CREATE FUNCTION durox_renew_sessions(
    p_worker text, p_session_ms bigint, p_idle_ms bigint, p_now bigint
) RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    v_now bigint := coalesce(p_now, durox_now_ms());
    v_renewed integer;
BEGIN
    UPDATE sessions s SET locked_until = v_now + p_session_ms
    WHERE s.owner_id = p_worker AND s.locked_until > v_now
      AND (s.last_activity_at >= v_now - p_idle_ms OR EXISTS (
          SELECT 1 FROM worker_queue q
          WHERE q.session_id = s.session_id AND q.locked_until > v_now));
    GET DIAGNOSTICS v_renewed = ROW_COUNT;
    DELETE FROM sessions WHERE locked_until <= v_now;
    RETURN v_renewed;
END $$;

-- ---- management ------------------------------------------------------------------------

-- The instance and every descendant (through parent_instance_id).
CREATE FUNCTION durox_instance_tree(p_id text) RETURNS TABLE (instance_id text, status text)
LANGUAGE sql STABLE SET search_path FROM CURRENT
AS $$
    WITH RECURSIVE tree(instance_id, status) AS (
        SELECT i.instance_id, i.status FROM instances i WHERE i.instance_id = p_id
        UNION
        SELECT c.instance_id, c.status FROM instances c
        JOIN tree t ON c.parent_instance_id = t.instance_id
    )
    SELECT tree.instance_id, tree.status FROM tree
$$;

CREATE FUNCTION durox_delete_tree(p_ids text[]) RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    v_n integer;
BEGIN
    DELETE FROM history WHERE instance_id = ANY (p_ids);
    DELETE FROM executions WHERE instance_id = ANY (p_ids);
    DELETE FROM orchestrator_queue WHERE instance_id = ANY (p_ids);
    DELETE FROM worker_queue WHERE instance_id = ANY (p_ids);
    DELETE FROM instance_locks WHERE instance_id = ANY (p_ids);
    DELETE FROM instances WHERE instance_id = ANY (p_ids);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END $$;

CREATE FUNCTION durox_delete_instance(p_id text, p_force boolean) RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    v_ids text[];
    v_running text;
BEGIN
    SELECT array_agg(t.instance_id),
           min(t.instance_id) FILTER (WHERE t.status NOT IN ('Completed', 'Failed', 'Cancelled'))
    INTO v_ids, v_running FROM durox_instance_tree(p_id) t;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    IF v_running IS NOT NULL AND NOT p_force THEN
        RAISE EXCEPTION 'instance % is still running; delete it with force=True',
            quote_literal(v_running) USING ERRCODE = 'DX003';
    END IF;
    RETURN durox_delete_tree(v_ids);
END $$;

CREATE FUNCTION durox_delete_instances(
    p_status text, p_name text, p_before bigint
) RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    v_id text;
    v_ids text[];
    v_running boolean;
    v_total integer := 0;
BEGIN
    FOR v_id IN
        SELECT i.instance_id FROM instances i
        WHERE i.status IN ('Completed', 'Failed', 'Cancelled')
          AND (p_status IS NULL OR i.status = p_status)
          AND (p_name IS NULL OR i.orchestration_name = p_name)
          AND (p_before IS NULL OR i.updated_at < p_before)
        ORDER BY i.instance_id
    LOOP
        SELECT array_agg(t.instance_id),
               bool_or(t.status NOT IN ('Completed', 'Failed', 'Cancelled'))
        INTO v_ids, v_running FROM durox_instance_tree(v_id) t;
        -- Already gone as part of an earlier tree, or a descendant still runs: leave it.
        CONTINUE WHEN v_ids IS NULL OR v_running;
        v_total := v_total + durox_delete_tree(v_ids);
    END LOOP;
    RETURN v_total;
END $$;

CREATE FUNCTION durox_prune_executions(p_id text, p_keep integer) RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    v_current bigint;
    v_n integer;
BEGIN
    SELECT current_execution_id INTO v_current FROM instances WHERE instance_id = p_id;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    DELETE FROM history
    WHERE instance_id = p_id AND execution_id <= v_current - greatest(p_keep, 1);
    DELETE FROM executions
    WHERE instance_id = p_id AND execution_id <= v_current - greatest(p_keep, 1);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END $$;

-- Batches: several activities fetched or acknowledged in one call (one round trip, one commit).
-- Each item is still checked on its own; a token that lost its lease does not fail the others.
CREATE FUNCTION durox_fetch_work_batch(
    p_now bigint, p_lock_ms bigint, p_tokens text[], p_worker text, p_session_ms bigint,
    p_max_sessions integer
) RETURNS TABLE (lock_token text, data text, attempt_count integer, session_id text)
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    v_row record;
BEGIN
    -- One token per item wanted; the single fetch's rules (order, sessions, caps) apply to
    -- each, and a row taken earlier in the batch is no longer visible to the next.
    FOR i IN 1..coalesce(cardinality(p_tokens), 0) LOOP
        SELECT * INTO v_row FROM durox_fetch_work(
            p_now, p_lock_ms, p_tokens[i], p_worker, p_session_ms, p_max_sessions);
        EXIT WHEN NOT FOUND OR v_row.data IS NULL;
        lock_token := p_tokens[i];
        data := v_row.data;
        attempt_count := v_row.attempt_count;
        session_id := v_row.session_id;
        RETURN NEXT;
    END LOOP;
END $$;

CREATE FUNCTION durox_ack_work_batch(
    p_tokens text[], p_instances text[], p_data text[], p_now bigint
) RETURNS boolean[]
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    v_now bigint := coalesce(p_now, durox_now_ms());
    v_session text;
    v_ok boolean[] := '{}';
    v_done integer := 0;
BEGIN
    FOR i IN 1..coalesce(cardinality(p_tokens), 0) LOOP
        DELETE FROM worker_queue WHERE lock_token = p_tokens[i] AND locked_until >= v_now
        RETURNING session_id INTO v_session;
        IF NOT FOUND THEN
            v_ok := v_ok || false;  -- lease lapsed, or the activity was cancelled
            CONTINUE;
        END IF;
        IF v_session IS NOT NULL THEN
            UPDATE sessions SET last_activity_at = v_now WHERE session_id = v_session;
        END IF;
        INSERT INTO orchestrator_queue (instance_id, kind, data, visible_at, created_at)
        VALUES (p_instances[i], 'ActivityResult', p_data[i], v_now, v_now);
        v_ok := v_ok || true;
        v_done := v_done + 1;
    END LOOP;
    IF v_done > 0 THEN
        PERFORM pg_notify(durox_channel(), 'o' || v_done);
    END IF;
    RETURN v_ok;
END $$;

-- One turn's acknowledgement, as `durox_ack_orchestration` takes it, so several can be passed
-- in one call.
CREATE TYPE durox_turn AS (
    token text, execution_id bigint, has_update boolean, started boolean, name text,
    version text, status text, output text, error text, custom text, parent text, engine text,
    major integer, minor integer, patch integer, ev_ids bigint[], ev_data text[],
    w_inst text[], w_exec bigint[], w_event bigint[], w_session text[], w_data text[],
    q_inst text[], q_kind text[], q_data text[], q_visible bigint[], cancelled bigint[]
);

CREATE FUNCTION durox_fetch_orchestration_batch(
    p_now bigint, p_lock_ms bigint, p_tokens text[], p_lo integer[], p_hi integer[]
) RETURNS TABLE (
    lock_token text, instance_id text, execution_id bigint, orchestration_name text,
    orchestration_version text, status text, pinned_engine_version text,
    history_length bigint, attempt_count integer, messages text[], history text[],
    locked_until bigint
)
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    v_row record;
BEGIN
    -- One token per instance wanted; an instance locked earlier in the batch is skipped by
    -- the next fetch like any other locked instance.
    FOR i IN 1..coalesce(cardinality(p_tokens), 0) LOOP
        SELECT * INTO v_row FROM durox_fetch_orchestration(
            p_now, p_lock_ms, p_tokens[i], p_lo, p_hi);
        EXIT WHEN NOT FOUND OR v_row.instance_id IS NULL;
        lock_token := p_tokens[i];
        instance_id := v_row.instance_id;
        execution_id := v_row.execution_id;
        orchestration_name := v_row.orchestration_name;
        orchestration_version := v_row.orchestration_version;
        status := v_row.status;
        pinned_engine_version := v_row.pinned_engine_version;
        history_length := v_row.history_length;
        attempt_count := v_row.attempt_count;
        messages := v_row.messages;
        history := v_row.history;
        locked_until := v_row.locked_until;
        RETURN NEXT;
    END LOOP;
END $$;

CREATE FUNCTION durox_ack_orchestration_batch(p_turns durox_turn[], p_now bigint)
RETURNS text[]
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    t durox_turn;
    v_out text[] := '{}';
BEGIN
    -- Each turn in its own subtransaction: one that fails (a lapsed lease) is rolled back
    -- alone and reported as 'SQLSTATE message'; NULL means applied.
    FOREACH t IN ARRAY coalesce(p_turns, '{}') LOOP
        BEGIN
            PERFORM durox_ack_orchestration(
                t.token, p_now, t.execution_id, t.has_update, t.started, t.name, t.version,
                t.status, t.output, t.error, t.custom, t.parent, t.engine, t.major, t.minor,
                t.patch, t.ev_ids, t.ev_data, t.w_inst, t.w_exec, t.w_event, t.w_session,
                t.w_data, t.q_inst, t.q_kind, t.q_data, t.q_visible, t.cancelled);
            v_out := array_append(v_out, NULL::text);
        EXCEPTION WHEN OTHERS THEN
            v_out := array_append(v_out, SQLSTATE || ' ' || SQLERRM);
        END;
    END LOOP;
    RETURN v_out;
END $$;

-- ---- schema version 5: a turn is one durox_turn value ---------------------------------
-- durox_ack_orchestration and durox_ack_orchestration_batch above are version 1, kept for
-- workers of the previous release; the _v2 functions below are what this release calls.

CREATE FUNCTION durox_ack_orchestration_v2(p_turn durox_turn, p_now bigint) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    t durox_turn := p_turn;
    v_now bigint := coalesce(p_now, durox_now_ms());
    v_id text;
    v_until bigint;
    v_due bigint;
    v_n integer;
BEGIN
    SELECT l.instance_id, l.locked_until INTO v_id, v_until
    FROM instance_locks l WHERE l.lock_token = t.token FOR UPDATE;
    IF NOT FOUND OR v_until < v_now THEN
        RAISE EXCEPTION 'orchestration lock expired or was taken before the ack'
            USING ERRCODE = 'DX001';
    END IF;
    DELETE FROM orchestrator_queue WHERE lock_token = t.token;
    IF t.has_update THEN
        IF t.started THEN
            INSERT INTO executions (instance_id, execution_id, orchestration_version, status,
                                    engine_version, started_at)
            VALUES (v_id, t.execution_id, t.version, 'Running', t.engine, v_now);
        END IF;
        INSERT INTO instances AS i (instance_id, orchestration_name, orchestration_version,
            current_execution_id, status, output, error, custom_status, parent_instance_id,
            pinned_engine_version, pinned_major, pinned_minor, pinned_patch, created_at,
            updated_at)
        VALUES (v_id, t.name, t.version, t.execution_id, t.status, t.output, t.error, t.custom,
            t.parent, t.engine, t.major, t.minor, t.patch, v_now, v_now)
        ON CONFLICT (instance_id) DO UPDATE SET
            orchestration_name = excluded.orchestration_name,
            orchestration_version = excluded.orchestration_version,
            current_execution_id = excluded.current_execution_id,
            status = excluded.status, output = excluded.output, error = excluded.error,
            custom_status = excluded.custom_status,
            pinned_engine_version = excluded.pinned_engine_version,
            pinned_major = excluded.pinned_major, pinned_minor = excluded.pinned_minor,
            pinned_patch = excluded.pinned_patch, updated_at = excluded.updated_at;
        UPDATE executions SET status = t.status, output = t.output,
            event_count = event_count + coalesce(cardinality(t.ev_ids), 0),
            completed_at = CASE WHEN t.status = 'Running' THEN NULL ELSE v_now END
        WHERE instance_id = v_id AND execution_id = t.execution_id;
    END IF;
    IF cardinality(t.ev_ids) > 0 THEN
        INSERT INTO history (instance_id, execution_id, event_id, data)
        SELECT v_id, t.execution_id, e.id, e.data FROM unnest(t.ev_ids, t.ev_data) AS e(id, data);
    END IF;
    IF cardinality(t.w_inst) > 0 THEN
        INSERT INTO worker_queue (instance_id, execution_id, event_id, session_id, data,
                                  visible_at, created_at)
        SELECT w.i, w.x, w.e, w.s, w.d, v_now, v_now
        FROM unnest(t.w_inst, t.w_exec, t.w_event, t.w_session, t.w_data) AS w(i, x, e, s, d);
        PERFORM pg_notify(durox_channel(), 'a' || cardinality(t.w_inst));
    END IF;
    IF cardinality(t.q_inst) > 0 THEN
        INSERT INTO orchestrator_queue (instance_id, kind, data, visible_at, created_at)
        SELECT m.i, m.k, m.d, coalesce(m.v, v_now), v_now
        FROM unnest(t.q_inst, t.q_kind, t.q_data, t.q_visible) AS m(i, k, d, v);
        SELECT count(*) INTO v_n FROM unnest(t.q_visible) AS v(at) WHERE coalesce(v.at, v_now) <= v_now;
        IF v_n > 0 THEN
            PERFORM pg_notify(durox_channel(), 'o' || v_n);
        END IF;
        FOR v_due IN SELECT DISTINCT v.at FROM unnest(t.q_visible) AS v(at) WHERE v.at > v_now
        LOOP
            PERFORM pg_notify(durox_channel(), 'o@' || v_due);
        END LOOP;
    END IF;
    IF cardinality(t.cancelled) > 0 THEN
        DELETE FROM worker_queue
        WHERE instance_id = v_id AND execution_id = t.execution_id
          AND event_id = ANY (t.cancelled);
    END IF;
    DELETE FROM instance_locks WHERE lock_token = t.token;
    -- Messages that arrived while the instance was locked are ready for the next fetch now.
    IF EXISTS (SELECT 1 FROM orchestrator_queue q
               WHERE q.instance_id = v_id AND q.visible_at <= v_now) THEN
        PERFORM pg_notify(durox_channel(), 'o1');
    END IF;
END $$;

CREATE FUNCTION durox_ack_orchestration_batch_v2(p_turns durox_turn[], p_now bigint)
RETURNS text[]
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    t durox_turn;
    v_out text[] := '{}';
BEGIN
    -- Each turn in its own subtransaction: one that fails (a lapsed lease) is rolled back
    -- alone and reported as 'SQLSTATE message'; NULL means applied.
    FOREACH t IN ARRAY coalesce(p_turns, '{}') LOOP
        BEGIN
            PERFORM durox_ack_orchestration_v2(t, p_now);
            v_out := array_append(v_out, NULL::text);
        EXCEPTION WHEN OTHERS THEN
            v_out := array_append(v_out, SQLSTATE || ' ' || SQLERRM);
        END;
    END LOOP;
    RETURN v_out;
END $$;

-- ---- schema version 7: turn tokens, for the instance cache ----------------------------
-- The fetch and acknowledgement functions above stay for workers of the previous release;
-- this release calls the ones below.

CREATE FUNCTION durox_fetch_orchestration_v2(
    p_now bigint, p_lock_ms bigint, p_token text, p_lo integer[], p_hi integer[],
    p_mine text, p_skip boolean, p_sticky_ms bigint
) RETURNS TABLE (
    instance_id text, execution_id bigint, orchestration_name text,
    orchestration_version text, status text, pinned_engine_version text,
    history_length bigint, attempt_count integer, messages text[], history text[],
    locked_until bigint, turn_token text, history_skipped boolean
)
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
#variable_conflict use_column
DECLARE
    v_now bigint := coalesce(p_now, durox_now_ms());
    v_id text;
    v_q record;
    v_tried text[] := '{}';
    v_until bigint;
    v_msgs text[];
    v_attempts integer;
    v_inst instances%ROWTYPE;
BEGIN
    -- Walk the queue oldest first along its primary key and stop at the first instance that
    -- can be taken, so the cost follows the rows skipped, not the backlog (a join over the whole
    -- queue and a sort cost O(queue) per fetch). Locks and pins are checked per instance.
    FOR v_q IN
        SELECT q.instance_id, q.visible_at FROM orchestrator_queue q
        WHERE q.visible_at <= v_now
        ORDER BY q.id
    LOOP
        v_id := v_q.instance_id;
        CONTINUE WHEN v_id = ANY (v_tried);
        EXIT WHEN cardinality(v_tried) >= 1024;  -- bounded even when nearly all is locked
        v_tried := v_tried || v_id;
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM instance_locks l
            WHERE l.instance_id = v_id AND l.locked_until > v_now);
        CONTINUE WHEN p_lo IS NOT NULL AND EXISTS (
            SELECT 1 FROM instances i
            WHERE i.instance_id = v_id AND i.pinned_major IS NOT NULL AND NOT (
                (i.pinned_major, i.pinned_minor, i.pinned_patch) >= (p_lo[1], p_lo[2], p_lo[3])
                AND (i.pinned_major, i.pinned_minor, i.pinned_patch)
                    <= (p_hi[1], p_hi[2], p_hi[3])));
        -- Sticky: an instance whose last turn another worker ran and kept the state of is
        -- left to that worker while its message is younger than the window (after that,
        -- anyone takes it, so a dead or busy worker delays it by the window at most).
        CONTINUE WHEN p_sticky_ms > 0 AND v_q.visible_at > v_now - p_sticky_ms AND EXISTS (
            SELECT 1 FROM instances i
            WHERE i.instance_id = v_id AND i.turn_token IS NOT NULL
              AND NOT starts_with(i.turn_token, coalesce(p_mine, '')));
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(durox_lock_key('instance', v_id));
        v_until := coalesce(p_now, durox_now_ms()) + p_lock_ms;
        INSERT INTO instance_locks AS l (instance_id, lock_token, locked_until)
        VALUES (v_id, p_token, v_until)
        ON CONFLICT ON CONSTRAINT instance_locks_pkey DO UPDATE
            SET lock_token = excluded.lock_token, locked_until = excluded.locked_until
            WHERE l.locked_until <= v_now;
        CONTINUE WHEN NOT FOUND;
        WITH taken AS (
            UPDATE orchestrator_queue q SET lock_token = p_token,
                attempt_count = q.attempt_count + 1
            WHERE q.instance_id = v_id AND q.visible_at <= v_now
            RETURNING q.id, q.data, q.attempt_count
        )
        SELECT array_agg(t.data ORDER BY t.id), max(t.attempt_count)
        INTO v_msgs, v_attempts FROM taken t;
        IF v_msgs IS NULL THEN
            -- Acknowledged by the previous holder in the meantime: nothing left to do here.
            DELETE FROM instance_locks WHERE lock_token = p_token;
            CONTINUE;
        END IF;
        SELECT * INTO v_inst FROM instances i WHERE i.instance_id = v_id;
        instance_id := v_id;
        messages := v_msgs;
        attempt_count := v_attempts;
        locked_until := v_until;
        history := '{}';
        turn_token := NULL;
        history_skipped := false;
        IF FOUND THEN
            execution_id := v_inst.current_execution_id;
            orchestration_name := v_inst.orchestration_name;
            orchestration_version := v_inst.orchestration_version;
            status := v_inst.status;
            pinned_engine_version := v_inst.pinned_engine_version;
            turn_token := v_inst.turn_token;
            -- The highest event id, read from the rows themselves (never from a counter).
            SELECT coalesce(max(h.event_id), 0) INTO history_length FROM history h
            WHERE h.instance_id = v_id AND h.execution_id = v_inst.current_execution_id;
            -- The last turn was one of the caller's (its lock token bears the caller's prefix),
            -- which may keep the state that turn left: the history is left out. The caller
            -- reads it after all if it kept nothing current.
            history_skipped := v_inst.status = 'Running' AND p_skip AND p_mine IS NOT NULL
                AND starts_with(coalesce(v_inst.turn_token, ''), p_mine);
            IF v_inst.status = 'Running' AND NOT history_skipped THEN
                SELECT coalesce(array_agg(h.data ORDER BY h.event_id), '{}') INTO history
                FROM history h
                WHERE h.instance_id = v_id AND h.execution_id = v_inst.current_execution_id;
            END IF;
        ELSE
            execution_id := 0;
            history_length := 0;
        END IF;
        RETURN NEXT;
        RETURN;
    END LOOP;
END $$;

CREATE FUNCTION durox_fetch_orchestration_batch_v2(
    p_now bigint, p_lock_ms bigint, p_tokens text[], p_lo integer[], p_hi integer[],
    p_mine text, p_skip boolean, p_sticky_ms bigint
) RETURNS TABLE (
    lock_token text, instance_id text, execution_id bigint, orchestration_name text,
    orchestration_version text, status text, pinned_engine_version text,
    history_length bigint, attempt_count integer, messages text[], history text[],
    locked_until bigint, turn_token text, history_skipped boolean
)
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    v_row record;
BEGIN
    -- One token per instance wanted; an instance locked earlier in the batch is skipped by
    -- the next fetch like any other locked instance.
    FOR i IN 1..coalesce(cardinality(p_tokens), 0) LOOP
        SELECT * INTO v_row FROM durox_fetch_orchestration_v2(
            p_now, p_lock_ms, p_tokens[i], p_lo, p_hi, p_mine, p_skip, p_sticky_ms);
        EXIT WHEN NOT FOUND OR v_row.instance_id IS NULL;
        lock_token := p_tokens[i];
        instance_id := v_row.instance_id;
        execution_id := v_row.execution_id;
        orchestration_name := v_row.orchestration_name;
        orchestration_version := v_row.orchestration_version;
        status := v_row.status;
        pinned_engine_version := v_row.pinned_engine_version;
        history_length := v_row.history_length;
        attempt_count := v_row.attempt_count;
        messages := v_row.messages;
        history := v_row.history;
        locked_until := v_row.locked_until;
        turn_token := v_row.turn_token;
        history_skipped := v_row.history_skipped;
        RETURN NEXT;
    END LOOP;
END $$;

CREATE FUNCTION durox_ack_orchestration_v3(p_turn durox_turn, p_keeps boolean, p_now bigint)
RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    t durox_turn := p_turn;
    v_now bigint := coalesce(p_now, durox_now_ms());
    v_id text;
    v_until bigint;
    v_due bigint;
    v_n integer;
BEGIN
    SELECT l.instance_id, l.locked_until INTO v_id, v_until
    FROM instance_locks l WHERE l.lock_token = t.token FOR UPDATE;
    IF NOT FOUND OR v_until < v_now THEN
        RAISE EXCEPTION 'orchestration lock expired or was taken before the ack'
            USING ERRCODE = 'DX001';
    END IF;
    DELETE FROM orchestrator_queue WHERE lock_token = t.token;
    IF t.has_update THEN
        IF t.started THEN
            INSERT INTO executions (instance_id, execution_id, orchestration_version, status,
                                    engine_version, started_at)
            VALUES (v_id, t.execution_id, t.version, 'Running', t.engine, v_now);
        END IF;
        INSERT INTO instances AS i (instance_id, orchestration_name, orchestration_version,
            current_execution_id, status, output, error, custom_status, parent_instance_id,
            pinned_engine_version, pinned_major, pinned_minor, pinned_patch, created_at,
            updated_at, turn_token)
        VALUES (v_id, t.name, t.version, t.execution_id, t.status, t.output, t.error, t.custom,
            t.parent, t.engine, t.major, t.minor, t.patch, v_now, v_now,
            CASE WHEN p_keeps THEN t.token END)
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
        UPDATE executions SET status = t.status, output = t.output,
            event_count = event_count + coalesce(cardinality(t.ev_ids), 0),
            completed_at = CASE WHEN t.status = 'Running' THEN NULL ELSE v_now END
        WHERE instance_id = v_id AND execution_id = t.execution_id;
    ELSE
        UPDATE instances SET turn_token = CASE WHEN p_keeps THEN t.token END
        WHERE instance_id = v_id;
    END IF;
    IF cardinality(t.ev_ids) > 0 THEN
        INSERT INTO history (instance_id, execution_id, event_id, data)
        SELECT v_id, t.execution_id, e.id, e.data FROM unnest(t.ev_ids, t.ev_data) AS e(id, data);
    END IF;
    IF cardinality(t.w_inst) > 0 THEN
        INSERT INTO worker_queue (instance_id, execution_id, event_id, session_id, data,
                                  visible_at, created_at)
        SELECT w.i, w.x, w.e, w.s, w.d, v_now, v_now
        FROM unnest(t.w_inst, t.w_exec, t.w_event, t.w_session, t.w_data) AS w(i, x, e, s, d);
        PERFORM pg_notify(durox_channel(), 'a' || cardinality(t.w_inst));
    END IF;
    IF cardinality(t.q_inst) > 0 THEN
        INSERT INTO orchestrator_queue (instance_id, kind, data, visible_at, created_at)
        SELECT m.i, m.k, m.d, coalesce(m.v, v_now), v_now
        FROM unnest(t.q_inst, t.q_kind, t.q_data, t.q_visible) AS m(i, k, d, v);
        SELECT count(*) INTO v_n FROM unnest(t.q_visible) AS v(at) WHERE coalesce(v.at, v_now) <= v_now;
        IF v_n > 0 THEN
            PERFORM pg_notify(durox_channel(), 'o' || v_n);
        END IF;
        FOR v_due IN SELECT DISTINCT v.at FROM unnest(t.q_visible) AS v(at) WHERE v.at > v_now
        LOOP
            PERFORM pg_notify(durox_channel(), 'o@' || v_due);
        END LOOP;
    END IF;
    IF cardinality(t.cancelled) > 0 THEN
        DELETE FROM worker_queue
        WHERE instance_id = v_id AND execution_id = t.execution_id
          AND event_id = ANY (t.cancelled);
    END IF;
    DELETE FROM instance_locks WHERE lock_token = t.token;
    -- Messages that arrived while the instance was locked are ready for the next fetch now.
    IF EXISTS (SELECT 1 FROM orchestrator_queue q
               WHERE q.instance_id = v_id AND q.visible_at <= v_now) THEN
        PERFORM pg_notify(durox_channel(), 'o1');
    END IF;
END $$;

CREATE FUNCTION durox_ack_orchestration_batch_v3(
    p_turns durox_turn[], p_keeps boolean[], p_now bigint
)
RETURNS text[]
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    t durox_turn;
    v_i integer := 0;
    v_out text[] := '{}';
BEGIN
    -- Each turn in its own subtransaction: one that fails (a lapsed lease) is rolled back
    -- alone and reported as 'SQLSTATE message'; NULL means applied.
    FOREACH t IN ARRAY coalesce(p_turns, '{}') LOOP
        v_i := v_i + 1;
        BEGIN
            PERFORM durox_ack_orchestration_v3(t, coalesce(p_keeps[v_i], false), p_now);
            v_out := array_append(v_out, NULL::text);
        EXCEPTION WHEN OTHERS THEN
            v_out := array_append(v_out, SQLSTATE || ' ' || SQLERRM);
        END;
    END LOOP;
    RETURN v_out;
END $$;

-- ---- endings (migration 0008) ----------------------------------------------------------

CREATE FUNCTION durox_notify_ended() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM pg_notify(
        durox_channel() || '.ended',
        CASE WHEN octet_length(NEW.instance_id) <= 7000 THEN NEW.instance_id ELSE '' END
    );
    RETURN NULL;
END $$;

CREATE TRIGGER instances_ended_on_insert AFTER INSERT ON instances
    FOR EACH ROW WHEN (NEW.status IN ('Cancelled', 'Completed', 'Failed'))
    EXECUTE FUNCTION durox_notify_ended();

CREATE TRIGGER instances_ended_on_update AFTER UPDATE OF status ON instances
    FOR EACH ROW WHEN (NEW.status IN ('Cancelled', 'Completed', 'Failed')
                       AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION durox_notify_ended();

-- ---- one walk per batched fetch (migration 0009) ---------------------------------------

CREATE FUNCTION durox_fetch_orchestration_batch_v3(
    p_now bigint, p_lock_ms bigint, p_tokens text[], p_lo integer[], p_hi integer[],
    p_mine text, p_skip boolean, p_sticky_ms bigint
) RETURNS TABLE (
    lock_token text, instance_id text, execution_id bigint, orchestration_name text,
    orchestration_version text, status text, pinned_engine_version text,
    history_length bigint, attempt_count integer, messages text[], history text[],
    locked_until bigint, turn_token text, history_skipped boolean
)
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
#variable_conflict use_column
DECLARE
    v_now bigint := coalesce(p_now, durox_now_ms());
    v_want integer := coalesce(cardinality(p_tokens), 0);
    v_got integer := 0;
    v_token text;
    v_id text;
    v_q record;
    v_tried text[] := '{}';
    v_until bigint;
    v_msgs text[];
    v_attempts integer;
    v_inst instances%ROWTYPE;
BEGIN
    IF v_want = 0 THEN
        RETURN;
    END IF;
    -- Oldest first along the primary key; each instance is considered once, at its oldest
    -- visible message. The walk stops when the batch is full, or after 1,024 instances (so a
    -- queue of nearly all locked instances costs a bounded walk).
    FOR v_q IN
        SELECT q.instance_id, q.visible_at FROM orchestrator_queue q
        WHERE q.visible_at <= v_now
        ORDER BY q.id
    LOOP
        v_id := v_q.instance_id;
        CONTINUE WHEN v_id = ANY (v_tried);
        EXIT WHEN cardinality(v_tried) >= 1024;
        v_tried := v_tried || v_id;
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM instance_locks l
            WHERE l.instance_id = v_id AND l.locked_until > v_now);
        CONTINUE WHEN p_lo IS NOT NULL AND EXISTS (
            SELECT 1 FROM instances i
            WHERE i.instance_id = v_id AND i.pinned_major IS NOT NULL AND NOT (
                (i.pinned_major, i.pinned_minor, i.pinned_patch) >= (p_lo[1], p_lo[2], p_lo[3])
                AND (i.pinned_major, i.pinned_minor, i.pinned_patch)
                    <= (p_hi[1], p_hi[2], p_hi[3])));
        -- Sticky, as in version 7: left to the worker that kept it while its message is
        -- younger than the window.
        CONTINUE WHEN p_sticky_ms > 0 AND v_q.visible_at > v_now - p_sticky_ms AND EXISTS (
            SELECT 1 FROM instances i
            WHERE i.instance_id = v_id AND i.turn_token IS NOT NULL
              AND NOT starts_with(i.turn_token, coalesce(p_mine, '')));
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(durox_lock_key('instance', v_id));
        v_token := p_tokens[v_got + 1];
        v_until := coalesce(p_now, durox_now_ms()) + p_lock_ms;
        INSERT INTO instance_locks AS l (instance_id, lock_token, locked_until)
        VALUES (v_id, v_token, v_until)
        ON CONFLICT ON CONSTRAINT instance_locks_pkey DO UPDATE
            SET lock_token = excluded.lock_token, locked_until = excluded.locked_until
            WHERE l.locked_until <= v_now;
        CONTINUE WHEN NOT FOUND;
        WITH taken AS (
            UPDATE orchestrator_queue q SET lock_token = v_token,
                attempt_count = q.attempt_count + 1
            WHERE q.instance_id = v_id AND q.visible_at <= v_now
            RETURNING q.id, q.data, q.attempt_count
        )
        SELECT array_agg(t.data ORDER BY t.id), max(t.attempt_count)
        INTO v_msgs, v_attempts FROM taken t;
        IF v_msgs IS NULL THEN
            -- Acknowledged by the previous holder in the meantime: its token is free again.
            DELETE FROM instance_locks il WHERE il.lock_token = v_token;
            CONTINUE;
        END IF;
        SELECT * INTO v_inst FROM instances i WHERE i.instance_id = v_id;
        lock_token := v_token;
        instance_id := v_id;
        messages := v_msgs;
        attempt_count := v_attempts;
        locked_until := v_until;
        history := '{}';
        turn_token := NULL;
        history_skipped := false;
        IF FOUND THEN
            execution_id := v_inst.current_execution_id;
            orchestration_name := v_inst.orchestration_name;
            orchestration_version := v_inst.orchestration_version;
            status := v_inst.status;
            pinned_engine_version := v_inst.pinned_engine_version;
            turn_token := v_inst.turn_token;
            SELECT coalesce(max(h.event_id), 0) INTO history_length FROM history h
            WHERE h.instance_id = v_id AND h.execution_id = v_inst.current_execution_id;
            history_skipped := v_inst.status = 'Running' AND p_skip AND p_mine IS NOT NULL
                AND starts_with(coalesce(v_inst.turn_token, ''), p_mine);
            IF v_inst.status = 'Running' AND NOT history_skipped THEN
                SELECT coalesce(array_agg(h.data ORDER BY h.event_id), '{}') INTO history
                FROM history h
                WHERE h.instance_id = v_id AND h.execution_id = v_inst.current_execution_id;
            END IF;
        ELSE
            orchestration_name := NULL;
            orchestration_version := NULL;
            status := NULL;
            pinned_engine_version := NULL;
            execution_id := 0;
            history_length := 0;
        END IF;
        RETURN NEXT;
        v_got := v_got + 1;
        EXIT WHEN v_got >= v_want;
    END LOOP;
END $$;
