//! JSON records exchanged over MQTT, and their strict decoding.
//!
//! Every record carries `"schema": 1`. Decoding checks, in this order: the size limit of the
//! record type (before any parsing), JSON syntax, the schema version, then the exact shape (unknown
//! fields are errors) and every field's domain. Each failure is a distinct [`DecodeError`] so that
//! central can count bad messages by reason.

mod control;
mod event;
mod health;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::SCHEMA_VERSION;

pub use control::{Ack, KeyEntry, RevocationEntry, SeqRange, TrustConfig, MAX_ACK_RANGES};
pub use event::{Decision, Direction, Event, Flag, Method, Reason, MAX_SEQ};
pub use health::{BoxState, Health, HealthState, Status, Telemetry};

/// A record type with its own size limit.
pub trait Record: Serialize + DeserializeOwned {
    /// Largest accepted encoding in bytes.
    const MAX_BYTES: usize;
    /// Checks field relationships that serde cannot express.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Why a payload was rejected.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("payload is {len} bytes, at most {max} allowed")]
    TooLarge { len: usize, max: usize },
    #[error("payload is not JSON: {0}")]
    Syntax(String),
    #[error("schema version {found} is not supported (expected {SCHEMA_VERSION})")]
    Version { found: u64 },
    #[error("payload does not match the schema: {0}")]
    Schema(String),
    #[error("invalid field value: {0}")]
    Invalid(String),
}

impl DecodeError {
    /// A short label for counting rejects by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::Syntax(_) => "syntax",
            DecodeError::Version { .. } => "version",
            DecodeError::Schema(_) => "schema",
            DecodeError::Invalid(_) => "invalid",
        }
    }
}

/// Decodes a record strictly. Never panics, whatever the bytes.
pub fn decode<T: Record>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > T::MAX_BYTES {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: T::MAX_BYTES,
        });
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Syntax(e.to_string()))?;
    match value.get("schema").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(SCHEMA_VERSION) => {}
        Some(found) => return Err(DecodeError::Version { found }),
        None => {
            return Err(DecodeError::Schema(
                "missing or non-integer \"schema\" field".to_string(),
            ))
        }
    }
    let record: T =
        serde_json::from_value(value).map_err(|e| DecodeError::Schema(e.to_string()))?;
    record.validate().map_err(DecodeError::Invalid)?;
    Ok(record)
}

/// Encodes a record as compact JSON.
pub fn encode<T: Record>(record: &T) -> Vec<u8> {
    // Our records contain only strings, numbers, booleans and sequences: serde_json cannot fail on
    // them (it fails only on non-string map keys or failing custom serializers).
    serde_json::to_vec(record).unwrap_or_default()
}

/// The `schema` field. It serialises as the current [`SCHEMA_VERSION`] and refuses any other
/// number on the way in, so a record value always speaks the current schema.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Schema;

impl Serialize for Schema {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(SCHEMA_VERSION)
    }
}

impl<'de> Deserialize<'de> for Schema {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u32::deserialize(d)?;
        if v == SCHEMA_VERSION {
            Ok(Schema)
        } else {
            Err(serde::de::Error::custom(format!(
                "schema version {v} is not supported"
            )))
        }
    }
}

/// Serde for timestamps: RFC 3339 in UTC (`2026-11-23T08:00:00Z`); other offsets are refused.
pub(crate) mod utc {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::{OffsetDateTime, UtcOffset};

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        let text = t
            .to_offset(UtcOffset::UTC)
            .format(&Rfc3339)
            .map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        let t = OffsetDateTime::parse(&text, &Rfc3339).map_err(serde::de::Error::custom)?;
        if t.offset() != UtcOffset::UTC {
            return Err(serde::de::Error::custom(format!(
                "timestamp {text:?} is not in UTC (use a trailing Z)"
            )));
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests;
