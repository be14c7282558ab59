//! The contract between the kiosk daemon (`checkpointd`) and the aggregator (`checkpoint-central`).
//!
//! Everything that crosses a process boundary is defined here and nowhere else: the JSON records
//! exchanged over MQTT, the topic tree, and the signed pass code people show at the door. The crate is
//! pure: no I/O, no async runtime, no clock. Callers pass the current time in as a value.
//!
//! # Layout
//! - [`ids`]: validated identifiers (site, box, checkpoint, subject) used in topics and records.
//! - [`topic`]: the versioned MQTT topic tree, builders and a strict parser.
//! - [`records`]: events, status, telemetry, acks and trust configuration, with strict size-limited
//!   JSON decoding.
//! - [`passcode`]: the `CP1:` pass code: binary layout, base45, Ed25519 signing and verification.
//! - [`gallery`]: the face gallery file (central → box, retained; also what `enroll` writes).
//! - [`signed`]: central's signature over configuration (trust, galleries), serials, freshness.
//!
//! The wire format is specified for humans in `docs/protocol.md` and `docs/passcode.md`.

pub mod gallery;
pub mod ids;
pub mod passcode;
pub mod records;
pub mod signed;
pub mod topic;

/// Version of the JSON records. A change that an older reader cannot parse bumps it.
pub const SCHEMA_VERSION: u32 = 1;
