//! The bodies the bus sends: Slack incoming-webhook messages (Block Kit `blocks` with a `text`
//! fallback) and Jira REST v3 requests (descriptions and comments in the Atlassian Document
//! Format, `{"type": "doc", "version": 1, "content": […]}`).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// What the bus knows about an incident when it writes a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentInfo {
    /// `INC000123` (empty if unknown).
    pub number: String,
    /// Title.
    pub title: String,
    /// Description (may be empty).
    pub description: String,
    /// Priority.
    pub priority: String,
    /// Impact.
    pub impact: String,
    /// Urgency.
    pub urgency: String,
    /// Status.
    pub status: String,
}

impl IncidentInfo {
    fn label(&self) -> String {
        if self.number.is_empty() {
            "incident".to_owned()
        } else {
            self.number.clone()
        }
    }
}

/// Cuts `s` to at most `max` characters (an ellipsis marks the cut).
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Escapes text for Slack `mrkdwn` (`&`, `<`, `>` are control characters there).
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn plain(text: &str) -> Value {
    // Header blocks take plain_text of at most 150 characters.
    json!({ "type": "plain_text", "text": truncate(text, 150), "emoji": true })
}

fn mrkdwn(text: &str) -> Value {
    // Section text: at most 3000 characters.
    json!({ "type": "mrkdwn", "text": truncate(text, 3000) })
}

fn field(name: &str, value: &str) -> Value {
    mrkdwn(&format!(
        "*{}*\n{}",
        slack_escape(name),
        slack_escape(value)
    ))
}

fn context(at: DateTime<Utc>) -> Value {
    json!({
        "type": "context",
        "elements": [mrkdwn(&format!("eventdesk · {}", at.format("%Y-%m-%d %H:%M UTC")))],
    })
}

/// A new critical incident.
pub fn slack_critical_incident(inc: &IncidentInfo, at: DateTime<Utc>) -> Value {
    let headline = format!("Critical incident {}", inc.label());
    let mut body = format!("*{}*", slack_escape(&inc.title));
    if !inc.description.trim().is_empty() {
        body.push('\n');
        body.push_str(&slack_escape(&truncate(inc.description.trim(), 1000)));
    }
    json!({
        "text": format!("{headline}: {}", inc.title),
        "blocks": [
            { "type": "header", "text": plain(&format!("🚨 {headline}")) },
            { "type": "section", "text": mrkdwn(&body) },
            { "type": "section", "fields": [
                field("Priority", &inc.priority),
                field("Impact", &inc.impact),
                field("Urgency", &inc.urgency),
            ] },
            context(at),
        ],
    })
}

/// An SLA warning (`threshold` < 100) or breach (`threshold` = 100).
pub fn slack_sla(
    inc: &IncidentInfo,
    metric: &str,
    threshold: u8,
    crossed_at: DateTime<Utc>,
) -> Value {
    let breach = threshold >= 100;
    let headline = if breach {
        format!("SLA breached: {}", inc.label())
    } else {
        format!("SLA warning ({threshold}%): {}", inc.label())
    };
    let what = if breach {
        format!("The *{metric}* target was missed.")
    } else {
        format!("{threshold}% of the *{metric}* target has elapsed.")
    };
    json!({
        "text": format!("{headline} {}", inc.title),
        "blocks": [
            { "type": "header", "text": plain(&format!("{} {headline}", if breach { "🔴" } else { "⏱️" })) },
            { "type": "section", "text": mrkdwn(&format!("*{}*\n{what}", slack_escape(&inc.title))) },
            { "type": "section", "fields": [
                field("Priority", &inc.priority),
                field("Status", &inc.status),
                field("Crossed at", &crossed_at.format("%Y-%m-%d %H:%M UTC").to_string()),
            ] },
            context(crossed_at),
        ],
    })
}

/// The numbers of a daily summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Open incidents (not resolved, closed or cancelled).
    pub open: i64,
    /// Of those, critical.
    pub open_critical: i64,
    /// Of those, high.
    pub open_high: i64,
    /// Open and past their resolution due time.
    pub overdue: i64,
    /// Created in the last 24 hours.
    pub created: i64,
    /// Resolved in the last 24 hours.
    pub resolved: i64,
}

/// The daily summary for `date` (the tenant's local date).
pub fn slack_daily_summary(date: &str, s: &Summary, at: DateTime<Utc>) -> Value {
    json!({
        "text": format!("Daily incident summary {date}: {} open, {} created, {} resolved", s.open, s.created, s.resolved),
        "blocks": [
            { "type": "header", "text": plain(&format!("📊 Daily incident summary — {date}")) },
            { "type": "section", "fields": [
                field("Open", &s.open.to_string()),
                field("Open critical", &s.open_critical.to_string()),
                field("Open high", &s.open_high.to_string()),
                field("Overdue", &s.overdue.to_string()),
                field("Created (24 h)", &s.created.to_string()),
                field("Resolved (24 h)", &s.resolved.to_string()),
            ] },
            context(at),
        ],
    })
}

/// An Atlassian Document Format document: one paragraph per non-empty line.
pub fn adf_doc(text: &str) -> Value {
    let paragraphs: Vec<Value> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .map(|l| json!({ "type": "paragraph", "content": [{ "type": "text", "text": l }] }))
        .collect();
    let content = if paragraphs.is_empty() {
        vec![json!({ "type": "paragraph", "content": [] })]
    } else {
        paragraphs
    };
    json!({ "type": "doc", "version": 1, "content": content })
}

/// `POST /rest/api/3/issue` body for an incident.
pub fn jira_issue(project_key: &str, issue_type: &str, inc: &IncidentInfo) -> Value {
    let summary = truncate(&format!("[{}] {}", inc.label(), inc.title), 255);
    let mut text = format!(
        "eventdesk incident {} — priority {}, impact {}, urgency {}.",
        inc.label(),
        inc.priority,
        inc.impact,
        inc.urgency
    );
    if !inc.description.trim().is_empty() {
        text.push('\n');
        text.push_str(&truncate(inc.description.trim(), 30_000));
    }
    let mut labels = vec![json!("eventdesk")];
    if !inc.number.is_empty() {
        labels.push(json!(inc.number));
    }
    json!({
        "fields": {
            "project": { "key": project_key },
            "issuetype": { "name": issue_type },
            "summary": summary,
            "description": adf_doc(&text),
            "labels": labels,
        }
    })
}

/// `POST /rest/api/3/issue/{key}/comment` body.
pub fn jira_comment(text: &str) -> Value {
    json!({ "body": adf_doc(&truncate(text, 30_000)) })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn inc() -> IncidentInfo {
        IncidentInfo {
            number: "INC000007".into(),
            title: "Mail <relay> & queue down".into(),
            description: "line one\n\nline two".into(),
            priority: "critical".into(),
            impact: "extensive".into(),
            urgency: "critical".into(),
            status: "new".into(),
        }
    }

    #[test]
    fn slack_messages_have_blocks_and_escape_mrkdwn() {
        let at = chrono::DateTime::<Utc>::UNIX_EPOCH;
        for m in [
            slack_critical_incident(&inc(), at),
            slack_sla(&inc(), "resolution", 75, at),
            slack_sla(&inc(), "response", 100, at),
            slack_daily_summary("2025-01-06", &Summary::default(), at),
        ] {
            assert!(m["text"].is_string());
            let blocks = m["blocks"].as_array().unwrap();
            assert_eq!(blocks[0]["type"], "header");
            assert_eq!(blocks[0]["text"]["type"], "plain_text");
            assert!(blocks.iter().all(|b| b["type"].is_string()));
        }
        let m = slack_critical_incident(&inc(), at);
        let body = m["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(body.contains("&lt;relay&gt; &amp; queue"), "{body}");
        assert!(
            slack_sla(&inc(), "response", 100, at)["text"]
                .as_str()
                .unwrap()
                .starts_with("SLA breached")
        );
    }

    #[test]
    fn jira_bodies_are_adf() {
        let i = jira_issue("OPS", "Task", &inc());
        assert_eq!(i["fields"]["project"]["key"], "OPS");
        assert_eq!(i["fields"]["issuetype"]["name"], "Task");
        assert_eq!(
            i["fields"]["summary"],
            "[INC000007] Mail <relay> & queue down"
        );
        let d = &i["fields"]["description"];
        assert_eq!(d["type"], "doc");
        assert_eq!(d["version"], 1);
        // Empty lines are dropped: ADF text nodes must not be empty.
        assert_eq!(d["content"].as_array().unwrap().len(), 3);
        let c = jira_comment("Resolved: rebooted");
        assert_eq!(c["body"]["type"], "doc");
        assert_eq!(
            c["body"]["content"][0]["content"][0]["text"],
            "Resolved: rebooted"
        );
        assert_eq!(adf_doc("")["content"][0]["content"], json!([]));
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
