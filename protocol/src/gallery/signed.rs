//! The signed gallery envelope: what central publishes retained on a box's `config/gallery`
//! topic. The gallery file travels unchanged inside it; the envelope binds it to one box, a
//! serial and a publication time under central's configuration signature
//! ([`crate::signed`], purpose `gallery`).
//!
//! # Format (version 1, big endian)
//! `CKPTSGG\0`, version `u32`, serial `u64`, published at `i64` (Unix seconds), box id length
//! `u16`, box id (UTF-8); the signing key's id (4 bytes) and the Ed25519 signature (64 bytes)
//! over everything before the key id followed by the gallery file; then the gallery file.

use crate::ids::BoxId;
use crate::passcode::{IssuerKey, KeyId};
use crate::signed::{self, ConfigKeys, Purpose, Refused};

const MAGIC: &[u8; 8] = b"CKPTSGG\0";
pub const VERSION: u32 = 1;
/// Largest envelope around a gallery of [`super::MAX_BYTES`].
pub const MAX_BYTES: usize = super::MAX_BYTES + 512;

/// A verified envelope: who it is for, its serial and time, and the gallery file inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedGallery<'a> {
    pub box_id: BoxId,
    pub serial: u64,
    pub published_at: i64,
    pub kid: KeyId,
    pub gallery: &'a [u8],
}

fn header(box_id: &BoxId, serial: u64, published_at: i64) -> Vec<u8> {
    let id = box_id.as_str().as_bytes();
    let mut h = Vec::with_capacity(32 + id.len());
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&VERSION.to_be_bytes());
    h.extend_from_slice(&serial.to_be_bytes());
    h.extend_from_slice(&published_at.to_be_bytes());
    // Box ids are short (validated), far below u16::MAX.
    h.extend_from_slice(&(id.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    h.extend_from_slice(id);
    h
}

/// Wraps `gallery` for `box_id` and signs it with central's configuration key.
pub fn wrap(
    box_id: &BoxId,
    serial: u64,
    published_at: i64,
    gallery: &[u8],
    key: &IssuerKey,
) -> Vec<u8> {
    let head = header(box_id, serial, published_at);
    let mut body = head.clone();
    body.extend_from_slice(gallery);
    let sig = signed::sign_raw(key, Purpose::Gallery, &body);
    let mut out = head;
    out.extend_from_slice(&key.kid().0);
    out.extend_from_slice(&sig);
    out.extend_from_slice(gallery);
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Refused> {
        if self.0.len() < n {
            return Err(Refused::Malformed("gallery envelope cut short".into()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Refused> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

/// Opens an envelope: checks its shape and signature against the configuration keys a box
/// trusts. The serial, time and box are the caller's to check ([`crate::signed::admit`]).
/// Never panics, whatever the bytes.
pub fn open<'a>(bytes: &'a [u8], keys: &ConfigKeys) -> Result<SignedGallery<'a>, Refused> {
    if bytes.len() > MAX_BYTES {
        return Err(Refused::Malformed(format!(
            "{} bytes, at most {MAX_BYTES}",
            bytes.len()
        )));
    }
    let mut r = Reader(bytes);
    if r.take(MAGIC.len())? != MAGIC {
        return Err(Refused::Malformed(
            "not a signed gallery (an unsigned gallery file is never applied)".into(),
        ));
    }
    let version = u32::from_be_bytes(r.array()?);
    if version != VERSION {
        return Err(Refused::Malformed(format!(
            "envelope version {version}, this build reads {VERSION}"
        )));
    }
    let serial = u64::from_be_bytes(r.array()?);
    let published_at = i64::from_be_bytes(r.array()?);
    let id_len = usize::from(u16::from_be_bytes(r.array()?));
    let id = std::str::from_utf8(r.take(id_len)?)
        .map_err(|_| Refused::Malformed("box id is not UTF-8".into()))?;
    let box_id = BoxId::new(id).map_err(|e| Refused::Malformed(format!("box id: {e}")))?;
    let head_len = bytes.len() - r.0.len();
    let kid: [u8; 4] = r.array()?;
    let sig: [u8; 64] = r.array()?;
    let gallery = r.0;
    let mut body = Vec::with_capacity(head_len + gallery.len());
    body.extend_from_slice(&bytes[..head_len]);
    body.extend_from_slice(gallery);
    let kid = signed::verify_raw(keys, Purpose::Gallery, &body, KeyId(kid), &sig)?;
    Ok(SignedGallery {
        box_id,
        serial,
        published_at,
        kid,
        gallery,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> IssuerKey {
        IssuerKey::from_seed([seed; 32])
    }

    #[test]
    fn wrapped_galleries_open_only_with_the_right_key_and_untouched() {
        let b = BoxId::new("dorm-1").unwrap();
        let gallery = crate::gallery::encode(2, &["p-1".into()], &[1.0, 0.0]);
        let env = wrap(&b, 42, 1_800_000_000, &gallery, &key(9));
        let keys = ConfigKeys(vec![key(1).public(), key(9).public()]);
        let opened = open(&env, &keys).unwrap();
        assert_eq!(
            (
                opened.box_id.as_str(),
                opened.serial,
                opened.published_at,
                opened.gallery
            ),
            ("dorm-1", 42, 1_800_000_000, &gallery[..])
        );
        assert!(matches!(
            open(&env, &ConfigKeys(vec![key(1).public()])),
            Err(Refused::UnknownKey(_))
        ));
        for i in [8, 12, 20, 28, 31, env.len() - 1] {
            let mut bad = env.clone();
            bad[i] ^= 1;
            assert!(open(&bad, &keys).is_err(), "byte {i} altered");
        }
        assert!(matches!(open(&gallery, &keys), Err(Refused::Malformed(_))));
        assert!(open(&env[..40], &keys).is_err());
        assert!(open(b"", &keys).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_are_refused_without_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let keys = ConfigKeys(vec![key(1).public()]);
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&bytes);
            prop_assert!(open(&bytes, &keys).is_err());
            prop_assert!(open(&framed, &keys).is_err());
        }
    }
}
