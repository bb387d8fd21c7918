//! The problem aggregate (`stream_type = "problem"`): the cause behind one or more incidents,
//! its root cause, its workaround, and its publication as a **known error** (ADR 0021).
//!
//! # Transition table
//!
//! Rows are actions, columns the current status. `→ x` moves to status `x`, `=` keeps the
//! status, `✗T` is rejected with [`ProblemError::InvalidTransition`] (`to` = the action's target
//! status) and `✗A` with [`ProblemError::ActionNotAllowed`].
//!
//! | action | new | investigating | known_error | resolved | closed |
//! |---|---|---|---|---|---|
//! | `Update` | = | = | = | = | ✗A |
//! | `StartInvestigation` | → investigating | ✗T | ✗T | ✗T | ✗T |
//! | `MarkKnownError` | ✗T | → known_error | ✗T | ✗T | ✗T |
//! | `Resolve` | ✗T | → resolved | → resolved | ✗T | ✗T |
//! | `Close` | ✗T | ✗T | ✗T | → closed | ✗T |
//! | `LinkIncident` | = | = | = | = | ✗A |
//! | `UnlinkIncident` | = | = | = | = | ✗A |
//!
//! Decisions (where the product spec leaves room):
//! - **`known_error` is optional**: a problem whose fix is found before any workaround goes
//!   `investigating → resolved` directly. It cannot be resolved from `new`: someone must have
//!   investigated it.
//! - **Marking a known error needs a workaround** (given in the command or already recorded);
//!   the root cause may still be unknown. The problem is then *published* to the known-error
//!   database (`known_error_at` is set and stays set: a resolved problem's workaround remains
//!   searchable until the problem is closed). Once published, the workaround can be changed but
//!   not cleared ([`ProblemError::WorkaroundRequired`]).
//! - **`Resolve` records the incidents linked at that moment** in
//!   [`ProblemResolved::incident_ids`], so the reactor that notes the resolution on each of them
//!   needs nothing but the event.
//! - **Links**: linking an incident already linked emits nothing; unlinking one that is not
//!   linked is [`ProblemError::IncidentNotLinked`]. That the incident exists, and that it is
//!   linked to no other problem, is checked by the command layer (it needs the store).
//! - A closed problem accepts nothing (final). A field change that changes nothing emits
//!   nothing; a status action that would not move is an `InvalidTransition`.

use crate::actor::Actor;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::change::Change;
use crate::ids::{CategoryId, CiId, IncidentId, ProblemId, UserId};
use crate::values::{
    Description, Priority, ResolutionText, RootCause, Title, Workaround, str_enum,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

str_enum!(
    /// The lifecycle status of a problem. See [`crate::problem`] for the transition table.
    ProblemStatus, field = "status" {
        /// Logged, nobody is on it yet.
        New => "new",
        /// Root-cause analysis under way.
        Investigating => "investigating",
        /// Root cause and/or workaround known and published to the known-error database.
        KnownError => "known_error",
        /// Permanently fixed.
        Resolved => "resolved",
        /// Final.
        Closed => "closed",
    }
);

str_enum!(
    /// What a problem command does, for error messages and "which buttons to show".
    ProblemAction, field = "action" {
        /// [`ProblemCommand::Create`].
        Create => "create",
        /// [`ProblemCommand::Update`].
        Update => "update",
        /// [`ProblemCommand::StartInvestigation`].
        StartInvestigation => "start_investigation",
        /// [`ProblemCommand::MarkKnownError`].
        MarkKnownError => "mark_known_error",
        /// [`ProblemCommand::Resolve`].
        Resolve => "resolve",
        /// [`ProblemCommand::Close`].
        Close => "close",
        /// [`ProblemCommand::LinkIncident`].
        LinkIncident => "link_incident",
        /// [`ProblemCommand::UnlinkIncident`].
        UnlinkIncident => "unlink_incident",
    }
);

/// Why a problem command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProblemError {
    /// The problem has not been created.
    #[error("problem not found")]
    NotFound,
    /// `Create` on an existing problem.
    #[error("problem already exists")]
    AlreadyExists,
    /// The status change is not in the transition table.
    #[error("cannot move a problem from {from} to {to}")]
    InvalidTransition {
        /// The current status.
        from: ProblemStatus,
        /// The status the command would move to.
        to: ProblemStatus,
    },
    /// A command that does not move the status is not allowed in the current status.
    #[error("cannot {action} a problem that is {status}")]
    ActionNotAllowed {
        /// The rejected action.
        action: ProblemAction,
        /// The current status.
        status: ProblemStatus,
    },
    /// A known error needs a workaround (to publish, or to stay published).
    #[error("a known error needs a workaround")]
    WorkaroundRequired,
    /// `UnlinkIncident` of an incident that is not linked.
    #[error("incident {0} is not linked to this problem")]
    IncidentNotLinked(IncidentId),
}

impl ProblemError {
    /// A stable machine-readable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::InvalidTransition { .. } => "invalid_transition",
            Self::ActionNotAllowed { .. } => "action_not_allowed",
            Self::WorkaroundRequired => "workaround_required",
            Self::IncidentNotLinked(_) => "incident_not_linked",
        }
    }
}

/// The status a problem in `from` ends in after `action`, or the error rejecting it: the
/// transition table of the module docs as a function.
pub fn next_status(
    from: ProblemStatus,
    action: ProblemAction,
) -> Result<ProblemStatus, ProblemError> {
    use ProblemAction as A;
    use ProblemStatus as S;
    let invalid = |to| ProblemError::InvalidTransition { from, to };
    match action {
        A::Create => Err(ProblemError::AlreadyExists),
        A::Update | A::LinkIncident | A::UnlinkIncident => {
            if from == S::Closed {
                Err(ProblemError::ActionNotAllowed {
                    action,
                    status: from,
                })
            } else {
                Ok(from)
            }
        }
        A::StartInvestigation => match from {
            S::New => Ok(S::Investigating),
            _ => Err(invalid(S::Investigating)),
        },
        A::MarkKnownError => match from {
            S::Investigating => Ok(S::KnownError),
            _ => Err(invalid(S::KnownError)),
        },
        A::Resolve => match from {
            S::Investigating | S::KnownError => Ok(S::Resolved),
            _ => Err(invalid(S::Resolved)),
        },
        A::Close => match from {
            S::Resolved => Ok(S::Closed),
            _ => Err(invalid(S::Closed)),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

/// A request to change a problem. Every command carries who issues it.
#[derive(Debug, Clone, PartialEq)]
pub enum ProblemCommand {
    /// Log a problem (status `new`).
    Create {
        /// Id (= stream id).
        id: ProblemId,
        /// Title.
        title: Title,
        /// Description (may be empty).
        description: Description,
        /// Priority.
        priority: Priority,
        /// Category (matched against incidents' for known-error suggestions).
        category_id: Option<CategoryId>,
        /// The configuration item at fault (idem).
        ci_id: Option<CiId>,
        /// Who investigates.
        assignee_id: Option<UserId>,
        /// Root cause, if already known.
        root_cause: Option<RootCause>,
        /// Workaround, if already known.
        workaround: Option<Workaround>,
        /// Who.
        actor: Actor,
    },
    /// Edit fields; `None` keeps a field, `Some(None)` clears an optional one.
    Update {
        /// New title.
        title: Option<Title>,
        /// New description.
        description: Option<Description>,
        /// New priority.
        priority: Option<Priority>,
        /// New category.
        category_id: Option<Option<CategoryId>>,
        /// New configuration item.
        ci_id: Option<Option<CiId>>,
        /// New assignee.
        assignee_id: Option<Option<UserId>>,
        /// New root cause.
        root_cause: Option<Option<RootCause>>,
        /// New workaround (cannot be cleared once published).
        workaround: Option<Option<Workaround>>,
        /// Who.
        actor: Actor,
    },
    /// `new → investigating`.
    StartInvestigation {
        /// Who.
        actor: Actor,
    },
    /// `investigating → known_error`: publish it to the known-error database.
    MarkKnownError {
        /// The root cause (else the recorded one, if any, is kept).
        root_cause: Option<RootCause>,
        /// The workaround (else the recorded one; one of the two is required).
        workaround: Option<Workaround>,
        /// Who.
        actor: Actor,
    },
    /// `investigating | known_error → resolved`: the permanent fix is in.
    Resolve {
        /// The fix.
        resolution: ResolutionText,
        /// Who.
        actor: Actor,
    },
    /// `resolved → closed` (final).
    Close {
        /// Who.
        actor: Actor,
    },
    /// Link an incident (checked to exist, and to be linked to no other problem, by the
    /// command layer).
    LinkIncident {
        /// The incident.
        incident_id: IncidentId,
        /// Who.
        actor: Actor,
    },
    /// Unlink an incident.
    UnlinkIncident {
        /// The incident.
        incident_id: IncidentId,
        /// Who.
        actor: Actor,
    },
}

impl ProblemCommand {
    /// What the command does.
    pub fn action(&self) -> ProblemAction {
        match self {
            Self::Create { .. } => ProblemAction::Create,
            Self::Update { .. } => ProblemAction::Update,
            Self::StartInvestigation { .. } => ProblemAction::StartInvestigation,
            Self::MarkKnownError { .. } => ProblemAction::MarkKnownError,
            Self::Resolve { .. } => ProblemAction::Resolve,
            Self::Close { .. } => ProblemAction::Close,
            Self::LinkIncident { .. } => ProblemAction::LinkIncident,
            Self::UnlinkIncident { .. } => ProblemAction::UnlinkIncident,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// A problem was logged (status `new`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemCreated {
    /// Id.
    pub id: ProblemId,
    /// Title.
    pub title: Title,
    /// Description.
    pub description: Description,
    /// Priority.
    pub priority: Priority,
    /// Category.
    pub category_id: Option<CategoryId>,
    /// Configuration item.
    pub ci_id: Option<CiId>,
    /// Assignee.
    pub assignee_id: Option<UserId>,
    /// Root cause.
    pub root_cause: Option<RootCause>,
    /// Workaround.
    pub workaround: Option<Workaround>,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// The field changes of one [`ProblemUpdated`]; absent = unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProblemChanges {
    /// Title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Change<Title>>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Change<Description>>,
    /// Priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Change<Priority>>,
    /// Category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_id: Option<Change<Option<CategoryId>>>,
    /// Configuration item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_id: Option<Change<Option<CiId>>>,
    /// Assignee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee_id: Option<Change<Option<UserId>>>,
    /// Root cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_cause: Option<Change<Option<RootCause>>>,
    /// Workaround.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workaround: Option<Change<Option<Workaround>>>,
}

impl ProblemChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Fields were edited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemUpdated {
    /// What changed.
    pub changes: ProblemChanges,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Investigation started: `new → investigating`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemInvestigationStarted {
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Published to the known-error database: `investigating → known_error`. Carries the root
/// cause and workaround as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemKnownErrorPublished {
    /// The root cause (if known).
    pub root_cause: Option<RootCause>,
    /// The workaround.
    pub workaround: Workaround,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Fixed: `→ resolved`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemResolved {
    /// Status before.
    pub from: ProblemStatus,
    /// The fix.
    pub resolution: ResolutionText,
    /// The incidents linked at resolution (each gets a work note, by a reactor).
    pub incident_ids: Vec<IncidentId>,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Closed (final).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemClosed {
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// An incident was linked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemIncidentLinked {
    /// The incident.
    pub incident_id: IncidentId,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// An incident was unlinked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemIncidentUnlinked {
    /// The incident.
    pub incident_id: IncidentId,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Everything that can happen to a problem (`{"type", "data"}`; `type` is the variant name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
#[allow(clippy::enum_variant_names)] // the shared prefix makes stored type names unique
pub enum ProblemEvent {
    /// See [`ProblemCreated`].
    ProblemCreated(ProblemCreated),
    /// See [`ProblemUpdated`].
    ProblemUpdated(ProblemUpdated),
    /// See [`ProblemInvestigationStarted`].
    ProblemInvestigationStarted(ProblemInvestigationStarted),
    /// See [`ProblemKnownErrorPublished`].
    ProblemKnownErrorPublished(ProblemKnownErrorPublished),
    /// See [`ProblemResolved`].
    ProblemResolved(ProblemResolved),
    /// See [`ProblemClosed`].
    ProblemClosed(ProblemClosed),
    /// See [`ProblemIncidentLinked`].
    ProblemIncidentLinked(ProblemIncidentLinked),
    /// See [`ProblemIncidentUnlinked`].
    ProblemIncidentUnlinked(ProblemIncidentUnlinked),
}

impl ProblemEvent {
    /// Every `event_type` of this aggregate.
    pub const EVENT_TYPES: &'static [&'static str] = &[
        "ProblemCreated",
        "ProblemUpdated",
        "ProblemInvestigationStarted",
        "ProblemKnownErrorPublished",
        "ProblemResolved",
        "ProblemClosed",
        "ProblemIncidentLinked",
        "ProblemIncidentUnlinked",
    ];

    /// Who caused the event.
    pub fn actor(&self) -> Actor {
        match self {
            Self::ProblemCreated(e) => e.actor,
            Self::ProblemUpdated(e) => e.actor,
            Self::ProblemInvestigationStarted(e) => e.actor,
            Self::ProblemKnownErrorPublished(e) => e.actor,
            Self::ProblemResolved(e) => e.actor,
            Self::ProblemClosed(e) => e.actor,
            Self::ProblemIncidentLinked(e) => e.actor,
            Self::ProblemIncidentUnlinked(e) => e.actor,
        }
    }

    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::ProblemCreated(e) => e.at,
            Self::ProblemUpdated(e) => e.at,
            Self::ProblemInvestigationStarted(e) => e.at,
            Self::ProblemKnownErrorPublished(e) => e.at,
            Self::ProblemResolved(e) => e.at,
            Self::ProblemClosed(e) => e.at,
            Self::ProblemIncidentLinked(e) => e.at,
            Self::ProblemIncidentUnlinked(e) => e.at,
        }
    }
}

impl DomainEvent for ProblemEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::ProblemCreated(_) => "ProblemCreated",
            Self::ProblemUpdated(_) => "ProblemUpdated",
            Self::ProblemInvestigationStarted(_) => "ProblemInvestigationStarted",
            Self::ProblemKnownErrorPublished(_) => "ProblemKnownErrorPublished",
            Self::ProblemResolved(_) => "ProblemResolved",
            Self::ProblemClosed(_) => "ProblemClosed",
            Self::ProblemIncidentLinked(_) => "ProblemIncidentLinked",
            Self::ProblemIncidentUnlinked(_) => "ProblemIncidentUnlinked",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

/// The state of a created problem (its fields are the read model's columns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Id.
    pub id: ProblemId,
    /// Title.
    pub title: Title,
    /// Description.
    pub description: Description,
    /// Status.
    pub status: ProblemStatus,
    /// Priority.
    pub priority: Priority,
    /// Category.
    pub category_id: Option<CategoryId>,
    /// Configuration item.
    pub ci_id: Option<CiId>,
    /// Assignee.
    pub assignee_id: Option<UserId>,
    /// Root cause.
    pub root_cause: Option<RootCause>,
    /// Workaround.
    pub workaround: Option<Workaround>,
    /// The fix (once resolved).
    pub resolution: Option<ResolutionText>,
    /// Linked incidents, in link order.
    pub incident_ids: Vec<IncidentId>,
    /// When it was published to the known-error database (stays set).
    pub known_error_at: Option<DateTime<Utc>>,
    /// When resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// When closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// When logged.
    pub created_at: DateTime<Utc>,
    /// Who logged it.
    pub created_by: Actor,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
    /// Who last changed it.
    pub updated_by: Actor,
}

impl Problem {
    /// The status after `action`, or why it is rejected (see [`next_status`]).
    pub fn next_status(&self, action: ProblemAction) -> Result<ProblemStatus, ProblemError> {
        next_status(self.status, action)
    }

    /// The actions the transition table allows now.
    pub fn allowed_actions(&self) -> Vec<ProblemAction> {
        ProblemAction::ALL
            .iter()
            .copied()
            .filter(|a| self.next_status(*a).is_ok())
            .collect()
    }

    /// Whether it is in the known-error database.
    pub fn is_known_error(&self) -> bool {
        self.known_error_at.is_some()
    }

    fn decide(
        &self,
        command: ProblemCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<ProblemEvent>, ProblemError> {
        use ProblemCommand as C;
        use ProblemEvent as E;
        let action = command.action();
        match command {
            C::Create { .. } => Err(ProblemError::AlreadyExists),
            C::Update {
                title,
                description,
                priority,
                category_id,
                ci_id,
                assignee_id,
                root_cause,
                workaround,
                actor,
            } => {
                self.next_status(action)?;
                if self.is_known_error() && matches!(workaround, Some(None)) {
                    return Err(ProblemError::WorkaroundRequired);
                }
                let changes = ProblemChanges {
                    title: title.and_then(|v| Change::between(self.title.clone(), v)),
                    description: description
                        .and_then(|v| Change::between(self.description.clone(), v)),
                    priority: priority.and_then(|v| Change::between(self.priority, v)),
                    category_id: category_id.and_then(|v| Change::between(self.category_id, v)),
                    ci_id: ci_id.and_then(|v| Change::between(self.ci_id, v)),
                    assignee_id: assignee_id.and_then(|v| Change::between(self.assignee_id, v)),
                    root_cause: root_cause
                        .and_then(|v| Change::between(self.root_cause.clone(), v)),
                    workaround: workaround
                        .and_then(|v| Change::between(self.workaround.clone(), v)),
                };
                if changes.is_empty() {
                    return Ok(Vec::new());
                }
                Ok(vec![E::ProblemUpdated(ProblemUpdated {
                    changes,
                    actor,
                    at: now,
                })])
            }
            C::StartInvestigation { actor } => {
                self.next_status(action)?;
                Ok(vec![E::ProblemInvestigationStarted(
                    ProblemInvestigationStarted { actor, at: now },
                )])
            }
            C::MarkKnownError {
                root_cause,
                workaround,
                actor,
            } => {
                self.next_status(action)?;
                let Some(workaround) = workaround.or_else(|| self.workaround.clone()) else {
                    return Err(ProblemError::WorkaroundRequired);
                };
                Ok(vec![E::ProblemKnownErrorPublished(
                    ProblemKnownErrorPublished {
                        root_cause: root_cause.or_else(|| self.root_cause.clone()),
                        workaround,
                        actor,
                        at: now,
                    },
                )])
            }
            C::Resolve { resolution, actor } => {
                self.next_status(action)?;
                Ok(vec![E::ProblemResolved(ProblemResolved {
                    from: self.status,
                    resolution,
                    incident_ids: self.incident_ids.clone(),
                    actor,
                    at: now,
                })])
            }
            C::Close { actor } => {
                self.next_status(action)?;
                Ok(vec![E::ProblemClosed(ProblemClosed { actor, at: now })])
            }
            C::LinkIncident { incident_id, actor } => {
                self.next_status(action)?;
                if self.incident_ids.contains(&incident_id) {
                    return Ok(Vec::new());
                }
                Ok(vec![E::ProblemIncidentLinked(ProblemIncidentLinked {
                    incident_id,
                    actor,
                    at: now,
                })])
            }
            C::UnlinkIncident { incident_id, actor } => {
                self.next_status(action)?;
                if !self.incident_ids.contains(&incident_id) {
                    return Err(ProblemError::IncidentNotLinked(incident_id));
                }
                Ok(vec![E::ProblemIncidentUnlinked(ProblemIncidentUnlinked {
                    incident_id,
                    actor,
                    at: now,
                })])
            }
        }
    }

    fn apply(&mut self, event: &ProblemEvent) {
        self.updated_at = event.at();
        self.updated_by = event.actor();
        match event {
            ProblemEvent::ProblemCreated(_) => {}
            ProblemEvent::ProblemUpdated(e) => {
                let c = &e.changes;
                if let Some(x) = &c.title {
                    self.title = x.new.clone();
                }
                if let Some(x) = &c.description {
                    self.description = x.new.clone();
                }
                if let Some(x) = &c.priority {
                    self.priority = x.new;
                }
                if let Some(x) = &c.category_id {
                    self.category_id = x.new;
                }
                if let Some(x) = &c.ci_id {
                    self.ci_id = x.new;
                }
                if let Some(x) = &c.assignee_id {
                    self.assignee_id = x.new;
                }
                if let Some(x) = &c.root_cause {
                    self.root_cause = x.new.clone();
                }
                if let Some(x) = &c.workaround {
                    self.workaround = x.new.clone();
                }
            }
            ProblemEvent::ProblemInvestigationStarted(_) => {
                self.status = ProblemStatus::Investigating;
            }
            ProblemEvent::ProblemKnownErrorPublished(e) => {
                self.status = ProblemStatus::KnownError;
                self.root_cause = e.root_cause.clone();
                self.workaround = Some(e.workaround.clone());
                self.known_error_at.get_or_insert(e.at);
            }
            ProblemEvent::ProblemResolved(e) => {
                self.status = ProblemStatus::Resolved;
                self.resolution = Some(e.resolution.clone());
                self.resolved_at = Some(e.at);
            }
            ProblemEvent::ProblemClosed(e) => {
                self.status = ProblemStatus::Closed;
                self.closed_at = Some(e.at);
            }
            ProblemEvent::ProblemIncidentLinked(e) => {
                if !self.incident_ids.contains(&e.incident_id) {
                    self.incident_ids.push(e.incident_id);
                }
            }
            ProblemEvent::ProblemIncidentUnlinked(e) => {
                self.incident_ids.retain(|i| *i != e.incident_id);
            }
        }
    }
}

/// The problem aggregate: `None` until created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProblemAggregate {
    /// The problem, once created.
    pub state: Option<Problem>,
}

impl Aggregate for ProblemAggregate {
    const STREAM_TYPE: &'static str = "problem";
    type Command = ProblemCommand;
    type Event = ProblemEvent;
    type Error = ProblemError;

    fn decide(
        &self,
        command: ProblemCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<ProblemEvent>, ProblemError> {
        match (&self.state, command) {
            (Some(p), command) => p.decide(command, now),
            (
                None,
                ProblemCommand::Create {
                    id,
                    title,
                    description,
                    priority,
                    category_id,
                    ci_id,
                    assignee_id,
                    root_cause,
                    workaround,
                    actor,
                },
            ) => Ok(vec![ProblemEvent::ProblemCreated(ProblemCreated {
                id,
                title,
                description,
                priority,
                category_id,
                ci_id,
                assignee_id,
                root_cause,
                workaround,
                actor,
                at: now,
            })]),
            (None, _) => Err(ProblemError::NotFound),
        }
    }

    fn evolve(&mut self, event: &ProblemEvent) {
        match (self.state.as_mut(), event) {
            (Some(p), e) => p.apply(e),
            (None, ProblemEvent::ProblemCreated(e)) => {
                self.state = Some(Problem {
                    id: e.id,
                    title: e.title.clone(),
                    description: e.description.clone(),
                    status: ProblemStatus::New,
                    priority: e.priority,
                    category_id: e.category_id,
                    ci_id: e.ci_id,
                    assignee_id: e.assignee_id,
                    root_cause: e.root_cause.clone(),
                    workaround: e.workaround.clone(),
                    resolution: None,
                    incident_ids: Vec::new(),
                    known_error_at: None,
                    resolved_at: None,
                    closed_at: None,
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
#[path = "problem_tests.rs"]
mod tests;
