//! A real SMTP server for the tests: `tests/smtp_sink.py` on Debian's aiosmtpd, demanding
//! STARTTLS with the test PKI's server certificate and a login.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::broker::{free_port, Pki};

/// The Python that has Debian's python3-aiosmtpd (scripts/setup installs it); a `python3`
/// earlier in PATH (pyenv, a venv) would not.
const PYTHON: &str = "/usr/bin/python3";

pub const USER: &str = "checkpoint";
pub const PASSWORD: &str = "smtp-test-password";

/// One message the server accepted.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub tls: bool,
    pub login: bool,
    /// The message as sent (headers and body).
    pub data: String,
}

#[derive(Debug)]
pub struct SmtpSink {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
    _stdin: ChildStdin,
}

impl SmtpSink {
    /// # Panics
    /// When the server does not start (aiosmtpd missing: run scripts/setup).
    pub fn start(dir: &Path, pki: &Pki) -> SmtpSink {
        std::fs::create_dir_all(dir).expect("smtp dir");
        let port = free_port();
        let script = crate::workspace().join("tests/smtp_sink.py");
        let mut child = Command::new(PYTHON)
            .arg(&script)
            .arg(dir)
            .arg(pki.dir.join("server.pem"))
            .arg(pki.dir.join("server.key"))
            .args([USER, PASSWORD, &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{PYTHON} {}: {e}", script.display()));
        let stdin = child.stdin.take().expect("stdin");
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        assert!(
            line.starts_with("ready"),
            "the SMTP server did not start (is python3-aiosmtpd installed? scripts/setup does it): {line:?}"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(Instant::now() < deadline, "SMTP server not listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpSink {
            port,
            dir: dir.to_path_buf(),
            child,
            _stdin: stdin,
        }
    }

    /// While busy, every recipient is answered 451 (try again later).
    pub fn set_busy(&self, busy: bool) {
        let flag = self.dir.join("busy");
        if busy {
            std::fs::write(flag, b"").expect("busy flag");
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }

    /// Every message received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_else(|_| Vec::new())
            .into_iter()
            .filter(|p: &PathBuf| p.extension().is_some_and(|e| e == "json"))
            .filter_map(|p| Some((p.file_stem()?.to_str()?.parse().ok()?, p)))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| {
                let text = std::fs::read_to_string(&p).expect("message file");
                serde_json::from_str(&text).expect("message record")
            })
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
