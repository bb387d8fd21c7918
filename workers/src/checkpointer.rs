//! Periodic tenant checkpoints (issue #6, ADR 0010): every interval, each tenant whose log grew
//! since its last checkpoint gets a new one — a chained digest of its whole log up to the
//! horizon (`eventdesk_store::checkpoint`). Auditors anchor these digests outside the database.
//!
//! Several nodes may run it: a checkpoint of one tenant is taken under a transaction-scoped
//! advisory lock, and taking one when nothing new passed the horizon returns the last one, so
//! the chain never forks and no duplicate is stored.

use eventdesk_domain::TenantId;
use eventdesk_store::StoreError;
use eventdesk_store::checkpoint::create_tenant_checkpoint;
use eventdesk_store::subscription::StopToken;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointReport {
    /// Tenants with events.
    pub tenants: u64,
    /// New checkpoints stored.
    pub taken: u64,
}

/// Takes the tenants' checkpoints every `interval`.
#[derive(Debug, Clone)]
pub struct Checkpointer {
    pool: PgPool,
    interval: Duration,
}

impl Checkpointer {
    /// A checkpointer on `pool` (the system role: it reads every tenant's events).
    pub fn new(pool: PgPool, interval: Duration) -> Self {
        Self { pool, interval }
    }

    /// One pass over every tenant that has events.
    pub async fn run_once(&self) -> Result<CheckpointReport, StoreError> {
        // The distinct tenants of the log by a skip scan of the (tenant_id, …) index: one
        // index probe per tenant, not a scan of the events.
        let tenants: Vec<Uuid> = sqlx::query_scalar(
            "WITH RECURSIVE t AS ( \
               (SELECT tenant_id FROM events ORDER BY tenant_id LIMIT 1) \
               UNION ALL \
               SELECT (SELECT e.tenant_id FROM events e WHERE e.tenant_id > t.tenant_id \
                       ORDER BY e.tenant_id LIMIT 1) \
               FROM t WHERE t.tenant_id IS NOT NULL) \
             SELECT tenant_id FROM t WHERE tenant_id IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut report = CheckpointReport {
            tenants: tenants.len() as u64,
            taken: 0,
        };
        for tenant in tenants {
            let before: Option<i64> = sqlx::query_scalar(
                "SELECT max(position) FROM tenant_checkpoints WHERE tenant_id = $1",
            )
            .bind(tenant)
            .fetch_one(&self.pool)
            .await?;
            let c = create_tenant_checkpoint(&self.pool, TenantId(tenant)).await?;
            if before != Some(c.position) {
                report.taken += 1;
                tracing::info!(
                    tenant_id = %tenant,
                    position = c.position,
                    events = c.event_count,
                    "tenant checkpoint taken"
                );
            }
        }
        Ok(report)
    }

    /// Runs a pass every interval until `stop`.
    pub async fn run(self, stop: StopToken) {
        while !stop.is_cancelled() {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(self.interval) => {}
            }
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "tenant checkpoint pass failed");
            }
        }
    }
}
