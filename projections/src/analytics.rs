//! `analytics`: the aggregates behind `GET /api/v1/analytics/…` (issue #5, ADR 0015), fed by
//! the `incident` streams. Nothing here is computed at query time from the log or from the
//! incident list: each endpoint sums a few rows of these tables.
//!
//! | table | holds |
//! |---|---|
//! | `rm_analytics_incidents` | the projection's state per incident (status, priority, team, category, assignee, cycle, SLA timer stages …) |
//! | `rm_analytics_current` | current counts per cube cell: open incidents by status × priority × assigned, workload per assignee, incidents ever resolved / reopened, running timers at risk / breached |
//! | `rm_analytics_open_age` | open incidents per cube cell and UTC day of creation (aging) |
//! | `rm_analytics_flows` | created / resolved / closed / reopened per cube cell and 15-minute, hour and day block |
//! | `rm_analytics_samples` | one row per response and per resolution: wall and business seconds, bin, breached |
//! | `rm_analytics_hist` | per block of 6 hours, 1, 8, 64 or 512 days and cell (team × priority): count, sum, breached and a histogram of the durations |
//!
//! A *cube cell* is `(team_key, category_key)` with [`ANY`] standing for "all": each count is
//! written under (ANY, ANY), (team, ANY), (ANY, category) and (team, category), so a query with
//! or without the team and category filters reads one cell. An incident without a team or
//! category counts under [`NONE`].
//!
//! Per batch: one SELECT loads the state of the incidents the batch touches; the events are
//! folded in log order (events at or below a row's `version` are skipped, so a replayed batch
//! changes nothing); every effect is collected in memory as a delta; then one statement per
//! table writes them all (`INSERT … SELECT FROM unnest(…) ON CONFLICT DO UPDATE SET n = n +
//! EXCLUDED.n`). Current-state counts are the difference between what the incident contributed
//! before the batch and after it, so the order and size of batches do not show in the rows, and
//! a rebuild from zero ends with the live rows.
//!
//! Durations: a response sample is taken at `IncidentResponded` (wall = responded − created), a
//! resolution sample at every `IncidentResolved` (wall = resolved − start of the resolution
//! cycle: creation, or the reopen). Their business time and `breached` come from the
//! `SlaTimerStopped` (completed) that the command layer appends right after them, stamped with
//! the same instant; it may arrive in the next batch, so the sample waits for it in the state
//! (`pending_*_at`). Durations are whole seconds (wall time truncated to the second, as the
//! timers' business seconds are); a negative wall time (clock skew) counts as 0.

use crate::fold::{err, upsert_sql};
use crate::incidents::priority_rank;
use crate::runtime::{HandlerError, Projection};
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use eventdesk_domain::incident::IncidentEvent;
use eventdesk_domain::sla::policy::SlaMetric;
use eventdesk_domain::sla::timer::TimerStage;
use eventdesk_domain::values::{IncidentStatus, Priority};
use eventdesk_domain::{Aggregate, DomainEvent, IncidentAggregate};
use eventdesk_store::RecordedEvent;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Row};
use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;
use uuid::Uuid;

/// The analytics read model.
#[derive(Debug, Default, Clone, Copy)]
pub struct AnalyticsProjection;

/// The cube key meaning "every team" / "every category".
pub const ANY: Uuid = Uuid::from_u128(u128::MAX);
/// The cube key of incidents without a team / category.
pub const NONE: Uuid = Uuid::nil();

/// The cube key of an optional team or category.
pub fn cube_key(id: Option<Uuid>) -> Uuid {
    id.unwrap_or(NONE)
}

/// `metric` column of a response sample.
pub const RESPONSE: i16 = 0;
/// `metric` column of a resolution sample.
pub const RESOLUTION: i16 = 1;
/// `kind` column of wall-clock histograms.
pub const WALL: i16 = 0;
/// `kind` column of business-time histograms.
pub const BUSINESS: i16 = 1;
/// `priority_key` meaning "every priority".
pub const ANY_PRIORITY: i16 = -1;

/// Seconds of the flow blocks of level 0 (15 minutes), 1 (hour), 2 (6 hours) and 3 (day).
pub const FLOW_LEVEL_SECS: [i64; 4] = [900, 3600, 21_600, 86_400];
/// Seconds of the histogram blocks of level 0..4: 6 hours, 1, 8, 64 and 512 days (block =
/// UTC seconds / size).
pub const HIST_LEVEL_SECS: [i64; 5] = [21_600, 86_400, 8 * 86_400, 64 * 86_400, 512 * 86_400];

/// log2 of the sub-bins per octave of the duration histograms.
const SUB_BITS: u32 = 5;
/// Sub-bins per octave (32).
const SUB_BINS: i64 = 1 << SUB_BITS;

/// The histogram bin of a duration: exact below 32 s, then 32 bins per power of two, each
/// `2^(e-5)` seconds wide for values in `[2^e, 2^(e+1))` (at most 1/32 of the value).
pub fn duration_bin(secs: i64) -> i16 {
    let s = secs.max(0);
    if s < SUB_BINS {
        return s as i16;
    }
    let e = 63 - i64::from(s.leading_zeros());
    let shift = e - i64::from(SUB_BITS);
    let m = (s >> shift) - SUB_BINS;
    (SUB_BINS + shift * SUB_BINS + m) as i16
}

/// The values `[lo, hi)` of a bin.
pub fn bin_range(bin: i16) -> (i64, i64) {
    let b = i64::from(bin.max(0));
    if b < SUB_BINS {
        return (b, b + 1);
    }
    let shift = (b - SUB_BINS) / SUB_BINS;
    let m = (b - SUB_BINS) % SUB_BINS;
    ((SUB_BINS + m) << shift, (SUB_BINS + m + 1) << shift)
}

/// An instant at the database's precision (microseconds), so that a figure does not depend
/// on whether an instant came from an event or from a stored row.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Whole seconds from `a` to `b` (truncated, at microsecond precision; 0 if `b` is before
/// `a`).
pub fn whole_secs(a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
    (micros(b) - micros(a)).num_seconds().max(0)
}

/// Days since 1970-01-01 (UTC) of an instant.
pub fn epoch_day(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(86_400)
}

/// Where an SLA timer is, as far as the counts need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Stage {
    None,
    InProgress,
    Paused,
    Stopped,
}

/// The projection's state of one incident (a row of `rm_analytics_incidents`; field names are
/// the column names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Facts {
    tenant_id: Uuid,
    id: Uuid,
    version: i64,
    status: IncidentStatus,
    priority: Priority,
    team_id: Option<Uuid>,
    category_id: Option<Uuid>,
    assignee_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    cycle: i32,
    cycle_started_at: DateTime<Utc>,
    responded: bool,
    resolved_ever: bool,
    reopened_ever: bool,
    response_stage: Stage,
    response_cycle: i32,
    response_threshold: i16,
    response_breached: bool,
    resolution_stage: Stage,
    resolution_cycle: i32,
    resolution_threshold: i16,
    resolution_breached: bool,
    pending_response_at: Option<DateTime<Utc>>,
    pending_resolution_at: Option<DateTime<Utc>>,
}

const FACT_COLS: &[&str] = &[
    "tenant_id",
    "id",
    "version",
    "status",
    "priority",
    "team_id",
    "category_id",
    "assignee_id",
    "created_at",
    "cycle",
    "cycle_started_at",
    "responded",
    "resolved_ever",
    "reopened_ever",
    "response_stage",
    "response_cycle",
    "response_threshold",
    "response_breached",
    "resolution_stage",
    "resolution_cycle",
    "resolution_threshold",
    "resolution_breached",
    "pending_response_at",
    "pending_resolution_at",
];

static FACT_UPSERT: LazyLock<String> = LazyLock::new(|| {
    upsert_sql(
        "rm_analytics_incidents",
        &["tenant_id", "id"],
        FACT_COLS,
        &[],
    )
});

const FACT_LOAD: &str = "SELECT to_jsonb(r) FROM rm_analytics_incidents r \
     WHERE (r.tenant_id, r.id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))";

const CURRENT_UPSERT: &str = "INSERT INTO rm_analytics_current AS c (tenant_id, team_key, \
     category_key, measure, key, n) \
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::int8[]) \
     ON CONFLICT (tenant_id, measure, team_key, category_key, key) \
     DO UPDATE SET n = c.n + EXCLUDED.n";

const AGE_UPSERT: &str = "INSERT INTO rm_analytics_open_age AS c (tenant_id, team_key, \
     category_key, day, n) \
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int4[], $5::int8[]) \
     ON CONFLICT (tenant_id, team_key, category_key, day) DO UPDATE SET n = c.n + EXCLUDED.n";

const FLOW_UPSERT: &str = "INSERT INTO rm_analytics_flows AS f (tenant_id, team_key, \
     category_key, level, bucket, created, resolved, closed, reopened) \
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int2[], $5::timestamptz[], \
                          $6::int8[], $7::int8[], $8::int8[], $9::int8[]) \
     ON CONFLICT (tenant_id, team_key, category_key, level, bucket) DO UPDATE SET \
       created = f.created + EXCLUDED.created, resolved = f.resolved + EXCLUDED.resolved, \
       closed = f.closed + EXCLUDED.closed, reopened = f.reopened + EXCLUDED.reopened";

const SAMPLE_INSERT: &str = "INSERT INTO rm_analytics_samples (tenant_id, metric, incident_id, \
     cycle, at, priority, team_id, category_id, wall_secs, wall_bin, business_secs, \
     business_bin, breached) \
     SELECT * FROM unnest($1::uuid[], $2::int2[], $3::uuid[], $4::int4[], $5::timestamptz[], \
                          $6::int2[], $7::uuid[], $8::uuid[], $9::int8[], $10::int2[], \
                          $11::int8[], $12::int2[], $13::bool[]) \
     ON CONFLICT DO NOTHING";

const SAMPLE_BUSINESS: &str = "UPDATE rm_analytics_samples s SET business_secs = u.secs, \
     business_bin = u.bin, breached = u.breached \
     FROM unnest($1::uuid[], $2::int2[], $3::uuid[], $4::int4[], $5::int8[], $6::int2[], \
                 $7::bool[]) AS u(tenant_id, metric, incident_id, cycle, secs, bin, breached) \
     WHERE s.tenant_id = u.tenant_id AND s.metric = u.metric \
       AND s.incident_id = u.incident_id AND s.cycle = u.cycle AND s.business_secs IS NULL";

/// The stored histogram rows a batch adds to, read (and locked) before they are rewritten:
/// a histogram is merged here, not in SQL (see [`encode_hist`]).
const HIST_CURRENT: &str = "SELECT h.tenant_id, h.metric, h.level, h.block, h.kind, h.team_key, \
     h.priority_key, h.n, h.sum_secs, h.breached, h.hist \
     FROM rm_analytics_hist h \
     JOIN unnest($1::uuid[], $2::int2[], $3::int2[], $4::int4[], $5::int2[], $6::uuid[], \
                 $7::int2[]) AS x(t, m, l, b, k, tk, pk) \
       ON h.tenant_id = x.t AND h.metric = x.m AND h.level = x.l AND h.block = x.b \
      AND h.priority_key = x.pk AND h.team_key = x.tk AND h.kind = x.k \
     FOR UPDATE OF h";

/// The merged histogram rows (absolute figures: [`HIST_CURRENT`] read the rows under lock).
const HIST_UPSERT: &str = "INSERT INTO rm_analytics_hist AS h (tenant_id, metric, level, block, \
     kind, team_key, priority_key, n, sum_secs, breached, hist) \
     SELECT t, m, l, b, k, tk, pk, n, s, br, hs \
     FROM unnest($1::uuid[], $2::int2[], $3::int2[], $4::int4[], $5::int2[], $6::uuid[], \
                 $7::int2[], $8::int8[], $9::int8[], $10::int8[], $11::bytea[]) \
          AS x(t, m, l, b, k, tk, pk, n, s, br, hs) \
     ON CONFLICT (tenant_id, metric, level, block, priority_key, team_key, kind) DO UPDATE SET \
       n = EXCLUDED.n, sum_secs = EXCLUDED.sum_secs, breached = EXCLUDED.breached, \
       hist = EXCLUDED.hist";

/// The `rm_analytics_current` measures.
const OPEN: &str = "open";
const WORKLOAD: &str = "workload";
const REOPEN: &str = "reopen";
const SLA: &str = "sla";

/// The four cube cells of a team and a category.
fn cells(team: Option<Uuid>, category: Option<Uuid>) -> [(Uuid, Uuid); 4] {
    let (t, c) = (cube_key(team), cube_key(category));
    [(ANY, ANY), (t, ANY), (ANY, c), (t, c)]
}

/// The key of an open incident in the `open` measure.
pub fn open_key(status: IncidentStatus, priority: Priority, assigned: bool) -> String {
    format!(
        "{}:{}:{}",
        status.as_str(),
        priority.as_str(),
        if assigned { "assigned" } else { "unassigned" }
    )
}

impl Facts {
    fn created(tenant: Uuid, e: &eventdesk_domain::incident::IncidentCreated) -> Self {
        Self {
            tenant_id: tenant,
            id: e.id.0,
            version: 0,
            status: IncidentStatus::New,
            priority: e.priority,
            team_id: e.team_id.map(|t| t.0),
            category_id: e.category_id.map(|c| c.0),
            assignee_id: e.assignee_id.map(|a| a.0),
            created_at: micros(e.at),
            cycle: 1,
            cycle_started_at: micros(e.at),
            responded: false,
            resolved_ever: false,
            reopened_ever: false,
            response_stage: Stage::None,
            response_cycle: 0,
            response_threshold: 0,
            response_breached: false,
            resolution_stage: Stage::None,
            resolution_cycle: 0,
            resolution_threshold: 0,
            resolution_breached: false,
            pending_response_at: None,
            pending_resolution_at: None,
        }
    }

    fn timer(&mut self, metric: SlaMetric) -> (&mut Stage, &mut i32, &mut i16, &mut bool) {
        match metric {
            SlaMetric::Response => (
                &mut self.response_stage,
                &mut self.response_cycle,
                &mut self.response_threshold,
                &mut self.response_breached,
            ),
            SlaMetric::Resolution => (
                &mut self.resolution_stage,
                &mut self.resolution_cycle,
                &mut self.resolution_threshold,
                &mut self.resolution_breached,
            ),
        }
    }

    /// The SLA state of a timer for the `sla` measure: at risk (running, the 75 % warning
    /// recorded, not breached) or breached (running or paused) — as `GET /sla/timers?state=`.
    fn sla_state(stage: Stage, threshold: i16, breached: bool) -> Option<&'static str> {
        match stage {
            Stage::InProgress if breached => Some("breached"),
            Stage::Paused if breached => Some("breached"),
            Stage::InProgress if threshold >= 75 => Some("at_risk"),
            _ => None,
        }
    }

    /// What this incident adds to `rm_analytics_current` (measure, key), per cube cell.
    fn contributions(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.status.is_open() {
            out.push((
                OPEN,
                open_key(self.status, self.priority, self.assignee_id.is_some()),
            ));
            if let Some(a) = self.assignee_id {
                out.push((WORKLOAD, a.to_string()));
            }
        }
        if self.resolved_ever {
            out.push((REOPEN, "resolved".to_owned()));
        }
        if self.reopened_ever {
            out.push((REOPEN, "reopened".to_owned()));
        }
        for (metric, stage, threshold, breached) in [
            (
                "response",
                self.response_stage,
                self.response_threshold,
                self.response_breached,
            ),
            (
                "resolution",
                self.resolution_stage,
                self.resolution_threshold,
                self.resolution_breached,
            ),
        ] {
            if let Some(s) = Self::sla_state(stage, threshold, breached) {
                out.push((SLA, format!("{metric}:{s}:{}", self.priority.as_str())));
            }
        }
        out
    }
}

/// A duration sample being written.
#[derive(Debug, Clone)]
struct Sample {
    at: DateTime<Utc>,
    priority: i16,
    team_id: Option<Uuid>,
    category_id: Option<Uuid>,
    wall_secs: i64,
    business: Option<(i64, bool)>,
}

/// `(tenant, metric, incident, cycle)`.
type SampleKey = (Uuid, i16, Uuid, i32);

/// `(tenant, metric, level, block, kind, team_key, priority_key)`.
type HistKey = (Uuid, i16, i16, i32, i16, Uuid, i16);

#[derive(Debug, Default)]
struct HistDelta {
    n: i64,
    sum: i64,
    breached: i64,
    bins: BTreeMap<i16, i32>,
}

/// Everything a batch changes, collected before it is written.
#[derive(Default)]
struct Deltas {
    /// `(tenant, team_key, category_key, level, bucket secs)` → created, resolved, closed,
    /// reopened.
    flows: HashMap<(Uuid, Uuid, Uuid, i16, i64), [i64; 4]>,
    /// New samples.
    samples: BTreeMap<SampleKey, Sample>,
    /// Business time for samples written by an earlier batch.
    business: Vec<(SampleKey, i64, bool)>,
    hist: HashMap<HistKey, HistDelta>,
}

/// Indexes into the flow counters.
const CREATED: usize = 0;
const RESOLVED: usize = 1;
const CLOSED: usize = 2;
const REOPENED: usize = 3;

impl Deltas {
    fn flow(&mut self, f: &Facts, at: DateTime<Utc>, which: usize) {
        let t = at.timestamp();
        for (level, secs) in FLOW_LEVEL_SECS.iter().enumerate() {
            let bucket = t.div_euclid(*secs) * secs;
            for (tk, ck) in cells(f.team_id, f.category_id) {
                self.flows
                    .entry((f.tenant_id, tk, ck, level as i16, bucket))
                    .or_default()[which] += 1;
            }
        }
    }

    /// Adds one duration (of `kind`) to the histograms of its blocks and cells.
    fn hist(
        &mut self,
        f: &Facts,
        metric: i16,
        kind: i16,
        at: DateTime<Utc>,
        secs: i64,
        breached: bool,
    ) {
        let t = at.timestamp();
        let bin = duration_bin(secs);
        let p = priority_rank(f.priority);
        for (level, size) in HIST_LEVEL_SECS.iter().enumerate() {
            let block = t.div_euclid(*size) as i32;
            for tk in [ANY, cube_key(f.team_id)] {
                for pk in [ANY_PRIORITY, p] {
                    let d = self
                        .hist
                        .entry((f.tenant_id, metric, level as i16, block, kind, tk, pk))
                        .or_default();
                    d.n += 1;
                    d.sum += secs;
                    d.breached += i64::from(breached);
                    *d.bins.entry(bin).or_default() += 1;
                }
            }
        }
    }

    /// A new sample (wall time known now).
    fn sample(&mut self, f: &Facts, metric: i16, cycle: i32, at: DateTime<Utc>, wall: i64) {
        self.hist(f, metric, WALL, at, wall, false);
        self.samples.insert(
            (f.tenant_id, metric, f.id, cycle),
            Sample {
                at,
                priority: priority_rank(f.priority),
                team_id: f.team_id,
                category_id: f.category_id,
                wall_secs: wall,
                business: None,
            },
        );
    }

    /// The business time of a sample (its timer stopped).
    fn business(
        &mut self,
        f: &Facts,
        metric: i16,
        cycle: i32,
        at: DateTime<Utc>,
        secs: i64,
        breached: bool,
    ) {
        let secs = secs.max(0);
        self.hist(f, metric, BUSINESS, at, secs, breached);
        let key = (f.tenant_id, metric, f.id, cycle);
        match self.samples.get_mut(&key) {
            Some(s) => s.business = Some((secs, breached)),
            None => self.business.push((key, secs, breached)),
        }
    }
}

/// Whether a pending sample's instant (stored at the database's microsecond precision) is
/// `at`.
fn same_instant(pending: Option<DateTime<Utc>>, at: DateTime<Utc>) -> bool {
    pending.is_some_and(|p| p.timestamp_micros() == at.timestamp_micros())
}

/// Applies one incident event to the state, collecting its effects.
fn apply_event(f: &mut Facts, ev: &IncidentEvent, d: &mut Deltas) {
    use IncidentEvent as E;
    match ev {
        E::IncidentCreated(e) => d.flow(f, e.at, CREATED),
        E::IncidentUpdated(e) => {
            if let Some(p) = &e.changes.priority {
                f.priority = p.new;
            }
            if let Some(c) = &e.changes.category_id {
                f.category_id = c.new.map(|c| c.0);
            }
        }
        E::IncidentAssigned(e) => {
            f.status = e.to;
            f.assignee_id = e.assignee_id.map(|a| a.0);
            f.team_id = e.team_id.map(|t| t.0);
        }
        // The domain emits it at most once; `responded` makes that a property of the fold.
        E::IncidentResponded(e) if !f.responded => {
            f.responded = true;
            let wall = whole_secs(f.created_at, e.at);
            d.sample(f, RESPONSE, 1, e.at, wall);
            f.pending_response_at = Some(micros(e.at));
        }
        E::IncidentWorkStarted(_) => f.status = IncidentStatus::InProgress,
        E::IncidentPutOnHold(_) => f.status = IncidentStatus::OnHold,
        E::IncidentResumed(e) => f.status = e.to,
        E::IncidentResolved(e) => {
            f.status = IncidentStatus::Resolved;
            f.resolved_ever = true;
            d.flow(f, e.at, RESOLVED);
            let wall = whole_secs(f.cycle_started_at, e.at);
            d.sample(f, RESOLUTION, f.cycle, e.at, wall);
            f.pending_resolution_at = Some(micros(e.at));
        }
        E::IncidentReopened(e) => {
            f.status = IncidentStatus::InProgress;
            f.reopened_ever = true;
            f.cycle = i32::try_from(e.reopen_count).unwrap_or(i32::MAX - 1) + 1;
            f.cycle_started_at = micros(e.at);
            d.flow(f, e.at, REOPENED);
        }
        E::IncidentClosed(e) => {
            f.status = IncidentStatus::Closed;
            d.flow(f, e.at, CLOSED);
        }
        E::IncidentCancelled(_) => f.status = IncidentStatus::Cancelled,
        E::SlaTimerStarted(e) => {
            let (stage, cycle, threshold, breached) = f.timer(e.metric);
            *stage = Stage::InProgress;
            *cycle = i32::try_from(e.cycle).unwrap_or(i32::MAX);
            *threshold = 0;
            *breached = false;
        }
        E::SlaTimerStopped(e) => {
            let matches = {
                let (stage, cycle, _, breached) = f.timer(e.metric);
                let matches = *stage != Stage::None && i64::from(*cycle) == i64::from(e.cycle);
                if matches {
                    *stage = Stage::Stopped;
                    *breached |= e.breached;
                }
                matches
            };
            if matches && e.stage == TimerStage::Completed {
                match e.metric {
                    SlaMetric::Response if same_instant(f.pending_response_at, e.at) => {
                        f.pending_response_at = None;
                        d.business(f, RESPONSE, 1, e.at, e.business_elapsed_secs, e.breached);
                    }
                    SlaMetric::Resolution if same_instant(f.pending_resolution_at, e.at) => {
                        f.pending_resolution_at = None;
                        let cycle = f.cycle;
                        d.business(
                            f,
                            RESOLUTION,
                            cycle,
                            e.at,
                            e.business_elapsed_secs,
                            e.breached,
                        );
                    }
                    _ => {}
                }
            }
        }
        E::SlaWarningIssued(e) => {
            let (stage, cycle, threshold, _) = f.timer(e.metric);
            if *stage != Stage::None && i64::from(*cycle) == i64::from(e.cycle) {
                *threshold = (*threshold).max(i16::from(e.threshold));
            }
        }
        E::SlaBreached(e) => {
            let (stage, cycle, threshold, breached) = f.timer(e.metric);
            if *stage != Stage::None && i64::from(*cycle) == i64::from(e.cycle) {
                *threshold = 100;
                *breached = true;
            }
        }
        // Work notes, attachments, reschedules (which keep recorded thresholds) and anything
        // added later change no figure.
        _ => {}
    }
    // Holds pause the running timers and resumes restart them (SlaState::apply).
    match ev {
        E::IncidentPutOnHold(_) => {
            for s in [&mut f.response_stage, &mut f.resolution_stage] {
                if *s == Stage::InProgress {
                    *s = Stage::Paused;
                }
            }
        }
        E::IncidentResumed(_) => {
            for s in [&mut f.response_stage, &mut f.resolution_stage] {
                if *s == Stage::Paused {
                    *s = Stage::InProgress;
                }
            }
        }
        _ => {}
    }
}

/// One incident of the batch: its state before and after.
struct Folded {
    before: Option<Facts>,
    after: Option<Facts>,
}

#[async_trait]
impl Projection for AnalyticsProjection {
    fn name(&self) -> &'static str {
        "analytics"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "rm_analytics_incidents",
            "rm_analytics_current",
            "rm_analytics_open_age",
            "rm_analytics_flows",
            "rm_analytics_samples",
            "rm_analytics_hist",
        ]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), HandlerError> {
        let events: Vec<&RecordedEvent> = events
            .iter()
            .filter(|e| e.stream_type == IncidentAggregate::STREAM_TYPE)
            .collect();
        if events.is_empty() {
            return Ok(());
        }
        let (tenants, ids) = crate::fold::key_arrays(&events);
        let mut states: BTreeMap<(Uuid, Uuid), Folded> = BTreeMap::new();
        for row in sqlx::query(FACT_LOAD)
            .bind(&tenants)
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?
        {
            let facts: Facts = serde_json::from_value(row.try_get(0)?)?;
            states.insert(
                (facts.tenant_id, facts.id),
                Folded {
                    before: Some(facts.clone()),
                    after: Some(facts),
                },
            );
        }
        let mut d = Deltas::default();
        for rec in &events {
            let key = (rec.tenant_id.0, rec.stream_id.0);
            let slot = states.entry(key).or_insert(Folded {
                before: None,
                after: None,
            });
            if slot
                .after
                .as_ref()
                .is_some_and(|f| rec.version <= f.version)
            {
                continue;
            }
            let event = IncidentEvent::decode(&rec.event_type, &rec.data)?;
            if slot.after.is_none() {
                match &event {
                    IncidentEvent::IncidentCreated(e) => {
                        slot.after = Some(Facts::created(rec.tenant_id.0, e));
                    }
                    _ => {
                        return Err(err(format!(
                            "incident {}/{} has {} before its creation",
                            key.0, key.1, rec.event_type
                        )));
                    }
                }
            }
            if let Some(f) = slot.after.as_mut() {
                apply_event(f, &event, &mut d);
                f.version = rec.version;
            }
        }
        write(tx, &states, d).await
    }
}

/// Writes the batch's effects: one statement per table.
async fn write(
    tx: &mut PgConnection,
    states: &BTreeMap<(Uuid, Uuid), Folded>,
    d: Deltas,
) -> Result<(), HandlerError> {
    // Per-incident state and the current-state deltas (after − before).
    let mut rows = Vec::new();
    let mut current: HashMap<(Uuid, Uuid, Uuid, &'static str, String), i64> = HashMap::new();
    let mut age: HashMap<(Uuid, Uuid, Uuid, i32), i64> = HashMap::new();
    for f in states.values() {
        let Some(after) = &f.after else { continue };
        if f.before.as_ref() == Some(after) {
            continue;
        }
        rows.push(serde_json::to_value(after)?);
        for (facts, sign) in [(f.before.as_ref(), -1i64), (Some(after), 1)] {
            let Some(x) = facts else { continue };
            let contributions = x.contributions();
            let day = i32::try_from(epoch_day(x.created_at))
                .map_err(|_| err("creation day out of range"))?;
            for (tk, ck) in cells(x.team_id, x.category_id) {
                for (measure, key) in &contributions {
                    *current
                        .entry((x.tenant_id, tk, ck, measure, key.clone()))
                        .or_default() += sign;
                }
                if x.status.is_open() {
                    *age.entry((x.tenant_id, tk, ck, day)).or_default() += sign;
                }
            }
        }
    }
    if !rows.is_empty() {
        sqlx::query(&FACT_UPSERT)
            .bind(serde_json::Value::Array(rows))
            .execute(&mut *tx)
            .await?;
    }

    current.retain(|_, n| *n != 0);
    if !current.is_empty() {
        let (mut t, mut tk, mut ck, mut m, mut k, mut n) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for ((a, b, c, measure, key), delta) in current {
            t.push(a);
            tk.push(b);
            ck.push(c);
            m.push(measure);
            k.push(key);
            n.push(delta);
        }
        sqlx::query(CURRENT_UPSERT)
            .bind(&t)
            .bind(&tk)
            .bind(&ck)
            .bind(&m)
            .bind(&k)
            .bind(&n)
            .execute(&mut *tx)
            .await?;
    }

    age.retain(|_, n| *n != 0);
    if !age.is_empty() {
        let (mut t, mut tk, mut ck, mut day, mut n) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((a, b, c, dd), delta) in age {
            t.push(a);
            tk.push(b);
            ck.push(c);
            day.push(dd);
            n.push(delta);
        }
        sqlx::query(AGE_UPSERT)
            .bind(&t)
            .bind(&tk)
            .bind(&ck)
            .bind(&day)
            .bind(&n)
            .execute(&mut *tx)
            .await?;
    }

    if !d.flows.is_empty() {
        let n = d.flows.len();
        let (mut t, mut tk, mut ck) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut level, mut bucket) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut counts: [Vec<i64>; 4] = Default::default();
        for ((tt, team, cat, l, b), c) in d.flows {
            t.push(tt);
            tk.push(team);
            ck.push(cat);
            level.push(l);
            bucket.push(
                Utc.timestamp_opt(b, 0)
                    .single()
                    .ok_or_else(|| err("flow bucket out of range"))?,
            );
            for (i, x) in c.iter().enumerate() {
                counts[i].push(*x);
            }
        }
        sqlx::query(FLOW_UPSERT)
            .bind(&t)
            .bind(&tk)
            .bind(&ck)
            .bind(&level)
            .bind(&bucket)
            .bind(&counts[CREATED])
            .bind(&counts[RESOLVED])
            .bind(&counts[CLOSED])
            .bind(&counts[REOPENED])
            .execute(&mut *tx)
            .await?;
    }

    if !d.samples.is_empty() {
        let n = d.samples.len();
        let mut t = Vec::with_capacity(n);
        let mut metric = Vec::with_capacity(n);
        let mut incident = Vec::with_capacity(n);
        let mut cycle = Vec::with_capacity(n);
        let mut at = Vec::with_capacity(n);
        let mut priority = Vec::with_capacity(n);
        let mut team = Vec::with_capacity(n);
        let mut category = Vec::with_capacity(n);
        let mut wall = Vec::with_capacity(n);
        let mut wall_bin = Vec::with_capacity(n);
        let mut business = Vec::with_capacity(n);
        let mut business_bin = Vec::with_capacity(n);
        let mut breached = Vec::with_capacity(n);
        for ((tt, m, i, c), s) in d.samples {
            t.push(tt);
            metric.push(m);
            incident.push(i);
            cycle.push(c);
            at.push(s.at);
            priority.push(s.priority);
            team.push(s.team_id);
            category.push(s.category_id);
            wall.push(s.wall_secs);
            wall_bin.push(duration_bin(s.wall_secs));
            business.push(s.business.map(|b| b.0));
            business_bin.push(s.business.map(|b| duration_bin(b.0)));
            breached.push(s.business.map(|b| b.1));
        }
        sqlx::query(SAMPLE_INSERT)
            .bind(&t)
            .bind(&metric)
            .bind(&incident)
            .bind(&cycle)
            .bind(&at)
            .bind(&priority)
            .bind(&team)
            .bind(&category)
            .bind(&wall)
            .bind(&wall_bin)
            .bind(&business)
            .bind(&business_bin)
            .bind(&breached)
            .execute(&mut *tx)
            .await?;
    }

    if !d.business.is_empty() {
        let mut t = Vec::new();
        let mut metric = Vec::new();
        let mut incident = Vec::new();
        let mut cycle = Vec::new();
        let mut secs = Vec::new();
        let mut bin = Vec::new();
        let mut breached = Vec::new();
        for ((tt, m, i, c), s, b) in d.business {
            t.push(tt);
            metric.push(m);
            incident.push(i);
            cycle.push(c);
            secs.push(s);
            bin.push(duration_bin(s));
            breached.push(b);
        }
        sqlx::query(SAMPLE_BUSINESS)
            .bind(&t)
            .bind(&metric)
            .bind(&incident)
            .bind(&cycle)
            .bind(&secs)
            .bind(&bin)
            .bind(&breached)
            .execute(&mut *tx)
            .await?;
    }

    if !d.hist.is_empty() {
        write_hist(tx, d.hist).await?;
    }
    Ok(())
}

/// Adds a batch's histogram deltas to the stored rows: reads the rows it touches (locked),
/// merges in Rust, writes the sums back.
async fn write_hist(
    tx: &mut PgConnection,
    deltas: HashMap<HistKey, HistDelta>,
) -> Result<(), HandlerError> {
    // One order for the key arrays and the merged figures below.
    let deltas: Vec<(HistKey, HistDelta)> = deltas.into_iter().collect();
    let n = deltas.len();
    let mut t = Vec::with_capacity(n);
    let mut metric = Vec::with_capacity(n);
    let mut level = Vec::with_capacity(n);
    let mut block = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut tk = Vec::with_capacity(n);
    let mut pk = Vec::with_capacity(n);
    for ((a, m, l, b, k, team, p), _) in &deltas {
        t.push(*a);
        metric.push(*m);
        level.push(*l);
        block.push(*b);
        kind.push(*k);
        tk.push(*team);
        pk.push(*p);
    }
    let current = sqlx::query(HIST_CURRENT)
        .bind(&t)
        .bind(&metric)
        .bind(&level)
        .bind(&block)
        .bind(&kind)
        .bind(&tk)
        .bind(&pk)
        .fetch_all(&mut *tx)
        .await?;
    let mut stored: HashMap<HistKey, (i64, i64, i64, Vec<u8>)> =
        HashMap::with_capacity(current.len());
    for r in current {
        let key: HistKey = (
            r.try_get(0)?,
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
            r.try_get(5)?,
            r.try_get(6)?,
        );
        stored.insert(
            key,
            (r.try_get(7)?, r.try_get(8)?, r.try_get(9)?, r.try_get(10)?),
        );
    }
    let mut count = Vec::with_capacity(n);
    let mut sum = Vec::with_capacity(n);
    let mut breached = Vec::with_capacity(n);
    let mut hist = Vec::with_capacity(n);
    let mut dense = Vec::new();
    for (key, d) in deltas {
        dense.clear();
        let (n0, s0, b0) = match stored.get(&key) {
            Some((n0, s0, b0, h)) => {
                merge_hist(&mut dense, h)
                    .map_err(|e| err(format!("rm_analytics_hist {key:?}: {e}")))?;
                (*n0, *s0, *b0)
            }
            None => (0, 0, 0),
        };
        for (bin, c) in &d.bins {
            let bin = usize::try_from(*bin).unwrap_or(0);
            if dense.len() <= bin {
                dense.resize(bin + 1, 0);
            }
            dense[bin] += i64::from(*c);
        }
        count.push(n0 + d.n);
        sum.push(s0 + d.sum);
        breached.push(b0 + d.breached);
        hist.push(encode_hist(&dense));
    }
    sqlx::query(HIST_UPSERT)
        .bind(&t)
        .bind(&metric)
        .bind(&level)
        .bind(&block)
        .bind(&kind)
        .bind(&tk)
        .bind(&pk)
        .bind(&count)
        .bind(&sum)
        .bind(&breached)
        .bind(&hist)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A histogram as stored in `rm_analytics_hist.hist`: element `i` of `dense` (the samples in
/// bin `i`) as one unsigned LEB128 varint, in bin order, trailing zero bins not stored. A
/// `bytea` is sent to a reader as it is stored, where an `integer[]` costs PostgreSQL a
/// send-function call per element (ADR 0027); the common small counts take one byte.
/// Negative counts (never produced) are stored as 0.
pub fn encode_hist(dense: &[i64]) -> Vec<u8> {
    let len = dense.iter().rposition(|c| *c > 0).map_or(0, |i| i + 1);
    let mut out = Vec::with_capacity(len + len / 2);
    for c in &dense[..len] {
        let mut x = u64::try_from(*c).unwrap_or(0);
        while x >= 0x80 {
            out.push((x & 0x7f) as u8 | 0x80);
            x >>= 7;
        }
        out.push(x as u8);
    }
    out
}

/// Calls `f(bin, count)` for each non-zero bin of a histogram of [`encode_hist`], in bin
/// order. Fails on a truncated or over-long varint.
pub fn decode_hist(bytes: &[u8], mut f: impl FnMut(usize, i64)) -> Result<(), HistDecodeError> {
    let mut bin = 0;
    let mut x: u64 = 0;
    let mut shift = 0;
    for &byte in bytes {
        if shift > 56 {
            return Err(HistDecodeError::Overlong(bin));
        }
        x |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            if x != 0 {
                f(
                    bin,
                    i64::try_from(x).map_err(|_| HistDecodeError::Overlong(bin))?,
                );
            }
            bin += 1;
            x = 0;
            shift = 0;
        } else {
            shift += 7;
        }
    }
    if shift == 0 {
        Ok(())
    } else {
        Err(HistDecodeError::Truncated(bin))
    }
}

/// Adds a histogram of [`encode_hist`] to the dense sums `into` (grown as needed).
pub fn merge_hist(into: &mut Vec<i64>, bytes: &[u8]) -> Result<(), HistDecodeError> {
    decode_hist(bytes, |bin, c| {
        if into.len() <= bin {
            into.resize(bin + 1, 0);
        }
        into[bin] += c;
    })
}

/// A stored histogram that is not one of [`encode_hist`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HistDecodeError {
    #[error("histogram truncated in bin {0}")]
    Truncated(usize),
    #[error("histogram count too long in bin {0}")]
    Overlong(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_exact_below_32_and_32nd_octaves_above() {
        for s in 0..32 {
            assert_eq!(duration_bin(s), s as i16);
            assert_eq!(bin_range(s as i16), (s, s + 1));
        }
        assert_eq!(duration_bin(63), 63);
        assert_eq!(duration_bin(64), 64);
        assert_eq!(duration_bin(65), 64);
        assert_eq!(bin_range(64), (64, 66));
        // Every value falls in its bin's range, and bins are contiguous and increasing.
        let mut last = -1i16;
        for s in (0..5_000_000i64)
            .step_by(37)
            .chain([i64::from(i32::MAX), 1 << 40])
        {
            let b = duration_bin(s);
            let (lo, hi) = bin_range(b);
            assert!(lo <= s && s < hi, "{s} in bin {b} = [{lo}, {hi})");
            assert!(b >= last);
            last = b;
            assert!(hi - lo <= (lo / 32).max(1), "bin {b} too wide");
        }
        assert_eq!(duration_bin(-5), 0);
        for b in 0..800i16 {
            assert_eq!(
                bin_range(b).1,
                bin_range(b + 1).0,
                "bins {b} and {} touch",
                b + 1
            );
        }
    }

    #[test]
    fn histograms_are_dense_varints_without_trailing_zeros() {
        assert_eq!(encode_hist(&[]), Vec::<u8>::new());
        assert_eq!(encode_hist(&[0, 0]), Vec::<u8>::new());
        assert_eq!(encode_hist(&[1, 0, 0, 300, 0]), vec![1, 0, 0, 0xac, 0x02]);
        let mut seen = Vec::new();
        decode_hist(&[1, 0, 0, 0xac, 0x02], |b, c| seen.push((b, c))).expect("valid");
        assert_eq!(seen, vec![(0, 1), (3, 300)]);
    }

    #[test]
    fn malformed_histograms_are_errors() {
        assert_eq!(
            decode_hist(&[1, 0x80], |_, _| {}),
            Err(HistDecodeError::Truncated(1))
        );
        assert_eq!(
            decode_hist(&[0xff; 10], |_, _| {}),
            Err(HistDecodeError::Overlong(0))
        );
    }

    proptest::proptest! {
        #[test]
        fn histograms_survive_the_round_trip(
            dense in proptest::collection::vec(
                proptest::prop_oneof![3 => proptest::strategy::Just(0i64), 2 => 0i64..200, 1 => 0i64..(1 << 40)],
                0..900,
            )
        ) {
            let mut back = Vec::new();
            decode_hist(&encode_hist(&dense), |b, c| {
                if back.len() <= b {
                    back.resize(b + 1, 0);
                }
                back[b] = c;
            }).expect("round trip");
            let len = dense.iter().rposition(|c| *c != 0).map_or(0, |i| i + 1);
            proptest::prop_assert_eq!(&back[..], &dense[..len]);
        }
    }
}
