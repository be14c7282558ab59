//! Maintenance: retention (whole days dropped), the portable dump, backup and restore.

use checkpoint_link::sync::Recover;

use super::read::*;
use super::write::*;
use super::*;

impl PostgresStore {
    pub(super) fn purge_some(&self, cutoff_ms: i64, max: usize) -> Result<u64, StoreError> {
        let mut c = self.conn()?;
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        // Whole days received before the cut-off go at once.
        let mut n = 0u64;
        for (day, name) in PostgresStore::partitions(&mut *c)?
            .into_iter()
            .filter(|(d, _)| d + DAY_MS <= cutoff_ms)
        {
            let mut tx = c.transaction()?;
            let rows: i64 = tx
                .query_one(&format!("SELECT count(*) FROM {name}"), &[])?
                .get(0);
            tx.execute(
                &format!("DELETE FROM readings WHERE event IN (SELECT pk FROM {name})"),
                &[],
            )?;
            tx.batch_execute(&format!(
                "DROP TABLE {name}; DROP TABLE IF EXISTS {}",
                day_name("passes", day)
            ))?;
            tx.commit()?;
            tracing::info!(
                message = "Retention dropped a day.",
                partition = name,
                events = rows
            );
            n += rows.max(0) as u64;
        }
        let mut tx = c.transaction()?;
        let gone: Vec<i64> = tx
            .query(
                "DELETE FROM events WHERE received < $1 AND pk IN \
                 (SELECT pk FROM events WHERE received < $1 ORDER BY pk LIMIT $2) RETURNING pk",
                &[&cutoff_ms, &limit],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        n += gone.len() as u64;
        if !gone.is_empty() {
            tx.execute(
                "DELETE FROM passes WHERE received < $1 AND event = ANY($2)",
                &[&cutoff_ms, &gone],
            )?;
            tx.execute("DELETE FROM readings WHERE event = ANY($1)", &[&gone])?;
        }
        // Links to passes that are gone lead nowhere: a person back after the retention period
        // starts a new chain.
        tx.execute("DELETE FROM last_pass WHERE received < $1", &[&cutoff_ms])?;
        let remaining = limit - gone.len() as i64;
        if remaining > 0 {
            n += tx.execute(
                "DELETE FROM conflicts WHERE id IN \
                 (SELECT id FROM conflicts WHERE received < $1 LIMIT $2)",
                &[&cutoff_ms, &remaining],
            )?;
            n += tx.execute(
                "DELETE FROM docs WHERE kind = $1 AND key IN \
                 (SELECT key FROM docs WHERE kind = $1 AND time_ms < $2 LIMIT $3)",
                &[&(Docs::Notifications.code() as i16), &cutoff_ms, &remaining],
            )?;
        }
        tx.commit()?;
        Ok(n)
    }

    pub(super) fn dump(
        &self,
        tx: &mut postgres::Transaction<'_>,
        out: &mut dyn FnMut(Item) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "SELECT {} FROM events e {} ORDER BY e.pk",
            decode::EVENT_COLUMNS,
            decode::EVENT_JOINS
        );
        // A portal, so the dump streams instead of holding every row.
        let portal = tx.bind(&sql, &[])?;
        loop {
            let rows = tx.query_portal(&portal, 5000)?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let (event, received_ms) = decode::event_of(r)?;
                out(Item::Event(Received { received_ms, event }))?;
            }
        }
        for r in tx.query(
            "SELECT received, record FROM conflicts ORDER BY received, id",
            &[],
        )? {
            let json: String = r.get(1);
            out(Item::Conflict(Received {
                received_ms: r.get(0),
                event: serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                    key: "conflicts".into(),
                    message: e.to_string(),
                })?,
            }))?;
        }
        for r in tx.query("SELECT box, state FROM sequences ORDER BY box", &[])? {
            let b: String = r.get(0);
            let j: String = r.get(1);
            let corrupt = |m: String| StoreError::Corrupt {
                key: format!("sequences/{b}"),
                message: m,
            };
            out(Item::Sequence(Sequence {
                box_id: b.parse().map_err(|e| corrupt(format!("{e}")))?,
                state: serde_json::from_str(&j).map_err(|e| corrupt(e.to_string()))?,
            }))?;
        }
        for (subject, issued_before) in revocations(tx)? {
            out(Item::Revocation(Revocation {
                subject,
                issued_before,
            }))?;
        }
        for p in people(tx)? {
            out(Item::Person(p))?;
        }
        for p in places(tx)? {
            out(Item::Place(p))?;
        }
        for kind in Docs::ALL {
            for doc in docs(tx, kind, false, usize::MAX)? {
                out(Item::Doc(KeptDoc { kind, doc }))?;
            }
        }
        for r in tx.query(
            "SELECT b.name, r.seq FROM readings r JOIN boxes b ON b.id = r.box ORDER BY r.event",
            &[],
        )? {
            let b: String = r.get(0);
            let seq: i64 = r.get(1);
            out(Item::Unhandled(Unhandled {
                box_id: b.parse().map_err(|e| StoreError::Corrupt {
                    key: "readings".into(),
                    message: format!("{e}"),
                })?,
                seq: u64::try_from(seq).unwrap_or(0),
            }))?;
        }
        Ok(())
    }

    pub(super) fn backup_to(
        &self,
        out: &mut dyn std::io::Write,
    ) -> Result<BackupSummary, StoreError> {
        let mut c = self.conn()?;
        let mut tx = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let mut w = portable::Writer::new(out)?;
        self.dump(&mut tx, &mut |item: Item| w.item(&item))?;
        let summary = w.finish()?;
        tx.commit()?;
        Ok(summary)
    }

    pub(super) fn restore_into(
        &self,
        input: &mut dyn std::io::Read,
    ) -> Result<BackupSummary, StoreError> {
        if !self.is_empty()? || self.conflicts()? > 0 || !self.people()?.is_empty() {
            return Err(StoreError::Backup(format!(
                "{} is not empty: restore into a new database",
                self.label
            )));
        }
        // Events go in through the ordinary batch path (one transaction per batch would leave
        // half a restore on a damaged file), so the whole restore is one transaction here.
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        let mut fresh = HashMap::new();
        let mut pending: Vec<(Event, i64)> = Vec::new();
        let mut unhandled: Vec<(String, i64)> = Vec::new();
        let mut others: Vec<Item> = Vec::new();
        let summary = portable::read(input, &mut |item| {
            match item {
                Item::Event(Received { received_ms, event }) => pending.push((event, received_ms)),
                Item::Unhandled(u) => unhandled.push((u.box_id.to_string(), db_seq(u.seq)?)),
                other => others.push(other),
            }
            Ok(())
        })?;
        // Events in runs of one receive time, in their order.
        let mut start = 0;
        while start < pending.len() {
            let received = pending[start].1;
            let mut end = start;
            while end < pending.len() && pending[end].1 == received && end - start < 2000 {
                end += 1;
            }
            let batch: Vec<Event> = pending[start..end].iter().map(|(e, _)| e.clone()).collect();
            self.restore_batch(&mut tx, &batch, received, &mut fresh)?;
            start = end;
        }
        tx.execute("DELETE FROM readings", &[])?;
        for (b, seq) in &unhandled {
            tx.execute(
                "INSERT INTO readings (event, box, seq) SELECT e.pk, e.box, e.seq FROM events e \
                 WHERE e.box = (SELECT id FROM boxes WHERE name = $1) AND e.seq = $2 \
                 ON CONFLICT DO NOTHING",
                &[b, seq],
            )?;
        }
        tx.execute("DELETE FROM sequences", &[])?;
        for item in others {
            match item {
                Item::Conflict(Received { received_ms, event }) => {
                    let json = serde_json::to_string(&event)
                        .map_err(|e| StoreError::Backup(format!("a conflict: {e}")))?;
                    tx.execute(
                        "INSERT INTO conflicts (id, received, record) VALUES ($1, $2, $3) \
                         ON CONFLICT (id) DO NOTHING",
                        &[&event.id.as_bytes().to_vec(), &received_ms, &json],
                    )?;
                }
                Item::Sequence(Sequence { box_id, state }) => {
                    put_seq_state(&mut tx, box_id.as_str(), &state)?
                }
                Item::Revocation(r) => {
                    tx.execute(
                        "INSERT INTO revocations (subject, issued_before) VALUES ($1, $2) \
                         ON CONFLICT (subject) DO UPDATE SET issued_before = excluded.issued_before",
                        &[&r.subject.as_str(), &i64::from(r.issued_before)],
                    )?;
                }
                Item::Person(p) => put_people(&mut tx, std::slice::from_ref(&p))?,
                Item::Place(p) => put_places(&mut tx, std::slice::from_ref(&p))?,
                Item::Doc(d) => put_doc(&mut tx, d.kind, &d.doc)?,
                Item::Event(_) | Item::Unhandled(_) => {}
            }
        }
        tx.commit()?;
        self.names.lock_or_recover().extend(fresh);
        Ok(summary)
    }
}
