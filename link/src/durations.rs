//! Durations in both configurations are humantime strings (`"500ms"`, `"30s"`, `"24h"`,
//! `"28d"`). Earlier releases wrote them as integers with the unit in the key
//! (`keep_alive_s = 30`); those keys still load, rewritten to the new key before the typed
//! parse, each with a deprecation line the binary logs at start and `check-config` prints.

use std::time::Duration;

/// The unit an old integer key was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Ms,
    S,
    Min,
    H,
    Days,
}

impl Unit {
    fn suffix(self) -> &'static str {
        match self {
            Unit::Ms => "ms",
            Unit::S => "s",
            Unit::Min => "m",
            Unit::H => "h",
            Unit::Days => "d",
        }
    }
}

/// An integer key that became a duration: in table `section` (dotted, `""` for the top level),
/// `old` (in `unit`) is now `new`.
#[derive(Debug, Clone, Copy)]
pub struct Renamed {
    pub section: &'static str,
    pub old: &'static str,
    pub new: &'static str,
    pub unit: Unit,
}

impl Renamed {
    pub const fn new(
        section: &'static str,
        old: &'static str,
        new: &'static str,
        unit: Unit,
    ) -> Self {
        Renamed {
            section,
            old,
            new,
            unit,
        }
    }
}

/// What [`migrate`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// One line per old key rewritten: what to write instead.
    pub deprecated: Vec<String>,
    /// Old keys that could not be taken (not a whole number, or given with the new key).
    pub problems: Vec<String>,
}

/// Rewrites the old integer keys of `table` to their humantime successors.
pub fn migrate(table: &mut toml::Table, renames: &[Renamed]) -> Migrated {
    let mut out = Migrated::default();
    for r in renames {
        let Some(t) = section(table, r.section) else {
            continue;
        };
        let Some(old) = t.remove(r.old) else {
            continue;
        };
        let path = |k: &str| match r.section {
            "" => k.to_string(),
            s => format!("{s}.{k}"),
        };
        if t.contains_key(r.new) {
            out.problems.push(format!(
                "{}: give {} only (it replaces {})",
                path(r.old),
                path(r.new),
                path(r.old)
            ));
            continue;
        }
        match old.as_integer().filter(|n| *n >= 0) {
            Some(n) => {
                let text = format!("{n}{}", r.unit.suffix());
                out.deprecated.push(format!(
                    "{} is deprecated: write {} = \"{text}\"",
                    path(r.old),
                    path(r.new)
                ));
                t.insert(r.new.to_string(), toml::Value::String(text));
            }
            None => out.problems.push(format!(
                "{}: expected a whole number of {} (deprecated; write {} = \"…{}\")",
                path(r.old),
                r.unit.suffix(),
                path(r.new),
                r.unit.suffix()
            )),
        }
    }
    out
}

fn section<'a>(table: &'a mut toml::Table, dotted: &str) -> Option<&'a mut toml::Table> {
    let mut t = table;
    for part in dotted.split('.').filter(|p| !p.is_empty()) {
        t = t.get_mut(part)?.as_table_mut()?;
    }
    Some(t)
}

/// A duration as the configurations write it (`"1h 30m"`), for messages.
pub fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `Ok` when `d` is within `lo..=hi`; else a message naming the field.
pub fn within(field: &str, d: Duration, lo: Duration, hi: Duration) -> Result<(), String> {
    if (lo..=hi).contains(&d) {
        Ok(())
    } else {
        Err(format!(
            "{field}: {} is not within {}..={}",
            show(d),
            show(lo),
            show(hi)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENAMES: &[Renamed] = &[
        Renamed {
            section: "uplink",
            old: "keep_alive_s",
            new: "keep_alive",
            unit: Unit::S,
        },
        Renamed {
            section: "alerts.webhook",
            old: "timeout_ms",
            new: "timeout",
            unit: Unit::Ms,
        },
        Renamed {
            section: "retention",
            old: "events_days",
            new: "events",
            unit: Unit::Days,
        },
    ];

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn old_integer_keys_become_humantime_with_a_deprecation_line() {
        let mut t = table(
            "[uplink]\nkeep_alive_s = 30\n[alerts.webhook]\ntimeout_ms = 1500\n[retention]\nevents_days = 28\n",
        );
        let m = migrate(&mut t, RENAMES);
        assert!(m.problems.is_empty(), "{:?}", m.problems);
        assert_eq!(
            m.deprecated,
            [
                "uplink.keep_alive_s is deprecated: write uplink.keep_alive = \"30s\"",
                "alerts.webhook.timeout_ms is deprecated: write alerts.webhook.timeout = \"1500ms\"",
                "retention.events_days is deprecated: write retention.events = \"28d\""
            ]
        );
        assert_eq!(t["uplink"]["keep_alive"].as_str(), Some("30s"));
        assert!(t["uplink"].get("keep_alive_s").is_none());
        let d: Duration =
            humantime::parse_duration(t["retention"]["events"].as_str().unwrap()).unwrap();
        assert_eq!(d, Duration::from_secs(28 * 86_400));
    }

    #[test]
    fn new_keys_pass_untouched_and_bad_old_ones_are_problems() {
        let mut t = table("[uplink]\nkeep_alive = \"1m\"\n");
        assert_eq!(migrate(&mut t, RENAMES), Migrated::default());
        assert_eq!(t["uplink"]["keep_alive"].as_str(), Some("1m"));
        let mut both = table("[uplink]\nkeep_alive = \"1m\"\nkeep_alive_s = 5\n");
        assert_eq!(
            migrate(&mut both, RENAMES).problems,
            ["uplink.keep_alive_s: give uplink.keep_alive only (it replaces uplink.keep_alive_s)"]
        );
        let mut text = table("[uplink]\nkeep_alive_s = \"5\"\n[retention]\nevents_days = -1\n");
        assert_eq!(migrate(&mut text, RENAMES).problems.len(), 2);
    }

    #[test]
    fn ranges_are_said_in_the_configurations_own_words() {
        let s = Duration::from_secs;
        assert!(within("a", s(30), s(5), s(3600)).is_ok());
        assert_eq!(
            within("uplink.keep_alive", s(2), s(5), s(3600)).unwrap_err(),
            "uplink.keep_alive: 2s is not within 5s..=1h"
        );
    }
}
