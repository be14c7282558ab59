use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;

/// Opens, retrying briefly: a dropped sled `Db` releases its file lock only when its background
/// flusher thread has exited, so an immediate reopen in the same process can find it still held.
fn open(dir: &Path, max: u64, when_full: WhenFull) -> Outbox {
    let mut tries = 0;
    loop {
        match Outbox::open(dir, max, when_full, 1024 * 1024) {
            Ok(ob) => return ob,
            Err(OutboxError::Locked(_)) if tries < 200 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("open outbox: {e}"),
        }
    }
}

fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut p = format!("event-{seq}-").into_bytes();
    p.resize(len.max(p.len()), b'x');
    p
}

#[test]
fn sequence_numbers_survive_reopen_and_full_acks() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ob = open(dir.path(), 1 << 20, WhenFull::RefuseNew);
        for i in 1..=3 {
            assert_eq!(ob.append(1000, |s| payload(s, 10)).unwrap().seq, i);
        }
        assert_eq!(ob.ack(&[(1, 3)]).unwrap(), 3);
        assert_eq!(ob.stats().depth, 0);
    }
    let ob = open(dir.path(), 1 << 20, WhenFull::RefuseNew);
    assert_eq!(ob.stats().last_seq, 3);
    assert_eq!(ob.append(2000, |s| payload(s, 10)).unwrap().seq, 4);
    assert_eq!(ob.pending(0, 10).unwrap(), vec![(4, payload(4, 10))]);
    assert_eq!(ob.stats().oldest_appended_ms, Some(2000));
    assert_eq!(ob.get(4).unwrap(), Some(payload(4, 10)));
    assert_eq!(ob.get(3).unwrap(), None);
}

#[test]
fn full_outbox_refuses_or_drops_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    // Each stored value is 8 bytes of header plus 92 of payload: three fit in 300 bytes.
    let ob = open(&dir.path().join("refuse"), 300, WhenFull::RefuseNew);
    for _ in 0..3 {
        assert!(ob.append(0, |s| payload(s, 92)).unwrap().stored);
    }
    let refused = ob.append(0, |s| payload(s, 92)).unwrap();
    assert_eq!((refused.seq, refused.stored), (4, false));
    let st = ob.stats();
    assert!(st.full);
    assert_eq!((st.depth, st.dropped, st.last_seq), (3, 1, 4));
    ob.ack(&[(1, 2)]).unwrap();
    assert!(!ob.stats().full, "below 90 % again");

    let ob = open(&dir.path().join("drop"), 300, WhenFull::DropOldest);
    for _ in 0..3 {
        ob.append(0, |s| payload(s, 92)).unwrap();
    }
    let a = ob.append(0, |s| payload(s, 92)).unwrap();
    assert_eq!((a.seq, a.stored, a.dropped.as_slice()), (4, true, &[1][..]));
    let seqs: Vec<u64> = ob.pending(0, 10).unwrap().iter().map(|p| p.0).collect();
    assert_eq!(seqs, [2, 3, 4]);
    assert_eq!(ob.stats().dropped, 1);
    assert!(matches!(
        ob.append(0, |s| payload(s, 400)),
        Err(OutboxError::TooLarge(_))
    ));
}

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Ack(u64, u64),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (1usize..120).prop_map(Op::Append),
        3 => (0u64..40, 0u64..6).prop_map(|(a, n)| Op::Ack(a, a + n)),
        1 => Just(Op::Reopen),
    ]
}

/// The model: what the outbox must hold after any sequence of operations.
#[derive(Default)]
struct Model {
    events: VecDeque<(u64, Vec<u8>)>,
    last_seq: u64,
}

impl Model {
    fn bytes(&self) -> u64 {
        self.events
            .iter()
            .map(|(_, p)| (p.len() + HEADER) as u64)
            .sum()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn matches_an_in_memory_model(
        ops in proptest::collection::vec(op(), 1..60),
        drop_oldest in any::<bool>(),
    ) {
        let policy = if drop_oldest { WhenFull::DropOldest } else { WhenFull::RefuseNew };
        let max = 600;
        let dir = tempfile::tempdir().unwrap();
        let mut ob = open(dir.path(), max, policy);
        let mut m = Model::default();
        for op in ops {
            match op {
                Op::Append(len) => {
                    let a = ob.append(7, |s| payload(s, len)).unwrap();
                    m.last_seq += 1;
                    prop_assert_eq!(a.seq, m.last_seq);
                    let p = payload(a.seq, len);
                    let size = (p.len() + HEADER) as u64;
                    let mut dropped = Vec::new();
                    let fits = match policy {
                        WhenFull::RefuseNew => m.bytes() + size <= max,
                        WhenFull::DropOldest => {
                            while m.bytes() + size > max {
                                if let Some((s, _)) = m.events.pop_front() { dropped.push(s) }
                            }
                            true
                        }
                    };
                    prop_assert_eq!(a.stored, fits);
                    prop_assert_eq!(a.dropped, dropped);
                    if fits { m.events.push_back((a.seq, p)); }
                }
                Op::Ack(first, last) => {
                    let before = m.events.len();
                    m.events.retain(|(s, _)| !(first..=last).contains(s));
                    let n = ob.ack(&[(first, last)]).unwrap();
                    prop_assert_eq!(n, (before - m.events.len()) as u64);
                }
                Op::Reopen => {
                    drop(ob);
                    ob = open(dir.path(), max, policy);
                }
            }
            let got = ob.pending(0, usize::MAX).unwrap();
            prop_assert_eq!(&got, &m.events.iter().cloned().collect::<Vec<_>>());
            let st = ob.stats();
            prop_assert_eq!(st.last_seq, m.last_seq);
            prop_assert_eq!(st.depth, m.events.len() as u64);
            prop_assert_eq!(st.bytes, m.bytes());
            prop_assert!(st.bytes <= max);
        }
    }
}

#[test]
fn an_outbox_in_use_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(dir.path(), 1 << 20, WhenFull::RefuseNew);
    match Outbox::open(dir.path(), 1 << 20, WhenFull::RefuseNew, 1 << 20) {
        Err(e @ OutboxError::Locked(_)) => {
            assert!(e.to_string().contains("already running"), "{e}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened twice"),
    }
}
