-- Schema version 2: orchestration fetch walks the queue in order instead of sorting all of it.

CREATE OR REPLACE FUNCTION durox_fetch_orchestration(
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

