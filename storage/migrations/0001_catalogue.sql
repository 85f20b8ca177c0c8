-- The recording catalogue: one row per SIPREC recording session (RFC 7866), written when the INVITE is
-- accepted (status 'recording') and completed when the call ends.
-- Later migrations add tenancy, legal basis, purpose, retention class and deadline, legal holds and erasure
-- as new columns and tables keyed by recordings.id; nothing here needs to change for them.

CREATE TABLE recordings (
    id uuid PRIMARY KEY,
    -- Short code quoted to people (data-subject requests, support): HT-XXXX-XXXX in Crockford base32.
    reference text NOT NULL UNIQUE
        CONSTRAINT recordings_reference_format CHECK (reference ~ '^HT-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$'),
    call_id text NOT NULL,
    session_ids text[] NOT NULL DEFAULT '{}',  -- RFC 7865 <session session_id> values
    group_ids text[] NOT NULL DEFAULT '{}',  -- RFC 7865 <group group_id> values
    status text NOT NULL
        CONSTRAINT recordings_status_known
        CHECK (status IN ('recording', 'complete', 'no_media', 'one_way', 'failed', 'interrupted')),
    started_at timestamptz NOT NULL,  -- when the INVITE was accepted
    media_started_at timestamptz,  -- first RTP packet
    ended_at timestamptz,
    duration_seconds double precision CONSTRAINT recordings_duration_positive CHECK (duration_seconds >= 0),
    -- [{aor, name, role: caller|callee|other, participant_id}]
    participants jsonb NOT NULL DEFAULT '[]'
        CONSTRAINT recordings_participants_list CHECK (jsonb_typeof(participants) = 'array'),
    -- [{label, codec, payload_type, ssrc, channel, packets, lost, late, duplicated, telephone_events,
    --   first_packet_at, last_packet_at, remote}]
    streams jsonb NOT NULL DEFAULT '[]'
        CONSTRAINT recordings_streams_list CHECK (jsonb_typeof(streams) = 'array'),
    channels integer CONSTRAINT recordings_channels_positive CHECK (channels > 0),
    sample_rate integer CONSTRAINT recordings_sample_rate_positive CHECK (sample_rate > 0),
    file_path text,
    format text,
    size_bytes bigint CONSTRAINT recordings_size_not_negative CHECK (size_bytes >= 0),
    sha256 text CONSTRAINT recordings_sha256_hex CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    raw_metadata text,  -- the first recording metadata XML exactly as received
    -- later metadata documents (re-INVITE, UPDATE), oldest first: [{received_at, xml}]
    metadata_history jsonb NOT NULL DEFAULT '[]'
        CONSTRAINT recordings_metadata_history_list CHECK (jsonb_typeof(metadata_history) = 'array'),
    source_address text,  -- transport:host:port the INVITE came from
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Listing newest first, and paging back in time.
CREATE INDEX recordings_started_at_idx ON recordings (started_at DESC, id DESC);
CREATE INDEX recordings_call_id_idx ON recordings (call_id);
-- Crash recovery looks for rows still recording; they are few, so the index stays tiny.
CREATE INDEX recordings_unfinished_idx ON recordings (started_at) WHERE status = 'recording';

CREATE FUNCTION recordings_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER recordings_touch_updated_at
BEFORE UPDATE ON recordings
FOR EACH ROW EXECUTE FUNCTION recordings_touch_updated_at();
