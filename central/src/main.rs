//! The `checkpoint-central` command line.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use checkpoint_central::client::{self, Client, Output};
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
    /// A person's trajectory: their events in time order, with places.
    Trace {
        #[arg(long, value_name = "ID")]
        person: String,
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// A person's close contacts, ranked by encounters and overlapping presence.
    Contacts {
        #[arg(long, value_name = "ID")]
        person: String,
        #[command(flatten)]
        range: Range,
        /// Seen at the same checkpoint within this many seconds (default: central's config).
        #[arg(long, value_name = "SECONDS")]
        window: Option<u64>,
        /// 2 adds the contacts of contacts.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        depth: u8,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Who is inside a place now, and the hourly flow.
    Occupancy {
        #[arg(long, value_name = "CHECKPOINT")]
        place: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The in/out events table, filtered; `--csv` exports it.
    Events {
        #[arg(long, value_name = "ID")]
        person: Option<String>,
        #[arg(long)]
        department: Option<String>,
        #[arg(long)]
        class: Option<String>,
        #[arg(long, value_name = "CHECKPOINT")]
        place: Option<String>,
        #[arg(long, value_parser = ["in", "out"])]
        direction: Option<String>,
        #[arg(long, value_parser = ["admit", "deny"])]
        decision: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The roster of people and places.
    #[command(subcommand)]
    Roster(RosterCommand),
    /// Every box: status, backlog, trust age.
    Boxes {
        #[command(flatten)]
        api: ApiArgs,
    },
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
    /// Revoke a person's codes issued before now (or --before); the running central publishes
    /// the new revocation list to every box at once.
    Revoke {
        #[arg(value_name = "PERSON")]
        person: String,
        /// Revoke codes issued before this instant (RFC 3339) instead of now.
        #[arg(long, value_name = "RFC3339")]
        before: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand, Debug)]
enum RosterCommand {
    /// Replace the people and/or places roster with CSV files; a file with any bad row imports
    /// nothing and every problem is listed with its line.
    Import {
        /// Columns: id,number,name,department,class,counsellor,department_head,wecom_id,email
        #[arg(long, value_name = "CSV")]
        people: Option<PathBuf>,
        /// Columns: checkpoint,name,building,capacity,manager
        #[arg(long, value_name = "CSV")]
        places: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(clap::Args, Debug)]
struct Range {
    /// From this instant (RFC 3339); default 14 days before --to.
    #[arg(long, value_name = "RFC3339")]
    from: Option<String>,
    /// Up to this instant (RFC 3339); default now.
    #[arg(long, value_name = "RFC3339")]
    to: Option<String>,
}

#[derive(clap::Args, Debug)]
struct ApiArgs {
    /// The central's API.
    #[arg(long, default_value = "http://127.0.0.1:8480", value_name = "URL")]
    api: String,
    /// The file holding the API's bearer token.
    #[arg(long, default_value = "/etc/checkpoint/api.token", value_name = "FILE")]
    token_file: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV instead of a table.
    #[arg(long)]
    csv: bool,
}

impl ApiArgs {
    fn client(&self) -> anyhow::Result<(Client, Output)> {
        let out = match (self.json, self.csv) {
            (true, _) => Output::Json,
            (_, true) => Output::Csv,
            _ => Output::Table,
        };
        Ok((Client::new(&self.api, &self.token_file)?, out))
    }
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

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let cfg = CentralConfig::load(&config)?;
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
            CentralConfig::load(&file)?;
            println!("{}: ok", file.display());
            Ok(())
        }
        Command::PrintConfig => {
            print!("{}", config::EXAMPLE);
            Ok(())
        }
        Command::Trace { person, range, api } => {
            let (c, out) = api.client()?;
            let rows = c.trajectory(&person, range.from.as_deref(), range.to.as_deref())?;
            print!(
                "{}",
                client::print(
                    &rows,
                    &[
                        "time",
                        "checkpoint",
                        "direction",
                        "decision",
                        "reason",
                        "temp",
                        "box"
                    ],
                    |r| vec![
                        r.ts.clone(),
                        r.checkpoint.clone(),
                        r.direction.clone(),
                        r.decision.clone(),
                        r.reason.clone(),
                        r.temperature_c
                            .map(|t| format!("{t:.1}"))
                            .unwrap_or_default(),
                        r.box_id.clone(),
                    ],
                    out
                )
            );
            Ok(())
        }
        Command::Contacts {
            person,
            range,
            window,
            depth,
            api,
        } => {
            let (c, out) = api.client()?;
            let rows = c.contacts(
                &person,
                range.from.as_deref(),
                range.to.as_deref(),
                window,
                depth,
            )?;
            print!(
                "{}",
                client::print(
                    &rows,
                    &[
                        "person",
                        "degree",
                        "via",
                        "encounters",
                        "overlap_min",
                        "first met"
                    ],
                    |r| vec![
                        r.subject.clone(),
                        r.degree.to_string(),
                        r.via.clone().unwrap_or_default(),
                        r.encounters.to_string(),
                        (r.overlap_s / 60).to_string(),
                        r.meetings
                            .first()
                            .map(|(cp, t)| format!("{cp} {t}"))
                            .unwrap_or_default(),
                    ],
                    out
                )
            );
            Ok(())
        }
        Command::Occupancy { place, api } => {
            let (c, out) = api.client()?;
            let o = c.occupancy(&place)?;
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&o)?);
                return Ok(());
            }
            if out == Output::Table {
                println!(
                    "{}: {} inside ({} in, {} out, {} checked out after the maximum stay)",
                    o.place, o.inside, o.ins, o.outs, o.auto_checked_out
                );
            }
            print!(
                "{}",
                client::print(
                    &o.flow,
                    &["hour from", "in", "out"],
                    |(t, i, x)| vec![t.clone(), i.to_string(), x.to_string()],
                    out
                )
            );
            Ok(())
        }
        Command::Events {
            person,
            department,
            class,
            place,
            direction,
            decision,
            limit,
            range,
            api,
        } => {
            let (c, out) = api.client()?;
            let limit = limit.to_string();
            let mut q: Vec<(&str, &str)> = vec![("limit", limit.as_str())];
            for (k, v) in [
                ("person", &person),
                ("department", &department),
                ("class", &class),
                ("place", &place),
                ("direction", &direction),
                ("decision", &decision),
                ("from", &range.from),
                ("to", &range.to),
            ] {
                if let Some(v) = v {
                    q.push((k, v.as_str()));
                }
            }
            let rows = c.events(&q)?;
            print!(
                "{}",
                client::print(
                    &rows,
                    &[
                        "time",
                        "person",
                        "checkpoint",
                        "place",
                        "direction",
                        "decision",
                        "reason",
                        "temp"
                    ],
                    |r| vec![
                        r.ts.clone(),
                        r.subject.clone().unwrap_or_default(),
                        r.checkpoint.clone(),
                        r.place.clone().unwrap_or_default(),
                        r.direction.clone(),
                        r.decision.clone(),
                        r.reason.clone(),
                        r.temperature_c
                            .map(|t| format!("{t:.1}"))
                            .unwrap_or_default(),
                    ],
                    out
                )
            );
            Ok(())
        }
        Command::Roster(RosterCommand::Import {
            people,
            places,
            api,
        }) => {
            if people.is_none() && places.is_none() {
                bail!("give --people FILE, --places FILE or both");
            }
            let (c, _) = api.client()?;
            for (what, file) in [("people", people), ("places", places)] {
                if let Some(file) = file {
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    let r = c
                        .import(what, &text)
                        .with_context(|| format!("importing {}", file.display()))?;
                    eprintln!("{}: {} {what} imported", file.display(), r.imported);
                }
            }
            Ok(())
        }
        Command::Boxes { api } => {
            let (c, out) = api.client()?;
            let rows = c.boxes()?;
            let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
            print!(
                "{}",
                client::print(
                    &rows,
                    &[
                        "box",
                        "state",
                        "seen_s_ago",
                        "backlog",
                        "oldest_s",
                        "full",
                        "trust_age_h",
                        "fps",
                        "clock"
                    ],
                    |r| vec![
                        r.box_id.clone(),
                        r.state.clone().unwrap_or_default(),
                        r.last_seen_s.to_string(),
                        opt(r.outbox_depth),
                        opt(r.outbox_oldest_age_s),
                        r.outbox_full
                            .map(|f| if f { "FULL" } else { "" }.to_string())
                            .unwrap_or_default(),
                        opt(r.trust_age_s.map(|s| s / 3600)),
                        r.fps.map(|f| format!("{f:.1}")).unwrap_or_default(),
                        r.clock_synced
                            .map(|c| if c { "ok" } else { "unsynced" }.to_string())
                            .unwrap_or_default(),
                    ],
                    out
                )
            );
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
        Command::Passcode(PasscodeCommand::Revoke {
            person,
            before,
            api,
        }) => {
            let (c, _) = api.client()?;
            let r = c.revoke(&person, before.as_deref())?;
            eprintln!(
                "revoked codes of {} issued before {}; boxes receive it with the next trust update",
                r.subject,
                r.issued_before.unwrap_or_default()
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
