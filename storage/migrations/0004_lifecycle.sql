-- The GDPR lifecycle (GUIDE §3): tenants and their numbers, recording policies with their legal basis,
-- retention classes, legal holds, consent, access requests, erasure, per-recording keys and the audit trail.
-- Personal data lives in `recordings` (and the tables hanging off it) and is deleted with it; the disposal log
-- and the audit trail keep only identifiers, codes and times.

-- A tenant is a VPBX subscriber: the controller of its calls' recordings (we process them on its behalf).
CREATE TABLE tenants (
    id uuid PRIMARY KEY,
    slug text NOT NULL UNIQUE CONSTRAINT tenants_slug_format CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name text NOT NULL,
    -- Numbers written without a country code (06 1 234 5678) are read in this region.
    region text NOT NULL DEFAULT 'HU' CONSTRAINT tenants_region_format CHECK (region ~ '^[A-Z]{2}$'),
    -- Vendor tenant hints in the recording metadata (BroadWorks enterprise, Cisco/NetSapiens domain, ...) that
    -- name this tenant; compared case-insensitively.
    hints text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER tenants_touch_updated_at
BEFORE UPDATE ON tenants
FOR EACH ROW EXECUTE FUNCTION recordings_touch_updated_at();

-- Numbers a tenant owns: a DID in E.164, a DID range as an E.164 prefix, or a short internal extension.
-- A public number or range belongs to one tenant; extensions repeat across tenants and attribute a call only
-- together with a tenant hint or a source.
CREATE TABLE tenant_numbers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind text NOT NULL CONSTRAINT tenant_numbers_kind_known CHECK (kind IN ('number', 'range', 'extension')),
    value text NOT NULL,
    label text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenant_numbers_value_format CHECK (
        (kind IN ('number', 'range') AND value ~ '^\+[1-9][0-9]{0,14}$')
        OR (kind = 'extension' AND value ~ '^[0-9*#]{1,15}$')
    )
);

CREATE UNIQUE INDEX tenant_numbers_public_unique ON tenant_numbers (kind, value) WHERE kind <> 'extension';
CREATE UNIQUE INDEX tenant_numbers_extension_unique ON tenant_numbers (tenant_id, value) WHERE kind = 'extension';

-- The SBCs or PBXes that fork only this tenant's calls (a dedicated trunk), by source address.
CREATE TABLE tenant_sources (
    network cidr PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Retention classes: presets every tenant may use (tenant_id NULL) and a tenant's own. A statutory class is a
-- legal floor: a recording in it is never kept shorter, and erasure requests are refused (Art. 17(3)(b)).
CREATE TABLE retention_classes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid REFERENCES tenants (id) ON DELETE CASCADE,
    code text NOT NULL CONSTRAINT retention_classes_code_format CHECK (code ~ '^[a-z0-9_]{1,40}$'),
    name text NOT NULL,
    days integer NOT NULL CONSTRAINT retention_classes_days_not_negative CHECK (days >= 0),  -- 0: not kept
    -- A statutory period a supervisor may extend on request (investment services: 5 years, 7 on request).
    max_days integer CONSTRAINT retention_classes_max_days CHECK (max_days IS NULL OR max_days >= days),
    statutory boolean NOT NULL DEFAULT false,
    basis text NOT NULL
        CONSTRAINT retention_classes_basis_known
        CHECK (basis IN ('legal_obligation', 'consent', 'legitimate_interest')),
    source text NOT NULL,  -- the statute or the reasoning, e.g. 'Fgytv. 17/B'
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT retention_classes_code_unique UNIQUE NULLS NOT DISTINCT (tenant_id, code),
    CONSTRAINT retention_classes_statutory_basis CHECK (NOT statutory OR basis = 'legal_obligation')
);

INSERT INTO retention_classes (code, name, days, max_days, statutory, basis, source) VALUES
    ('none', 'Not kept', 0, NULL, false, 'legitimate_interest', 'GDPR Art. 5(1)(c),(e)'),
    ('quality_60d', 'Quality assurance, 60 days', 60, NULL, false, 'legitimate_interest',
        'GDPR Art. 6(1)(f); product default, written balancing test'),
    ('contract_evidence', 'Contract evidence, 5 years', 1826, NULL, false, 'legitimate_interest',
        'GDPR Art. 6(1)(f)/(b); Ptk. 6:22 § limitation period'),
    ('consent', 'Consent, 1 year or until withdrawn', 365, NULL, false, 'consent',
        'GDPR Art. 6(1)(a), 7(3), 17(1)(b)'),
    ('utility_customer_service', 'Utility customer service, 5 years', 1826, NULL, true, 'legal_obligation',
        'Fgytv. 17/B §'),
    ('telecom_fault_reports', 'Telecom fault reports, 1 year', 365, NULL, true, 'legal_obligation',
        'Eht. 141 §'),
    ('financial_complaints', 'Financial service complaints, 5 years', 1826, NULL, true, 'legal_obligation',
        'Hpt. 288 § and sector acts'),
    ('investment_services', 'Investment services, 5 years (7 on request)', 1826, 2557, true, 'legal_obligation',
        'MiFID II Art. 16(7)');

-- What a tenant's users may pick for a call: position 0 is the default, 1-4 the other choices.
CREATE TABLE tenant_retention_options (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    position smallint NOT NULL CONSTRAINT tenant_retention_options_position CHECK (position BETWEEN 0 AND 4),
    retention_class_id bigint NOT NULL REFERENCES retention_classes (id),
    PRIMARY KEY (tenant_id, position),
    CONSTRAINT tenant_retention_options_once UNIQUE (tenant_id, retention_class_id)
);

-- Recording policies, evaluated when the INVITE arrives. Scope: the system (tenant and number NULL: calls no
-- tenant claims), a tenant (number NULL) or one of its numbers. Rows are never edited: a change inserts the
-- next version and marks the old one superseded, and every recording points at the version that decided it.
CREATE TABLE recording_policies (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid REFERENCES tenants (id) ON DELETE CASCADE,
    number_id bigint REFERENCES tenant_numbers (id) ON DELETE CASCADE,
    version integer NOT NULL CONSTRAINT recording_policies_version_positive CHECK (version > 0),
    direction text NOT NULL
        CONSTRAINT recording_policies_direction_known CHECK (direction IN ('inbound', 'outbound', 'both')),
    record boolean NOT NULL,  -- false: this scope is explicitly not recorded
    basis text CONSTRAINT recording_policies_basis_known
        CHECK (basis IN ('legal_obligation', 'consent', 'legitimate_interest')),
    statute text,  -- legal obligation: the law that requires the recording
    purpose text,
    retention_class_id bigint REFERENCES retention_classes (id),
    format text NOT NULL DEFAULT 'flac'
        CONSTRAINT recording_policies_format_known CHECK (format IN ('flac', 'wav', 'opus', 'mp3')),
    -- consent: {"window_seconds", "yes_digit", "no_digit", "stop_digit", "prompt_version"}
    consent jsonb CONSTRAINT recording_policies_consent_object CHECK (consent IS NULL OR jsonb_typeof(consent) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    superseded_at timestamptz,
    CONSTRAINT recording_policies_number_has_tenant CHECK (number_id IS NULL OR tenant_id IS NOT NULL),
    CONSTRAINT recording_policies_recorded_has_basis CHECK (
        NOT record OR (basis IS NOT NULL AND purpose IS NOT NULL AND retention_class_id IS NOT NULL)
    ),
    CONSTRAINT recording_policies_obligation_has_statute CHECK (basis IS DISTINCT FROM 'legal_obligation' OR statute IS NOT NULL),
    CONSTRAINT recording_policies_consent_has_terms CHECK (basis IS DISTINCT FROM 'consent' OR consent IS NOT NULL)
);

CREATE UNIQUE INDEX recording_policies_version_unique
    ON recording_policies (tenant_id, number_id, direction, version) NULLS NOT DISTINCT;
CREATE UNIQUE INDEX recording_policies_current_unique
    ON recording_policies (tenant_id, number_id, direction) NULLS NOT DISTINCT WHERE superseded_at IS NULL;

-- A fresh install records out of the box under the seed product's default (GUIDE §3); the operator may
-- replace it with another version, including one that records nothing.
INSERT INTO recording_policies (version, direction, record, basis, purpose, retention_class_id, format, created_by)
SELECT 1, 'both', true, 'legitimate_interest', 'quality assurance', id, 'flac', 'install'
FROM retention_classes WHERE tenant_id IS NULL AND code = 'quality_60d';

-- What each recording was decided under, and how long it is kept.
ALTER TABLE recordings
    ADD COLUMN tenant_id uuid REFERENCES tenants (id) ON DELETE RESTRICT,  -- NULL: no tenant claimed the call
    ADD COLUMN policy_id bigint REFERENCES recording_policies (id),
    ADD COLUMN basis text CONSTRAINT recordings_basis_known
        CHECK (basis IN ('legal_obligation', 'consent', 'legitimate_interest')),
    ADD COLUMN statute text,
    ADD COLUMN purpose text,
    ADD COLUMN retention_class_id bigint REFERENCES retention_classes (id),
    ADD COLUMN expires_at timestamptz,  -- when the sweeper deletes it (unless held); set at the latest on finish
    ADD COLUMN consent_state text NOT NULL DEFAULT 'not_required'
        CONSTRAINT recordings_consent_state_known
        CHECK (consent_state IN ('not_required', 'pending', 'given', 'refused', 'withdrawn')),
    -- Every party's number in E.164 (+3612345678), or as written when it is not a phone number: what subject
    -- access requests search.
    ADD COLUMN numbers text[] NOT NULL DEFAULT '{}',
    -- NULL: plain file (recordings made before encryption); else the container format of storage.sealed.
    ADD COLUMN encryption text;

CREATE INDEX recordings_numbers_idx ON recordings USING gin (numbers);
CREATE INDEX recordings_expires_idx ON recordings (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX recordings_tenant_started_idx ON recordings (tenant_id, started_at DESC, id DESC);

-- Data keys: one random AES-256 key per recording, stored only wrapped by its tenant's key. Destroying the
-- wrapped key (wrapped NULL, destroyed_at set) makes every copy of the recording unreadable, backups included.
CREATE TABLE recording_keys (
    recording_id uuid PRIMARY KEY,  -- no foreign key: the key is destroyed first, then the recording's row
    tenant_id uuid,
    key_ref text NOT NULL,  -- which key-encryption key wrapped it: "<provider>:<key id>"
    wrapped bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    destroyed_at timestamptz,
    CONSTRAINT recording_keys_destroyed_or_present CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL))
);

-- Restriction / legal hold (Art. 18): one recording, or a number's calls within a time range. An active hold
-- (released_at NULL) stops every deletion path: the trigger below refuses to delete a held recording's row.
-- Release takes two people: one asks, a different one approves.
CREATE TABLE holds (
    id uuid PRIMARY KEY,
    tenant_id uuid REFERENCES tenants (id) ON DELETE RESTRICT,
    recording_id uuid,
    number text,  -- E.164
    from_at timestamptz,
    until_at timestamptz,
    reason text NOT NULL,
    placed_by text NOT NULL,
    placed_at timestamptz NOT NULL DEFAULT now(),
    release_requested_by text,
    release_requested_at timestamptz,
    released_by text,
    released_at timestamptz,
    CONSTRAINT holds_one_target CHECK ((recording_id IS NULL) <> (number IS NULL)),
    CONSTRAINT holds_range_order CHECK (from_at IS NULL OR until_at IS NULL OR from_at < until_at),
    CONSTRAINT holds_two_people CHECK (
        released_at IS NULL
        OR (release_requested_by IS NOT NULL AND released_by IS NOT NULL AND released_by <> release_requested_by)
    )
);

CREATE INDEX holds_active_recording_idx ON holds (recording_id) WHERE released_at IS NULL AND recording_id IS NOT NULL;
CREATE INDEX holds_active_number_idx ON holds (number) WHERE released_at IS NULL AND number IS NOT NULL;

CREATE FUNCTION recordings_refuse_held_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM holds h
        WHERE h.released_at IS NULL
          AND (h.tenant_id IS NULL OR h.tenant_id IS NOT DISTINCT FROM OLD.tenant_id)
          AND (
              h.recording_id = OLD.id
              OR (
                  h.number = ANY (OLD.numbers)
                  AND (h.from_at IS NULL OR OLD.started_at >= h.from_at)
                  AND (h.until_at IS NULL OR OLD.started_at < h.until_at)
              )
          )
    ) THEN
        RAISE EXCEPTION 'recording % is under a legal hold', OLD.id USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN OLD;
END
$$;

CREATE TRIGGER recordings_refuse_held_delete
BEFORE DELETE ON recordings
FOR EACH ROW EXECUTE FUNCTION recordings_refuse_held_delete();

-- Proof of consent (Art. 7(1)): what was asked, when, of which number, and the answer.
CREATE TABLE consent_proofs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recording_id uuid NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    tenant_id uuid REFERENCES tenants (id) ON DELETE CASCADE,
    number text,  -- the party asked, E.164 where it is a phone number
    prompt_version text NOT NULL,
    asked_at timestamptz NOT NULL,
    answered_at timestamptz,
    digit text CONSTRAINT consent_proofs_digit_format CHECK (digit IS NULL OR digit ~ '^[0-9*#A-D]$'),
    outcome text NOT NULL CONSTRAINT consent_proofs_outcome_known CHECK (outcome IN ('given', 'refused', 'no_answer', 'stopped'))
);

CREATE INDEX consent_proofs_recording_idx ON consent_proofs (recording_id);

-- Withdrawals of consent by number (Art. 7(3)): kept as the proof that it was honoured.
CREATE TABLE consent_withdrawals (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid REFERENCES tenants (id) ON DELETE CASCADE,
    number text NOT NULL,
    withdrawn_at timestamptz NOT NULL,
    recorded_by text NOT NULL,
    recordings_erased integer NOT NULL DEFAULT 0,
    recordings_held integer NOT NULL DEFAULT 0  -- under a hold: kept until it is released, then erased
);

-- Access requests (Art. 15), answered within a month (Art. 12(3)).
CREATE TABLE access_requests (
    id uuid PRIMARY KEY,
    tenant_id uuid REFERENCES tenants (id) ON DELETE CASCADE,
    number text,  -- E.164
    reference text,
    from_at timestamptz,
    until_at timestamptz,
    requester text NOT NULL,  -- how the person identified themselves / where the copy goes
    received_at timestamptz NOT NULL,
    due_at timestamptz NOT NULL,
    status text NOT NULL DEFAULT 'open'
        CONSTRAINT access_requests_status_known CHECK (status IN ('open', 'exported', 'delivered', 'closed')),
    recording_ids uuid[] NOT NULL DEFAULT '{}',
    bundle_path text,
    bundle_sha256 text CONSTRAINT access_requests_bundle_sha256_hex CHECK (bundle_sha256 ~ '^[0-9a-f]{64}$'),
    exported_at timestamptz,
    delivered_at timestamptz,
    created_by text NOT NULL,
    notes text,
    CONSTRAINT access_requests_has_criteria CHECK (number IS NOT NULL OR reference IS NOT NULL)
);

CREATE INDEX access_requests_open_idx ON access_requests (due_at) WHERE status IN ('open', 'exported');

-- The disposal log: what was deleted, why and when, without personal data (no numbers, no names).
CREATE TABLE disposals (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recording_id uuid NOT NULL,
    tenant_id uuid,
    retention_class text,  -- the class code at deletion
    reason text NOT NULL CONSTRAINT disposals_reason_known CHECK (
        reason IN ('expired', 'erasure_request', 'consent_refused', 'consent_withdrawn', 'not_kept')
    ),
    disposed_at timestamptz NOT NULL,
    disposed_by text NOT NULL,  -- 'sweeper@<node>' or the user
    files integer NOT NULL DEFAULT 0,
    bytes bigint NOT NULL DEFAULT 0
);

CREATE INDEX disposals_at_idx ON disposals (disposed_at);

-- Events for recipients of copies (Art. 19: CRM, SFTP targets), consumed by the delivery workers.
CREATE TABLE lifecycle_outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid,
    recording_id uuid NOT NULL,
    reference text,
    event text NOT NULL
        CONSTRAINT lifecycle_outbox_event_known CHECK (event IN ('erased', 'restricted', 'unrestricted')),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The audit trail: append-only and hash-chained. Each entry's hash covers its content and the previous entry's
-- hash, so a changed, removed or reordered entry breaks the chain (`hangtar audit verify`).
CREATE TABLE audit_log (
    seq bigint PRIMARY KEY CONSTRAINT audit_log_seq_positive CHECK (seq > 0),
    at timestamptz NOT NULL,
    tenant_id uuid,
    actor text NOT NULL,  -- a user, or 'system:<component>', or 'cli:<os user>'
    origin text,  -- an IP address, 'cli' or 'server'
    action text NOT NULL CONSTRAINT audit_log_action_format CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
    object_kind text,
    object_id text,
    details jsonb NOT NULL DEFAULT '{}' CONSTRAINT audit_log_details_object CHECK (jsonb_typeof(details) = 'object'),
    prev_hash text NOT NULL CONSTRAINT audit_log_prev_hash_hex CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    hash text NOT NULL CONSTRAINT audit_log_hash_hex CHECK (hash ~ '^[0-9a-f]{64}$')
);

CREATE INDEX audit_log_object_idx ON audit_log (object_kind, object_id, seq);
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, seq);

CREATE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_append_only
BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
