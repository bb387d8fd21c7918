//! Tests of the SLA timers through the incident aggregate: the decision, then the SLA
//! follow-up the command layer appends in the same batch.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::aggregate::Aggregate;
use crate::ids::{IncidentId, UserId};
use crate::incident::{IncidentAggregate, IncidentCommand, IncidentError};
use crate::priority::PriorityMatrix;
use crate::sla::calendar::{CalendarDefinition, Day, LocalTime, WeeklyRange};
use crate::sla::policy::{PolicyCondition, SlaTarget};
use crate::values::{
    Description, HoldReason, Impact, IncidentNumber, Priority, ReasonText, ResolutionText, Title,
    Urgency,
};
use chrono::TimeZone;
use uuid::Uuid;

const CAL: CalendarId = CalendarId(Uuid::from_u128(0xca1));
const POLICY: SlaPolicyId = SlaPolicyId(Uuid::from_u128(0x9011));

fn agent() -> Actor {
    Actor::User(UserId(Uuid::from_u128(2)))
}

/// 2026-03-02 is a Monday. Times are UTC (the calendar's zone).
fn at(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, h, m, 0).unwrap()
}

/// 09:00–17:00 Monday to Friday, UTC.
fn office_hours() -> BusinessCalendar {
    let days = [
        Day::Monday,
        Day::Tuesday,
        Day::Wednesday,
        Day::Thursday,
        Day::Friday,
    ];
    let def = CalendarDefinition {
        time_zone: "UTC".into(),
        weekly_hours: days
            .iter()
            .map(|d| WeeklyRange {
                day: *d,
                start: LocalTime::parse("09:00").unwrap(),
                end: LocalTime::parse("17:00").unwrap(),
            })
            .collect(),
        holidays: vec![],
    };
    BusinessCalendar::new(&def).unwrap()
}

/// One policy on office hours: high 1 h / 8 h, critical 30 min / 4 h.
fn rules() -> SlaRules {
    let policy = SlaPolicy {
        id: Some(POLICY),
        name: "Office".into(),
        rank: 1,
        condition: PolicyCondition::default(),
        calendar_id: Some(CAL),
        targets: vec![
            SlaTarget {
                priority: Priority::High,
                response_minutes: Some(60),
                resolution_minutes: Some(8 * 60),
                calendar_id: None,
            },
            SlaTarget {
                priority: Priority::Critical,
                response_minutes: Some(30),
                resolution_minutes: Some(4 * 60),
                calendar_id: None,
            },
        ],
        active: true,
        version: 1,
    };
    SlaRules::new(vec![policy], HashMap::from([(CAL, (1, office_hours()))]))
}

/// An incident under test: its aggregate and every event so far.
struct Case {
    agg: IncidentAggregate,
    rules: SlaRules,
}

impl Case {
    fn opened(now: DateTime<Utc>, priority: Priority) -> Self {
        let mut c = Case {
            agg: IncidentAggregate::default(),
            rules: rules(),
        };
        c.run(
            IncidentCommand::Create {
                id: IncidentId(Uuid::from_u128(0x1c)),
                number: IncidentNumber::from_sequence(1).unwrap(),
                title: Title::parse("Mail is down").unwrap(),
                description: Description::parse("").unwrap(),
                impact: Impact::Medium,
                urgency: Urgency::Medium,
                priority: Some(priority),
                matrix: PriorityMatrix::ITIL,
                category_id: None,
                team_id: None,
                assignee_id: None,
                reporter_id: UserId(Uuid::from_u128(1)),
                ci_id: None,
                actor: agent(),
            },
            now,
        );
        c
    }

    /// Decides `command` at `now`, appends the SLA follow-up, applies everything; returns
    /// the SLA events of the batch.
    fn run(&mut self, command: IncidentCommand, now: DateTime<Utc>) -> Vec<IncidentEvent> {
        let events = self.agg.decide(command, now).expect("command accepted");
        let mut after = self.agg.clone();
        for e in &events {
            after.evolve(e);
        }
        let more = follow_up(after.incident().unwrap(), &events, &self.rules, now);
        for e in &more {
            after.evolve(e);
        }
        self.agg = after;
        events
            .into_iter()
            .chain(more)
            .filter(|e| e.is_sla())
            .collect()
    }

    fn sla(&self) -> &SlaState {
        &self.agg.incident().unwrap().sla
    }

    fn resolution(&self) -> &SlaTimer {
        self.sla().resolution.as_ref().unwrap()
    }

    fn start_work(&mut self, now: DateTime<Utc>) -> Vec<IncidentEvent> {
        self.run(IncidentCommand::StartWork { actor: agent() }, now)
    }
}

#[test]
fn creation_starts_both_timers_on_the_policy_calendar() {
    let c = Case::opened(at(2, 9, 0), Priority::High);
    let response = c.sla().response.as_ref().unwrap();
    assert_eq!(response.due_at, at(2, 10, 0));
    assert_eq!(response.basis.policy_id, Some(POLICY));
    assert_eq!(response.basis.calendar_id, Some(CAL));
    let resolution = c.resolution();
    assert_eq!(resolution.cycle, 1);
    assert_eq!(resolution.due_at, at(2, 17, 0));
    assert_eq!(resolution.original_due_at, at(2, 17, 0));
    let warnings: Vec<_> = resolution
        .thresholds
        .iter()
        .map(|t| (t.percent, t.at))
        .collect();
    assert_eq!(
        warnings,
        vec![
            (50, at(2, 13, 0)),
            (75, at(2, 15, 0)),
            (90, at(2, 16, 12)),
            (100, at(2, 17, 0)),
        ]
    );
    assert_eq!(
        c.agg.incident().unwrap().resolution_due_at(),
        Some(at(2, 17, 0))
    );
}

#[test]
fn opened_outside_hours_starts_counting_at_the_next_opening() {
    // Saturday 2026-03-07 → Monday 09:00 + 8 h = Monday 17:00.
    let c = Case::opened(
        Utc.with_ymd_and_hms(2026, 3, 7, 11, 0, 0).unwrap(),
        Priority::High,
    );
    assert_eq!(c.resolution().due_at, at(9, 17, 0));
}

#[test]
fn the_first_response_stops_the_response_timer() {
    let mut c = Case::opened(at(2, 9, 0), Priority::High);
    let events = c.start_work(at(2, 9, 20));
    assert!(matches!(
        events.as_slice(),
        [IncidentEvent::SlaTimerStopped(SlaTimerStopped {
            metric: SlaMetric::Response,
            stage: TimerStage::Completed,
            business_elapsed_secs: 1200,
            breached: false,
            ..
        })]
    ));
    assert_eq!(c.resolution().stage, TimerStage::InProgress);
}

#[test]
fn a_hold_moves_the_due_time_out_by_the_paused_business_time() {
    // Opened 09:00 with an 8 h target on 09:00–17:00; on hold 10:00–14:00; resumed.
    let mut c = Case::opened(at(2, 9, 0), Priority::High);
    c.start_work(at(2, 9, 5));
    c.run(
        IncidentCommand::PutOnHold {
            reason: HoldReason::AwaitingCaller,
            comment: None,
            actor: agent(),
        },
        at(2, 10, 0),
    );
    assert_eq!(c.resolution().stage, TimerStage::Paused);
    let events = c.run(IncidentCommand::Resume { actor: agent() }, at(2, 14, 0));
    let [IncidentEvent::SlaTimerRescheduled(r)] = events.as_slice() else {
        panic!("expected one reschedule, got {events:?}");
    };
    assert_eq!(r.reason, RescheduleReason::Resumed);
    assert_eq!(r.previous_due_at, at(2, 17, 0));
    // 4 business hours later: Monday 17:00 → Tuesday 13:00.
    assert_eq!(r.schedule.due_at, at(3, 13, 0));
    assert_eq!(r.schedule.paused_business_secs, 4 * 3600);
    let timer = c.resolution();
    assert_eq!(timer.stage, TimerStage::InProgress);
    assert_eq!(timer.original_due_at, at(2, 17, 0));
    let p = timer.progress(&office_hours(), at(3, 9, 0));
    // Monday 09–10 and 14–17 = 4 h elapsed at Tuesday 09:00.
    assert_eq!(p.business_elapsed_secs, 4 * 3600);
    assert_eq!(p.business_remaining_secs, 4 * 3600);
    assert_eq!(p.percent, 50);
    assert_eq!(p.paused_wall_secs, 4 * 3600);
}

#[test]
fn a_priority_change_recomputes_from_the_start_and_keeps_the_elapsed_time() {
    let mut c = Case::opened(at(2, 9, 0), Priority::High);
    c.start_work(at(2, 9, 5));
    let events = c.run(
        IncidentCommand::UpdateFields {
            title: None,
            description: None,
            impact: None,
            urgency: None,
            priority: Some(Some(Priority::Critical)),
            category_id: None,
            ci_id: None,
            matrix: PriorityMatrix::ITIL,
            actor: agent(),
        },
        at(2, 11, 0),
    );
    let [IncidentEvent::SlaTimerRescheduled(r)] = events.as_slice() else {
        panic!("expected one reschedule, got {events:?}");
    };
    assert_eq!(r.reason, RescheduleReason::PriorityChanged);
    assert_eq!(r.metric, SlaMetric::Resolution);
    assert_eq!(r.basis.target_secs, 4 * 3600);
    // From the timer's start (09:00), not from now: 09:00 + 4 h.
    assert_eq!(r.schedule.due_at, at(2, 13, 0));
    let p = c.resolution().progress(&office_hours(), at(2, 11, 0));
    assert_eq!(p.business_elapsed_secs, 2 * 3600);
    assert_eq!(p.percent, 50);
}

#[test]
fn reopening_starts_a_new_resolution_cycle_and_keeps_the_first_completed() {
    let mut c = Case::opened(at(2, 9, 0), Priority::High);
    c.start_work(at(2, 9, 5));
    let resolved = c.run(
        IncidentCommand::Resolve {
            resolution: ResolutionText::parse("Restarted").unwrap(),
            actor: agent(),
        },
        at(2, 12, 0),
    );
    let [IncidentEvent::SlaTimerStopped(stop)] = resolved.as_slice() else {
        panic!("expected the resolution timer to stop, got {resolved:?}");
    };
    assert_eq!((stop.cycle, stop.stage), (1, TimerStage::Completed));
    assert_eq!(stop.business_elapsed_secs, 3 * 3600);
    let reopened = c.run(
        IncidentCommand::Reopen {
            reason: ReasonText::parse("Down again").unwrap(),
            actor: agent(),
        },
        at(3, 10, 0),
    );
    let [IncidentEvent::SlaTimerStarted(start)] = reopened.as_slice() else {
        panic!("expected a new cycle, got {reopened:?}");
    };
    assert_eq!(start.cycle, 2);
    assert_eq!(start.started_at, at(3, 10, 0));
    assert_eq!(start.schedule.due_at, at(4, 10, 0));
    assert_eq!(c.resolution().cycle, 2);
    assert_eq!(c.resolution().stage, TimerStage::InProgress);
}

#[test]
fn cancelling_cancels_the_running_timers() {
    let mut c = Case::opened(at(2, 9, 0), Priority::High);
    let events = c.run(
        IncidentCommand::Cancel {
            reason: ReasonText::parse("Duplicate").unwrap(),
            actor: agent(),
        },
        at(2, 9, 30),
    );
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| matches!(
        e,
        IncidentEvent::SlaTimerStopped(SlaTimerStopped {
            stage: TimerStage::Cancelled,
            ..
        })
    )));
}

#[test]
fn a_threshold_is_recorded_once_with_its_real_crossing_time() {
    let mut c = Case::opened(at(2, 9, 0), Priority::High);
    c.start_work(at(2, 9, 5));
    let record = |threshold| IncidentCommand::RecordSlaThreshold {
        metric: SlaMetric::Resolution,
        cycle: 1,
        threshold,
    };
    // Not due yet.
    assert_eq!(
        c.agg.decide(record(50), at(2, 12, 59)),
        Err(IncidentError::Sla(ThresholdError::NotDue {
            metric: SlaMetric::Resolution,
            percent: 50
        }))
    );
    // Noticed late (the scheduler was down): stamped with the crossing instant.
    let events = c.run(record(50), at(2, 16, 0));
    let [IncidentEvent::SlaWarningIssued(w)] = events.as_slice() else {
        panic!("expected a warning, got {events:?}");
    };
    assert_eq!(
        (w.threshold, w.crossed_at, w.at),
        (50, at(2, 13, 0), at(2, 16, 0))
    );
    // A second scheduler with the same row: nothing.
    assert_eq!(c.agg.decide(record(50), at(2, 16, 0)), Ok(vec![]));
    let events = c.run(record(100), at(2, 17, 0));
    assert!(matches!(
        events.as_slice(),
        [IncidentEvent::SlaBreached(SlaBreached { crossed_at, .. })] if *crossed_at == at(2, 17, 0)
    ));
    assert!(c.resolution().breached);
    assert_eq!(c.resolution().last_threshold(), 100);
    assert_eq!(c.agg.decide(record(100), at(2, 18, 0)), Ok(vec![]));
    assert_eq!(
        c.agg.decide(record(42), at(2, 18, 0)),
        Err(IncidentError::Sla(ThresholdError::UnknownThreshold(42)))
    );
}

#[test]
fn a_paused_timer_records_nothing() {
    let mut c = Case::opened(at(2, 9, 0), Priority::High);
    c.start_work(at(2, 9, 5));
    c.run(
        IncidentCommand::PutOnHold {
            reason: HoldReason::AwaitingVendor,
            comment: None,
            actor: agent(),
        },
        at(2, 10, 0),
    );
    let r = c.agg.decide(
        IncidentCommand::RecordSlaThreshold {
            metric: SlaMetric::Resolution,
            cycle: 1,
            threshold: 50,
        },
        at(2, 14, 0),
    );
    assert_eq!(
        r,
        Err(IncidentError::Sla(ThresholdError::NotRunning {
            metric: SlaMetric::Resolution,
            cycle: 1
        }))
    );
}

#[test]
fn a_recompute_into_the_past_stamps_the_breach_at_the_recompute() {
    let mut c = Case::opened(at(2, 9, 0), Priority::High);
    c.start_work(at(2, 9, 5));
    // At 14:00 the priority becomes critical: due 13:00, already past.
    c.run(
        IncidentCommand::UpdateFields {
            title: None,
            description: None,
            impact: None,
            urgency: None,
            priority: Some(Some(Priority::Critical)),
            category_id: None,
            ci_id: None,
            matrix: PriorityMatrix::ITIL,
            actor: agent(),
        },
        at(2, 14, 0),
    );
    let events = c.run(
        IncidentCommand::RecordSlaThreshold {
            metric: SlaMetric::Resolution,
            cycle: 1,
            threshold: 100,
        },
        at(2, 14, 0),
    );
    assert!(matches!(
        events.as_slice(),
        [IncidentEvent::SlaBreached(SlaBreached { crossed_at, .. })] if *crossed_at == at(2, 14, 0)
    ));
}

#[test]
fn a_policy_change_is_applied_by_refresh() {
    let mut c = Case::opened(at(2, 9, 0), Priority::High);
    c.start_work(at(2, 9, 5));
    // The tenant edits the policy: high resolution becomes 6 h (version 2).
    let mut policy = c.rules.policies[0].clone();
    policy.version = 2;
    policy.targets[0].resolution_minutes = Some(6 * 60);
    c.rules = SlaRules::new(vec![policy], HashMap::from([(CAL, (1, office_hours()))]));
    let events = c.run(IncidentCommand::RefreshSla, at(2, 10, 0));
    let [IncidentEvent::SlaTimerRescheduled(r)] = events.as_slice() else {
        panic!("expected one reschedule, got {events:?}");
    };
    assert_eq!(r.reason, RescheduleReason::PolicyChanged);
    assert_eq!(r.schedule.due_at, at(2, 15, 0));
    // Nothing changes the second time.
    assert!(c.run(IncidentCommand::RefreshSla, at(2, 10, 5)).is_empty());
}

#[test]
fn elapsed_and_crossing_instants_agree_around_pauses() {
    let cal = office_hours();
    let start = at(2, 9, 0);
    let pauses = [
        Pause {
            from: at(2, 10, 0),
            to: Some(at(2, 14, 0)),
        },
        Pause {
            from: at(3, 9, 30),
            to: Some(at(3, 10, 0)),
        },
    ];
    for secs in [0, 1800, 3600, 3601, 4 * 3600, 5 * 3600, 20 * 3600] {
        let t = instant_after_unpaused(&cal, start, &pauses, secs);
        assert_eq!(
            elapsed_unpaused(&cal, start, &pauses, t),
            secs,
            "secs = {secs}"
        );
    }
}

#[test]
fn every_sla_event_round_trips_and_is_the_systems() {
    let mut c = Case::opened(at(2, 9, 0), Priority::High);
    let mut all = Vec::new();
    all.extend(c.start_work(at(2, 9, 5)));
    all.extend(c.run(
        IncidentCommand::PutOnHold {
            reason: HoldReason::AwaitingCaller,
            comment: None,
            actor: agent(),
        },
        at(2, 10, 0),
    ));
    all.extend(c.run(IncidentCommand::Resume { actor: agent() }, at(2, 11, 0)));
    all.extend(c.run(
        IncidentCommand::RecordSlaThreshold {
            metric: SlaMetric::Resolution,
            cycle: 1,
            threshold: 50,
        },
        at(2, 15, 0),
    ));
    all.extend(c.run(
        IncidentCommand::RecordSlaThreshold {
            metric: SlaMetric::Resolution,
            cycle: 1,
            threshold: 100,
        },
        at(3, 10, 30),
    ));
    let types: std::collections::BTreeSet<_> = all
        .iter()
        .map(crate::aggregate::DomainEvent::event_type)
        .collect();
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        [
            "SlaBreached",
            "SlaTimerRescheduled",
            "SlaTimerStopped",
            "SlaWarningIssued"
        ]
    );
    for e in &all {
        crate::testing::assert_round_trip(e);
        assert_eq!(e.actor(), Actor::System);
        assert!(e.status_after().is_none());
    }
}
