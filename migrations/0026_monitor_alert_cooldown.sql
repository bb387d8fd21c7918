-- The performance monitor's alert cooldown and retention (issue #5, ADR 0020 amendment).
--
-- Runs of violations completed within the cooldown after an alert raise none of their own;
-- the next alert of that tenant and category counts them here. Old alerts are deleted by the
-- flusher (`prune_alerts`, by `raised_at` across tenants, hence the index).
ALTER TABLE monitor_alerts
    ADD COLUMN suppressed integer NOT NULL DEFAULT 0 CHECK (suppressed >= 0);
CREATE INDEX monitor_alerts_raised ON monitor_alerts (raised_at);
