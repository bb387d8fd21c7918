-- Tenant-defined custom roles (ADR 0011): the read model of the `role` streams, the user's
-- assigned custom role, and the command-side claim that keeps role names unique per tenant.

-- Read model, fed by the `directory` projection (projections/src/directory.rs). Column names
-- equal the fields of the domain state (`eventdesk_domain::directory::CustomRole`), as for the
-- other directory tables (0004).
CREATE TABLE rm_roles (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL,
    name         text        NOT NULL,
    description  text,
    permissions  text[]      NOT NULL DEFAULT '{}',   -- resource:action, sorted
    is_active    boolean     NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      bigint      NOT NULL,                -- stream version = ETag
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX rm_roles_list ON rm_roles (tenant_id, lower(name), id);

ALTER TABLE rm_roles ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rm_roles
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

GRANT SELECT ON rm_roles TO eventdesk_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON rm_roles TO eventdesk_system;

-- The custom role a user holds (NULL: their built-in `role` alone). Existing rows hold none.
ALTER TABLE rm_users ADD COLUMN custom_role_id uuid;

-- Role names are unique per tenant, case-insensitively, among roles that are not deleted.
-- Claimed in the same transaction as RoleCreated / a renaming RoleUpdated, released by
-- RoleDeactivated (commands/src/role.rs). Command-side state like identity_claims (0003).
CREATE TABLE role_name_claims (
    tenant_id  uuid NOT NULL,
    name       text NOT NULL,                       -- lower-cased
    role_id    uuid NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

GRANT SELECT, INSERT, DELETE ON role_name_claims TO eventdesk_app;
GRANT SELECT, INSERT, DELETE ON role_name_claims TO eventdesk_system;
