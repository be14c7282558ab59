//! The conformance vectors of the `CP1` pass code, as a program.
//!
//! Shared by `examples/make_vectors.rs` (which writes `tests/vectors/*.json`) and the conformance
//! test (which checks that regenerating gives byte-identical files). Every expected outcome below is
//! written out by hand from `docs/passcode.md`; nothing is computed by the verifier under test.
//! Keys come from fixed seeds and Ed25519 signatures are deterministic, so the output is stable.
//! A format change is a new prefix version with new vectors, never an edit of these.

use checkpoint_protocol::ids::SubjectId;
use checkpoint_protocol::passcode::{
    self, IssuerKey, PassClaims, PassRequest, PassStatus, Revocation, TrustStore,
};
use checkpoint_protocol::records::TrustConfig;
use serde_json::{json, Value};
use time::OffsetDateTime;

/// 2026-11-23T08:00:00Z: the issue time of most vectors.
pub const T0: u32 = 1_795_420_800;
pub const VALIDITY: u32 = 300;
pub const SKEW: u32 = 30;

pub fn key_a() -> IssuerKey {
    IssuerKey::from_seed([0x11; 32])
}

pub fn key_b() -> IssuerKey {
    IssuerKey::from_seed([0x22; 32])
}

fn sid(s: &str) -> SubjectId {
    SubjectId::new(s).unwrap_or_else(|e| panic!("vector subject {s:?}: {e}"))
}

fn request(status: PassStatus, subject: &str, dependants: &[&str]) -> PassRequest {
    PassRequest {
        status,
        subject: sid(subject),
        dependants: dependants.iter().map(|d| sid(d)).collect(),
        issued_at: T0,
        expires_at: T0 + VALIDITY,
    }
}

fn issue(key: &IssuerKey, req: &PassRequest) -> String {
    passcode::issue(key, req).unwrap_or_else(|e| panic!("vector issue: {e}"))
}

fn claims(key: &IssuerKey, req: &PassRequest) -> PassClaims {
    PassClaims {
        kid: key.kid(),
        status: req.status,
        issued_at: req.issued_at,
        expires_at: req.expires_at,
        subject: req.subject.clone(),
        dependants: req.dependants.clone(),
    }
}

fn body(text: &str) -> Vec<u8> {
    passcode::decode_text(text).unwrap_or_else(|e| panic!("vector body: {e}"))
}

pub fn rfc3339(unix: u32) -> String {
    let t =
        OffsetDateTime::from_unix_timestamp(i64::from(unix)).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn trust(keys: &[&IssuerKey], revocations: &[(&str, u32)]) -> Value {
    let mut store = TrustStore::new();
    for k in keys {
        store.add_key(k.public());
    }
    for (subject, before) in revocations {
        store.revoke(Revocation {
            subject: sid(subject),
            issued_before: *before,
        });
    }
    let published = OffsetDateTime::from_unix_timestamp(i64::from(T0) - 3600)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    // Signed with a fixed configuration key, as central signs what it publishes (a box checks
    // that signature before applying it; the vectors test the pass code against its content).
    let config_key = IssuerKey::from_seed([0xC0; 32]);
    serde_json::to_value(TrustConfig::signed(&store, 1, published, &config_key))
        .unwrap_or(Value::Null)
}

/// The claims as the vectors show them.
pub fn claims_json(c: &PassClaims) -> Value {
    json!({
        "kid": c.kid.to_string(),
        "status": c.status.as_str(),
        "issued_at": rfc3339(c.issued_at),
        "expires_at": rfc3339(c.expires_at),
        "subject": c.subject.as_str(),
        "dependants": c.dependants.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
    })
}

/// Expected outcome: the step results in order, `None` where the step is not reached.
struct Expect {
    decode: &'static str,
    signature: Option<&'static str>,
    validity: Option<&'static str>,
    revocation: Option<&'static str>,
    claims: Option<PassClaims>,
}

impl Expect {
    fn valid(c: PassClaims) -> Self {
        Expect {
            decode: "ok",
            signature: Some("ok"),
            validity: Some("ok"),
            revocation: Some("ok"),
            claims: Some(c),
        }
    }

    fn decode_fails(reason: &'static str) -> Self {
        Expect {
            decode: reason,
            signature: None,
            validity: None,
            revocation: None,
            claims: None,
        }
    }

    fn signature_fails(reason: &'static str, c: PassClaims) -> Self {
        Expect {
            decode: "ok",
            signature: Some(reason),
            validity: None,
            revocation: None,
            claims: Some(c),
        }
    }

    fn validity_fails(reason: &'static str, c: PassClaims) -> Self {
        Expect {
            decode: "ok",
            signature: Some("ok"),
            validity: Some(reason),
            revocation: None,
            claims: Some(c),
        }
    }

    fn revoked(c: PassClaims) -> Self {
        Expect {
            decode: "ok",
            signature: Some("ok"),
            validity: Some("ok"),
            revocation: Some("revoked"),
            claims: Some(c),
        }
    }

    fn to_json(&self) -> Value {
        let steps = [
            self.decode,
            self.signature.unwrap_or("not_reached"),
            self.validity.unwrap_or("not_reached"),
            self.revocation.unwrap_or("not_reached"),
        ];
        let verdict = steps.iter().find(|s| **s != "ok").map_or("valid", |s| s);
        let status = match (verdict, &self.claims) {
            ("valid", Some(c)) => Value::from(c.status.as_str()),
            _ => Value::Null,
        };
        json!({
            "decode": steps[0],
            "signature": steps[1],
            "validity": steps[2],
            "revocation": steps[3],
            "verdict": verdict,
            "status": status,
            "claims": self.claims.as_ref().map_or(Value::Null, claims_json),
        })
    }
}

struct Case {
    name: &'static str,
    description: &'static str,
    input: String,
    now: u32,
    trust: Value,
    expect: Expect,
}

/// Every vector as `(file name, JSON)`, in a fixed order.
pub fn vectors() -> Vec<(String, Value)> {
    let (a, b) = (key_a(), key_b());
    let trust_a = trust(&[&a], &[]);
    let green = request(PassStatus::Green, "p-1001", &[]);
    let green_code = issue(&a, &green);
    let green_claims = claims(&a, &green);
    let mid = T0 + 60;

    let mut cases = vec![];
    let mut push = |name, description, input: String, now, trust: &Value, expect| {
        cases.push(Case {
            name,
            description,
            input,
            now,
            trust: trust.clone(),
            expect,
        });
    };

    // Valid codes.
    push(
        "valid-green",
        "a green code inside its validity window",
        green_code.clone(),
        mid,
        &trust_a,
        Expect::valid(green_claims.clone()),
    );
    for (name, status) in [
        ("valid-yellow", PassStatus::Yellow),
        ("valid-red", PassStatus::Red),
    ] {
        let req = request(status, "p-1002", &[]);
        push(
            name,
            "a valid code; the colour is reported, admitting it is the box's policy",
            issue(&a, &req),
            mid,
            &trust_a,
            Expect::valid(claims(&a, &req)),
        );
    }
    let family = request(PassStatus::Green, "p-2001", &["p-2002", "p-2003"]);
    push(
        "valid-dependants",
        "a code binding two dependants",
        issue(&a, &family),
        mid,
        &trust_a,
        Expect::valid(claims(&a, &family)),
    );
    let longest = PassRequest {
        subject: sid(&"s".repeat(32)),
        dependants: (0..8).map(|i| sid(&format!("d{i}").repeat(16))).collect(),
        ..green.clone()
    };
    push(
        "valid-largest",
        "the largest code: 32-character subject and 8 such dependants",
        issue(&a, &longest),
        mid,
        &trust_a,
        Expect::valid(claims(&a, &longest)),
    );
    push(
        "valid-skew-early",
        "scanned 30 s before its issue time: inside the skew tolerance",
        green_code.clone(),
        T0 - SKEW,
        &trust_a,
        Expect::valid(green_claims.clone()),
    );
    push(
        "valid-skew-late",
        "scanned 29 s after expiry: inside the skew tolerance",
        green_code.clone(),
        T0 + VALIDITY + SKEW - 1,
        &trust_a,
        Expect::valid(green_claims.clone()),
    );
    let rotated = request(PassStatus::Green, "p-1003", &[]);
    push(
        "valid-second-key",
        "signed by the second of two trusted keys (key rotation)",
        issue(&b, &rotated),
        mid,
        &trust(&[&a, &b], &[]),
        Expect::valid(claims(&b, &rotated)),
    );
    push(
        "valid-old-revocation",
        "the subject was revoked before this code was issued",
        green_code.clone(),
        mid,
        &trust(&[&a], &[("p-1001", T0)]),
        Expect::valid(green_claims.clone()),
    );

    // Validity and revocation.
    push(
        "expired",
        "scanned 30 s after expiry: beyond the skew tolerance",
        green_code.clone(),
        T0 + VALIDITY + SKEW,
        &trust_a,
        Expect::validity_fails("expired", green_claims.clone()),
    );
    push(
        "not-yet-valid",
        "scanned 31 s before its issue time",
        green_code.clone(),
        T0 - SKEW - 1,
        &trust_a,
        Expect::validity_fails("not_yet_valid", green_claims.clone()),
    );
    push(
        "revoked",
        "the subject's codes issued before a later cut-off are revoked",
        green_code.clone(),
        mid,
        &trust(&[&a], &[("p-1001", T0 + 1)]),
        Expect::revoked(green_claims.clone()),
    );
    push(
        "expired-and-revoked",
        "validity is checked before revocation",
        green_code.clone(),
        T0 + 3600,
        &trust(&[&a], &[("p-1001", T0 + 1)]),
        Expect::validity_fails("expired", green_claims.clone()),
    );

    // Keys and signatures.
    let foreign = issue(&b, &green);
    push(
        "unknown-key",
        "signed by a key the box does not trust",
        foreign,
        mid,
        &trust_a,
        Expect::signature_fails("unknown_key", claims(&b, &green)),
    );
    let forged = green_claims.clone();
    push(
        "forged-kid",
        "signed by an untrusted key but naming the trusted key's id",
        passcode::encode_text(&passcode::signed_body(&b, &forged)),
        mid,
        &trust_a,
        Expect::signature_fails("bad_signature", forged),
    );
    let red = request(PassStatus::Red, "p-1004", &[]);
    let mut altered = body(&issue(&a, &red));
    altered[4] = 0; // red -> green
    push(
        "altered-status",
        "status byte changed from red to green after signing",
        passcode::encode_text(&altered),
        mid,
        &trust_a,
        Expect::signature_fails(
            "bad_signature",
            claims(
                &a,
                &PassRequest {
                    status: PassStatus::Green,
                    ..red
                },
            ),
        ),
    );
    let mut altered = body(&green_code);
    altered[19] = b'2'; // p-1001 -> p-1002
    push(
        "altered-subject",
        "one character of the subject changed after signing",
        passcode::encode_text(&altered),
        mid,
        &trust_a,
        Expect::signature_fails(
            "bad_signature",
            claims(&a, &request(PassStatus::Green, "p-1002", &[])),
        ),
    );
    let mut altered = body(&green_code);
    altered[12] ^= 0x01; // the low byte of the expiry
    let mut later = green.clone();
    later.expires_at ^= 0x01;
    push(
        "altered-expiry",
        "the low bit of the expiry changed after signing",
        passcode::encode_text(&altered),
        mid,
        &trust_a,
        Expect::signature_fails("bad_signature", claims(&a, &later)),
    );
    let mut altered = body(&green_code);
    let last = altered.len() - 1;
    altered[last] ^= 0x80;
    push(
        "altered-signature",
        "one bit of the signature flipped",
        passcode::encode_text(&altered),
        mid,
        &trust_a,
        Expect::signature_fails("bad_signature", green_claims.clone()),
    );

    // Decoding failures.
    push(
        "not-a-pass-code-url",
        "another QR code: a web address",
        "https://example.org/p?id=1".into(),
        mid,
        &trust_a,
        Expect::decode_fails("not_a_pass_code"),
    );
    push(
        "not-a-pass-code-empty",
        "empty input",
        String::new(),
        mid,
        &trust_a,
        Expect::decode_fails("not_a_pass_code"),
    );
    push(
        "not-a-pass-code-lowercase",
        "the prefix is case-sensitive",
        green_code.to_lowercase(),
        mid,
        &trust_a,
        Expect::decode_fails("not_a_pass_code"),
    );
    push(
        "wrong-prefix-version",
        "a future version's prefix",
        green_code.replacen("CP1:", "CP2:", 1),
        mid,
        &trust_a,
        Expect::decode_fails("unsupported_version"),
    );
    push(
        "wrong-prefix-other",
        "a similar but unrelated prefix (health certificate style)",
        green_code.replacen("CP1:", "HC1:", 1),
        mid,
        &trust_a,
        Expect::decode_fails("not_a_pass_code"),
    );
    push(
        "bad-encoding-char",
        "a character outside the base45 alphabet",
        format!("{}a{}", &green_code[..10], &green_code[11..]),
        mid,
        &trust_a,
        Expect::decode_fails("bad_encoding"),
    );
    push(
        "bad-encoding-dangling",
        "one character removed: a dangling base45 character",
        green_code[..green_code.len() - 1].to_string(),
        mid,
        &trust_a,
        Expect::decode_fails("bad_encoding"),
    );
    push(
        "bad-encoding-overflow",
        "a base45 group above 65535",
        format!("{}GGW", green_code),
        mid,
        &trust_a,
        Expect::decode_fails("bad_encoding"),
    );
    let green_body = body(&green_code);
    push(
        "truncated",
        "the last two bytes of the body missing, then re-encoded",
        passcode::encode_text(&green_body[..green_body.len() - 2]),
        mid,
        &trust_a,
        Expect::decode_fails("bad_length"),
    );
    push(
        "truncated-text",
        "the last three characters of the text missing: the final pair overflows",
        green_code[..green_code.len() - 3].to_string(),
        mid,
        &trust_a,
        Expect::decode_fails("bad_encoding"),
    );
    push(
        "truncated-to-prefix",
        "nothing after the prefix",
        "CP1:".into(),
        mid,
        &trust_a,
        Expect::decode_fails("bad_length"),
    );
    let mut extended = body(&green_code);
    extended.extend_from_slice(&[0, 0]);
    push(
        "trailing-bytes",
        "two bytes appended",
        passcode::encode_text(&extended),
        mid,
        &trust_a,
        Expect::decode_fails("bad_length"),
    );
    push(
        "huge",
        "10,000 characters of valid base45",
        format!("CP1:{}", "0".repeat(10_000)),
        mid,
        &trust_a,
        Expect::decode_fails("bad_length"),
    );
    let mut raw = passcode::signed_body(&a, &green_claims);
    raw[4] = 7;
    push(
        "bad-field-status",
        "status byte 7 is not a colour",
        passcode::encode_text(&raw),
        mid,
        &trust_a,
        Expect::decode_fails("bad_field"),
    );
    let mut raw = body(&green_code);
    raw[15] = b' '; // "p-1001" -> "p 1001"
    push(
        "bad-field-subject",
        "a space in the subject id",
        passcode::encode_text(&raw),
        mid,
        &trust_a,
        Expect::decode_fails("bad_field"),
    );
    let mut raw = body(&green_code);
    raw[9..13].copy_from_slice(&T0.to_be_bytes());
    push(
        "bad-field-empty-validity",
        "expiry equal to the issue time",
        passcode::encode_text(&raw),
        mid,
        &trust_a,
        Expect::decode_fails("bad_field"),
    );
    push(
        "garbage",
        "85 bytes of 0xFF behind the prefix",
        passcode::encode_text(&[0xFF; 85]),
        mid,
        &trust_a,
        Expect::decode_fails("bad_field"),
    );

    cases
        .into_iter()
        .map(|c| {
            let value = json!({
                "description": c.description,
                "input": c.input,
                "context": {
                    "now": rfc3339(c.now),
                    "clock_skew_s": SKEW,
                    "trust": c.trust,
                },
                "expected": c.expect.to_json(),
            });
            (format!("{}.json", c.name), value)
        })
        .collect()
}

/// The exact bytes of a vector file.
pub fn render(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}
