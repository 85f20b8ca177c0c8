-- Renditions: a recording's audio in another format (WAV, Ogg/Opus, MP3), made from the FLAC master after the
-- call by a background pool. One row per recording and format doubles as the durable job: 'pending' until a
-- node has encoded it, then 'done' (file, size, SHA-256) or 'failed' (error) after the last attempt.
-- A node claims a pending row with SELECT ... FOR UPDATE SKIP LOCKED and holds the row lock while it encodes,
-- so two nodes never encode the same rendition, and a node that dies mid-encode leaves it pending.

CREATE TABLE renditions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- No foreign key: one would stop `TRUNCATE recordings` (test fixtures, operators) without CASCADE. Rows are
    -- only inserted for an existing recording (storage.renditions), jobs are only claimed joined to theirs,
    -- and whatever removes a recording removes its renditions' rows and files with it.
    recording_id uuid NOT NULL,
    format text NOT NULL CONSTRAINT renditions_format_known CHECK (format IN ('wav', 'opus', 'mp3')),
    status text NOT NULL DEFAULT 'pending'
        CONSTRAINT renditions_status_known CHECK (status IN ('pending', 'done', 'failed')),
    file_path text,
    size_bytes bigint CONSTRAINT renditions_size_not_negative CHECK (size_bytes >= 0),
    sha256 text CONSTRAINT renditions_sha256_hex CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    error text,  -- why the last attempt failed
    attempts integer NOT NULL DEFAULT 0 CONSTRAINT renditions_attempts_not_negative CHECK (attempts >= 0),
    -- recording.keep_master = false: once done, the recording points at this file and the master is removed
    replaces_master boolean NOT NULL DEFAULT false,
    master_path text,  -- the master this rendition replaced, until it is removed from disk
    master_removed_at timestamptz,
    not_before timestamptz NOT NULL DEFAULT now(),  -- retry back-off: not claimed before this time
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    CONSTRAINT renditions_one_per_format UNIQUE (recording_id, format),
    CONSTRAINT renditions_done_has_file CHECK (
        status <> 'done' OR (file_path IS NOT NULL AND size_bytes IS NOT NULL AND sha256 IS NOT NULL)
    )
);

-- The job queue: pending rows in the order they become due. Few at any time, so the index stays tiny.
CREATE INDEX renditions_pending_idx ON renditions (not_before, id) WHERE status = 'pending';
-- Masters still on disk although a finished rendition replaced them (a crash between commit and unlink).
CREATE INDEX renditions_master_left_idx ON renditions (id)
    WHERE replaces_master AND status = 'done' AND master_removed_at IS NULL;

CREATE TRIGGER renditions_touch_updated_at
BEFORE UPDATE ON renditions
FOR EACH ROW EXECUTE FUNCTION recordings_touch_updated_at();
