//! Validated identifiers.
//!
//! Site, box and checkpoint names appear in MQTT topics and certificate identities, so they are
//! restricted to lowercase ASCII letters, digits, `-` and `_`, 1 to 64 characters, starting with a
//! letter or digit. Subject ids are the pseudonymous person ids carried in pass codes and events:
//! 1 to 32 characters of ASCII letters, digits, `-`, `_` and `.`. Neither can hold a name.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an identifier was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} is {len} characters, at most {max} allowed")]
    TooLong {
        kind: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{kind} contains {found:?}; allowed are {allowed}")]
    BadChar {
        kind: &'static str,
        found: char,
        allowed: &'static str,
    },
    #[error("{kind} must start with a letter or digit")]
    BadStart { kind: &'static str },
}

const NAME_ALLOWED: &str = "lowercase letters, digits, '-' and '_'";
const SUBJECT_ALLOWED: &str = "letters, digits, '-', '_' and '.'";

/// Longest site, box or checkpoint name.
pub const NAME_MAX: usize = 64;
/// Longest subject id; bounded so that a pass code stays a small QR code.
pub const SUBJECT_MAX: usize = 32;

fn check_name(kind: &'static str, s: &str) -> Result<(), IdError> {
    let first = s.chars().next().ok_or(IdError::Empty { kind })?;
    if s.len() > NAME_MAX {
        return Err(IdError::TooLong {
            kind,
            len: s.len(),
            max: NAME_MAX,
        });
    }
    if let Some(found) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        return Err(IdError::BadChar {
            kind,
            found,
            allowed: NAME_ALLOWED,
        });
    }
    if !first.is_ascii_alphanumeric() {
        return Err(IdError::BadStart { kind });
    }
    Ok(())
}

fn check_subject(s: &str) -> Result<(), IdError> {
    let kind = "subject id";
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.len() > SUBJECT_MAX {
        return Err(IdError::TooLong {
            kind,
            len: s.len(),
            max: SUBJECT_MAX,
        });
    }
    if let Some(found) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(IdError::BadChar {
            kind,
            found,
            allowed: SUBJECT_ALLOWED,
        });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `s`.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                $check(&s)?;
                Ok(Self(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A site (a campus, a building complex): groups boxes for reporting.
    SiteId,
    |s| check_name("site id", s)
);
id_type!(
    /// A kiosk box. Globally unique; it is the box's certificate identity and its topic namespace.
    BoxId,
    |s| check_name("box id", s)
);
id_type!(
    /// A checkpoint (an entrance). Several boxes may serve one checkpoint.
    CheckpointId,
    |s| check_name("checkpoint id", s)
);
id_type!(
    /// A pseudonymous person id, as carried in pass codes and events. Never a name.
    SubjectId,
    check_subject
);

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, box_ok: bool, subject_ok: bool) {
        assert_eq!(BoxId::new(input).is_ok(), box_ok, "box id {input:?}");
        assert_eq!(
            SubjectId::new(input).is_ok(),
            subject_ok,
            "subject id {input:?}"
        );
    }

    #[test]
    fn identifiers() {
        check("box-1", true, true);
        check("b", true, true);
        check("", false, false);
        check("-box", false, true);
        check("Box1", false, true);
        check("p.123", false, true);
        check("a/b", false, false);
        check("a+b", false, false);
        check("#", false, false);
        check("x y", false, false);
        check("é", false, false);
        check(&"a".repeat(32), true, true);
        check(&"a".repeat(33), true, false);
        check(&"a".repeat(64), true, false);
        check(&"a".repeat(65), false, false);
    }

    #[test]
    fn serde_rejects_invalid() {
        assert!(serde_json::from_str::<BoxId>("\"ok-box\"").is_ok());
        let err = serde_json::from_str::<BoxId>("\"bad/box\"").unwrap_err();
        assert!(err.to_string().contains("box id contains '/'"), "{err}");
    }
}
