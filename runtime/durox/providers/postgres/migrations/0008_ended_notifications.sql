-- Schema version 8: an instance that reaches a terminal status (Completed, Failed, Cancelled)
-- is announced on the channel `durox.<schema>.ended`, its id the payload, when the transaction
-- that ended it commits, so a client waiting for it is woken instead of polling
-- (docs/postgres.md, "Waiting for an instance"). A trigger rather than a change to the
-- acknowledgement functions: it fires for every writer, the previous release's functions
-- included, so their endings wake the new release's clients during a rolling upgrade, and
-- no function the previous release calls changes. The previous release does not listen on
-- this channel (its listener hears `durox.<schema>` only), so it is not disturbed.
-- ContinuedAsNew is not terminal and announces nothing. A turn of a batch that is rolled back
-- (its subtransaction) takes its notification with it. An instance id over 7,000 bytes (the
-- payload limit is 8,000) is announced with an empty payload: every waiter looks.

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
