-- The SLA configuration read models (projection "sla_config", ADR 0008): business-hours
-- calendars and SLA policies, one row per `sla_calendar` / `sla_policy` stream.
--
-- Columns are named like the fields of the domain state (`SlaCalendar`, `SlaPolicyState`), so the
-- projection writes rows with `jsonb_populate_recordset` and rebuilds state with `to_jsonb(row)`.
-- `version` is the stream version, which is also the configuration version timers record (every
-- event bumps both by one).

CREATE TABLE rm_sla_calendars (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL,
    name         text        NOT NULL,
    -- CalendarDefinition: {"time_zone", "weekly_hours": [{"day","start","end"}], "holidays": […]}
    definition   jsonb       NOT NULL,
    active       boolean     NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      bigint      NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX rm_sla_calendars_list ON rm_sla_calendars (tenant_id, name, id);

CREATE TABLE rm_sla_policies (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL,
    name         text        NOT NULL,
    rank         integer     NOT NULL,
    -- PolicyCondition: {"team_id"?, "category_id"?, "impact"?}
    condition    jsonb       NOT NULL,
    -- The calendar of targets that name none; NULL = the built-in 24x7 calendar.
    calendar_id  uuid,
    -- [SlaTarget]: [{"priority", "response_minutes"?, "resolution_minutes"?, "calendar_id"?}]
    targets      jsonb       NOT NULL,
    active       boolean     NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      bigint      NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
-- Lists and policy selection: by (rank, id) within a tenant.
CREATE INDEX rm_sla_policies_rank ON rm_sla_policies (tenant_id, rank, id);

-- Row-level security, as for every read model (queries filter by tenant_id as well).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['rm_sla_calendars', 'rm_sla_policies']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (tenant_id = nullif(current_setting(''app.tenant_id'', true), '''')::uuid) '
            'WITH CHECK (tenant_id = nullif(current_setting(''app.tenant_id'', true), '''')::uuid)',
            t);
    END LOOP;
END $$;

GRANT SELECT ON rm_sla_calendars, rm_sla_policies TO eventdesk_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON rm_sla_calendars, rm_sla_policies TO eventdesk_system;
