//! `checkpoint-central`: the server (ingest, store, trace, alerts, API), and what is done to its
//! store with the server stopped (`restore`). The operators' tooling is `checkpoint-admin`; the
//! commands that moved there are still taken here and handed on, with a line saying so.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Context};
use checkpoint_central::config::{self, CentralConfig};
use checkpoint_central::store;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "checkpoint-central",
    version,
    about = "Checkpoint aggregator: ingest, store, trace, alerts and the HTTP API",
    after_help = "Keys, certificates, pass codes and the API's queries: checkpoint-admin --help"
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
    /// Restore a backup (`checkpoint-admin backup`) into an empty store: a new data directory
    /// (SQLite), or the store a configuration names (SQLite or PostgreSQL: how a site moves
    /// from one to the other).
    Restore {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The data directory (`data_dir` in the configuration); its store must not exist.
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "config",
            conflicts_with = "config"
        )]
        data_dir: Option<PathBuf>,
        /// Or central's configuration: restores into the store its `[store]` names, which must
        /// be empty (central stopped).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// For an encrypted backup: the age identity file holding the secret key.
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
        /// For a backup encrypted under a passphrase: the file holding it.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
}

/// The operators' commands `checkpoint-central` took before they moved to `checkpoint-admin`.
const MOVED: [&str; 11] = [
    "trace",
    "contacts",
    "occupancy",
    "events",
    "roster",
    "boxes",
    "notifications",
    "gallery",
    "backup",
    "pki",
    "passcode",
];

fn main() -> std::process::ExitCode {
    checkpoint_link::init_logging();
    let args: Vec<OsString> = std::env::args_os().collect();
    let result = match args.get(1).and_then(|a| a.to_str()) {
        Some(cmd) if MOVED.contains(&cmd) => hand_on(cmd, &args[1..]),
        _ => run(Cli::parse()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", checkpoint_link::error_line(error.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs `checkpoint-admin` in this process's place with the same arguments: the one beside this
/// binary (a package installs both in one directory), else the one on `PATH`. Returns only when
/// it cannot be started.
fn hand_on(cmd: &str, args: &[OsString]) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    eprintln!(
        "note: `checkpoint-central {cmd}` is now `checkpoint-admin {cmd}`; running that \
         (this forwarding will be removed in a later release)"
    );
    let beside = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("checkpoint-admin"))
        .filter(|p| p.is_file());
    let program = beside.unwrap_or_else(|| PathBuf::from("checkpoint-admin"));
    let error = std::process::Command::new(&program).args(args).exec();
    Err(error).with_context(|| format!("starting {}", program.display()))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let cfg = CentralConfig::load(&config)?;
            for line in &cfg.deprecated {
                tracing::warn!(message = "Deprecated configuration key.", file = %config.display(), detail = %line);
            }
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?
                .block_on(checkpoint_central::serve::run(
                    cfg,
                    checkpoint_link::shutdown_signal(),
                ))
                .context("checkpoint-central serve")?;
            Ok(())
        }
        Command::CheckConfig { file } => {
            let cfg = CentralConfig::load(&file)?;
            let problems = cfg.file_problems();
            if !problems.is_empty() {
                anyhow::bail!("{}:\n{}", file.display(), problems.join("\n"));
            }
            for line in &cfg.deprecated {
                checkpoint_link::outln!("{}: {line}", file.display());
            }
            checkpoint_link::outln!("{}: ok", file.display());
            Ok(())
        }
        Command::PrintConfig => {
            checkpoint_link::out!("{}", config::EXAMPLE);
            Ok(())
        }
        Command::Restore {
            file,
            data_dir,
            config,
            identity,
            passphrase_file,
        } => {
            let raw = std::io::BufReader::new(
                std::fs::File::open(&file)
                    .with_context(|| format!("opening {}", file.display()))?,
            );
            let input = checkpoint_pki::sealed::open(
                Box::new(raw),
                &checkpoint_pki::sealed::Unseal {
                    identity_file: identity.as_deref(),
                    passphrase_file: passphrase_file.as_deref(),
                },
            )
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            // A SQLite copy (`backup --format sqlite`) or the portable format: its first bytes.
            let mut input = std::io::BufReader::new(input);
            let sqlite_copy = {
                use std::io::BufRead;
                let head = input
                    .fill_buf()
                    .with_context(|| format!("reading {}", file.display()))?;
                store::SqliteStore::is_database_file(head)
            };
            let (s, into) = match (data_dir, config) {
                (Some(data_dir), _) => {
                    let target = data_dir.join(store::sqlite::FILE);
                    std::fs::create_dir_all(&data_dir)
                        .with_context(|| format!("creating {}", data_dir.display()))?;
                    let s = if sqlite_copy {
                        store::SqliteStore::restore_copy(&target, &mut input)
                    } else {
                        store::SqliteStore::restore(&target, &mut input)
                    }
                    .with_context(|| {
                        format!("restoring {} into {}", file.display(), target.display())
                    })?;
                    (s, target.display().to_string())
                }
                (None, Some(_)) if sqlite_copy => bail!(
                    "{} is a copy of a SQLite database file: it restores with --data-dir only; \
                     to move to PostgreSQL, take a portable backup (backup --format portable)",
                    file.display()
                ),
                (None, Some(config)) => {
                    let cfg = config::CentralConfig::load(&config)?;
                    std::fs::create_dir_all(&cfg.data_dir)
                        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
                    let opened = store::open(&cfg.store, &cfg.data_dir)?;
                    let s = opened.restore_from(&mut input).with_context(|| {
                        format!(
                            "restoring {} into the store of {}",
                            file.display(),
                            config.display()
                        )
                    })?;
                    (s, format!("the store of {}", config.display()))
                }
                (None, None) => bail!("give --data-dir or --config"),
            };
            eprintln!("{into}: {} events restored", s.events);
            Ok(())
        }
    }
}
