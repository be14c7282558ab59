//! The portable backup: everything central keeps, in a form any backend restores.
//!
//! # Format (version 2)
//! The line `checkpoint-admin backup 2\n`, then items, each one tag byte, a u32 BE length and
//! that many bytes of JSON:
//! - `E` an event with when it was received (`{"received_ms": …, "event": {…}}`), `C` a
//!   conflicting event in the same shape;
//! - `S` a box's sequence state, `R` a revocation, `P` a person, `L` a place;
//! - `D` a document (`{"kind": …, "doc": {…}}`), `H` an event whose alerts are unhandled
//!   (`{"box": …, "seq": …}`).
//!
//! Then `Z`, the item count as u64 BE and the SHA-256 of every byte before it. A restore applies
//! nothing unless the trailer checks out (the backends restore in one transaction).

use std::io::{Read, Write};

use checkpoint_protocol::ids::{BoxId, SubjectId};
use checkpoint_protocol::records::Event;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Doc, Docs, SeqState, StoreError};
use crate::roster::{Person, Place};

const MAGIC: &[u8] = b"checkpoint-admin backup 2\n";
const OLD_MAGIC: &[u8] = b"checkpoint-admin backup 1\n";
/// Longest item a backup may hold (a sanity bound on a corrupt length).
const MAX_ITEM: u32 = 64 << 20;

/// What a backup or restore moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackupSummary {
    /// Items of every kind.
    pub entries: u64,
    pub events: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Received {
    pub received_ms: i64,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sequence {
    #[serde(rename = "box")]
    pub box_id: BoxId,
    pub state: SeqState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub subject: SubjectId,
    pub issued_before: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptDoc {
    pub kind: Docs,
    pub doc: Doc,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unhandled {
    #[serde(rename = "box")]
    pub box_id: BoxId,
    pub seq: u64,
}

/// One item of a backup.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Event(Received),
    Conflict(Received),
    Sequence(Sequence),
    Revocation(Revocation),
    Person(Person),
    Place(Place),
    Doc(KeptDoc),
    Unhandled(Unhandled),
}

fn bad(message: impl Into<String>) -> StoreError {
    StoreError::Backup(message.into())
}

/// Writes a backup: [`Writer::item`] for each item, then [`Writer::finish`].
pub struct Writer<'a> {
    out: &'a mut dyn Write,
    hash: Sha256,
    summary: BackupSummary,
}

impl std::fmt::Debug for Writer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("summary", &self.summary)
            .finish()
    }
}

impl<'a> Writer<'a> {
    pub fn new(out: &'a mut dyn Write) -> Result<Writer<'a>, StoreError> {
        let mut w = Writer {
            out,
            hash: Sha256::new(),
            summary: BackupSummary::default(),
        };
        w.put(MAGIC)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.hash.update(bytes);
        self.out.write_all(bytes).map_err(StoreError::Io)
    }

    fn tagged<T: Serialize>(&mut self, tag: u8, value: &T) -> Result<(), StoreError> {
        let json = serde_json::to_vec(value).map_err(|e| bad(e.to_string()))?;
        let len = u32::try_from(json.len())
            .ok()
            .filter(|l| *l <= MAX_ITEM)
            .ok_or_else(|| bad("an item over 64 MiB"))?;
        self.put(&[tag])?;
        self.put(&len.to_be_bytes())?;
        self.put(&json)?;
        self.summary.entries += 1;
        Ok(())
    }

    pub fn item(&mut self, item: &Item) -> Result<(), StoreError> {
        match item {
            Item::Event(e) => {
                self.summary.events += 1;
                self.tagged(b'E', e)
            }
            Item::Conflict(e) => self.tagged(b'C', e),
            Item::Sequence(s) => self.tagged(b'S', s),
            Item::Revocation(r) => self.tagged(b'R', r),
            Item::Person(p) => self.tagged(b'P', p),
            Item::Place(p) => self.tagged(b'L', p),
            Item::Doc(d) => self.tagged(b'D', d),
            Item::Unhandled(u) => self.tagged(b'H', u),
        }
    }

    pub fn finish(mut self) -> Result<BackupSummary, StoreError> {
        self.put(b"Z")?;
        let n = self.summary.entries.to_be_bytes();
        self.put(&n)?;
        let digest = std::mem::take(&mut self.hash).finalize();
        self.out.write_all(&digest).map_err(StoreError::Io)?;
        self.out.flush().map_err(StoreError::Io)?;
        Ok(self.summary)
    }
}

struct Checked<'a> {
    inner: &'a mut dyn Read,
    hash: Sha256,
}

impl Checked<'_> {
    fn take(&mut self, n: usize) -> Result<Vec<u8>, StoreError> {
        let mut buf = vec![0u8; n];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| bad(format!("the backup ends early ({e})")))?;
        self.hash.update(&buf);
        Ok(buf)
    }
}

fn json<T: serde::de::DeserializeOwned>(tag: u8, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| bad(format!("a damaged item `{}`: {e}", char::from(tag))))
}

/// Reads a backup, handing each item to `apply`; fails at the end unless the count and the
/// checksum agree, so a caller that applies inside a transaction commits only a whole backup.
pub fn read(
    input: &mut dyn Read,
    apply: &mut dyn FnMut(Item) -> Result<(), StoreError>,
) -> Result<BackupSummary, StoreError> {
    let mut r = Checked {
        inner: input,
        hash: Sha256::new(),
    };
    let magic = r.take(MAGIC.len())?;
    if magic == OLD_MAGIC {
        return Err(bad(
            "this backup is from the sled store (format 1): restore it with the release that \
             wrote it, start that central and take a new backup",
        ));
    }
    if magic != MAGIC {
        return Err(bad("not a checkpoint-admin backup"));
    }
    let mut summary = BackupSummary::default();
    loop {
        let tag = r.take(1)?[0];
        if tag == b'Z' {
            break;
        }
        let len = u32::from_be_bytes(r.take(4)?.try_into().map_err(|_| bad("a damaged length"))?);
        if len > MAX_ITEM {
            return Err(bad(format!("an item of {len} bytes: the file is corrupt")));
        }
        let body = r.take(len as usize)?;
        let item = match tag {
            b'E' => Item::Event(json(tag, &body)?),
            b'C' => Item::Conflict(json(tag, &body)?),
            b'S' => Item::Sequence(json(tag, &body)?),
            b'R' => Item::Revocation(json(tag, &body)?),
            b'P' => Item::Person(json(tag, &body)?),
            b'L' => Item::Place(json(tag, &body)?),
            b'D' => Item::Doc(json(tag, &body)?),
            b'H' => Item::Unhandled(json(tag, &body)?),
            other => return Err(bad(format!("an unknown item tag {other:#04x}"))),
        };
        if matches!(item, Item::Event(_)) {
            summary.events += 1;
        }
        summary.entries += 1;
        apply(item)?;
    }
    let count = u64::from_be_bytes(
        r.take(8)?
            .try_into()
            .map_err(|_| bad("a damaged trailer"))?,
    );
    let digest = std::mem::take(&mut r.hash).finalize();
    let mut stored = [0u8; 32];
    r.inner
        .read_exact(&mut stored)
        .map_err(|e| bad(format!("the backup ends early ({e})")))?;
    if count != summary.entries || stored[..] != digest[..] {
        return Err(bad(
            "the checksum does not match: the file is damaged or incomplete",
        ));
    }
    Ok(summary)
}
