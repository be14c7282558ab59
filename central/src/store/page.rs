//! The events table in SQL: every filter in the query, pages by keyset (a page starts after the
//! last row of the one before, so paging stays as fast on page 1,000 as on page 1 and rows that
//! arrive meanwhile are neither skipped nor repeated) and exact counts. One statement builder
//! serves both backends; only the placeholders differ.

use checkpoint_protocol::ids::{CheckpointId, SubjectId};
use checkpoint_protocol::records::{Decision, Direction, Event};

use super::rows::{self as decode, Cols};
use super::{codes, StoreError};

/// What the events table shows: events with `from_ms <= ts < to_ms` for which every given filter
/// holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub from_ms: i64,
    pub to_ms: i64,
    /// Events naming the person, as holder or as a dependant.
    pub person: Option<SubjectId>,
    pub place: Option<CheckpointId>,
    /// The holder's department and class in the roster.
    pub department: Option<String>,
    pub class: Option<String>,
    pub direction: Option<Direction>,
    pub decision: Option<Decision>,
}

/// Where a page ended: the next page starts after it. Its text form (`ts.pk`) is what the API
/// hands out; it means something only to the store that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub ts_ms: i64,
    pub pk: i64,
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.ts_ms, self.pk)
    }
}

impl std::str::FromStr for Cursor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a page cursor (it is the `next` of an earlier page)");
        let (ts, pk) = s.rsplit_once('.').ok_or_else(bad)?;
        Ok(Cursor {
            ts_ms: ts.parse().map_err(|_| bad())?,
            pk: pk.parse().map_err(|_| bad())?,
        })
    }
}

/// One page: its rows in time order, and where it ended when more may follow.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    pub events: Vec<Event>,
    pub next: Option<Cursor>,
}

/// Most rows one page holds.
pub const PAGE_MAX: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A statement's parameter, bound by each backend in its own way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
}

/// A statement and its parameters, in order.
#[derive(Debug)]
pub(crate) struct Statement {
    pub sql: String,
    pub args: Vec<Arg>,
}

struct Builder {
    dialect: Dialect,
    args: Vec<Arg>,
    conditions: Vec<String>,
}

impl Builder {
    fn arg(&mut self, a: Arg) -> String {
        let cast = match (&a, self.dialect) {
            (_, Dialect::Sqlite) => "",
            (Arg::Int(_), Dialect::Postgres) => "::bigint",
            (Arg::Text(_), Dialect::Postgres) => "::text",
        };
        self.args.push(a);
        let n = self.args.len();
        match self.dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}{cast}"),
        }
    }

    fn with(&mut self, condition: String) {
        self.conditions.push(condition);
    }
}

/// The parts of a filtered read: the joins beyond `events e` (a person's passes), the
/// conditions, and the columns that order it (time, then row). With a person the read starts
/// from their passes (holder or dependant), else from the events.
struct Parts {
    joins: &'static str,
    conditions: String,
    order: &'static str,
    b: Builder,
}

fn parts(f: &EventFilter, after: Option<Cursor>, dialect: Dialect) -> Parts {
    let mut b = Builder {
        dialect,
        args: Vec::new(),
        conditions: Vec::new(),
    };
    let (ts, pk) = if f.person.is_some() {
        ("p.ts", "p.event")
    } else {
        ("e.ts", "e.pk")
    };
    let from = b.arg(Arg::Int(f.from_ms));
    b.with(format!("{ts} >= {from}"));
    let to = b.arg(Arg::Int(f.to_ms));
    b.with(format!("{ts} < {to}"));
    if let Some(c) = after {
        // The first condition bounds the index range; the second skips the rows of the same
        // millisecond the last page already had.
        let t = b.arg(Arg::Int(c.ts_ms));
        b.with(format!("{ts} >= {t}"));
        let t = b.arg(Arg::Int(c.ts_ms));
        let k = b.arg(Arg::Int(c.pk));
        b.with(format!("({ts} > {t} OR {pk} > {k})"));
    }
    let mut joins = "";
    if let Some(p) = &f.person {
        let who = b.arg(Arg::Text(p.as_str().to_string()));
        b.with(format!(
            "p.subject = (SELECT id FROM subjects WHERE name = {who})"
        ));
        joins = match dialect {
            Dialect::Sqlite => "JOIN passes p ON p.event = e.pk",
            // Passes and events are partitioned alike: joining on the partition key as well
            // lets each pass find its event in its own partition.
            Dialect::Postgres => "JOIN passes p ON p.event = e.pk AND p.received = e.received",
        };
    }
    if let Some(c) = &f.place {
        let cp = b.arg(Arg::Text(c.as_str().to_string()));
        b.with(format!(
            "e.checkpoint = (SELECT id FROM checkpoints WHERE name = {cp})"
        ));
    }
    if let Some(d) = f.direction {
        let v = b.arg(Arg::Int(codes::direction(d)));
        b.with(format!("e.direction = {v}"));
    }
    if let Some(d) = f.decision {
        let v = b.arg(Arg::Int(codes::decision(d)));
        b.with(format!("e.decision = {v}"));
    }
    for (column, value) in [("department", &f.department), ("class", &f.class)] {
        if let Some(v) = value {
            let v = b.arg(Arg::Text(v.clone()));
            b.with(format!(
                "e.subject IN (SELECT s.id FROM subjects s JOIN people r ON r.id = s.name \
                 WHERE r.{column} = {v})"
            ));
        }
    }
    Parts {
        joins,
        conditions: b.conditions.join(" AND "),
        order: if f.person.is_some() {
            "p.ts, p.event"
        } else {
            "e.ts, e.pk"
        },
        b,
    }
}

/// The statement of one page: [`decode::EVENT_COLUMNS`], then the row's key (`e.pk`), at most
/// `limit + 1` rows (the one more says whether another page follows).
pub(crate) fn page_statement(
    f: &EventFilter,
    after: Option<Cursor>,
    limit: usize,
    dialect: Dialect,
) -> Statement {
    let mut p = parts(f, after, dialect);
    let n = p.b.arg(Arg::Int(
        i64::try_from(limit.min(PAGE_MAX)).unwrap_or(0) + 1,
    ));
    Statement {
        sql: format!(
            "SELECT {}, e.pk FROM events e {} {} WHERE {} ORDER BY {} LIMIT {n}",
            decode::EVENT_COLUMNS,
            p.joins,
            decode::EVENT_JOINS,
            p.conditions,
            p.order
        ),
        args: p.b.args,
    }
}

/// The exact number of rows the filter selects.
pub(crate) fn count_statement(f: &EventFilter, dialect: Dialect) -> Statement {
    let p = parts(f, None, dialect);
    Statement {
        sql: format!(
            "SELECT count(*) FROM events e {} WHERE {}",
            p.joins, p.conditions
        ),
        args: p.b.args,
    }
}

/// One row of [`page_statement`]: the event and its place in the order.
pub(crate) fn page_row(r: &impl Cols) -> Result<(Event, Cursor), StoreError> {
    let (e, _) = decode::event_of(r)?;
    let pk = r.int(18)?.ok_or_else(|| StoreError::Corrupt {
        key: format!("events/{}/{}", e.box_id, e.seq),
        message: "no row key".into(),
    })?;
    let ts_ms = super::split_ts(&e).0;
    Ok((e, Cursor { ts_ms, pk }))
}

/// The rows of [`page_statement`] (at most `limit + 1`) as a page of at most `limit`.
pub(crate) fn page_of(mut rows: Vec<(Event, Cursor)>, limit: usize) -> Page {
    let limit = limit.min(PAGE_MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(|r| r.1) } else { None };
    Page {
        events: rows.into_iter().map(|r| r.0).collect(),
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_and_bad_ones_are_refused() {
        let c = Cursor { ts_ms: -5, pk: 42 };
        assert_eq!(c.to_string().parse::<Cursor>(), Ok(c));
        for bad in ["", "12", "a.b", "1.2.x", "99999999999999999999.1"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad}");
        }
    }

    #[test]
    fn statements_number_their_parameters_in_order() {
        let f = EventFilter {
            from_ms: 1,
            to_ms: 2,
            person: Some(SubjectId::new("p-1").unwrap()),
            department: Some("Physics".into()),
            direction: Some(Direction::Out),
            ..EventFilter::default()
        };
        let after = Some(Cursor { ts_ms: 1, pk: 7 });
        let s = page_statement(&f, after, 50, Dialect::Sqlite);
        assert_eq!(s.args.len(), 9, "{s:?}");
        assert!(s.sql.contains("?9") && !s.sql.contains("?10"), "{}", s.sql);
        assert!(s.sql.contains("JOIN passes p"), "{}", s.sql);
        assert_eq!(s.args.last(), Some(&Arg::Int(51)));
        let p = page_statement(&f, after, 50, Dialect::Postgres);
        assert!(p.sql.contains("$9::bigint"), "{}", p.sql);
        let c = count_statement(&f, Dialect::Postgres);
        assert!(!c.sql.contains("ORDER BY") && c.sql.starts_with("SELECT count(*)"));
        assert_eq!(c.args.len(), 5);
    }
}
