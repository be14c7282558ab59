//! Validation of each incoming message, and the rejections' counts and (throttled) log.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use checkpoint_link::sync::Recover;
use checkpoint_protocol::ids::BoxId;
use checkpoint_protocol::records::{self, Event, Status, Telemetry};
use checkpoint_protocol::topic::Topic;

use super::Counters;

/// Whether central takes messages from a box now (the PKI's current certificates, or a fixed
/// set in tests).
pub(super) trait Admits {
    fn allows(&mut self, id: &BoxId, now: Instant) -> bool;
}

impl Admits for BTreeSet<BoxId> {
    fn allows(&mut self, id: &BoxId, _now: Instant) -> bool {
        self.contains(id)
    }
}

/// A message that passed every check.
#[derive(Debug)]
pub(super) enum Accepted {
    Event(Event),
    Status(Status),
    Telemetry(Telemetry),
}

/// One warning per topic and reason per period, with how many were not logged: a box sending
/// garbage many times a second must not flood the journal. Every rejection is still counted.
#[derive(Debug)]
pub(super) struct LogThrottle {
    period: Duration,
    last: HashMap<(String, String), (Instant, u64)>,
}

impl LogThrottle {
    pub(super) fn new(period: Duration) -> Self {
        LogThrottle {
            period,
            last: HashMap::new(),
        }
    }

    /// `Some(suppressed since the last warning)` when this one should be logged.
    fn admit(&mut self, topic: &str, reason: &str, now: Instant) -> Option<u64> {
        if self.last.len() > 10_000 {
            // Bounded: garbage topics must not grow this without end.
            let period = self.period;
            self.last
                .retain(|_, (t, _)| now.duration_since(*t) < period);
        }
        match self.last.get_mut(&(topic.to_string(), reason.to_string())) {
            Some((t, n)) if now.duration_since(*t) < self.period => {
                *n += 1;
                None
            }
            Some((t, n)) => {
                let suppressed = *n;
                (*t, *n) = (now, 0);
                Some(suppressed)
            }
            None => {
                self.last
                    .insert((topic.to_string(), reason.to_string()), (now, 0));
                Some(0)
            }
        }
    }
}

/// The boxes central accepts messages from: those with a current certificate in the PKI
/// directory (`boxes/`, see [`checkpoint_pki::crl::registered`]), read again every few seconds so a
/// new box is accepted and a revoked one refused without a restart. Without a directory, every
/// box the broker lets in is accepted.
#[derive(Debug)]
pub struct KnownBoxes {
    dir: Option<PathBuf>,
    boxes: BTreeSet<BoxId>,
    scanned: Option<Instant>,
}

/// How long a scan of the PKI directory stands.
const RESCAN: Duration = Duration::from_secs(3);

impl KnownBoxes {
    pub fn new(dir: Option<PathBuf>) -> KnownBoxes {
        if dir.is_none() {
            tracing::warn!(message = "No PKI directory ([ingest] pki_dir): messages from any box the broker admits are accepted.");
        }
        KnownBoxes {
            dir,
            boxes: BTreeSet::new(),
            scanned: None,
        }
    }
}

impl Admits for KnownBoxes {
    fn allows(&mut self, id: &BoxId, now: Instant) -> bool {
        let Some(dir) = &self.dir else {
            return true;
        };
        let stale = self.scanned.is_none_or(|t| now.duration_since(t) >= RESCAN);
        if stale {
            match checkpoint_pki::crl::registered(dir) {
                Ok(b) => self.boxes = b,
                // Keep the last good list: a passing I/O error must not drop every event.
                Err(error) => {
                    tracing::error!(message = "Cannot read the registered boxes.", %error)
                }
            }
            self.scanned = Some(now);
        }
        self.boxes.contains(id)
    }
}

fn reject(
    counters: &Mutex<Counters>,
    log: &mut LogThrottle,
    topic: &str,
    reason: &str,
    detail: &dyn std::fmt::Display,
    now: Instant,
) {
    *counters
        .lock_or_recover()
        .rejected
        .entry(reason.to_string())
        .or_default() += 1;
    if let Some(suppressed) = log.admit(topic, reason, now) {
        tracing::warn!(message = "Message rejected.", topic, reason, %detail, suppressed);
    }
}

/// Validates one message; `None` when it was rejected (counted, and logged now and then).
pub(super) fn accept(
    topic_text: &str,
    payload: &[u8],
    known: &mut dyn Admits,
    counters: &Mutex<Counters>,
    log: &mut LogThrottle,
    now: Instant,
) -> Option<Accepted> {
    counters.lock_or_recover().received += 1;
    let topic = match Topic::parse(topic_text) {
        Ok(t) => t,
        Err(error) => {
            reject(counters, log, topic_text, "topic", &error, now);
            return None;
        }
    };
    let mut check_box = |payload_box: &BoxId, topic_box: &BoxId| {
        if payload_box != topic_box {
            let detail = format!("payload names box {payload_box}");
            reject(counters, log, topic_text, "box_mismatch", &detail, now);
            false
        } else if !known.allows(topic_box, now) {
            let detail = "no current certificate for this box in the PKI directory (never issued, or revoked)";
            reject(counters, log, topic_text, "unregistered_box", &detail, now);
            false
        } else {
            true
        }
    };
    match topic {
        Topic::Event(b) => match records::decode::<Event>(payload) {
            Ok(e) => check_box(&e.box_id, &b).then_some(Accepted::Event(e)),
            Err(error) => {
                reject(counters, log, topic_text, error.kind(), &error, now);
                None
            }
        },
        Topic::Status(b) => match records::decode::<Status>(payload) {
            Ok(s) => check_box(&s.box_id, &b).then_some(Accepted::Status(s)),
            Err(error) => {
                reject(counters, log, topic_text, error.kind(), &error, now);
                None
            }
        },
        Topic::Telemetry(b) => match records::decode::<Telemetry>(payload) {
            Ok(t) => check_box(&t.box_id, &b).then_some(Accepted::Telemetry(t)),
            Err(error) => {
                reject(counters, log, topic_text, error.kind(), &error, now);
                None
            }
        },
        other => {
            reject(
                counters,
                log,
                topic_text,
                "topic",
                &format!("central does not read {other}"),
                now,
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_boxes_with_a_current_certificate_are_known() {
        let dir = tempfile::tempdir().unwrap();
        let v = checkpoint_pki::Validity::days(2).unwrap();
        checkpoint_pki::init(dir.path(), "CA", v).unwrap();
        let ca = checkpoint_pki::Ca::load(dir.path()).unwrap();
        let (a, b): (BoxId, BoxId) = ("gate-a".parse().unwrap(), "gate-b".parse().unwrap());
        ca.issue_box(&a, v, false).unwrap();
        let mut known = KnownBoxes::new(Some(dir.path().to_path_buf()));
        let t0 = Instant::now();
        assert!(known.allows(&a, t0));
        assert!(!known.allows(&b, t0));
        // A new box and a revocation count after the next scan.
        ca.issue_box(&b, v, false).unwrap();
        ca.revoke_box(&a).unwrap();
        assert!(known.allows(&a, t0 + Duration::from_secs(1)));
        assert!(!known.allows(&a, t0 + RESCAN));
        assert!(known.allows(&b, t0 + RESCAN));
        let mut open = KnownBoxes::new(None);
        assert!(open.allows(&b, t0));
    }

    #[test]
    fn rejections_are_logged_once_per_period_with_the_count_left_out() {
        let mut t = LogThrottle::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(t.admit("a", "syntax", t0), Some(0));
        assert_eq!(t.admit("a", "syntax", t0 + Duration::from_secs(1)), None);
        assert_eq!(t.admit("a", "syntax", t0 + Duration::from_secs(2)), None);
        // Another reason or topic is its own stream.
        assert_eq!(t.admit("a", "schema", t0), Some(0));
        assert_eq!(t.admit("b", "syntax", t0), Some(0));
        assert_eq!(
            t.admit("a", "syntax", t0 + Duration::from_secs(61)),
            Some(2)
        );
        assert_eq!(t.admit("a", "syntax", t0 + Duration::from_secs(62)), None);
    }
}
