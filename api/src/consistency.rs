//! Read-your-writes for writes that answer before their read models have them (ADR 0024).
//!
//! `POST /api/v1/incidents` answers from its own events (the aggregate after the decision),
//! not from the read model, so it does not wait for the projector. Its `201` carries
//! `X-Consistency-Token`, the position of the write in the log. A later request that must see
//! the write waits, bounded by `EVENTDESK_CONSISTENCY_WAIT_MS`, until the incident and
//! SLA-timer read models have applied that position:
//! - **same tenant, same node: automatically.** The node remembers the newest such position
//!   per tenant for a minute, and every request of the tenant that extracts a [`Principal`]
//!   waits for it first (a no-op once the projections are past it). Per tenant, not per
//!   credential: an agent who opens the incident a requester just logged (or an integration's
//!   key that lists it) must see it too;
//! - **any node:** the client sends the token back in `X-Consistency-Token`.
//!
//! Every other write still answers after its read models have it (ADR 0006), so its token is
//! already satisfied when the client gets it.

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use axum::http::{HeaderMap, HeaderValue};
use eventdesk_domain::TenantId;
use eventdesk_store::Checkpoint;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The header that carries a write's position, in answers and in later requests.
pub const HEADER: &str = "x-consistency-token";

/// The projections a create's read-your-writes floor waits for.
pub const FLOOR_PROJECTIONS: [&str; 2] = ["incidents", "sla_timers"];

/// How long a session floor is remembered; the projections are past it long before.
const REMEMBER: Duration = Duration::from_secs(60);

/// Above this many remembered floors, the expired ones are dropped on the next write.
const PRUNE_ABOVE: usize = 4096;

/// The text form of a write's position: `<transaction id>.<log position>` (opaque to clients).
pub fn encode(cp: Checkpoint) -> String {
    format!("{}.{}", cp.transaction_id, cp.position)
}

/// Parses [`encode`]'s form.
pub fn parse(s: &str) -> Option<Checkpoint> {
    let (tx, pos) = s.trim().split_once('.')?;
    let transaction_id = tx.parse::<u64>().ok()?;
    let position = pos.parse::<i64>().ok().filter(|p| *p >= 0)?;
    Some(Checkpoint {
        transaction_id,
        position,
    })
}

/// The header value of a write's position.
pub fn header_value(cp: Checkpoint) -> Option<HeaderValue> {
    HeaderValue::from_str(&encode(cp)).ok()
}

/// The newest create position per tenant on this node that its read models may not show yet.
#[derive(Debug, Default)]
pub struct Sessions {
    floors: Mutex<HashMap<TenantId, (Checkpoint, Instant)>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, (Checkpoint, Instant)>> {
        match self.floors.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Remembers that `tenant` was written at `cp`, which its later requests must see.
    pub fn record(&self, tenant: TenantId, cp: Checkpoint) {
        let key = tenant;
        let now = Instant::now();
        let mut floors = self.lock();
        if floors.len() > PRUNE_ABOVE {
            floors.retain(|_, (_, at)| now.duration_since(*at) < REMEMBER);
        }
        let e = floors.entry(key).or_insert((cp, now));
        if cp >= e.0 {
            *e = (cp, now);
        }
    }

    /// The position `tenant`'s requests must see first, if it was written within the last
    /// minute.
    pub fn floor(&self, tenant: TenantId) -> Option<Checkpoint> {
        let key = tenant;
        let mut floors = self.lock();
        match floors.get(&key) {
            Some((cp, at)) if at.elapsed() < REMEMBER => Some(*cp),
            Some(_) => {
                floors.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Forgets `tenant`'s floor if it is still `cp` (the projections have passed it).
    fn settled(&self, tenant: TenantId, cp: Checkpoint) {
        let key = tenant;
        let mut floors = self.lock();
        if floors.get(&key).is_some_and(|(c, _)| *c == cp) {
            floors.remove(&key);
        }
    }
}

/// The position a request presents in `X-Consistency-Token` (`422` naming the header if it is
/// not one).
pub fn presented(headers: &HeaderMap) -> Result<Option<Checkpoint>, ApiError> {
    let Some(v) = headers.get(HEADER) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(parse)
        .map(Some)
        .ok_or_else(|| ApiError::field("X-Consistency-Token", "not a consistency token"))
}

/// Waits (bounded) until the incident and SLA-timer read models show every create of
/// `principal`'s tenant on this node and the write `headers` presents; the start of every
/// authenticated request.
pub async fn settle(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let session = state.sessions.floor(principal.tenant);
    let floor = match (session, presented(headers)?) {
        (Some(a), Some(b)) => a.max(b),
        (a, b) => match a.or(b) {
            Some(cp) => cp,
            None => return Ok(()),
        },
    };
    let [incidents, sla] = FLOOR_PROJECTIONS;
    tokio::join!(
        state.wait_visible(incidents, Some(floor)),
        state.wait_visible(sla, Some(floor))
    );
    if session == Some(floor) {
        state.sessions.settled(principal.tenant, floor);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let cp = Checkpoint {
            transaction_id: 18_446_744_073_709_551_000,
            position: 42,
        };
        assert_eq!(parse(&encode(cp)), Some(cp));
        for bad in ["", "1", "1.", ".1", "x.1", "1.x", "1.-3", "1.2.3", "-1.2"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
