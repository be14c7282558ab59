//! The HTTP API: JSON over HTTP, bound to localhost by default, every request carrying the bearer
//! token from the token file (checked once, by a layer in front of every route, before the
//! request is parsed). No storage logic here: handlers call [`crate::query`] on a blocking
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
use crate::roster::{self, Place};
use crate::store::Store;

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
    /// Where a backup is written before it is sent (the data directory).
    pub backup_dir: std::path::PathBuf,
    /// Face galleries to publish, to ingest (which holds the broker connection).
    pub galleries: tokio::sync::mpsc::Sender<crate::gallery::GalleryPublish>,
    /// Whether galleries may go out at all ([`crate::gallery::tls_only`]).
    pub galleries_allowed: Result<(), String>,
    /// Every time in an answer is shown in the site's zone; hourly buckets are its hours.
    pub site: crate::site::Site,
    /// "Now" for default time ranges, box silence and revocation cut-offs.
    pub clock: checkpoint_link::clock::SharedClock,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
pub struct PersonQuery {
    pub person: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub window_s: Option<u64>,
    pub depth: Option<u8>,
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

fn parse_ms(s: Option<&str>, default: i64) -> Result<i64, ApiError> {
    match s {
        None => Ok(default),
        Some(s) => OffsetDateTime::parse(s, &Rfc3339)
            .map(checkpoint_protocol::unix_ms)
            .map_err(|e| bad(format!("{s:?} is not an RFC 3339 time: {e}"))),
    }
}

/// Every route is behind this: the token is checked before anything of the request (path,
/// query string, body) is parsed.
async fn require_token(
    State(st): State<ApiState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, ApiError> {
    authorise(&st, req.headers())?;
    Ok(next.run(req).await)
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

fn row(e: &Event, places: &HashMap<String, Place>, site: &crate::site::Site) -> TrajectoryRow {
    let place = places.get(e.checkpoint.as_str());
    TrajectoryRow {
        ts: site.rfc3339(e.ts_ms()),
        box_id: e.box_id.to_string(),
        seq: e.seq,
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

mod config;
pub use config::ApiConfig;
mod gallery;
mod handlers;
pub use handlers::EventsQuery;
use handlers::{
    backup, boxes, contacts, events, import_people, import_places, notifications, occupancy,
    revocations, revoke, trajectory,
};

// The response bodies, in the crate the clients share.
pub use checkpoint_api::notifications::NotificationRow;
pub use checkpoint_api::roster::Imported;
pub use checkpoint_api::{
    BoxRow, ContactRow, EventsPage, GalleryPublished, OccupancyDto, RevocationDto, TrajectoryRow,
    EVENTS_LIMIT,
};

/// The largest roster file accepted: some 250,000 people (a 20,000-person campus is ~2.5 MB).
pub const ROSTER_MAX_BYTES: usize = 32 << 20;

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/revocations", get(revocations).post(revoke))
        .route("/api/v1/events", get(events))
        .route(
            "/api/v1/roster/people",
            axum::routing::post(import_people)
                .layer(axum::extract::DefaultBodyLimit::max(ROSTER_MAX_BYTES)),
        )
        .route(
            "/api/v1/roster/places",
            axum::routing::post(import_places)
                .layer(axum::extract::DefaultBodyLimit::max(ROSTER_MAX_BYTES)),
        )
        .route("/api/v1/trajectory", get(trajectory))
        .route("/api/v1/contacts", get(contacts))
        .route("/api/v1/occupancy", get(occupancy))
        .route("/api/v1/boxes", get(boxes))
        .route("/api/v1/backup", get(backup))
        .route("/api/v1/notifications", get(notifications))
        .route(
            "/api/v1/boxes/{box_id}/gallery",
            axum::routing::post(gallery::publish_gallery).layer(
                axum::extract::DefaultBodyLimit::max(
                    checkpoint_protocol::gallery::MAX_BYTES + 1024,
                ),
            ),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ))
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
