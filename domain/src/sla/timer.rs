//! The SLA timers of an incident.
//!
//! # Model
//! An incident has at most one *current* timer per metric ([`SlaMetric::Response`],
//! [`SlaMetric::Resolution`]). A timer belongs to a *cycle*: the resolution timer starts a new
//! cycle on every reopen; earlier cycles stay in the history (the read model keeps a row per
//! cycle). Everything the clock does is an event on the incident's own stream, so the audit
//! trail shows which due time was promised when, and the timer read model is a plain fold:
//!
//! - [`SlaTimerStarted`]: at creation (both metrics) and on reopen (resolution, next cycle);
//! - [`SlaTimerRescheduled`]: after a hold ends, or when the priority, the governing policy or
//!   a calendar changes — the due time is recomputed **from the timer's history** (its start
//!   and its pauses), never from now;
//! - [`SlaTimerStopped`]: completed (response given, incident resolved) or cancelled;
//! - [`SlaWarningIssued`] (50/75/90 %) and [`SlaBreached`] (100 %): appended by the scheduler
//!   through [`IncidentCommand::RecordSlaThreshold`](crate::incident::IncidentCommand), each at
//!   most once per metric and cycle — the aggregate refuses a second one, so even two racing
//!   schedulers cannot record it twice.
//!
//! Pauses are not separate events: `IncidentPutOnHold`/`IncidentResumed` open and close a pause
//! interval (wall-clock instants) on every running timer. Business time is always derived from
//! those intervals with the calendar in force, so a calendar change re-measures past pauses
//! correctly.
//!
//! # Arithmetic
//! *Elapsed* business time at `t` = business seconds in `[start, t)` minus those inside pauses.
//! The instant a fraction `k` of the target is reached is found by walking the pause intervals
//! ([`instant_after_unpaused`]); the due time is the 100 % instant. A threshold crossed while
//! an earlier schedule was in force but only recorded later is stamped with the instant it
//! really crossed, or — when a recompute moved it into the past — with the instant of that
//! recompute (the breach cannot precede the decision that caused it).
//!
//! The decisions that need calendars and policies live in [`follow_up`]: the command layer
//! calls it after every incident command with the tenant's [`SlaRules`], and appends what it
//! returns in the same batch.

use crate::actor::Actor;
use crate::ids::{CalendarId, SlaPolicyId};
use crate::incident::{Incident, IncidentEvent};
use crate::sla::calendar::BusinessCalendar;
use crate::sla::policy::{IncidentFacts, SlaMetric, SlaPolicy, select_policy};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The warning thresholds, in percent of the target. 100 is the breach.
pub const WARNING_THRESHOLDS: [u8; 3] = [50, 75, 90];

/// Where a timer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerStage {
    /// Running.
    InProgress,
    /// Stopped for a while (the incident is on hold).
    Paused,
    /// Stopped for good: the response was given or the incident resolved.
    Completed,
    /// Stopped for good without completing (cancelled incident, target withdrawn).
    Cancelled,
}

impl TimerStage {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the timer still runs or may run again.
    pub fn is_active(self) -> bool {
        matches!(self, Self::InProgress | Self::Paused)
    }
}

/// Why a timer's schedule was recomputed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RescheduleReason {
    /// A hold ended: the due time moves out by the paused business time.
    Resumed,
    /// The incident's priority changed.
    PriorityChanged,
    /// Another policy now governs the incident, or its policy was edited.
    PolicyChanged,
    /// The calendar of the target was edited (e.g. holidays imported).
    CalendarChanged,
}

/// A pause: from `from` until `to` (open while `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// Start (wall clock).
    pub from: DateTime<Utc>,
    /// End, once resumed.
    pub to: Option<DateTime<Utc>>,
}

/// One threshold of a timer: when it is reached under the current schedule, and whether it was
/// recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    /// Percent of the target (50, 75, 90, 100).
    pub percent: u8,
    /// When it is reached under the current schedule.
    pub at: DateTime<Utc>,
    /// When it was recorded as crossed (the crossing instant), once it was.
    pub crossed_at: Option<DateTime<Utc>>,
}

/// What governs a timer: the policy, the target and the calendar (with versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerBasis {
    /// The policy (`None` = the built-in default).
    pub policy_id: Option<SlaPolicyId>,
    /// Its version.
    pub policy_version: u32,
    /// The target in business seconds.
    pub target_secs: i64,
    /// The calendar (`None` = 24x7).
    pub calendar_id: Option<CalendarId>,
    /// Its version.
    pub calendar_version: u32,
}

/// The computed schedule of a timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Business seconds spent in (closed) pauses so far.
    pub paused_business_secs: i64,
    /// The due instant (100 %).
    pub due_at: DateTime<Utc>,
    /// The instants of 50, 75 and 90 %.
    pub warnings: Vec<(u8, DateTime<Utc>)>,
}

/// A timer's state, folded from the incident's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaTimer {
    /// Which metric.
    pub metric: SlaMetric,
    /// Cycle (1 = first; the resolution timer counts reopens).
    pub cycle: u32,
    /// Policy, target and calendar.
    pub basis: TimerBasis,
    /// Stage.
    pub stage: TimerStage,
    /// When the clock started.
    pub started_at: DateTime<Utc>,
    /// The due instant under the current schedule.
    pub due_at: DateTime<Utc>,
    /// The due instant first promised for this cycle.
    pub original_due_at: DateTime<Utc>,
    /// Pauses, oldest first.
    pub pauses: Vec<Pause>,
    /// Business seconds in closed pauses (as of the last schedule).
    pub paused_business_secs: i64,
    /// Thresholds (50, 75, 90, 100) under the current schedule.
    pub thresholds: Vec<Threshold>,
    /// When the current schedule was decided.
    pub scheduled_at: DateTime<Utc>,
    /// When it stopped (completed or cancelled).
    pub stopped_at: Option<DateTime<Utc>>,
    /// Business seconds elapsed when it stopped.
    pub elapsed_at_stop: Option<i64>,
    /// Whether the target was missed (recorded breach, or stopped after the due time).
    pub breached: bool,
}

impl SlaTimer {
    /// The highest recorded threshold (0 if none).
    pub fn last_threshold(&self) -> u8 {
        self.thresholds
            .iter()
            .filter(|t| t.crossed_at.is_some())
            .map(|t| t.percent)
            .max()
            .unwrap_or(0)
    }

    /// Wall-clock seconds spent paused up to `now`.
    pub fn paused_wall_secs(&self, now: DateTime<Utc>) -> i64 {
        self.pauses
            .iter()
            .map(|p| (p.to.unwrap_or(now).min(now) - p.from).num_seconds().max(0))
            .sum()
    }

    /// Business seconds elapsed at `t` (pauses excluded) on `cal`, frozen once stopped.
    pub fn elapsed_at(&self, cal: &BusinessCalendar, t: DateTime<Utc>) -> i64 {
        if let Some(e) = self.elapsed_at_stop {
            return e;
        }
        elapsed_unpaused(cal, self.started_at, &self.pauses, t)
    }

    /// The figures a reader wants at `now`.
    pub fn progress(&self, cal: &BusinessCalendar, now: DateTime<Utc>) -> Progress {
        let elapsed = self.elapsed_at(cal, now);
        let target = self.basis.target_secs.max(1);
        Progress {
            business_elapsed_secs: elapsed,
            business_remaining_secs: self.basis.target_secs - elapsed,
            percent: elapsed.saturating_mul(100) / target,
            paused_wall_secs: self.paused_wall_secs(now),
            breached: self.breached
                || (self.stage.is_active() && elapsed > self.basis.target_secs)
                || self.last_threshold() >= 100,
        }
    }

    fn crossing(&self, percent: u8) -> Option<&Threshold> {
        self.thresholds.iter().find(|t| t.percent == percent)
    }
}

/// A timer's figures at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Business seconds elapsed (pauses excluded).
    pub business_elapsed_secs: i64,
    /// Target minus elapsed; negative after a breach.
    pub business_remaining_secs: i64,
    /// Elapsed in percent of the target (integer, may exceed 100).
    pub percent: i64,
    /// Wall-clock seconds spent paused.
    pub paused_wall_secs: i64,
    /// Whether the target is missed.
    pub breached: bool,
}

/// The current timers of an incident.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaState {
    /// The response timer (one cycle only).
    pub response: Option<SlaTimer>,
    /// The current resolution timer.
    pub resolution: Option<SlaTimer>,
}

impl SlaState {
    /// The current timer of `metric`.
    pub fn timer(&self, metric: SlaMetric) -> Option<&SlaTimer> {
        match metric {
            SlaMetric::Response => self.response.as_ref(),
            SlaMetric::Resolution => self.resolution.as_ref(),
        }
    }

    fn timer_mut(&mut self, metric: SlaMetric) -> &mut Option<SlaTimer> {
        match metric {
            SlaMetric::Response => &mut self.response,
            SlaMetric::Resolution => &mut self.resolution,
        }
    }

    fn timers_mut(&mut self) -> impl Iterator<Item = &mut SlaTimer> {
        self.response.iter_mut().chain(self.resolution.iter_mut())
    }

    /// Applies an event (SLA events, and the incident events that pause/resume timers).
    pub fn apply(&mut self, event: &IncidentEvent) {
        match event {
            IncidentEvent::SlaTimerStarted(e) => {
                let thresholds = thresholds_of(&e.schedule, None);
                *self.timer_mut(e.metric) = Some(SlaTimer {
                    metric: e.metric,
                    cycle: e.cycle,
                    basis: e.basis,
                    stage: TimerStage::InProgress,
                    started_at: e.started_at,
                    due_at: e.schedule.due_at,
                    original_due_at: e.schedule.due_at,
                    pauses: Vec::new(),
                    paused_business_secs: e.schedule.paused_business_secs,
                    thresholds,
                    scheduled_at: e.at,
                    stopped_at: None,
                    elapsed_at_stop: None,
                    breached: false,
                });
            }
            IncidentEvent::SlaTimerRescheduled(e) => {
                if let Some(t) = self.timer_mut(e.metric).as_mut()
                    && t.cycle == e.cycle
                {
                    t.basis = e.basis;
                    t.due_at = e.schedule.due_at;
                    t.paused_business_secs = e.schedule.paused_business_secs;
                    t.thresholds = thresholds_of(&e.schedule, Some(&t.thresholds));
                    t.scheduled_at = e.at;
                }
            }
            IncidentEvent::SlaTimerStopped(e) => {
                if let Some(t) = self.timer_mut(e.metric).as_mut()
                    && t.cycle == e.cycle
                {
                    t.stage = e.stage;
                    t.stopped_at = Some(e.at);
                    t.elapsed_at_stop = Some(e.business_elapsed_secs);
                    t.breached |= e.breached;
                    if let Some(p) = t.pauses.last_mut()
                        && p.to.is_none()
                    {
                        p.to = Some(e.at);
                    }
                }
            }
            IncidentEvent::SlaWarningIssued(e) => {
                self.mark_crossed(e.metric, e.cycle, e.threshold, e.crossed_at);
            }
            IncidentEvent::SlaBreached(e) => {
                self.mark_crossed(e.metric, e.cycle, 100, e.crossed_at);
                if let Some(t) = self.timer_mut(e.metric).as_mut()
                    && t.cycle == e.cycle
                {
                    t.breached = true;
                }
            }
            IncidentEvent::IncidentPutOnHold(e) => {
                for t in self.timers_mut() {
                    if t.stage == TimerStage::InProgress {
                        t.stage = TimerStage::Paused;
                        t.pauses.push(Pause {
                            from: e.at,
                            to: None,
                        });
                    }
                }
            }
            IncidentEvent::IncidentResumed(e) => {
                for t in self.timers_mut() {
                    if t.stage == TimerStage::Paused {
                        t.stage = TimerStage::InProgress;
                        if let Some(p) = t.pauses.last_mut() {
                            p.to = Some(e.at);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn mark_crossed(&mut self, metric: SlaMetric, cycle: u32, percent: u8, at: DateTime<Utc>) {
        if let Some(t) = self.timer_mut(metric).as_mut()
            && t.cycle == cycle
        {
            if let Some(th) = t.thresholds.iter_mut().find(|x| x.percent == percent) {
                th.crossed_at.get_or_insert(at);
            } else {
                t.thresholds.push(Threshold {
                    percent,
                    at,
                    crossed_at: Some(at),
                });
            }
        }
    }
}

/// The thresholds of a new schedule, keeping what was already recorded.
fn thresholds_of(schedule: &Schedule, previous: Option<&[Threshold]>) -> Vec<Threshold> {
    let crossed = |percent: u8| {
        previous
            .and_then(|p| p.iter().find(|t| t.percent == percent))
            .and_then(|t| t.crossed_at)
    };
    schedule
        .warnings
        .iter()
        .copied()
        .chain(std::iter::once((100, schedule.due_at)))
        .map(|(percent, at)| Threshold {
            percent,
            at,
            crossed_at: crossed(percent),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// A timer started (creation; reopen for the resolution metric).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaTimerStarted {
    /// Metric.
    pub metric: SlaMetric,
    /// Cycle.
    pub cycle: u32,
    /// Policy, target and calendar.
    pub basis: TimerBasis,
    /// When the clock started.
    pub started_at: DateTime<Utc>,
    /// The computed schedule.
    pub schedule: Schedule,
    /// When this was decided.
    pub at: DateTime<Utc>,
}

/// A timer's schedule was recomputed from its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaTimerRescheduled {
    /// Metric.
    pub metric: SlaMetric,
    /// Cycle.
    pub cycle: u32,
    /// Why.
    pub reason: RescheduleReason,
    /// Policy, target and calendar now in force.
    pub basis: TimerBasis,
    /// The due time before.
    pub previous_due_at: DateTime<Utc>,
    /// The new schedule.
    pub schedule: Schedule,
    /// When this was decided.
    pub at: DateTime<Utc>,
}

/// A timer stopped for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaTimerStopped {
    /// Metric.
    pub metric: SlaMetric,
    /// Cycle.
    pub cycle: u32,
    /// `completed` or `cancelled`.
    pub stage: TimerStage,
    /// Business seconds elapsed (pauses excluded).
    pub business_elapsed_secs: i64,
    /// Whether the target was missed.
    pub breached: bool,
    /// When.
    pub at: DateTime<Utc>,
}

/// A warning threshold was crossed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaWarningIssued {
    /// Metric.
    pub metric: SlaMetric,
    /// Cycle.
    pub cycle: u32,
    /// 50, 75 or 90.
    pub threshold: u8,
    /// When it was crossed (may precede `at` if the scheduler caught up late).
    pub crossed_at: DateTime<Utc>,
    /// When it was recorded.
    pub at: DateTime<Utc>,
}

/// The target was missed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaBreached {
    /// Metric.
    pub metric: SlaMetric,
    /// Cycle.
    pub cycle: u32,
    /// When it was crossed (may precede `at` if the scheduler caught up late).
    pub crossed_at: DateTime<Utc>,
    /// When it was recorded.
    pub at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------------
// Rules and decisions
// ---------------------------------------------------------------------------------------------

/// A tenant's policies and calendars, as the command layer loaded them.
#[derive(Debug, Clone)]
pub struct SlaRules {
    /// Active policies (any order; [`select_policy`] orders them).
    pub policies: Vec<SlaPolicy>,
    /// Calendars by id, with their version.
    pub calendars: HashMap<CalendarId, (u32, BusinessCalendar)>,
    default_policy: SlaPolicy,
    always: BusinessCalendar,
}

impl Default for SlaRules {
    fn default() -> Self {
        Self::new(Vec::new(), HashMap::new())
    }
}

impl SlaRules {
    /// Rules from a tenant's active policies and its calendars.
    pub fn new(
        policies: Vec<SlaPolicy>,
        calendars: HashMap<CalendarId, (u32, BusinessCalendar)>,
    ) -> Self {
        Self {
            policies,
            calendars,
            default_policy: SlaPolicy::builtin_default(),
            always: BusinessCalendar::twenty_four_seven(),
        }
    }

    /// The policy governing an incident with these facts.
    pub fn policy_for(&self, facts: &IncidentFacts) -> &SlaPolicy {
        select_policy(&self.policies, facts).unwrap_or(&self.default_policy)
    }

    /// A calendar and its version (`None`, or an unknown id, = 24x7 at version 0).
    pub fn calendar(&self, id: Option<CalendarId>) -> (u32, &BusinessCalendar) {
        id.and_then(|id| self.calendars.get(&id))
            .map_or((0, &self.always), |(v, c)| (*v, c))
    }

    /// What should govern `metric` of an incident with these facts, if anything.
    pub fn basis(&self, metric: SlaMetric, facts: &IncidentFacts) -> Option<TimerBasis> {
        let policy = self.policy_for(facts);
        let target = policy.target(metric, facts.priority)?;
        let (calendar_version, _) = self.calendar(target.calendar_id);
        Some(TimerBasis {
            policy_id: policy.id,
            policy_version: policy.version,
            target_secs: target.target_secs,
            calendar_id: target.calendar_id,
            calendar_version,
        })
    }
}

/// Business seconds in `[start, t)` outside the pauses.
pub fn elapsed_unpaused(
    cal: &BusinessCalendar,
    start: DateTime<Utc>,
    pauses: &[Pause],
    t: DateTime<Utc>,
) -> i64 {
    if t <= start {
        return 0;
    }
    let mut total = cal.business_between(start, t);
    for p in pauses {
        let from = p.from.max(start);
        let to = p.to.unwrap_or(t).min(t);
        if to > from {
            total -= cal.business_between(from, to);
        }
    }
    total.max(0)
}

/// The instant at which `secs` business seconds outside the pauses have elapsed after `start`.
/// An open pause (no end) stops the clock for good: the instant is then the far future.
pub fn instant_after_unpaused(
    cal: &BusinessCalendar,
    start: DateTime<Utc>,
    pauses: &[Pause],
    secs: i64,
) -> DateTime<Utc> {
    let mut cursor = start;
    let mut remaining = secs.max(0);
    for p in pauses {
        if p.from < cursor {
            if let Some(to) = p.to {
                cursor = cursor.max(to);
            } else {
                return DateTime::<Utc>::MAX_UTC;
            }
            continue;
        }
        let available = cal.business_between(cursor, p.from);
        if available >= remaining {
            return cal.add_business(cursor, remaining);
        }
        remaining -= available;
        match p.to {
            Some(to) => cursor = to,
            None => return DateTime::<Utc>::MAX_UTC,
        }
    }
    cal.add_business(cursor, remaining)
}

/// The schedule of a timer started at `start` with `target_secs`, given its pauses; an open
/// pause is counted as if it ended at `now`.
pub fn schedule(
    cal: &BusinessCalendar,
    start: DateTime<Utc>,
    pauses: &[Pause],
    target_secs: i64,
    now: DateTime<Utc>,
) -> Schedule {
    let closed: Vec<Pause> = pauses
        .iter()
        .map(|p| Pause {
            from: p.from,
            to: Some(p.to.unwrap_or(now).max(p.from)),
        })
        .collect();
    let paused_business_secs = closed
        .iter()
        .map(|p| {
            let from = p.from.max(start);
            let to = p.to.unwrap_or(from);
            if to > from {
                cal.business_between(from, to)
            } else {
                0
            }
        })
        .sum();
    let at =
        |percent: i64| instant_after_unpaused(cal, start, &closed, target_secs * percent / 100);
    Schedule {
        paused_business_secs,
        due_at: at(100),
        warnings: WARNING_THRESHOLDS
            .iter()
            .map(|&p| (p, at(i64::from(p))))
            .collect(),
    }
}

fn facts_of(i: &Incident) -> IncidentFacts {
    IncidentFacts {
        priority: i.priority,
        impact: i.impact,
        team_id: i.team_id,
        category_id: i.category_id,
    }
}

/// The SLA events that follow `events` (just decided for `incident`, whose state `after`
/// already includes them), under `rules`, at `now`. The command layer appends them in the
/// same batch. Covers: starting timers on creation and reopen, stopping them on response,
/// resolution and cancellation, rescheduling after a hold, and reconciling every running timer
/// with the policy, target and calendar that govern the incident now (priority, team, category
/// or impact changes; policy or calendar edits via `RefreshSla`).
pub fn follow_up(
    after: &Incident,
    events: &[IncidentEvent],
    rules: &SlaRules,
    now: DateTime<Utc>,
) -> Vec<IncidentEvent> {
    let facts = facts_of(after);
    let mut sla = after.sla.clone();
    let mut out = Vec::new();
    let push = |sla: &mut SlaState, e: IncidentEvent, out: &mut Vec<IncidentEvent>| {
        sla.apply(&e);
        out.push(e);
    };
    let mut priority_changed = false;
    let mut resumed = false;
    for event in events {
        match event {
            IncidentEvent::IncidentCreated(e) => {
                for metric in SlaMetric::ALL {
                    if sla.timer(metric).is_none()
                        && let Some(basis) = rules.basis(metric, &facts)
                    {
                        let ev = start_event(rules, metric, 1, basis, e.at, now);
                        push(&mut sla, ev, &mut out);
                    }
                }
            }
            IncidentEvent::IncidentResponded(e) => {
                if let Some(ev) = stop_event(&sla, rules, SlaMetric::Response, true, e.at) {
                    push(&mut sla, ev, &mut out);
                }
            }
            IncidentEvent::IncidentResolved(e) => {
                for metric in SlaMetric::ALL {
                    if let Some(ev) = stop_event(&sla, rules, metric, true, e.at) {
                        push(&mut sla, ev, &mut out);
                    }
                }
            }
            IncidentEvent::IncidentCancelled(e) => {
                for metric in SlaMetric::ALL {
                    if let Some(ev) = stop_event(&sla, rules, metric, false, e.at) {
                        push(&mut sla, ev, &mut out);
                    }
                }
            }
            IncidentEvent::IncidentReopened(e) => {
                let cycle = sla.resolution.as_ref().map_or(1, |t| t.cycle + 1);
                if let Some(basis) = rules.basis(SlaMetric::Resolution, &facts) {
                    let ev = start_event(rules, SlaMetric::Resolution, cycle, basis, e.at, now);
                    push(&mut sla, ev, &mut out);
                }
            }
            IncidentEvent::IncidentResumed(_) => resumed = true,
            IncidentEvent::IncidentUpdated(e) => {
                priority_changed |= e.changes.priority.is_some();
            }
            _ => {}
        }
    }
    // Reconcile every active timer with what governs the incident now.
    for metric in SlaMetric::ALL {
        let Some(timer) = sla.timer(metric).cloned() else {
            continue;
        };
        if !timer.stage.is_active() {
            continue;
        }
        let Some(basis) = rules.basis(metric, &facts) else {
            // The policy in force has no target for this metric any more.
            if let Some(ev) = stop_event(&sla, rules, metric, false, now) {
                push(&mut sla, ev, &mut out);
            }
            continue;
        };
        let reason = if basis != timer.basis {
            Some(if priority_changed {
                RescheduleReason::PriorityChanged
            } else if basis.policy_id != timer.basis.policy_id
                || basis.policy_version != timer.basis.policy_version
                || basis.target_secs != timer.basis.target_secs
            {
                RescheduleReason::PolicyChanged
            } else {
                RescheduleReason::CalendarChanged
            })
        } else if resumed && timer.stage == TimerStage::InProgress && !timer.pauses.is_empty() {
            Some(RescheduleReason::Resumed)
        } else {
            None
        };
        if let Some(reason) = reason {
            let (_, cal) = rules.calendar(basis.calendar_id);
            let schedule = schedule(cal, timer.started_at, &timer.pauses, basis.target_secs, now);
            if reason == RescheduleReason::Resumed
                && schedule.due_at == timer.due_at
                && schedule.paused_business_secs == timer.paused_business_secs
            {
                continue;
            }
            let ev = IncidentEvent::SlaTimerRescheduled(SlaTimerRescheduled {
                metric,
                cycle: timer.cycle,
                reason,
                basis,
                previous_due_at: timer.due_at,
                schedule,
                at: now,
            });
            push(&mut sla, ev, &mut out);
        }
    }
    out
}

fn start_event(
    rules: &SlaRules,
    metric: SlaMetric,
    cycle: u32,
    basis: TimerBasis,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> IncidentEvent {
    let (_, cal) = rules.calendar(basis.calendar_id);
    IncidentEvent::SlaTimerStarted(SlaTimerStarted {
        metric,
        cycle,
        basis,
        started_at,
        schedule: schedule(cal, started_at, &[], basis.target_secs, now),
        at: started_at,
    })
}

fn stop_event(
    sla: &SlaState,
    rules: &SlaRules,
    metric: SlaMetric,
    completed: bool,
    at: DateTime<Utc>,
) -> Option<IncidentEvent> {
    let t = sla.timer(metric)?;
    if !t.stage.is_active() {
        return None;
    }
    let (_, cal) = rules.calendar(t.basis.calendar_id);
    let elapsed = elapsed_unpaused(cal, t.started_at, &t.pauses, at);
    Some(IncidentEvent::SlaTimerStopped(SlaTimerStopped {
        metric,
        cycle: t.cycle,
        stage: if completed {
            TimerStage::Completed
        } else {
            TimerStage::Cancelled
        },
        business_elapsed_secs: elapsed,
        breached: t.breached || elapsed > t.basis.target_secs,
        at,
    }))
}

/// Why the scheduler's `RecordSlaThreshold` was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    /// No timer of that metric and cycle, or it is not running (paused, stopped).
    #[error("the {metric} timer of cycle {cycle} is not running")]
    NotRunning {
        /// Metric.
        metric: SlaMetric,
        /// Cycle.
        cycle: u32,
    },
    /// The threshold is not reached yet under the current schedule.
    #[error("the {percent}% threshold of the {metric} timer is not reached yet")]
    NotDue {
        /// Metric.
        metric: SlaMetric,
        /// Percent.
        percent: u8,
    },
    /// Not one of 50, 75, 90, 100.
    #[error("unknown threshold {0}")]
    UnknownThreshold(u8),
}

/// Decides the scheduler's `RecordSlaThreshold`: the event to append, none if it was already
/// recorded (exactly once), or why not.
pub fn record_threshold(
    sla: &SlaState,
    metric: SlaMetric,
    cycle: u32,
    percent: u8,
    now: DateTime<Utc>,
) -> Result<Option<IncidentEvent>, ThresholdError> {
    if percent != 100 && !WARNING_THRESHOLDS.contains(&percent) {
        return Err(ThresholdError::UnknownThreshold(percent));
    }
    let timer = sla
        .timer(metric)
        .filter(|t| t.cycle == cycle)
        .ok_or(ThresholdError::NotRunning { metric, cycle })?;
    let Some(th) = timer.crossing(percent) else {
        return Err(ThresholdError::UnknownThreshold(percent));
    };
    if th.crossed_at.is_some() {
        return Ok(None);
    }
    if timer.stage != TimerStage::InProgress {
        return Err(ThresholdError::NotRunning { metric, cycle });
    }
    if th.at > now {
        return Err(ThresholdError::NotDue { metric, percent });
    }
    let crossed_at = th.at.max(timer.scheduled_at);
    Ok(Some(if percent == 100 {
        IncidentEvent::SlaBreached(SlaBreached {
            metric,
            cycle,
            crossed_at,
            at: now,
        })
    } else {
        IncidentEvent::SlaWarningIssued(SlaWarningIssued {
            metric,
            cycle,
            threshold: percent,
            crossed_at,
            at: now,
        })
    }))
}

/// The actor of SLA events: the system.
pub const SLA_ACTOR: Actor = Actor::System;

#[cfg(test)]
#[path = "timer_tests.rs"]
mod tests;
