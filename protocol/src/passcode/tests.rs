//! Table-driven tests of pass-code verification. The conformance suite in `tests/vectors` covers
//! the same ground as data; these pin the edges of the clock-skew rule and the length limits.

use proptest::prelude::*;

use super::*;

const T0: u32 = 1_800_000_000;

fn key(seed: u8) -> IssuerKey {
    IssuerKey::from_seed([seed; 32])
}

fn request() -> PassRequest {
    PassRequest {
        status: PassStatus::Green,
        subject: SubjectId::new("p-1001").unwrap(),
        dependants: vec![],
        issued_at: T0,
        expires_at: T0 + 300,
    }
}

fn trust(keys: &[&IssuerKey]) -> TrustStore {
    let mut t = TrustStore::new();
    for k in keys {
        t.add_key(k.public());
    }
    t
}

#[track_caller]
fn check(text: &str, trust: &TrustStore, now: i64, expect: Result<PassStatus, RejectReason>) {
    let got = verify(text, trust, now, 30)
        .map(|c| c.status)
        .map_err(|r| r.reason);
    assert_eq!(got, expect, "verify at {now}");
}

#[test]
fn validity_window_with_skew() {
    let k = key(1);
    let t = trust(&[&k]);
    let code = issue(&k, &request()).unwrap();
    let now = i64::from(T0);
    check(&code, &t, now, Ok(PassStatus::Green));
    check(&code, &t, now - 30, Ok(PassStatus::Green));
    check(&code, &t, now - 31, Err(RejectReason::NotYetValid));
    check(&code, &t, now + 300 + 29, Ok(PassStatus::Green));
    check(&code, &t, now + 300 + 30, Err(RejectReason::Expired));
}

#[test]
fn keys_and_revocation() {
    let (k1, k2) = (key(1), key(2));
    let code = issue(&k1, &request()).unwrap();
    let now = i64::from(T0) + 10;
    check(&code, &trust(&[&k2]), now, Err(RejectReason::UnknownKey));
    check(&code, &trust(&[&k2, &k1]), now, Ok(PassStatus::Green));

    let mut t = trust(&[&k1]);
    let subject = SubjectId::new("p-1001").unwrap();
    t.revoke(Revocation {
        subject: subject.clone(),
        issued_before: T0,
    });
    check(&code, &t, now, Ok(PassStatus::Green));
    t.revoke(Revocation {
        subject,
        issued_before: T0 + 1,
    });
    check(&code, &t, now, Err(RejectReason::Revoked));
}

#[test]
fn forged_kid_is_bad_signature() {
    let (k1, k2) = (key(1), key(2));
    let mut claims = decode(&issue(&k2, &request()).unwrap()).unwrap();
    claims.kid = k1.kid();
    let forged = encode_text(&signed_body(&k2, &claims));
    check(
        &forged,
        &trust(&[&k1]),
        i64::from(T0),
        Err(RejectReason::BadSignature),
    );
}

#[test]
fn prefixes_and_sizes() {
    let t = trust(&[&key(1)]);
    let now = i64::from(T0);
    check("", &t, now, Err(RejectReason::NotAPassCode));
    check(
        "https://example.org",
        &t,
        now,
        Err(RejectReason::NotAPassCode),
    );
    check("CP2:ABC", &t, now, Err(RejectReason::UnsupportedVersion));
    check("CPX:ABC", &t, now, Err(RejectReason::NotAPassCode));
    check("CP1:abc", &t, now, Err(RejectReason::BadEncoding));
    check("CP1:", &t, now, Err(RejectReason::BadLength));
    let huge = format!("CP1:{}", "0".repeat(MAX_TEXT_LEN));
    check(&huge, &t, now, Err(RejectReason::BadLength));
}

#[test]
fn largest_code_fits_limits() {
    let k = key(1);
    let mut req = request();
    req.subject = SubjectId::new("s".repeat(32)).unwrap();
    req.dependants = (0..MAX_DEPENDANTS)
        .map(|i| SubjectId::new(format!("{i}").repeat(32)).unwrap())
        .collect();
    let code = issue(&k, &req).unwrap();
    assert_eq!(
        code.len(),
        MAX_TEXT_LEN - 1,
        "odd body length: one char short"
    );
    let claims = verify(&code, &trust(&[&k]), i64::from(T0), 0).unwrap();
    assert_eq!(claims.dependants, req.dependants);
    req.dependants.push(SubjectId::new("x").unwrap());
    assert_eq!(
        issue(&k, &req),
        Err(IssueError::TooManyDependants(MAX_DEPENDANTS + 1))
    );
}

#[test]
fn typical_code_is_small() {
    let code = issue(&key(1), &request()).unwrap();
    // 4 + 1 + 4 + 4 + 1 + 6 + 1 + 64 = 85 bytes -> 128 base45 characters + prefix.
    assert_eq!(code.len(), 4 + 128);
    assert!(code
        .bytes()
        .all(|b| b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:".contains(&b)));
}

#[test]
fn keys_round_trip_through_pem() {
    let k = key(7);
    let again = IssuerKey::from_pem(&k.to_pem().unwrap()).unwrap();
    assert_eq!(again.kid(), k.kid());
    let public = TrustedKey::from_pem(&k.public().to_pem().unwrap()).unwrap();
    assert_eq!(public, k.public());
    assert!(TrustedKey::from_pem("garbage").is_err());
    assert!(IssuerKey::from_pem(&k.public().to_pem().unwrap()).is_err());
    assert_eq!(KeyId::from_hex(&k.kid().to_string()), Some(k.kid()));
    assert_eq!(KeyId::from_hex("xyz"), None);
    assert!(!format!("{k:?}").contains(&format!("{:?}", [7u8; 32])));
}

proptest! {
    /// Any single altered byte in the body is caught, whatever step catches it.
    #[test]
    fn any_altered_byte_is_rejected(pos in 0usize..85, flip in 1u8..=255) {
        let k = key(1);
        let code = issue(&k, &request()).unwrap();
        let mut body = decode_text(&code).unwrap();
        body[pos] ^= flip;
        let altered = encode_text(&body);
        let res = verify(&altered, &trust(&[&k]), i64::from(T0), 30);
        prop_assert!(res.is_err());
    }

    #[test]
    fn verify_never_panics(text in "CP1:[0-9A-Z $%*+./:-]{0,200}") {
        let _ = verify(&text, &trust(&[&key(1)]), i64::from(T0), 30);
    }
}
