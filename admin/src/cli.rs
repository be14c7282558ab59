//! The `checkpoint-admin` command line: its arguments and their parsing.
//!
//! Long on purpose: every subcommand's arguments, which clap reads as one tree.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use checkpoint_protocol::ids::SubjectId;
use checkpoint_protocol::passcode::PassStatus;

use crate::client::{Client, Output};

#[derive(Parser, Debug)]
#[command(
    name = "checkpoint-admin",
    version,
    about = "Checkpoint operators' tooling: the site's keys and certificates, pass codes, and \
             the running central's API (queries, roster, galleries, backups)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// A person's trajectory: their events in time order, with places.
    Trace {
        #[arg(long, value_name = "ID")]
        person: String,
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// A person's close contacts, ranked by encounters and overlapping presence.
    Contacts {
        #[arg(long, value_name = "ID")]
        person: String,
        #[command(flatten)]
        range: Range,
        /// Seen at the same checkpoint within this many seconds (default: central's config).
        #[arg(long, value_name = "SECONDS")]
        window: Option<u64>,
        /// 2 adds the contacts of contacts.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        depth: u8,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Who is inside a place now, and the hourly flow.
    Occupancy {
        #[arg(long, value_name = "CHECKPOINT")]
        place: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The in/out events table, filtered, in time order. A table shows one page (100 rows, and
    /// says how to get the next); `--csv` and `--json` export every row, page by page, or say
    /// where they stopped.
    Events {
        #[arg(long, value_name = "ID")]
        person: Option<String>,
        #[arg(long)]
        department: Option<String>,
        #[arg(long)]
        class: Option<String>,
        #[arg(long, value_name = "CHECKPOINT")]
        place: Option<String>,
        #[arg(long, value_parser = ["in", "out"])]
        direction: Option<String>,
        #[arg(long, value_parser = ["admit", "deny"])]
        decision: Option<String>,
        /// At most this many rows (a table: default 100; an export: default all).
        #[arg(long)]
        limit: Option<usize>,
        /// Start after this row: the cursor an earlier, stopped listing printed.
        #[arg(long, value_name = "CURSOR")]
        after: Option<String>,
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The roster of people and places.
    #[command(subcommand)]
    Roster(RosterCommand),
    /// Every box: status, backlog, trust age.
    Boxes {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Pass-code keys and codes.
    #[command(subcommand)]
    Passcode(PasscodeCommand),
    /// The notification log: every delivery attempt of every alert, newest first.
    Notifications {
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Face galleries for the boxes (biometric data: over TLS only, to one box's own topic).
    #[command(subcommand)]
    Gallery(GalleryCommand),
    /// Download a consistent snapshot of the running central's store.
    Backup {
        /// Written 0600: it holds every event with person ids.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Encrypt to this age public key (`age1…`, from `age-keygen`; repeatable). Only the
        /// matching secret key restores it, and it need not be on this machine.
        #[arg(long = "recipient", value_name = "AGE1…")]
        recipients: Vec<String>,
        /// Or encrypt under the passphrase in this file (mode 0600, first line, 12+ characters).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// `portable` (the default) restores into SQLite or PostgreSQL; `sqlite` is a copy of
        /// a SQLite store's database file, taken online, which restores only into SQLite.
        #[arg(long, value_enum, default_value_t = BackupFormat::Portable)]
        format: BackupFormat,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The site CA and certificates for mutual TLS (boxes, broker, central).
    #[command(subcommand)]
    Pki(PkiCommand),
}

#[derive(Subcommand, Debug)]
pub enum PkiCommand {
    /// Create the site CA (ca.pem, and ca.key with mode 0600). Refuses to replace one.
    Init {
        #[arg(long, default_value = crate::pki::DEFAULT_DIR, value_name = "DIR")]
        dir: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "Checkpoint site CA")]
        name: String,
        #[arg(long, default_value_t = crate::pki::CA_DAYS)]
        days: u32,
    },
    /// A box's certificate; its common name is the box id (the broker's username for it).
    /// Refuses to replace an existing one unless --replace is given.
    IssueBox {
        #[arg(value_name = "BOX_ID")]
        id: checkpoint_protocol::ids::BoxId,
        #[arg(long, default_value = crate::pki::DEFAULT_DIR, value_name = "DIR")]
        dir: PathBuf,
        #[arg(long, default_value_t = crate::pki::LEAF_DAYS)]
        days: u32,
        /// Replace the box's existing certificate and key; the old certificate is revoked
        /// (restart an external broker so it reads the new crl.pem).
        #[arg(long)]
        replace: bool,
    },
    /// Revoke a box's certificate: the broker refuses it (crl.pem; central's embedded broker
    /// restarts to read it, an external Mosquitto must be restarted) and central drops whatever
    /// the box still sends. A new certificate for the same box id can be issued afterwards.
    RevokeBox {
        #[arg(value_name = "BOX_ID")]
        id: checkpoint_protocol::ids::BoxId,
        #[arg(long, default_value = crate::pki::DEFAULT_DIR, value_name = "DIR")]
        dir: PathBuf,
    },
    /// The configuration-signing key (DIR/config-signing.key, 0600, and config-signing.pub,
    /// which every box gets): central signs trust material and galleries with it. `init` makes
    /// one; this makes one for a PKI that predates it. Refuses to replace one.
    ConfigKey {
        #[arg(long, default_value = crate::pki::DEFAULT_DIR, value_name = "DIR")]
        dir: PathBuf,
    },
    /// The broker's certificate for its host names and IP addresses.
    IssueServer {
        #[arg(value_name = "HOST", required = true)]
        hosts: Vec<String>,
        #[arg(long, default_value = crate::pki::DEFAULT_DIR, value_name = "DIR")]
        dir: PathBuf,
        #[arg(long, default_value_t = crate::pki::LEAF_DAYS)]
        days: u32,
    },
    /// Central's own client certificate: `central` (full rights) or `monitor` (read-only).
    IssueClient {
        #[arg(value_name = "NAME", value_parser = ["central", "monitor"])]
        name: String,
        #[arg(long, default_value = crate::pki::DEFAULT_DIR, value_name = "DIR")]
        dir: PathBuf,
        #[arg(long, default_value_t = crate::pki::LEAF_DAYS)]
        days: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum PasscodeCommand {
    /// Create a new issuer key pair: DIR/passcode.key (0600) and DIR/passcode.pub.
    Keygen {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Sign a pass code and print it; with --png also write it as a QR image.
    Issue {
        /// Key directory (or the passcode.key file).
        #[arg(long, value_name = "DIR")]
        key: PathBuf,
        /// Pseudonymous person id (letters, digits, '-', '_', '.'; at most 32).
        #[arg(long, value_name = "ID")]
        person: SubjectId,
        #[arg(long, value_name = "green|yellow|red")]
        status: PassStatus,
        /// Validity, such as 90s, 5m, 12h or 7d (at most 31 days).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        valid: Duration,
        /// A person bound to this code (repeat for several, at most 8).
        #[arg(long = "dependant", value_name = "ID")]
        dependants: Vec<SubjectId>,
        /// Issue time instead of now (RFC 3339), for testing and pre-printing.
        #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
        at: Option<OffsetDateTime>,
        /// Also write the code as a QR image (PNG).
        #[arg(long, value_name = "FILE")]
        png: Option<PathBuf>,
    },
    /// Revoke a person's codes issued before now (or --before); the running central publishes
    /// the new revocation list to every box at once.
    Revoke {
        #[arg(value_name = "PERSON")]
        person: String,
        /// Revoke codes issued before this instant (RFC 3339) instead of now.
        #[arg(long, value_name = "RFC3339")]
        before: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum RosterCommand {
    /// Replace the people and/or places roster with CSV files (or merge them in by id with
    /// --upsert); a file with any bad row imports nothing and every problem is listed with its
    /// line. --dry-run says what would change and writes nothing.
    Import {
        /// Columns: id,number,name,department,class,counsellor,department_head,wecom_id,email
        #[arg(long, value_name = "CSV")]
        people: Option<PathBuf>,
        /// Columns: checkpoint,name,building,capacity,manager
        #[arg(long, value_name = "CSV")]
        places: Option<PathBuf>,
        /// Add and update by id; keep whoever is not in the file.
        #[arg(long)]
        upsert: bool,
        /// Only say what would be added, changed and removed.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(clap::Args, Debug)]
pub struct Range {
    /// From this instant (RFC 3339); default 14 days before --to.
    #[arg(long, value_name = "RFC3339")]
    pub from: Option<String>,
    /// Up to this instant (RFC 3339); default now.
    #[arg(long, value_name = "RFC3339")]
    pub to: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct ApiArgs {
    /// The central's API.
    #[arg(long, default_value = "http://127.0.0.1:8480", value_name = "URL")]
    pub api: String,
    /// The file holding the API's bearer token.
    #[arg(long, default_value = "/etc/checkpoint/api.token", value_name = "FILE")]
    pub token_file: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV instead of a table.
    #[arg(long)]
    pub csv: bool,
}

impl ApiArgs {
    pub fn client(&self) -> anyhow::Result<(Client, Output)> {
        let out = match (self.json, self.csv) {
            (true, _) => Output::Json,
            (_, true) => Output::Csv,
            _ => Output::Table,
        };
        Ok((Client::new(&self.api, &self.token_file)?, out))
    }
}

pub const MAX_VALIDITY: Duration = Duration::from_secs(31 * 24 * 3600);

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    // A bare number is seconds, as before durations took units.
    let d = match s.parse::<u64>() {
        Ok(n) => Duration::from_secs(n),
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("{s:?} is not a duration like 90s, 5m, 12h or 7d ({e})"))?,
    };
    if d.is_zero() || d > MAX_VALIDITY {
        return Err(format!("{s} is outside 1s..31d"));
    }
    Ok(d)
}

pub fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("{s:?} is not RFC 3339: {e}"))
}

pub fn unix_u32(t: OffsetDateTime) -> anyhow::Result<u32> {
    u32::try_from(t.unix_timestamp()).context("time is outside 1970..2106")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("31d"), Ok(Duration::from_secs(31 * 86_400)));
        assert!(parse_duration("32d").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
    }
}

#[derive(Debug, Subcommand)]
pub enum GalleryCommand {
    /// Publish a gallery file (`checkpointd enroll`'s output: only the people allowed at that
    /// box) retained to one box, which checks it and replaces its own without a restart.
    Publish {
        /// The box's id.
        #[arg(long = "box", value_name = "BOX_ID")]
        box_id: String,
        #[arg(value_name = "GALLERY")]
        file: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// What `backup` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackupFormat {
    Portable,
    Sqlite,
}
