//! The thermometer stage: one object-temperature reading per attempt. Real backend: a Melexis
//! MLX90614 on I2C through `rppal` and the `mlx9061x` driver; simulated: scripted readings.
//!
//! A reading is only a number here; whether it is a plausible body temperature is the policy's
//! call (`decide`). Repeated failures turn the sensor's health to fault in telemetry.

use checkpoint_protocol::records::{Health, HealthState};

mod config;
pub use config::ThermometerConfig;
mod mlx90614;
mod sim;

pub use mlx90614::Mlx90614Thermometer;
pub use sim::SimThermometer;

#[derive(Debug, thiserror::Error)]
pub enum ThermoError {
    #[error("I2C bus {bus}: {message}")]
    Open { bus: u8, message: String },
    #[error("thermometer read failed: {0}")]
    Read(String),
    #[error("thermometer reading failed its checksum")]
    Checksum,
}

pub trait Thermometer: Send {
    /// The object temperature in °C.
    fn read(&mut self) -> Result<f32, ThermoError>;
    fn describe(&self) -> String;
}

/// `Ok(None)` when the box has no thermometer.
pub fn build(cfg: &ThermometerConfig) -> Result<Option<Box<dyn Thermometer>>, ThermoError> {
    Ok(match cfg {
        ThermometerConfig::Disabled => None,
        ThermometerConfig::Sim {
            readings,
            fail_after,
        } => Some(Box::new(SimThermometer::new(readings.clone(), *fail_after))),
        ThermometerConfig::Mlx90614 { bus, address } => {
            Some(Box::new(Mlx90614Thermometer::open(*bus, *address)?))
        }
    })
}

/// Consecutive failed reads after which the sensor counts as dead.
pub const FAULT_AFTER: u32 = 3;

/// Tracks a sensor's health from its recent reads.
#[derive(Debug, Clone, Default)]
pub struct SensorHealth {
    failures: u32,
    last_error: Option<String>,
}

impl SensorHealth {
    pub fn record<T, E: std::fmt::Display>(&mut self, result: &Result<T, E>) {
        match result {
            Ok(_) => {
                self.failures = 0;
                self.last_error = None;
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                self.last_error = Some(e.to_string());
            }
        }
    }

    pub fn health(&self) -> Health {
        let state = match self.failures {
            0 => HealthState::Ok,
            n if n < FAULT_AFTER => HealthState::Degraded,
            _ => HealthState::Fault,
        };
        Health {
            state,
            detail: self.last_error.as_ref().map(|e| truncate(e, 200)),
        }
    }
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_degrades_then_faults_then_recovers() {
        let mut h = SensorHealth::default();
        assert_eq!(h.health().state, HealthState::Ok);
        let err: Result<(), &str> = Err("nack");
        h.record(&err);
        assert_eq!(h.health().state, HealthState::Degraded);
        h.record(&err);
        h.record(&err);
        let bad = h.health();
        assert_eq!(bad.state, HealthState::Fault);
        assert_eq!(bad.detail.as_deref(), Some("nack"));
        h.record(&Ok::<(), &str>(()));
        assert_eq!(
            h.health(),
            Health {
                state: HealthState::Ok,
                detail: None
            }
        );
    }
}
