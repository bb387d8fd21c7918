//! Queries over the analytics read model (`rm_analytics_*`, projection [`crate::analytics`]):
//! the figures of `GET /api/v1/analytics/{summary,trends,mttr,mtta,sla,backlog}`.
//!
//! Every figure is exact. None of them reads the event log or the incident list; each endpoint
//! reads one cube cell of a few small tables (see ADR 0015):
//!
//! - **summary, backlog**: current counts (`rm_analytics_current`, `rm_analytics_open_age`);
//!   aging needs, for the (at most four) UTC days cut by a bucket boundary, the open incidents
//!   created on those days (`rm_analytics_incidents`, partial index on open incidents).
//! - **trends**: the requested buckets (hour, day or ISO week in any IANA zone, DST included)
//!   are cut into UTC-aligned day, hour and 15-minute blocks, whose counts are stored. Every zone
//!   offset since 1970 is a multiple of 15 minutes, so each bucket is an exact sum of blocks.
//! - **mttr, mtta, sla**: durations are counted per block of 1, 8, 64 and 512 UTC days, per
//!   cell (any team or one team × any priority or one), with a histogram of 1/32-octave bins
//!   (`crate::analytics::duration_bin`). A range is the blocks it covers whole plus the samples
//!   of its two partial days, read one by one. The mean is sum / count. The median is exact:
//!   the histograms give the bin holding the middle rank(s) and the rank inside the bin, and one
//!   index range scan over that bin's samples within the range (`ORDER BY secs OFFSET r LIMIT
//!   1`) gives the value. With a `category_id` filter (not a histogram dimension) the samples of
//!   the category in the range are read directly.

use super::Result;
use crate::analytics::{
    ANY, ANY_PRIORITY, BUSINESS, FLOW_LEVEL_SECS, HIST_LEVEL_SECS, NONE, RESOLUTION, RESPONSE,
    WALL, duration_bin, merge_hist, open_key,
};
use crate::incidents::priority_rank;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use eventdesk_domain::TenantId;
use eventdesk_domain::values::{IncidentStatus, Priority};
use serde::Serialize;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// The team and category filters (both optional).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only incidents of this team (at the time of each counted event, for flows and
    /// durations; now, for current counts).
    pub team_id: Option<Uuid>,
    /// Only incidents of this category (same timing).
    pub category_id: Option<Uuid>,
}

impl Filter {
    /// The cube cell the filter reads.
    fn cell(&self) -> (Uuid, Uuid) {
        (self.team_id.unwrap_or(ANY), self.category_id.unwrap_or(ANY))
    }
}

/// Priorities in report order, most severe first.
pub const PRIORITY_ORDER: [Priority; 4] = [
    Priority::Critical,
    Priority::High,
    Priority::Medium,
    Priority::Low,
];

/// The open statuses in report order.
pub const OPEN_STATUSES: [IncidentStatus; 4] = [
    IncidentStatus::New,
    IncidentStatus::Assigned,
    IncidentStatus::InProgress,
    IncidentStatus::OnHold,
];

fn id_of(key: Uuid) -> Option<Uuid> {
    (key != NONE).then_some(key)
}

/// `id` ascending with "none" (null) last.
fn id_order(a: &Option<Uuid>, b: &Option<Uuid>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

fn percent(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

// ------------------------------------------------------------------------------------------
// summary
// ------------------------------------------------------------------------------------------

/// A count of open incidents in one status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusCount {
    /// The status.
    pub status: &'static str,
    /// Open incidents in it.
    pub count: i64,
}

/// A count per priority.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriorityCount {
    /// The priority.
    pub priority: &'static str,
    /// The count.
    pub count: i64,
}

/// A count per team (`null`: incidents without a team).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamCount {
    /// The team.
    pub team_id: Option<Uuid>,
    /// The count.
    pub count: i64,
}

/// A count per category (`null`: incidents without a category).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryCount {
    /// The category.
    pub category_id: Option<Uuid>,
    /// The count.
    pub count: i64,
}

/// `GET /api/v1/analytics/summary`: the open incidents now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Open incidents (new, assigned, in progress, on hold).
    pub total_open: i64,
    /// Open incidents of priority critical.
    pub critical_open: i64,
    /// Open incidents without an assignee.
    pub unassigned: i64,
    /// Per open status (all four, zeros included).
    pub by_status: Vec<StatusCount>,
    /// Per priority (all four, most severe first).
    pub by_priority: Vec<PriorityCount>,
    /// Per team (non-zero only; largest first).
    pub by_team: Vec<TeamCount>,
    /// Per category (non-zero only; largest first).
    pub by_category: Vec<CategoryCount>,
}

/// Rows of `rm_analytics_current` for `measure`: the filter's cell and, for breakdowns, the
/// cells one dimension finer.
async fn current_rows(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &Filter,
    measure: &str,
    finer: bool,
) -> Result<Vec<(Uuid, Uuid, String, i64)>> {
    let (tk, ck) = filter.cell();
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT team_key, category_key, key, n FROM rm_analytics_current WHERE tenant_id = ",
    );
    q.push_bind(tenant.0)
        .push(" AND measure = ")
        .push_bind(measure.to_owned())
        .push(" AND n <> 0");
    if finer {
        match (filter.team_id, filter.category_id) {
            (None, None) => {
                q.push(" AND (team_key = ")
                    .push_bind(ANY)
                    .push(" OR category_key = ")
                    .push_bind(ANY)
                    .push(")");
            }
            (Some(t), None) => {
                q.push(" AND team_key = ").push_bind(t);
            }
            (None, Some(c)) => {
                q.push(" AND category_key = ").push_bind(c);
            }
            (Some(t), Some(c)) => {
                q.push(" AND team_key = ")
                    .push_bind(t)
                    .push(" AND category_key = ")
                    .push_bind(c);
            }
        }
    } else {
        q.push(" AND team_key = ")
            .push_bind(tk)
            .push(" AND category_key = ")
            .push_bind(ck);
    }
    let rows = q.build().fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
        .collect()
}

/// The open incidents now, by status, priority, team and category.
pub async fn summary(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &Filter,
) -> Result<Summary> {
    let rows = current_rows(conn, tenant, filter, "open", true).await?;
    let (tk, ck) = filter.cell();
    let mut by_status: BTreeMap<&str, i64> = BTreeMap::new();
    let mut by_priority: BTreeMap<&str, i64> = BTreeMap::new();
    let (mut total, mut unassigned) = (0, 0);
    let mut teams: BTreeMap<Uuid, i64> = BTreeMap::new();
    let mut categories: BTreeMap<Uuid, i64> = BTreeMap::new();
    for (team, category, key, n) in &rows {
        if *team == tk && *category == ck {
            let mut parts = key.split(':');
            let (Some(status), Some(priority), Some(assigned)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(super::QueryError::Corrupt {
                    column: "rm_analytics_current.key",
                    message: format!("open key {key:?}"),
                });
            };
            total += n;
            if let Some(s) = OPEN_STATUSES.iter().find(|s| s.as_str() == status) {
                *by_status.entry(s.as_str()).or_default() += n;
            }
            if let Some(p) = PRIORITY_ORDER.iter().find(|p| p.as_str() == priority) {
                *by_priority.entry(p.as_str()).or_default() += n;
            }
            if assigned == "unassigned" {
                unassigned += n;
            }
        }
        if *category == ck && *team != ANY {
            *teams.entry(*team).or_default() += n;
        }
        if *team == tk && *category != ANY {
            *categories.entry(*category).or_default() += n;
        }
    }
    let mut by_team: Vec<TeamCount> = teams
        .into_iter()
        .filter(|(_, n)| *n != 0)
        .map(|(t, count)| TeamCount {
            team_id: id_of(t),
            count,
        })
        .collect();
    by_team.sort_by(|a, b| b.count.cmp(&a.count).then(id_order(&a.team_id, &b.team_id)));
    let mut by_category: Vec<CategoryCount> = categories
        .into_iter()
        .filter(|(_, n)| *n != 0)
        .map(|(c, count)| CategoryCount {
            category_id: id_of(c),
            count,
        })
        .collect();
    by_category.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(id_order(&a.category_id, &b.category_id))
    });
    Ok(Summary {
        total_open: total,
        critical_open: by_priority
            .get(Priority::Critical.as_str())
            .copied()
            .unwrap_or(0),
        unassigned,
        by_status: OPEN_STATUSES
            .iter()
            .map(|s| StatusCount {
                status: s.as_str(),
                count: by_status.get(s.as_str()).copied().unwrap_or(0),
            })
            .collect(),
        by_priority: PRIORITY_ORDER
            .iter()
            .map(|p| PriorityCount {
                priority: p.as_str(),
                count: by_priority.get(p.as_str()).copied().unwrap_or(0),
            })
            .collect(),
        by_team,
        by_category,
    })
}

// ------------------------------------------------------------------------------------------
// backlog
// ------------------------------------------------------------------------------------------

/// The aging buckets: name and age range `[min, max)` in days (`None` = no upper bound).
pub const AGING_BUCKETS: [(&str, i64, Option<i64>); 5] = [
    ("lt_1d", 0, Some(1)),
    ("1d_3d", 1, Some(3)),
    ("3d_7d", 3, Some(7)),
    ("7d_30d", 7, Some(30)),
    ("gt_30d", 30, None),
];

/// Open incidents whose age is in `[min_age_days, max_age_days)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgingBucket {
    /// `lt_1d`, `1d_3d`, `3d_7d`, `7d_30d` or `gt_30d`.
    pub bucket: &'static str,
    /// Lower bound of the age, in days (inclusive).
    pub min_age_days: i64,
    /// Upper bound of the age, in days (exclusive); `null` for the last bucket.
    pub max_age_days: Option<i64>,
    /// Open incidents of that age.
    pub count: i64,
}

/// Incidents ever resolved and ever reopened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReopenRate {
    /// Incidents resolved at least once.
    pub resolved_incidents: i64,
    /// Of those, incidents reopened at least once.
    pub reopened_incidents: i64,
    /// `reopened / resolved × 100`; `null` when nothing was resolved.
    pub rate_percent: Option<f64>,
}

/// Open incidents assigned to one agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workload {
    /// The assignee.
    pub assignee_id: Uuid,
    /// Open incidents assigned to them.
    pub open: i64,
}

/// `GET /api/v1/analytics/backlog`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backlog {
    /// The instant ages are measured at.
    pub as_of: DateTime<Utc>,
    /// Open incidents.
    pub open_total: i64,
    /// Open incidents by age (now − created), youngest first.
    pub aging: Vec<AgingBucket>,
    /// Reopen rate over all incidents ever resolved.
    pub reopen: ReopenRate,
    /// Open incidents per assignee, busiest first.
    pub workload: Vec<Workload>,
}

/// The aging bucket of an incident created at `created` (index into [`AGING_BUCKETS`]).
fn aging_index(now: DateTime<Utc>, created: DateTime<Utc>) -> usize {
    let age = now - created;
    AGING_BUCKETS
        .iter()
        .position(|(_, _, max)| max.is_none_or(|m| age < Duration::days(m)))
        .unwrap_or(AGING_BUCKETS.len() - 1)
}

/// Backlog aging, reopen rate and workload now.
pub async fn backlog(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &Filter,
    now: DateTime<Utc>,
) -> Result<Backlog> {
    let (tk, ck) = filter.cell();
    let days: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT day, n FROM rm_analytics_open_age WHERE tenant_id = $1 AND team_key = $2 \
         AND category_key = $3 AND n <> 0",
    )
    .bind(tenant.0)
    .bind(tk)
    .bind(ck)
    .fetch_all(&mut *conn)
    .await?;
    let mut counts = [0i64; AGING_BUCKETS.len()];
    let mut split_days = Vec::new();
    let mut total = 0;
    for (day, n) in days {
        total += n;
        let start = day_start(i64::from(day));
        let end = start + Duration::days(1);
        // Ages over the day run from now − end (exclusive) to now − start; the day is whole
        // in one bucket when its first and last microsecond fall in the same one.
        let (a, b) = (
            aging_index(now, start),
            aging_index(now, end - Duration::microseconds(1)),
        );
        if a == b {
            counts[a] += n;
        } else {
            split_days.push((start, end));
        }
    }
    for (start, end) in split_days {
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT created_at FROM rm_analytics_incidents WHERE tenant_id = ",
        );
        q.push_bind(tenant.0)
            .push(" AND status IN ('new', 'assigned', 'in_progress', 'on_hold') AND created_at >= ")
            .push_bind(start)
            .push(" AND created_at < ")
            .push_bind(end);
        if let Some(t) = filter.team_id {
            q.push(" AND team_id = ").push_bind(t);
        }
        if let Some(c) = filter.category_id {
            q.push(" AND category_id = ").push_bind(c);
        }
        for row in q.build().fetch_all(&mut *conn).await? {
            let created: DateTime<Utc> = row.try_get(0)?;
            counts[aging_index(now, created)] += 1;
        }
    }
    let reopen = current_rows(conn, tenant, filter, "reopen", false).await?;
    let get = |k: &str| reopen.iter().filter(|r| r.2 == k).map(|r| r.3).sum::<i64>();
    let (resolved, reopened) = (get("resolved"), get("reopened"));
    let mut workload: Vec<Workload> = current_rows(conn, tenant, filter, "workload", false)
        .await?
        .into_iter()
        .filter_map(|(_, _, key, n)| {
            key.parse().ok().map(|assignee_id| Workload {
                assignee_id,
                open: n,
            })
        })
        .collect();
    workload.sort_by(|a, b| b.open.cmp(&a.open).then(a.assignee_id.cmp(&b.assignee_id)));
    Ok(Backlog {
        as_of: now,
        open_total: total,
        aging: AGING_BUCKETS
            .iter()
            .zip(counts)
            .map(|((bucket, min, max), count)| AgingBucket {
                bucket,
                min_age_days: *min,
                max_age_days: *max,
                count,
            })
            .collect(),
        reopen: ReopenRate {
            resolved_incidents: resolved,
            reopened_incidents: reopened,
            rate_percent: percent(reopened, resolved),
        },
        workload,
    })
}

fn day_start(day: i64) -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + Duration::days(day)
}

// ------------------------------------------------------------------------------------------
// trends
// ------------------------------------------------------------------------------------------

/// A trend bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Local clock hours (a repeated hour at a DST fold is two buckets).
    Hour,
    /// Local calendar days (23 or 25 hours across DST).
    Day,
    /// ISO weeks, Monday 00:00 local.
    Week,
}

impl Bucket {
    /// The accepted `bucket=` values.
    pub const NAMES: &'static [&'static str] = &["hour", "day", "week"];

    /// Parses a `bucket=` value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            "week" => Some(Self::Week),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
        }
    }
}

/// An IANA time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(Tz);

impl Zone {
    /// UTC.
    pub const UTC: Zone = Zone(Tz::UTC);

    /// Parses an IANA name (`Europe/Berlin`, `Asia/Kolkata`, `UTC` …).
    pub fn parse(s: &str) -> Option<Self> {
        s.parse::<Tz>().ok().map(Zone)
    }

    /// The IANA name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

/// The most buckets one trends request may span.
pub const MAX_BUCKETS: usize = 1000;

/// Why a trends request cannot be planned (a client error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrendError {
    /// The range spans more than [`MAX_BUCKETS`] buckets.
    #[error("the range spans more than {MAX_BUCKETS} buckets of this size")]
    TooManyBuckets,
    /// A bucket boundary of the zone is not on a 15-minute grid (a pre-1970 local mean time).
    #[error("the zone's offset at {0} is not a multiple of 15 minutes")]
    UnalignedOffset(DateTime<Utc>),
}

/// A planned trends query: the buckets and the stored blocks each is made of.
#[derive(Debug, Clone)]
pub struct TrendPlan {
    bucket: Bucket,
    zone: Zone,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// Bucket boundaries (UTC seconds), ascending; bucket `i` is `[b[i], b[i+1])`.
    boundaries: Vec<i64>,
    /// `(level, block start secs, bucket index, sign)`: bucket `i` is the signed sum of its
    /// blocks.
    blocks: Vec<(i16, i64, usize, i64)>,
}

/// The UTC instants at which a local wall-clock time occurs: one, two at a fold (earliest
/// first), or, in a gap, the first instant after it.
fn local_instants(tz: Tz, naive: NaiveDateTime) -> Vec<DateTime<Utc>> {
    use chrono::LocalResult;
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => vec![t.with_timezone(&Utc)],
        LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
            vec![a.min(b), a.max(b)]
        }
        LocalResult::None => {
            // The first valid local time after the gap (gaps end on a minute; at most a day).
            let mut n = naive;
            for _ in 0..(48 * 60) {
                n += Duration::minutes(1);
                if let Some(t) = tz.from_local_datetime(&n).earliest() {
                    return vec![t.with_timezone(&Utc)];
                }
            }
            Vec::new()
        }
    }
}

/// The local boundary at or before `naive` and the step to the next one.
fn floor_local(bucket: Bucket, naive: NaiveDateTime) -> NaiveDateTime {
    let date = naive.date();
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or(naive);
    match bucket {
        Bucket::Hour => date.and_hms_opt(naive.hour(), 0, 0).unwrap_or(naive),
        Bucket::Day => midnight(date),
        Bucket::Week => {
            midnight(date - Duration::days(i64::from(date.weekday().num_days_from_monday())))
        }
    }
}

fn step_local(bucket: Bucket, naive: NaiveDateTime) -> NaiveDateTime {
    match bucket {
        Bucket::Hour => naive + Duration::hours(1),
        Bucket::Day => naive + Duration::days(1),
        Bucket::Week => naive + Duration::days(7),
    }
}

/// Plans a trends query: the buckets of `bucket` size in `zone` that intersect `[from, to)`
/// (whole buckets: the first contains `from`, the last contains the instant before `to`).
pub fn plan_trends(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: Bucket,
    zone: Zone,
) -> std::result::Result<TrendPlan, TrendError> {
    let tz = zone.0;
    let mut boundaries: Vec<i64> = Vec::new();
    if from < to {
        // Start one local step before `from` (a fold can put `from` before the floor's
        // earliest instant), stop at the first boundary at or after `to`.
        let first = floor_local(bucket, from.with_timezone(&tz).naive_local());
        let mut naive = match bucket {
            Bucket::Hour => first - Duration::hours(1),
            Bucket::Day => first - Duration::days(1),
            Bucket::Week => first - Duration::days(7),
        };
        let mut all: Vec<i64> = Vec::new();
        loop {
            for t in local_instants(tz, naive) {
                if bucket == Bucket::Hour || all.last().is_none_or(|l| *l < t.timestamp()) {
                    all.push(t.timestamp());
                }
                if bucket != Bucket::Hour {
                    break;
                }
            }
            if all
                .last()
                .is_some_and(|l| *l >= to.timestamp() && *l > from.timestamp())
            {
                break;
            }
            if all.len() > MAX_BUCKETS + 4 {
                return Err(TrendError::TooManyBuckets);
            }
            naive = step_local(bucket, naive);
        }
        all.sort_unstable();
        all.dedup();
        // Keep the buckets that intersect [from, to).
        let (f, t) = (from.timestamp_micros(), to.timestamp_micros());
        for w in all.windows(2) {
            let (s, e) = (w[0] * 1_000_000, w[1] * 1_000_000);
            if e > f && s < t {
                if boundaries.last() != Some(&w[0]) {
                    boundaries.push(w[0]);
                }
                boundaries.push(w[1]);
            }
        }
    }
    if boundaries.len() > MAX_BUCKETS + 1 {
        return Err(TrendError::TooManyBuckets);
    }
    for b in &boundaries {
        if b.rem_euclid(FLOW_LEVEL_SECS[0]) != 0 {
            return Err(TrendError::UnalignedOffset(
                Utc.timestamp_opt(*b, 0).single().unwrap_or(from),
            ));
        }
    }
    // Two exact ways to cut the buckets into stored blocks; the one reading fewer wins.
    let cut = cut_greedy(&boundaries);
    let signed = cut_signed(&boundaries);
    let distinct = |v: &[(i16, i64, usize, i64)]| {
        v.iter()
            .map(|b| (b.0, b.1))
            .collect::<std::collections::HashSet<_>>()
            .len()
    };
    let blocks = if distinct(&signed) < distinct(&cut) {
        signed
    } else {
        cut
    };
    Ok(TrendPlan {
        bucket,
        zone,
        from,
        to,
        boundaries,
        blocks,
    })
}

/// Each bucket cut into the largest aligned blocks that fit, from its start (all added).
fn cut_greedy(boundaries: &[i64]) -> Vec<(i16, i64, usize, i64)> {
    let mut blocks = Vec::new();
    for (i, w) in boundaries.windows(2).enumerate() {
        let (start, end) = (w[0], w[1]);
        let mut cursor = start;
        while cursor < end {
            let level = (0..FLOW_LEVEL_SECS.len())
                .rev()
                .find(|l| {
                    let s = FLOW_LEVEL_SECS[*l];
                    cursor.rem_euclid(s) == 0 && cursor + s <= end
                })
                .unwrap_or(0);
            blocks.push((level as i16, cursor, i, 1));
            cursor += FLOW_LEVEL_SECS[level];
        }
    }
    blocks
}

/// The UTC day block level (the largest).
const DAY_LEVEL: usize = FLOW_LEVEL_SECS.len() - 1;

/// `[day start, x)` as signed blocks: `a` 6-hour blocks from the day's start (or the day block
/// for `a = 4`), then `b` hours forward or back, then `c` quarters forward or back, with the
/// fewest blocks. Every block is aligned, since each step starts on a multiple of its size.
fn day_prefix(x: i64) -> Vec<(i16, i64, i64)> {
    let [q, h, s, d] = FLOW_LEVEL_SECS;
    let day = x.div_euclid(d) * d;
    let t = x - day;
    let mut best: Option<(i64, i64, i64, i64)> = None;
    for a in 0..=4i64 {
        for b in -6..=6i64 {
            for c in -4..=4i64 {
                if a * s + b * h + c * q != t {
                    continue;
                }
                let cost = if a == 4 { 1 } else { a } + b.abs() + c.abs();
                if best.is_none_or(|x| cost < x.0) {
                    best = Some((cost, a, b, c));
                }
            }
        }
    }
    let Some((_, a, b, c)) = best else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if a == 4 {
        out.push((DAY_LEVEL as i16, day, 1));
    } else {
        for k in 0..a {
            out.push((2, day + k * s, 1));
        }
    }
    let anchor = day + a * s;
    for k in 0..b.abs() {
        if b > 0 {
            out.push((1, anchor + k * h, 1));
        } else {
            out.push((1, anchor - (k + 1) * h, -1));
        }
    }
    let anchor = anchor + b * h;
    for k in 0..c.abs() {
        if c > 0 {
            out.push((0, anchor + k * q, 1));
        } else {
            out.push((0, anchor - (k + 1) * q, -1));
        }
    }
    out
}

/// Each bucket `[b, e)` as the whole UTC days from `b`'s day to `e`'s day, plus the signed
/// blocks of `[e's day start, e)`, minus those of `[b's day start, b)`: a boundary's blocks
/// serve both buckets it separates, so a local day in a zone off UTC costs a handful of
/// blocks instead of a day of quarters and hours.
fn cut_signed(boundaries: &[i64]) -> Vec<(i16, i64, usize, i64)> {
    let d = FLOW_LEVEL_SECS[DAY_LEVEL];
    let prefixes: Vec<Vec<(i16, i64, i64)>> = boundaries.iter().map(|b| day_prefix(*b)).collect();
    let mut blocks = Vec::new();
    for (i, w) in boundaries.windows(2).enumerate() {
        let mut signed: std::collections::BTreeMap<(i16, i64), i64> = Default::default();
        let (first, last) = (w[0].div_euclid(d), w[1].div_euclid(d));
        for day in first..last {
            *signed.entry((DAY_LEVEL as i16, day * d)).or_default() += 1;
        }
        for (l, start, sign) in &prefixes[i + 1] {
            *signed.entry((*l, *start)).or_default() += sign;
        }
        for (l, start, sign) in &prefixes[i] {
            *signed.entry((*l, *start)).or_default() -= sign;
        }
        blocks.extend(
            signed
                .into_iter()
                .filter(|(_, sign)| *sign != 0)
                .map(|((l, start), sign)| (l, start, i, sign)),
        );
    }
    blocks
}

impl TrendPlan {
    /// How many buckets.
    pub fn buckets(&self) -> usize {
        self.boundaries.len().saturating_sub(1)
    }

    /// How many stored blocks the buckets are made of.
    pub fn blocks(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| (b.0, b.1))
            .collect::<std::collections::HashSet<_>>()
            .len()
    }
}

/// Flows of one bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendPoint {
    /// Bucket start, local time with its offset (RFC 3339).
    pub start: String,
    /// Bucket end (exclusive), likewise.
    pub end: String,
    /// Incidents created.
    pub created: i64,
    /// Resolutions (an incident resolved again after a reopen counts again).
    pub resolved: i64,
    /// Incidents closed.
    pub closed: i64,
    /// Reopens.
    pub reopened: i64,
}

/// Totals over all buckets.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrendTotals {
    /// Incidents created.
    pub created: i64,
    /// Resolutions.
    pub resolved: i64,
    /// Incidents closed.
    pub closed: i64,
    /// Reopens.
    pub reopened: i64,
}

/// `GET /api/v1/analytics/trends`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trends {
    /// `hour`, `day` or `week`.
    pub bucket: &'static str,
    /// The IANA zone of the buckets.
    pub tz: &'static str,
    /// The requested range start.
    pub from: DateTime<Utc>,
    /// The requested range end.
    pub to: DateTime<Utc>,
    /// One point per bucket, oldest first (whole buckets, so the first may start before
    /// `from` and the last end after `to`).
    pub data: Vec<TrendPoint>,
    /// Sums over `data`.
    pub totals: TrendTotals,
}

fn local_label(tz: Tz, secs: i64) -> String {
    match Utc.timestamp_opt(secs, 0).single() {
        Some(t) => t
            .with_timezone(&tz)
            .format("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        None => secs.to_string(),
    }
}

/// Created, resolved, closed and reopened per bucket of `plan`.
pub async fn trends(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &Filter,
    plan: &TrendPlan,
) -> Result<Trends> {
    let (tk, ck) = filter.cell();
    let mut index: HashMap<(i16, i64), Vec<(usize, i64)>> =
        HashMap::with_capacity(plan.blocks.len());
    for (level, start, i, sign) in &plan.blocks {
        index.entry((*level, *start)).or_default().push((*i, *sign));
    }
    // Per level: a range scan when at least a quarter of the level's blocks between the first
    // and the last wanted one are wanted (e.g. the days and 6-hour blocks of a year in a zone
    // off UTC), else one primary-key probe per block (its quarters). Rows a range returns that
    // no bucket wants are skipped below.
    let at = |secs: i64| {
        Utc.timestamp_opt(secs, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
    };
    let mut by_level: BTreeMap<i16, Vec<i64>> = BTreeMap::new();
    for (level, start) in index.keys() {
        by_level.entry(*level).or_default().push(*start);
    }
    let (mut levels, mut starts) = (Vec::new(), Vec::new());
    let (mut range_levels, mut range_lo, mut range_hi) = (Vec::new(), Vec::new(), Vec::new());
    for (level, mut wanted) in by_level {
        wanted.sort_unstable();
        let (Some(lo), Some(hi)) = (wanted.first().copied(), wanted.last().copied()) else {
            continue;
        };
        let size = usize::try_from(level)
            .ok()
            .and_then(|l| FLOW_LEVEL_SECS.get(l))
            .copied()
            .unwrap_or(FLOW_LEVEL_SECS[0]);
        let span = (hi - lo) / size + 1;
        if (wanted.len() as i64) * 4 >= span {
            range_levels.push(level);
            range_lo.push(at(lo));
            range_hi.push(at(hi));
        } else {
            // In key order: neighbouring probes share index pages.
            for start in wanted {
                levels.push(level);
                starts.push(at(start));
            }
        }
    }
    let mut counts = vec![[0i64; 4]; plan.buckets()];
    if !levels.is_empty() || !range_levels.is_empty() {
        let rows = sqlx::query(
            // The probes: the LATERAL's LIMIT keeps the planner from turning them into a join
            // that reads the cell's every row (~45,000 rows at 1 M incidents); the ranges:
            // `OFFSET 0` keeps each a range scan of its level.
            "SELECT b.level, b.bucket, f.created, f.resolved, f.closed, f.reopened \
             FROM unnest($4::int2[], $5::timestamptz[]) AS b(level, bucket) \
             CROSS JOIN LATERAL ( \
                 SELECT f.created, f.resolved, f.closed, f.reopened \
                 FROM rm_analytics_flows f \
                 WHERE f.tenant_id = $1 AND f.team_key = $2 AND f.category_key = $3 \
                   AND f.level = b.level AND f.bucket = b.bucket \
                 LIMIT 1) f \
             UNION ALL \
             SELECT f.level, f.bucket, f.created, f.resolved, f.closed, f.reopened \
             FROM unnest($6::int2[], $7::timestamptz[], $8::timestamptz[]) AS r(level, lo, hi) \
             CROSS JOIN LATERAL ( \
                 SELECT f.level, f.bucket, f.created, f.resolved, f.closed, f.reopened \
                 FROM rm_analytics_flows f \
                 WHERE f.tenant_id = $1 AND f.team_key = $2 AND f.category_key = $3 \
                   AND f.level = r.level AND f.bucket >= r.lo AND f.bucket <= r.hi \
                 OFFSET 0) f",
        )
        .bind(tenant.0)
        .bind(tk)
        .bind(ck)
        .bind(&levels)
        .bind(&starts)
        .bind(&range_levels)
        .bind(&range_lo)
        .bind(&range_hi)
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
            let level: i16 = r.try_get(0)?;
            let bucket: DateTime<Utc> = r.try_get(1)?;
            let values = [
                r.try_get::<i64, _>(2)?,
                r.try_get::<i64, _>(3)?,
                r.try_get::<i64, _>(4)?,
                r.try_get::<i64, _>(5)?,
            ];
            for (i, sign) in index
                .get(&(level, bucket.timestamp()))
                .into_iter()
                .flatten()
            {
                for (c, v) in counts[*i].iter_mut().zip(values) {
                    *c += sign * v;
                }
            }
        }
    }
    let tz = plan.zone.0;
    let mut totals = TrendTotals::default();
    let data = plan
        .boundaries
        .windows(2)
        .zip(&counts)
        .map(|(w, c)| {
            totals.created += c[0];
            totals.resolved += c[1];
            totals.closed += c[2];
            totals.reopened += c[3];
            TrendPoint {
                start: local_label(tz, w[0]),
                end: local_label(tz, w[1]),
                created: c[0],
                resolved: c[1],
                closed: c[2],
                reopened: c[3],
            }
        })
        .collect();
    Ok(Trends {
        bucket: plan.bucket.as_str(),
        tz: plan.zone.name(),
        from: plan.from,
        to: plan.to,
        data,
        totals,
    })
}

// ------------------------------------------------------------------------------------------
// durations (mttr, mtta) and SLA compliance
// ------------------------------------------------------------------------------------------

/// Which duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Time to respond (MTTA): creation → first response.
    Response,
    /// Time to resolve (MTTR): start of the resolution cycle → resolution.
    Resolution,
}

impl Metric {
    fn column(self) -> i16 {
        match self {
            Self::Response => RESPONSE,
            Self::Resolution => RESOLUTION,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Response => "response",
            Self::Resolution => "resolution",
        }
    }
}

/// Count, mean and median of a set of durations (seconds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DurationStats {
    /// Samples.
    pub count: i64,
    /// Mean in seconds; `null` without samples.
    pub mean_seconds: Option<f64>,
    /// Median in seconds (the mean of the two middle values for an even count); `null`
    /// without samples.
    pub median_seconds: Option<f64>,
}

/// Wall-clock and business-time figures of one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DurationFigures {
    /// Wall-clock time (holds and closed hours included).
    pub wall: DurationStats,
    /// Business time on the SLA timer's calendar, holds excluded (samples with a timer only).
    pub business: DurationStats,
}

/// The figures of one priority.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriorityDurations {
    /// The priority (at the time of the sample).
    pub priority: &'static str,
    /// Wall-clock time.
    pub wall: DurationStats,
    /// Business time.
    pub business: DurationStats,
}

/// The figures of one team.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamDurations {
    /// The team at the time of the sample (`null`: none).
    pub team_id: Option<Uuid>,
    /// Wall-clock time.
    pub wall: DurationStats,
    /// Business time.
    pub business: DurationStats,
}

/// `GET /api/v1/analytics/mttr` and `…/mtta`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DurationReport {
    /// `resolution` (MTTR) or `response` (MTTA).
    pub metric: &'static str,
    /// Samples taken at or after this instant …
    pub from: DateTime<Utc>,
    /// … and before this one.
    pub to: DateTime<Utc>,
    /// All samples.
    pub overall: DurationFigures,
    /// Per priority, most severe first (all four).
    pub by_priority: Vec<PriorityDurations>,
    /// Per team (teams with samples; `null` = no team).
    pub by_team: Vec<TeamDurations>,
}

/// A group of samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Group {
    Overall,
    Priority(i16),
    Team(Option<Uuid>),
}

/// Accumulated figures of one group and kind.
#[derive(Debug, Clone, Default)]
struct Acc {
    n: i64,
    sum: i64,
    breached: i64,
    /// Histogram (bin → count), on the histogram path.
    hist: Vec<i64>,
    /// Every value, on the direct path.
    values: Vec<i64>,
    /// The median, once known.
    median: Option<f64>,
}

impl Acc {
    fn add(&mut self, secs: i64, breached: bool, direct: bool) {
        self.n += 1;
        self.sum += secs;
        self.breached += i64::from(breached);
        if direct {
            self.values.push(secs);
        } else {
            let b = duration_bin(secs) as usize;
            if self.hist.len() <= b {
                self.hist.resize(b + 1, 0);
            }
            self.hist[b] += 1;
        }
    }

    /// Adds a stored histogram row (its histogram, if read, as
    /// [`encode_hist`](crate::analytics::encode_hist) stores it).
    fn add_hist(&mut self, n: i64, sum: i64, breached: i64, hist: Option<&[u8]>) -> Result<()> {
        self.n += n;
        self.sum += sum;
        self.breached += breached;
        let Some(hist) = hist else { return Ok(()) };
        merge_hist(&mut self.hist, hist).map_err(|e| super::QueryError::Corrupt {
            column: "rm_analytics_hist",
            message: e.to_string(),
        })
    }

    fn stats(&self) -> DurationStats {
        DurationStats {
            count: self.n,
            mean_seconds: (self.n > 0).then(|| self.sum as f64 / self.n as f64),
            median_seconds: self.median,
        }
    }
}

/// The 1-based ranks whose values make the median of `n` values.
fn median_ranks(n: i64) -> Vec<i64> {
    if n <= 0 {
        Vec::new()
    } else if n % 2 == 1 {
        vec![(n + 1) / 2]
    } else {
        vec![n / 2, n / 2 + 1]
    }
}

/// The histogram bin holding rank `r` (1-based) and the rank inside it (1-based).
fn locate(hist: &[i64], r: i64) -> Option<(i16, i64)> {
    let mut before = 0;
    for (b, n) in hist.iter().enumerate() {
        if r <= before + n {
            return Some((i16::try_from(b).ok()?, r - before));
        }
        before += n;
    }
    None
}

/// The whole 6-hour UTC blocks of `[from, to)` cut into the largest aligned histogram blocks,
/// and the partial edges (less than 6 hours each).
#[allow(clippy::type_complexity)]
fn decompose(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (Vec<(i16, i32)>, Vec<(DateTime<Utc>, DateTime<Utc>)>) {
    if from >= to {
        return (Vec::new(), Vec::new());
    }
    let q = HIST_LEVEL_SECS[0];
    let at = |secs: i64| DateTime::<Utc>::UNIX_EPOCH + Duration::seconds(secs);
    let mut c0 = from.timestamp().div_euclid(q) * q;
    if at(c0) < from {
        c0 += q;
    }
    let c1 = to.timestamp().div_euclid(q) * q;
    if c0 >= c1 {
        return (Vec::new(), vec![(from, to)]);
    }
    let mut edges = Vec::new();
    if from < at(c0) {
        edges.push((from, at(c0)));
    }
    if at(c1) < to {
        edges.push((at(c1), to));
    }
    let mut blocks = Vec::new();
    let mut cursor = c0;
    while cursor < c1 {
        let level = (0..HIST_LEVEL_SECS.len())
            .rev()
            .find(|l| {
                let s = HIST_LEVEL_SECS[*l];
                cursor.rem_euclid(s) == 0 && cursor + s <= c1
            })
            .unwrap_or(0);
        let size = HIST_LEVEL_SECS[level];
        blocks.push((level as i16, cursor.div_euclid(size) as i32));
        cursor += size;
    }
    (blocks, edges)
}

/// The samples of a metric in a range, accumulated per group and kind.
struct Collected {
    groups: BTreeMap<Group, [Acc; 2]>,
}

impl Collected {
    fn get(&self, g: Group) -> [Acc; 2] {
        self.groups.get(&g).cloned().unwrap_or_default()
    }
}

/// Adds one sample to its groups (overall, its priority, its team).
fn add_sample(
    groups: &mut BTreeMap<Group, [Acc; 2]>,
    direct: bool,
    (priority, team, wall, business, breached): (i16, Option<Uuid>, i64, Option<i64>, Option<bool>),
) {
    for g in [Group::Overall, Group::Priority(priority), Group::Team(team)] {
        let acc = groups.entry(g).or_default();
        acc[WALL as usize].add(wall, false, direct);
        if let Some(b) = business {
            acc[BUSINESS as usize].add(b, breached.unwrap_or(false), direct);
        }
    }
}

/// The elements of an array in PostgreSQL's binary format (`array_send`), `None` for NULL.
/// Reading arrays this way is much cheaper than decoding them element by element.
fn array_elements(b: &[u8]) -> Result<Vec<Option<&[u8]>>> {
    let bad = || super::QueryError::Corrupt {
        column: "array_send",
        message: "malformed binary array".into(),
    };
    let int = |at: usize| -> Result<i32> {
        b.get(at..at + 4)
            .and_then(|x| x.try_into().ok())
            .map(i32::from_be_bytes)
            .ok_or_else(bad)
    };
    let ndim = int(0)?;
    if ndim == 0 {
        return Ok(Vec::new());
    }
    if ndim != 1 {
        return Err(bad());
    }
    let len = usize::try_from(int(12)?).map_err(|_| bad())?;
    let mut at = 20;
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        let n = int(at)?;
        at += 4;
        if n < 0 {
            out.push(None);
        } else {
            let n = usize::try_from(n).map_err(|_| bad())?;
            out.push(Some(b.get(at..at + n).ok_or_else(bad)?));
            at += n;
        }
    }
    Ok(out)
}

fn be<const N: usize>(x: Option<&[u8]>) -> Option<[u8; N]> {
    x.and_then(|x| x.try_into().ok())
}

/// A binary `int4[]`/`int8[]`/… column of `array_send`, decoded with `f`.
fn array_of<T>(
    r: &sqlx::postgres::PgRow,
    i: usize,
    f: impl Fn(Option<&[u8]>) -> T,
) -> Result<Vec<T>> {
    let bytes: Option<Vec<u8>> = r.try_get(i)?;
    let Some(bytes) = bytes else {
        return Ok(Vec::new());
    };
    Ok(array_elements(&bytes)?.into_iter().map(f).collect())
}

/// Samples packed one row per metric (`array_send(array_agg(…))` of each column), from
/// column `i`: priority, team, wall, business, breached.
#[allow(clippy::type_complexity)]
fn packed_samples(
    r: &sqlx::postgres::PgRow,
    i: usize,
) -> Result<Vec<(i16, Option<Uuid>, i64, Option<i64>, Option<bool>)>> {
    let p = array_of(r, i, |x| be::<2>(x).map_or(0, i16::from_be_bytes))?;
    let t = array_of(r, i + 1, |x| be::<16>(x).map(Uuid::from_bytes))?;
    let w = array_of(r, i + 2, |x| be::<8>(x).map_or(0, i64::from_be_bytes))?;
    let b = array_of(r, i + 3, |x| be::<8>(x).map(i64::from_be_bytes))?;
    let br = array_of(r, i + 4, |x| x.map(|x| x.first() == Some(&1)))?;
    if [t.len(), w.len(), b.len(), br.len()] != [p.len(); 4] {
        return Err(super::QueryError::Corrupt {
            column: "rm_analytics_samples",
            message: "packed columns of different lengths".into(),
        });
    }
    Ok(p.into_iter()
        .zip(t)
        .zip(w)
        .zip(b)
        .zip(br)
        .map(|((((p, t), w), b), br)| (p, t, w, b, br))
        .collect())
}

/// Selects the samples of `metrics` in `[a, b)` (one `SELECT … FROM rm_analytics_samples`),
/// with the category and team filters.
fn push_samples(
    q: &mut QueryBuilder<'static, Postgres>,
    tenant: TenantId,
    filter: &Filter,
    ms: &[i16],
    (a, b): (DateTime<Utc>, DateTime<Utc>),
) {
    q.push(
        "SELECT metric, priority, team_id, wall_secs, business_secs, breached \
         FROM rm_analytics_samples WHERE tenant_id = ",
    )
    .push_bind(tenant.0)
    .push(" AND metric = ANY(")
    .push_bind(ms.to_vec())
    .push(")");
    if let Some(c) = filter.category_id {
        q.push(" AND category_id = ").push_bind(c);
    }
    if let Some(t) = filter.team_id {
        q.push(" AND team_id = ").push_bind(t);
    }
    q.push(" AND at >= ")
        .push_bind(a)
        .push(" AND at < ")
        .push_bind(b);
}

/// The columns of the samples branch: one row per metric, every column packed.
const PACKED: &str = "SELECT 1 AS src, metric, NULL::int2, NULL::uuid, NULL::int2, NULL::int8, \
     NULL::int8, NULL::int8, NULL::bytea, array_send(array_agg(priority)), \
     array_send(array_agg(team_id)), array_send(array_agg(wall_secs)), \
     array_send(array_agg(business_secs)), array_send(array_agg(breached)) FROM (";

/// Accumulates the samples of each of `metrics` in `[from, to)` per group; with `medians`,
/// finds the exact medians too. One statement reads the blocks' histogram rows and the edge
/// days' samples (or, with a category filter, all the category's samples in the range).
async fn collect(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &Filter,
    metrics: &[Metric],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    medians: bool,
) -> Result<Vec<Collected>> {
    let ms: Vec<i16> = metrics.iter().map(|m| m.column()).collect();
    let slot = |m: i16| ms.iter().position(|x| *x == m);
    let mut out: Vec<BTreeMap<Group, [Acc; 2]>> = vec![BTreeMap::new(); ms.len()];
    // Direct: the category is no histogram dimension; read its samples in the range.
    let direct = filter.category_id.is_some();
    // A range that holds every sample of the metrics (e.g. "all time") is the sum of the
    // largest blocks' rows, whatever its edges, and its median look-ups need no time condition.
    let spans = if direct {
        Vec::new()
    } else {
        sample_spans(conn, tenant, &ms, from, to).await?
    };
    let covering = !direct && spans.iter().all(|s| s.covering);
    let (blocks, edges) = if direct {
        (Vec::new(), vec![(from, to)])
    } else if covering {
        (vec![(TOP_LEVEL, 0)], Vec::new())
    } else {
        decompose(from, to)
    };
    let mut q = QueryBuilder::<Postgres>::new("");
    let mut branches = 0;
    if !blocks.is_empty() {
        let levels: Vec<i16> = blocks.iter().map(|b| b.0).collect();
        let ids: Vec<i32> = blocks.iter().map(|b| b.1).collect();
        // The cells wanted: with a team filter, that team's (any priority and each); without,
        // every team's "any priority" cell and the "any team" cell of each priority. Each
        // branch is a range of the primary key (…, block, priority_key, team_key, kind).
        let cells: Vec<(&str, Option<Uuid>)> = match filter.team_id {
            Some(t) => vec![("", Some(t))],
            None => vec![
                (" AND h.priority_key = -1", None),
                (" AND h.priority_key >= 0", Some(ANY)),
            ],
        };
        for (priority, team) in cells {
            if branches > 0 {
                q.push(" UNION ALL ");
            }
            branches += 1;
            // Compliance needs only the business rows' counts, not the histograms.
            q.push(if medians {
                "SELECT 0 AS src, h.metric, h.kind, h.team_key, h.priority_key, h.n, \
                        h.sum_secs, h.breached, h.hist, NULL::bytea, NULL::bytea, \
                        NULL::bytea, NULL::bytea, NULL::bytea \
                 FROM rm_analytics_hist h"
            } else {
                "SELECT 0 AS src, h.metric, h.kind, h.team_key, h.priority_key, h.n, \
                        h.sum_secs, h.breached, NULL::bytea, NULL::bytea, NULL::bytea, \
                        NULL::bytea, NULL::bytea, NULL::bytea \
                 FROM rm_analytics_hist h"
            });
            if !covering {
                q.push(" JOIN unnest(")
                    .push_bind(levels.clone())
                    .push("::int2[], ")
                    .push_bind(ids.clone())
                    .push(
                        "::int4[]) AS b(level, block) ON h.level = b.level \
                         AND h.block = b.block",
                    );
            }
            q.push(" WHERE h.tenant_id = ")
                .push_bind(tenant.0)
                .push(" AND h.metric = ANY(")
                .push_bind(ms.clone())
                .push(")")
                .push(priority);
            if covering {
                q.push(" AND h.level = ").push_bind(TOP_LEVEL);
            }
            if !medians {
                q.push(" AND h.kind = ").push_bind(BUSINESS);
            }
            if let Some(t) = team {
                q.push(" AND h.team_key = ").push_bind(t);
            }
        }
    }
    if !edges.is_empty() {
        if branches > 0 {
            q.push(" UNION ALL ");
        }
        branches += 1;
        q.push(PACKED);
        for (i, range) in edges.iter().enumerate() {
            if i > 0 {
                q.push(" UNION ALL ");
            }
            push_samples(&mut q, tenant, filter, &ms, *range);
        }
        q.push(") s GROUP BY metric");
    }
    if branches == 0 {
        return Ok(out.into_iter().map(|groups| Collected { groups }).collect());
    }
    for r in q.build().fetch_all(&mut *conn).await? {
        let src: i32 = r.try_get(0)?;
        let m: i16 = r.try_get(1)?;
        let Some(k) = slot(m) else { continue };
        let groups = &mut out[k];
        if src == 1 {
            for sample in packed_samples(&r, 9)? {
                add_sample(groups, direct, sample);
            }
            continue;
        }
        let kind: i16 = r.try_get(2)?;
        let team_key: Uuid = r.try_get(3)?;
        let pk: i16 = r.try_get(4)?;
        let n: i64 = r.try_get(5)?;
        let sum: i64 = r.try_get(6)?;
        let breached: i64 = r.try_get(7)?;
        let hist: Option<Vec<u8>> = r.try_get(8)?;
        let kind = usize::from(kind == BUSINESS);
        let targets: &[Group] = match (filter.team_id, team_key == ANY, pk == ANY_PRIORITY) {
            (Some(t), _, true) => &[Group::Overall, Group::Team(Some(t))],
            (Some(_), _, false) | (None, true, false) => &[Group::Priority(pk)],
            (None, true, true) => &[Group::Overall],
            (None, false, true) => &[Group::Team(id_of(team_key))],
            (None, false, false) => &[],
        };
        for g in targets {
            groups.entry(*g).or_default()[kind].add_hist(n, sum, breached, hist.as_deref())?;
        }
    }
    if direct {
        for groups in &mut out {
            for accs in groups.values_mut() {
                for acc in accs.iter_mut() {
                    acc.values.sort_unstable();
                    let vals: Vec<i64> = median_ranks(acc.n)
                        .iter()
                        .filter_map(|r| acc.values.get((*r - 1) as usize).copied())
                        .collect();
                    if !vals.is_empty() {
                        acc.median = Some(vals.iter().sum::<i64>() as f64 / vals.len() as f64);
                    }
                }
            }
        }
    } else if medians {
        for (k, groups) in out.iter_mut().enumerate() {
            let span = spans.get(k).copied().unwrap_or(Span {
                covering,
                spread: 1.0,
            });
            exact_medians(conn, tenant, filter, ms[k], (from, to), span, groups).await?;
        }
    }
    Ok(out.into_iter().map(|groups| Collected { groups }).collect())
}

/// Where a metric's samples lie in time, as far as the median look-ups need.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    /// `[from, to)` holds every sample of the metric.
    covering: bool,
    /// About how many of a bin's samples there are in all for each one in `[from, to)`:
    /// the metric's whole time span over the part of it inside the range (at least 1).
    /// It estimates what a value-ordered look-up skips; the answers do not depend on it.
    spread: f64,
}

impl Span {
    /// A range that holds every sample (or a metric without any).
    const WHOLE: Span = Span {
        covering: true,
        spread: 1.0,
    };

    fn of(
        first: Option<DateTime<Utc>>,
        last: Option<DateTime<Utc>>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Self {
        let (Some(first), Some(last)) = (first, last) else {
            return Span::WHOLE;
        };
        let covering = first >= from && last < to;
        let whole = (last - first).num_seconds().max(1) as f64;
        let inside = (to.min(last) - from.max(first)).num_seconds().max(1) as f64;
        Span {
            covering,
            spread: if covering {
                1.0
            } else {
                (whole / inside).max(1.0)
            },
        }
    }
}

/// The first and the last sample of each of `metrics` (two index probes per metric), as
/// [`Span`]s of `[from, to)`.
async fn sample_spans(
    conn: &mut PgConnection,
    tenant: TenantId,
    metrics: &[i16],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Span>> {
    type FirstLast = (i16, Option<DateTime<Utc>>, Option<DateTime<Utc>>);
    let rows: Vec<FirstLast> = sqlx::query_as(
        "SELECT m.metric, \
                (SELECT min(s.at) FROM rm_analytics_samples s \
                 WHERE s.tenant_id = $1 AND s.metric = m.metric), \
                (SELECT max(s.at) FROM rm_analytics_samples s \
                 WHERE s.tenant_id = $1 AND s.metric = m.metric) \
         FROM unnest($2::int2[]) AS m(metric)",
    )
    .bind(tenant.0)
    .bind(metrics)
    .fetch_all(&mut *conn)
    .await?;
    Ok(metrics
        .iter()
        .map(|m| {
            rows.iter()
                .find(|r| r.0 == *m)
                .map_or(Span::WHOLE, |r| Span::of(r.1, r.2, from, to))
        })
        .collect())
}

/// The histogram level whose blocks (512 days) together hold every sample.
const TOP_LEVEL: i16 = (HIST_LEVEL_SECS.len() - 1) as i16;

/// The time condition of a value-ordered look-up: checked on each entry of the value-ordered
/// index (it includes `at`), written so that the time-ordered indexes cannot take it as a range
/// (they would then be read whole and sorted, which is what modes 0–2 do). Skipped when the
/// range holds every sample (`l.whole`): two additions per entry cost ~1.5 ms over the ~26,000
/// entries of an "all time" request at a million incidents.
const VALUE_ORDER_RANGE: &str =
    " AND (l.whole OR (s.at + interval '0' >= $3 AND s.at + interval '0' < $4))";

/// The exact median look-ups of [`exact_medians`], one fixed statement whatever their number
/// (so it is planned once per connection, not once per request: a UNION of a branch per
/// look-up cost more to plan than to run). Each look-up reads the samples of one bin in the
/// range, `OFFSET`/`LIMIT` to the ranks wanted, one of two ways (ADR 0028):
/// - modes 0–2, *time order*: one index range scan over the bin's samples in the range (by
///   priority `rm_analytics_samples_*_bin`, by team or without one `…_team`), sorted by value;
/// - modes 3–10, *value order*: the bin's samples in value order (`…_value`, migrations 0023
///   and 0025), each entry's `at` checked against the range in the index, so `OFFSET r` reads
///   the entries up to the r-th one in the range and sorts nothing — from the bin's nearer end
///   (modes 7–10 read it backwards). When the range holds every sample ("all time") that is
///   r + 1 entries.
///
/// The LATERAL's `LIMIT` keeps each a separate scan.
static MEDIAN_LOOKUPS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    // Per look-up mode, the samples it selects (`{bin}`: the kind's bin column) and whether
    // the time condition is an index range (time order) or a check of each entry (value order).
    const MODES: [(i16, &str, bool); 11] = [
        (
            0,
            "s.{bin} = l.bin AND s.priority = ANY(CASE WHEN l.prio < 0 \
             THEN '{0,1,2,3}'::int2[] ELSE ARRAY[l.prio] END)",
            true,
        ),
        (
            1,
            "s.team_id = l.team AND s.{bin} = l.bin AND (l.prio < 0 OR s.priority = l.prio)",
            true,
        ),
        (2, "s.team_id IS NULL AND s.{bin} = l.bin", true),
        (3, "s.{bin} = l.bin", false),
        (4, "s.{bin} = l.bin AND s.priority = l.prio", false),
        (
            5,
            "s.team_id = l.team AND s.{bin} = l.bin AND (l.prio < 0 OR s.priority = l.prio)",
            false,
        ),
        (6, "s.team_id IS NULL AND s.{bin} = l.bin", false),
        (7, "s.{bin} = l.bin", false),
        (8, "s.{bin} = l.bin AND s.priority = l.prio", false),
        (
            9,
            "s.team_id = l.team AND s.{bin} = l.bin AND (l.prio < 0 OR s.priority = l.prio)",
            false,
        ),
        (10, "s.team_id IS NULL AND s.{bin} = l.bin", false),
    ];
    let kinds = [
        (WALL, "wall_secs", "wall_bin", ""),
        (
            BUSINESS,
            "business_secs",
            "business_bin",
            " AND s.business_bin IS NOT NULL",
        ),
    ];
    let branches: Vec<String> = kinds
        .iter()
        .flat_map(|(kind, value, bin, partial)| {
            MODES.iter().map(move |(mode, select, timed)| {
                format!(
                    "SELECT l.q, x.v FROM l CROSS JOIN LATERAL ( \
                     SELECT s.{value} AS v FROM rm_analytics_samples s \
                     WHERE s.tenant_id = $1 AND s.metric = $2 AND {}{partial}{} \
                     ORDER BY s.{value}{} OFFSET l.off LIMIT l.lim) x \
                     WHERE l.kind = {kind} AND l.mode = {mode}",
                    select.replace("{bin}", bin),
                    if *timed {
                        " AND s.at >= $3 AND s.at < $4"
                    } else {
                        VALUE_ORDER_RANGE
                    },
                    if *mode >= 7 { " DESC" } else { "" },
                )
            })
        })
        .collect();
    format!(
        "WITH l AS (SELECT * FROM unnest($5::int4[], $6::int2[], $7::int2[], $8::uuid[], \
         $9::int2[], $10::int2[], $11::int8[], $12::int8[], $13::bool[]) \
         AS l(q, kind, mode, team, prio, bin, off, lim, whole)) {}",
        branches.join(" UNION ALL ")
    )
});

/// What sorting a bin's samples costs per sample, in value-ordered index entries read (the
/// time-ordered read reads each of them once and sorts them; ADR 0028 has the measurements).
const SORT_COST: f64 = 2.0;

/// Whether a look-up that needs the first `wanted` samples (in range) from the nearer end of a
/// bin holding `in_bin` samples in the range is cheaper in value order, where about `spread`
/// entries are read for each one in the range, than reading the bin's `in_bin` samples in the
/// range and sorting them.
fn prefer_value_order(wanted: i64, in_bin: i64, spread: f64) -> bool {
    (wanted as f64) * spread < (in_bin as f64) * SORT_COST
}

/// One exact look-up: the values at ranks `offset + 1 ..= offset + limit` of a group's samples
/// in one bin of one kind.
struct Lookup {
    group: Group,
    kind: usize,
    /// Read the bin in value order, checking each entry's time, instead of reading the bin's
    /// samples in the range and sorting them.
    value_order: bool,
    /// The range holds every sample of the metric: in value order, no entry's time is checked.
    whole: bool,
    /// In value order: read from the largest value down (the ranks are nearer the bin's top;
    /// `offset` then counts from the top).
    descending: bool,
    bin: i16,
    offset: i64,
    limit: i64,
    /// The median ranks (1-based, overall) it answers.
    ranks: Vec<(i64, i64)>,
}

/// Finds the exact median of every group and kind of the histogram path: one statement, one
/// index range scan per (group, kind, bin) over the samples of that bin in the range.
async fn exact_medians(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &Filter,
    metric: i16,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    span: Span,
    groups: &mut BTreeMap<Group, [Acc; 2]>,
) -> Result<()> {
    let mut lookups: Vec<Lookup> = Vec::new();
    for (g, accs) in groups.iter() {
        for (k, acc) in accs.iter().enumerate() {
            let mut by_bin: BTreeMap<i16, Vec<(i64, i64)>> = BTreeMap::new();
            for r in median_ranks(acc.n) {
                if let Some((bin, local)) = locate(&acc.hist, r) {
                    by_bin.entry(bin).or_default().push((r, local));
                }
            }
            for (bin, ranks) in by_bin {
                let lo = ranks.iter().map(|x| x.1).min().unwrap_or(1);
                let hi = ranks.iter().map(|x| x.1).max().unwrap_or(1);
                // In value order an `OFFSET` reads every entry it skips: from whichever end
                // of the bin is nearer (the range's histogram counts the bin's samples in the
                // range exactly). Time order reads them all and sorts them anyway.
                let in_bin = acc.hist.get(bin as usize).copied().unwrap_or(0);
                let from_top = lo - 1 > in_bin - hi;
                let skipped = if from_top { in_bin - hi } else { lo - 1 };
                let value_order =
                    span.covering || prefer_value_order(skipped + hi - lo + 1, in_bin, span.spread);
                let descending = value_order && from_top;
                lookups.push(Lookup {
                    group: *g,
                    kind: k,
                    value_order,
                    whole: span.covering,
                    descending,
                    bin,
                    offset: if descending { in_bin - hi } else { lo - 1 },
                    limit: hi - lo + 1,
                    ranks: ranks.iter().map(|(r, local)| (*r, local - lo)).collect(),
                });
            }
        }
    }
    if lookups.is_empty() {
        return Ok(());
    }
    // The look-ups as parallel arrays: a (group, kind) → (mode, team, priority) per look-up,
    // where mode 0 selects by priority (`-1`: any), 1 by team (and the priority unless -1),
    // 2 the samples without a team, in time order; modes 3–6 are the same in value order: 3
    // every priority, 4 one, 5 a team, 6 no team; 7–10 the same from the largest value down.
    let n = lookups.len();
    let (mut kinds, mut modes, mut teams, mut prios) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut bins, mut offsets, mut limits, mut wholes) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for l in &lookups {
        let (mode, team, prio) = match (filter.team_id, l.group) {
            (Some(t), Group::Priority(p)) => (1i16, Some(t), p),
            (Some(t), _) => (1, Some(t), ANY_PRIORITY),
            (None, Group::Overall) => (0, None, ANY_PRIORITY),
            (None, Group::Priority(p)) => (0, None, p),
            (None, Group::Team(Some(t))) => (1, Some(t), ANY_PRIORITY),
            (None, Group::Team(None)) => (2, None, ANY_PRIORITY),
        };
        let mode = match (l.value_order, mode, prio) {
            (false, m, _) => m,
            (true, 0, ANY_PRIORITY) => 3,
            (true, 0, _) => 4,
            (true, 1, _) => 5,
            (true, _, _) => 6,
        } + if l.value_order && l.descending { 4 } else { 0 };
        kinds.push(if l.kind == BUSINESS as usize {
            BUSINESS
        } else {
            WALL
        });
        modes.push(mode);
        teams.push(team);
        prios.push(prio);
        bins.push(l.bin);
        offsets.push(l.offset);
        limits.push(l.limit);
        wholes.push(l.whole);
    }
    let rows = sqlx::query(MEDIAN_LOOKUPS.as_str())
        .bind(tenant.0)
        .bind(metric)
        .bind(from)
        .bind(to)
        .bind((0..n as i32).collect::<Vec<i32>>())
        .bind(kinds)
        .bind(modes)
        .bind(teams)
        .bind(prios)
        .bind(bins)
        .bind(offsets)
        .bind(limits)
        .bind(wholes)
        .fetch_all(&mut *conn)
        .await?;
    let mut found: Vec<Vec<i64>> = vec![Vec::new(); lookups.len()];
    for r in rows {
        let i: i32 = r.try_get(0)?;
        let v: i64 = r.try_get(1)?;
        if let Some(f) = usize::try_from(i).ok().and_then(|i| found.get_mut(i)) {
            f.push(v);
        }
    }
    // Values come back in rank order within each look-up (ORDER BY, then the subquery's order
    // is kept); sort to be sure.
    let mut values: HashMap<(Group, usize), Vec<(i64, i64)>> = HashMap::new();
    for (l, mut vals) in lookups.iter().zip(found) {
        vals.sort_unstable();
        for (rank, idx) in &l.ranks {
            if let Some(v) = usize::try_from(*idx).ok().and_then(|i| vals.get(i)) {
                values
                    .entry((l.group, l.kind))
                    .or_default()
                    .push((*rank, *v));
            }
        }
    }
    for ((g, k), vals) in values {
        if let Some(acc) = groups.get_mut(&g).map(|a| &mut a[k]) {
            let expected = median_ranks(acc.n).len();
            if vals.len() == expected {
                acc.median = Some(vals.iter().map(|x| x.1).sum::<i64>() as f64 / vals.len() as f64);
            } else {
                return Err(super::QueryError::Corrupt {
                    column: "rm_analytics_hist",
                    message: format!(
                        "histogram and samples disagree for {g:?} (kind {k}): {} of {expected} median values found",
                        vals.len()
                    ),
                });
            }
        }
    }
    Ok(())
}

fn figures(accs: &[Acc; 2]) -> (DurationStats, DurationStats) {
    (accs[WALL as usize].stats(), accs[BUSINESS as usize].stats())
}

/// Count, mean and median of the response (MTTA) or resolution (MTTR) durations of the
/// samples taken in `[from, to)`, overall, per priority and per team.
pub async fn durations(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &Filter,
    metric: Metric,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<DurationReport> {
    let c = collect(conn, tenant, filter, &[metric], from, to, true)
        .await?
        .pop()
        .unwrap_or(Collected {
            groups: BTreeMap::new(),
        });
    let (wall, business) = figures(&c.get(Group::Overall));
    let by_priority = PRIORITY_ORDER
        .iter()
        .map(|p| {
            let (wall, business) = figures(&c.get(Group::Priority(priority_rank(*p))));
            PriorityDurations {
                priority: p.as_str(),
                wall,
                business,
            }
        })
        .collect();
    let mut by_team: Vec<TeamDurations> = c
        .groups
        .iter()
        .filter_map(|(g, accs)| match g {
            Group::Team(t) if accs[0].n > 0 || accs[1].n > 0 => {
                let (wall, business) = figures(accs);
                Some(TeamDurations {
                    team_id: *t,
                    wall,
                    business,
                })
            }
            _ => None,
        })
        .collect();
    by_team.sort_by(|a, b| id_order(&a.team_id, &b.team_id));
    Ok(DurationReport {
        metric: metric.as_str(),
        from,
        to,
        overall: DurationFigures { wall, business },
        by_priority,
        by_team,
    })
}

/// Compliance of the timers completed in a range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComplianceFigures {
    /// Timers completed (response given / incident resolved) in the range.
    pub completed: i64,
    /// Of those, within the target.
    pub met: i64,
    /// Of those, past the target.
    pub breached: i64,
    /// `met / completed × 100`; `null` when none completed.
    pub compliance_percent: Option<f64>,
}

impl ComplianceFigures {
    fn of(acc: &Acc) -> Self {
        Self {
            completed: acc.n,
            met: acc.n - acc.breached,
            breached: acc.breached,
            compliance_percent: percent(acc.n - acc.breached, acc.n),
        }
    }
}

/// Compliance of one priority.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriorityCompliance {
    /// The priority at completion.
    pub priority: &'static str,
    /// Timers completed.
    pub completed: i64,
    /// Within target.
    pub met: i64,
    /// Past target.
    pub breached: i64,
    /// `met / completed × 100`.
    pub compliance_percent: Option<f64>,
}

/// Compliance of one team.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamCompliance {
    /// The team at completion (`null`: none).
    pub team_id: Option<Uuid>,
    /// Timers completed.
    pub completed: i64,
    /// Within target.
    pub met: i64,
    /// Past target.
    pub breached: i64,
    /// `met / completed × 100`.
    pub compliance_percent: Option<f64>,
}

/// Compliance of one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compliance {
    /// All completed timers.
    pub overall: ComplianceFigures,
    /// Per priority, most severe first (all four).
    pub by_priority: Vec<PriorityCompliance>,
    /// Per team with completed timers (`null` = no team).
    pub by_team: Vec<TeamCompliance>,
}

/// Breaches of one priority (among the timers completed in the range).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriorityBreaches {
    /// The priority.
    pub priority: &'static str,
    /// Response timers completed past their target.
    pub response: i64,
    /// Resolution timers completed past their target.
    pub resolution: i64,
}

/// Running timers of one metric now.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CurrentTimers {
    /// Running, the 75 % warning recorded, not breached.
    pub at_risk: i64,
    /// Running or paused, breached.
    pub breached: i64,
}

/// The running timers now.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CurrentSla {
    /// Response timers.
    pub response: CurrentTimers,
    /// Resolution timers.
    pub resolution: CurrentTimers,
}

/// `GET /api/v1/analytics/sla`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlaReport {
    /// Timers completed at or after this instant …
    pub from: DateTime<Utc>,
    /// … and before this one.
    pub to: DateTime<Utc>,
    /// Response compliance.
    pub response: Compliance,
    /// Resolution compliance.
    pub resolution: Compliance,
    /// Breached completions per priority, most severe first.
    pub breaches_by_priority: Vec<PriorityBreaches>,
    /// Running timers at risk or breached now.
    pub current: CurrentSla,
}

fn compliance(c: &Collected) -> Compliance {
    let b = BUSINESS as usize;
    let mut by_team: Vec<TeamCompliance> = c
        .groups
        .iter()
        .filter_map(|(g, accs)| match g {
            Group::Team(t) if accs[b].n > 0 => {
                let f = ComplianceFigures::of(&accs[b]);
                Some(TeamCompliance {
                    team_id: *t,
                    completed: f.completed,
                    met: f.met,
                    breached: f.breached,
                    compliance_percent: f.compliance_percent,
                })
            }
            _ => None,
        })
        .collect();
    by_team.sort_by(|x, y| id_order(&x.team_id, &y.team_id));
    Compliance {
        overall: ComplianceFigures::of(&c.get(Group::Overall)[b]),
        by_priority: PRIORITY_ORDER
            .iter()
            .map(|p| {
                let f = ComplianceFigures::of(&c.get(Group::Priority(priority_rank(*p)))[b]);
                PriorityCompliance {
                    priority: p.as_str(),
                    completed: f.completed,
                    met: f.met,
                    breached: f.breached,
                    compliance_percent: f.compliance_percent,
                }
            })
            .collect(),
        by_team,
    }
}

/// SLA compliance of the timers completed in `[from, to)` and the running timers at risk or
/// breached now.
pub async fn sla(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &Filter,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<SlaReport> {
    let both = collect(
        conn,
        tenant,
        filter,
        &[Metric::Response, Metric::Resolution],
        from,
        to,
        false,
    )
    .await?;
    let empty = Collected {
        groups: BTreeMap::new(),
    };
    let response = compliance(both.first().unwrap_or(&empty));
    let resolution = compliance(both.get(1).unwrap_or(&empty));
    let breaches_by_priority = PRIORITY_ORDER
        .iter()
        .zip(response.by_priority.iter().zip(&resolution.by_priority))
        .map(|(p, (a, b))| PriorityBreaches {
            priority: p.as_str(),
            response: a.breached,
            resolution: b.breached,
        })
        .collect();
    let mut current = CurrentSla::default();
    for (_, _, key, n) in current_rows(conn, tenant, filter, "sla", false).await? {
        let mut parts = key.split(':');
        let timers = match parts.next() {
            Some("response") => &mut current.response,
            Some("resolution") => &mut current.resolution,
            _ => continue,
        };
        match parts.next() {
            Some("at_risk") => timers.at_risk += n,
            Some("breached") => timers.breached += n,
            _ => {}
        }
    }
    Ok(SlaReport {
        from,
        to,
        response,
        resolution,
        breaches_by_priority,
        current,
    })
}

/// The `open` key of `rm_analytics_current` (re-exported for tests and tools).
pub fn open_measure_key(status: IncidentStatus, priority: Priority, assigned: bool) -> String {
    open_key(status, priority, assigned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
    }

    #[test]
    fn a_span_says_whether_the_range_holds_every_sample_and_how_thinly() {
        let (first, last) = (t("2026-01-01T00:00:00Z"), t("2026-12-27T00:00:00Z"));
        let span = |a, b| Span::of(Some(first), Some(last), t(a), t(b));
        let all = span("2025-01-01T00:00:00Z", "2027-01-01T00:00:00Z");
        assert_eq!((all.covering, all.spread), (true, 1.0));
        // `to` is exclusive: a range ending at the last sample does not hold it.
        let open = span("2025-01-01T00:00:00Z", "2026-12-27T00:00:00Z");
        assert!(!open.covering);
        // 360 days of samples, 90 of them in the range: 4 entries per one in range.
        let quarter = span("2026-03-01T00:00:00Z", "2026-05-30T00:00:00Z");
        assert!(!quarter.covering);
        assert!((quarter.spread - 4.0).abs() < 1e-9, "{quarter:?}");
        // Only the part of the range inside the samples' span counts.
        let tail = span("2026-09-28T00:00:00Z", "2027-06-01T00:00:00Z");
        assert!((tail.spread - 4.0).abs() < 1e-9, "{tail:?}");
        // No sample at all: nothing to skip.
        let none = Span::of(
            None,
            None,
            t("2026-01-01T00:00:00Z"),
            t("2026-02-01T00:00:00Z"),
        );
        assert!(none.covering);
        // A range beside the samples: each look-up would skip everything; never value order.
        let beside = span("2020-01-01T00:00:00Z", "2020-02-01T00:00:00Z");
        assert!(beside.spread > 1e6 && !prefer_value_order(1, 1, beside.spread));
    }

    #[test]
    fn value_order_is_chosen_when_it_reads_fewer_entries_than_sorting_costs() {
        // 180 of 400 days (spread 2.2): even the middle of the bin is cheaper in value order.
        assert!(prefer_value_order(5_001, 10_000, 2.2));
        // 30 of 400 days (spread 13.3): only ranks near an end of the bin.
        assert!(!prefer_value_order(5_001, 10_000, 13.3));
        assert!(prefer_value_order(1_000, 10_000, 13.3));
        assert!(!prefer_value_order(2_000, 10_000, 13.3));
    }

    fn labels(p: &TrendPlan) -> Vec<String> {
        p.boundaries
            .iter()
            .map(|b| local_label(p.zone.0, *b))
            .collect()
    }

    #[test]
    fn days_in_a_half_hour_zone_are_cut_into_exact_blocks() {
        let zone = Zone::parse("Asia/Kolkata").unwrap_or(Zone::UTC);
        let p = plan_trends(
            t("2026-03-01T00:00:00Z"),
            t("2026-03-03T00:00:00Z"),
            Bucket::Day,
            zone,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // 2026-03-01 05:30 IST = 00:00Z lies in the local day starting 2026-03-01T00:00+05:30.
        assert_eq!(
            labels(&p),
            [
                "2026-03-01T00:00:00+05:30",
                "2026-03-02T00:00:00+05:30",
                "2026-03-03T00:00:00+05:30",
                "2026-03-04T00:00:00+05:30"
            ]
        );
        // Cut from its start, a local day is 18:30 → 19:00 (2 quarters), 19:00 → 24:00 (5
        // hours), 00:00 → 18:00 (3 six-hour blocks), 18:00 → 18:30 (2 quarters): 12 blocks.
        // Signed, it is its UTC day plus [00:00, 18:30) of the next minus that of its own
        // (3 six-hour blocks + 2 quarters each): 3 days and 4 boundaries of 5 blocks.
        assert_eq!(cut_greedy(&p.boundaries[..2]).len(), 12);
        assert_eq!(p.blocks(), 3 + 4 * 5);
        assert_covers(&p);
    }

    /// Every bucket of `p` is covered exactly once by its signed blocks, quarter by quarter.
    fn assert_covers(p: &TrendPlan) {
        for (i, w) in p.boundaries.windows(2).enumerate() {
            let mut cover: BTreeMap<i64, i64> = BTreeMap::new();
            for (level, start, _, sign) in p.blocks.iter().filter(|b| b.2 == i) {
                let size = FLOW_LEVEL_SECS[*level as usize];
                assert_eq!(start.rem_euclid(size), 0, "unaligned block");
                for q in (*start..start + size).step_by(900) {
                    *cover.entry(q).or_default() += sign;
                }
            }
            for (q, n) in cover {
                let inside = q >= w[0] && q < w[1];
                assert_eq!(n, i64::from(inside), "bucket {i} at {q}");
            }
            for q in (w[0]..w[1]).step_by(900) {
                assert!(
                    p.blocks
                        .iter()
                        .any(|b| b.2 == i && q >= b.1 && q < b.1 + FLOW_LEVEL_SECS[b.0 as usize])
                );
            }
        }
    }

    #[test]
    fn buckets_are_exact_signed_sums_of_blocks_in_many_zones() {
        for tz in [
            "UTC",
            "Europe/Berlin",
            "America/New_York",
            "Asia/Kolkata",
            "Asia/Kathmandu",
            "Australia/Lord_Howe",
            "Pacific/Chatham",
            "America/St_Johns",
            "Pacific/Apia",
        ] {
            let zone = Zone::parse(tz).unwrap_or(Zone::UTC);
            for bucket in [Bucket::Hour, Bucket::Day, Bucket::Week] {
                // Across both 2026 DST changes of each hemisphere.
                for (from, to) in [
                    ("2026-03-25T00:00:00Z", "2026-04-08T00:00:00Z"),
                    ("2026-09-24T00:00:00Z", "2026-10-08T00:00:00Z"),
                    ("2011-12-28T00:00:00Z", "2012-01-02T00:00:00Z"),
                ] {
                    let p = plan_trends(t(from), t(to), bucket, zone)
                        .unwrap_or_else(|e| panic!("{tz} {from}: {e}"));
                    assert_covers(&p);
                }
            }
        }
    }

    #[test]
    fn a_dst_day_has_23_hours_and_a_fold_hour_is_two_buckets() {
        let zone = Zone::parse("Europe/Berlin").unwrap_or(Zone::UTC);
        let p = plan_trends(
            t("2026-03-29T00:00:00+01:00"),
            t("2026-03-30T00:00:00+02:00"),
            Bucket::Day,
            zone,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.buckets(), 1);
        assert_eq!(p.boundaries[1] - p.boundaries[0], 23 * 3600);
        let p = plan_trends(
            t("2026-10-25T01:00:00+02:00"),
            t("2026-10-25T04:00:00+01:00"),
            Bucket::Hour,
            zone,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            labels(&p),
            [
                "2026-10-25T01:00:00+02:00",
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T02:00:00+01:00",
                "2026-10-25T03:00:00+01:00",
                "2026-10-25T04:00:00+01:00"
            ]
        );
    }

    #[test]
    fn weeks_start_on_monday_and_ranges_are_capped() {
        let zone = Zone::parse("America/St_Johns").unwrap_or(Zone::UTC); // −03:30 / −02:30
        let p = plan_trends(
            t("2026-01-07T12:00:00Z"),
            t("2026-01-20T00:00:00Z"),
            Bucket::Week,
            zone,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            labels(&p),
            [
                "2026-01-05T00:00:00-03:30",
                "2026-01-12T00:00:00-03:30",
                "2026-01-19T00:00:00-03:30",
                "2026-01-26T00:00:00-03:30"
            ]
        );
        assert_eq!(
            plan_trends(
                t("2020-01-01T00:00:00Z"),
                t("2026-01-01T00:00:00Z"),
                Bucket::Day,
                zone
            )
            .err(),
            Some(TrendError::TooManyBuckets)
        );
        let empty = plan_trends(
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T00:00:00Z"),
            Bucket::Day,
            zone,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(empty.buckets(), 0);
    }

    #[test]
    fn ranges_decompose_into_whole_blocks_and_partial_edges() {
        let (blocks, edges) = decompose(t("2026-01-01T10:00:00Z"), t("2026-01-01T12:00:00Z"));
        assert!(blocks.is_empty());
        assert_eq!(edges.len(), 1);
        let from = t("1970-01-01T05:00:00Z");
        let to = t("1971-06-01T03:00:00Z");
        let (blocks, edges) = decompose(from, to);
        assert_eq!(
            edges,
            vec![
                (from, t("1970-01-01T06:00:00Z")),
                (t("1971-06-01T00:00:00Z"), to)
            ]
        );
        let secs: i64 = blocks
            .iter()
            .map(|(l, _)| HIST_LEVEL_SECS[*l as usize])
            .sum();
        assert_eq!(secs, t("1971-06-01T00:00:00Z").timestamp() - 6 * 3600);
        assert!(blocks.len() < 40, "{blocks:?}");
    }

    #[test]
    fn medians_take_the_middle_ranks() {
        assert_eq!(median_ranks(1), vec![1]);
        assert_eq!(median_ranks(4), vec![2, 3]);
        assert_eq!(locate(&[2, 0, 3], 3), Some((2, 1)));
        assert_eq!(locate(&[2, 0, 3], 6), None);
    }
}
