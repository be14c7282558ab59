//! `checkpointd`: the kiosk daemon.
//!
//! The door loop takes camera frames, decodes QR pass codes, verifies them against the trusted
//! keys, reads the thermometer, decides, stores the event durably in the outbox and only then
//! signals the gate. The uplink publishes the outbox over MQTT and deletes an event only when
//! central's end-to-end ack says it is stored.
//!
//! # Layout
//! - [`config`]: the TOML configuration, validated with every problem reported at once.
//! - [`decide`]: the pure admission policy, plus anti-passback and duplicate suppression.
//! - [`door`]: the door's rules as a pure state machine (inputs with their time in, effects out).
//! - [`qr`]: QR decoding of frames with a preprocessing chain, panic isolation and a time budget.
//! - `face` (feature `face`): faces at the door: the gallery in force and the per-frame look;
//!   `enroll`: the `enroll` and `identify` commands.
//! - [`camera`], [`thermo`], [`gate`]: hardware traits, each with a real and a simulated backend.
//! - [`outbox`]: the sled store-and-forward queue and its durability contract.
//! - [`trust`]: the keys and revocations in force, persisted as the last good copy.
//! - [`uplink`]: MQTT over mutual TLS: events out, acks and trust material in, telemetry.
//! - [`pipeline`]: wiring: builds the stages from the config and runs them until shutdown; the
//!   door thread (`pipeline/door.rs`) is the I/O shell around [`door`].
//! - [`doctor`]: the installer's checklist.
//! - [`scan`]: the `scan` command: image files in, decoded and verified codes out as JSON lines.

pub mod camera;
pub mod clock;
pub mod config;
pub mod decide;
pub mod doctor;
pub mod door;
#[cfg(feature = "face")]
pub mod enroll;
#[cfg(feature = "face")]
pub mod face;
pub mod gate;
pub mod outbox;
pub mod pipeline;
pub mod qr;
pub mod scan;
pub mod stats;
pub mod thermo;
pub mod trust;
pub mod uplink;

pub use pipeline::run;
