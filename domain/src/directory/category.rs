//! The category aggregate (`stream_type = "category"`): a node of the per-tenant category tree
//! (via `parent_id`). A category cannot be its own parent; that the parent exists and that a
//! move creates no cycle needs the whole tree and is checked by the command layer.

use crate::actor::Actor;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::change::Change;
use crate::ids::CategoryId;
use crate::values::{CategoryName, Description};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A request to change a category.
#[derive(Debug, Clone, PartialEq)]
pub enum CategoryCommand {
    /// Create the category.
    Create {
        /// Id (= stream id).
        id: CategoryId,
        /// Name.
        name: CategoryName,
        /// Parent (`None` = a root).
        parent_id: Option<CategoryId>,
        /// Description.
        description: Option<Description>,
        /// Who.
        actor: Actor,
    },
    /// Edit; `None` keeps a field, `Some(None)` clears an optional one.
    Update {
        /// New name.
        name: Option<CategoryName>,
        /// New parent (`Some(None)` makes it a root).
        parent_id: Option<Option<CategoryId>>,
        /// New description.
        description: Option<Option<Description>>,
        /// Who.
        actor: Actor,
    },
    /// Retire the category (existing incidents keep it; new ones should not use it).
    Deactivate {
        /// Who.
        actor: Actor,
    },
    /// Bring a retired category back.
    Reactivate {
        /// Who.
        actor: Actor,
    },
}

/// A category was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryCreated {
    /// Id.
    pub id: CategoryId,
    /// Name.
    pub name: CategoryName,
    /// Parent.
    pub parent_id: Option<CategoryId>,
    /// Description.
    pub description: Option<Description>,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// The changes of one [`CategoryUpdated`]; absent = unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CategoryChanges {
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Change<CategoryName>>,
    /// Parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<Change<Option<CategoryId>>>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Change<Option<Description>>>,
}

impl CategoryChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A category was edited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryUpdated {
    /// What changed.
    pub changes: CategoryChanges,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A category was deactivated or reactivated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryActivityChanged {
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Everything that can happen to a category (`{"type", "data"}`; `type` is the variant name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
#[allow(clippy::enum_variant_names)] // the shared prefix makes stored type names unique
pub enum CategoryEvent {
    /// See [`CategoryCreated`].
    CategoryCreated(CategoryCreated),
    /// See [`CategoryUpdated`].
    CategoryUpdated(CategoryUpdated),
    /// The category was retired.
    CategoryDeactivated(CategoryActivityChanged),
    /// The category was brought back.
    CategoryReactivated(CategoryActivityChanged),
}

impl CategoryEvent {
    /// Every `event_type` of this aggregate.
    pub const EVENT_TYPES: &'static [&'static str] = &[
        "CategoryCreated",
        "CategoryUpdated",
        "CategoryDeactivated",
        "CategoryReactivated",
    ];

    /// Who caused the event.
    pub fn actor(&self) -> Actor {
        match self {
            Self::CategoryCreated(e) => e.actor,
            Self::CategoryUpdated(e) => e.actor,
            Self::CategoryDeactivated(e) | Self::CategoryReactivated(e) => e.actor,
        }
    }

    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::CategoryCreated(e) => e.at,
            Self::CategoryUpdated(e) => e.at,
            Self::CategoryDeactivated(e) | Self::CategoryReactivated(e) => e.at,
        }
    }
}

impl DomainEvent for CategoryEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::CategoryCreated(_) => "CategoryCreated",
            Self::CategoryUpdated(_) => "CategoryUpdated",
            Self::CategoryDeactivated(_) => "CategoryDeactivated",
            Self::CategoryReactivated(_) => "CategoryReactivated",
        }
    }
}

/// Why a category command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CategoryError {
    /// The category has not been created.
    #[error("category not found")]
    NotFound,
    /// `Create` on an existing category.
    #[error("category already exists")]
    AlreadyExists,
    /// The category is deactivated.
    #[error("category is deactivated")]
    Deactivated,
    /// The category would be its own parent.
    #[error("a category cannot be its own parent")]
    OwnParent,
}

impl CategoryError {
    /// A stable machine-readable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::Deactivated => "deactivated",
            Self::OwnParent => "own_parent",
        }
    }
}

/// The state of a created category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Category {
    /// Id.
    pub id: CategoryId,
    /// Name.
    pub name: CategoryName,
    /// Parent.
    pub parent_id: Option<CategoryId>,
    /// Description.
    pub description: Option<Description>,
    /// Whether the category is active.
    pub is_active: bool,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
}

/// The category aggregate: `None` until created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CategoryAggregate {
    /// The category, once created.
    pub state: Option<Category>,
}

impl Aggregate for CategoryAggregate {
    const STREAM_TYPE: &'static str = "category";
    type Command = CategoryCommand;
    type Event = CategoryEvent;
    type Error = CategoryError;

    fn decide(
        &self,
        command: CategoryCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<CategoryEvent>, CategoryError> {
        use CategoryCommand as C;
        use CategoryEvent as E;
        let Some(category) = &self.state else {
            return match command {
                C::Create {
                    id,
                    name,
                    parent_id,
                    description,
                    actor,
                } => {
                    if parent_id == Some(id) {
                        return Err(CategoryError::OwnParent);
                    }
                    Ok(vec![E::CategoryCreated(CategoryCreated {
                        id,
                        name,
                        parent_id,
                        description,
                        actor,
                        at: now,
                    })])
                }
                _ => Err(CategoryError::NotFound),
            };
        };
        let activity = |actor| CategoryActivityChanged { actor, at: now };
        match command {
            C::Create { .. } => Err(CategoryError::AlreadyExists),
            C::Update {
                name,
                parent_id,
                description,
                actor,
            } => {
                if !category.is_active {
                    return Err(CategoryError::Deactivated);
                }
                if parent_id == Some(Some(category.id)) {
                    return Err(CategoryError::OwnParent);
                }
                let changes = CategoryChanges {
                    name: name.and_then(|v| Change::between(category.name.clone(), v)),
                    parent_id: parent_id.and_then(|v| Change::between(category.parent_id, v)),
                    description: description
                        .and_then(|v| Change::between(category.description.clone(), v)),
                };
                if changes.is_empty() {
                    return Ok(Vec::new());
                }
                Ok(vec![E::CategoryUpdated(CategoryUpdated {
                    changes,
                    actor,
                    at: now,
                })])
            }
            C::Deactivate { actor } if category.is_active => {
                Ok(vec![E::CategoryDeactivated(activity(actor))])
            }
            C::Reactivate { actor } if !category.is_active => {
                Ok(vec![E::CategoryReactivated(activity(actor))])
            }
            C::Deactivate { .. } | C::Reactivate { .. } => Ok(Vec::new()),
        }
    }

    fn evolve(&mut self, event: &CategoryEvent) {
        if let (None, CategoryEvent::CategoryCreated(e)) = (&self.state, event) {
            self.state = Some(Category {
                id: e.id,
                name: e.name.clone(),
                parent_id: e.parent_id,
                description: e.description.clone(),
                is_active: true,
                created_at: e.at,
                updated_at: e.at,
            });
            return;
        }
        let Some(c) = self.state.as_mut() else {
            return;
        };
        c.updated_at = event.at();
        match event {
            CategoryEvent::CategoryCreated(_) => {}
            CategoryEvent::CategoryUpdated(e) => {
                let ch = &e.changes;
                if let Some(x) = &ch.name {
                    c.name = x.new.clone();
                }
                if let Some(x) = &ch.parent_id {
                    c.parent_id = x.new;
                }
                if let Some(x) = &ch.description {
                    c.description = x.new.clone();
                }
            }
            CategoryEvent::CategoryDeactivated(_) => c.is_active = false,
            CategoryEvent::CategoryReactivated(_) => c.is_active = true,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::directory::fixtures::admin;
    use crate::testing::{assert_round_trip, given, test_now};
    use uuid::Uuid;

    fn at() -> DateTime<Utc> {
        test_now()
    }
    fn cname(s: &str) -> CategoryName {
        CategoryName::parse(s).unwrap()
    }
    fn id() -> CategoryId {
        CategoryId(Uuid::from_u128(5))
    }
    fn parent() -> CategoryId {
        CategoryId(Uuid::from_u128(4))
    }
    fn created() -> CategoryEvent {
        CategoryEvent::CategoryCreated(CategoryCreated {
            id: id(),
            name: cname("Email"),
            parent_id: Some(parent()),
            description: None,
            actor: admin(),
            at: at(),
        })
    }
    fn create(parent_id: Option<CategoryId>) -> CategoryCommand {
        CategoryCommand::Create {
            id: id(),
            name: cname("Email"),
            parent_id,
            description: None,
            actor: admin(),
        }
    }
    fn deactivated() -> CategoryEvent {
        CategoryEvent::CategoryDeactivated(CategoryActivityChanged {
            actor: admin(),
            at: at(),
        })
    }
    fn update(parent_id: Option<Option<CategoryId>>) -> CategoryCommand {
        CategoryCommand::Update {
            name: None,
            parent_id,
            description: None,
            actor: admin(),
        }
    }

    #[test]
    fn create_category() {
        let s = given::<CategoryAggregate>([])
            .when(create(Some(parent())))
            .then([created()]);
        assert!(s.state.unwrap().is_active);
    }

    #[test]
    fn create_rejections() {
        given::<CategoryAggregate>([created()])
            .when(create(None))
            .then_err(CategoryError::AlreadyExists);
        given::<CategoryAggregate>([])
            .when(create(Some(id())))
            .then_err(CategoryError::OwnParent);
    }

    #[test]
    fn commands_on_missing_category_are_not_found() {
        for cmd in [
            update(None),
            CategoryCommand::Deactivate { actor: admin() },
            CategoryCommand::Reactivate { actor: admin() },
        ] {
            given::<CategoryAggregate>([])
                .when(cmd)
                .then_err(CategoryError::NotFound);
        }
    }

    #[test]
    fn update_category() {
        let d = Description::parse("Mail and calendars").unwrap();
        let s = given::<CategoryAggregate>([created()])
            .when(CategoryCommand::Update {
                name: Some(cname("E-mail")),
                parent_id: Some(None),
                description: Some(Some(d.clone())),
                actor: admin(),
            })
            .then([CategoryEvent::CategoryUpdated(CategoryUpdated {
                changes: CategoryChanges {
                    name: Some(Change {
                        old: cname("Email"),
                        new: cname("E-mail"),
                    }),
                    parent_id: Some(Change {
                        old: Some(parent()),
                        new: None,
                    }),
                    description: Some(Change {
                        old: None,
                        new: Some(d.clone()),
                    }),
                },
                actor: admin(),
                at: at(),
            })]);
        let c = s.state.unwrap();
        assert_eq!(c.name, cname("E-mail"));
        assert_eq!(c.parent_id, None);
        assert_eq!(c.description, Some(d));
    }

    #[test]
    fn update_without_change_emits_nothing() {
        given::<CategoryAggregate>([created()])
            .when(update(None))
            .then_nothing();
        given::<CategoryAggregate>([created()])
            .when(CategoryCommand::Update {
                name: Some(cname("Email")),
                parent_id: Some(Some(parent())),
                description: Some(None),
                actor: admin(),
            })
            .then_nothing();
    }

    #[test]
    fn update_rejections() {
        given::<CategoryAggregate>([created()])
            .when(update(Some(Some(id()))))
            .then_err(CategoryError::OwnParent);
        given::<CategoryAggregate>([created(), deactivated()])
            .when(update(Some(None)))
            .then_err(CategoryError::Deactivated);
    }

    #[test]
    fn deactivate_and_reactivate() {
        let s = given::<CategoryAggregate>([created()])
            .when(CategoryCommand::Deactivate { actor: admin() })
            .then([deactivated()]);
        assert!(!s.state.unwrap().is_active);
        given::<CategoryAggregate>([created(), deactivated()])
            .when(CategoryCommand::Deactivate { actor: admin() })
            .then_nothing();
        let s = given::<CategoryAggregate>([created(), deactivated()])
            .when(CategoryCommand::Reactivate { actor: admin() })
            .then([CategoryEvent::CategoryReactivated(
                CategoryActivityChanged {
                    actor: admin(),
                    at: at(),
                },
            )]);
        assert!(s.state.unwrap().is_active);
        given::<CategoryAggregate>([created()])
            .when(CategoryCommand::Reactivate { actor: admin() })
            .then_nothing();
    }

    #[test]
    fn events_round_trip() {
        let events = [
            created(),
            CategoryEvent::CategoryUpdated(CategoryUpdated {
                changes: CategoryChanges {
                    parent_id: Some(Change {
                        old: None,
                        new: Some(parent()),
                    }),
                    ..Default::default()
                },
                actor: admin(),
                at: at(),
            }),
            deactivated(),
            CategoryEvent::CategoryReactivated(CategoryActivityChanged {
                actor: admin(),
                at: at(),
            }),
        ];
        let types: Vec<_> = events.iter().map(DomainEvent::event_type).collect();
        assert_eq!(types, CategoryEvent::EVENT_TYPES);
        for e in &events {
            assert_round_trip(e);
            assert_eq!(e.actor(), admin());
            assert_eq!(e.at(), at());
        }
    }
}
