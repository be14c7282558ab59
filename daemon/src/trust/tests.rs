use checkpoint_protocol::ids::SubjectId;
use checkpoint_protocol::passcode::{IssuerKey, Revocation};
use time::Duration;

use super::*;

/// Central's configuration key in these tests.
fn central() -> IssuerKey {
    IssuerKey::from_seed([42; 32])
}

fn store(seed: u8, revoke: bool) -> TrustStore {
    let mut store = TrustStore::new();
    store.add_key(IssuerKey::from_seed([seed; 32]).public());
    if revoke {
        store.revoke(Revocation {
            subject: SubjectId::new("p-1").unwrap(),
            issued_before: 2_000_000_000,
        });
    }
    store
}

fn record(seed: u8, serial: u64, at: OffsetDateTime, revoke: bool) -> Vec<u8> {
    let cfg = TrustConfig::signed(&store(seed, revoke), serial, at, &central());
    records::encode(&cfg)
}

struct Files {
    dir: tempfile::TempDir,
    bootstrap: PathBuf,
    config_key: PathBuf,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("passcode.pub");
    std::fs::write(
        &bootstrap,
        IssuerKey::from_seed([1; 32]).public().to_pem().unwrap(),
    )
    .unwrap();
    let config_key = dir.path().join("config-signing.pub");
    std::fs::write(&config_key, central().public().to_pem().unwrap()).unwrap();
    Files {
        dir,
        bootstrap,
        config_key,
    }
}

fn load(f: &Files, max_age_h: u64, now: OffsetDateTime) -> Trust {
    Trust::load(
        &TrustSetup {
            state_dir: f.dir.path(),
            bootstrap: std::slice::from_ref(&f.bootstrap),
            config_keys: std::slice::from_ref(&f.config_key),
            max_age: std::time::Duration::from_secs(max_age_h * 3600),
            max_skew_s: 300,
        },
        now,
    )
    .unwrap()
}

#[test]
fn bootstrap_then_update_then_reload_last_good_copy() {
    let f = files();
    let now = OffsetDateTime::now_utc();
    let t = load(&f, 1, now);
    assert_eq!(t.current().store.keys().count(), 1);
    assert_eq!(t.age_s(now), None);
    assert!(!t.stale(now));

    let v1 = record(2, 10, now - Duration::hours(2), true);
    assert_eq!(t.apply(&v1, now).unwrap(), Applied::Updated);
    assert_eq!(t.apply(&v1, now).unwrap(), Applied::Unchanged);
    assert!(t.stale(now), "two hours old, max one");
    assert_eq!(t.current().store.revocations().count(), 1);
    // A later serial wins even with an older publication time (central's clock went back).
    let v2 = record(3, 11, now - Duration::hours(3), true);
    assert_eq!(t.apply(&v2, now).unwrap(), Applied::Updated);
    assert_eq!(t.refused(), 0);

    let reloaded = load(&f, 1, now);
    let kid = IssuerKey::from_seed([3; 32]).kid();
    assert!(reloaded.current().store.key(&kid).is_some());
    assert_eq!(reloaded.current().serial, Some(11));
    assert!(reloaded.age_s(now).is_some_and(|a| a >= 10_800));
}

/// Every way of forging or replaying trust material is refused, counted, and changes
/// neither the keys in force nor the saved copy.
#[test]
fn forged_unsigned_replayed_and_future_material_changes_nothing() {
    let f = files();
    let now = OffsetDateTime::now_utc();
    let t = load(&f, 0, now);
    let good = record(2, 100, now, true);
    assert_eq!(t.apply(&good, now).unwrap(), Applied::Updated);
    let saved = std::fs::read(f.dir.path().join(FILE_NAME)).unwrap();

    let rogue = IssuerKey::from_seed([66; 32]);
    let forged = records::encode(&TrustConfig::signed(&store(9, false), 101, now, &rogue));
    let unsigned = records::encode(&TrustConfig::unsigned(&store(9, false), 101, now));
    let mut altered: TrustConfig = records::decode(&record(2, 101, now, true)).unwrap();
    altered.revocations.clear();
    let altered = records::encode(&altered);
    let replayed = record(9, 99, now, false);
    // The 2098 record with an all-zero issuer key of the report, now properly signed by
    // central's key (a central with a wrong clock): refused as from the future.
    let far = now + Duration::days(365 * 70);
    let future = record(0, 200, far, false);
    let cases: [(&str, &[u8], &str); 7] = [
        ("rogue key", &forged, "does not trust"),
        ("unsigned", &unsigned, "unsigned"),
        ("altered after signing", &altered, "does not verify"),
        ("older serial", &replayed, "replay"),
        ("far future", &future, "future"),
        ("garbage", b"{not json", "not JSON"),
        ("wrong shape", br#"{"schema":1}"#, "schema"),
    ];
    for (i, (what, bytes, says)) in cases.iter().enumerate() {
        let err = t.apply(bytes, now).unwrap_err();
        assert!(err.to_string().contains(says), "{what}: {err}");
        assert_eq!(t.refused(), i as u64 + 1, "{what} counted");
        assert_eq!(t.current().serial, Some(100), "{what} not in force");
        assert_eq!(t.current().store.revocations().count(), 1, "{what}");
    }
    assert_eq!(
        std::fs::read(f.dir.path().join(FILE_NAME)).unwrap(),
        saved,
        "the saved copy is untouched"
    );
    // Central's next genuine publication still gets through.
    assert_eq!(
        t.apply(&record(2, 101, now, false), now).unwrap(),
        Applied::Updated
    );
}

#[test]
fn a_box_without_configuration_keys_applies_nothing_from_the_network() {
    let f = files();
    let now = OffsetDateTime::now_utc();
    let t = Trust::load(
        &TrustSetup {
            state_dir: f.dir.path(),
            bootstrap: std::slice::from_ref(&f.bootstrap),
            config_keys: &[],
            max_age: std::time::Duration::ZERO,
            max_skew_s: 300,
        },
        now,
    )
    .unwrap();
    assert!(t.apply(&record(2, 1, now, false), now).is_err());
    assert_eq!(t.current().serial, None);
}

#[test]
fn saved_copies_that_no_longer_verify_fall_back_to_bootstrap() {
    let f = files();
    let now = OffsetDateTime::now_utc();
    // A torn copy, an unsigned one of an older release, and a future one: all fall back.
    let rogue = IssuerKey::from_seed([66; 32]);
    for saved in [
        b"{\"schema\":1,".to_vec(),
        records::encode(&TrustConfig::unsigned(&store(9, false), 5, now)),
        records::encode(&TrustConfig::signed(&store(9, false), 5, now, &rogue)),
        record(9, 5, now + Duration::days(30), false),
    ] {
        std::fs::write(f.dir.path().join(FILE_NAME), &saved).unwrap();
        let t = load(&f, 0, now);
        assert_eq!(t.current().serial, None);
        let kid = IssuerKey::from_seed([1; 32]).kid();
        assert!(t.current().store.key(&kid).is_some(), "bootstrap key");
    }
    let missing = Trust::load(
        &TrustSetup {
            state_dir: f.dir.path(),
            bootstrap: &[f.dir.path().join("nope.pub")],
            config_keys: &[],
            max_age: std::time::Duration::ZERO,
            max_skew_s: 300,
        },
        now,
    )
    .unwrap_err();
    assert!(missing.to_string().contains("nope.pub"), "{missing}");
}
