//! `checkpoint-central`: the aggregator that ingests box events, answers trace and occupancy
//! queries, raises alerts, and issues pass codes.
//!
//! # Layout
//! - [`issuer`]: the pass-code issuer key pair and code/QR generation.
//!
//! Ingest, storage, queries, alerts and the API arrive with their own modules (see
//! `ARCHITECTURE.md` for the plan and what exists today).

pub mod issuer;
