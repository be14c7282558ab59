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

/// A time in Unix milliseconds, the unit the stores, the trace and the alert windows compare in:
/// rounded down (also before 1970), saturating at the ends of `i64`.
pub fn unix_ms(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).unwrap_or(if t.year() < 1970 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// [`unix_ms`] for counters and serials that cannot go below zero (0 before 1970).
pub fn unix_ms_unsigned(t: time::OffsetDateTime) -> u64 {
    u64::try_from(unix_ms(t)).unwrap_or(0)
}

#[cfg(test)]
mod unix_ms_tests {
    use time::macros::datetime;

    #[test]
    fn unix_ms_rounds_down_on_both_sides_of_1970() {
        assert_eq!(super::unix_ms(datetime!(1970-01-01 00:00:00.0015 UTC)), 1);
        assert_eq!(super::unix_ms(datetime!(1969-12-31 23:59:59.9985 UTC)), -2);
        assert_eq!(
            super::unix_ms_unsigned(datetime!(1969-12-31 23:59:59 UTC)),
            0
        );
        assert_eq!(
            super::unix_ms(datetime!(2026-12-03 00:00 UTC)),
            1_796_256_000_000
        );
    }
}
