-- The CMDB (issue #8, ADR 0017): configuration items, custom CI types, relationships, and the
-- configuration item an incident affects.
--
-- Read models, fed by the `cmdb` projection (projections/src/cmdb.rs) and read by
-- projections/src/queries/cmdb.rs. As for the directory (0004), column names equal the
-- fields of the domain state (`eventdesk_domain::cmdb::{Ci, CiType, CiRelationship}`): the
-- projection loads a row back into domain state with `to_jsonb(row)`.
-- Command-side state (ci_type_claims, ci_edges) changes in the same transaction as the append
-- that needs it (commands/src/cmdb.rs), like identity_claims (0003).

-- ---------------------------------------------------------------------------------------------
-- Read models
-- ---------------------------------------------------------------------------------------------

CREATE TABLE rm_ci_types (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL,
    key          text        NOT NULL,
    name         text        NOT NULL,
    description  text,
    schema       jsonb       NOT NULL,               -- attribute name -> {type, required, values}
    created_at   timestamptz NOT NULL,
    created_by   jsonb       NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      bigint      NOT NULL,               -- stream version = ETag
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX rm_ci_types_key ON rm_ci_types (tenant_id, key);

CREATE TABLE rm_cis (
    tenant_id      uuid        NOT NULL,
    id             uuid        NOT NULL,
    ci_type        text        NOT NULL,             -- a built-in key or a custom type's key
    name           text        NOT NULL,
    description    text,
    attributes     jsonb       NOT NULL,
    owner_team_id  uuid,
    status         text        NOT NULL,
    created_at     timestamptz NOT NULL,
    created_by     jsonb       NOT NULL,
    updated_at     timestamptz NOT NULL,
    updated_by     jsonb       NOT NULL,
    retired_at     timestamptz,
    version        bigint      NOT NULL,             -- stream version = ETag
    PRIMARY KEY (tenant_id, id)
);
-- The list's order (name, id) with and without the usual filters.
CREATE INDEX rm_cis_list   ON rm_cis (tenant_id, name, id);
CREATE INDEX rm_cis_type   ON rm_cis (tenant_id, ci_type, name, id);
CREATE INDEX rm_cis_status ON rm_cis (tenant_id, status, name, id);
CREATE INDEX rm_cis_owner  ON rm_cis (tenant_id, owner_team_id) WHERE owner_team_id IS NOT NULL;

-- One row per relationship; a deleted one keeps its row (deleted_at set) so that the version
-- guard of the upsert holds. Impact analysis walks the live edges from target to source.
CREATE TABLE rm_ci_relationships (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL,
    source_id    uuid        NOT NULL,
    target_id    uuid        NOT NULL,
    rel_type     text        NOT NULL,
    created_at   timestamptz NOT NULL,
    created_by   jsonb       NOT NULL,
    deleted_at   timestamptz,
    deleted_by   jsonb,
    version      bigint      NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
-- Incoming edges of a CI (impact: who depends on / runs on it), index-only.
CREATE INDEX rm_ci_relationships_in ON rm_ci_relationships (tenant_id, target_id, rel_type, source_id)
    WHERE deleted_at IS NULL;
-- Outgoing edges of a CI (the relationship list).
CREATE INDEX rm_ci_relationships_out ON rm_ci_relationships (tenant_id, source_id, rel_type, target_id)
    WHERE deleted_at IS NULL;

-- The configuration item an incident affects. Existing incidents affect none.
ALTER TABLE rm_incidents ADD COLUMN ci_id uuid;
CREATE INDEX rm_incidents_ci ON rm_incidents (tenant_id, ci_id) WHERE ci_id IS NOT NULL;

ALTER TABLE rm_ci_types ENABLE ROW LEVEL SECURITY;
ALTER TABLE rm_cis ENABLE ROW LEVEL SECURITY;
ALTER TABLE rm_ci_relationships ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rm_ci_types
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY tenant_isolation ON rm_cis
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY tenant_isolation ON rm_ci_relationships
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

GRANT SELECT ON rm_ci_types, rm_cis, rm_ci_relationships TO eventdesk_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON rm_ci_types, rm_cis, rm_ci_relationships
    TO eventdesk_system;

-- ---------------------------------------------------------------------------------------------
-- Command side
-- ---------------------------------------------------------------------------------------------

-- A custom CI type's key is unique in its tenant: claimed in the same transaction as its
-- CiTypeCreated event. It also resolves a CI's `type` to the type's stream, whatever the lag
-- of the read model.
CREATE TABLE ci_type_claims (
    tenant_id  uuid NOT NULL,
    key        text NOT NULL,
    type_id    uuid NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

-- The live relationships, written in the same transaction as CiRelationshipCreated /
-- CiRelationshipDeleted. A duplicate (same source, target and type) is refused by the unique
-- key. The cycle check of a new depends_on / runs_on edge reads this table (committed edges
-- only) while holding the tenant's dependency lock (pg_advisory_xact_lock), so two concurrent
-- edges that together close a cycle cannot both commit.
CREATE TABLE ci_edges (
    tenant_id  uuid NOT NULL,
    rel_id     uuid NOT NULL,
    source_id  uuid NOT NULL,
    target_id  uuid NOT NULL,
    rel_type   text NOT NULL,
    PRIMARY KEY (tenant_id, rel_id),
    UNIQUE (tenant_id, source_id, target_id, rel_type)
);
CREATE INDEX ci_edges_dependencies ON ci_edges (tenant_id, source_id, target_id)
    WHERE rel_type IN ('depends_on', 'runs_on');

GRANT SELECT, INSERT, DELETE ON ci_type_claims, ci_edges TO eventdesk_app;
GRANT SELECT, INSERT, DELETE ON ci_type_claims, ci_edges TO eventdesk_system;
