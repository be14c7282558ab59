//! The binary body of a `CP1` pass code (see `docs/passcode.md` for the byte table).
//!
//! ```text
//! kid[4] status[1] issued_at[4] expires_at[4] subject_len[1] subject[n]
//! dependant_count[1] (len[1] id[m])* signature[64]
//! ```
//! Integers are big-endian. The signature covers the ASCII prefix `CP1:` followed by every byte
//! before the signature.

use crate::ids::{SubjectId, SUBJECT_MAX};

use super::{KeyId, PassStatus};

/// Length of the Ed25519 signature at the end of the body.
pub const SIGNATURE_LEN: usize = 64;
/// Most dependants one code can bind (family or group binding).
pub const MAX_DEPENDANTS: usize = 8;
/// Shortest possible body: one-character subject, no dependants.
pub const MIN_BODY_LEN: usize = 4 + 1 + 4 + 4 + 1 + 1 + 1 + SIGNATURE_LEN;
/// Longest possible body.
pub const MAX_BODY_LEN: usize =
    4 + 1 + 4 + 4 + 1 + SUBJECT_MAX + 1 + MAX_DEPENDANTS * (1 + SUBJECT_MAX) + SIGNATURE_LEN;

/// The signed fields of a pass code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassClaims {
    /// Which issuer key signed the code.
    pub kid: KeyId,
    pub status: PassStatus,
    /// Seconds since the Unix epoch (UTC).
    pub issued_at: u32,
    /// Seconds since the Unix epoch (UTC); the code is valid strictly before this instant.
    pub expires_at: u32,
    pub subject: SubjectId,
    /// People bound to this code (children, a group), admitted with the holder.
    pub dependants: Vec<SubjectId>,
}

/// Why a body could not be parsed. Length problems and bad field values are kept apart because
/// the conformance suite names them separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LayoutError {
    Length(String),
    Field(String),
}

impl PassClaims {
    /// The bytes that the signature covers, without the prefix.
    pub(crate) fn to_signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_BODY_LEN);
        out.extend_from_slice(&self.kid.0);
        out.push(self.status.to_byte());
        out.extend_from_slice(&self.issued_at.to_be_bytes());
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        push_id(&mut out, &self.subject);
        out.push(self.dependants.len() as u8);
        for id in &self.dependants {
            push_id(&mut out, id);
        }
        out
    }

    /// Splits a body into claims, the signed bytes and the signature.
    pub(crate) fn parse(body: &[u8]) -> Result<(Self, &[u8], [u8; SIGNATURE_LEN]), LayoutError> {
        if body.len() < MIN_BODY_LEN {
            return Err(LayoutError::Length(format!(
                "{} bytes, at least {MIN_BODY_LEN} needed",
                body.len()
            )));
        }
        if body.len() > MAX_BODY_LEN {
            return Err(LayoutError::Length(format!(
                "{} bytes, at most {MAX_BODY_LEN} allowed",
                body.len()
            )));
        }
        let (signed, sig) = body.split_at(body.len() - SIGNATURE_LEN);
        let mut r = Reader {
            buf: signed,
            pos: 0,
        };
        let kid = KeyId(r.array::<4>()?);
        let status = PassStatus::from_byte(r.byte()?)
            .ok_or_else(|| LayoutError::Field(format!("status byte {}", signed[4])))?;
        let issued_at = u32::from_be_bytes(r.array::<4>()?);
        let expires_at = u32::from_be_bytes(r.array::<4>()?);
        if expires_at <= issued_at {
            return Err(LayoutError::Field(
                "expiry is not after issue time".to_string(),
            ));
        }
        let subject = r.id("subject")?;
        let count = usize::from(r.byte()?);
        if count > MAX_DEPENDANTS {
            return Err(LayoutError::Field(format!(
                "{count} dependants, at most {MAX_DEPENDANTS} allowed"
            )));
        }
        let dependants = (0..count)
            .map(|_| r.id("dependant"))
            .collect::<Result<Vec<_>, _>>()?;
        if r.pos != signed.len() {
            return Err(LayoutError::Length(format!(
                "{} unexpected bytes before the signature",
                signed.len() - r.pos
            )));
        }
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(sig);
        let claims = PassClaims {
            kid,
            status,
            issued_at,
            expires_at,
            subject,
            dependants,
        };
        Ok((claims, signed, signature))
    }
}

fn push_id(out: &mut Vec<u8>, id: &SubjectId) {
    // Subject ids are at most SUBJECT_MAX (32) ASCII bytes, so the length fits a byte.
    out.push(id.as_str().len() as u8);
    out.extend_from_slice(id.as_str().as_bytes());
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], LayoutError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| {
            LayoutError::Length(format!(
                "field at byte {} runs past the signature",
                self.pos
            ))
        })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, LayoutError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], LayoutError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn id(&mut self, what: &str) -> Result<SubjectId, LayoutError> {
        let len = usize::from(self.byte()?);
        let raw = self.take(len)?;
        let text = std::str::from_utf8(raw)
            .map_err(|_| LayoutError::Field(format!("{what} is not ASCII")))?;
        SubjectId::new(text).map_err(|e| LayoutError::Field(format!("{what}: {e}")))
    }
}
