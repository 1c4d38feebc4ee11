//! Scenarios: the air around the simulated chip as a function of (virtual) time since the
//! scenario started. Magnitudes follow the reference (§10); noise is deterministic (a hash
//! of the time and a seed), so the same run gives the same numbers.

use std::f32::consts::TAU;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::sensor::bme680::datasheet::absolute_humidity_g_m3;

/// What the chip is exposed to at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Environment {
    /// At the chip, °C.
    pub temperature_c: f32,
    /// At the chip, %RH.
    pub humidity_pct: f32,
    pub pressure_hpa: f32,
    /// Gas-sensor resistance in Ω, humidity cross-effect included.
    pub gas_ohm: f32,
    /// False when the heater cannot reach its target (a broken or starved heater).
    pub heater_works: bool,
}

impl Environment {
    /// Typical clean indoor air: 23 °C, 45 %RH, 1013.25 hPa, 250 kΩ.
    pub const CLEAN_INDOOR: Environment = Environment {
        temperature_c: 23.0,
        humidity_pct: 45.0,
        pressure_hpa: 1013.25,
        gas_ohm: 250_000.0,
        heater_works: true,
    };
}

/// A named storyline for the simulated chip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scenario {
    /// The same values forever, without noise (for round-trip tests).
    Fixed(Environment),
    /// "clean": steady clean indoor air with sensor noise.
    Clean,
    /// "cooking": clean air, then from minute 10 to 30 cooking: VOCs drop the resistance to
    /// ~15 % of normal within a few minutes, steam adds 10 %RH and warmth 1.5 °C; afterwards
    /// an exponential recovery (τ 20 min).
    Cooking,
    /// "window": at minute 10 a window opens for 15 minutes (winter): −4 °C, −15 %RH,
    /// −0.2 hPa, and fresher air raises the resistance by 30 %; then it drifts back (τ 10 min).
    Window,
    /// "drift": diurnal ±2 °C and ±5 %RH, weather ±15 hPa over three days, and a sensor whose
    /// clean-air resistance falls 7 % a day.
    Drift,
    /// "cold-start": a chip just powered: the resistance starts at ~5 kΩ and climbs to its
    /// clean-air value over ~15 minutes (τ 4 min).
    ColdStart,
    /// "heater-fault": clean air, then from minute 5 on the heater never reaches its target.
    HeaterFault,
}

impl Scenario {
    /// The names accepted by [`Scenario::from_str`] (and `--scenario` on the command line).
    pub const NAMES: [&'static str; 6] = [
        "clean",
        "cooking",
        "window",
        "drift",
        "cold-start",
        "heater-fault",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Fixed(_) => "fixed",
            Scenario::Clean => "clean",
            Scenario::Cooking => "cooking",
            Scenario::Window => "window",
            Scenario::Drift => "drift",
            Scenario::ColdStart => "cold-start",
            Scenario::HeaterFault => "heater-fault",
        }
    }

    /// The air at `elapsed` since the scenario started; `seed` varies the noise.
    pub fn environment_at(&self, elapsed: Duration, seed: u64) -> Environment {
        let minutes = elapsed.as_secs_f32() / 60.0;
        let noise = Noise {
            seed,
            tick: elapsed.as_millis() as u64,
        };
        let base = Environment::CLEAN_INDOOR;
        let (mut air, voc_factor) = match self {
            Scenario::Fixed(environment) => return *environment,
            Scenario::Clean => (base, 1.0),
            Scenario::Cooking => {
                let activity = cooking_activity(minutes);
                let air = Environment {
                    temperature_c: base.temperature_c + 1.5 * activity,
                    humidity_pct: base.humidity_pct + 10.0 * activity,
                    ..base
                };
                (air, 1.0 - 0.85 * activity)
            }
            Scenario::Window => {
                let open = window_openness(minutes);
                let air = Environment {
                    temperature_c: base.temperature_c - 4.0 * open,
                    humidity_pct: base.humidity_pct - 15.0 * open,
                    pressure_hpa: base.pressure_hpa - 0.2 * open,
                    ..base
                };
                (air, 1.0 + 0.3 * open)
            }
            Scenario::Drift => {
                let days = minutes / (24.0 * 60.0);
                let air = Environment {
                    temperature_c: base.temperature_c + 2.0 * (TAU * days).sin(),
                    humidity_pct: base.humidity_pct + 5.0 * (TAU * days + 1.0).sin(),
                    pressure_hpa: base.pressure_hpa + 15.0 * (TAU * days / 3.0).sin(),
                    ..base
                };
                (air, (1.0 - 0.07 * days).max(0.05))
            }
            Scenario::ColdStart => (base, 0.02 + 0.98 * (1.0 - (-minutes / 4.0).exp())),
            Scenario::HeaterFault => {
                let air = Environment {
                    heater_works: minutes < 5.0,
                    ..base
                };
                (air, 1.0)
            }
        };
        air.temperature_c += 0.1 * noise.gaussian(1);
        air.humidity_pct = (air.humidity_pct + 0.3 * noise.gaussian(2)).clamp(1.0, 99.0);
        air.pressure_hpa += 0.05 * noise.gaussian(3);
        air.gas_ohm = base.gas_ohm
            * voc_factor
            * humidity_cross_effect(air.temperature_c, air.humidity_pct)
            * (1.0 + 0.015 * noise.gaussian(4));
        air
    }
}

/// Water vapour lowers the resistance too (reference §10, thstielow's fit: about −3 % per
/// g/m³), relative to the clean-indoor reference air.
fn humidity_cross_effect(temperature_c: f32, humidity_pct: f32) -> f32 {
    let reference = absolute_humidity_g_m3(
        Environment::CLEAN_INDOOR.temperature_c,
        Environment::CLEAN_INDOOR.humidity_pct,
    );
    (-0.03 * (absolute_humidity_g_m3(temperature_c, humidity_pct) - reference)).exp()
}

/// 0 before minute 10, rising to 1 (τ 1 min) while cooking, decaying (τ 20 min) after 30.
fn cooking_activity(minutes: f32) -> f32 {
    const START: f32 = 10.0;
    const END: f32 = 30.0;
    let rise = |m: f32| 1.0 - (-(m - START) / 1.0).exp();
    if minutes < START {
        0.0
    } else if minutes < END {
        rise(minutes)
    } else {
        rise(END) * (-(minutes - END) / 20.0).exp()
    }
}

/// 0 before minute 10, approaching 1 (τ 3 min) while open, back towards 0 after 25.
fn window_openness(minutes: f32) -> f32 {
    const OPEN: f32 = 10.0;
    const CLOSE: f32 = 25.0;
    let rise = |m: f32| 1.0 - (-(m - OPEN) / 3.0).exp();
    if minutes < OPEN {
        0.0
    } else if minutes < CLOSE {
        rise(minutes)
    } else {
        rise(CLOSE) * (-(minutes - CLOSE) / 10.0).exp()
    }
}

/// Reproducible pseudo-random numbers from (seed, time, channel): no state, no dependency.
struct Noise {
    seed: u64,
    tick: u64,
}

impl Noise {
    fn uniform(&self, channel: u64, draw: u64) -> f32 {
        // SplitMix64 finaliser over the combined key.
        let mut z = self
            .seed
            .wrapping_add(self.tick.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .wrapping_add(channel.wrapping_mul(0xBF58_476D_1CE4_E5B9))
            .wrapping_add(draw.wrapping_mul(0x94D0_49BB_1331_11EB));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Approximately standard normal (Irwin–Hall with four draws), bounded to ±3.5.
    fn gaussian(&self, channel: u64) -> f32 {
        let sum: f32 = (0..4).map(|draw| self.uniform(channel, draw)).sum();
        (sum - 2.0) * (3.0f32).sqrt()
    }
}

/// An unknown scenario name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scenario {name:?}; known: clean, cooking, window, drift, cold-start, heater-fault"
)]
pub struct UnknownScenario {
    pub name: String,
}

impl FromStr for Scenario {
    type Err = UnknownScenario;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim().to_ascii_lowercase().as_str() {
            "clean" => Ok(Scenario::Clean),
            "cooking" => Ok(Scenario::Cooking),
            "window" => Ok(Scenario::Window),
            "drift" => Ok(Scenario::Drift),
            "cold-start" => Ok(Scenario::ColdStart),
            "heater-fault" => Ok(Scenario::HeaterFault),
            other => Err(UnknownScenario {
                name: other.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back() {
        for name in Scenario::NAMES {
            assert_eq!(name.parse::<Scenario>().unwrap().name(), name);
        }
        assert!("smoke".parse::<Scenario>().is_err());
    }

    #[test]
    fn noise_is_deterministic_and_small() {
        let at = Duration::from_secs(42);
        let a = Scenario::Clean.environment_at(at, 7);
        assert_eq!(a, Scenario::Clean.environment_at(at, 7));
        assert_ne!(a, Scenario::Clean.environment_at(at, 8));
        assert!((a.temperature_c - 23.0).abs() < 0.4);
        assert!((a.gas_ohm / 250_000.0 - 1.0).abs() < 0.06);
    }

    #[test]
    fn cooking_lowers_resistance_and_recovers() {
        let at =
            |minutes: u64| Scenario::Cooking.environment_at(Duration::from_secs(minutes * 60), 1);
        assert!(at(20).gas_ohm < 0.3 * at(5).gas_ohm);
        assert!(at(120).gas_ohm > 0.9 * at(5).gas_ohm);
    }
}
