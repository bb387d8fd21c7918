//! The incident aggregate (`stream_type = "incident"`): commands, events, state and the
//! transition table.
//!
//! # Transition table
//!
//! Rows are actions, columns the current status. `→ x` moves to status `x`, `=` keeps the
//! status, `✗T` is rejected with [`IncidentError::InvalidTransition`] (`to` = the action's
//! target status) and `✗A` with [`IncidentError::ActionNotAllowed`].
//!
//! | action | new | assigned | in_progress | on_hold | resolved | closed | cancelled |
//! |---|---|---|---|---|---|---|---|
//! | `UpdateFields` | = | = | = | = | = | ✗A | ✗A |
//! | `Assign` | → assigned | = | = | = | ✗A | ✗A | ✗A |
//! | `StartWork` | → in_progress | → in_progress | ✗T | ✗T | ✗T | ✗T | ✗T |
//! | `PutOnHold` | ✗T | → on_hold | → on_hold | ✗T | ✗T | ✗T | ✗T |
//! | `Resume` | ✗T | ✗T | ✗T | → held-from | ✗T | ✗T | ✗T |
//! | `Resolve` | ✗T | ✗T | → resolved | → resolved | ✗T | ✗T | ✗T |
//! | `Reopen` | ✗T | ✗T | ✗T | ✗T | → in_progress | ✗T | ✗T |
//! | `Close` | ✗T | ✗T | ✗T | ✗T | → closed | ✗T | ✗T |
//! | `Cancel` | → cancelled | → cancelled | → cancelled | → cancelled | ✗T | ✗T | ✗T |
//! | `AddWorkNote` | = | = | = | = | = | ✗A | ✗A |
//! | `AddAttachment` | = | = | = | = | = | ✗A | ✗A |
//! | `LinkExternal` | = | = | = | = | = | = | = |
//!
//! Decisions (where the product spec leaves room):
//! - **Create keeps `new`** even when it names a team or an assignee: pre-routing at creation
//!   (by a requester or a routing rule) is not a response by the desk. `Assign` (even with the
//!   same values) or `StartWork` moves it on.
//! - **Assigning a team only** also moves `new → assigned`: the incident has been routed.
//!   Reassigning in `assigned`, `in_progress` or `on_hold` keeps the status. `Assign` cannot
//!   clear an assignee or team (both are "keep if absent").
//! - **`StartWork` is allowed from `new`** as well as `assigned`, so an agent can pick up an
//!   incident directly (first-contact resolution is `Create → StartWork → Resolve`). It does not
//!   change the assignee; the command layer may send `Assign` first to self-assign.
//! - **`Resume` returns to the status the incident was held from** (`assigned` or
//!   `in_progress`), so holding an incident nobody had started does not pretend work began.
//! - **`Resolve` is allowed from `in_progress` and `on_hold`** (the caller answered while we
//!   were waiting); from `new`/`assigned`, work must be started first.
//! - **`Reopen`** (resolved → in_progress) clears `resolution` and `resolved_at`, increments
//!   `reopen_count`; the SLA resolution clock starts a new cycle.
//! - `UpdateFields`, work notes and attachments are allowed in `resolved` (corrections and
//!   caller feedback before closure), never in the final states.
//! - A status action that would not move (e.g. `StartWork` while `in_progress`) is an
//!   `InvalidTransition`, not a silent no-op; a field change that changes nothing emits nothing.
//!
//! # Priority
//! If `Create` has no priority, it is derived from the [`PriorityMatrix`] passed in the
//! command (the tenant's). An explicit priority sets `priority_overridden`. On `UpdateFields`,
//! a change of impact or urgency re-derives the priority unless it is overridden;
//! `priority: Some(None)` drops the override and re-derives.
//!
//! # Response
//! `responded_at` is recorded by a separate [`IncidentResponded`] event, emitted once, right
//! after the first transition out of `new` (`Assign`, `StartWork`) or the first public work
//! note whose author acts as an agent (`by_agent`, known to the command layer from the role).
//! Cancelling a `new` incident is not a response.
//!
//! # External links
//! The integration bus (ADR 0016) records the record it created for an incident in another
//! system (a Jira issue) with [`IncidentCommand::LinkExternal`], a system action allowed in
//! every status (the issue may be created after the incident was closed, if the bus lags). One
//! link per system: linking the same key again emits nothing, another key replaces the link
//! ([`IncidentExternalLinked::previous_key`]).

use crate::actor::Actor;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::change::{Change, FieldChange};
use crate::ids::{AttachmentId, CategoryId, CiId, IncidentId, TeamId, UserId, WorkNoteId};
use crate::priority::PriorityMatrix;
use crate::sla::policy::SlaMetric;
use crate::sla::timer::{
    SLA_ACTOR, SlaBreached, SlaState, SlaTimerRescheduled, SlaTimerStarted, SlaTimerStopped,
    SlaWarningIssued, ThresholdError, record_threshold,
};
use crate::values::{
    ContentType, Description, ExternalKey, ExternalSystem, ExternalUrl, FileName, HoldReason,
    Impact, IncidentNumber, IncidentStatus, Priority, ReasonText, ResolutionText, Sha256Hex, Title,
    Urgency, WorkNoteBody, WorkNoteType, str_enum,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The history field of a metric's due time.
fn due_field(metric: SlaMetric) -> &'static str {
    match metric {
        SlaMetric::Response => "response_due_at",
        SlaMetric::Resolution => "resolution_due_at",
    }
}

str_enum!(
    /// What a command does, for error messages, permissions and "which buttons to show".
    IncidentAction, field = "action" {
        /// [`IncidentCommand::Create`].
        Create => "create",
        /// [`IncidentCommand::UpdateFields`].
        Update => "update",
        /// [`IncidentCommand::Assign`].
        Assign => "assign",
        /// [`IncidentCommand::StartWork`].
        StartWork => "start_work",
        /// [`IncidentCommand::PutOnHold`].
        PutOnHold => "put_on_hold",
        /// [`IncidentCommand::Resume`].
        Resume => "resume",
        /// [`IncidentCommand::Resolve`].
        Resolve => "resolve",
        /// [`IncidentCommand::Reopen`].
        Reopen => "reopen",
        /// [`IncidentCommand::Close`].
        Close => "close",
        /// [`IncidentCommand::Cancel`].
        Cancel => "cancel",
        /// [`IncidentCommand::AddWorkNote`].
        AddWorkNote => "add_work_note",
        /// [`IncidentCommand::AddAttachment`].
        AddAttachment => "add_attachment",
        /// [`IncidentCommand::RecordSlaThreshold`] (the SLA scheduler only).
        RecordSlaThreshold => "record_sla_threshold",
        /// [`IncidentCommand::RefreshSla`] (the system only).
        RefreshSla => "refresh_sla",
        /// [`IncidentCommand::LinkExternal`] (the integration bus only).
        LinkExternal => "link_external",
    }
);

impl IncidentAction {
    /// Whether only the system issues this action (the SLA clock, the integration bus), never
    /// a user.
    pub fn is_system(self) -> bool {
        matches!(
            self,
            Self::RecordSlaThreshold | Self::RefreshSla | Self::LinkExternal
        )
    }

    /// The actions a user can take, in declaration order.
    pub fn user_actions() -> impl Iterator<Item = IncidentAction> {
        Self::ALL.iter().copied().filter(|a| !a.is_system())
    }
}

str_enum!(
    /// What stopped the response clock.
    ResponseTrigger, field = "trigger" {
        /// The first transition out of `new`.
        StatusChange => "status_change",
        /// The first public work note by an agent.
        PublicWorkNote => "public_work_note",
    }
);

/// Why an incident command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncidentError {
    /// The command targets an incident that has not been created.
    #[error("incident not found")]
    NotFound,
    /// `Create` on an incident that already exists.
    #[error("incident already exists")]
    AlreadyExists,
    /// The status change is not in the transition table.
    #[error("cannot move an incident from {from} to {to}")]
    InvalidTransition {
        /// The current status.
        from: IncidentStatus,
        /// The status the command would move to.
        to: IncidentStatus,
    },
    /// A command that does not move the status is not allowed in the current status.
    #[error("cannot {action} an incident that is {status}")]
    ActionNotAllowed {
        /// The rejected action.
        action: IncidentAction,
        /// The current status.
        status: IncidentStatus,
    },
    /// `Assign` with neither an assignee nor a team.
    #[error("assign needs an assignee_id or a team_id")]
    EmptyAssignment,
    /// A work note with this id already exists on the incident.
    #[error("work note {0} already exists")]
    DuplicateWorkNote(WorkNoteId),
    /// An attachment with this id already exists on the incident.
    #[error("attachment {0} already exists")]
    DuplicateAttachment(AttachmentId),
    /// The SLA scheduler's threshold could not be recorded.
    #[error(transparent)]
    Sla(#[from] ThresholdError),
}

impl IncidentError {
    /// A stable machine-readable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::InvalidTransition { .. } => "invalid_transition",
            Self::ActionNotAllowed { .. } => "action_not_allowed",
            Self::EmptyAssignment => "empty_assignment",
            Self::DuplicateWorkNote(_) => "duplicate_work_note",
            Self::DuplicateAttachment(_) => "duplicate_attachment",
            Self::Sla(ThresholdError::NotDue { .. }) => "sla_threshold_not_due",
            Self::Sla(ThresholdError::NotRunning { .. }) => "sla_timer_not_running",
            Self::Sla(ThresholdError::UnknownThreshold(_)) => "sla_unknown_threshold",
        }
    }
}

/// The status an incident in `from` ends in after `action`, or the error rejecting it: the
/// transition table of the module docs as a function. `held_from` (the status an `on_hold`
/// incident was held from) is consulted only for `Resume`.
pub fn next_status(
    from: IncidentStatus,
    action: IncidentAction,
    held_from: Option<IncidentStatus>,
) -> Result<IncidentStatus, IncidentError> {
    use IncidentAction as A;
    use IncidentStatus as S;
    let not_allowed = IncidentError::ActionNotAllowed {
        action,
        status: from,
    };
    let invalid = |to| IncidentError::InvalidTransition { from, to };
    match action {
        A::Create => Err(IncidentError::AlreadyExists),
        A::RecordSlaThreshold | A::RefreshSla | A::LinkExternal => Ok(from),
        A::Update | A::AddWorkNote | A::AddAttachment => {
            if from.is_final() {
                Err(not_allowed)
            } else {
                Ok(from)
            }
        }
        A::Assign => match from {
            S::New => Ok(S::Assigned),
            S::Assigned | S::InProgress | S::OnHold => Ok(from),
            S::Resolved | S::Closed | S::Cancelled => Err(not_allowed),
        },
        A::StartWork => match from {
            S::New | S::Assigned => Ok(S::InProgress),
            _ => Err(invalid(S::InProgress)),
        },
        A::PutOnHold => match from {
            S::Assigned | S::InProgress => Ok(S::OnHold),
            _ => Err(invalid(S::OnHold)),
        },
        A::Resume => match from {
            S::OnHold => Ok(held_from.unwrap_or(S::InProgress)),
            _ => Err(invalid(S::InProgress)),
        },
        A::Resolve => match from {
            S::InProgress | S::OnHold => Ok(S::Resolved),
            _ => Err(invalid(S::Resolved)),
        },
        A::Reopen => match from {
            S::Resolved => Ok(S::InProgress),
            _ => Err(invalid(S::InProgress)),
        },
        A::Close => match from {
            S::Resolved => Ok(S::Closed),
            _ => Err(invalid(S::Closed)),
        },
        A::Cancel => {
            if from.is_open() {
                Ok(S::Cancelled)
            } else {
                Err(invalid(S::Cancelled))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

/// A request to change an incident. Every command carries who issues it.
#[derive(Debug, Clone, PartialEq)]
pub enum IncidentCommand {
    /// Log a new incident (status `new`).
    Create {
        /// The new incident's id (= stream id).
        id: IncidentId,
        /// The number allocated by the command layer from the tenant's sequence.
        number: IncidentNumber,
        /// Title.
        title: Title,
        /// Description (may be empty).
        description: Description,
        /// Impact.
        impact: Impact,
        /// Urgency.
        urgency: Urgency,
        /// An explicit priority; `None` derives it from `matrix`.
        priority: Option<Priority>,
        /// The tenant's priority matrix.
        matrix: PriorityMatrix,
        /// Category.
        category_id: Option<CategoryId>,
        /// Assignment group (recorded; the status stays `new`).
        team_id: Option<TeamId>,
        /// Assignee (recorded; the status stays `new`).
        assignee_id: Option<UserId>,
        /// The person affected / who reported it.
        reporter_id: UserId,
        /// The configuration item it affects (checked to exist by the command layer).
        ci_id: Option<CiId>,
        /// Who logs it.
        actor: Actor,
    },
    /// Edit fields; `None` keeps a field.
    UpdateFields {
        /// New title.
        title: Option<Title>,
        /// New description (`Some(empty)` clears it).
        description: Option<Description>,
        /// New impact.
        impact: Option<Impact>,
        /// New urgency.
        urgency: Option<Urgency>,
        /// `Some(Some(p))` sets an explicit priority; `Some(None)` drops the override and
        /// derives it from the matrix; `None` keeps the priority mode.
        priority: Option<Option<Priority>>,
        /// `Some(Some(id))` sets, `Some(None)` clears the category.
        category_id: Option<Option<CategoryId>>,
        /// `Some(Some(id))` sets, `Some(None)` clears the affected configuration item.
        ci_id: Option<Option<CiId>>,
        /// The tenant's priority matrix, for re-derivation.
        matrix: PriorityMatrix,
        /// Who edits.
        actor: Actor,
    },
    /// Route the incident; at least one of the two must be given, an absent one is kept.
    Assign {
        /// New assignee.
        assignee_id: Option<UserId>,
        /// New assignment group.
        team_id: Option<TeamId>,
        /// Who assigns.
        actor: Actor,
    },
    /// Start working on it.
    StartWork {
        /// Who starts.
        actor: Actor,
    },
    /// Wait for someone else (pauses the SLA clock).
    PutOnHold {
        /// What we wait for.
        reason: HoldReason,
        /// Free text.
        comment: Option<ReasonText>,
        /// Who holds it.
        actor: Actor,
    },
    /// Stop waiting; back to the status it was held from.
    Resume {
        /// Who resumes.
        actor: Actor,
    },
    /// Mark it fixed.
    Resolve {
        /// How it was fixed.
        resolution: ResolutionText,
        /// Who resolves.
        actor: Actor,
    },
    /// The fix did not hold: back to `in_progress`.
    Reopen {
        /// Why.
        reason: ReasonText,
        /// Who reopens.
        actor: Actor,
    },
    /// Confirm the resolution (final).
    Close {
        /// Who closes.
        actor: Actor,
    },
    /// Withdraw the incident (final).
    Cancel {
        /// Why.
        reason: ReasonText,
        /// Who cancels.
        actor: Actor,
    },
    /// Add a work note.
    AddWorkNote {
        /// The note's id (chosen by the command layer).
        note_id: WorkNoteId,
        /// Text.
        body: WorkNoteBody,
        /// Kind.
        note_type: WorkNoteType,
        /// Visible to the requester.
        is_public: bool,
        /// Whether the author acts as an agent (operator/manager/admin); a public note by an
        /// agent counts as the response. The command layer knows the author's role.
        by_agent: bool,
        /// Who writes it.
        author: Actor,
    },
    /// Record an uploaded file (the bytes live in content-addressed storage).
    AddAttachment {
        /// The attachment's id.
        attachment_id: AttachmentId,
        /// File name.
        filename: FileName,
        /// MIME type.
        content_type: ContentType,
        /// Size in bytes (the size limit is enforced by the upload endpoint).
        size_bytes: u64,
        /// Content address.
        sha256: Sha256Hex,
        /// Who uploads.
        uploaded_by: Actor,
    },
    /// The SLA scheduler records that a threshold (50/75/90 % or the 100 % breach) of a timer
    /// was crossed. Recorded at most once per metric, cycle and threshold; a repeat is a no-op.
    RecordSlaThreshold {
        /// Metric.
        metric: SlaMetric,
        /// Cycle.
        cycle: u32,
        /// 50, 75, 90 or 100.
        threshold: u8,
    },
    /// Re-evaluate the SLA timers against the current policies and calendars (after a policy or
    /// calendar change). Emits nothing itself; the command layer's SLA follow-up does the work.
    RefreshSla,
    /// Record the incident's record in an external system (the integration bus, after it
    /// created a Jira issue). Allowed in every status; the same key again is a no-op.
    LinkExternal {
        /// The system.
        system: ExternalSystem,
        /// The record's key there, e.g. `OPS-42`.
        key: ExternalKey,
        /// A link to it, if known.
        url: Option<ExternalUrl>,
        /// Who records it (the bus: `system`).
        actor: Actor,
    },
}

impl IncidentCommand {
    /// What the command does.
    pub fn action(&self) -> IncidentAction {
        match self {
            Self::Create { .. } => IncidentAction::Create,
            Self::UpdateFields { .. } => IncidentAction::Update,
            Self::Assign { .. } => IncidentAction::Assign,
            Self::StartWork { .. } => IncidentAction::StartWork,
            Self::PutOnHold { .. } => IncidentAction::PutOnHold,
            Self::Resume { .. } => IncidentAction::Resume,
            Self::Resolve { .. } => IncidentAction::Resolve,
            Self::Reopen { .. } => IncidentAction::Reopen,
            Self::Close { .. } => IncidentAction::Close,
            Self::Cancel { .. } => IncidentAction::Cancel,
            Self::AddWorkNote { .. } => IncidentAction::AddWorkNote,
            Self::AddAttachment { .. } => IncidentAction::AddAttachment,
            Self::RecordSlaThreshold { .. } => IncidentAction::RecordSlaThreshold,
            Self::RefreshSla => IncidentAction::RefreshSla,
            Self::LinkExternal { .. } => IncidentAction::LinkExternal,
        }
    }

    /// Who issues the command.
    pub fn actor(&self) -> Actor {
        match self {
            Self::Create { actor, .. }
            | Self::UpdateFields { actor, .. }
            | Self::Assign { actor, .. }
            | Self::StartWork { actor }
            | Self::PutOnHold { actor, .. }
            | Self::Resume { actor }
            | Self::Resolve { actor, .. }
            | Self::Reopen { actor, .. }
            | Self::Close { actor }
            | Self::Cancel { actor, .. }
            | Self::LinkExternal { actor, .. } => *actor,
            Self::AddWorkNote { author, .. } => *author,
            Self::AddAttachment { uploaded_by, .. } => *uploaded_by,
            Self::RecordSlaThreshold { .. } | Self::RefreshSla => SLA_ACTOR,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// An incident was logged. Its status is `new`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentCreated {
    /// Id.
    pub id: IncidentId,
    /// Human-facing number.
    pub number: IncidentNumber,
    /// Title.
    pub title: Title,
    /// Description.
    pub description: Description,
    /// Impact.
    pub impact: Impact,
    /// Urgency.
    pub urgency: Urgency,
    /// Priority (explicit or derived).
    pub priority: Priority,
    /// Whether the priority was set explicitly (and so is not re-derived).
    pub priority_overridden: bool,
    /// Category.
    pub category_id: Option<CategoryId>,
    /// Assignment group.
    pub team_id: Option<TeamId>,
    /// Assignee.
    pub assignee_id: Option<UserId>,
    /// Reporter.
    pub reporter_id: UserId,
    /// The configuration item it affects (absent in events recorded before the CMDB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_id: Option<CiId>,
    /// Who logged it.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// The field changes of one [`IncidentUpdated`]; absent = unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentChanges {
    /// Title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Change<Title>>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Change<Description>>,
    /// Impact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<Change<Impact>>,
    /// Urgency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Change<Urgency>>,
    /// Priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Change<Priority>>,
    /// Whether the priority is explicit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_overridden: Option<Change<bool>>,
    /// Category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_id: Option<Change<Option<CategoryId>>>,
    /// Affected configuration item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_id: Option<Change<Option<CiId>>>,
}

impl IncidentChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Fields were edited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentUpdated {
    /// What changed, old and new.
    pub changes: IncidentChanges,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// The incident was (re)routed. Carries the full assignment after the event and before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentAssigned {
    /// Status before (`new` → `assigned`; otherwise unchanged).
    pub from: IncidentStatus,
    /// Status after.
    pub to: IncidentStatus,
    /// Assignee before.
    pub previous_assignee_id: Option<UserId>,
    /// Assignee after.
    pub assignee_id: Option<UserId>,
    /// Team before.
    pub previous_team_id: Option<TeamId>,
    /// Team after.
    pub team_id: Option<TeamId>,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// The desk first responded: the response SLA clock stops at `at`. Emitted at most once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentResponded {
    /// What counted as the response.
    pub trigger: ResponseTrigger,
    /// Who responded.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Work started: status → `in_progress`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentWorkStarted {
    /// Status before (`new` or `assigned`).
    pub from: IncidentStatus,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Put on hold: status → `on_hold`, the SLA clock pauses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentPutOnHold {
    /// Status before (and after `Resume`).
    pub from: IncidentStatus,
    /// What we wait for.
    pub reason: HoldReason,
    /// Free text.
    pub comment: Option<ReasonText>,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Resumed from hold: status → `to` (the status held from), the SLA clock runs again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentResumed {
    /// Status after.
    pub to: IncidentStatus,
    /// The hold reason that ended.
    pub hold_reason: Option<HoldReason>,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Resolved: status → `resolved`, the resolution SLA clock stops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentResolved {
    /// Status before.
    pub from: IncidentStatus,
    /// How it was fixed.
    pub resolution: ResolutionText,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Reopened: `resolved` → `in_progress`; a new resolution cycle starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentReopened {
    /// Why.
    pub reason: ReasonText,
    /// The resolution that did not hold (cleared by this event).
    pub previous_resolution: Option<ResolutionText>,
    /// The reopen count after this event (1 for the first reopen).
    pub reopen_count: u32,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Closed: `resolved` → `closed` (final).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentClosed {
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Cancelled (final); SLA timers are cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentCancelled {
    /// Status before.
    pub from: IncidentStatus,
    /// Why.
    pub reason: ReasonText,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A work note was added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentWorkNoteAdded {
    /// Note id.
    pub note_id: WorkNoteId,
    /// Text.
    pub body: WorkNoteBody,
    /// Kind.
    pub note_type: WorkNoteType,
    /// Visible to the requester.
    pub is_public: bool,
    /// Written by an agent.
    pub by_agent: bool,
    /// Who wrote it.
    pub author: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// An attachment was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentAttachmentAdded {
    /// Attachment id.
    pub attachment_id: AttachmentId,
    /// File name.
    pub filename: FileName,
    /// MIME type.
    pub content_type: ContentType,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Content address.
    pub sha256: Sha256Hex,
    /// Who uploaded it.
    pub uploaded_by: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// The incident was linked to its record in an external system (e.g. a Jira issue).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentExternalLinked {
    /// The system.
    pub system: ExternalSystem,
    /// The record's key there.
    pub key: ExternalKey,
    /// A link to it.
    pub url: Option<ExternalUrl>,
    /// The key this link replaces (another record in the same system), if any.
    pub previous_key: Option<ExternalKey>,
    /// Who linked it.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Everything that can happen to an incident. Stored as `{"type": "<variant>", "data": {…}}`;
/// the variant name is the `event_type`, prefixed with `Incident` so that names are unique
/// across all aggregates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
#[allow(clippy::enum_variant_names)] // the shared prefix makes stored type names unique
pub enum IncidentEvent {
    /// See [`IncidentCreated`].
    IncidentCreated(IncidentCreated),
    /// See [`IncidentUpdated`].
    IncidentUpdated(IncidentUpdated),
    /// See [`IncidentAssigned`].
    IncidentAssigned(IncidentAssigned),
    /// See [`IncidentResponded`].
    IncidentResponded(IncidentResponded),
    /// See [`IncidentWorkStarted`].
    IncidentWorkStarted(IncidentWorkStarted),
    /// See [`IncidentPutOnHold`].
    IncidentPutOnHold(IncidentPutOnHold),
    /// See [`IncidentResumed`].
    IncidentResumed(IncidentResumed),
    /// See [`IncidentResolved`].
    IncidentResolved(IncidentResolved),
    /// See [`IncidentReopened`].
    IncidentReopened(IncidentReopened),
    /// See [`IncidentClosed`].
    IncidentClosed(IncidentClosed),
    /// See [`IncidentCancelled`].
    IncidentCancelled(IncidentCancelled),
    /// See [`IncidentWorkNoteAdded`].
    IncidentWorkNoteAdded(IncidentWorkNoteAdded),
    /// See [`IncidentAttachmentAdded`].
    IncidentAttachmentAdded(IncidentAttachmentAdded),
    /// See [`SlaTimerStarted`].
    SlaTimerStarted(SlaTimerStarted),
    /// See [`SlaTimerRescheduled`].
    SlaTimerRescheduled(SlaTimerRescheduled),
    /// See [`SlaTimerStopped`].
    SlaTimerStopped(SlaTimerStopped),
    /// See [`SlaWarningIssued`].
    SlaWarningIssued(SlaWarningIssued),
    /// See [`SlaBreached`].
    SlaBreached(SlaBreached),
    /// See [`IncidentExternalLinked`].
    IncidentExternalLinked(IncidentExternalLinked),
}

impl IncidentEvent {
    /// Every `event_type` of this aggregate.
    pub const EVENT_TYPES: &'static [&'static str] = &[
        "IncidentCreated",
        "IncidentUpdated",
        "IncidentAssigned",
        "IncidentResponded",
        "IncidentWorkStarted",
        "IncidentPutOnHold",
        "IncidentResumed",
        "IncidentResolved",
        "IncidentReopened",
        "IncidentClosed",
        "IncidentCancelled",
        "IncidentWorkNoteAdded",
        "IncidentAttachmentAdded",
        "SlaTimerStarted",
        "SlaTimerRescheduled",
        "SlaTimerStopped",
        "SlaWarningIssued",
        "SlaBreached",
        "IncidentExternalLinked",
    ];

    /// Who caused the event (the `changed_by` of history rows).
    pub fn actor(&self) -> Actor {
        match self {
            Self::IncidentCreated(e) => e.actor,
            Self::IncidentUpdated(e) => e.actor,
            Self::IncidentAssigned(e) => e.actor,
            Self::IncidentResponded(e) => e.actor,
            Self::IncidentWorkStarted(e) => e.actor,
            Self::IncidentPutOnHold(e) => e.actor,
            Self::IncidentResumed(e) => e.actor,
            Self::IncidentResolved(e) => e.actor,
            Self::IncidentReopened(e) => e.actor,
            Self::IncidentClosed(e) => e.actor,
            Self::IncidentCancelled(e) => e.actor,
            Self::IncidentWorkNoteAdded(e) => e.author,
            Self::IncidentAttachmentAdded(e) => e.uploaded_by,
            Self::IncidentExternalLinked(e) => e.actor,
            Self::SlaTimerStarted(_)
            | Self::SlaTimerRescheduled(_)
            | Self::SlaTimerStopped(_)
            | Self::SlaWarningIssued(_)
            | Self::SlaBreached(_) => SLA_ACTOR,
        }
    }

    /// When it happened (the `now` of the decision; the `changed_at` of history rows).
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::IncidentCreated(e) => e.at,
            Self::IncidentUpdated(e) => e.at,
            Self::IncidentAssigned(e) => e.at,
            Self::IncidentResponded(e) => e.at,
            Self::IncidentWorkStarted(e) => e.at,
            Self::IncidentPutOnHold(e) => e.at,
            Self::IncidentResumed(e) => e.at,
            Self::IncidentResolved(e) => e.at,
            Self::IncidentReopened(e) => e.at,
            Self::IncidentClosed(e) => e.at,
            Self::IncidentCancelled(e) => e.at,
            Self::IncidentWorkNoteAdded(e) => e.at,
            Self::IncidentAttachmentAdded(e) => e.at,
            Self::SlaTimerStarted(e) => e.at,
            Self::SlaTimerRescheduled(e) => e.at,
            Self::SlaTimerStopped(e) => e.at,
            Self::SlaWarningIssued(e) => e.at,
            Self::SlaBreached(e) => e.at,
            Self::IncidentExternalLinked(e) => e.at,
        }
    }

    /// Whether this is one of the SLA clock's own events.
    pub fn is_sla(&self) -> bool {
        matches!(
            self,
            Self::SlaTimerStarted(_)
                | Self::SlaTimerRescheduled(_)
                | Self::SlaTimerStopped(_)
                | Self::SlaWarningIssued(_)
                | Self::SlaBreached(_)
        )
    }

    /// The status after the event, if the event sets one.
    pub fn status_after(&self) -> Option<IncidentStatus> {
        use IncidentStatus as S;
        match self {
            Self::IncidentCreated(_) => Some(S::New),
            Self::IncidentAssigned(e) => Some(e.to),
            Self::IncidentWorkStarted(_) | Self::IncidentReopened(_) => Some(S::InProgress),
            Self::IncidentPutOnHold(_) => Some(S::OnHold),
            Self::IncidentResumed(e) => Some(e.to),
            Self::IncidentResolved(_) => Some(S::Resolved),
            Self::IncidentClosed(_) => Some(S::Closed),
            Self::IncidentCancelled(_) => Some(S::Cancelled),
            Self::IncidentUpdated(_)
            | Self::IncidentResponded(_)
            | Self::IncidentWorkNoteAdded(_)
            | Self::IncidentAttachmentAdded(_)
            | Self::SlaTimerStarted(_)
            | Self::SlaTimerRescheduled(_)
            | Self::SlaTimerStopped(_)
            | Self::SlaWarningIssued(_)
            | Self::SlaBreached(_)
            | Self::IncidentExternalLinked(_) => None,
        }
    }

    /// The field-level history rows this event contributes (`field`, `old`, `new`); pair them
    /// with [`actor`](Self::actor) and [`at`](Self::at). Work notes and attachments have their
    /// own lists and contribute no rows.
    pub fn history(&self) -> Vec<FieldChange> {
        use IncidentStatus as S;
        let status = |old: Option<S>, new: S| FieldChange::new("status", old, Some(new));
        match self {
            Self::IncidentCreated(_) => vec![status(None, S::New)],
            Self::IncidentUpdated(e) => {
                let c = &e.changes;
                let mut rows = Vec::new();
                if let Some(x) = &c.title {
                    rows.push(FieldChange::from_change("title", x));
                }
                if let Some(x) = &c.description {
                    rows.push(FieldChange::from_change("description", x));
                }
                if let Some(x) = &c.impact {
                    rows.push(FieldChange::from_change("impact", x));
                }
                if let Some(x) = &c.urgency {
                    rows.push(FieldChange::from_change("urgency", x));
                }
                if let Some(x) = &c.priority {
                    rows.push(FieldChange::from_change("priority", x));
                }
                if let Some(x) = &c.priority_overridden {
                    rows.push(FieldChange::from_change("priority_overridden", x));
                }
                if let Some(x) = &c.category_id {
                    rows.push(FieldChange::from_opt_change("category_id", x));
                }
                if let Some(x) = &c.ci_id {
                    rows.push(FieldChange::from_opt_change("ci_id", x));
                }
                rows
            }
            Self::IncidentAssigned(e) => {
                let mut rows = Vec::new();
                if e.from != e.to {
                    rows.push(status(Some(e.from), e.to));
                }
                if e.previous_assignee_id != e.assignee_id {
                    rows.push(FieldChange::new(
                        "assignee_id",
                        e.previous_assignee_id,
                        e.assignee_id,
                    ));
                }
                if e.previous_team_id != e.team_id {
                    rows.push(FieldChange::new("team_id", e.previous_team_id, e.team_id));
                }
                rows
            }
            Self::IncidentResponded(e) => {
                vec![FieldChange::new(
                    "responded_at",
                    None,
                    Some(e.at.to_rfc3339()),
                )]
            }
            Self::IncidentWorkStarted(e) => vec![status(Some(e.from), S::InProgress)],
            Self::IncidentPutOnHold(e) => vec![
                status(Some(e.from), S::OnHold),
                FieldChange::new("hold_reason", None, Some(e.reason)),
            ],
            Self::IncidentResumed(e) => vec![
                status(Some(S::OnHold), e.to),
                FieldChange::new("hold_reason", e.hold_reason, None),
            ],
            Self::IncidentResolved(e) => vec![
                status(Some(e.from), S::Resolved),
                FieldChange::new("resolution", None, Some(&e.resolution)),
            ],
            Self::IncidentReopened(e) => vec![
                status(Some(S::Resolved), S::InProgress),
                FieldChange::new("resolution", e.previous_resolution.as_ref(), None),
                FieldChange::new(
                    "reopen_count",
                    Some(e.reopen_count.saturating_sub(1)),
                    Some(e.reopen_count),
                ),
            ],
            Self::IncidentClosed(_) => vec![status(Some(S::Resolved), S::Closed)],
            Self::IncidentCancelled(e) => vec![status(Some(e.from), S::Cancelled)],
            Self::IncidentWorkNoteAdded(_) | Self::IncidentAttachmentAdded(_) => Vec::new(),
            Self::SlaTimerStarted(e) => vec![FieldChange::new(
                due_field(e.metric),
                None::<String>,
                Some(e.schedule.due_at.to_rfc3339()),
            )],
            Self::SlaTimerRescheduled(e) => vec![FieldChange::new(
                due_field(e.metric),
                Some(e.previous_due_at.to_rfc3339()),
                Some(e.schedule.due_at.to_rfc3339()),
            )],
            Self::SlaTimerStopped(_) | Self::SlaWarningIssued(_) => Vec::new(),
            Self::SlaBreached(e) => vec![FieldChange::new(
                match e.metric {
                    SlaMetric::Response => "response_breached",
                    SlaMetric::Resolution => "resolution_breached",
                },
                Some(false),
                Some(true),
            )],
            Self::IncidentExternalLinked(e) => vec![FieldChange::new(
                match e.system {
                    ExternalSystem::Jira => "jira_issue",
                },
                e.previous_key.as_ref(),
                Some(&e.key),
            )],
        }
    }
}

impl DomainEvent for IncidentEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::IncidentCreated(_) => "IncidentCreated",
            Self::IncidentUpdated(_) => "IncidentUpdated",
            Self::IncidentAssigned(_) => "IncidentAssigned",
            Self::IncidentResponded(_) => "IncidentResponded",
            Self::IncidentWorkStarted(_) => "IncidentWorkStarted",
            Self::IncidentPutOnHold(_) => "IncidentPutOnHold",
            Self::IncidentResumed(_) => "IncidentResumed",
            Self::IncidentResolved(_) => "IncidentResolved",
            Self::IncidentReopened(_) => "IncidentReopened",
            Self::IncidentClosed(_) => "IncidentClosed",
            Self::IncidentCancelled(_) => "IncidentCancelled",
            Self::IncidentWorkNoteAdded(_) => "IncidentWorkNoteAdded",
            Self::IncidentAttachmentAdded(_) => "IncidentAttachmentAdded",
            Self::SlaTimerStarted(_) => "SlaTimerStarted",
            Self::SlaTimerRescheduled(_) => "SlaTimerRescheduled",
            Self::SlaTimerStopped(_) => "SlaTimerStopped",
            Self::SlaWarningIssued(_) => "SlaWarningIssued",
            Self::SlaBreached(_) => "SlaBreached",
            Self::IncidentExternalLinked(_) => "IncidentExternalLinked",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

/// A work note as held in the incident's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkNote {
    /// Id.
    pub id: WorkNoteId,
    /// Text.
    pub body: WorkNoteBody,
    /// Kind.
    pub note_type: WorkNoteType,
    /// Visible to the requester.
    pub is_public: bool,
    /// Written by an agent.
    pub by_agent: bool,
    /// Author.
    pub author: Actor,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// An attachment as held in the incident's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// Id.
    pub id: AttachmentId,
    /// File name.
    pub filename: FileName,
    /// MIME type.
    pub content_type: ContentType,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Content address.
    pub sha256: Sha256Hex,
    /// Uploader.
    pub uploaded_by: Actor,
    /// When.
    pub uploaded_at: DateTime<Utc>,
}

/// An incident's record in an external system, as held in its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalLink {
    /// The system.
    pub system: ExternalSystem,
    /// The key there.
    pub key: ExternalKey,
    /// A link to it.
    pub url: Option<ExternalUrl>,
    /// When it was linked.
    pub linked_at: DateTime<Utc>,
}

/// The state of a created incident, folded from its events. Fields are public for read-side
/// use (e.g. "the aggregate as of a time").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Id.
    pub id: IncidentId,
    /// Human-facing number.
    pub number: IncidentNumber,
    /// Title.
    pub title: Title,
    /// Description.
    pub description: Description,
    /// Status.
    pub status: IncidentStatus,
    /// Impact.
    pub impact: Impact,
    /// Urgency.
    pub urgency: Urgency,
    /// Priority.
    pub priority: Priority,
    /// Whether the priority was set explicitly (not re-derived on impact/urgency change).
    pub priority_overridden: bool,
    /// Category.
    pub category_id: Option<CategoryId>,
    /// Assignment group.
    pub team_id: Option<TeamId>,
    /// Assignee.
    pub assignee_id: Option<UserId>,
    /// Reporter.
    pub reporter_id: UserId,
    /// The configuration item it affects.
    #[serde(default)]
    pub ci_id: Option<CiId>,
    /// Why it is on hold (while `on_hold`).
    pub hold_reason: Option<HoldReason>,
    /// The status it was held from (while `on_hold`); `Resume` returns there.
    pub held_from: Option<IncidentStatus>,
    /// Since when it is on hold (while `on_hold`).
    pub on_hold_since: Option<DateTime<Utc>>,
    /// The current resolution (while `resolved`/`closed`).
    pub resolution: Option<ResolutionText>,
    /// When it was logged.
    pub created_at: DateTime<Utc>,
    /// Who logged it.
    pub created_by: Actor,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Who last changed it.
    pub updated_by: Actor,
    /// When the desk first responded.
    pub responded_at: Option<DateTime<Utc>>,
    /// When it was last resolved (cleared by a reopen).
    pub resolved_at: Option<DateTime<Utc>>,
    /// When it was closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// When it was cancelled.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// How many times it was reopened.
    pub reopen_count: u32,
    /// Work notes, oldest first.
    pub work_notes: Vec<WorkNote>,
    /// Attachments, oldest first.
    pub attachments: Vec<Attachment>,
    /// The current SLA timers.
    #[serde(default)]
    pub sla: SlaState,
    /// Its records in external systems (at most one per system).
    #[serde(default)]
    pub external_links: Vec<ExternalLink>,
}

impl Incident {
    /// The status after `action`, or why it is rejected (see [`next_status`]).
    pub fn next_status(&self, action: IncidentAction) -> Result<IncidentStatus, IncidentError> {
        next_status(self.status, action, self.held_from)
    }

    /// The actions the transition table allows now (for "which buttons to show"). A command
    /// may still be rejected for other reasons, e.g. an empty assignment.
    pub fn allowed_actions(&self) -> Vec<IncidentAction> {
        IncidentAction::ALL
            .iter()
            .copied()
            .filter(|a| !a.is_system())
            .filter(|a| self.next_status(*a).is_ok())
            .collect()
    }

    fn from_created(e: &IncidentCreated) -> Self {
        Self {
            id: e.id,
            number: e.number,
            title: e.title.clone(),
            description: e.description.clone(),
            status: IncidentStatus::New,
            impact: e.impact,
            urgency: e.urgency,
            priority: e.priority,
            priority_overridden: e.priority_overridden,
            category_id: e.category_id,
            team_id: e.team_id,
            assignee_id: e.assignee_id,
            reporter_id: e.reporter_id,
            ci_id: e.ci_id,
            hold_reason: None,
            held_from: None,
            on_hold_since: None,
            resolution: None,
            created_at: e.at,
            created_by: e.actor,
            updated_at: e.at,
            updated_by: e.actor,
            responded_at: None,
            resolved_at: None,
            closed_at: None,
            cancelled_at: None,
            reopen_count: 0,
            work_notes: Vec::new(),
            attachments: Vec::new(),
            sla: SlaState::default(),
            external_links: Vec::new(),
        }
    }

    /// When the first response is due (the response timer's current due time).
    pub fn response_due_at(&self) -> Option<DateTime<Utc>> {
        self.sla.response.as_ref().map(|t| t.due_at)
    }

    /// When the resolution is due (the current cycle's due time).
    pub fn resolution_due_at(&self) -> Option<DateTime<Utc>> {
        self.sla.resolution.as_ref().map(|t| t.due_at)
    }

    /// The incident's record in `system`, if linked.
    pub fn external_link(&self, system: ExternalSystem) -> Option<&ExternalLink> {
        self.external_links.iter().find(|l| l.system == system)
    }

    fn clear_hold(&mut self) {
        self.hold_reason = None;
        self.held_from = None;
        self.on_hold_since = None;
    }

    fn apply(&mut self, event: &IncidentEvent) {
        self.sla.apply(event);
        if event.is_sla() {
            // The clock's own events are not edits of the incident.
            return;
        }
        self.updated_at = event.at();
        self.updated_by = event.actor();
        match event {
            IncidentEvent::IncidentCreated(_) => {}
            IncidentEvent::IncidentUpdated(e) => {
                let c = &e.changes;
                if let Some(x) = &c.title {
                    self.title = x.new.clone();
                }
                if let Some(x) = &c.description {
                    self.description = x.new.clone();
                }
                if let Some(x) = &c.impact {
                    self.impact = x.new;
                }
                if let Some(x) = &c.urgency {
                    self.urgency = x.new;
                }
                if let Some(x) = &c.priority {
                    self.priority = x.new;
                }
                if let Some(x) = &c.priority_overridden {
                    self.priority_overridden = x.new;
                }
                if let Some(x) = &c.category_id {
                    self.category_id = x.new;
                }
                if let Some(x) = &c.ci_id {
                    self.ci_id = x.new;
                }
            }
            IncidentEvent::IncidentAssigned(e) => {
                self.status = e.to;
                self.assignee_id = e.assignee_id;
                self.team_id = e.team_id;
            }
            IncidentEvent::IncidentResponded(e) => {
                self.responded_at.get_or_insert(e.at);
            }
            IncidentEvent::IncidentWorkStarted(_) => {
                self.status = IncidentStatus::InProgress;
            }
            IncidentEvent::IncidentPutOnHold(e) => {
                self.status = IncidentStatus::OnHold;
                self.hold_reason = Some(e.reason);
                self.held_from = Some(e.from);
                self.on_hold_since = Some(e.at);
            }
            IncidentEvent::IncidentResumed(e) => {
                self.status = e.to;
                self.clear_hold();
            }
            IncidentEvent::IncidentResolved(e) => {
                self.status = IncidentStatus::Resolved;
                self.resolution = Some(e.resolution.clone());
                self.resolved_at = Some(e.at);
                self.clear_hold();
            }
            IncidentEvent::IncidentReopened(e) => {
                self.status = IncidentStatus::InProgress;
                self.resolution = None;
                self.resolved_at = None;
                self.reopen_count = e.reopen_count;
            }
            IncidentEvent::IncidentClosed(e) => {
                self.status = IncidentStatus::Closed;
                self.closed_at = Some(e.at);
            }
            IncidentEvent::IncidentCancelled(e) => {
                self.status = IncidentStatus::Cancelled;
                self.cancelled_at = Some(e.at);
                self.clear_hold();
            }
            IncidentEvent::IncidentWorkNoteAdded(e) => self.work_notes.push(WorkNote {
                id: e.note_id,
                body: e.body.clone(),
                note_type: e.note_type,
                is_public: e.is_public,
                by_agent: e.by_agent,
                author: e.author,
                created_at: e.at,
            }),
            IncidentEvent::IncidentAttachmentAdded(e) => self.attachments.push(Attachment {
                id: e.attachment_id,
                filename: e.filename.clone(),
                content_type: e.content_type.clone(),
                size_bytes: e.size_bytes,
                sha256: e.sha256.clone(),
                uploaded_by: e.uploaded_by,
                uploaded_at: e.at,
            }),
            IncidentEvent::IncidentExternalLinked(e) => {
                self.external_links.retain(|l| l.system != e.system);
                self.external_links.push(ExternalLink {
                    system: e.system,
                    key: e.key.clone(),
                    url: e.url.clone(),
                    linked_at: e.at,
                });
            }
            IncidentEvent::SlaTimerStarted(_)
            | IncidentEvent::SlaTimerRescheduled(_)
            | IncidentEvent::SlaTimerStopped(_)
            | IncidentEvent::SlaWarningIssued(_)
            | IncidentEvent::SlaBreached(_) => {}
        }
    }

    /// The `IncidentResponded` to append after a transition from `from`, if it is the first
    /// transition out of `new`.
    fn response_on_leaving(
        &self,
        from: IncidentStatus,
        actor: Actor,
        at: DateTime<Utc>,
    ) -> Option<IncidentEvent> {
        (from == IncidentStatus::New && self.responded_at.is_none()).then_some(
            IncidentEvent::IncidentResponded(IncidentResponded {
                trigger: ResponseTrigger::StatusChange,
                actor,
                at,
            }),
        )
    }

    fn decide(
        &self,
        command: IncidentCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<IncidentEvent>, IncidentError> {
        use IncidentCommand as C;
        use IncidentEvent as E;
        let action = command.action();
        match command {
            C::Create { .. } => Err(IncidentError::AlreadyExists),
            C::RecordSlaThreshold {
                metric,
                cycle,
                threshold,
            } => Ok(record_threshold(&self.sla, metric, cycle, threshold, now)?
                .into_iter()
                .collect()),
            C::RefreshSla => Ok(Vec::new()),
            C::LinkExternal {
                system,
                key,
                url,
                actor,
            } => {
                self.next_status(action)?;
                let previous = self.external_link(system);
                if previous.is_some_and(|l| l.key == key && l.url == url) {
                    return Ok(Vec::new());
                }
                Ok(vec![E::IncidentExternalLinked(IncidentExternalLinked {
                    system,
                    key,
                    url,
                    previous_key: previous.map(|l| l.key.clone()),
                    actor,
                    at: now,
                })])
            }
            C::UpdateFields {
                title,
                description,
                impact,
                urgency,
                priority,
                category_id,
                ci_id,
                matrix,
                actor,
            } => {
                self.next_status(action)?;
                let new_impact = impact.unwrap_or(self.impact);
                let new_urgency = urgency.unwrap_or(self.urgency);
                let derived = || matrix.priority_for(new_impact, new_urgency);
                let (new_priority, overridden) = match priority {
                    Some(Some(p)) => (p, true),
                    Some(None) => (derived(), false),
                    None if self.priority_overridden => (self.priority, true),
                    None if new_impact != self.impact || new_urgency != self.urgency => {
                        (derived(), false)
                    }
                    None => (self.priority, false),
                };
                let changes = IncidentChanges {
                    title: title.and_then(|t| Change::between(self.title.clone(), t)),
                    description: description
                        .and_then(|d| Change::between(self.description.clone(), d)),
                    impact: Change::between(self.impact, new_impact),
                    urgency: Change::between(self.urgency, new_urgency),
                    priority: Change::between(self.priority, new_priority),
                    priority_overridden: Change::between(self.priority_overridden, overridden),
                    category_id: category_id.and_then(|c| Change::between(self.category_id, c)),
                    ci_id: ci_id.and_then(|c| Change::between(self.ci_id, c)),
                };
                if changes.is_empty() {
                    return Ok(Vec::new());
                }
                Ok(vec![E::IncidentUpdated(IncidentUpdated {
                    changes,
                    actor,
                    at: now,
                })])
            }
            C::Assign {
                assignee_id,
                team_id,
                actor,
            } => {
                let to = self.next_status(action)?;
                if assignee_id.is_none() && team_id.is_none() {
                    return Err(IncidentError::EmptyAssignment);
                }
                let new_assignee = assignee_id.or(self.assignee_id);
                let new_team = team_id.or(self.team_id);
                if to == self.status && new_assignee == self.assignee_id && new_team == self.team_id
                {
                    return Ok(Vec::new());
                }
                let mut events = vec![E::IncidentAssigned(IncidentAssigned {
                    from: self.status,
                    to,
                    previous_assignee_id: self.assignee_id,
                    assignee_id: new_assignee,
                    previous_team_id: self.team_id,
                    team_id: new_team,
                    actor,
                    at: now,
                })];
                events.extend(self.response_on_leaving(self.status, actor, now));
                Ok(events)
            }
            C::StartWork { actor } => {
                self.next_status(action)?;
                let mut events = vec![E::IncidentWorkStarted(IncidentWorkStarted {
                    from: self.status,
                    actor,
                    at: now,
                })];
                events.extend(self.response_on_leaving(self.status, actor, now));
                Ok(events)
            }
            C::PutOnHold {
                reason,
                comment,
                actor,
            } => {
                self.next_status(action)?;
                Ok(vec![E::IncidentPutOnHold(IncidentPutOnHold {
                    from: self.status,
                    reason,
                    comment,
                    actor,
                    at: now,
                })])
            }
            C::Resume { actor } => {
                let to = self.next_status(action)?;
                Ok(vec![E::IncidentResumed(IncidentResumed {
                    to,
                    hold_reason: self.hold_reason,
                    actor,
                    at: now,
                })])
            }
            C::Resolve { resolution, actor } => {
                self.next_status(action)?;
                Ok(vec![E::IncidentResolved(IncidentResolved {
                    from: self.status,
                    resolution,
                    actor,
                    at: now,
                })])
            }
            C::Reopen { reason, actor } => {
                self.next_status(action)?;
                Ok(vec![E::IncidentReopened(IncidentReopened {
                    reason,
                    previous_resolution: self.resolution.clone(),
                    reopen_count: self.reopen_count.saturating_add(1),
                    actor,
                    at: now,
                })])
            }
            C::Close { actor } => {
                self.next_status(action)?;
                Ok(vec![E::IncidentClosed(IncidentClosed { actor, at: now })])
            }
            C::Cancel { reason, actor } => {
                self.next_status(action)?;
                Ok(vec![E::IncidentCancelled(IncidentCancelled {
                    from: self.status,
                    reason,
                    actor,
                    at: now,
                })])
            }
            C::AddWorkNote {
                note_id,
                body,
                note_type,
                is_public,
                by_agent,
                author,
            } => {
                self.next_status(action)?;
                if self.work_notes.iter().any(|n| n.id == note_id) {
                    return Err(IncidentError::DuplicateWorkNote(note_id));
                }
                let mut events = vec![E::IncidentWorkNoteAdded(IncidentWorkNoteAdded {
                    note_id,
                    body,
                    note_type,
                    is_public,
                    by_agent,
                    author,
                    at: now,
                })];
                if is_public && by_agent && self.responded_at.is_none() {
                    events.push(E::IncidentResponded(IncidentResponded {
                        trigger: ResponseTrigger::PublicWorkNote,
                        actor: author,
                        at: now,
                    }));
                }
                Ok(events)
            }
            C::AddAttachment {
                attachment_id,
                filename,
                content_type,
                size_bytes,
                sha256,
                uploaded_by,
            } => {
                self.next_status(action)?;
                if self.attachments.iter().any(|a| a.id == attachment_id) {
                    return Err(IncidentError::DuplicateAttachment(attachment_id));
                }
                Ok(vec![E::IncidentAttachmentAdded(IncidentAttachmentAdded {
                    attachment_id,
                    filename,
                    content_type,
                    size_bytes,
                    sha256,
                    uploaded_by,
                    at: now,
                })])
            }
        }
    }
}

/// The incident aggregate: `None` until created. Implements [`Aggregate`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentAggregate {
    /// The incident, once `IncidentCreated` has been applied.
    pub state: Option<Incident>,
}

impl IncidentAggregate {
    /// The incident, if created.
    pub fn incident(&self) -> Option<&Incident> {
        self.state.as_ref()
    }

    /// The incident, or [`IncidentError::NotFound`].
    pub fn ensure_exists(&self) -> Result<&Incident, IncidentError> {
        self.state.as_ref().ok_or(IncidentError::NotFound)
    }
}

impl Aggregate for IncidentAggregate {
    const STREAM_TYPE: &'static str = "incident";
    type Command = IncidentCommand;
    type Event = IncidentEvent;
    type Error = IncidentError;

    fn decide(
        &self,
        command: IncidentCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<IncidentEvent>, IncidentError> {
        match (&self.state, command) {
            (Some(incident), command) => incident.decide(command, now),
            (
                None,
                IncidentCommand::Create {
                    id,
                    number,
                    title,
                    description,
                    impact,
                    urgency,
                    priority,
                    matrix,
                    category_id,
                    team_id,
                    assignee_id,
                    reporter_id,
                    ci_id,
                    actor,
                },
            ) => {
                let (priority, priority_overridden) = match priority {
                    Some(p) => (p, true),
                    None => (matrix.priority_for(impact, urgency), false),
                };
                Ok(vec![IncidentEvent::IncidentCreated(IncidentCreated {
                    id,
                    number,
                    title,
                    description,
                    impact,
                    urgency,
                    priority,
                    priority_overridden,
                    category_id,
                    team_id,
                    assignee_id,
                    reporter_id,
                    ci_id,
                    actor,
                    at: now,
                })])
            }
            (None, _) => Err(IncidentError::NotFound),
        }
    }

    fn evolve(&mut self, event: &IncidentEvent) {
        match (self.state.as_mut(), event) {
            (Some(incident), e) => incident.apply(e),
            (None, IncidentEvent::IncidentCreated(e)) => {
                self.state = Some(Incident::from_created(e));
            }
            // Events before creation cannot occur in a valid stream; ignore them.
            (None, _) => {}
        }
    }
}

#[cfg(test)]
#[path = "incident_tests.rs"]
mod tests;
