//! Upcasting: events are stored with the schema version they were written in; readers upgrade
//! old payloads through one registered function per event type, step by step
//! (`v1 → v2 → … → current`). The stored row is never rewritten.

use std::collections::HashMap;
use std::sync::Arc;

/// Upgrades a payload of `from_version` by exactly one version (to `from_version + 1`).
pub type UpcastFn =
    Arc<dyn Fn(i32, serde_json::Value) -> Result<serde_json::Value, String> + Send + Sync>;

/// The registry: event type → (current schema version, upgrade step).
#[derive(Clone, Default)]
pub struct Upcasters {
    by_type: HashMap<String, (i32, UpcastFn)>,
}

impl std::fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upcasters")
            .field("types", &self.by_type.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Upcasters {
    /// An empty registry (every stored payload is taken as current).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the one upgrade function of `event_type`, whose current version is `current`.
    /// `step(v, data)` must turn a version-`v` payload into a version-`v+1` payload.
    pub fn register<F>(&mut self, event_type: &str, current: i32, step: F) -> &mut Self
    where
        F: Fn(i32, serde_json::Value) -> Result<serde_json::Value, String> + Send + Sync + 'static,
    {
        self.by_type
            .insert(event_type.to_owned(), (current, Arc::new(step)));
        self
    }

    /// Upgrades `data` of `(event_type, version)` to the current version.
    pub fn upcast(
        &self,
        event_type: &str,
        version: i32,
        data: serde_json::Value,
    ) -> Result<(i32, serde_json::Value), String> {
        let Some((current, step)) = self.by_type.get(event_type) else {
            return Ok((version, data));
        };
        if version > *current {
            return Err(format!(
                "{event_type} schema version {version} is newer than this build knows ({current})"
            ));
        }
        let mut v = version;
        let mut d = data;
        while v < *current {
            d = step(v, d)?;
            v += 1;
        }
        Ok((v, d))
    }
}
