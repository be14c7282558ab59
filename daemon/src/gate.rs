//! The gate stage: the door relay and the signal lights. Real backend: GPIO through `rppal`;
//! simulated: logs, and optionally records each signal as a JSON line.
//!
//! Signals never block: a relay pulse is started by [`Gate::signal`] and ended by a later
//! [`Gate::tick`], which the door loop calls on every turn.

use std::time::Instant;

mod config;
pub use config::GateConfig;
mod gpio;
mod sim;

pub use gpio::{GpioGate, GpioPins, Outputs, Timing};
pub use sim::SimGate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Unlock the door for the configured pulse, green light.
    Admit,
    /// Keep the door locked, red light and buzzer.
    Deny,
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("GPIO: {0}")]
    Open(String),
    #[error("GPIO pin {pin}: {message}")]
    Pin { pin: u8, message: String },
    #[error("gate record {path}: {source}")]
    Record {
        path: String,
        source: std::io::Error,
    },
}

pub trait Gate: Send {
    fn signal(&mut self, signal: Signal, now: Instant) -> Result<(), GateError>;
    /// Ends pulses whose time is up.
    fn tick(&mut self, now: Instant) -> Result<(), GateError>;
    /// Door locked, lights and buzzer off: at start and at shutdown.
    fn safe_state(&mut self) -> Result<(), GateError>;
    fn describe(&self) -> String;
}

pub fn build(cfg: &GateConfig) -> Result<Box<dyn Gate>, GateError> {
    match cfg {
        GateConfig::Sim { record } => Ok(Box::new(SimGate::new(record.clone()))),
        GateConfig::Gpio {
            relay_pin,
            green_pin,
            red_pin,
            buzzer_pin,
            pulse,
            deny,
            active_low,
        } => {
            let pins = GpioPins {
                relay: *relay_pin,
                green: *green_pin,
                red: *red_pin,
                buzzer: *buzzer_pin,
            };
            let timing = Timing {
                pulse: *pulse,
                deny: *deny,
                active_low: *active_low,
            };
            Ok(Box::new(gpio::open_rppal(pins, timing)?))
        }
    }
}
