//! The WeCom channel against a local server that behaves like the WeCom API: tokens that
//! expire or are revoked (42001, 40014), `invaliduser` for people not in its directory, a busy
//! answer (-1), and members' messages past 30 per window dropped silently (and counted here as
//! violations). The window is 2 s instead of a minute so the test runs in seconds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use checkpoint_central::alerts::route::{Recipient, Role};
use checkpoint_central::alerts::rules::{Alert, AlertKind};
use checkpoint_central::alerts::webhook::{Channel, ChannelError, Outgoing};
use checkpoint_central::alerts::wecom::limit::Limits;
use checkpoint_central::alerts::wecom::WeCom;

const WINDOW: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Api {
    gettoken_calls: usize,
    tokens: HashMap<String, Instant>,
    /// Messages each member received.
    inbox: HashMap<String, Vec<String>>,
    /// When each member's messages arrived (for the rate limit).
    times: HashMap<String, Vec<Instant>>,
    violations: usize,
    /// Answer the next send calls with -1 (system busy).
    busy: usize,
    /// Expire every token now.
    expire_all: bool,
    /// Answer the next send call with something that is not JSON.
    garbage: bool,
    /// Answer -1 (busy) to sends addressed to this member.
    busy_for: Option<String>,
}

type Shared = Arc<Mutex<Api>>;

fn answer(api: &Shared, method: &str, path: &str, body: &[u8]) -> serde_json::Value {
    let mut a = api.lock().unwrap();
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    let q: HashMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    match (method, route) {
        ("GET", "/cgi-bin/gettoken") => {
            a.gettoken_calls += 1;
            if q.get("corpid") != Some(&"corp") || q.get("corpsecret") != Some(&"app-secret") {
                return serde_json::json!({"errcode": 40001, "errmsg": "invalid credential"});
            }
            let token = format!("tok-{}", a.gettoken_calls);
            a.tokens
                .insert(token.clone(), Instant::now() + Duration::from_secs(7200));
            serde_json::json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200})
        }
        ("POST", "/cgi-bin/message/send") => {
            if std::mem::take(&mut a.expire_all) {
                for t in a.tokens.values_mut() {
                    *t = Instant::now();
                }
            }
            let token = q.get("access_token").copied().unwrap_or_default();
            match a.tokens.get(token) {
                None => {
                    return serde_json::json!({"errcode": 40014, "errmsg": "invalid access_token"})
                }
                Some(t) if *t <= Instant::now() => {
                    return serde_json::json!({"errcode": 42001, "errmsg": "access_token expired"})
                }
                _ => {}
            }
            if std::mem::take(&mut a.garbage) {
                return serde_json::json!("<html>502 Bad Gateway</html>");
            }
            if a.busy > 0 {
                a.busy -= 1;
                return serde_json::json!({"errcode": -1, "errmsg": "system busy"});
            }
            if let Some(m) = &a.busy_for {
                let v: serde_json::Value = serde_json::from_slice(body).unwrap();
                if v["touser"].as_str().unwrap().split('|').any(|t| t == m) {
                    return serde_json::json!({"errcode": -1, "errmsg": "system busy"});
                }
            }
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            let text = v["text"]["content"].as_str().unwrap().to_string();
            let known: HashSet<&str> = ["c1", "s1", "h1"].into();
            let mut invalid = Vec::new();
            for m in v["touser"].as_str().unwrap().split('|') {
                if !known.contains(m) {
                    invalid.push(m.to_string());
                    continue;
                }
                let now = Instant::now();
                let times = a.times.entry(m.to_string()).or_default();
                times.retain(|t| now.duration_since(*t) < WINDOW);
                if times.len() >= 30 {
                    // WeCom drops it and says nothing.
                    a.violations += 1;
                    continue;
                }
                times.push(now);
                a.inbox.entry(m.to_string()).or_default().push(text.clone());
            }
            serde_json::json!({"errcode": 0, "errmsg": "ok", "invaliduser": invalid.join("|")})
        }
        _ => serde_json::json!({"errcode": 404, "errmsg": "no such API"}),
    }
}

fn server() -> (String, Shared) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let api: Shared = Arc::default();
    let a = api.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut first = String::new();
            r.read_line(&mut first).unwrap();
            let mut parts = first.split_whitespace();
            let (method, path) = (
                parts.next().unwrap_or("").to_string(),
                parts.next().unwrap_or("").to_string(),
            );
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let out = answer(&a, &method, &path, &body).to_string();
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{out}",
                out.len()
            );
        }
    });
    (base, api)
}

fn fever(n: usize, to: &[&str]) -> Outgoing {
    Outgoing {
        alert: Alert {
            key: format!("fever:{n}"),
            kind: AlertKind::Fever,
            raised: true,
            ts_ms: 1_800_000_000_000,
            subject: Some(format!("s-{n}")),
            checkpoint: Some("lib".into()),
            box_id: Some("gate-1".into()),
            value: Some(38.2),
        },
        recipients: to
            .iter()
            .map(|m| Recipient {
                role: Role::Counsellor,
                id: format!("id-{m}"),
                wecom_id: Some(m.to_string()),
                email: None,
            })
            .collect(),
        messages: vec![(Role::Counsellor, format!("Fever: student {n}, 38.2 °C."))],
    }
}

fn channel(base: &str) -> WeCom {
    WeCom::new(
        base,
        "corp",
        "app-secret",
        1000002,
        Limits {
            minute: WINDOW,
            ..Limits::default()
        },
        Duration::from_secs(5),
    )
}

#[test]
fn a_token_past_its_own_lifetime_by_centrals_clock_is_fetched_again() {
    let (base, api) = server();
    let clock = checkpoint_link::clock::ManualClock::starting_at(time::OffsetDateTime::now_utc());
    let w = channel(&base).with_clock(clock.clone());
    w.send(&fever(0, &["s1"])).unwrap();
    // WeCom says 7200 s; central keeps it 300 s less.
    clock.advance(Duration::from_secs(6800));
    w.send(&fever(1, &["s1"])).unwrap();
    assert_eq!(api.lock().unwrap().gettoken_calls, 1, "still fresh");
    clock.advance(Duration::from_secs(200));
    w.send(&fever(2, &["s1"])).unwrap();
    assert_eq!(
        api.lock().unwrap().gettoken_calls,
        2,
        "refetched before WeCom would refuse it"
    );
    assert_eq!(api.lock().unwrap().inbox["s1"].len(), 3);
}

#[test]
fn tokens_are_cached_refreshed_and_invalid_recipients_reported() {
    let (base, api) = server();
    let w = channel(&base);
    for n in 0..3 {
        w.send(&fever(n, &["s1"])).unwrap();
    }
    assert_eq!(
        api.lock().unwrap().gettoken_calls,
        1,
        "one token for three messages"
    );
    // Expired (42001): a new token, and the message still goes out.
    api.lock().unwrap().expire_all = true;
    w.send(&fever(3, &["s1"])).unwrap();
    assert_eq!(api.lock().unwrap().gettoken_calls, 2);
    // Revoked (40014: the server forgets every token).
    api.lock().unwrap().tokens.clear();
    w.send(&fever(4, &["s1"])).unwrap();
    assert_eq!(api.lock().unwrap().gettoken_calls, 3);
    assert_eq!(api.lock().unwrap().inbox["s1"].len(), 5);
    // Someone WeCom does not know is reported, the others get it.
    let d = w.send(&fever(5, &["h1", "ghost"])).unwrap();
    assert_eq!(d.invalid_recipients, ["ghost"]);
    assert_eq!(api.lock().unwrap().inbox["h1"].len(), 1);
    // Busy: a transient error the dispatcher retries; the retry succeeds.
    api.lock().unwrap().busy = 1;
    assert!(matches!(
        w.send(&fever(6, &["h1"])),
        Err(ChannelError::Transient(_))
    ));
    w.send(&fever(6, &["h1"])).unwrap();
    assert_eq!(api.lock().unwrap().inbox["h1"].len(), 2);
    // Garbage instead of an answer: transient, no panic; the next try goes through.
    api.lock().unwrap().garbage = true;
    assert!(matches!(
        w.send(&fever(8, &["h1"])),
        Err(ChannelError::Transient(_))
    ));
    w.send(&fever(8, &["h1"])).unwrap();
    // Partly delivered (the person got it, the counsellor's call failed): the retry sends the
    // counsellor theirs and the person nothing again.
    let mut two = fever(9, &["c1"]);
    two.recipients.push(Recipient {
        role: Role::Person,
        id: "id-s1".into(),
        wecom_id: Some("s1".into()),
        email: None,
    });
    two.messages
        .insert(0, (Role::Person, "Your temperature: 38.2 °C.".into()));
    let before = api.lock().unwrap().inbox["s1"].len();
    api.lock().unwrap().busy_for = Some("c1".into());
    assert!(matches!(w.send(&two), Err(ChannelError::Transient(_))));
    api.lock().unwrap().busy_for = None;
    w.send(&two).unwrap();
    let a = api.lock().unwrap();
    assert_eq!(a.inbox["s1"].len(), before + 1, "the person once");
    assert_eq!(a.inbox["c1"].len(), 1, "the counsellor once");
    drop(a);
    // Wrong credentials are permanent.
    let wrong = WeCom::new(
        &base,
        "corp",
        "bad",
        1,
        Limits::default(),
        Duration::from_secs(5),
    );
    assert!(matches!(
        wrong.send(&fever(7, &["h1"])),
        Err(ChannelError::Permanent(_))
    ));
}

#[test]
fn a_burst_of_100_fevers_for_one_counsellor_stays_within_limits_and_nothing_is_lost() {
    let (base, api) = server();
    let w = channel(&base);
    let mut deferred = 0;
    for n in 0..100 {
        deferred += w.send(&fever(n, &["c1"])).unwrap().deferred.len();
    }
    assert_eq!(deferred, 70, "30 go out in the first window, 70 wait");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut digests = 0;
    while Instant::now() < deadline {
        let merged = w.flush();
        assert!(merged.iter().all(|m| m.result.is_ok()));
        digests += merged.len();
        let received: usize = api
            .lock()
            .unwrap()
            .inbox
            .get("c1")
            .map(|v| v.iter().map(|t| t.matches("Fever:").count()).sum())
            .unwrap_or(0);
        if received == 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let a = api.lock().unwrap();
    let inbox = &a.inbox["c1"];
    let all = inbox.join("\n");
    for n in 0..100 {
        assert!(all.contains(&format!("student {n},")), "student {n} lost");
    }
    assert_eq!(a.violations, 0, "never past the member's limit");
    assert_eq!(
        digests, 1,
        "the 70 held back go out merged, once the window allows"
    );
    // 30 single messages, then the 70 merged into as few as fit WeCom's 2,048 bytes.
    assert!((31..=33).contains(&inbox.len()), "{}", inbox.len());
    eprintln!(
        "c1 received {} messages for 100 fevers, 0 dropped",
        inbox.len()
    );
}
