//! Labelled series for scoring detection, generated (so no data licence applies): hourly
//! readings with a daily season, trend, drift and level shifts, and injected anomalies
//! labelled as the Numenta Anomaly Benchmark labels its own: each anomaly gets a window
//! centred on it, the windows together 10% of the series.
//!
//! Written out as a CSV and a labels JSON, they are what `edge-agent replay --labels`
//! reads (see [`LabelledSeries::write`]).

use std::path::{Path, PathBuf};

/// 2026-01-01T00:00:00Z.
const START_MS: i64 = 1_767_225_600_000;
const HOUR_MS: i64 = 3_600_000;
pub const PERIOD: usize = 24;

pub struct LabelledSeries {
    pub name: &'static str,
    pub timestamps: Vec<i64>,
    pub values: Vec<f32>,
    /// The first sample of each injected anomaly.
    pub anomalies: Vec<usize>,
    /// Labelled windows, as sample positions, both ends inclusive.
    pub windows: Vec<(usize, usize)>,
}

struct Noise(u64);

impl Noise {
    /// Roughly normal, standard deviation ~1: the sum of three uniforms, centred.
    fn next(&mut self) -> f32 {
        let mut sum = 0.0;
        for _ in 0..3 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            sum += (self.0 % 1_000_000) as f32 / 1_000_000.0;
        }
        (sum - 1.5) * 2.0
    }
}

/// What an injected anomaly does.
#[derive(Clone, Copy)]
enum Event {
    /// One sample off by this much.
    Spike(f32),
    /// This many samples off by this much.
    Dip(usize, f32),
    /// The level changes by this much from here on.
    Shift(f32),
    /// The daily season stops for this many samples.
    Flat(usize),
}

fn build(
    name: &'static str,
    n: usize,
    seed: u64,
    base: impl Fn(usize) -> f32,
    season: f32,
    noise: f32,
    events: &[(usize, Event)],
) -> LabelledSeries {
    let mut rng = Noise(seed);
    let mut values: Vec<f32> = (0..n)
        .map(|i| {
            let phase = (i % PERIOD) as f32 / PERIOD as f32 * std::f32::consts::TAU;
            base(i) + season * phase.sin() + noise * rng.next()
        })
        .collect();
    for &(at, event) in events {
        match event {
            Event::Spike(by) => values[at] += by,
            Event::Dip(len, by) => values[at..at + len].iter_mut().for_each(|v| *v += by),
            Event::Shift(by) => values[at..].iter_mut().for_each(|v| *v += by),
            Event::Flat(len) => {
                for (i, value) in values.iter_mut().enumerate().skip(at).take(len) {
                    let phase = (i % PERIOD) as f32 / PERIOD as f32 * std::f32::consts::TAU;
                    *value -= season * phase.sin();
                }
            }
        }
    }
    // NAB: windows 10% of the series in all, one per anomaly, centred on it.
    let half = n / 10 / events.len() / 2;
    let windows = events
        .iter()
        .map(|&(at, _)| (at.saturating_sub(half), (at + half).min(n - 1)))
        .collect();
    LabelledSeries {
        name,
        timestamps: (0..n as i64).map(|i| START_MS + i * HOUR_MS).collect(),
        values,
        anomalies: events.iter().map(|&(at, _)| at).collect(),
        windows,
    }
}

/// Four series, fifteen labelled anomalies: a trend, level shifts, a slow drift over
/// half a year, and all of them together.
pub fn labelled_series() -> Vec<LabelledSeries> {
    vec![
        build(
            "trend",
            2400,
            0x7e4d_0001,
            |i| 40.0 + 0.006 * i as f32,
            8.0,
            1.0,
            &[
                (410, Event::Spike(45.0)),
                (980, Event::Dip(3, -15.0)),
                (1530, Event::Flat(10)),
                (2150, Event::Spike(-40.0)),
            ],
        ),
        build(
            "level_shifts",
            2400,
            0x7e4d_0002,
            |_| 50.0,
            6.0,
            1.0,
            &[
                (600, Event::Shift(25.0)),
                (1010, Event::Spike(40.0)),
                (1300, Event::Shift(-18.0)),
                (1905, Event::Shift(10.0)),
            ],
        ),
        build(
            "drift",
            4380,
            0x7e4d_0003,
            |i| 50.0 + 15.0 * (i as f32 / 4380.0 * std::f32::consts::PI).sin(),
            5.0,
            1.0,
            &[
                (700, Event::Spike(40.0)),
                (2100, Event::Dip(2, -35.0)),
                (3650, Event::Spike(15.0)),
            ],
        ),
        build(
            "mixed",
            3000,
            0x7e4d_0004,
            |i| 30.0 + 0.005 * i as f32,
            7.0,
            1.5,
            &[
                (520, Event::Spike(45.0)),
                (1200, Event::Shift(12.0)),
                (1830, Event::Dip(4, -35.0)),
                (2500, Event::Shift(-15.0)),
            ],
        ),
    ]
}

impl LabelledSeries {
    /// Writes `<dir>/<name>.csv` (`timestamp,value`) and `<dir>/<name>.labels.json` (the
    /// windows' `[start, end]` times); returns both paths.
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let format = edge_agent::support::timestamp::format;
        let csv = dir.join(format!("{}.csv", self.name));
        let mut text = String::from("timestamp,value\n");
        for (t, v) in self.timestamps.iter().zip(&self.values) {
            text.push_str(&format!("{},{v}\n", format(*t)));
        }
        std::fs::write(&csv, text).expect("the CSV is written");
        let labels = dir.join(format!("{}.labels.json", self.name));
        let windows: Vec<serde_json::Value> = self
            .windows
            .iter()
            .map(|&(s, e)| {
                serde_json::json!([format(self.timestamps[s]), format(self.timestamps[e])])
            })
            .collect();
        std::fs::write(&labels, serde_json::Value::Array(windows).to_string())
            .expect("the labels are written");
        (csv, labels)
    }
}
