//! Names, vocabularies and the attribute schema language of the CMDB.
//!
//! # The schema language
//!
//! A CI type's schema maps attribute names to specs. An attribute name is 1..=63 characters of
//! `[a-z0-9_]` starting with a letter; a schema has at most [`CiSchema::MAX_ATTRIBUTES`].
//! A spec is an object:
//!
//! ```json
//! { "ip_address": { "type": "ip", "required": true },
//!   "tier":       { "type": "enum", "values": ["gold", "silver"] },
//!   "size":       { "type": "enum[small,large]" } }
//! ```
//!
//! | `type` | accepted values | stored as |
//! |---|---|---|
//! | `string` | a string of at most 1 000 characters, no control characters | as given |
//! | `integer` | a JSON integer in the 64-bit signed range (`3.0` is not one) | as given |
//! | `number` | any JSON number | as given |
//! | `boolean` | `true` / `false` | as given |
//! | `ip` | an IPv4 or IPv6 address | its canonical text (`2001:db8::1`) |
//! | `url` | an absolute `http`/`https` URL with a host, at most 2 000 characters, no spaces | scheme lower-cased |
//! | `enum` | one of `values` (1..=100 distinct strings of 1..=100 characters) | as given |
//!
//! `enum[a,b,c]` is shorthand for `{"type": "enum", "values": ["a","b","c"]}`; schemas are
//! stored and shown in the long form. `required` defaults to `false`.
//!
//! Attributes are validated against the schema as a whole object: an attribute the schema does
//! not name is refused, a required one must be present, and `null` counts as absent. Every
//! problem is reported, each named by its path (`attributes.ip_address`).

use crate::values::{ValidationError, str_enum};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// One invalid field of a CMDB payload, named by its dotted path (`attributes.ip_address`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldIssue {
    /// The field's path.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldIssue {
    /// An issue.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.message)
    }
}

/// The issues, joined for an error message.
pub(crate) fn describe_issues(issues: &[FieldIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

/// Whether `s` is `[a-z][a-z0-9_]*` of `min..=max` characters.
fn is_identifier(s: &str, min: usize, max: usize) -> bool {
    let mut chars = s.chars();
    (min..=max).contains(&s.len())
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A CI's (or a CI type's) display name: trimmed, 1..=200 characters, one line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CiName(String);

impl CiName {
    /// The field name reported in validation errors.
    pub const FIELD: &'static str = "name";
    /// The maximum length in characters.
    pub const MAX_CHARS: usize = 200;

    /// Validates and trims `input`.
    pub fn parse(input: impl AsRef<str>) -> Result<Self, ValidationError> {
        let s = input.as_ref().trim();
        if s.is_empty() {
            return Err(ValidationError::Empty { field: Self::FIELD });
        }
        if s.chars().any(char::is_control) {
            return Err(ValidationError::Invalid {
                field: Self::FIELD,
                reason: "must not contain control characters or line breaks",
            });
        }
        if s.chars().count() > Self::MAX_CHARS {
            return Err(ValidationError::TooLong {
                field: Self::FIELD,
                max: Self::MAX_CHARS,
            });
        }
        Ok(Self(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CiName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key of a CI type (`server`, `load_balancer`): 2..=63 characters of `[a-z0-9_]`
/// starting with a letter. A CI names its type by key; keys are unique per tenant and the
/// built-in keys are reserved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CiTypeKey(String);

impl CiTypeKey {
    /// The field name reported in validation errors (of a CI type; a CI's is `type`).
    pub const FIELD: &'static str = "key";

    /// Validates `input` (not trimmed: a key is an identifier).
    pub fn parse(input: impl AsRef<str>) -> Result<Self, ValidationError> {
        let s = input.as_ref();
        if is_identifier(s, 2, 63) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::Invalid {
                field: Self::FIELD,
                reason: "must be 2 to 63 characters of a-z, 0-9 and _, starting with a letter",
            })
        }
    }

    /// The key of a built-in type.
    pub fn builtin(t: BuiltinCiType) -> Self {
        Self(t.as_str().to_owned())
    }

    /// The built-in type of this key, if it is one.
    pub fn as_builtin(&self) -> Option<BuiltinCiType> {
        self.0.parse().ok()
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CiTypeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The type of a relationship: one of the built-in [`RelationshipType::BUILTIN`] or a custom
/// type (2..=63 characters of `[a-z0-9_]`, starting with a letter). Only the dependency types
/// (`depends_on`, `runs_on`) carry impact and must stay acyclic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RelationshipType(String);

impl RelationshipType {
    /// The field name reported in validation errors.
    pub const FIELD: &'static str = "type";
    /// `source` needs `target` to work (an application depends on its database).
    pub const DEPENDS_ON: &'static str = "depends_on";
    /// `source` is hosted by `target` (an application runs on a server).
    pub const RUNS_ON: &'static str = "runs_on";
    /// A physical or network link; carries no impact.
    pub const CONNECTED_TO: &'static str = "connected_to";
    /// The built-in types.
    pub const BUILTIN: &'static [&'static str] =
        &[Self::DEPENDS_ON, Self::RUNS_ON, Self::CONNECTED_TO];
    /// The types along which failure propagates (from `target` to `source`).
    pub const DEPENDENCY: &'static [&'static str] = &[Self::DEPENDS_ON, Self::RUNS_ON];

    /// Validates `input`.
    pub fn parse(input: impl AsRef<str>) -> Result<Self, ValidationError> {
        let s = input.as_ref();
        if is_identifier(s, 2, 63) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::Invalid {
                field: Self::FIELD,
                reason: "must be depends_on, runs_on, connected_to or a custom type of 2 to 63 \
                         characters of a-z, 0-9 and _, starting with a letter",
            })
        }
    }

    /// `depends_on`.
    pub fn depends_on() -> Self {
        Self(Self::DEPENDS_ON.to_owned())
    }

    /// `runs_on`.
    pub fn runs_on() -> Self {
        Self(Self::RUNS_ON.to_owned())
    }

    /// `connected_to`.
    pub fn connected_to() -> Self {
        Self(Self::CONNECTED_TO.to_owned())
    }

    /// Whether failure propagates along it and it must stay acyclic.
    pub fn is_dependency(&self) -> bool {
        Self::DEPENDENCY.contains(&self.0.as_str())
    }

    /// Whether it is one of the built-in types.
    pub fn is_builtin(&self) -> bool {
        Self::BUILTIN.contains(&self.0.as_str())
    }

    /// The type's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RelationshipType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

str_enum!(
    /// The lifecycle status of a configuration item. `retired` is final and reached only by
    /// the retire action; the others may be set freely.
    CiStatus, field = "status" {
        /// Ordered or being built; not in service yet.
        Planned => "planned",
        /// In service.
        Active => "active",
        /// In service but under maintenance.
        Maintenance => "maintenance",
        /// Decommissioned (final).
        Retired => "retired",
    }
);

str_enum!(
    /// The built-in CI types, known to every tenant with built-in schemas.
    BuiltinCiType, field = "type" {
        /// A business or technical service offered to users.
        Service => "service",
        /// A software application.
        Application => "application",
        /// A physical or virtual server.
        Server => "server",
        /// A database (instance or cluster).
        Database => "database",
        /// A router, switch, firewall, load balancer…
        NetworkDevice => "network_device",
    }
);

const ENVIRONMENTS: &[&str] = &["production", "staging", "test", "development"];

impl BuiltinCiType {
    /// The display name.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Service => "Service",
            Self::Application => "Application",
            Self::Server => "Server",
            Self::Database => "Database",
            Self::NetworkDevice => "Network device",
        }
    }

    /// A one-line description.
    pub fn description(self) -> &'static str {
        match self {
            Self::Service => "A business or technical service offered to users.",
            Self::Application => "A software application.",
            Self::Server => "A physical or virtual server.",
            Self::Database => "A database instance or cluster.",
            Self::NetworkDevice => "A router, switch, firewall, load balancer or access point.",
        }
    }

    /// The built-in schema.
    pub fn schema(self) -> CiSchema {
        use AttributeKind as K;
        let spec = |kind, required| AttributeSpec {
            kind,
            required,
            values: Vec::new(),
        };
        let one_of = |values: &[&str], required| AttributeSpec {
            kind: K::Enum,
            required,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        };
        let entries: Vec<(&str, AttributeSpec)> = match self {
            Self::Service => vec![
                (
                    "criticality",
                    one_of(&["low", "medium", "high", "critical"], false),
                ),
                ("service_owner", spec(K::String, false)),
                ("url", spec(K::Url, false)),
            ],
            Self::Application => vec![
                ("version", spec(K::String, false)),
                ("vendor", spec(K::String, false)),
                ("url", spec(K::Url, false)),
                ("environment", one_of(ENVIRONMENTS, false)),
            ],
            Self::Server => vec![
                ("hostname", spec(K::String, false)),
                ("ip_address", spec(K::Ip, false)),
                ("os", spec(K::String, false)),
                ("cpu_cores", spec(K::Integer, false)),
                ("memory_gb", spec(K::Number, false)),
                ("is_virtual", spec(K::Boolean, false)),
                ("environment", one_of(ENVIRONMENTS, false)),
            ],
            Self::Database => vec![
                (
                    "engine",
                    one_of(
                        &[
                            "postgresql",
                            "mysql",
                            "mariadb",
                            "oracle",
                            "sqlserver",
                            "mongodb",
                            "redis",
                            "other",
                        ],
                        true,
                    ),
                ),
                ("version", spec(K::String, false)),
                ("port", spec(K::Integer, false)),
                ("size_gb", spec(K::Number, false)),
                ("environment", one_of(ENVIRONMENTS, false)),
            ],
            Self::NetworkDevice => vec![
                ("ip_address", spec(K::Ip, false)),
                (
                    "device_kind",
                    one_of(
                        &[
                            "router",
                            "switch",
                            "firewall",
                            "load_balancer",
                            "access_point",
                            "other",
                        ],
                        false,
                    ),
                ),
                ("vendor", spec(K::String, false)),
                ("model", spec(K::String, false)),
                ("management_url", spec(K::Url, false)),
            ],
        };
        CiSchema(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The schema language
// ---------------------------------------------------------------------------------------------

str_enum!(
    /// The type of an attribute.
    AttributeKind, field = "type" {
        /// Text.
        String => "string",
        /// A 64-bit signed integer.
        Integer => "integer",
        /// Any number.
        Number => "number",
        /// `true` / `false`.
        Boolean => "boolean",
        /// An IPv4 or IPv6 address.
        Ip => "ip",
        /// An absolute http(s) URL.
        Url => "url",
        /// One of a list of strings.
        Enum => "enum",
    }
);

/// How one attribute is checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeSpec {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: AttributeKind,
    /// Whether a CI of the type must have it.
    #[serde(default)]
    pub required: bool,
    /// The allowed values (`enum` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// The attribute schema of a CI type: attribute name → spec, in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CiSchema(pub BTreeMap<String, AttributeSpec>);

/// A CI's attributes, validated and normalised against its type's schema (name order).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Attributes(pub Map<String, Value>);

impl Attributes {
    /// No attributes.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The attributes as a JSON object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// The most characters of a `string` attribute.
pub const MAX_STRING_CHARS: usize = 1_000;
/// The most characters of a `url` attribute.
pub const MAX_URL_CHARS: usize = 2_000;
/// The most values of an `enum` attribute.
pub const MAX_ENUM_VALUES: usize = 100;
/// The most characters of one `enum` value.
pub const MAX_ENUM_VALUE_CHARS: usize = 100;

impl CiSchema {
    /// The most attributes of a schema.
    pub const MAX_ATTRIBUTES: usize = 100;

    /// The attribute names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Parses a schema given by a client; every issue is named under `prefix`
    /// (`attributes.tier.values`).
    pub fn parse(v: &Value, prefix: &str) -> Result<Self, Vec<FieldIssue>> {
        let Some(obj) = v.as_object() else {
            return Err(vec![FieldIssue::new(
                prefix,
                "must be an object mapping attribute names to {type, required, values}",
            )]);
        };
        let mut issues = Vec::new();
        if obj.len() > Self::MAX_ATTRIBUTES {
            issues.push(FieldIssue::new(
                prefix,
                format!("must have at most {} attributes", Self::MAX_ATTRIBUTES),
            ));
        }
        let mut out = BTreeMap::new();
        for (name, spec) in obj {
            let path = format!("{prefix}.{name}");
            if !is_identifier(name, 1, 63) {
                issues.push(FieldIssue::new(
                    &path,
                    "attribute names are 1 to 63 characters of a-z, 0-9 and _, starting with \
                     a letter",
                ));
                continue;
            }
            match parse_spec(spec, &path) {
                Ok(s) => {
                    out.insert(name.clone(), s);
                }
                Err(mut e) => issues.append(&mut e),
            }
        }
        if issues.is_empty() {
            Ok(Self(out))
        } else {
            Err(issues)
        }
    }

    /// Validates and normalises a CI's attributes; every issue is named under `prefix`
    /// (`attributes.ip_address`).
    pub fn validate(
        &self,
        attrs: &Map<String, Value>,
        prefix: &str,
    ) -> Result<Attributes, Vec<FieldIssue>> {
        let mut issues = Vec::new();
        let mut out = Map::new();
        for (name, value) in attrs {
            let path = format!("{prefix}.{name}");
            let Some(spec) = self.0.get(name) else {
                let known = self.names().collect::<Vec<_>>().join(", ");
                issues.push(FieldIssue::new(
                    path,
                    if known.is_empty() {
                        "is not an attribute of this type (it has none)".to_owned()
                    } else {
                        format!("is not an attribute of this type (known: {known})")
                    },
                ));
                continue;
            };
            if value.is_null() {
                continue;
            }
            match check_value(spec, value) {
                Ok(v) => {
                    out.insert(name.clone(), v);
                }
                Err(m) => issues.push(FieldIssue::new(path, m)),
            }
        }
        for (name, spec) in &self.0 {
            if spec.required && attrs.get(name).is_none_or(Value::is_null) {
                issues.push(FieldIssue::new(format!("{prefix}.{name}"), "is required"));
            }
        }
        if issues.is_empty() {
            Ok(Attributes(out))
        } else {
            Err(issues)
        }
    }
}

/// Parses one attribute spec.
fn parse_spec(v: &Value, path: &str) -> Result<AttributeSpec, Vec<FieldIssue>> {
    let Some(obj) = v.as_object() else {
        return Err(vec![FieldIssue::new(
            path,
            "must be an object {type, required, values}",
        )]);
    };
    let mut issues = Vec::new();
    for k in obj.keys() {
        if !matches!(k.as_str(), "type" | "required" | "values") {
            issues.push(FieldIssue::new(format!("{path}.{k}"), "unknown field"));
        }
    }
    let required = match obj.get("required") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            issues.push(FieldIssue::new(
                format!("{path}.required"),
                "must be a boolean",
            ));
            false
        }
    };
    let type_path = format!("{path}.type");
    let (kind, mut values) = match obj.get("type") {
        None | Some(Value::Null) => {
            issues.push(FieldIssue::new(&type_path, "is required"));
            return Err(issues);
        }
        Some(Value::String(t)) => {
            if let Some(inner) = t.strip_prefix("enum[").and_then(|s| s.strip_suffix(']')) {
                let values: Vec<Value> = if inner.trim().is_empty() {
                    Vec::new()
                } else {
                    inner
                        .split(',')
                        .map(|s| Value::String(s.trim().to_owned()))
                        .collect()
                };
                if obj.contains_key("values") {
                    issues.push(FieldIssue::new(
                        format!("{path}.values"),
                        "must not be given with the enum[…] shorthand",
                    ));
                }
                (AttributeKind::Enum, Some(Value::Array(values)))
            } else {
                match t.parse::<AttributeKind>() {
                    Ok(k) => (k, obj.get("values").cloned()),
                    Err(_) => {
                        issues.push(FieldIssue::new(
                            &type_path,
                            format!(
                                "must be one of: {}, or enum[a,b,…]",
                                AttributeKind::NAMES.join(", ")
                            ),
                        ));
                        return Err(issues);
                    }
                }
            }
        }
        Some(_) => {
            issues.push(FieldIssue::new(&type_path, "must be a string"));
            return Err(issues);
        }
    };
    if values.as_ref().is_some_and(Value::is_null) {
        values = None;
    }
    let values_path = format!("{path}.values");
    let values = match (kind, values) {
        (AttributeKind::Enum, None) => {
            issues.push(FieldIssue::new(&values_path, "is required for an enum"));
            Vec::new()
        }
        (AttributeKind::Enum, Some(Value::Array(items))) => {
            let mut out: Vec<String> = Vec::new();
            if items.is_empty() || items.len() > MAX_ENUM_VALUES {
                issues.push(FieldIssue::new(
                    &values_path,
                    format!("must list 1 to {MAX_ENUM_VALUES} values"),
                ));
            }
            for item in items {
                match item.as_str() {
                    Some(s)
                        if !s.is_empty()
                            && s.chars().count() <= MAX_ENUM_VALUE_CHARS
                            && !s.chars().any(char::is_control) =>
                    {
                        if out.iter().any(|o| o == s) {
                            issues
                                .push(FieldIssue::new(&values_path, format!("lists {s:?} twice")));
                        } else {
                            out.push(s.to_owned());
                        }
                    }
                    _ => issues.push(FieldIssue::new(
                        &values_path,
                        format!(
                            "values must be strings of 1 to {MAX_ENUM_VALUE_CHARS} characters \
                             without control characters"
                        ),
                    )),
                }
            }
            out
        }
        (AttributeKind::Enum, Some(_)) => {
            issues.push(FieldIssue::new(&values_path, "must be an array of strings"));
            Vec::new()
        }
        (_, Some(_)) => {
            issues.push(FieldIssue::new(&values_path, "is only allowed for an enum"));
            Vec::new()
        }
        (_, None) => Vec::new(),
    };
    if issues.is_empty() {
        Ok(AttributeSpec {
            kind,
            required,
            values,
        })
    } else {
        Err(issues)
    }
}

/// Checks one (non-null) value against its spec; the normalised value or what is wrong.
fn check_value(spec: &AttributeSpec, v: &Value) -> Result<Value, String> {
    match spec.kind {
        AttributeKind::String => match v.as_str() {
            Some(s)
                if s.chars().count() <= MAX_STRING_CHARS && !s.chars().any(char::is_control) =>
            {
                Ok(v.clone())
            }
            Some(_) => Err(format!(
                "must be at most {MAX_STRING_CHARS} characters without control characters"
            )),
            None => Err("must be a string".into()),
        },
        AttributeKind::Integer => {
            if v.as_i64().is_some() {
                Ok(v.clone())
            } else {
                Err("must be an integer (64-bit signed)".into())
            }
        }
        AttributeKind::Number => {
            if v.is_number() {
                Ok(v.clone())
            } else {
                Err("must be a number".into())
            }
        }
        AttributeKind::Boolean => {
            if v.is_boolean() {
                Ok(v.clone())
            } else {
                Err("must be true or false".into())
            }
        }
        AttributeKind::Ip => v
            .as_str()
            .and_then(|s| s.parse::<std::net::IpAddr>().ok())
            .map(|ip| Value::String(ip.to_string()))
            .ok_or_else(|| "must be an IPv4 or IPv6 address".into()),
        AttributeKind::Url => match v.as_str() {
            Some(s) => check_url(s).map(Value::String).map_err(str::to_owned),
            None => Err("must be a string (an http or https URL)".into()),
        },
        AttributeKind::Enum => match v.as_str() {
            Some(s) if spec.values.iter().any(|x| x == s) => Ok(v.clone()),
            _ => Err(format!("must be one of: {}", spec.values.join(", "))),
        },
    }
}

/// Checks an absolute http(s) URL with a host; returns it with the scheme lower-cased.
pub fn check_url(s: &str) -> Result<String, &'static str> {
    const SHAPE: &str = "must be an absolute http or https URL with a host";
    if s.chars().count() > MAX_URL_CHARS {
        return Err("must be at most 2000 characters");
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    let (scheme, rest) = s.split_once("://").ok_or(SHAPE)?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(SHAPE);
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains('@') {
        return Err("must not contain credentials");
    }
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (ip6, after) = inner.split_once(']').ok_or(SHAPE)?;
        if ip6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(SHAPE);
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(SHAPE)?),
        };
        (None, port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(authority), None),
        }
    };
    if let Some(h) = host {
        let ok = !h.is_empty()
            && h.split('.').all(|l| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !ok {
            return Err(SHAPE);
        }
    }
    if let Some(p) = port
        && (p.is_empty()
            || p.len() > 5
            || !p.chars().all(|c| c.is_ascii_digit())
            || p.parse::<u16>().is_err())
    {
        return Err("must have a port between 0 and 65535");
    }
    Ok(format!("{scheme}://{rest}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(issues: &[FieldIssue]) -> Vec<&str> {
        issues.iter().map(|i| i.field.as_str()).collect()
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn names_and_keys() {
        assert_eq!(CiName::parse("  web-01  ").unwrap().as_str(), "web-01");
        assert!(CiName::parse(" ").is_err());
        assert!(CiName::parse("a\nb").is_err());
        assert!(CiName::parse("x".repeat(201)).is_err());
        assert!(CiTypeKey::parse("load_balancer").is_ok());
        for bad in ["", "a", "Load", "1x", "a-b", "ab c", &"a".repeat(64)] {
            assert!(CiTypeKey::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            CiTypeKey::parse("server").unwrap().as_builtin(),
            Some(BuiltinCiType::Server)
        );
        assert_eq!(CiTypeKey::parse("rack").unwrap().as_builtin(), None);
        let t = RelationshipType::parse("depends_on").unwrap();
        assert!(t.is_dependency() && t.is_builtin());
        assert!(RelationshipType::runs_on().is_dependency());
        let c = RelationshipType::parse("backs_up").unwrap();
        assert!(!c.is_dependency() && !c.is_builtin());
        assert!(!RelationshipType::connected_to().is_dependency());
        assert!(RelationshipType::parse("Depends On").is_err());
    }

    #[test]
    fn schema_parse_long_and_short_forms() {
        let s = CiSchema::parse(
            &json!({
                "vip": {"type": "ip", "required": true},
                "tier": {"type": "enum", "values": ["gold", "silver"]},
                "size": {"type": "enum[small, large]"},
                "note": {"type": "string"},
            }),
            "attributes",
        )
        .unwrap();
        assert_eq!(
            s.0["size"],
            AttributeSpec {
                kind: AttributeKind::Enum,
                required: false,
                values: vec!["small".into(), "large".into()],
            }
        );
        assert!(s.0["vip"].required);
        // Stored in the long form.
        assert_eq!(
            serde_json::to_value(&s).unwrap()["size"],
            json!({"type": "enum", "required": false, "values": ["small", "large"]})
        );
        assert_eq!(
            serde_json::to_value(&s).unwrap()["note"],
            json!({"type": "string", "required": false})
        );
    }

    #[test]
    fn schema_parse_names_every_problem() {
        let e = CiSchema::parse(
            &json!({
                "Bad Name": {"type": "string"},
                "a": {"type": "color"},
                "b": {"type": "enum"},
                "c": {"type": "integer", "values": ["1"]},
                "d": {"type": "string", "required": "yes", "extra": 1},
                "e": {"type": "enum", "values": ["x", "x"]},
                "f": "string",
                "g": {"required": true},
            }),
            "attributes",
        )
        .unwrap_err();
        assert_eq!(
            fields(&e),
            vec![
                "attributes.Bad Name",
                "attributes.a.type",
                "attributes.b.values",
                "attributes.c.values",
                "attributes.d.extra",
                "attributes.d.required",
                "attributes.e.values",
                "attributes.f",
                "attributes.g.type",
            ]
        );
        assert!(CiSchema::parse(&json!([]), "attributes").is_err());
        let many: Map<String, Value> = (0..101)
            .map(|i| (format!("a{i}"), json!({"type": "string"})))
            .collect();
        assert!(CiSchema::parse(&Value::Object(many), "attributes").is_err());
    }

    #[test]
    fn attributes_are_validated_and_normalised() {
        let s = BuiltinCiType::Server.schema();
        let ok = s
            .validate(
                &obj(json!({
                    "hostname": "web-01",
                    "ip_address": "2001:0db8:0000:0000:0000:0000:0000:0001",
                    "cpu_cores": 8,
                    "memory_gb": 15.5,
                    "is_virtual": true,
                    "environment": "production",
                    "os": null,
                })),
                "attributes",
            )
            .unwrap();
        assert_eq!(ok.0["ip_address"], json!("2001:db8::1"));
        assert!(!ok.0.contains_key("os"), "null is absent");
        let e = s
            .validate(
                &obj(json!({
                    "ip_address": "999.1.1.1",
                    "cpu_cores": 2.5,
                    "memory_gb": "lots",
                    "is_virtual": "yes",
                    "environment": "prod",
                    "colour": "red",
                    "hostname": "a\u{7}b",
                })),
                "attributes",
            )
            .unwrap_err();
        assert_eq!(
            fields(&e),
            vec![
                "attributes.colour",
                "attributes.cpu_cores",
                "attributes.environment",
                "attributes.hostname",
                "attributes.ip_address",
                "attributes.is_virtual",
                "attributes.memory_gb",
            ]
        );
        let db = BuiltinCiType::Database.schema();
        let e = db.validate(&Map::new(), "attributes").unwrap_err();
        assert_eq!(fields(&e), vec!["attributes.engine"]);
        let e = db
            .validate(&obj(json!({"engine": null})), "attributes")
            .unwrap_err();
        assert_eq!(fields(&e), vec!["attributes.engine"]);
        assert!(
            db.validate(
                &obj(json!({"engine": "postgresql", "port": 5432})),
                "attributes"
            )
            .is_ok()
        );
        let empty = CiSchema::default();
        let e = empty
            .validate(&obj(json!({"x": 1})), "attributes")
            .unwrap_err();
        assert!(e[0].message.contains("has none"));
    }

    #[test]
    fn urls() {
        assert_eq!(
            check_url("HTTPS://example.com:8443/a?b#c").unwrap(),
            "https://example.com:8443/a?b#c"
        );
        assert!(check_url("http://[2001:db8::1]:80/").is_ok());
        assert!(check_url("http://10.0.0.1").is_ok());
        for bad in [
            "example.com",
            "ftp://example.com",
            "http://",
            "http:///path",
            "http://a b.com",
            "http://user:pw@example.com",
            "http://example.com:99999",
            "http://example.com:",
            "http://-bad.com",
            "http://[zz]/",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn builtin_schemas_are_valid_schemas() {
        for t in BuiltinCiType::ALL {
            let s = t.schema();
            let v = serde_json::to_value(&s).unwrap();
            assert_eq!(CiSchema::parse(&v, "attributes").unwrap(), s, "{t}");
            assert_eq!(CiTypeKey::builtin(*t).as_builtin(), Some(*t));
        }
    }
}
