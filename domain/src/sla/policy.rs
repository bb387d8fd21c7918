//! SLA policies as data, and the choice of the policy that governs an incident.
//!
//! A policy holds response and resolution targets per priority, each measured on a calendar
//! (the target's own, else the policy's, else the built-in 24x7 one). Policies are tried in
//! `rank` order (then by id, which is time-ordered); the first active policy whose condition
//! matches the incident wins. A policy without conditions matches every incident, so it acts as
//! the default. When a tenant has no matching policy, [`SlaPolicy::builtin_default`] applies.

use crate::ids::{CalendarId, CategoryId, SlaPolicyId, TeamId};
use crate::values::{Impact, Priority};
use serde::{Deserialize, Serialize};

/// Which incidents a policy applies to: every given field must match; none given = all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyCondition {
    /// The incident's assignment group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<TeamId>,
    /// The incident's category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_id: Option<CategoryId>,
    /// The incident's impact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<Impact>,
}

impl PolicyCondition {
    /// Whether an incident with these fields matches.
    pub fn matches(&self, facts: &IncidentFacts) -> bool {
        self.team_id.is_none_or(|t| facts.team_id == Some(t))
            && self
                .category_id
                .is_none_or(|c| facts.category_id == Some(c))
            && self.impact.is_none_or(|i| facts.impact == i)
    }

    /// Whether the condition matches every incident.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The fields of an incident that policy selection and targets depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentFacts {
    /// Priority.
    pub priority: Priority,
    /// Impact.
    pub impact: Impact,
    /// Assignment group.
    pub team_id: Option<TeamId>,
    /// Category.
    pub category_id: Option<CategoryId>,
}

/// The targets for one priority. A missing target means "no timer for that metric".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaTarget {
    /// The priority these targets are for.
    pub priority: Priority,
    /// Time to first response, in business minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_minutes: Option<u32>,
    /// Time to resolution, in business minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution_minutes: Option<u32>,
    /// The calendar these targets are measured on (else the policy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar_id: Option<CalendarId>,
}

/// An SLA policy of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaPolicy {
    /// Id (`None` for the built-in default).
    pub id: Option<SlaPolicyId>,
    /// Name.
    pub name: String,
    /// Order of evaluation: lower first.
    pub rank: i32,
    /// Which incidents it applies to.
    pub condition: PolicyCondition,
    /// The calendar of targets that name none (`None` = 24x7).
    pub calendar_id: Option<CalendarId>,
    /// Targets per priority.
    pub targets: Vec<SlaTarget>,
    /// Whether it is in force.
    pub active: bool,
    /// Bumped by every change; timers record the version they were computed from.
    pub version: u32,
}

/// Which of the two SLA measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaMetric {
    /// Time to first response.
    Response,
    /// Time to resolution.
    Resolution,
}

impl SlaMetric {
    /// Both metrics.
    pub const ALL: [SlaMetric; 2] = [SlaMetric::Response, SlaMetric::Resolution];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Response => "response",
            Self::Resolution => "resolution",
        }
    }
}

impl std::fmt::Display for SlaMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resolved target: how long, on which calendar (`None` = 24x7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedTarget {
    /// Business seconds.
    pub target_secs: i64,
    /// Calendar (`None` = the built-in 24x7).
    pub calendar_id: Option<CalendarId>,
}

impl SlaPolicy {
    /// The policy that applies when a tenant has none that matches: on the 24x7 calendar,
    /// critical 15 min / 4 h, high 1 h / 8 h, medium 4 h / 24 h, low 8 h / 72 h.
    pub fn builtin_default() -> Self {
        let t = |priority, response, resolution| SlaTarget {
            priority,
            response_minutes: Some(response),
            resolution_minutes: Some(resolution),
            calendar_id: None,
        };
        Self {
            id: None,
            name: "Built-in default".to_owned(),
            rank: i32::MAX,
            condition: PolicyCondition::default(),
            calendar_id: None,
            targets: vec![
                t(Priority::Critical, 15, 4 * 60),
                t(Priority::High, 60, 8 * 60),
                t(Priority::Medium, 4 * 60, 24 * 60),
                t(Priority::Low, 8 * 60, 72 * 60),
            ],
            active: true,
            version: 0,
        }
    }

    /// The target of `metric` for `priority`, if the policy has one.
    pub fn target(&self, metric: SlaMetric, priority: Priority) -> Option<ResolvedTarget> {
        let t = self.targets.iter().find(|t| t.priority == priority)?;
        let minutes = match metric {
            SlaMetric::Response => t.response_minutes,
            SlaMetric::Resolution => t.resolution_minutes,
        }?;
        Some(ResolvedTarget {
            target_secs: i64::from(minutes) * 60,
            calendar_id: t.calendar_id.or(self.calendar_id),
        })
    }
}

/// The policy governing an incident: the first active policy (by `rank`, then id) whose
/// condition matches, else `None` (the caller then uses [`SlaPolicy::builtin_default`]).
pub fn select_policy<'a>(
    policies: &'a [SlaPolicy],
    facts: &IncidentFacts,
) -> Option<&'a SlaPolicy> {
    policies
        .iter()
        .filter(|p| p.active && p.condition.matches(facts))
        .min_by_key(|p| (p.rank, p.id))
}
