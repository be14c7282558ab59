//! The MLX90614 infrared thermometer over I2C (SMBus with packet error checking).
//!
//! The driver logic is generic over any embedded-hal 1.0 I2C bus, so it is tested against a mocked
//! bus; on a box the bus is `rppal`'s. A reading with the sensor's error flag (bit 15) set is an
//! error, not a temperature.

use embedded_hal::i2c::I2c;
use mlx9061x::{Error, Mlx9061x, SlaveAddr};

use super::{ThermoError, Thermometer};

pub struct Mlx90614<I2C> {
    dev: Mlx9061x<I2C, mlx9061x::ic::Mlx90614>,
    address: u8,
}

/// The box's thermometer on its real bus.
pub type Mlx90614Thermometer = Mlx90614<rppal::i2c::I2c>;

impl<I2C> std::fmt::Debug for Mlx90614<I2C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mlx90614")
            .field("address", &self.address)
            .finish()
    }
}

impl Mlx90614Thermometer {
    /// Opens the bus. On a machine without it (or that is not a Pi) this is an error.
    pub fn open(bus: u8, address: u8) -> Result<Self, ThermoError> {
        let i2c = rppal::i2c::I2c::with_bus(bus).map_err(|e| ThermoError::Open {
            bus,
            message: format!("{e} (is I2C enabled, and is the user in group i2c?)"),
        })?;
        Mlx90614::new(i2c, address)
    }
}

impl<I2C: I2c> Mlx90614<I2C> {
    pub fn new(i2c: I2C, address: u8) -> Result<Self, ThermoError> {
        let addr = if address == 0x5a {
            SlaveAddr::Default
        } else {
            SlaveAddr::Alternative(address)
        };
        let dev = Mlx9061x::new_mlx90614(i2c, addr, 5).map_err(map_err)?;
        Ok(Mlx90614 { dev, address })
    }
}

fn map_err<E: std::fmt::Debug>(e: Error<E>) -> ThermoError {
    match e {
        Error::I2C(e) => ThermoError::Read(format!("I2C: {e:?}")),
        Error::ChecksumMismatch => ThermoError::Checksum,
        Error::InvalidInputData => ThermoError::Read("invalid address".into()),
    }
}

impl<I2C: I2c + Send> Thermometer for Mlx90614<I2C> {
    fn read(&mut self) -> Result<f32, ThermoError> {
        let c = self.dev.object1_temperature().map_err(map_err)?;
        // Raw values are 0.02 K; with the error flag (bit 15) set the value is at least
        // 0x8000 * 0.02 - 273.15 = 382.2 °C, beyond the sensor's 380 °C range.
        if c >= 382.0 {
            return Err(ThermoError::Read(
                "sensor reports an error (flag bit set)".into(),
            ));
        }
        Ok(c)
    }

    fn describe(&self) -> String {
        format!("MLX90614 at I2C address {:#04x}", self.address)
    }
}

#[cfg(test)]
mod tests {
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

    use super::*;

    const ADDR: u8 = 0x5a;
    const TOBJ1: u8 = 0x07;

    /// The bytes the sensor answers for a raw register value: low, high, SMBus PEC.
    fn answer(raw: u16) -> Vec<u8> {
        let [lo, hi] = raw.to_le_bytes();
        let pec = smbus_pec::pec(&[ADDR << 1, TOBJ1, (ADDR << 1) | 1, lo, hi]);
        vec![lo, hi, pec]
    }

    fn read_tx(raw: u16) -> Transaction {
        Transaction::write_read(ADDR, vec![TOBJ1], answer(raw))
    }

    /// Raw units are 0.02 K.
    fn raw_of(celsius: f32) -> u16 {
        ((celsius + 273.15) / 0.02).round() as u16
    }

    #[test]
    fn reads_object_temperature() {
        let raw = raw_of(36.6);
        let mut bus = Mock::new(&[read_tx(raw)]);
        let mut t = Mlx90614::new(bus.clone(), ADDR).unwrap();
        let c = t.read().unwrap();
        assert!((c - 36.6).abs() < 0.02, "{c}");
        bus.done();
    }

    #[test]
    fn corrupt_checksum_and_error_flag_are_errors() {
        let mut bad = answer(raw_of(36.6));
        bad[2] ^= 0xff;
        let mut bus = Mock::new(&[
            Transaction::write_read(ADDR, vec![TOBJ1], bad),
            read_tx(0x8000 | raw_of(36.6)),
        ]);
        let mut t = Mlx90614::new(bus.clone(), ADDR).unwrap();
        assert!(matches!(t.read(), Err(ThermoError::Checksum)));
        let err = t.read().unwrap_err();
        assert!(err.to_string().contains("flag"), "{err}");
        bus.done();
    }

    #[test]
    fn bus_errors_are_errors() {
        use embedded_hal::i2c::ErrorKind;
        let mut bus =
            Mock::new(&[Transaction::write_read(ADDR, vec![TOBJ1], vec![0, 0, 0])
                .with_error(ErrorKind::Other)]);
        let mut t = Mlx90614::new(bus.clone(), ADDR).unwrap();
        assert!(matches!(t.read(), Err(ThermoError::Read(_))));
        bus.done();
    }

    #[test]
    fn missing_bus_is_a_clear_error() {
        // No I2C here (and on CI): opening must fail cleanly.
        if std::path::Path::new("/dev/i2c-9").exists() {
            return;
        }
        let err = Mlx90614Thermometer::open(9, ADDR).unwrap_err();
        assert!(err.to_string().contains("I2C bus 9"), "{err}");
    }
}
