-- Changes with CAB approvals, tasks, conflicts and the calendar (issue #8, ADR 0022).
--
-- rm_changes is fed by the `changes` projection (projections/src/changes.rs) and read by
-- projections/src/queries/changes.rs. Column names equal the fields of the domain state
-- (`eventdesk_domain::change_request::ChangeRequest`): the projection loads a row back into
-- domain state with `to_jsonb(row)`. Votes and tasks are small ordered lists kept as jsonb.

CREATE TABLE rm_changes (
    tenant_id            uuid        NOT NULL,
    id                   uuid        NOT NULL,
    title                text        NOT NULL,
    description          text        NOT NULL,
    change_type          text        NOT NULL,
    status               text        NOT NULL,
    risk                 text        NOT NULL,
    planned_start        timestamptz,
    planned_end          timestamptz,
    ci_ids               uuid[]      NOT NULL,
    incident_ids         uuid[]      NOT NULL,
    approvers            uuid[]      NOT NULL,
    quorum               text        NOT NULL,
    on_rejection         text        NOT NULL,
    approval_round       integer     NOT NULL,
    votes                jsonb       NOT NULL,      -- the current round's votes
    approved_at          timestamptz,
    tasks                jsonb       NOT NULL,      -- in order
    overridden_conflicts uuid[]      NOT NULL,
    override_reason      text,
    scheduled_at         timestamptz,
    closed_at            timestamptz,
    cancelled_at         timestamptz,
    cancel_reason        text,
    created_at           timestamptz NOT NULL,
    created_by           jsonb       NOT NULL,
    updated_at           timestamptz NOT NULL,
    updated_by           jsonb       NOT NULL,
    version              bigint      NOT NULL,      -- stream version = ETag
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX rm_changes_list   ON rm_changes (tenant_id, created_at DESC, id DESC);
CREATE INDEX rm_changes_status ON rm_changes (tenant_id, status, created_at DESC, id DESC);
-- The calendar and the conflict search: windows by start.
CREATE INDEX rm_changes_window ON rm_changes (tenant_id, planned_start, planned_end)
    WHERE planned_start IS NOT NULL AND planned_end IS NOT NULL;
-- Changes on a CI (conflicts, the CI's impact analysis).
CREATE INDEX rm_changes_cis ON rm_changes USING gin (ci_ids);

ALTER TABLE rm_changes ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rm_changes
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

GRANT SELECT ON rm_changes TO eventdesk_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON rm_changes TO eventdesk_system;
