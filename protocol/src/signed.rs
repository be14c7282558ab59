//! Signed configuration: material central sends boxes that changes what a box admits (the pass-code
//! trust material, face galleries) carries an Ed25519 signature by central's *configuration key*
//! and a serial number. A box applies it only when the signature verifies against one of the
//! configuration keys it was provisioned with, the serial is newer than the copy in force, and
//! the publication time is not in the future beyond the allowed clock skew. Everything else is
//! refused and never replaces what is in force, so no broker identity can forge it and no wrong
//! clock can lock boxes out.
//!
//! The configuration key is not the pass-code issuer key: a leaked issuer key forges codes, a
//! leaked configuration key forges trust; keeping them apart keeps either leak smaller.
//!
//! Signatures are domain-separated: the signed message is `checkpoint config v1\0`, the purpose
//! (`trust` or `gallery`), `\0`, then the body bytes, so a signature over one kind of material
//! can never be replayed as another.

use std::fmt;

use ed25519_dalek::{Signature, Verifier};
use serde::{Deserialize, Serialize};

use crate::passcode::{IssuerKey, KeyId, TrustedKey};

/// Clock skew tolerated on a publication time, unless the box's configuration says otherwise.
pub const DEFAULT_MAX_SKEW_S: i64 = 300;

/// What the signature is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Trust,
    Gallery,
}

impl Purpose {
    fn tag(self) -> &'static [u8] {
        match self {
            Purpose::Trust => b"trust",
            Purpose::Gallery => b"gallery",
        }
    }
}

/// A detached signature: the signing key's id and the 64 signature bytes, both in lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSignature {
    pub kid: String,
    pub sig: String,
}

/// Why signed material was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("signed by key {0}, which this box does not trust for configuration")]
    UnknownKey(String),
    #[error("unsigned: it carries no configuration signature")]
    Unsigned,
    #[error("signature does not verify")]
    BadSignature,
    #[error("serial {serial} is older than the copy in force ({in_force}): a replay")]
    Replayed { serial: u64, in_force: u64 },
    #[error("published {ahead_s} s in the future (more than the {max_skew_s} s skew allowed)")]
    Future { ahead_s: i64, max_skew_s: i64 },
    #[error("malformed: {0}")]
    Malformed(String),
}

impl Refused {
    /// A short label for counting refusals by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Refused::UnknownKey(_) => "unknown_key",
            Refused::Unsigned => "unsigned",
            Refused::BadSignature => "bad_signature",
            Refused::Replayed { .. } => "replayed",
            Refused::Future { .. } => "future",
            Refused::Malformed(_) => "malformed",
        }
    }
}

fn message(purpose: Purpose, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + 32);
    m.extend_from_slice(b"checkpoint config v1\0");
    m.extend_from_slice(purpose.tag());
    m.push(0);
    m.extend_from_slice(body);
    m
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Signs `body` for `purpose` with central's configuration key: the raw signature bytes.
pub fn sign_raw(key: &IssuerKey, purpose: Purpose, body: &[u8]) -> [u8; 64] {
    key.sign(&message(purpose, body))
}

/// Signs `body` for `purpose`, as the hex pair JSON records carry.
pub fn sign(key: &IssuerKey, purpose: Purpose, body: &[u8]) -> ConfigSignature {
    ConfigSignature {
        kid: key.kid().to_string(),
        sig: hex(&sign_raw(key, purpose, body)),
    }
}

/// Checks a raw signature by key `kid` over `body` for `purpose` against the configuration
/// keys the box trusts.
pub fn verify_raw(
    keys: &ConfigKeys,
    purpose: Purpose,
    body: &[u8],
    kid: KeyId,
    sig: &[u8; 64],
) -> Result<KeyId, Refused> {
    let key = keys
        .0
        .iter()
        .find(|k| k.kid() == kid)
        .ok_or_else(|| Refused::UnknownKey(kid.to_string()))?;
    key.verifying_key()
        .verify(&message(purpose, body), &Signature::from_bytes(sig))
        .map_err(|_| Refused::BadSignature)?;
    Ok(kid)
}

/// Checks `sig` over `body` for `purpose` against the configuration keys the box trusts; returns
/// the key that signed.
pub fn verify(
    keys: &ConfigKeys,
    purpose: Purpose,
    body: &[u8],
    sig: &ConfigSignature,
) -> Result<KeyId, Refused> {
    if sig.kid.is_empty() && sig.sig.is_empty() {
        return Err(Refused::Unsigned);
    }
    let kid = KeyId::from_hex(&sig.kid).ok_or_else(|| Refused::UnknownKey(sig.kid.clone()))?;
    let bytes = unhex::<64>(&sig.sig).ok_or(Refused::BadSignature)?;
    verify_raw(keys, purpose, body, kid, &bytes)
}

/// The configuration keys a box trusts (from its provisioning files). Empty: the box applies no
/// configuration from the network at all.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConfigKeys(pub Vec<TrustedKey>);

impl fmt::Debug for ConfigKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|k| k.kid().to_string()))
            .finish()
    }
}

/// The outcome of [`admit`] for material whose signature verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fresh {
    /// Newer than the copy in force: apply it.
    Newer,
    /// The copy in force seen again (a retained message after a reconnect): nothing to do.
    Same,
}

/// Whether verified material with `serial`, published at `published_at` (Unix seconds), replaces
/// the copy in force (`in_force`: its serial, `None` when only bootstrap material is in force).
/// `now` is the box's clock. Pure: the caller passes the time in.
pub fn admit(
    in_force: Option<u64>,
    serial: u64,
    published_at: i64,
    now: i64,
    max_skew_s: i64,
) -> Result<Fresh, Refused> {
    let ahead_s = published_at.saturating_sub(now);
    if ahead_s > max_skew_s {
        return Err(Refused::Future {
            ahead_s,
            max_skew_s,
        });
    }
    match in_force {
        Some(cur) if serial == cur => Ok(Fresh::Same),
        Some(cur) if serial < cur => Err(Refused::Replayed {
            serial,
            in_force: cur,
        }),
        _ => Ok(Fresh::Newer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(seeds: &[u8]) -> ConfigKeys {
        ConfigKeys(
            seeds
                .iter()
                .map(|s| IssuerKey::from_seed([*s; 32]).public())
                .collect(),
        )
    }

    #[test]
    fn a_signature_verifies_only_for_its_key_purpose_and_body() {
        let key = IssuerKey::from_seed([7; 32]);
        let sig = sign(&key, Purpose::Trust, b"body");
        let trusted = keys(&[1, 7]);
        assert_eq!(
            verify(&trusted, Purpose::Trust, b"body", &sig),
            Ok(key.kid())
        );
        let check = |k: &ConfigKeys, p, body: &[u8], s: &ConfigSignature| verify(k, p, body, s);
        assert_eq!(
            check(&trusted, Purpose::Gallery, b"body", &sig),
            Err(Refused::BadSignature),
            "a trust signature is no gallery signature"
        );
        assert_eq!(
            check(&trusted, Purpose::Trust, b"bodz", &sig),
            Err(Refused::BadSignature)
        );
        assert!(matches!(
            check(&keys(&[1]), Purpose::Trust, b"body", &sig),
            Err(Refused::UnknownKey(_))
        ));
        assert!(matches!(
            check(&ConfigKeys::default(), Purpose::Trust, b"body", &sig),
            Err(Refused::UnknownKey(_))
        ));
        for bad in ["", "zz", &"0".repeat(128), &sig.sig[..126]] {
            let forged = ConfigSignature {
                kid: sig.kid.clone(),
                sig: bad.to_string(),
            };
            assert_eq!(
                check(&trusted, Purpose::Trust, b"body", &forged),
                Err(Refused::BadSignature),
                "{bad:?}"
            );
        }
        let odd = ConfigSignature {
            kid: "ü".repeat(4),
            sig: "é".repeat(64),
        };
        assert!(check(&trusted, Purpose::Trust, b"body", &odd).is_err());
    }

    #[test]
    fn admission_by_serial_and_publication_time() {
        let now = 1_800_000_000;
        type Case = (Option<u64>, u64, i64, Result<Fresh, Refused>);
        let cases: [Case; 7] = [
            (None, 1, now, Ok(Fresh::Newer)),
            (Some(4), 5, now - 86_400, Ok(Fresh::Newer)),
            (Some(5), 5, now, Ok(Fresh::Same)),
            (
                Some(5),
                4,
                now,
                Err(Refused::Replayed {
                    serial: 4,
                    in_force: 5,
                }),
            ),
            (Some(5), 6, now + 300, Ok(Fresh::Newer)),
            (
                Some(5),
                6,
                now + 301,
                Err(Refused::Future {
                    ahead_s: 301,
                    max_skew_s: 300,
                }),
            ),
            (
                None,
                u64::MAX,
                i64::MAX,
                Err(Refused::Future {
                    ahead_s: i64::MAX - now,
                    max_skew_s: 300,
                }),
            ),
        ];
        for (in_force, serial, at, expect) in cases {
            assert_eq!(
                admit(in_force, serial, at, now, 300),
                expect,
                "{in_force:?} {serial} {at}"
            );
        }
        assert_eq!(
            admit(None, 1, i64::MIN, now, 300),
            Ok(Fresh::Newer),
            "no overflow"
        );
    }
}
