//! WeCom (企业微信) application messages.
//!
//! - The access token comes from `gettoken` with the corp id and the app's secret, is cached
//!   until five minutes before `expires_in`, and is fetched again when the API answers that it
//!   is invalid (40014) or expired (42001), then the send is repeated once.
//! - Recipients the API reports in `invaliduser` are returned, to be logged against the alert.
//! - WeCom drops, without telling, messages past 30 a minute or 1,000 an hour to one member. We
//!   count per member and never send past that: a member at the limit gets nothing now; what is
//!   waiting for them is merged into one message as soon as their window allows ([`flush`]).
//! - A failed call (network, `-1` busy, 45009 frequency limit) is transient and retried by the
//!   dispatcher; other error codes are permanent. A retry skips the members who already got the
//!   message (or have it queued) from an earlier, partly successful attempt.
//!
//! [`flush`]: super::webhook::Channel::flush

pub mod limit;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use checkpoint_link::clock::SharedClock;
use checkpoint_link::sync::Recover;
use serde::Deserialize;

use super::webhook::{Channel, ChannelError, Delivered, Delivered1h, Merged, Outgoing};
use limit::{Limits, MemberLimiter};

/// WeCom's longest text message, in bytes.
const MAX_TEXT: usize = 2048;

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    expires_in: u64,
    #[serde(default)]
    invaliduser: String,
}

#[derive(Debug, Default)]
struct State {
    token: Option<(String, Instant)>,
    limiter: MemberLimiter,
    /// Messages waiting for each member's window, oldest first.
    pending: BTreeMap<String, Vec<String>>,
}

pub struct WeCom {
    base: String,
    corp_id: String,
    secret: String,
    agent_id: i64,
    http: ureq::Agent,
    state: Mutex<State>,
    sent: Delivered1h,
    /// The token's lifetime and the rate limits are counted on it.
    clock: SharedClock,
}

impl std::fmt::Debug for WeCom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeCom")
            .field("base", &self.base)
            .field("corp_id", &self.corp_id)
            .field("agent_id", &self.agent_id)
            .finish_non_exhaustive()
    }
}

fn transient(e: impl std::fmt::Display) -> ChannelError {
    ChannelError::Transient(format!("wecom: {e}"))
}

impl WeCom {
    pub fn new(
        base: &str,
        corp_id: &str,
        secret: &str,
        agent_id: i64,
        limits: Limits,
        timeout: Duration,
    ) -> WeCom {
        WeCom {
            base: base.trim_end_matches('/').to_string(),
            corp_id: corp_id.to_string(),
            secret: secret.to_string(),
            agent_id,
            http: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(timeout))
                .build()
                .into(),
            state: Mutex::new(State {
                limiter: MemberLimiter::new(limits),
                ..State::default()
            }),
            sent: Delivered1h::default(),
            clock: checkpoint_link::clock::system(),
        }
    }

    /// The same channel on another clock (tests move it on instead of waiting).
    pub fn with_clock(mut self, clock: SharedClock) -> WeCom {
        self.sent = Delivered1h::new(clock.clone());
        self.clock = clock;
        self
    }

    fn read(
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, ChannelError> {
        let mut resp = resp.map_err(transient)?;
        let status = resp.status();
        let text = resp.body_mut().read_to_string().map_err(transient)?;
        if !status.is_success() {
            return Err(transient(format!("HTTP {status}")));
        }
        serde_json::from_str(&text).map_err(|e| transient(format!("unexpected answer ({e})")))
    }

    fn token(&self) -> Result<String, ChannelError> {
        if let Some((t, until)) = &self.state.lock_or_recover().token {
            if self.clock.instant() < *until {
                return Ok(t.clone());
            }
        }
        let url = format!("{}/cgi-bin/gettoken", self.base);
        let a = Self::read(
            self.http
                .get(&url)
                .query("corpid", &self.corp_id)
                .query("corpsecret", &self.secret)
                .call(),
        )?;
        match a.errcode {
            0 if !a.access_token.is_empty() => {
                let life = Duration::from_secs(a.expires_in.saturating_sub(300).max(60));
                self.state.lock_or_recover().token =
                    Some((a.access_token.clone(), self.clock.instant() + life));
                tracing::info!(
                    message = "WeCom access token fetched.",
                    expires_in = a.expires_in
                );
                Ok(a.access_token)
            }
            -1 => Err(transient("gettoken: system busy")),
            code => Err(ChannelError::Permanent(format!(
                "wecom gettoken: errcode {code}: {} (check corp_id and the secret)",
                a.errmsg
            ))),
        }
    }

    /// One text message to `members`; returns the ones WeCom does not know.
    fn call(&self, members: &[String], content: &str) -> Result<Vec<String>, ChannelError> {
        let body = serde_json::json!({
            "touser": members.join("|"),
            "msgtype": "text",
            "agentid": self.agent_id,
            "text": { "content": content },
        });
        for _ in 0..2 {
            let token = self.token()?;
            let url = format!("{}/cgi-bin/message/send", self.base);
            let a = Self::read(
                self.http
                    .post(&url)
                    .query("access_token", &token)
                    .send_json(&body),
            )?;
            match a.errcode {
                0 => {
                    return Ok(a
                        .invaliduser
                        .split('|')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect())
                }
                40014 | 42001 | 41001 => {
                    tracing::info!(
                        message = "WeCom token refused; fetching a new one.",
                        errcode = a.errcode
                    );
                    self.state.lock_or_recover().token = None;
                }
                -1 | 45009 | 45033 => {
                    return Err(transient(format!("errcode {}: {}", a.errcode, a.errmsg)))
                }
                code => {
                    return Err(ChannelError::Permanent(format!(
                        "wecom: errcode {code}: {}",
                        a.errmsg
                    )))
                }
            }
        }
        Err(transient("the access token was refused twice"))
    }
}

/// Texts joined for one member, each piece within WeCom's length limit.
fn merge(texts: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for t in texts {
        let t: String = if t.len() > MAX_TEXT {
            // Cut at a character boundary.
            let mut end = MAX_TEXT;
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            t[..end].to_string()
        } else {
            t.clone()
        };
        if !cur.is_empty() && cur.len() + 2 + t.len() > MAX_TEXT {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push_str("\n\n");
        }
        cur.push_str(&t);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl Channel for WeCom {
    fn name(&self) -> &'static str {
        "wecom"
    }

    fn send(&self, msg: &Outgoing) -> Result<Delivered, ChannelError> {
        let mut d = Delivered::default();
        for (role, text) in &msg.messages {
            let mut now_ok = Vec::new();
            for r in msg.recipients.iter().filter(|r| r.role == *role) {
                let Some(member) = r.wecom_id.clone() else {
                    d.invalid_recipients.push(format!("{}: no WeCom id", r.id));
                    continue;
                };
                // A retry after a partial delivery: this member has it (or has it queued).
                if self.sent.contains(msg, &member) {
                    continue;
                }
                let mut st = self.state.lock_or_recover();
                // Earlier messages wait for this member: keep the order, queue behind them.
                if st.pending.contains_key(&member)
                    || !st.limiter.allows(&member, self.clock.instant())
                {
                    st.pending
                        .entry(member.clone())
                        .or_default()
                        .push(text.clone());
                    self.sent.insert(msg, &member);
                    d.deferred.push(member);
                } else {
                    now_ok.push(member);
                }
            }
            if now_ok.is_empty() {
                continue;
            }
            let invalid = self.call(&now_ok, text)?;
            let now = self.clock.instant();
            let mut st = self.state.lock_or_recover();
            for m in now_ok.iter().filter(|m| !invalid.contains(m)) {
                st.limiter.record(m, now);
                self.sent.insert(msg, m);
            }
            d.invalid_recipients.extend(invalid);
        }
        Ok(d)
    }

    fn flush(&self) -> Vec<Merged> {
        let now = self.clock.instant();
        let ready: Vec<(String, Vec<String>)> = {
            let mut st = self.state.lock_or_recover();
            st.limiter.prune(now);
            let members: Vec<String> = st.pending.keys().cloned().collect();
            let mut ready = Vec::new();
            for m in members {
                if st.limiter.allows(&m, now) {
                    if let Some(texts) = st.pending.remove(&m) {
                        ready.push((m, texts));
                    }
                }
            }
            ready
        };
        let mut out = Vec::new();
        for (member, texts) in ready {
            let pieces = merge(&texts);
            let mut sent = 0;
            let mut result = Ok(Delivered::default());
            for (i, piece) in pieces.iter().enumerate() {
                if i > 0
                    && !self
                        .state
                        .lock_or_recover()
                        .limiter
                        .allows(&member, self.clock.instant())
                {
                    break;
                }
                match self.call(std::slice::from_ref(&member), piece) {
                    Ok(invalid) => {
                        self.state
                            .lock_or_recover()
                            .limiter
                            .record(&member, self.clock.instant());
                        sent += 1;
                        if let Ok(d) = &mut result {
                            d.invalid_recipients.extend(invalid);
                        }
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            if sent < pieces.len() {
                // Whatever did not go out waits for the next window, in order.
                let rest: Vec<String> = pieces[sent..].to_vec();
                let mut st = self.state.lock_or_recover();
                let q = st.pending.entry(member.clone()).or_default();
                let later = std::mem::take(q);
                *q = rest;
                q.extend(later);
            }
            out.push(Merged {
                member,
                alerts: texts.len(),
                result,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_texts_stay_within_the_length_limit_and_keep_everything() {
        let texts: Vec<String> = (0..100)
            .map(|i| format!("发热：学生{i}，38.{} °C。", i % 10))
            .collect();
        let pieces = merge(&texts);
        assert!(pieces.iter().all(|p| p.len() <= MAX_TEXT));
        let joined = pieces.join("\n\n");
        for t in &texts {
            assert!(joined.contains(t.as_str()));
        }
        let long = "字".repeat(1000);
        assert!(merge(&[long]).iter().all(|p| p.len() <= MAX_TEXT));
    }
}
