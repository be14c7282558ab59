//! The admission decision: a pure function of the verified credential, the temperature reading,
//! the person's previous admit and the policy. No clock, no hardware, no I/O: the door loop
//! gathers the inputs and acts on the outcome. The policy's types are its own: the daemon
//! configuration embeds [`PolicyConfig`] as its `[policy]` section.
//!
//! The credential is a pass code (with its verification result) or a face (the identity the
//! matcher settled on, or nobody). Factors are checked in a fixed order — credential (pass code
//! or face), trust freshness, pass colour, anti-passback, temperature — and each is `hard` (the
//! first hard failure is the deny reason), `soft` (admit, but flag the event) or `off`.

use std::collections::HashMap;
use std::time::Duration;

use checkpoint_protocol::ids::SubjectId;
use checkpoint_protocol::passcode::{PassClaims, PassStatus, RejectReason, Rejection};
use checkpoint_protocol::records::{Decision, Flag, Reason};
use serde::Deserialize;

/// How a factor that fails is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Not checked.
    Off,
    /// Admit and flag the event.
    Soft,
    /// Deny.
    Hard,
}

/// The admission policy: the daemon configuration's `[policy]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default = "default_fever")]
    pub fever_threshold_c: f32,
    /// Readings outside this range are "no reading", not a temperature.
    #[serde(default = "default_body_range")]
    pub plausible_c: [f32; 2],
    #[serde(default = "default_admit_statuses")]
    pub admit_statuses: Vec<PassStatus>,
    /// How far a pass code's validity may be off the box's clock (`"30s"`).
    #[serde(default = "default_skew", with = "humantime_serde")]
    pub clock_skew: Duration,
    /// How long after an admission the same person is held by anti-passback; 0 turns it off.
    #[serde(default, with = "humantime_serde")]
    pub anti_passback_window: Duration,
    /// The same code seen again within this counts once (`"3s"`).
    #[serde(default = "default_cooldown", with = "humantime_serde")]
    pub duplicate_cooldown: Duration,
    #[serde(default = "default_hard")]
    pub pass: Mode,
    /// A face the gallery does not recognise: `hard` denies it, `soft` admits and flags it
    /// (the event still names nobody).
    #[serde(default = "default_hard")]
    pub face: Mode,
    #[serde(default = "default_off")]
    pub temperature: Mode,
    #[serde(default = "default_soft")]
    pub anti_passback: Mode,
    #[serde(default = "default_soft")]
    pub trust_stale: Mode,
}

impl PolicyConfig {
    /// [`PolicyConfig::clock_skew`] in the whole seconds pass codes count in.
    pub fn clock_skew_s(&self) -> u32 {
        u32::try_from(self.clock_skew.as_secs()).unwrap_or(u32::MAX)
    }
    /// [`PolicyConfig::anti_passback_window`] in whole seconds (0: off).
    pub fn anti_passback_s(&self) -> u64 {
        self.anti_passback_window.as_secs()
    }
    /// [`PolicyConfig::duplicate_cooldown`] in whole milliseconds.
    pub fn duplicate_cooldown_ms(&self) -> u64 {
        u64::try_from(self.duplicate_cooldown.as_millis()).unwrap_or(u64::MAX)
    }
}

fn default_fever() -> f32 {
    37.3
}
fn default_body_range() -> [f32; 2] {
    [34.0, 42.5]
}
fn default_admit_statuses() -> Vec<PassStatus> {
    vec![PassStatus::Green]
}
fn default_skew() -> Duration {
    Duration::from_secs(30)
}
fn default_cooldown() -> Duration {
    Duration::from_secs(3)
}
fn default_hard() -> Mode {
    Mode::Hard
}
fn default_soft() -> Mode {
    Mode::Soft
}
fn default_off() -> Mode {
    Mode::Off
}

/// What the person showed.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// A pass code and the result of verifying it.
    Pass(&'a Result<PassClaims, Rejection>),
    /// A face: the gallery identity the matcher settled on, or `None` for a face it did not
    /// recognise (never a guess).
    Face(Option<&'a SubjectId>),
}

/// What the door loop knows about one attempt.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub credential: Credential<'a>,
    /// The raw thermometer reading, `None` when the sensor gave none.
    pub temperature_c: Option<f32>,
    /// When this person was last admitted at this box (Unix seconds).
    pub last_admit: Option<i64>,
    /// The trust material is older than its configured maximum age.
    pub trust_stale: bool,
    pub now: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub decision: Decision,
    pub reason: Reason,
    pub flags: Vec<Flag>,
    /// Only from a code whose signature verified: an unverified code names nobody.
    pub subject: Option<SubjectId>,
    pub dependants: Vec<SubjectId>,
    pub pass_status: Option<PassStatus>,
    /// Only a plausible body temperature.
    pub temperature_c: Option<f32>,
}

pub fn decide(input: &Inputs<'_>, policy: &PolicyConfig) -> Outcome {
    let mut deny: Option<Reason> = None;
    let mut flags = Vec::new();
    let mut factor = |mode: Mode, reason: Reason, flag: Flag| match mode {
        Mode::Off => {}
        Mode::Soft => flags.push(flag),
        Mode::Hard => {
            deny.get_or_insert(reason);
        }
    };

    // Claims are trustworthy only once the signature verified; later steps (validity window,
    // revocation) failing still tells us who it was.
    let (claims, face) = match input.credential {
        Credential::Pass(Ok(c)) => (Some(c), None),
        Credential::Pass(Err(r)) if signature_verified(r.reason) => (r.claims.as_ref(), None),
        Credential::Pass(Err(_)) => (None, None),
        Credential::Face(who) => (None, who),
    };
    match input.credential {
        Credential::Pass(Err(rejection)) => {
            factor(policy.pass, rejection.reason.into(), Flag::PassInvalid)
        }
        Credential::Face(None) => factor(policy.face, Reason::FaceUnknown, Flag::FaceUnknown),
        Credential::Pass(Ok(_)) | Credential::Face(Some(_)) => {}
    }
    // Keys and revocations concern pass codes; a face is checked against the gallery.
    if input.trust_stale && matches!(input.credential, Credential::Pass(_)) {
        factor(policy.trust_stale, Reason::TrustStale, Flag::TrustStale);
    }
    if let Credential::Pass(Ok(c)) = input.credential {
        if !policy.admit_statuses.contains(&c.status) {
            factor(
                policy.pass,
                Reason::StatusNotAllowed,
                Flag::StatusNotAllowed,
            );
        }
    }
    let recognised = matches!(
        input.credential,
        Credential::Pass(Ok(_)) | Credential::Face(Some(_))
    );
    if policy.anti_passback_s() > 0 && recognised {
        if let Some(last) = input.last_admit {
            let window = i64::try_from(policy.anti_passback_s()).unwrap_or(i64::MAX);
            if input.now.saturating_sub(last) < window {
                factor(
                    policy.anti_passback,
                    Reason::AntiPassback,
                    Flag::AntiPassback,
                );
            }
        }
    }
    let [lo, hi] = policy.plausible_c;
    let temperature_c = input
        .temperature_c
        .filter(|t| t.is_finite() && (lo..=hi).contains(t));
    match temperature_c {
        Some(t) if t >= policy.fever_threshold_c => {
            factor(policy.temperature, Reason::Fever, Flag::Fever)
        }
        Some(_) => {}
        None => factor(
            policy.temperature,
            Reason::NoTemperature,
            Flag::NoTemperature,
        ),
    }

    let (decision, reason) = match deny {
        Some(r) => (Decision::Deny, r),
        None => (Decision::Admit, Reason::Ok),
    };
    Outcome {
        decision,
        reason,
        flags,
        subject: claims.map(|c| c.subject.clone()).or_else(|| face.cloned()),
        dependants: claims.map(|c| c.dependants.clone()).unwrap_or_default(),
        pass_status: claims.map(|c| c.status),
        temperature_c,
    }
}

fn signature_verified(reason: RejectReason) -> bool {
    matches!(
        reason,
        RejectReason::NotYetValid | RejectReason::Expired | RejectReason::Revoked
    )
}

/// Each person's last admit at this box, for anti-passback. Entries older than the window are
/// forgotten so memory stays bounded by the people seen within it.
#[derive(Debug, Default)]
pub struct Passback {
    last: HashMap<SubjectId, i64>,
}

impl Passback {
    pub fn last_admit(&self, subject: &SubjectId) -> Option<i64> {
        self.last.get(subject).copied()
    }

    pub fn admitted(&mut self, subject: SubjectId, now: i64, window_s: u64) {
        if window_s == 0 {
            return;
        }
        let window = i64::try_from(window_s).unwrap_or(i64::MAX);
        self.last.retain(|_, t| now.saturating_sub(*t) < window);
        self.last.insert(subject, now);
    }

    /// Forgets admits older than the window.
    pub fn forget(&mut self, now: i64, window_s: u64) {
        let window = i64::try_from(window_s).unwrap_or(i64::MAX);
        self.last.retain(|_, t| now.saturating_sub(*t) < window);
    }

    /// People remembered.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

/// Counts a code once while it stays in front of the camera: a code seen again within the
/// cooldown of its previous sighting is the same attempt.
#[derive(Debug)]
pub struct Debounce {
    cooldown_ms: u64,
    seen: HashMap<String, u64>,
}

impl Debounce {
    pub fn new(cooldown_ms: u64) -> Self {
        Debounce {
            cooldown_ms,
            seen: HashMap::new(),
        }
    }

    /// Whether `text` seen at `now_ms` is a new attempt.
    pub fn fresh(&mut self, text: &str, now_ms: u64) -> bool {
        self.forget(now_ms);
        let fresh = !self.seen.contains_key(text);
        if self.cooldown_ms > 0 {
            self.seen.insert(text.to_string(), now_ms);
        }
        fresh
    }

    /// Forgets sightings older than the cooldown.
    pub fn forget(&mut self, now_ms: u64) {
        let cooldown = self.cooldown_ms;
        self.seen
            .retain(|_, t| now_ms.saturating_sub(*t) < cooldown);
    }

    /// Codes remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests;
