-- The system role (BYPASSRLS; projector, login and API-key lookups, tenant administration)
-- reads credentials before a tenant is known, and the tenant CLI registers users with it.
GRANT SELECT, INSERT, UPDATE ON api_keys, refresh_tokens TO eventdesk_system;
GRANT SELECT, INSERT, DELETE ON identity_claims TO eventdesk_system;
GRANT SELECT, INSERT, UPDATE ON incident_counters TO eventdesk_system;
