//! `checkpoint-admin passcode` issues codes as QR images and `checkpointd scan` reads them back:
//! the real binaries, real PNG files, every verdict the door will see.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on broken fixtures.

use checkpoint_e2e::{run, TempDir};
use checkpoint_protocol::passcode;
use image::Luma;
use qrcode::QrCode;
use serde_json::Value;

const T0: &str = "2026-11-23T08:00:00Z";

fn ok(name: &str, args: &[&str]) -> String {
    let out = run(name, args);
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn scan(args: &[&str]) -> (Vec<Value>, Option<i32>) {
    let out = run("checkpointd", &[&["scan"], args].concat());
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    (lines, out.status.code())
}

fn png(dir: &TempDir, name: &str, text: &str) -> String {
    let img = QrCode::new(text.as_bytes())
        .unwrap()
        .render::<Luma<u8>>()
        .min_dimensions(300, 300)
        .build();
    let path = dir.arg(name);
    img.save(&path).unwrap();
    path
}

struct Issued {
    dir: TempDir,
    token: String,
    png: String,
}

fn issue() -> Issued {
    let dir = TempDir::new("scan");
    ok(
        "checkpoint-admin",
        &["passcode", "keygen", "--out", &dir.arg("keys")],
    );
    let png = dir.arg("code.png");
    let token = ok(
        "checkpoint-admin",
        &[
            "passcode",
            "issue",
            "--key",
            &dir.arg("keys"),
            "--person",
            "p-42",
            "--status",
            "green",
            "--valid",
            "5m",
            "--dependant",
            "p-43",
            "--at",
            T0,
            "--png",
            &png,
        ],
    )
    .trim()
    .to_string();
    Issued { dir, token, png }
}

#[track_caller]
fn check_verdict(lines: &[Value], verdict: &str) {
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["verdict"], verdict, "{}", lines[0]);
}

#[test]
fn issued_code_scans_as_valid_green() {
    let i = issue();
    let trust = i.dir.arg("keys/passcode.pub");
    let (lines, code) = scan(&["--trust", &trust, "--at", "2026-11-23T08:01:00Z", &i.png]);
    assert_eq!(code, Some(0));
    check_verdict(&lines, "valid");
    let line = &lines[0];
    assert_eq!(line["payload"], i.token.as_str());
    assert_eq!(line["pass"]["status"], "green");
    assert_eq!(line["pass"]["subject"], "p-42");
    assert_eq!(line["pass"]["dependants"][0], "p-43");
    assert_eq!(line["pass"]["expires_at"], "2026-11-23T08:05:00Z");

    // A key directory works as --trust too.
    let (lines, _) = scan(&["--trust", &i.dir.arg("keys"), "--at", T0, &i.png]);
    check_verdict(&lines, "valid");
}

#[test]
fn every_failure_has_its_own_reason() {
    let i = issue();
    let trust = i.dir.arg("keys/passcode.pub");
    // The command's old home still takes it and hands it on to checkpoint-admin, saying so.
    let moved = run(
        "checkpoint-central",
        &["passcode", "keygen", "--out", &i.dir.arg("other")],
    );
    let said = String::from_utf8_lossy(&moved.stderr);
    assert!(moved.status.success(), "{said}");
    assert!(
        said.contains("is now `checkpoint-admin passcode`") && said.contains("key id"),
        "{said}"
    );

    let (lines, code) = scan(&["--trust", &i.dir.arg("other"), "--at", T0, &i.png]);
    check_verdict(&lines, "unknown_key");
    assert_eq!(
        code,
        Some(0),
        "a rejected code is a verdict, not a failed file"
    );
    let (lines, _) = scan(&["--trust", &trust, "--at", "2026-11-23T08:06:00Z", &i.png]);
    check_verdict(&lines, "expired");
    let (lines, _) = scan(&["--trust", &trust, "--at", "2026-11-23T07:58:00Z", &i.png]);
    check_verdict(&lines, "not_yet_valid");

    // One byte of the payload changed: the status byte, green (0) to red (2).
    let mut body = passcode::decode_text(&i.token).unwrap();
    body[4] = 2;
    let altered = png(&i.dir, "altered.png", &passcode::encode_text(&body));
    let (lines, _) = scan(&["--trust", &trust, "--at", T0, &altered]);
    check_verdict(&lines, "bad_signature");
    assert_eq!(
        lines[0]["pass"]["status"], "red",
        "untrusted claims are still shown"
    );

    let url = png(&i.dir, "url.png", "https://example.org/");
    let (lines, _) = scan(&["--trust", &trust, &url]);
    check_verdict(&lines, "not_a_pass_code");
    let garbage = png(&i.dir, "garbage.png", "CP1:%%%%");
    let (lines, _) = scan(&["--trust", &trust, &garbage]);
    check_verdict(&lines, "bad_encoding");
}

#[test]
fn unreadable_files_are_error_lines_and_exit_1() {
    let i = issue();
    let not_image = i.dir.arg("notes.png");
    std::fs::write(&not_image, b"this is not a PNG").unwrap();
    let blank = i.dir.arg("blank.png");
    image::GrayImage::from_pixel(64, 64, Luma([255]))
        .save(&blank)
        .unwrap();
    let missing = i.dir.arg("missing.jpg");
    let (lines, code) = scan(&["--at", T0, &not_image, &i.png, &missing, &blank]);
    assert_eq!(code, Some(1));
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(
        lines[0]["error"]
            .as_str()
            .unwrap()
            .contains("not a readable image"),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1]["verdict"], "unknown_key",
        "no --trust: nothing is trusted"
    );
    assert!(
        lines[2]["error"].as_str().unwrap().contains("No such file"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3]["error"]
            .as_str()
            .unwrap()
            .contains("no QR code found"),
        "{}",
        lines[3]
    );

    let out = run("checkpointd", &["scan", "--raw", &i.png]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), i.token);

    let out = run("checkpointd", &["scan", "--trust", &not_image, &i.png]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad trust file stops the command"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an Ed25519 public key"));
}

#[test]
fn issuer_refuses_bad_requests() {
    let i = issue();
    let keys = i.dir.arg("keys");
    let out = run("checkpoint-admin", &["passcode", "keygen", "--out", &keys]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));
    for (flag, value, message) in [
        ("--person", "Jane Doe", "subject id contains ' '"),
        ("--status", "blue", "unknown pass status"),
        ("--valid", "90d", "outside 1s..31d"),
    ] {
        let mut args = vec![
            "passcode", "issue", "--key", &keys, "--person", "p-1", "--status", "green", "--valid",
            "5m",
        ];
        let pos = args.iter().position(|a| *a == flag).unwrap();
        args[pos + 1] = value;
        let out = run("checkpoint-admin", &args);
        assert!(!out.status.success(), "{flag} {value} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{flag} {value}: {stderr}");
    }
}
