//! The `checkpointd` command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use checkpoint_daemon::config::{self, DaemonConfig};
use checkpoint_daemon::doctor::{self, Verdict};
use checkpoint_daemon::qr::QrConfig;
use checkpoint_daemon::scan::{self, ScanOptions};
use clap::{Parser, Subcommand};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Parser, Debug)]
#[command(name = "checkpointd", version, about = "Checkpoint kiosk daemon")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the kiosk: camera, pass-code verification, thermometer, door, outbox and uplink.
    Run {
        #[arg(long, default_value = config::DEFAULT_PATH, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a configuration file and exit: 0 when valid, 2 with every problem listed.
    CheckConfig {
        #[arg(value_name = "FILE", default_value = config::DEFAULT_PATH)]
        file: PathBuf,
    },
    /// Print the documented example configuration.
    PrintConfig,
    /// Check camera, thermometer, gate, broker and TLS, clock, outbox disk and trust material,
    /// and say how to fix what fails. Exits 1 when a check fails.
    Doctor {
        #[arg(long, default_value = config::DEFAULT_PATH, value_name = "FILE")]
        config: PathBuf,
    },
    /// Decode the QR codes in image files (PNG, JPEG) and verify them as pass codes.
    ///
    /// Prints one JSON line per code: the image, the payload and the verdict. Exits 1 when any
    /// file could not be read or held no readable code.
    Scan {
        /// A trusted public key (PEM file, or a key directory holding passcode.pub) or a trust
        /// configuration record (JSON). Repeatable.
        #[arg(long, value_name = "PUBKEY")]
        trust: Vec<PathBuf>,
        /// Verify as of this instant (RFC 3339) instead of now.
        #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
        at: Option<OffsetDateTime>,
        /// Clock-skew tolerance in seconds for the validity window.
        #[arg(long, default_value_t = 30, value_name = "SECONDS")]
        skew: u32,
        /// Print only the decoded text, one line per code, without verifying.
        #[arg(long)]
        raw: bool,
        /// Time budget per image in milliseconds: no new decode attempt starts after it.
        #[arg(long, default_value_t = 2000, value_name = "MS")]
        budget_ms: u64,
        /// Which decoders read the images: `both` (zxing-cpp, then rqrr's chain on every image
        /// it did not read), or one of them alone (the support desk's second look).
        #[arg(long, value_enum, default_value_t = DecoderArg::Both)]
        decoder: DecoderArg,
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<PathBuf>,
    },
    /// Build a gallery (embeddings only, no images) from photos named by person id:
    /// PHOTOS/ID.jpg, or PHOTOS/ID/ holding several. Photos without exactly one face are refused
    /// with the reason. Exits 1 when any photo was refused.
    #[cfg(feature = "face")]
    Enroll {
        #[arg(value_name = "PHOTOS")]
        photos: PathBuf,
        #[arg(long, value_name = "GALLERY")]
        out: PathBuf,
        /// Directory of the face models (default: where scripts/models installs them).
        #[arg(long, value_name = "DIR")]
        models: Option<PathBuf>,
    },
    /// Print one JSON line per face in each image: its box, the identity or `unknown`, the
    /// best identity's similarity and its margin over the next one.
    #[cfg(feature = "face")]
    Identify {
        #[arg(long, value_name = "GALLERY")]
        gallery: PathBuf,
        #[arg(long, value_name = "DIR")]
        models: Option<PathBuf>,
        /// Similarity the best identity needs.
        #[arg(long, default_value_t = 0.45)]
        threshold: f32,
        /// Lead it needs over the best other identity.
        #[arg(long, default_value_t = 0.08)]
        margin: f32,
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<PathBuf>,
    },
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("{s:?} is not RFC 3339: {e}"))
}

/// `scan --decoder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DecoderArg {
    Both,
    Zxing,
    Rqrr,
}

fn main() -> ExitCode {
    checkpoint_link::init_logging();
    // Panics become log events instead of the default hook's crash-like text. A panic inside a
    // QR decoder is caught and counted (`qr::contained`), so it is logged at debug level only.
    std::panic::set_hook(Box::new(|info| {
        if checkpoint_daemon::qr::panic_is_contained() {
            tracing::debug!(message = "A decoder panicked; contained.", %info);
        } else {
            tracing::error!(message = "Panic.", %info);
        }
    }));
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", checkpoint_link::error_line(error.as_ref()));
            ExitCode::from(2)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config } => {
            let cfg = DaemonConfig::load(&config)?;
            for line in &cfg.deprecated {
                tracing::warn!(message = "Deprecated configuration key.", file = %config.display(), detail = %line);
            }
            runtime()?
                .block_on(checkpoint_daemon::run(
                    cfg,
                    checkpoint_link::shutdown_signal(),
                ))
                .context("checkpointd")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { file } => {
            let cfg = DaemonConfig::load(&file)?;
            let problems = cfg.file_problems();
            if !problems.is_empty() {
                anyhow::bail!("{}:\n{}", file.display(), problems.join("\n"));
            }
            for line in &cfg.deprecated {
                checkpoint_link::outln!("{}: {line}", file.display());
            }
            checkpoint_link::outln!("{}: ok", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::PrintConfig => {
            checkpoint_link::out!("{}", config::EXAMPLE);
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor { config } => {
            let cfg = DaemonConfig::load(&config)?;
            let checks = runtime()?.block_on(doctor::run(&cfg));
            let mut out = std::io::stdout().lock();
            for c in &checks {
                writeln!(out, "{c}")?;
            }
            let failed = checks.iter().filter(|c| c.verdict == Verdict::Fail).count();
            writeln!(out, "{} checks, {failed} failed", checks.len())?;
            Ok(if failed > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Scan {
            trust,
            at,
            skew,
            raw,
            budget_ms,
            decoder,
            images,
        } => {
            if !checkpoint_daemon::qr::HAS_ZXING && decoder == DecoderArg::Zxing {
                anyhow::bail!(
                    "this checkpointd was built without zxing-cpp (cargo feature `zxing`)"
                );
            }
            let opts = ScanOptions {
                trust: scan::load_trust(&trust).context("loading trusted keys")?,
                at: at.unwrap_or_else(OffsetDateTime::now_utc).unix_timestamp(),
                skew_secs: skew,
                qr: QrConfig {
                    budget: std::time::Duration::from_millis(budget_ms),
                    mode: match decoder {
                        DecoderArg::Both => checkpoint_daemon::qr::Mode::Thorough,
                        DecoderArg::Zxing => checkpoint_daemon::qr::Mode::Zxing,
                        DecoderArg::Rqrr => checkpoint_daemon::qr::Mode::Rqrr,
                    },
                    ..QrConfig::default()
                },
            };
            scan_files(&images, raw, &opts)
        }
        #[cfg(feature = "face")]
        Command::Enroll {
            photos,
            out,
            models,
        } => checkpoint_daemon::enroll::run_enroll(&photos, &out, models.as_deref()),
        #[cfg(feature = "face")]
        Command::Identify {
            gallery,
            models,
            threshold,
            margin,
            images,
        } => {
            let policy = checkpoint_face::matcher::MatchPolicy {
                threshold,
                margin,
                frames: 1,
            };
            checkpoint_daemon::enroll::run_identify(&gallery, models.as_deref(), &policy, &images)
        }
    }
}

fn scan_files(images: &[PathBuf], raw: bool, opts: &ScanOptions) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for path in images {
        let error = match scan::decode_file(path, &opts.qr) {
            Ok(decoded) if decoded.codes.is_empty() => {
                let mut msg = format!("no QR code found ({} attempts", decoded.attempts);
                if decoded.panics > 0 {
                    msg.push_str(&format!(", {} decoder panics contained", decoded.panics));
                }
                if decoded.out_of_budget {
                    msg.push_str(", time budget spent");
                }
                msg.push(')');
                Some(msg)
            }
            Ok(decoded) => {
                for code in &decoded.codes {
                    if raw {
                        writeln!(out, "{}", code.payload())?;
                    } else {
                        let report = scan::report(path, code, opts);
                        writeln!(out, "{}", serde_json::to_string(&report)?)?;
                    }
                }
                None
            }
            Err(e) => Some(e.to_string()),
        };
        if let Some(error) = error {
            failed = true;
            if raw {
                eprintln!("{}: {error}", path.display());
            } else {
                let line =
                    serde_json::json!({ "image": path.display().to_string(), "error": error });
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
