-- The integration bus (issue #7, ADR 0016; bus/): webhook subscriptions, Slack and Jira
-- settings, and the durable delivery rows that the bus's subscriber writes from the event log
-- and its workers send.
--
-- Credentials (webhook secrets, the Slack incoming-webhook URL, the Jira email and API token)
-- are stored sealed with AES-256-GCM (`v1:` + base64), never in clear (bus/src/crypto.rs).
-- The API (eventdesk_app) sees its tenant's rows through row-level security; the bus runs as
-- eventdesk_system across tenants.

CREATE TABLE webhooks (
    id                          uuid        PRIMARY KEY,
    tenant_id                   uuid        NOT NULL,
    url                         text        NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    description                 text        CHECK (length(description) <= 500),
    -- Event types delivered (`*` = every deliverable type).
    event_types                 text[]      NOT NULL CHECK (cardinality(event_types) >= 1),
    status                      text        NOT NULL CHECK (status IN ('active', 'paused')),
    secret_enc                  text        NOT NULL,
    -- The secret before the last rotation, signing too until it expires.
    previous_secret_enc         text,
    previous_secret_expires_at  timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_tenant ON webhooks (tenant_id, created_at, id);

-- One row per tenant and kind ('slack', 'jira'): `settings` holds what the API shows,
-- `credentials_enc` the sealed credentials it never shows.
CREATE TABLE integration_settings (
    tenant_id        uuid        NOT NULL,
    kind             text        NOT NULL CHECK (kind IN ('slack', 'jira')),
    enabled          boolean     NOT NULL,
    settings         jsonb       NOT NULL,
    credentials_enc  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind)
);

-- The bus subscriber's checkpoint in the log (ADR 0002 order): it moves in the same
-- transaction as the delivery rows of the events it passed.
CREATE TABLE bus_checkpoints (
    name              text        PRIMARY KEY,
    last_txid         xid8        NOT NULL DEFAULT '0'::xid8,
    last_position     bigint      NOT NULL DEFAULT 0,
    events_processed  bigint      NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- One message to one target. `dedupe_key` makes the fan-out idempotent (webhook × event,
-- Slack × event, one Jira issue per incident, one daily summary per local date).
CREATE TABLE bus_deliveries (
    id                uuid        PRIMARY KEY,
    tenant_id         uuid        NOT NULL,
    target            text        NOT NULL CHECK (target IN ('webhook', 'slack', 'jira')),
    kind              text        NOT NULL,
    webhook_id        uuid        REFERENCES webhooks (id) ON DELETE CASCADE,
    -- The per-endpoint concurrency key (`webhook:<id>`, `slack:<tenant>`, `jira:<tenant>`).
    endpoint          text        NOT NULL,
    dedupe_key        text        NOT NULL,
    event_id          uuid,
    event_type        text,
    stream_id         uuid,
    payload           jsonb       NOT NULL,
    status            text        NOT NULL
                      CHECK (status IN ('pending', 'succeeded', 'dead', 'dry_run', 'skipped')),
    attempts          integer     NOT NULL DEFAULT 0,
    -- Attempts and start of the current round (a redelivery starts a new round): the bounds
    -- of the retry policy apply per round.
    round_attempts    integer     NOT NULL DEFAULT 0,
    round_started_at  timestamptz NOT NULL DEFAULT now(),
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    -- The worker (process) holding the row; its lease is `next_attempt_at`.
    claim_token       uuid,
    last_attempt_at   timestamptz,
    last_status_code  integer,
    last_error        text,
    last_latency_ms   integer,
    completed_at      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bus_deliveries_dedupe UNIQUE (tenant_id, dedupe_key),
    CHECK ((target = 'webhook') = (webhook_id IS NOT NULL))
);
CREATE INDEX bus_deliveries_due ON bus_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX bus_deliveries_by_webhook ON bus_deliveries (webhook_id, created_at DESC, id DESC);
CREATE INDEX bus_deliveries_by_stream ON bus_deliveries (tenant_id, stream_id)
    WHERE stream_id IS NOT NULL;

-- The delivery log: one row per attempt.
CREATE TABLE bus_delivery_attempts (
    delivery_id  uuid        NOT NULL REFERENCES bus_deliveries (id) ON DELETE CASCADE,
    tenant_id    uuid        NOT NULL,
    attempt      integer     NOT NULL CHECK (attempt >= 1),
    started_at   timestamptz NOT NULL,
    latency_ms   integer     NOT NULL,
    status_code  integer,
    error        text,
    outcome      text        NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'rate_limited')),
    PRIMARY KEY (delivery_id, attempt)
);

-- The Jira issue of an incident (the incident stream records it too, as
-- IncidentExternalLinked); comments look their key up here.
CREATE TABLE bus_jira_links (
    tenant_id    uuid        NOT NULL,
    incident_id  uuid        NOT NULL,
    issue_key    text        NOT NULL,
    issue_url    text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, incident_id)
);

-- Incidents created by a test-mode API key: everything the bus does for them is a dry run,
-- including the SLA scheduler's later warnings and breaches.
CREATE TABLE bus_test_streams (
    tenant_id  uuid NOT NULL,
    stream_id  uuid NOT NULL,
    PRIMARY KEY (tenant_id, stream_id)
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['webhooks', 'integration_settings', 'bus_deliveries',
                             'bus_delivery_attempts', 'bus_jira_links', 'bus_test_streams']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (tenant_id = nullif(current_setting(''app.tenant_id'', true), '''')::uuid) '
            'WITH CHECK (tenant_id = nullif(current_setting(''app.tenant_id'', true), '''')::uuid)',
            t);
    END LOOP;
END $$;

GRANT SELECT, INSERT, UPDATE, DELETE ON webhooks TO eventdesk_app;
GRANT SELECT, INSERT, UPDATE ON integration_settings TO eventdesk_app;
GRANT SELECT, UPDATE ON bus_deliveries TO eventdesk_app;
GRANT SELECT ON bus_delivery_attempts, bus_jira_links TO eventdesk_app;

GRANT SELECT ON webhooks, integration_settings TO eventdesk_system;
GRANT SELECT, INSERT, UPDATE ON bus_checkpoints TO eventdesk_system;
GRANT SELECT, INSERT, UPDATE, DELETE ON bus_deliveries, bus_delivery_attempts, bus_jira_links,
    bus_test_streams TO eventdesk_system;
