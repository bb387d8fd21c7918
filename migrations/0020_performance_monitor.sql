-- The performance monitor's alerts (issue #5, ADR 0020; api/src/monitor.rs).
--
-- Latencies and budget violations are aggregated in memory on each node (never a write per
-- request). When one tenant's requests violate a category's budget N times in a row, the node
-- raises an alert: it logs it at once and its background flusher inserts it here, in batches,
-- through the system pool (outside every request's path). `GET /api/v1/analytics/performance`
-- reads the tenant's recent alerts as eventdesk_app under row-level security.

CREATE TABLE monitor_alerts (
    id                   uuid        PRIMARY KEY,
    tenant_id            uuid        NOT NULL,
    -- api, auth, db, security, integration.
    category             text        NOT NULL
        CHECK (category IN ('api', 'auth', 'db', 'security', 'integration')),
    -- `METHOD /route/template` of the request that completed the run (null outside requests,
    -- e.g. integration deliveries).
    route                text        CHECK (length(route) <= 300),
    -- How many violations in a row raised it (the configured N).
    consecutive          integer     NOT NULL CHECK (consecutive > 0),
    budget_ms            double precision NOT NULL,
    -- The latency of the violation that completed the run.
    observed_ms          double precision NOT NULL,
    -- The node that raised it (host name and process id).
    node                 text        NOT NULL CHECK (length(node) <= 200),
    raised_at            timestamptz NOT NULL,
    recorded_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX monitor_alerts_recent ON monitor_alerts (tenant_id, raised_at DESC, id);

ALTER TABLE monitor_alerts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON monitor_alerts
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

GRANT SELECT ON monitor_alerts TO eventdesk_app;
GRANT SELECT, INSERT, DELETE ON monitor_alerts TO eventdesk_system;
