//! Old/new pairs carried by "changed" events, and the flat history rows derived from them.
//!
//! Events that change fields carry both the old and the new value, so that a history view
//! (`field, old_value, new_value, changed_by, changed_at`) can be derived from the event log
//! alone, without replaying state.

use serde::{Deserialize, Serialize};

/// A field went from `old` to `new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change<T> {
    /// The value before.
    pub old: T,
    /// The value after.
    pub new: T,
}

impl<T: PartialEq> Change<T> {
    /// `Some(change)` if `old != new`, `None` when nothing changes.
    pub fn between(old: T, new: T) -> Option<Self> {
        (old != new).then_some(Self { old, new })
    }
}

/// One row of a field-level history: the field's name and its old and new values rendered as
/// text (`None` means "no value"). The `changed_by` and `changed_at` columns come from the
/// event's actor and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// The field name as in the API (`status`, `assignee_id`, …).
    pub field: &'static str,
    /// The value before, rendered as text.
    pub old: Option<String>,
    /// The value after, rendered as text.
    pub new: Option<String>,
}

impl FieldChange {
    /// A history row from two optional displayable values.
    pub fn new<T: std::fmt::Display>(field: &'static str, old: Option<T>, new: Option<T>) -> Self {
        Self {
            field,
            old: old.map(|v| v.to_string()),
            new: new.map(|v| v.to_string()),
        }
    }

    /// A history row from a [`Change`] of a displayable value.
    pub fn from_change<T: std::fmt::Display>(field: &'static str, c: &Change<T>) -> Self {
        Self::new(field, Some(&c.old), Some(&c.new))
    }

    /// A history row from a [`Change`] of an optional displayable value.
    pub fn from_opt_change<T: std::fmt::Display>(
        field: &'static str,
        c: &Change<Option<T>>,
    ) -> Self {
        Self::new(field, c.old.as_ref(), c.new.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn between_skips_equal_values() {
        assert_eq!(Change::between(1, 1), None);
        assert_eq!(Change::between(1, 2), Some(Change { old: 1, new: 2 }));
    }

    #[test]
    fn field_change_renders_text() {
        let c = Change {
            old: None,
            new: Some(7),
        };
        assert_eq!(
            FieldChange::from_opt_change("n", &c),
            FieldChange {
                field: "n",
                old: None,
                new: Some("7".into())
            }
        );
    }
}
