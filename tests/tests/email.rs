//! The e-mail channel against a real SMTP server (aiosmtpd) that demands STARTTLS with the
//! site's own CA and a login: messages arrive one per recipient with the text of their role, a
//! refused mailbox is logged as an invalid recipient, a busy server is retried without sending
//! anyone theirs twice, and a wrong password or an untrusted server certificate fails clearly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use checkpoint_central::alerts::email::{Email, Settings, TlsMode};
use checkpoint_central::alerts::route::{Language, Recipient, Role};
use checkpoint_central::alerts::rules::{Alert, AlertKind};
use checkpoint_central::alerts::webhook::{Channel, ChannelError, Outgoing};
use checkpoint_e2e::broker::Pki;
use checkpoint_e2e::smtp::{SmtpSink, PASSWORD, USER};
use checkpoint_e2e::TempDir;

fn settings(sink: &SmtpSink, pki: &Pki) -> Settings {
    Settings {
        server: "localhost".into(),
        port: sink.port,
        tls: TlsMode::Starttls,
        from: "Checkpoint <checkpoint@campus.example.org>".into(),
        login: Some((USER.into(), PASSWORD.into())),
        ca_pem: Some(std::fs::read(pki.ca()).unwrap()),
        timeout: Duration::from_secs(10),
        language: Language::En,
    }
}

fn recipient(role: Role, id: &str, email: Option<&str>) -> Recipient {
    Recipient {
        role,
        id: id.into(),
        wecom_id: None,
        email: email.map(str::to_string),
    }
}

fn fever() -> Outgoing {
    Outgoing {
        alert: Alert {
            key: "fever:s-2".into(),
            kind: AlertKind::Fever,
            raised: true,
            ts_ms: 1_790_000_000_000,
            subject: Some("s-2".into()),
            checkpoint: Some("library".into()),
            box_id: Some("lib-in".into()),
            value: Some(38.4),
        },
        recipients: vec![
            recipient(Role::Person, "s-2", Some("s2@campus.example.org")),
            recipient(
                Role::Counsellor,
                "c-1",
                Some("Counsellor One <c1@campus.example.org>"),
            ),
            recipient(Role::DepartmentHead, "h-1", Some("h1@refused.example.org")),
            recipient(Role::DepartmentHead, "h-2", None),
        ],
        messages: vec![
            (Role::Person, "Your temperature 38.4 °C at library.".into()),
            (
                Role::Counsellor,
                "Fever: s-2 (Li Wei), 38.4 °C at library.".into(),
            ),
            (
                Role::DepartmentHead,
                "Fever in your department: 38.4 °C.".into(),
            ),
        ],
    }
}

#[test]
fn messages_arrive_over_starttls_with_a_login_one_per_recipient() {
    let dir = TempDir::new("email");
    let pki = Pki::new(&dir.path().join("pki"));
    let sink = SmtpSink::start(&dir.path().join("smtp"), &pki);
    let email = Email::new(settings(&sink, &pki)).unwrap();

    let d = email.send(&fever()).unwrap();
    let got = sink.received();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|m| m.tls && m.login), "{got:?}");
    assert!(got
        .iter()
        .all(|m| m.mail_from == "checkpoint@campus.example.org"));
    assert_eq!(got[0].rcpt_tos, ["s2@campus.example.org"]);
    assert_eq!(got[1].rcpt_tos, ["c1@campus.example.org"]);
    // Each reads their own role's text, nobody sees another recipient.
    assert!(
        got[0].data.contains("Your temperature 38.4"),
        "{}",
        got[0].data
    );
    assert!(!got[0].data.contains("Li Wei"));
    assert!(got[1].data.contains("Li Wei"), "{}", got[1].data);
    assert!(!got[1].data.contains("s2@campus"));
    assert!(got[0].data.contains("Subject: [Checkpoint] Fever"));
    // The refused mailbox and the one without an address are logged, not retried.
    assert_eq!(d.invalid_recipients.len(), 2, "{d:?}");
    assert!(d.invalid_recipients.iter().any(|r| r.starts_with("h-1:")));
    assert!(d
        .invalid_recipients
        .iter()
        .any(|r| r.starts_with("h-2: no e-mail address")));
}

#[test]
fn a_busy_server_is_retried_and_nobody_gets_theirs_twice() {
    let dir = TempDir::new("email");
    let pki = Pki::new(&dir.path().join("pki"));
    let sink = SmtpSink::start(&dir.path().join("smtp"), &pki);
    let email = Email::new(settings(&sink, &pki)).unwrap();
    let mut one = fever();
    one.recipients.truncate(2);
    one.messages.truncate(2);

    sink.set_busy(true);
    match email.send(&one) {
        Err(ChannelError::Transient(e)) => assert!(e.contains("451"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(sink.received().is_empty());
    sink.set_busy(false);
    email.send(&one).unwrap();
    assert_eq!(sink.received().len(), 2);
    // The dispatcher's retry of an alert change that went through sends nothing again.
    email.send(&one).unwrap();
    assert_eq!(sink.received().len(), 2);
    // The same alert raised again later is a new message.
    one.alert.ts_ms += 60_000;
    email.send(&one).unwrap();
    assert_eq!(sink.received().len(), 4);
}

#[test]
fn a_wrong_password_or_an_untrusted_server_fails_clearly_and_sends_nothing() {
    let dir = TempDir::new("email");
    let pki = Pki::new(&dir.path().join("pki"));
    let sink = SmtpSink::start(&dir.path().join("smtp"), &pki);

    let mut s = settings(&sink, &pki);
    s.login = Some((USER.into(), "wrong".into()));
    match Email::new(s).unwrap().send(&fever()) {
        Err(ChannelError::Permanent(e)) => assert!(e.contains("535"), "{e}"),
        other => panic!("{other:?}"),
    }
    // Without the site CA the server's certificate is not trusted: nothing is sent in clear.
    let mut s = settings(&sink, &pki);
    s.ca_pem = None;
    match Email::new(s).unwrap().send(&fever()) {
        Err(e) => assert!(e.to_string().to_lowercase().contains("certificate"), "{e}"),
        Ok(d) => panic!("sent to an untrusted server: {d:?}"),
    }
    assert!(sink.received().is_empty());
}
