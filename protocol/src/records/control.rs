//! Records central sends to boxes: end-to-end acks and trust configuration.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Record, Schema};
use crate::ids::{BoxId, SubjectId};
use crate::passcode::{IssuerKey, KeyId, Revocation, TrustStore, TrustedKey};
use crate::signed::{self, ConfigKeys, ConfigSignature, Purpose, Refused};

/// An inclusive range of sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeqRange {
    pub first: u64,
    pub last: u64,
}

/// Central has durably stored these events of this box; the box may delete them from its outbox.
/// A broker's PUBACK never means this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    pub schema: Schema,
    #[serde(rename = "box")]
    pub box_id: BoxId,
    pub ranges: Vec<SeqRange>,
}

/// Most ranges in one ack.
pub const MAX_ACK_RANGES: usize = 1024;

impl Record for Ack {
    const MAX_BYTES: usize = 64 * 1024;

    fn validate(&self) -> Result<(), String> {
        if self.ranges.is_empty() {
            return Err("an ack names at least one range".to_string());
        }
        if self.ranges.len() > MAX_ACK_RANGES {
            return Err(format!(
                "{} ranges, at most {MAX_ACK_RANGES}",
                self.ranges.len()
            ));
        }
        match self
            .ranges
            .iter()
            .find(|r| r.first == 0 || r.first > r.last || r.last > super::event::MAX_SEQ)
        {
            Some(r) => Err(format!("bad range {}..={}", r.first, r.last)),
            None => Ok(()),
        }
    }
}

/// One trusted issuer key: its id and the 32 raw public-key bytes in lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub kid: String,
    pub public_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationEntry {
    pub subject: SubjectId,
    /// Codes of `subject` issued before this instant are revoked.
    #[serde(with = "super::utc")]
    pub issued_before: OffsetDateTime,
}

/// The keys and revocations every box verifies pass codes with. Retained on the shared trust
/// topic; a box keeps the last good copy on disk. Signed by central's configuration key
/// ([`crate::signed`]): a box applies it only when the signature verifies and `serial` is newer
/// than the copy in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    pub schema: Schema,
    /// Grows with every publication that changes anything; never reused.
    pub serial: u64,
    /// When central published this version; boxes report its age.
    #[serde(with = "super::utc")]
    pub published_at: OffsetDateTime,
    pub keys: Vec<KeyEntry>,
    pub revocations: Vec<RevocationEntry>,
    /// Over every other field, as [`TrustConfig::signed_bytes`] encodes them.
    pub signature: ConfigSignature,
}

/// The signed part of a [`TrustConfig`]: every field but the signature, in a fixed order.
#[derive(Serialize)]
struct TrustBody<'a> {
    schema: Schema,
    serial: u64,
    #[serde(with = "super::utc")]
    published_at: OffsetDateTime,
    keys: &'a [KeyEntry],
    revocations: &'a [RevocationEntry],
}

impl Record for TrustConfig {
    const MAX_BYTES: usize = 4 * 1024 * 1024;

    fn validate(&self) -> Result<(), String> {
        self.to_trust_store().map(|_| ())
    }
}

fn hex_key(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

fn to_unix(t: OffsetDateTime) -> u32 {
    t.unix_timestamp().clamp(0, i64::from(u32::MAX)) as u32
}

impl TrustConfig {
    /// Builds the record from a trust store and signs it with central's configuration key.
    pub fn signed(
        store: &TrustStore,
        serial: u64,
        published_at: OffsetDateTime,
        key: &IssuerKey,
    ) -> Self {
        let mut cfg = Self::unsigned(store, serial, published_at);
        cfg.signature = signed::sign(key, Purpose::Trust, &cfg.signed_bytes());
        cfg
    }

    /// The record with an empty signature, which no box accepts (tests of refusal build on it).
    pub fn unsigned(store: &TrustStore, serial: u64, published_at: OffsetDateTime) -> Self {
        let keys = store
            .keys()
            .map(|k| KeyEntry {
                kid: k.kid().to_string(),
                public_key: k.as_bytes().iter().map(|b| format!("{b:02x}")).collect(),
            })
            .collect();
        let revocations = store
            .revocations()
            .map(|r| RevocationEntry {
                subject: r.subject,
                issued_before: OffsetDateTime::from_unix_timestamp(i64::from(r.issued_before))
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            })
            .collect();
        TrustConfig {
            schema: Schema,
            serial,
            published_at,
            keys,
            revocations,
            signature: ConfigSignature {
                kid: String::new(),
                sig: String::new(),
            },
        }
    }

    /// What the signature covers: the record without its signature, as compact JSON in field
    /// order. The verifier re-encodes the decoded record, so any two encodings of the same
    /// content verify alike and no edit survives.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let body = TrustBody {
            schema: Schema,
            serial: self.serial,
            published_at: self.published_at,
            keys: &self.keys,
            revocations: &self.revocations,
        };
        // Serialising plain strings, numbers and timestamps cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// Checks the signature against the configuration keys a box trusts.
    pub fn verify(&self, keys: &ConfigKeys) -> Result<KeyId, Refused> {
        signed::verify(keys, Purpose::Trust, &self.signed_bytes(), &self.signature)
    }

    /// The verifier's view; fails when a key is malformed or its id does not match the key.
    pub fn to_trust_store(&self) -> Result<TrustStore, String> {
        let mut store = TrustStore::new();
        for entry in &self.keys {
            let bytes = hex_key(&entry.public_key)
                .ok_or_else(|| format!("key {}: public_key is not 64 hex digits", entry.kid))?;
            let key =
                TrustedKey::from_bytes(&bytes).map_err(|e| format!("key {}: {e}", entry.kid))?;
            if KeyId::from_hex(&entry.kid) != Some(key.kid()) {
                return Err(format!(
                    "key id {} does not match its key (expected {})",
                    entry.kid,
                    key.kid()
                ));
            }
            store.add_key(key);
        }
        for r in &self.revocations {
            store.revoke(Revocation {
                subject: r.subject.clone(),
                issued_before: to_unix(r.issued_before),
            });
        }
        Ok(store)
    }
}
