-- Command-side state that must change in the same transaction as an append.

-- Per-tenant incident number sequence. The row lock taken by the UPDATE serialises creates in
-- one tenant until their append commits, so numbers are gap-free and never duplicated; a failed
-- append rolls the increment back with it.
CREATE TABLE incident_counters (
    tenant_id uuid   PRIMARY KEY,
    last      bigint NOT NULL CHECK (last >= 0)
);

-- Deployment-wide uniqueness of usernames and e-mail addresses (PRODUCT.md: both are unique
-- across the deployment). Claimed in the same transaction as the UserRegistered event.
CREATE TABLE identity_claims (
    kind      text NOT NULL CHECK (kind IN ('username', 'email')),
    value     text NOT NULL,
    tenant_id uuid NOT NULL,
    user_id   uuid NOT NULL,
    PRIMARY KEY (kind, value)
);

GRANT SELECT, INSERT, UPDATE ON incident_counters TO eventdesk_app;
GRANT SELECT, INSERT, DELETE ON identity_claims TO eventdesk_app;
