-- Recording search for the portal and the REST API (storage.recording_search): a tenant's recordings newest
-- first, filtered, a keyset page at a time. The plain list and the time window walk
-- recordings_tenant_started_idx (0004), a number search the GIN index recordings_numbers_idx (0004), a
-- reference the unique index on reference (0001). Each filter below that can be selective gets an index
-- that keeps the newest-first order, so a rare status, class or direction is found without reading the
-- tenant's other calls, and the page stops after its last row.

-- Failed, interrupted or one-way calls: few, looked for on purpose.
CREATE INDEX recordings_tenant_status_idx ON recordings (tenant_id, status, started_at DESC, id DESC);

-- The calls kept under one retention class (a statutory one, "not kept").
CREATE INDEX recordings_tenant_class_idx
    ON recordings (tenant_id, retention_class_id, started_at DESC, id DESC);

-- Inbound or outbound, as the recording metadata stated it; most calls of a contact centre go one way.
CREATE INDEX recordings_tenant_direction_idx
    ON recordings (tenant_id, (call_facts #>> '{direction,value}'), started_at DESC, id DESC);

-- A participant by part of a name or an address, in any case: the parties' names and addresses as one
-- lower-case text, one per line, so that a search never matches across two of them.
CREATE FUNCTION recording_party_text(participants jsonb) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(string_agg(lower(concat_ws(E'\n', p ->> 'name', p ->> 'aor')), E'\n'), '')
    FROM jsonb_array_elements(participants) AS p
$$;

-- Trigrams (pg_trgm, shipped with PostgreSQL's contrib modules and the embedded server) find a substring of
-- three or more characters without reading every call. Where the extension cannot be installed (an external
-- server without contrib, or without the right to create it) the search still works, reading the tenant's
-- calls newest first; this migration then only says so.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX recordings_party_text_idx
        ON recordings USING gin (recording_party_text(participants) gin_trgm_ops);
EXCEPTION WHEN undefined_file OR insufficient_privilege OR feature_not_supported THEN
    RAISE NOTICE 'participant search runs without a trigram index: %', SQLERRM;
END
$$;
