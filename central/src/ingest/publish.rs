//! The session's other clients: trust material (retained for every box, after each connect, a
//! revocation and every `republish_every`) and face galleries (retained, one box's own topic, when
//! the API hands one over).

use std::sync::Arc;

use checkpoint_link::clock::SharedClock;
use checkpoint_protocol::records;
use checkpoint_protocol::topic::{ConfigKind, Topic};
use tokio_util::sync::CancellationToken;

use super::session::Session;
use super::TrustPublish;
use crate::gallery::GalleryPublish;
use crate::store::Store;

/// Publishes trust material when the session (re)connects, when a revocation is signalled and
/// every period while connected, until `stop`.
pub(super) async fn trust(
    trust: TrustPublish,
    store: Arc<dyn Store>,
    session: Session,
    clock: SharedClock,
    stop: CancellationToken,
) {
    let mut connected = session.watch();
    let mut republish = tokio::time::interval(trust.every);
    republish.tick().await;
    loop {
        let due = tokio::select! {
            _ = stop.cancelled() => return,
            changed = connected.changed() => {
                if changed.is_err() {
                    return;
                }
                *connected.borrow_and_update()
            }
            _ = trust.changed.notified() => session.is_connected(),
            _ = republish.tick() => session.is_connected(),
        };
        if due {
            trust_once(&trust, &store, &session, clock.now()).await;
        }
    }
}

/// Publishes the current trust material, retained. A failure is logged; the next connect,
/// revocation or period publishes again.
async fn trust_once(
    trust: &TrustPublish,
    store: &Arc<dyn Store>,
    session: &Session,
    now: time::OffsetDateTime,
) {
    let Some(signer) = trust.signer.clone() else {
        return;
    };
    if trust.keys.is_empty() {
        return;
    }
    let (keys, store) = (trust.keys.clone(), store.clone());
    let record = tokio::task::spawn_blocking(move || {
        crate::trust::current(&keys, store.as_ref(), &signer, now)
    })
    .await;
    match record {
        Ok(Ok(cfg)) => {
            let topic = Topic::SharedConfig(ConfigKind::Trust).to_string();
            match session.publish(topic, true, records::encode(&cfg)).await {
                Ok(()) => tracing::info!(
                    message = "Trust material published.",
                    serial = cfg.serial,
                    keys = cfg.keys.len(),
                    revocations = cfg.revocations.len()
                ),
                Err(error) => tracing::warn!(message = "Trust material not published.", %error),
            }
        }
        Ok(Err(error)) => tracing::error!(message = "Cannot build the trust material.", %error),
        Err(error) => tracing::error!(message = "Trust task failed.", %error),
    }
}

/// Signs and publishes each gallery the API hands over, answering whether the broker took it.
pub(super) async fn galleries(
    mut requests: tokio::sync::mpsc::Receiver<GalleryPublish>,
    signer: Option<Arc<checkpoint_pki::signing::ConfigSigner>>,
    session: Session,
    clock: SharedClock,
    stop: CancellationToken,
) {
    loop {
        let g = tokio::select! {
            _ = stop.cancelled() => return,
            g = requests.recv() => match g {
                Some(g) => g,
                None => return,
            },
        };
        let result = if session.is_connected() {
            match sign_gallery(signer.clone(), &g, clock.now()).await {
                Ok(envelope) => {
                    let topic = Topic::BoxConfig(g.box_id.clone(), ConfigKind::Gallery).to_string();
                    session.publish(topic, true, envelope).await
                }
                Err(e) => Err(e),
            }
        } else {
            Err("central is not connected to the broker".to_string())
        };
        match &result {
            Ok(()) => tracing::info!(message = "Face gallery published.", box_id = %g.box_id),
            Err(error) => {
                tracing::warn!(message = "Face gallery not published.", box_id = %g.box_id, %error)
            }
        }
        let _ = g.done.send(result);
    }
}

/// Wraps a gallery for its box and signs it (off the runtime: the serial is saved).
async fn sign_gallery(
    signer: Option<Arc<checkpoint_pki::signing::ConfigSigner>>,
    g: &GalleryPublish,
    now: time::OffsetDateTime,
) -> Result<Vec<u8>, String> {
    let signer = signer.ok_or_else(|| {
        "central has no configuration-signing key ([trust] signing_key); boxes apply only signed galleries".to_string()
    })?;
    let (box_id, bytes) = (g.box_id.clone(), g.bytes.clone());
    tokio::task::spawn_blocking(move || signer.gallery(&box_id, &bytes, now))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}
