-- Exact medians over ranges that do not hold every sample (ADR 0028): a look-up may now read a
-- histogram bin's samples in value order and check each one's time against the range, so the
-- value-ordered indexes of migration 0023 carry `at` (INCLUDE: the check happens in the index,
-- an index-only scan, without visiting the table). Same keys as before, so a running older
-- release keeps using them. Built in place (the samples table is write-locked while they
-- build: seconds at a million incidents).
DROP INDEX rm_analytics_samples_wall_value;
CREATE INDEX rm_analytics_samples_wall_value
    ON rm_analytics_samples (tenant_id, metric, wall_bin, wall_secs) INCLUDE (at);
DROP INDEX rm_analytics_samples_wall_priority_value;
CREATE INDEX rm_analytics_samples_wall_priority_value
    ON rm_analytics_samples (tenant_id, metric, wall_bin, priority, wall_secs) INCLUDE (at);
DROP INDEX rm_analytics_samples_wall_team_value;
CREATE INDEX rm_analytics_samples_wall_team_value
    ON rm_analytics_samples (tenant_id, metric, team_id, wall_bin, wall_secs)
    INCLUDE (priority, at);
DROP INDEX rm_analytics_samples_business_value;
CREATE INDEX rm_analytics_samples_business_value
    ON rm_analytics_samples (tenant_id, metric, business_bin, business_secs) INCLUDE (at)
    WHERE business_bin IS NOT NULL;
DROP INDEX rm_analytics_samples_business_priority_value;
CREATE INDEX rm_analytics_samples_business_priority_value
    ON rm_analytics_samples (tenant_id, metric, business_bin, priority, business_secs)
    INCLUDE (at) WHERE business_bin IS NOT NULL;
DROP INDEX rm_analytics_samples_business_team_value;
CREATE INDEX rm_analytics_samples_business_team_value
    ON rm_analytics_samples (tenant_id, metric, team_id, business_bin, business_secs)
    INCLUDE (priority, at) WHERE business_bin IS NOT NULL;
