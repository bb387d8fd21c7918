//! The per-tenant inputs of incident commands — the priority matrix and the SLA rules — briefly
//! cached (ADR 0023).
//!
//! **Owns:** an in-process map `tenant → (priority matrix, SLA rules, read at)`, read through
//! the caller's tenant-scoped transaction and kept for at most [`TENANT_RULES_TTL`].
//!
//! **Must not:** be keyed by anything but the tenant, cache a tenant the directory does not
//! know yet (its default matrix is answered, not kept), or outlive its TTL: a change made
//! through this node is forgotten at once ([`TenantRulesCache::invalidate`], called by the SLA
//! routes after their read model has the change); one made through another node is seen within
//! the TTL.

use crate::error::ApiError;
use eventdesk_domain::sla::timer::SlaRules;
use eventdesk_domain::{PriorityMatrix, TenantId};
use eventdesk_projections::queries::directory;
use eventdesk_workers::SlaRulesCache;
use sqlx::PgConnection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a node uses a tenant's matrix and SLA rules before reading them again.
pub const TENANT_RULES_TTL: Duration = Duration::from_secs(2);
/// Entries beyond which expired ones are dropped.
const MAX_TENANTS: usize = 10_000;

/// A tenant's cached rules.
#[derive(Debug, Clone)]
pub struct TenantRules {
    /// The priority matrix (the ITIL default while the directory does not know the tenant).
    pub matrix: PriorityMatrix,
    /// The active SLA policies and calendars.
    pub sla: Arc<SlaRules>,
}

#[derive(Debug, Clone)]
struct Entry {
    at: Instant,
    rules: TenantRules,
}

/// See the module docs.
#[derive(Debug, Clone, Default)]
pub struct TenantRulesCache {
    map: Arc<Mutex<HashMap<TenantId, Entry>>>,
    /// Bumped by every invalidation, so that a load racing one is not cached.
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl TenantRulesCache {
    /// `tenant`'s rules if they were read less than [`TENANT_RULES_TTL`] before `now`.
    pub fn cached(&self, tenant: TenantId, now: Instant) -> Option<TenantRules> {
        self.lock()
            .get(&tenant)
            .filter(|e| now.saturating_duration_since(e.at) < TENANT_RULES_TTL)
            .map(|e| e.rules.clone())
    }

    /// Reads `tenant`'s rules on `conn` (a transaction scoped to `tenant`), `sla` precomputing
    /// the calendars, and caches them if the directory knows the tenant.
    pub async fn load(
        &self,
        conn: &mut PgConnection,
        sla: &SlaRulesCache,
        tenant: TenantId,
    ) -> Result<TenantRules, ApiError> {
        let now = Instant::now();
        let generation = self.generation.load(std::sync::atomic::Ordering::Acquire);
        let known = directory::get_tenant(&mut *conn, tenant).await?;
        let rules = TenantRules {
            matrix: known
                .as_ref()
                .map(|t| t.priority_matrix)
                .unwrap_or_default(),
            sla: Arc::new(sla.load(conn, tenant).await?),
        };
        if known.is_some() {
            let mut map = self.lock();
            // Only if no invalidation happened while we read (it may concern this tenant).
            if self.generation.load(std::sync::atomic::Ordering::Acquire) == generation {
                if map.len() >= MAX_TENANTS {
                    map.retain(|_, e| now.duration_since(e.at) < TENANT_RULES_TTL);
                    if map.len() >= MAX_TENANTS {
                        map.clear();
                    }
                }
                map.insert(
                    tenant,
                    Entry {
                        at: now,
                        rules: rules.clone(),
                    },
                );
            }
        }
        Ok(rules)
    }

    /// Forgets `tenant`'s rules (after a change to its SLA configuration or its settings
    /// through this node has reached the read model).
    pub fn invalidate(&self, tenant: TenantId) {
        let mut map = self.lock();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        map.remove(&tenant);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Entry>> {
        // A panic while holding the lock leaves a consistent map: keep using it.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
