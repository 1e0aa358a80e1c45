-- Schema version 4: orchestration turns are fetched and acknowledged in batches.

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
