//! `checkpoint-central`: the aggregator that ingests box events, answers trace and occupancy
//! queries, raises alerts, and issues pass codes.
//!
//! # Layout
//! - [`config`]: the TOML configuration.
//! - [`ingest`]: MQTT → validation → store → end-to-end ack; gap tracking.
//! - [`embedded`]: the embedded broker: a Mosquitto that `serve` configures and supervises.
//! - [`store`]: the `Store` trait and its SQLite implementation (typed events, passes per person).
//! - [`registry`]: every box's last status and telemetry.
//! - [`trace`]: pure trajectory, close-contact, occupancy and flow logic over scans.
//! - [`query`]: the operators' questions, answered from the store's indexes with `trace`.
//! - [`api`]: the HTTP API (bearer token) over `query` and the registry.
//! - [`serve`]: wiring for `checkpoint-central serve`.
//! - [`cli`]: the command line's arguments; [`client`]: the CLI's HTTP client and tables.
//! - [`pki`]: the site CA and the box, broker and client certificates for mutual TLS.
//! - [`issuer`]: the pass-code issuer key pair and code/QR generation.
//! - [`sealed`]: encrypted backups (age: X25519 recipients or a passphrase).
//! - [`secrets`]: secret files, read only when private (mode 0600).
//! - [`signing`]: the configuration-signing key and serials for trust material and galleries.

pub mod alerts;
pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod embedded;
pub mod gallery;
pub mod ingest;
pub mod issuer;
pub mod pki;
pub mod query;
pub mod registry;
pub mod roster;
pub mod sealed;
pub mod secrets;
pub mod serve;
pub mod signing;
pub mod site;
pub mod store;
pub mod trace;
pub mod trust;
