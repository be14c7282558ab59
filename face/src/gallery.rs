//! The box's gallery: enrolled identities as L2-normalised SFace embeddings (no images), and
//! 1:N search by cosine similarity. The file format is the wire's
//! ([`checkpoint_protocol::gallery`]); this adds search and reading and writing files.

use std::path::Path;

use checkpoint_protocol::gallery as format;
pub use checkpoint_protocol::gallery::{GalleryFormatError, VERSION};

#[derive(Debug, thiserror::Error)]
pub enum GalleryError {
    #[error("gallery {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Format(#[from] GalleryFormatError),
    #[error("embedding of length {got} where the gallery holds length {want}")]
    Length { got: usize, want: usize },
    #[error("identity {0:?} is empty or too long")]
    BadId(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gallery {
    dim: usize,
    ids: Vec<String>,
    /// Embeddings, `dim` values each, in `ids` order (one identity may have several).
    data: Vec<f32>,
}

/// The outcome of a 1:N search.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    /// The most similar identity and its similarity (best over its embeddings).
    pub best: Option<(String, f32)>,
    /// The similarity of the most similar *other* identity (-1 when there is none).
    pub second: f32,
}

impl Search {
    pub fn margin(&self) -> f32 {
        self.best.as_ref().map_or(0.0, |(_, s)| s - self.second)
    }
}

fn normalised(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 && n.is_finite() {
        v.iter().map(|x| x / n).collect()
    } else {
        vec![0.0; v.len()]
    }
}

impl Gallery {
    pub fn new(dim: usize) -> Gallery {
        Gallery {
            dim,
            ids: Vec::new(),
            data: Vec::new(),
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Embeddings held (an identity may have several).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Distinct identities.
    pub fn identities(&self) -> usize {
        let mut ids: Vec<&String> = self.ids.iter().collect();
        ids.sort();
        ids.dedup();
        ids.len()
    }

    pub fn add(&mut self, id: &str, embedding: &[f32]) -> Result<(), GalleryError> {
        if id.is_empty() || id.len() > 128 {
            return Err(GalleryError::BadId(id.to_string()));
        }
        if embedding.len() != self.dim {
            return Err(GalleryError::Length {
                got: embedding.len(),
                want: self.dim,
            });
        }
        self.ids.push(id.to_string());
        self.data.extend(normalised(embedding));
        Ok(())
    }

    /// The best identity for `probe` and the best other identity's similarity.
    pub fn search(&self, probe: &[f32]) -> Result<Search, GalleryError> {
        if probe.len() != self.dim {
            return Err(GalleryError::Length {
                got: probe.len(),
                want: self.dim,
            });
        }
        let q = normalised(probe);
        let mut best: Option<(usize, f32)> = None;
        let mut sims = Vec::with_capacity(self.ids.len());
        for (i, e) in self.data.chunks_exact(self.dim).enumerate() {
            let s: f32 = e.iter().zip(&q).map(|(a, b)| a * b).sum();
            sims.push(s);
            if best.is_none_or(|(_, b)| s > b) {
                best = Some((i, s));
            }
        }
        let Some((bi, bs)) = best else {
            return Ok(Search {
                best: None,
                second: -1.0,
            });
        };
        let best_id = &self.ids[bi];
        let second = sims
            .iter()
            .zip(&self.ids)
            .filter(|(_, id)| *id != best_id)
            .map(|(s, _)| *s)
            .fold(-1.0f32, f32::max);
        Ok(Search {
            best: Some((best_id.clone(), bs)),
            second,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        format::encode(self.dim, &self.ids, &self.data)
    }

    pub fn from_bytes(b: &[u8]) -> Result<Gallery, GalleryError> {
        let f = format::decode(b)?;
        Ok(Gallery {
            dim: f.dim,
            ids: f.ids,
            data: f.data,
        })
    }

    pub fn load(path: &Path) -> Result<Gallery, GalleryError> {
        let b = std::fs::read(path).map_err(|source| GalleryError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Gallery::from_bytes(&b)
    }

    /// Writes the file whole (a temporary file renamed into place).
    pub fn save(&self, path: &Path) -> Result<(), GalleryError> {
        let io = |source| GalleryError::Io {
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, self.to_bytes()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gallery() -> Gallery {
        let mut g = Gallery::new(3);
        g.add("alice", &[1.0, 0.0, 0.0]).unwrap();
        g.add("alice", &[0.9, 0.1, 0.0]).unwrap();
        g.add("bob", &[0.0, 2.0, 0.0]).unwrap();
        g
    }

    #[test]
    fn search_gives_the_best_identity_and_the_best_other_one() {
        let g = gallery();
        let s = g.search(&[0.8, 0.6, 0.0]).unwrap();
        let (id, sim) = s.best.clone().unwrap();
        assert_eq!(id, "alice");
        assert!((sim - 0.8f32.mul_add(0.9, 0.6 * 0.1) / (0.82f32).sqrt()).abs() < 1e-5);
        assert!(
            (s.second - 0.6).abs() < 1e-6,
            "bob, not alice's other photo"
        );
        assert!(s.margin() > 0.0);
        assert_eq!(g.identities(), 2);
        assert!(matches!(
            g.search(&[1.0]),
            Err(GalleryError::Length { got: 1, want: 3 })
        ));
        assert_eq!(Gallery::new(3).search(&[1.0, 0.0, 0.0]).unwrap().best, None);
    }

    #[test]
    fn a_gallery_round_trips_and_damage_or_another_version_is_refused() {
        let g = gallery();
        let b = g.to_bytes();
        assert_eq!(Gallery::from_bytes(&b).unwrap(), g);
        assert!(matches!(
            Gallery::from_bytes(b"garbage"),
            Err(GalleryError::Format(GalleryFormatError::NotAGallery))
        ));
        let mut other = b.clone();
        other[8] = 2;
        assert!(matches!(
            Gallery::from_bytes(&other),
            Err(GalleryError::Format(GalleryFormatError::Version(2)))
        ));
        let mut flipped = b.clone();
        flipped[30] ^= 1;
        assert!(Gallery::from_bytes(&flipped)
            .unwrap_err()
            .to_string()
            .contains("checksum"));
        for n in [9, 20, b.len() - 1] {
            assert!(Gallery::from_bytes(&b[..n]).is_err(), "cut at {n}");
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.bin");
        g.save(&p).unwrap();
        assert_eq!(Gallery::load(&p).unwrap(), g);
        assert!(Gallery::load(&dir.path().join("none"))
            .unwrap_err()
            .to_string()
            .contains("none"));
    }
}
