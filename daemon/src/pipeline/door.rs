//! The door thread: the I/O around the door's rules ([`crate::door`]). It decodes each frame,
//! hands the codes (and, when the core asks, the face stage's verdict) to the core with the time,
//! and carries out the effects in order: a measurement (thermometer, clock state, event id) is
//! answered before anything after it, the outbox append is flushed before the gate moves. What
//! counts as an attempt, and what is decided, is the core's; failures of one stage here are
//! logged and counted, and the loop keeps going.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use checkpoint_link::clock::SharedClock;
use checkpoint_protocol::records::{self, Decision, Event, Reason};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::camera::Frame;
use crate::clock::ClockWatch;
use crate::door::{DoorCore, DoorSetup, Effect, Input, Measurement};
use crate::gate::Gate;
use crate::outbox::Outbox;
use crate::qr::{self, QrConfig};
use crate::stats::{self, Stats};
use crate::thermo::{SensorHealth, Thermometer};
use crate::trust::Trust;

/// How often the loop pings systemd's watchdog (the unit's `WatchdogSec` is far longer).
const WATCHDOG_EVERY: Duration = Duration::from_secs(2);

pub struct Door {
    /// The core's setup; its face cooldown applies only when `face` is present.
    pub setup: DoorSetup,
    pub qr: QrConfig,
    /// See [`qr::Rotation`].
    pub strategies_per_frame: usize,
    pub outbox: Arc<Outbox>,
    pub trust: Arc<Trust>,
    pub stats: Arc<Stats>,
    /// Whether the system clock is synchronised (each event says so).
    pub sync: Arc<ClockWatch>,
    /// The time handed to the core with each input, and the gate's and the watchdog's timers.
    pub clock: SharedClock,
    pub gate: Box<dyn Gate>,
    /// `None` when the box has none, it failed to open, or the policy ignores temperature.
    pub thermometer: Option<Box<dyn Thermometer>>,
    /// Wakes the uplink after each append.
    pub appended: Arc<Notify>,
    /// Face recognition, when `[face] enabled` (frames then carry colour).
    #[cfg(feature = "face")]
    pub face: Option<crate::face::FaceStage>,
}

impl std::fmt::Debug for Door {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Door")
            .field("box_id", &self.setup.identity.box_id)
            .finish_non_exhaustive()
    }
}

/// The result of one attempt, for the caller (and the benchmark).
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    /// `None` when the event could not be stored.
    pub seq: Option<u64>,
    pub decision: Decision,
    pub reason: Reason,
}

/// State the loop carries between frames.
#[derive(Debug)]
pub struct DoorState {
    core: DoorCore,
    reader: Reader,
    thermo_health: SensorHealth,
    /// Face-stage failures logged so far (the first few, then every hundredth).
    #[cfg_attr(not(feature = "face"), allow(dead_code))]
    face_errors: u64,
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
        let mut setup = self.setup.clone();
        if !self.has_face() {
            setup.face_cooldown_ms = None;
        }
        DoorState {
            core: DoorCore::new(setup),
            reader: self.reader(),
            thermo_health: SensorHealth::default(),
            face_errors: 0,
        }
    }

    fn has_face(&self) -> bool {
        #[cfg(feature = "face")]
        return self.face.is_some();
        #[cfg(not(feature = "face"))]
        false
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

    /// Runs until the token is cancelled, then puts the gate in its safe state.
    pub fn run(mut self, frames: Receiver<Frame>, token: &CancellationToken) {
        let mut state = self.state();
        let mut pinged = self.clock.instant() - WATCHDOG_EVERY;
        let mut camera_gone = false;
        while !token.is_cancelled() {
            let now = self.clock.instant();
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
                    state.core.handle(Input::Tick, self.clock.now());
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

    /// Decodes a frame and hands the core its codes, every code rqrr's second opinion has read
    /// since the last call (attributed to the frame it was read in), and then the face stage's
    /// verdict when the core asks for it.
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
        self.stats.frame(self.clock.instant(), decoded.elapsed);
        let mut out = self.codes(state, &decoded, frame.captured);
        out.extend(self.late_codes(state));
        let effects = state.core.handle(
            Input::FrameEnd {
                captured: frame.captured,
            },
            self.clock.now(),
        );
        out.extend(self.apply(state, effects, Some(frame)));
        out
    }

    /// Hands the core the codes of one decoded frame.
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
        if decoded.codes.is_empty() && decoded.undecoded == 0 {
            return Vec::new();
        }
        let now = self.clock.now();
        let trust = self.trust.current();
        let effects = state.core.handle(
            Input::Codes {
                payloads: decoded.payloads(),
                located: decoded.undecoded > 0,
                captured,
                trust: &trust.store,
                trust_stale: self.trust.stale(now),
            },
            now,
        );
        self.apply(state, effects, None)
    }

    /// Hands the core the codes rqrr's second opinion has read since the last look.
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

    /// Carries out the core's effects in order. An answer the core asked for (a measurement, a
    /// face verdict) is handed in at once, and its effects are carried out before the rest.
    fn apply(
        &mut self,
        state: &mut DoorState,
        effects: Vec<Effect>,
        #[cfg_attr(not(feature = "face"), allow(unused_variables))] frame: Option<&Frame>,
    ) -> Vec<AttemptOutcome> {
        let mut queue = VecDeque::from(effects);
        let mut out = Vec::new();
        while let Some(effect) = queue.pop_front() {
            let answer = match effect {
                Effect::Measure => {
                    let m = self.measure(state);
                    Some(Input::Measured(m))
                }
                Effect::LookForFace => {
                    #[cfg(feature = "face")]
                    {
                        frame.and_then(|f| self.look(state, f))
                    }
                    #[cfg(not(feature = "face"))]
                    None
                }
                Effect::ResetFace => {
                    #[cfg(feature = "face")]
                    if let Some(face) = self.face.as_mut() {
                        face.reset();
                    }
                    None
                }
                Effect::Append { event, captured } => {
                    out.push(self.append(&event, captured));
                    None
                }
                Effect::Signal(signal) => {
                    if let Err(error) = self.gate.signal(signal, self.clock.instant()) {
                        tracing::error!(message = "Gate failed.", %error);
                        self.stats.set_gate(stats::fault(&error));
                    }
                    None
                }
                Effect::WakeUplink => {
                    self.appended.notify_one();
                    None
                }
            };
            if let Some(input) = answer {
                let more = state.core.handle(input, self.clock.now());
                for e in more.into_iter().rev() {
                    queue.push_front(e);
                }
            }
        }
        out
    }

    fn measure(&mut self, state: &mut DoorState) -> Measurement {
        let temperature_c = self.thermometer.as_mut().and_then(|t| {
            let r = t.read();
            state.thermo_health.record(&r);
            self.stats.set_thermometer(state.thermo_health.health());
            if let Err(error) = &r {
                tracing::warn!(message = "Thermometer read failed.", %error);
            }
            r.ok()
        });
        Measurement {
            temperature_c,
            clock_synced: self.sync.synced(),
            id: Uuid::now_v7(),
        }
    }

    /// The face stage on one colour frame, as an input for the core.
    #[cfg(feature = "face")]
    fn look(&mut self, state: &mut DoorState, frame: &Frame) -> Option<Input<'static>> {
        let (face, rgb) = (self.face.as_mut()?, frame.rgb.as_ref()?);
        match face.look(rgb) {
            Ok(look) => Some(Input::Face {
                look,
                captured: frame.captured,
            }),
            Err(error) => {
                state.face_errors += 1;
                if state.face_errors <= 5 || state.face_errors.is_multiple_of(100) {
                    tracing::warn!(message = "Face stage failed on a frame.", %error, count = state.face_errors);
                }
                None
            }
        }
    }

    /// Stores one decided event durably (flushed before this returns).
    #[tracing::instrument(skip_all, fields(box_id = %self.setup.identity.box_id))]
    fn append(&mut self, event: &Event, captured: Instant) -> AttemptOutcome {
        let seq = match self
            .outbox
            .append(checkpoint_protocol::unix_ms_unsigned(event.ts), |seq| {
                records::encode(&Event {
                    seq,
                    ..event.clone()
                })
            }) {
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
        self.stats.attempt();
        tracing::info!(
            message = "Attempt.",
            seq,
            method = ?event.method,
            decision = ?event.decision,
            reason = ?event.reason,
            flags = ?event.flags,
            latency_ms = captured.elapsed().as_millis() as u64,
        );
        AttemptOutcome {
            seq,
            decision: event.decision,
            reason: event.reason,
        }
    }
}

/// Waits for the next frame; a helper so the door loop can tick the gate between frames.
fn next_frame(rx: &Receiver<Frame>, wait: Duration) -> Result<Option<Frame>, ()> {
    match rx.recv_timeout(wait) {
        Ok(f) => Ok(Some(f)),
        Err(RecvTimeoutError::Timeout) => Ok(None),
        Err(RecvTimeoutError::Disconnected) => Err(()),
    }
}
