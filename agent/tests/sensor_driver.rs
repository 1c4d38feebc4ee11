//! The real `bosch-bme680` driver, through our wrapper, on the simulated chip: round trips
//! over a grid of physical values, the heater profile, address probing, and each way the
//! driver can fail or panic.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use bosch_bme680::{Bme680, Configuration, DeviceAddress};
use edge_agent::sensor::bme680::config::{SensorAddress, SensorConfig};
use edge_agent::sensor::bme680::datasheet::{gas_wait_code, heater_resistance_code};
use edge_agent::sensor::bme680::driver::Bme680Sensor;
use edge_agent::sensor::bme680::error::SensorError;
use edge_agent::sensor::clock::{ClockDelay, SharedClock, VirtualClock};
use edge_agent::sensor::simulator::{
    Calibration, Environment, Fault, FaultKindSim, Scenario, SimulatedBme680, SimulatedBus,
};

fn fixed_chip(
    calibration: Calibration,
    environment: Environment,
) -> (SimulatedBme680, SharedClock) {
    let clock: SharedClock = Arc::new(VirtualClock::default());
    let chip = SimulatedBme680::new(calibration, Scenario::Fixed(environment), clock.clone());
    (chip, clock)
}

fn open(
    chip: &mut SimulatedBme680,
    config: &SensorConfig,
    clock: &SharedClock,
) -> Bme680Sensor<SimulatedBus> {
    Bme680Sensor::open(chip, config, clock.clone()).expect("the simulated chip opens")
}

fn environment(
    temperature_c: f32,
    pressure_hpa: f32,
    humidity_pct: f32,
    gas_ohm: f32,
) -> Environment {
    Environment {
        temperature_c,
        pressure_hpa,
        humidity_pct,
        gas_ohm,
        heater_works: true,
    }
}

/// Tolerances: the float compensation makes T steps of 0.0003 °C, P of 0.002 hPa, H of
/// 0.004 %RH and gas of ≤ 0.08 % per ADC code, so the nearest code is well inside these.
const T_TOLERANCE: f32 = 0.001;
const P_TOLERANCE_HPA: f32 = 0.01;
const H_TOLERANCE: f32 = 0.005;
const GAS_RELATIVE_TOLERANCE: f32 = 0.001;

fn round_trip_grid(calibration: Calibration) -> usize {
    let (mut chip, clock) = fixed_chip(calibration, Environment::CLEAN_INDOOR);
    let config = SensorConfig::default();
    let mut sensor = open(&mut chip, &config, &clock);
    let mut checked = 0;
    let mut worst = [0.0f32; 4];
    for temperature in [-10.0, 0.0, 12.5, 21.37, 30.0, 42.0, 55.0] {
        for pressure in [900.0, 950.5, 1000.0, 1013.25, 1050.0, 1100.0] {
            for humidity in [5.0, 25.0, 45.5, 70.0, 95.0] {
                for gas in [
                    3_000.0,
                    2_000.0,
                    12_500.0,
                    50_000.0,
                    180_000.0,
                    750_000.0,
                    5_000_000.0,
                ] {
                    chip.set_environment(environment(temperature, pressure, humidity, gas));
                    let reading = sensor.read().expect("reading");
                    let realized = chip.last_realized().expect("a conversion happened");
                    // Exactly what the chip's registers encode: our replica of the driver's
                    // float compensation is bit-identical.
                    assert_eq!(reading.temperature, realized.temperature_c);
                    assert_eq!(reading.pressure, realized.pressure_hpa);
                    assert_eq!(reading.humidity, realized.humidity_pct);
                    assert_eq!(reading.gas_resistance, Some(realized.gas_ohm));
                    // And within tolerance of what was asked for.
                    let errors = [
                        (reading.temperature - temperature).abs(),
                        (reading.pressure - pressure).abs(),
                        (reading.humidity - humidity).abs(),
                        (reading.gas_resistance.unwrap() - gas).abs() / gas,
                    ];
                    for (worst, error) in worst.iter_mut().zip(errors) {
                        *worst = worst.max(error);
                    }
                    assert!(errors[0] <= T_TOLERANCE, "T {temperature}: {reading:?}");
                    assert!(errors[1] <= P_TOLERANCE_HPA, "P {pressure}: {reading:?}");
                    assert!(errors[2] <= H_TOLERANCE, "H {humidity}: {reading:?}");
                    assert!(errors[3] <= GAS_RELATIVE_TOLERANCE, "R {gas}: {reading:?}");
                    assert!(reading.gas_valid && reading.heater_stable);
                    checked += 1;
                }
            }
        }
    }
    println!(
        "{checked} readings, worst |ΔT| {:.5} °C, |ΔP| {:.5} hPa, |ΔH| {:.5} %RH, |ΔR|/R {:.5}",
        worst[0], worst[1], worst[2], worst[3]
    );
    checked
}

#[test]
fn round_trip_over_a_grid_with_the_pimoroni_calibration() {
    assert_eq!(round_trip_grid(Calibration::PIMORONI), 7 * 6 * 5 * 7);
}

#[test]
fn round_trip_over_a_grid_with_a_second_device_calibration() {
    assert_eq!(round_trip_grid(Calibration::DEVICE_B), 7 * 6 * 5 * 7);
}

#[test]
fn auto_probing_finds_the_chip_at_the_secondary_address() {
    let (chip, clock) = fixed_chip(Calibration::PIMORONI, Environment::CLEAN_INDOOR);
    let mut chip = chip.with_address(0x77);
    let sensor = open(&mut chip, &SensorConfig::default(), &clock);
    assert_eq!(sensor.address(), 0x77);

    let primary_only = SensorConfig {
        address: SensorAddress::Primary,
        ..SensorConfig::default()
    };
    let error = Bme680Sensor::open(&mut chip, &primary_only, clock.clone()).unwrap_err();
    assert!(matches!(error, SensorError::NotFound { .. }), "{error}");
}

#[test]
fn the_configured_heater_profile_reaches_the_chip_and_is_waited_for() {
    let (mut chip, clock) = fixed_chip(Calibration::PIMORONI, Environment::CLEAN_INDOOR);
    let config = SensorConfig {
        heater_temperature_c: 250,
        heater_duration_ms: 1000,
        ..SensorConfig::default()
    };
    let mut sensor = open(&mut chip, &config, &clock);
    let expected_code = heater_resistance_code(&Calibration::PIMORONI.heater(), 250, 25);
    assert_eq!(
        chip.peek(0x5A),
        expected_code,
        "res_heat_0 for 250 °C, not the driver's 300 °C"
    );
    assert_eq!(
        chip.peek(0x64),
        gas_wait_code(1000),
        "gas_wait_0 for 1000 ms, not 150 ms"
    );
    // The driver itself waits only for a 150 ms heater; without the guard's wait this read
    // would time out after its five polls.
    let before = clock.monotonic();
    let reading = sensor.read().expect("a 1 s heater conversion completes");
    assert!(clock.monotonic() - before >= std::time::Duration::from_millis(992));
    assert!(reading.gas_valid && reading.heater_stable);
}

#[test]
fn too_short_a_heater_is_flagged_unstable() {
    let (mut chip, clock) = fixed_chip(Calibration::PIMORONI, Environment::CLEAN_INDOOR);
    let config = SensorConfig {
        heater_duration_ms: 10,
        ..SensorConfig::default()
    };
    let reading = open(&mut chip, &config, &clock).read().unwrap();
    assert!(reading.gas_valid);
    assert!(
        !reading.heater_stable,
        "10 ms of heating cannot reach the target"
    );
}

#[test]
fn heater_fault_scenario_clears_heat_stab() {
    let (mut chip, clock) = fixed_chip(Calibration::PIMORONI, Environment::CLEAN_INDOOR);
    let mut sensor = open(&mut chip, &SensorConfig::default(), &clock);
    chip.set_environment(Environment {
        heater_works: false,
        ..Environment::CLEAN_INDOOR
    });
    let reading = sensor.read().unwrap();
    assert!(!reading.heater_stable);
}

#[test]
fn self_heating_offset_is_removed_and_humidity_recomputed() {
    let (mut chip, clock) = fixed_chip(
        Calibration::PIMORONI,
        environment(26.0, 1000.0, 40.0, 100_000.0),
    );
    let config = SensorConfig {
        temperature_offset_c: 3.0,
        ..SensorConfig::default()
    };
    let reading = open(&mut chip, &config, &clock).read().unwrap();
    assert!((reading.temperature - 23.0).abs() < 0.01, "{reading:?}");
    // Same water vapour, 3 °C cooler: about 48 %RH.
    assert!(
        reading.humidity > 47.0 && reading.humidity < 49.0,
        "{reading:?}"
    );
}

/// The raw driver, without our wrapper, on the simulated chip.
fn raw_driver(chip: &SimulatedBme680, clock: &SharedClock) -> Bme680<SimulatedBus, ClockDelay> {
    Bme680::new(
        chip.bus(),
        DeviceAddress::Primary,
        ClockDelay::new(clock.clone()),
        &Configuration::default(),
        25,
    )
    .expect("raw driver initialises")
}

#[test]
fn garbage_mode_bits_make_the_driver_panic_and_the_wrapper_report_it() {
    let (mut chip, clock) = fixed_chip(Calibration::PIMORONI, Environment::CLEAN_INDOOR);
    // First prove the crate itself panics on mode bits 0b11 (SensorMode::from).
    let mut raw = raw_driver(&chip, &clock);
    chip.inject(Fault::GarbageModeBits { reads: 1 });
    let outcome = catch_unwind(AssertUnwindSafe(|| raw.measure()));
    assert!(
        outcome.is_err(),
        "bosch-bme680 1.0.4 panics on mode bits 0b11"
    );

    // Then that the wrapper turns the same panic into an error.
    let mut sensor = open(&mut chip, &SensorConfig::default(), &clock);
    chip.inject(Fault::GarbageModeBits { reads: 1 });
    let error = sensor.read().unwrap_err();
    assert!(matches!(error, SensorError::DriverPanic(_)), "{error}");
    assert_eq!(chip.times_struck(FaultKindSim::GarbageModeBits), 2);
}

#[test]
fn stale_data_is_ok_for_the_driver_but_rejected_by_the_wrapper() {
    let (mut chip, clock) = fixed_chip(Calibration::PIMORONI, Environment::CLEAN_INDOOR);
    let mut raw = raw_driver(&chip, &clock);
    raw.measure().unwrap();
    chip.inject(Fault::StaleData { measurements: 1 });
    assert!(
        raw.measure().is_ok(),
        "the crate returns old register contents when new_data_0 is clear and the chip is idle"
    );

    let mut sensor = open(&mut chip, &SensorConfig::default(), &clock);
    sensor.read().unwrap();
    chip.inject(Fault::StaleData { measurements: 1 });
    assert_eq!(sensor.read().unwrap_err(), SensorError::NoNewData);
    assert!(sensor.read().is_ok(), "the next conversion is fine again");
}

#[test]
fn data_never_ready_times_out() {
    let (mut chip, clock) = fixed_chip(Calibration::PIMORONI, Environment::CLEAN_INDOOR);
    let mut sensor = open(&mut chip, &SensorConfig::default(), &clock);
    chip.inject(Fault::DataNeverReady { measurements: 1 });
    assert_eq!(sensor.read().unwrap_err(), SensorError::NoNewData);
    assert!(sensor.read().is_ok());
}

#[test]
fn wrong_chip_id_is_refused() {
    let (mut chip, clock) = fixed_chip(Calibration::PIMORONI, Environment::CLEAN_INDOOR);
    chip.inject(Fault::WrongChipId { id: 0x60, reads: 1 });
    let error = Bme680Sensor::open(&mut chip, &SensorConfig::default(), clock.clone()).unwrap_err();
    assert_eq!(error, SensorError::WrongChipId { found: 0x60 });
}

#[test]
fn bus_errors_and_nacks_are_typed() {
    let (mut chip, clock) = fixed_chip(Calibration::PIMORONI, Environment::CLEAN_INDOOR);
    let mut sensor = open(&mut chip, &SensorConfig::default(), &clock);
    chip.inject(Fault::BusError { transactions: 1 });
    assert!(matches!(sensor.read().unwrap_err(), SensorError::Bus(_)));
    chip.inject(Fault::Nack { transactions: 1 });
    assert!(matches!(sensor.read().unwrap_err(), SensorError::Bus(_)));
    assert!(sensor.read().is_ok());
}

#[test]
fn a_chip_stuck_in_forced_mode_ends_in_an_error_not_a_hang() {
    let (mut chip, clock) = fixed_chip(Calibration::PIMORONI, Environment::CLEAN_INDOOR);
    let mut sensor = open(&mut chip, &SensorConfig::default(), &clock);
    chip.inject(Fault::ModeStuckForced { reads: u32::MAX });
    let error = sensor.read().unwrap_err();
    assert!(matches!(error, SensorError::Runaway(_)), "{error}");
    let struck = chip.times_struck(FaultKindSim::ModeStuckForced);
    assert!(
        (10..=64).contains(&struck),
        "bounded polling, {struck} reads"
    );
}

#[test]
fn cold_start_gas_values_in_range_twelve_read_correctly() {
    // The bme680 0.6.0 crate reads gas range 12 (≈1.4–3.2 kΩ) as 0 Ω; bosch-bme680 does not.
    let (mut chip, clock) = fixed_chip(
        Calibration::PIMORONI,
        environment(22.0, 1000.0, 40.0, 2_100.0),
    );
    let reading = open(&mut chip, &SensorConfig::default(), &clock)
        .read()
        .unwrap();
    let ohms = reading.gas_resistance.unwrap();
    assert!((ohms - 2_100.0).abs() / 2_100.0 < 0.002, "{ohms}");
}

#[test]
fn an_unexpected_variant_id_panics_in_the_driver_and_is_reported() {
    let (mut chip, clock) = fixed_chip(Calibration::PIMORONI, Environment::CLEAN_INDOOR);
    chip.inject(Fault::WrongVariant { id: 0x07, reads: 1 });
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        Bme680::new(
            chip.bus(),
            DeviceAddress::Primary,
            ClockDelay::new(clock.clone()),
            &Configuration::default(),
            25,
        )
        .map(|_| ())
    }));
    assert!(
        outcome.is_err(),
        "bosch-bme680 1.0.4 panics on a variant id other than 0 or 1"
    );

    chip.inject(Fault::WrongVariant { id: 0x07, reads: 1 });
    let error = Bme680Sensor::open(&mut chip, &SensorConfig::default(), clock.clone()).unwrap_err();
    assert!(matches!(error, SensorError::DriverPanic(_)), "{error}");
    assert!(Bme680Sensor::open(&mut chip, &SensorConfig::default(), clock).is_ok());
}
