//! Helpers for the end-to-end tests in `tests/`: locating (and building) the real binaries and
//! running them, a real Mosquitto with a throw-away PKI ([`broker`]), kiosk processes with
//! simulated hardware ([`kiosk`]) and a recording stand-in for central ([`central`]).
//!
//! This crate only supports tests: a failed setup step panics, which fails the test with the
//! message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod broker;
pub mod central;
pub mod face;
pub mod kiosk;
pub mod postgres;
pub mod qrset;
pub mod smtp;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;

static BUILD: Once = Once::new();

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Path of a workspace binary in the same profile as the running test, built on first use.
///
/// # Panics
/// When `cargo build` fails: the test cannot run without the binaries.
pub fn binary(name: &str) -> PathBuf {
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--bins", "--quiet"])
            .current_dir(workspace());
        // Benchmarks run from target/release: measure release binaries there.
        if profile_dir().ends_with("release") {
            cmd.arg("--release");
        }
        // `cargo test` sets package variables for the test process (CARGO_PKG_*, CARGO_MANIFEST_*,
        // ...). Build scripts that watch such variables would see a change and rebuild half the
        // dependency tree on every run; give the inner build the outer build's environment.
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            let keep = ["CARGO_HOME", "CARGO_TARGET_DIR", "CARGO_BUILD_JOBS"].contains(&k.as_ref())
                || k.starts_with("CARGO_REGISTRIES_")
                || k.starts_with("CARGO_NET_")
                || k.starts_with("CARGO_TERM_");
            if k.starts_with("CARGO_") && !keep {
                cmd.env_remove(&key);
            }
        }
        let status = cmd.status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "cargo build failed: {status:?}"
        );
    });
    profile_dir().join(name)
}

/// target/<profile>: the test executable lives in target/<profile>/deps/.
fn profile_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .as_deref()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace().join("target/debug"))
}

/// Runs a binary with arguments and returns its output.
///
/// # Panics
/// When the binary cannot be started at all.
pub fn run(name: &str, args: &[&str]) -> Output {
    let bin = binary(name);
    Command::new(&bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

/// A fresh, empty directory under the system temp dir, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("cp-e2e-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        TempDir(dir)
    }

    /// Like [`TempDir::new`], under the workspace's target directory (benchmark stores: large,
    /// and on the disk the build already uses).
    pub fn new_in_target(label: &str) -> Self {
        let root = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
            .join("bench-stores");
        let dir = root.join(format!("{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `self/name` as a string argument.
    pub fn arg(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // `CHECKPOINT_KEEP_TMP=1` keeps logs and stores for a post-mortem.
        if std::env::var_os("CHECKPOINT_KEEP_TMP").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A real binary of this workspace running in the background, stderr appended to a log file.
/// Killed when dropped.
#[derive(Debug)]
pub struct Proc {
    child: Option<std::process::Child>,
    name: &'static str,
    args: Vec<std::ffi::OsString>,
    env: Vec<(String, String)>,
    pub log: PathBuf,
}

impl Proc {
    pub fn start(
        name: &'static str,
        args: &[&std::ffi::OsStr],
        env: &[(&str, &str)],
        log: PathBuf,
    ) -> Proc {
        let mut p = Proc {
            child: None,
            name,
            args: args.iter().map(|a| a.to_os_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log,
        };
        p.restart();
        p
    }

    /// Starts the process again with the same arguments (after a kill or a stop).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(binary(self.name))
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name));
        self.child = Some(child);
    }

    /// `kill -9`: no chance to flush or say goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits (at most 20 s) for the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = c.kill();
        c.wait().ok()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}
