//! Central's systemd contract: the unit's hardening, and `serve` speaking the notify protocol.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use checkpoint_e2e::broker::{free_port, Pki};
use checkpoint_e2e::central::CentralProc;
use checkpoint_e2e::{workspace, TempDir};

#[test]
fn central_unit_is_notify_with_watchdog_and_hardened() {
    let unit = workspace().join("systemd/checkpoint-central.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "ExecStartPre=/usr/bin/checkpoint-central check-config /etc/checkpoint/central.toml",
        "ExecStart=/usr/bin/checkpoint-central serve --config /etc/checkpoint/central.toml",
        "Restart=on-failure",
        "StateDirectory=checkpoint-central",
        "User=checkpoint-central",
    ] {
        assert!(text.contains(line), "{line} missing from the unit");
    }
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let report = String::from_utf8_lossy(&out.stdout);
    let level: f32 = report
        .lines()
        .find_map(|l| l.split("checkpoint-central.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {report}"));
    assert!(level <= 2.0, "exposure {level}");
    eprintln!("exposure {level}");
}

#[test]
fn serve_reports_ready_pings_the_watchdog_and_reports_stopping() {
    let dir = TempDir::new("central-notify");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let mut central = CentralProc::start_embedded_full(
        &dir.path().join("central"),
        &pki,
        free_port(),
        "",
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            // WatchdogSec=2 as systemd would pass it: a ping every second.
            ("WATCHDOG_USEC", "2000000"),
        ],
    );
    let mut seen: Vec<String> = Vec::new();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && !(seen.iter().any(|m| m.contains("READY=1"))
            && seen.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2)
    {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
    }
    assert!(
        seen.iter().any(|m| m.contains("READY=1")),
        "{seen:?}\n{}",
        central.log_text()
    );
    assert!(
        seen.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2,
        "{seen:?}"
    );
    assert!(
        central.terminate().unwrap().success(),
        "{}",
        central.log_text()
    );
    let mut stopping = false;
    while let Ok(n) = sock.recv(&mut buf) {
        stopping |= String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1");
    }
    assert!(stopping, "STOPPING=1 on SIGTERM");
}
