-- Delivery: copies of recordings sent to a tenant's own file server (SFTP, FTPS) or CRM (webhook), exactly once
-- across crashes and nodes, and notices to the same recipients when a delivered recording is erased, restricted
-- or unrestricted (GDPR Art. 19). Plain FTP is not a kind: credentials and audio in clear break Art. 32.

-- A tenant's destinations. `settings` holds nothing secret (host, port, username, remote_dir, name_template,
-- the pinned host key, format, sidecar, url ...); the password, private key or webhook secret is stored only
-- encrypted under a data key wrapped by the tenant's key (storage.delivery_secrets), never in clear.
CREATE TABLE delivery_targets (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind text NOT NULL CONSTRAINT delivery_targets_kind_known CHECK (kind IN ('sftp', 'ftps', 'webhook')),
    name text NOT NULL CONSTRAINT delivery_targets_name_format CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    enabled boolean NOT NULL DEFAULT true,
    settings jsonb NOT NULL
        CONSTRAINT delivery_targets_settings_object CHECK (jsonb_typeof(settings) = 'object')
        CONSTRAINT delivery_targets_no_plain_ftp CHECK (coalesce(settings ->> 'url', '') !~* '^ftp://'),
    secret_ref text,  -- the tenant key that wrapped the secret's data key: "<provider>:<key id>"
    secret_wrapped bytea,  -- wrapped data key, nonce, and the secret encrypted under the data key
    -- {"interval_seconds": N} or {"daily": {"start": "HH:MM", "end": "HH:MM", "zone": "Europe/Budapest"}}
    schedule jsonb NOT NULL CONSTRAINT delivery_targets_schedule_object CHECK (jsonb_typeof(schedule) = 'object'),
    -- {"numbers": [E.164 keys], "direction": null | "inbound" | "outbound", "classes": [codes]}; empty: all
    filter jsonb NOT NULL DEFAULT '{}' CONSTRAINT delivery_targets_filter_object CHECK (jsonb_typeof(filter) = 'object'),
    delete_after_delivery boolean NOT NULL DEFAULT false,
    max_attempts integer NOT NULL DEFAULT 12
        CONSTRAINT delivery_targets_max_attempts_range CHECK (max_attempts BETWEEN 1 AND 100),
    -- Recordings finished from this time on are sent (the creation time; earlier only by a backfill).
    deliver_since timestamptz NOT NULL,
    last_enqueued_at timestamptz,  -- when its schedule last put recordings in the outbox
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT delivery_targets_name_unique UNIQUE (tenant_id, name),
    CONSTRAINT delivery_targets_secret_whole CHECK ((secret_ref IS NULL) = (secret_wrapped IS NULL))
);

-- The outbox: one row per recording (or notice) and target, claimed by workers on any node with
-- SELECT ... FOR UPDATE SKIP LOCKED and then held by a lease while the upload runs outside any transaction.
-- A lease that runs out (the node died) makes the row claimable again; the transport finds what a dead attempt
-- left on the remote side (storage.delivery_outbox, siprec_server.delivery).
CREATE TABLE deliveries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target_id uuid NOT NULL REFERENCES delivery_targets (id) ON DELETE CASCADE,
    tenant_id uuid NOT NULL,
    -- No foreign key: the log of where a copy went, and the erasure notice, outlive the recording.
    recording_id uuid NOT NULL,
    reference text NOT NULL,
    kind text NOT NULL
        CONSTRAINT deliveries_kind_known CHECK (kind IN ('recording', 'erased', 'restricted', 'unrestricted')),
    status text NOT NULL DEFAULT 'pending'
        CONSTRAINT deliveries_status_known CHECK (status IN ('pending', 'sending', 'delivered', 'dead')),
    attempts integer NOT NULL DEFAULT 0 CONSTRAINT deliveries_attempts_not_negative CHECK (attempts >= 0),
    -- Attempts made before the last replay (or re-armed notice): the target's max_attempts counts from here.
    attempt_floor integer NOT NULL DEFAULT 0
        CONSTRAINT deliveries_attempt_floor_range CHECK (attempt_floor BETWEEN 0 AND attempts),
    next_attempt_at timestamptz NOT NULL,
    lease_owner text,
    lease_until timestamptz,
    idempotency_key text NOT NULL CONSTRAINT deliveries_idempotency_key_unique UNIQUE,
    remote_path text,  -- where the copy lies (a notice: the copy it is about, until it is written)
    bytes bigint CONSTRAINT deliveries_bytes_not_negative CHECK (bytes >= 0),
    sha256 text CONSTRAINT deliveries_sha256_hex CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    last_error text,
    event_at timestamptz,  -- a notice: when the recording was erased, restricted or unrestricted
    reason text,  -- a notice: why (the disposal's reason, the hold)
    -- Delete-after-delivery: what became of our own copy once this delivery was confirmed ('erasing' while
    -- the erasure runs, so that it sends no erasure notice: the recipient's copy is now the one that counts).
    copy_state text CONSTRAINT deliveries_copy_state_known CHECK (copy_state IN ('erasing', 'erased', 'kept')),
    copy_note text,
    created_at timestamptz NOT NULL,
    delivered_at timestamptz,
    CONSTRAINT deliveries_once UNIQUE (target_id, recording_id, kind),
    CONSTRAINT deliveries_lease_while_sending
        CHECK ((status = 'sending') = (lease_owner IS NOT NULL AND lease_until IS NOT NULL)),
    CONSTRAINT deliveries_delivered_when CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);

-- The claim query: unfinished rows in the order they become due.
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at, id) WHERE status IN ('pending', 'sending');
CREATE INDEX deliveries_recording_idx ON deliveries (recording_id, target_id);
CREATE INDEX deliveries_target_idx ON deliveries (target_id, id);
CREATE INDEX deliveries_dead_idx ON deliveries (id) WHERE status = 'dead';
-- Delivered copies whose own copy still waits to be erased (delete-after-delivery targets).
CREATE INDEX deliveries_copy_open_idx ON deliveries (id)
    WHERE kind = 'recording' AND status = 'delivered' AND (copy_state IS NULL OR copy_state = 'erasing');

-- The delivery log: every attempt, with what it sent where. An attempt without an end is running, or its node
-- died (it is closed as 'abandoned' when the row is claimed again).
CREATE TABLE delivery_attempts (
    delivery_id bigint NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt integer NOT NULL CONSTRAINT delivery_attempts_positive CHECK (attempt > 0),
    node text NOT NULL,
    started_at timestamptz NOT NULL,
    ended_at timestamptz,
    result text CONSTRAINT delivery_attempts_result_known
        CHECK (result IN ('delivered', 'retry', 'dead', 'abandoned')),
    error text,
    remote_path text,
    bytes bigint,
    sha256 text CONSTRAINT delivery_attempts_sha256_hex CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    PRIMARY KEY (delivery_id, attempt),
    CONSTRAINT delivery_attempts_ended_with_result CHECK ((ended_at IS NULL) = (result IS NULL))
);

-- Which lifecycle_outbox events became notices. Identity values become visible out of order (a transaction
-- holding a lower id may commit after a higher one was read), so events above the watermark are remembered one
-- by one; the watermark only moves over events read at least ten minutes ago, and their rows go.
CREATE TABLE delivery_notice_events (
    event_id bigint PRIMARY KEY,
    seen_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE delivery_notice_cursor (
    only_row boolean PRIMARY KEY DEFAULT true CONSTRAINT delivery_notice_cursor_one_row CHECK (only_row),
    watermark bigint NOT NULL DEFAULT 0  -- every lifecycle_outbox event up to this id is handled
);

INSERT INTO delivery_notice_cursor DEFAULT VALUES;
