-- Schema version 7: each instance records which turn wrote it last (the lock token of that
-- turn's fetch, unique to it), and a fetch hands it back. A worker that kept an instance's
-- live state after its own turn uses that state only while this token is still its own: the
-- proof that no other turn (another worker's, a poison, a re-created instance) has written
-- the instance since. A fetch told the caller's token prefix leaves out the history of an
-- instance whose last turn was the caller's. The functions these replace
-- (durox_fetch_orchestration, durox_fetch_orchestration_batch, durox_ack_orchestration_v2,
-- durox_ack_orchestration_batch_v2) stay for workers of the previous release; their acks
-- leave the token as it was, which is safe: a turn that appends events changes the history
-- length the cache checks too, and a re-created instance starts with no token.

ALTER TABLE instances ADD COLUMN turn_token text;

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
