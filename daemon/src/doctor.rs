//! `checkpointd doctor`: the installer's checklist. Each check prints PASS, WARN or FAIL with what
//! it saw and, on failure, what to do about it. The gate is only opened for access, never
//! actuated: a doctor run must not unlock the door.

use std::fmt;

use crate::config::{DaemonConfig, ThermometerConfig};
use crate::{camera, clock, gate, outbox, pipeline, thermo, trust, uplink};

mod broker;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    /// What to do when it is not a pass.
    pub fix: Option<String>,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = match self.verdict {
            Verdict::Pass => "PASS",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        };
        write!(f, "{v}  {:<12} {}", self.name, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n      fix: {fix}")?;
        }
        Ok(())
    }
}

fn pass(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        verdict: Verdict::Pass,
        detail: detail.into(),
        fix: None,
    }
}

fn not_ok(name: &'static str, verdict: Verdict, detail: impl fmt::Display, fix: &str) -> Check {
    Check {
        name,
        verdict,
        detail: detail.to_string(),
        fix: Some(fix.to_string()),
    }
}

pub async fn run(cfg: &DaemonConfig) -> Vec<Check> {
    let mut out = Vec::new();
    let cam_cfg = cfg.camera.clone();
    let colour = cfg.face.enabled;
    let cam = tokio::task::spawn_blocking(move || {
        camera::build(&cam_cfg, colour).and_then(|mut c| c.frame().map(|f| (c.describe(), f)))
    })
    .await;
    out.push(match cam {
        Ok(Ok((desc, Some(f)))) => pass("camera", format!("{desc}; frame {}x{}", f.luma.width(), f.luma.height())),
        Ok(Ok((desc, None))) => pass("camera", format!("{desc}; replay already finished")),
        Ok(Err(e)) => not_ok("camera", Verdict::Fail, e, "check the camera cable and /dev/video*, that the user is in group video, and the [camera] section"),
        Err(e) => not_ok("camera", Verdict::Fail, e, "the camera driver crashed; check the device"),
    });

    out.push(match thermo::build(&cfg.thermometer) {
        Ok(None) => pass("thermometer", "disabled by configuration"),
        Ok(Some(mut t)) => match t.read() {
            Ok(c) => pass("thermometer", format!("{}: reads {c:.1} °C", t.describe())),
            Err(e) => not_ok(
                "thermometer",
                Verdict::Fail,
                e,
                "check the sensor wiring (SDA, SCL, 3.3 V) and its I2C address with i2cdetect",
            ),
        },
        Err(e) => {
            let fix = match cfg.thermometer {
                ThermometerConfig::Mlx90614 { .. } => {
                    "enable I2C (raspi-config), add the user to group i2c, check [thermometer] bus"
                }
                _ => "check the [thermometer] section",
            };
            not_ok("thermometer", Verdict::Fail, e, fix)
        }
    });

    out.push(match gate::build(&cfg.gate) {
        Ok(g) => pass("gate", g.describe()),
        Err(e) => not_ok(
            "gate",
            Verdict::Fail,
            e,
            "run on the box itself, add the user to group gpio, check the pin numbers (BCM)",
        ),
    });

    let (outbox_check, live) = disk(cfg);
    if let Some(c) = broker::identity(cfg) {
        out.push(c);
    }
    out.push(broker::broker(cfg, live).await);

    out.push(if clock::probe_system() {
        pass("clock", "synchronised")
    } else {
        not_ok(
            "clock",
            Verdict::Warn,
            "not synchronised: events are marked clock_synced=false",
            "enable NTP (timedatectl set-ntp true) and let the box reach an NTP server",
        )
    });

    out.push(outbox_check);

    out.push(match trust::Trust::load(&cfg.trust.setup(&cfg.state_dir), time::OffsetDateTime::now_utc()) {
        Err(e) => not_ok("trust", Verdict::Fail, e, "install the issuer's passcode.pub where trust.bootstrap_keys points, or let central publish its keys"),
        Ok(t) => {
            let now = time::OffsetDateTime::now_utc();
            let keys = t.current().store.keys().count();
            let age = t.age_s(now).map_or("bootstrap keys, no revocations yet".to_string(), |a| format!("published {} h ago", a / 3600));
            if keys == 0 {
                not_ok("trust", Verdict::Fail, "no trusted pass-code keys", "configure trust.bootstrap_keys or connect the box so central's trust configuration arrives")
            } else if t.stale(now) {
                not_ok("trust", Verdict::Warn, format!("{keys} key(s), {age}: stale"), "connect the box to the broker; central republishes trust material")
            } else {
                pass("trust", format!("{keys} key(s), {age}"))
            }
        }
    });
    if cfg.face.enabled {
        out.push(face(cfg));
    }
    out
}

/// The face models (by sha256) and the gallery, as `run` would load them.
#[cfg(feature = "face")]
fn face(cfg: &DaemonConfig) -> Check {
    use crate::face::{FaceStage, GalleryStore};
    let gallery = match GalleryStore::load(&cfg.gallery_path()) {
        Ok(g) => std::sync::Arc::new(g),
        Err(e) => return not_ok("face", Verdict::Fail, e, "enrol again with this checkpointd (checkpointd enroll) or let central publish the box's gallery"),
    };
    if let Err(e) = FaceStage::load(&cfg.face, gallery.clone()) {
        return not_ok(
            "face",
            Verdict::Fail,
            e,
            "run scripts/models (or install the models where face.models_dir points)",
        );
    }
    let n = gallery.current().identities();
    if n == 0 {
        not_ok(
            "face",
            Verdict::Warn,
            "models ok; the gallery is empty: every face is unknown",
            "checkpointd enroll PHOTOS --out the gallery file, or let central publish it",
        )
    } else {
        pass("face", format!("models ok; gallery of {n} people"))
    }
}

#[cfg(not(feature = "face"))]
fn face(_cfg: &DaemonConfig) -> Check {
    not_ok(
        "face",
        Verdict::Fail,
        "this checkpointd was built without face recognition",
        "install a build with the cargo feature `face`, or set face.enabled = false",
    )
}

/// The outbox as the running daemon last saw it (`STATE_DIR/telemetry.json`), read-only.
fn running_figures(cfg: &DaemonConfig) -> String {
    let path = uplink::telemetry_path(&cfg.state_dir);
    let saved = std::fs::read(&path).ok().and_then(|b| {
        checkpoint_protocol::records::decode::<checkpoint_protocol::records::Telemetry>(&b).ok()
    });
    match saved {
        Some(t) => {
            let age = (time::OffsetDateTime::now_utc() - t.ts)
                .whole_seconds()
                .max(0);
            format!(
                "{} unacknowledged event(s), {} bytes (the running daemon's figures, {age} s old)",
                t.outbox_depth, t.outbox_bytes
            )
        }
        None => "in use by the running daemon (no figures saved yet)".to_string(),
    }
}

/// The outbox check, and whether the daemon runs (its outbox is locked).
fn disk(cfg: &DaemonConfig) -> (Check, bool) {
    if let Err(e) = std::fs::create_dir_all(&cfg.state_dir) {
        let c = not_ok("outbox", Verdict::Fail, format!("{}: {e}", cfg.state_dir.display()), "create the state directory writable by the daemon's user (systemd StateDirectory does this)");
        return (c, false);
    }
    let free = uplink::disk_free(&cfg.state_dir);
    let probe = cfg.state_dir.join(".doctor-probe");
    if let Err(e) = std::fs::write(&probe, b"x").and_then(|_| std::fs::remove_file(&probe)) {
        let c = not_ok(
            "outbox",
            Verdict::Fail,
            format!("{} is not writable: {e}", cfg.state_dir.display()),
            "give the daemon's user write access to the state directory",
        );
        return (c, false);
    }
    let mut live = false;
    let depth = match outbox::Outbox::open(
        &pipeline::outbox_dir(cfg),
        cfg.outbox.max_bytes,
        cfg.outbox.when_full,
        1 << 20,
    ) {
        Ok(o) => {
            let s = o.stats();
            format!("{} unacknowledged event(s), {} bytes", s.depth, s.bytes)
        }
        Err(outbox::OutboxError::Locked(_)) => {
            live = true;
            running_figures(cfg)
        }
        Err(e) => {
            let c = not_ok(
                "outbox",
                Verdict::Fail,
                e,
                "the outbox cannot be opened: stop the daemon, move the outbox directory aside and start again (its unsent events stay in the moved copy)",
            );
            return (c, false);
        }
    };
    let free_txt = free.map_or("unknown".to_string(), |b| {
        format!("{} MiB", b / (1024 * 1024))
    });
    let c = if free.is_some_and(|b| b < cfg.outbox.max_bytes) {
        not_ok(
            "outbox",
            Verdict::Warn,
            format!("{depth}; only {free_txt} free, less than outbox.max_bytes"),
            "free disk space or lower outbox.max_bytes",
        )
    } else {
        pass("outbox", format!("{depth}; {free_txt} free"))
    };
    (c, live)
}
