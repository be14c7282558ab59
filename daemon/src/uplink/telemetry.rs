//! Builds the periodic telemetry record from the live figures.

use std::path::Path;
use std::time::Instant;

use checkpoint_protocol::records::{Schema, Telemetry};
use time::OffsetDateTime;

use super::{Shared, VERSION};

pub(super) fn build(shared: &Shared) -> Telemetry {
    let now = OffsetDateTime::now_utc();
    let s = shared.stats.snapshot(Instant::now());
    let o = shared.outbox.stats();
    let now_ms = checkpoint_protocol::unix_ms_unsigned(now);
    Telemetry {
        schema: Schema,
        box_id: shared.box_id.clone(),
        ts: now,
        version: VERSION.to_string(),
        uptime_s: s.uptime.as_secs(),
        last_seq: o.last_seq,
        outbox_depth: o.depth,
        outbox_bytes: o.bytes,
        outbox_oldest_age_s: o
            .oldest_appended_ms
            .map(|t| now_ms.saturating_sub(t) / 1000),
        outbox_full: o.full,
        dropped_events: o.dropped,
        fps: s.fps,
        decode_ms_p50: s.decode_ms_p50,
        camera: s.camera,
        thermometer: s.thermometer,
        gate: s.gate,
        clock_synced: shared.clock.synced(),
        trust_age_s: shared.trust.age_s(now),
        trust_serial: shared.trust.current().serial,
        config_refused: shared.trust.refused(),
        disk_free_bytes: disk_free(&shared.state_dir),
    }
}

/// Where the last telemetry record is kept (`STATE_DIR/telemetry.json`).
pub fn saved_path(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("telemetry.json")
}

/// Replaces the saved record (advisory: no fsync, so an SD card is not worn for it).
pub(super) fn save(state_dir: &Path, bytes: &[u8]) {
    use std::io::Write;
    let path = saved_path(state_dir);
    let how = checkpoint_link::files::Replace {
        mode: 0o644,
        durable: false,
    };
    if let Err(error) = checkpoint_link::files::replace(&path, how, |f| f.write_all(bytes)) {
        tracing::debug!(message = "Telemetry not saved.", %error, path = %path.display());
    }
}

/// Bytes available to unprivileged users on the file system holding `dir`.
pub fn disk_free(dir: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}
