//! `checkpointd`: the kiosk daemon.
//!
//! Today it decodes and verifies pass codes in image files (`checkpointd scan`); the camera-to-door
//! pipeline, outbox and uplink arrive with their own modules (see `ARCHITECTURE.md`).
//!
//! # Layout
//! - [`qr`]: QR decoding of frames with a preprocessing chain, panic isolation and a time budget.
//! - [`scan`]: the `scan` command: image files in, decoded and verified codes out as JSON lines.

pub mod qr;
pub mod scan;
