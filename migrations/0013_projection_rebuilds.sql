-- Projection rebuilds beside the live read models (`eventdesk projections rebuild`, issue #6,
-- ADR 0013; projections/src/rebuild.rs).
--
-- A rebuild builds a projection's tables from zero in a shadow schema (`rebuild_<name>`), with
-- the shape of the live tables copied from the catalog, while the live projection keeps
-- running; then it swaps the shadow tables in, in one short transaction. This table is the
-- rebuild's own checkpoint (same columns and meaning as projection_checkpoints), so an
-- interrupted rebuild resumes where it stopped; the row is deleted by the swap.
--
-- Deliberately not a row of projection_checkpoints: readers of that table take the newest
-- version of a name as *the* checkpoint (read-your-writes waits, the SLA scheduler's refresh
-- gate), and a lagging rebuild must not stand in for the live projection.
CREATE TABLE projection_rebuilds (
    name             text        PRIMARY KEY,          -- the projection
    version          integer     NOT NULL,             -- the projection version being built
    schema_name      text        NOT NULL,             -- where the shadow tables are
    -- bulk: no secondary indexes or triggers yet; catch_up: indexes, triggers and derived
    -- tables are in place, the shadow follows the log until the swap.
    phase            text        NOT NULL DEFAULT 'bulk' CHECK (phase IN ('bulk', 'catch_up')),
    last_txid        xid8        NOT NULL DEFAULT '0'::xid8,
    last_position    bigint      NOT NULL DEFAULT 0,
    last_recorded_at timestamptz,
    events_processed bigint      NOT NULL DEFAULT 0,
    state            text        NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'degraded')),
    last_error       text,
    started_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- `projections status` reads it as the system role; the rebuild itself runs as the login user,
-- the owner of the read-model tables (it creates and swaps tables).
GRANT SELECT ON projection_rebuilds TO eventdesk_system, eventdesk_app;

-- rm_incident_counts is kept by statement triggers on rm_incidents (0007). The function wrote
-- `public.rm_incident_counts` whatever table fired it; it now writes the rm_incident_counts of
-- the schema of the table that fired it, so a rebuild's shadow rm_incidents keeps its own
-- shadow counts during its catch-up phase, and the live path is unchanged (same static
-- statements, same plans, for tables in `public`).
CREATE OR REPLACE FUNCTION rm_incident_counts_apply() RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    counts text;
BEGIN
    IF TG_TABLE_SCHEMA <> 'public' THEN
        counts := format('%I.rm_incident_counts', TG_TABLE_SCHEMA);
        IF TG_OP = 'INSERT' THEN
            EXECUTE format(
                'INSERT INTO %s AS c (tenant_id, status, priority, impact, urgency, count) '
                'SELECT tenant_id, status, priority, impact, urgency, count(*) FROM new_rows '
                'GROUP BY tenant_id, status, priority, impact, urgency '
                'ON CONFLICT (tenant_id, status, priority, impact, urgency) '
                'DO UPDATE SET count = c.count + EXCLUDED.count', counts);
        ELSIF TG_OP = 'UPDATE' THEN
            EXECUTE format(
                'INSERT INTO %s AS c (tenant_id, status, priority, impact, urgency, count) '
                'SELECT tenant_id, status, priority, impact, urgency, sum(d) '
                'FROM (SELECT tenant_id, status, priority, impact, urgency, 1 AS d FROM new_rows '
                '      UNION ALL '
                '      SELECT tenant_id, status, priority, impact, urgency, -1 FROM old_rows) x '
                'GROUP BY tenant_id, status, priority, impact, urgency HAVING sum(d) <> 0 '
                'ON CONFLICT (tenant_id, status, priority, impact, urgency) '
                'DO UPDATE SET count = c.count + EXCLUDED.count', counts);
        ELSIF TG_OP = 'DELETE' THEN
            EXECUTE format(
                'INSERT INTO %s AS c (tenant_id, status, priority, impact, urgency, count) '
                'SELECT tenant_id, status, priority, impact, urgency, -count(*) FROM old_rows '
                'GROUP BY tenant_id, status, priority, impact, urgency '
                'ON CONFLICT (tenant_id, status, priority, impact, urgency) '
                'DO UPDATE SET count = c.count + EXCLUDED.count', counts);
        ELSE -- TRUNCATE
            EXECUTE format('DELETE FROM %s', counts);
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO rm_incident_counts AS c
               (tenant_id, status, priority, impact, urgency, count)
        SELECT tenant_id, status, priority, impact, urgency, count(*)
        FROM new_rows
        GROUP BY tenant_id, status, priority, impact, urgency
        ON CONFLICT (tenant_id, status, priority, impact, urgency)
        DO UPDATE SET count = c.count + EXCLUDED.count;
    ELSIF TG_OP = 'UPDATE' THEN
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
