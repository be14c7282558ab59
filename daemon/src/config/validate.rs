//! Semantic checks of a parsed configuration. Every problem is collected, none stops the others.

use super::{CameraConfig, DaemonConfig, GateConfig, Mode, Problem, ThermometerConfig};

pub(super) fn check(cfg: &DaemonConfig, problems: &mut Vec<Problem>) {
    cfg.face.check(problems);
    let mut bad = |path: &str, message: String| {
        problems.push(Problem {
            path: path.to_string(),
            message,
        })
    };
    if cfg.state_dir.as_os_str().is_empty() {
        bad("state_dir", "must not be empty".into());
    }
    match &cfg.camera {
        CameraConfig::Sim { fps, .. } => {
            if !(fps.is_finite() && *fps > 0.0 && *fps <= 120.0) {
                bad("camera.fps", format!("{fps} is not in (0, 120]"));
            }
        }
        CameraConfig::V4l2 {
            width, height, fps, ..
        } => {
            if !(160..=4096).contains(width) || !(120..=4096).contains(height) {
                bad(
                    "camera.width",
                    format!("{width}x{height} is not a usable resolution"),
                );
            }
            if !(1..=120).contains(fps) {
                bad("camera.fps", format!("{fps} is not in 1..=120"));
            }
        }
    }
    match &cfg.thermometer {
        ThermometerConfig::Sim { readings, .. } => {
            if readings.is_empty() {
                bad("thermometer.readings", "needs at least one reading".into());
            }
            if let Some(r) = readings.iter().find(|r| !r.is_finite()) {
                bad("thermometer.readings", format!("{r} is not a number"));
            }
        }
        ThermometerConfig::Mlx90614 { address, .. } => {
            if !(0x08..=0x77).contains(address) {
                bad(
                    "thermometer.address",
                    format!("{address:#04x} is not a 7-bit I2C address"),
                );
            }
        }
        ThermometerConfig::Disabled => {
            if cfg.policy.temperature != Mode::Off {
                bad(
                    "policy.temperature",
                    "must be \"off\" when the thermometer is disabled".into(),
                );
            }
        }
    }
    if let GateConfig::Gpio {
        relay_pin,
        green_pin,
        red_pin,
        buzzer_pin,
        pulse_ms,
        deny_ms,
        ..
    } = &cfg.gate
    {
        let pins: Vec<u8> = [Some(*relay_pin), *green_pin, *red_pin, *buzzer_pin]
            .into_iter()
            .flatten()
            .collect();
        if let Some(p) = pins.iter().find(|p| **p > 27) {
            bad("gate", format!("GPIO {p} does not exist (BCM 0..=27)"));
        }
        let mut sorted = pins.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != pins.len() {
            bad("gate", "the same GPIO pin is used twice".into());
        }
        if !(100..=30_000).contains(pulse_ms) {
            bad("gate.pulse_ms", format!("{pulse_ms} is not in 100..=30000"));
        }
        if *deny_ms > 10_000 {
            bad("gate.deny_ms", format!("{deny_ms} is over 10000"));
        }
    }
    if !(200..=4096).contains(&cfg.qr.max_side) {
        bad(
            "qr.max_side",
            format!("{} is not in 200..=4096", cfg.qr.max_side),
        );
    }
    if !(10..=5_000).contains(&cfg.qr.frame_budget_ms) {
        bad(
            "qr.frame_budget_ms",
            format!("{} is not in 10..=5000", cfg.qr.frame_budget_ms),
        );
    }
    if cfg.qr.strategies_per_frame > 9 {
        bad(
            "qr.strategies_per_frame",
            format!(
                "{} is over 9 (the whole chain)",
                cfg.qr.strategies_per_frame
            ),
        );
    }
    let p = &cfg.policy;
    if !(35.0..=40.0).contains(&p.fever_threshold_c) {
        bad(
            "policy.fever_threshold_c",
            format!("{} °C is not in 35..=40", p.fever_threshold_c),
        );
    }
    let [lo, hi] = p.plausible_c;
    if !(lo.is_finite() && hi.is_finite() && 25.0 <= lo && lo < hi && hi <= 45.0) {
        bad(
            "policy.plausible_c",
            format!("[{lo}, {hi}] is not a range within [25, 45]"),
        );
    } else if !(lo < p.fever_threshold_c && p.fever_threshold_c < hi) {
        bad(
            "policy.fever_threshold_c",
            format!("must lie inside plausible_c [{lo}, {hi}]"),
        );
    }
    if p.admit_statuses.is_empty() {
        bad(
            "policy.admit_statuses",
            "admits no status at all; list at least one of green, yellow, red".into(),
        );
    }
    if p.clock_skew_s > 3600 {
        bad(
            "policy.clock_skew_s",
            format!("{} is over 3600", p.clock_skew_s),
        );
    }
    if p.duplicate_cooldown_ms > 600_000 {
        bad(
            "policy.duplicate_cooldown_ms",
            format!("{} is over 600000", p.duplicate_cooldown_ms),
        );
    }
    if p.pass == Mode::Off {
        bad(
            "policy.pass",
            "a pass code is the credential here: use \"hard\" or \"soft\"".into(),
        );
    }
    let o = &cfg.outbox;
    if o.max_bytes < 64 * 1024 {
        bad(
            "outbox.max_bytes",
            format!("{} is under 65536", o.max_bytes),
        );
    }
    if !(1024 * 1024..=1024 * 1024 * 1024).contains(&o.cache_bytes) {
        bad(
            "outbox.cache_bytes",
            format!("{} is not between 1 MiB and 1 GiB", o.cache_bytes),
        );
    }
    let u = &cfg.uplink;
    if u.host.trim().is_empty() {
        bad("uplink.host", "must not be empty".into());
    }
    if u.port == 0 {
        bad("uplink.port", "must not be 0".into());
    }
    if let Some(id) = &u.client_id {
        if id.is_empty() || id.len() > 64 {
            bad("uplink.client_id", "must be 1 to 64 characters".into());
        }
    }
    for (name, path) in u.transport.files() {
        if path.as_os_str().is_empty() {
            bad(
                &format!("uplink.transport.{name}"),
                "must not be empty".into(),
            );
        }
    }
    if !(5..=3600).contains(&u.keep_alive_s) {
        bad(
            "uplink.keep_alive_s",
            format!("{} is not in 5..=3600", u.keep_alive_s),
        );
    }
    if !(1..=86_400).contains(&u.telemetry_interval_s) {
        bad(
            "uplink.telemetry_interval_s",
            format!("{} is not in 1..=86400", u.telemetry_interval_s),
        );
    }
    if !(1..=86_400).contains(&u.resend_after_s) {
        bad(
            "uplink.resend_after_s",
            format!("{} is not in 1..=86400", u.resend_after_s),
        );
    }
    if !(1..=10_000).contains(&u.drain_per_s) {
        bad(
            "uplink.drain_per_s",
            format!("{} is not in 1..=10000", u.drain_per_s),
        );
    }
    if u.backoff_min_ms == 0 || u.backoff_min_ms > u.backoff_max_ms {
        bad(
            "uplink.backoff_min_ms",
            format!(
                "must be at least 1 and at most backoff_max_ms ({})",
                u.backoff_max_ms
            ),
        );
    }
    if u.backoff_max_ms > 3_600_000 {
        bad(
            "uplink.backoff_max_ms",
            format!("{} is over an hour", u.backoff_max_ms),
        );
    }
}
