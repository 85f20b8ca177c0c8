-- Recordings in an S3-compatible object store. A node writes a recording to its local disk during the call; when
-- an object store is configured, the finished recording waits in status 'uploading' (its outcome in
-- pending_status) until the store has confirmed the object, and only then takes its outcome, names the object
-- (object_key) and loses its local copy: a recording is never 'complete' on a copy the store does not hold.
ALTER TABLE recordings ADD COLUMN object_key text, ADD COLUMN pending_status text;
ALTER TABLE recordings DROP CONSTRAINT recordings_status_known;
ALTER TABLE recordings ADD CONSTRAINT recordings_status_known
    CHECK (status IN ('recording', 'uploading', 'complete', 'no_media', 'one_way', 'failed', 'interrupted'));
ALTER TABLE recordings ADD CONSTRAINT recordings_pending_status
    CHECK ((status = 'uploading') = (pending_status IS NOT NULL)
           AND (pending_status IS NULL
                OR pending_status IN ('complete', 'no_media', 'one_way', 'failed', 'interrupted')));
CREATE INDEX recordings_uploading_by_node ON recordings (node) WHERE status = 'uploading';

ALTER TABLE renditions ADD COLUMN object_key text;

-- Objects to delete once their recording is gone. A disposal destroys the data key, deletes the row and queues
-- its objects in one transaction; the objects themselves are deleted after that commit (the key is already gone,
-- so what is left is unreadable), retried until the store confirms.
CREATE TABLE object_deletions (
    object_key text PRIMARY KEY,
    queued_at timestamptz NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    last_error text
);
