//! The simulated gate: logs each signal and, with a record file, appends it as a JSON line
//! (`{"ts":"…","signal":"admit"}`) so tests can check the door worked while the broker was down.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Gate, GateError, Signal};

#[derive(Debug)]
pub struct SimGate {
    record: Option<PathBuf>,
    pub admits: u64,
    pub denies: u64,
}

impl SimGate {
    pub fn new(record: Option<PathBuf>) -> Self {
        SimGate {
            record,
            admits: 0,
            denies: 0,
        }
    }

    fn write(&self, what: &str) -> Result<(), GateError> {
        let Some(path) = &self.record else {
            return Ok(());
        };
        let ts = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        let line = format!("{{\"ts\":\"{ts}\",\"signal\":\"{what}\"}}\n");
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(|source| GateError::Record {
                path: path.display().to_string(),
                source,
            })
    }
}

impl Gate for SimGate {
    fn signal(&mut self, signal: Signal, _now: Instant) -> Result<(), GateError> {
        let what = match signal {
            Signal::Admit => {
                self.admits += 1;
                "admit"
            }
            Signal::Deny => {
                self.denies += 1;
                "deny"
            }
        };
        tracing::info!(message = "Gate signal.", signal = what);
        self.write(what)
    }

    fn tick(&mut self, _now: Instant) -> Result<(), GateError> {
        Ok(())
    }

    fn safe_state(&mut self) -> Result<(), GateError> {
        tracing::debug!(message = "Gate in safe state.");
        self.write("safe")
    }

    fn describe(&self) -> String {
        match &self.record {
            Some(p) => format!("sim gate recording to {}", p.display()),
            None => "sim gate (log only)".to_string(),
        }
    }
}
