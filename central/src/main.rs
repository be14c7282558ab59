//! The `checkpoint-central` command line.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use checkpoint_central::config::{self, CentralConfig};
use checkpoint_central::issuer;
use checkpoint_protocol::ids::SubjectId;
use checkpoint_protocol::passcode::{PassRequest, PassStatus};
use clap::{Parser, Subcommand};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Parser, Debug)]
#[command(
    name = "checkpoint-central",
    version,
    about = "Checkpoint aggregator and pass-code issuer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Ingest every box's events into the store and acknowledge them end to end.
    Serve {
        #[arg(long, default_value = config::DEFAULT_PATH, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a configuration file and exit.
    CheckConfig {
        #[arg(value_name = "FILE", default_value = config::DEFAULT_PATH)]
        file: PathBuf,
    },
    /// Print the documented example configuration.
    PrintConfig,
    /// Pass-code keys and codes.
    #[command(subcommand)]
    Passcode(PasscodeCommand),
}

#[derive(Subcommand, Debug)]
enum PasscodeCommand {
    /// Create a new issuer key pair: DIR/passcode.key (0600) and DIR/passcode.pub.
    Keygen {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Sign a pass code and print it; with --png also write it as a QR image.
    Issue {
        /// Key directory (or the passcode.key file).
        #[arg(long, value_name = "DIR")]
        key: PathBuf,
        /// Pseudonymous person id (letters, digits, '-', '_', '.'; at most 32).
        #[arg(long, value_name = "ID")]
        person: SubjectId,
        #[arg(long, value_name = "green|yellow|red")]
        status: PassStatus,
        /// Validity, such as 90s, 5m, 12h or 7d (at most 31 days).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        valid: Duration,
        /// A person bound to this code (repeat for several, at most 8).
        #[arg(long = "dependant", value_name = "ID")]
        dependants: Vec<SubjectId>,
        /// Issue time instead of now (RFC 3339), for testing and pre-printing.
        #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
        at: Option<OffsetDateTime>,
        /// Also write the code as a QR image (PNG).
        #[arg(long, value_name = "FILE")]
        png: Option<PathBuf>,
    },
}

const MAX_VALIDITY: Duration = Duration::from_secs(31 * 24 * 3600);

fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 5m, 12h or 7d"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        other => return Err(format!("unknown unit {other:?}; use s, m, h or d")),
    };
    let d = Duration::from_secs(secs);
    if d.is_zero() || d > MAX_VALIDITY {
        return Err(format!("{s} is outside 1s..31d"));
    }
    Ok(d)
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("{s:?} is not RFC 3339: {e}"))
}

fn unix_u32(t: OffsetDateTime) -> anyhow::Result<u32> {
    u32::try_from(t.unix_timestamp()).context("time is outside 1970..2106")
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Completes on SIGTERM (systemd stop) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!(message = "Cannot listen for SIGTERM; only Ctrl-C stops central.", %error);
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let cfg = CentralConfig::load(&config)?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?
                .block_on(checkpoint_central::serve::run(cfg, shutdown_signal()))
                .context("checkpoint-central serve")?;
            Ok(())
        }
        Command::CheckConfig { file } => {
            CentralConfig::load(&file)?;
            println!("{}: ok", file.display());
            Ok(())
        }
        Command::PrintConfig => {
            print!("{}", config::EXAMPLE);
            Ok(())
        }
        Command::Passcode(PasscodeCommand::Keygen { out }) => {
            let key = issuer::keygen(&out)?;
            eprintln!(
                "wrote {} (private, 0600) and {} (public, give it to boxes); key id {}",
                out.join(issuer::PRIVATE_FILE).display(),
                out.join(issuer::PUBLIC_FILE).display(),
                key.kid()
            );
            Ok(())
        }
        Command::Passcode(PasscodeCommand::Issue {
            key,
            person,
            status,
            valid,
            dependants,
            at,
            png,
        }) => {
            let key = issuer::load_key(&key)?;
            let issued_at = unix_u32(at.unwrap_or_else(OffsetDateTime::now_utc))?;
            let Some(expires_at) = u32::try_from(valid.as_secs())
                .ok()
                .and_then(|v| issued_at.checked_add(v))
            else {
                bail!("expiry is past 2106");
            };
            let req = PassRequest {
                status,
                subject: person,
                dependants,
                issued_at,
                expires_at,
            };
            let code = issuer::issue(&key, &req)?;
            if let Some(path) = png {
                issuer::write_png(&code, &path, 400)?;
                eprintln!("wrote {}", path.display());
            }
            println!("{code}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("31d"), Ok(Duration::from_secs(31 * 86_400)));
        assert!(parse_duration("32d").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
    }
}
