//! Who issued a command: a user, an API key, or the system itself (schedulers, projections that
//! feed back, migrations). Every command and every event carries one.

use crate::ids::{ApiKeyId, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The issuer of a command. Serialised as `{"kind": "user", "id": "…"}`,
/// `{"kind": "api_key", "id": "…"}` or `{"kind": "system"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// A signed-in user.
    User(UserId),
    /// An integration authenticated by an API key.
    ApiKey(ApiKeyId),
    /// The system itself (e.g. the SLA scheduler).
    System,
}

impl Actor {
    /// The user behind the action, if it is a user.
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Self::User(id) => Some(*id),
            _ => None,
        }
    }

    /// `user`, `api_key` or `system`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::ApiKey(_) => "api_key",
            Self::System => "system",
        }
    }
}

impl fmt::Display for Actor {
    /// `user:<uuid>`, `api_key:<uuid>` or `system` (the `changed_by` of a history row).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::ApiKey(id) => write!(f, "api_key:{id}"),
            Self::System => f.write_str("system"),
        }
    }
}

impl From<UserId> for Actor {
    fn from(id: UserId) -> Self {
        Self::User(id)
    }
}

impl From<ApiKeyId> for Actor {
    fn from(id: ApiKeyId) -> Self {
        Self::ApiKey(id)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn serde_shape() {
        let u = Actor::User(UserId(Uuid::nil()));
        assert_eq!(
            serde_json::to_value(u).unwrap(),
            serde_json::json!({"kind": "user", "id": Uuid::nil()})
        );
        assert_eq!(
            serde_json::to_value(Actor::System).unwrap(),
            serde_json::json!({"kind": "system"})
        );
        for a in [u, Actor::ApiKey(ApiKeyId(Uuid::nil())), Actor::System] {
            let back: Actor = serde_json::from_value(serde_json::to_value(a).unwrap()).unwrap();
            assert_eq!(back, a);
        }
        assert_eq!(u.user_id(), Some(UserId(Uuid::nil())));
        assert_eq!(Actor::System.to_string(), "system");
        assert_eq!(u.to_string(), format!("user:{}", Uuid::nil()));
    }
}
