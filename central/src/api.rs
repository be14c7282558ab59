//! The HTTP API: JSON over HTTP, bound to localhost by default, every request carrying the bearer
//! token from the token file. No storage logic here: handlers call [`crate::query`] on a blocking
//! thread and map the result to response types, which are also what the CLI deserialises.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use checkpoint_protocol::ids::{CheckpointId, SubjectId};
use checkpoint_protocol::records::Event;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use std::collections::HashMap;

use crate::query::{self, ContactParams};
use crate::registry::Registry;
use crate::roster::{self, Person, Place};
use crate::store::{event_ms, Store};

#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub token: Arc<String>,
    pub window_s: u64,
    pub max_stay_s: u64,
    /// Signalled after a revocation so the trust material is republished at once.
    pub trust_changed: Arc<tokio::sync::Notify>,
    /// A box not heard from for this long is shown as `silent`.
    pub silent_after_s: u64,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryRow {
    pub ts: String,
    pub box_id: String,
    pub checkpoint: String,
    /// The place's name and building from the roster, when it is there.
    pub place: Option<String>,
    pub building: Option<String>,
    /// The person (events queries list several people).
    pub subject: Option<String>,
    pub direction: String,
    pub decision: String,
    pub reason: String,
    pub temperature_c: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactRow {
    pub subject: String,
    pub degree: u8,
    pub via: Option<String>,
    pub encounters: u32,
    pub overlap_s: i64,
    /// Where and when they met, first few.
    pub meetings: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OccupancyDto {
    pub place: String,
    pub inside: u64,
    pub ins: u64,
    pub outs: u64,
    pub auto_checked_out: u64,
    /// `(interval start, admitted in, admitted out)`, hourly over the last 12 hours.
    pub flow: Vec<(String, u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoxRow {
    pub box_id: String,
    pub state: Option<String>,
    pub version: Option<String>,
    pub last_seen_s: u64,
    pub outbox_depth: Option<u64>,
    pub outbox_oldest_age_s: Option<u64>,
    pub outbox_full: Option<bool>,
    pub trust_age_s: Option<u64>,
    pub fps: Option<f32>,
    pub clock_synced: Option<bool>,
    /// Highest sequence number stored with nothing missing below it.
    pub stored_upto: u64,
    pub gaps: Vec<(u64, u64)>,
    pub lost_events: u64,
}

#[derive(Debug, Deserialize)]
pub struct PersonQuery {
    pub person: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub window_s: Option<u64>,
    pub depth: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationDto {
    pub subject: String,
    /// Codes of the subject issued before this instant (RFC 3339) are revoked; default now.
    pub issued_before: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct PlaceQuery {
    pub place: String,
}

/// An API error: status and a one-line message as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn rfc3339_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn parse_ms(s: Option<&str>, default: i64) -> Result<i64, ApiError> {
    match s {
        None => Ok(default),
        Some(s) => OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
            .map_err(|e| bad(format!("{s:?} is not an RFC 3339 time: {e}"))),
    }
}

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn authorise(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Constant-time comparison, so the token cannot be guessed byte by byte from timings.
    let ok = given.is_some_and(|g| {
        g.len() == state.token.len()
            && g.bytes()
                .zip(state.token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".into(),
        ))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(message = "Query failed.", error = %e);
            Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        }
        Err(e) => Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

fn row(e: &Event, places: &HashMap<String, Place>) -> TrajectoryRow {
    let place = places.get(e.checkpoint.as_str());
    TrajectoryRow {
        ts: rfc3339_ms(event_ms(e)),
        box_id: e.box_id.to_string(),
        checkpoint: e.checkpoint.to_string(),
        place: place.map(|p| p.name.clone()),
        building: place.map(|p| p.building.clone()).filter(|b| !b.is_empty()),
        subject: e.subject.as_ref().map(|s| s.to_string()),
        direction: wire(&e.direction),
        decision: wire(&e.decision),
        reason: wire(&e.reason),
        temperature_c: e.temperature_c,
    }
}

/// The wire name of an enum (its serde form), for the response rows.
fn wire<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

const DEFAULT_SPAN_MS: i64 = 14 * 86_400_000;

async fn trajectory(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<PersonQuery>,
) -> Result<Json<Vec<TrajectoryRow>>, ApiError> {
    authorise(&st, &headers)?;
    let person = SubjectId::new(q.person.clone()).map_err(|e| bad(e.to_string()))?;
    let to = parse_ms(q.to.as_deref(), now_ms())?;
    let from = parse_ms(q.from.as_deref(), to - DEFAULT_SPAN_MS)?;
    let store = st.store.clone();
    let (events, places) = blocking(move || {
        let e = query::trajectory(store.as_ref(), &person, from, to)?;
        Ok((e, places_by_id(store.as_ref())?))
    })
    .await?;
    Ok(Json(events.iter().map(|e| row(e, &places)).collect()))
}

fn places_by_id(store: &dyn Store) -> Result<HashMap<String, Place>, crate::store::StoreError> {
    Ok(store
        .places()?
        .into_iter()
        .map(|p| (p.checkpoint.clone(), p))
        .collect())
}

/// Filters of the in/out events table.
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
    pub limit: Option<usize>,
}

/// Most rows one events query returns.
pub const EVENTS_LIMIT: usize = 100_000;

async fn events(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Vec<TrajectoryRow>>, ApiError> {
    authorise(&st, &headers)?;
    let to = parse_ms(q.to.as_deref(), now_ms())?;
    let from = parse_ms(q.from.as_deref(), to - 86_400_000)?;
    let limit = q.limit.unwrap_or(10_000).min(EVENTS_LIMIT);
    let person = q
        .person
        .clone()
        .map(SubjectId::new)
        .transpose()
        .map_err(|e| bad(e.to_string()))?;
    let place = q
        .place
        .clone()
        .map(CheckpointId::new)
        .transpose()
        .map_err(|e| bad(e.to_string()))?;
    for (name, v, allowed) in [
        ("direction", &q.direction, ["in", "out"]),
        ("decision", &q.decision, ["admit", "deny"]),
    ] {
        if let Some(v) = v {
            if !allowed.contains(&v.as_str()) {
                return Err(bad(format!("{name} is {} or {}", allowed[0], allowed[1])));
            }
        }
    }
    let store = st.store.clone();
    let (rows, places) = blocking(move || {
        // Read the narrowest index range the filters allow.
        let mut evs = match (&person, &place) {
            (Some(p), _) => store.by_person(p, from, to)?,
            (None, Some(c)) => store.by_place(c, from, to)?,
            (None, None) => store.by_time(from, to, usize::MAX)?,
        };
        let people: HashMap<String, Person> = if q.department.is_some() || q.class.is_some() {
            store
                .people()?
                .into_iter()
                .map(|p| (p.id.clone(), p))
                .collect()
        } else {
            HashMap::new()
        };
        evs.retain(|e| {
            let who = e.subject.as_ref().and_then(|s| people.get(s.as_str()));
            place.as_ref().is_none_or(|c| &e.checkpoint == c)
                && q.direction
                    .as_ref()
                    .is_none_or(|d| &wire(&e.direction) == d)
                && q.decision.as_ref().is_none_or(|d| &wire(&e.decision) == d)
                && q.department
                    .as_ref()
                    .is_none_or(|d| who.is_some_and(|p| &p.department == d))
                && q.class
                    .as_ref()
                    .is_none_or(|c| who.is_some_and(|p| &p.class == c))
        });
        evs.truncate(limit);
        Ok((evs, places_by_id(store.as_ref())?))
    })
    .await?;
    Ok(Json(rows.iter().map(|e| row(e, &places)).collect()))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imported {
    pub imported: usize,
}

async fn import_people(
    State(st): State<ApiState>,
    headers: HeaderMap,
    body: String,
) -> Result<Json<Imported>, ApiError> {
    authorise(&st, &headers)?;
    let people = roster::parse_people(&body)
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let n = people.len();
    let store = st.store.clone();
    blocking(move || store.replace_people(&people)).await?;
    tracing::info!(message = "People roster imported.", people = n);
    Ok(Json(Imported { imported: n }))
}

async fn import_places(
    State(st): State<ApiState>,
    headers: HeaderMap,
    body: String,
) -> Result<Json<Imported>, ApiError> {
    authorise(&st, &headers)?;
    let places = roster::parse_places(&body)
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let n = places.len();
    let store = st.store.clone();
    blocking(move || store.replace_places(&places)).await?;
    tracing::info!(message = "Places roster imported.", places = n);
    Ok(Json(Imported { imported: n }))
}

async fn contacts(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<PersonQuery>,
) -> Result<Json<Vec<ContactRow>>, ApiError> {
    authorise(&st, &headers)?;
    let person = SubjectId::new(q.person.clone()).map_err(|e| bad(e.to_string()))?;
    let to = parse_ms(q.to.as_deref(), now_ms())?;
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
                    .map(|m| (m.checkpoint.to_string(), rfc3339_ms(m.ts_ms)))
                    .collect(),
            })
            .collect(),
    ))
}

async fn occupancy(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<PlaceQuery>,
) -> Result<Json<OccupancyDto>, ApiError> {
    authorise(&st, &headers)?;
    let place = CheckpointId::new(q.place.clone()).map_err(|e| bad(e.to_string()))?;
    let store = st.store.clone();
    let max_stay = i64::try_from(st.max_stay_s).unwrap_or(0) * 1000;
    let now = now_ms();
    let hour = 3_600_000;
    let p = place.clone();
    let (occ, flow) =
        blocking(move || query::occupancy(store.as_ref(), &p, now, max_stay, 12 * hour, hour))
            .await?;
    Ok(Json(OccupancyDto {
        place: place.to_string(),
        inside: occ.inside,
        ins: occ.ins,
        outs: occ.outs,
        auto_checked_out: occ.auto_checked_out,
        flow: flow
            .into_iter()
            .map(|(t, i, o)| (rfc3339_ms(t), i, o))
            .collect(),
    }))
}

async fn boxes(
    State(st): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Vec<BoxRow>>, ApiError> {
    authorise(&st, &headers)?;
    let now = Instant::now();
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
                fps: e.telemetry.as_ref().map(|t| t.fps),
                clock_synced: e.telemetry.as_ref().map(|t| t.clock_synced),
                stored_upto: e.contiguous,
                gaps: e.gaps,
                lost_events: e.lost,
            })
            .collect(),
    ))
}

async fn revoke(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Json(r): Json<RevocationDto>,
) -> Result<Json<RevocationDto>, ApiError> {
    authorise(&st, &headers)?;
    let subject = SubjectId::new(r.subject.clone()).map_err(|e| bad(e.to_string()))?;
    let before_ms = parse_ms(r.issued_before.as_deref(), now_ms())?;
    let before =
        u32::try_from(before_ms / 1000).map_err(|_| bad("issued_before is outside 1970..2106"))?;
    let store = st.store.clone();
    let s2 = subject.clone();
    blocking(move || store.revoke(&s2, before)).await?;
    st.trust_changed.notify_one();
    tracing::info!(message = "Pass codes revoked.", subject = %subject, issued_before = before);
    Ok(Json(RevocationDto {
        subject: subject.to_string(),
        issued_before: Some(rfc3339_ms(i64::from(before) * 1000)),
    }))
}

async fn revocations(
    State(st): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Vec<RevocationDto>>, ApiError> {
    authorise(&st, &headers)?;
    let store = st.store.clone();
    let list = blocking(move || store.revocations()).await?;
    Ok(Json(
        list.into_iter()
            .map(|(s, b)| RevocationDto {
                subject: s.to_string(),
                issued_before: Some(rfc3339_ms(i64::from(b) * 1000)),
            })
            .collect(),
    ))
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/revocations", get(revocations).post(revoke))
        .route("/api/v1/events", get(events))
        .route("/api/v1/roster/people", axum::routing::post(import_people))
        .route("/api/v1/roster/places", axum::routing::post(import_places))
        .route("/api/v1/trajectory", get(trajectory))
        .route("/api/v1/contacts", get(contacts))
        .route("/api/v1/occupancy", get(occupancy))
        .route("/api/v1/boxes", get(boxes))
        .with_state(state)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(message = "API listening.", addr = ?addr);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
