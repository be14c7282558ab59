//! The door's rules, as a pure state machine: what counts as an attempt, which credential wins,
//! and what the box does about it. No clock, no hardware, no I/O — the door thread
//! (`pipeline/door.rs`) reads the camera, the thermometer and the clock, hands each result in as
//! an [`Input`] with the time it happened, and carries out the [`Effect`]s that come back, in
//! order.
//!
//! The rules:
//! - A code counts once while it stays in view: seen again within `duplicate_cooldown` of its
//!   previous sighting, it is the same attempt ([`Debounce`]).
//! - A code in view takes precedence over a face: while a code was decoded, or a decoder located
//!   one it could not read, within the code cooldown, the face stage is reset instead of asked.
//! - A face counts once while its person (or the unknown face) stays in view: within
//!   `[face] cooldown` it is the same attempt.
//! - Each attempt is measured (thermometer, clock state, a fresh event id), decided by
//!   [`decide::decide`] with the person's last admit here, appended to the outbox and only then
//!   signalled to the gate; then the uplink is woken. An admit is remembered for anti-passback.
//!
//! Attempts are finished in the order they started; an attempt waits for its measurement
//! ([`Effect::Measure`] → [`Input::Measured`]), so a shell that answers each `Measure` before the
//! effects after it keeps every attempt whole.

use std::collections::VecDeque;
use std::time::Instant;

use checkpoint_protocol::ids::SubjectId;
use checkpoint_protocol::passcode::{self, PassClaims, Rejection, TrustStore};
use checkpoint_protocol::records::{Decision, Event, Method, Schema};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::Identity;
use crate::decide::{self, Credential, Debounce, Inputs, Passback, PolicyConfig};
use crate::gate::Signal;

/// What the door is told. Every input comes with the wall-clock time it happened at (the
/// `now` of [`DoorCore::handle`]).
#[derive(Debug)]
pub enum Input<'a> {
    /// Codes a decoder read, from the current frame or (rqrr's second opinion) an earlier one.
    Codes {
        /// Each distinct payload, in the order found.
        payloads: Vec<String>,
        /// A decoder located a symbol it could not read: a code is in view.
        located: bool,
        /// When the frame they were read in was taken.
        captured: Instant,
        /// The keys and revocations in force.
        trust: &'a TrustStore,
        /// The trust material is older than its maximum age.
        trust_stale: bool,
    },
    /// Every code of a frame has been handed in; the frame has colour for the face stage.
    FrameEnd { captured: Instant },
    /// The face stage's verdict on the frame (after [`Effect::LookForFace`]).
    Face { look: Look, captured: Instant },
    /// What the shell measured for the oldest attempt waiting (after [`Effect::Measure`]).
    Measured(Measurement),
    /// Time passes with no frame: state that has outlived its window is forgotten.
    Tick,
}

/// The face stage's verdict on one frame (as `face::Look` gives it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// No face in position.
    Nobody,
    /// A face in position, not settled yet.
    Gathering,
    /// The frames agreed: someone, or a face the gallery does not know (`None`).
    Settled(Option<SubjectId>),
}

/// The impure facts of one attempt, gathered by the shell.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// The raw thermometer reading; `None` without a thermometer or when the read failed.
    pub temperature_c: Option<f32>,
    /// The box's clock is synchronised.
    pub clock_synced: bool,
    /// The new event's id.
    pub id: Uuid,
}

/// What the shell must do, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// An attempt started: read the thermometer and the clock state, and answer with
    /// [`Input::Measured`] before carrying out the effects after this one.
    Measure,
    /// Ask the face stage about the frame; answer with [`Input::Face`].
    LookForFace,
    /// A code is in view: the face stage starts over.
    ResetFace,
    /// Store the event durably; the outbox gives it its `seq` (0 here).
    Append {
        event: Box<Event>,
        /// When the frame that made the attempt was taken (for the latency log).
        captured: Instant,
    },
    /// Move the gate (only after the append before it has returned).
    Signal(Signal),
    /// An event was appended: the uplink has something to send.
    WakeUplink,
}

/// What the door needs to know that never changes while it runs.
#[derive(Debug, Clone)]
pub struct DoorSetup {
    pub identity: Identity,
    pub policy: PolicyConfig,
    /// `[face] cooldown` when faces are recognised at this door; `None` when they are not.
    pub face_cooldown_ms: Option<u64>,
}

/// The door's state between inputs.
#[derive(Debug)]
pub struct DoorCore {
    setup: DoorSetup,
    codes: Debounce,
    faces: Debounce,
    passback: Passback,
    /// When a code was last decoded or located (Unix ms).
    code_seen_ms: Option<u64>,
    /// Attempts waiting for their measurement, oldest first.
    waiting: VecDeque<Pending>,
}

#[derive(Debug)]
struct Pending {
    shown: Shown,
    captured: Instant,
    trust_stale: bool,
}

#[derive(Debug)]
enum Shown {
    Code(Box<Result<PassClaims, Rejection>>),
    Face(Option<SubjectId>),
}

impl DoorCore {
    pub fn new(setup: DoorSetup) -> DoorCore {
        DoorCore {
            codes: Debounce::new(setup.policy.duplicate_cooldown_ms()),
            faces: Debounce::new(setup.face_cooldown_ms.unwrap_or(0)),
            passback: Passback::default(),
            code_seen_ms: None,
            waiting: VecDeque::new(),
            setup,
        }
    }

    pub fn setup(&self) -> &DoorSetup {
        &self.setup
    }

    /// Attempts started and not yet measured.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Codes, faces and people remembered for debounce and anti-passback.
    pub fn remembered(&self) -> usize {
        self.codes.len() + self.faces.len() + self.passback.len()
    }

    pub fn handle(&mut self, input: Input<'_>, now: OffsetDateTime) -> Vec<Effect> {
        let now_ms = checkpoint_protocol::unix_ms_unsigned(now);
        match input {
            Input::Codes {
                payloads,
                located,
                captured,
                trust,
                trust_stale,
            } => {
                if located || !payloads.is_empty() {
                    self.code_seen_ms = Some(now_ms);
                }
                let mut out = Vec::new();
                for payload in payloads {
                    if !self.codes.fresh(&payload, now_ms) {
                        continue;
                    }
                    let verified = passcode::verify(
                        &payload,
                        trust,
                        now.unix_timestamp(),
                        self.setup.policy.clock_skew_s(),
                    );
                    self.waiting.push_back(Pending {
                        shown: Shown::Code(Box::new(verified)),
                        captured,
                        trust_stale,
                    });
                    out.push(Effect::Measure);
                }
                out
            }
            Input::FrameEnd { .. } => {
                if self.setup.face_cooldown_ms.is_none() {
                    return Vec::new();
                }
                if self.code_in_view(now_ms) {
                    vec![Effect::ResetFace]
                } else {
                    vec![Effect::LookForFace]
                }
            }
            Input::Face { look, captured } => match look {
                Look::Settled(who) if self.setup.face_cooldown_ms.is_some() => {
                    let key = who.as_ref().map_or("?", |s| s.as_str());
                    if !self.faces.fresh(key, now_ms) {
                        return Vec::new();
                    }
                    self.waiting.push_back(Pending {
                        shown: Shown::Face(who),
                        captured,
                        trust_stale: false,
                    });
                    vec![Effect::Measure]
                }
                Look::Settled(_) | Look::Nobody | Look::Gathering => Vec::new(),
            },
            Input::Measured(m) => match self.waiting.pop_front() {
                Some(p) => self.finish(p, m, now),
                None => Vec::new(),
            },
            Input::Tick => {
                self.codes.forget(now_ms);
                self.faces.forget(now_ms);
                self.passback
                    .forget(now.unix_timestamp(), self.setup.policy.anti_passback_s());
                if !self.code_in_view(now_ms) {
                    self.code_seen_ms = None;
                }
                Vec::new()
            }
        }
    }

    fn code_in_view(&self, now_ms: u64) -> bool {
        let cooldown = self.setup.policy.duplicate_cooldown_ms().max(1);
        self.code_seen_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < cooldown)
    }

    fn finish(&mut self, p: Pending, m: Measurement, now: OffsetDateTime) -> Vec<Effect> {
        let now_s = now.unix_timestamp();
        let (credential, method) = match &p.shown {
            Shown::Code(v) => (Credential::Pass(v), Method::Qr),
            Shown::Face(who) => (Credential::Face(who.as_ref()), Method::Face),
        };
        let recognised = match credential {
            Credential::Pass(Ok(c)) => Some(&c.subject),
            Credential::Face(who) => who,
            Credential::Pass(Err(_)) => None,
        };
        let policy = &self.setup.policy;
        let outcome = decide::decide(
            &Inputs {
                credential,
                temperature_c: m.temperature_c,
                last_admit: recognised.and_then(|s| self.passback.last_admit(s)),
                trust_stale: p.trust_stale,
                now: now_s,
            },
            policy,
        );
        if outcome.decision == Decision::Admit {
            if let Some(s) = &outcome.subject {
                self.passback
                    .admitted(s.clone(), now_s, policy.anti_passback_s());
            }
        }
        let signal = match outcome.decision {
            Decision::Admit => Signal::Admit,
            Decision::Deny => Signal::Deny,
        };
        let id = &self.setup.identity;
        let event = Event {
            schema: Schema,
            id: m.id,
            seq: 0,
            site: id.site.clone(),
            box_id: id.box_id.clone(),
            checkpoint: id.checkpoint.clone(),
            direction: id.direction,
            method,
            subject: outcome.subject,
            dependants: outcome.dependants,
            pass_status: outcome.pass_status,
            decision: outcome.decision,
            reason: outcome.reason,
            flags: outcome.flags,
            temperature_c: outcome.temperature_c,
            ts: now,
            clock_synced: m.clock_synced,
        };
        vec![
            Effect::Append {
                event: Box::new(event),
                captured: p.captured,
            },
            Effect::Signal(signal),
            Effect::WakeUplink,
        ]
    }
}

#[cfg(test)]
mod tests;
