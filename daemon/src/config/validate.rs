//! Semantic checks of a parsed configuration. Every problem is collected, none stops the others.

use std::time::Duration;

use checkpoint_link::durations::show;

use super::{CameraConfig, DaemonConfig, GateConfig, Mode, Problem, ThermometerConfig};

const MS: fn(u64) -> Duration = Duration::from_millis;
const S: fn(u64) -> Duration = Duration::from_secs;

/// A problem when `d` is outside `lo..=hi`, in the configuration's own words.
fn span(problems: &mut Vec<Problem>, path: &str, d: Duration, lo: Duration, hi: Duration) {
    if !(lo..=hi).contains(&d) {
        problems.push(Problem {
            path: path.to_string(),
            message: format!("{} is not within {}..={}", show(d), show(lo), show(hi)),
        });
    }
}

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
    let mut gate_times = None;
    if let GateConfig::Gpio {
        relay_pin,
        green_pin,
        red_pin,
        buzzer_pin,
        pulse,
        deny,
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
        gate_times = Some((*pulse, *deny));
    }
    if !(200..=4096).contains(&cfg.qr.max_side) {
        bad(
            "qr.max_side",
            format!("{} is not in 200..=4096", cfg.qr.max_side),
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
    if !(1..=10_000).contains(&u.drain_per_s) {
        bad(
            "uplink.drain_per_s",
            format!("{} is not in 1..=10000", u.drain_per_s),
        );
    }
    if u.backoff_min.is_zero() || u.backoff_min > u.backoff_max {
        bad(
            "uplink.backoff_min",
            format!(
                "must be at least 1ms and at most backoff_max ({})",
                show(u.backoff_max)
            ),
        );
    }
    // Durations, each within what makes sense at a door.
    if let Some((pulse, deny)) = gate_times {
        span(problems, "gate.pulse", pulse, MS(100), S(30));
        span(problems, "gate.deny", deny, S(0), S(10));
    }
    span(
        problems,
        "qr.frame_budget",
        cfg.qr.frame_budget,
        MS(10),
        S(5),
    );
    span(problems, "policy.clock_skew", p.clock_skew, S(0), S(3600));
    span(
        problems,
        "policy.anti_passback_window",
        p.anti_passback_window,
        S(0),
        S(86_400),
    );
    span(
        problems,
        "policy.duplicate_cooldown",
        p.duplicate_cooldown,
        S(0),
        S(600),
    );
    span(problems, "uplink.keep_alive", u.keep_alive, S(5), S(3600));
    span(
        problems,
        "uplink.telemetry_interval",
        u.telemetry_interval,
        S(1),
        S(86_400),
    );
    span(
        problems,
        "uplink.resend_after",
        u.resend_after,
        S(1),
        S(86_400),
    );
    span(
        problems,
        "uplink.backoff_max",
        u.backoff_max,
        MS(1),
        S(3600),
    );
    span(
        problems,
        "trust.max_skew",
        cfg.trust.max_skew,
        S(0),
        S(86_400),
    );
    span(
        problems,
        "trust.max_age",
        cfg.trust.max_age,
        S(0),
        S(365 * 86_400),
    );
}
