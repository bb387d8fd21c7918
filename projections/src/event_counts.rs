//! `event_counts`: events per tenant and event type — the simplest useful read model, and the
//! reference for how a handler writes set-based (one statement per batch, not per event).

use crate::runtime::{HandlerError, Projection};
use async_trait::async_trait;
use eventdesk_store::RecordedEvent;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Counts events per `(tenant, event_type)`.
#[derive(Debug, Default, Clone, Copy)]
pub struct EventCounts;

#[async_trait]
impl Projection for EventCounts {
    fn name(&self) -> &'static str {
        "event_counts"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["event_counts"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), HandlerError> {
        // Fold the batch in memory first, then write one row per key in one statement.
        let mut acc: BTreeMap<(Uuid, &str), (i64, i64)> = BTreeMap::new();
        for e in events {
            let slot = acc
                .entry((e.tenant_id.0, e.event_type.as_str()))
                .or_insert((0, 0));
            slot.0 += 1;
            slot.1 = slot.1.max(e.global_position);
        }
        let (mut tenants, mut types, mut counts, mut positions) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((t, ty), (c, p)) in acc {
            tenants.push(t);
            types.push(ty);
            counts.push(c);
            positions.push(p);
        }
        sqlx::query(
            "INSERT INTO event_counts (tenant_id, event_type, count, last_position) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::int8[]) \
             ON CONFLICT (tenant_id, event_type) DO UPDATE \
             SET count = event_counts.count + EXCLUDED.count, \
                 last_position = GREATEST(event_counts.last_position, EXCLUDED.last_position)",
        )
        .bind(&tenants)
        .bind(&types)
        .bind(&counts)
        .bind(&positions)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}
