//! Every ingest rule as rows: what happens (with its time), and the effects the core asks for,
//! written short (`write gate-1#1,gate-1#2`, `ack gate-1 1-2`, `seq gate-1 2 gaps 4-4`).
//!
//! Long on purpose: one table per ingest rule.

use std::collections::BTreeSet;

use checkpoint_protocol::records::{BoxState, Status};

use super::*;
use crate::store::contract::ev;

const GRACE_S: u64 = 10;

fn setup(batch_max: usize, alerts: bool) -> Setup {
    Setup {
        batch_max,
        batch_wait: Duration::from_millis(100),
        gap_grace: Duration::from_secs(GRACE_S),
        alerts: alerts.then_some(Limits {
            fever_threshold_c: 37.3,
            temperature_to_person: false,
            backlog_events: 1000,
            trust_stale: Duration::from_secs(24 * 3600),
        }),
    }
}

/// One input, as a row names it.
enum In {
    /// An event from its own box; `Some` temperature makes it a reading.
    Event(&'static str, u64, Option<f32>),
    /// An event whose payload names another box than its topic.
    Claims(&'static str, &'static str, u64),
    /// Any topic and payload.
    Raw(&'static str, &'static [u8]),
    Online(&'static str),
    /// The write in flight: stored, with these outcomes in order (`n`ew, `d`uplicate, `c`onflict).
    Stored(&'static str),
    Refused,
    Lost(&'static str, u64, u64),
    Tick,
    Closing,
    /// Not an input: the counters now, as `received stored duplicates conflicts rejected
    /// store_failures gaps_lost`.
    Counters(&'static str),
}

fn payload(e: &Event) -> Vec<u8> {
    records::encode(e)
}

fn summary(e: &Effect) -> String {
    match e {
        Effect::Write(events) => {
            let ids: Vec<String> = events
                .iter()
                .map(|e| format!("{}#{}", e.box_id, e.seq))
                .collect();
            format!("write {}", ids.join(","))
        }
        Effect::AwaitWrite => "await".into(),
        Effect::Ack(a) => {
            let r: Vec<String> = a
                .ranges
                .iter()
                .map(|r| format!("{}-{}", r.first, r.last))
                .collect();
            format!("ack {} {}", a.box_id, r.join(","))
        }
        Effect::Alert(r) => format!("alert {}#{}", r.box_id, r.seq),
        Effect::MarkLost {
            box_id,
            first,
            last,
        } => format!("lost {box_id} {first}-{last}"),
        Effect::Pause(d) => format!("pause {}s", d.as_secs()),
        Effect::Status(s) => format!("status {} {:?}", s.box_id, s.state),
        Effect::Telemetry(t) => format!("telemetry {}", t.box_id),
        Effect::Sequence(b, st) => {
            let mut s = format!("seq {b} {}", st.contiguous);
            let gaps: Vec<String> = st.gaps().iter().map(|(a, z)| format!("{a}-{z}")).collect();
            if !gaps.is_empty() {
                s += &format!(" gaps {}", gaps.join(","));
            }
            let lost: Vec<String> = st.lost.iter().map(|(a, z)| format!("{a}-{z}")).collect();
            if !lost.is_empty() {
                s += &format!(" lost {}", lost.join(","));
            }
            s
        }
    }
}

/// Feeds the rows in order (times in ms from the start) and compares each row's effects.
fn check(name: &str, setup: Setup, states: Vec<(BoxId, SeqState)>, rows: &[(u64, In, &[&str])]) {
    let counters = Arc::new(Mutex::new(Counters::default()));
    let mut core = Core::new(setup, states, counters.clone());
    let mut known: BTreeSet<BoxId> = ["gate-1", "gate-2"]
        .iter()
        .map(|b| b.parse().unwrap())
        .collect();
    let t0 = Instant::now();
    core.start();
    for (i, (at, input, expected)) in rows.iter().enumerate() {
        let now = t0 + Duration::from_millis(*at);
        let owned: (String, Vec<u8>);
        let input = match input {
            In::Event(b, seq, temp) => {
                let mut e = ev(b, *seq, Some("s-1"), "lib", *seq as i64);
                e.temperature_c = *temp;
                owned = (format!("checkpoint/v1/box/{b}/event"), payload(&e));
                Input::Message {
                    topic: &owned.0,
                    payload: &owned.1,
                }
            }
            In::Claims(topic_box, payload_box, seq) => {
                let e = ev(payload_box, *seq, Some("s-1"), "lib", 0);
                owned = (format!("checkpoint/v1/box/{topic_box}/event"), payload(&e));
                Input::Message {
                    topic: &owned.0,
                    payload: &owned.1,
                }
            }
            In::Raw(topic, bytes) => Input::Message {
                topic,
                payload: bytes,
            },
            In::Online(b) => {
                let s = Status {
                    schema: records::Schema,
                    box_id: b.parse().unwrap(),
                    state: BoxState::Online,
                    version: Some("1.0.0".into()),
                };
                owned = (format!("checkpoint/v1/box/{b}/status"), records::encode(&s));
                Input::Message {
                    topic: &owned.0,
                    payload: &owned.1,
                }
            }
            In::Stored(outcomes) => Input::Written(Ok(outcomes
                .chars()
                .map(|c| match c {
                    'n' => Inserted::New,
                    'd' => Inserted::Duplicate,
                    _ => Inserted::Conflict,
                })
                .collect())),
            In::Refused => Input::Written(Err("disk full".into())),
            In::Lost(b, first, last) => {
                // What the store answers when the box's next event follows the gap.
                let st = SeqState {
                    contiguous: *last + 1,
                    above: BTreeSet::new(),
                    lost: vec![(*first, *last)],
                };
                Input::Lost {
                    box_id: b.parse().unwrap(),
                    first: *first,
                    last: *last,
                    state: Ok(st),
                }
            }
            In::Tick => Input::Tick,
            In::Closing => Input::Closing,
            In::Counters(want) => {
                let c = counters.lock().unwrap().clone();
                let got = format!(
                    "{} {} {} {} {} {} {}",
                    c.received,
                    c.stored,
                    c.duplicates,
                    c.conflicts,
                    c.rejected.values().sum::<u64>(),
                    c.store_failures,
                    c.gaps_lost
                );
                assert_eq!(&got, want, "{name}, row {i}: counters");
                continue;
            }
        };
        let got: Vec<String> = core
            .handle(input, now, &mut known)
            .iter()
            .map(summary)
            .collect();
        assert_eq!(got, *expected, "{name}, row {i} (at {at} ms)");
    }
}

#[test]
fn a_full_batch_is_written_and_acked_per_box_in_ranges() {
    check(
        "full batch",
        setup(3, false),
        vec![],
        &[
            (0, In::Event("gate-1", 1, None), &[]),
            (1, In::Event("gate-2", 7, None), &[]),
            (
                2,
                In::Event("gate-1", 2, None),
                &["write gate-1#1,gate-2#7,gate-1#2"],
            ),
            (
                3,
                In::Stored("nnn"),
                &[
                    "ack gate-1 1-2",
                    "ack gate-2 7-7",
                    "seq gate-1 2",
                    "seq gate-2 0 gaps 1-6",
                ],
            ),
            (4, In::Counters("3 3 0 0 0 0 0"), &[]),
        ],
    );
}

#[test]
fn a_batch_waits_for_its_first_events_time_then_goes() {
    check(
        "batch wait",
        setup(100, false),
        vec![],
        &[
            (0, In::Event("gate-1", 1, None), &[]),
            (50, In::Tick, &[]),
            (99, In::Tick, &[]),
            (100, In::Tick, &["write gate-1#1"]),
            // Nothing more to write; a tick with an empty batch does nothing.
            (150, In::Tick, &[]),
            (160, In::Stored("n"), &["ack gate-1 1-1", "seq gate-1 1"]),
        ],
    );
}

#[test]
fn one_write_at_a_time_and_a_full_batch_waits_for_it() {
    check(
        "one write",
        setup(2, false),
        vec![],
        &[
            (0, In::Event("gate-1", 1, None), &[]),
            (
                1,
                In::Event("gate-1", 2, None),
                &["write gate-1#1,gate-1#2"],
            ),
            (2, In::Event("gate-1", 3, None), &[]),
            (200, In::Tick, &[]),
            (201, In::Event("gate-1", 4, None), &["await"]),
            // The write's result, then the next batch at once (it is full).
            (
                202,
                In::Stored("nn"),
                &["ack gate-1 1-2", "seq gate-1 2", "write gate-1#3,gate-1#4"],
            ),
        ],
    );
}

#[test]
fn a_refused_batch_is_not_acked_and_ingest_pauses() {
    check(
        "refused",
        setup(1, true),
        vec![],
        &[
            (0, In::Event("gate-1", 1, Some(38.5)), &["write gate-1#1"]),
            (1, In::Refused, &["pause 2s"]),
            (2, In::Counters("1 0 0 0 0 1 0"), &[]),
            // The box resends; this time the store takes it.
            (3, In::Event("gate-1", 1, Some(38.5)), &["write gate-1#1"]),
            (
                4,
                In::Stored("n"),
                &["ack gate-1 1-1", "alert gate-1#1", "seq gate-1 1"],
            ),
        ],
    );
}

#[test]
fn duplicates_and_conflicts_are_acked_but_only_new_readings_alert() {
    check(
        "duplicates",
        setup(3, true),
        vec![],
        &[
            (0, In::Event("gate-1", 1, Some(38.5)), &[]),
            (1, In::Event("gate-1", 2, Some(38.6)), &[]),
            (
                2,
                In::Event("gate-1", 3, None),
                &["write gate-1#1,gate-1#2,gate-1#3"],
            ),
            // Readings go after the acks; no reading without a temperature.
            (
                3,
                In::Stored("dnc"),
                &["ack gate-1 1-3", "alert gate-1#2", "seq gate-1 0 gaps 1-1"],
            ),
            (4, In::Counters("3 1 1 1 0 0 0"), &[]),
        ],
    );
    check(
        "no alert engine",
        setup(1, false),
        vec![],
        &[
            (0, In::Event("gate-1", 1, Some(39.0)), &["write gate-1#1"]),
            (1, In::Stored("n"), &["ack gate-1 1-1", "seq gate-1 1"]),
        ],
    );
}

#[test]
fn bad_messages_are_counted_and_change_nothing() {
    check(
        "rejections",
        setup(1, false),
        vec![],
        &[
            (
                0,
                In::Raw("checkpoint/v1/box/gate-1/event", b"{not json"),
                &[],
            ),
            (
                1,
                In::Raw("checkpoint/v1/box/gate-1/event", &[0xff; 70_000]),
                &[],
            ),
            (2, In::Raw("checkpoint/v1/elsewhere", b"{}"), &[]),
            (3, In::Claims("gate-1", "gate-2", 1), &[]),
            // A box without a current certificate.
            (4, In::Event("gate-9", 1, None), &[]),
            (5, In::Raw("checkpoint/v1/box/gate-1/ack", b"{}"), &[]),
            (6, In::Counters("6 0 0 0 6 0 0"), &[]),
            (7, In::Tick, &[]),
        ],
    );
}

#[test]
fn status_goes_to_the_registry_and_is_never_batched() {
    check(
        "status",
        setup(1, false),
        vec![],
        &[
            (0, In::Online("gate-2"), &["status gate-2 Online"]),
            (1, In::Claims("gate-2", "gate-1", 3), &[]),
            (2, In::Counters("2 0 0 0 1 0 0"), &[]),
        ],
    );
}

#[test]
fn a_gap_older_than_the_grace_period_is_recorded_as_lost() {
    let g = GRACE_S * 1000;
    check(
        "gaps",
        setup(3, false),
        vec![],
        &[
            (0, In::Event("gate-1", 1, None), &[]),
            (0, In::Event("gate-1", 2, None), &[]),
            (
                0,
                In::Event("gate-1", 5, None),
                &["write gate-1#1,gate-1#2,gate-1#5"],
            ),
            (
                1,
                In::Stored("nnn"),
                &["ack gate-1 1-2,5-5", "seq gate-1 2 gaps 3-4"],
            ),
            // First seen at this check; checks run every 5 s.
            (2, In::Tick, &[]),
            (g - 1, In::Tick, &[]),
            (g + 5_000, In::Tick, &["lost gate-1 3-4"]),
            (
                g + 5_001,
                In::Lost("gate-1", 3, 4),
                &["seq gate-1 5 lost 3-4"],
            ),
            (g + 5_002, In::Counters("3 3 0 0 0 0 2"), &[]),
            // Nothing left to give up on.
            (2 * g + 10_000, In::Tick, &[]),
        ],
    );
}

#[test]
fn a_gap_that_fills_within_the_grace_period_is_not_lost() {
    let g = GRACE_S * 1000;
    check(
        "gap filled",
        setup(1, false),
        vec![],
        &[
            (0, In::Event("gate-1", 2, None), &["write gate-1#2"]),
            (
                1,
                In::Stored("n"),
                &["ack gate-1 2-2", "seq gate-1 0 gaps 1-1"],
            ),
            (2, In::Tick, &[]),
            (g / 2, In::Event("gate-1", 1, None), &["write gate-1#1"]),
            (
                g / 2 + 1,
                In::Stored("n"),
                &["ack gate-1 1-1", "seq gate-1 2"],
            ),
            (2 * g, In::Tick, &[]),
        ],
    );
}

#[test]
fn closing_stores_what_is_batched_after_the_write_in_flight() {
    check(
        "closing",
        setup(2, false),
        vec![],
        &[
            (0, In::Event("gate-1", 1, None), &[]),
            (
                1,
                In::Event("gate-1", 2, None),
                &["write gate-1#1,gate-1#2"],
            ),
            (2, In::Event("gate-1", 3, None), &[]),
            (3, In::Closing, &["await"]),
            (4, In::Stored("nn"), &["ack gate-1 1-2", "seq gate-1 2"]),
            (5, In::Closing, &["write gate-1#3"]),
            (6, In::Stored("n"), &["ack gate-1 3-3", "seq gate-1 3"]),
            (7, In::Closing, &[]),
        ],
    );
}

#[test]
fn the_boxes_the_store_knows_are_reported_at_start() {
    let mut st = SeqState::default();
    for s in [1, 2, 4] {
        st.add(s);
    }
    let mut core = Core::new(
        setup(1, false),
        vec![
            ("gate-2".parse().unwrap(), st),
            ("gate-1".parse().unwrap(), SeqState::default()),
        ],
        Arc::new(Mutex::new(Counters::default())),
    );
    let got: Vec<String> = core.start().iter().map(summary).collect();
    assert_eq!(got, ["seq gate-1 0", "seq gate-2 2 gaps 3-3"]);
    assert!(core.start().is_empty(), "reported once");
}

#[test]
fn a_result_with_no_write_in_flight_is_ignored() {
    check(
        "stray result",
        setup(5, false),
        vec![],
        &[
            (0, In::Stored("n"), &[]),
            (1, In::Refused, &[]),
            (2, In::Closing, &[]),
        ],
    );
}
