//! Live pipeline figures shared between the door loop and the telemetry publisher: frame rate,
//! decode time, and the health of each hardware stage.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use checkpoint_link::sync::Recover;
use checkpoint_protocol::records::{Health, HealthState};

/// Frames counted for the rate.
const FPS_WINDOW: Duration = Duration::from_secs(10);
/// Decode times kept for the median.
const DECODE_SAMPLES: usize = 64;

#[derive(Debug)]
struct Inner {
    frames: VecDeque<Instant>,
    decode_ms: VecDeque<f32>,
    camera: Health,
    thermometer: Health,
    gate: Health,
    attempts: u64,
}

#[derive(Debug)]
pub struct Stats {
    started: Instant,
    inner: Mutex<Inner>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub uptime: Duration,
    pub fps: f32,
    pub decode_ms_p50: Option<f32>,
    pub camera: Health,
    pub thermometer: Health,
    pub gate: Health,
    pub attempts: u64,
}

pub fn ok() -> Health {
    Health {
        state: HealthState::Ok,
        detail: None,
    }
}

pub fn disabled() -> Health {
    Health {
        state: HealthState::Disabled,
        detail: None,
    }
}

pub fn fault(detail: impl std::fmt::Display) -> Health {
    Health {
        state: HealthState::Fault,
        detail: Some(crate::thermo::truncate(&detail.to_string(), 200)),
    }
}

impl Stats {
    pub fn new(thermometer: Health) -> Self {
        Stats {
            started: Instant::now(),
            inner: Mutex::new(Inner {
                frames: VecDeque::new(),
                decode_ms: VecDeque::new(),
                camera: ok(),
                thermometer,
                gate: ok(),
                attempts: 0,
            }),
        }
    }

    pub fn frame(&self, now: Instant, decode: Duration) {
        let mut i = self.inner.lock_or_recover();
        i.frames.push_back(now);
        while i
            .frames
            .front()
            .is_some_and(|t| now.duration_since(*t) > FPS_WINDOW)
        {
            i.frames.pop_front();
        }
        i.decode_ms.push_back(decode.as_secs_f32() * 1000.0);
        if i.decode_ms.len() > DECODE_SAMPLES {
            i.decode_ms.pop_front();
        }
    }

    pub fn attempt(&self) {
        self.inner.lock_or_recover().attempts += 1;
    }

    pub fn set_camera(&self, h: Health) {
        self.inner.lock_or_recover().camera = h;
    }

    pub fn set_thermometer(&self, h: Health) {
        self.inner.lock_or_recover().thermometer = h;
    }

    pub fn set_gate(&self, h: Health) {
        self.inner.lock_or_recover().gate = h;
    }

    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let i = self.inner.lock_or_recover();
        let recent = i
            .frames
            .iter()
            .filter(|t| now.duration_since(**t) <= FPS_WINDOW)
            .count();
        let span = now
            .duration_since(self.started)
            .min(FPS_WINDOW)
            .as_secs_f32();
        let fps = if span > 0.0 {
            recent as f32 / span
        } else {
            0.0
        };
        let mut d: Vec<f32> = i.decode_ms.iter().copied().collect();
        d.sort_by(f32::total_cmp);
        Snapshot {
            uptime: now.duration_since(self.started),
            fps,
            decode_ms_p50: d.get(d.len() / 2).copied(),
            camera: i.camera.clone(),
            thermometer: i.thermometer.clone(),
            gate: i.gate.clone(),
            attempts: i.attempts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_median() {
        let s = Stats::new(disabled());
        let t0 = s.started;
        for i in 0..20u64 {
            s.frame(
                t0 + Duration::from_millis(500 * i),
                Duration::from_millis(i),
            );
        }
        let snap = s.snapshot(t0 + Duration::from_secs(10));
        assert!((snap.fps - 2.0).abs() < 0.15, "{}", snap.fps);
        assert_eq!(snap.decode_ms_p50, Some(10.0));
        assert_eq!(snap.thermometer.state, HealthState::Disabled);
    }
}
