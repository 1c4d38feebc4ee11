//! The air-quality score: an open, documented number from gas resistance and humidity.
//!
//! # What the number means
//!
//! `air_quality` = 25 × humidity comfort + 75 × gas quality, from 0 (worst) to 100 (best),
//! always finite.
//!
//! - **Humidity comfort** (0–1) is Pimoroni's: 1 at 40 %RH, falling linearly to 0 at 0 %
//!   and at 100 %RH.
//! - **Gas quality** (0–1) compares the gas resistance, *compensated for humidity*, with
//!   this sensor's own clean-air baseline: `g = clamp((log2(R_comp / baseline) + 3) / 3.5)`.
//!   Air at the baseline scores g = 6/7 (64.3 of 75 points); every halving of the resistance
//!   costs 21.4 points; resistance down to 1/8 of the baseline (heavy cooking fumes, solvent)
//!   scores 0; air cleaner than the baseline scores up to the full 75 points at 1.41 × the
//!   baseline.
//!
//! So at 40 %RH ordinary clean air for this room reads ≈ 89, a fresh-air peak reads up to
//! 100, and a VOC event that divides the resistance by 4 reads ≈ 46. The number is relative
//! to the sensor's own history (like BSEC's IAQ, unlike a ppm concentration): it says how
//! much more reducing gas there is than in this place's usual clean air.
//!
//! # What is improved over Pimoroni's method (reference §9.1)
//!
//! - **Humidity cross-effect**: water vapour lowers the metal-oxide resistance too (≈ −3 %
//!   per g/m³ of absolute humidity, thstielow's fit). The resistance is scaled to a
//!   reference of 8 g/m³ before it is compared, so a humid shower does not read as VOCs:
//!   `R_comp = R × exp(0.03 × (AH − 8 g/m³))`.
//! - **Saturation above the baseline**: Pimoroni's gas part is capped at the baseline, so
//!   an opened window is invisible. The log scale keeps headroom up to 1.41 × baseline.
//! - **Frozen baseline**: after burn-in the baseline keeps adapting, asymmetrically —
//!   upwards with a 1 h time constant (cleaner air than we knew means the baseline was low,
//!   e.g. a new sensor still settling), downwards with a 4 day one (sensor ageing, like
//!   BSEC's history), so a cooking hour does not become the new normal. It is persisted and
//!   reused after a restart (see `baseline.rs`).
//! - **Log scale**: metal-oxide resistance follows a power law of the gas concentration,
//!   so equal ratios (not equal differences) mean equal changes in concentration.
//!
//! # Burn-in and unusable readings
//!
//! The first `burn_in_secs` of heat-stable readings set the baseline (the median of the
//! compensated resistance over the last quarter of the burn-in, robust to the warm-up
//! rise and to spikes). During burn-in `burn_in = true` and the score is provisional
//! (against the median of the latest readings). A reading whose gas is not valid or whose
//! heater was not stable never touches the baseline; its score keeps the last usable gas
//! quality (at-baseline before the first) with the current humidity, and the sample's flags
//! say so. Only readings of the burn-in's last quarter are kept, at most
//! [`MAX_BURN_IN_READINGS`].
//!
//! # Time
//!
//! Burn-in, adaptation steps and the save interval run on the monotonic clock ([`Moment`]),
//! so an NTP step neither ends burn-in early nor stretches it. The wall clock only dates the
//! saved baseline, and a saved baseline is reused only if its age can be told: within the
//! boot it was saved in, by the boot clock ([`Moment::boot`]); otherwise by the wall clock,
//! saved on a synchronised clock, read on a synchronised clock, not "in the future". At a boot whose
//! clock is not synchronised yet, the decision waits ([`BaselineOrigin::Pending`]) while
//! burn-in runs, and is taken at the first synchronised reading.
//!
//! Without humidity (its oversampling `skip`) the resistance is used uncompensated and the
//! score is the gas part alone, scaled to 0..=100.

use std::collections::VecDeque;
use std::time::Duration;

use crate::sensor::bme680::baseline::{PersistedBaseline, SavedBoot};
use crate::sensor::bme680::config::AirQualityConfig;
use crate::sensor::bme680::datasheet::absolute_humidity_g_m3;
use crate::sensor::bme680::driver::Reading;
use crate::sensor::clock::BootMark;

/// Weight of humidity comfort in the score (Pimoroni's 25 : 75).
pub const HUMIDITY_WEIGHT: f32 = 25.0;
/// Weight of gas quality in the score.
pub const GAS_WEIGHT: f32 = 75.0;
/// The humidity comfort peak, %RH.
pub const OPTIMAL_HUMIDITY: f32 = 40.0;
/// Absolute humidity the gas resistance is normalised to, g/m³ (about 45 %RH at 21 °C).
pub const REFERENCE_ABSOLUTE_HUMIDITY: f32 = 8.0;
/// Relative resistance change per g/m³ of absolute humidity.
pub const HUMIDITY_SLOPE: f32 = 0.03;
/// log2 of the resistance ratio at which gas quality reaches 0.
const GAS_FLOOR_OCTAVES: f32 = 3.0;
/// log2 of the resistance ratio at which gas quality reaches 1.
const GAS_CEILING_OCTAVES: f32 = 0.5;
/// Gas quality of air exactly at the baseline.
pub const GAS_QUALITY_AT_BASELINE: f32 =
    GAS_FLOOR_OCTAVES / (GAS_FLOOR_OCTAVES + GAS_CEILING_OCTAVES);
/// Readings kept for the provisional score during burn-in.
const PROVISIONAL_WINDOW: usize = 20;
/// A gap longer than this between two readings adapts the baseline as if it were this long.
const MAX_ADAPTATION_STEP: Duration = Duration::from_secs(600);

/// Gas resistance scaled to the reference absolute humidity.
pub fn humidity_compensated_resistance(ohms: f32, temperature_c: f32, humidity_pct: f32) -> f32 {
    let excess = absolute_humidity_g_m3(temperature_c, humidity_pct) - REFERENCE_ABSOLUTE_HUMIDITY;
    ohms * (HUMIDITY_SLOPE * excess).exp()
}

/// Humidity comfort, 0..=1.
pub fn humidity_comfort(humidity_pct: f32) -> f32 {
    let humidity = humidity_pct.clamp(0.0, 100.0);
    let comfort = if humidity <= OPTIMAL_HUMIDITY {
        humidity / OPTIMAL_HUMIDITY
    } else {
        (100.0 - humidity) / (100.0 - OPTIMAL_HUMIDITY)
    };
    finite_or(comfort, 0.0)
}

/// Gas quality, 0..=1, of a compensated resistance against a baseline.
pub fn gas_quality(compensated_ohms: f32, baseline_ohms: f32) -> f32 {
    let octaves = (compensated_ohms / baseline_ohms).log2();
    let quality =
        ((octaves + GAS_FLOOR_OCTAVES) / (GAS_FLOOR_OCTAVES + GAS_CEILING_OCTAVES)).clamp(0.0, 1.0);
    finite_or(quality, 0.0)
}

/// The score from its two parts.
pub fn score(humidity_comfort: f32, gas_quality: f32) -> f32 {
    finite_or(
        HUMIDITY_WEIGHT * humidity_comfort + GAS_WEIGHT * gas_quality,
        0.0,
    )
    .clamp(0.0, 100.0)
}

fn finite_or(value: f32, fallback: f32) -> f32 {
    if value.is_finite() { value } else { fallback }
}

/// The air-quality verdict for one reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment {
    pub air_quality: f32,
    pub burn_in: bool,
}

/// A point in time as the estimator needs it: monotonic time for every duration (burn-in,
/// adaptation steps, the save interval), wall time only to stamp and judge what is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    /// Time since the sampler's origin, from the monotonic clock.
    pub monotonic: Duration,
    /// Unix ms, as stamped on the sample.
    pub unix_ms: i64,
    /// Whether `unix_ms` is a synchronised clock's reading.
    pub clock_synced: bool,
    /// The boot clock, where the system has one.
    pub boot: Option<BootMark>,
}

/// Why a saved baseline's age cannot be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distrust {
    /// It was saved while the clock was not synchronised (or by an agent that did not know).
    SavedUnsynchronised,
    /// It claims to be saved after now: one of the two clocks was wrong.
    SavedInTheFuture,
    /// The clock was still unsynchronised when burn-in finished, so the age was never known.
    NeverSynchronised,
}

/// Where the estimator's baseline came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BaselineOrigin {
    /// A persisted baseline, fresh enough and for the same heater profile.
    Restored { age: Duration },
    /// A persisted baseline older than `baseline_max_age`.
    Stale { age: Duration },
    /// A persisted baseline whose age cannot be trusted: treated as stale.
    Untrusted(Distrust),
    /// A persisted baseline saved on a synchronised clock, while ours is not yet: burn-in
    /// runs, and the saved baseline is taken instead if the clock synchronises before
    /// burn-in ends and shows it fresh.
    Pending,
    /// A persisted baseline for another heater temperature or duration.
    ProfileChanged,
    /// Nothing usable on disk.
    None,
}

/// The heater profile a baseline belongs to: change it and resistances change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaterProfile {
    pub temperature_c: u16,
    pub duration_ms: u16,
}

/// Burn-in readings kept at most. Only the last quarter of the burn-in is used, and only
/// readings from there on are kept at all; this caps even a long burn-in at a fast period
/// (4096 × 24 bytes = 96 KiB).
pub const MAX_BURN_IN_READINGS: usize = 4096;

#[derive(Debug, Clone)]
struct BurnIn {
    started: Duration,
    values: VecDeque<(Duration, f32)>,
}

/// Turns readings into scores and keeps the gas baseline.
#[derive(Debug, Clone)]
pub struct AirQualityEstimator {
    config: AirQualityConfig,
    profile: HeaterProfile,
    baseline: Option<f32>,
    burn_in: Option<BurnIn>,
    recent: VecDeque<f32>,
    last_gas_quality: f32,
    last_update: Option<Duration>,
    burn_in_completed_at_ms: Option<i64>,
    origin: BaselineOrigin,
    /// A saved baseline waiting for the clock to synchronise (see [`BaselineOrigin::Pending`]).
    pending: Option<PersistedBaseline>,
    last_saved: Option<Duration>,
    save_due: bool,
}

impl AirQualityEstimator {
    /// Starts from `restored` if it is fresh, for `profile` and its age can be trusted;
    /// else with a burn-in.
    pub fn new(
        config: AirQualityConfig,
        profile: HeaterProfile,
        restored: Option<PersistedBaseline>,
        now: Moment,
    ) -> Self {
        let mut estimator = Self {
            config,
            profile,
            baseline: None,
            burn_in: None,
            recent: VecDeque::with_capacity(PROVISIONAL_WINDOW),
            last_gas_quality: GAS_QUALITY_AT_BASELINE,
            last_update: None,
            burn_in_completed_at_ms: None,
            origin: BaselineOrigin::None,
            pending: None,
            last_saved: None,
            save_due: false,
        };
        if let Some(persisted) = restored {
            let usable = persisted.gas_baseline_ohm.is_finite() && persisted.gas_baseline_ohm > 0.0;
            let same_boot_age = same_boot_age(persisted.boot.as_ref(), now.boot);
            if persisted.heater_temperature_c != profile.temperature_c
                || persisted.heater_duration_ms != profile.duration_ms
            {
                estimator.origin = BaselineOrigin::ProfileChanged;
            } else if !usable {
                estimator.origin = BaselineOrigin::None;
            } else if let Some(age) = same_boot_age {
                // Saved in this very boot: the boot clock tells the age, whatever the wall
                // clock did or whether it was ever synchronised.
                match age {
                    Some(age) => estimator.judge_age(persisted, age, now),
                    None => {
                        estimator.origin = BaselineOrigin::Untrusted(Distrust::SavedInTheFuture)
                    }
                }
            } else if !persisted.clock_synced {
                estimator.origin = BaselineOrigin::Untrusted(Distrust::SavedUnsynchronised);
            } else if !now.clock_synced {
                estimator.origin = BaselineOrigin::Pending;
                estimator.pending = Some(persisted);
            } else {
                estimator.judge_restored(persisted, now);
            }
        }
        estimator
    }

    /// Decides on a saved baseline with a synchronised clock.
    fn judge_restored(&mut self, persisted: PersistedBaseline, now: Moment) {
        let Ok(age_ms) = u64::try_from(now.unix_ms.saturating_sub(persisted.updated_at_ms)) else {
            self.origin = BaselineOrigin::Untrusted(Distrust::SavedInTheFuture);
            return;
        };
        self.judge_age(persisted, Duration::from_millis(age_ms), now);
    }

    /// Decides on a saved baseline of a known age.
    fn judge_age(&mut self, persisted: PersistedBaseline, age: Duration, now: Moment) {
        if age > self.config.baseline_max_age() {
            self.origin = BaselineOrigin::Stale { age };
            return;
        }
        self.origin = BaselineOrigin::Restored { age };
        self.baseline = Some(persisted.gas_baseline_ohm as f32);
        self.burn_in = None;
        self.burn_in_completed_at_ms = Some(persisted.burn_in_completed_at_ms);
        self.last_update = Some(now.monotonic);
        self.last_saved = Some(now.monotonic);
    }

    pub fn origin(&self) -> BaselineOrigin {
        self.origin
    }

    /// The humidity-compensated clean-air resistance, once burn-in is over.
    pub fn baseline_ohm(&self) -> Option<f32> {
        self.baseline
    }

    pub fn in_burn_in(&self) -> bool {
        self.baseline.is_none()
    }

    /// Readings held for the burn-in median now; at most [`MAX_BURN_IN_READINGS`].
    pub fn burn_in_readings(&self) -> usize {
        self.burn_in
            .as_ref()
            .map_or(0, |burn_in| burn_in.values.len())
    }

    /// Scores one reading taken at `now` and learns from it if it is usable.
    ///
    /// Without humidity (channel skipped) the resistance is not compensated and the score is
    /// the gas part alone, on the whole 0..=100 scale.
    pub fn assess(&mut self, reading: &Reading, now: Moment) -> Assessment {
        if now.clock_synced
            && let Some(persisted) = self.pending.take()
            && self.baseline.is_none()
        {
            self.judge_restored(persisted, now);
        }
        let humidity_known = reading.humidity.is_finite();
        let usable_ohms = reading
            .gas_resistance
            .filter(|_| reading.gas_valid && reading.heater_stable)
            .map(|ohms| {
                if humidity_known {
                    humidity_compensated_resistance(ohms, reading.temperature, reading.humidity)
                } else {
                    ohms
                }
            })
            .filter(|ohms| ohms.is_finite() && *ohms > 0.0);
        if let Some(compensated) = usable_ohms {
            self.learn(compensated, now);
            let reference = self.baseline.or_else(|| self.provisional_baseline());
            if let Some(reference) = reference {
                self.last_gas_quality = gas_quality(compensated, reference);
            }
        }
        let air_quality = if humidity_known {
            score(humidity_comfort(reading.humidity), self.last_gas_quality)
        } else {
            finite_or(100.0 * self.last_gas_quality, 0.0).clamp(0.0, 100.0)
        };
        Assessment {
            air_quality,
            burn_in: self.baseline.is_none(),
        }
    }

    fn learn(&mut self, compensated: f32, now: Moment) {
        if self.recent.len() == PROVISIONAL_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(compensated);
        match self.baseline {
            Some(baseline) => {
                let step = self
                    .last_update
                    .map_or(Duration::ZERO, |last| now.monotonic.saturating_sub(last))
                    .min(MAX_ADAPTATION_STEP);
                let time_constant = if compensated > baseline {
                    self.config.baseline_rise_secs
                } else {
                    self.config.baseline_fall_secs
                };
                let alpha = 1.0 - (-step.as_secs_f32() / time_constant.max(1) as f32).exp();
                let adapted = baseline + alpha * (compensated - baseline);
                if adapted.is_finite() && adapted > 0.0 {
                    self.baseline = Some(adapted);
                }
                if self
                    .last_saved
                    .is_none_or(|saved| now.monotonic.saturating_sub(saved) >= self.save_interval())
                {
                    self.save_due = true;
                }
            }
            None => self.burn(compensated, now),
        }
        self.last_update = Some(now.monotonic);
    }

    fn burn(&mut self, compensated: f32, now: Moment) {
        let length = self.config.burn_in();
        let burn_in = self.burn_in.get_or_insert_with(|| BurnIn {
            started: now.monotonic,
            values: VecDeque::new(),
        });
        burn_in.values.push_back((now.monotonic, compensated));
        // Readings before the last quarter can never be in the median: drop them as they
        // age out, keeping at least three for the fallback below.
        let tail_start = burn_in
            .started
            .saturating_add(length.saturating_sub(length / 4));
        while burn_in.values.len() > MAX_BURN_IN_READINGS
            || (burn_in.values.len() > 3
                && burn_in
                    .values
                    .front()
                    .is_some_and(|(at, _)| *at < tail_start))
        {
            burn_in.values.pop_front();
        }
        let elapsed = now.monotonic.saturating_sub(burn_in.started);
        if elapsed < length || burn_in.values.len() < 3 {
            return;
        }
        let tail_from = now.monotonic.saturating_sub(elapsed / 4);
        let mut tail: Vec<f32> = burn_in
            .values
            .iter()
            .filter(|(at, _)| *at >= tail_from)
            .map(|(_, ohms)| *ohms)
            .collect();
        if tail.len() < 3 {
            tail = burn_in
                .values
                .iter()
                .rev()
                .take(3)
                .map(|(_, o)| *o)
                .collect();
        }
        if let Some(median) = median(&mut tail) {
            self.baseline = Some(median);
            self.burn_in = None;
            self.burn_in_completed_at_ms = Some(now.unix_ms);
            self.save_due = true;
            if self.pending.take().is_some() {
                self.origin = BaselineOrigin::Untrusted(Distrust::NeverSynchronised);
            }
        }
    }

    fn save_interval(&self) -> Duration {
        Duration::from_secs(self.config.baseline_save_secs)
    }

    fn provisional_baseline(&self) -> Option<f32> {
        let mut recent: Vec<f32> = self.recent.iter().copied().collect();
        median(&mut recent)
    }

    /// The baseline to persist, if burn-in has finished.
    pub fn snapshot(&self, now: Moment) -> Option<PersistedBaseline> {
        let baseline = self.baseline?;
        Some(PersistedBaseline {
            version: PersistedBaseline::VERSION,
            gas_baseline_ohm: f64::from(baseline),
            heater_temperature_c: self.profile.temperature_c,
            heater_duration_ms: self.profile.duration_ms,
            burn_in_completed_at_ms: self.burn_in_completed_at_ms.unwrap_or(now.unix_ms),
            updated_at_ms: now.unix_ms,
            clock_synced: now.clock_synced,
            boot: now.boot.map(|mark| SavedBoot {
                boot_id: format!("{:032x}", mark.boot_id),
                since_boot_ms: u64::try_from(mark.since_boot.as_millis()).unwrap_or(u64::MAX),
            }),
        })
    }

    /// The baseline to persist now, if burn-in just finished or the save interval passed.
    pub fn take_due_snapshot(&mut self, now: Moment) -> Option<PersistedBaseline> {
        if !self.save_due {
            return None;
        }
        self.save_due = false;
        self.last_saved = Some(now.monotonic);
        self.snapshot(now)
    }
}

/// `None` unless the baseline was saved in the boot of `now`; then `Some(age)`, with
/// `Some(None)` for a save the boot clock places after now (a corrupt or foreign file).
fn same_boot_age(saved: Option<&SavedBoot>, now: Option<BootMark>) -> Option<Option<Duration>> {
    let (saved, now) = (saved?, now?);
    let saved_id = u128::from_str_radix(&saved.boot_id, 16).ok()?;
    if saved_id != now.boot_id {
        return None;
    }
    let saved_at = Duration::from_millis(saved.since_boot_ms);
    Some(now.since_boot.checked_sub(saved_at))
}

fn median(values: &mut [f32]) -> Option<f32> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f32::total_cmp);
    Some(values[values.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> Moment {
        Moment {
            monotonic: Duration::from_secs(seconds),
            unix_ms: 1_767_225_600_000 + seconds as i64 * 1000,
            clock_synced: true,
            boot: None,
        }
    }

    fn reading(ohms: f32, humidity: f32) -> Reading {
        Reading {
            temperature: 21.0,
            humidity,
            pressure: 1013.0,
            gas_resistance: Some(ohms),
            gas_valid: true,
            heater_stable: true,
        }
    }

    #[test]
    fn worked_values() {
        assert!((score(1.0, 1.0) - 100.0).abs() < 1e-4);
        assert!((score(humidity_comfort(40.0), GAS_QUALITY_AT_BASELINE) - 89.2857).abs() < 1e-3);
        assert!((humidity_comfort(70.0) - 0.5).abs() < 1e-6);
        assert!((gas_quality(0.5, 1.0) - (GAS_QUALITY_AT_BASELINE - 1.0 / 3.5)).abs() < 1e-6);
        assert_eq!(gas_quality(0.1, 1.0), 0.0);
        assert_eq!(gas_quality(2.0, 1.0), 1.0);
        assert_eq!(gas_quality(f32::NAN, 1.0), 0.0);
        assert_eq!(humidity_comfort(f32::NAN), 0.0);
    }

    #[test]
    fn humidity_compensation_is_neutral_at_the_reference() {
        // 8 g/m³ is about 43.8 %RH at 21 °C.
        let ah = absolute_humidity_g_m3(21.0, 43.8);
        assert!((ah - 8.0).abs() < 0.05, "{ah}");
        let ohms = humidity_compensated_resistance(100_000.0, 21.0, 43.8);
        assert!((ohms / 100_000.0 - 1.0).abs() < 0.002);
        assert!(humidity_compensated_resistance(100_000.0, 21.0, 80.0) > 110_000.0);
    }

    #[test]
    fn burn_in_then_baseline_from_its_last_quarter() {
        let config = AirQualityConfig {
            burn_in_secs: 100,
            ..AirQualityConfig::default()
        };
        let profile = HeaterProfile {
            temperature_c: 320,
            duration_ms: 150,
        };
        let mut estimator = AirQualityEstimator::new(config, profile, None, at(0));
        let compensation = humidity_compensated_resistance(1.0, 21.0, 43.8);
        let mut last = None;
        for second in 0..=100 {
            // Warm-up: the resistance climbs to 200 kΩ, then stays.
            let ohms = (second as f32 * 4000.0).clamp(10_000.0, 200_000.0);
            last = Some(estimator.assess(&reading(ohms, 43.8), at(second)));
            assert!(
                estimator.burn_in_readings() <= 26,
                "only the last quarter is kept"
            );
        }
        assert!(!last.unwrap().burn_in, "burn-in over after 100 s");
        let baseline = estimator.baseline_ohm().unwrap() / compensation;
        assert!((baseline - 200_000.0).abs() < 1.0, "{baseline}");
        assert!(estimator.take_due_snapshot(at(100)).is_some());
        assert!(estimator.take_due_snapshot(at(100)).is_none());
    }

    #[test]
    fn unusable_gas_keeps_the_last_gas_quality_and_the_baseline() {
        let config = AirQualityConfig {
            burn_in_secs: 0,
            ..AirQualityConfig::default()
        };
        let profile = HeaterProfile {
            temperature_c: 320,
            duration_ms: 150,
        };
        let mut estimator = AirQualityEstimator::new(config, profile, None, at(0));
        for i in 0..3 {
            estimator.assess(&reading(100_000.0, 40.0), at(i));
        }
        let baseline = estimator.baseline_ohm().unwrap();
        let good = estimator.assess(&reading(100_000.0, 40.0), at(4));
        let mut broken = reading(1.0, 40.0);
        broken.heater_stable = false;
        let held = estimator.assess(&broken, at(5));
        assert_eq!(held.air_quality, good.air_quality);
        assert_eq!(estimator.baseline_ohm().unwrap(), baseline);
    }

    const PROFILE: HeaterProfile = HeaterProfile {
        temperature_c: 320,
        duration_ms: 150,
    };

    fn saved(updated_at_ms: i64, clock_synced: bool) -> PersistedBaseline {
        PersistedBaseline {
            version: PersistedBaseline::VERSION,
            gas_baseline_ohm: 150_000.0,
            heater_temperature_c: 320,
            heater_duration_ms: 150,
            burn_in_completed_at_ms: 0,
            updated_at_ms,
            clock_synced,
            boot: None,
        }
    }

    #[test]
    fn a_baseline_whose_age_cannot_be_told_is_not_reused() {
        let config = AirQualityConfig::default();
        let now = at(0);
        let fresh = AirQualityEstimator::new(
            config.clone(),
            PROFILE,
            Some(saved(now.unix_ms - 60_000, true)),
            now,
        );
        assert_eq!(
            fresh.origin(),
            BaselineOrigin::Restored {
                age: Duration::from_secs(60)
            }
        );
        let future = AirQualityEstimator::new(
            config.clone(),
            PROFILE,
            Some(saved(now.unix_ms + 60_000, true)),
            now,
        );
        assert_eq!(
            future.origin(),
            BaselineOrigin::Untrusted(Distrust::SavedInTheFuture)
        );
        assert!(future.in_burn_in());
        let unsynced = AirQualityEstimator::new(
            config,
            PROFILE,
            Some(saved(now.unix_ms - 60_000, false)),
            now,
        );
        assert_eq!(
            unsynced.origin(),
            BaselineOrigin::Untrusted(Distrust::SavedUnsynchronised)
        );
    }

    #[test]
    fn a_saved_baseline_waits_for_the_clock_then_is_judged() {
        let config = AirQualityConfig::default();
        let booted = Moment {
            clock_synced: false,
            ..at(0)
        };
        // A Pi at boot: the clock shows the last shutdown's time, unsynchronised.
        let mut estimator = AirQualityEstimator::new(
            config.clone(),
            PROFILE,
            Some(saved(booted.unix_ms - 60_000, true)),
            booted,
        );
        assert_eq!(estimator.origin(), BaselineOrigin::Pending);
        estimator.assess(
            &reading(100_000.0, 40.0),
            Moment {
                clock_synced: false,
                ..at(3)
            },
        );
        assert!(estimator.in_burn_in());
        // NTP steps the clock forward by an hour: the baseline is one hour old, and fresh.
        let synced = Moment {
            unix_ms: at(6).unix_ms + 3_600_000,
            ..at(6)
        };
        let assessment = estimator.assess(&reading(100_000.0, 40.0), synced);
        assert!(!assessment.burn_in);
        assert!(matches!(
            estimator.origin(),
            BaselineOrigin::Restored { .. }
        ));

        // The same, but the clock never synchronises before burn-in ends.
        let mut estimator = AirQualityEstimator::new(
            AirQualityConfig {
                burn_in_secs: 10,
                ..config
            },
            PROFILE,
            Some(saved(booted.unix_ms - 60_000, true)),
            booted,
        );
        for second in 0..=12 {
            estimator.assess(
                &reading(100_000.0, 40.0),
                Moment {
                    clock_synced: false,
                    ..at(second)
                },
            );
        }
        assert!(!estimator.in_burn_in());
        assert_eq!(
            estimator.origin(),
            BaselineOrigin::Untrusted(Distrust::NeverSynchronised)
        );
    }

    #[test]
    fn burn_in_runs_on_monotonic_time_whatever_the_wall_clock_does() {
        let config = AirQualityConfig {
            burn_in_secs: 100,
            ..AirQualityConfig::default()
        };
        let mut estimator = AirQualityEstimator::new(config, PROFILE, None, at(0));
        for second in 0..100 {
            // The wall clock jumps a day ahead, then a day back, every other reading.
            let wall_jump = if second % 2 == 0 {
                86_400_000
            } else {
                -86_400_000
            };
            let moment = Moment {
                unix_ms: at(second).unix_ms + wall_jump,
                ..at(second)
            };
            let assessment = estimator.assess(&reading(100_000.0, 40.0), moment);
            assert!(assessment.burn_in, "burn-in still on at {second} s");
        }
        assert!(!estimator.assess(&reading(100_000.0, 40.0), at(100)).burn_in);
    }

    #[test]
    fn the_documented_memory_bound_holds() {
        assert_eq!(std::mem::size_of::<(Duration, f32)>(), 24);
    }

    #[test]
    fn burn_in_readings_are_bounded_at_any_period() {
        let config = AirQualityConfig {
            burn_in_secs: 100,
            ..AirQualityConfig::default()
        };
        let mut estimator = AirQualityEstimator::new(config, PROFILE, None, at(0));
        estimator.assess(&reading(100_000.0, 40.0), at(0));
        // 20 000 readings 1 ms apart inside the burn-in's last quarter (75 s..95 s).
        for i in 0..20_000u64 {
            let moment = Moment {
                monotonic: Duration::from_secs(75) + Duration::from_millis(i),
                ..at(75)
            };
            estimator.assess(&reading(100_000.0, 40.0), moment);
        }
        assert!(estimator.in_burn_in());
        assert_eq!(estimator.burn_in_readings(), MAX_BURN_IN_READINGS);
    }

    #[test]
    fn without_humidity_the_score_is_the_gas_part_alone() {
        let config = AirQualityConfig {
            burn_in_secs: 0,
            ..AirQualityConfig::default()
        };
        let mut estimator = AirQualityEstimator::new(config, PROFILE, None, at(0));
        let mut last = None;
        for i in 0..4 {
            last = Some(estimator.assess(&reading(100_000.0, f32::NAN), at(i)));
        }
        let last = last.unwrap();
        assert!(!last.burn_in, "gas is usable without humidity");
        assert!((last.air_quality - 100.0 * GAS_QUALITY_AT_BASELINE).abs() < 1e-3);
    }

    #[test]
    fn within_one_boot_the_boot_clock_tells_the_age() {
        let config = AirQualityConfig::default();
        let boot = |since_boot_s: u64| {
            Some(BootMark {
                boot_id: 42,
                since_boot: Duration::from_secs(since_boot_s),
            })
        };
        // Saved an hour into the boot, on a clock never synchronised; read two hours in,
        // still unsynchronised and with a wall clock that went back a day meanwhile.
        let mut file = saved(at(0).unix_ms, false);
        file.boot = Some(SavedBoot {
            boot_id: format!("{:032x}", 42u128),
            since_boot_ms: 3_600_000,
        });
        let now = Moment {
            unix_ms: at(0).unix_ms - 86_400_000,
            clock_synced: false,
            boot: boot(7200),
            ..at(0)
        };
        let restored = AirQualityEstimator::new(config.clone(), PROFILE, Some(file.clone()), now);
        assert_eq!(
            restored.origin(),
            BaselineOrigin::Restored {
                age: Duration::from_secs(3600)
            }
        );
        // Another boot: back to the wall-clock rules, and this file was saved unsynchronised.
        let other_boot = Moment {
            boot: Some(BootMark {
                boot_id: 43,
                since_boot: Duration::from_secs(7200),
            }),
            ..now
        };
        let untrusted =
            AirQualityEstimator::new(config.clone(), PROFILE, Some(file.clone()), other_boot);
        assert_eq!(
            untrusted.origin(),
            BaselineOrigin::Untrusted(Distrust::SavedUnsynchronised)
        );
        // Same boot, saved "after now" on the boot clock: nonsense, not trusted.
        let earlier = Moment {
            boot: boot(60),
            ..now
        };
        let nonsense = AirQualityEstimator::new(config, PROFILE, Some(file), earlier);
        assert_eq!(
            nonsense.origin(),
            BaselineOrigin::Untrusted(Distrust::SavedInTheFuture)
        );
        // What a snapshot keeps.
        let mut estimator =
            AirQualityEstimator::new(AirQualityConfig::default(), PROFILE, None, now);
        estimator.baseline = Some(1.0);
        let snapshot = estimator.snapshot(now).unwrap();
        assert_eq!(
            snapshot.boot,
            Some(SavedBoot {
                boot_id: format!("{:032x}", 42u128),
                since_boot_ms: 7_200_000
            })
        );
    }
}
