use checkpoint_protocol::ids::SubjectId;
use checkpoint_protocol::passcode::PassStatus;
use checkpoint_protocol::records::{Decision, Direction, Method, Reason, Schema};

use super::*;

fn limits() -> Limits {
    Limits {
        fever_threshold_c: 37.3,
        temperature_to_person: true,
        backlog_events: 100,
        trust_stale: std::time::Duration::from_secs(72 * 3600),
    }
}

fn ev(who: Option<&str>, t: Option<f32>) -> Event {
    Event {
        schema: Schema,
        id: uuid::Uuid::new_v4(),
        seq: 1,
        site: "s".parse().unwrap(),
        box_id: "gate-1".parse().unwrap(),
        checkpoint: "lib".parse().unwrap(),
        direction: Direction::In,
        method: Method::Qr,
        subject: who.map(|w| SubjectId::new(w).unwrap()),
        dependants: vec![],
        pass_status: Some(PassStatus::Green),
        decision: Decision::Admit,
        reason: Reason::Ok,
        flags: vec![],
        temperature_c: t,
        ts: time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
        clock_synced: true,
    }
}

fn kinds(v: &[Alert]) -> Vec<(AlertKind, bool)> {
    v.iter().map(|a| (a.kind, a.raised)).collect()
}

#[test]
fn readings_notify_the_person_and_a_fever_is_an_incident_at_the_threshold() {
    let r = Rules::new(limits(), vec![]);
    assert!(r.on_event(&ev(Some("a"), None)).is_empty());
    assert_eq!(
        kinds(&r.on_event(&ev(Some("a"), Some(36.6)))),
        [(AlertKind::Temperature, true)]
    );
    let fever = r.on_event(&ev(Some("a"), Some(37.3)));
    assert_eq!(
        kinds(&fever),
        [(AlertKind::Temperature, true), (AlertKind::Fever, true)]
    );
    assert_eq!(fever[1].value, Some(f64::from(37.3f32)));
    assert_eq!(fever[1].subject.as_deref(), Some("a"));
    // An unknown face with a fever: no one to tell it to, but still an incident.
    assert_eq!(
        kinds(&r.on_event(&ev(None, Some(38.5)))),
        [(AlertKind::Fever, true)]
    );
    let quiet = Rules::new(
        Limits {
            temperature_to_person: false,
            ..limits()
        },
        vec![],
    );
    assert!(quiet.on_event(&ev(Some("a"), Some(36.6))).is_empty());
}

#[test]
fn crowding_is_raised_once_and_resolved_below_ninety_percent() {
    let mut r = Rules::new(limits(), vec![]);
    assert_eq!(
        r.on_occupancy("lib", 5, None, 0),
        None,
        "no capacity, no alert"
    );
    assert_eq!(r.on_occupancy("lib", 9, Some(10), 0), None);
    let up = r.on_occupancy("lib", 10, Some(10), 1).unwrap();
    assert!(up.raised && up.key == "crowding:lib");
    assert_eq!(r.on_occupancy("lib", 12, Some(10), 2), None, "raised once");
    assert_eq!(
        r.on_occupancy("lib", 9, Some(10), 3),
        None,
        "90 % is still crowded"
    );
    let down = r.on_occupancy("lib", 8, Some(10), 4).unwrap();
    assert!(!down.raised);
    assert_eq!(r.active().count(), 0);
}

#[test]
fn box_health_conditions_raise_once_resolve_once_and_survive_a_restart() {
    let mut r = Rules::new(limits(), vec![]);
    let healthy = BoxHealth {
        box_id: "gate-1".into(),
        online: true,
        backlog: Some(3),
        trust_age_s: Some(3600),
        lost: 0,
    };
    assert!(r.on_boxes(std::slice::from_ref(&healthy), 0).is_empty());
    let sick = BoxHealth {
        online: false,
        backlog: Some(500),
        trust_age_s: Some(100 * 3600),
        lost: 4,
        ..healthy.clone()
    };
    let raised = r.on_boxes(std::slice::from_ref(&sick), 1);
    assert_eq!(
        kinds(&raised),
        [
            (AlertKind::BoxOffline, true),
            (AlertKind::Backlog, true),
            (AlertKind::TrustStale, true),
            (AlertKind::SequenceGap, true)
        ]
    );
    assert!(
        r.on_boxes(std::slice::from_ref(&sick), 2).is_empty(),
        "once"
    );
    // A restart with the active set kept raises nothing again.
    let mut again = Rules::new(limits(), r.active().cloned().collect());
    assert!(again.on_boxes(std::slice::from_ref(&sick), 3).is_empty());
    // Backlog hysteresis: 60 is still above half the limit.
    let draining = BoxHealth {
        online: true,
        backlog: Some(60),
        trust_age_s: Some(3600),
        ..sick.clone()
    };
    assert_eq!(
        kinds(&again.on_boxes(std::slice::from_ref(&draining), 4)),
        [
            (AlertKind::BoxOffline, false),
            (AlertKind::TrustStale, false)
        ]
    );
    let drained = BoxHealth {
        backlog: Some(10),
        lost: 6,
        ..draining
    };
    assert_eq!(
        kinds(&again.on_boxes(std::slice::from_ref(&drained), 5)),
        [(AlertKind::Backlog, false), (AlertKind::SequenceGap, true)],
        "more events lost: a new incident"
    );
}
