-- Read models of the directory (tenants, users, teams, categories) and of incidents, fed by the
-- projections `directory` and `incidents` (projections/src/directory.rs, incidents.rs) and read
-- by projections/src/queries/.
--
-- Conventions:
-- - Every table carries the tenant (rm_tenants: its `id`) and is protected by row-level security:
--   a session sees only the rows of `app.tenant_id` (set per transaction with
--   `SELECT set_config('app.tenant_id', $1, true)`); with it unset it sees nothing.
--   The table owner (the migration user) is not subject to RLS (no FORCE), and
--   `eventdesk_system` (BYPASSRLS) runs the projector and the few cross-tenant look-ups
--   (login by username, deployment-wide uniqueness of usernames and e-mails).
-- - `version` is the stream version of the last event applied (the aggregate's ETag); upserts
--   are guarded by `WHERE <table>.version < EXCLUDED.version`, so replays change nothing.
-- - Column names of rm_tenants/rm_users/rm_teams/rm_categories/rm_incidents equal the field
--   names of the domain state structs: the projections load a row back into domain state with
--   `to_jsonb(row)` and write it with `jsonb_populate_recordset`. Renaming a column means a new
--   projection version.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- The projector's role: bypasses RLS, writes read models, never logs in directly.
DO $$
BEGIN
    CREATE ROLE eventdesk_system NOLOGIN BYPASSRLS;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

-- ---------------------------------------------------------------------------------------------
-- Directory
-- ---------------------------------------------------------------------------------------------

CREATE TABLE rm_tenants (
    id               uuid        PRIMARY KEY,          -- = the tenant id
    name             text        NOT NULL,
    is_active        boolean     NOT NULL,
    priority_matrix  jsonb       NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    version          bigint      NOT NULL
);

CREATE TABLE rm_users (
    tenant_id          uuid        NOT NULL,
    id                 uuid        NOT NULL,
    username           text        NOT NULL,
    username_canonical text        NOT NULL,
    email              text        NOT NULL,
    first_name         text        NOT NULL,
    last_name          text        NOT NULL,
    phone              text,
    department         text,
    role               text        NOT NULL,
    is_active          boolean     NOT NULL,
    password_hash      text        NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    version            bigint      NOT NULL,
    PRIMARY KEY (tenant_id, id),
    -- Usernames and e-mails are unique across the deployment (PRODUCT.md).
    CONSTRAINT rm_users_username_canonical_key UNIQUE (username_canonical)
);
CREATE UNIQUE INDEX rm_users_email_lower_key ON rm_users (lower(email));
CREATE INDEX rm_users_list ON rm_users (tenant_id, username_canonical, id);

CREATE TABLE rm_teams (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL,
    name         text        NOT NULL,
    manager_id   uuid,
    description  text,
    members      uuid[]      NOT NULL DEFAULT '{}',
    is_active    boolean     NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      bigint      NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX rm_teams_list ON rm_teams (tenant_id, name, id);

CREATE TABLE rm_categories (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL,
    name         text        NOT NULL,
    parent_id    uuid,
    description  text,
    is_active    boolean     NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      bigint      NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX rm_categories_list ON rm_categories (tenant_id, name, id);
CREATE INDEX rm_categories_parent ON rm_categories (tenant_id, parent_id);

-- ---------------------------------------------------------------------------------------------
-- Incidents
-- ---------------------------------------------------------------------------------------------

CREATE TABLE rm_incidents (
    tenant_id           uuid        NOT NULL,
    id                  uuid        NOT NULL,
    number              text        NOT NULL,          -- INC000123
    number_seq          bigint      NOT NULL,          -- 123
    title               text        NOT NULL,
    description         text        NOT NULL,
    status              text        NOT NULL,
    priority            text        NOT NULL,
    priority_rank       smallint    NOT NULL,          -- low 0 … critical 3 (sort key)
    priority_overridden boolean     NOT NULL,
    impact              text        NOT NULL,
    urgency             text        NOT NULL,
    category_id         uuid,
    team_id             uuid,
    assignee_id         uuid,
    reporter_id         uuid        NOT NULL,
    resolution          text,
    hold_reason         text,
    held_from           text,
    on_hold_since       timestamptz,
    -- Filled by the SLA engine; the incidents projection never overwrites them.
    response_due_at     timestamptz,
    resolution_due_at   timestamptz,
    responded_at        timestamptz,
    resolved_at         timestamptz,
    closed_at           timestamptz,
    cancelled_at        timestamptz,
    reopen_count        integer     NOT NULL,
    created_at          timestamptz NOT NULL,
    created_by          jsonb       NOT NULL,          -- domain Actor: {"kind":"user","id":…}
    updated_at          timestamptz NOT NULL,
    updated_by          jsonb       NOT NULL,
    version             bigint      NOT NULL,          -- stream version = ETag
    -- `q` searches this with ILIKE '%…%'; the trigram index serves substrings in any script.
    search_text         text        GENERATED ALWAYS AS
                        (number || ' ' || title || ' ' || description) STORED,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX rm_incidents_created     ON rm_incidents (tenant_id, created_at DESC, id DESC);
CREATE INDEX rm_incidents_status      ON rm_incidents (tenant_id, status);
CREATE INDEX rm_incidents_priority    ON rm_incidents (tenant_id, priority);
CREATE INDEX rm_incidents_priority_rank
                                      ON rm_incidents (tenant_id, priority_rank, created_at, id);
CREATE INDEX rm_incidents_assignee    ON rm_incidents (tenant_id, assignee_id);
CREATE INDEX rm_incidents_team        ON rm_incidents (tenant_id, team_id);
CREATE INDEX rm_incidents_category    ON rm_incidents (tenant_id, category_id);
CREATE INDEX rm_incidents_reporter    ON rm_incidents (tenant_id, reporter_id);
CREATE INDEX rm_incidents_updated     ON rm_incidents (tenant_id, updated_at, id);
CREATE INDEX rm_incidents_resolution_due
                                      ON rm_incidents (tenant_id, resolution_due_at, id);
CREATE INDEX rm_incidents_number      ON rm_incidents (tenant_id, number_seq);
CREATE INDEX rm_incidents_search      ON rm_incidents USING gin (search_text gin_trgm_ops);

-- Field-level history, one row per changed field, derived from IncidentEvent::history().
CREATE TABLE rm_incident_history (
    tenant_id          uuid        NOT NULL,
    incident_id        uuid        NOT NULL,
    version            bigint      NOT NULL,           -- the event's stream version
    seq                integer     NOT NULL,           -- position among the event's rows
    field              text        NOT NULL,
    old_value          jsonb,
    new_value          jsonb,
    changed_by         text        NOT NULL,           -- user:<uuid> | api_key:<uuid> | system
    changed_by_user_id uuid,
    changed_at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, incident_id, version, seq)
);

CREATE TABLE rm_incident_work_notes (
    tenant_id       uuid        NOT NULL,
    incident_id     uuid        NOT NULL,
    id              uuid        NOT NULL,
    body            text        NOT NULL,
    note_type       text        NOT NULL,
    is_public       boolean     NOT NULL,
    by_agent        boolean     NOT NULL,
    author          text        NOT NULL,
    author_user_id  uuid,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, incident_id, id)
);

CREATE TABLE rm_incident_attachments (
    tenant_id           uuid        NOT NULL,
    incident_id         uuid        NOT NULL,
    id                  uuid        NOT NULL,
    filename            text        NOT NULL,
    content_type        text        NOT NULL,
    size_bytes          bigint      NOT NULL,
    sha256              text        NOT NULL,
    uploaded_by         text        NOT NULL,
    uploaded_by_user_id uuid,
    created_at          timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, incident_id, id)
);

-- ---------------------------------------------------------------------------------------------
-- Row-level security (defence in depth; queries filter by tenant_id as well)
-- ---------------------------------------------------------------------------------------------

ALTER TABLE rm_tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rm_tenants
    USING (id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (id = nullif(current_setting('app.tenant_id', true), '')::uuid);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['rm_users', 'rm_teams', 'rm_categories', 'rm_incidents',
                             'rm_incident_history', 'rm_incident_work_notes',
                             'rm_incident_attachments']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (tenant_id = nullif(current_setting(''app.tenant_id'', true), '''')::uuid) '
            'WITH CHECK (tenant_id = nullif(current_setting(''app.tenant_id'', true), '''')::uuid)',
            t);
    END LOOP;
END $$;

-- ---------------------------------------------------------------------------------------------
-- Grants
-- ---------------------------------------------------------------------------------------------

GRANT SELECT ON rm_tenants, rm_users, rm_teams, rm_categories, rm_incidents,
                rm_incident_history, rm_incident_work_notes, rm_incident_attachments
    TO eventdesk_app;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON rm_tenants, rm_users, rm_teams, rm_categories, rm_incidents,
       rm_incident_history, rm_incident_work_notes, rm_incident_attachments
    TO eventdesk_system;

-- What the projector runtime (and its event store) needs when its pool runs as eventdesk_system.
GRANT SELECT, INSERT ON events TO eventdesk_system;
GRANT SELECT, INSERT, UPDATE ON idempotency_keys TO eventdesk_system;
GRANT SELECT, INSERT, UPDATE ON projection_checkpoints, projection_dead_letters, event_counts
    TO eventdesk_system;
GRANT DELETE ON event_counts TO eventdesk_system;
GRANT EXECUTE ON FUNCTION eventdesk_append TO eventdesk_system;
