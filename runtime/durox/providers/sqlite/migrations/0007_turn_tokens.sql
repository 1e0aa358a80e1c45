-- Schema version 7: each instance records which turn wrote it last (the lock token of that
-- turn's fetch, unique to it), and a fetch hands it back. A worker that kept an instance's
-- live state after its own turn may use that state only while this token is still its own:
-- the proof that no other turn (another worker's, a poison, a re-created instance) has
-- written the instance since. NULL: written by a release that did not record tokens.
ALTER TABLE instances ADD COLUMN turn_token TEXT;
