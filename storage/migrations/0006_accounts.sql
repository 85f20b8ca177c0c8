-- Accounts of the REST API and the portal: a tenant's users (argon2 password hashes), their login sessions,
-- API keys for machines, and failed logins for rate limiting. No secret is stored: a session token, its CSRF
-- token and an API key are kept only as SHA-256 digests (they are 32 random bytes, so a fast hash is right),
-- a password only as an argon2id hash. Users, sessions and keys go with their tenant.

CREATE TABLE users (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- Stored lower-cased (the service normalises it), so the unique index makes e-mails unique regardless of
    -- case across every tenant: a login names only the e-mail.
    email text NOT NULL CONSTRAINT users_email_format CHECK (email ~ '^[^@\s]+@[^@\s]+$' AND length(email) <= 254),
    role text NOT NULL CONSTRAINT users_role_known CHECK (role IN ('admin', 'supervisor', 'dpo', 'auditor', 'viewer')),
    password_hash text NOT NULL CONSTRAINT users_password_argon2 CHECK (password_hash LIKE '$argon2%'),
    must_change_password boolean NOT NULL DEFAULT true,
    disabled_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz,
    password_changed_at timestamptz
);

CREATE UNIQUE INDEX users_email_unique ON users (email);
CREATE INDEX users_tenant ON users (tenant_id, email);

-- A login session: the browser holds the token in an HttpOnly cookie; we hold its digest. It ends at
-- expires_at (absolute), after an idle period since last_seen_at, or when revoked (logout, user disabled).
CREATE TABLE login_sessions (
    id uuid PRIMARY KEY,
    token_hash bytea NOT NULL UNIQUE CONSTRAINT login_sessions_token_hash_length CHECK (length(token_hash) = 32),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_hash bytea NOT NULL CONSTRAINT login_sessions_csrf_hash_length CHECK (length(csrf_hash) = 32),
    origin text,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    revoked_at timestamptz,
    CONSTRAINT login_sessions_expiry_after_creation CHECK (expires_at > created_at)
);

CREATE INDEX login_sessions_user ON login_sessions (user_id) WHERE revoked_at IS NULL;

-- An API key is shown once as htk_<prefix>_<secret>; the prefix stays visible to tell keys apart.
CREATE TABLE api_keys (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name text NOT NULL CONSTRAINT api_keys_name_length CHECK (length(name) BETWEEN 1 AND 100),
    role text NOT NULL CONSTRAINT api_keys_role_known CHECK (role IN ('admin', 'supervisor', 'dpo', 'auditor', 'viewer')),
    prefix text NOT NULL UNIQUE CONSTRAINT api_keys_prefix_format CHECK (prefix ~ '^[0-9a-f]{8}$'),
    secret_hash bytea NOT NULL UNIQUE CONSTRAINT api_keys_secret_hash_length CHECK (length(secret_hash) = 32),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at timestamptz
);

CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at DESC, id DESC);
-- Names tell a tenant's live keys apart; a revoked key's name may be reused.
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (tenant_id, name) WHERE revoked_at IS NULL;

-- Failed logins, counted per e-mail and per client address within a window; shared by every node. The e-mail
-- is kept as a SHA-256 digest of its lower-cased form: what someone typed (maybe a password in the wrong
-- field) is never stored.
CREATE TABLE login_failures (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email_hash bytea NOT NULL CONSTRAINT login_failures_email_hash_length CHECK (length(email_hash) = 32),
    address text NOT NULL,
    at timestamptz NOT NULL
);

CREATE INDEX login_failures_email ON login_failures (email_hash, at DESC);
CREATE INDEX login_failures_address ON login_failures (address, at DESC);
CREATE INDEX login_failures_at ON login_failures (at);
