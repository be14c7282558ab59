//! Alerts end to end: a box with a simulated thermometer reads 36.6 and then 38.2 °C; central
//! notifies the person of each reading and the person, counsellor and department head of the
//! fever through a webhook (signature checked here, the first delivery refused to force a
//! retry) and by e-mail to a real SMTP server (STARTTLS with the site CA, the password from
//! the environment, routed to the people's roles only); the box stopped raises `box_offline`
//! for facilities. Every attempt is in the log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use checkpoint_e2e::broker::{free_port, Pki};
use checkpoint_e2e::central::{wait_until, CentralProc};
use checkpoint_e2e::kiosk::{self, BoxSpec, Kiosk};
use checkpoint_e2e::smtp::{SmtpSink, PASSWORD, USER};
use checkpoint_e2e::TempDir;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &str = "webhook-secret-0123456789";

/// What the webhook server accepted: (signature valid, JSON body).
type Seen = Arc<Mutex<Vec<(bool, serde_json::Value)>>>;

/// A small HTTP server: checks the HMAC, answers 503 to the first request, 200 afterwards.
fn webhook_server() -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let (mut len, mut sig) = (0usize, String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("x-checkpoint-signature:") {
                    sig = line.split_once(':').unwrap().1.trim().to_string();
                }
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(&body);
            let want: String = mac
                .finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let valid = sig == format!("sha256={want}");
            if let Ok(v) = serde_json::from_slice(&body) {
                s.lock().unwrap().push((valid, v));
            }
            let status = if n == 0 {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (port, seen)
}

fn received(seen: &Seen, kind: &str, raised: bool) -> Vec<serde_json::Value> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(_, v)| v["alert"]["kind"] == kind && v["alert"]["raised"] == raised)
        .map(|(_, v)| v.clone())
        .collect()
}

#[test]
fn a_fever_reaches_person_counsellor_and_head_and_a_stopped_box_raises_offline() {
    let dir = TempDir::new("alerts");
    let (hook_port, seen) = webhook_server();
    std::fs::write(dir.path().join("hook.secret"), SECRET).unwrap();
    std::fs::set_permissions(
        dir.path().join("hook.secret"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let smtp = SmtpSink::start(&dir.path().join("smtp"), &pki);
    let port = free_port();
    let extra = format!(
        "[alerts]\nlanguage = \"en\"\ncheck_every = \"1s\"\n\
         facilities = [{{ id = \"facilities\", email = \"desk@campus.example.org\" }}]\n\
         webhook = {{ url = \"http://127.0.0.1:{hook_port}/hook\", secret_file = \"{}\" }}\n\
         [alerts.email]\nserver = \"localhost\"\nport = {}\nfrom = \"checkpoint@campus.example.org\"\n\
         username = \"{USER}\"\npassword_env = \"CHECKPOINT_SMTP_PASSWORD\"\nca_file = \"{}\"\n\
         roles = [\"person\", \"counsellor\", \"department_head\"]\n\
         [trust]\nkeys = [\"{}\"]\nsigning_key = \"{}\"\n",
        dir.path().join("hook.secret").display(),
        smtp.port,
        pki.ca().display(),
        dir.path().join("keys/passcode.pub").display(),
        pki.config_key().display()
    );
    let keys = kiosk::keygen(&dir.path().join("keys"));
    let mut central = CentralProc::start_embedded_full(
        &dir.path().join("central"),
        &pki,
        port,
        &extra,
        &[("CHECKPOINT_SMTP_PASSWORD", PASSWORD)],
    );
    central.command(&["boxes"]);
    let people = dir.path().join("people.csv");
    std::fs::write(
        &people,
        "id,name,department,class,counsellor,department_head,email\n\
         s-1,Student One,Physics,P1,c-1,h-1,s1@campus.example.org\n\
         s-2,Student Two,Physics,P1,c-1,h-1,s2@campus.example.org\n\
         c-1,Counsellor,Physics,,,,c1@campus.example.org\nh-1,Head,Physics,,,,h1@campus.example.org\n",
    )
    .unwrap();
    central.command(&["roster", "import", "--people", people.to_str().unwrap()]);

    let spec = BoxSpec {
        bootstrap_key: Some(keys.join("passcode.pub")),
        fps: 2.0,
        readings: vec![36.6, 38.2],
        ..BoxSpec::tls_to("gate-t", &dir.path().join("box"), port, &pki)
    };
    std::fs::create_dir_all(&spec.frames).unwrap();
    kiosk::blank_frame(&spec.frames.join("000.png"));
    for (i, p) in ["s-1", "s-2"].iter().enumerate() {
        let code = kiosk::issue(&keys, p, "green", "1h", None);
        kiosk::qr_frame(&code, &spec.frames.join(format!("{:03}.png", i + 1)));
    }
    let mut k = Kiosk::start(&spec);

    // The first delivery is refused (503) and retried after 5 s.
    wait_until(Duration::from_secs(40), "the fever at the webhook", || {
        !received(&seen, "fever", true).is_empty()
            && received(&seen, "temperature", true).len() >= 2
    });
    let fever = &received(&seen, "fever", true)[0];
    assert_eq!(fever["alert"]["subject"], "s-2");
    assert_eq!(
        fever["alert"]["value"].as_f64().map(|v| (v * 10.0).round()),
        Some(382.0)
    );
    let to: Vec<&str> = fever["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(to, ["s-2", "c-1", "h-1"]);
    let messages = fever["messages"].to_string();
    assert!(
        messages.contains("Fever: Student Two (") && messages.contains("38.2"),
        "{messages}"
    );
    assert!(
        seen.lock().unwrap().iter().all(|(valid, _)| *valid),
        "every signature checks"
    );

    // The same fever by e-mail, one message each, over TLS with the login.
    wait_until(Duration::from_secs(20), "the fever by e-mail", || {
        smtp.received()
            .iter()
            .filter(|m| m.data.contains("Subject: [Checkpoint] Fever"))
            .count()
            >= 3
    });
    let mails = smtp.received();
    assert!(mails.iter().all(|m| m.tls && m.login));
    let mut fever_to: Vec<String> = mails
        .iter()
        .filter(|m| m.data.contains("Subject: [Checkpoint] Fever"))
        .flat_map(|m| m.rcpt_tos.clone())
        .collect();
    fever_to.sort();
    assert_eq!(
        fever_to,
        [
            "c1@campus.example.org",
            "h1@campus.example.org",
            "s2@campus.example.org"
        ]
    );

    // The box stops: offline for facilities.
    assert!(k.terminate().unwrap().success());
    wait_until(
        Duration::from_secs(30),
        "box_offline at the webhook",
        || !received(&seen, "box_offline", true).is_empty(),
    );
    let offline = &received(&seen, "box_offline", true)[0];
    assert_eq!(offline["recipients"][0]["id"], "facilities");
    assert_eq!(offline["alert"]["box_id"], "gate-t");
    // E-mail serves the people's roles only: facilities hear of boxes through the webhook.
    assert!(!smtp
        .received()
        .iter()
        .any(|m| m.rcpt_tos.contains(&"desk@campus.example.org".to_string())));

    // The log: every alert sent, one of them after a retry (5 s later); nothing failed.
    wait_until(Duration::from_secs(30), "no delivery pending", || {
        let log = central.query(&["notifications", "--limit", "100"]);
        !log.as_array()
            .unwrap()
            .iter()
            .any(|r| r["outcome"] == "pending")
    });
    let log = central.query(&["notifications", "--limit", "100"]);
    let rows = log.as_array().unwrap();
    let sent = |kind: &str| {
        rows.iter()
            .filter(|r| r["kind"] == kind && r["outcome"] == "sent")
            .count()
    };
    // Through both channels, except box health: the webhook only.
    assert_eq!(sent("fever"), 2, "{log}");
    assert_eq!(sent("temperature"), 4, "{log}");
    assert_eq!(sent("box_offline"), 1, "{log}");
    assert!(
        rows.iter().any(|r| r["attempts"].as_u64() >= Some(2)),
        "{log}"
    );
    assert!(!rows.iter().any(|r| r["outcome"] == "failed"), "{log}");
    assert!(central.terminate().unwrap().success());
}
