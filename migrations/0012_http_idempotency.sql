-- Idempotency-Key for every POST (issue #3): the first answer to a (tenant, key) is kept for
-- 24 hours and replayed to a retry with the same request; a different request with the same key
-- is refused (422). Written and read only by the API's middleware (api/src/idempotency.rs) as
-- eventdesk_system; the event store's own idempotency records (migration 0001) still guard
-- appends that must be exactly-once with their command (incident creation).
CREATE TABLE http_idempotency (
    tenant_id     uuid        NOT NULL,
    key           text        NOT NULL,
    request_hash  bytea       NOT NULL,
    state         text        NOT NULL CHECK (state IN ('in_progress', 'done')),
    status        smallint,
    headers       jsonb,
    body          bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX http_idempotency_age ON http_idempotency (created_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON http_idempotency TO eventdesk_system;
