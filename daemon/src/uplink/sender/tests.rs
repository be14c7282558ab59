use super::*;
use crate::outbox::WhenFull;

fn outbox(dir: &std::path::Path, n: u64) -> Outbox {
    let ob = Outbox::open(dir, 1 << 20, WhenFull::RefuseNew, 1 << 20).unwrap();
    for _ in 0..n {
        ob.append(0, |s| format!("e{s}").into_bytes()).unwrap();
    }
    ob
}

fn pump(s: &mut Sender, ob: &Outbox, now: Instant) -> Vec<u64> {
    let mut sent = Vec::new();
    super::pump(s, ob, now, &mut |seq, rec| {
        assert_eq!(rec, format!("e{seq}").into_bytes());
        sent.push(seq);
        true
    })
    .unwrap();
    sent
}

#[test]
fn live_goes_first_and_backlog_drains_at_the_rate() {
    let dir = tempfile::tempdir().unwrap();
    let ob = outbox(dir.path(), 30);
    let t0 = Instant::now();
    let mut s = Sender::new(10, Duration::from_secs(60), t0);
    s.connected(30, t0);
    assert_eq!(pump(&mut s, &ob, t0), vec![1], "one token to start");
    ob.append(0, |s| format!("e{s}").into_bytes()).unwrap();
    ob.append(0, |s| format!("e{s}").into_bytes()).unwrap();
    let sent = pump(&mut s, &ob, t0 + Duration::from_millis(500));
    assert_eq!(
        sent,
        vec![31, 32, 2, 3, 4, 5, 6],
        "live first, then 5 tokens of backlog"
    );
    // A long pause refills only one second's worth.
    let sent = pump(&mut s, &ob, t0 + Duration::from_secs(30));
    assert_eq!(sent, (7..=16).collect::<Vec<_>>());
    assert!(s.backlog_pending());
    assert_eq!(s.inflight(), 18);
}

#[test]
fn unacked_events_are_resent_and_acked_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let ob = outbox(dir.path(), 0);
    let t0 = Instant::now();
    let mut s = Sender::new(100, Duration::from_secs(10), t0);
    s.connected(0, t0);
    for _ in 0..3 {
        ob.append(0, |s| format!("e{s}").into_bytes()).unwrap();
    }
    assert_eq!(pump(&mut s, &ob, t0), vec![1, 2, 3]);
    assert!(pump(&mut s, &ob, t0 + Duration::from_secs(5)).is_empty());
    ob.ack(&[(2, 2)]).unwrap();
    s.acked(&[(2, 2)]);
    assert_eq!(pump(&mut s, &ob, t0 + Duration::from_secs(10)), vec![1, 3]);
    // Acked in the outbox but the ack message raced: the resend finds nothing and forgets.
    ob.ack(&[(1, 1)]).unwrap();
    assert_eq!(pump(&mut s, &ob, t0 + Duration::from_secs(20)), vec![3]);
    assert_eq!(s.inflight(), 1);
}

#[test]
fn a_full_client_keeps_the_event_for_later() {
    let dir = tempfile::tempdir().unwrap();
    let ob = outbox(dir.path(), 0);
    let t0 = Instant::now();
    let mut s = Sender::new(100, Duration::from_secs(10), t0);
    s.connected(0, t0);
    ob.append(0, |s| format!("e{s}").into_bytes()).unwrap();
    let mut refused = 0;
    super::pump(&mut s, &ob, t0, &mut |_, _| {
        refused += 1;
        false
    })
    .unwrap();
    assert_eq!(refused, 1);
    assert_eq!(pump(&mut s, &ob, t0), vec![1]);
}

#[test]
fn reconnect_turns_everything_unacked_into_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let ob = outbox(dir.path(), 3);
    let t0 = Instant::now();
    let mut s = Sender::new(100, Duration::from_secs(10), t0);
    s.connected(3, t0);
    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(pump(&mut s, &ob, t1), vec![1, 2, 3]);
    s.connected(3, t1);
    assert_eq!(
        pump(&mut s, &ob, t1 + Duration::from_secs(1)),
        vec![1, 2, 3]
    );
}

#[test]
fn only_acks_for_sent_events_pass() {
    let dir = tempfile::tempdir().unwrap();
    let ob = outbox(dir.path(), 10);
    let t0 = Instant::now();
    let mut s = Sender::new(3, Duration::from_secs(60), t0);
    s.connected(10, t0);
    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(pump(&mut s, &ob, t1), vec![1, 2, 3]);
    // A forged ack for everything: only what was published passes.
    assert_eq!(s.acked(&[(1, 29)]), vec![(1, 3)]);
    assert_eq!(s.acked(&[(1, 3)]), vec![], "already taken");
    assert_eq!(s.inflight(), 0);
    // Sent in an earlier connection still counts as sent.
    let t2 = t1 + Duration::from_secs(1);
    assert_eq!(pump(&mut s, &ob, t2), vec![4, 5, 6]);
    s.connected(10, t2);
    assert_eq!(
        s.acked(&[(5, 5), (8, 9), (u64::MAX, u64::MAX)]),
        vec![(5, 5)]
    );
}

#[test]
fn the_sender_asks_and_is_offered_rows() {
    let t0 = Instant::now();
    let mut s = Sender::new(2, Duration::from_secs(10), t0);
    s.connected(5, t0);
    let rows = |seqs: &[u64]| -> Vec<(u64, Option<Vec<u8>>)> {
        seqs.iter().map(|s| (*s, Some(vec![*s as u8]))).collect()
    };
    s.begin(t0);
    assert_eq!(
        s.want(t0),
        Some(Want::Live {
            from: 6,
            max: BATCH
        })
    );
    assert_eq!(s.offer(vec![]), vec![], "nothing live");
    assert_eq!(s.want(t0), Some(Want::Backlog { from: 0, max: 1 }));
    // Rows outside what was asked (live ones here) are not backlog.
    assert_eq!(s.offer(rows(&[1, 6])), vec![(1, vec![1])]);
    s.published(1, t0);
    assert_eq!(s.want(t0), None, "the budget is spent");
    assert_eq!(s.pumped().backlog, 1);

    // Ten seconds on: the unacknowledged event is due again, within the refilled budget.
    let t1 = t0 + Duration::from_secs(10);
    s.begin(t1);
    assert_eq!(
        s.want(t1),
        Some(Want::Live {
            from: 6,
            max: BATCH
        })
    );
    assert_eq!(s.offer(rows(&[6])), vec![(6, vec![6])]);
    s.published(6, t1);
    assert_eq!(
        s.want(t1),
        Some(Want::Live {
            from: 7,
            max: BATCH
        })
    );
    assert_eq!(s.offer(vec![]), vec![]);
    assert_eq!(s.want(t1), Some(Want::Resend(vec![1])));
    // Acknowledged meanwhile: forgotten, not published.
    assert_eq!(s.offer(vec![(1, None)]), vec![]);
    assert_eq!(s.inflight(), 1);
    assert_eq!(s.want(t1), Some(Want::Backlog { from: 2, max: 2 }));
    assert_eq!(s.offer(rows(&[2, 3])), vec![(2, vec![2]), (3, vec![3])]);
    // The client took the first only: the second is asked for again next time.
    s.published(2, t1);
    s.begin(t1 + Duration::from_secs(1));
    let t2 = t1 + Duration::from_secs(1);
    assert_eq!(
        s.want(t2),
        Some(Want::Live {
            from: 7,
            max: BATCH
        })
    );
    s.offer(vec![]);
    assert_eq!(s.want(t2), Some(Want::Backlog { from: 3, max: 2 }));
    assert_eq!(s.pumped(), Pumped::default());
}

#[test]
fn an_offer_without_a_want_publishes_nothing() {
    let t0 = Instant::now();
    let mut s = Sender::new(10, Duration::from_secs(10), t0);
    s.connected(0, t0);
    s.begin(t0);
    assert_eq!(s.offer(vec![(1, Some(vec![1]))]), vec![]);
    s.published(1, t0);
    assert_eq!(s.inflight(), 0);
}

#[test]
fn the_sent_set_keeps_disjoint_ranges() {
    let mut set = Sent::default();
    for seq in [5, 1, 2, 3, 7, 6, 10, u64::MAX, u64::MAX - 1] {
        set.insert(seq);
    }
    let ranges: Vec<(u64, u64)> = set.0.iter().map(|(f, l)| (*f, *l)).collect();
    assert_eq!(ranges, [(1, 3), (5, 7), (10, 10), (u64::MAX - 1, u64::MAX)]);
    assert!(set.contains(6) && !set.contains(4) && !set.contains(11));
    assert_eq!(set.take(2, 6), vec![(2, 3), (5, 6)]);
    let ranges: Vec<(u64, u64)> = set.0.iter().map(|(f, l)| (*f, *l)).collect();
    assert_eq!(ranges, [(1, 1), (7, 7), (10, 10), (u64::MAX - 1, u64::MAX)]);
    assert_eq!(set.take(u64::MAX, u64::MAX), vec![(u64::MAX, u64::MAX)]);
    assert_eq!(set.take(9, 1), vec![], "an empty range");
}
