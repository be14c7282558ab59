//! Wiring: builds every stage from the configuration, runs them until shutdown, then stops them
//! in order — door loop first (it finishes the current attempt and puts the gate in its safe
//! state), then the uplink (retained `offline` status, disconnect), then a last outbox flush.
//!
//! Threads: the camera (blocking, its own thread), the door loop (CPU-bound decoding, its own
//! thread), and the tokio runtime for the uplink.

use std::future::Future;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::camera;
use crate::clock::ClockWatch;
use crate::config::{DaemonConfig, Mode};
use crate::gate::{self, GateError};
use crate::outbox::{Outbox, OutboxError};
use crate::stats::{self, Stats};
use crate::thermo;
use crate::trust::{Trust, TrustError};
use crate::uplink::{self, UplinkError};

mod door;

pub use crate::camera::Frame;
pub use door::{AttemptOutcome, Door, DoorState};

/// Longest the door loop may take to finish its attempt at shutdown. systemd's
/// `TimeoutStopSec` is longer.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error("gate: {0}")]
    Gate(#[from] GateError),
    #[error(transparent)]
    Uplink(#[from] UplinkError),
    /// Face mode refuses to start without its models or with a bad gallery.
    #[cfg(feature = "face")]
    #[error("face recognition: {0}")]
    Face(#[from] crate::face::FaceStageError),
    #[error("shutdown: {0}")]
    Shutdown(String),
}

pub fn outbox_dir(cfg: &DaemonConfig) -> PathBuf {
    cfg.state_dir.join("outbox")
}

/// Runs the daemon until `shutdown` completes.
pub async fn run(
    cfg: DaemonConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), PipelineError> {
    std::fs::create_dir_all(&cfg.state_dir).map_err(|source| PipelineError::StateDir {
        path: cfg.state_dir.clone(),
        source,
    })?;
    let outbox = Arc::new(Outbox::open(
        &outbox_dir(&cfg),
        cfg.outbox.max_bytes,
        cfg.outbox.when_full,
        cfg.outbox.cache_bytes,
    )?);
    let trust = Arc::new(Trust::load(
        &cfg.trust.setup(&cfg.state_dir),
        time::OffsetDateTime::now_utc(),
    )?);
    // TLS material is loaded now so that a bad certificate stops the start with a clear error.
    let mqtt = uplink::mqtt_options(&cfg.uplink, &cfg.identity.box_id)?;
    let clock = Arc::new(ClockWatch::new(cfg.clock.check));
    let (thermometer, thermo_health) = match thermo::build(&cfg.thermometer) {
        Ok(None) => (None, stats::disabled()),
        Ok(Some(t)) => (Some(t), stats::ok()),
        Err(error) => {
            // A dead sensor does not stop the door: the temperature policy decides.
            tracing::error!(message = "Thermometer unavailable.", %error, policy = ?cfg.policy.temperature);
            (None, stats::fault(&error))
        }
    };
    let thermo_wanted = cfg.policy.temperature != Mode::Off;
    #[cfg(feature = "face")]
    let (face, gallery) = face_stage(&cfg)?;
    let stats = Arc::new(Stats::new(thermo_health));
    let mut gate = gate::build(&cfg.gate)?;
    gate.safe_state()?;
    let appended = Arc::new(Notify::new());
    let token = CancellationToken::new();

    let (frames_tx, frames_rx) = mpsc::sync_channel::<Frame>(1);
    let camera_thread = {
        let colour = cfg.face.enabled;
        let (cfg, stats, token) = (cfg.camera.clone(), stats.clone(), token.clone());
        std::thread::Builder::new()
            .name("camera".into())
            .spawn(move || camera::feed(&cfg, colour, &frames_tx, &stats, &token))
            .map_err(|e| PipelineError::Shutdown(format!("cannot start the camera thread: {e}")))?
    };
    let door = Door {
        setup: crate::door::DoorSetup {
            identity: cfg.identity.clone(),
            policy: cfg.policy.clone(),
            face_cooldown_ms: cfg.face.enabled.then_some(millis(cfg.face.cooldown)),
        },
        qr: crate::qr::QrConfig {
            max_side: cfg.qr.max_side,
            budget: cfg.qr.frame_budget,
            mode: crate::qr::Mode::Door,
        },
        strategies_per_frame: cfg.qr.strategies_per_frame,
        outbox: outbox.clone(),
        trust: trust.clone(),
        stats: stats.clone(),
        sync: clock.clone(),
        clock: checkpoint_link::clock::system(),
        gate,
        thermometer: thermometer.filter(|_| thermo_wanted),
        appended: appended.clone(),
        #[cfg(feature = "face")]
        face,
    };
    let door_thread = {
        let token = token.clone();
        std::thread::Builder::new()
            .name("door".into())
            .spawn(move || door.run(frames_rx, &token))
            .map_err(|e| PipelineError::Shutdown(format!("cannot start the door thread: {e}")))?
    };
    let shared = uplink::Shared {
        box_id: cfg.identity.box_id.clone(),
        outbox: outbox.clone(),
        trust,
        stats,
        clock,
        appended,
        state_dir: cfg.state_dir.clone(),
        #[cfg(feature = "face")]
        gallery,
    };
    let uplink_task = tokio::spawn(uplink::run(cfg.uplink.clone(), mqtt, shared, token.clone()));

    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    tracing::info!(
        message = "Checkpoint daemon running.",
        box_id = %cfg.identity.box_id,
        checkpoint = %cfg.identity.checkpoint,
        direction = ?cfg.identity.direction,
        outbox_depth = outbox.stats().depth,
    );

    shutdown.await;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    tracing::info!(message = "Shutting down.");
    token.cancel();

    let joined = tokio::time::timeout(
        SHUTDOWN_DEADLINE,
        tokio::task::spawn_blocking(move || door_thread.join()),
    )
    .await;
    let mut problems = Vec::new();
    match joined {
        Ok(Ok(Ok(()))) => {}
        Ok(_) => problems.push("the door loop panicked".to_string()),
        Err(_) => problems.push("the door loop did not finish in time".to_string()),
    }
    match tokio::time::timeout(Duration::from_secs(5), uplink_task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => problems.push(e.to_string()),
        Ok(Err(e)) => problems.push(format!("uplink task: {e}")),
        Err(_) => problems.push("the uplink did not stop in time".to_string()),
    }
    // The camera thread may be blocked in a frame read; it exits on its next turn.
    drop(camera_thread);
    outbox.flush()?;
    let st = outbox.stats();
    tracing::info!(
        message = "Stopped.",
        outbox_depth = st.depth,
        last_seq = st.last_seq
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(PipelineError::Shutdown(problems.join("; ")))
    }
}

/// The face stage and its gallery, when `[face] enabled`: the models are checked and loaded and
/// the gallery read before the door opens, so a missing model stops the start with its name.
#[cfg(feature = "face")]
fn face_stage(
    cfg: &DaemonConfig,
) -> Result<
    (
        Option<crate::face::FaceStage>,
        Option<Arc<crate::face::GalleryStore>>,
    ),
    PipelineError,
> {
    use crate::face::{FaceStage, FaceStageError, GalleryStore};
    if !cfg.face.enabled {
        return Ok((None, None));
    }
    let gallery = Arc::new(GalleryStore::load(&cfg.gallery_path())?);
    let stage = FaceStage::load(&cfg.face, gallery.clone()).map_err(FaceStageError::from)?;
    tracing::info!(
        message = "Face recognition on.",
        identities = gallery.current().identities(),
        gallery = %cfg.gallery_path().display(),
    );
    Ok((Some(stage), Some(gallery)))
}

/// A configured duration in the whole milliseconds the door core counts in.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
