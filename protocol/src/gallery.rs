//! The face gallery file: what `checkpointd enroll` writes, what a box loads, and the payload
//! central publishes retained on `checkpoint/v1/box/{box}/config/gallery`. Embeddings and
//! subject ids only, never photos or names. Search and file I/O live with the face recognition
//! (`checkpoint-face`); this is only the format, so central can check a gallery without OpenCV.
//!
//! # Format (version 1, little endian)
//! `CKPTGAL\0`, version `u32`, embedding length `u32`, entry count `u32`; per entry: id length
//! `u16`, id (UTF-8), the embedding (`f32` × length); then the SHA-256 of everything before it.
//! A file of another version, cut short or altered is refused with the reason.

use sha2::{Digest, Sha256};

pub mod signed;

const MAGIC: &[u8; 8] = b"CKPTGAL\0";
pub const VERSION: u32 = 1;
/// Largest gallery that goes over the wire (boxes accept MQTT packets a little larger): some
/// 15,000 enrolled photos of 128-value embeddings.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;
/// Longest embedding a file may declare.
const MAX_DIM: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GalleryFormatError {
    #[error("not a Checkpoint gallery file")]
    NotAGallery,
    #[error(
        "gallery version {0}; this build reads version {VERSION} (enrol again with this version)"
    )]
    Version(u32),
    #[error("gallery damaged: {0}")]
    Damaged(&'static str),
}

/// A decoded gallery file: the embedding length, the identities in file order, and their
/// embeddings (`dim` values each, in `ids` order; one identity may have several).
#[derive(Debug, Clone, PartialEq)]
pub struct GalleryFile {
    pub dim: usize,
    pub ids: Vec<String>,
    pub data: Vec<f32>,
}

/// The file for `ids` and their embeddings (`data.len()` must be `ids.len() * dim`; extra
/// values are not written).
pub fn encode(dim: usize, ids: &[String], data: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + data.len() * 4 + ids.len() * 16 + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(dim as u32).to_le_bytes());
    out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    for (id, e) in ids.iter().zip(data.chunks_exact(dim.max(1))) {
        out.extend_from_slice(&(id.len() as u16).to_le_bytes());
        out.extend_from_slice(id.as_bytes());
        for v in e {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// Decodes a gallery file, checking its magic, version, checksum and shape.
pub fn decode(b: &[u8]) -> Result<GalleryFile, GalleryFormatError> {
    if b.len() < 8 || &b[..8] != MAGIC {
        return Err(GalleryFormatError::NotAGallery);
    }
    let mut r = Reader { b, at: 8 };
    let version = r.u32()?;
    if version != VERSION {
        return Err(GalleryFormatError::Version(version));
    }
    if b.len() < 20 + 32 {
        return Err(GalleryFormatError::Damaged("cut short"));
    }
    let (body, sum) = b.split_at(b.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err(GalleryFormatError::Damaged(
            "checksum mismatch (cut short or altered)",
        ));
    }
    let r = &mut Reader { b: body, at: 12 };
    let dim = r.u32()? as usize;
    let count = r.u32()? as usize;
    if dim == 0 || dim > MAX_DIM {
        return Err(GalleryFormatError::Damaged("implausible embedding length"));
    }
    let mut f = GalleryFile {
        dim,
        ids: Vec::new(),
        data: Vec::new(),
    };
    for _ in 0..count {
        let n = r.u16()? as usize;
        let id = std::str::from_utf8(r.take(n)?)
            .map_err(|_| GalleryFormatError::Damaged("an identity is not UTF-8"))?
            .to_string();
        let e = r.take(dim * 4)?;
        f.ids.push(id);
        f.data.extend(
            e.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    if r.at != body.len() {
        return Err(GalleryFormatError::Damaged("bytes after the last entry"));
    }
    Ok(f)
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], GalleryFormatError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or(GalleryFormatError::Damaged("cut short"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, GalleryFormatError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u16(&mut self) -> Result<u16, GalleryFormatError> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> GalleryFile {
        GalleryFile {
            dim: 3,
            ids: vec!["alice".into(), "alice".into(), "bob".into()],
            data: vec![1.0, 0.0, 0.0, 0.9, 0.1, 0.0, 0.0, 1.0, 0.0],
        }
    }

    #[test]
    fn a_file_round_trips_and_damage_or_another_version_is_refused() {
        let f = file();
        let b = encode(f.dim, &f.ids, &f.data);
        assert_eq!(decode(&b).unwrap(), f);
        assert_eq!(decode(b"garbage"), Err(GalleryFormatError::NotAGallery));
        let mut other = b.clone();
        other[8] = 2;
        assert_eq!(decode(&other), Err(GalleryFormatError::Version(2)));
        let mut flipped = b.clone();
        flipped[30] ^= 1;
        assert!(decode(&flipped)
            .unwrap_err()
            .to_string()
            .contains("checksum"));
        for n in [9, 20, b.len() - 1] {
            assert!(decode(&b[..n]).is_err(), "cut at {n}");
        }
    }

    proptest::proptest! {
        /// A gallery arrives over MQTT: whatever the bytes, decoding gives an error or a file,
        /// never a panic — also when the checksum is right (anyone can compute it).
        #[test]
        fn any_bytes_decode_without_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = decode(&body);
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&VERSION.to_le_bytes());
            framed.extend_from_slice(&body);
            let sum = Sha256::digest(&framed);
            framed.extend_from_slice(&sum);
            if let Ok(f) = decode(&framed) {
                proptest::prop_assert_eq!(encode(f.dim, &f.ids, &f.data), framed);
            }
        }

        #[test]
        fn any_altered_byte_is_refused(at in 0usize..1000, bit in 0u8..8) {
            let f = file();
            let b = encode(f.dim, &f.ids, &f.data);
            let mut altered = b.clone();
            let at = at % b.len();
            altered[at] ^= 1 << bit;
            proptest::prop_assert!(decode(&altered).is_err());
        }
    }
}
