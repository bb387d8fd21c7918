//! The integration bus's part of the document (ADR 0016): webhook and integration schemas,
//! and the delivery log's query parameters.

use super::{
    array, boolean, enumeration, int32, nullable, object, opt, reference, req, request, schema_ref,
    string, text, timestamp, uuid,
};
use crate::routes::webhooks::{
    DEFAULT_DELIVERIES, DEFAULT_GRACE_SECS, MAX_DELIVERIES, MAX_DESCRIPTION, MAX_GRACE_SECS,
};
use eventdesk_bus::model::{ALL_EVENTS, DeliveryStatus, JiraTrigger, deliverable_event_types};
use serde_json::{Value, json};

/// How a delivery looks on the wire (the webhook create operation's description).
pub(super) const WEBHOOK_NOTE: &str = "Every event of the tenant's incidents whose type the \
    filter names (or `*`) is POSTed to `url` as JSON `{\"type\", \"timestamp\", \"data\": \
    {\"event_id\", \"tenant_id\", \"incident_id\", \"version\", \"actor\", \"payload\"}}`, signed \
    the Standard Webhooks way: headers `webhook-id` (the delivery id, the same on every retry: \
    deduplicate on it), `webhook-timestamp` (seconds) and `webhook-signature: v1,<base64 \
    HMAC-SHA256(secret key, \"<id>.<timestamp>.<body>\")>` (the key is the base64 after \
    `whsec_`; during a rotation's grace period one signature per secret, space-separated). \
    Delivery is at least once; failures (non-2xx, timeouts after 5 s) retry with exponential \
    backoff and jitter within bounded attempts and time, then the delivery is `dead`. Actions \
    of a test-mode key (`qg_test_…`) are recorded as `dry_run` and never sent. The `url` must \
    be https and must not be, or resolve to, a private, loopback, link-local or metadata \
    address (`422` naming `url`). The `secret` appears only in this response.";

/// The delivery log's query parameters.
pub(super) fn delivery_query_params() -> Vec<Value> {
    vec![
        json!({
            "name": "status",
            "in": "query",
            "description": "Only deliveries in this state.",
            "schema": schema_ref("DeliveryStatus"),
        }),
        json!({
            "name": "limit",
            "in": "query",
            "description": format!("At most this many (default {DEFAULT_DELIVERIES})."),
            "schema": { "type": "integer", "minimum": 1, "maximum": MAX_DELIVERIES, "default": DEFAULT_DELIVERIES },
        }),
        json!({
            "name": "before",
            "in": "query",
            "description": "Only deliveries older than this one (the last id of the previous page).",
            "schema": uuid("A delivery id."),
        }),
    ]
}

fn webhook_fields() -> Vec<super::Field> {
    vec![
        req("id", uuid("Id.")),
        req("url", string("Where deliveries are POSTed.")),
        req(
            "description",
            nullable(text(0, MAX_DESCRIPTION, "Free text.")),
        ),
        req(
            "event_types",
            array(
                schema_ref("WebhookEventType"),
                "The event types delivered (`*`: all).",
            ),
        ),
        req(
            "status",
            enumeration(["active", "paused"], "A paused webhook gets no deliveries."),
        ),
        req(
            "previous_secret_expires_at",
            nullable(timestamp(
                "After a rotation: until when the previous secret signs too.",
            )),
        ),
        req("created_at", timestamp("Created.")),
        req("updated_at", timestamp("Last changed.")),
    ]
}

/// Adds the bus's schemas.
pub(super) fn add_schemas(add: &mut impl FnMut(&str, Value)) {
    let mut types: Vec<&str> = vec![ALL_EVENTS];
    types.extend(deliverable_event_types().iter().copied());
    add(
        "WebhookEventType",
        enumeration(
            types,
            "An incident event type, or `*` for every one of them.",
        ),
    );
    add(
        "DeliveryStatus",
        enumeration(
            DeliveryStatus::ALL.iter().map(|s| s.as_str()),
            "`pending` (waiting for an attempt), `succeeded`, `dead` (given up; redeliverable), \
             `dry_run` (a test-mode key acted: recorded, never sent), `skipped` (nothing to \
             send any more).",
        ),
    );
    add(
        "JiraTrigger",
        enumeration(
            JiraTrigger::ALL.iter().map(|t| t.as_str()),
            "`critical_incident`: a new critical incident; `any_incident`: every new incident; \
             `sla_breach`: an SLA breach of an incident without an issue.",
        ),
    );
    add(
        "Webhook",
        object(
            "A webhook subscription (never its secret).",
            webhook_fields(),
        ),
    );
    let mut with_secret = webhook_fields();
    with_secret.push(req(
        "secret",
        string("`whsec_` + base64 of the signing key. Shown only once: store it now."),
    ));
    add(
        "WebhookWithSecret",
        object("A webhook with its (new) secret.", with_secret),
    );
    add(
        "WebhookList",
        object(
            "The tenant's webhooks.",
            vec![req("data", array(schema_ref("Webhook"), "The webhooks."))],
        ),
    );
    add(
        "WebhookCreate",
        request(
            "A new webhook subscription.",
            vec![
                req("url", string("An https URL (checked by the SSRF guard).")),
                req(
                    "event_types",
                    array(schema_ref("WebhookEventType"), "At least one; `*` for all."),
                ),
                opt(
                    "description",
                    nullable(text(0, MAX_DESCRIPTION, "Free text.")),
                ),
                opt(
                    "status",
                    enumeration(["active", "paused"], "Default `active`."),
                ),
            ],
        ),
    );
    add(
        "WebhookUpdate",
        request(
            "Changes to a webhook; absent fields are kept.",
            vec![
                opt("url", string("An https URL (checked by the SSRF guard).")),
                opt(
                    "event_types",
                    array(schema_ref("WebhookEventType"), "Replaces the filter."),
                ),
                opt(
                    "description",
                    nullable(text(0, MAX_DESCRIPTION, "`null` clears it.")),
                ),
                opt(
                    "status",
                    enumeration(
                        ["active", "paused"],
                        "Back to `active`: waiting deliveries go out at once.",
                    ),
                ),
            ],
        ),
    );
    add(
        "WebhookSecretRotate",
        request(
            "How the rotation treats the old secret.",
            vec![opt(
                "grace_period_seconds",
                json!({
                    "type": "integer",
                    "minimum": 0,
                    "maximum": MAX_GRACE_SECS,
                    "default": DEFAULT_GRACE_SECS,
                    "description": "How long the old secret keeps signing beside the new one \
                                    (0: not at all).",
                }),
            )],
        ),
    );
    add(
        "WebhookDeliveryAttempt",
        object(
            "One attempt.",
            vec![
                req("attempt", int32("1, 2, …")),
                req("at", timestamp("When it started.")),
                req(
                    "status_code",
                    nullable(int32(
                        "The receiver's status (none: timeout or no connection).",
                    )),
                ),
                req("latency_ms", int32("How long it took.")),
                req("error", nullable(string("What went wrong."))),
                req(
                    "outcome",
                    enumeration(
                        ["succeeded", "failed", "rate_limited"],
                        "`rate_limited` (429) waits for `Retry-After` and does not count \
                         against the attempt bound.",
                    ),
                ),
            ],
        ),
    );
    add(
        "WebhookDelivery",
        object(
            "One event's delivery to the webhook, with its attempts.",
            vec![
                req("id", uuid("Id; sent as `webhook-id` on every attempt.")),
                req("webhook_id", nullable(uuid("The webhook."))),
                req("event_id", nullable(uuid("The event delivered."))),
                req("event_type", nullable(string("Its type."))),
                req("status", reference("DeliveryStatus", "Where it is.")),
                req("attempts", int32("Attempts made (all rounds).")),
                req(
                    "next_attempt_at",
                    nullable(timestamp("When the next attempt is due (pending only).")),
                ),
                req("last_attempt_at", nullable(timestamp("The last attempt."))),
                req(
                    "last_status_code",
                    nullable(int32("The receiver's last status code.")),
                ),
                req("last_error", nullable(string("The last error."))),
                req(
                    "last_latency_ms",
                    nullable(int32("The last attempt's latency.")),
                ),
                req("created_at", timestamp("When the bus read the event.")),
                req(
                    "completed_at",
                    nullable(timestamp("Delivered, given up, or recorded as a dry run.")),
                ),
                req(
                    "attempt_log",
                    array(
                        schema_ref("WebhookDeliveryAttempt"),
                        "Every attempt, oldest first.",
                    ),
                ),
            ],
        ),
    );
    add(
        "WebhookDeliveryList",
        object(
            "A webhook's deliveries, newest first.",
            vec![req(
                "data",
                array(schema_ref("WebhookDelivery"), "The deliveries."),
            )],
        ),
    );

    let summary_time = json!({
        "type": "string",
        "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$",
        "examples": ["09:00"],
        "description": "Local time `HH:MM` of the daily summary (`null`: none).",
    });
    add(
        "SlackIntegration",
        object(
            "The tenant's Slack settings (the incoming-webhook URL is never shown).",
            vec![
                req("kind", json!({ "type": "string", "const": "slack" })),
                req("enabled", boolean("Whether messages are sent.")),
                req(
                    "configured",
                    boolean("Whether an incoming-webhook URL is stored."),
                ),
                req(
                    "notify_critical_incidents",
                    boolean("A message for every new critical incident."),
                ),
                req(
                    "notify_sla_warnings",
                    boolean("A message for SLA warnings (50/75/90 %)."),
                ),
                req(
                    "notify_sla_breaches",
                    boolean("A message for SLA breaches."),
                ),
                req("daily_summary_time", nullable(summary_time.clone())),
                req(
                    "time_zone",
                    string("The tenant's IANA time zone for the summary."),
                ),
                req(
                    "updated_at",
                    nullable(timestamp("Last change (`null`: never configured).")),
                ),
            ],
        ),
    );
    add(
        "SlackIntegrationUpdate",
        request(
            "The Slack settings; omitted settings get their defaults, an omitted `webhook_url` \
             keeps the stored one.",
            vec![
                req("enabled", boolean("Whether messages are sent.")),
                opt(
                    "webhook_url",
                    json!({
                        "type": "string",
                        "writeOnly": true,
                        "description": "The incoming-webhook URL (`https://hooks.slack.com/…`); \
                                        a credential: stored encrypted, never returned. \
                                        Required to enable Slack the first time.",
                    }),
                ),
                opt("notify_critical_incidents", boolean("Default true.")),
                opt("notify_sla_warnings", boolean("Default true.")),
                opt("notify_sla_breaches", boolean("Default true.")),
                opt("daily_summary_time", nullable(summary_time)),
                opt(
                    "time_zone",
                    json!({
                        "type": "string",
                        "examples": ["Asia/Tokyo"],
                        "description": "IANA time zone (default `UTC`).",
                    }),
                ),
            ],
        ),
    );
    let project_key = json!({
        "type": "string",
        "pattern": "^[A-Z][A-Z0-9_]{1,9}$",
        "examples": ["OPS"],
        "description": "The Jira project issues are created in.",
    });
    add(
        "JiraIntegration",
        object(
            "The tenant's Jira settings (email and API token are never shown).",
            vec![
                req("kind", json!({ "type": "string", "const": "jira" })),
                req("enabled", boolean("Whether issues and comments are sent.")),
                req(
                    "configured",
                    boolean("Whether email and API token are stored."),
                ),
                req(
                    "base_url",
                    nullable(string("The site, e.g. `https://acme.atlassian.net`.")),
                ),
                req("project_key", nullable(project_key.clone())),
                req("issue_type", string("The issue type, e.g. `Task`.")),
                req(
                    "triggers",
                    array(schema_ref("JiraTrigger"), "What creates an issue."),
                ),
                req(
                    "comment_on_updates",
                    boolean("Whether later changes of the incident are commented."),
                ),
                req(
                    "updated_at",
                    nullable(timestamp("Last change (`null`: never configured).")),
                ),
            ],
        ),
    );
    add(
        "JiraIntegrationUpdate",
        request(
            "The Jira settings (REST v3, Basic auth with email and API token). Omitted \
             credentials keep the stored ones, except when `base_url` changes.",
            vec![
                req("enabled", boolean("Whether issues and comments are sent.")),
                req(
                    "base_url",
                    string("The site, https (checked by the SSRF guard)."),
                ),
                req("project_key", project_key),
                opt(
                    "email",
                    json!({ "type": "string", "writeOnly": true, "description": "The Atlassian account's email (a credential)." }),
                ),
                opt(
                    "api_token",
                    json!({ "type": "string", "writeOnly": true, "description": "The account's API token (a credential: stored encrypted, never returned)." }),
                ),
                opt("issue_type", text(1, 100, "Default `Task`.")),
                opt(
                    "triggers",
                    array(
                        schema_ref("JiraTrigger"),
                        "Default `[\"critical_incident\"]`.",
                    ),
                ),
                opt("comment_on_updates", boolean("Default true.")),
            ],
        ),
    );
    add(
        "IntegrationList",
        object(
            "The tenant's integrations.",
            vec![req(
                "data",
                array(
                    json!({ "oneOf": [schema_ref("SlackIntegration"), schema_ref("JiraIntegration")] }),
                    "Slack, then Jira.",
                ),
            )],
        ),
    );
}
