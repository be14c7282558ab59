//! A roster import (`POST /api/v1/roster/{people,places}`): how the file meets the stored
//! roster and what it changed.

use serde::{Deserialize, Serialize};

/// How an imported file meets the stored roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The file is the whole roster: whoever is not in it is removed.
    #[default]
    Replace,
    /// The file adds and updates by id; whoever is not in it stays.
    Upsert,
}

/// What an import changes, by key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Change {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imported {
    /// Rows in the file.
    pub imported: usize,
    pub mode: Mode,
    pub dry_run: bool,
    #[serde(default)]
    pub change: Change,
}
