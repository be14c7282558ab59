//! The site's time zone (`[site] time_zone`, an IANA name such as `Asia/Shanghai`). Every time
//! central shows — API answers, the CLI's tables and CSV, alert messages — is in it, and hourly
//! buckets start where the site's clocks read the full hour (in Asia/Kolkata, at :30 UTC).
//!
//! Times are kept as Unix milliseconds everywhere else; only showing and bucketing them needs
//! the zone.

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// IANA time zone name; default: the machine's zone (`/etc/localtime`), else UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
}

impl SiteConfig {
    pub(crate) fn problems(&self, out: &mut Vec<String>) {
        if let Err(m) = Site::from_config(self) {
            out.push(m);
        }
    }
}

const HOUR_MS: i64 = 3_600_000;

/// The site's zone, resolved.
#[derive(Debug, Clone)]
pub struct Site {
    tz: TimeZone,
    name: String,
}

impl Default for Site {
    fn default() -> Self {
        Site::utc()
    }
}

impl Site {
    pub fn utc() -> Site {
        Site {
            tz: TimeZone::UTC,
            name: "UTC".into(),
        }
    }

    /// The zone `[site] time_zone` names, or the machine's when it names none.
    pub fn from_config(c: &SiteConfig) -> Result<Site, String> {
        match c.time_zone.as_deref().map(str::trim) {
            Some(name) => Site::named(name),
            None => {
                let (tz, name) = match TimeZone::try_system() {
                    Ok(tz) => {
                        let name = tz.iana_name().unwrap_or("the machine's zone").to_string();
                        (tz, name)
                    }
                    Err(_) => (TimeZone::UTC, "UTC".to_string()),
                };
                Ok(Site { tz, name })
            }
        }
    }

    /// The IANA zone `name`.
    pub fn named(name: &str) -> Result<Site, String> {
        TimeZone::get(name)
            .map(|tz| Site {
                tz,
                name: name.to_string(),
            })
            .map_err(|e| {
                format!(
                    "site.time_zone: {name:?} is not a time zone this machine knows (an IANA name \
                     such as \"Asia/Shanghai\"; the names are in /usr/share/zoneinfo, Debian \
                     package tzdata): {e}"
                )
            })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn timestamp(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        })
    }

    /// RFC 3339 with the site's offset at that instant, e.g. `2026-12-02T20:05:00.250+08:00`.
    pub fn rfc3339(&self, ms: i64) -> String {
        let ts = Self::timestamp(ms);
        ts.display_with_offset(self.tz.to_offset(ts)).to_string()
    }

    /// Minutes, as people read them in messages: `2026-12-02 20:05 CST`.
    pub fn minute(&self, ms: i64) -> String {
        Self::timestamp(ms)
            .to_zoned_datetime(self.tz.clone())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string()
    }

    /// The start of the local hour `ms` falls in: the instant the site's clocks last read a full
    /// hour (where they were turned back, the same wall hour twice is two hours).
    pub fn hour_start(&self, ms: i64) -> i64 {
        let z = Self::timestamp(ms).to_zoned_datetime(self.tz.clone());
        z.with()
            .minute(0)
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .map(|h| h.timestamp().as_millisecond())
            .ok()
            .filter(|&h| h <= ms)
            .unwrap_or(ms.saturating_sub(ms.rem_euclid(HOUR_MS)))
    }

    /// Edges of the local hours that cover `[from_ms, to_ms)`: the first is the start of the hour
    /// `from_ms` falls in, each next one the start of the next local hour, the last at or after
    /// `to_ms`. Bucket `k` is `[edges[k], edges[k + 1])`; where the clocks change, an hour may
    /// be shorter or longer than 60 minutes.
    pub fn hour_edges(&self, from_ms: i64, to_ms: i64) -> Vec<i64> {
        let mut edges = vec![self.hour_start(from_ms)];
        // At most one edge per 30 minutes of span, so a hostile span cannot make this endless.
        let cap = usize::try_from(to_ms.saturating_sub(from_ms) / (HOUR_MS / 2))
            .unwrap_or(0)
            .saturating_add(3);
        while let Some(&last) = edges.last() {
            if last >= to_ms || edges.len() > cap {
                break;
            }
            let mut next = self.hour_start(last.saturating_add(HOUR_MS));
            if next <= last {
                // A clock change of less than an hour: skip to the hour after.
                next = self.hour_start(last.saturating_add(2 * HOUR_MS));
            }
            if next <= last {
                break;
            }
            edges.push(next);
        }
        edges
    }

    /// The `hours` local hours up to and including the one `now_ms` falls in, as edges
    /// (`hours + 1` of them; the last is the end of the current hour).
    pub fn last_hours(&self, now_ms: i64, hours: u32) -> Vec<i64> {
        let current = self.hour_start(now_ms);
        let mut from = current;
        for _ in 1..hours {
            from = self.hour_start(from.saturating_sub(1));
        }
        self.hour_edges(from, current.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc: &str) -> i64 {
        rfc.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn hours_start_where_the_local_clock_reads_the_full_hour() {
        let kolkata = Site::named("Asia/Kolkata").unwrap();
        let t = ms("2026-12-02T10:10:00Z"); // 15:40 in Kolkata
        assert_eq!(kolkata.hour_start(t), ms("2026-12-02T09:30:00Z"));
        assert_eq!(kolkata.rfc3339(t), "2026-12-02T15:40:00+05:30");
        let edges = kolkata.hour_edges(t, t + 2 * HOUR_MS);
        assert_eq!(
            edges,
            [
                ms("2026-12-02T09:30:00Z"),
                ms("2026-12-02T10:30:00Z"),
                ms("2026-12-02T11:30:00Z"),
                ms("2026-12-02T12:30:00Z"),
            ]
        );
        let shanghai = Site::named("Asia/Shanghai").unwrap();
        assert_eq!(shanghai.rfc3339(t), "2026-12-02T18:10:00+08:00");
        assert_eq!(shanghai.minute(t), "2026-12-02 18:10 CST");
        assert_eq!(shanghai.hour_start(t), ms("2026-12-02T10:00:00Z"));
        let last = shanghai.last_hours(t, 12);
        assert_eq!(last.len(), 13);
        assert_eq!(last[0], ms("2026-12-01T23:00:00Z"));
        assert_eq!(last[12], ms("2026-12-02T11:00:00Z"));
    }

    #[test]
    fn clock_changes_give_hours_of_other_lengths() {
        // Lord Howe Island moves its clocks by 30 minutes: at 2026-04-05 02:00 local (+11) they
        // go back to 01:30 (+10:30), so the local hour 01:00 lasts 90 minutes.
        let lh = Site::named("Australia/Lord_Howe").unwrap();
        let from = ms("2026-04-04T13:30:00Z"); // 00:30 +11
        let edges = lh.hour_edges(from, from + 4 * HOUR_MS);
        assert!(edges.windows(2).all(|w| w[0] < w[1]), "{edges:?}");
        for e in &edges {
            assert!(lh.rfc3339(*e).contains(":00:00"), "{}", lh.rfc3339(*e));
        }
        assert_eq!(edges[1] - edges[0], HOUR_MS, "{edges:?}");
        assert_eq!(edges[2] - edges[1], 90 * 60_000, "{edges:?}");
        // Berlin in autumn: local 02:00–03:00 happens twice; each is its own hour.
        let berlin = Site::named("Europe/Berlin").unwrap();
        let from = ms("2026-10-24T23:00:00Z"); // 01:00 +02
        let edges = berlin.hour_edges(from, from + 4 * HOUR_MS);
        assert_eq!(edges.len(), 5);
        assert!(
            edges.windows(2).all(|w| w[1] - w[0] == HOUR_MS),
            "{edges:?}"
        );
        assert_eq!(berlin.rfc3339(edges[1]), "2026-10-25T02:00:00+02:00");
        assert_eq!(berlin.rfc3339(edges[2]), "2026-10-25T02:00:00+01:00");
    }

    #[test]
    fn unknown_zones_are_refused_and_hostile_spans_stay_bounded() {
        let e = Site::named("Asia/Shangai").unwrap_err();
        assert!(e.contains("site.time_zone") && e.contains("tzdata"), "{e}");
        let utc = Site::utc();
        assert!(utc.hour_edges(i64::MAX - 10, i64::MAX).len() <= 3);
        assert!(utc.hour_edges(i64::MIN, i64::MIN + 1).len() <= 3);
        assert_eq!(utc.hour_edges(5, 5), [0, HOUR_MS]);
        assert_eq!(utc.rfc3339(i64::MAX), utc.rfc3339(i64::MAX - 1));
    }
}
