//! E-mail over SMTP with TLS (`lettre`).
//!
//! Each recipient gets their own message (nobody sees who else was told), with the text of their
//! role. TLS is always on: STARTTLS (port 587) or TLS from the first byte (465), checked against
//! the web PKI roots and, for a site's own mail server, an extra CA file.
//!
//! - A recipient the server refuses for good (550, 551, 553) is an invalid recipient, logged
//!   against the alert; the others still get theirs. Other 5xx answers (a refused login or
//!   sender) fail the delivery for good.
//! - A 4xx answer, a refused connection or a timeout is transient: the dispatcher retries the
//!   alert. Recipients who already got it are remembered for an hour and not sent it again.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use super::route::{Language, Recipient};
use super::rules::AlertKind;
use super::webhook::{Channel, ChannelError, Delivered, Delivered1h, Outgoing};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS; refused if the server does not offer it.
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

/// What the channel needs, secrets already read.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: String,
    pub port: u16,
    pub tls: TlsMode,
    pub from: String,
    pub login: Option<(String, String)>,
    /// PEM of an extra CA to trust besides the web PKI roots.
    pub ca_pem: Option<Vec<u8>>,
    pub timeout: Duration,
    pub language: Language,
}

pub struct Email {
    transport: SmtpTransport,
    from: Mailbox,
    language: Language,
    sent: Delivered1h,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Email {
    pub fn new(s: Settings) -> Result<Email, String> {
        let from: Mailbox = s
            .from
            .parse()
            .map_err(|e| format!("from address {:?}: {e}", s.from))?;
        let mut params = TlsParameters::builder(s.server.clone());
        if let Some(pem) = &s.ca_pem {
            // lettre takes a PEM without any certificate in it as an empty list.
            if !String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err("CA file: no PEM certificate in it".into());
            }
            let cert = Certificate::from_pem(pem).map_err(|e| format!("CA file: {e}"))?;
            params = params.add_root_certificate(cert);
        }
        let params = params
            .build_rustls()
            .map_err(|e| format!("TLS for {}: {e}", s.server))?;
        let tls = match s.tls {
            TlsMode::Starttls => Tls::Required(params),
            TlsMode::Tls => Tls::Wrapper(params),
        };
        let mut b = SmtpTransport::builder_dangerous(s.server.as_str())
            .port(s.port)
            .tls(tls)
            .timeout(Some(s.timeout));
        if let Some((user, password)) = s.login {
            b = b.credentials(Credentials::new(user, password));
        }
        Ok(Email {
            transport: b.build(),
            from,
            language: s.language,
            sent: Delivered1h::default(),
        })
    }

    fn subject(&self, msg: &Outgoing) -> String {
        let zh = self.language == Language::Zh;
        let what = match (msg.alert.kind, zh) {
            (AlertKind::Temperature, false) => "Temperature reading",
            (AlertKind::Temperature, true) => "体温记录",
            (AlertKind::Fever, false) => "Fever",
            (AlertKind::Fever, true) => "发热",
            (AlertKind::Crowding, false) => "Crowding",
            (AlertKind::Crowding, true) => "人员聚集",
            (AlertKind::Digest, false) => "Alerts",
            (AlertKind::Digest, true) => "告警汇总",
            (_, false) => "Box health",
            (_, true) => "设备状态",
        };
        let state = match (msg.alert.raised, zh) {
            (true, _) => "",
            (false, false) => " (resolved)",
            (false, true) => "（已解除）",
        };
        format!("[Checkpoint] {what}{state}")
    }

    fn message(&self, to: Mailbox, subject: &str, text: &str) -> Result<Message, ChannelError> {
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text.to_string())
            .map_err(|e| ChannelError::Permanent(format!("email: {e}")))
    }
}

/// 550, 551 and 553 are about the mailbox: that recipient, not the whole channel.
fn refuses_mailbox(e: &lettre::transport::smtp::Error) -> bool {
    e.status()
        .is_some_and(|c| matches!(c.to_string().as_str(), "550" | "551" | "553"))
}

fn address(r: &Recipient) -> Result<Mailbox, String> {
    let Some(email) = r.email.as_deref().filter(|e| !e.trim().is_empty()) else {
        return Err(format!("{}: no e-mail address", r.id));
    };
    email
        .trim()
        .parse::<Mailbox>()
        .map_err(|e| format!("{}: e-mail address {email:?}: {e}", r.id))
}

impl Channel for Email {
    fn name(&self) -> &'static str {
        "email"
    }

    fn send(&self, msg: &Outgoing) -> Result<Delivered, ChannelError> {
        let subject = self.subject(msg);
        let mut d = Delivered::default();
        for (role, text) in &msg.messages {
            for r in msg.recipients.iter().filter(|r| r.role == *role) {
                let to = match address(r) {
                    Ok(to) => to,
                    Err(e) => {
                        d.invalid_recipients.push(e);
                        continue;
                    }
                };
                let addr = to.email.to_string();
                if self.sent.contains(msg, &addr) {
                    continue;
                }
                let m = self.message(to, &subject, text)?;
                match self.transport.send(&m) {
                    Ok(_) => self.sent.insert(msg, &addr),
                    Err(e) if e.is_permanent() && refuses_mailbox(&e) => {
                        d.invalid_recipients.push(format!("{}: {e}", r.id));
                    }
                    // A refused login or sender will not heal by retrying.
                    Err(e) if e.is_permanent() => {
                        return Err(ChannelError::Permanent(format!("email: {e}")))
                    }
                    Err(e) => return Err(ChannelError::Transient(format!("email: {e}"))),
                }
            }
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::route::Role;
    use crate::alerts::rules::Alert;

    fn outgoing(emails: &[Option<&str>]) -> Outgoing {
        Outgoing {
            alert: Alert {
                key: "fever:s-1".into(),
                kind: AlertKind::Fever,
                raised: true,
                ts_ms: 1,
                subject: Some("s-1".into()),
                checkpoint: Some("lib".into()),
                box_id: None,
                value: Some(38.2),
            },
            recipients: emails
                .iter()
                .enumerate()
                .map(|(i, e)| Recipient {
                    role: Role::Counsellor,
                    id: format!("c-{i}"),
                    wecom_id: None,
                    email: e.map(str::to_string),
                })
                .collect(),
            messages: vec![(Role::Counsellor, "发热".into())],
        }
    }

    fn settings(port: u16) -> Settings {
        Settings {
            server: "127.0.0.1".into(),
            port,
            tls: TlsMode::Starttls,
            from: "Checkpoint <checkpoint@example.org>".into(),
            login: None,
            ca_pem: None,
            timeout: Duration::from_millis(500),
            language: Language::En,
        }
    }

    #[test]
    fn recipients_without_a_usable_address_are_invalid_and_nothing_is_sent_to_them() {
        let e = Email::new(settings(9)).unwrap();
        let d = e.send(&outgoing(&[None, Some("not an address")])).unwrap();
        assert_eq!(d.invalid_recipients.len(), 2, "{d:?}");
        assert!(d.invalid_recipients[0].contains("no e-mail address"));
        assert!(d.invalid_recipients[1].contains("c-1"));
    }

    #[test]
    fn a_server_that_is_not_there_is_a_transient_failure() {
        // Port 9 (discard) is closed on a test machine: the connection is refused.
        let e = Email::new(settings(9)).unwrap();
        match e.send(&outgoing(&[Some("c@example.org")])) {
            Err(ChannelError::Transient(m)) => assert!(m.starts_with("email:"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_from_address_or_ca_is_a_clear_error() {
        let mut s = settings(9);
        s.from = "nobody".into();
        assert!(Email::new(s).unwrap_err().contains("from address"));
        let mut s = settings(9);
        s.ca_pem = Some(b"garbage".to_vec());
        assert!(Email::new(s).unwrap_err().contains("CA file"));
    }
}
