//! Plumbing shared by the box daemon and central: the transport section of both configurations,
//! the rustls client configuration for mutual TLS, reconnect backoff, the clock, atomic file
//! writes and poison-recovering locks.
//!
//! # Layout
//! - [`Transport`]: `{ kind = "tls", ca, cert, key }` or an explicit `{ kind = "plain" }`.
//! - [`tls`]: PEM files to a rustls `ClientConfig` (ring provider passed explicitly).
//! - [`Backoff`], [`doubling`]: exponential backoff (with full jitter) and its one doubling rule.
//! - [`spawn_poller`]: drives a rumqttc event loop on its own task and reports what matters.
//! - [`shutdown_signal`]: SIGTERM (systemd stop) or SIGINT (Ctrl-C), for both binaries' `main`.
//! - [`init_logging`]: every program's tracing to stderr.
//! - [`clock`]: the clock trait both binaries inject where time decides something.
//! - [`durations`]: humantime durations in configuration, and the old integer keys rewritten.
//! - [`files`]: writing a file atomically (temporary file, fsync, rename).
//! - [`sync`]: locks that recover from a poisoned guard.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub mod clock;
pub mod durations;
pub mod files;
pub mod sync;
pub mod tls;

/// How to reach the broker.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Transport {
    /// Mutual TLS: the broker's CA, and this client's certificate chain and private key (PEM).
    Tls {
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
    },
    /// Unencrypted TCP. Only for a broker on the same machine or a lab; must be chosen explicitly.
    Plain,
}

impl Transport {
    /// The rumqttc transport, loading the TLS files now so a bad file is a clear start-up error.
    pub fn to_rumqttc(&self) -> Result<rumqttc::Transport, tls::TlsError> {
        Ok(match self {
            Transport::Tls { ca, cert, key } => rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls::client_config(ca, cert, key)?),
            ),
            Transport::Plain => rumqttc::Transport::tcp(),
        })
    }

    /// Paths that must not be empty, for configuration checks: `(field, path)`.
    pub fn files(&self) -> Vec<(&'static str, &PathBuf)> {
        match self {
            Transport::Tls { ca, cert, key } => vec![("ca", ca), ("cert", cert), ("key", key)],
            Transport::Plain => Vec::new(),
        }
    }
}

/// `min` doubled once per failure so far, at most `max`: the one backoff rule (reconnects jitter
/// below it, alert retries wait exactly it).
pub fn doubling(min: Duration, max: Duration, failures: u32) -> Duration {
    min.checked_mul(1u32 << failures.min(31))
        .unwrap_or(max)
        .min(max)
}

/// Exponential backoff with full jitter between `min` and the current ceiling, which doubles
/// after every failure up to `max`.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            failures: 0,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let lo = self.min.as_millis() as u64;
        let hi = (doubling(self.min, self.max, self.failures).as_millis() as u64).max(lo);
        self.failures = self.failures.saturating_add(1);
        Duration::from_millis(fastrand::u64(lo..=hi))
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// What the polling task reports to its owner.
#[derive(Debug)]
pub enum Net {
    /// CONNACK received: (re)subscribe and publish what goes out on connect.
    Connected,
    Message(rumqttc::Publish),
    /// The connection failed or dropped; the task waits a backoff delay and reconnects.
    Down(String),
    /// Our own clean DISCONNECT has been written; the task has ended.
    Disconnected,
}

/// Polls `eventloop` on its own task, forwarding connects, messages and failures over a bounded
/// channel (back-pressure: while the owner is busy, the task stops reading the socket).
/// Reconnects after `backoff`. The task ends when the receiver is dropped or after a clean
/// disconnect.
pub fn spawn_poller(
    mut eventloop: rumqttc::EventLoop,
    mut backoff: Backoff,
    capacity: usize,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::mpsc::Receiver<Net>,
) {
    use rumqttc::{Event, Outgoing, Packet};
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
    let task = tokio::spawn(async move {
        loop {
            let net = match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff.reset();
                    Net::Connected
                }
                Ok(Event::Incoming(Packet::Publish(p))) => Net::Message(p),
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    let _ = tx.send(Net::Disconnected).await;
                    return;
                }
                Ok(_) => continue,
                Err(e) => {
                    if tx.send(Net::Down(e.to_string())).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
            };
            if tx.send(net).await.is_err() {
                return;
            }
        }
    });
    (task, rx)
}

/// Completes on SIGTERM (systemd stop) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!(message = "Cannot listen for SIGTERM; only Ctrl-C stops the process.", %error);
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The programs' logging: `tracing` events as text on stderr (journald reads it from a unit),
/// filtered by `RUST_LOG` (default `info`), coloured only on a terminal.
pub fn init_logging() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Writes to stdout. A reader that went away (`… | head`) ends the process quietly with
/// success, as other command-line tools do; any other write error ends it with status 1.
pub fn print_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// `print!` that ends quietly on a closed pipe ([`print_out`]).
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => { $crate::print_out(format_args!($($t)*)) };
}

/// `println!` that ends quietly on a closed pipe ([`print_out`]).
#[macro_export]
macro_rules! outln {
    () => { $crate::print_out(format_args!("\n")) };
    ($($t:tt)*) => { $crate::print_out(format_args!("{}\n", format_args!($($t)*))) };
}

/// An error and its causes on one line, each thing said once: a cause whose text is already in
/// the line (a wrapper that prints its source, as many do) is not repeated.
pub fn error_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: {source}")]
    struct Wraps {
        path: String,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot start")]
    struct Outer(#[source] Wraps);

    #[test]
    fn an_error_line_says_each_thing_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let text = io.to_string();
        let e = Outer(Wraps {
            path: "/etc/x".into(),
            source: io,
        });
        let line = error_line(&e);
        assert_eq!(line, format!("cannot start: /etc/x: {text}"));
        assert_eq!(line.matches(&text).count(), 1);
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_resets() {
        let (min, max) = (Duration::from_millis(100), Duration::from_millis(1000));
        let mut b = Backoff::new(min, max);
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            let ceiling = doubling(min, max, b.failures);
            let d = b.next_delay();
            assert!(
                d >= min && d <= ceiling,
                "{d:?} outside [{min:?}, {ceiling:?}]"
            );
            ceilings.push(ceiling.as_millis());
        }
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
        let draws: std::collections::HashSet<_> = (0..20).map(|_| b.next_delay()).collect();
        assert!(draws.len() > 1, "jitter");
        b.reset();
        assert!(b.next_delay() <= min);
        assert_eq!(doubling(min, max, u32::MAX), max, "no overflow");
        assert_eq!(doubling(Duration::MAX, Duration::MAX, 3), Duration::MAX);
    }
}
