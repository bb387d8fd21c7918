-- Per-tenant rate-limit overrides (issue #7, ADR 0019; api/src/rate_limit.rs).
--
-- One row per tenant and auth type overrides the node's default quota for that pair
-- (`EVENTDESK_RATE_LIMIT_*`). Operational configuration, not domain state: the platform
-- operator writes it (`PUT /api/v1/tenants/{id}/rate-limits`, as eventdesk_system), each change
-- is also recorded in the tenant's security log, and the tenant's admins read it through
-- row-level security (`GET /api/v1/rate-limits`).

CREATE TABLE rate_limit_overrides (
    tenant_id    uuid        NOT NULL,
    auth_kind    text        NOT NULL CHECK (auth_kind IN ('jwt', 'live_key', 'test_key')),
    -- `limit_count` requests per `period_secs`.
    limit_count  integer     NOT NULL CHECK (limit_count BETWEEN 1 AND 1000000000),
    period_secs  integer     NOT NULL CHECK (period_secs BETWEEN 1 AND 86400),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   text        NOT NULL,
    PRIMARY KEY (tenant_id, auth_kind)
);

ALTER TABLE rate_limit_overrides ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rate_limit_overrides
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

GRANT SELECT ON rate_limit_overrides TO eventdesk_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON rate_limit_overrides TO eventdesk_system;
