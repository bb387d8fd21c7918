-- Exact medians over a range that holds every sample of the tenant's metric ("all time"; ADR
-- 0026): the look-up then needs no time condition, and these indexes give a histogram bin's
-- samples in value order, so `ORDER BY secs OFFSET r LIMIT 1` reads r + 1 index entries
-- instead of sorting the bin (a year of a busy tenant puts ~50,000 responses in one 16-second
-- bin). One per group kind of the look-ups: every priority, one priority, one team (or none);
-- wall and business time.
CREATE INDEX rm_analytics_samples_wall_value
    ON rm_analytics_samples (tenant_id, metric, wall_bin, wall_secs);
CREATE INDEX rm_analytics_samples_wall_priority_value
    ON rm_analytics_samples (tenant_id, metric, wall_bin, priority, wall_secs);
CREATE INDEX rm_analytics_samples_wall_team_value
    ON rm_analytics_samples (tenant_id, metric, team_id, wall_bin, wall_secs) INCLUDE (priority);
CREATE INDEX rm_analytics_samples_business_value
    ON rm_analytics_samples (tenant_id, metric, business_bin, business_secs)
    WHERE business_bin IS NOT NULL;
CREATE INDEX rm_analytics_samples_business_priority_value
    ON rm_analytics_samples (tenant_id, metric, business_bin, priority, business_secs)
    WHERE business_bin IS NOT NULL;
CREATE INDEX rm_analytics_samples_business_team_value
    ON rm_analytics_samples (tenant_id, metric, team_id, business_bin, business_secs)
    INCLUDE (priority) WHERE business_bin IS NOT NULL;
