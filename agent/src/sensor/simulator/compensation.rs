//! The compensation the driver applies (Bosch's floating-point formulas, evaluated in `f32`
//! in the same order as `bosch-bme680` 1.0.4 does, so results are bit-identical), and its
//! inverse: physical value → raw ADC code. Every formula is monotone in its ADC input, so
//! the inverse is a binary search followed by a look at the neighbouring codes.

use super::calibration::Calibration;

/// Raw conversion results as the chip stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawCodes {
    /// 20 bits.
    pub temperature: u32,
    /// 20 bits.
    pub pressure: u32,
    /// 16 bits.
    pub humidity: u16,
    /// 10 bits.
    pub gas: u16,
    /// 4 bits.
    pub gas_range: u8,
}

/// What the driver will compute from [`RawCodes`]: the values a test can demand exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Realized {
    pub temperature_c: f32,
    pub pressure_hpa: f32,
    pub humidity_pct: f32,
    pub gas_ohm: f32,
}

const GAS_RANGE_K1: [f32; 16] = [
    0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, -0.8, 0.0, 0.0, -0.2, -0.5, 0.0, -1.0, 0.0, 0.0,
];
const GAS_RANGE_K2: [f32; 16] = [
    0.0, 0.0, 0.0, 0.0, 0.1, 0.7, 0.0, -0.8, -0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
];

/// Returns (°C, t_fine).
pub fn temperature(cal: &Calibration, adc: u32) -> (f32, f32) {
    let adc = adc as f32;
    let t1 = cal.t1 as f32;
    let var1 = ((adc / 16384.) - (t1 / 1024.)) * cal.t2 as f32;
    let var2 = (((adc / 131072.) - (t1 / 8192.)) * ((adc / 131072.) - (t1 / 8192.)))
        * (cal.t3 as f32 * 16.);
    let t_fine = var1 + var2;
    (t_fine / 5120., t_fine)
}

/// Pascals.
pub fn pressure(cal: &Calibration, adc: u32, t_fine: f32) -> f32 {
    let adc = adc as f32;
    let var1 = (t_fine / 2.) - 64000.;
    let var2 = var1 * var1 * (cal.p6 as f32 / 131072.);
    let var2 = var2 + (var1 * cal.p5 as f32 * 2.);
    let var2 = (var2 / 4.) + (cal.p4 as f32 * 65536.);
    let var1 = (((cal.p3 as f32 * var1 * var1) / 16384.) + (cal.p2 as f32 * var1)) / 524288.;
    let var1 = (1. + (var1 / 32768.)) * cal.p1 as f32;
    let mut calc = 1048576. - adc;
    if var1 as i16 != 0 {
        calc = ((calc - (var2 / 4096.)) * 6250.) / var1;
        let var1 = (cal.p9 as f32 * calc * calc) / 2147483648.;
        let var2 = calc * (cal.p8 as f32 / 32768.);
        let var3 = (calc / 256.) * (calc / 256.) * (calc / 256.) * (cal.p10 as f32 / 131072.);
        calc += (var1 + var2 + var3 + (cal.p7 as f32 * 128.)) / 16.;
    } else {
        calc = 0.;
    }
    calc
}

/// %RH, clamped to 0..=100 like the driver.
pub fn humidity(cal: &Calibration, adc: u16, t_fine: f32) -> f32 {
    let adc = adc as f32;
    let temp_comp = t_fine / 5120.;
    let var1 = adc - ((cal.h1 as f32 * 16.) + ((cal.h3 as f32 / 2.) * temp_comp));
    let var2 = var1
        * ((cal.h2 as f32 / 262144.)
            * (1.
                + ((cal.h4 as f32 / 16384.) * temp_comp)
                + ((cal.h5 as f32 / 1048576.) * temp_comp * temp_comp)));
    let var3 = cal.h6 as f32 / 16384.;
    let var4 = cal.h7 as f32 / 2097152.;
    let calc = var2 + ((var3 + (var4 * temp_comp)) * var2 * var2);
    calc.clamp(0., 100.)
}

/// Ω, for the BME680 ("gas low") variant.
pub fn gas(cal: &Calibration, adc: u16, range: u8) -> f32 {
    let range = usize::from(range & 0x0F);
    // The driver reads the switching error as a signed nibble; ours is kept in 0..=7.
    let range_sw_err = (cal.range_sw_err & 0x07) as i8;
    let adc = adc as f32;
    let range_factor = (1u32 << range) as f32;
    let var1 = 1340. + (5. * range_sw_err as f32);
    let var2 = var1 * (1. + GAS_RANGE_K1[range] / 100.);
    let var3 = 1. + (GAS_RANGE_K2[range] / 100.);
    1. / (var3 * (0.000000125) * range_factor * (((adc - 512.) / var2) + 1.))
}

/// Smallest code in `0..=max` for which `rises(code)` holds, assuming it is monotone.
fn first_code(max: u32, rises: impl Fn(u32) -> bool) -> u32 {
    let (mut low, mut high) = (0u32, max);
    if !rises(high) {
        return high;
    }
    while low < high {
        let mid = low + (high - low) / 2;
        if rises(mid) {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    low
}

/// Of the codes near `center`, the one whose value is closest to `target`.
fn nearest_code(center: u32, max: u32, target: f32, value: impl Fn(u32) -> f32) -> u32 {
    let start = center.saturating_sub(2);
    let end = center.saturating_add(2).min(max);
    let mut best = center.min(max);
    let mut best_error = f32::INFINITY;
    for code in start..=end {
        let error = (value(code) - target).abs();
        if error < best_error {
            best_error = error;
            best = code;
        }
    }
    best
}

const MAX_20_BIT: u32 = (1 << 20) - 1;

/// Temperature code for `celsius`; returns (code, t_fine the driver will compute).
pub fn temperature_code(cal: &Calibration, celsius: f32) -> (u32, f32) {
    let center = first_code(MAX_20_BIT, |code| temperature(cal, code).0 >= celsius);
    let code = nearest_code(center, MAX_20_BIT, celsius, |code| temperature(cal, code).0);
    (code, temperature(cal, code).1)
}

/// Pressure code for `pascals` at `t_fine` (pressure falls as the code rises).
pub fn pressure_code(cal: &Calibration, pascals: f32, t_fine: f32) -> u32 {
    let center = first_code(MAX_20_BIT, |code| pressure(cal, code, t_fine) <= pascals);
    nearest_code(center, MAX_20_BIT, pascals, |code| {
        pressure(cal, code, t_fine)
    })
}

/// Humidity code for `percent` at `t_fine`.
pub fn humidity_code(cal: &Calibration, percent: f32, t_fine: f32) -> u16 {
    let max = u32::from(u16::MAX);
    let center = first_code(max, |code| humidity(cal, code as u16, t_fine) >= percent);
    let code = nearest_code(center, max, percent, |code| {
        humidity(cal, code as u16, t_fine)
    });
    code as u16
}

/// (gas code, range) whose resistance is relatively closest to `ohms`.
pub fn gas_code(cal: &Calibration, ohms: f32) -> (u16, u8) {
    let mut best = (512u16, 0u8);
    let mut best_error = f32::INFINITY;
    for range in 0..16u8 {
        // Resistance falls as the code rises.
        let center = first_code(1023, |code| gas(cal, code as u16, range) <= ohms);
        let code = nearest_code(center, 1023, ohms, |code| gas(cal, code as u16, range));
        let error = ((gas(cal, code as u16, range) - ohms) / ohms).abs();
        if error < best_error {
            best_error = error;
            best = (code as u16, range);
        }
    }
    best
}

/// Codes for the requested physical values, and what the driver will read back from them.
pub fn encode(
    cal: &Calibration,
    celsius: f32,
    hpa: f32,
    percent: f32,
    ohms: f32,
) -> (RawCodes, Realized) {
    let (temperature_code, t_fine) = temperature_code(cal, celsius);
    let pressure_code = pressure_code(cal, hpa * 100.0, t_fine);
    let humidity_code = humidity_code(cal, percent, t_fine);
    let (gas_code, gas_range) = gas_code(cal, ohms.max(1.0));
    let codes = RawCodes {
        temperature: temperature_code,
        pressure: pressure_code,
        humidity: humidity_code,
        gas: gas_code,
        gas_range,
    };
    (codes, realize(cal, &codes))
}

/// What the driver computes from `codes`.
pub fn realize(cal: &Calibration, codes: &RawCodes) -> Realized {
    let (temperature_c, t_fine) = temperature(cal, codes.temperature);
    Realized {
        temperature_c,
        pressure_hpa: pressure(cal, codes.pressure, t_fine) / 100.0,
        humidity_pct: humidity(cal, codes.humidity, t_fine),
        gas_ohm: gas(cal, codes.gas, codes.gas_range),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_vector_of_set_a() {
        // Pimoroni's golden vectors (reference §4, integer path), here through the float path.
        let cal = Calibration::PIMORONI;
        let (celsius, t_fine) = temperature(&cal, 501240);
        assert!((celsius - 26.69).abs() < 0.01, "{celsius}");
        let pascals = pressure(&cal, 353485, t_fine);
        // The float path lands ~5 Pa from the integer path's 98711 Pa (f32 rounding of the
        // large intermediate terms); both are far inside the chip's ±0.6 hPa accuracy.
        assert!((pascals - 98712.0).abs() < 8.0, "{pascals}");
        let percent = humidity(&cal, 19019, t_fine);
        assert!((percent - 42.40).abs() < 0.02, "{percent}");
        let ohms = gas(&cal, 0, 0);
        assert!((ohms - 12_946_860.0).abs() / 12_946_860.0 < 1e-3, "{ohms}");
    }

    #[test]
    fn inverse_round_trips() {
        for cal in [Calibration::PIMORONI, Calibration::DEVICE_B] {
            let (_, realized) = encode(&cal, 21.37, 1003.21, 47.5, 123_456.0);
            assert!((realized.temperature_c - 21.37).abs() < 0.001);
            assert!((realized.pressure_hpa - 1003.21).abs() < 0.01);
            assert!((realized.humidity_pct - 47.5).abs() < 0.005);
            assert!((realized.gas_ohm - 123_456.0).abs() / 123_456.0 < 5e-4);
        }
    }
}
