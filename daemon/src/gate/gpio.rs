//! The door relay, green and red lights and buzzer on GPIO output pins.
//!
//! The logic is generic over embedded-hal output pins, so the exact pin sequence is tested
//! against mock pins; on a box the pins are `rppal`'s.

use std::time::{Duration, Instant};

use embedded_hal::digital::OutputPin;

use super::{Gate, GateError, Signal};

#[derive(Debug, Clone, Copy)]
pub struct GpioPins {
    pub relay: u8,
    pub green: Option<u8>,
    pub red: Option<u8>,
    pub buzzer: Option<u8>,
}

/// The output pins, absent ones `None`.
#[derive(Debug)]
pub struct Outputs<P> {
    pub relay: P,
    pub green: Option<P>,
    pub red: Option<P>,
    pub buzzer: Option<P>,
}

#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long the relay holds the door open.
    pub pulse: Duration,
    /// How long red light and buzzer signal a denial.
    pub deny: Duration,
    /// The relay switches on a low level.
    pub active_low: bool,
}

#[derive(Debug)]
struct Pin<P> {
    number: u8,
    pin: P,
    active_low: bool,
}

impl<P: OutputPin> Pin<P> {
    fn set(&mut self, on: bool) -> Result<(), GateError> {
        let high = on != self.active_low;
        let r = if high {
            self.pin.set_high()
        } else {
            self.pin.set_low()
        };
        r.map_err(|e| GateError::Pin {
            pin: self.number,
            message: format!("{e:?}"),
        })
    }
}

#[derive(Debug)]
pub struct GpioGate<P> {
    relay: Pin<P>,
    green: Option<Pin<P>>,
    red: Option<Pin<P>>,
    buzzer: Option<Pin<P>>,
    pulse: Duration,
    deny: Duration,
    open_until: Option<Instant>,
    deny_until: Option<Instant>,
}

fn set_opt<P: OutputPin>(pin: &mut Option<Pin<P>>, on: bool) -> Result<(), GateError> {
    match pin {
        Some(p) => p.set(on),
        None => Ok(()),
    }
}

impl<P: OutputPin> GpioGate<P> {
    /// Only the relay honours `active_low`; lights and buzzer are driven high for on.
    pub fn new(pins: GpioPins, out: Outputs<P>, timing: Timing) -> Self {
        let pin = |number: Option<u8>, pin: Option<P>| match (number, pin) {
            (Some(number), Some(pin)) => Some(Pin {
                number,
                pin,
                active_low: false,
            }),
            _ => None,
        };
        GpioGate {
            relay: Pin {
                number: pins.relay,
                pin: out.relay,
                active_low: timing.active_low,
            },
            green: pin(pins.green, out.green),
            red: pin(pins.red, out.red),
            buzzer: pin(pins.buzzer, out.buzzer),
            pulse: timing.pulse,
            deny: timing.deny,
            open_until: None,
            deny_until: None,
        }
    }
}

impl<P: OutputPin + Send> Gate for GpioGate<P> {
    fn signal(&mut self, signal: Signal, now: Instant) -> Result<(), GateError> {
        match signal {
            Signal::Admit => {
                self.deny_until = None;
                set_opt(&mut self.red, false)?;
                set_opt(&mut self.buzzer, false)?;
                set_opt(&mut self.green, true)?;
                self.relay.set(true)?;
                self.open_until = Some(now + self.pulse);
            }
            Signal::Deny => {
                set_opt(&mut self.red, true)?;
                set_opt(&mut self.buzzer, true)?;
                self.deny_until = Some(now + self.deny);
            }
        }
        Ok(())
    }

    fn tick(&mut self, now: Instant) -> Result<(), GateError> {
        if self.open_until.is_some_and(|t| now >= t) {
            self.open_until = None;
            self.relay.set(false)?;
            set_opt(&mut self.green, false)?;
        }
        if self.deny_until.is_some_and(|t| now >= t) {
            self.deny_until = None;
            set_opt(&mut self.red, false)?;
            set_opt(&mut self.buzzer, false)?;
        }
        Ok(())
    }

    fn safe_state(&mut self) -> Result<(), GateError> {
        self.open_until = None;
        self.deny_until = None;
        self.relay.set(false)?;
        set_opt(&mut self.green, false)?;
        set_opt(&mut self.red, false)?;
        set_opt(&mut self.buzzer, false)
    }

    fn describe(&self) -> String {
        format!(
            "GPIO gate: relay on BCM {}, pulse {} ms",
            self.relay.number,
            self.pulse.as_millis()
        )
    }
}

/// Opens the pins on the Pi's GPIO. On a machine without GPIO this is an error, not a panic.
pub fn open_rppal(
    pins: GpioPins,
    timing: Timing,
) -> Result<GpioGate<rppal::gpio::OutputPin>, GateError> {
    let active_low = timing.active_low;
    let gpio = rppal::gpio::Gpio::new().map_err(|e| {
        GateError::Open(format!(
            "{e} (is this a Raspberry Pi, and is the user in group gpio?)"
        ))
    })?;
    let out = |n: u8| -> Result<rppal::gpio::OutputPin, GateError> {
        let pin = gpio.get(n).map_err(|e| GateError::Pin {
            pin: n,
            message: e.to_string(),
        })?;
        // The relay starts in its off level so opening the pins never unlocks the door.
        Ok(if active_low && n == pins.relay {
            pin.into_output_high()
        } else {
            pin.into_output_low()
        })
    };
    let outputs = Outputs {
        relay: out(pins.relay)?,
        green: pins.green.map(out).transpose()?,
        red: pins.red.map(out).transpose()?,
        buzzer: pins.buzzer.map(out).transpose()?,
    };
    Ok(GpioGate::new(pins, outputs, timing))
}

#[cfg(test)]
mod tests {
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction as T};

    use super::*;

    const PINS: GpioPins = GpioPins {
        relay: 17,
        green: Some(27),
        red: Some(22),
        buzzer: None,
    };

    fn gate(relay: &[T], green: &[T], red: &[T], active_low: bool) -> (GpioGate<Mock>, [Mock; 3]) {
        let mocks = [Mock::new(relay), Mock::new(green), Mock::new(red)];
        let g = GpioGate::new(
            PINS,
            Outputs {
                relay: mocks[0].clone(),
                green: Some(mocks[1].clone()),
                red: Some(mocks[2].clone()),
                buzzer: None,
            },
            Timing {
                pulse: Duration::from_millis(1500),
                deny: Duration::from_millis(800),
                active_low,
            },
        );
        (g, mocks)
    }

    #[test]
    fn admit_pulses_the_relay_and_green_light() {
        let t0 = Instant::now();
        let (mut g, mut m) = gate(
            &[T::set(State::High), T::set(State::Low)],
            &[T::set(State::High), T::set(State::Low)],
            &[T::set(State::Low)],
            false,
        );
        g.signal(Signal::Admit, t0).unwrap();
        g.tick(t0 + Duration::from_millis(1000)).unwrap(); // still open: no pin change
        g.tick(t0 + Duration::from_millis(1500)).unwrap();
        g.tick(t0 + Duration::from_millis(2000)).unwrap(); // nothing left to end
        m.iter_mut().for_each(|m| m.done());
    }

    #[test]
    fn deny_lights_red_and_keeps_the_door_locked() {
        let t0 = Instant::now();
        let (mut g, mut m) = gate(&[], &[], &[T::set(State::High), T::set(State::Low)], false);
        g.signal(Signal::Deny, t0).unwrap();
        g.tick(t0 + Duration::from_millis(799)).unwrap();
        g.tick(t0 + Duration::from_millis(800)).unwrap();
        m.iter_mut().for_each(|m| m.done());
    }

    #[test]
    fn active_low_relay_and_safe_state() {
        let (mut g, mut m) = gate(
            &[T::set(State::Low), T::set(State::High)],
            &[T::set(State::High), T::set(State::Low)],
            &[T::set(State::Low), T::set(State::Low)],
            true,
        );
        g.signal(Signal::Admit, Instant::now()).unwrap();
        g.safe_state().unwrap();
        m.iter_mut().for_each(|m| m.done());
    }

    #[test]
    fn machine_without_gpio_is_a_clear_error() {
        if std::path::Path::new("/dev/gpiomem").exists() {
            return;
        }
        let timing = Timing {
            pulse: Duration::from_secs(1),
            deny: Duration::from_secs(1),
            active_low: false,
        };
        let err = open_rppal(PINS, timing).unwrap_err();
        assert!(err.to_string().contains("GPIO"), "{err}");
    }
}
