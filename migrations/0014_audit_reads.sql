-- The audit trail over REST (issue #6): a tenant's events newest first in the log's reading
-- order, `(transaction_id, global_position)`, below the gap-free horizon
-- (projections/src/queries/audit.rs). Without this index a tenant's listing scans every
-- tenant's events; with it, a page is a short backward index range scan. The key grows at its
-- right edge (new transactions), so appends touch the last leaf only.
CREATE INDEX events_tenant_log_order ON events (tenant_id, transaction_id, global_position);
