-- SIPREC interop (RFC 7866 §6.1, §8, RFC 7865 §6): conversations stitched from transfer and park segments,
-- duplicate recordings of one communication session, pause intervals, and the normalised call facts
-- (calling/called number, direction, tenant hint, each with the metadata field that said so).

ALTER TABLE recordings
    -- Recordings whose metadata shares a group id (transfer, park) or a session id with an earlier one belong
    -- to that one's conversation; a recording that starts one has its own id here.
    ADD COLUMN conversation_id uuid,
    -- The earlier recording of the same communication session (same RFC 7865 session id): a second SRS, or a
    -- retried fork. Linked, not silently doubled.
    ADD COLUMN duplicate_of uuid REFERENCES recordings (id) ON DELETE SET NULL,
    -- [{start, end}] seconds from the start of the audio; end null while a pause is open
    ADD COLUMN pauses jsonb NOT NULL DEFAULT '[]'
        CONSTRAINT recordings_pauses_list CHECK (jsonb_typeof(pauses) = 'array'),
    -- {"calling_number": {"value", "raw", "source"}, "called_number": …, "direction": …, "tenant_hint": …,
    --  "dialect": {"namespace", "root", "vendors"}}
    ADD COLUMN call_facts jsonb NOT NULL DEFAULT '{}'
        CONSTRAINT recordings_call_facts_object CHECK (jsonb_typeof(call_facts) = 'object');

UPDATE recordings SET conversation_id = id WHERE conversation_id IS NULL;
ALTER TABLE recordings ALTER COLUMN conversation_id SET NOT NULL;

-- A recording that joins no earlier conversation starts its own.
CREATE FUNCTION recordings_default_conversation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.conversation_id := COALESCE(NEW.conversation_id, NEW.id);
    RETURN NEW;
END
$$;

CREATE TRIGGER recordings_default_conversation
BEFORE INSERT ON recordings
FOR EACH ROW EXECUTE FUNCTION recordings_default_conversation();

CREATE INDEX recordings_conversation_idx ON recordings (conversation_id, started_at);
CREATE INDEX recordings_session_ids_idx ON recordings USING gin (session_ids);
CREATE INDEX recordings_group_ids_idx ON recordings USING gin (group_ids);
