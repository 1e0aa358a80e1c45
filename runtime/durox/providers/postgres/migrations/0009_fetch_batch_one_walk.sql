-- Schema version 9: a batched orchestration fetch walks the queue once. The batch of version 7
-- called the single fetch once per instance wanted, and each call walked the queue from its
-- oldest visible message again: past the messages of every instance the earlier calls of the
-- same batch had just locked, and past those of every turn running elsewhere, each checked
-- anew. At 16 turns in flight that walk was two thirds of the server's time per activity
-- (bench/results/profile-2026-11-30.md). This one keeps one list of the instances it has
-- looked at for the whole batch, so each queued message is read once per batch. What it takes
-- and what it returns are as before, in the same order. The function it replaces stays for
-- workers of the previous release.

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
