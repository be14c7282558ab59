//! Scripted thermometer: each read returns the next configured reading, cycling; optionally the
//! sensor dies after a number of reads, to exercise the dead-sensor policy.

use super::{ThermoError, Thermometer};

#[derive(Debug)]
pub struct SimThermometer {
    readings: Vec<f32>,
    reads: u64,
    fail_after: Option<u64>,
}

impl SimThermometer {
    pub fn new(readings: Vec<f32>, fail_after: Option<u64>) -> Self {
        SimThermometer {
            readings,
            reads: 0,
            fail_after,
        }
    }
}

impl Thermometer for SimThermometer {
    fn read(&mut self) -> Result<f32, ThermoError> {
        let n = self.reads;
        self.reads += 1;
        if self.fail_after.is_some_and(|f| n >= f) {
            return Err(ThermoError::Read("simulated sensor failure".into()));
        }
        let len = self.readings.len().max(1) as u64;
        let i = usize::try_from(n % len).unwrap_or(0);
        self.readings
            .get(i)
            .copied()
            .ok_or_else(|| ThermoError::Read("no scripted readings".into()))
    }

    fn describe(&self) -> String {
        format!("sim thermometer: {} scripted readings", self.readings.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_then_dies() {
        let mut t = SimThermometer::new(vec![36.5, 38.0], Some(3));
        assert_eq!(t.read().unwrap(), 36.5);
        assert_eq!(t.read().unwrap(), 38.0);
        assert_eq!(t.read().unwrap(), 36.5);
        assert!(t.read().is_err());
        assert!(t.read().is_err());
    }
}
