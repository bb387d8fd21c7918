//! `/api/v1/integrations`: the tenant's Slack and Jira settings (ADR 0016).
//!
//! `GET /api/v1/integrations` lists both; `GET`/`PUT /api/v1/integrations/{slack,jira}` read
//! and replace one. Credentials (the Slack incoming-webhook URL, the Jira email and API token)
//! are write-only: sealed with AES-256-GCM at rest and never returned — the answer says
//! `"configured": true` instead. Omitting them in a `PUT` keeps the stored ones, except that a
//! new Jira `base_url` needs the credentials again (they are never sent to a host they were not
//! given for). Every URL passes the SSRF guard (`422` naming the field).

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::StrictJson;
use crate::security;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use eventdesk_bus::model::{
    IntegrationRow, JiraCredentials, JiraSettings, JiraTrigger, Kind, SlackCredentials,
    SlackSettings, integration_aad,
};
use eventdesk_bus::repo;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// `PUT /api/v1/integrations/slack` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackPut {
    enabled: bool,
    #[serde(default)]
    webhook_url: Option<String>,
    #[serde(default)]
    notify_critical_incidents: Option<bool>,
    #[serde(default)]
    notify_sla_warnings: Option<bool>,
    #[serde(default)]
    notify_sla_breaches: Option<bool>,
    #[serde(default)]
    daily_summary_time: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
}

/// `PUT /api/v1/integrations/jira` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraPut {
    enabled: bool,
    base_url: String,
    project_key: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    api_token: Option<String>,
    #[serde(default)]
    issue_type: Option<String>,
    #[serde(default)]
    triggers: Option<Vec<String>>,
    #[serde(default)]
    comment_on_updates: Option<bool>,
}

/// The Slack settings as the API shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlackView {
    /// `slack`.
    pub kind: &'static str,
    /// Whether it runs.
    pub enabled: bool,
    /// Whether the incoming-webhook URL is stored (it is never shown).
    pub configured: bool,
    /// See [`SlackSettings`].
    pub notify_critical_incidents: bool,
    /// See [`SlackSettings`].
    pub notify_sla_warnings: bool,
    /// See [`SlackSettings`].
    pub notify_sla_breaches: bool,
    /// See [`SlackSettings`].
    pub daily_summary_time: Option<String>,
    /// See [`SlackSettings`].
    pub time_zone: String,
    /// Last change (`null`: never configured).
    pub updated_at: Option<DateTime<Utc>>,
}

impl SlackView {
    /// The view of a stored row (or of the defaults).
    pub fn of(row: Option<&IntegrationRow<SlackSettings>>) -> Self {
        let d = SlackSettings::default();
        let s = row.map(|r| &r.settings).unwrap_or(&d);
        Self {
            kind: "slack",
            enabled: row.is_some_and(|r| r.enabled),
            configured: row.is_some_and(|r| r.credentials_enc.is_some()),
            notify_critical_incidents: s.notify_critical_incidents,
            notify_sla_warnings: s.notify_sla_warnings,
            notify_sla_breaches: s.notify_sla_breaches,
            daily_summary_time: s.daily_summary_time.clone(),
            time_zone: s.time_zone.clone(),
            updated_at: row.map(|r| r.updated_at),
        }
    }
}

/// The Jira settings as the API shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JiraView {
    /// `jira`.
    pub kind: &'static str,
    /// Whether it runs.
    pub enabled: bool,
    /// Whether email and API token are stored (they are never shown).
    pub configured: bool,
    /// The site (`null`: never configured).
    pub base_url: Option<String>,
    /// The project (`null`: never configured).
    pub project_key: Option<String>,
    /// The issue type.
    pub issue_type: String,
    /// What creates an issue.
    pub triggers: Vec<JiraTrigger>,
    /// Whether changes are commented.
    pub comment_on_updates: bool,
    /// Last change (`null`: never configured).
    pub updated_at: Option<DateTime<Utc>>,
}

impl JiraView {
    /// The view of a stored row (or of the defaults).
    pub fn of(row: Option<&IntegrationRow<JiraSettings>>) -> Self {
        match row {
            Some(r) => Self {
                kind: "jira",
                enabled: r.enabled,
                configured: r.credentials_enc.is_some(),
                base_url: Some(r.settings.base_url.clone()),
                project_key: Some(r.settings.project_key.clone()),
                issue_type: r.settings.issue_type.clone(),
                triggers: r.settings.triggers.clone(),
                comment_on_updates: r.settings.comment_on_updates,
                updated_at: Some(r.updated_at),
            },
            None => Self {
                kind: "jira",
                enabled: false,
                configured: false,
                base_url: None,
                project_key: None,
                issue_type: DEFAULT_ISSUE_TYPE.into(),
                triggers: vec![JiraTrigger::CriticalIncident],
                comment_on_updates: true,
                updated_at: None,
            },
        }
    }
}

/// The issue type when none is given.
pub const DEFAULT_ISSUE_TYPE: &str = "Task";

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn load<S: serde::de::DeserializeOwned>(
    state: &AppState,
    tenant: uuid::Uuid,
    kind: Kind,
) -> ApiResult<Option<IntegrationRow<S>>> {
    let mut tx = repo::tenant_tx(&state.db.pool, tenant).await?;
    let row = repo::get_integration::<S>(&mut tx, tenant, kind).await?;
    tx.commit().await?;
    Ok(row)
}

/// `GET /api/v1/integrations`: Slack and Jira.
pub async fn list(State(state): State<AppState>, principal: Principal) -> ApiResult<Response> {
    let tenant = principal.tenant.0;
    let slack = load::<SlackSettings>(&state, tenant, Kind::Slack).await?;
    let jira = load::<JiraSettings>(&state, tenant, Kind::Jira).await?;
    let data = vec![
        serde_json::to_value(SlackView::of(slack.as_ref())).map_err(ApiError::internal)?,
        serde_json::to_value(JiraView::of(jira.as_ref())).map_err(ApiError::internal)?,
    ];
    Ok(Json(json!({ "data": data })).into_response())
}

/// `GET /api/v1/integrations/slack`.
pub async fn get_slack(State(state): State<AppState>, principal: Principal) -> ApiResult<Response> {
    let row = load::<SlackSettings>(&state, principal.tenant.0, Kind::Slack).await?;
    Ok(Json(SlackView::of(row.as_ref())).into_response())
}

/// `GET /api/v1/integrations/jira`.
pub async fn get_jira(State(state): State<AppState>, principal: Principal) -> ApiResult<Response> {
    let row = load::<JiraSettings>(&state, principal.tenant.0, Kind::Jira).await?;
    Ok(Json(JiraView::of(row.as_ref())).into_response())
}

/// `PUT /api/v1/integrations/slack`.
pub async fn put_slack(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    StrictJson { value, .. }: StrictJson<SlackPut>,
) -> ApiResult<Response> {
    let mut f = FieldErrors::default();
    let time = value
        .daily_summary_time
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if let Some(t) = time
        && (t.len() != 5 || chrono::NaiveTime::parse_from_str(t, "%H:%M").is_err())
    {
        f.push(
            "daily_summary_time",
            "must be a local time HH:MM (00:00 to 23:59)",
        );
    }
    let time_zone = value
        .time_zone
        .as_deref()
        .map(str::trim)
        .unwrap_or("UTC")
        .to_owned();
    if time_zone.parse::<chrono_tz::Tz>().is_err() {
        f.push("time_zone", "must be an IANA time zone, e.g. Asia/Tokyo");
    }
    f.done()?;
    let tenant = principal.tenant.0;
    let sealed = match &value.webhook_url {
        Some(u) => {
            let url = match state.bus.guard().check(u).await {
                Ok(t) => t.url.to_string(),
                Err(e) => return Err(ApiError::field("webhook_url", format!("the URL {e}"))),
            };
            let creds = serde_json::to_vec(&SlackCredentials { webhook_url: url })
                .map_err(ApiError::internal)?;
            Some(
                state
                    .bus
                    .secrets()
                    .seal(&creds, &integration_aad(Kind::Slack, tenant)),
            )
        }
        None => None,
    };
    let settings = SlackSettings {
        notify_critical_incidents: value.notify_critical_incidents.unwrap_or(true),
        notify_sla_warnings: value.notify_sla_warnings.unwrap_or(true),
        notify_sla_breaches: value.notify_sla_breaches.unwrap_or(true),
        daily_summary_time: time.map(str::to_owned),
        time_zone,
    };
    let mut tx = repo::tenant_tx(&state.db.pool, tenant).await?;
    let stored = repo::get_integration::<SlackSettings>(&mut tx, tenant, Kind::Slack).await?;
    if value.enabled
        && sealed.is_none()
        && stored.as_ref().is_none_or(|r| r.credentials_enc.is_none())
    {
        return Err(ApiError::field(
            "webhook_url",
            "is required to enable Slack (an incoming-webhook URL)",
        ));
    }
    let row = repo::put_integration(
        &mut tx,
        tenant,
        Kind::Slack,
        value.enabled,
        &settings,
        sealed.as_deref(),
    )
    .await?;
    tx.commit().await?;
    state.bus.nudge_summaries();
    security::record(
        &state,
        principal.tenant,
        "IntegrationUpdated",
        &principal.actor_label(),
        request_id(&headers),
        json!({ "kind": "slack", "enabled": value.enabled,
                "credentials_changed": sealed.is_some() }),
    )
    .await;
    Ok(Json(SlackView::of(Some(&row))).into_response())
}

fn is_project_key(k: &str) -> bool {
    let mut chars = k.chars();
    (2..=10).contains(&k.len())
        && chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// `PUT /api/v1/integrations/jira`.
pub async fn put_jira(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    StrictJson { value, .. }: StrictJson<JiraPut>,
) -> ApiResult<Response> {
    let mut f = FieldErrors::default();
    let project_key = value.project_key.trim().to_owned();
    if !is_project_key(&project_key) {
        f.push(
            "project_key",
            "must be a Jira project key: 2 to 10 of A-Z, 0-9 and _, starting with a letter",
        );
    }
    let issue_type = value
        .issue_type
        .as_deref()
        .map(str::trim)
        .unwrap_or(DEFAULT_ISSUE_TYPE)
        .to_owned();
    if issue_type.is_empty()
        || issue_type.chars().count() > 100
        || issue_type.chars().any(char::is_control)
    {
        f.push("issue_type", "must be 1 to 100 characters, one line");
    }
    let mut triggers = Vec::new();
    for (i, t) in value
        .triggers
        .clone()
        .unwrap_or_else(|| vec!["critical_incident".into()])
        .iter()
        .enumerate()
    {
        match JiraTrigger::ALL.iter().find(|x| x.as_str() == t) {
            Some(x) if !triggers.contains(x) => triggers.push(*x),
            Some(_) => {}
            None => f.push(
                &format!("triggers[{i}]"),
                "must be critical_incident, any_incident or sla_breach",
            ),
        }
    }
    let creds = match (&value.email, &value.api_token) {
        (None, None) => None,
        (Some(e), Some(t)) => {
            let e = e.trim();
            if e.len() > 254 || !e.contains('@') || e.chars().any(char::is_control) {
                f.push("email", "must be the Atlassian account's email");
            }
            if t.trim().is_empty() || t.len() > 1024 || t.chars().any(char::is_control) {
                f.push("api_token", "must be 1 to 1024 characters");
            }
            Some(JiraCredentials {
                email: e.to_owned(),
                api_token: t.trim().to_owned(),
            })
        }
        (Some(_), None) => {
            f.push("api_token", "is required with email");
            None
        }
        (None, Some(_)) => {
            f.push("email", "is required with api_token");
            None
        }
    };
    f.done()?;
    let base_url = match state.bus.guard().check(&value.base_url).await {
        Ok(t) if t.url.query().is_none() && t.url.fragment().is_none() => {
            t.url.as_str().trim_end_matches('/').to_owned()
        }
        Ok(_) => {
            return Err(ApiError::field(
                "base_url",
                "must be the site's address, without query or fragment",
            ));
        }
        Err(e) => return Err(ApiError::field("base_url", format!("the URL {e}"))),
    };
    let tenant = principal.tenant.0;
    let sealed = match &creds {
        Some(c) => Some(state.bus.secrets().seal(
            &serde_json::to_vec(c).map_err(ApiError::internal)?,
            &integration_aad(Kind::Jira, tenant),
        )),
        None => None,
    };
    let mut tx = repo::tenant_tx(&state.db.pool, tenant).await?;
    let stored = repo::get_integration::<JiraSettings>(&mut tx, tenant, Kind::Jira).await?;
    if sealed.is_none() {
        match &stored {
            Some(r) if r.credentials_enc.is_some() && r.settings.base_url != base_url => {
                return Err(ApiError::field(
                    "api_token",
                    "email and api_token must be given again when base_url changes",
                ));
            }
            Some(r) if r.credentials_enc.is_some() => {}
            _ if value.enabled => {
                return Err(ApiError::field(
                    "api_token",
                    "email and api_token are required to enable Jira",
                ));
            }
            _ => {}
        }
    }
    let settings = JiraSettings {
        base_url,
        project_key,
        issue_type,
        triggers,
        comment_on_updates: value.comment_on_updates.unwrap_or(true),
    };
    let row = repo::put_integration(
        &mut tx,
        tenant,
        Kind::Jira,
        value.enabled,
        &settings,
        sealed.as_deref(),
    )
    .await?;
    tx.commit().await?;
    security::record(
        &state,
        principal.tenant,
        "IntegrationUpdated",
        &principal.actor_label(),
        request_id(&headers),
        json!({ "kind": "jira", "enabled": value.enabled,
                "credentials_changed": sealed.is_some() }),
    )
    .await;
    Ok(Json(JiraView::of(Some(&row))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_keys() {
        for ok in ["OPS", "AB", "A1_B", "ABCDEFGHIJ"] {
            assert!(is_project_key(ok), "{ok}");
        }
        for bad in ["", "A", "ops", "1AB", "ABCDEFGHIJK", "A-B", "AB/.."] {
            assert!(!is_project_key(bad), "{bad}");
        }
    }
}
