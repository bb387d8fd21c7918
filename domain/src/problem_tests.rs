#![allow(clippy::unwrap_used)]

use super::*;
use crate::testing::{assert_round_trip, given, test_now};
use uuid::Uuid;

fn admin() -> Actor {
    Actor::User(UserId(Uuid::from_u128(0xad)))
}
fn at() -> DateTime<Utc> {
    test_now()
}
fn pid() -> ProblemId {
    ProblemId(Uuid::from_u128(0x9))
}
fn inc(n: u128) -> IncidentId {
    IncidentId(Uuid::from_u128(0x1000 + n))
}
fn title(s: &str) -> Title {
    Title::parse(s).unwrap()
}
fn wa(s: &str) -> Workaround {
    Workaround::parse(s).unwrap()
}
fn rc(s: &str) -> RootCause {
    RootCause::parse(s).unwrap()
}
fn res(s: &str) -> ResolutionText {
    ResolutionText::parse(s).unwrap()
}

fn create() -> ProblemCommand {
    ProblemCommand::Create {
        id: pid(),
        title: title("メールサーバー断続的停止"),
        description: Description::default(),
        priority: Priority::High,
        category_id: Some(CategoryId(Uuid::from_u128(0xca))),
        ci_id: None,
        assignee_id: None,
        root_cause: None,
        workaround: None,
        actor: admin(),
    }
}
fn created() -> ProblemEvent {
    ProblemEvent::ProblemCreated(ProblemCreated {
        id: pid(),
        title: title("メールサーバー断続的停止"),
        description: Description::default(),
        priority: Priority::High,
        category_id: Some(CategoryId(Uuid::from_u128(0xca))),
        ci_id: None,
        assignee_id: None,
        root_cause: None,
        workaround: None,
        actor: admin(),
        at: at(),
    })
}
fn investigating() -> ProblemEvent {
    ProblemEvent::ProblemInvestigationStarted(ProblemInvestigationStarted {
        actor: admin(),
        at: at(),
    })
}
fn published() -> ProblemEvent {
    ProblemEvent::ProblemKnownErrorPublished(ProblemKnownErrorPublished {
        root_cause: Some(rc("certificate expired")),
        workaround: wa("restart the relay"),
        actor: admin(),
        at: at(),
    })
}
fn resolved(from: ProblemStatus, incidents: Vec<IncidentId>) -> ProblemEvent {
    ProblemEvent::ProblemResolved(ProblemResolved {
        from,
        resolution: res("renewed and automated"),
        incident_ids: incidents,
        actor: admin(),
        at: at(),
    })
}
fn closed() -> ProblemEvent {
    ProblemEvent::ProblemClosed(ProblemClosed {
        actor: admin(),
        at: at(),
    })
}
fn linked(i: IncidentId) -> ProblemEvent {
    ProblemEvent::ProblemIncidentLinked(ProblemIncidentLinked {
        incident_id: i,
        actor: admin(),
        at: at(),
    })
}
fn unlinked(i: IncidentId) -> ProblemEvent {
    ProblemEvent::ProblemIncidentUnlinked(ProblemIncidentUnlinked {
        incident_id: i,
        actor: admin(),
        at: at(),
    })
}
fn update() -> ProblemCommand {
    ProblemCommand::Update {
        title: None,
        description: None,
        priority: None,
        category_id: None,
        ci_id: None,
        assignee_id: None,
        root_cause: None,
        workaround: None,
        actor: admin(),
    }
}

/// [`update`] edited by `edit`.
fn update_with(edit: impl FnOnce(&mut ProblemCommand)) -> ProblemCommand {
    let mut c = update();
    edit(&mut c);
    c
}

/// The history that brings a problem to `status`.
fn history(status: ProblemStatus) -> Vec<ProblemEvent> {
    use ProblemStatus as S;
    match status {
        S::New => vec![created()],
        S::Investigating => vec![created(), investigating()],
        S::KnownError => vec![created(), investigating(), published()],
        S::Resolved => vec![
            created(),
            investigating(),
            resolved(S::Investigating, vec![]),
        ],
        S::Closed => vec![
            created(),
            investigating(),
            resolved(S::Investigating, vec![]),
            closed(),
        ],
    }
}

/// A command of every action (for the transition matrix).
fn command(action: ProblemAction) -> ProblemCommand {
    use ProblemAction as A;
    match action {
        A::Create => create(),
        A::Update => update_with(|c| {
            if let ProblemCommand::Update { title: t, .. } = c {
                *t = Some(title("renamed"));
            }
        }),
        A::StartInvestigation => ProblemCommand::StartInvestigation { actor: admin() },
        A::MarkKnownError => ProblemCommand::MarkKnownError {
            root_cause: None,
            workaround: Some(wa("use the backup relay")),
            actor: admin(),
        },
        A::Resolve => ProblemCommand::Resolve {
            resolution: res("fixed"),
            actor: admin(),
        },
        A::Close => ProblemCommand::Close { actor: admin() },
        A::LinkIncident => ProblemCommand::LinkIncident {
            incident_id: inc(1),
            actor: admin(),
        },
        A::UnlinkIncident => ProblemCommand::UnlinkIncident {
            incident_id: inc(1),
            actor: admin(),
        },
    }
}

#[test]
fn create_problem() {
    let s = given::<ProblemAggregate>([])
        .when(create())
        .then([created()]);
    let p = s.state.unwrap();
    assert_eq!(p.status, ProblemStatus::New);
    assert_eq!(p.priority, Priority::High);
    assert!(!p.is_known_error());
    assert!(p.incident_ids.is_empty());
    given::<ProblemAggregate>(history(ProblemStatus::New))
        .when(create())
        .then_err(ProblemError::AlreadyExists);
}

#[test]
fn commands_on_a_missing_problem_are_not_found() {
    for a in ProblemAction::ALL
        .iter()
        .filter(|a| **a != ProblemAction::Create)
    {
        given::<ProblemAggregate>([])
            .when(command(*a))
            .then_err(ProblemError::NotFound);
    }
}

/// Every status action from every status: allowed ones move as the table says, the others
/// are rejected with the action's target status.
#[test]
fn the_transition_table() {
    use ProblemAction as A;
    use ProblemStatus as S;
    let expected: &[(A, S, Result<S, S>)] = &[
        (A::StartInvestigation, S::New, Ok(S::Investigating)),
        (
            A::StartInvestigation,
            S::Investigating,
            Err(S::Investigating),
        ),
        (A::StartInvestigation, S::KnownError, Err(S::Investigating)),
        (A::StartInvestigation, S::Resolved, Err(S::Investigating)),
        (A::StartInvestigation, S::Closed, Err(S::Investigating)),
        (A::MarkKnownError, S::New, Err(S::KnownError)),
        (A::MarkKnownError, S::Investigating, Ok(S::KnownError)),
        (A::MarkKnownError, S::KnownError, Err(S::KnownError)),
        (A::MarkKnownError, S::Resolved, Err(S::KnownError)),
        (A::MarkKnownError, S::Closed, Err(S::KnownError)),
        (A::Resolve, S::New, Err(S::Resolved)),
        (A::Resolve, S::Investigating, Ok(S::Resolved)),
        (A::Resolve, S::KnownError, Ok(S::Resolved)),
        (A::Resolve, S::Resolved, Err(S::Resolved)),
        (A::Resolve, S::Closed, Err(S::Resolved)),
        (A::Close, S::New, Err(S::Closed)),
        (A::Close, S::Investigating, Err(S::Closed)),
        (A::Close, S::KnownError, Err(S::Closed)),
        (A::Close, S::Resolved, Ok(S::Closed)),
        (A::Close, S::Closed, Err(S::Closed)),
    ];
    for (action, from, outcome) in expected {
        let then = given::<ProblemAggregate>(history(*from)).when(command(*action));
        match outcome {
            Ok(to) => {
                let (mut state, result) = then.into_parts();
                let events = result.unwrap_or_else(|e| panic!("{action} from {from}: {e}"));
                for e in &events {
                    state.evolve(e);
                }
                assert_eq!(state.state.unwrap().status, *to, "{action} from {from}");
            }
            Err(to) => then.then_err(ProblemError::InvalidTransition {
                from: *from,
                to: *to,
            }),
        }
    }
}

#[test]
fn a_closed_problem_accepts_no_edit_and_no_link() {
    use ProblemAction as A;
    for a in [A::Update, A::LinkIncident, A::UnlinkIncident] {
        given::<ProblemAggregate>(history(ProblemStatus::Closed))
            .when(command(a))
            .then_err(ProblemError::ActionNotAllowed {
                action: a,
                status: ProblemStatus::Closed,
            });
    }
}

#[test]
fn allowed_actions_follow_the_table() {
    let p = given::<ProblemAggregate>(history(ProblemStatus::KnownError))
        .state()
        .state
        .clone()
        .unwrap();
    assert_eq!(
        p.allowed_actions(),
        vec![
            ProblemAction::Update,
            ProblemAction::Resolve,
            ProblemAction::LinkIncident,
            ProblemAction::UnlinkIncident
        ]
    );
}

#[test]
fn update_fields_and_nothing_when_unchanged() {
    let cmd = ProblemCommand::Update {
        title: Some(title("SMTP relay drops mail")),
        description: None,
        priority: Some(Priority::Critical),
        category_id: Some(None),
        ci_id: None,
        assignee_id: Some(Some(UserId(Uuid::from_u128(0x5)))),
        root_cause: Some(Some(rc("expired cert"))),
        workaround: None,
        actor: admin(),
    };
    let s = given::<ProblemAggregate>(history(ProblemStatus::Investigating))
        .when(cmd)
        .then([ProblemEvent::ProblemUpdated(ProblemUpdated {
            changes: ProblemChanges {
                title: Some(Change {
                    old: title("メールサーバー断続的停止"),
                    new: title("SMTP relay drops mail"),
                }),
                priority: Some(Change {
                    old: Priority::High,
                    new: Priority::Critical,
                }),
                category_id: Some(Change {
                    old: Some(CategoryId(Uuid::from_u128(0xca))),
                    new: None,
                }),
                assignee_id: Some(Change {
                    old: None,
                    new: Some(UserId(Uuid::from_u128(0x5))),
                }),
                root_cause: Some(Change {
                    old: None,
                    new: Some(rc("expired cert")),
                }),
                ..Default::default()
            },
            actor: admin(),
            at: at(),
        })]);
    let p = s.state.unwrap();
    assert_eq!(p.priority, Priority::Critical);
    assert_eq!(p.category_id, None);
    assert_eq!(p.root_cause, Some(rc("expired cert")));
    given::<ProblemAggregate>(history(ProblemStatus::Investigating))
        .when(update())
        .then_nothing();
    // Allowed in resolved (corrections before closure).
    given::<ProblemAggregate>(history(ProblemStatus::Resolved))
        .when(update_with(|c| {
            if let ProblemCommand::Update { priority, .. } = c {
                *priority = Some(Priority::Low);
            }
        }))
        .then([ProblemEvent::ProblemUpdated(ProblemUpdated {
            changes: ProblemChanges {
                priority: Some(Change {
                    old: Priority::High,
                    new: Priority::Low,
                }),
                ..Default::default()
            },
            actor: admin(),
            at: at(),
        })]);
}

#[test]
fn a_published_workaround_cannot_be_cleared_but_can_change() {
    let clear = update_with(|c| {
        if let ProblemCommand::Update { workaround, .. } = c {
            *workaround = Some(None);
        }
    });
    given::<ProblemAggregate>(history(ProblemStatus::KnownError))
        .when(clear.clone())
        .then_err(ProblemError::WorkaroundRequired);
    given::<ProblemAggregate>(history(ProblemStatus::Resolved))
        .when(clear)
        .then_nothing();
    let change = update_with(|c| {
        if let ProblemCommand::Update { workaround, .. } = c {
            *workaround = Some(Some(wa("fail over to relay B")));
        }
    });
    let s = given::<ProblemAggregate>(history(ProblemStatus::KnownError))
        .when(change)
        .then([ProblemEvent::ProblemUpdated(ProblemUpdated {
            changes: ProblemChanges {
                workaround: Some(Change {
                    old: Some(wa("restart the relay")),
                    new: Some(wa("fail over to relay B")),
                }),
                ..Default::default()
            },
            actor: admin(),
            at: at(),
        })]);
    assert_eq!(
        s.state.unwrap().workaround,
        Some(wa("fail over to relay B"))
    );
}

#[test]
fn start_investigation() {
    let s = given::<ProblemAggregate>(history(ProblemStatus::New))
        .when(ProblemCommand::StartInvestigation { actor: admin() })
        .then([investigating()]);
    assert_eq!(s.state.unwrap().status, ProblemStatus::Investigating);
}

#[test]
fn mark_known_error_publishes_with_a_workaround() {
    let s = given::<ProblemAggregate>(history(ProblemStatus::Investigating))
        .when(ProblemCommand::MarkKnownError {
            root_cause: Some(rc("certificate expired")),
            workaround: Some(wa("restart the relay")),
            actor: admin(),
        })
        .then([published()]);
    let p = s.state.unwrap();
    assert_eq!(p.status, ProblemStatus::KnownError);
    assert_eq!(p.known_error_at, Some(at()));
    assert!(p.is_known_error());
    assert_eq!(p.workaround, Some(wa("restart the relay")));
}

#[test]
fn mark_known_error_uses_the_recorded_workaround_or_refuses_without_one() {
    let recorded = ProblemEvent::ProblemUpdated(ProblemUpdated {
        changes: ProblemChanges {
            workaround: Some(Change {
                old: None,
                new: Some(wa("reboot nightly")),
            }),
            root_cause: Some(Change {
                old: None,
                new: Some(rc("leak")),
            }),
            ..Default::default()
        },
        actor: admin(),
        at: at(),
    });
    given::<ProblemAggregate>([created(), investigating(), recorded])
        .when(ProblemCommand::MarkKnownError {
            root_cause: None,
            workaround: None,
            actor: admin(),
        })
        .then([ProblemEvent::ProblemKnownErrorPublished(
            ProblemKnownErrorPublished {
                root_cause: Some(rc("leak")),
                workaround: wa("reboot nightly"),
                actor: admin(),
                at: at(),
            },
        )]);
    given::<ProblemAggregate>(history(ProblemStatus::Investigating))
        .when(ProblemCommand::MarkKnownError {
            root_cause: Some(rc("leak")),
            workaround: None,
            actor: admin(),
        })
        .then_err(ProblemError::WorkaroundRequired);
}

#[test]
fn resolve_records_the_linked_incidents() {
    let s = given::<ProblemAggregate>([
        created(),
        investigating(),
        linked(inc(1)),
        linked(inc(2)),
        linked(inc(3)),
        unlinked(inc(2)),
        published(),
    ])
    .when(ProblemCommand::Resolve {
        resolution: res("renewed and automated"),
        actor: admin(),
    })
    .then([resolved(ProblemStatus::KnownError, vec![inc(1), inc(3)])]);
    let p = s.state.unwrap();
    assert_eq!(p.status, ProblemStatus::Resolved);
    assert_eq!(p.resolved_at, Some(at()));
    assert_eq!(p.resolution, Some(res("renewed and automated")));
    // Still in the known-error database until closed.
    assert!(p.is_known_error());
}

#[test]
fn close_is_final() {
    let s = given::<ProblemAggregate>(history(ProblemStatus::Resolved))
        .when(ProblemCommand::Close { actor: admin() })
        .then([closed()]);
    let p = s.state.unwrap();
    assert_eq!(p.status, ProblemStatus::Closed);
    assert_eq!(p.closed_at, Some(at()));
    assert!(p.allowed_actions().is_empty());
}

#[test]
fn link_and_unlink_incidents() {
    let s = given::<ProblemAggregate>(history(ProblemStatus::New))
        .when(ProblemCommand::LinkIncident {
            incident_id: inc(1),
            actor: admin(),
        })
        .then([linked(inc(1))]);
    assert_eq!(s.state.unwrap().incident_ids, vec![inc(1)]);
    // Linking again is a no-op.
    given::<ProblemAggregate>([created(), linked(inc(1))])
        .when(ProblemCommand::LinkIncident {
            incident_id: inc(1),
            actor: admin(),
        })
        .then_nothing();
    // Allowed while resolved (a late recurrence).
    given::<ProblemAggregate>(history(ProblemStatus::Resolved))
        .when(ProblemCommand::LinkIncident {
            incident_id: inc(4),
            actor: admin(),
        })
        .then([linked(inc(4))]);
    let s = given::<ProblemAggregate>([created(), linked(inc(1)), linked(inc(2))])
        .when(ProblemCommand::UnlinkIncident {
            incident_id: inc(1),
            actor: admin(),
        })
        .then([unlinked(inc(1))]);
    assert_eq!(s.state.unwrap().incident_ids, vec![inc(2)]);
    given::<ProblemAggregate>([created(), linked(inc(1))])
        .when(ProblemCommand::UnlinkIncident {
            incident_id: inc(9),
            actor: admin(),
        })
        .then_err(ProblemError::IncidentNotLinked(inc(9)));
}

#[test]
fn events_round_trip() {
    let events = [
        created(),
        ProblemEvent::ProblemUpdated(ProblemUpdated {
            changes: ProblemChanges {
                workaround: Some(Change {
                    old: None,
                    new: Some(wa("x")),
                }),
                ..Default::default()
            },
            actor: admin(),
            at: at(),
        }),
        investigating(),
        published(),
        resolved(ProblemStatus::KnownError, vec![inc(1)]),
        closed(),
        linked(inc(1)),
        unlinked(inc(1)),
    ];
    let types: Vec<_> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(types, ProblemEvent::EVENT_TYPES);
    for e in &events {
        assert_round_trip(e);
        assert_eq!(e.actor(), admin());
        assert_eq!(e.at(), at());
    }
    for s in ProblemStatus::ALL {
        assert_eq!(s.as_str().parse::<ProblemStatus>(), Ok(*s));
    }
}
