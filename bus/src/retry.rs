//! The retry policy: exponential backoff with jitter, bounded in attempts and in total time.

use chrono::{DateTime, TimeDelta, Utc};
use std::time::Duration;

/// Bounds and pace of retries (per round: a redelivery starts a new round).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay after the first failure; it doubles with every further failure.
    pub base: Duration,
    /// The longest single delay.
    pub max_delay: Duration,
    /// Failed attempts after which a delivery is dead.
    pub max_attempts: u32,
    /// Time after the round's start beyond which no attempt is scheduled (the delivery dies).
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(30),
            max_delay: Duration::from_secs(6 * 3600),
            max_attempts: 10,
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again at this instant.
    RetryAt(DateTime<Utc>),
    /// Give up.
    Dead,
}

impl RetryPolicy {
    /// The delay before attempt `failed + 1`, after `failed` failures (≥ 1), jittered by a
    /// factor in [0.75, 1.25) from `unit` in [0, 1).
    pub fn delay(&self, failed: u32, unit: f64) -> Duration {
        let exp = failed.saturating_sub(1).min(30);
        let raw = self.base.saturating_mul(1u32 << exp.min(20));
        let capped = raw.min(self.max_delay);
        capped.mul_f64(0.75 + 0.5 * unit.clamp(0.0, 1.0))
    }

    /// After `failed` failures of a round that started at `round_started_at`: when to try
    /// again (never before `not_before`, e.g. a `Retry-After`), or dead. A rate-limited attempt
    /// passes `counts = false`: it does not count against `max_attempts`, only against
    /// `max_age`.
    pub fn next(
        &self,
        failed: u32,
        counts: bool,
        round_started_at: DateTime<Utc>,
        now: DateTime<Utc>,
        not_before: Option<DateTime<Utc>>,
        unit: f64,
    ) -> Next {
        if counts && failed >= self.max_attempts {
            return Next::Dead;
        }
        let delay = TimeDelta::from_std(self.delay(failed.max(1), unit)).unwrap_or(TimeDelta::MAX);
        let mut at = now
            .checked_add_signed(delay)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if let Some(nb) = not_before {
            at = at.max(nb);
        }
        let deadline = round_started_at
            .checked_add_signed(TimeDelta::from_std(self.max_age).unwrap_or(TimeDelta::MAX))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if at > deadline {
            Next::Dead
        } else {
            Next::RetryAt(at)
        }
    }
}

impl RetryPolicy {
    /// After a 429: at `until` (the receiver's `Retry-After`), unless that is past the round's
    /// age bound. Rate limits do not count against `max_attempts`.
    pub fn after_rate_limit(&self, round_started_at: DateTime<Utc>, until: DateTime<Utc>) -> Next {
        let deadline = round_started_at
            .checked_add_signed(TimeDelta::from_std(self.max_age).unwrap_or(TimeDelta::MAX))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if until > deadline {
            Next::Dead
        } else {
            Next::RetryAt(until)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn delays_double_with_jitter_and_a_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, 0.5), Duration::from_secs(30));
        assert_eq!(p.delay(2, 0.5), Duration::from_secs(60));
        assert_eq!(p.delay(3, 0.5), Duration::from_secs(120));
        assert_eq!(p.delay(1, 0.0), Duration::from_millis(22_500));
        assert!(p.delay(1, 0.999) < Duration::from_millis(37_500));
        assert_eq!(p.delay(30, 0.5), Duration::from_secs(6 * 3600));
    }

    #[test]
    fn bounded_by_attempts_and_age() {
        let p = RetryPolicy {
            base: Duration::from_secs(60),
            max_delay: Duration::from_secs(3600),
            max_attempts: 3,
            max_age: Duration::from_secs(600),
        };
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(
            p.next(1, true, t0, t0, None, 0.5),
            Next::RetryAt(t0 + TimeDelta::seconds(60))
        );
        assert_eq!(p.next(3, true, t0, t0, None, 0.5), Next::Dead);
        // Rate limits do not count, but the age bound holds.
        assert!(matches!(
            p.next(3, false, t0, t0, None, 0.5),
            Next::RetryAt(_)
        ));
        let late = t0 + TimeDelta::seconds(590);
        assert_eq!(p.next(1, true, t0, late, None, 0.5), Next::Dead);
        // Retry-After moves the next attempt out.
        let ra = t0 + TimeDelta::seconds(300);
        assert_eq!(p.next(1, false, t0, t0, Some(ra), 0.5), Next::RetryAt(ra));
        assert_eq!(p.after_rate_limit(t0, ra), Next::RetryAt(ra));
        assert_eq!(
            p.after_rate_limit(t0, t0 + TimeDelta::seconds(601)),
            Next::Dead
        );
    }
}
