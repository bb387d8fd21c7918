-- SLA timers (issue #4): the timer read model, the scheduler's durable due-time rows and the
-- queue of incidents whose timers must be re-evaluated after a policy or calendar change.
-- All three are written by the `sla_timers` projection (projections/src/sla_timers.rs); the
-- scheduler (commands/src/sla_scheduler.rs) claims rows of the last two with
-- FOR UPDATE SKIP LOCKED and deletes what it has handled.

-- One row per incident, metric and cycle. `state` is the domain's SlaTimer (JSON); the other
-- columns are extracted from it for filtering and sorting.
CREATE TABLE rm_sla_timers (
    tenant_id          uuid        NOT NULL,
    incident_id        uuid        NOT NULL,
    metric             text        NOT NULL CHECK (metric IN ('response', 'resolution')),
    cycle              integer     NOT NULL CHECK (cycle >= 1),
    is_current         boolean     NOT NULL,
    stage              text        NOT NULL
                       CHECK (stage IN ('in_progress', 'paused', 'completed', 'cancelled')),
    policy_id          uuid,
    calendar_id        uuid,
    target_secs        bigint      NOT NULL,
    started_at         timestamptz NOT NULL,
    due_at             timestamptz NOT NULL,
    original_due_at    timestamptz NOT NULL,
    stopped_at         timestamptz,
    last_threshold     smallint    NOT NULL DEFAULT 0,
    breached           boolean     NOT NULL DEFAULT false,
    state              jsonb       NOT NULL,
    version            bigint      NOT NULL,   -- incident stream version last applied
    PRIMARY KEY (tenant_id, incident_id, metric, cycle)
);

-- `GET /api/v1/sla/timers?state=…`: active timers by due time.
CREATE INDEX rm_sla_timers_active ON rm_sla_timers (tenant_id, due_at, incident_id, metric)
    WHERE stage IN ('in_progress', 'paused');
CREATE INDEX rm_sla_timers_by_stage ON rm_sla_timers (tenant_id, stage, due_at);

-- The scheduler's work: one row per threshold not yet recorded of a running timer.
CREATE TABLE sla_deadlines (
    tenant_id    uuid        NOT NULL,
    incident_id  uuid        NOT NULL,
    metric       text        NOT NULL,
    cycle        integer     NOT NULL,
    threshold    smallint    NOT NULL CHECK (threshold IN (50, 75, 90, 100)),
    due_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, incident_id, metric, cycle, threshold)
);
CREATE INDEX sla_deadlines_due ON sla_deadlines (due_at);

-- Incidents to re-evaluate (RefreshSla) once the `sla_config` projection has passed the
-- policy or calendar change that caused it: its checkpoint (last_txid, last_position) must be
-- at or after (after_txid, after_position), the change's place in the log's reading order.
CREATE TABLE sla_refresh_queue (
    tenant_id       uuid   NOT NULL,
    incident_id     uuid   NOT NULL,
    after_txid      bigint NOT NULL,
    after_position  bigint NOT NULL,
    PRIMARY KEY (tenant_id, incident_id)
);

ALTER TABLE rm_sla_timers ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rm_sla_timers
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

GRANT SELECT ON rm_sla_timers TO eventdesk_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON rm_sla_timers, sla_deadlines, sla_refresh_queue
    TO eventdesk_system;
