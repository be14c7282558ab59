//! The API's request handlers.
//!
//! Long on purpose: one handler per route, in the order the router lists them.

use super::*;

const DEFAULT_SPAN_MS: i64 = 14 * 86_400_000;

pub(super) async fn trajectory(
    State(st): State<ApiState>,
    Query(q): Query<PersonQuery>,
) -> Result<Json<Vec<TrajectoryRow>>, ApiError> {
    let person = SubjectId::new(q.person.clone()).map_err(|e| bad(e.to_string()))?;
    let to = parse_ms(q.to.as_deref(), st.clock.now_ms())?;
    let from = parse_ms(q.from.as_deref(), to - DEFAULT_SPAN_MS)?;
    let store = st.store.clone();
    let (events, places) = blocking(move || {
        let e = query::trajectory(store.as_ref(), &person, from, to)?;
        Ok((e, places_by_id(store.as_ref())?))
    })
    .await?;
    Ok(Json(
        events.iter().map(|e| row(e, &places, &st.site)).collect(),
    ))
}

fn places_by_id(store: &dyn Store) -> Result<HashMap<String, Place>, crate::store::StoreError> {
    Ok(store
        .places()?
        .into_iter()
        .map(|p| (p.checkpoint.clone(), p))
        .collect())
}

/// Filters of the in/out events table, and the page wanted.
#[derive(Debug, Default, Deserialize)]
pub struct EventsQuery {
    pub person: Option<String>,
    pub department: Option<String>,
    pub class: Option<String>,
    pub place: Option<String>,
    pub direction: Option<String>,
    pub decision: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Rows per page, at most [`EVENTS_LIMIT`]; default 100.
    pub limit: Option<usize>,
    /// The `next` of the page before.
    pub after: Option<String>,
}

// The API never asks the store for more than a page holds.
const _: () = assert!(EVENTS_LIMIT <= crate::store::page::PAGE_MAX);

fn one_of<T: serde::de::DeserializeOwned>(
    name: &str,
    v: &Option<String>,
    allowed: [&str; 2],
) -> Result<Option<T>, ApiError> {
    match v {
        None => Ok(None),
        Some(v) if allowed.contains(&v.as_str()) => serde_json::from_value(serde_json::json!(v))
            .map(Some)
            .map_err(|e| bad(format!("{name}: {e}"))),
        Some(_) => Err(bad(format!("{name} is {} or {}", allowed[0], allowed[1]))),
    }
}

pub(super) async fn events(
    State(st): State<ApiState>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<EventsPage>, ApiError> {
    let to = parse_ms(q.to.as_deref(), st.clock.now_ms())?;
    let from = parse_ms(q.from.as_deref(), to - 86_400_000)?;
    let limit = q.limit.unwrap_or(100).clamp(1, EVENTS_LIMIT);
    let filter = crate::store::EventFilter {
        from_ms: from,
        to_ms: to,
        person: q
            .person
            .clone()
            .map(SubjectId::new)
            .transpose()
            .map_err(|e| bad(e.to_string()))?,
        place: q
            .place
            .clone()
            .map(CheckpointId::new)
            .transpose()
            .map_err(|e| bad(e.to_string()))?,
        department: q.department.clone(),
        class: q.class.clone(),
        direction: one_of("direction", &q.direction, ["in", "out"])?,
        decision: one_of("decision", &q.decision, ["admit", "deny"])?,
    };
    let after = q
        .after
        .as_deref()
        .map(str::parse::<crate::store::Cursor>)
        .transpose()
        .map_err(bad)?;
    let store = st.store.clone();
    let (page, total, places) = blocking(move || {
        let page = store.events_page(&filter, after, limit)?;
        // The exact count with the first page; later pages need not count again.
        let total = match after {
            None => Some(store.events_count(&filter)?),
            Some(_) => None,
        };
        Ok((page, total, places_by_id(store.as_ref())?))
    })
    .await?;
    Ok(Json(EventsPage {
        rows: page
            .events
            .iter()
            .map(|e| row(e, &places, &st.site))
            .collect(),
        total,
        next: page.next.map(|c| c.to_string()),
    }))
}

#[derive(Debug, Deserialize)]
pub struct ImportQuery {
    #[serde(default)]
    pub mode: roster::Mode,
    #[serde(default)]
    pub dry_run: bool,
}

/// Parses, compares with the stored roster and, unless a dry run, writes: one blocking call.
async fn import<T>(
    st: &ApiState,
    q: ImportQuery,
    rows: Vec<T>,
    what: &'static str,
    stored: fn(&dyn Store) -> Result<Vec<T>, crate::store::StoreError>,
    write: fn(&dyn Store, &[T], roster::Mode) -> Result<(), crate::store::StoreError>,
) -> Result<Json<Imported>, ApiError>
where
    T: roster::Keyed + PartialEq + Send + 'static,
{
    let store = st.store.clone();
    let n = rows.len();
    let (mode, dry_run) = (q.mode, q.dry_run);
    let change = blocking(move || {
        let old = stored(store.as_ref())?;
        if mode == roster::Mode::Replace {
            if let Err(m) = roster::check_not_emptying(n, old.len(), what) {
                return Ok(Err(m));
            }
        }
        let change = roster::diff(&old, &rows, mode);
        if !dry_run {
            write(store.as_ref(), &rows, mode)?;
        }
        Ok(Ok(change))
    })
    .await?
    .map_err(|m| ApiError(StatusCode::UNPROCESSABLE_ENTITY, m))?;
    tracing::info!(
        message = "Roster imported.",
        what,
        rows = n,
        ?mode,
        dry_run,
        added = change.added.len(),
        changed = change.changed.len(),
        removed = change.removed.len()
    );
    Ok(Json(Imported {
        imported: n,
        mode,
        dry_run,
        change,
    }))
}

pub(super) async fn import_people(
    State(st): State<ApiState>,
    Query(q): Query<ImportQuery>,
    body: String,
) -> Result<Json<Imported>, ApiError> {
    let people = roster::parse_people(&body)
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    import(
        &st,
        q,
        people,
        "people",
        |s| s.people(),
        |s, rows, mode| match mode {
            roster::Mode::Replace => s.replace_people(rows),
            roster::Mode::Upsert => s.upsert_people(rows),
        },
    )
    .await
}

pub(super) async fn import_places(
    State(st): State<ApiState>,
    Query(q): Query<ImportQuery>,
    body: String,
) -> Result<Json<Imported>, ApiError> {
    let places = roster::parse_places(&body)
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    import(
        &st,
        q,
        places,
        "places",
        |s| s.places(),
        |s, rows, mode| match mode {
            roster::Mode::Replace => s.replace_places(rows),
            roster::Mode::Upsert => s.upsert_places(rows),
        },
    )
    .await
}

pub(super) async fn contacts(
    State(st): State<ApiState>,
    Query(q): Query<PersonQuery>,
) -> Result<Json<Vec<ContactRow>>, ApiError> {
    let person = SubjectId::new(q.person.clone()).map_err(|e| bad(e.to_string()))?;
    let to = parse_ms(q.to.as_deref(), st.clock.now_ms())?;
    let from = parse_ms(q.from.as_deref(), to - DEFAULT_SPAN_MS)?;
    let depth = q.depth.unwrap_or(1);
    if !(1..=2).contains(&depth) {
        return Err(bad("depth is 1 or 2"));
    }
    let window_s = q.window_s.unwrap_or(st.window_s);
    if window_s > 86_400 {
        return Err(bad("window_s is at most 86400"));
    }
    let p = ContactParams {
        from_ms: from,
        to_ms: to,
        window_ms: i64::try_from(window_s).unwrap_or(0) * 1000,
        max_stay_ms: i64::try_from(st.max_stay_s).unwrap_or(0) * 1000,
        now_ms: st.clock.now_ms(),
        depth,
    };
    let store = st.store.clone();
    let list = blocking(move || query::contacts(store.as_ref(), &person, &p)).await?;
    Ok(Json(
        list.into_iter()
            .map(|c| ContactRow {
                subject: c.subject.to_string(),
                degree: c.degree,
                via: c.via.map(|v| v.to_string()),
                encounters: c.encounters,
                overlap_s: c.overlap_s,
                meetings: c
                    .meetings
                    .iter()
                    .take(10)
                    .map(|m| (m.checkpoint.to_string(), st.site.rfc3339(m.ts_ms)))
                    .collect(),
            })
            .collect(),
    ))
}

pub(super) async fn occupancy(
    State(st): State<ApiState>,
    Query(q): Query<PlaceQuery>,
) -> Result<Json<OccupancyDto>, ApiError> {
    let place = CheckpointId::new(q.place.clone()).map_err(|e| bad(e.to_string()))?;
    let store = st.store.clone();
    let max_stay = i64::try_from(st.max_stay_s).unwrap_or(0) * 1000;
    let now = st.clock.now_ms();
    // The last 12 of the site's hours, the current one included.
    let edges = st.site.last_hours(now, 12);
    let p = place.clone();
    let (occ, flow) =
        blocking(move || query::occupancy(store.as_ref(), &p, now, max_stay, &edges)).await?;
    Ok(Json(OccupancyDto {
        place: place.to_string(),
        inside: occ.inside,
        ins: occ.ins,
        outs: occ.outs,
        auto_checked_out: occ.auto_checked_out,
        flow: flow
            .into_iter()
            .map(|(t, i, o)| (st.site.rfc3339(t), i, o))
            .collect(),
    }))
}

pub(super) async fn boxes(State(st): State<ApiState>) -> Result<Json<Vec<BoxRow>>, ApiError> {
    let now = st.clock.instant();
    Ok(Json(
        st.registry
            .snapshot()
            .into_iter()
            .map(|(b, e)| BoxRow {
                box_id: b.to_string(),
                // Silent for too long means offline, whatever the last status said.
                state: if now.duration_since(e.last_seen).as_secs() > st.silent_after_s {
                    Some("silent".to_string())
                } else {
                    e.state.map(|s| wire(&s))
                },
                version: e.version,
                last_seen_s: now.duration_since(e.last_seen).as_secs(),
                outbox_depth: e.telemetry.as_ref().map(|t| t.outbox_depth),
                outbox_oldest_age_s: e.telemetry.as_ref().and_then(|t| t.outbox_oldest_age_s),
                outbox_full: e.telemetry.as_ref().map(|t| t.outbox_full),
                trust_age_s: e.telemetry.as_ref().and_then(|t| t.trust_age_s),
                config_refused: e.telemetry.as_ref().map(|t| t.config_refused),
                fps: e.telemetry.as_ref().map(|t| t.fps),
                clock_synced: e.telemetry.as_ref().map(|t| t.clock_synced),
                stored_upto: e.contiguous,
                gaps: e.gaps,
                lost_events: e.lost,
            })
            .collect(),
    ))
}

pub(super) async fn revoke(
    State(st): State<ApiState>,
    Json(r): Json<RevocationDto>,
) -> Result<Json<RevocationDto>, ApiError> {
    let subject = SubjectId::new(r.subject.clone()).map_err(|e| bad(e.to_string()))?;
    let before_ms = parse_ms(r.issued_before.as_deref(), st.clock.now_ms())?;
    let before =
        u32::try_from(before_ms / 1000).map_err(|_| bad("issued_before is outside 1970..2106"))?;
    let store = st.store.clone();
    let s2 = subject.clone();
    blocking(move || store.revoke(&s2, before)).await?;
    st.trust_changed.notify_one();
    tracing::info!(message = "Pass codes revoked.", subject = %subject, issued_before = before);
    Ok(Json(RevocationDto {
        subject: subject.to_string(),
        issued_before: Some(st.site.rfc3339(i64::from(before) * 1000)),
    }))
}

pub(super) async fn revocations(
    State(st): State<ApiState>,
) -> Result<Json<Vec<RevocationDto>>, ApiError> {
    let store = st.store.clone();
    let list = blocking(move || store.revocations()).await?;
    Ok(Json(
        list.into_iter()
            .map(|(s, b)| RevocationDto {
                subject: s.to_string(),
                issued_before: Some(st.site.rfc3339(i64::from(b) * 1000)),
            })
            .collect(),
    ))
}

/// A consistent snapshot of the store, streamed. It is written to a file in the data directory
/// first (the store is locked only for that), which is unlinked before it is sent.
///
/// `?format=sqlite`: a copy of the SQLite database file itself (SQLite stores only), which
/// `restore --data-dir` puts in place as it is.
pub(super) async fn backup(
    State(st): State<ApiState>,
    Query(q): Query<BackupQuery>,
) -> Result<Response, ApiError> {
    let native = match q.format.as_deref() {
        None | Some("portable") => false,
        Some("sqlite") => true,
        Some(other) => return Err(bad(format!("format {other:?}: give portable or sqlite"))),
    };
    let store = st.store.clone();
    let path = st
        .backup_dir
        .join(format!("backup-{}.tmp", uuid::Uuid::new_v4().simple()));
    let (file, summary) = blocking(move || {
        let started = Instant::now();
        let (mut f, summary) = if native {
            store.snapshot_file(&path)?;
            let f = std::fs::File::open(&path).map_err(crate::store::StoreError::Io)?;
            let _ = std::fs::remove_file(&path);
            let events = store.len()?;
            (
                f,
                crate::store::portable::BackupSummary {
                    events,
                    ..Default::default()
                },
            )
        } else {
            let mut f = std::fs::File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(crate::store::StoreError::Io)?;
            let _ = std::fs::remove_file(&path);
            let summary = {
                let mut w = std::io::BufWriter::new(&mut f);
                store.backup(&mut w)?
            };
            (f, summary)
        };
        std::io::Seek::rewind(&mut f).map_err(crate::store::StoreError::Io)?;
        tracing::info!(
            message = "Backup taken.",
            events = summary.events,
            entries = summary.entries,
            ms = started.elapsed().as_millis() as u64
        );
        Ok((f, summary))
    })
    .await?;
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    let mut resp = axum::body::Body::from_stream(stream).into_response();
    resp.headers_mut().insert(
        "content-type",
        axum::http::HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(&summary.events.to_string()) {
        resp.headers_mut().insert("x-checkpoint-events", v);
    }
    Ok(resp)
}

#[derive(Debug, Deserialize)]
pub struct BackupQuery {
    pub format: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LimitQuery {
    pub limit: Option<usize>,
}

/// The notification log, newest first.
pub(super) async fn notifications(
    State(st): State<ApiState>,
    Query(q): Query<LimitQuery>,
) -> Result<Json<Vec<NotificationRow>>, ApiError> {
    let limit = q.limit.unwrap_or(100).min(10_000);
    let store = st.store.clone();
    let records =
        blocking(move || crate::alerts::log::kept::notifications(store.as_ref(), limit)).await?;
    Ok(Json(
        records
            .into_iter()
            .map(|record| NotificationRow {
                time: st.site.rfc3339(record.last_ms),
                record,
            })
            .collect(),
    ))
}
