use checkpoint_protocol::passcode::KeyId;
use Decision::{Admit, Deny};

use super::*;
use crate::config::DaemonConfig;

fn policy(edit: &str) -> PolicyConfig {
    // The base policy for these cases; `edit` lines replace base lines with the same key.
    let mut lines = vec![
        "temperature = \"hard\"",
        "anti_passback_window = \"600s\"",
        "anti_passback = \"hard\"",
    ];
    for e in edit.lines() {
        let key = e.split('=').next().unwrap_or_default().trim();
        lines.retain(|l| !l.starts_with(&format!("{key} ")));
        lines.push(e);
    }
    let policy = lines.join("\n");
    let text = format!(
        r#"
state_dir = "/x"
[identity]
site = "s"
box_id = "b"
checkpoint = "c"
direction = "in"
[camera]
kind = "sim"
dir = "/f"
[thermometer]
kind = "sim"
readings = [36.6]
[gate]
kind = "sim"
[uplink]
host = "h"
port = 1
transport = {{ kind = "plain" }}
[policy]
{policy}
"#
    );
    match DaemonConfig::parse(&text) {
        Ok(c) => c.policy,
        Err(e) => panic!("{e:?}"),
    }
}

fn claims(status: PassStatus) -> PassClaims {
    PassClaims {
        kid: KeyId([1, 2, 3, 4]),
        status,
        issued_at: 1_000,
        expires_at: 2_000,
        subject: SubjectId::new("p-1").unwrap(),
        dependants: vec![SubjectId::new("kid-1").unwrap()],
    }
}

fn rejected(reason: RejectReason, with_claims: bool) -> Result<PassClaims, Rejection> {
    Err(Rejection {
        reason,
        detail: String::new(),
        claims: with_claims.then(|| claims(PassStatus::Green)),
    })
}

struct Case {
    name: &'static str,
    policy: &'static str,
    verification: Result<PassClaims, Rejection>,
    temperature: Option<f32>,
    last_admit: Option<i64>,
    trust_stale: bool,
    expect: (Decision, Reason, &'static [Flag]),
    subject: bool,
}

fn case(name: &'static str, verification: Result<PassClaims, Rejection>) -> Case {
    Case {
        name,
        policy: "",
        verification,
        temperature: Some(36.6),
        last_admit: None,
        trust_stale: false,
        expect: (Admit, Reason::Ok, &[]),
        subject: true,
    }
}

fn check(c: Case) {
    let p = policy(c.policy);
    let out = decide(
        &Inputs {
            credential: Credential::Pass(&c.verification),
            temperature_c: c.temperature,
            last_admit: c.last_admit,
            trust_stale: c.trust_stale,
            now: 1_500,
        },
        &p,
    );
    let got = (out.decision, out.reason, out.flags.as_slice());
    assert_eq!(got, c.expect, "{}", c.name);
    assert_eq!(out.subject.is_some(), c.subject, "{}: subject", c.name);
    assert_eq!(out.pass_status.is_some(), c.subject, "{}: status", c.name);
}

#[test]
fn decisions() {
    let ok = || Ok(claims(PassStatus::Green));
    let cases = vec![
        case("green pass, normal temperature", ok()),
        Case {
            expect: (Admit, Reason::Ok, &[]),
            temperature: Some(37.29),
            ..case("just under the threshold", ok())
        },
        Case {
            expect: (Deny, Reason::Fever, &[]),
            temperature: Some(37.3),
            ..case("at the threshold is fever", ok())
        },
        Case {
            policy: "temperature = \"soft\"",
            expect: (Admit, Reason::Ok, &[Flag::Fever]),
            temperature: Some(38.5),
            ..case("soft fever admits and flags", ok())
        },
        Case {
            expect: (Deny, Reason::NoTemperature, &[]),
            temperature: None,
            ..case("no reading", ok())
        },
        Case {
            expect: (Deny, Reason::NoTemperature, &[]),
            temperature: Some(22.0),
            ..case("implausibly cold is no reading", ok())
        },
        Case {
            expect: (Deny, Reason::NoTemperature, &[]),
            temperature: Some(f32::NAN),
            ..case("NaN is no reading", ok())
        },
        Case {
            policy: "temperature = \"off\"",
            temperature: None,
            ..case("temperature off", ok())
        },
        Case {
            expect: (Deny, Reason::StatusNotAllowed, &[]),
            ..case("yellow not admitted", Ok(claims(PassStatus::Yellow)))
        },
        Case {
            policy: "admit_statuses = [\"green\", \"yellow\"]",
            ..case("yellow admitted by policy", Ok(claims(PassStatus::Yellow)))
        },
        Case {
            expect: (Deny, Reason::Expired, &[]),
            ..case(
                "expired keeps the verified subject",
                rejected(RejectReason::Expired, true),
            )
        },
        Case {
            expect: (Deny, Reason::Revoked, &[]),
            ..case("revoked", rejected(RejectReason::Revoked, true))
        },
        Case {
            expect: (Deny, Reason::BadSignature, &[]),
            subject: false,
            ..case(
                "forged code names nobody",
                rejected(RejectReason::BadSignature, true),
            )
        },
        Case {
            expect: (Deny, Reason::UnknownKey, &[]),
            subject: false,
            ..case(
                "unknown key names nobody",
                rejected(RejectReason::UnknownKey, true),
            )
        },
        Case {
            expect: (Deny, Reason::NotAPassCode, &[]),
            subject: false,
            ..case("garbage", rejected(RejectReason::NotAPassCode, false))
        },
        Case {
            policy: "pass = \"soft\"",
            expect: (Admit, Reason::Ok, &[Flag::PassInvalid]),
            subject: false,
            ..case(
                "soft pass admits garbage, flagged",
                rejected(RejectReason::NotAPassCode, false),
            )
        },
        Case {
            expect: (Deny, Reason::Expired, &[]),
            temperature: Some(39.0),
            ..case(
                "first hard failure wins",
                rejected(RejectReason::Expired, true),
            )
        },
        Case {
            expect: (Deny, Reason::AntiPassback, &[]),
            last_admit: Some(1_000),
            ..case("entered 500 s ago", ok())
        },
        Case {
            last_admit: Some(800),
            ..case("entered 700 s ago, window 600", ok())
        },
        Case {
            policy: "anti_passback = \"soft\"",
            expect: (Admit, Reason::Ok, &[Flag::AntiPassback]),
            last_admit: Some(1_400),
            ..case("soft anti-passback", ok())
        },
        Case {
            expect: (Admit, Reason::Ok, &[Flag::TrustStale]),
            trust_stale: true,
            ..case("stale trust is soft by default", ok())
        },
        Case {
            policy: "trust_stale = \"hard\"",
            expect: (Deny, Reason::TrustStale, &[]),
            trust_stale: true,
            ..case("stale trust hard", ok())
        },
        Case {
            policy: "temperature = \"soft\"\nanti_passback = \"soft\"",
            expect: (
                Admit,
                Reason::Ok,
                &[Flag::AntiPassback, Flag::NoTemperature],
            ),
            last_admit: Some(1_400),
            temperature: None,
            ..case("several soft flags", ok())
        },
    ];
    for c in cases {
        check(c);
    }
}

#[test]
fn faces_name_only_who_the_matcher_settled_on() {
    let alice = SubjectId::new("alice").unwrap();
    let run = |credential, temperature_c, last_admit, p: &PolicyConfig| {
        let o = decide(
            &Inputs {
                credential,
                temperature_c,
                last_admit,
                trust_stale: true,
                now: 1_500,
            },
            p,
        );
        (o.decision, o.reason, o.flags, o.subject, o.pass_status)
    };
    let hard = policy("");
    let known = Credential::Face(Some(&alice));
    let who = Some(alice.clone());
    // Stale trust concerns pass codes only; a face carries no pass status.
    assert_eq!(
        run(known, Some(36.6), None, &hard),
        (Admit, Reason::Ok, vec![], who.clone(), None)
    );
    assert_eq!(
        run(known, Some(38.2), None, &hard),
        (Deny, Reason::Fever, vec![], who.clone(), None)
    );
    assert_eq!(
        run(known, Some(36.6), Some(1_400), &hard),
        (Deny, Reason::AntiPassback, vec![], who.clone(), None)
    );
    assert_eq!(
        run(Credential::Face(None), Some(36.6), None, &hard),
        (Deny, Reason::FaceUnknown, vec![], None, None)
    );
    let soft = policy("face = \"soft\"");
    assert_eq!(
        run(Credential::Face(None), Some(36.6), Some(1_400), &soft),
        (Admit, Reason::Ok, vec![Flag::FaceUnknown], None, None),
        "admitted and flagged, still nobody; anti-passback needs someone"
    );
}

#[test]
fn only_plausible_temperatures_are_recorded() {
    let p = policy("");
    let v = Ok(claims(PassStatus::Green));
    let out = |t| {
        decide(
            &Inputs {
                credential: Credential::Pass(&v),
                temperature_c: Some(t),
                last_admit: None,
                trust_stale: false,
                now: 0,
            },
            &p,
        )
        .temperature_c
    };
    assert_eq!(out(36.6), Some(36.6));
    assert_eq!(out(80.0), None);
    assert_eq!(out(-3.0), None);
}

#[test]
fn passback_forgets_outside_the_window() {
    let mut pb = Passback::default();
    let a = SubjectId::new("a").unwrap();
    let b = SubjectId::new("b").unwrap();
    pb.admitted(a.clone(), 100, 60);
    assert_eq!(pb.last_admit(&a), Some(100));
    pb.admitted(b.clone(), 200, 60);
    assert_eq!(pb.last_admit(&a), None);
    assert_eq!(pb.last_admit(&b), Some(200));
    pb.admitted(a.clone(), 300, 0);
    assert_eq!(pb.last_admit(&a), None, "window 0 is off");
}

#[test]
fn a_code_held_in_view_counts_once() {
    let mut d = Debounce::new(3000);
    assert!(d.fresh("A", 0));
    assert!(!d.fresh("A", 200));
    assert!(
        !d.fresh("A", 3100),
        "still in view: each sighting extends the cooldown"
    );
    assert!(d.fresh("B", 3150));
    assert!(
        d.fresh("A", 6200),
        "gone for longer than the cooldown: a new attempt"
    );
    let mut off = Debounce::new(0);
    assert!(off.fresh("A", 0));
    assert!(off.fresh("A", 1));
}
