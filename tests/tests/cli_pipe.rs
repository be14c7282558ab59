//! The command lines end quietly when their reader goes away (`… | head`): success, no panic,
//! no backtrace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};

/// Runs `binary args` with stdout a pipe whose reader is closed before the program writes.
fn with_closed_pipe(binary: &str, args: &[&str]) -> (bool, String) {
    let path = checkpoint_e2e::binary(binary);
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("sleep 0.3; exec \"$0\" \"$@\"")
        .arg(&path)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    for (binary, args) in [
        ("checkpoint-central", ["print-config"]),
        ("checkpointd", ["print-config"]),
    ] {
        let (ok, stderr) = with_closed_pipe(binary, &args);
        assert!(ok, "{binary}: {stderr}");
        assert!(!stderr.contains("panicked"), "{binary}: {stderr}");
        assert!(stderr.is_empty(), "{binary} says nothing: {stderr}");
    }
}
