//! `POST /api/v1/boxes/{box_id}/gallery`: forwards a face gallery file (the raw bytes of
//! `checkpointd enroll`'s output) to one box, retained (see [`crate::gallery`]).

use axum::body::Bytes;
use axum::extract::Path;
use checkpoint_protocol::ids::BoxId;

use super::*;
use crate::gallery::{self, GalleryPublish};

pub(super) async fn publish_gallery(
    State(st): State<ApiState>,
    Path(box_id): Path<String>,
    body: Bytes,
) -> Result<Json<GalleryPublished>, ApiError> {
    st.galleries_allowed
        .clone()
        .map_err(|why| ApiError(StatusCode::CONFLICT, why))?;
    let box_id = BoxId::new(box_id).map_err(|e| bad(e.to_string()))?;
    gallery::check(&body).map_err(bad)?;
    let unavailable = |why: String| ApiError(StatusCode::SERVICE_UNAVAILABLE, why);
    let (done, answer) = tokio::sync::oneshot::channel();
    let bytes = body.len();
    st.galleries
        .send(GalleryPublish {
            box_id: box_id.clone(),
            bytes: body.to_vec(),
            done,
        })
        .await
        .map_err(|_| unavailable("ingest is not running".into()))?;
    match answer.await {
        Ok(Ok(())) => Ok(Json(GalleryPublished {
            box_id: box_id.to_string(),
            bytes,
        })),
        Ok(Err(why)) => Err(unavailable(why)),
        Err(_) => Err(unavailable("ingest stopped".into())),
    }
}
