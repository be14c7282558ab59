//! Strict decoding, table-driven: one good record per type, then one defect at a time.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::passcode::{IssuerKey, Revocation, TrustStore};

fn event_json() -> Value {
    json!({
        "schema": 1,
        "id": "8c5e1a0e-8f5b-4c47-9d59-1f2d1b0f3a11",
        "seq": 7,
        "site": "north-campus",
        "box": "gate-1",
        "checkpoint": "library-east",
        "direction": "in",
        "method": "qr",
        "subject": "p-1001",
        "pass_status": "green",
        "decision": "admit",
        "reason": "ok",
        "temperature_c": 36.6,
        "ts": "2026-11-23T08:00:00Z",
        "clock_synced": true
    })
}

#[track_caller]
fn check<T: Record + std::fmt::Debug>(value: &Value, expect: Result<(), &str>) {
    let bytes = serde_json::to_vec(value).unwrap();
    match (decode::<T>(&bytes), expect) {
        (Ok(rec), Ok(())) => {
            // Encoding is the inverse of decoding.
            let again: T = decode(&encode(&rec)).unwrap();
            assert_eq!(encode(&again), encode(&rec));
        }
        (Err(e), Err(want)) => assert_eq!(e.kind(), want, "{e}"),
        (got, want) => panic!("got {got:?}, want {want:?}"),
    }
}

fn with(mut v: Value, key: &str, new: Value) -> Value {
    v[key] = new;
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

#[test]
fn event_decoding() {
    let e = event_json();
    check::<Event>(&e, Ok(()));
    check::<Event>(&with(e.clone(), "subject", Value::Null), Ok(()));
    check::<Event>(&without(e.clone(), "flags"), Ok(()));
    check::<Event>(&with(e.clone(), "schema", json!(2)), Err("version"));
    check::<Event>(&with(e.clone(), "schema", json!("1")), Err("schema"));
    check::<Event>(&without(e.clone(), "schema"), Err("schema"));
    check::<Event>(&with(e.clone(), "extra", json!(1)), Err("schema"));
    check::<Event>(&without(e.clone(), "clock_synced"), Err("schema"));
    check::<Event>(&with(e.clone(), "box", json!("Gate 1")), Err("schema"));
    check::<Event>(
        &with(e.clone(), "subject", json!("Jane Doe")),
        Err("schema"),
    );
    check::<Event>(&with(e.clone(), "direction", json!("up")), Err("schema"));
    check::<Event>(&with(e.clone(), "seq", json!(-1)), Err("schema"));
    check::<Event>(&with(e.clone(), "seq", json!(0)), Err("invalid"));
    check::<Event>(&with(e.clone(), "reason", json!("expired")), Err("invalid"));
    let denied = with(e.clone(), "decision", json!("deny"));
    check::<Event>(&denied, Err("invalid"));
    check::<Event>(&with(denied, "reason", json!("fever")), Ok(()));
    check::<Event>(
        &with(e.clone(), "temperature_c", json!(80.0)),
        Err("invalid"),
    );
    check::<Event>(
        &with(e.clone(), "ts", json!("2026-11-23T09:00:00+01:00")),
        Err("schema"),
    );
    check::<Event>(&with(e.clone(), "ts", json!("yesterday")), Err("schema"));
    check::<Event>(
        &with(e, "flags", json!(["fever", "no_temperature"])),
        Ok(()),
    );
    check::<Event>(&json!([1, 2]), Err("schema"));
}

/// Sequence numbers at the edges: 1 and 2^53 pass; 0, 2^53 + 1, 2^63 and 2^64 − 1 are refused
/// at decode (in events and in acks), so no sum on them can overflow further in.
#[test]
fn sequence_numbers_at_the_edges() {
    let e = event_json();
    for (seq, ok) in [
        (1u64, true),
        (MAX_SEQ, true),
        (0, false),
        (MAX_SEQ + 1, false),
        (1 << 63, false),
        (u64::MAX, false),
    ] {
        let want = if ok { Ok(()) } else { Err("invalid") };
        check::<Event>(&with(e.clone(), "seq", json!(seq)), want);
        let ack =
            json!({"schema": 1, "box": "gate-1", "ranges": [{"first": 1, "last": seq.max(1)}]});
        let want = if ok || seq == 0 {
            Ok(())
        } else {
            Err("invalid")
        };
        check::<Ack>(&ack, want);
    }
}

#[test]
fn size_and_syntax() {
    let huge = vec![b' '; Event::MAX_BYTES + 1];
    assert_eq!(decode::<Event>(&huge).unwrap_err().kind(), "too_large");
    assert_eq!(
        decode::<Event>(b"{\"schema\":").unwrap_err().kind(),
        "syntax"
    );
    assert_eq!(decode::<Event>(b"\xff\xfe").unwrap_err().kind(), "syntax");
    assert_eq!(decode::<Event>(b"").unwrap_err().kind(), "syntax");
}

#[test]
fn status_telemetry_ack() {
    check::<Status>(
        &json!({"schema": 1, "box": "gate-1", "state": "offline"}),
        Ok(()),
    );
    check::<Status>(
        &json!({"schema": 1, "box": "gate-1", "state": "online", "version": "0.1.0"}),
        Ok(()),
    );
    check::<Status>(
        &json!({"schema": 1, "box": "gate-1", "state": "gone"}),
        Err("schema"),
    );

    let ok = json!({"state": "ok"});
    let telemetry = json!({
        "schema": 1, "box": "gate-1", "ts": "2026-11-23T08:00:00Z", "version": "0.1.0",
        "uptime_s": 60, "last_seq": 10, "outbox_depth": 2, "outbox_bytes": 900,
        "outbox_oldest_age_s": 3, "outbox_full": false, "dropped_events": 0, "fps": 9.5,
        "decode_ms_p50": 12.0, "camera": ok, "thermometer": {"state": "fault", "detail": "no ack"},
        "gate": {"state": "disabled"}, "clock_synced": false, "trust_age_s": null,
        "disk_free_bytes": 1000000
    });
    check::<Telemetry>(&telemetry, Ok(()));
    check::<Telemetry>(&with(telemetry.clone(), "fps", json!(-1.0)), Err("invalid"));
    check::<Telemetry>(
        &with(telemetry, "camera", json!({"state": "meh"})),
        Err("schema"),
    );

    let ack = |ranges: Value| json!({"schema": 1, "box": "gate-1", "ranges": ranges});
    check::<Ack>(
        &ack(json!([{"first": 1, "last": 5}, {"first": 7, "last": 7}])),
        Ok(()),
    );
    check::<Ack>(&ack(json!([])), Err("invalid"));
    check::<Ack>(&ack(json!([{"first": 5, "last": 1}])), Err("invalid"));
    check::<Ack>(&ack(json!([{"first": 0, "last": 1}])), Err("invalid"));
}

#[test]
fn trust_config_round_trip() {
    let key = IssuerKey::from_seed([3; 32]);
    let mut store = TrustStore::new();
    store.add_key(key.public());
    store.revoke(Revocation {
        subject: crate::ids::SubjectId::new("p-9").unwrap(),
        issued_before: 1_800_000_000,
    });
    let published = time::macros::datetime!(2026-11-23 08:00 UTC);
    let config_key = IssuerKey::from_seed([4; 32]);
    let record = TrustConfig::signed(&store, 7, published, &config_key);
    let decoded: TrustConfig = decode(&encode(&record)).unwrap();
    assert_eq!(decoded.to_trust_store().unwrap(), store);
    let keys = crate::signed::ConfigKeys(vec![config_key.public()]);
    assert_eq!(decoded.verify(&keys), Ok(config_key.kid()));
    // Any field changed after signing fails the signature, however the JSON is written.
    let mut v = serde_json::to_value(&record).unwrap();
    v["serial"] = json!(8);
    let bumped: TrustConfig = decode(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(
        bumped.verify(&keys),
        Err(crate::signed::Refused::BadSignature)
    );
    // Whitespace and key order do not matter: the signature covers the content.
    let mut pretty = serde_json::to_value(&record).unwrap();
    pretty.as_object_mut().unwrap().remove("signature");
    let sig = serde_json::to_value(&record.signature).unwrap();
    pretty["signature"] = sig;
    let reparsed: TrustConfig =
        decode(serde_json::to_string_pretty(&pretty).unwrap().as_bytes()).unwrap();
    assert_eq!(reparsed.verify(&keys), Ok(config_key.kid()));

    let mut v = serde_json::to_value(&record).unwrap();
    v["keys"][0]["kid"] = json!("00000000");
    check::<TrustConfig>(&v, Err("invalid"));
    v["keys"][0]["public_key"] = json!("zz");
    check::<TrustConfig>(&v, Err("invalid"));
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<Event>(&bytes);
        let _ = decode::<Telemetry>(&bytes);
        let _ = decode::<TrustConfig>(&bytes);
    }
}
