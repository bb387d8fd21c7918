//! The SLA configuration of a tenant as two small aggregates:
//!
//! - [`SlaCalendarAggregate`] (`stream_type = "sla_calendar"`, stream id = calendar id): a
//!   named business-hours [`CalendarDefinition`];
//! - [`SlaPolicyAggregate`] (`stream_type = "sla_policy"`, stream id = policy id): an
//!   [`SlaPolicy`] (rank, condition, default calendar, targets per priority).
//!
//! Both carry a `version: u32` that starts at 1 and is bumped by **every** event, so it always
//! equals the stream version (the ETag). Timers record the version of the policy and calendar
//! they were computed from; every event carries the full new state (definition or policy
//! snapshot), so a consumer never has to fold a history to know what is in force.
//!
//! Conventions as in [`crate::directory`]: `Create` on an existing stream is `AlreadyExists`,
//! anything else on a missing one `NotFound`; a command that changes nothing emits no event.
//! A deactivated calendar accepts nothing but a repeated `Deactivate` (a no-op). A deactivated
//! policy is only out of force: it may still be edited (so it can be prepared, or its calendars
//! changed, before `Reactivate`), and its snapshot says `active: false`. Values are validated here ([`SlaCalendarError::Invalid`] /
//! [`SlaPolicyError::Invalid`] name the offending field with a path such as
//! `weekly_hours[2].end` or `targets[1].response_minutes`). That referenced calendars, teams and
//! categories exist in the tenant, and that no active policy still uses a calendar being
//! deactivated, needs other streams and is checked by the command layer.

use crate::actor::Actor;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::ids::{CalendarId, SlaPolicyId};
use crate::sla::calendar::{CalendarDefinition, Holiday};
use crate::sla::policy::{PolicyCondition, SlaPolicy, SlaTarget};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The longest name of a calendar or policy, in characters.
pub const NAME_MAX_CHARS: usize = 200;
/// The largest target: one year (365 days) in minutes.
pub const MAX_TARGET_MINUTES: u32 = 365 * 24 * 60;

/// A trimmed name of 1..=[`NAME_MAX_CHARS`] characters, or the message for field `name`.
fn check_name(name: &str) -> Result<String, (String, String)> {
    let t = name.trim();
    if t.is_empty() {
        return Err(("name".into(), "must not be empty".into()));
    }
    if t.chars().count() > NAME_MAX_CHARS {
        return Err((
            "name".into(),
            format!("must be at most {NAME_MAX_CHARS} characters"),
        ));
    }
    Ok(t.to_owned())
}

/// Checks targets: at most one per priority, each with at least one metric, every minute count
/// in `1..=MAX_TARGET_MINUTES`. Returns `(field, message)` of the first problem.
pub fn check_targets(targets: &[SlaTarget]) -> Result<(), (String, String)> {
    for (i, t) in targets.iter().enumerate() {
        if let Some(j) = targets[..i].iter().position(|o| o.priority == t.priority) {
            return Err((
                format!("targets[{i}].priority"),
                format!(
                    "must be unique: targets[{j}] is already for priority {}",
                    t.priority
                ),
            ));
        }
        if t.response_minutes.is_none() && t.resolution_minutes.is_none() {
            return Err((
                format!("targets[{i}]"),
                "must set response_minutes or resolution_minutes".into(),
            ));
        }
        for (name, v) in [
            ("response_minutes", t.response_minutes),
            ("resolution_minutes", t.resolution_minutes),
        ] {
            if let Some(m) = v
                && !(1..=MAX_TARGET_MINUTES).contains(&m)
            {
                return Err((
                    format!("targets[{i}].{name}"),
                    format!("must be between 1 and {MAX_TARGET_MINUTES} (one year)"),
                ));
            }
        }
    }
    Ok(())
}

/// Targets in their canonical order: most urgent priority first.
fn canonical_targets(mut targets: Vec<SlaTarget>) -> Vec<SlaTarget> {
    targets.sort_by_key(|t| std::cmp::Reverse(t.priority));
    targets
}

/// Holidays in their canonical order: by date (then name).
fn canonical_holidays(mut holidays: Vec<Holiday>) -> Vec<Holiday> {
    holidays.sort_by(|a, b| a.date.cmp(&b.date).then_with(|| a.name.cmp(&b.name)));
    holidays
}

// =============================================================================================
// Calendars
// =============================================================================================

/// A request to change a business-hours calendar.
#[derive(Debug, Clone, PartialEq)]
pub enum SlaCalendarCommand {
    /// Create the calendar.
    Create {
        /// Id (= stream id).
        id: CalendarId,
        /// Name (trimmed; 1 to 200 characters).
        name: String,
        /// Zone, weekly hours and holidays.
        definition: CalendarDefinition,
        /// Who.
        actor: Actor,
    },
    /// Rename and/or replace the definition; `None` keeps it.
    Update {
        /// New name.
        name: Option<String>,
        /// New definition (replaces the whole definition).
        definition: Option<CalendarDefinition>,
        /// Who.
        actor: Actor,
    },
    /// Add imported holidays (an imported holiday replaces an existing one of the same date),
    /// or, with `replace`, make them the calendar's only holidays.
    ImportHolidays {
        /// The holidays.
        holidays: Vec<Holiday>,
        /// Replace all existing holidays instead of merging.
        replace: bool,
        /// Who.
        actor: Actor,
    },
    /// Retire the calendar. Timers already measured on it keep using it.
    Deactivate {
        /// Who.
        actor: Actor,
    },
}

/// A calendar was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaCalendarCreated {
    /// Id.
    pub id: CalendarId,
    /// Name.
    pub name: String,
    /// The definition.
    pub definition: CalendarDefinition,
    /// Always 1.
    pub version: u32,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A calendar was renamed, redefined or got holidays: the full new state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaCalendarUpdated {
    /// Name (possibly unchanged).
    pub name: String,
    /// The whole new definition.
    pub definition: CalendarDefinition,
    /// The new version.
    pub version: u32,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A calendar was retired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaCalendarDeactivated {
    /// The new version.
    pub version: u32,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Everything that can happen to a calendar (`{"type", "data"}`; `type` is the variant name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
#[allow(clippy::enum_variant_names)] // the shared prefix makes stored type names unique
pub enum SlaCalendarEvent {
    /// See [`SlaCalendarCreated`].
    SlaCalendarCreated(SlaCalendarCreated),
    /// See [`SlaCalendarUpdated`].
    SlaCalendarUpdated(SlaCalendarUpdated),
    /// See [`SlaCalendarDeactivated`].
    SlaCalendarDeactivated(SlaCalendarDeactivated),
}

impl SlaCalendarEvent {
    /// Every `event_type` of this aggregate.
    pub const EVENT_TYPES: &'static [&'static str] = &[
        "SlaCalendarCreated",
        "SlaCalendarUpdated",
        "SlaCalendarDeactivated",
    ];

    /// Who caused the event.
    pub fn actor(&self) -> Actor {
        match self {
            Self::SlaCalendarCreated(e) => e.actor,
            Self::SlaCalendarUpdated(e) => e.actor,
            Self::SlaCalendarDeactivated(e) => e.actor,
        }
    }

    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::SlaCalendarCreated(e) => e.at,
            Self::SlaCalendarUpdated(e) => e.at,
            Self::SlaCalendarDeactivated(e) => e.at,
        }
    }

    /// The calendar's version after the event.
    pub fn version(&self) -> u32 {
        match self {
            Self::SlaCalendarCreated(e) => e.version,
            Self::SlaCalendarUpdated(e) => e.version,
            Self::SlaCalendarDeactivated(e) => e.version,
        }
    }
}

impl DomainEvent for SlaCalendarEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::SlaCalendarCreated(_) => "SlaCalendarCreated",
            Self::SlaCalendarUpdated(_) => "SlaCalendarUpdated",
            Self::SlaCalendarDeactivated(_) => "SlaCalendarDeactivated",
        }
    }
}

/// Why a calendar command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlaCalendarError {
    /// The calendar has not been created.
    #[error("calendar not found")]
    NotFound,
    /// `Create` on an existing calendar.
    #[error("calendar already exists")]
    AlreadyExists,
    /// The calendar is deactivated.
    #[error("calendar is deactivated")]
    Deactivated,
    /// A value is invalid; `field` is a path such as `weekly_hours[2].end`.
    #[error("{field} {message}")]
    Invalid {
        /// The field (path).
        field: String,
        /// What is wrong ("must …").
        message: String,
    },
}

impl SlaCalendarError {
    /// A stable machine-readable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::Deactivated => "deactivated",
            Self::Invalid { .. } => "validation_error",
        }
    }

    fn invalid((field, message): (String, String)) -> Self {
        Self::Invalid { field, message }
    }
}

/// The state of a created calendar. Its serde form is the `rm_sla_calendars` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaCalendar {
    /// Id.
    pub id: CalendarId,
    /// Name.
    pub name: String,
    /// Zone, weekly hours and holidays.
    pub definition: CalendarDefinition,
    /// Bumped by every event (= the stream version).
    pub version: u32,
    /// Whether it may be referenced by policies.
    pub active: bool,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
}

/// The calendar aggregate: `None` until created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaCalendarAggregate {
    /// The calendar, once created.
    pub state: Option<SlaCalendar>,
}

/// The holidays of an iCalendar file (`ics`) for `calendar`, read in the calendar's own time
/// zone and expanded over `from_year..=to_year`, ready for
/// [`SlaCalendarCommand::ImportHolidays`]. A parse error is [`SlaCalendarError::Invalid`] on
/// field `ics`, its message starting with the line number (`line 12: …`).
pub fn holidays_from_ics(
    calendar: &CalendarDefinition,
    ics: &str,
    from_year: i32,
    to_year: i32,
) -> Result<Vec<Holiday>, SlaCalendarError> {
    let zone: chrono_tz::Tz =
        calendar
            .time_zone
            .parse()
            .map_err(|_| SlaCalendarError::Invalid {
                field: "time_zone".into(),
                message: format!("{:?} is not a known IANA time zone", calendar.time_zone),
            })?;
    crate::sla::ics::parse_holidays(ics, zone, from_year, to_year).map_err(|e| {
        SlaCalendarError::Invalid {
            field: "ics".into(),
            message: format!("line {}: {}", e.line, e.message),
        }
    })
}

fn validate_definition(def: &CalendarDefinition) -> Result<(), SlaCalendarError> {
    def.validate().map_err(|e| SlaCalendarError::Invalid {
        field: e.field,
        message: e.message,
    })
}

impl Aggregate for SlaCalendarAggregate {
    const STREAM_TYPE: &'static str = "sla_calendar";
    type Command = SlaCalendarCommand;
    type Event = SlaCalendarEvent;
    type Error = SlaCalendarError;

    fn decide(
        &self,
        command: SlaCalendarCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<SlaCalendarEvent>, SlaCalendarError> {
        use SlaCalendarCommand as C;
        use SlaCalendarEvent as E;
        let Some(cal) = &self.state else {
            return match command {
                C::Create {
                    id,
                    name,
                    definition,
                    actor,
                } => {
                    let name = check_name(&name).map_err(SlaCalendarError::invalid)?;
                    validate_definition(&definition)?;
                    Ok(vec![E::SlaCalendarCreated(SlaCalendarCreated {
                        id,
                        name,
                        definition: CalendarDefinition {
                            holidays: canonical_holidays(definition.holidays),
                            ..definition
                        },
                        version: 1,
                        actor,
                        at: now,
                    })])
                }
                _ => Err(SlaCalendarError::NotFound),
            };
        };
        // The full new state, or nothing if it is the current one.
        let updated = |name: String, definition: CalendarDefinition, actor| {
            if name == cal.name && definition == cal.definition {
                return Vec::new();
            }
            vec![E::SlaCalendarUpdated(SlaCalendarUpdated {
                name,
                definition,
                version: cal.version + 1,
                actor,
                at: now,
            })]
        };
        match command {
            C::Create { .. } => Err(SlaCalendarError::AlreadyExists),
            C::Deactivate { actor } if cal.active => {
                Ok(vec![E::SlaCalendarDeactivated(SlaCalendarDeactivated {
                    version: cal.version + 1,
                    actor,
                    at: now,
                })])
            }
            C::Deactivate { .. } => Ok(Vec::new()),
            C::Update { .. } | C::ImportHolidays { .. } if !cal.active => {
                Err(SlaCalendarError::Deactivated)
            }
            C::Update {
                name,
                definition,
                actor,
            } => {
                let name = match name {
                    Some(n) => check_name(&n).map_err(SlaCalendarError::invalid)?,
                    None => cal.name.clone(),
                };
                let definition = match definition {
                    Some(d) => {
                        validate_definition(&d)?;
                        CalendarDefinition {
                            holidays: canonical_holidays(d.holidays),
                            ..d
                        }
                    }
                    None => cal.definition.clone(),
                };
                Ok(updated(name, definition, actor))
            }
            C::ImportHolidays {
                holidays,
                replace,
                actor,
            } => {
                let mut merged: Vec<Holiday> = if replace {
                    Vec::new()
                } else {
                    cal.definition
                        .holidays
                        .iter()
                        .filter(|h| !holidays.iter().any(|n| n.date == h.date))
                        .cloned()
                        .collect()
                };
                merged.extend(holidays);
                let definition = CalendarDefinition {
                    holidays: canonical_holidays(merged),
                    ..cal.definition.clone()
                };
                validate_definition(&definition)?;
                Ok(updated(cal.name.clone(), definition, actor))
            }
        }
    }

    fn evolve(&mut self, event: &SlaCalendarEvent) {
        if let (None, SlaCalendarEvent::SlaCalendarCreated(e)) = (&self.state, event) {
            self.state = Some(SlaCalendar {
                id: e.id,
                name: e.name.clone(),
                definition: e.definition.clone(),
                version: e.version,
                active: true,
                created_at: e.at,
                updated_at: e.at,
            });
            return;
        }
        let Some(c) = self.state.as_mut() else {
            return;
        };
        c.updated_at = event.at();
        c.version = event.version();
        match event {
            SlaCalendarEvent::SlaCalendarCreated(_) => {}
            SlaCalendarEvent::SlaCalendarUpdated(e) => {
                c.name = e.name.clone();
                c.definition = e.definition.clone();
            }
            SlaCalendarEvent::SlaCalendarDeactivated(_) => c.active = false,
        }
    }
}

// =============================================================================================
// Policies
// =============================================================================================

/// A request to change an SLA policy.
#[derive(Debug, Clone, PartialEq)]
pub enum SlaPolicyCommand {
    /// Create the policy (active).
    Create {
        /// Id (= stream id).
        id: SlaPolicyId,
        /// Name (trimmed; 1 to 200 characters).
        name: String,
        /// Order of evaluation: lower first.
        rank: i32,
        /// Which incidents it applies to.
        condition: PolicyCondition,
        /// The calendar of targets that name none (`None` = 24x7).
        calendar_id: Option<CalendarId>,
        /// Targets, at most one per priority.
        targets: Vec<SlaTarget>,
        /// Who.
        actor: Actor,
    },
    /// Edit; `None` keeps a field, `Some(None)` clears the calendar (24x7).
    Update {
        /// New name.
        name: Option<String>,
        /// New rank.
        rank: Option<i32>,
        /// New condition (replaces the whole condition).
        condition: Option<PolicyCondition>,
        /// New default calendar.
        calendar_id: Option<Option<CalendarId>>,
        /// New targets (replace all targets).
        targets: Option<Vec<SlaTarget>>,
        /// Who.
        actor: Actor,
    },
    /// Take the policy out of force.
    Deactivate {
        /// Who.
        actor: Actor,
    },
    /// Put a deactivated policy back in force.
    Reactivate {
        /// Who.
        actor: Actor,
    },
}

/// A policy was created: its full snapshot (`version` 1, active).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaPolicyCreated {
    /// The policy.
    pub policy: SlaPolicy,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A policy was edited: its full new snapshot, with the new `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaPolicyUpdated {
    /// The policy as it is now.
    pub policy: SlaPolicy,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A policy was deactivated or reactivated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaPolicyActivityChanged {
    /// The new version.
    pub version: u32,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Everything that can happen to a policy (`{"type", "data"}`; `type` is the variant name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
#[allow(clippy::enum_variant_names)] // the shared prefix makes stored type names unique
pub enum SlaPolicyEvent {
    /// See [`SlaPolicyCreated`].
    SlaPolicyCreated(SlaPolicyCreated),
    /// See [`SlaPolicyUpdated`].
    SlaPolicyUpdated(SlaPolicyUpdated),
    /// The policy is no longer in force.
    SlaPolicyDeactivated(SlaPolicyActivityChanged),
    /// The policy is in force again.
    SlaPolicyReactivated(SlaPolicyActivityChanged),
}

impl SlaPolicyEvent {
    /// Every `event_type` of this aggregate.
    pub const EVENT_TYPES: &'static [&'static str] = &[
        "SlaPolicyCreated",
        "SlaPolicyUpdated",
        "SlaPolicyDeactivated",
        "SlaPolicyReactivated",
    ];

    /// Who caused the event.
    pub fn actor(&self) -> Actor {
        match self {
            Self::SlaPolicyCreated(e) => e.actor,
            Self::SlaPolicyUpdated(e) => e.actor,
            Self::SlaPolicyDeactivated(e) | Self::SlaPolicyReactivated(e) => e.actor,
        }
    }

    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::SlaPolicyCreated(e) => e.at,
            Self::SlaPolicyUpdated(e) => e.at,
            Self::SlaPolicyDeactivated(e) | Self::SlaPolicyReactivated(e) => e.at,
        }
    }

    /// The policy's version after the event.
    pub fn version(&self) -> u32 {
        match self {
            Self::SlaPolicyCreated(e) => e.policy.version,
            Self::SlaPolicyUpdated(e) => e.policy.version,
            Self::SlaPolicyDeactivated(e) | Self::SlaPolicyReactivated(e) => e.version,
        }
    }
}

impl DomainEvent for SlaPolicyEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::SlaPolicyCreated(_) => "SlaPolicyCreated",
            Self::SlaPolicyUpdated(_) => "SlaPolicyUpdated",
            Self::SlaPolicyDeactivated(_) => "SlaPolicyDeactivated",
            Self::SlaPolicyReactivated(_) => "SlaPolicyReactivated",
        }
    }
}

/// Why a policy command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlaPolicyError {
    /// The policy has not been created.
    #[error("SLA policy not found")]
    NotFound,
    /// `Create` on an existing policy.
    #[error("SLA policy already exists")]
    AlreadyExists,
    /// A value is invalid; `field` is a path such as `targets[1].response_minutes`.
    #[error("{field} {message}")]
    Invalid {
        /// The field (path).
        field: String,
        /// What is wrong ("must …").
        message: String,
    },
}

impl SlaPolicyError {
    /// A stable machine-readable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::Invalid { .. } => "validation_error",
        }
    }

    fn invalid((field, message): (String, String)) -> Self {
        Self::Invalid { field, message }
    }
}

/// The state of a created policy. Its serde form is the `rm_sla_policies` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaPolicyState {
    /// Id.
    pub id: SlaPolicyId,
    /// Name.
    pub name: String,
    /// Order of evaluation: lower first.
    pub rank: i32,
    /// Which incidents it applies to.
    pub condition: PolicyCondition,
    /// The calendar of targets that name none (`None` = 24x7).
    pub calendar_id: Option<CalendarId>,
    /// Targets, most urgent priority first.
    pub targets: Vec<SlaTarget>,
    /// Whether it is in force.
    pub active: bool,
    /// Bumped by every event (= the stream version).
    pub version: u32,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
}

impl SlaPolicyState {
    /// The policy as selection and timers use it.
    pub fn policy(&self) -> SlaPolicy {
        SlaPolicy {
            id: Some(self.id),
            name: self.name.clone(),
            rank: self.rank,
            condition: self.condition.clone(),
            calendar_id: self.calendar_id,
            targets: self.targets.clone(),
            active: self.active,
            version: self.version,
        }
    }

    fn apply_snapshot(&mut self, p: &SlaPolicy) {
        self.name = p.name.clone();
        self.rank = p.rank;
        self.condition = p.condition.clone();
        self.calendar_id = p.calendar_id;
        self.targets = p.targets.clone();
        self.active = p.active;
        self.version = p.version;
    }
}

/// The policy aggregate: `None` until created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaPolicyAggregate {
    /// The policy, once created.
    pub state: Option<SlaPolicyState>,
}

impl Aggregate for SlaPolicyAggregate {
    const STREAM_TYPE: &'static str = "sla_policy";
    type Command = SlaPolicyCommand;
    type Event = SlaPolicyEvent;
    type Error = SlaPolicyError;

    fn decide(
        &self,
        command: SlaPolicyCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<SlaPolicyEvent>, SlaPolicyError> {
        use SlaPolicyCommand as C;
        use SlaPolicyEvent as E;
        let Some(p) = &self.state else {
            return match command {
                C::Create {
                    id,
                    name,
                    rank,
                    condition,
                    calendar_id,
                    targets,
                    actor,
                } => {
                    let name = check_name(&name).map_err(SlaPolicyError::invalid)?;
                    check_targets(&targets).map_err(SlaPolicyError::invalid)?;
                    Ok(vec![E::SlaPolicyCreated(SlaPolicyCreated {
                        policy: SlaPolicy {
                            id: Some(id),
                            name,
                            rank,
                            condition,
                            calendar_id,
                            targets: canonical_targets(targets),
                            active: true,
                            version: 1,
                        },
                        actor,
                        at: now,
                    })])
                }
                _ => Err(SlaPolicyError::NotFound),
            };
        };
        let activity = |actor| SlaPolicyActivityChanged {
            version: p.version + 1,
            actor,
            at: now,
        };
        match command {
            C::Create { .. } => Err(SlaPolicyError::AlreadyExists),
            C::Deactivate { actor } if p.active => {
                Ok(vec![E::SlaPolicyDeactivated(activity(actor))])
            }
            C::Reactivate { actor } if !p.active => {
                Ok(vec![E::SlaPolicyReactivated(activity(actor))])
            }
            C::Deactivate { .. } | C::Reactivate { .. } => Ok(Vec::new()),
            C::Update {
                name,
                rank,
                condition,
                calendar_id,
                targets,
                actor,
            } => {
                let current = p.policy();
                let mut next = current.clone();
                if let Some(n) = name {
                    next.name = check_name(&n).map_err(SlaPolicyError::invalid)?;
                }
                if let Some(t) = targets {
                    check_targets(&t).map_err(SlaPolicyError::invalid)?;
                    next.targets = canonical_targets(t);
                }
                if let Some(r) = rank {
                    next.rank = r;
                }
                if let Some(c) = condition {
                    next.condition = c;
                }
                if let Some(c) = calendar_id {
                    next.calendar_id = c;
                }
                if next == current {
                    return Ok(Vec::new());
                }
                next.version = current.version + 1;
                Ok(vec![E::SlaPolicyUpdated(SlaPolicyUpdated {
                    policy: next,
                    actor,
                    at: now,
                })])
            }
        }
    }

    fn evolve(&mut self, event: &SlaPolicyEvent) {
        if let (None, SlaPolicyEvent::SlaPolicyCreated(e)) = (&self.state, event) {
            let Some(id) = e.policy.id else {
                return;
            };
            let mut s = SlaPolicyState {
                id,
                name: String::new(),
                rank: 0,
                condition: PolicyCondition::default(),
                calendar_id: None,
                targets: Vec::new(),
                active: true,
                version: 0,
                created_at: e.at,
                updated_at: e.at,
            };
            s.apply_snapshot(&e.policy);
            self.state = Some(s);
            return;
        }
        let Some(s) = self.state.as_mut() else {
            return;
        };
        s.updated_at = event.at();
        s.version = event.version();
        match event {
            SlaPolicyEvent::SlaPolicyCreated(_) => {}
            SlaPolicyEvent::SlaPolicyUpdated(e) => s.apply_snapshot(&e.policy),
            SlaPolicyEvent::SlaPolicyDeactivated(_) => s.active = false,
            SlaPolicyEvent::SlaPolicyReactivated(_) => s.active = true,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ids::{CategoryId, TeamId, UserId};
    use crate::sla::calendar::{Day, LocalTime, WeeklyRange};
    use crate::testing::{assert_round_trip, given, test_now};
    use crate::values::{Impact, Priority};
    use chrono::NaiveDate;
    use uuid::Uuid;

    fn admin() -> Actor {
        Actor::User(UserId(Uuid::from_u128(0xad)))
    }
    fn at() -> DateTime<Utc> {
        test_now()
    }
    fn t(s: &str) -> LocalTime {
        LocalTime::parse(s).unwrap()
    }
    fn range(day: Day, start: &str, end: &str) -> WeeklyRange {
        WeeklyRange {
            day,
            start: t(start),
            end: t(end),
        }
    }
    fn holiday(y: i32, m: u32, d: u32, name: &str) -> Holiday {
        Holiday {
            date: NaiveDate::from_ymd_opt(y, m, d).unwrap(),
            name: name.into(),
            closed: vec![],
        }
    }
    fn office() -> CalendarDefinition {
        CalendarDefinition {
            time_zone: "Europe/Berlin".into(),
            weekly_hours: [
                Day::Monday,
                Day::Tuesday,
                Day::Wednesday,
                Day::Thursday,
                Day::Friday,
            ]
            .into_iter()
            .map(|d| range(d, "08:00", "18:00"))
            .collect(),
            holidays: vec![holiday(2025, 12, 25, "Christmas Day")],
        }
    }
    fn cal_id() -> CalendarId {
        CalendarId(Uuid::from_u128(0xca1))
    }
    fn cal_created() -> SlaCalendarEvent {
        SlaCalendarEvent::SlaCalendarCreated(SlaCalendarCreated {
            id: cal_id(),
            name: "Office hours".into(),
            definition: office(),
            version: 1,
            actor: admin(),
            at: at(),
        })
    }
    fn cal_deactivated(version: u32) -> SlaCalendarEvent {
        SlaCalendarEvent::SlaCalendarDeactivated(SlaCalendarDeactivated {
            version,
            actor: admin(),
            at: at(),
        })
    }
    fn cal_create(name: &str, definition: CalendarDefinition) -> SlaCalendarCommand {
        SlaCalendarCommand::Create {
            id: cal_id(),
            name: name.into(),
            definition,
            actor: admin(),
        }
    }
    fn cal_update(
        name: Option<&str>,
        definition: Option<CalendarDefinition>,
    ) -> SlaCalendarCommand {
        SlaCalendarCommand::Update {
            name: name.map(str::to_owned),
            definition,
            actor: admin(),
        }
    }
    fn import(holidays: Vec<Holiday>, replace: bool) -> SlaCalendarCommand {
        SlaCalendarCommand::ImportHolidays {
            holidays,
            replace,
            actor: admin(),
        }
    }
    fn cal_updated(name: &str, definition: CalendarDefinition, version: u32) -> SlaCalendarEvent {
        SlaCalendarEvent::SlaCalendarUpdated(SlaCalendarUpdated {
            name: name.into(),
            definition,
            version,
            actor: admin(),
            at: at(),
        })
    }

    // ---- calendars ------------------------------------------------------------------------

    #[test]
    fn create_calendar() {
        let s = given::<SlaCalendarAggregate>([])
            .when(cal_create("  Office hours ", office()))
            .then([cal_created()]);
        let c = s.state.unwrap();
        assert!(c.active);
        assert_eq!((c.version, c.name.as_str()), (1, "Office hours"));
        assert_eq!(c.definition, office());
    }

    #[test]
    fn create_sorts_holidays_by_date() {
        let mut def = office();
        def.holidays = vec![
            holiday(2025, 12, 26, "Boxing Day"),
            holiday(2025, 1, 1, "New Year"),
        ];
        let s = given::<SlaCalendarAggregate>([])
            .when(cal_create("Office hours", def))
            .created_state();
        let dates: Vec<_> = s.definition.holidays.iter().map(|h| h.date).collect();
        assert_eq!(
            dates,
            [
                NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
                NaiveDate::from_ymd_opt(2025, 12, 26).unwrap()
            ]
        );
    }

    /// Decides and returns the created calendar's state (exactly one event expected).
    trait OneEvent {
        fn created_state(self) -> SlaCalendar;
    }
    impl OneEvent for crate::testing::Then<SlaCalendarAggregate> {
        fn created_state(self) -> SlaCalendar {
            let (mut state, result) = self.into_parts();
            let events = result.unwrap();
            assert_eq!(events.len(), 1, "{events:?}");
            state.evolve(&events[0]);
            state.state.unwrap()
        }
    }

    #[test]
    fn create_rejects_bad_names() {
        for (name, message) in [
            ("   ", "must not be empty"),
            (&*"x".repeat(201), "must be at most 200 characters"),
        ] {
            given::<SlaCalendarAggregate>([])
                .when(cal_create(name, office()))
                .then_err(SlaCalendarError::Invalid {
                    field: "name".into(),
                    message: message.into(),
                });
        }
        // 200 characters (not bytes) are fine.
        given::<SlaCalendarAggregate>([])
            .when(cal_create(&"営".repeat(200), office()))
            .created_state();
    }

    /// The error `validate()` reports for `def`, as the aggregate's rejection.
    fn invalid(def: &CalendarDefinition) -> SlaCalendarError {
        let e = def.validate().unwrap_err();
        SlaCalendarError::Invalid {
            field: e.field,
            message: e.message,
        }
    }

    fn bad_zone() -> CalendarDefinition {
        CalendarDefinition {
            time_zone: "Mars/Olympus_Mons".into(),
            ..office()
        }
    }

    fn overlapping() -> CalendarDefinition {
        let mut def = office();
        def.weekly_hours.push(range(Day::Monday, "17:00", "20:00"));
        def
    }

    #[test]
    fn create_rejects_invalid_definitions_naming_the_field() {
        let e = invalid(&bad_zone());
        assert!(matches!(&e, SlaCalendarError::Invalid { field, .. } if field == "time_zone"));
        given::<SlaCalendarAggregate>([])
            .when(cal_create("Office", bad_zone()))
            .then_err(e);
        let e = invalid(&overlapping());
        assert!(
            matches!(&e, SlaCalendarError::Invalid { field, .. } if field.starts_with("weekly_hours[")),
            "{e:?}"
        );
        given::<SlaCalendarAggregate>([])
            .when(cal_create("Office", overlapping()))
            .then_err(e);
    }

    #[test]
    fn create_twice_is_rejected() {
        given::<SlaCalendarAggregate>([cal_created()])
            .when(cal_create("Again", office()))
            .then_err(SlaCalendarError::AlreadyExists);
    }

    #[test]
    fn commands_on_a_missing_calendar_are_not_found() {
        for cmd in [
            cal_update(Some("x"), None),
            import(vec![], false),
            SlaCalendarCommand::Deactivate { actor: admin() },
        ] {
            given::<SlaCalendarAggregate>([])
                .when(cmd)
                .then_err(SlaCalendarError::NotFound);
        }
    }

    #[test]
    fn update_renames_and_redefines_with_a_new_version() {
        let mut def = office();
        def.weekly_hours
            .push(range(Day::Saturday, "09:00", "13:00"));
        let s = given::<SlaCalendarAggregate>([cal_created()])
            .when(cal_update(Some("Extended"), Some(def.clone())))
            .then([cal_updated("Extended", def.clone(), 2)]);
        let c = s.state.unwrap();
        assert_eq!((c.name.as_str(), c.version), ("Extended", 2));
        assert_eq!(c.definition, def);
        // Only the name: the event still carries the whole definition.
        given::<SlaCalendarAggregate>([cal_created()])
            .when(cal_update(Some("Renamed"), None))
            .then([cal_updated("Renamed", office(), 2)]);
        // Versions keep counting.
        given::<SlaCalendarAggregate>([cal_created(), cal_updated("Extended", def, 2)])
            .when(cal_update(Some("Third"), None))
            .then([cal_updated("Third", office_with_saturday(), 3)]);
    }

    fn office_with_saturday() -> CalendarDefinition {
        let mut def = office();
        def.weekly_hours
            .push(range(Day::Saturday, "09:00", "13:00"));
        def
    }

    #[test]
    fn update_that_changes_nothing_emits_nothing() {
        given::<SlaCalendarAggregate>([cal_created()])
            .when(cal_update(Some(" Office hours "), Some(office())))
            .then_nothing();
        given::<SlaCalendarAggregate>([cal_created()])
            .when(cal_update(None, None))
            .then_nothing();
    }

    #[test]
    fn update_rejects_invalid_values() {
        given::<SlaCalendarAggregate>([cal_created()])
            .when(cal_update(Some(""), None))
            .then_err(SlaCalendarError::Invalid {
                field: "name".into(),
                message: "must not be empty".into(),
            });
        given::<SlaCalendarAggregate>([cal_created()])
            .when(cal_update(None, Some(overlapping())))
            .then_err(invalid(&overlapping()));
    }

    #[test]
    fn import_merges_holidays_replacing_same_dates() {
        let mut expected = office();
        expected.holidays = vec![
            holiday(2025, 1, 1, "Neujahr"),
            holiday(2025, 12, 25, "Weihnachten"),
            holiday(2025, 12, 26, "Stephanstag"),
        ];
        given::<SlaCalendarAggregate>([cal_created()])
            .when(import(
                vec![
                    holiday(2025, 12, 26, "Stephanstag"),
                    holiday(2025, 12, 25, "Weihnachten"),
                    holiday(2025, 1, 1, "Neujahr"),
                ],
                false,
            ))
            .then([cal_updated("Office hours", expected, 2)]);
    }

    #[test]
    fn import_with_replace_drops_the_old_holidays() {
        let mut expected = office();
        expected.holidays = vec![holiday(2026, 1, 1, "New Year")];
        given::<SlaCalendarAggregate>([cal_created()])
            .when(import(vec![holiday(2026, 1, 1, "New Year")], true))
            .then([cal_updated("Office hours", expected, 2)]);
        let mut none = office();
        none.holidays = vec![];
        given::<SlaCalendarAggregate>([cal_created()])
            .when(import(vec![], true))
            .then([cal_updated("Office hours", none, 2)]);
    }

    #[test]
    fn import_of_known_holidays_emits_nothing() {
        given::<SlaCalendarAggregate>([cal_created()])
            .when(import(vec![holiday(2025, 12, 25, "Christmas Day")], false))
            .then_nothing();
        given::<SlaCalendarAggregate>([cal_created()])
            .when(import(vec![], false))
            .then_nothing();
    }

    #[test]
    fn ics_holidays_are_read_in_the_calendars_zone_and_errors_name_the_line() {
        let ics = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20260101\r\n\
                   RRULE:FREQ=YEARLY\r\nSUMMARY:New Year\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let holidays = holidays_from_ics(&office(), ics, 2026, 2027).unwrap();
        assert_eq!(
            holidays,
            [
                holiday(2026, 1, 1, "New Year"),
                holiday(2027, 1, 1, "New Year")
            ]
        );
        let bad = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\n\
                   RRULE:FREQ=DAILY\nEND:VEVENT\nEND:VCALENDAR\n";
        match holidays_from_ics(&office(), bad, 2026, 2026) {
            Err(SlaCalendarError::Invalid { field, message }) => {
                assert_eq!(field, "ics");
                assert!(message.starts_with("line 4: "), "{message}");
            }
            other => panic!("expected an ics error, got {other:?}"),
        }
        // The imported holidays then go through ImportHolidays as any others.
        let mut expected = office();
        expected.holidays.insert(0, holiday(2026, 1, 1, "New Year"));
        expected.holidays = canonical_holidays(expected.holidays);
        let one = holidays_from_ics(&office(), ics, 2026, 2026).unwrap();
        given::<SlaCalendarAggregate>([cal_created()])
            .when(import(one, false))
            .then([cal_updated("Office hours", expected, 2)]);
    }

    #[test]
    fn deactivate_calendar() {
        let s = given::<SlaCalendarAggregate>([cal_created()])
            .when(SlaCalendarCommand::Deactivate { actor: admin() })
            .then([cal_deactivated(2)]);
        let c = s.state.unwrap();
        assert!(!c.active);
        assert_eq!(c.version, 2);
        given::<SlaCalendarAggregate>([cal_created(), cal_deactivated(2)])
            .when(SlaCalendarCommand::Deactivate { actor: admin() })
            .then_nothing();
    }

    #[test]
    fn deactivated_calendar_rejects_changes() {
        for cmd in [
            cal_update(Some("x"), None),
            import(vec![holiday(2026, 1, 1, "x")], false),
        ] {
            given::<SlaCalendarAggregate>([cal_created(), cal_deactivated(2)])
                .when(cmd)
                .then_err(SlaCalendarError::Deactivated);
        }
    }

    #[test]
    fn calendar_events_round_trip() {
        let events = [
            cal_created(),
            cal_updated("Renamed", office(), 2),
            cal_deactivated(3),
        ];
        let types: Vec<_> = events.iter().map(DomainEvent::event_type).collect();
        assert_eq!(types, SlaCalendarEvent::EVENT_TYPES);
        for e in &events {
            assert_round_trip(e);
            assert_eq!(e.actor(), admin());
            assert_eq!(e.at(), at());
        }
        let versions: Vec<_> = events.iter().map(SlaCalendarEvent::version).collect();
        assert_eq!(versions, [1, 2, 3], "version = stream version");
    }

    #[test]
    fn calendar_error_codes() {
        assert_eq!(SlaCalendarError::NotFound.code(), "not_found");
        assert_eq!(SlaCalendarError::AlreadyExists.code(), "already_exists");
        assert_eq!(SlaCalendarError::Deactivated.code(), "deactivated");
        let e = SlaCalendarError::Invalid {
            field: "time_zone".into(),
            message: "must be an IANA zone".into(),
        };
        assert_eq!(e.code(), "validation_error");
        assert_eq!(e.to_string(), "time_zone must be an IANA zone");
    }

    // ---- policies -------------------------------------------------------------------------

    fn pol_id() -> SlaPolicyId {
        SlaPolicyId(Uuid::from_u128(0x9011c7))
    }
    fn target(priority: Priority, response: Option<u32>, resolution: Option<u32>) -> SlaTarget {
        SlaTarget {
            priority,
            response_minutes: response,
            resolution_minutes: resolution,
            calendar_id: None,
        }
    }
    fn targets() -> Vec<SlaTarget> {
        vec![
            target(Priority::Critical, Some(15), Some(240)),
            target(Priority::Low, None, Some(72 * 60)),
        ]
    }
    fn condition() -> PolicyCondition {
        PolicyCondition {
            team_id: Some(TeamId(Uuid::from_u128(7))),
            category_id: None,
            impact: Some(Impact::High),
        }
    }
    fn policy(version: u32) -> SlaPolicy {
        SlaPolicy {
            id: Some(pol_id()),
            name: "Network".into(),
            rank: 10,
            condition: condition(),
            calendar_id: Some(cal_id()),
            targets: targets(),
            active: true,
            version,
        }
    }
    fn pol_create(targets: Vec<SlaTarget>) -> SlaPolicyCommand {
        SlaPolicyCommand::Create {
            id: pol_id(),
            name: " Network ".into(),
            rank: 10,
            condition: condition(),
            calendar_id: Some(cal_id()),
            targets,
            actor: admin(),
        }
    }
    fn pol_created() -> SlaPolicyEvent {
        SlaPolicyEvent::SlaPolicyCreated(SlaPolicyCreated {
            policy: policy(1),
            actor: admin(),
            at: at(),
        })
    }
    fn pol_update() -> SlaPolicyCommand {
        update_with(|_| {})
    }
    /// The fields of an `Update`, to set some of them.
    struct UpdateFields<'a> {
        name: &'a mut Option<String>,
        rank: &'a mut Option<i32>,
        targets: &'a mut Option<Vec<SlaTarget>>,
    }
    /// An `Update` changing only what `f` sets.
    fn update_with(f: impl FnOnce(UpdateFields<'_>)) -> SlaPolicyCommand {
        let mut cmd = SlaPolicyCommand::Update {
            name: None,
            rank: None,
            condition: None,
            calendar_id: None,
            targets: None,
            actor: admin(),
        };
        if let SlaPolicyCommand::Update {
            name,
            rank,
            targets,
            ..
        } = &mut cmd
        {
            f(UpdateFields {
                name,
                rank,
                targets,
            });
        }
        cmd
    }
    fn activity(version: u32) -> SlaPolicyActivityChanged {
        SlaPolicyActivityChanged {
            version,
            actor: admin(),
            at: at(),
        }
    }
    fn pol_deactivated(version: u32) -> SlaPolicyEvent {
        SlaPolicyEvent::SlaPolicyDeactivated(activity(version))
    }

    #[test]
    fn create_policy() {
        let s = given::<SlaPolicyAggregate>([])
            .when(pol_create(targets()))
            .then([pol_created()]);
        let p = s.state.unwrap();
        assert_eq!(p.policy(), policy(1));
        assert!(p.active);
        assert_eq!((p.created_at, p.updated_at), (at(), at()));
    }

    #[test]
    fn create_orders_targets_most_urgent_first() {
        let (_, r) = given::<SlaPolicyAggregate>([])
            .when(pol_create(vec![
                target(Priority::Low, Some(480), None),
                target(Priority::High, Some(60), None),
                target(Priority::Medium, Some(240), None),
            ]))
            .into_parts();
        let SlaPolicyEvent::SlaPolicyCreated(e) = &r.unwrap()[0] else {
            panic!("created expected")
        };
        let order: Vec<_> = e.policy.targets.iter().map(|t| t.priority).collect();
        assert_eq!(order, [Priority::High, Priority::Medium, Priority::Low]);
    }

    #[test]
    fn policy_without_targets_or_conditions_is_allowed() {
        let (_, r) = given::<SlaPolicyAggregate>([])
            .when(SlaPolicyCommand::Create {
                id: pol_id(),
                name: "No SLA".into(),
                rank: 0,
                condition: PolicyCondition::default(),
                calendar_id: None,
                targets: vec![],
                actor: admin(),
            })
            .into_parts();
        assert_eq!(r.unwrap().len(), 1);
    }

    fn invalid_policy(field: &str, message: &str) -> SlaPolicyError {
        SlaPolicyError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    #[test]
    fn create_rejects_duplicate_priorities() {
        given::<SlaPolicyAggregate>([])
            .when(pol_create(vec![
                target(Priority::High, Some(60), None),
                target(Priority::Low, Some(60), None),
                target(Priority::High, None, Some(60)),
            ]))
            .then_err(invalid_policy(
                "targets[2].priority",
                "must be unique: targets[0] is already for priority high",
            ));
    }

    #[test]
    fn create_rejects_out_of_range_minutes() {
        let range = "must be between 1 and 525600 (one year)";
        for (t, field) in [
            (
                target(Priority::High, Some(0), None),
                "targets[0].response_minutes",
            ),
            (
                target(Priority::High, Some(60), Some(0)),
                "targets[0].resolution_minutes",
            ),
            (
                target(Priority::High, None, Some(MAX_TARGET_MINUTES + 1)),
                "targets[0].resolution_minutes",
            ),
        ] {
            given::<SlaPolicyAggregate>([])
                .when(pol_create(vec![t]))
                .then_err(invalid_policy(field, range));
        }
        let (_, r) = given::<SlaPolicyAggregate>([])
            .when(pol_create(vec![target(
                Priority::High,
                Some(1),
                Some(MAX_TARGET_MINUTES),
            )]))
            .into_parts();
        assert!(r.is_ok(), "the bounds themselves are allowed");
    }

    #[test]
    fn create_rejects_a_target_without_minutes() {
        given::<SlaPolicyAggregate>([])
            .when(pol_create(vec![
                target(Priority::High, Some(60), None),
                target(Priority::Low, None, None),
            ]))
            .then_err(invalid_policy(
                "targets[1]",
                "must set response_minutes or resolution_minutes",
            ));
    }

    #[test]
    fn policy_create_rejects_bad_names() {
        let mut cmd = pol_create(targets());
        if let SlaPolicyCommand::Create { name, .. } = &mut cmd {
            *name = "x".repeat(201);
        }
        given::<SlaPolicyAggregate>([])
            .when(cmd)
            .then_err(invalid_policy("name", "must be at most 200 characters"));
    }

    #[test]
    fn create_policy_twice_is_rejected() {
        given::<SlaPolicyAggregate>([pol_created()])
            .when(pol_create(targets()))
            .then_err(SlaPolicyError::AlreadyExists);
    }

    #[test]
    fn commands_on_a_missing_policy_are_not_found() {
        for cmd in [
            pol_update(),
            SlaPolicyCommand::Deactivate { actor: admin() },
            SlaPolicyCommand::Reactivate { actor: admin() },
        ] {
            given::<SlaPolicyAggregate>([])
                .when(cmd)
                .then_err(SlaPolicyError::NotFound);
        }
    }

    #[test]
    fn update_policy_emits_the_full_snapshot() {
        let new_targets = vec![target(Priority::Medium, Some(120), Some(960))];
        let mut expected = policy(2);
        expected.name = "Core network".into();
        expected.rank = 5;
        expected.condition = PolicyCondition {
            category_id: Some(CategoryId(Uuid::from_u128(8))),
            ..PolicyCondition::default()
        };
        expected.calendar_id = None;
        expected.targets = new_targets.clone();
        let s = given::<SlaPolicyAggregate>([pol_created()])
            .when(SlaPolicyCommand::Update {
                name: Some("Core network".into()),
                rank: Some(5),
                condition: Some(expected.condition.clone()),
                calendar_id: Some(None),
                targets: Some(new_targets),
                actor: admin(),
            })
            .then([SlaPolicyEvent::SlaPolicyUpdated(SlaPolicyUpdated {
                policy: expected.clone(),
                actor: admin(),
                at: at(),
            })]);
        assert_eq!(s.state.unwrap().policy(), expected);
        // One field: the rest of the snapshot is carried along.
        let mut ranked = policy(2);
        ranked.rank = 20;
        given::<SlaPolicyAggregate>([pol_created()])
            .when(update_with(|u| *u.rank = Some(20)))
            .then([SlaPolicyEvent::SlaPolicyUpdated(SlaPolicyUpdated {
                policy: ranked,
                actor: admin(),
                at: at(),
            })]);
    }

    #[test]
    fn policy_update_that_changes_nothing_emits_nothing() {
        given::<SlaPolicyAggregate>([pol_created()])
            .when(pol_update())
            .then_nothing();
        // The same targets in another order are the same targets.
        let mut reversed = targets();
        reversed.reverse();
        given::<SlaPolicyAggregate>([pol_created()])
            .when(SlaPolicyCommand::Update {
                name: Some("Network".into()),
                rank: Some(10),
                condition: Some(condition()),
                calendar_id: Some(Some(cal_id())),
                targets: Some(reversed),
                actor: admin(),
            })
            .then_nothing();
    }

    #[test]
    fn policy_update_rejects_invalid_values() {
        given::<SlaPolicyAggregate>([pol_created()])
            .when(update_with(|u| *u.name = Some(" ".into())))
            .then_err(invalid_policy("name", "must not be empty"));
        given::<SlaPolicyAggregate>([pol_created()])
            .when(update_with(|u| {
                *u.targets = Some(vec![target(Priority::Low, Some(0), None)])
            }))
            .then_err(invalid_policy(
                "targets[0].response_minutes",
                "must be between 1 and 525600 (one year)",
            ));
    }

    #[test]
    fn deactivate_and_reactivate_policy() {
        let s = given::<SlaPolicyAggregate>([pol_created()])
            .when(SlaPolicyCommand::Deactivate { actor: admin() })
            .then([pol_deactivated(2)]);
        let p = s.state.unwrap();
        assert!(!p.active);
        assert_eq!(p.version, 2);
        assert!(!p.policy().active);
        given::<SlaPolicyAggregate>([pol_created(), pol_deactivated(2)])
            .when(SlaPolicyCommand::Deactivate { actor: admin() })
            .then_nothing();
        let s = given::<SlaPolicyAggregate>([pol_created(), pol_deactivated(2)])
            .when(SlaPolicyCommand::Reactivate { actor: admin() })
            .then([SlaPolicyEvent::SlaPolicyReactivated(activity(3))]);
        let p = s.state.unwrap();
        assert!(p.active);
        assert_eq!(p.version, 3);
        given::<SlaPolicyAggregate>([pol_created()])
            .when(SlaPolicyCommand::Reactivate { actor: admin() })
            .then_nothing();
    }

    #[test]
    fn deactivated_policy_can_be_edited_and_stays_deactivated() {
        let mut expected = policy(3);
        expected.rank = 1;
        expected.active = false;
        let s = given::<SlaPolicyAggregate>([pol_created(), pol_deactivated(2)])
            .when(update_with(|u| *u.rank = Some(1)))
            .then([SlaPolicyEvent::SlaPolicyUpdated(SlaPolicyUpdated {
                policy: expected,
                actor: admin(),
                at: at(),
            })]);
        let p = s.state.unwrap();
        assert!(!p.active);
        assert_eq!((p.rank, p.version), (1, 3));
    }

    #[test]
    fn policy_events_round_trip() {
        let mut updated = policy(2);
        updated.name = "Renamed".into();
        let events = [
            pol_created(),
            SlaPolicyEvent::SlaPolicyUpdated(SlaPolicyUpdated {
                policy: updated,
                actor: admin(),
                at: at(),
            }),
            pol_deactivated(3),
            SlaPolicyEvent::SlaPolicyReactivated(activity(4)),
        ];
        let types: Vec<_> = events.iter().map(DomainEvent::event_type).collect();
        assert_eq!(types, SlaPolicyEvent::EVENT_TYPES);
        for e in &events {
            assert_round_trip(e);
            assert_eq!(e.actor(), admin());
            assert_eq!(e.at(), at());
        }
        let versions: Vec<_> = events.iter().map(SlaPolicyEvent::version).collect();
        assert_eq!(versions, [1, 2, 3, 4], "version = stream version");
        let p = SlaPolicyAggregate::replay(&events).state.unwrap();
        assert_eq!((p.version, p.active, p.name.as_str()), (4, true, "Renamed"));
    }

    #[test]
    fn policy_state_serialises_as_the_read_model_row() {
        let s = SlaPolicyAggregate::replay(&[pol_created()]);
        let v = serde_json::to_value(&s).unwrap();
        let keys: Vec<&str> = v["state"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for k in [
            "id",
            "name",
            "rank",
            "condition",
            "calendar_id",
            "targets",
            "active",
            "version",
            "created_at",
            "updated_at",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        let back: SlaPolicyAggregate = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn policy_error_codes() {
        assert_eq!(SlaPolicyError::NotFound.code(), "not_found");
        assert_eq!(SlaPolicyError::AlreadyExists.code(), "already_exists");
        assert_eq!(invalid_policy("name", "x").code(), "validation_error");
    }
}
