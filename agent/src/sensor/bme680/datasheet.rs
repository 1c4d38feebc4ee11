//! The BME680's arithmetic, in one leaf that imports nothing of the agent: the measurement
//! duration per oversampling setting, the heater's duration and target codes (Bosch's
//! datasheet formulas), and the humidity physics the driver, the simulator and the
//! air-quality score share.
//!
//! `config` (is the period long enough for a conversion?), `driver` (what the guard waits
//! for and writes), `simulator` (how long its conversion takes) and `air_quality` (absolute
//! humidity) all import from here and nothing here imports them back, so a change to a
//! formula goes here and lands in every user at once.

use std::time::Duration;

/// Microseconds of one oversampling cycle of T, P or H (datasheet §3.3.5: 1.963 ms).
const CYCLE_US: u64 = 1963;
/// Microseconds of the fixed part of a TPH measurement: switching (4 × 477 µs), gas
/// conversion set-up (5 × 477 µs) and wake-up (1 ms).
const FIXED_US: u64 = 477 * 4 + 477 * 5 + 1000;

/// Cycles of one channel for its `osrs_x` register code (0 = skipped, 1..=5 = ×1..×16;
/// the datasheet maps 6 and 7 to ×16 as well).
pub fn oversampling_cycles(osrs_code: u8) -> u32 {
    match osrs_code & 0b111 {
        0 => 0,
        1 => 1,
        2 => 2,
        3 => 4,
        4 => 8,
        _ => 16,
    }
}

/// How long the T, P and H conversions take together, for the three `osrs_x` codes.
pub fn measurement_duration(osrs_t: u8, osrs_p: u8, osrs_h: u8) -> Duration {
    let cycles = u64::from(oversampling_cycles(osrs_t))
        + u64::from(oversampling_cycles(osrs_p))
        + u64::from(oversampling_cycles(osrs_h));
    Duration::from_micros(cycles * CYCLE_US + FIXED_US)
}

/// The `gas_wait_x` code for a heater duration: 6-bit value times a power-of-4 multiplier.
pub fn gas_wait_code(duration_ms: u16) -> u8 {
    if duration_ms >= 0xFC0 {
        return 0xFF;
    }
    let mut value = duration_ms;
    let mut multiplier = 0u8;
    while value > 0x3F {
        value /= 4;
        multiplier += 1;
    }
    // value ≤ 0x3F and multiplier ≤ 3 here (0xFC0 = 0x3F × 4³), so both fit their bits.
    (value as u8) | (multiplier << 6)
}

/// The heater duration a `gas_wait_x` code stands for.
pub fn gas_wait_duration(code: u8) -> Duration {
    let value = u64::from(code & 0x3F);
    let multiplier = 4u64.pow(u32::from(code >> 6));
    Duration::from_millis(value * multiplier)
}

/// The heater calibration parameters the target code depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaterCalibration {
    pub par_gh1: i8,
    pub par_gh2: i16,
    pub par_gh3: i8,
    pub res_heat_range: u8,
    pub res_heat_val: i8,
}

/// Bosch's integer formula for the `res_heat_x` code of a target temperature (capped at
/// 400 °C), at an ambient temperature in °C (clamped to the chip's −40..=85).
pub fn heater_resistance_code(cal: &HeaterCalibration, target_c: u16, ambient_c: i32) -> u8 {
    let target = i64::from(target_c.min(400));
    let ambient = i64::from(ambient_c.clamp(-40, 85));
    let var1 = (ambient * i64::from(cal.par_gh3) / 1000) * 256;
    let var2 = (i64::from(cal.par_gh1) + 784)
        * (((i64::from(cal.par_gh2) + 154_009) * target * 5 / 100 + 3_276_800) / 10);
    let var3 = var1 + var2 / 2;
    let var4 = var3 / (i64::from(cal.res_heat_range) + 4);
    // res_heat_val is an i8, so var5 ≥ 131 × −128 + 65 536 > 0: never a division by zero.
    let var5 = 131 * i64::from(cal.res_heat_val) + 65_536;
    let code_x100 = (var4 / var5 - 250) * 34;
    u8::try_from(((code_x100 + 50) / 100).clamp(0, 255)).unwrap_or(u8::MAX)
}

/// Saturation vapour pressure over water in hPa (Magnus, Sonntag 1990 constants).
pub fn saturation_vapour_pressure_hpa(temperature_c: f32) -> f32 {
    6.112 * ((17.62 * temperature_c) / (243.12 + temperature_c)).exp()
}

/// Water vapour in g/m³ for a temperature (°C) and relative humidity (%).
pub fn absolute_humidity_g_m3(temperature_c: f32, humidity_pct: f32) -> f32 {
    let vapour_hpa = humidity_pct / 100.0 * saturation_vapour_pressure_hpa(temperature_c);
    216.7 * vapour_hpa / (273.15 + temperature_c)
}

/// The chip sits `offset` degrees above ambient: the same water vapour then shows a lower
/// relative humidity at the chip than in the room. Returns ambient (°C, %RH); a humidity
/// that is not a number (a skipped channel) stays not a number.
pub fn correct_self_heating(sensor_c: f32, sensor_rh: f32, offset_c: f32) -> (f32, f32) {
    if offset_c == 0.0 {
        return (sensor_c, sensor_rh);
    }
    let ambient_c = sensor_c - offset_c;
    let ratio =
        saturation_vapour_pressure_hpa(sensor_c) / saturation_vapour_pressure_hpa(ambient_c);
    let ambient_rh = (sensor_rh * ratio).clamp(0.0, 100.0);
    if ambient_rh.is_finite() {
        (ambient_c, ambient_rh)
    } else {
        (ambient_c, sensor_rh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gas_wait_codes_match_the_datasheet_examples() {
        assert_eq!(gas_wait_code(20), 0x14);
        assert_eq!(gas_wait_code(100), 0x59);
        assert_eq!(gas_wait_code(150), 0x65);
        assert_eq!(gas_wait_code(1500), 0xD7);
        assert_eq!(gas_wait_code(4032), 0xFF);
        assert_eq!(gas_wait_duration(0xD7), Duration::from_millis(1472));
        assert_eq!(gas_wait_duration(0x65), Duration::from_millis(148));
    }

    #[test]
    fn measurement_duration_counts_cycles() {
        // ×8, ×4, ×2 (codes 4, 3, 2): 14 cycles.
        assert_eq!(
            measurement_duration(4, 3, 2),
            Duration::from_micros(14 * 1963 + 477 * 9 + 1000)
        );
        assert_eq!(
            measurement_duration(0, 0, 0),
            Duration::from_micros(477 * 9 + 1000)
        );
        assert_eq!(oversampling_cycles(7), 16);
    }

    #[test]
    fn heater_codes_match_the_reference_for_set_a() {
        // Pimoroni calibration set A at 25 °C ambient (reference §5).
        let cal = HeaterCalibration {
            par_gh1: -30,
            par_gh2: -24754,
            par_gh3: 18,
            res_heat_range: 1,
            res_heat_val: 48,
        };
        assert_eq!(heater_resistance_code(&cal, 200, 25), 0x4E);
        assert_eq!(heater_resistance_code(&cal, 320, 25), 0x6A);
        assert_eq!(heater_resistance_code(&cal, 400, 25), 0x7C);
        assert_eq!(
            heater_resistance_code(&cal, 450, 25),
            0x7C,
            "capped at 400 °C"
        );
    }

    #[test]
    fn self_heating_correction_keeps_absolute_humidity() {
        let (t, rh) = correct_self_heating(25.0, 40.0, 3.0);
        assert!((t - 22.0).abs() < 1e-6);
        // Same vapour pressure: 40 % of e_s(25) equals rh % of e_s(22).
        let vapour_at_chip = 0.40 * saturation_vapour_pressure_hpa(25.0);
        let vapour_in_room = rh / 100.0 * saturation_vapour_pressure_hpa(22.0);
        assert!((vapour_at_chip - vapour_in_room).abs() < 1e-3);
        assert!(rh > 46.0 && rh < 48.0, "{rh}");
        assert_eq!(correct_self_heating(25.0, 99.0, 10.0).1, 100.0, "clamped");
        assert!(correct_self_heating(25.0, f32::NAN, 3.0).1.is_nan());
    }
}
