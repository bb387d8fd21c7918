//! The priority matrix: impact × urgency → priority.
//!
//! When a client does not set an incident's priority, it is derived from the incident's impact
//! and urgency through the tenant's matrix. The default is the ITIL-style table below, where the
//! priority grows with the sum of the impact and urgency ranks (0..=3 each): a sum of 0–1 is
//! `low`, 2 is `medium`, 3–4 is `high` and 5–6 is `critical`.
//!
//! | impact ↓ / urgency → | low | medium | high | critical |
//! |---|---|---|---|---|
//! | **low**       | low    | low    | medium   | high     |
//! | **medium**    | low    | medium | high     | high     |
//! | **high**      | medium | high   | high     | critical |
//! | **extensive** | high   | high   | critical | critical |
//!
//! Tenants may override any cell ([`PriorityMatrix::with`], or by sending the whole table).
//! The JSON form is keyed by impact, then urgency, and must name all 16 cells:
//!
//! ```json
//! {"low":       {"low": "low",    "medium": "low",    "high": "medium",   "critical": "high"},
//!  "medium":    {"low": "low",    "medium": "medium", "high": "high",     "critical": "high"},
//!  "high":      {"low": "medium", "medium": "high",   "high": "high",     "critical": "critical"},
//!  "extensive": {"low": "high",   "medium": "high",   "high": "critical", "critical": "critical"}}
//! ```

use crate::values::{Impact, Priority, Urgency};
use serde::{Deserialize, Serialize};

/// A complete impact × urgency → priority table. `Default` is the ITIL table (see the module
/// docs). The table is indexed `[impact.index()][urgency.index()]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "MatrixRepr", into = "MatrixRepr")]
pub struct PriorityMatrix {
    cells: [[Priority; 4]; 4],
}

impl PriorityMatrix {
    /// The ITIL default table.
    pub const ITIL: PriorityMatrix = {
        use Priority::{Critical as C, High as H, Low as L, Medium as M};
        PriorityMatrix {
            cells: [
                // urgency: low, medium, high, critical
                [L, L, M, H], // impact low
                [L, M, H, H], // impact medium
                [M, H, H, C], // impact high
                [H, H, C, C], // impact extensive
            ],
        }
    };

    /// The ITIL default table.
    pub const fn itil() -> Self {
        Self::ITIL
    }

    /// A matrix from a full table indexed `[impact.index()][urgency.index()]`.
    pub const fn from_table(cells: [[Priority; 4]; 4]) -> Self {
        Self { cells }
    }

    /// The full table indexed `[impact.index()][urgency.index()]`.
    pub const fn table(&self) -> [[Priority; 4]; 4] {
        self.cells
    }

    /// The priority for `impact` × `urgency`.
    pub const fn priority_for(&self, impact: Impact, urgency: Urgency) -> Priority {
        self.cells[impact.index()][urgency.index()]
    }

    /// Overrides one cell.
    pub fn set(&mut self, impact: Impact, urgency: Urgency, priority: Priority) {
        self.cells[impact.index()][urgency.index()] = priority;
    }

    /// This matrix with one cell overridden.
    #[must_use]
    pub fn with(mut self, impact: Impact, urgency: Urgency, priority: Priority) -> Self {
        self.set(impact, urgency, priority);
        self
    }
}

impl Default for PriorityMatrix {
    fn default() -> Self {
        Self::ITIL
    }
}

/// One impact row of the JSON form, keyed by urgency.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RowRepr {
    low: Priority,
    medium: Priority,
    high: Priority,
    critical: Priority,
}

/// The JSON form, keyed by impact.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixRepr {
    low: RowRepr,
    medium: RowRepr,
    high: RowRepr,
    extensive: RowRepr,
}

impl From<[Priority; 4]> for RowRepr {
    fn from([low, medium, high, critical]: [Priority; 4]) -> Self {
        Self {
            low,
            medium,
            high,
            critical,
        }
    }
}

impl From<RowRepr> for [Priority; 4] {
    fn from(r: RowRepr) -> Self {
        [r.low, r.medium, r.high, r.critical]
    }
}

impl From<PriorityMatrix> for MatrixRepr {
    fn from(m: PriorityMatrix) -> Self {
        let [low, medium, high, extensive] = m.cells;
        Self {
            low: low.into(),
            medium: medium.into(),
            high: high.into(),
            extensive: extensive.into(),
        }
    }
}

impl From<MatrixRepr> for PriorityMatrix {
    fn from(r: MatrixRepr) -> Self {
        Self {
            cells: [
                r.low.into(),
                r.medium.into(),
                r.high.into(),
                r.extensive.into(),
            ],
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn itil_defaults() {
        let m = PriorityMatrix::default();
        assert_eq!(m, PriorityMatrix::itil());
        assert_eq!(
            m.priority_for(Impact::Extensive, Urgency::Critical),
            Priority::Critical
        );
        assert_eq!(m.priority_for(Impact::Low, Urgency::Low), Priority::Low);
        assert_eq!(
            m.priority_for(Impact::Medium, Urgency::Medium),
            Priority::Medium
        );
        assert_eq!(m.priority_for(Impact::High, Urgency::High), Priority::High);
        assert_eq!(
            m.priority_for(Impact::Low, Urgency::Critical),
            Priority::High
        );
    }

    #[test]
    fn itil_follows_rank_sum_rule_and_is_monotone() {
        let m = PriorityMatrix::ITIL;
        for i in Impact::ALL {
            for u in Urgency::ALL {
                let expected = match i.index() + u.index() {
                    0 | 1 => Priority::Low,
                    2 => Priority::Medium,
                    3 | 4 => Priority::High,
                    _ => Priority::Critical,
                };
                assert_eq!(m.priority_for(*i, *u), expected, "{i} x {u}");
            }
        }
    }

    #[test]
    fn cells_can_be_overridden() {
        let m = PriorityMatrix::ITIL.with(Impact::Low, Urgency::Low, Priority::Critical);
        assert_eq!(
            m.priority_for(Impact::Low, Urgency::Low),
            Priority::Critical
        );
        assert_eq!(
            m.priority_for(Impact::Low, Urgency::Medium),
            Priority::Low,
            "other cells unchanged"
        );
        assert_eq!(PriorityMatrix::from_table(m.table()), m);
    }

    #[test]
    fn json_round_trip_is_keyed_by_impact_then_urgency() {
        let m = PriorityMatrix::ITIL.with(Impact::High, Urgency::Low, Priority::Low);
        let v = serde_json::to_value(m).unwrap();
        assert_eq!(v["extensive"]["critical"], "critical");
        assert_eq!(v["high"]["low"], "low");
        assert_eq!(v["low"]["critical"], "high");
        let back: PriorityMatrix = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn json_must_be_complete_and_known() {
        let mut v = serde_json::to_value(PriorityMatrix::ITIL).unwrap();
        v["low"].as_object_mut().unwrap().remove("high");
        assert!(serde_json::from_value::<PriorityMatrix>(v).is_err());

        let mut v = serde_json::to_value(PriorityMatrix::ITIL).unwrap();
        v["low"]["urgent"] = "low".into();
        assert!(serde_json::from_value::<PriorityMatrix>(v).is_err());

        let mut v = serde_json::to_value(PriorityMatrix::ITIL).unwrap();
        v["low"]["low"] = "p1".into();
        assert!(serde_json::from_value::<PriorityMatrix>(v).is_err());
    }
}
