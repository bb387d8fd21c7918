-- Analytics read models (issue #5, ADR 0015): fed by the `analytics` projection
-- (projections/src/analytics.rs) from the incident streams, read by
-- projections/src/queries/analytics.rs for `GET /api/v1/analytics/…`.
--
-- Every figure the endpoints report is a sum of rows of these tables (plus, at the edges of a
-- time range, the exact per-sample rows of rm_analytics_samples), so no endpoint ever scans the
-- event log or the incident list. Conventions:
--
-- - Every row carries tenant_id; row-level security as for every read model (0004).
-- - "Cube" keys: counts that the API filters by team and/or category are kept four times, under
--   (team_key, category_key) = (ANY, ANY), (team, ANY), (ANY, category) and (team, category),
--   where ANY = 'ffffffff-ffff-ffff-ffff-ffffffffffff' and an incident without a team (or
--   category) counts under NONE = '00000000-0000-0000-0000-000000000000'. So every query reads
--   one cell instead of summing over all teams and categories.
-- - Counts are maintained by deltas computed from the per-incident state
--   (rm_analytics_incidents), whose `version` guard makes a replayed batch change nothing.
-- - Zero counts are kept (queries skip them); the tables stay small.

-- The projection's per-incident state: what the aggregates depend on.
CREATE TABLE rm_analytics_incidents (
    tenant_id         uuid        NOT NULL,
    id                uuid        NOT NULL,
    version           bigint      NOT NULL,          -- incident stream version last applied
    status            text        NOT NULL,
    priority          text        NOT NULL,
    team_id           uuid,
    category_id       uuid,
    assignee_id       uuid,
    created_at        timestamptz NOT NULL,
    -- The current resolution cycle (1 + reopens) and when it started (creation or reopen).
    cycle             integer     NOT NULL,
    cycle_started_at  timestamptz NOT NULL,
    responded         boolean     NOT NULL,
    resolved_ever     boolean     NOT NULL,
    reopened_ever     boolean     NOT NULL,
    -- The current SLA timers as far as analytics needs them: stage (none, in_progress,
    -- paused, stopped), cycle, highest recorded threshold, breached.
    response_stage    text        NOT NULL,
    response_cycle    integer     NOT NULL,
    response_threshold smallint   NOT NULL,
    response_breached boolean     NOT NULL,
    resolution_stage  text        NOT NULL,
    resolution_cycle  integer     NOT NULL,
    resolution_threshold smallint NOT NULL,
    resolution_breached boolean   NOT NULL,
    -- A duration sample waiting for its timer's business time (SlaTimerStopped follows
    -- IncidentResponded / IncidentResolved in the same append, maybe in the next batch).
    pending_response_at   timestamptz,
    pending_resolution_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
-- Backlog aging at the edges of its buckets: the open incidents created within one day.
CREATE INDEX rm_analytics_incidents_open_created
    ON rm_analytics_incidents (tenant_id, created_at) INCLUDE (team_id, category_id)
    WHERE status IN ('new', 'assigned', 'in_progress', 'on_hold');

-- Current-state counts, per cube cell. `measure` and `key`:
--   open      '<status>:<priority>:<assigned|unassigned>'   open incidents
--   workload  '<assignee id>'                               open incidents assigned to them
--   reopen    'resolved' | 'reopened'                       incidents ever resolved / reopened
--   sla       '<metric>:<at_risk|breached>:<priority>'      running timers past 75 % / breached
CREATE TABLE rm_analytics_current (
    tenant_id     uuid   NOT NULL,
    team_key      uuid   NOT NULL,
    category_key  uuid   NOT NULL,
    measure       text   NOT NULL,
    key           text   NOT NULL,
    n             bigint NOT NULL,
    PRIMARY KEY (tenant_id, measure, team_key, category_key, key)
);
-- A breakdown by team reads the cells (team, ANY): the primary key; by category, (ANY,
-- category): this index (the two together as a BitmapOr for the unfiltered summary).
CREATE INDEX rm_analytics_current_category
    ON rm_analytics_current (tenant_id, measure, category_key, team_key);

-- Open incidents per cube cell and UTC day of creation (backlog aging).
CREATE TABLE rm_analytics_open_age (
    tenant_id     uuid    NOT NULL,
    team_key      uuid    NOT NULL,
    category_key  uuid    NOT NULL,
    day           integer NOT NULL,                  -- days since 1970-01-01 (UTC)
    n             bigint  NOT NULL,
    PRIMARY KEY (tenant_id, team_key, category_key, day)
);

-- Created / resolved / closed / reopened per cube cell and UTC-aligned block: level 0 (15
-- minutes), 1 (hour), 2 (6 hours), 3 (day). Every IANA zone offset since 1970 is a multiple of 15
-- minutes, so a bucket of any zone (day, hour or week, DST included) is an exact sum of blocks.
CREATE TABLE rm_analytics_flows (
    tenant_id     uuid        NOT NULL,
    team_key      uuid        NOT NULL,
    category_key  uuid        NOT NULL,
    level         smallint    NOT NULL CHECK (level BETWEEN 0 AND 3),
    bucket        timestamptz NOT NULL,              -- start of the block (UTC-aligned)
    created       bigint      NOT NULL,
    resolved      bigint      NOT NULL,
    closed        bigint      NOT NULL,
    reopened      bigint      NOT NULL,
    PRIMARY KEY (tenant_id, team_key, category_key, level, bucket)
) WITH (fillfactor = 70);

-- Duration samples, one per response (metric 0, cycle 1) and per resolution (metric 1, one per
-- resolution cycle), attributed to the incident's priority, team and category at that instant.
-- wall: seconds from the start of the cycle (creation, or the reopen) to `at`; business: the
-- SLA timer's business seconds at its stop (pauses and closed hours excluded; NULL without a
-- timer). `*_bin` is the histogram bin of the value (analytics::duration_bin).
CREATE TABLE rm_analytics_samples (
    tenant_id      uuid        NOT NULL,
    metric         smallint    NOT NULL CHECK (metric IN (0, 1)),
    incident_id    uuid        NOT NULL,
    cycle          integer     NOT NULL,
    at             timestamptz NOT NULL,
    priority       smallint    NOT NULL,             -- low 0 … critical 3
    team_id        uuid,
    category_id    uuid,
    wall_secs      bigint      NOT NULL,
    wall_bin       smallint    NOT NULL,
    business_secs  bigint,
    business_bin   smallint,
    breached       boolean,
    PRIMARY KEY (tenant_id, metric, incident_id, cycle)
);
-- Range edges and unfiltered direct reads.
CREATE INDEX rm_analytics_samples_at ON rm_analytics_samples (tenant_id, metric, at)
    INCLUDE (priority, team_id, category_id, wall_secs, business_secs, breached);
-- Category-filtered reads (read directly: category is not a histogram dimension).
CREATE INDEX rm_analytics_samples_category ON rm_analytics_samples (tenant_id, metric, category_id, at)
    INCLUDE (priority, team_id, wall_secs, business_secs, breached);
-- Exact medians: the samples of one histogram bin within the range, overall / by priority and
-- by team (the rank within the bin is known from the histograms).
CREATE INDEX rm_analytics_samples_wall_bin ON rm_analytics_samples (tenant_id, metric, wall_bin, priority, at)
    INCLUDE (wall_secs);
CREATE INDEX rm_analytics_samples_wall_team ON rm_analytics_samples (tenant_id, metric, team_id, wall_bin, at)
    INCLUDE (wall_secs, priority);
CREATE INDEX rm_analytics_samples_business_bin ON rm_analytics_samples (tenant_id, metric, business_bin, priority, at)
    INCLUDE (business_secs) WHERE business_bin IS NOT NULL;
CREATE INDEX rm_analytics_samples_business_team ON rm_analytics_samples (tenant_id, metric, team_id, business_bin, at)
    INCLUDE (business_secs, priority) WHERE business_bin IS NOT NULL;

-- Duration histograms per time block: level 0..3 = blocks of 1, 8, 64, 512 UTC days (block =
-- day / 8^level), kind 0 wall / 1 business, cells (team_key, priority_key) with ANY team and
-- priority_key -1 = any priority. n, the sum of seconds, the breached count (business only) and
-- `hist[bin + 1]` = samples in that bin (trailing zero bins are not stored).
CREATE TABLE rm_analytics_hist (
    tenant_id     uuid     NOT NULL,
    metric        smallint NOT NULL,
    level         smallint NOT NULL CHECK (level BETWEEN 0 AND 3),
    block         integer  NOT NULL,
    kind          smallint NOT NULL CHECK (kind IN (0, 1)),
    team_key      uuid     NOT NULL,
    priority_key  smallint NOT NULL,
    n             bigint   NOT NULL,
    sum_secs      bigint   NOT NULL,
    breached      bigint   NOT NULL,
    hist          integer[] NOT NULL,
    PRIMARY KEY (tenant_id, metric, level, block, priority_key, team_key, kind)
) WITH (fillfactor = 50);   -- the current blocks' rows are rewritten every batch: HOT updates

-- Element-wise sum of two histograms (the shorter padded with zeros). Called by the projection
-- qualified (`public.…`), so a rebuild's shadow search path finds it too.
CREATE FUNCTION eventdesk_hist_add(a integer[], b integer[]) RETURNS integer[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY i), '{}')
    FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i)
$$;
GRANT EXECUTE ON FUNCTION eventdesk_hist_add(integer[], integer[])
    TO eventdesk_app, eventdesk_system;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['rm_analytics_incidents', 'rm_analytics_current',
                             'rm_analytics_open_age', 'rm_analytics_flows',
                             'rm_analytics_samples', 'rm_analytics_hist']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (tenant_id = nullif(current_setting(''app.tenant_id'', true), '''')::uuid) '
            'WITH CHECK (tenant_id = nullif(current_setting(''app.tenant_id'', true), '''')::uuid)',
            t);
    END LOOP;
END $$;

GRANT SELECT ON rm_analytics_incidents, rm_analytics_current, rm_analytics_open_age,
                rm_analytics_flows, rm_analytics_samples, rm_analytics_hist
    TO eventdesk_app;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON rm_analytics_incidents, rm_analytics_current, rm_analytics_open_age,
       rm_analytics_flows, rm_analytics_samples, rm_analytics_hist
    TO eventdesk_system;
