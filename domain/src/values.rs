//! Validated value objects and the closed vocabularies (enums) of the domain.
//!
//! Every free-text or formatted input enters the domain through a `parse` constructor that
//! returns a [`ValidationError`] naming the offending field, so no bare `String` crosses into a
//! command. The rules:
//!
//! | type | field name | rule |
//! |---|---|---|
//! | [`Title`] | `title` | trimmed, 1..=500 chars, single line |
//! | [`Description`] | `description` | 0..=50 000 chars, kept verbatim |
//! | [`Email`] | `email` | trimmed, lower-cased, `local@domain.tld`, ≤ 254 chars |
//! | [`Username`] | `username` | trimmed, 3..=64 chars of `[A-Za-z0-9_.-]` |
//! | [`PersonName`] | `name` | trimmed, 1..=100 chars, single line |
//! | [`Phone`] | `phone` | trimmed, ≤ 32 chars of digits, space, `+()-.`; 3..=20 digits; `+` only first |
//! | [`Department`] | `department` | trimmed, 1..=100 chars, single line |
//! | [`TenantName`] | `name` | trimmed, 1..=200 chars, single line |
//! | [`TeamName`] | `name` | trimmed, 1..=100 chars, single line |
//! | [`CategoryName`] | `name` | trimmed, 1..=100 chars, single line |
//! | [`ReasonText`] | `reason` | trimmed, 1..=2 000 chars |
//! | [`ResolutionText`] | `resolution` | trimmed, 1..=20 000 chars |
//! | [`WorkNoteBody`] | `body` | trimmed, 1..=20 000 chars |
//! | [`FileName`] | `filename` | trimmed, 1..=255 chars, no `/`, `\`, control chars, not `.`/`..` |
//! | [`ContentType`] | `content_type` | `type/subtype[;params]`, ≤ 255 chars, essence lower-cased |
//! | [`Sha256Hex`] | `sha256` | 64 hex digits, lower-cased |
//! | [`PasswordHash`] | `password_hash` | 1..=1024 chars, no control chars; `Debug` is redacted |
//! | [`IncidentNumber`] | `incident_number` | `INC` + at least 6 digits, zero padded, sequence ≥ 1 |
//! | [`ExternalKey`] | `key` | trimmed, 1..=255 chars, single line |
//! | [`ExternalUrl`] | `url` | trimmed, 1..=2 000 chars, single line |
//!
//! "chars" are Unicode scalar values (what PostgreSQL's `varchar(n)` counts). Multi-line texts
//! may contain newlines and tabs, but no text may contain NUL (PostgreSQL rejects it). Text that
//! merely *looks* like SQL or HTML is accepted: safety comes from parameterised SQL and output
//! encoding, not from mangling tickets.
//!
//! Use [`ValidationError::with_field`] when a value is used under another name (e.g. a
//! [`ReasonText`] given as the `comment` of a hold).
//!
//! **Deserialisation does not re-validate** the string newtypes (they are
//! `#[serde(transparent)]`): stored events are facts that were valid when recorded, and a later
//! tightening of a rule must not make history unreadable. Client input must go through `parse`.
//! ([`IncidentNumber`] and the enums do validate on deserialisation: their formats are fixed.)

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A value failed validation. Every variant names the field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidationError {
    /// The value is empty (after trimming, where the type trims).
    Empty {
        /// The field name.
        field: &'static str,
    },
    /// The value is shorter than allowed.
    TooShort {
        /// The field name.
        field: &'static str,
        /// Minimum length in characters.
        min: usize,
    },
    /// The value is longer than allowed.
    TooLong {
        /// The field name.
        field: &'static str,
        /// Maximum length in characters.
        max: usize,
    },
    /// The value has the wrong shape.
    Invalid {
        /// The field name.
        field: &'static str,
        /// What is wrong, phrased to follow the field name ("must …").
        reason: &'static str,
    },
    /// The value is not one of an enumeration's values.
    UnknownValue {
        /// The field name.
        field: &'static str,
        /// The rejected input.
        value: String,
        /// The accepted values.
        expected: &'static [&'static str],
    },
}

impl ValidationError {
    /// The name of the field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Empty { field }
            | Self::TooShort { field, .. }
            | Self::TooLong { field, .. }
            | Self::Invalid { field, .. }
            | Self::UnknownValue { field, .. } => field,
        }
    }

    /// The same error, reported against another field name.
    #[must_use]
    pub fn with_field(mut self, name: &'static str) -> Self {
        match &mut self {
            Self::Empty { field }
            | Self::TooShort { field, .. }
            | Self::TooLong { field, .. }
            | Self::Invalid { field, .. }
            | Self::UnknownValue { field, .. } => *field = name,
        }
        self
    }

    /// The message without the field name, e.g. `must not be empty` (for an API's
    /// `details: [{field, message}]`).
    pub fn message(&self) -> String {
        match self {
            Self::Empty { .. } => "must not be empty".to_owned(),
            Self::TooShort { min, .. } => format!("must be at least {min} characters long"),
            Self::TooLong { max, .. } => format!("must be at most {max} characters long"),
            Self::Invalid { reason, .. } => (*reason).to_owned(),
            Self::UnknownValue {
                value, expected, ..
            } => format!(
                "has unknown value {value:?}; expected one of: {}",
                expected.join(", ")
            ),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field(), self.message())
    }
}

impl std::error::Error for ValidationError {}

// ---------------------------------------------------------------------------------------------
// Text newtypes
// ---------------------------------------------------------------------------------------------

/// How a text newtype is checked.
struct TextRule {
    field: &'static str,
    min: usize,
    max: usize,
    /// Trim surrounding whitespace before checking and storing.
    trim: bool,
    /// Reject every control character (newlines included); otherwise only NUL is rejected.
    single_line: bool,
}

fn check_text(input: &str, rule: &TextRule) -> Result<String, ValidationError> {
    let field = rule.field;
    let s = if rule.trim { input.trim() } else { input };
    if s.contains('\0') {
        return Err(ValidationError::Invalid {
            field,
            reason: "must not contain NUL characters",
        });
    }
    if rule.single_line && s.chars().any(char::is_control) {
        return Err(ValidationError::Invalid {
            field,
            reason: "must not contain control characters or line breaks",
        });
    }
    let n = s.chars().count();
    if n == 0 && rule.min > 0 {
        return Err(ValidationError::Empty { field });
    }
    if n < rule.min {
        return Err(ValidationError::TooShort {
            field,
            min: rule.min,
        });
    }
    if n > rule.max {
        return Err(ValidationError::TooLong {
            field,
            max: rule.max,
        });
    }
    Ok(s.to_owned())
}

/// Trait-free plumbing shared by every string newtype: accessors and conversions.
macro_rules! string_newtype_impls {
    ($name:ident) => {
        impl $name {
            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// The validated text, by value.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ValidationError;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

/// A text newtype checked only by a [`TextRule`].
macro_rules! text_type {
    (
        $(#[$meta:meta])*
        $name:ident { field: $field:literal, min: $min:expr, max: $max:expr, trim: $trim:expr, single_line: $sl:expr }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The field name reported in validation errors.
            pub const FIELD: &'static str = $field;
            /// The minimum length in characters.
            pub const MIN_CHARS: usize = $min;
            /// The maximum length in characters.
            pub const MAX_CHARS: usize = $max;

            /// Validates and normalises `input`.
            pub fn parse(input: impl AsRef<str>) -> Result<Self, ValidationError> {
                check_text(
                    input.as_ref(),
                    &TextRule {
                        field: $field,
                        min: $min,
                        max: $max,
                        trim: $trim,
                        single_line: $sl,
                    },
                )
                .map(Self)
            }
        }

        string_newtype_impls!($name);
    };
}

text_type!(
    /// An incident title: trimmed, 1..=500 characters, one line.
    Title { field: "title", min: 1, max: 500, trim: true, single_line: true }
);
text_type!(
    /// A long description: at most 50 000 characters, possibly empty, kept verbatim.
    Description { field: "description", min: 0, max: 50_000, trim: false, single_line: false }
);
text_type!(
    /// A first or last name: trimmed, 1..=100 characters, one line.
    PersonName { field: "name", min: 1, max: 100, trim: true, single_line: true }
);
text_type!(
    /// A department name: trimmed, 1..=100 characters, one line.
    Department { field: "department", min: 1, max: 100, trim: true, single_line: true }
);
text_type!(
    /// An organisation's display name: trimmed, 1..=200 characters, one line.
    TenantName { field: "name", min: 1, max: 200, trim: true, single_line: true }
);
text_type!(
    /// A team (assignment group) name: trimmed, 1..=100 characters, one line.
    TeamName { field: "name", min: 1, max: 100, trim: true, single_line: true }
);
text_type!(
    /// A category name: trimmed, 1..=100 characters, one line.
    CategoryName { field: "name", min: 1, max: 100, trim: true, single_line: true }
);
text_type!(
    /// A short justification (reopen, cancel, hold comment): trimmed, 1..=2 000 characters.
    ReasonText { field: "reason", min: 1, max: 2_000, trim: true, single_line: false }
);
text_type!(
    /// How an incident was resolved: trimmed, 1..=20 000 characters.
    ResolutionText { field: "resolution", min: 1, max: 20_000, trim: true, single_line: false }
);
text_type!(
    /// The body of a work note: trimmed, 1..=20 000 characters.
    WorkNoteBody { field: "body", min: 1, max: 20_000, trim: true, single_line: false }
);
text_type!(
    /// The key of an incident's record in an external system, e.g. the Jira issue `OPS-42`:
    /// trimmed, 1..=255 characters, one line.
    ExternalKey { field: "key", min: 1, max: 255, trim: true, single_line: true }
);
text_type!(
    /// A link to an incident's record in an external system: trimmed, 1..=2 000 characters,
    /// one line.
    ExternalUrl { field: "url", min: 1, max: 2_000, trim: true, single_line: true }
);

text_type!(
    /// The root cause of a problem: trimmed, 1..=20 000 characters.
    RootCause { field: "root_cause", min: 1, max: 20_000, trim: true, single_line: false }
);
text_type!(
    /// A workaround of a problem (what the desk does until it is fixed): trimmed,
    /// 1..=20 000 characters.
    Workaround { field: "workaround", min: 1, max: 20_000, trim: true, single_line: false }
);

impl Default for Description {
    /// The empty description (valid: descriptions are optional).
    fn default() -> Self {
        Self(String::new())
    }
}

impl Description {
    /// Whether the description is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An e-mail address: trimmed and lower-cased (addresses are unique per deployment and compared
/// case-insensitively), at most 254 characters, `local@domain` with a dotted domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// The field name reported in validation errors.
    pub const FIELD: &'static str = "email";
    /// The maximum length in characters (RFC 5321 path limit).
    pub const MAX_CHARS: usize = 254;

    /// Validates and normalises `input`.
    pub fn parse(input: impl AsRef<str>) -> Result<Self, ValidationError> {
        const FIELD: &str = Email::FIELD;
        let invalid = |reason| ValidationError::Invalid {
            field: FIELD,
            reason,
        };
        let s = check_text(
            input.as_ref(),
            &TextRule {
                field: FIELD,
                min: 1,
                max: Self::MAX_CHARS,
                trim: true,
                single_line: true,
            },
        )?
        .to_lowercase();
        if s.chars().any(char::is_whitespace) {
            return Err(invalid("must not contain whitespace"));
        }
        let Some((local, domain)) = s.split_once('@') else {
            return Err(invalid("must be an address like name@example.com"));
        };
        if domain.contains('@') {
            return Err(invalid("must contain exactly one @"));
        }
        let local_ok = !local.is_empty()
            && local.chars().count() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        if !local_ok {
            return Err(invalid("has an invalid part before the @"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && domain.chars().count() <= 253
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.chars().count() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !domain_ok {
            return Err(invalid("has an invalid domain after the @"));
        }
        Ok(Self(s))
    }
}

string_newtype_impls!(Email);

/// A login name: trimmed, 3..=64 characters from `[A-Za-z0-9_.-]`. Case is preserved; compare
/// with [`Username::canonical`] when checking uniqueness.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    /// The field name reported in validation errors.
    pub const FIELD: &'static str = "username";

    /// Validates `input`.
    pub fn parse(input: impl AsRef<str>) -> Result<Self, ValidationError> {
        let s = check_text(
            input.as_ref(),
            &TextRule {
                field: Self::FIELD,
                min: 3,
                max: 64,
                trim: true,
                single_line: true,
            },
        )?;
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(ValidationError::Invalid {
                field: Self::FIELD,
                reason: "may contain only letters, digits, '_', '.' and '-'",
            });
        }
        Ok(Self(s))
    }

    /// The lower-cased form, for case-insensitive uniqueness checks.
    pub fn canonical(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

string_newtype_impls!(Username);

/// A telephone number as typed by a person: trimmed, at most 32 characters of digits, spaces
/// and `+ ( ) - .`, with 3..=20 digits and `+` only in first position.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    /// The field name reported in validation errors.
    pub const FIELD: &'static str = "phone";

    /// Validates `input`.
    pub fn parse(input: impl AsRef<str>) -> Result<Self, ValidationError> {
        let s = check_text(
            input.as_ref(),
            &TextRule {
                field: Self::FIELD,
                min: 1,
                max: 32,
                trim: true,
                single_line: true,
            },
        )?;
        let chars_ok = s
            .char_indices()
            .all(|(i, c)| c.is_ascii_digit() || " ()-.".contains(c) || (c == '+' && i == 0));
        let digits = s.chars().filter(char::is_ascii_digit).count();
        if !chars_ok || !(3..=20).contains(&digits) {
            return Err(ValidationError::Invalid {
                field: Self::FIELD,
                reason: "must be a phone number of 3 to 20 digits (spaces, '+', '(', ')', '-', '.' allowed)",
            });
        }
        Ok(Self(s))
    }
}

string_newtype_impls!(Phone);

/// The name of an uploaded file: trimmed, 1..=255 characters, no path separators or control
/// characters, and not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FileName(String);

impl FileName {
    /// The field name reported in validation errors.
    pub const FIELD: &'static str = "filename";

    /// Validates `input`.
    pub fn parse(input: impl AsRef<str>) -> Result<Self, ValidationError> {
        let s = check_text(
            input.as_ref(),
            &TextRule {
                field: Self::FIELD,
                min: 1,
                max: 255,
                trim: true,
                single_line: true,
            },
        )?;
        if s.contains(['/', '\\']) || s == "." || s == ".." {
            return Err(ValidationError::Invalid {
                field: Self::FIELD,
                reason: "must be a plain file name without path separators",
            });
        }
        Ok(Self(s))
    }
}

string_newtype_impls!(FileName);

/// A MIME type such as `application/pdf` or `text/plain; charset=utf-8`: the `type/subtype`
/// essence is lower-cased and must consist of RFC 9110 token characters; at most 255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentType(String);

impl ContentType {
    /// The field name reported in validation errors.
    pub const FIELD: &'static str = "content_type";

    /// Validates and normalises `input`.
    pub fn parse(input: impl AsRef<str>) -> Result<Self, ValidationError> {
        let s = check_text(
            input.as_ref(),
            &TextRule {
                field: Self::FIELD,
                min: 1,
                max: 255,
                trim: true,
                single_line: true,
            },
        )?;
        let (essence, params) = match s.split_once(';') {
            Some((e, p)) => (e.trim_end(), Some(p)),
            None => (s.as_str(), None),
        };
        let is_token = |t: &str| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
        };
        match essence.split_once('/') {
            Some((ty, sub)) if is_token(ty) && is_token(sub) => {
                let mut out = essence.to_ascii_lowercase();
                if let Some(p) = params {
                    out.push(';');
                    out.push_str(p);
                }
                Ok(Self(out))
            }
            _ => Err(ValidationError::Invalid {
                field: Self::FIELD,
                reason: "must be a media type like application/pdf",
            }),
        }
    }

    /// The `type/subtype` part, without parameters.
    pub fn essence(&self) -> &str {
        self.0.split(';').next().unwrap_or(&self.0).trim_end()
    }
}

string_newtype_impls!(ContentType);

/// A SHA-256 digest as 64 lower-case hexadecimal digits (content address of an attachment).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sha256Hex(String);

impl Sha256Hex {
    /// The field name reported in validation errors.
    pub const FIELD: &'static str = "sha256";

    /// Validates and lower-cases `input`.
    pub fn parse(input: impl AsRef<str>) -> Result<Self, ValidationError> {
        let s = input.as_ref().trim();
        if s.len() != 64 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ValidationError::Invalid {
                field: Self::FIELD,
                reason: "must be 64 hexadecimal digits",
            });
        }
        Ok(Self(s.to_ascii_lowercase()))
    }
}

string_newtype_impls!(Sha256Hex);

/// A password hash computed by the caller (Argon2id PHC string). The domain never sees the
/// password. `Debug` is redacted so hashes do not leak into logs.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// The field name reported in validation errors.
    pub const FIELD: &'static str = "password_hash";

    /// Validates `input` (non-empty, at most 1024 characters, no control characters).
    pub fn parse(input: impl AsRef<str>) -> Result<Self, ValidationError> {
        check_text(
            input.as_ref(),
            &TextRule {
                field: Self::FIELD,
                min: 1,
                max: 1024,
                trim: false,
                single_line: true,
            },
        )
        .map(Self)
    }

    /// The hash string, for verification by the caller.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

// ---------------------------------------------------------------------------------------------
// Incident number
// ---------------------------------------------------------------------------------------------

/// A human-facing incident number, `INC` followed by the per-tenant sequence number zero padded
/// to at least six digits: sequence 123 is `INC000123`, sequence 1 234 567 is `INC1234567`.
///
/// The sequence is allocated by the command layer (it needs the store) and passed in the
/// `Create` command. Serialised as its string form; parsing accepts only the canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IncidentNumber(u64);

impl IncidentNumber {
    /// The field name reported in validation errors.
    pub const FIELD: &'static str = "incident_number";
    /// The fixed prefix.
    pub const PREFIX: &'static str = "INC";
    /// The minimum number of digits (zero padded).
    pub const MIN_DIGITS: usize = 6;

    /// The number for sequence value `sequence` (sequences start at 1).
    pub fn from_sequence(sequence: u64) -> Result<Self, ValidationError> {
        if sequence == 0 {
            return Err(ValidationError::Invalid {
                field: Self::FIELD,
                reason: "sequence must start at 1",
            });
        }
        Ok(Self(sequence))
    }

    /// The per-tenant sequence value.
    pub fn sequence(self) -> u64 {
        self.0
    }

    /// Parses the canonical form, e.g. `INC000123`.
    pub fn parse(input: impl AsRef<str>) -> Result<Self, ValidationError> {
        let invalid = ValidationError::Invalid {
            field: Self::FIELD,
            reason: "must look like INC000123",
        };
        let s = input.as_ref().trim();
        let Some(digits) = s.strip_prefix(Self::PREFIX) else {
            return Err(invalid);
        };
        if digits.len() < Self::MIN_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid);
        }
        let Ok(n) = digits.parse::<u64>() else {
            return Err(invalid);
        };
        let number = Self::from_sequence(n)?;
        // Only the canonical spelling: `INC0000123` would be a second name for INC000123.
        if format!("{:0width$}", n, width = Self::MIN_DIGITS) != digits {
            return Err(invalid);
        }
        Ok(number)
    }
}

impl fmt::Display for IncidentNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{:0width$}",
            Self::PREFIX,
            self.0,
            width = Self::MIN_DIGITS
        )
    }
}

impl FromStr for IncidentNumber {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for IncidentNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IncidentNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Enumerations
// ---------------------------------------------------------------------------------------------

/// A closed vocabulary: serde name, `as_str`, `Display`, `FromStr`, `ALL` and `NAMES` from one
/// list, so the wire names cannot drift apart. Usable from any module of the crate.
macro_rules! str_enum {
    (
        $(#[$meta:meta])*
        $name:ident, field = $field:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $s:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            ::serde::Serialize, ::serde::Deserialize,
        )]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $s)] $variant ),+
        }

        impl $name {
            /// Every value, in declaration (= ascending) order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The wire names of every value, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($s),+];
            /// The field name reported in validation errors.
            pub const FIELD: &'static str = $field;

            /// The snake_case wire name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $s),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::values::ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($name::$variant),)+
                    other => Err($crate::values::ValidationError::UnknownValue {
                        field: $field,
                        value: other.to_owned(),
                        expected: Self::NAMES,
                    }),
                }
            }
        }
    };
}
pub(crate) use str_enum;

str_enum!(
    /// The lifecycle status of an incident. See [`crate::incident`] for the transition table.
    IncidentStatus, field = "status" {
        /// Logged, not yet routed.
        New => "new",
        /// Routed to a team and/or assignee.
        Assigned => "assigned",
        /// Someone is working on it.
        InProgress => "in_progress",
        /// Waiting for someone else; the SLA clock is paused.
        OnHold => "on_hold",
        /// Fixed, awaiting confirmation / closure.
        Resolved => "resolved",
        /// Final: confirmed resolved.
        Closed => "closed",
        /// Final: withdrawn.
        Cancelled => "cancelled",
    }
);

impl IncidentStatus {
    /// `closed` and `cancelled` accept no further change.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Closed | Self::Cancelled)
    }

    /// Not yet resolved, closed or cancelled (the work is still open).
    pub const fn is_open(self) -> bool {
        matches!(
            self,
            Self::New | Self::Assigned | Self::InProgress | Self::OnHold
        )
    }
}

str_enum!(
    /// How soon an incident must be handled. Ordered `low < medium < high < critical`.
    Priority, field = "priority" {
        /// Lowest.
        Low => "low",
        /// Default.
        Medium => "medium",
        /// High.
        High => "high",
        /// Highest.
        Critical => "critical",
    }
);

str_enum!(
    /// How much of the business is affected. Ordered `low < medium < high < extensive`.
    Impact, field = "impact" {
        /// One person.
        Low => "low",
        /// A group.
        Medium => "medium",
        /// A department or site.
        High => "high",
        /// The whole organisation.
        Extensive => "extensive",
    }
);

str_enum!(
    /// How time-critical an incident is. Ordered `low < medium < high < critical`.
    Urgency, field = "urgency" {
        /// Can wait.
        Low => "low",
        /// Normal.
        Medium => "medium",
        /// Soon.
        High => "high",
        /// Now.
        Critical => "critical",
    }
);

impl Impact {
    /// Position in [`Impact::ALL`] (0 = low … 3 = extensive).
    pub const fn index(self) -> usize {
        match self {
            Self::Low => 0,
            Self::Medium => 1,
            Self::High => 2,
            Self::Extensive => 3,
        }
    }
}

impl Urgency {
    /// Position in [`Urgency::ALL`] (0 = low … 3 = critical).
    pub const fn index(self) -> usize {
        match self {
            Self::Low => 0,
            Self::Medium => 1,
            Self::High => 2,
            Self::Critical => 3,
        }
    }
}

str_enum!(
    /// Why an incident is on hold.
    HoldReason, field = "reason" {
        /// Waiting for the caller to answer.
        AwaitingCaller => "awaiting_caller",
        /// Waiting for a vendor.
        AwaitingVendor => "awaiting_vendor",
        /// Waiting for a change to be implemented.
        AwaitingChange => "awaiting_change",
        /// Waiting for a problem investigation.
        AwaitingProblem => "awaiting_problem",
    }
);

str_enum!(
    /// An external system an incident can be linked to (the integration bus, ADR 0016).
    ExternalSystem, field = "system" {
        /// Atlassian Jira (an issue).
        Jira => "jira",
    }
);

str_enum!(
    /// The kind of a work note.
    WorkNoteType, field = "note_type" {
        /// An ordinary note.
        WorkNote => "work_note",
        /// A note describing the resolution.
        ResolutionNote => "resolution_note",
    }
);

str_enum!(
    /// A built-in role. Ordered from most to least privileged.
    Role, field = "role" {
        /// Tenant administrator.
        Admin => "admin",
        /// Service-desk manager.
        Manager => "manager",
        /// Agent working incidents.
        Operator => "operator",
        /// Requester.
        User => "user",
        /// Read-only.
        Viewer => "viewer",
    }
);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn title_trims_and_bounds() {
        assert_eq!(Title::parse("  Mail down  ").unwrap().as_str(), "Mail down");
        assert_eq!(
            Title::parse("   "),
            Err(ValidationError::Empty { field: "title" })
        );
        assert!(Title::parse("x".repeat(500)).is_ok());
        // Counted in characters, not bytes.
        assert!(Title::parse("é".repeat(500)).is_ok());
        assert_eq!(
            Title::parse("x".repeat(501)),
            Err(ValidationError::TooLong {
                field: "title",
                max: 500
            })
        );
        assert!(matches!(
            Title::parse("two\nlines"),
            Err(ValidationError::Invalid { field: "title", .. })
        ));
        assert!(Title::parse("a\0b").is_err());
    }

    #[test]
    fn sql_and_html_words_are_plain_text() {
        let t = Title::parse("DROP TABLE users; <script>alert(1)</script>").unwrap();
        assert_eq!(t.as_str(), "DROP TABLE users; <script>alert(1)</script>");
    }

    #[test]
    fn description_bounds() {
        assert!(Description::parse("").unwrap().is_empty());
        assert_eq!(
            Description::parse("  line 1\n\tline 2\n").unwrap().as_str(),
            "  line 1\n\tline 2\n"
        );
        assert!(Description::parse("x".repeat(50_000)).is_ok());
        assert_eq!(
            Description::parse("x".repeat(50_001)),
            Err(ValidationError::TooLong {
                field: "description",
                max: 50_000
            })
        );
        assert!(Description::parse("nul\0").is_err());
    }

    #[test]
    fn work_note_body_bounds() {
        assert!(WorkNoteBody::parse("x".repeat(20_000)).is_ok());
        assert!(WorkNoteBody::parse("x".repeat(20_001)).is_err());
        assert_eq!(
            WorkNoteBody::parse(" \n "),
            Err(ValidationError::Empty { field: "body" })
        );
        assert!(WorkNoteBody::parse("multi\nline").is_ok());
    }

    #[test]
    fn other_texts() {
        assert!(ReasonText::parse("caller confirmed").is_ok());
        assert!(ReasonText::parse("").is_err());
        assert!(ReasonText::parse("x".repeat(2_001)).is_err());
        assert!(ResolutionText::parse("rebooted").is_ok());
        assert!(ResolutionText::parse(" ").is_err());
        assert!(PersonName::parse("Ada").is_ok());
        assert!(PersonName::parse("").is_err());
        assert!(Department::parse("IT").is_ok());
        assert!(TenantName::parse("Acme").is_ok());
        assert!(TeamName::parse("Network").is_ok());
        assert!(TeamName::parse("x".repeat(101)).is_err());
        assert!(CategoryName::parse("Email").is_ok());
        assert!(CategoryName::parse("").is_err());
    }

    #[test]
    fn with_field_renames_and_message_omits_field() {
        let e = ReasonText::parse("").unwrap_err().with_field("comment");
        assert_eq!(e.field(), "comment");
        assert_eq!(e.message(), "must not be empty");
        assert_eq!(e.to_string(), "comment must not be empty");
    }

    #[test]
    fn email_rules() {
        assert_eq!(
            Email::parse(" Ada.Lovelace@Example.COM ").unwrap().as_str(),
            "ada.lovelace@example.com"
        );
        assert!(Email::parse("a+tag@sub.example.co.jp").is_ok());
        for bad in [
            "",
            "no-at",
            "a@b",
            "a@@b.com",
            "a@b@c.com",
            "@example.com",
            "a@.com",
            "a@-x.com",
            ".a@example.com",
            "a..b@example.com",
            "a b@example.com",
            "a@exa mple.com",
        ] {
            let e = Email::parse(bad).unwrap_err();
            assert_eq!(e.field(), "email", "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(long).is_err());
    }

    #[test]
    fn username_rules() {
        assert!(Username::parse("ada_l.ove-1").is_ok());
        assert_eq!(
            Username::parse("ab"),
            Err(ValidationError::TooShort {
                field: "username",
                min: 3
            })
        );
        assert!(Username::parse("x".repeat(64)).is_ok());
        assert!(Username::parse("x".repeat(65)).is_err());
        assert!(Username::parse("ada lovelace").is_err());
        assert!(Username::parse("adä").is_err());
        assert_eq!(Username::parse("AdA").unwrap().canonical(), "ada");
    }

    #[test]
    fn phone_rules() {
        assert!(Phone::parse("+81 (3) 1234-5678").is_ok());
        assert!(Phone::parse("03.1234.5678").is_ok());
        assert!(Phone::parse("12").is_err());
        assert!(Phone::parse("1+23").is_err());
        assert!(Phone::parse("call me").is_err());
        assert!(Phone::parse("1".repeat(21)).is_err());
    }

    #[test]
    fn attachment_values() {
        assert!(FileName::parse("report final.pdf").is_ok());
        assert!(FileName::parse("../etc/passwd").is_err());
        assert!(FileName::parse("a\\b").is_err());
        assert!(FileName::parse("..").is_err());
        assert!(FileName::parse("x".repeat(256)).is_err());

        let ct = ContentType::parse("Text/Plain; charset=UTF-8").unwrap();
        assert_eq!(ct.as_str(), "text/plain; charset=UTF-8");
        assert_eq!(ct.essence(), "text/plain");
        assert!(ContentType::parse("application/pdf").is_ok());
        assert!(ContentType::parse("pdf").is_err());
        assert!(ContentType::parse("a/").is_err());
        assert!(ContentType::parse("a b/c").is_err());

        let h = "AB".repeat(32);
        assert_eq!(Sha256Hex::parse(&h).unwrap().as_str(), "ab".repeat(32));
        assert!(Sha256Hex::parse("ab").is_err());
        assert!(Sha256Hex::parse("zz".repeat(32)).is_err());
    }

    #[test]
    fn password_hash_is_redacted() {
        let h = PasswordHash::parse("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").unwrap();
        assert_eq!(format!("{h:?}"), "PasswordHash(<redacted>)");
        assert!(h.expose().starts_with("$argon2id$"));
        assert!(PasswordHash::parse("").is_err());
    }

    #[test]
    fn incident_number_format() {
        let n = IncidentNumber::from_sequence(123).unwrap();
        assert_eq!(n.to_string(), "INC000123");
        assert_eq!(IncidentNumber::parse("INC000123").unwrap(), n);
        assert_eq!(n.sequence(), 123);
        let big = IncidentNumber::from_sequence(1_234_567).unwrap();
        assert_eq!(big.to_string(), "INC1234567");
        assert_eq!("INC1234567".parse::<IncidentNumber>().unwrap(), big);
        assert!(IncidentNumber::from_sequence(0).is_err());
        for bad in [
            "INC00123",
            "INC0000123",
            "inc000123",
            "INC000000",
            "INC00012a",
            "000123",
            "INC-00123",
            "INC99999999999999999999999",
        ] {
            assert!(IncidentNumber::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"INC000123\"");
        assert_eq!(
            serde_json::from_str::<IncidentNumber>("\"INC000123\"").unwrap(),
            n
        );
        assert!(serde_json::from_str::<IncidentNumber>("\"INC12\"").is_err());
    }

    fn check_enum<T>(all: &[T], names: &[&str])
    where
        T: Copy + PartialEq + fmt::Debug + fmt::Display + FromStr + Serialize,
        T: serde::de::DeserializeOwned,
    {
        assert_eq!(all.len(), names.len());
        for (v, name) in all.iter().zip(names) {
            assert_eq!(&v.to_string(), name);
            assert!(matches!(name.parse::<T>(), Ok(p) if p == *v));
            let json = serde_json::to_string(v).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), *v);
        }
        assert!("nope".parse::<T>().is_err());
    }

    #[test]
    fn enums_round_trip() {
        check_enum(
            IncidentStatus::ALL,
            &[
                "new",
                "assigned",
                "in_progress",
                "on_hold",
                "resolved",
                "closed",
                "cancelled",
            ],
        );
        check_enum(Priority::ALL, &["low", "medium", "high", "critical"]);
        check_enum(Impact::ALL, &["low", "medium", "high", "extensive"]);
        check_enum(Urgency::ALL, &["low", "medium", "high", "critical"]);
        check_enum(
            HoldReason::ALL,
            &[
                "awaiting_caller",
                "awaiting_vendor",
                "awaiting_change",
                "awaiting_problem",
            ],
        );
        check_enum(WorkNoteType::ALL, &["work_note", "resolution_note"]);
        check_enum(
            Role::ALL,
            &["admin", "manager", "operator", "user", "viewer"],
        );
        assert_eq!(
            "urgent".parse::<Priority>(),
            Err(ValidationError::UnknownValue {
                field: "priority",
                value: "urgent".into(),
                expected: Priority::NAMES,
            })
        );
        assert!(Priority::Low < Priority::Critical);
        for (i, v) in Impact::ALL.iter().enumerate() {
            assert_eq!(v.index(), i);
        }
        for (i, v) in Urgency::ALL.iter().enumerate() {
            assert_eq!(v.index(), i);
        }
    }

    #[test]
    fn status_predicates() {
        use IncidentStatus::*;
        assert!(Closed.is_final() && Cancelled.is_final());
        assert!(!Resolved.is_final() && !Resolved.is_open());
        assert!(New.is_open() && OnHold.is_open());
    }
}
