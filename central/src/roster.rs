//! The roster: people and places, imported from the CSV files a university already has.
//!
//! Import is all or nothing: every row is validated first and every problem is reported with its
//! line number; only a clean file changes the stored roster, in one transaction. A file either
//! replaces the roster or is merged into it by id ([`Mode`]); [`diff`] says what either would
//! change, which is what a dry run shows. Names live
//! here, at central, never on boxes or the wire: events carry only the pseudonymous `id`.
//!
//! People: `id,number,name,department,class,counsellor,department_head,wecom_id,email`
//! (`id` and `name` required; `counsellor` and `department_head` are people ids).
//! Places: `checkpoint,name,building,capacity,manager` (`checkpoint` and `name` required;
//! `manager` a person id).

use std::collections::{BTreeMap, HashSet};

use checkpoint_protocol::ids::{CheckpointId, SubjectId};
use serde::{Deserialize, Serialize};

// An import's vocabulary is part of the API (its reply says what changed).
pub use checkpoint_api::roster::{Change, Mode};

pub const PEOPLE_COLUMNS: [&str; 9] = [
    "id",
    "number",
    "name",
    "department",
    "class",
    "counsellor",
    "department_head",
    "wecom_id",
    "email",
];
pub const PLACE_COLUMNS: [&str; 5] = ["checkpoint", "name", "building", "capacity", "manager"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub id: String,
    pub number: String,
    pub name: String,
    pub department: String,
    pub class: String,
    pub counsellor: String,
    pub department_head: String,
    pub wecom_id: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    pub checkpoint: String,
    pub name: String,
    pub building: String,
    pub capacity: Option<u32>,
    pub manager: String,
}

/// A roster row's key: the person's id, the place's checkpoint.
pub trait Keyed {
    fn key(&self) -> &str;
}

impl Keyed for Person {
    fn key(&self) -> &str {
        &self.id
    }
}

impl Keyed for Place {
    fn key(&self) -> &str {
        &self.checkpoint
    }
}

/// What importing `new` in `mode` changes in `old` (keys sorted).
pub fn diff<T: Keyed + PartialEq>(old: &[T], new: &[T], mode: Mode) -> Change {
    let before: BTreeMap<&str, &T> = old.iter().map(|x| (x.key(), x)).collect();
    let after: BTreeMap<&str, &T> = new.iter().map(|x| (x.key(), x)).collect();
    let mut c = Change::default();
    for (k, v) in &after {
        match before.get(k) {
            None => c.added.push(k.to_string()),
            Some(o) if o != v => c.changed.push(k.to_string()),
            Some(_) => c.unchanged += 1,
        }
    }
    if mode == Mode::Replace {
        c.removed = before
            .keys()
            .filter(|k| !after.contains_key(*k))
            .map(|k| k.to_string())
            .collect();
    }
    c
}

/// A replace by a file without rows would remove everyone: refused, with what to do instead.
pub fn check_not_emptying(rows: usize, stored: usize, what: &str) -> Result<(), String> {
    if rows == 0 && stored > 0 {
        return Err(format!(
            "the file has no {what} rows: nothing imported (as a replace it would remove all \
             {stored}; fix the file, or import it with --upsert)"
        ));
    }
    Ok(())
}

/// Every problem of a file, each with its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} problem(s), nothing imported:\n{}", .0.len(), .0.join("\n"))]
pub struct RosterErrors(pub Vec<String>);

/// A CSV row: its line number and its cells by column name.
type Row = (u64, BTreeMap<String, String>);

fn records(text: &str, columns: &[&str]) -> Result<Vec<Row>, RosterErrors> {
    let mut rd = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = match rd.headers() {
        Ok(h) => h.iter().map(str::to_string).collect(),
        Err(e) => return Err(RosterErrors(vec![format!("line 1: {e}")])),
    };
    let mut errors = Vec::new();
    for h in &header {
        if !columns.contains(&h.as_str()) {
            errors.push(format!(
                "line 1: unknown column {h:?}; the columns are {}",
                columns.join(",")
            ));
        }
    }
    if !errors.is_empty() {
        return Err(RosterErrors(errors));
    }
    let mut out = Vec::new();
    for r in rd.records() {
        match r {
            Ok(rec) => {
                let line = rec.position().map_or(0, |p| p.line());
                let map = header
                    .iter()
                    .cloned()
                    .zip(rec.iter().map(str::to_string))
                    .collect();
                out.push((line, map));
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                errors.push(format!("line {line}: {e}"));
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(RosterErrors(errors))
    }
}

fn field(m: &BTreeMap<String, String>, k: &str) -> String {
    m.get(k).cloned().unwrap_or_default()
}

pub fn parse_people(text: &str) -> Result<Vec<Person>, RosterErrors> {
    let rows = records(text, &PEOPLE_COLUMNS)?;
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (line, m) in rows {
        let p = Person {
            id: field(&m, "id"),
            number: field(&m, "number"),
            name: field(&m, "name"),
            department: field(&m, "department"),
            class: field(&m, "class"),
            counsellor: field(&m, "counsellor"),
            department_head: field(&m, "department_head"),
            wecom_id: field(&m, "wecom_id"),
            email: field(&m, "email"),
        };
        if let Err(e) = SubjectId::new(p.id.clone()) {
            errors.push(format!("line {line}: id {:?}: {e}", p.id));
        } else if !seen.insert(p.id.clone()) {
            errors.push(format!("line {line}: id {:?} appears twice", p.id));
        }
        if p.name.is_empty() {
            errors.push(format!("line {line}: name is empty"));
        }
        for (col, v) in [
            ("counsellor", &p.counsellor),
            ("department_head", &p.department_head),
        ] {
            if !v.is_empty() && SubjectId::new(v.clone()).is_err() {
                errors.push(format!("line {line}: {col} {v:?} is not a person id"));
            }
        }
        if !p.email.is_empty() && !p.email.contains('@') {
            errors.push(format!("line {line}: email {:?} has no @", p.email));
        }
        out.push(p);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(RosterErrors(errors))
    }
}

pub fn parse_places(text: &str) -> Result<Vec<Place>, RosterErrors> {
    let rows = records(text, &PLACE_COLUMNS)?;
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (line, m) in rows {
        let capacity = match field(&m, "capacity").as_str() {
            "" => None,
            c => match c.parse::<u32>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    errors.push(format!(
                        "line {line}: capacity {c:?} is not a positive number"
                    ));
                    None
                }
            },
        };
        let p = Place {
            checkpoint: field(&m, "checkpoint"),
            name: field(&m, "name"),
            building: field(&m, "building"),
            capacity,
            manager: field(&m, "manager"),
        };
        if let Err(e) = CheckpointId::new(p.checkpoint.clone()) {
            errors.push(format!("line {line}: checkpoint {:?}: {e}", p.checkpoint));
        } else if !seen.insert(p.checkpoint.clone()) {
            errors.push(format!(
                "line {line}: checkpoint {:?} appears twice",
                p.checkpoint
            ));
        }
        if p.name.is_empty() {
            errors.push(format!("line {line}: name is empty"));
        }
        if !p.manager.is_empty() && SubjectId::new(p.manager.clone()).is_err() {
            errors.push(format!(
                "line {line}: manager {:?} is not a person id",
                p.manager
            ));
        }
        out.push(p);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(RosterErrors(errors))
    }
}

#[cfg(test)]
mod diff_tests {
    use super::*;

    fn place(cp: &str, name: &str) -> Place {
        Place {
            checkpoint: cp.into(),
            name: name.into(),
            building: String::new(),
            capacity: None,
            manager: String::new(),
        }
    }

    #[test]
    fn a_replace_removes_the_missing_and_an_upsert_keeps_them() {
        let old = [place("a", "A"), place("b", "B"), place("c", "C")];
        let new = [place("b", "B2"), place("c", "C"), place("d", "D")];
        let r = diff(&old, &new, Mode::Replace);
        assert_eq!(
            (r.added, r.changed, r.removed, r.unchanged),
            (
                vec!["d".to_string()],
                vec!["b".to_string()],
                vec!["a".to_string()],
                1
            )
        );
        let u = diff(&old, &new, Mode::Upsert);
        assert!(u.removed.is_empty());
        assert_eq!(u.added, ["d"]);
    }

    #[test]
    fn an_empty_file_does_not_wipe_the_roster() {
        assert!(check_not_emptying(0, 0, "people").is_ok());
        assert!(check_not_emptying(3, 10, "people").is_ok());
        let e = check_not_emptying(0, 10, "people").unwrap_err();
        assert!(e.contains("remove all 10") && e.contains("--upsert"), "{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_import_with_quotes_and_optional_columns() {
        let csv = "id,name,department,counsellor,email\np-1,\"Li, Wei\",Physics,c-9,li@example.org\np-2,Ana,,,\n";
        let p = parse_people(csv).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "Li, Wei");
        assert_eq!(p[0].counsellor, "c-9");
        assert_eq!(p[1].department, "");
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let csv = "id,name,email\np 1,Bad Id,\np-2,,x\np-3,Ok,ok@x\np-3,Twice,\n";
        let e = parse_people(csv).unwrap_err().0;
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].starts_with("line 2:") && e[0].contains("id"), "{e:?}");
        assert!(e
            .iter()
            .any(|x| x.starts_with("line 3:") && x.contains("name is empty")));
        assert!(e
            .iter()
            .any(|x| x.starts_with("line 3:") && x.contains("email")));
        assert!(e
            .iter()
            .any(|x| x.starts_with("line 5:") && x.contains("twice")));
        let e = parse_people("id,name,nickname\n").unwrap_err().0;
        assert!(e[0].contains("unknown column \"nickname\""), "{e:?}");
        let e = parse_people("id,name\np-1,A,extra\n").unwrap_err().0;
        assert!(e[0].starts_with("line 2"), "{e:?}");
    }

    #[test]
    fn places_validate_capacity_and_ids() {
        let ok = parse_places(
            "checkpoint,name,building,capacity,manager\nlib-main,Library,B1,300,m-1\n",
        )
        .unwrap();
        assert_eq!(ok[0].capacity, Some(300));
        let e = parse_places("checkpoint,name,capacity\nLib Main,Library,-3\n")
            .unwrap_err()
            .0;
        assert_eq!(e.len(), 2, "{e:?}");
    }
}
