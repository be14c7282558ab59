//! Reading: kept reader connections with prepared statements, and the row decoders.

use checkpoint_link::sync::Recover;

use super::*;

impl PostgresStore {
    /// Runs a read on a kept reader, preparing `sql` on it once.
    pub(super) fn read_rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, StoreError> {
        let taken = self.readers.lock_or_recover().pop();
        let mut reader = match taken {
            Some(r) => r,
            None => Reader {
                conn: self.conn()?,
                statements: HashMap::new(),
            },
        };
        let result = (|| {
            let st = match reader.statements.get(sql) {
                Some(st) => st.clone(),
                None => {
                    let st = reader.conn.prepare(sql)?;
                    reader.statements.insert(sql.to_string(), st.clone());
                    st
                }
            };
            reader.conn.query(&st, params)
        })();
        match result {
            Ok(rows) => {
                let mut kept = self.readers.lock_or_recover();
                if kept.len() < self.max_readers {
                    kept.push(reader);
                }
                Ok(rows)
            }
            // The connection may be what failed: it goes back to the pool, not to the readers.
            Err(e) => Err(e.into()),
        }
    }

    pub(super) fn events_where(
        &self,
        rest: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Event>, StoreError> {
        let sql = format!(
            "SELECT {} FROM events e {} {rest}",
            decode::EVENT_COLUMNS,
            decode::EVENT_JOINS
        );
        self.read_rows(&sql, params)?
            .iter()
            .map(|r| decode::event_of(r).map(|(e, _)| e))
            .collect()
    }

    pub(super) fn scans_where(
        &self,
        rest: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Scan>, StoreError> {
        let sql = format!(
            "SELECT {} FROM passes p {} {rest}",
            decode::SCAN_COLUMNS,
            decode::SCAN_JOINS
        );
        self.read_rows(&sql, params)?
            .iter()
            .map(decode::scan_of)
            .collect()
    }
}

/// A statement's parameters as the client binds them.
pub(super) fn args(list: &[page::Arg]) -> Vec<&(dyn ToSql + Sync)> {
    list.iter()
        .map(|a| match a {
            page::Arg::Int(i) => i as &(dyn ToSql + Sync),
            page::Arg::Text(t) => t as &(dyn ToSql + Sync),
        })
        .collect()
}

pub(super) fn seq_state_of(c: &mut impl GenericClient, b: &str) -> Result<SeqState, StoreError> {
    match c.query_opt("SELECT state FROM sequences WHERE box = $1", &[&b])? {
        None => Ok(SeqState::default()),
        Some(r) => {
            let j: String = r.get(0);
            serde_json::from_str(&j).map_err(|e| StoreError::Corrupt {
                key: format!("sequences/{b}"),
                message: e.to_string(),
            })
        }
    }
}

pub(super) fn revocations(c: &mut impl GenericClient) -> Result<Vec<(SubjectId, u32)>, StoreError> {
    c.query(
        "SELECT subject, issued_before FROM revocations ORDER BY subject",
        &[],
    )?
    .iter()
    .map(|r| {
        let s: String = r.get(0);
        let before: i64 = r.get(1);
        Ok((
            SubjectId::new(s).map_err(|e| StoreError::Corrupt {
                key: "revocations".into(),
                message: e.to_string(),
            })?,
            u32::try_from(before).unwrap_or(u32::MAX),
        ))
    })
    .collect()
}

pub(super) fn people(c: &mut impl GenericClient) -> Result<Vec<Person>, StoreError> {
    Ok(c.query(
        "SELECT id, number, name, department, class, counsellor, department_head, wecom_id, \
             email FROM people ORDER BY id",
        &[],
    )?
    .iter()
    .map(|r| Person {
        id: r.get(0),
        number: r.get(1),
        name: r.get(2),
        department: r.get(3),
        class: r.get(4),
        counsellor: r.get(5),
        department_head: r.get(6),
        wecom_id: r.get(7),
        email: r.get(8),
    })
    .collect())
}

pub(super) fn places(c: &mut impl GenericClient) -> Result<Vec<Place>, StoreError> {
    Ok(c.query(
        "SELECT checkpoint, name, building, capacity, manager FROM places ORDER BY checkpoint",
        &[],
    )?
    .iter()
    .map(|r| {
        let cap: Option<i64> = r.get(3);
        Place {
            checkpoint: r.get(0),
            name: r.get(1),
            building: r.get(2),
            capacity: cap.and_then(|c| u32::try_from(c).ok()),
            manager: r.get(4),
        }
    })
    .collect())
}

pub(super) fn docs(
    c: &mut impl GenericClient,
    kind: Docs,
    newest_first: bool,
    limit: usize,
) -> Result<Vec<Doc>, StoreError> {
    let order = if newest_first { "DESC" } else { "ASC" };
    Ok(c.query(
        &format!(
            "SELECT key, ord, time_ms, record FROM docs WHERE kind = $1 \
                 ORDER BY ord {order}, key LIMIT $2"
        ),
        &[
            &(kind.code() as i16),
            &i64::try_from(limit).unwrap_or(i64::MAX),
        ],
    )?
    .iter()
    .map(|r| Doc {
        key: r.get(0),
        ord: r.get(1),
        time_ms: r.get(2),
        json: r.get(3),
    })
    .collect())
}

impl Cols for postgres::Row {
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        let ty = self
            .columns()
            .get(i)
            .map(|c| c.type_().clone())
            .unwrap_or(Type::INT8);
        Ok(match ty {
            Type::INT2 => self.try_get::<_, Option<i16>>(i)?.map(i64::from),
            Type::INT4 => self.try_get::<_, Option<i32>>(i)?.map(i64::from),
            _ => self.try_get::<_, Option<i64>>(i)?,
        })
    }
    fn text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn real(&self, i: usize) -> Result<Option<f64>, StoreError> {
        let ty = self
            .columns()
            .get(i)
            .map(|c| c.type_().clone())
            .unwrap_or(Type::FLOAT8);
        Ok(match ty {
            Type::FLOAT4 => self.try_get::<_, Option<f32>>(i)?.map(f64::from),
            _ => self.try_get::<_, Option<f64>>(i)?,
        })
    }
    fn flag(&self, i: usize) -> Result<bool, StoreError> {
        Ok(self.try_get(i)?)
    }
}

impl PostgresStore {
    /// [`Store::scans_at`] in one statement.
    pub(super) fn scans_in_windows(
        &self,
        windows: &[Window],
    ) -> Result<Vec<Vec<Scan>>, StoreError> {
        let (cps, from, to) = window_columns(windows);
        let sql = format!(
            "SELECT w.i, {} FROM unnest($1::text[], $2::bigint[], $3::bigint[]) WITH ORDINALITY \
             AS w(cp, f, t, i) JOIN passes p ON p.checkpoint = \
             (SELECT id FROM checkpoints WHERE name = w.cp) AND p.ts >= w.f AND p.ts < w.t {} \
             ORDER BY w.i, p.ts, p.event, p.subject",
            decode::SCAN_COLUMNS,
            decode::SCAN_JOINS
        );
        let mut out: Vec<Vec<Scan>> = vec![Vec::new(); windows.len()];
        for r in self.read_rows(&sql, &[&cps, &from, &to])? {
            let i: i64 = r.try_get(0)?;
            let scan = decode::scan_of(&Shifted(&r))?;
            if let Some(w) = usize::try_from(i - 1).ok().and_then(|i| out.get_mut(i)) {
                w.push(scan);
            }
        }
        Ok(out)
    }

    /// [`Store::stays_at`] in one statement, and one for the people's names.
    pub(super) fn stays_in_windows(
        &self,
        windows: &[Window],
    ) -> Result<Vec<Vec<Stay>>, StoreError> {
        let (cps, from, to) = window_columns(windows);
        let rows = self.read_rows(
            "SELECT w.i, p.subject, p.ts, p.until FROM unnest($1::text[], $2::bigint[], \
             $3::bigint[]) WITH ORDINALITY AS w(cp, f, t, i) JOIN passes p ON p.checkpoint = \
             (SELECT id FROM checkpoints WHERE name = w.cp) AND p.ts >= w.f AND p.ts < w.t \
             WHERE p.direction = 0 AND p.admitted ORDER BY w.i, p.ts, p.subject",
            &[&cps, &from, &to],
        )?;
        let ids = rows
            .iter()
            .map(|r| r.try_get::<_, i32>(1))
            .collect::<Result<BTreeSet<i32>, _>>()?;
        let ids: Vec<i32> = ids.into_iter().collect();
        let mut names: HashMap<i32, SubjectId> = HashMap::new();
        for r in self.read_rows("SELECT id, name FROM subjects WHERE id = ANY($1)", &[&ids])? {
            let name: String = r.try_get(1)?;
            let s = SubjectId::new(name).map_err(|e| StoreError::Corrupt {
                key: "subjects".into(),
                message: e.to_string(),
            })?;
            names.insert(r.try_get(0)?, s);
        }
        let mut out: Vec<Vec<Stay>> = vec![Vec::new(); windows.len()];
        for r in &rows {
            let i: i64 = r.try_get(0)?;
            let sid: i32 = r.try_get(1)?;
            let subject = names
                .get(&sid)
                .cloned()
                .ok_or_else(|| StoreError::Corrupt {
                    key: "passes".into(),
                    message: format!("subject {sid} has no name"),
                })?;
            if let Some(w) = usize::try_from(i - 1).ok().and_then(|i| out.get_mut(i)) {
                w.push(Stay {
                    subject,
                    start_ms: r.try_get(2)?,
                    until_ms: r.try_get(3)?,
                });
            }
        }
        Ok(out)
    }
}

/// Windows as the three arrays `unnest` takes.
fn window_columns(windows: &[Window]) -> (Vec<&str>, Vec<i64>, Vec<i64>) {
    let cps = windows.iter().map(|(cp, _, _)| cp.as_str()).collect();
    let from = windows.iter().map(|(_, f, _)| *f).collect();
    let to = windows.iter().map(|(_, _, t)| *t).collect();
    (cps, from, to)
}

/// A row read from its second column on: what precedes a decoder's columns.
struct Shifted<'r>(&'r postgres::Row);

impl Cols for Shifted<'_> {
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        self.0.int(i + 1)
    }
    fn text(&self, i: usize) -> Result<Option<String>, StoreError> {
        self.0.text(i + 1)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        self.0.bytes(i + 1)
    }
    fn real(&self, i: usize) -> Result<Option<f64>, StoreError> {
        self.0.real(i + 1)
    }
    fn flag(&self, i: usize) -> Result<bool, StoreError> {
        self.0.flag(i + 1)
    }
}
