//! The real-photo QR development set (`scripts/qr-devset`: BoofCV's qrcodes_v3, 536 photos in 16
//! categories) and its payload ground truth, shared by the end-to-end gate
//! (`tests/qr_photos.rs`) and the benchmark (`benches/qr_decode.rs`).
//!
//! The set labels where its codes are, not what they say. The ground truth is therefore a
//! consensus of three independent decoders: zxing-cpp, rqrr's chain and zbar (Debian
//! `zbar-tools`, used only as a referee). A payload is **confirmed** when two of them read it
//! anywhere in the set, or when it is read in two different photos (the set photographs the same
//! codes many times; a misreading that got past Reed-Solomon would not repeat). A photo's truth
//! is the confirmed payloads any decoder read in it; every other reading is *unconfirmed* and is
//! listed for a person to look at.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One photo of the set.
#[derive(Debug, Clone)]
pub struct Photo {
    pub category: String,
    pub path: PathBuf,
}

/// Payloads read in each photo (indexed like the photo list).
pub type Readings = Vec<HashSet<Vec<u8>>>;

/// Where the set is: `CHECKPOINT_QR_DEVSET`, else `target/qr-devset/boofcv`. `None` when the
/// variable is `none` (the gate turned off explicitly).
pub fn dir() -> Option<PathBuf> {
    match std::env::var("CHECKPOINT_QR_DEVSET") {
        Ok(v) if v == "none" => None,
        Ok(v) => Some(PathBuf::from(v)),
        Err(_) => Some(crate::workspace().join("target/qr-devset/boofcv")),
    }
}

/// The photos under `dir`, sorted by category and name.
///
/// # Panics
/// When the directory cannot be read, saying how to install the set.
pub fn photos(dir: &Path) -> Vec<Photo> {
    let cats = std::fs::read_dir(dir).unwrap_or_else(|e| {
        panic!(
            "the real-photo QR set is not at {} ({e}): run scripts/qr-devset, \
             or set CHECKPOINT_QR_DEVSET=none to turn the real-photo gate off",
            dir.display()
        )
    });
    let mut out = vec![];
    for cat in cats.flatten().filter(|c| c.path().is_dir()) {
        let category = cat.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(cat.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = f.path();
            if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("jpg" | "png")
            ) {
                out.push(Photo {
                    category: category.clone(),
                    path,
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// zbar's readings of `paths` (QR only).
///
/// # Panics
/// When `zbarimg` cannot run (`scripts/setup` installs `zbar-tools`).
pub fn zbar(paths: &[PathBuf]) -> Readings {
    let mut by_path: HashMap<String, HashSet<Vec<u8>>> = HashMap::new();
    for chunk in paths.chunks(64) {
        let out = Command::new("zbarimg")
            .args(["--xml", "-q", "-Sdisable", "-Sqrcode.enable"])
            .args(chunk)
            .output()
            .unwrap_or_else(|e| panic!("cannot run zbarimg (Debian zbar-tools): {e}"));
        let xml = String::from_utf8_lossy(&out.stdout);
        for source in xml.split("<source href='").skip(1) {
            let Some((href, rest)) = source.split_once('\'') else {
                continue;
            };
            let found = by_path.entry(unescape(href)).or_default();
            for data in rest.split("<data").skip(1) {
                // zbar marks payloads it could not print as text `format='base64'`: no text to
                // compare, so they do not vote.
                let Some((attrs, body)) = data.split_once('>') else {
                    continue;
                };
                if attrs.contains("base64") {
                    continue;
                }
                if let Some(text) = body
                    .strip_prefix("<![CDATA[")
                    .and_then(|b| b.split_once("]]></data>"))
                    .map(|(t, _)| t)
                {
                    found.insert(text.as_bytes().to_vec());
                }
            }
        }
    }
    paths
        .iter()
        .map(|p| by_path.remove(&p.display().to_string()).unwrap_or_default())
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("&apos;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The ground truth agreed by the decoders' readings.
#[derive(Debug)]
pub struct Consensus {
    pub confirmed: HashSet<Vec<u8>>,
    /// Per photo: the confirmed payloads any decoder read in it.
    pub truth: Vec<HashSet<Vec<u8>>>,
}

impl Consensus {
    /// `by_decoder[d]`: the readings of decoder `d` (several views of one decoder may be merged
    /// by the caller first).
    pub fn new(by_decoder: &[&Readings]) -> Consensus {
        let photos = by_decoder.iter().map(|r| r.len()).max().unwrap_or(0);
        let mut decoders: HashMap<&[u8], HashSet<usize>> = HashMap::new();
        let mut seen_in: HashMap<&[u8], HashSet<usize>> = HashMap::new();
        for (d, readings) in by_decoder.iter().enumerate() {
            for (i, found) in readings.iter().enumerate() {
                for p in found {
                    decoders.entry(p).or_default().insert(d);
                    seen_in.entry(p).or_default().insert(i);
                }
            }
        }
        let confirmed: HashSet<Vec<u8>> = decoders
            .iter()
            .filter(|(p, ds)| ds.len() >= 2 || seen_in[*p].len() >= 2)
            .map(|(p, _)| p.to_vec())
            .collect();
        let truth = (0..photos)
            .map(|i| {
                by_decoder
                    .iter()
                    .filter_map(|r| r.get(i))
                    .flatten()
                    .filter(|p| confirmed.contains(*p))
                    .cloned()
                    .collect()
            })
            .collect();
        Consensus { confirmed, truth }
    }

    /// Photos in which `readings` hold a confirmed payload.
    pub fn read(&self, readings: &Readings) -> usize {
        readings
            .iter()
            .enumerate()
            .filter(|(i, found)| found.iter().any(|p| self.truth[*i].contains(p)))
            .count()
    }

    /// Readings that are not confirmed: (photo index, payload).
    pub fn unconfirmed<'a>(&self, readings: &'a Readings) -> Vec<(usize, &'a [u8])> {
        readings
            .iter()
            .enumerate()
            .flat_map(|(i, found)| {
                found
                    .iter()
                    .filter(|p| !self.confirmed.contains(*p))
                    .map(move |p| (i, p.as_slice()))
            })
            .collect()
    }
}

/// Merges readings of the same photos (two views of one decoder).
pub fn merge(a: &Readings, b: &Readings) -> Readings {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.union(y).cloned().collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(photos: &[&[&str]]) -> Readings {
        photos
            .iter()
            .map(|ps| ps.iter().map(|p| p.as_bytes().to_vec()).collect())
            .collect()
    }

    #[test]
    fn consensus_needs_two_decoders_or_two_photos() {
        let a = r(&[&["both"], &["twice"], &["twice"], &["alone"]]);
        let b = r(&[&["both"], &[], &[], &[]]);
        let c = Consensus::new(&[&a, &b]);
        let mut confirmed: Vec<_> = c.confirmed.iter().cloned().collect();
        confirmed.sort();
        assert_eq!(confirmed, [b"both".to_vec(), b"twice".to_vec()]);
        assert_eq!(c.read(&a), 3);
        assert_eq!(c.read(&b), 1);
        assert_eq!(c.unconfirmed(&a), [(3, b"alone".as_slice())]);
        assert!(c.truth[3].is_empty());
    }
}
