//! `[alerts]`: thresholds, routing, language, and the delivery channels.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::alerts::email::TlsMode;
use crate::alerts::route::{Language, Recipient, Role};
use crate::alerts::rules::AlertKind;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    #[serde(default = "default_fever")]
    pub fever_threshold_c: f32,
    /// Every reading goes to the person themself.
    #[serde(default = "yes")]
    pub temperature_to_person: bool,
    /// A box whose outbox holds more than this many events raises `backlog`.
    #[serde(default = "default_backlog")]
    pub backlog_events: u64,
    /// Trust material older than this on a box raises `trust_stale`.
    #[serde(default = "default_trust_stale", with = "humantime_serde")]
    pub trust_stale: Duration,
    /// How often box health and crowding are checked.
    #[serde(default = "default_check_every", with = "humantime_serde")]
    pub check_every: Duration,
    #[serde(default = "default_language")]
    pub language: Language,
    /// Who hears of box health (`box_offline`, `backlog`, `trust_stale`, `sequence_gap`).
    #[serde(default)]
    pub facilities: Vec<Facility>,
    /// Which roles get which alert kinds; kinds left out keep their defaults.
    #[serde(default)]
    pub routes: BTreeMap<AlertKind, Vec<Role>>,
    /// Delivery attempts before a notification is given up as failed.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    #[serde(default)]
    pub wecom: Option<WeComConfig>,
    #[serde(default)]
    pub email: Option<EmailConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeComConfig {
    pub corp_id: String,
    /// The application's agent id.
    pub agent_id: i64,
    /// The application's secret: a file (mode 0600; relative: a systemd credential) or an
    /// environment variable, never inline.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default = "default_wecom_base")]
    pub base_url: String,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Only these roles are told through this channel (default: every role).
    #[serde(default)]
    pub roles: Option<Vec<Role>>,
}

/// `[alerts.email]`: SMTP, always with TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub server: String,
    /// Default 587 for `starttls`, 465 for `tls`.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default = "default_smtp_tls")]
    pub tls: TlsMode,
    /// The sender, `Name <address>` or a bare address.
    pub from: String,
    #[serde(default)]
    pub username: Option<String>,
    /// The password, with `username`: a file or an environment variable, never inline.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub password_env: Option<String>,
    /// A CA to trust besides the web PKI roots (a site's own mail server).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_smtp_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default)]
    pub roles: Option<Vec<Role>>,
}

fn default_smtp_tls() -> TlsMode {
    TlsMode::Starttls
}
fn default_smtp_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_wecom_base() -> String {
    "https://qyapi.weixin.qq.com".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facility {
    pub id: String,
    #[serde(default)]
    pub wecom_id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

impl Facility {
    pub fn recipient(&self) -> Recipient {
        Recipient {
            role: Role::Facilities,
            id: self.id.clone(),
            wecom_id: self.wecom_id.clone(),
            email: self.email.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// The shared HMAC secret: a file (mode 0600; relative: a systemd credential) or an
    /// environment variable, never inline.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default)]
    pub roles: Option<Vec<Role>>,
}

fn default_fever() -> f32 {
    37.3
}
fn yes() -> bool {
    true
}
fn default_backlog() -> u64 {
    1000
}
fn default_trust_stale() -> Duration {
    Duration::from_secs(72 * 3600)
}
fn default_check_every() -> Duration {
    Duration::from_secs(30)
}
fn default_language() -> Language {
    Language::Zh
}
fn default_attempts() -> u32 {
    10
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            fever_threshold_c: default_fever(),
            temperature_to_person: true,
            backlog_events: default_backlog(),
            trust_stale: default_trust_stale(),
            check_every: default_check_every(),
            language: default_language(),
            facilities: Vec::new(),
            routes: BTreeMap::new(),
            max_attempts: default_attempts(),
            webhook: None,
            wecom: None,
            email: None,
        }
    }
}

impl AlertsConfig {
    pub(crate) fn problems(&self, out: &mut Vec<String>) {
        if !(35.0..=42.0).contains(&self.fever_threshold_c) {
            out.push(format!(
                "alerts.fever_threshold_c: {} is not in 35.0..=42.0",
                self.fever_threshold_c
            ));
        }
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        let mut span = |field: &str, d: Duration, lo: Duration, hi: Duration| {
            if let Err(e) = checkpoint_link::durations::within(field, d, lo, hi) {
                out.push(e);
            }
        };
        span("alerts.check_every", self.check_every, s(1), s(3600));
        span(
            "alerts.trust_stale",
            self.trust_stale,
            s(60),
            s(365 * 86_400),
        );
        if let Some(w) = &self.webhook {
            span("alerts.webhook.timeout", w.timeout, ms(100), s(60));
        }
        if let Some(w) = &self.wecom {
            span("alerts.wecom.timeout", w.timeout, ms(100), s(60));
        }
        if let Some(m) = &self.email {
            span("alerts.email.timeout", m.timeout, ms(100), s(120));
        }
        if !(1..=100).contains(&self.max_attempts) {
            out.push(format!(
                "alerts.max_attempts: {} is not in 1..=100",
                self.max_attempts
            ));
        }
        if self.backlog_events == 0 {
            out.push("alerts.backlog_events: must be at least 1".into());
        }
        if let Some(w) = &self.webhook {
            if !(w.url.starts_with("https://") || w.url.starts_with("http://")) {
                out.push(format!(
                    "alerts.webhook.url: {:?} is not an http(s) URL",
                    w.url
                ));
            }
        }
        if let Some(w) = &self.wecom {
            if w.corp_id.trim().is_empty() {
                out.push("alerts.wecom.corp_id: must not be empty".into());
            }
            if !(w.base_url.starts_with("https://") || w.base_url.starts_with("http://")) {
                out.push(format!(
                    "alerts.wecom.base_url: {:?} is not an http(s) URL",
                    w.base_url
                ));
            }
        }
        let one_secret = |out: &mut Vec<String>, what: &str, file: bool, env: bool| {
            if file == env {
                out.push(format!(
                    "alerts.{what}: give exactly one of {what}_file and {what}_env"
                ));
            }
        };
        if let Some(w) = &self.webhook {
            one_secret(
                out,
                "webhook.secret",
                w.secret_file.is_some(),
                w.secret_env.is_some(),
            );
        }
        if let Some(w) = &self.wecom {
            one_secret(
                out,
                "wecom.secret",
                w.secret_file.is_some(),
                w.secret_env.is_some(),
            );
        }
        if let Some(m) = &self.email {
            if m.server.trim().is_empty() {
                out.push("alerts.email.server: must not be empty".into());
            }
            if !m.from.contains('@') {
                out.push(format!(
                    "alerts.email.from: {:?} is not an e-mail address",
                    m.from
                ));
            }
            if m.username.is_some() {
                one_secret(
                    out,
                    "email.password",
                    m.password_file.is_some(),
                    m.password_env.is_some(),
                );
            } else if m.password_file.is_some() || m.password_env.is_some() {
                out.push("alerts.email: a password without username".into());
            }
        }
        for f in &self.facilities {
            if f.id.trim().is_empty() {
                out.push("alerts.facilities: an entry without id".into());
            }
        }
    }
}
