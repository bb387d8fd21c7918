#![allow(clippy::unwrap_used)]

use super::*;
use crate::testing::{assert_round_trip, given, test_now};
use chrono::TimeDelta;
use uuid::Uuid;

fn admin() -> Actor {
    Actor::User(UserId(Uuid::from_u128(0xad)))
}
fn at() -> DateTime<Utc> {
    test_now()
}
fn user(n: u128) -> UserId {
    UserId(Uuid::from_u128(0x100 + n))
}
fn cid() -> ChangeId {
    ChangeId(Uuid::from_u128(0xc))
}
fn task(n: u128) -> ChangeTaskId {
    ChangeTaskId(Uuid::from_u128(0x700 + n))
}
fn title(s: &str) -> Title {
    Title::parse(s).unwrap()
}
fn reason(s: &str) -> ReasonText {
    ReasonText::parse(s).unwrap()
}
fn start() -> DateTime<Utc> {
    at() + TimeDelta::days(2)
}
fn end() -> DateTime<Utc> {
    at() + TimeDelta::days(2) + TimeDelta::hours(2)
}

fn create_cmd(
    t: ChangeType,
    approvers: Vec<UserId>,
    quorum: Quorum,
    p: RejectionPolicy,
) -> ChangeCommand {
    ChangeCommand::Create {
        id: cid(),
        title: title("Upgrade PostgreSQL"),
        description: Description::default(),
        change_type: t,
        risk: Risk::Medium,
        planned_start: Some(start()),
        planned_end: Some(end()),
        ci_ids: vec![CiId(Uuid::from_u128(0xc1))],
        incident_ids: vec![],
        approvers,
        quorum,
        on_rejection: p,
        actor: admin(),
    }
}
fn created_with(
    t: ChangeType,
    approvers: Vec<UserId>,
    quorum: Quorum,
    p: RejectionPolicy,
) -> ChangeEvent {
    ChangeEvent::ChangeCreated(ChangeCreated {
        id: cid(),
        title: title("Upgrade PostgreSQL"),
        description: Description::default(),
        change_type: t,
        risk: Risk::Medium,
        planned_start: Some(start()),
        planned_end: Some(end()),
        ci_ids: vec![CiId(Uuid::from_u128(0xc1))],
        incident_ids: vec![],
        approvers,
        quorum,
        on_rejection: p,
        actor: admin(),
        at: at(),
    })
}
fn created(t: ChangeType) -> ChangeEvent {
    created_with(
        t,
        vec![user(1), user(2), user(3)],
        Quorum::Majority,
        RejectionPolicy::Reassess,
    )
}
fn moved(action: ChangeAction, from: ChangeStatus, to: ChangeStatus) -> ChangeEvent {
    ChangeEvent::ChangeStatusChanged(ChangeStatusChanged {
        action,
        from,
        to,
        actor: admin(),
        at: at(),
    })
}
fn vote(u: UserId, d: VoteDecision, round: u32) -> ChangeEvent {
    ChangeEvent::ChangeVoteCast(ChangeVoteCast {
        approver: u,
        decision: d,
        comment: reason("ok"),
        round,
        at: at(),
    })
}
fn decided(
    outcome: Outcome,
    round: u32,
    approves: u32,
    rejects: u32,
    quorum: Quorum,
    to: ChangeStatus,
    by: UserId,
) -> ChangeEvent {
    ChangeEvent::ChangeDecided(ChangeDecided {
        outcome,
        round,
        approves,
        rejects,
        quorum,
        to,
        actor: Actor::User(by),
        at: at(),
    })
}
fn scheduled(from: ChangeStatus) -> ChangeEvent {
    ChangeEvent::ChangeScheduled(ChangeScheduled {
        from,
        planned_start: start(),
        planned_end: end(),
        conflicts: vec![],
        override_reason: None,
        actor: admin(),
        at: at(),
    })
}
fn vote_cmd(u: UserId, d: VoteDecision) -> ChangeCommand {
    ChangeCommand::Vote {
        approver: u,
        decision: d,
        comment: reason("ok"),
    }
}
fn schedule_cmd() -> ChangeCommand {
    ChangeCommand::Schedule {
        conflicts: vec![],
        override_reason: None,
        actor: admin(),
    }
}

/// The history that brings a change of type `t` to `status` (None if the type never reaches
/// it).
fn history(t: ChangeType, status: ChangeStatus) -> Option<Vec<ChangeEvent>> {
    use ChangeAction as A;
    use ChangeStatus as S;
    use ChangeType as T;
    let mut h = vec![created(t)];
    let approve = |h: &mut Vec<ChangeEvent>| {
        h.push(vote(user(1), VoteDecision::Approve, 1));
        h.push(vote(user(2), VoteDecision::Approve, 1));
        h.push(decided(
            Outcome::Approved,
            1,
            2,
            0,
            Quorum::Majority,
            S::Authorize,
            user(2),
        ));
    };
    let to_authorize = |h: &mut Vec<ChangeEvent>| match t {
        T::Normal => {
            h.push(moved(A::Submit, S::Draft, S::Assess));
            h.push(moved(A::CompleteAssessment, S::Assess, S::Authorize));
        }
        T::Emergency => h.push(moved(A::Submit, S::Draft, S::Authorize)),
        T::Standard => {}
    };
    let to_scheduled = |h: &mut Vec<ChangeEvent>| {
        if t == T::Standard {
            h.push(scheduled(S::Draft));
        } else {
            to_authorize(h);
            approve(h);
            h.push(scheduled(S::Authorize));
        }
    };
    match status {
        S::Draft => {}
        S::Assess if t == T::Normal => h.push(moved(A::Submit, S::Draft, S::Assess)),
        S::Assess => return None,
        S::Authorize if t == T::Standard => return None,
        S::Authorize => to_authorize(&mut h),
        S::Scheduled => to_scheduled(&mut h),
        S::Implement | S::Review | S::Closed => {
            to_scheduled(&mut h);
            h.push(moved(A::StartImplementation, S::Scheduled, S::Implement));
            if status != S::Implement {
                h.push(moved(A::CompleteImplementation, S::Implement, S::Review));
            }
            if status == S::Closed {
                h.push(moved(A::Close, S::Review, S::Closed));
            }
        }
        S::Cancelled => h.push(ChangeEvent::ChangeCancelled(ChangeCancelled {
            from: S::Draft,
            reason: reason("no"),
            actor: admin(),
            at: at(),
        })),
    }
    Some(h)
}

/// The status commands, with what each needs to pass its other checks.
fn status_command(a: ChangeAction) -> ChangeCommand {
    use ChangeAction as A;
    match a {
        A::Submit => ChangeCommand::Submit { actor: admin() },
        A::CompleteAssessment => ChangeCommand::CompleteAssessment { actor: admin() },
        A::Schedule => schedule_cmd(),
        A::StartImplementation => ChangeCommand::StartImplementation { actor: admin() },
        A::CompleteImplementation => ChangeCommand::CompleteImplementation { actor: admin() },
        A::Close => ChangeCommand::Close { actor: admin() },
        A::Cancel => ChangeCommand::Cancel {
            reason: reason("no longer needed"),
            actor: admin(),
        },
        other => panic!("{other} is not a status action"),
    }
}

/// Every (type, status, status action): the expected status after, or the rejection.
#[test]
fn every_transition_of_every_type() {
    use ChangeAction as A;
    use ChangeStatus as S;
    use ChangeType as T;
    let actions = [
        A::Submit,
        A::CompleteAssessment,
        A::Schedule,
        A::StartImplementation,
        A::CompleteImplementation,
        A::Close,
        A::Cancel,
    ];
    let allowed = |t: T, from: S, a: A| -> Option<S> {
        match (t, from, a) {
            (T::Normal, S::Draft, A::Submit) => Some(S::Assess),
            (T::Emergency, S::Draft, A::Submit) => Some(S::Authorize),
            (T::Normal, S::Assess, A::CompleteAssessment) => Some(S::Authorize),
            (T::Standard, S::Draft, A::Schedule) => Some(S::Scheduled),
            (T::Normal | T::Emergency, S::Authorize, A::Schedule) => Some(S::Scheduled),
            (_, S::Scheduled, A::StartImplementation) => Some(S::Implement),
            (_, S::Implement, A::CompleteImplementation) => Some(S::Review),
            (_, S::Review, A::Close) => Some(S::Closed),
            (_, S::Draft | S::Assess | S::Authorize | S::Scheduled, A::Cancel) => {
                Some(S::Cancelled)
            }
            _ => None,
        }
    };
    let target = |t: T, a: A| match (t, a) {
        (T::Normal, A::Submit) => S::Assess,
        (_, A::Submit | A::CompleteAssessment) => S::Authorize,
        (_, A::Schedule) => S::Scheduled,
        (_, A::StartImplementation) => S::Implement,
        (_, A::CompleteImplementation) => S::Review,
        (_, A::Close) => S::Closed,
        _ => S::Cancelled,
    };
    let mut checked = 0;
    for t in ChangeType::ALL {
        for from in ChangeStatus::ALL {
            let Some(h) = history(*t, *from) else {
                continue;
            };
            // The history reaches the status it claims.
            let state = given::<ChangeAggregate>(h.clone()).state().clone();
            assert_eq!(state.state.as_ref().unwrap().status, *from, "{t} {from}");
            for a in actions {
                let mut h = h.clone();
                if a == A::Schedule && *from == S::Authorize {
                    // Scheduling also needs the CAB's approval (tested on its own below).
                    h.push(vote(user(1), VoteDecision::Approve, 1));
                    h.push(vote(user(2), VoteDecision::Approve, 1));
                    h.push(decided(
                        Outcome::Approved,
                        1,
                        2,
                        0,
                        Quorum::Majority,
                        S::Authorize,
                        user(2),
                    ));
                }
                let then = given::<ChangeAggregate>(h).when(status_command(a));
                match allowed(*t, *from, a) {
                    Some(to) => {
                        let (mut s, r) = then.into_parts();
                        let events = r.unwrap_or_else(|e| panic!("{t} {a} from {from}: {e}"));
                        for e in &events {
                            s.evolve(e);
                        }
                        assert_eq!(s.state.unwrap().status, to, "{t} {a} from {from}");
                    }
                    None => then.then_err(ChangeError::InvalidTransition {
                        change_type: *t,
                        from: *from,
                        to: target(*t, a),
                    }),
                }
                checked += 1;
            }
        }
    }
    // normal: 8 statuses, emergency: 7 (no assess), standard: 6 (no assess, no authorize).
    assert_eq!(checked, (8 + 7 + 6) * actions.len());
}

#[test]
fn create_validates_the_window() {
    let s = given::<ChangeAggregate>([])
        .when(create_cmd(
            ChangeType::Normal,
            vec![user(1), user(2), user(3)],
            Quorum::Majority,
            RejectionPolicy::Reassess,
        ))
        .then([created(ChangeType::Normal)]);
    let c = s.state.unwrap();
    assert_eq!((c.status, c.approval_round), (ChangeStatus::Draft, 1));
    let mut bad = create_cmd(
        ChangeType::Normal,
        vec![],
        Quorum::All,
        RejectionPolicy::Cancel,
    );
    if let ChangeCommand::Create { planned_end, .. } = &mut bad {
        *planned_end = Some(start());
    }
    given::<ChangeAggregate>([])
        .when(bad)
        .then_err(ChangeError::InvalidWindow);
    given::<ChangeAggregate>([created(ChangeType::Normal)])
        .when(create_cmd(
            ChangeType::Normal,
            vec![],
            Quorum::All,
            RejectionPolicy::Cancel,
        ))
        .then_err(ChangeError::AlreadyExists);
    given::<ChangeAggregate>([])
        .when(ChangeCommand::Submit { actor: admin() })
        .then_err(ChangeError::NotFound);
}

fn update() -> ChangeCommand {
    ChangeCommand::Update {
        title: None,
        description: None,
        risk: None,
        planned_start: None,
        planned_end: None,
        ci_ids: None,
        incident_ids: None,
        approvers: None,
        quorum: None,
        on_rejection: None,
        actor: admin(),
    }
}
fn update_with(edit: impl FnOnce(&mut ChangeCommand)) -> ChangeCommand {
    let mut c = update();
    edit(&mut c);
    c
}

#[test]
fn update_fields_window_and_cab() {
    let later = end() + TimeDelta::hours(1);
    let s = given::<ChangeAggregate>([created(ChangeType::Normal)])
        .when(update_with(|c| {
            if let ChangeCommand::Update {
                risk,
                planned_end,
                quorum,
                ..
            } = c
            {
                *risk = Some(Risk::High);
                *planned_end = Some(Some(later));
                *quorum = Some(Quorum::All);
            }
        }))
        .then([ChangeEvent::ChangeUpdated(ChangeUpdated {
            changes: ChangeChanges {
                risk: Some(Change {
                    old: Risk::Medium,
                    new: Risk::High,
                }),
                planned_end: Some(Change {
                    old: Some(end()),
                    new: Some(later),
                }),
                quorum: Some(Change {
                    old: Quorum::Majority,
                    new: Quorum::All,
                }),
                ..Default::default()
            },
            actor: admin(),
            at: at(),
        })]);
    let c = s.state.unwrap();
    assert_eq!(
        (c.risk, c.planned_end, c.quorum),
        (Risk::High, Some(later), Quorum::All)
    );
    // Nothing changes: nothing emitted.
    given::<ChangeAggregate>([created(ChangeType::Normal)])
        .when(update())
        .then_nothing();
    // End before start.
    given::<ChangeAggregate>([created(ChangeType::Normal)])
        .when(update_with(|c| {
            if let ChangeCommand::Update { planned_start, .. } = c {
                *planned_start = Some(Some(end() + TimeDelta::minutes(1)));
            }
        }))
        .then_err(ChangeError::InvalidWindow);
    // Not once scheduled (or later).
    for status in [
        ChangeStatus::Scheduled,
        ChangeStatus::Implement,
        ChangeStatus::Closed,
        ChangeStatus::Cancelled,
    ] {
        given::<ChangeAggregate>(history(ChangeType::Normal, status).unwrap())
            .when(update_with(|c| {
                if let ChangeCommand::Update { risk, .. } = c {
                    *risk = Some(Risk::Low);
                }
            }))
            .then_err(ChangeError::ActionNotAllowed {
                action: ChangeAction::Update,
                status,
            });
    }
}

#[test]
fn the_cab_is_fixed_once_a_round_has_votes() {
    let authorize = history(ChangeType::Normal, ChangeStatus::Authorize).unwrap();
    let new_cab = update_with(|c| {
        if let ChangeCommand::Update { approvers, .. } = c {
            *approvers = Some(vec![user(9)]);
        }
    });
    // Before the first vote: allowed (but never empty).
    given::<ChangeAggregate>(authorize.clone())
        .when(new_cab.clone())
        .then([ChangeEvent::ChangeUpdated(ChangeUpdated {
            changes: ChangeChanges {
                approvers: Some(Change {
                    old: vec![user(1), user(2), user(3)],
                    new: vec![user(9)],
                }),
                ..Default::default()
            },
            actor: admin(),
            at: at(),
        })]);
    given::<ChangeAggregate>(authorize.clone())
        .when(update_with(|c| {
            if let ChangeCommand::Update { approvers, .. } = c {
                *approvers = Some(vec![]);
            }
        }))
        .then_err(ChangeError::NoApprovers);
    let mut voted = authorize;
    voted.push(vote(user(1), VoteDecision::Approve, 1));
    given::<ChangeAggregate>(voted.clone())
        .when(new_cab)
        .then_err(ChangeError::ApprovalInProgress);
    given::<ChangeAggregate>(voted)
        .when(update_with(|c| {
            if let ChangeCommand::Update { on_rejection, .. } = c {
                *on_rejection = Some(RejectionPolicy::Cancel);
            }
        }))
        .then_err(ChangeError::ApprovalInProgress);
}

#[test]
fn authorization_needs_approvers() {
    let none = created_with(
        ChangeType::Normal,
        vec![],
        Quorum::All,
        RejectionPolicy::Cancel,
    );
    given::<ChangeAggregate>([
        none,
        moved(
            ChangeAction::Submit,
            ChangeStatus::Draft,
            ChangeStatus::Assess,
        ),
    ])
    .when(ChangeCommand::CompleteAssessment { actor: admin() })
    .then_err(ChangeError::NoApprovers);
    let none = created_with(
        ChangeType::Emergency,
        vec![],
        Quorum::All,
        RejectionPolicy::Cancel,
    );
    given::<ChangeAggregate>([none])
        .when(ChangeCommand::Submit { actor: admin() })
        .then_err(ChangeError::NoApprovers);
}

/// The quorum rules as a table: (rule, approvers, approves, rejects) → outcome.
#[test]
fn every_quorum_rule() {
    use Outcome::{Approved as A, Rejected as R};
    let cases: &[(Quorum, usize, usize, usize, Option<Outcome>)] = &[
        (Quorum::All, 3, 2, 0, None),
        (Quorum::All, 3, 3, 0, Some(A)),
        (Quorum::All, 3, 2, 1, Some(R)),
        (Quorum::All, 3, 0, 1, Some(R)),
        (Quorum::All, 1, 1, 0, Some(A)),
        (Quorum::Any, 3, 0, 2, None),
        (Quorum::Any, 3, 1, 0, Some(A)),
        (Quorum::Any, 3, 1, 2, Some(A)),
        (Quorum::Any, 3, 0, 3, Some(R)),
        (Quorum::Majority, 3, 1, 0, None),
        (Quorum::Majority, 3, 1, 1, None),
        (Quorum::Majority, 3, 2, 0, Some(A)),
        (Quorum::Majority, 3, 0, 2, Some(R)),
        (Quorum::Majority, 4, 2, 0, None),
        (Quorum::Majority, 4, 2, 1, None),
        (Quorum::Majority, 4, 3, 0, Some(A)),
        (Quorum::Majority, 4, 1, 2, Some(R)),
        (Quorum::Majority, 1, 1, 0, Some(A)),
        (Quorum::Majority, 1, 0, 1, Some(R)),
    ];
    for (q, n, a, r, expected) in cases {
        assert_eq!(
            tally(*q, *n, *a, *r),
            *expected,
            "{q} {n} approvers, {a}+ {r}-"
        );
    }
}

fn authorize_with(quorum: Quorum, policy: RejectionPolicy, t: ChangeType) -> Vec<ChangeEvent> {
    let mut h = vec![created_with(
        t,
        vec![user(1), user(2), user(3)],
        quorum,
        policy,
    )];
    if t == ChangeType::Normal {
        h.push(moved(
            ChangeAction::Submit,
            ChangeStatus::Draft,
            ChangeStatus::Assess,
        ));
        h.push(moved(
            ChangeAction::CompleteAssessment,
            ChangeStatus::Assess,
            ChangeStatus::Authorize,
        ));
    } else {
        h.push(moved(
            ChangeAction::Submit,
            ChangeStatus::Draft,
            ChangeStatus::Authorize,
        ));
    }
    h
}

#[test]
fn quorum_all_approves_with_every_vote_and_rejects_at_the_first_no() {
    use VoteDecision::{Approve, Reject};
    let mut h = authorize_with(Quorum::All, RejectionPolicy::Reassess, ChangeType::Normal);
    h.push(vote(user(1), Approve, 1));
    h.push(vote(user(2), Approve, 1));
    let s = given::<ChangeAggregate>(h.clone())
        .when(vote_cmd(user(3), Approve))
        .then([
            vote(user(3), Approve, 1),
            decided(
                Outcome::Approved,
                1,
                3,
                0,
                Quorum::All,
                ChangeStatus::Authorize,
                user(3),
            ),
        ]);
    let c = s.state.unwrap();
    assert_eq!(
        (c.status, c.approved_at),
        (ChangeStatus::Authorize, Some(at()))
    );
    // Rejection under "reassess": back to assess, a new round without votes.
    let s = given::<ChangeAggregate>(h)
        .when(vote_cmd(user(3), Reject))
        .then([
            vote(user(3), Reject, 1),
            decided(
                Outcome::Rejected,
                1,
                2,
                1,
                Quorum::All,
                ChangeStatus::Assess,
                user(3),
            ),
        ]);
    let c = s.state.unwrap();
    assert_eq!(
        (c.status, c.approval_round, c.votes.len()),
        (ChangeStatus::Assess, 2, 0)
    );
}

#[test]
fn quorum_any_approves_at_the_first_yes_and_rejects_when_all_say_no() {
    use VoteDecision::{Approve, Reject};
    let h = authorize_with(Quorum::Any, RejectionPolicy::Cancel, ChangeType::Normal);
    given::<ChangeAggregate>(h.clone())
        .when(vote_cmd(user(2), Approve))
        .then([
            vote(user(2), Approve, 1),
            decided(
                Outcome::Approved,
                1,
                1,
                0,
                Quorum::Any,
                ChangeStatus::Authorize,
                user(2),
            ),
        ]);
    let mut h2 = h;
    h2.push(vote(user(1), Reject, 1));
    h2.push(vote(user(2), Reject, 1));
    // Under "cancel", the rejection cancels the change.
    let s = given::<ChangeAggregate>(h2)
        .when(vote_cmd(user(3), Reject))
        .then([
            vote(user(3), Reject, 1),
            decided(
                Outcome::Rejected,
                1,
                0,
                3,
                Quorum::Any,
                ChangeStatus::Cancelled,
                user(3),
            ),
        ]);
    let c = s.state.unwrap();
    assert_eq!(c.status, ChangeStatus::Cancelled);
    assert_eq!(c.cancelled_at, Some(at()));
    assert!(c.allowed_actions().is_empty());
}

#[test]
fn quorum_majority_decides_when_a_majority_is_reached_or_lost() {
    use VoteDecision::{Approve, Reject};
    let h = authorize_with(
        Quorum::Majority,
        RejectionPolicy::Reassess,
        ChangeType::Emergency,
    );
    // One approval of three decides nothing.
    given::<ChangeAggregate>(h.clone())
        .when(vote_cmd(user(1), Approve))
        .then([vote(user(1), Approve, 1)]);
    let mut one_each = h.clone();
    one_each.push(vote(user(1), Approve, 1));
    one_each.push(vote(user(2), Reject, 1));
    given::<ChangeAggregate>(one_each.clone())
        .when(vote_cmd(user(3), Approve))
        .then([
            vote(user(3), Approve, 1),
            decided(
                Outcome::Approved,
                1,
                2,
                1,
                Quorum::Majority,
                ChangeStatus::Authorize,
                user(3),
            ),
        ]);
    // An emergency change has no assessment: "reassess" sends it back to draft.
    let s = given::<ChangeAggregate>(one_each)
        .when(vote_cmd(user(3), Reject))
        .then([
            vote(user(3), Reject, 1),
            decided(
                Outcome::Rejected,
                1,
                1,
                2,
                Quorum::Majority,
                ChangeStatus::Draft,
                user(3),
            ),
        ]);
    assert_eq!(s.state.unwrap().status, ChangeStatus::Draft);
}

#[test]
fn votes_are_by_approvers_once_in_authorize_only() {
    use VoteDecision::Approve;
    let h = authorize_with(Quorum::All, RejectionPolicy::Reassess, ChangeType::Normal);
    given::<ChangeAggregate>(h.clone())
        .when(vote_cmd(user(7), Approve))
        .then_err(ChangeError::NotAnApprover(user(7)));
    let mut voted = h.clone();
    voted.push(vote(user(1), Approve, 1));
    given::<ChangeAggregate>(voted)
        .when(vote_cmd(user(1), VoteDecision::Reject))
        .then_err(ChangeError::AlreadyVoted(user(1)));
    let approved = history(ChangeType::Normal, ChangeStatus::Authorize)
        .unwrap()
        .into_iter()
        .chain([
            vote(user(1), Approve, 1),
            vote(user(2), Approve, 1),
            decided(
                Outcome::Approved,
                1,
                2,
                0,
                Quorum::Majority,
                ChangeStatus::Authorize,
                user(2),
            ),
        ])
        .collect::<Vec<_>>();
    given::<ChangeAggregate>(approved)
        .when(vote_cmd(user(3), Approve))
        .then_err(ChangeError::AlreadyApproved);
    for status in [
        ChangeStatus::Draft,
        ChangeStatus::Assess,
        ChangeStatus::Scheduled,
    ] {
        given::<ChangeAggregate>(history(ChangeType::Normal, status).unwrap())
            .when(vote_cmd(user(1), Approve))
            .then_err(ChangeError::ActionNotAllowed {
                action: ChangeAction::Vote,
                status,
            });
    }
    // After a rejection and rework, a new round: the same approver votes again.
    let mut h = authorize_with(Quorum::All, RejectionPolicy::Reassess, ChangeType::Normal);
    h.push(vote(user(1), VoteDecision::Reject, 1));
    h.push(decided(
        Outcome::Rejected,
        1,
        0,
        1,
        Quorum::All,
        ChangeStatus::Assess,
        user(1),
    ));
    h.push(moved(
        ChangeAction::CompleteAssessment,
        ChangeStatus::Assess,
        ChangeStatus::Authorize,
    ));
    given::<ChangeAggregate>(h)
        .when(vote_cmd(user(1), Approve))
        .then([vote(user(1), Approve, 2)]);
}

#[test]
fn only_an_approved_change_with_a_window_is_scheduled() {
    // Not yet approved.
    given::<ChangeAggregate>(history(ChangeType::Normal, ChangeStatus::Authorize).unwrap())
        .when(schedule_cmd())
        .then_err(ChangeError::NotApproved);
    given::<ChangeAggregate>(history(ChangeType::Emergency, ChangeStatus::Authorize).unwrap())
        .when(schedule_cmd())
        .then_err(ChangeError::NotApproved);
    // Approved.
    let s = given::<ChangeAggregate>(
        history(ChangeType::Normal, ChangeStatus::Scheduled).unwrap()[..6].to_vec(),
    )
    .when(schedule_cmd())
    .then([scheduled(ChangeStatus::Authorize)]);
    let c = s.state.unwrap();
    assert_eq!(
        (c.status, c.scheduled_at),
        (ChangeStatus::Scheduled, Some(at()))
    );
    // A standard change needs no CAB, but a window.
    given::<ChangeAggregate>([created(ChangeType::Standard)])
        .when(schedule_cmd())
        .then([scheduled(ChangeStatus::Draft)]);
    let no_window = ChangeEvent::ChangeUpdated(ChangeUpdated {
        changes: ChangeChanges {
            planned_start: Some(Change {
                old: Some(start()),
                new: None,
            }),
            ..Default::default()
        },
        actor: admin(),
        at: at(),
    });
    given::<ChangeAggregate>([created(ChangeType::Standard), no_window])
        .when(schedule_cmd())
        .then_err(ChangeError::WindowRequired);
}

#[test]
fn conflicts_need_an_override_which_is_recorded() {
    let others = vec![
        ChangeId(Uuid::from_u128(0xd1)),
        ChangeId(Uuid::from_u128(0xd2)),
    ];
    given::<ChangeAggregate>([created(ChangeType::Standard)])
        .when(ChangeCommand::Schedule {
            conflicts: others.clone(),
            override_reason: None,
            actor: admin(),
        })
        .then_err(ChangeError::Conflicts(others.clone()));
    let s = given::<ChangeAggregate>([created(ChangeType::Standard)])
        .when(ChangeCommand::Schedule {
            conflicts: others.clone(),
            override_reason: Some(reason("agreed with the DBA team")),
            actor: admin(),
        })
        .then([ChangeEvent::ChangeScheduled(ChangeScheduled {
            from: ChangeStatus::Draft,
            planned_start: start(),
            planned_end: end(),
            conflicts: others.clone(),
            override_reason: Some(reason("agreed with the DBA team")),
            actor: admin(),
            at: at(),
        })]);
    let c = s.state.unwrap();
    assert_eq!(c.overridden_conflicts, others);
    assert_eq!(c.override_reason, Some(reason("agreed with the DBA team")));
    // Without conflicts a reason is not recorded.
    given::<ChangeAggregate>([created(ChangeType::Standard)])
        .when(ChangeCommand::Schedule {
            conflicts: vec![],
            override_reason: Some(reason("just in case")),
            actor: admin(),
        })
        .then([scheduled(ChangeStatus::Draft)]);
}

fn task_added(n: u128) -> ChangeEvent {
    ChangeEvent::ChangeTaskAdded(ChangeTaskAdded {
        task_id: task(n),
        title: title(&format!("step {n}")),
        assignee_id: None,
        actor: admin(),
        at: at(),
    })
}
fn task_closed(n: u128) -> ChangeEvent {
    ChangeEvent::ChangeTaskClosed(ChangeTaskClosed {
        task_id: task(n),
        actor: admin(),
        at: at(),
    })
}

#[test]
fn tasks_are_added_assigned_closed_and_reordered() {
    let base = vec![created(ChangeType::Normal), task_added(1), task_added(2)];
    given::<ChangeAggregate>([created(ChangeType::Normal)])
        .when(ChangeCommand::AddTask {
            task_id: task(1),
            title: title("step 1"),
            assignee_id: None,
            actor: admin(),
        })
        .then([task_added(1)]);
    given::<ChangeAggregate>(base.clone())
        .when(ChangeCommand::AddTask {
            task_id: task(1),
            title: title("again"),
            assignee_id: None,
            actor: admin(),
        })
        .then_err(ChangeError::DuplicateTask(task(1)));
    let s = given::<ChangeAggregate>(base.clone())
        .when(ChangeCommand::AssignTask {
            task_id: task(2),
            assignee_id: Some(user(5)),
            actor: admin(),
        })
        .then([ChangeEvent::ChangeTaskAssigned(ChangeTaskAssigned {
            task_id: task(2),
            previous_assignee_id: None,
            assignee_id: Some(user(5)),
            actor: admin(),
            at: at(),
        })]);
    assert_eq!(s.state.unwrap().tasks[1].assignee_id, Some(user(5)));
    given::<ChangeAggregate>(base.clone())
        .when(ChangeCommand::AssignTask {
            task_id: task(9),
            assignee_id: None,
            actor: admin(),
        })
        .then_err(ChangeError::TaskNotFound(task(9)));
    given::<ChangeAggregate>(base.clone())
        .when(ChangeCommand::AssignTask {
            task_id: task(1),
            assignee_id: None,
            actor: admin(),
        })
        .then_nothing();
    let s = given::<ChangeAggregate>(base.clone())
        .when(ChangeCommand::CloseTask {
            task_id: task(1),
            actor: admin(),
        })
        .then([task_closed(1)]);
    assert_eq!(s.state.unwrap().tasks[0].status, TaskStatus::Closed);
    let mut closed = base.clone();
    closed.push(task_closed(1));
    given::<ChangeAggregate>(closed.clone())
        .when(ChangeCommand::CloseTask {
            task_id: task(1),
            actor: admin(),
        })
        .then_nothing();
    given::<ChangeAggregate>(closed)
        .when(ChangeCommand::AssignTask {
            task_id: task(1),
            assignee_id: Some(user(1)),
            actor: admin(),
        })
        .then_err(ChangeError::TaskClosed(task(1)));
    let s = given::<ChangeAggregate>(base.clone())
        .when(ChangeCommand::ReorderTasks {
            order: vec![task(2), task(1)],
            actor: admin(),
        })
        .then([ChangeEvent::ChangeTasksReordered(ChangeTasksReordered {
            order: vec![task(2), task(1)],
            actor: admin(),
            at: at(),
        })]);
    let ids: Vec<_> = s.state.unwrap().tasks.iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![task(2), task(1)]);
    given::<ChangeAggregate>(base.clone())
        .when(ChangeCommand::ReorderTasks {
            order: vec![task(1), task(2)],
            actor: admin(),
        })
        .then_nothing();
    for order in [
        vec![task(1)],
        vec![task(1), task(1)],
        vec![task(1), task(2), task(3)],
    ] {
        given::<ChangeAggregate>(base.clone())
            .when(ChangeCommand::ReorderTasks {
                order,
                actor: admin(),
            })
            .then_err(ChangeError::InvalidTaskOrder);
    }
    // Not on a final change.
    let mut cancelled = history(ChangeType::Normal, ChangeStatus::Cancelled).unwrap();
    cancelled.push(task_added(3));
    given::<ChangeAggregate>(cancelled)
        .when(ChangeCommand::AddTask {
            task_id: task(4),
            title: title("late"),
            assignee_id: None,
            actor: admin(),
        })
        .then_err(ChangeError::ActionNotAllowed {
            action: ChangeAction::EditTasks,
            status: ChangeStatus::Cancelled,
        });
}

#[test]
fn implementation_completes_only_with_every_task_closed() {
    let mut h = history(ChangeType::Standard, ChangeStatus::Implement).unwrap();
    h.push(task_added(1));
    h.push(task_added(2));
    h.push(task_closed(1));
    given::<ChangeAggregate>(h.clone())
        .when(ChangeCommand::CompleteImplementation { actor: admin() })
        .then_err(ChangeError::OpenTasks(1));
    h.push(task_closed(2));
    let s = given::<ChangeAggregate>(h)
        .when(ChangeCommand::CompleteImplementation { actor: admin() })
        .then([moved(
            ChangeAction::CompleteImplementation,
            ChangeStatus::Implement,
            ChangeStatus::Review,
        )]);
    assert_eq!(s.state.unwrap().status, ChangeStatus::Review);
}

#[test]
fn close_and_cancel() {
    let s = given::<ChangeAggregate>(history(ChangeType::Normal, ChangeStatus::Review).unwrap())
        .when(ChangeCommand::Close { actor: admin() })
        .then([moved(
            ChangeAction::Close,
            ChangeStatus::Review,
            ChangeStatus::Closed,
        )]);
    assert_eq!(s.state.unwrap().closed_at, Some(at()));
    let s = given::<ChangeAggregate>(history(ChangeType::Normal, ChangeStatus::Scheduled).unwrap())
        .when(ChangeCommand::Cancel {
            reason: reason("vendor postponed"),
            actor: admin(),
        })
        .then([ChangeEvent::ChangeCancelled(ChangeCancelled {
            from: ChangeStatus::Scheduled,
            reason: reason("vendor postponed"),
            actor: admin(),
            at: at(),
        })]);
    let c = s.state.unwrap();
    assert_eq!(c.cancel_reason, Some(reason("vendor postponed")));
    assert_eq!(c.status, ChangeStatus::Cancelled);
}

#[test]
fn events_round_trip() {
    let mut events = history(ChangeType::Normal, ChangeStatus::Closed).unwrap();
    events.extend([
        ChangeEvent::ChangeUpdated(ChangeUpdated {
            changes: ChangeChanges {
                ci_ids: Some(Change {
                    old: vec![],
                    new: vec![CiId(Uuid::from_u128(1))],
                }),
                ..Default::default()
            },
            actor: admin(),
            at: at(),
        }),
        ChangeEvent::ChangeCancelled(ChangeCancelled {
            from: ChangeStatus::Draft,
            reason: reason("x"),
            actor: admin(),
            at: at(),
        }),
        task_added(1),
        ChangeEvent::ChangeTaskAssigned(ChangeTaskAssigned {
            task_id: task(1),
            previous_assignee_id: None,
            assignee_id: Some(user(1)),
            actor: admin(),
            at: at(),
        }),
        task_closed(1),
        ChangeEvent::ChangeTasksReordered(ChangeTasksReordered {
            order: vec![task(1)],
            actor: admin(),
            at: at(),
        }),
    ]);
    let mut types: Vec<&str> = events.iter().map(DomainEvent::event_type).collect();
    types.sort_unstable();
    types.dedup();
    let mut all = ChangeEvent::EVENT_TYPES.to_vec();
    all.sort_unstable();
    assert_eq!(types, all);
    for e in &events {
        assert_round_trip(e);
    }
}
