//! The systemd contract: the unit's hardening, and the daemon speaking the notify protocol
//! (READY, watchdog pings from the door loop, STOPPING on SIGTERM).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use checkpoint_e2e::broker::free_port;
use checkpoint_e2e::kiosk::{self, BoxSpec, Kiosk};
use checkpoint_e2e::{workspace, TempDir};

#[test]
fn unit_is_notify_with_watchdog_and_hardened() {
    let unit = workspace().join("systemd/checkpointd.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "ExecStartPre=/usr/bin/checkpointd check-config",
        "Restart=on-failure",
        "StateDirectory=checkpoint",
        "User=checkpoint",
        "SupplementaryGroups=video gpio i2c",
    ] {
        assert!(text.contains(line), "{line} missing from the unit");
    }
    let directives: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(
        !directives
            .iter()
            .any(|l| l.contains("network-online.target")),
        "the door must not wait for the network"
    );
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let report = String::from_utf8_lossy(&out.stdout);
    let level: f32 = report
        .lines()
        .find_map(|l| l.split("checkpointd.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {report}"));
    assert!(level <= 2.0, "exposure {level} (README documents 1.5)");
}

#[test]
fn daemon_reports_ready_pings_the_watchdog_and_reports_stopping() {
    let dir = TempDir::new("notify");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // No broker at all: the daemon must still start, run and stop cleanly.
    let spec = BoxSpec {
        port: free_port(),
        ..BoxSpec::new_plain("gate-n", dir.path())
    };
    std::fs::create_dir_all(&spec.frames).unwrap();
    kiosk::blank_frame(&spec.frames.join("0.png"));
    let mut k = Kiosk::start_with_env(&spec, &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())]);
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
        k.log_text()
    );
    assert!(
        seen.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2,
        "{seen:?}"
    );
    let status = k.terminate().unwrap();
    assert!(status.success(), "{}", k.log_text());
    let mut stopping = false;
    while let Ok(n) = sock.recv(&mut buf) {
        stopping |= String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1");
    }
    assert!(stopping, "STOPPING=1 on SIGTERM");
    let safe = std::fs::read_to_string(&spec.gate_record).unwrap();
    assert!(
        safe.trim_end().ends_with("\"signal\":\"safe\"}"),
        "gate left in its safe state: {safe}"
    );
}
