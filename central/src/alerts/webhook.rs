//! Delivery channels behind one trait, and the generic webhook.
//!
//! The webhook POSTs one JSON document per alert change (the alert, its recipients by role and
//! id, and the message for each role) with `X-Checkpoint-Signature: sha256=<hex>`, the
//! HMAC-SHA256 of the body under the shared secret, so the receiver can check it came from
//! central. Answers 2xx are delivered; 408, 429, 5xx and network errors are retried by the
//! dispatcher with backoff; other 4xx are permanent failures (a wrong URL will not heal).

use std::time::Duration;

use checkpoint_link::clock::SharedClock;
use checkpoint_link::sync::Recover;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::route::{Recipient, Role};
use super::rules::Alert;

/// One alert change, ready to deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outgoing {
    pub alert: Alert,
    pub recipients: Vec<Recipient>,
    /// The message each role reads.
    pub messages: Vec<(Role, String)>,
}

/// What a channel reports of a delivery that went through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Recipients the channel says do not exist (logged against the alert).
    pub invalid_recipients: Vec<String>,
    /// Recipients held back by a rate limit: their message goes out merged later.
    pub deferred: Vec<String>,
}

/// A merged message a channel sent to one member (see [`Channel::flush`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub member: String,
    /// How many alert messages it carried.
    pub alerts: usize,
    pub result: Result<Delivered, ChannelError>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// Worth retrying: the service is down, slow or rate-limiting.
    #[error("{0} (will retry)")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
}

/// A way to deliver alerts. Blocking: the dispatcher calls it on a blocking thread.
pub trait Channel: Send + Sync {
    fn name(&self) -> &'static str;
    fn send(&self, msg: &Outgoing) -> Result<Delivered, ChannelError>;
    /// Sends what was held back for rate limits, merged per member, as far as limits allow.
    fn flush(&self) -> Vec<Merged> {
        Vec::new()
    }
}

/// What a channel already delivered of which alert change to whom, for an hour: a retry of a
/// partly delivered alert (one recipient sent, the next failed) sends nobody theirs twice.
#[derive(Debug)]
pub struct Delivered1h {
    sent: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    clock: SharedClock,
}

impl Default for Delivered1h {
    fn default() -> Self {
        Delivered1h::new(checkpoint_link::clock::system())
    }
}

impl Delivered1h {
    const KEEP: Duration = Duration::from_secs(3600);

    pub fn new(clock: SharedClock) -> Self {
        Delivered1h {
            sent: Default::default(),
            clock,
        }
    }

    fn key(msg: &Outgoing, to: &str) -> String {
        format!(
            "{}|{}|{}|{to}",
            msg.alert.key, msg.alert.ts_ms, msg.alert.raised
        )
    }

    pub fn contains(&self, msg: &Outgoing, to: &str) -> bool {
        let mut sent = self.sent.lock_or_recover();
        let now = self.clock.instant();
        sent.retain(|_, at| now.duration_since(*at) < Self::KEEP);
        sent.contains_key(&Self::key(msg, to))
    }

    pub fn insert(&self, msg: &Outgoing, to: &str) {
        let mut sent = self.sent.lock_or_recover();
        sent.insert(Self::key(msg, to), self.clock.instant());
    }
}

pub struct Webhook {
    url: String,
    secret: Vec<u8>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts a key of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

impl Webhook {
    pub fn new(url: &str, secret: Vec<u8>, timeout: Duration) -> Webhook {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Webhook {
            url: url.to_string(),
            secret,
            agent,
        }
    }
}

impl Channel for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn send(&self, msg: &Outgoing) -> Result<Delivered, ChannelError> {
        let body = serde_json::to_vec(msg).map_err(|e| ChannelError::Permanent(e.to_string()))?;
        let resp = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("X-Checkpoint-Signature", &signature(&self.secret, &body))
            .header("X-Checkpoint-Alert", &msg.alert.key)
            .send(&body[..])
            .map_err(|e| ChannelError::Transient(format!("{}: {e}", self.url)))?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => Ok(Delivered::default()),
            408 | 429 | 500..=599 => Err(ChannelError::Transient(format!(
                "{}: HTTP {status}",
                self.url
            ))),
            _ => Err(ChannelError::Permanent(format!(
                "{}: HTTP {status}",
                self.url
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
