-- Credentials owned by eventdesk-auth (auth/src/store): API keys and refresh tokens.
--
-- NO ROW-LEVEL SECURITY on these two tables, on purpose: an API key is looked up by its prefix
-- and a refresh token by its hash *before* the tenant is known (the credential is what tells us
-- the tenant), so a tenant-scoped policy could never match. Every tenant-scoped statement
-- (listing and revoking keys, revoking a user's tokens) filters on tenant_id explicitly in
-- auth/src/store. Neither table holds a usable secret: keys are stored as HMAC-SHA256 with a
-- server pepper, refresh tokens as SHA-256 of 256 random bits.

CREATE TABLE api_keys (
    id            uuid        PRIMARY KEY,
    tenant_id     uuid        NOT NULL,
    name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- 'qg_live_' or 'qg_test_' + the first 8 characters of the random part: the lookup key.
    prefix        text        NOT NULL UNIQUE CHECK (prefix ~ '^qg_(live|test)_[A-Za-z0-9_-]{8}$'),
    hash          bytea       NOT NULL CHECK (length(hash) = 32),
    mode          text        NOT NULL CHECK (mode IN ('live', 'test')),
    -- 'resource:action' strings (auth/src/rbac.rs).
    permissions   text[]      NOT NULL,
    created_by    uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    CONSTRAINT api_keys_prefix_matches_mode CHECK (starts_with(prefix, 'qg_' || mode || '_'))
);

CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at);

CREATE TABLE refresh_tokens (
    id          uuid        PRIMARY KEY,
    tenant_id   uuid        NOT NULL,
    user_id     uuid        NOT NULL,
    -- All tokens descending from one login. Reuse of a used token revokes the whole family.
    family_id   uuid        NOT NULL,
    token_hash  bytea       NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz,
    CHECK (expires_at > issued_at)
);

CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (tenant_id, user_id);

GRANT SELECT, INSERT, UPDATE ON api_keys, refresh_tokens TO eventdesk_app;
