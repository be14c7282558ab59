//! `checkpoint-admin`: the operators' tooling. It makes the site's keys and certificates and
//! pass codes on this machine, and asks the running central (its HTTP API, bearer token) for
//! everything else: queries, roster imports, galleries, revocations, backups. It links none of
//! the server: a site can give it to operators on machines that never run central.
//!
//! Long on purpose: one arm per subcommand, each only calling into the modules and printing.

mod cli;
mod client;
mod roster_file;

use anyhow::{bail, Context};
use checkpoint_pki::{self as pki, issuer, Validity};
use checkpoint_protocol::passcode::PassRequest;
use clap::Parser;
use cli::{unix_u32, Cli, Command, GalleryCommand, PasscodeCommand, PkiCommand, RosterCommand};
use client::Output;
use time::OffsetDateTime;

fn main() -> std::process::ExitCode {
    checkpoint_link::init_logging();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", checkpoint_link::error_line(error.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Trace { person, range, api } => {
            let (c, out) = api.client()?;
            let rows = c.trajectory(&person, range.from.as_deref(), range.to.as_deref())?;
            checkpoint_link::out!("{}", client::tables::trajectory(&rows, out));
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
            checkpoint_link::out!("{}", client::tables::contacts(&rows, out));
            Ok(())
        }
        Command::Occupancy { place, api } => {
            let (c, out) = api.client()?;
            let o = c.occupancy(&place)?;
            if out == Output::Json {
                checkpoint_link::outln!("{}", serde_json::to_string_pretty(&o)?);
                return Ok(());
            }
            if out == Output::Table {
                checkpoint_link::outln!(
                    "{}: {} inside ({} in, {} out, {} checked out after the maximum stay)",
                    o.place,
                    o.inside,
                    o.ins,
                    o.outs,
                    o.auto_checked_out
                );
            }
            checkpoint_link::out!(
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
            after,
            range,
            api,
        } => {
            let (c, out) = api.client()?;
            let mut q: Vec<(&str, &str)> = Vec::new();
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
            events_listing(&c, &q, out, limit, after)
        }
        Command::Roster(RosterCommand::Import {
            people,
            places,
            upsert,
            dry_run,
            api,
        }) => {
            if people.is_none() && places.is_none() {
                bail!("give --people FILE, --places FILE or both");
            }
            let (c, _) = api.client()?;
            for (what, file) in [("people", people), ("places", places)] {
                if let Some(file) = file {
                    let bytes = std::fs::read(&file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    let text = roster_file::text_of(bytes, &file.display().to_string())
                        .map_err(anyhow::Error::msg)?;
                    let r = c
                        .import(what, &text, upsert, dry_run)
                        .with_context(|| format!("importing {}", file.display()))?;
                    let ch = &r.change;
                    let sample = |v: &[String]| -> String {
                        if v.is_empty() {
                            String::new()
                        } else {
                            let shown: Vec<&str> = v.iter().take(10).map(String::as_str).collect();
                            let more = if v.len() > 10 { ", …" } else { "" };
                            format!(" ({}{more})", shown.join(", "))
                        }
                    };
                    eprintln!(
                        "{}: {} {what} rows; {} added{}, {} changed{}, {} removed{}, {} \
                         unchanged{}",
                        file.display(),
                        r.imported,
                        ch.added.len(),
                        sample(&ch.added),
                        ch.changed.len(),
                        sample(&ch.changed),
                        ch.removed.len(),
                        sample(&ch.removed),
                        ch.unchanged,
                        if r.dry_run {
                            " (dry run: nothing written)"
                        } else {
                            ""
                        }
                    );
                }
            }
            Ok(())
        }
        Command::Boxes { api } => {
            let (c, out) = api.client()?;
            let rows = c.boxes()?;
            checkpoint_link::out!("{}", client::tables::boxes(&rows, out));
            Ok(())
        }
        Command::Pki(cmd) => run_pki(cmd),
        Command::Notifications { limit, api } => {
            let (c, out) = api.client()?;
            let rows = c.notifications(limit)?;
            checkpoint_link::out!("{}", client::tables::notifications(&rows, out));
            Ok(())
        }
        Command::Gallery(GalleryCommand::Publish { box_id, file, api }) => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let (c, _) = api.client()?;
            let done = c.publish_gallery(&box_id, &bytes)?;
            checkpoint_link::outln!(
                "gallery of {} bytes published to {} (retained)",
                done.bytes,
                done.box_id
            );
            Ok(())
        }
        Command::Backup {
            out,
            recipients,
            passphrase_file,
            format,
            api,
        } => {
            let seal =
                checkpoint_pki::sealed::Seal::from_args(&recipients, passphrase_file.as_deref())
                    .map_err(anyhow::Error::msg)?;
            let (c, _) = api.client()?;
            let (bytes, events) = c.backup(&out, &seal, format == cli::BackupFormat::Sqlite)?;
            let how = if matches!(seal, checkpoint_pki::sealed::Seal::Plain) {
                "not encrypted"
            } else {
                "encrypted"
            };
            eprintln!(
                "{}: {events} events, {:.1} MB, {how}, mode 0600",
                out.display(),
                bytes as f64 / 1e6
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
            checkpoint_link::outln!("{code}");
            Ok(())
        }
    }
}

/// Makes the configuration-signing key in the PKI directory and says where it is.
fn config_key(dir: &std::path::Path) -> anyhow::Result<()> {
    let key = checkpoint_pki::signing::keygen(dir)?;
    checkpoint_link::outln!(
        "configuration-signing key: {} (key id {})",
        dir.join(checkpoint_pki::signing::PRIVATE_FILE).display(),
        key.kid()
    );
    Ok(())
}

fn run_pki(cmd: PkiCommand) -> anyhow::Result<()> {
    let show = |what: &str, i: &pki::Issued| {
        checkpoint_link::outln!(
            "{what}: {} (key {}), valid until {}",
            i.cert.display(),
            i.key.display(),
            i.not_after.date()
        );
    };
    match cmd {
        PkiCommand::Init { dir, name, days } => {
            let i = pki::init(&dir, &name, Validity::days(days)?)?;
            show("CA", &i);
            config_key(&dir)?;
            eprintln!("Keep ca.key offline or root-only: whoever holds it can add boxes.");
            eprintln!(
                "Give every box {} ([trust] config_keys).",
                dir.join(checkpoint_pki::signing::PUBLIC_FILE).display()
            );
        }
        PkiCommand::ConfigKey { dir } => {
            config_key(&dir)?;
            eprintln!(
                "Give every box {} ([trust] config_keys) and central its private half ([trust] signing_key).",
                dir.join(checkpoint_pki::signing::PUBLIC_FILE).display()
            );
        }
        PkiCommand::IssueBox {
            id,
            dir,
            days,
            replace,
        } => {
            let i = pki::Ca::load(&dir)?.issue_box(&id, Validity::days(days)?, replace)?;
            show(&format!("box {id}"), &i);
            eprintln!(
                "Copy {} and {} with ca.pem to the box (uplink.transport in its config).",
                i.cert.display(),
                i.key.display()
            );
        }
        PkiCommand::RevokeBox { id, dir } => {
            let r = pki::Ca::load(&dir)?.revoke_box(&id)?;
            checkpoint_link::outln!(
                "box {id}: certificate {} revoked (kept as {})",
                r.serial,
                r.kept.display()
            );
            eprintln!(
                "{} is updated: central's embedded broker restarts to read it within seconds; \
                 an external Mosquitto needs a copy and `systemctl restart mosquitto`.",
                dir.join(pki::crl::CRL_FILE).display()
            );
        }
        PkiCommand::IssueServer { hosts, dir, days } => {
            let i = pki::Ca::load(&dir)?.issue_server(&hosts, Validity::days(days)?)?;
            show("broker", &i);
        }
        PkiCommand::IssueClient { name, dir, days } => {
            let i = pki::Ca::load(&dir)?.issue_client(&name, Validity::days(days)?)?;
            show(&name, &i);
        }
    }
    Ok(())
}

/// The events table: a table shows one page; CSV and JSON go on page by page until every row is
/// out or `limit` is reached. Whenever it stops before the end it says where on stderr, with the
/// `--after` that goes on from there, and a failure part-way is an error after what was written.
fn events_listing(
    c: &client::Client,
    filters: &[(&str, &str)],
    out: client::Output,
    limit: Option<usize>,
    mut after: Option<String>,
) -> anyhow::Result<()> {
    use checkpoint_api::EVENTS_LIMIT;
    let want = limit.unwrap_or(match out {
        client::Output::Table => 100,
        _ => usize::MAX,
    });
    let mut written = 0usize;
    let mut total: Option<u64> = None;
    let of = |total: Option<u64>| total.map(|t| format!(" of {t}")).unwrap_or_default();
    let mut first = true;
    loop {
        let page_size = want
            .saturating_sub(written)
            .clamp(1, EVENTS_LIMIT)
            .to_string();
        let mut q = filters.to_vec();
        q.push(("limit", page_size.as_str()));
        if let Some(a) = &after {
            q.push(("after", a.as_str()));
        }
        let page = match c.events(&q) {
            Ok(p) => p,
            Err(e) => {
                if first {
                    return Err(e.into());
                }
                if out == client::Output::Json {
                    checkpoint_link::outln!("\n]");
                }
                let from = after.as_deref().unwrap_or("the start");
                anyhow::bail!(
                    "the listing stopped after {written}{} events: {e}; go on with --after {from}",
                    of(total)
                );
            }
        };
        if first {
            total = page.total;
        }
        match out {
            client::Output::Table => {
                checkpoint_link::out!("{}", client::tables::events(&page.rows, out))
            }
            client::Output::Csv => {
                checkpoint_link::out!("{}", client::tables::events_csv(&page.rows, first))
            }
            client::Output::Json => {
                for (i, r) in page.rows.iter().enumerate() {
                    let sep = if first && i == 0 { "[\n" } else { ",\n" };
                    checkpoint_link::out!("{sep}{}", serde_json::to_string(r)?);
                }
            }
        }
        if !page.rows.is_empty() {
            first = false;
        }
        written += page.rows.len();
        after = page.next;
        let Some(next) = &after else { break };
        if written >= want || out == client::Output::Table {
            eprintln!(
                "{written}{} events shown; the next ones: --after {next}",
                of(total)
            );
            break;
        }
    }
    if out == client::Output::Json {
        checkpoint_link::outln!("{}", if first { "[]" } else { "\n]" });
    }
    Ok(())
}
