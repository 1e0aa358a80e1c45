-- Schema version 3: activities are fetched and acknowledged in batches.

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
