-- Problems and known errors (issue #8, ADR 0021).
--
-- rm_problems is fed by the `problems` projection (projections/src/problems.rs) and read by
-- projections/src/queries/problems.rs. As for the CMDB (0017), column names equal the fields
-- of the domain state (`eventdesk_domain::problem::Problem`): the projection loads a row back
-- into domain state with `to_jsonb(row)`.

CREATE TABLE rm_problems (
    tenant_id       uuid        NOT NULL,
    id              uuid        NOT NULL,
    title           text        NOT NULL,
    description     text        NOT NULL,
    status          text        NOT NULL,
    priority        text        NOT NULL,
    category_id     uuid,
    ci_id           uuid,
    assignee_id     uuid,
    root_cause      text,
    workaround      text,
    resolution      text,
    incident_ids    uuid[]      NOT NULL,           -- linked incidents, in link order
    known_error_at  timestamptz,                    -- published to the known-error database
    resolved_at     timestamptz,
    closed_at       timestamptz,
    created_at      timestamptz NOT NULL,
    created_by      jsonb       NOT NULL,
    updated_at      timestamptz NOT NULL,
    updated_by      jsonb       NOT NULL,
    version         bigint      NOT NULL,           -- stream version = ETag
    -- What `q` searches (the list and the known-error database), as for incidents (0004).
    search_text     text        GENERATED ALWAYS AS
                        (title || ' ' || description || ' ' || coalesce(root_cause, '') || ' '
                         || coalesce(workaround, '')) STORED,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX rm_problems_search ON rm_problems USING gin (search_text gin_trgm_ops);
-- The list's order (newest first) with and without the usual filters.
CREATE INDEX rm_problems_list     ON rm_problems (tenant_id, created_at DESC, id DESC);
CREATE INDEX rm_problems_status   ON rm_problems (tenant_id, status, created_at DESC, id DESC);
-- "Which problem is this incident linked to?" (the incident detail).
CREATE INDEX rm_problems_incidents ON rm_problems USING gin (incident_ids);
-- The known-error database: published and not closed, matched by category or CI.
CREATE INDEX rm_problems_known_errors ON rm_problems (tenant_id, known_error_at DESC, id DESC)
    WHERE known_error_at IS NOT NULL AND status <> 'closed';
CREATE INDEX rm_problems_ke_category ON rm_problems (tenant_id, category_id)
    WHERE known_error_at IS NOT NULL AND status <> 'closed' AND category_id IS NOT NULL;
CREATE INDEX rm_problems_ke_ci ON rm_problems (tenant_id, ci_id)
    WHERE known_error_at IS NOT NULL AND status <> 'closed' AND ci_id IS NOT NULL;

-- The reactor's work: one row per (resolved problem, linked incident), written by the
-- `problems` projection when it applies ProblemResolved, in the transaction of its checkpoint.
-- The problem reactor (workers/src/problem_reactor.rs) claims pending rows with
-- FOR UPDATE SKIP LOCKED and adds the note to the incident through the command path, with
-- `note_id` as the work note's id: a retry (or a rebuild that writes the rows again) finds the
-- note already there and adds nothing.
CREATE TABLE problem_incident_notes (
    tenant_id    uuid        NOT NULL,
    note_id      uuid        NOT NULL,              -- derived from (event id, incident id)
    problem_id   uuid        NOT NULL,
    incident_id  uuid        NOT NULL,
    body         text        NOT NULL,
    recorded_at  timestamptz NOT NULL,              -- of the ProblemResolved event
    done_at      timestamptz,
    PRIMARY KEY (tenant_id, note_id)
);
CREATE INDEX problem_incident_notes_pending ON problem_incident_notes (recorded_at)
    WHERE done_at IS NULL;

ALTER TABLE rm_problems ENABLE ROW LEVEL SECURITY;
ALTER TABLE problem_incident_notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rm_problems
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY tenant_isolation ON problem_incident_notes
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

GRANT SELECT ON rm_problems TO eventdesk_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON rm_problems, problem_incident_notes TO eventdesk_system;

-- Ids of the problems of `p_tenant` whose search_text contains `p_term` (case-insensitive, any
-- script; `%`, `_` and `\` match literally). The same approach, for the same reason, as
-- eventdesk_incident_search (0007): under RLS, ILIKE (not LEAKPROOF) can never use the trigram
-- index, so the search runs as the owner, and checks the tenant scope itself.
CREATE FUNCTION eventdesk_problem_search(p_tenant uuid, p_term text)
RETURNS TABLE (id uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF p_tenant IS DISTINCT FROM nullif(current_setting('app.tenant_id', true), '')::uuid THEN
        RAISE EXCEPTION 'problem search outside the transaction''s tenant scope'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN QUERY
        SELECT r.id FROM rm_problems r
        WHERE r.tenant_id = p_tenant
          AND r.search_text ILIKE '%' || replace(replace(replace(
                  p_term, '\', '\\'), '%', '\%'), '_', '\_') || '%';
END $$;

REVOKE ALL ON FUNCTION eventdesk_problem_search(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventdesk_problem_search(uuid, text) TO eventdesk_app, eventdesk_system;

-- Command side: one problem per incident, claimed in the transaction of ProblemIncidentLinked
-- and released in that of ProblemIncidentUnlinked (commands/src/problem.rs).
CREATE TABLE problem_incident_claims (
    tenant_id    uuid NOT NULL,
    incident_id  uuid NOT NULL,
    problem_id   uuid NOT NULL,
    PRIMARY KEY (tenant_id, incident_id)
);
GRANT SELECT, INSERT, DELETE ON problem_incident_claims TO eventdesk_app;
GRANT SELECT, INSERT, DELETE ON problem_incident_claims TO eventdesk_system;
