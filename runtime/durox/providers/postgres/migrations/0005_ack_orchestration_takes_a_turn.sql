-- Schema version 5: a turn is acknowledged as one `durox_turn` value, not 28 parameters.
-- The functions it replaces (durox_ack_orchestration, durox_ack_orchestration_batch) stay:
-- workers of the previous release call them until they are gone (docs/postgres.md).

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
