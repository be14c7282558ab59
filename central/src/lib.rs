//! `checkpoint-central`: the aggregator that ingests box events, answers trace and occupancy
//! queries and raises alerts. The site's keys are `checkpoint-pki`; the API's bodies are
//! `checkpoint-api`; the operators' tooling that makes the keys and calls the API is
//! `checkpoint-admin`.
//!
//! # Layout
//! - [`config`]: the TOML configuration.
//! - [`ingest`]: MQTT → validation → store → end-to-end ack; gap tracking.
//! - [`embedded`]: the embedded broker: a Mosquitto that `serve` configures and supervises.
//! - [`store`]: the `Store` trait, SQLite and PostgreSQL (typed events, passes per person).
//! - [`roster`]: people and places, imported from CSV.
//! - [`registry`]: every box's last status and telemetry.
//! - [`trace`]: pure trajectory, close-contact, occupancy and flow logic over scans.
//! - [`query`]: the operators' questions, answered from the store's indexes with `trace`.
//! - [`api`]: the HTTP API (bearer token) over `query` and the registry.
//! - [`trust`]: the trust material central signs and publishes to the boxes.
//! - [`gallery`]: face galleries forwarded to one box.
//! - [`alerts`]: rules, routing, channels and the notification log.
//! - [`site`]: the site's time zone.
//! - [`serve`]: wiring for `checkpoint-central serve`.

pub mod alerts;
pub mod api;
pub mod config;
pub mod embedded;
pub mod gallery;
pub mod ingest;
pub mod query;
pub mod registry;
pub mod roster;
pub mod serve;
pub mod site;
pub mod store;
pub mod trace;
pub mod trust;
