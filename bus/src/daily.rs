//! The daily Slack summary: once per tenant and local date, at the configured local time in
//! the tenant's time zone (`daily_summary_time`, `time_zone` of the Slack settings).
//!
//! Every check (at start, every [`BusConfig::summary_check`](crate::BusConfig), and right
//! after the Slack settings change) looks at each tenant whose summary time has passed today,
//! local time, and inserts that date's row unless it exists (`slack:daily:<date>` is unique per
//! tenant, so several nodes, restarts and repeated checks send one summary a day). A node that
//! was down at the time sends the day's summary when it comes back, the same day.

use crate::Bus;
use crate::messages::{self, Summary};
use crate::model::SlackSettings;
use chrono::{DateTime, LocalResult, NaiveDate, TimeDelta, TimeZone, Utc};
use serde_json::json;
use sqlx::Row;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Checks until `stop`.
pub async fn run(bus: Bus, stop: CancellationToken) {
    while !stop.is_cancelled() {
        match tick(&bus, Utc::now()).await {
            Ok(n) if n > 0 => bus.nudge(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "integration bus: daily summary check failed"),
        }
        tokio::select! {
            () = stop.cancelled() => {}
            () = bus.inner.summaries.notified() => {}
            () = tokio::time::sleep(bus.inner.config.summary_check) => {}
        }
    }
}

/// When the summary of local `date` is due, in UTC (a time skipped by a DST change moves an
/// hour later).
pub fn due_at(
    tz: chrono_tz::Tz,
    date: NaiveDate,
    time: chrono::NaiveTime,
) -> Option<DateTime<Utc>> {
    let local = date.and_time(time);
    let at = match tz.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t,
        LocalResult::None => tz
            .from_local_datetime(&(local + TimeDelta::hours(1)))
            .earliest()?,
    };
    Some(at.with_timezone(&Utc))
}

/// One check at `now`: inserts the rows of the summaries that are due. Returns how many.
pub async fn tick(bus: &Bus, now: DateTime<Utc>) -> Result<usize, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT tenant_id, enabled, settings, credentials_enc, created_at, updated_at \
         FROM integration_settings WHERE kind = 'slack' AND enabled \
           AND credentials_enc IS NOT NULL AND settings->>'daily_summary_time' IS NOT NULL",
    )
    .fetch_all(&bus.inner.system)
    .await?;
    let mut inserted = 0;
    for r in rows {
        let row = match crate::repo::integration_of::<SlackSettings>(&r) {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable Slack settings");
                continue;
            }
        };
        let (Some(tz), Some(time)) = (row.settings.tz(), row.settings.summary_time()) else {
            continue;
        };
        let date = now.with_timezone(&tz).date_naive();
        let Some(due) = due_at(tz, date, time) else {
            continue;
        };
        if now < due {
            continue;
        }
        let dedupe = format!("slack:daily:{date}");
        let exists: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM bus_deliveries WHERE tenant_id = $1 AND dedupe_key = $2",
        )
        .bind(row.tenant_id)
        .bind(&dedupe)
        .fetch_optional(&bus.inner.system)
        .await?;
        if exists.is_some() {
            continue;
        }
        let summary = summary(bus, row.tenant_id, due - TimeDelta::hours(24)).await?;
        let body = messages::slack_daily_summary(&date.to_string(), &summary, now);
        let done = sqlx::query(
            "INSERT INTO bus_deliveries (id, tenant_id, target, kind, endpoint, dedupe_key, \
             payload, status) VALUES ($1, $2, 'slack', 'daily_summary', $3, $4, $5, 'pending') \
             ON CONFLICT (tenant_id, dedupe_key) DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(row.tenant_id)
        .bind(format!("slack:{}", row.tenant_id))
        .bind(&dedupe)
        .bind(json!({ "body": body }))
        .execute(&bus.inner.system)
        .await?;
        inserted += usize::try_from(done.rows_affected()).unwrap_or(0);
    }
    Ok(inserted)
}

/// The tenant's numbers: open incidents now, created and resolved since `since`.
async fn summary(bus: &Bus, tenant: Uuid, since: DateTime<Utc>) -> Result<Summary, sqlx::Error> {
    let r = sqlx::query(
        "SELECT \
           count(*) FILTER (WHERE status NOT IN ('resolved', 'closed', 'cancelled')), \
           count(*) FILTER (WHERE status NOT IN ('resolved', 'closed', 'cancelled') \
                              AND priority = 'critical'), \
           count(*) FILTER (WHERE status NOT IN ('resolved', 'closed', 'cancelled') \
                              AND priority = 'high'), \
           count(*) FILTER (WHERE status NOT IN ('resolved', 'closed', 'cancelled') \
                              AND resolution_due_at < now()), \
           count(*) FILTER (WHERE created_at >= $2), \
           count(*) FILTER (WHERE resolved_at >= $2) \
         FROM rm_incidents WHERE tenant_id = $1",
    )
    .bind(tenant)
    .bind(since)
    .fetch_one(&bus.inner.system)
    .await?;
    Ok(Summary {
        open: r.try_get(0)?,
        open_critical: r.try_get(1)?,
        open_high: r.try_get(2)?,
        overdue: r.try_get(3)?,
        created: r.try_get(4)?,
        resolved: r.try_get(5)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::NaiveTime;

    #[test]
    fn due_in_the_tenants_zone() {
        let tokyo: chrono_tz::Tz = "Asia/Tokyo".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2025, 1, 6).unwrap();
        let t = NaiveTime::from_hms_opt(9, 0, 0).unwrap();
        assert_eq!(
            due_at(tokyo, d, t).unwrap().to_rfc3339(),
            "2025-01-06T00:00:00+00:00"
        );
        // Europe/Berlin skips 02:30 on 2025-03-30: an hour later.
        let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2025, 3, 30).unwrap();
        let t = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        assert_eq!(
            due_at(berlin, d, t).unwrap().to_rfc3339(),
            "2025-03-30T01:30:00+00:00"
        );
    }
}
