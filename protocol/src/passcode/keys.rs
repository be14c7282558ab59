//! Issuer keys, key ids, and the set of keys and revocations a box trusts.
//!
//! Keys travel as PEM (PKCS#8 for the private key, SubjectPublicKeyInfo for the public key), so
//! they interoperate with `openssl pkey`. Reading and writing files is the binaries' business; this
//! module only converts text.

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::ids::SubjectId;

/// The first four bytes of SHA-256 over the raw 32-byte public key. Lets keys rotate: a box may
/// trust several keys at once and picks the one a code names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 4]);

impl KeyId {
    pub fn of(key: &VerifyingKey) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        KeyId([digest[0], digest[1], digest[2], digest[3]])
    }

    /// Parses the eight lowercase hex digits produced by `Display`.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let n = u32::from_str_radix(s, 16).ok()?;
        Some(KeyId(n.to_be_bytes()))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Why key material could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not an Ed25519 private key in PKCS#8 PEM: {0}")]
    Private(String),
    #[error("not an Ed25519 public key in PEM: {0}")]
    Public(String),
    #[error("could not encode the key: {0}")]
    Encode(String),
}

/// Central's signing key for pass codes.
pub struct IssuerKey {
    signing: SigningKey,
}

impl fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("IssuerKey")
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

impl IssuerKey {
    /// Builds a key from 32 secret bytes. The caller supplies the randomness (the OS RNG in the
    /// binaries, a fixed seed in the conformance generator).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        IssuerKey {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let signing =
            SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError::Private(e.to_string()))?;
        Ok(IssuerKey { signing })
    }

    /// The private key as PKCS#8 v1 PEM (RFC 8410, without the optional public key, which
    /// OpenSSL 3.0 cannot read). Whoever writes it to disk must make the file private.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        let bytes = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.signing.to_bytes(),
            public_key: None,
        };
        let pem = bytes
            .to_pkcs8_pem(Default::default())
            .map_err(|e| KeyError::Encode(e.to_string()))?;
        Ok(pem.to_string())
    }

    pub fn public(&self) -> TrustedKey {
        TrustedKey::new(self.signing.verifying_key())
    }

    pub fn kid(&self) -> KeyId {
        KeyId::of(&self.signing.verifying_key())
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

/// A public key that verifies pass codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    kid: KeyId,
    key: VerifyingKey,
}

impl TrustedKey {
    pub fn new(key: VerifyingKey) -> Self {
        TrustedKey {
            kid: KeyId::of(&key),
            key,
        }
    }

    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let key =
            VerifyingKey::from_public_key_pem(pem).map_err(|e| KeyError::Public(e.to_string()))?;
        Ok(TrustedKey::new(key))
    }

    /// From the 32 raw bytes, as carried in the trust configuration record.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|e| KeyError::Public(e.to_string()))?;
        Ok(TrustedKey::new(key))
    }

    pub fn to_pem(&self) -> Result<String, KeyError> {
        self.key
            .to_public_key_pem(Default::default())
            .map_err(|e| KeyError::Encode(e.to_string()))
    }

    pub fn kid(&self) -> KeyId {
        self.kid
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }
}

/// Revokes every code of `subject` issued before `issued_before` (Unix seconds). Codes issued
/// later are valid again, so a person whose status was corrected gets a working code at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub subject: SubjectId,
    pub issued_before: u32,
}

/// What a verifier trusts: issuer keys by id, and the revocation list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustStore {
    keys: BTreeMap<KeyId, TrustedKey>,
    revoked: BTreeMap<SubjectId, u32>,
}

impl TrustStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_key(&mut self, key: TrustedKey) {
        self.keys.insert(key.kid(), key);
    }

    /// Adds a revocation; of several for one subject the latest cut-off wins.
    pub fn revoke(&mut self, revocation: Revocation) {
        let cutoff = self.revoked.entry(revocation.subject).or_insert(0);
        *cutoff = (*cutoff).max(revocation.issued_before);
    }

    pub fn key(&self, kid: &KeyId) -> Option<&TrustedKey> {
        self.keys.get(kid)
    }

    pub fn keys(&self) -> impl Iterator<Item = &TrustedKey> {
        self.keys.values()
    }

    pub fn revocations(&self) -> impl Iterator<Item = Revocation> + '_ {
        self.revoked.iter().map(|(s, &t)| Revocation {
            subject: s.clone(),
            issued_before: t,
        })
    }

    pub fn is_revoked(&self, subject: &SubjectId, issued_at: u32) -> bool {
        self.revoked
            .get(subject)
            .is_some_and(|&cutoff| issued_at < cutoff)
    }
}
