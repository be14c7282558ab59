//! The numbers the SQL stores keep for the event's enumerations. A code, once shipped, never
//! changes meaning: new variants take new numbers at the end (the test below pins them).

use checkpoint_protocol::passcode::PassStatus;
use checkpoint_protocol::records::{Decision, Direction, Flag, Method, Reason};

use super::StoreError;

const DIRECTIONS: [Direction; 2] = [Direction::In, Direction::Out];
const METHODS: [Method; 2] = [Method::Qr, Method::Face];
const DECISIONS: [Decision; 2] = [Decision::Admit, Decision::Deny];
const STATUSES: [PassStatus; 3] = [PassStatus::Green, PassStatus::Yellow, PassStatus::Red];
const REASONS: [Reason; 17] = [
    Reason::Ok,
    Reason::NotAPassCode,
    Reason::UnsupportedVersion,
    Reason::BadEncoding,
    Reason::BadLength,
    Reason::BadField,
    Reason::UnknownKey,
    Reason::BadSignature,
    Reason::NotYetValid,
    Reason::Expired,
    Reason::Revoked,
    Reason::StatusNotAllowed,
    Reason::Fever,
    Reason::NoTemperature,
    Reason::FaceUnknown,
    Reason::AntiPassback,
    Reason::TrustStale,
];
const FLAGS: [Flag; 7] = [
    Flag::Fever,
    Flag::NoTemperature,
    Flag::PassInvalid,
    Flag::StatusNotAllowed,
    Flag::FaceUnknown,
    Flag::AntiPassback,
    Flag::TrustStale,
];

fn value<T: Copy>(table: &[T], code: i64, what: &str) -> Result<T, StoreError> {
    usize::try_from(code)
        .ok()
        .and_then(|i| table.get(i).copied())
        .ok_or_else(|| StoreError::Corrupt {
            key: what.to_string(),
            message: format!("unknown code {code}"),
        })
}

// Encoding is an exhaustive match, so a new variant does not compile until it has a code; the
// tables decode, and a test checks that both agree.

pub fn direction(d: Direction) -> i64 {
    match d {
        Direction::In => 0,
        Direction::Out => 1,
    }
}
pub fn to_direction(c: i64) -> Result<Direction, StoreError> {
    value(&DIRECTIONS, c, "direction")
}
pub fn method(m: Method) -> i64 {
    match m {
        Method::Qr => 0,
        Method::Face => 1,
    }
}
pub fn to_method(c: i64) -> Result<Method, StoreError> {
    value(&METHODS, c, "method")
}
pub fn decision(d: Decision) -> i64 {
    match d {
        Decision::Admit => 0,
        Decision::Deny => 1,
    }
}
pub fn to_decision(c: i64) -> Result<Decision, StoreError> {
    value(&DECISIONS, c, "decision")
}
pub fn status(s: PassStatus) -> i64 {
    match s {
        PassStatus::Green => 0,
        PassStatus::Yellow => 1,
        PassStatus::Red => 2,
    }
}
pub fn to_status(c: i64) -> Result<PassStatus, StoreError> {
    value(&STATUSES, c, "pass_status")
}
pub fn reason(r: Reason) -> i64 {
    match r {
        Reason::Ok => 0,
        Reason::NotAPassCode => 1,
        Reason::UnsupportedVersion => 2,
        Reason::BadEncoding => 3,
        Reason::BadLength => 4,
        Reason::BadField => 5,
        Reason::UnknownKey => 6,
        Reason::BadSignature => 7,
        Reason::NotYetValid => 8,
        Reason::Expired => 9,
        Reason::Revoked => 10,
        Reason::StatusNotAllowed => 11,
        Reason::Fever => 12,
        Reason::NoTemperature => 13,
        Reason::FaceUnknown => 14,
        Reason::AntiPassback => 15,
        Reason::TrustStale => 16,
    }
}
pub fn to_reason(c: i64) -> Result<Reason, StoreError> {
    value(&REASONS, c, "reason")
}
fn flag(f: Flag) -> u32 {
    match f {
        Flag::Fever => 0,
        Flag::NoTemperature => 1,
        Flag::PassInvalid => 2,
        Flag::StatusNotAllowed => 3,
        Flag::FaceUnknown => 4,
        Flag::AntiPassback => 5,
        Flag::TrustStale => 6,
    }
}
/// The flags in their order: code + 1 in three bits each, first flag lowest. The protocol refuses
/// an event that repeats a flag, so at most seven fit in 21 bits.
pub fn flags(fs: &[Flag]) -> i64 {
    fs.iter()
        .take(FLAGS.len())
        .enumerate()
        .map(|(k, f)| i64::from(flag(*f) + 1) << (3 * k))
        .fold(0, |a, b| a | b)
}
pub fn to_flags(mut bits: i64) -> Result<Vec<Flag>, StoreError> {
    let mut out = Vec::new();
    while bits != 0 {
        if bits < 0 || out.len() == FLAGS.len() {
            break;
        }
        out.push(value(&FLAGS, (bits & 7) - 1, "flags")?);
        bits >>= 3;
    }
    if bits != 0 {
        return Err(StoreError::Corrupt {
            key: "flags".into(),
            message: format!("more than {} flags", FLAGS.len()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes on disk. Changing one of these makes every stored event say something else.
    #[test]
    fn codes_are_pinned() {
        assert_eq!(
            (direction(Direction::In), direction(Direction::Out)),
            (0, 1)
        );
        assert_eq!((method(Method::Qr), method(Method::Face)), (0, 1));
        assert_eq!(
            (decision(Decision::Admit), decision(Decision::Deny)),
            (0, 1)
        );
        assert_eq!(status(PassStatus::Red), 2);
        assert_eq!(reason(Reason::Fever), 12);
        assert_eq!(reason(Reason::TrustStale), 16);
        assert_eq!(flags(&[Flag::TrustStale, Flag::Fever]), 7 | 1 << 3);
    }

    #[test]
    fn every_value_round_trips_and_unknown_codes_are_errors() {
        for (i, r) in REASONS.iter().enumerate() {
            assert_eq!(reason(*r), i as i64);
        }
        for (i, f) in FLAGS.iter().enumerate() {
            assert_eq!(flag(*f), i as u32);
        }
        for (i, d) in DIRECTIONS.iter().enumerate() {
            assert_eq!(direction(*d), i as i64);
        }
        for (i, m) in METHODS.iter().enumerate() {
            assert_eq!(method(*m), i as i64);
        }
        for (i, d) in DECISIONS.iter().enumerate() {
            assert_eq!(decision(*d), i as i64);
        }
        for (i, s) in STATUSES.iter().enumerate() {
            assert_eq!(status(*s), i as i64);
        }
        let mut all: Vec<Flag> = FLAGS.to_vec();
        all.reverse();
        assert_eq!(to_flags(flags(&all)).unwrap(), all, "order kept");
        assert_eq!(to_flags(0).unwrap(), []);
        assert!(to_reason(17).is_err());
        assert!(to_reason(-1).is_err());
        assert!(to_flags(1 << 21).is_err());
        assert!(to_flags(-1).is_err());
        assert!(to_direction(2).is_err());
    }
}
