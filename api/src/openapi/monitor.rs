//! The performance monitor's part of the document (ADR 0020): the schemas of
//! `GET /api/v1/analytics/performance`. (`GET /metrics` and `/dashboard` are for operators and
//! browsers, not API clients: they are described in the README, not here.)

use super::{
    array, boolean, enumeration, int32, int64, nullable, object, req, string, timestamp, uuid,
};
use crate::monitor::Category;
use serde_json::{Value, json};

fn number(description: &str) -> Value {
    json!({ "type": "number", "description": description })
}

fn maybe_ms(description: &str) -> Value {
    json!({ "type": ["number", "null"], "description": description })
}

pub(super) fn add_schemas(add: &mut impl FnMut(&str, Value)) {
    let categories = || {
        enumeration(
            Category::ALL.iter().map(|c| c.as_str()),
            "`api` (whole requests), `auth` (authentication), `db` (event-store appends, read \
             transactions), `security` (authorisation decisions), `integration` (bus delivery \
             attempts).",
        )
    };
    add(
        "PerformanceCategory",
        object(
            "One category of the tenant's samples on this node, against its budget.",
            vec![
                req("category", categories()),
                req("budget_ms", number("The budget.")),
                req("count", int64("Samples.")),
                req(
                    "p50_ms",
                    maybe_ms("Median (upper bound of its histogram bucket, ≤ 19 % above)."),
                ),
                req("p95_ms", maybe_ms("95th percentile.")),
                req("p99_ms", maybe_ms("99th percentile.")),
                req("max_ms", maybe_ms("Largest sample.")),
                req("mean_ms", maybe_ms("Mean.")),
                req("violations", int64("Samples over the budget.")),
                req(
                    "consecutive_violations",
                    int64("The current run of violations in a row."),
                ),
                req("alerts_raised", int64("Alerts this node raised.")),
            ],
        ),
    );
    add(
        "PerformanceRoute",
        object(
            "Whole requests of one route template of the tenant on this node.",
            vec![
                req("route", string("`METHOD /route/template`.")),
                req("count", int64("Requests.")),
                req("p50_ms", maybe_ms("Median.")),
                req("p95_ms", maybe_ms("95th percentile.")),
                req("p99_ms", maybe_ms("99th percentile.")),
                req("max_ms", number("Slowest.")),
                req("violations", int64("Requests over the API budget.")),
            ],
        ),
    );
    add(
        "PerformanceAlert",
        object(
            "A repeated-violation alert (stored; from any node).",
            vec![
                req("id", uuid("Id.")),
                req("category", categories()),
                req(
                    "route",
                    nullable(string(
                        "The route template of the request that completed the run.",
                    )),
                ),
                req("consecutive", int32("Violations in a row that raised it.")),
                req(
                    "suppressed",
                    int32(
                        "Runs of violations completed within the cooldown since the previous \
                         alert of this category, which raised no alert of their own.",
                    ),
                ),
                req("budget_ms", number("The budget.")),
                req("observed_ms", number("The latency that completed the run.")),
                req("node", string("The node that raised it.")),
                req("raised_at", timestamp("When.")),
            ],
        ),
    );
    add(
        "AnalyticsPerformance",
        object(
            "The performance monitor's view of the caller's tenant.",
            vec![
                req("enabled", boolean("Whether the monitor runs on this node.")),
                req(
                    "since",
                    nullable(timestamp("Since when this node aggregates (its start).")),
                ),
                req(
                    "alert_after",
                    int64("Violations in a row that raise an alert (0 when disabled)."),
                ),
                req(
                    "categories",
                    array(
                        super::schema_ref("PerformanceCategory"),
                        "Per category, in the order api, auth, db, security, integration.",
                    ),
                ),
                req(
                    "routes",
                    array(
                        super::schema_ref("PerformanceRoute"),
                        "Per route template, busiest first.",
                    ),
                ),
                req("alerts_total", int64("Stored alerts of the tenant.")),
                req(
                    "alerts",
                    array(
                        super::schema_ref("PerformanceAlert"),
                        "The 50 most recent, newest first.",
                    ),
                ),
            ],
        ),
    );
}
