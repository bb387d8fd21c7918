-- Fast totals and search for the incident list (projections/src/queries/incidents.rs).
--
-- 1. rm_incident_counts: how many incidents each tenant has per (status, priority, impact,
--    urgency) cell (at most 7 × 4 × 4 × 4 = 448 cells per tenant). A list whose filters use only
--    these four fields gets its exact total by summing cells instead of counting rows.
--    The cells are maintained by statement-level triggers on rm_incidents with transition
--    tables, in the transaction that writes the rows:
--    - exact by construction: only rows a statement actually inserted, updated or deleted are
--      in the transition tables, so a replayed batch (whose upsert the version guard turns
--      into no-ops) changes no count, and a rebuild in batches of any size ends with the same
--      counts;
--    - set-based: one INSERT … ON CONFLICT per statement, whatever its number of rows;
--    - writer-independent: the projector, a projector of the previous release still running
--      during a rolling deploy, the SLA engine (which changes no counted column) or a manual
--      fix all keep the counts right;
--    - TRUNCATE rm_incidents (rebuild from zero) empties the counts.
--    Cells that drop to 0 are kept (harmless; the table stays tiny).
-- 2. eventdesk_incident_search(): substring search that can use the trigram index under RLS
--    (see the function).

-- Writers wait until the triggers exist and the backfill is done, so nothing is missed.
LOCK TABLE rm_incidents IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE rm_incident_counts (
    tenant_id   uuid    NOT NULL,
    status      text    NOT NULL,
    priority    text    NOT NULL,
    impact      text    NOT NULL,
    urgency     text    NOT NULL,
    count       bigint  NOT NULL,
    PRIMARY KEY (tenant_id, status, priority, impact, urgency)
);

CREATE FUNCTION rm_incident_counts_apply() RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO rm_incident_counts AS c
               (tenant_id, status, priority, impact, urgency, count)
        SELECT tenant_id, status, priority, impact, urgency, count(*)
        FROM new_rows
        GROUP BY tenant_id, status, priority, impact, urgency
        ON CONFLICT (tenant_id, status, priority, impact, urgency)
        DO UPDATE SET count = c.count + EXCLUDED.count;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Each updated row leaves its old cell and enters its new one; rows whose counted
        -- columns did not change cancel out.
        INSERT INTO rm_incident_counts AS c
               (tenant_id, status, priority, impact, urgency, count)
        SELECT tenant_id, status, priority, impact, urgency, sum(d)
        FROM (SELECT tenant_id, status, priority, impact, urgency, 1 AS d FROM new_rows
              UNION ALL
              SELECT tenant_id, status, priority, impact, urgency, -1 FROM old_rows) AS x
        GROUP BY tenant_id, status, priority, impact, urgency
        HAVING sum(d) <> 0
        ON CONFLICT (tenant_id, status, priority, impact, urgency)
        DO UPDATE SET count = c.count + EXCLUDED.count;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO rm_incident_counts AS c
               (tenant_id, status, priority, impact, urgency, count)
        SELECT tenant_id, status, priority, impact, urgency, -count(*)
        FROM old_rows
        GROUP BY tenant_id, status, priority, impact, urgency
        ON CONFLICT (tenant_id, status, priority, impact, urgency)
        DO UPDATE SET count = c.count + EXCLUDED.count;
    ELSE -- TRUNCATE
        DELETE FROM rm_incident_counts;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER rm_incident_counts_insert AFTER INSERT ON rm_incidents
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rm_incident_counts_apply();
CREATE TRIGGER rm_incident_counts_update AFTER UPDATE ON rm_incidents
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rm_incident_counts_apply();
CREATE TRIGGER rm_incident_counts_delete AFTER DELETE ON rm_incidents
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rm_incident_counts_apply();
CREATE TRIGGER rm_incident_counts_truncate AFTER TRUNCATE ON rm_incidents
    FOR EACH STATEMENT EXECUTE FUNCTION rm_incident_counts_apply();

-- Backfill from the rows projected so far.
INSERT INTO rm_incident_counts (tenant_id, status, priority, impact, urgency, count)
SELECT tenant_id, status, priority, impact, urgency, count(*)
FROM rm_incidents
GROUP BY tenant_id, status, priority, impact, urgency;

ALTER TABLE rm_incident_counts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rm_incident_counts
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

GRANT SELECT ON rm_incident_counts TO eventdesk_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON rm_incident_counts TO eventdesk_system;

-- ---------------------------------------------------------------------------------------------
-- Search
-- ---------------------------------------------------------------------------------------------

-- Ids of the incidents of `p_tenant` whose search_text contains `p_term` (case-insensitive,
-- any script; `%`, `_` and `\` match literally), at most `p_limit` of them (NULL: all), in no
-- particular order.
--
-- Why a function: under row-level security PostgreSQL only uses a condition as an index
-- condition if its operator is LEAKPROOF, which ILIKE (texticlike) is not, so for
-- eventdesk_app sessions `search_text ILIKE …` could never use rm_incidents_search. This
-- function runs as its owner (the migration user, which owns rm_incidents and is therefore not
-- subject to RLS), so its query can use the trigram index. It keeps the RLS guarantee itself:
-- it searches only the tenant the transaction is scoped to (`app.tenant_id`) and raises for
-- any other tenant or an unscoped transaction, whatever the caller's role.
--
-- Plans: the function exists to use the trigram index, so it allows no sequential or plain
-- index scan, only bitmap scans (of the trigram index, or of a tenant index for a small
-- tenant): with a LIMIT the planner would otherwise often prefer a sequential scan,
-- underestimating the cost of ILIKE per row (tens of milliseconds for a frequent term). A term
-- without a run of three letters or digits has no trigram, and the index would have to be read
-- whole: then a sequential scan is the better plan and is allowed. (Each case has its own
-- statement, so a cached plan is never reused under the other setting.)
CREATE FUNCTION eventdesk_incident_search(p_tenant uuid, p_term text, p_limit integer)
RETURNS TABLE (id uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
SET enable_seqscan = off
SET enable_indexscan = off
AS $$
BEGIN
    IF p_tenant IS DISTINCT FROM nullif(current_setting('app.tenant_id', true), '')::uuid THEN
        RAISE EXCEPTION 'incident search outside the transaction''s tenant scope'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_term ~ '[[:alnum:]]{3}' THEN
        RETURN QUERY
            SELECT r.id FROM rm_incidents r
            WHERE r.tenant_id = p_tenant
              AND r.search_text ILIKE '%' || replace(replace(replace(
                      p_term, '\', '\\'), '%', '\%'), '_', '\_') || '%'
            LIMIT p_limit;
    ELSE
        PERFORM set_config('enable_seqscan', 'on', true); -- restored on return
        RETURN QUERY
            SELECT r.id FROM rm_incidents r
            WHERE r.tenant_id = p_tenant
              AND r.search_text ILIKE '%' || replace(replace(replace(
                      p_term, '\', '\\'), '%', '\%'), '_', '\_') || '%'
            LIMIT p_limit;
    END IF;
END $$;

REVOKE ALL ON FUNCTION eventdesk_incident_search(uuid, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventdesk_incident_search(uuid, text, integer)
    TO eventdesk_app, eventdesk_system;
