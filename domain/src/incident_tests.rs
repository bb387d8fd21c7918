//! Given/when/then tests of the incident aggregate.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::testing::{assert_round_trip, given, test_now};
use chrono::TimeDelta;
use uuid::Uuid;

use IncidentStatus as S;

// ---- fixtures ---------------------------------------------------------------------------------

fn incident_id() -> IncidentId {
    IncidentId(Uuid::from_u128(0x1c))
}
fn user(n: u128) -> UserId {
    UserId(Uuid::from_u128(n))
}
fn team(n: u128) -> TeamId {
    TeamId(Uuid::from_u128(0x7ea0 + n))
}
fn category(n: u128) -> CategoryId {
    CategoryId(Uuid::from_u128(0xca70 + n))
}
fn reporter() -> UserId {
    user(1)
}
/// The agent working the incident.
fn agent() -> Actor {
    Actor::User(user(2))
}
fn t0() -> DateTime<Utc> {
    test_now()
}
fn t(minutes: i64) -> DateTime<Utc> {
    t0() + TimeDelta::minutes(minutes)
}
fn title(s: &str) -> Title {
    Title::parse(s).unwrap()
}
fn reason(s: &str) -> ReasonText {
    ReasonText::parse(s).unwrap()
}
fn resolution(s: &str) -> ResolutionText {
    ResolutionText::parse(s).unwrap()
}
fn number() -> IncidentNumber {
    IncidentNumber::from_sequence(123).unwrap()
}
fn note_id(n: u128) -> WorkNoteId {
    WorkNoteId(Uuid::from_u128(0x40_0000 + n))
}
fn attachment_id(n: u128) -> AttachmentId {
    AttachmentId(Uuid::from_u128(0xa0_0000 + n))
}
fn matrix() -> PriorityMatrix {
    PriorityMatrix::ITIL
}

fn g(events: impl IntoIterator<Item = IncidentEvent>) -> crate::testing::Given<IncidentAggregate> {
    given::<IncidentAggregate>(events)
}

// ---- command builders -------------------------------------------------------------------------

fn create_cmd() -> IncidentCommand {
    IncidentCommand::Create {
        id: incident_id(),
        number: number(),
        title: title("Mail down"),
        description: Description::default(),
        impact: Impact::Medium,
        urgency: Urgency::High,
        priority: None,
        matrix: matrix(),
        category_id: None,
        team_id: None,
        assignee_id: None,
        reporter_id: reporter(),
        ci_id: None,
        actor: agent(),
    }
}

fn update_cmd() -> IncidentCommand {
    IncidentCommand::UpdateFields {
        title: None,
        description: None,
        impact: None,
        urgency: None,
        priority: None,
        category_id: None,
        ci_id: None,
        matrix: matrix(),
        actor: agent(),
    }
}

/// `update_cmd()` with one field edited by `f`.
fn update_with(f: impl FnOnce(&mut IncidentCommand)) -> IncidentCommand {
    let mut c = update_cmd();
    f(&mut c);
    c
}

fn assign_cmd(assignee: Option<UserId>, team_id: Option<TeamId>) -> IncidentCommand {
    IncidentCommand::Assign {
        assignee_id: assignee,
        team_id,
        actor: agent(),
    }
}

fn note_cmd(n: u128, is_public: bool, by_agent: bool) -> IncidentCommand {
    IncidentCommand::AddWorkNote {
        note_id: note_id(n),
        body: WorkNoteBody::parse("Checked the mail relay").unwrap(),
        note_type: WorkNoteType::WorkNote,
        is_public,
        by_agent,
        author: agent(),
    }
}

fn attachment_cmd(n: u128) -> IncidentCommand {
    IncidentCommand::AddAttachment {
        attachment_id: attachment_id(n),
        filename: FileName::parse("relay.log").unwrap(),
        content_type: ContentType::parse("text/plain").unwrap(),
        size_bytes: 2048,
        sha256: Sha256Hex::parse("ab".repeat(32)).unwrap(),
        uploaded_by: agent(),
    }
}

/// A representative command for each action, one that changes something wherever the action
/// is allowed.
fn sample(action: IncidentAction) -> IncidentCommand {
    use IncidentAction as A;
    match action {
        A::Create => create_cmd(),
        A::Update => update_with(|c| {
            if let IncidentCommand::UpdateFields { title: t, .. } = c {
                *t = Some(title("Mail still down"));
            }
        }),
        A::Assign => assign_cmd(Some(user(3)), None),
        A::StartWork => IncidentCommand::StartWork { actor: agent() },
        A::PutOnHold => IncidentCommand::PutOnHold {
            reason: HoldReason::AwaitingVendor,
            comment: None,
            actor: agent(),
        },
        A::Resume => IncidentCommand::Resume { actor: agent() },
        A::Resolve => IncidentCommand::Resolve {
            resolution: resolution("Restarted the relay"),
            actor: agent(),
        },
        A::Reopen => IncidentCommand::Reopen {
            reason: reason("Still broken"),
            actor: agent(),
        },
        A::Close => IncidentCommand::Close { actor: agent() },
        A::Cancel => IncidentCommand::Cancel {
            reason: reason("Duplicate"),
            actor: agent(),
        },
        A::AddWorkNote => note_cmd(1, false, true),
        A::AddAttachment => attachment_cmd(1),
        A::RecordSlaThreshold | A::RefreshSla => {
            unreachable!("system actions are tested in sla::timer")
        }
        A::LinkExternal => link_cmd("OPS-1"),
    }
}

// ---- event builders ---------------------------------------------------------------------------

fn created_event() -> IncidentCreated {
    IncidentCreated {
        id: incident_id(),
        number: number(),
        title: title("Mail down"),
        description: Description::default(),
        impact: Impact::Medium,
        urgency: Urgency::High,
        priority: Priority::High, // ITIL: medium × high
        priority_overridden: false,
        category_id: None,
        team_id: None,
        assignee_id: None,
        reporter_id: reporter(),
        ci_id: None,
        actor: agent(),
        at: t0(),
    }
}
fn created() -> IncidentEvent {
    IncidentEvent::IncidentCreated(created_event())
}
fn assigned() -> IncidentEvent {
    IncidentEvent::IncidentAssigned(IncidentAssigned {
        from: S::New,
        to: S::Assigned,
        previous_assignee_id: None,
        assignee_id: Some(user(2)),
        previous_team_id: None,
        team_id: Some(team(1)),
        actor: agent(),
        at: t0(),
    })
}
fn responded(trigger: ResponseTrigger) -> IncidentEvent {
    IncidentEvent::IncidentResponded(IncidentResponded {
        trigger,
        actor: agent(),
        at: t0(),
    })
}
fn started(from: IncidentStatus) -> IncidentEvent {
    IncidentEvent::IncidentWorkStarted(IncidentWorkStarted {
        from,
        actor: agent(),
        at: t0(),
    })
}
fn held(from: IncidentStatus) -> IncidentEvent {
    IncidentEvent::IncidentPutOnHold(IncidentPutOnHold {
        from,
        reason: HoldReason::AwaitingCaller,
        comment: Some(reason("Asked for logs")),
        actor: agent(),
        at: t0(),
    })
}
fn resumed(to: IncidentStatus) -> IncidentEvent {
    IncidentEvent::IncidentResumed(IncidentResumed {
        to,
        hold_reason: Some(HoldReason::AwaitingCaller),
        actor: agent(),
        at: t0(),
    })
}
fn resolved(from: IncidentStatus) -> IncidentEvent {
    IncidentEvent::IncidentResolved(IncidentResolved {
        from,
        resolution: resolution("Restarted the relay"),
        actor: agent(),
        at: t0(),
    })
}
fn reopened(count: u32) -> IncidentEvent {
    IncidentEvent::IncidentReopened(IncidentReopened {
        reason: reason("Still broken"),
        previous_resolution: Some(resolution("Restarted the relay")),
        reopen_count: count,
        actor: agent(),
        at: t0(),
    })
}
fn closed() -> IncidentEvent {
    IncidentEvent::IncidentClosed(IncidentClosed {
        actor: agent(),
        at: t0(),
    })
}
fn cancelled(from: IncidentStatus) -> IncidentEvent {
    IncidentEvent::IncidentCancelled(IncidentCancelled {
        from,
        reason: reason("Duplicate"),
        actor: agent(),
        at: t0(),
    })
}
fn note_added(n: u128, is_public: bool, by_agent: bool) -> IncidentEvent {
    IncidentEvent::IncidentWorkNoteAdded(IncidentWorkNoteAdded {
        note_id: note_id(n),
        body: WorkNoteBody::parse("Checked the mail relay").unwrap(),
        note_type: WorkNoteType::WorkNote,
        is_public,
        by_agent,
        author: agent(),
        at: t0(),
    })
}
fn attachment_added(n: u128) -> IncidentEvent {
    IncidentEvent::IncidentAttachmentAdded(IncidentAttachmentAdded {
        attachment_id: attachment_id(n),
        filename: FileName::parse("relay.log").unwrap(),
        content_type: ContentType::parse("text/plain").unwrap(),
        size_bytes: 2048,
        sha256: Sha256Hex::parse("ab".repeat(32)).unwrap(),
        uploaded_by: agent(),
        at: t0(),
    })
}
fn updated(changes: IncidentChanges) -> IncidentEvent {
    IncidentEvent::IncidentUpdated(IncidentUpdated {
        changes,
        actor: agent(),
        at: t0(),
    })
}

/// A history that leaves the incident in `status`.
fn history(status: IncidentStatus) -> Vec<IncidentEvent> {
    let assigned_h = vec![
        created(),
        assigned(),
        responded(ResponseTrigger::StatusChange),
    ];
    let mut in_progress_h = assigned_h.clone();
    in_progress_h.push(started(S::Assigned));
    let mut resolved_h = in_progress_h.clone();
    resolved_h.push(resolved(S::InProgress));
    match status {
        S::New => vec![created()],
        S::Assigned => assigned_h,
        S::InProgress => in_progress_h,
        S::OnHold => {
            let mut h = in_progress_h;
            h.push(held(S::InProgress));
            h
        }
        S::Resolved => resolved_h,
        S::Closed => {
            let mut h = resolved_h;
            h.push(closed());
            h
        }
        S::Cancelled => vec![created(), cancelled(S::New)],
    }
}

fn state_after(events: impl IntoIterator<Item = IncidentEvent>) -> Incident {
    let events: Vec<_> = events.into_iter().collect();
    IncidentAggregate::replay(&events).state.unwrap()
}

// ---- the transition table ---------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Allowed; the status becomes this.
    To(IncidentStatus),
    /// Rejected: `InvalidTransition { from: <current>, to }`.
    Invalid(IncidentStatus),
    /// Rejected: `ActionNotAllowed { action, status: <current> }`.
    NotAllowed,
    /// Rejected: `AlreadyExists`.
    Exists,
}

#[test]
fn transition_table_covers_every_status_and_action() {
    use Expect::{Exists as E, Invalid as X, NotAllowed as NA, To};
    use IncidentAction as A;
    let statuses = [
        S::New,
        S::Assigned,
        S::InProgress,
        S::OnHold,
        S::Resolved,
        S::Closed,
        S::Cancelled,
    ];
    // Columns: new, assigned, in_progress, on_hold, resolved, closed, cancelled.
    let ip = S::InProgress;
    let table: Vec<(IncidentAction, [Expect; 7])> = vec![
        (A::Create, [E, E, E, E, E, E, E]),
        (
            A::Update,
            [
                To(S::New),
                To(S::Assigned),
                To(ip),
                To(S::OnHold),
                To(S::Resolved),
                NA,
                NA,
            ],
        ),
        (
            A::Assign,
            [
                To(S::Assigned),
                To(S::Assigned),
                To(ip),
                To(S::OnHold),
                NA,
                NA,
                NA,
            ],
        ),
        (
            A::StartWork,
            [To(ip), To(ip), X(ip), X(ip), X(ip), X(ip), X(ip)],
        ),
        (
            A::PutOnHold,
            [
                X(S::OnHold),
                To(S::OnHold),
                To(S::OnHold),
                X(S::OnHold),
                X(S::OnHold),
                X(S::OnHold),
                X(S::OnHold),
            ],
        ),
        (
            A::Resume,
            [X(ip), X(ip), X(ip), To(ip), X(ip), X(ip), X(ip)],
        ),
        (
            A::Resolve,
            [
                X(S::Resolved),
                X(S::Resolved),
                To(S::Resolved),
                To(S::Resolved),
                X(S::Resolved),
                X(S::Resolved),
                X(S::Resolved),
            ],
        ),
        (
            A::Reopen,
            [X(ip), X(ip), X(ip), X(ip), To(ip), X(ip), X(ip)],
        ),
        (
            A::Close,
            [
                X(S::Closed),
                X(S::Closed),
                X(S::Closed),
                X(S::Closed),
                To(S::Closed),
                X(S::Closed),
                X(S::Closed),
            ],
        ),
        (
            A::Cancel,
            [
                To(S::Cancelled),
                To(S::Cancelled),
                To(S::Cancelled),
                To(S::Cancelled),
                X(S::Cancelled),
                X(S::Cancelled),
                X(S::Cancelled),
            ],
        ),
        (
            A::AddWorkNote,
            [
                To(S::New),
                To(S::Assigned),
                To(ip),
                To(S::OnHold),
                To(S::Resolved),
                NA,
                NA,
            ],
        ),
        (
            A::AddAttachment,
            [
                To(S::New),
                To(S::Assigned),
                To(ip),
                To(S::OnHold),
                To(S::Resolved),
                NA,
                NA,
            ],
        ),
    ];
    assert_eq!(
        table.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        IncidentAction::user_actions().collect::<Vec<_>>(),
        "the table must list every action"
    );

    for (action, row) in &table {
        for (status, expect) in statuses.iter().zip(row) {
            let status = *status;
            let start = history(status);
            assert_eq!(state_after(start.clone()).status, status, "fixture");
            let when = g(start.clone()).when(sample(*action));
            let (_, result) = when.into_parts();
            match (*expect, result) {
                (Expect::To(to), Ok(events)) => {
                    assert!(!events.is_empty(), "{action} from {status} emitted nothing");
                    let after = state_after(start.into_iter().chain(events));
                    assert_eq!(after.status, to, "{action} from {status}");
                }
                (Expect::Invalid(to), Err(e)) => assert_eq!(
                    e,
                    IncidentError::InvalidTransition { from: status, to },
                    "{action} from {status}"
                ),
                (Expect::NotAllowed, Err(e)) => assert_eq!(
                    e,
                    IncidentError::ActionNotAllowed {
                        action: *action,
                        status
                    },
                    "{action} from {status}"
                ),
                (Expect::Exists, Err(e)) => {
                    assert_eq!(e, IncidentError::AlreadyExists, "{action} from {status}");
                }
                (expect, got) => panic!("{action} from {status}: expected {expect:?}, got {got:?}"),
            }
            // The pure table function agrees with decide.
            let next = next_status(status, *action, Some(S::InProgress));
            match expect {
                Expect::To(to) => assert_eq!(next, Ok(*to), "{action} from {status}"),
                _ => assert!(next.is_err(), "{action} from {status}"),
            }
        }
    }
}

#[test]
fn allowed_actions_follow_the_table() {
    use IncidentAction as A;
    assert_eq!(
        state_after(history(S::New)).allowed_actions(),
        [
            A::Update,
            A::Assign,
            A::StartWork,
            A::Cancel,
            A::AddWorkNote,
            A::AddAttachment
        ]
    );
    assert_eq!(
        state_after(history(S::Resolved)).allowed_actions(),
        [
            A::Update,
            A::Reopen,
            A::Close,
            A::AddWorkNote,
            A::AddAttachment
        ]
    );
    assert!(state_after(history(S::Closed)).allowed_actions().is_empty());
    assert!(
        state_after(history(S::Cancelled))
            .allowed_actions()
            .is_empty()
    );
}

#[test]
fn every_command_on_a_missing_incident_is_not_found() {
    for action in IncidentAction::user_actions() {
        if action == IncidentAction::Create {
            continue;
        }
        g([]).when(sample(action)).then_err(IncidentError::NotFound);
    }
    assert_eq!(
        IncidentAggregate::default().ensure_exists(),
        Err(IncidentError::NotFound)
    );
}

// ---- Create -----------------------------------------------------------------------------------

#[test]
fn create_derives_priority_from_the_matrix() {
    let s = g([]).when(create_cmd()).then([created()]);
    let i = s.ensure_exists().unwrap();
    assert_eq!(i.status, S::New);
    assert_eq!(i.priority, Priority::High);
    assert!(!i.priority_overridden);
    assert_eq!(i.number.to_string(), "INC000123");
    assert_eq!(i.created_at, t0());
    assert_eq!(i.created_by, agent());
    assert_eq!(i.responded_at, None);
    assert_eq!(i.reopen_count, 0);
}

#[test]
fn create_with_explicit_priority_overrides_the_matrix() {
    let mut cmd = create_cmd();
    if let IncidentCommand::Create { priority, .. } = &mut cmd {
        *priority = Some(Priority::Low);
    }
    g([])
        .when(cmd)
        .then([IncidentEvent::IncidentCreated(IncidentCreated {
            priority: Priority::Low,
            priority_overridden: true,
            ..created_event()
        })]);
}

#[test]
fn create_uses_the_tenant_matrix() {
    let mut cmd = create_cmd();
    if let IncidentCommand::Create { matrix, .. } = &mut cmd {
        *matrix = PriorityMatrix::ITIL.with(Impact::Medium, Urgency::High, Priority::Critical);
    }
    g([])
        .when(cmd)
        .then([IncidentEvent::IncidentCreated(IncidentCreated {
            priority: Priority::Critical,
            ..created_event()
        })]);
}

#[test]
fn create_with_routing_records_it_but_stays_new() {
    let mut cmd = create_cmd();
    if let IncidentCommand::Create {
        team_id,
        assignee_id,
        category_id,
        description,
        ..
    } = &mut cmd
    {
        *team_id = Some(team(1));
        *assignee_id = Some(user(2));
        *category_id = Some(category(1));
        *description = Description::parse("Outlook cannot connect").unwrap();
    }
    let s = g([])
        .when(cmd)
        .then([IncidentEvent::IncidentCreated(IncidentCreated {
            team_id: Some(team(1)),
            assignee_id: Some(user(2)),
            category_id: Some(category(1)),
            description: Description::parse("Outlook cannot connect").unwrap(),
            ..created_event()
        })]);
    let i = s.ensure_exists().unwrap();
    assert_eq!(i.status, S::New);
    assert_eq!(i.assignee_id, Some(user(2)));
    assert_eq!(i.team_id, Some(team(1)));
    assert_eq!(i.category_id, Some(category(1)));
}

#[test]
fn create_twice_is_rejected() {
    g([created()])
        .when(create_cmd())
        .then_err(IncidentError::AlreadyExists);
}

// ---- UpdateFields -----------------------------------------------------------------------------

#[test]
fn update_title_and_description_records_old_and_new() {
    let d = Description::parse("Since 9:00").unwrap();
    let s = g([created()])
        .at(t(5))
        .when(update_with(|c| {
            if let IncidentCommand::UpdateFields {
                title: tt,
                description,
                ..
            } = c
            {
                *tt = Some(title("Mail down for everyone"));
                *description = Some(d.clone());
            }
        }))
        .then([IncidentEvent::IncidentUpdated(IncidentUpdated {
            changes: IncidentChanges {
                title: Some(Change {
                    old: title("Mail down"),
                    new: title("Mail down for everyone"),
                }),
                description: Some(Change {
                    old: Description::default(),
                    new: d.clone(),
                }),
                ..Default::default()
            },
            actor: agent(),
            at: t(5),
        })]);
    let i = s.ensure_exists().unwrap();
    assert_eq!(i.title, title("Mail down for everyone"));
    assert_eq!(i.description, d);
    assert_eq!(i.updated_at, t(5));
}

#[test]
fn update_that_changes_nothing_emits_nothing() {
    g([created()]).when(update_cmd()).then_nothing();
    g([created()])
        .when(update_with(|c| {
            if let IncidentCommand::UpdateFields {
                title: tt,
                description,
                impact,
                urgency,
                category_id,
                ..
            } = c
            {
                *tt = Some(title("  Mail down "));
                *description = Some(Description::default());
                *impact = Some(Impact::Medium);
                *urgency = Some(Urgency::High);
                *category_id = Some(None);
            }
        }))
        .then_nothing();
}

#[test]
fn impact_change_rederives_priority() {
    let s = g([created()])
        .when(update_with(|c| {
            if let IncidentCommand::UpdateFields { impact, .. } = c {
                *impact = Some(Impact::Extensive);
            }
        }))
        .then([updated(IncidentChanges {
            impact: Some(Change {
                old: Impact::Medium,
                new: Impact::Extensive,
            }),
            priority: Some(Change {
                old: Priority::High,
                new: Priority::Critical,
            }),
            ..Default::default()
        })]);
    assert_eq!(s.ensure_exists().unwrap().priority, Priority::Critical);
}

#[test]
fn urgency_change_rederives_priority_with_the_given_matrix() {
    let custom = PriorityMatrix::ITIL.with(Impact::Medium, Urgency::Low, Priority::Critical);
    g([created()])
        .when(update_with(|c| {
            if let IncidentCommand::UpdateFields {
                urgency, matrix, ..
            } = c
            {
                *urgency = Some(Urgency::Low);
                *matrix = custom;
            }
        }))
        .then([updated(IncidentChanges {
            urgency: Some(Change {
                old: Urgency::High,
                new: Urgency::Low,
            }),
            priority: Some(Change {
                old: Priority::High,
                new: Priority::Critical,
            }),
            ..Default::default()
        })]);
}

#[test]
fn impact_change_within_the_same_priority_changes_only_impact() {
    // medium × high = high; high × medium = high as well.
    g([created()])
        .when(update_with(|c| {
            if let IncidentCommand::UpdateFields {
                impact, urgency, ..
            } = c
            {
                *impact = Some(Impact::High);
                *urgency = Some(Urgency::Medium);
            }
        }))
        .then([updated(IncidentChanges {
            impact: Some(Change {
                old: Impact::Medium,
                new: Impact::High,
            }),
            urgency: Some(Change {
                old: Urgency::High,
                new: Urgency::Medium,
            }),
            ..Default::default()
        })]);
}

#[test]
fn matrix_change_alone_does_not_rederive() {
    g([created()])
        .when(update_with(|c| {
            if let IncidentCommand::UpdateFields { matrix, .. } = c {
                *matrix = PriorityMatrix::ITIL.with(Impact::Medium, Urgency::High, Priority::Low);
            }
        }))
        .then_nothing();
}

fn overridden_low() -> IncidentEvent {
    updated(IncidentChanges {
        priority: Some(Change {
            old: Priority::High,
            new: Priority::Low,
        }),
        priority_overridden: Some(Change {
            old: false,
            new: true,
        }),
        ..Default::default()
    })
}

#[test]
fn explicit_priority_sets_the_override() {
    let s = g([created()])
        .when(update_with(|c| {
            if let IncidentCommand::UpdateFields { priority, .. } = c {
                *priority = Some(Some(Priority::Low));
            }
        }))
        .then([overridden_low()]);
    let i = s.ensure_exists().unwrap();
    assert_eq!(i.priority, Priority::Low);
    assert!(i.priority_overridden);
}

#[test]
fn pinning_the_current_priority_records_only_the_override() {
    g([created()])
        .when(update_with(|c| {
            if let IncidentCommand::UpdateFields { priority, .. } = c {
                *priority = Some(Some(Priority::High));
            }
        }))
        .then([updated(IncidentChanges {
            priority_overridden: Some(Change {
                old: false,
                new: true,
            }),
            ..Default::default()
        })]);
}

#[test]
fn overridden_priority_survives_impact_change() {
    g([created(), overridden_low()])
        .when(update_with(|c| {
            if let IncidentCommand::UpdateFields { impact, .. } = c {
                *impact = Some(Impact::Extensive);
            }
        }))
        .then([updated(IncidentChanges {
            impact: Some(Change {
                old: Impact::Medium,
                new: Impact::Extensive,
            }),
            ..Default::default()
        })]);
}

#[test]
fn dropping_the_override_rederives() {
    let s = g([created(), overridden_low()])
        .when(update_with(|c| {
            if let IncidentCommand::UpdateFields { priority, .. } = c {
                *priority = Some(None);
            }
        }))
        .then([updated(IncidentChanges {
            priority: Some(Change {
                old: Priority::Low,
                new: Priority::High,
            }),
            priority_overridden: Some(Change {
                old: true,
                new: false,
            }),
            ..Default::default()
        })]);
    assert!(!s.ensure_exists().unwrap().priority_overridden);
}

#[test]
fn category_can_be_set_and_cleared() {
    let set = updated(IncidentChanges {
        category_id: Some(Change {
            old: None,
            new: Some(category(1)),
        }),
        ..Default::default()
    });
    let s = g([created()])
        .when(update_with(|c| {
            if let IncidentCommand::UpdateFields { category_id, .. } = c {
                *category_id = Some(Some(category(1)));
            }
        }))
        .then([set.clone()]);
    assert_eq!(s.ensure_exists().unwrap().category_id, Some(category(1)));
    let s = g([created(), set])
        .when(update_with(|c| {
            if let IncidentCommand::UpdateFields { category_id, .. } = c {
                *category_id = Some(None);
            }
        }))
        .then([updated(IncidentChanges {
            category_id: Some(Change {
                old: Some(category(1)),
                new: None,
            }),
            ..Default::default()
        })]);
    assert_eq!(s.ensure_exists().unwrap().category_id, None);
}

#[test]
fn configuration_item_can_be_set_at_creation_changed_and_cleared() {
    let ci = |n: u128| crate::ids::CiId(Uuid::from_u128(n));
    let mut cmd = create_cmd();
    if let IncidentCommand::Create { ci_id, .. } = &mut cmd {
        *ci_id = Some(ci(1));
    }
    let s = g([])
        .when(cmd)
        .then([IncidentEvent::IncidentCreated(IncidentCreated {
            ci_id: Some(ci(1)),
            ..created_event()
        })]);
    assert_eq!(s.ensure_exists().unwrap().ci_id, Some(ci(1)));
    let with_ci = IncidentEvent::IncidentCreated(IncidentCreated {
        ci_id: Some(ci(1)),
        ..created_event()
    });
    let moved = updated(IncidentChanges {
        ci_id: Some(Change {
            old: Some(ci(1)),
            new: Some(ci(2)),
        }),
        ..Default::default()
    });
    let s = g([with_ci.clone()])
        .when(update_with(|c| {
            if let IncidentCommand::UpdateFields { ci_id, .. } = c {
                *ci_id = Some(Some(ci(2)));
            }
        }))
        .then([moved.clone()]);
    assert_eq!(s.ensure_exists().unwrap().ci_id, Some(ci(2)));
    let history = moved.history();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].field, "ci_id");
    assert_eq!(history[0].new, Some(ci(2).to_string()));
    let s = g([with_ci.clone(), moved])
        .when(update_with(|c| {
            if let IncidentCommand::UpdateFields { ci_id, .. } = c {
                *ci_id = Some(None);
            }
        }))
        .then([updated(IncidentChanges {
            ci_id: Some(Change {
                old: Some(ci(2)),
                new: None,
            }),
            ..Default::default()
        })]);
    assert_eq!(s.ensure_exists().unwrap().ci_id, None);
    // The same CI again changes nothing; old events without the field still decode.
    g([with_ci])
        .when(update_with(|c| {
            if let IncidentCommand::UpdateFields { ci_id, .. } = c {
                *ci_id = Some(Some(ci(1)));
            }
        }))
        .then_nothing();
    let mut old = serde_json::to_value(created_event()).unwrap();
    old.as_object_mut().unwrap().remove("ci_id");
    let back: IncidentCreated = serde_json::from_value(old).unwrap();
    assert_eq!(back.ci_id, None);
}

#[test]
fn update_is_allowed_when_resolved_but_not_when_final() {
    let cmd = sample(IncidentAction::Update);
    g(history(S::Resolved))
        .when(cmd.clone())
        .then([updated(IncidentChanges {
            title: Some(Change {
                old: title("Mail down"),
                new: title("Mail still down"),
            }),
            ..Default::default()
        })]);
    for status in [S::Closed, S::Cancelled] {
        g(history(status))
            .when(cmd.clone())
            .then_err(IncidentError::ActionNotAllowed {
                action: IncidentAction::Update,
                status,
            });
    }
}

// ---- Assign -----------------------------------------------------------------------------------

#[test]
fn assigning_a_new_incident_moves_it_to_assigned_and_records_the_response() {
    let s = g([created()])
        .at(t(10))
        .when(assign_cmd(Some(user(2)), Some(team(1))))
        .then([
            IncidentEvent::IncidentAssigned(IncidentAssigned {
                at: t(10),
                ..match assigned() {
                    IncidentEvent::IncidentAssigned(a) => a,
                    _ => unreachable!(),
                }
            }),
            IncidentEvent::IncidentResponded(IncidentResponded {
                trigger: ResponseTrigger::StatusChange,
                actor: agent(),
                at: t(10),
            }),
        ]);
    let i = s.ensure_exists().unwrap();
    assert_eq!(i.status, S::Assigned);
    assert_eq!(i.assignee_id, Some(user(2)));
    assert_eq!(i.team_id, Some(team(1)));
    assert_eq!(i.responded_at, Some(t(10)));
}

#[test]
fn assigning_only_a_team_also_routes_a_new_incident() {
    g([created()]).when(assign_cmd(None, Some(team(1)))).then([
        IncidentEvent::IncidentAssigned(IncidentAssigned {
            from: S::New,
            to: S::Assigned,
            previous_assignee_id: None,
            assignee_id: None,
            previous_team_id: None,
            team_id: Some(team(1)),
            actor: agent(),
            at: t0(),
        }),
        responded(ResponseTrigger::StatusChange),
    ]);
}

#[test]
fn assigning_the_precreated_routing_still_moves_new_to_assigned() {
    let pre_routed = IncidentEvent::IncidentCreated(IncidentCreated {
        team_id: Some(team(1)),
        assignee_id: Some(user(2)),
        ..created_event()
    });
    g([pre_routed])
        .when(assign_cmd(Some(user(2)), Some(team(1))))
        .then([
            IncidentEvent::IncidentAssigned(IncidentAssigned {
                from: S::New,
                to: S::Assigned,
                previous_assignee_id: Some(user(2)),
                assignee_id: Some(user(2)),
                previous_team_id: Some(team(1)),
                team_id: Some(team(1)),
                actor: agent(),
                at: t0(),
            }),
            responded(ResponseTrigger::StatusChange),
        ]);
}

#[test]
fn reassigning_keeps_status_and_the_other_field() {
    for status in [S::Assigned, S::InProgress, S::OnHold] {
        let s = g(history(status))
            .when(assign_cmd(Some(user(3)), None))
            .then([IncidentEvent::IncidentAssigned(IncidentAssigned {
                from: status,
                to: status,
                previous_assignee_id: Some(user(2)),
                assignee_id: Some(user(3)),
                previous_team_id: Some(team(1)),
                team_id: Some(team(1)),
                actor: agent(),
                at: t0(),
            })]);
        let i = s.ensure_exists().unwrap();
        assert_eq!(i.status, status);
        assert_eq!(i.team_id, Some(team(1)));
    }
}

#[test]
fn assigning_the_same_routing_emits_nothing() {
    g(history(S::InProgress))
        .when(assign_cmd(Some(user(2)), Some(team(1))))
        .then_nothing();
}

#[test]
fn assign_needs_an_assignee_or_a_team() {
    g([created()])
        .when(assign_cmd(None, None))
        .then_err(IncidentError::EmptyAssignment);
}

#[test]
fn assign_is_rejected_once_resolved() {
    for status in [S::Resolved, S::Closed, S::Cancelled] {
        g(history(status))
            .when(assign_cmd(Some(user(3)), None))
            .then_err(IncidentError::ActionNotAllowed {
                action: IncidentAction::Assign,
                status,
            });
    }
}

#[test]
fn leaving_new_after_an_earlier_response_does_not_respond_twice() {
    g([
        created(),
        note_added(1, true, true),
        responded(ResponseTrigger::PublicWorkNote),
    ])
    .when(assign_cmd(Some(user(2)), Some(team(1))))
    .then([assigned()]);
}

// ---- StartWork --------------------------------------------------------------------------------

#[test]
fn start_work_from_assigned() {
    let s = g(history(S::Assigned))
        .when(IncidentCommand::StartWork { actor: agent() })
        .then([started(S::Assigned)]);
    assert_eq!(s.ensure_exists().unwrap().status, S::InProgress);
}

#[test]
fn start_work_from_new_is_a_response() {
    let s = g([created()])
        .at(t(3))
        .when(IncidentCommand::StartWork { actor: agent() })
        .then([
            IncidentEvent::IncidentWorkStarted(IncidentWorkStarted {
                from: S::New,
                actor: agent(),
                at: t(3),
            }),
            IncidentEvent::IncidentResponded(IncidentResponded {
                trigger: ResponseTrigger::StatusChange,
                actor: agent(),
                at: t(3),
            }),
        ]);
    assert_eq!(s.ensure_exists().unwrap().responded_at, Some(t(3)));
}

#[test]
fn start_work_twice_is_an_invalid_transition() {
    g(history(S::InProgress))
        .when(IncidentCommand::StartWork { actor: agent() })
        .then_err(IncidentError::InvalidTransition {
            from: S::InProgress,
            to: S::InProgress,
        });
}

// ---- PutOnHold / Resume -----------------------------------------------------------------------

#[test]
fn hold_from_in_progress_and_resume() {
    let s = g(history(S::InProgress))
        .at(t(20))
        .when(IncidentCommand::PutOnHold {
            reason: HoldReason::AwaitingCaller,
            comment: Some(reason("Asked for logs")),
            actor: agent(),
        })
        .then([IncidentEvent::IncidentPutOnHold(IncidentPutOnHold {
            from: S::InProgress,
            reason: HoldReason::AwaitingCaller,
            comment: Some(reason("Asked for logs")),
            actor: agent(),
            at: t(20),
        })]);
    let i = s.ensure_exists().unwrap();
    assert_eq!(i.status, S::OnHold);
    assert_eq!(i.hold_reason, Some(HoldReason::AwaitingCaller));
    assert_eq!(i.held_from, Some(S::InProgress));
    assert_eq!(i.on_hold_since, Some(t(20)));

    let s = g(history(S::OnHold))
        .when(IncidentCommand::Resume { actor: agent() })
        .then([resumed(S::InProgress)]);
    let i = s.ensure_exists().unwrap();
    assert_eq!(i.status, S::InProgress);
    assert_eq!(i.hold_reason, None);
    assert_eq!(i.held_from, None);
    assert_eq!(i.on_hold_since, None);
}

#[test]
fn resume_returns_to_the_status_held_from() {
    let mut h = history(S::Assigned);
    h.push(held(S::Assigned));
    let s = g(h)
        .when(IncidentCommand::Resume { actor: agent() })
        .then([resumed(S::Assigned)]);
    assert_eq!(s.ensure_exists().unwrap().status, S::Assigned);
}

#[test]
fn hold_is_rejected_from_new_and_when_already_on_hold() {
    let hold = IncidentCommand::PutOnHold {
        reason: HoldReason::AwaitingVendor,
        comment: None,
        actor: agent(),
    };
    g([created()])
        .when(hold.clone())
        .then_err(IncidentError::InvalidTransition {
            from: S::New,
            to: S::OnHold,
        });
    g(history(S::OnHold))
        .when(hold)
        .then_err(IncidentError::InvalidTransition {
            from: S::OnHold,
            to: S::OnHold,
        });
}

#[test]
fn resume_without_hold_is_rejected() {
    g(history(S::InProgress))
        .when(IncidentCommand::Resume { actor: agent() })
        .then_err(IncidentError::InvalidTransition {
            from: S::InProgress,
            to: S::InProgress,
        });
}

// ---- Resolve / Reopen / Close -----------------------------------------------------------------

#[test]
fn resolve_from_in_progress() {
    let s = g(history(S::InProgress))
        .at(t(60))
        .when(IncidentCommand::Resolve {
            resolution: resolution("Restarted the relay"),
            actor: agent(),
        })
        .then([IncidentEvent::IncidentResolved(IncidentResolved {
            from: S::InProgress,
            resolution: resolution("Restarted the relay"),
            actor: agent(),
            at: t(60),
        })]);
    let i = s.ensure_exists().unwrap();
    assert_eq!(i.status, S::Resolved);
    assert_eq!(i.resolution, Some(resolution("Restarted the relay")));
    assert_eq!(i.resolved_at, Some(t(60)));
}

#[test]
fn resolve_from_on_hold_ends_the_hold() {
    let s = g(history(S::OnHold))
        .when(sample(IncidentAction::Resolve))
        .then([resolved(S::OnHold)]);
    let i = s.ensure_exists().unwrap();
    assert_eq!(i.status, S::Resolved);
    assert_eq!(i.hold_reason, None);
    assert_eq!(i.held_from, None);
}

#[test]
fn resolve_requires_work_to_have_started() {
    for status in [S::New, S::Assigned] {
        g(history(status))
            .when(sample(IncidentAction::Resolve))
            .then_err(IncidentError::InvalidTransition {
                from: status,
                to: S::Resolved,
            });
    }
}

#[test]
fn reopen_starts_a_new_cycle() {
    let s = g(history(S::Resolved))
        .when(IncidentCommand::Reopen {
            reason: reason("Still broken"),
            actor: agent(),
        })
        .then([reopened(1)]);
    let i = s.ensure_exists().unwrap();
    assert_eq!(i.status, S::InProgress);
    assert_eq!(i.reopen_count, 1);
    assert_eq!(i.resolution, None);
    assert_eq!(i.resolved_at, None);

    let mut h = history(S::Resolved);
    h.extend([reopened(1), resolved(S::InProgress)]);
    let s = g(h)
        .when(sample(IncidentAction::Reopen))
        .then([reopened(2)]);
    assert_eq!(s.ensure_exists().unwrap().reopen_count, 2);
}

#[test]
fn reopen_of_closed_is_rejected() {
    g(history(S::Closed))
        .when(sample(IncidentAction::Reopen))
        .then_err(IncidentError::InvalidTransition {
            from: S::Closed,
            to: S::InProgress,
        });
}

#[test]
fn close_from_resolved() {
    let s = g(history(S::Resolved))
        .at(t(90))
        .when(IncidentCommand::Close { actor: agent() })
        .then([IncidentEvent::IncidentClosed(IncidentClosed {
            actor: agent(),
            at: t(90),
        })]);
    let i = s.ensure_exists().unwrap();
    assert_eq!(i.status, S::Closed);
    assert_eq!(i.closed_at, Some(t(90)));
}

#[test]
fn close_before_resolution_is_rejected() {
    g(history(S::InProgress))
        .when(IncidentCommand::Close { actor: agent() })
        .then_err(IncidentError::InvalidTransition {
            from: S::InProgress,
            to: S::Closed,
        });
}

// ---- Cancel -----------------------------------------------------------------------------------

#[test]
fn cancel_from_every_open_status() {
    for status in [S::New, S::Assigned, S::InProgress, S::OnHold] {
        let s = g(history(status))
            .when(IncidentCommand::Cancel {
                reason: reason("Duplicate"),
                actor: agent(),
            })
            .then([cancelled(status)]);
        let i = s.ensure_exists().unwrap();
        assert_eq!(i.status, S::Cancelled);
        assert_eq!(i.cancelled_at, Some(t0()));
        assert_eq!(i.hold_reason, None);
    }
}

#[test]
fn cancelling_a_new_incident_is_not_a_response() {
    let s = g([created()])
        .when(sample(IncidentAction::Cancel))
        .then([cancelled(S::New)]);
    assert_eq!(s.ensure_exists().unwrap().responded_at, None);
}

#[test]
fn cancel_is_rejected_once_resolved() {
    for status in [S::Resolved, S::Closed, S::Cancelled] {
        g(history(status))
            .when(sample(IncidentAction::Cancel))
            .then_err(IncidentError::InvalidTransition {
                from: status,
                to: S::Cancelled,
            });
    }
}

// ---- Work notes -------------------------------------------------------------------------------

#[test]
fn private_note_is_recorded_without_response() {
    let s = g([created()])
        .when(note_cmd(1, false, true))
        .then([note_added(1, false, true)]);
    let i = s.ensure_exists().unwrap();
    assert_eq!(i.work_notes.len(), 1);
    assert_eq!(i.work_notes[0].id, note_id(1));
    assert!(!i.work_notes[0].is_public);
    assert_eq!(i.responded_at, None);
}

#[test]
fn first_public_note_by_an_agent_is_the_response() {
    let s = g([created()]).at(t(7)).when(note_cmd(1, true, true)).then([
        IncidentEvent::IncidentWorkNoteAdded(IncidentWorkNoteAdded {
            at: t(7),
            ..match note_added(1, true, true) {
                IncidentEvent::IncidentWorkNoteAdded(n) => n,
                _ => unreachable!(),
            }
        }),
        IncidentEvent::IncidentResponded(IncidentResponded {
            trigger: ResponseTrigger::PublicWorkNote,
            actor: agent(),
            at: t(7),
        }),
    ]);
    let i = s.ensure_exists().unwrap();
    assert_eq!(i.responded_at, Some(t(7)));
    assert_eq!(i.status, S::New, "a note does not change the status");
}

#[test]
fn public_note_by_a_requester_is_not_a_response() {
    g([created()])
        .when(note_cmd(1, true, false))
        .then([note_added(1, true, false)]);
}

#[test]
fn later_public_notes_do_not_respond_again() {
    g(history(S::InProgress))
        .when(note_cmd(1, true, true))
        .then([note_added(1, true, true)]);
}

#[test]
fn resolution_note_is_recorded() {
    g(history(S::Resolved))
        .when(IncidentCommand::AddWorkNote {
            note_id: note_id(9),
            body: WorkNoteBody::parse("Root cause: expired cert").unwrap(),
            note_type: WorkNoteType::ResolutionNote,
            is_public: true,
            by_agent: true,
            author: agent(),
        })
        .then([IncidentEvent::IncidentWorkNoteAdded(
            IncidentWorkNoteAdded {
                note_id: note_id(9),
                body: WorkNoteBody::parse("Root cause: expired cert").unwrap(),
                note_type: WorkNoteType::ResolutionNote,
                is_public: true,
                by_agent: true,
                author: agent(),
                at: t0(),
            },
        )]);
}

#[test]
fn duplicate_note_id_is_rejected() {
    g([created(), note_added(1, false, true)])
        .when(note_cmd(1, false, true))
        .then_err(IncidentError::DuplicateWorkNote(note_id(1)));
}

#[test]
fn notes_are_rejected_on_final_incidents() {
    for status in [S::Closed, S::Cancelled] {
        g(history(status)).when(note_cmd(1, true, true)).then_err(
            IncidentError::ActionNotAllowed {
                action: IncidentAction::AddWorkNote,
                status,
            },
        );
    }
}

// ---- Attachments ------------------------------------------------------------------------------

#[test]
fn attachment_is_recorded() {
    let s = g(history(S::InProgress))
        .when(attachment_cmd(1))
        .then([attachment_added(1)]);
    let i = s.ensure_exists().unwrap();
    assert_eq!(i.attachments.len(), 1);
    assert_eq!(i.attachments[0].size_bytes, 2048);
    assert_eq!(i.attachments[0].uploaded_at, t0());
}

#[test]
fn duplicate_attachment_id_is_rejected() {
    g([created(), attachment_added(1)])
        .when(attachment_cmd(1))
        .then_err(IncidentError::DuplicateAttachment(attachment_id(1)));
}

#[test]
fn attachments_are_rejected_on_final_incidents() {
    for status in [S::Closed, S::Cancelled] {
        g(history(status))
            .when(attachment_cmd(1))
            .then_err(IncidentError::ActionNotAllowed {
                action: IncidentAction::AddAttachment,
                status,
            });
    }
}

// ---- History, codec, accessors ----------------------------------------------------------------

fn one_of_each_event() -> Vec<IncidentEvent> {
    vec![
        created(),
        updated(IncidentChanges {
            title: Some(Change {
                old: title("a"),
                new: title("b"),
            }),
            description: Some(Change {
                old: Description::default(),
                new: Description::parse("d").unwrap(),
            }),
            impact: Some(Change {
                old: Impact::Low,
                new: Impact::High,
            }),
            urgency: Some(Change {
                old: Urgency::Low,
                new: Urgency::High,
            }),
            priority: Some(Change {
                old: Priority::Low,
                new: Priority::High,
            }),
            priority_overridden: Some(Change {
                old: false,
                new: true,
            }),
            category_id: Some(Change {
                old: None,
                new: Some(category(1)),
            }),
            ci_id: None,
        }),
        assigned(),
        responded(ResponseTrigger::StatusChange),
        started(S::Assigned),
        held(S::InProgress),
        resumed(S::InProgress),
        resolved(S::InProgress),
        reopened(1),
        closed(),
        cancelled(S::New),
        note_added(1, true, true),
        attachment_added(1),
    ]
}

#[test]
fn every_event_round_trips_through_encode_and_decode() {
    let events = one_of_each_event();
    let types: Vec<_> = events.iter().map(DomainEvent::event_type).collect();
    // The SLA clock's events round-trip in sla::timer's tests, the bus's link below.
    let user_types: Vec<_> = IncidentEvent::EVENT_TYPES
        .iter()
        .copied()
        .filter(|t| !t.starts_with("Sla") && *t != "IncidentExternalLinked")
        .collect();
    assert_eq!(types, user_types);
    for e in &events {
        assert_round_trip(e);
        assert_eq!(e.actor(), agent());
        assert_eq!(e.at(), t0());
        assert_eq!(e.schema_version(), 1);
    }
}

#[test]
fn stored_shape_is_adjacently_tagged() {
    let (ty, data) = created().encode().unwrap();
    assert_eq!(ty, "IncidentCreated");
    assert_eq!(data["number"], "INC000123");
    assert_eq!(data["priority"], "high");
    assert_eq!(data["actor"]["kind"], "user");
    assert_eq!(data["at"], "2025-01-06T09:00:00Z");
    assert!(data.get("type").is_none());
    // Unchanged fields are left out of an update's payload.
    let (_, data) = overridden_low().encode().unwrap();
    assert_eq!(
        data["changes"],
        serde_json::json!({
            "priority": {"old": "high", "new": "low"},
            "priority_overridden": {"old": false, "new": true},
        })
    );
    assert!(IncidentEvent::decode("IncidentExploded", &data).is_err());
}

#[test]
fn history_rows_can_be_derived_from_events_alone() {
    let fc = |field, old: Option<&str>, new: Option<&str>| FieldChange {
        field,
        old: old.map(str::to_owned),
        new: new.map(str::to_owned),
    };
    assert_eq!(created().history(), [fc("status", None, Some("new"))]);
    assert_eq!(
        assigned().history(),
        [
            fc("status", Some("new"), Some("assigned")),
            fc("assignee_id", None, Some(&user(2).to_string())),
            fc("team_id", None, Some(&team(1).to_string())),
        ]
    );
    assert_eq!(
        overridden_low().history(),
        [
            fc("priority", Some("high"), Some("low")),
            fc("priority_overridden", Some("false"), Some("true")),
        ]
    );
    assert_eq!(
        held(S::InProgress).history(),
        [
            fc("status", Some("in_progress"), Some("on_hold")),
            fc("hold_reason", None, Some("awaiting_caller")),
        ]
    );
    assert_eq!(
        resumed(S::InProgress).history(),
        [
            fc("status", Some("on_hold"), Some("in_progress")),
            fc("hold_reason", Some("awaiting_caller"), None),
        ]
    );
    assert_eq!(
        resolved(S::InProgress).history(),
        [
            fc("status", Some("in_progress"), Some("resolved")),
            fc("resolution", None, Some("Restarted the relay")),
        ]
    );
    assert_eq!(
        reopened(1).history(),
        [
            fc("status", Some("resolved"), Some("in_progress")),
            fc("resolution", Some("Restarted the relay"), None),
            fc("reopen_count", Some("0"), Some("1")),
        ]
    );
    assert_eq!(
        closed().history(),
        [fc("status", Some("resolved"), Some("closed"))]
    );
    assert_eq!(
        cancelled(S::OnHold).history(),
        [fc("status", Some("on_hold"), Some("cancelled"))]
    );
    assert_eq!(
        responded(ResponseTrigger::StatusChange).history(),
        [fc("responded_at", None, Some(&t0().to_rfc3339()))]
    );
    assert!(note_added(1, true, true).history().is_empty());
    assert!(attachment_added(1).history().is_empty());
    // Every row of a full update is present.
    assert_eq!(one_of_each_event()[1].history().len(), 7);
}

#[test]
fn status_after_matches_evolve() {
    let mut agg = IncidentAggregate::default();
    for e in history(S::Closed) {
        agg.evolve(&e);
        if let Some(s) = e.status_after() {
            assert_eq!(agg.ensure_exists().unwrap().status, s);
        }
    }
}

#[test]
fn full_lifecycle_tracks_timestamps_and_updater() {
    let other = Actor::User(user(3));
    let mut agg = IncidentAggregate::default();
    let steps: Vec<(DateTime<Utc>, IncidentCommand)> = vec![
        (t(0), create_cmd()),
        (t(5), note_cmd(1, false, true)),
        (t(10), assign_cmd(Some(user(2)), Some(team(1)))),
        (t(15), IncidentCommand::StartWork { actor: agent() }),
        (t(20), sample(IncidentAction::PutOnHold)),
        (t(30), IncidentCommand::Resume { actor: other }),
        (t(40), sample(IncidentAction::Resolve)),
        (t(50), sample(IncidentAction::Reopen)),
        (t(60), sample(IncidentAction::Resolve)),
        (t(70), IncidentCommand::Close { actor: other }),
    ];
    let mut log = Vec::new();
    for (now, cmd) in steps {
        let events = agg.decide(cmd, now).unwrap();
        assert!(!events.is_empty());
        for e in &events {
            agg.evolve(e);
        }
        log.extend(events);
    }
    let i = agg.ensure_exists().unwrap();
    assert_eq!(i.status, S::Closed);
    assert_eq!(i.created_at, t(0));
    assert_eq!(i.responded_at, Some(t(10)));
    assert_eq!(i.resolved_at, Some(t(60)));
    assert_eq!(i.closed_at, Some(t(70)));
    assert_eq!(i.reopen_count, 1);
    assert_eq!(i.updated_at, t(70));
    assert_eq!(i.updated_by, other);
    assert_eq!(i.work_notes.len(), 1);
    // Replaying the log from scratch gives the same state.
    assert_eq!(IncidentAggregate::replay(&log), agg);
}

#[test]
fn command_accessors() {
    for action in IncidentAction::user_actions() {
        let cmd = sample(action);
        assert_eq!(cmd.action(), action);
        assert_eq!(cmd.actor(), agent());
    }
}

#[test]
fn errors_have_codes_and_messages() {
    let e = IncidentError::ActionNotAllowed {
        action: IncidentAction::AddWorkNote,
        status: S::Closed,
    };
    assert_eq!(e.code(), "action_not_allowed");
    assert_eq!(
        e.to_string(),
        "cannot add_work_note an incident that is closed"
    );
    assert_eq!(
        IncidentError::InvalidTransition {
            from: S::New,
            to: S::Resolved
        }
        .to_string(),
        "cannot move an incident from new to resolved"
    );
}

// ---- LinkExternal (the integration bus) -------------------------------------------------------

fn link_cmd(key: &str) -> IncidentCommand {
    IncidentCommand::LinkExternal {
        system: ExternalSystem::Jira,
        key: ExternalKey::parse(key).unwrap(),
        url: Some(ExternalUrl::parse(format!("https://acme.atlassian.net/browse/{key}")).unwrap()),
        actor: Actor::System,
    }
}

fn linked(key: &str, previous: Option<&str>) -> IncidentEvent {
    IncidentEvent::IncidentExternalLinked(IncidentExternalLinked {
        system: ExternalSystem::Jira,
        key: ExternalKey::parse(key).unwrap(),
        url: Some(ExternalUrl::parse(format!("https://acme.atlassian.net/browse/{key}")).unwrap()),
        previous_key: previous.map(|p| ExternalKey::parse(p).unwrap()),
        actor: Actor::System,
        at: t0(),
    })
}

#[test]
fn link_external_records_the_jira_issue_in_every_status() {
    for status in [
        S::New,
        S::Assigned,
        S::InProgress,
        S::OnHold,
        S::Resolved,
        S::Closed,
        S::Cancelled,
    ] {
        let after = g(history(status))
            .when(link_cmd("OPS-1"))
            .then([linked("OPS-1", None)]);
        let inc = after.incident().unwrap();
        assert_eq!(inc.status, status, "linking never moves the status");
        let link = inc.external_link(ExternalSystem::Jira).unwrap();
        assert_eq!(link.key.as_str(), "OPS-1");
        assert_eq!(link.linked_at, t0());
    }
}

#[test]
fn linking_the_same_key_again_emits_nothing() {
    g([created(), linked("OPS-1", None)])
        .when(link_cmd("OPS-1"))
        .then_nothing();
}

#[test]
fn another_key_replaces_the_link_and_names_the_previous_one() {
    let after = g([created(), linked("OPS-1", None)])
        .when(link_cmd("OPS-2"))
        .then([linked("OPS-2", Some("OPS-1"))]);
    let inc = after.incident().unwrap();
    assert_eq!(inc.external_links.len(), 1);
    assert_eq!(inc.external_links[0].key.as_str(), "OPS-2");
}

#[test]
fn linking_a_missing_incident_is_not_found() {
    g([])
        .when(link_cmd("OPS-1"))
        .then_err(IncidentError::NotFound);
}

#[test]
fn the_link_is_a_history_row_and_survives_the_codec() {
    let e = linked("OPS-2", Some("OPS-1"));
    assert_round_trip(&e);
    let rows = e.history();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].field, "jira_issue");
    assert_eq!(e.actor(), Actor::System);
    assert_eq!(e.status_after(), None);
    assert!(IncidentEvent::EVENT_TYPES.contains(&"IncidentExternalLinked"));
    assert!(IncidentAction::LinkExternal.is_system());
    assert!(
        !state_after([created()])
            .allowed_actions()
            .contains(&IncidentAction::LinkExternal)
    );
}
