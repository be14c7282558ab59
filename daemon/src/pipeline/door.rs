//! The door loop: frame in, decision out. For each new code in a frame — or, with face
//! recognition on and no code in view, each face the frames settled on (someone, or an unknown
//! face) — it verifies, reads the thermometer, decides, stores the event durably in the outbox
//! and only then signals the gate. Failures of one stage are logged and counted; the loop keeps
//! going.

use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use checkpoint_protocol::ids::SubjectId;
use checkpoint_protocol::passcode;
use checkpoint_protocol::records::{self, Decision, Event, Method, Schema};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{next_frame, Frame};
use crate::clock::ClockWatch;
use crate::config::{Identity, PolicyConfig};
use crate::decide::{self, Credential, Debounce, Inputs, Passback};
use crate::gate::{Gate, Signal};
use crate::outbox::Outbox;
use crate::qr::{self, QrConfig};
use crate::stats::{self, Stats};
use crate::thermo::{SensorHealth, Thermometer};
use crate::trust::Trust;

/// How often the loop pings systemd's watchdog (the unit's `WatchdogSec` is far longer).
const WATCHDOG_EVERY: Duration = Duration::from_secs(2);

pub struct Door {
    pub identity: Identity,
    pub policy: PolicyConfig,
    pub qr: QrConfig,
    /// See [`qr::Rotation`].
    pub strategies_per_frame: usize,
    pub outbox: Arc<Outbox>,
    pub trust: Arc<Trust>,
    pub stats: Arc<Stats>,
    pub clock: Arc<ClockWatch>,
    pub gate: Box<dyn Gate>,
    /// `None` when the box has none, it failed to open, or the policy ignores temperature.
    pub thermometer: Option<Box<dyn Thermometer>>,
    /// Wakes the uplink after each append.
    pub appended: Arc<Notify>,
    /// Face recognition, when `[face] enabled` (frames then carry colour).
    #[cfg(feature = "face")]
    pub face: Option<crate::face::FaceStage>,
}

/// What the person showed.
#[derive(Debug, Clone, Copy)]
enum Shown<'a> {
    Code(&'a str),
    /// A face the frames settled on: someone, or nobody the gallery knows.
    #[cfg_attr(not(feature = "face"), allow(dead_code))]
    Face(Option<&'a SubjectId>),
}

impl std::fmt::Debug for Door {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Door")
            .field("box_id", &self.identity.box_id)
            .finish_non_exhaustive()
    }
}

/// The result of one attempt, for the caller (and the benchmark).
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub seq: Option<u64>,
    pub decision: Decision,
    pub reason: records::Reason,
}

/// State the loop carries between attempts.
#[derive(Debug)]
pub struct DoorState {
    reader: Reader,
    debounce: Debounce,
    passback: Passback,
    thermo_health: SensorHealth,
    /// A person (or an unknown face) still in front of the camera counts once.
    #[cfg_attr(not(feature = "face"), allow(dead_code))]
    face_debounce: Debounce,
    /// Face-stage failures logged so far (the first few, then every hundredth).
    #[cfg_attr(not(feature = "face"), allow(dead_code))]
    face_errors: u64,
    /// When a code was last decoded or located: a person showing a code is not also an attempt
    /// by face while the code's cooldown lasts (rqrr's second opinion may read it frames later).
    code_seen_ms: Option<u64>,
}

/// How the door reads codes.
#[derive(Debug)]
enum Reader {
    /// Everything on the door thread: a build without zxing-cpp (rqrr's rotation), or a mode
    /// other than `Door`.
    Inline(qr::Rotation),
    /// zxing-cpp on the door thread, rqrr's second opinion on its own (tagged with the frame's
    /// capture instant).
    Split {
        first: QrConfig,
        second: qr::second::SecondOpinion<Instant>,
    },
}

impl Door {
    pub fn state(&self) -> DoorState {
        DoorState {
            reader: self.reader(),
            debounce: Debounce::new(self.policy.duplicate_cooldown_ms),
            passback: Passback::default(),
            thermo_health: SensorHealth::default(),
            face_debounce: Debounce::new(self.face_cooldown_ms()),
            face_errors: 0,
            code_seen_ms: None,
        }
    }

    fn reader(&self) -> Reader {
        if qr::HAS_ZXING && self.qr.mode == qr::Mode::Door {
            match qr::second::SecondOpinion::start(&self.qr, self.strategies_per_frame) {
                Ok(second) => {
                    let first = QrConfig {
                        mode: qr::Mode::Zxing,
                        ..self.qr.clone()
                    };
                    return Reader::Split { first, second };
                }
                Err(error) => tracing::warn!(
                    message = "Cannot start the QR second-opinion thread; rqrr runs on the door thread.",
                    %error
                ),
            }
        }
        Reader::Inline(qr::Rotation::new(self.strategies_per_frame))
    }

    fn face_cooldown_ms(&self) -> u64 {
        #[cfg(feature = "face")]
        if let Some(f) = &self.face {
            return f.cooldown_ms;
        }
        0
    }

    /// Runs until the token is cancelled, then puts the gate in its safe state.
    pub fn run(mut self, frames: Receiver<Frame>, token: &CancellationToken) {
        let mut state = self.state();
        let mut pinged = Instant::now() - WATCHDOG_EVERY;
        let mut camera_gone = false;
        while !token.is_cancelled() {
            let now = Instant::now();
            if now.duration_since(pinged) >= WATCHDOG_EVERY {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                pinged = now;
            }
            if let Err(error) = self.gate.tick(now) {
                tracing::error!(message = "Gate failed.", %error);
                self.stats.set_gate(stats::fault(&error));
            }
            match next_frame(&frames, Duration::from_millis(50)) {
                Ok(Some(frame)) => {
                    self.frame(&mut state, &frame);
                }
                Ok(None) => {
                    self.late_codes(&mut state);
                }
                Err(()) => {
                    if !camera_gone && !token.is_cancelled() {
                        tracing::warn!(message = "Camera thread ended.");
                        camera_gone = true;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        if let Err(error) = self.gate.safe_state() {
            tracing::error!(message = "Gate could not reach its safe state.", %error);
        }
        if let Err(error) = self.outbox.flush() {
            tracing::error!(message = "Outbox flush failed at shutdown.", %error);
        }
    }

    /// Decodes a frame and handles every new code in it, and every code rqrr's second opinion
    /// has read since the last call (attributed to the frame it was read in).
    pub fn frame(&mut self, state: &mut DoorState, frame: &Frame) -> Vec<AttemptOutcome> {
        let decoded = match &mut state.reader {
            Reader::Inline(rotation) => qr::decode_rotating(&frame.image, &self.qr, rotation),
            Reader::Split { first, second } => {
                let d = qr::decode(&frame.image, first);
                if d.undecoded > 0 {
                    second.offer(&frame.image, frame.captured);
                }
                d
            }
        };
        self.stats.frame(Instant::now(), decoded.elapsed);
        if decoded.undecoded > 0 {
            // Someone shows a code rqrr may yet read: not an attempt by face meanwhile.
            state.code_seen_ms = Some(unix_ms(OffsetDateTime::now_utc()));
        }
        let mut out = self.codes(state, &decoded, frame.captured);
        out.extend(self.late_codes(state));
        #[cfg(feature = "face")]
        {
            let now_ms = unix_ms(OffsetDateTime::now_utc());
            let code_in_view = state.code_seen_ms.is_some_and(|t| {
                now_ms.saturating_sub(t) < self.policy.duplicate_cooldown_ms.max(1)
            });
            if let Some(o) = self.face_frame(state, frame, code_in_view, now_ms) {
                out.push(o);
            }
        }
        out
    }

    /// Attempts for the new codes of one decoded frame.
    fn codes(
        &mut self,
        state: &mut DoorState,
        decoded: &qr::Decoded,
        captured: Instant,
    ) -> Vec<AttemptOutcome> {
        if decoded.panics > 0 {
            tracing::warn!(
                message = "QR decoder panicked on a frame; contained.",
                panics = decoded.panics
            );
        }
        let now_ms = unix_ms(OffsetDateTime::now_utc());
        let mut out = Vec::new();
        if !decoded.codes.is_empty() {
            state.code_seen_ms = Some(now_ms);
        }
        for code in &decoded.codes {
            let payload = code.payload();
            if state.debounce.fresh(&payload, now_ms) {
                out.push(self.attempt(state, Shown::Code(&payload), captured));
            }
        }
        out
    }

    /// Attempts for the codes rqrr's second opinion has read since the last look.
    pub fn late_codes(&mut self, state: &mut DoorState) -> Vec<AttemptOutcome> {
        let answers = match &state.reader {
            Reader::Split { second, .. } => second.answers(),
            Reader::Inline(_) => return Vec::new(),
        };
        let mut out = Vec::new();
        for a in answers {
            out.extend(self.codes(state, &a.decoded, a.tag));
        }
        out
    }

    /// The face stage on one frame. A code in view (decoded within its cooldown) takes
    /// precedence: the face is not looked at.
    #[cfg(feature = "face")]
    fn face_frame(
        &mut self,
        state: &mut DoorState,
        frame: &Frame,
        code_in_view: bool,
        now_ms: u64,
    ) -> Option<AttemptOutcome> {
        use crate::face::Look;
        let (face, rgb) = (self.face.as_mut()?, frame.rgb.as_ref()?);
        if code_in_view {
            face.reset();
            return None;
        }
        match face.look(rgb) {
            Ok(Look::Settled(who)) => {
                let key = who.as_ref().map_or("?", |s| s.as_str()).to_string();
                state
                    .face_debounce
                    .fresh(&key, now_ms)
                    .then(|| self.attempt(state, Shown::Face(who.as_ref()), frame.captured))
            }
            Ok(Look::Nobody | Look::Gathering) => None,
            Err(error) => {
                state.face_errors += 1;
                if state.face_errors <= 5 || state.face_errors.is_multiple_of(100) {
                    tracing::warn!(message = "Face stage failed on a frame.", %error, count = state.face_errors);
                }
                None
            }
        }
    }

    #[tracing::instrument(skip_all, fields(box_id = %self.identity.box_id))]
    fn attempt(
        &mut self,
        state: &mut DoorState,
        shown: Shown<'_>,
        captured: Instant,
    ) -> AttemptOutcome {
        let now = OffsetDateTime::now_utc();
        let now_unix = now.unix_timestamp();
        let trust = self.trust.current();
        let verification;
        let (credential, method) = match shown {
            Shown::Code(text) => {
                verification =
                    passcode::verify(text, &trust.store, now_unix, self.policy.clock_skew_s);
                (Credential::Pass(&verification), Method::Qr)
            }
            Shown::Face(who) => (Credential::Face(who), Method::Face),
        };
        let temperature_c = match self.thermometer.as_mut() {
            Some(t) => {
                let r = t.read();
                state.thermo_health.record(&r);
                self.stats.set_thermometer(state.thermo_health.health());
                if let Err(error) = &r {
                    tracing::warn!(message = "Thermometer read failed.", %error);
                }
                r.ok()
            }
            None => None,
        };
        let recognised = match credential {
            Credential::Pass(Ok(c)) => Some(&c.subject),
            Credential::Face(who) => who,
            Credential::Pass(Err(_)) => None,
        };
        let last_admit = recognised.and_then(|s| state.passback.last_admit(s));
        let outcome = decide::decide(
            &Inputs {
                credential,
                temperature_c,
                last_admit,
                trust_stale: self.trust.stale(now),
                now: now_unix,
            },
            &self.policy,
        );
        let event = |seq: u64| Event {
            schema: Schema,
            id: Uuid::now_v7(),
            seq,
            site: self.identity.site.clone(),
            box_id: self.identity.box_id.clone(),
            checkpoint: self.identity.checkpoint.clone(),
            direction: self.identity.direction,
            method,
            subject: outcome.subject.clone(),
            dependants: outcome.dependants.clone(),
            pass_status: outcome.pass_status,
            decision: outcome.decision,
            reason: outcome.reason,
            flags: outcome.flags.clone(),
            temperature_c: outcome.temperature_c,
            ts: now,
            clock_synced: self.clock.synced(),
        };
        // Durable before the door moves.
        let seq = match self
            .outbox
            .append(unix_ms(now), |seq| records::encode(&event(seq)))
        {
            Ok(a) => {
                if !a.stored {
                    tracing::error!(message = "Outbox full: event not stored.", seq = a.seq);
                }
                Some(a.seq)
            }
            Err(error) => {
                // The person at the door still gets the decision; the loss is logged loudly.
                tracing::error!(message = "Event could not be stored.", %error);
                None
            }
        };
        let signal = match outcome.decision {
            Decision::Admit => Signal::Admit,
            Decision::Deny => Signal::Deny,
        };
        if let Err(error) = self.gate.signal(signal, Instant::now()) {
            tracing::error!(message = "Gate failed.", %error);
            self.stats.set_gate(stats::fault(&error));
        }
        if outcome.decision == Decision::Admit {
            if let Some(s) = &outcome.subject {
                state
                    .passback
                    .admitted(s.clone(), now_unix, self.policy.anti_passback_s);
            }
        }
        self.appended.notify_one();
        self.stats.attempt();
        tracing::info!(
            message = "Attempt.",
            seq,
            method = ?method,
            decision = ?outcome.decision,
            reason = ?outcome.reason,
            flags = ?outcome.flags,
            latency_ms = captured.elapsed().as_millis() as u64,
        );
        AttemptOutcome {
            seq,
            decision: outcome.decision,
            reason: outcome.reason,
        }
    }
}

pub fn unix_ms(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}
