//! What the bus stores: integration settings, webhooks, deliveries, and the names they use.

use chrono::{DateTime, NaiveTime, Utc};
use eventdesk_domain::incident::IncidentEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The stream type whose events the bus delivers.
pub const DELIVERABLE_STREAM: &str = "incident";

/// Subscribes a webhook to every deliverable event type.
pub const ALL_EVENTS: &str = "*";

/// The event types a webhook may subscribe to (those of incident streams; other streams —
/// users with their password hashes, the security log — are never delivered).
pub fn deliverable_event_types() -> &'static [&'static str] {
    IncidentEvent::EVENT_TYPES
}

/// Whether a webhook with `filter` wants `event_type`.
pub fn filter_matches(filter: &[String], event_type: &str) -> bool {
    filter.iter().any(|f| f == ALL_EVENTS || f == event_type)
}

/// Where a delivery goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A webhook subscription.
    Webhook,
    /// The tenant's Slack incoming webhook.
    Slack,
    /// The tenant's Jira site.
    Jira,
}

impl Target {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Webhook => "webhook",
            Target::Slack => "slack",
            Target::Jira => "jira",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "webhook" => Some(Target::Webhook),
            "slack" => Some(Target::Slack),
            "jira" => Some(Target::Jira),
            _ => None,
        }
    }

    /// Requests in flight at once per endpoint and node: Slack asks for about one message per
    /// second per incoming webhook, Jira Cloud rate-limits per site.
    pub fn concurrency(self) -> usize {
        match self {
            Target::Webhook => 4,
            Target::Slack => 1,
            Target::Jira => 2,
        }
    }
}

/// The state of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// Delivered (2xx).
    Succeeded,
    /// Given up after the retry policy's bounds; may be redelivered.
    Dead,
    /// Caused by a test-mode API key: recorded, never sent.
    DryRun,
    /// Nothing to send any more (integration disabled, nothing to comment on).
    Skipped,
}

impl DeliveryStatus {
    /// Every status, in the order of the lifecycle.
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Succeeded,
        DeliveryStatus::Dead,
        DeliveryStatus::DryRun,
        DeliveryStatus::Skipped,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Dead => "dead",
            DeliveryStatus::DryRun => "dry_run",
            DeliveryStatus::Skipped => "skipped",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// The outcome of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// 2xx.
    Succeeded,
    /// Anything else (status, timeout, connection error).
    Failed,
    /// 429: retried after `Retry-After`, not counted against the attempt bound.
    RateLimited,
}

impl AttemptOutcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::RateLimited => "rate_limited",
        }
    }
}

/// An integration kind managed under `/api/v1/integrations/{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Slack.
    Slack,
    /// Jira.
    Jira,
}

impl Kind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Slack => "slack",
            Kind::Jira => "jira",
        }
    }
}

/// The associated data sealing an integration's credentials.
pub fn integration_aad(kind: Kind, tenant: Uuid) -> String {
    format!("eventdesk:integration:{}:{tenant}", kind.as_str())
}

/// The associated data sealing a webhook's secrets.
pub fn webhook_aad(tenant: Uuid, webhook: Uuid) -> String {
    format!("eventdesk:webhook:{tenant}:{webhook}")
}

/// Slack settings (what the API shows; the incoming-webhook URL is a credential).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackSettings {
    /// Post a message for every new incident of priority `critical`.
    pub notify_critical_incidents: bool,
    /// Post SLA warnings (50/75/90 %).
    pub notify_sla_warnings: bool,
    /// Post SLA breaches.
    pub notify_sla_breaches: bool,
    /// Local `HH:MM` of the daily summary (`None`: no summary).
    pub daily_summary_time: Option<String>,
    /// The tenant's IANA time zone for the summary, e.g. `Asia/Tokyo`.
    pub time_zone: String,
}

impl Default for SlackSettings {
    fn default() -> Self {
        Self {
            notify_critical_incidents: true,
            notify_sla_warnings: true,
            notify_sla_breaches: true,
            daily_summary_time: None,
            time_zone: "UTC".into(),
        }
    }
}

impl SlackSettings {
    /// The summary's local time, if set and valid.
    pub fn summary_time(&self) -> Option<NaiveTime> {
        self.daily_summary_time
            .as_deref()
            .and_then(|t| NaiveTime::parse_from_str(t, "%H:%M").ok())
    }

    /// The time zone, if valid.
    pub fn tz(&self) -> Option<chrono_tz::Tz> {
        self.time_zone.parse().ok()
    }
}

/// Slack credentials (sealed).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackCredentials {
    /// `https://hooks.slack.com/services/…`.
    pub webhook_url: String,
}

impl std::fmt::Debug for SlackCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlackCredentials(***)")
    }
}

/// What creates a Jira issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JiraTrigger {
    /// A new incident of priority `critical`.
    CriticalIncident,
    /// Every new incident.
    AnyIncident,
    /// An SLA breach of an incident that has no issue yet.
    SlaBreach,
}

impl JiraTrigger {
    /// Every trigger.
    pub const ALL: [JiraTrigger; 3] = [
        JiraTrigger::CriticalIncident,
        JiraTrigger::AnyIncident,
        JiraTrigger::SlaBreach,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JiraTrigger::CriticalIncident => "critical_incident",
            JiraTrigger::AnyIncident => "any_incident",
            JiraTrigger::SlaBreach => "sla_breach",
        }
    }
}

/// Jira settings (what the API shows; email and API token are credentials).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JiraSettings {
    /// The site, e.g. `https://acme.atlassian.net`.
    pub base_url: String,
    /// The project issues are created in, e.g. `OPS`.
    pub project_key: String,
    /// The issue type, e.g. `Task`.
    pub issue_type: String,
    /// What creates an issue.
    pub triggers: Vec<JiraTrigger>,
    /// Comment on the issue when the incident changes.
    pub comment_on_updates: bool,
}

/// Jira credentials (sealed): Basic auth with the account's email and an API token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JiraCredentials {
    /// The Atlassian account's email.
    pub email: String,
    /// The API token.
    pub api_token: String,
}

impl std::fmt::Debug for JiraCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JiraCredentials(***)")
    }
}

/// A stored integration row.
#[derive(Debug, Clone)]
pub struct IntegrationRow<S> {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Whether it runs.
    pub enabled: bool,
    /// The settings.
    pub settings: S,
    /// The sealed credentials.
    pub credentials_enc: Option<String>,
    /// First configured.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A webhook subscription as the API shows it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookView {
    /// Id.
    pub id: Uuid,
    /// Where deliveries go.
    pub url: String,
    /// Free text.
    pub description: Option<String>,
    /// Delivered event types (`*` = all).
    pub event_types: Vec<String>,
    /// `active` or `paused`.
    pub status: String,
    /// Until when the previous secret still signs (after a rotation).
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptView {
    /// 1, 2, …
    pub attempt: i32,
    /// When it started.
    pub at: DateTime<Utc>,
    /// The receiver's status code (none on a timeout or connection error).
    pub status_code: Option<i32>,
    /// How long it took.
    pub latency_ms: i32,
    /// What went wrong.
    pub error: Option<String>,
    /// `succeeded`, `failed` or `rate_limited`.
    pub outcome: String,
}

/// A delivery as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryView {
    /// Id; also the `webhook-id` header (the same on every retry).
    pub id: Uuid,
    /// The webhook.
    pub webhook_id: Option<Uuid>,
    /// The event delivered.
    pub event_id: Option<Uuid>,
    /// Its type.
    pub event_type: Option<String>,
    /// See [`DeliveryStatus`].
    pub status: String,
    /// Attempts made (all rounds).
    pub attempts: i32,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last attempt.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Its status code.
    pub last_status_code: Option<i32>,
    /// Its error.
    pub last_error: Option<String>,
    /// Its latency.
    pub last_latency_ms: Option<i32>,
    /// Created (when the bus read the event).
    pub created_at: DateTime<Utc>,
    /// Delivered, given up, or recorded as a dry run.
    pub completed_at: Option<DateTime<Utc>>,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<AttemptView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
        for t in [Target::Webhook, Target::Slack, Target::Jira] {
            assert_eq!(Target::parse(t.as_str()), Some(t));
        }
        assert!(filter_matches(&["*".into()], "IncidentCreated"));
        assert!(filter_matches(
            &["IncidentCreated".into()],
            "IncidentCreated"
        ));
        assert!(!filter_matches(
            &["IncidentClosed".into()],
            "IncidentCreated"
        ));
        assert!(deliverable_event_types().contains(&"SlaBreached"));
    }
}
