-- A simple read model: events per tenant and event type. Used by the audit views and as the
-- reference projection of the projector runtime's tests and benchmarks.
CREATE TABLE event_counts (
    tenant_id       uuid   NOT NULL,
    event_type      text   NOT NULL,
    count           bigint NOT NULL,
    last_position   bigint NOT NULL,
    PRIMARY KEY (tenant_id, event_type)
);
GRANT SELECT, INSERT, UPDATE, DELETE ON event_counts TO eventdesk_app;
