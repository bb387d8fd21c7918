//! A tenant's SLA rules (active policies and calendars) loaded from the `sla_config` read
//! model, with the calendars' precomputed form cached by `(id, version)`.

use eventdesk_domain::sla::calendar::BusinessCalendar;
use eventdesk_domain::sla::timer::SlaRules;
use eventdesk_domain::{CalendarId, TenantId};
use eventdesk_projections::queries::sla_config::load_sla_config;
use sqlx::PgConnection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Precomputed calendars by `(id, version)`; a new version is a new entry.
#[derive(Debug, Clone, Default)]
pub struct SlaRulesCache {
    calendars: Arc<Mutex<HashMap<(CalendarId, u32), BusinessCalendar>>>,
}

impl SlaRulesCache {
    /// Loads `tenant`'s rules on `conn` (a transaction scoped to the tenant). A stored calendar
    /// that no longer validates is reported and measured as 24x7 rather than stopping the desk.
    pub async fn load(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
    ) -> Result<SlaRules, sqlx::Error> {
        let config = load_sla_config(conn, tenant).await?;
        let mut calendars = HashMap::with_capacity(config.calendars.len());
        let mut cache = match self.calendars.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if cache.len() > 10_000 {
            cache.clear();
        }
        for (id, (version, def)) in config.calendars {
            let cal = match cache.get(&(id, version)) {
                Some(c) => c.clone(),
                None => match BusinessCalendar::new(&def) {
                    Ok(c) => {
                        cache.insert((id, version), c.clone());
                        c
                    }
                    Err(e) => {
                        tracing::error!(tenant_id = %tenant, calendar_id = %id.0, error = %e,
                            "stored SLA calendar does not validate; measuring on 24x7");
                        BusinessCalendar::twenty_four_seven()
                    }
                },
            };
            calendars.insert(id, (version, cal));
        }
        Ok(SlaRules::new(config.policies, calendars))
    }
}
