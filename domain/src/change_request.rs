//! The change aggregate (`stream_type = "change"`): a request for change with its type, risk,
//! implementation window, ordered tasks, linked CIs and incidents, and its CAB approval
//! (ADR 0022).
//!
//! # State machines (PRODUCT.md)
//!
//! | type | path |
//! |---|---|
//! | normal | draft → assess → authorize → scheduled → implement → review → closed |
//! | emergency | draft → authorize → scheduled → implement → review → closed |
//! | standard | draft → scheduled → implement → review → closed |
//!
//! Actions: `Submit` leaves `draft` (normal → `assess`, emergency → `authorize`; a standard
//! change is pre-approved and has nothing to submit: it is scheduled from `draft`),
//! `CompleteAssessment` (`assess → authorize`, normal only), `Vote`, `Schedule`,
//! `StartImplementation`, `CompleteImplementation`, `Close`; `Cancel` from `draft`, `assess`,
//! `authorize` or `scheduled`. `closed` and `cancelled` are final. A status action that the
//! machine does not allow is [`ChangeError::InvalidTransition`].
//!
//! # CAB approval
//! - Approvers are named on the change (at least one before it can reach `authorize`); each
//!   votes approve or reject, with a comment, once per approval round, only in `authorize`.
//! - After each vote the [`Quorum`] rule is applied to the round's votes ([`tally`]):
//!   `all` — approved when every approver approved, rejected at the first rejection;
//!   `any` — approved at the first approval, rejected when every approver rejected;
//!   `majority` — approved when more than half approved, rejected as soon as that can no longer
//!   happen (rejections ≥ half).
//! - Approved: the change may be scheduled (normal and emergency changes only then).
//! - Rejected: by the change's [`RejectionPolicy`], back for rework (normal → `assess`;
//!   emergency, which has no assessment, → `draft`) with a fresh approval round, or cancelled.
//! - Approvers, quorum and policy can be edited until the first vote of a round.
//!
//! # Window and conflicts
//! `planned_end` must be after `planned_start` (create, update). Scheduling needs both. The
//! command layer finds the scheduled changes whose window overlaps and whose CIs are the same
//! or related by dependency, and passes them in [`ChangeCommand::Schedule`]: with any, the
//! schedule is refused ([`ChangeError::Conflicts`]) unless it carries an override reason,
//! which the event records (the audit trail).
//!
//! # Tasks
//! Ordered; added, assigned, closed and reordered in every non-final status. Implementation
//! cannot complete while a task is open.

use crate::actor::Actor;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::change::Change;
use crate::ids::{ChangeId, ChangeTaskId, CiId, IncidentId, UserId};
use crate::values::{Description, ReasonText, Title, str_enum};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

str_enum!(
    /// The kind of change.
    ChangeType, field = "type" {
        /// Pre-approved, low risk, repeatable: no assessment, no CAB.
        Standard => "standard",
        /// The full path through assessment and the CAB.
        Normal => "normal",
        /// Urgent: straight to the (emergency) CAB.
        Emergency => "emergency",
    }
);

str_enum!(
    /// The lifecycle status of a change.
    ChangeStatus, field = "status" {
        /// Being written.
        Draft => "draft",
        /// Being assessed (normal changes).
        Assess => "assess",
        /// Waiting for the CAB's approval.
        Authorize => "authorize",
        /// Approved and planned.
        Scheduled => "scheduled",
        /// Being implemented.
        Implement => "implement",
        /// Post-implementation review.
        Review => "review",
        /// Final: done.
        Closed => "closed",
        /// Final: withdrawn or rejected.
        Cancelled => "cancelled",
    }
);

impl ChangeStatus {
    /// `closed` and `cancelled` accept nothing.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Closed | Self::Cancelled)
    }
}

str_enum!(
    /// How risky a change is.
    Risk, field = "risk" {
        /// Low.
        Low => "low",
        /// Medium.
        Medium => "medium",
        /// High.
        High => "high",
    }
);

str_enum!(
    /// The CAB's quorum rule.
    Quorum, field = "quorum" {
        /// Every approver must approve.
        All => "all",
        /// One approval suffices.
        Any => "any",
        /// More than half must approve.
        Majority => "majority",
    }
);

str_enum!(
    /// What a rejection by the CAB does.
    RejectionPolicy, field = "on_rejection" {
        /// Back for rework: normal → assess, emergency → draft; a new approval round.
        Reassess => "reassess",
        /// The change is cancelled.
        Cancel => "cancel",
    }
);

str_enum!(
    /// An approver's vote.
    VoteDecision, field = "decision" {
        /// Approve.
        Approve => "approve",
        /// Reject.
        Reject => "reject",
    }
);

str_enum!(
    /// A task's status.
    TaskStatus, field = "status" {
        /// To do.
        Open => "open",
        /// Done.
        Closed => "closed",
    }
);

str_enum!(
    /// What a change command does.
    ChangeAction, field = "action" {
        /// [`ChangeCommand::Create`].
        Create => "create",
        /// [`ChangeCommand::Update`].
        Update => "update",
        /// [`ChangeCommand::Submit`].
        Submit => "submit",
        /// [`ChangeCommand::CompleteAssessment`].
        CompleteAssessment => "complete_assessment",
        /// [`ChangeCommand::Vote`].
        Vote => "vote",
        /// [`ChangeCommand::Schedule`].
        Schedule => "schedule",
        /// [`ChangeCommand::StartImplementation`].
        StartImplementation => "start_implementation",
        /// [`ChangeCommand::CompleteImplementation`].
        CompleteImplementation => "complete_implementation",
        /// [`ChangeCommand::Close`].
        Close => "close",
        /// [`ChangeCommand::Cancel`].
        Cancel => "cancel",
        /// [`ChangeCommand::AddTask`], `AssignTask`, `CloseTask`, `ReorderTasks`.
        EditTasks => "edit_tasks",
    }
);

/// The outcome of a round of votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Approved.
    Approved,
    /// Rejected.
    Rejected,
}

/// The outcome of `approves` and `rejects` among `approvers` under `quorum`, or `None` while
/// undecided.
pub fn tally(quorum: Quorum, approvers: usize, approves: usize, rejects: usize) -> Option<Outcome> {
    match quorum {
        Quorum::All if rejects > 0 => Some(Outcome::Rejected),
        Quorum::All if approves >= approvers => Some(Outcome::Approved),
        Quorum::Any if approves > 0 => Some(Outcome::Approved),
        Quorum::Any if rejects >= approvers => Some(Outcome::Rejected),
        Quorum::Majority if approves * 2 > approvers => Some(Outcome::Approved),
        Quorum::Majority if rejects * 2 >= approvers => Some(Outcome::Rejected),
        _ => None,
    }
}

/// Why a change command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// The change has not been created.
    #[error("change not found")]
    NotFound,
    /// `Create` on an existing change.
    #[error("change already exists")]
    AlreadyExists,
    /// The status change is not in this type's state machine.
    #[error("cannot move a {change_type} change from {from} to {to}")]
    InvalidTransition {
        /// The change's type.
        change_type: ChangeType,
        /// The current status.
        from: ChangeStatus,
        /// The status the command would move to.
        to: ChangeStatus,
    },
    /// A command that does not move the status is not allowed in the current status.
    #[error("cannot {action} a change that is {status}")]
    ActionNotAllowed {
        /// The action.
        action: ChangeAction,
        /// The current status.
        status: ChangeStatus,
    },
    /// `planned_end` is not after `planned_start`.
    #[error("planned_end must be after planned_start")]
    InvalidWindow,
    /// Scheduling needs both ends of the window.
    #[error("a change needs planned_start and planned_end to be scheduled")]
    WindowRequired,
    /// A change needs approvers before the CAB.
    #[error("a change needs at least one approver before authorization")]
    NoApprovers,
    /// The voter is not an approver of the change.
    #[error("user {0} is not an approver of this change")]
    NotAnApprover(UserId),
    /// The approver already voted in this round.
    #[error("user {0} has already voted")]
    AlreadyVoted(UserId),
    /// The round is decided (approved): no more votes.
    #[error("the change is already approved")]
    AlreadyApproved,
    /// Scheduling a normal or emergency change before the CAB approved it.
    #[error("the change is not approved")]
    NotApproved,
    /// Approvers, quorum or policy edited after the round's first vote.
    #[error("the approval round has started: approvers, quorum and on_rejection are fixed")]
    ApprovalInProgress,
    /// Overlapping scheduled changes, and no override.
    #[error("the window conflicts with scheduled changes: {}", list(.0))]
    Conflicts(Vec<ChangeId>),
    /// No such task.
    #[error("task {0} not found")]
    TaskNotFound(ChangeTaskId),
    /// A task with this id exists.
    #[error("task {0} already exists")]
    DuplicateTask(ChangeTaskId),
    /// The task is closed.
    #[error("task {0} is closed")]
    TaskClosed(ChangeTaskId),
    /// The new order is not a permutation of the tasks.
    #[error("the order must name every task of the change exactly once")]
    InvalidTaskOrder,
    /// Implementation cannot complete with open tasks.
    #[error("{0} task(s) still open")]
    OpenTasks(usize),
}

fn list(ids: &[ChangeId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl ChangeError {
    /// A stable machine-readable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound | Self::TaskNotFound(_) => "not_found",
            Self::AlreadyExists | Self::DuplicateTask(_) => "already_exists",
            Self::InvalidTransition { .. } => "invalid_transition",
            Self::ActionNotAllowed { .. } => "action_not_allowed",
            Self::InvalidWindow => "invalid_window",
            Self::WindowRequired => "window_required",
            Self::NoApprovers => "no_approvers",
            Self::NotAnApprover(_) => "not_an_approver",
            Self::AlreadyVoted(_) => "already_voted",
            Self::AlreadyApproved => "already_approved",
            Self::NotApproved => "not_approved",
            Self::ApprovalInProgress => "approval_in_progress",
            Self::Conflicts(_) => "schedule_conflict",
            Self::TaskClosed(_) => "task_closed",
            Self::InvalidTaskOrder => "invalid_task_order",
            Self::OpenTasks(_) => "open_tasks",
        }
    }
}

/// The status a change of `change_type` in `from` ends in after `action` (for the status
/// actions), or the error rejecting it. Non-status actions keep the status unless final.
pub fn next_status(
    change_type: ChangeType,
    from: ChangeStatus,
    action: ChangeAction,
) -> Result<ChangeStatus, ChangeError> {
    use ChangeAction as A;
    use ChangeStatus as S;
    use ChangeType as T;
    let invalid = |to| ChangeError::InvalidTransition {
        change_type,
        from,
        to,
    };
    match action {
        A::Create => Err(ChangeError::AlreadyExists),
        A::Update => match from {
            S::Draft | S::Assess | S::Authorize => Ok(from),
            _ => Err(ChangeError::ActionNotAllowed {
                action,
                status: from,
            }),
        },
        A::EditTasks => {
            if from.is_final() {
                Err(ChangeError::ActionNotAllowed {
                    action,
                    status: from,
                })
            } else {
                Ok(from)
            }
        }
        A::Vote => match from {
            S::Authorize => Ok(from),
            _ => Err(ChangeError::ActionNotAllowed {
                action,
                status: from,
            }),
        },
        A::Submit => match (change_type, from) {
            (T::Normal, S::Draft) => Ok(S::Assess),
            (T::Emergency, S::Draft) => Ok(S::Authorize),
            (T::Normal, _) => Err(invalid(S::Assess)),
            _ => Err(invalid(S::Authorize)),
        },
        A::CompleteAssessment => match (change_type, from) {
            (T::Normal, S::Assess) => Ok(S::Authorize),
            _ => Err(invalid(S::Authorize)),
        },
        A::Schedule => match (change_type, from) {
            (T::Standard, S::Draft) | (T::Normal | T::Emergency, S::Authorize) => Ok(S::Scheduled),
            _ => Err(invalid(S::Scheduled)),
        },
        A::StartImplementation => match from {
            S::Scheduled => Ok(S::Implement),
            _ => Err(invalid(S::Implement)),
        },
        A::CompleteImplementation => match from {
            S::Implement => Ok(S::Review),
            _ => Err(invalid(S::Review)),
        },
        A::Close => match from {
            S::Review => Ok(S::Closed),
            _ => Err(invalid(S::Closed)),
        },
        A::Cancel => match from {
            S::Draft | S::Assess | S::Authorize | S::Scheduled => Ok(S::Cancelled),
            _ => Err(invalid(S::Cancelled)),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

/// A request to change a change.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeCommand {
    /// Record a change (status `draft`).
    Create {
        /// Id (= stream id).
        id: ChangeId,
        /// Title.
        title: Title,
        /// Description.
        description: Description,
        /// Type.
        change_type: ChangeType,
        /// Risk.
        risk: Risk,
        /// Window start.
        planned_start: Option<DateTime<Utc>>,
        /// Window end.
        planned_end: Option<DateTime<Utc>>,
        /// Configuration items it touches (checked to exist by the command layer).
        ci_ids: Vec<CiId>,
        /// Incidents it addresses (idem).
        incident_ids: Vec<IncidentId>,
        /// The CAB.
        approvers: Vec<UserId>,
        /// Quorum rule.
        quorum: Quorum,
        /// What a rejection does.
        on_rejection: RejectionPolicy,
        /// Who.
        actor: Actor,
    },
    /// Edit (in draft, assess, authorize); `None` keeps a field.
    Update {
        /// Title.
        title: Option<Title>,
        /// Description.
        description: Option<Description>,
        /// Risk.
        risk: Option<Risk>,
        /// Window start (`Some(None)` clears it).
        planned_start: Option<Option<DateTime<Utc>>>,
        /// Window end (`Some(None)` clears it).
        planned_end: Option<Option<DateTime<Utc>>>,
        /// CIs (the whole list).
        ci_ids: Option<Vec<CiId>>,
        /// Incidents (the whole list).
        incident_ids: Option<Vec<IncidentId>>,
        /// Approvers (the whole list).
        approvers: Option<Vec<UserId>>,
        /// Quorum.
        quorum: Option<Quorum>,
        /// Rejection policy.
        on_rejection: Option<RejectionPolicy>,
        /// Who.
        actor: Actor,
    },
    /// Leave draft (normal → assess, emergency → authorize).
    Submit {
        /// Who.
        actor: Actor,
    },
    /// `assess → authorize` (normal).
    CompleteAssessment {
        /// Who.
        actor: Actor,
    },
    /// An approver votes.
    Vote {
        /// The approver (the caller).
        approver: UserId,
        /// Approve or reject.
        decision: VoteDecision,
        /// Why.
        comment: ReasonText,
    },
    /// Plan it (→ scheduled).
    Schedule {
        /// Overlapping scheduled changes on the same or dependent CIs (found by the command
        /// layer).
        conflicts: Vec<ChangeId>,
        /// Why to schedule despite them (required when there are any).
        override_reason: Option<ReasonText>,
        /// Who.
        actor: Actor,
    },
    /// `scheduled → implement`.
    StartImplementation {
        /// Who.
        actor: Actor,
    },
    /// `implement → review` (every task closed).
    CompleteImplementation {
        /// Who.
        actor: Actor,
    },
    /// `review → closed`.
    Close {
        /// Who.
        actor: Actor,
    },
    /// Withdraw it.
    Cancel {
        /// Why.
        reason: ReasonText,
        /// Who.
        actor: Actor,
    },
    /// Add a task at the end.
    AddTask {
        /// Its id.
        task_id: ChangeTaskId,
        /// Title.
        title: Title,
        /// Assignee.
        assignee_id: Option<UserId>,
        /// Who.
        actor: Actor,
    },
    /// (Re)assign an open task.
    AssignTask {
        /// The task.
        task_id: ChangeTaskId,
        /// The assignee (`None` unassigns).
        assignee_id: Option<UserId>,
        /// Who.
        actor: Actor,
    },
    /// Close a task (closing a closed one is a no-op).
    CloseTask {
        /// The task.
        task_id: ChangeTaskId,
        /// Who.
        actor: Actor,
    },
    /// Put the tasks in this order (a permutation of them).
    ReorderTasks {
        /// Every task id, in the new order.
        order: Vec<ChangeTaskId>,
        /// Who.
        actor: Actor,
    },
}

impl ChangeCommand {
    /// What the command does.
    pub fn action(&self) -> ChangeAction {
        match self {
            Self::Create { .. } => ChangeAction::Create,
            Self::Update { .. } => ChangeAction::Update,
            Self::Submit { .. } => ChangeAction::Submit,
            Self::CompleteAssessment { .. } => ChangeAction::CompleteAssessment,
            Self::Vote { .. } => ChangeAction::Vote,
            Self::Schedule { .. } => ChangeAction::Schedule,
            Self::StartImplementation { .. } => ChangeAction::StartImplementation,
            Self::CompleteImplementation { .. } => ChangeAction::CompleteImplementation,
            Self::Close { .. } => ChangeAction::Close,
            Self::Cancel { .. } => ChangeAction::Cancel,
            Self::AddTask { .. }
            | Self::AssignTask { .. }
            | Self::CloseTask { .. }
            | Self::ReorderTasks { .. } => ChangeAction::EditTasks,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// A change was recorded (status `draft`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeCreated {
    /// Id.
    pub id: ChangeId,
    /// Title.
    pub title: Title,
    /// Description.
    pub description: Description,
    /// Type.
    pub change_type: ChangeType,
    /// Risk.
    pub risk: Risk,
    /// Window start.
    pub planned_start: Option<DateTime<Utc>>,
    /// Window end.
    pub planned_end: Option<DateTime<Utc>>,
    /// CIs.
    pub ci_ids: Vec<CiId>,
    /// Incidents.
    pub incident_ids: Vec<IncidentId>,
    /// Approvers.
    pub approvers: Vec<UserId>,
    /// Quorum.
    pub quorum: Quorum,
    /// Rejection policy.
    pub on_rejection: RejectionPolicy,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// The field changes of one [`ChangeUpdated`]; absent = unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeChanges {
    /// Title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Change<Title>>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Change<Description>>,
    /// Risk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Change<Risk>>,
    /// Window start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_start: Option<Change<Option<DateTime<Utc>>>>,
    /// Window end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_end: Option<Change<Option<DateTime<Utc>>>>,
    /// CIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_ids: Option<Change<Vec<CiId>>>,
    /// Incidents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_ids: Option<Change<Vec<IncidentId>>>,
    /// Approvers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvers: Option<Change<Vec<UserId>>>,
    /// Quorum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<Change<Quorum>>,
    /// Rejection policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_rejection: Option<Change<RejectionPolicy>>,
}

impl ChangeChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Fields were edited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeUpdated {
    /// What changed.
    pub changes: ChangeChanges,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// The status moved (submit, assessment done, implementation started or done, closed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeStatusChanged {
    /// The action.
    pub action: ChangeAction,
    /// Before.
    pub from: ChangeStatus,
    /// After.
    pub to: ChangeStatus,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// An approver voted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeVoteCast {
    /// The approver.
    pub approver: UserId,
    /// The vote.
    pub decision: VoteDecision,
    /// Why.
    pub comment: ReasonText,
    /// The approval round (1 for the first).
    pub round: u32,
    /// When.
    pub at: DateTime<Utc>,
}

/// The round's votes decided: approved (status kept), or rejected (status `to`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeDecided {
    /// The outcome.
    pub outcome: Outcome,
    /// The round.
    pub round: u32,
    /// Approvals and rejections counted.
    pub approves: u32,
    /// Rejections counted.
    pub rejects: u32,
    /// The quorum rule applied.
    pub quorum: Quorum,
    /// Status after (`authorize` when approved; by policy when rejected).
    pub to: ChangeStatus,
    /// The last voter.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Scheduled: `→ scheduled`, with the window and any conflicts overridden.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeScheduled {
    /// Before.
    pub from: ChangeStatus,
    /// Window start.
    pub planned_start: DateTime<Utc>,
    /// Window end.
    pub planned_end: DateTime<Utc>,
    /// The conflicting scheduled changes at that moment (overridden).
    pub conflicts: Vec<ChangeId>,
    /// Why they were overridden.
    pub override_reason: Option<ReasonText>,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Cancelled (final).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeCancelled {
    /// Before.
    pub from: ChangeStatus,
    /// Why.
    pub reason: ReasonText,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A task was added at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeTaskAdded {
    /// Id.
    pub task_id: ChangeTaskId,
    /// Title.
    pub title: Title,
    /// Assignee.
    pub assignee_id: Option<UserId>,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A task was (re)assigned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeTaskAssigned {
    /// Id.
    pub task_id: ChangeTaskId,
    /// Before.
    pub previous_assignee_id: Option<UserId>,
    /// After.
    pub assignee_id: Option<UserId>,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A task was closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeTaskClosed {
    /// Id.
    pub task_id: ChangeTaskId,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// The tasks were reordered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeTasksReordered {
    /// Every task id, in the new order.
    pub order: Vec<ChangeTaskId>,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Everything that can happen to a change (`{"type", "data"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
#[allow(clippy::enum_variant_names)] // the shared prefix makes stored type names unique
pub enum ChangeEvent {
    /// See [`ChangeCreated`].
    ChangeCreated(ChangeCreated),
    /// See [`ChangeUpdated`].
    ChangeUpdated(ChangeUpdated),
    /// See [`ChangeStatusChanged`].
    ChangeStatusChanged(ChangeStatusChanged),
    /// See [`ChangeVoteCast`].
    ChangeVoteCast(ChangeVoteCast),
    /// See [`ChangeDecided`].
    ChangeDecided(ChangeDecided),
    /// See [`ChangeScheduled`].
    ChangeScheduled(ChangeScheduled),
    /// See [`ChangeCancelled`].
    ChangeCancelled(ChangeCancelled),
    /// See [`ChangeTaskAdded`].
    ChangeTaskAdded(ChangeTaskAdded),
    /// See [`ChangeTaskAssigned`].
    ChangeTaskAssigned(ChangeTaskAssigned),
    /// See [`ChangeTaskClosed`].
    ChangeTaskClosed(ChangeTaskClosed),
    /// See [`ChangeTasksReordered`].
    ChangeTasksReordered(ChangeTasksReordered),
}

impl ChangeEvent {
    /// Every `event_type` of this aggregate.
    pub const EVENT_TYPES: &'static [&'static str] = &[
        "ChangeCreated",
        "ChangeUpdated",
        "ChangeStatusChanged",
        "ChangeVoteCast",
        "ChangeDecided",
        "ChangeScheduled",
        "ChangeCancelled",
        "ChangeTaskAdded",
        "ChangeTaskAssigned",
        "ChangeTaskClosed",
        "ChangeTasksReordered",
    ];

    /// Who caused the event.
    pub fn actor(&self) -> Actor {
        match self {
            Self::ChangeCreated(e) => e.actor,
            Self::ChangeUpdated(e) => e.actor,
            Self::ChangeStatusChanged(e) => e.actor,
            Self::ChangeVoteCast(e) => Actor::User(e.approver),
            Self::ChangeDecided(e) => e.actor,
            Self::ChangeScheduled(e) => e.actor,
            Self::ChangeCancelled(e) => e.actor,
            Self::ChangeTaskAdded(e) => e.actor,
            Self::ChangeTaskAssigned(e) => e.actor,
            Self::ChangeTaskClosed(e) => e.actor,
            Self::ChangeTasksReordered(e) => e.actor,
        }
    }

    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::ChangeCreated(e) => e.at,
            Self::ChangeUpdated(e) => e.at,
            Self::ChangeStatusChanged(e) => e.at,
            Self::ChangeVoteCast(e) => e.at,
            Self::ChangeDecided(e) => e.at,
            Self::ChangeScheduled(e) => e.at,
            Self::ChangeCancelled(e) => e.at,
            Self::ChangeTaskAdded(e) => e.at,
            Self::ChangeTaskAssigned(e) => e.at,
            Self::ChangeTaskClosed(e) => e.at,
            Self::ChangeTasksReordered(e) => e.at,
        }
    }
}

impl DomainEvent for ChangeEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::ChangeCreated(_) => "ChangeCreated",
            Self::ChangeUpdated(_) => "ChangeUpdated",
            Self::ChangeStatusChanged(_) => "ChangeStatusChanged",
            Self::ChangeVoteCast(_) => "ChangeVoteCast",
            Self::ChangeDecided(_) => "ChangeDecided",
            Self::ChangeScheduled(_) => "ChangeScheduled",
            Self::ChangeCancelled(_) => "ChangeCancelled",
            Self::ChangeTaskAdded(_) => "ChangeTaskAdded",
            Self::ChangeTaskAssigned(_) => "ChangeTaskAssigned",
            Self::ChangeTaskClosed(_) => "ChangeTaskClosed",
            Self::ChangeTasksReordered(_) => "ChangeTasksReordered",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

/// A vote of the current round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    /// The approver.
    pub approver: UserId,
    /// The vote.
    pub decision: VoteDecision,
    /// Why.
    pub comment: ReasonText,
    /// When.
    pub at: DateTime<Utc>,
}

/// A task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeTask {
    /// Id.
    pub id: ChangeTaskId,
    /// Title.
    pub title: Title,
    /// Assignee.
    pub assignee_id: Option<UserId>,
    /// Status.
    pub status: TaskStatus,
    /// When closed.
    pub closed_at: Option<DateTime<Utc>>,
}

/// The state of a change (its fields are the read model's columns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRequest {
    /// Id.
    pub id: ChangeId,
    /// Title.
    pub title: Title,
    /// Description.
    pub description: Description,
    /// Type.
    pub change_type: ChangeType,
    /// Status.
    pub status: ChangeStatus,
    /// Risk.
    pub risk: Risk,
    /// Window start.
    pub planned_start: Option<DateTime<Utc>>,
    /// Window end.
    pub planned_end: Option<DateTime<Utc>>,
    /// CIs.
    pub ci_ids: Vec<CiId>,
    /// Incidents.
    pub incident_ids: Vec<IncidentId>,
    /// Approvers.
    pub approvers: Vec<UserId>,
    /// Quorum.
    pub quorum: Quorum,
    /// Rejection policy.
    pub on_rejection: RejectionPolicy,
    /// The approval round (1 for the first).
    pub approval_round: u32,
    /// The current round's votes.
    pub votes: Vec<Vote>,
    /// When the current round approved it.
    pub approved_at: Option<DateTime<Utc>>,
    /// Tasks, in order.
    pub tasks: Vec<ChangeTask>,
    /// The conflicts overridden when it was scheduled.
    pub overridden_conflicts: Vec<ChangeId>,
    /// Why they were overridden.
    pub override_reason: Option<ReasonText>,
    /// When scheduled.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// When closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// When cancelled.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Why cancelled.
    pub cancel_reason: Option<ReasonText>,
    /// When recorded.
    pub created_at: DateTime<Utc>,
    /// Who recorded it.
    pub created_by: Actor,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
    /// Who last changed it.
    pub updated_by: Actor,
}

fn check_window(
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) -> Result<(), ChangeError> {
    match (start, end) {
        (Some(s), Some(e)) if e <= s => Err(ChangeError::InvalidWindow),
        _ => Ok(()),
    }
}

impl ChangeRequest {
    /// The status after `action`, or why it is rejected (see [`next_status`]).
    pub fn next_status(&self, action: ChangeAction) -> Result<ChangeStatus, ChangeError> {
        next_status(self.change_type, self.status, action)
    }

    /// The actions the state machine allows now.
    pub fn allowed_actions(&self) -> Vec<ChangeAction> {
        ChangeAction::ALL
            .iter()
            .copied()
            .filter(|a| self.next_status(*a).is_ok())
            .collect()
    }

    fn task(&self, id: ChangeTaskId) -> Result<&ChangeTask, ChangeError> {
        self.tasks
            .iter()
            .find(|t| t.id == id)
            .ok_or(ChangeError::TaskNotFound(id))
    }

    fn moved(
        &self,
        action: ChangeAction,
        actor: Actor,
        at: DateTime<Utc>,
    ) -> Result<ChangeEvent, ChangeError> {
        let to = self.next_status(action)?;
        Ok(ChangeEvent::ChangeStatusChanged(ChangeStatusChanged {
            action,
            from: self.status,
            to,
            actor,
            at,
        }))
    }

    fn decide(
        &self,
        command: ChangeCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<ChangeEvent>, ChangeError> {
        use ChangeCommand as C;
        use ChangeEvent as E;
        let action = command.action();
        match command {
            C::Create { .. } => Err(ChangeError::AlreadyExists),
            C::Update {
                title,
                description,
                risk,
                planned_start,
                planned_end,
                ci_ids,
                incident_ids,
                approvers,
                quorum,
                on_rejection,
                actor,
            } => {
                self.next_status(action)?;
                let changes = ChangeChanges {
                    title: title.and_then(|v| Change::between(self.title.clone(), v)),
                    description: description
                        .and_then(|v| Change::between(self.description.clone(), v)),
                    risk: risk.and_then(|v| Change::between(self.risk, v)),
                    planned_start: planned_start
                        .and_then(|v| Change::between(self.planned_start, v)),
                    planned_end: planned_end.and_then(|v| Change::between(self.planned_end, v)),
                    ci_ids: ci_ids.and_then(|v| Change::between(self.ci_ids.clone(), v)),
                    incident_ids: incident_ids
                        .and_then(|v| Change::between(self.incident_ids.clone(), v)),
                    approvers: approvers.and_then(|v| Change::between(self.approvers.clone(), v)),
                    quorum: quorum.and_then(|v| Change::between(self.quorum, v)),
                    on_rejection: on_rejection.and_then(|v| Change::between(self.on_rejection, v)),
                };
                if changes.is_empty() {
                    return Ok(Vec::new());
                }
                let start = changes
                    .planned_start
                    .as_ref()
                    .map_or(self.planned_start, |c| c.new);
                let end = changes
                    .planned_end
                    .as_ref()
                    .map_or(self.planned_end, |c| c.new);
                check_window(start, end)?;
                let cab_changed = changes.approvers.is_some()
                    || changes.quorum.is_some()
                    || changes.on_rejection.is_some();
                if cab_changed && self.status == ChangeStatus::Authorize {
                    if !self.votes.is_empty() || self.approved_at.is_some() {
                        return Err(ChangeError::ApprovalInProgress);
                    }
                    if changes.approvers.as_ref().is_some_and(|c| c.new.is_empty()) {
                        return Err(ChangeError::NoApprovers);
                    }
                }
                Ok(vec![E::ChangeUpdated(ChangeUpdated {
                    changes,
                    actor,
                    at: now,
                })])
            }
            C::Submit { actor } => {
                let event = self.moved(action, actor, now)?;
                if self.change_type == ChangeType::Emergency && self.approvers.is_empty() {
                    return Err(ChangeError::NoApprovers);
                }
                Ok(vec![event])
            }
            C::CompleteAssessment { actor } => {
                let event = self.moved(action, actor, now)?;
                if self.approvers.is_empty() {
                    return Err(ChangeError::NoApprovers);
                }
                Ok(vec![event])
            }
            C::Vote {
                approver,
                decision,
                comment,
            } => {
                self.next_status(action)?;
                if self.approved_at.is_some() {
                    return Err(ChangeError::AlreadyApproved);
                }
                if !self.approvers.contains(&approver) {
                    return Err(ChangeError::NotAnApprover(approver));
                }
                if self.votes.iter().any(|v| v.approver == approver) {
                    return Err(ChangeError::AlreadyVoted(approver));
                }
                let mut events = vec![E::ChangeVoteCast(ChangeVoteCast {
                    approver,
                    decision,
                    comment,
                    round: self.approval_round,
                    at: now,
                })];
                let count = |d: VoteDecision| {
                    self.votes.iter().filter(|v| v.decision == d).count()
                        + usize::from(decision == d)
                };
                let (approves, rejects) =
                    (count(VoteDecision::Approve), count(VoteDecision::Reject));
                if let Some(outcome) = tally(self.quorum, self.approvers.len(), approves, rejects) {
                    let to = match (outcome, self.on_rejection, self.change_type) {
                        (Outcome::Approved, _, _) => ChangeStatus::Authorize,
                        (Outcome::Rejected, RejectionPolicy::Cancel, _) => ChangeStatus::Cancelled,
                        (Outcome::Rejected, RejectionPolicy::Reassess, ChangeType::Normal) => {
                            ChangeStatus::Assess
                        }
                        (Outcome::Rejected, RejectionPolicy::Reassess, _) => ChangeStatus::Draft,
                    };
                    events.push(E::ChangeDecided(ChangeDecided {
                        outcome,
                        round: self.approval_round,
                        approves: u32::try_from(approves).unwrap_or(u32::MAX),
                        rejects: u32::try_from(rejects).unwrap_or(u32::MAX),
                        quorum: self.quorum,
                        to,
                        actor: Actor::User(approver),
                        at: now,
                    }));
                }
                Ok(events)
            }
            C::Schedule {
                conflicts,
                override_reason,
                actor,
            } => {
                self.next_status(action)?;
                if self.change_type != ChangeType::Standard && self.approved_at.is_none() {
                    return Err(ChangeError::NotApproved);
                }
                let (Some(planned_start), Some(planned_end)) =
                    (self.planned_start, self.planned_end)
                else {
                    return Err(ChangeError::WindowRequired);
                };
                if !conflicts.is_empty() && override_reason.is_none() {
                    return Err(ChangeError::Conflicts(conflicts));
                }
                Ok(vec![E::ChangeScheduled(ChangeScheduled {
                    from: self.status,
                    planned_start,
                    planned_end,
                    override_reason: if conflicts.is_empty() {
                        None
                    } else {
                        override_reason
                    },
                    conflicts,
                    actor,
                    at: now,
                })])
            }
            C::StartImplementation { actor } | C::Close { actor } => {
                Ok(vec![self.moved(action, actor, now)?])
            }
            C::CompleteImplementation { actor } => {
                let event = self.moved(action, actor, now)?;
                let open = self
                    .tasks
                    .iter()
                    .filter(|t| t.status == TaskStatus::Open)
                    .count();
                if open > 0 {
                    return Err(ChangeError::OpenTasks(open));
                }
                Ok(vec![event])
            }
            C::Cancel { reason, actor } => {
                self.next_status(action)?;
                Ok(vec![E::ChangeCancelled(ChangeCancelled {
                    from: self.status,
                    reason,
                    actor,
                    at: now,
                })])
            }
            C::AddTask {
                task_id,
                title,
                assignee_id,
                actor,
            } => {
                self.next_status(action)?;
                if self.tasks.iter().any(|t| t.id == task_id) {
                    return Err(ChangeError::DuplicateTask(task_id));
                }
                Ok(vec![E::ChangeTaskAdded(ChangeTaskAdded {
                    task_id,
                    title,
                    assignee_id,
                    actor,
                    at: now,
                })])
            }
            C::AssignTask {
                task_id,
                assignee_id,
                actor,
            } => {
                self.next_status(action)?;
                let task = self.task(task_id)?;
                if task.status == TaskStatus::Closed {
                    return Err(ChangeError::TaskClosed(task_id));
                }
                if task.assignee_id == assignee_id {
                    return Ok(Vec::new());
                }
                Ok(vec![E::ChangeTaskAssigned(ChangeTaskAssigned {
                    task_id,
                    previous_assignee_id: task.assignee_id,
                    assignee_id,
                    actor,
                    at: now,
                })])
            }
            C::CloseTask { task_id, actor } => {
                self.next_status(action)?;
                if self.task(task_id)?.status == TaskStatus::Closed {
                    return Ok(Vec::new());
                }
                Ok(vec![E::ChangeTaskClosed(ChangeTaskClosed {
                    task_id,
                    actor,
                    at: now,
                })])
            }
            C::ReorderTasks { order, actor } => {
                self.next_status(action)?;
                let mut given = order.clone();
                given.sort_unstable();
                given.dedup();
                let mut have: Vec<ChangeTaskId> = self.tasks.iter().map(|t| t.id).collect();
                have.sort_unstable();
                if given.len() != order.len() || given != have {
                    return Err(ChangeError::InvalidTaskOrder);
                }
                let current: Vec<ChangeTaskId> = self.tasks.iter().map(|t| t.id).collect();
                if current == order {
                    return Ok(Vec::new());
                }
                Ok(vec![E::ChangeTasksReordered(ChangeTasksReordered {
                    order,
                    actor,
                    at: now,
                })])
            }
        }
    }

    fn apply(&mut self, event: &ChangeEvent) {
        self.updated_at = event.at();
        self.updated_by = event.actor();
        match event {
            ChangeEvent::ChangeCreated(_) => {}
            ChangeEvent::ChangeUpdated(e) => {
                let c = &e.changes;
                if let Some(x) = &c.title {
                    self.title = x.new.clone();
                }
                if let Some(x) = &c.description {
                    self.description = x.new.clone();
                }
                if let Some(x) = &c.risk {
                    self.risk = x.new;
                }
                if let Some(x) = &c.planned_start {
                    self.planned_start = x.new;
                }
                if let Some(x) = &c.planned_end {
                    self.planned_end = x.new;
                }
                if let Some(x) = &c.ci_ids {
                    self.ci_ids = x.new.clone();
                }
                if let Some(x) = &c.incident_ids {
                    self.incident_ids = x.new.clone();
                }
                if let Some(x) = &c.approvers {
                    self.approvers = x.new.clone();
                }
                if let Some(x) = &c.quorum {
                    self.quorum = x.new;
                }
                if let Some(x) = &c.on_rejection {
                    self.on_rejection = x.new;
                }
            }
            ChangeEvent::ChangeStatusChanged(e) => {
                self.status = e.to;
                if e.to == ChangeStatus::Closed {
                    self.closed_at = Some(e.at);
                }
            }
            ChangeEvent::ChangeVoteCast(e) => self.votes.push(Vote {
                approver: e.approver,
                decision: e.decision,
                comment: e.comment.clone(),
                at: e.at,
            }),
            ChangeEvent::ChangeDecided(e) => match e.outcome {
                Outcome::Approved => self.approved_at = Some(e.at),
                Outcome::Rejected => {
                    self.status = e.to;
                    if e.to == ChangeStatus::Cancelled {
                        self.cancelled_at = Some(e.at);
                    } else {
                        // A new round after the rework.
                        self.votes.clear();
                        self.approval_round = self.approval_round.saturating_add(1);
                    }
                }
            },
            ChangeEvent::ChangeScheduled(e) => {
                self.status = ChangeStatus::Scheduled;
                self.scheduled_at = Some(e.at);
                self.overridden_conflicts = e.conflicts.clone();
                self.override_reason = e.override_reason.clone();
            }
            ChangeEvent::ChangeCancelled(e) => {
                self.status = ChangeStatus::Cancelled;
                self.cancelled_at = Some(e.at);
                self.cancel_reason = Some(e.reason.clone());
            }
            ChangeEvent::ChangeTaskAdded(e) => self.tasks.push(ChangeTask {
                id: e.task_id,
                title: e.title.clone(),
                assignee_id: e.assignee_id,
                status: TaskStatus::Open,
                closed_at: None,
            }),
            ChangeEvent::ChangeTaskAssigned(e) => {
                if let Some(t) = self.tasks.iter_mut().find(|t| t.id == e.task_id) {
                    t.assignee_id = e.assignee_id;
                }
            }
            ChangeEvent::ChangeTaskClosed(e) => {
                if let Some(t) = self.tasks.iter_mut().find(|t| t.id == e.task_id) {
                    t.status = TaskStatus::Closed;
                    t.closed_at = Some(e.at);
                }
            }
            ChangeEvent::ChangeTasksReordered(e) => {
                let mut reordered = Vec::with_capacity(self.tasks.len());
                for id in &e.order {
                    if let Some(pos) = self.tasks.iter().position(|t| t.id == *id) {
                        reordered.push(self.tasks.remove(pos));
                    }
                }
                // Anything the order did not name (cannot happen) keeps its place at the end.
                reordered.append(&mut self.tasks);
                self.tasks = reordered;
            }
        }
    }
}

/// The change aggregate: `None` until created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeAggregate {
    /// The change, once created.
    pub state: Option<ChangeRequest>,
}

impl Aggregate for ChangeAggregate {
    const STREAM_TYPE: &'static str = "change";
    type Command = ChangeCommand;
    type Event = ChangeEvent;
    type Error = ChangeError;

    fn decide(
        &self,
        command: ChangeCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<ChangeEvent>, ChangeError> {
        match (&self.state, command) {
            (Some(c), command) => c.decide(command, now),
            (
                None,
                ChangeCommand::Create {
                    id,
                    title,
                    description,
                    change_type,
                    risk,
                    planned_start,
                    planned_end,
                    ci_ids,
                    incident_ids,
                    approvers,
                    quorum,
                    on_rejection,
                    actor,
                },
            ) => {
                check_window(planned_start, planned_end)?;
                Ok(vec![ChangeEvent::ChangeCreated(ChangeCreated {
                    id,
                    title,
                    description,
                    change_type,
                    risk,
                    planned_start,
                    planned_end,
                    ci_ids,
                    incident_ids,
                    approvers,
                    quorum,
                    on_rejection,
                    actor,
                    at: now,
                })])
            }
            (None, _) => Err(ChangeError::NotFound),
        }
    }

    fn evolve(&mut self, event: &ChangeEvent) {
        match (self.state.as_mut(), event) {
            (Some(c), e) => c.apply(e),
            (None, ChangeEvent::ChangeCreated(e)) => {
                self.state = Some(ChangeRequest {
                    id: e.id,
                    title: e.title.clone(),
                    description: e.description.clone(),
                    change_type: e.change_type,
                    status: ChangeStatus::Draft,
                    risk: e.risk,
                    planned_start: e.planned_start,
                    planned_end: e.planned_end,
                    ci_ids: e.ci_ids.clone(),
                    incident_ids: e.incident_ids.clone(),
                    approvers: e.approvers.clone(),
                    quorum: e.quorum,
                    on_rejection: e.on_rejection,
                    approval_round: 1,
                    votes: Vec::new(),
                    approved_at: None,
                    tasks: Vec::new(),
                    overridden_conflicts: Vec::new(),
                    override_reason: None,
                    scheduled_at: None,
                    closed_at: None,
                    cancelled_at: None,
                    cancel_reason: None,
                    created_at: e.at,
                    created_by: e.actor,
                    updated_at: e.at,
                    updated_by: e.actor,
                });
            }
            (None, _) => {}
        }
    }
}

#[cfg(test)]
#[path = "change_request_tests.rs"]
mod tests;
