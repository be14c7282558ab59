//! The `CP1` pass code: a compact, Ed25519-signed credential that a box verifies offline.
//!
//! Text form: `CP1:` followed by the base45 encoding of the binary body (see [`layout`] and
//! `docs/passcode.md`). The whole text stays inside the QR alphanumeric alphabet, so a typical code
//! fits a version 6 QR symbol (level M).
//!
//! Verification runs four steps in order and stops at the first failure, which becomes the one
//! [`RejectReason`]: decode (prefix, base45, layout), signature (known key id, valid signature),
//! validity (issued-at and expiry against the caller's clock with a skew tolerance), revocation.
//! The pass status colour is reported, not judged: which colours admit is the box's policy.

mod base45;
mod keys;
mod layout;

use std::fmt;

use ed25519_dalek::Signature;

use crate::ids::SubjectId;

pub use base45::Base45Error;
pub use keys::{IssuerKey, KeyError, KeyId, Revocation, TrustStore, TrustedKey};
pub use layout::{PassClaims, MAX_BODY_LEN, MAX_DEPENDANTS, MIN_BODY_LEN, SIGNATURE_LEN};

/// Prefix of every version 1 code. It is part of the signed message, so a body cannot be replayed
/// under another version's prefix.
pub const PREFIX: &str = "CP1:";
/// Longest text a valid code can have; longer input is rejected before any decoding work.
pub const MAX_TEXT_LEN: usize = PREFIX.len() + MAX_BODY_LEN.div_ceil(2) * 3;

/// The status colour a pass carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PassStatus {
    Green,
    Yellow,
    Red,
}

impl PassStatus {
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            PassStatus::Green => 0,
            PassStatus::Yellow => 1,
            PassStatus::Red => 2,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(PassStatus::Green),
            1 => Some(PassStatus::Yellow),
            2 => Some(PassStatus::Red),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PassStatus::Green => "green",
            PassStatus::Yellow => "yellow",
            PassStatus::Red => "red",
        }
    }
}

impl std::str::FromStr for PassStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "green" => Ok(PassStatus::Green),
            "yellow" => Ok(PassStatus::Yellow),
            "red" => Ok(PassStatus::Red),
            other => Err(format!(
                "unknown pass status {other:?}; expected green, yellow or red"
            )),
        }
    }
}

/// The verification step at which a code failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Decode,
    Signature,
    Validity,
    Revocation,
}

/// Why a code was rejected. Each failure has its own reason so that the door, the event log and
/// the operator can tell a forgery from an expired code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The text does not start with a pass-code prefix at all (another QR code).
    NotAPassCode,
    /// A `CPn:` prefix of a version this verifier does not know.
    UnsupportedVersion,
    /// The part after the prefix is not valid base45.
    BadEncoding,
    /// The body is too short, too long, or its length fields disagree with its size.
    BadLength,
    /// A field holds a value the format does not allow (status byte, id characters, times).
    BadField,
    /// No trusted key has the code's key id.
    UnknownKey,
    /// The signature does not verify: the code was forged or altered.
    BadSignature,
    /// Issued in the future, beyond the clock-skew tolerance.
    NotYetValid,
    /// Expired, beyond the clock-skew tolerance.
    Expired,
    /// The subject's codes issued before a cut-off have been revoked.
    Revoked,
}

impl RejectReason {
    pub const ALL: [RejectReason; 10] = [
        RejectReason::NotAPassCode,
        RejectReason::UnsupportedVersion,
        RejectReason::BadEncoding,
        RejectReason::BadLength,
        RejectReason::BadField,
        RejectReason::UnknownKey,
        RejectReason::BadSignature,
        RejectReason::NotYetValid,
        RejectReason::Expired,
        RejectReason::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::NotAPassCode => "not_a_pass_code",
            RejectReason::UnsupportedVersion => "unsupported_version",
            RejectReason::BadEncoding => "bad_encoding",
            RejectReason::BadLength => "bad_length",
            RejectReason::BadField => "bad_field",
            RejectReason::UnknownKey => "unknown_key",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::NotYetValid => "not_yet_valid",
            RejectReason::Expired => "expired",
            RejectReason::Revoked => "revoked",
        }
    }

    pub fn step(self) -> Step {
        match self {
            RejectReason::NotAPassCode
            | RejectReason::UnsupportedVersion
            | RejectReason::BadEncoding
            | RejectReason::BadLength
            | RejectReason::BadField => Step::Decode,
            RejectReason::UnknownKey | RejectReason::BadSignature => Step::Signature,
            RejectReason::NotYetValid | RejectReason::Expired => Step::Validity,
            RejectReason::Revoked => Step::Revocation,
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected code: the reason, a human detail, and the claims when decoding got that far. The
/// claims of a code that failed its signature check are untrusted and must not be acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
    pub claims: Option<PassClaims>,
}

impl Rejection {
    fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
            claims: None,
        }
    }

    fn with_claims(reason: RejectReason, detail: impl Into<String>, claims: PassClaims) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
            claims: Some(claims),
        }
    }
}

/// What an issuer asks for. The key id is taken from the signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassRequest {
    pub status: PassStatus,
    pub subject: SubjectId,
    pub dependants: Vec<SubjectId>,
    /// Unix seconds.
    pub issued_at: u32,
    /// Unix seconds; must be after `issued_at`.
    pub expires_at: u32,
}

/// Why a code could not be issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    #[error("expiry must be after the issue time")]
    EmptyValidity,
    #[error("{0} dependants, at most {MAX_DEPENDANTS} allowed")]
    TooManyDependants(usize),
}

/// Signs a pass code and returns its text form.
pub fn issue(key: &IssuerKey, req: &PassRequest) -> Result<String, IssueError> {
    if req.expires_at <= req.issued_at {
        return Err(IssueError::EmptyValidity);
    }
    if req.dependants.len() > MAX_DEPENDANTS {
        return Err(IssueError::TooManyDependants(req.dependants.len()));
    }
    let claims = PassClaims {
        kid: key.kid(),
        status: req.status,
        issued_at: req.issued_at,
        expires_at: req.expires_at,
        subject: req.subject.clone(),
        dependants: req.dependants.clone(),
    };
    Ok(encode_text(&signed_body(key, &claims)))
}

/// The binary body for `claims`, signed with `key`, whatever key id the claims name. Issuers use
/// [`issue`]; this exists so test-vector generators can build deliberately inconsistent codes.
pub fn signed_body(key: &IssuerKey, claims: &PassClaims) -> Vec<u8> {
    let mut body = claims.to_signed_bytes();
    let signature = key.sign(&signed_message(&body));
    body.extend_from_slice(&signature);
    body
}

/// `CP1:` followed by the base45 text of `body`.
pub fn encode_text(body: &[u8]) -> String {
    format!("{PREFIX}{}", base45::encode(body))
}

fn signed_message(signed: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(PREFIX.len() + signed.len());
    message.extend_from_slice(PREFIX.as_bytes());
    message.extend_from_slice(signed);
    message
}

/// Checks the prefix and length and undoes base45.
pub fn decode_text(text: &str) -> Result<Vec<u8>, Rejection> {
    let Some(rest) = text.strip_prefix(PREFIX) else {
        return Err(match other_version(text) {
            Some(v) => Rejection::new(
                RejectReason::UnsupportedVersion,
                format!("pass code version {v} is not supported"),
            ),
            None => Rejection::new(
                RejectReason::NotAPassCode,
                format!("does not start with {PREFIX:?}"),
            ),
        });
    };
    if text.len() > MAX_TEXT_LEN {
        return Err(Rejection::new(
            RejectReason::BadLength,
            format!("{} characters, at most {MAX_TEXT_LEN} allowed", text.len()),
        ));
    }
    base45::decode(rest).map_err(|e| Rejection::new(RejectReason::BadEncoding, e.to_string()))
}

/// Recognises `CP<digits>:` with a version other than 1.
fn other_version(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("CP")?;
    let end = rest.find(':')?;
    let digits = &rest[..end];
    let plausible = !digits.is_empty() && digits.len() <= 3;
    (plausible && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// Decodes a code without checking its signature. The result is untrusted.
pub fn decode(text: &str) -> Result<PassClaims, Rejection> {
    let body = decode_text(text)?;
    let (claims, _, _) = PassClaims::parse(&body).map_err(layout_rejection)?;
    Ok(claims)
}

fn layout_rejection(e: layout::LayoutError) -> Rejection {
    match e {
        layout::LayoutError::Length(d) => Rejection::new(RejectReason::BadLength, d),
        layout::LayoutError::Field(d) => Rejection::new(RejectReason::BadField, d),
    }
}

/// Verifies a code completely: decode, signature, validity at `now` (Unix seconds) with
/// `skew_secs` of tolerance either way, then revocation.
pub fn verify(
    text: &str,
    trust: &TrustStore,
    now: i64,
    skew_secs: u32,
) -> Result<PassClaims, Rejection> {
    let body = decode_text(text)?;
    let (claims, signed, signature) = PassClaims::parse(&body).map_err(layout_rejection)?;
    let Some(key) = trust.key(&claims.kid) else {
        let detail = format!("no trusted key has id {}", claims.kid);
        return Err(Rejection::with_claims(
            RejectReason::UnknownKey,
            detail,
            claims,
        ));
    };
    let signature = Signature::from_bytes(&signature);
    if key
        .verifying_key()
        .verify_strict(&signed_message(signed), &signature)
        .is_err()
    {
        let detail = format!("signature does not verify with key {}", claims.kid);
        return Err(Rejection::with_claims(
            RejectReason::BadSignature,
            detail,
            claims,
        ));
    }
    let skew = i64::from(skew_secs);
    if now + skew < i64::from(claims.issued_at) {
        let detail = format!(
            "issued {} s in the future",
            i64::from(claims.issued_at) - now
        );
        return Err(Rejection::with_claims(
            RejectReason::NotYetValid,
            detail,
            claims,
        ));
    }
    if now - skew >= i64::from(claims.expires_at) {
        let detail = format!("expired {} s ago", now - i64::from(claims.expires_at));
        return Err(Rejection::with_claims(
            RejectReason::Expired,
            detail,
            claims,
        ));
    }
    if trust.is_revoked(&claims.subject, claims.issued_at) {
        return Err(Rejection::with_claims(
            RejectReason::Revoked,
            "the subject's codes issued before this one's revocation cut-off are revoked",
            claims,
        ));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests;
