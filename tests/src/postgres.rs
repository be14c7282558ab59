//! A throwaway PostgreSQL cluster for the tests: Debian's server binaries (`scripts/setup`
//! installs `postgresql`), `initdb` in a temporary directory as an unprivileged user (initdb
//! refuses root), listening on loopback only, stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::TempDir;

/// A running cluster; each test takes its own database with [`Cluster::database`].
#[derive(Debug)]
pub struct Cluster {
    dir: TempDir,
    bin: PathBuf,
    pub port: u16,
    /// The user that owns the cluster's files (`postgres` when the tests run as root).
    run_as: Option<String>,
    next: AtomicU32,
}

fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    found.retain(|p| p.join("initdb").exists());
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("no PostgreSQL server in /usr/lib/postgresql: run scripts/setup (Debian postgresql)")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

impl Cluster {
    pub fn start() -> Cluster {
        Cluster::start_at(TempDir::new("pg"))
    }

    /// A cluster under the target directory (benchmarks: tens of GB).
    pub fn start_in_target() -> Cluster {
        Cluster::start_at(TempDir::new_in_target("pg"))
    }

    fn start_at(dir: TempDir) -> Cluster {
        let bin = bin_dir();
        let run_as = is_root().then(|| "postgres".to_string());
        if let Some(user) = &run_as {
            let st = Command::new("chown")
                .args(["-R", user])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(st.success(), "chown the cluster directory to {user}");
        }
        let port = crate::broker::free_port();
        let c = Cluster {
            dir,
            bin,
            port,
            run_as,
            next: AtomicU32::new(0),
        };
        let data = c.data();
        c.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-A",
                "trust",
                "-U",
                "checkpoint",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        let sock = c.dir.path().join("sock");
        std::fs::create_dir_all(&sock).expect("socket dir");
        if let Some(user) = &c.run_as {
            let _ = Command::new("chown").arg(user).arg(&sock).status();
        }
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 \
             -c shared_buffers=64MB",
            sock.display()
        );
        let log = c.dir.path().join("server.log");
        c.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap_or_default(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        c
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let exe = self.bin.join(tool);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(exe).args(args);
                c
            }
            None => {
                let mut c = Command::new(exe);
                c.args(args);
                c
            }
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool, args)
            .current_dir("/")
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The URL of database `db` (no TLS, trust authentication on loopback).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://checkpoint@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// A new, empty database; returns its URL.
    pub fn database(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{n}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
                .and_then(|mut c| c.batch_execute(&format!("CREATE DATABASE {name}")));
            match r {
                Ok(()) => return self.url(&name),
                Err(e) if Instant::now() < deadline => {
                    eprintln!("postgres: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("CREATE DATABASE {name}: {e}"),
            }
        }
    }

    /// The `[store]` section of a central configuration using database `url`.
    pub fn store_section(url: &str) -> String {
        format!("[store]\nkind = \"postgres\"\nurl = \"{url}\"\npool_size = 4\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command(
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().unwrap_or_default(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            )
            .current_dir("/")
            .output();
    }
}
