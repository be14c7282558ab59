//! The door's rules as tables: each row is an input at a time (milliseconds after the start)
//! and the effects the core must answer with, in order.
//!
//! Long on purpose: one table per group of door rules; every rule of the core has its rows here.

use std::time::Instant;

use checkpoint_protocol::ids::{BoxId, CheckpointId, SiteId};
use checkpoint_protocol::passcode::{IssuerKey, PassRequest, PassStatus, TrustStore};
use checkpoint_protocol::records::Direction;

use super::*;

/// Unix seconds at the start of every table.
const T0: i64 = 1_800_000_000;

struct World {
    key: IssuerKey,
    trust: TrustStore,
    captured: Instant,
}

impl World {
    fn new() -> World {
        let key = IssuerKey::from_seed([9; 32]);
        let mut trust = TrustStore::new();
        trust.add_key(key.public());
        World {
            key,
            trust,
            captured: Instant::now(),
        }
    }

    /// A green code for `who`, valid around the tables' times; `"expired:who"` ended an hour
    /// before; `"garbage"` is not a pass code.
    fn code(&self, who: &str) -> String {
        if who == "garbage" {
            return "HELLO WORLD".into();
        }
        let (who, expired) = match who.strip_prefix("expired:") {
            Some(w) => (w, true),
            None => (who, false),
        };
        let t0 = T0 as u32;
        let req = PassRequest {
            status: PassStatus::Green,
            subject: SubjectId::new(who).unwrap(),
            dependants: vec![],
            issued_at: t0 - 7200,
            expires_at: if expired { t0 - 3600 } else { t0 + 86_400 },
        };
        passcode::issue(&self.key, &req).unwrap()
    }
}

/// One row's input.
#[derive(Debug, Clone)]
enum Step {
    /// Codes decoded in a frame, by whom ("garbage" for a non-code).
    Codes(&'static [&'static str]),
    /// A decoder located a code it could not read.
    Located,
    /// The codes of a frame are all in.
    End,
    /// The face stage's verdict.
    Face(Look),
    /// The measurement for the oldest waiting attempt: temperature, and a stale trust store is
    /// not this step's business.
    Measured(Option<f32>),
    /// Codes as in `Codes`, with the trust material stale.
    StaleCodes(&'static [&'static str]),
    Tick,
}

use Step::*;

fn someone(who: &str) -> Look {
    Look::Settled(Some(SubjectId::new(who).unwrap()))
}

fn setup(policy: &str, face: bool) -> DoorSetup {
    DoorSetup {
        identity: Identity {
            site: SiteId::new("campus").unwrap(),
            box_id: BoxId::new("box-1").unwrap(),
            checkpoint: CheckpointId::new("gate-a").unwrap(),
            direction: Direction::In,
        },
        policy: toml::from_str(policy).unwrap(),
        face_cooldown_ms: face.then_some(5_000),
    }
}

fn summary(e: &Effect) -> String {
    match e {
        Effect::Measure => "measure".into(),
        Effect::LookForFace => "look".into(),
        Effect::ResetFace => "reset face".into(),
        Effect::Append { event, .. } => {
            let mut s = format!(
                "append {:?} {:?} {:?} {}",
                event.method,
                event.decision,
                event.reason,
                event.subject.as_ref().map_or("-", |s| s.as_str())
            );
            for f in &event.flags {
                s.push_str(&format!(" +{f:?}"));
            }
            s
        }
        Effect::Signal(s) => format!("signal {s:?}"),
        Effect::WakeUplink => "wake".into(),
    }
}

/// Runs the rows in order through one core and checks each row's effects.
fn check(name: &str, policy: &str, face: bool, rows: &[(u64, Step, &[&str])]) {
    let w = World::new();
    let mut core = DoorCore::new(setup(policy, face));
    for (i, (at_ms, step, expected)) in rows.iter().enumerate() {
        let now = OffsetDateTime::from_unix_timestamp(T0).unwrap()
            + time::Duration::milliseconds(*at_ms as i64);
        let input = match step {
            Codes(who) | StaleCodes(who) => Input::Codes {
                payloads: who.iter().map(|p| w.code(p)).collect(),
                located: false,
                captured: w.captured,
                trust: &w.trust,
                trust_stale: matches!(step, StaleCodes(_)),
            },
            Located => Input::Codes {
                payloads: vec![],
                located: true,
                captured: w.captured,
                trust: &w.trust,
                trust_stale: false,
            },
            End => Input::FrameEnd {
                captured: w.captured,
            },
            Face(look) => Input::Face {
                look: look.clone(),
                captured: w.captured,
            },
            Measured(t) => Input::Measured(Measurement {
                temperature_c: *t,
                clock_synced: true,
                id: Uuid::nil(),
            }),
            Tick => Input::Tick,
        };
        let got: Vec<String> = core.handle(input, now).iter().map(summary).collect();
        assert_eq!(got, *expected, "{name}: row {i} ({step:?} at {at_ms} ms)");
    }
}

const ADMIT: [&str; 3] = ["append Qr Admit Ok p-1", "signal Admit", "wake"];

#[test]
fn codes() {
    check(
        "a code is an attempt: measured, appended, then signalled",
        "",
        false,
        &[
            (0, Codes(&["p-1"]), &["measure"]),
            (1, Measured(Some(36.6)), &ADMIT),
        ],
    );
    check(
        "a code held in view counts once; seen again after the cooldown it is a new attempt",
        "",
        false,
        &[
            (0, Codes(&["p-1"]), &["measure"]),
            (1, Measured(None), &ADMIT),
            (1_000, Codes(&["p-1"]), &[]),
            (2_999, Codes(&["p-1"]), &[]),
            // The cooldown counts from the last sighting: 2,999 + 3,000.
            (5_998, Codes(&["p-1"]), &[]),
            (9_000, Codes(&["p-1"]), &["measure"]),
            (9_001, Measured(None), &ADMIT),
        ],
    );
    check(
        "two codes in one frame are two attempts, finished in the order found",
        "",
        false,
        &[
            (0, Codes(&["p-1", "p-2"]), &["measure", "measure"]),
            (1, Measured(None), &ADMIT),
            (
                2,
                Measured(None),
                &["append Qr Admit Ok p-2", "signal Admit", "wake"],
            ),
            (3, Measured(None), &[]),
        ],
    );
    check(
        "what is not a pass code is denied and names nobody",
        "",
        false,
        &[
            (0, Codes(&["garbage"]), &["measure"]),
            (
                1,
                Measured(None),
                &["append Qr Deny NotAPassCode -", "signal Deny", "wake"],
            ),
        ],
    );
    check(
        "an expired code is denied and still names its person",
        "",
        false,
        &[
            (0, Codes(&["expired:p-1"]), &["measure"]),
            (
                1,
                Measured(None),
                &["append Qr Deny Expired p-1", "signal Deny", "wake"],
            ),
        ],
    );
    check(
        "a duplicate cooldown of 0 counts every sighting",
        "duplicate_cooldown = \"0s\"",
        false,
        &[
            (0, Codes(&["p-1"]), &["measure"]),
            (1, Measured(None), &ADMIT),
            (2, Codes(&["p-1"]), &["measure"]),
        ],
    );
}

#[test]
fn temperature_and_trust() {
    check(
        "with temperature hard, a fever or no reading is denied",
        "temperature = \"hard\"",
        false,
        &[
            (0, Codes(&["p-1"]), &["measure"]),
            (
                1,
                Measured(Some(38.2)),
                &["append Qr Deny Fever p-1", "signal Deny", "wake"],
            ),
            (5_000, Codes(&["p-1"]), &["measure"]),
            (
                5_001,
                Measured(None),
                &["append Qr Deny NoTemperature p-1", "signal Deny", "wake"],
            ),
            (10_000, Codes(&["p-1"]), &["measure"]),
            // 50 °C is no body temperature: no reading.
            (
                10_001,
                Measured(Some(50.0)),
                &["append Qr Deny NoTemperature p-1", "signal Deny", "wake"],
            ),
        ],
    );
    check(
        "with temperature soft, a fever is admitted and flagged",
        "temperature = \"soft\"",
        false,
        &[
            (0, Codes(&["p-1"]), &["measure"]),
            (
                1,
                Measured(Some(38.2)),
                &["append Qr Admit Ok p-1 +Fever", "signal Admit", "wake"],
            ),
        ],
    );
    check(
        "stale trust flags a code by default, and denies it when hard",
        "trust_stale = \"hard\"",
        false,
        &[
            (0, StaleCodes(&["p-1"]), &["measure"]),
            (
                1,
                Measured(None),
                &["append Qr Deny TrustStale p-1", "signal Deny", "wake"],
            ),
        ],
    );
    check(
        "stale trust, soft (the default)",
        "",
        false,
        &[
            (0, StaleCodes(&["p-1"]), &["measure"]),
            (
                1,
                Measured(None),
                &["append Qr Admit Ok p-1 +TrustStale", "signal Admit", "wake"],
            ),
        ],
    );
}

#[test]
fn anti_passback() {
    check(
        "a second entry within the window is denied when hard; a deny is not an entry",
        "anti_passback_window = \"600s\"\nanti_passback = \"hard\"\ntemperature = \"hard\"",
        false,
        &[
            (0, Codes(&["p-1"]), &["measure"]),
            (
                1,
                Measured(Some(38.5)),
                &["append Qr Deny Fever p-1", "signal Deny", "wake"],
            ),
            (4_000, Codes(&["p-1"]), &["measure"]),
            (4_001, Measured(Some(36.5)), &ADMIT),
            (60_000, Codes(&["p-1"]), &["measure"]),
            (
                60_001,
                Measured(Some(36.5)),
                &["append Qr Deny AntiPassback p-1", "signal Deny", "wake"],
            ),
            (605_000, Codes(&["p-1"]), &["measure"]),
            (605_001, Measured(Some(36.5)), &ADMIT),
        ],
    );
    check(
        "soft anti-passback (the default mode) admits and flags; others are not affected",
        "anti_passback_window = \"600s\"",
        false,
        &[
            (0, Codes(&["p-1"]), &["measure"]),
            (1, Measured(None), &ADMIT),
            (10_000, Codes(&["p-1", "p-2"]), &["measure", "measure"]),
            (
                10_001,
                Measured(None),
                &[
                    "append Qr Admit Ok p-1 +AntiPassback",
                    "signal Admit",
                    "wake",
                ],
            ),
            (
                10_002,
                Measured(None),
                &["append Qr Admit Ok p-2", "signal Admit", "wake"],
            ),
        ],
    );
    check(
        "an admit by code counts for the same person's face",
        "anti_passback_window = \"600s\"\nanti_passback = \"hard\"",
        true,
        &[
            (0, Codes(&["p-1"]), &["measure"]),
            (1, Measured(None), &ADMIT),
            (10_000, End, &["look"]),
            (10_001, Face(someone("p-1")), &["measure"]),
            (
                10_002,
                Measured(None),
                &["append Face Deny AntiPassback p-1", "signal Deny", "wake"],
            ),
        ],
    );
}

#[test]
fn faces() {
    check(
        "with no code in view, a frame goes to the face stage; a settled face is an attempt",
        "",
        true,
        &[
            (0, End, &["look"]),
            (1, Face(Look::Nobody), &[]),
            (66, End, &["look"]),
            (67, Face(Look::Gathering), &[]),
            (132, End, &["look"]),
            (133, Face(someone("p-2")), &["measure"]),
            (
                134,
                Measured(None),
                &["append Face Admit Ok p-2", "signal Admit", "wake"],
            ),
            // Still in view within the face cooldown (5 s here): the same attempt.
            (2_000, Face(someone("p-2")), &[]),
            (6_000, Face(someone("p-3")), &["measure"]),
            (
                6_001,
                Measured(None),
                &["append Face Admit Ok p-3", "signal Admit", "wake"],
            ),
        ],
    );
    check(
        "an unknown face is denied (face hard, the default), once while it stays",
        "",
        true,
        &[
            (0, Face(Look::Settled(None)), &["measure"]),
            (
                1,
                Measured(None),
                &["append Face Deny FaceUnknown -", "signal Deny", "wake"],
            ),
            (1_000, Face(Look::Settled(None)), &[]),
        ],
    );
    check(
        "an unknown face with face soft is admitted, flagged, and names nobody",
        "face = \"soft\"",
        true,
        &[
            (0, Face(Look::Settled(None)), &["measure"]),
            (
                1,
                Measured(None),
                &[
                    "append Face Admit Ok - +FaceUnknown",
                    "signal Admit",
                    "wake",
                ],
            ),
        ],
    );
    check(
        "a face does not get stale-trust flags (trust concerns pass codes)",
        "trust_stale = \"hard\"",
        true,
        &[
            (0, Face(someone("p-2")), &["measure"]),
            (
                1,
                Measured(None),
                &["append Face Admit Ok p-2", "signal Admit", "wake"],
            ),
        ],
    );
    check(
        "without face recognition, a frame's end asks nothing and a face is ignored",
        "",
        false,
        &[(0, End, &[]), (1, Face(someone("p-2")), &[])],
    );
}

#[test]
fn code_over_face() {
    check(
        "a code in view takes precedence: the face stage is reset, not asked, for the cooldown",
        "",
        true,
        &[
            (0, Codes(&["p-1"]), &["measure"]),
            (1, Measured(None), &ADMIT),
            (2, End, &["reset face"]),
            (2_999, End, &["reset face"]),
            (3_000, Tick, &[]),
            (3_000, End, &["look"]),
        ],
    );
    check(
        "a code located but not read also holds the face stage back",
        "",
        true,
        &[
            (0, Located, &[]),
            (1, End, &["reset face"]),
            (1_500, Located, &[]),
            (4_499, End, &["reset face"]),
            (4_500, End, &["look"]),
        ],
    );
    check(
        "a code still in view (debounced) keeps holding the face stage back",
        "",
        true,
        &[
            (0, Codes(&["p-1"]), &["measure"]),
            (1, Measured(None), &ADMIT),
            (2_500, Codes(&["p-1"]), &[]),
            (5_000, End, &["reset face"]),
            (5_500, End, &["look"]),
        ],
    );
    check(
        "a face and a code in the same frame: the code's attempt, then no face",
        "",
        true,
        &[
            (0, Codes(&["p-1"]), &["measure"]),
            (1, Measured(None), &ADMIT),
            (1, End, &["reset face"]),
        ],
    );
}

#[test]
fn the_event_carries_the_box_and_the_measurement() {
    let w = World::new();
    let mut core = DoorCore::new(setup("temperature = \"soft\"", false));
    let at = OffsetDateTime::from_unix_timestamp(T0).unwrap();
    let effects = core.handle(
        Input::Codes {
            payloads: vec![w.code("p-1")],
            located: false,
            captured: w.captured,
            trust: &w.trust,
            trust_stale: false,
        },
        at,
    );
    assert_eq!(effects, vec![Effect::Measure]);
    assert_eq!(core.waiting(), 1);
    let id = Uuid::from_u128(42);
    let later = at + time::Duration::milliseconds(20);
    let effects = core.handle(
        Input::Measured(Measurement {
            temperature_c: Some(36.4),
            clock_synced: false,
            id,
        }),
        later,
    );
    let Some(Effect::Append { event, captured }) = effects.first() else {
        panic!("{effects:?}");
    };
    assert_eq!(*captured, w.captured);
    assert_eq!(event.id, id);
    assert_eq!(event.seq, 0, "the outbox numbers it");
    assert_eq!(event.ts, later, "decided when measured");
    assert!(!event.clock_synced);
    assert_eq!(event.temperature_c, Some(36.4));
    assert_eq!(event.box_id.as_str(), "box-1");
    assert_eq!(event.checkpoint.as_str(), "gate-a");
    assert_eq!(event.direction, Direction::In);
    assert_eq!(event.pass_status, Some(PassStatus::Green));
    assert_eq!(core.waiting(), 0);
}

#[test]
fn ticks_forget_what_has_outlived_its_window() {
    let w = World::new();
    let mut core = DoorCore::new(setup("anti_passback_window = \"60s\"", true));
    let at = |ms: i64| {
        OffsetDateTime::from_unix_timestamp(T0).unwrap() + time::Duration::milliseconds(ms)
    };
    core.handle(
        Input::Codes {
            payloads: vec![w.code("p-1")],
            located: false,
            captured: w.captured,
            trust: &w.trust,
            trust_stale: false,
        },
        at(0),
    );
    core.handle(
        Input::Measured(Measurement {
            temperature_c: None,
            clock_synced: true,
            id: Uuid::nil(),
        }),
        at(1),
    );
    core.handle(
        Input::Face {
            look: Look::Settled(None),
            captured: w.captured,
        },
        at(2),
    );
    // The code, the unknown face, p-1's admit.
    assert_eq!(core.remembered(), 3);
    core.handle(Input::Tick, at(2_000));
    assert_eq!(core.remembered(), 3);
    core.handle(Input::Tick, at(10_000));
    assert_eq!(core.remembered(), 1, "the code and the face are forgotten");
    core.handle(Input::Tick, at(61_000));
    assert_eq!(core.remembered(), 0, "and the admit after the window");
}
