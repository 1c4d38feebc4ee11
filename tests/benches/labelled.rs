//! Detection against labels: the whole series through the `anomaly_detection` crate (one
//! window, as the crate is used) against the agent's live sliding windows, on generated
//! labelled series with trend, drift and level shifts (`edge_tests::labelled`). Scored as
//! `edge-agent replay --labels` scores (`edge_agent::replay::labels`): windows detected,
//! precision, flags per 1,000 samples, delays. Prints tables; asserts nothing.
//!
//! The live windows run the function natively, window by window as the agent's windower
//! plans them; its verdicts equal the wasm build's in wasmi (`tests/native_vs_wasm.rs`).
//!
//! `cargo bench -p edge-tests --bench labelled` (`-- --grid` for a wider grid)

use anomaly_detection::AnomalyDetectionParams;
use edge_agent::replay::ReplaySummary;
use edge_agent::replay::labels::{Labelled, Score, score};
use edge_agent::series::Series;
use edge_agent::window::{WindowSpec, Windower};
use edge_anomaly::SeasonalHybridEsd;
use edge_function::Window;
use edge_function::testing::Harness;
use edge_tests::labelled::{LabelledSeries, PERIOD, labelled_series};

/// The setting the README documents for trend and level shifts.
const WINDOW: usize = 336;
const HOP: usize = 24;
const PARAMS: &[(&str, &str)] = &[("period", "24"), ("alpha", "0.001"), ("max_anoms", "0.01")];

fn series_of(s: &LabelledSeries) -> Series {
    Series {
        timestamps: s.timestamps.clone(),
        values: s.values.clone(),
        ..Series::default()
    }
}

fn labels_of(s: &LabelledSeries) -> Vec<Labelled> {
    s.windows
        .iter()
        .map(|&(a, b)| Labelled {
            start: s.timestamps[a],
            end: s.timestamps[b],
        })
        .collect()
}

/// The crate on the whole series: every flag decided when the series ends.
fn whole_series(s: &LabelledSeries) -> ReplaySummary {
    let flagged: Vec<u64> = AnomalyDetectionParams::new()
        .fit(&s.values, PERIOD)
        .expect("the crate judges the series")
        .anomalies()
        .iter()
        .map(|&i| i as u64)
        .collect();
    let last = s.values.len() as u64 - 1;
    ReplaySummary {
        flagged_decided_at: vec![last; flagged.len()],
        flagged,
        ..ReplaySummary::default()
    }
}

/// The function in the agent's sliding windows.
fn live(s: &LabelledSeries, size: usize, hop: usize, params: &[(&str, &str)]) -> ReplaySummary {
    let f = Harness::<SeasonalHybridEsd>::new(&params.iter().copied().collect())
        .expect("the parameters are valid");
    let mut windower = Windower::new(WindowSpec::new(size, hop).expect("a valid window"));
    let mut plans: Vec<_> = (0..s.values.len())
        .filter_map(|_| windower.push())
        .collect();
    plans.extend(windower.finish());
    let mut summary = ReplaySummary::default();
    for plan in plans {
        let (start, end) = (plan.start as usize, plan.end as usize);
        let window = Window::from_air_quality(
            "bench",
            s.timestamps[start..end].to_vec(),
            s.values[start..end].to_vec(),
        );
        let verdicts = f.execute(&window).expect("the window is judged");
        let decided = (plan.decide_from - plan.start) as usize;
        for (offset, verdict) in verdicts.iter().enumerate().skip(decided) {
            if verdict.is_anomaly {
                summary.flagged.push((start + offset) as u64);
                summary.flagged_decided_at.push(end as u64 - 1);
            }
        }
    }
    summary
}

/// Scores summed over series.
fn pool(scores: &[Score]) -> Score {
    let mut all = Score::default();
    for s in scores {
        all.samples += s.samples;
        all.windows += s.windows;
        all.detected += s.detected;
        all.flags += s.flags;
        all.flags_inside += s.flags_inside;
        all.sample_delays.extend(&s.sample_delays);
        all.emit_delays.extend(&s.emit_delays);
    }
    all
}

fn hours(ms: &[i64]) -> String {
    let mut sorted = ms.to_vec();
    sorted.sort_unstable();
    sorted
        .get(sorted.len() / 2)
        .map_or("-".into(), |m| format!("{:.0} h", *m as f64 / 3_600_000.0))
}

fn row(what: &str, s: &Score) {
    println!(
        "| {what} | {}/{} | {} | {:.1} | {} | {} |",
        s.detected,
        s.windows,
        s.precision().map_or("-".into(), |p| format!("{p:.2}")),
        s.flags_per_thousand(),
        hours(&s.sample_delays),
        hours(&s.emit_delays),
    );
}

/// Which labelled windows a score detected, by index, for the "finds every window the
/// crate finds" comparison.
fn detected_windows(series: &Series, summary: &ReplaySummary, labels: &[Labelled]) -> Vec<bool> {
    labels
        .iter()
        .map(|w| score(series, summary, std::slice::from_ref(w)).detected == 1)
        .collect()
}

fn main() {
    let wide = std::env::args().any(|a| a == "--grid");
    let all = labelled_series();
    // The series as files, for `edge-agent replay --labels` on the same data.
    let dir = edge_tests::workspace().join("target/labelled");
    std::fs::create_dir_all(&dir).expect("target/labelled can be created");
    for s in &all {
        s.write(&dir);
    }
    println!(
        "written to {}: <name>.csv and <name>.labels.json",
        dir.display()
    );
    println!(
        "{} series, {} labelled windows, hourly, period {PERIOD}; live: window {WINDOW}, hop {HOP}, {PARAMS:?}\n",
        all.len(),
        all.iter().map(|s| s.windows.len()).sum::<usize>()
    );
    println!(
        "| series | detection | detected | precision | flags/1k | delay (sample) | delay (emitted) |"
    );
    println!("|---|---|---|---|---|---|---|");
    let (mut crate_scores, mut live_scores, mut hybrid_scores) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut missed = Vec::new();
    for s in &all {
        let (series, labels) = (series_of(s), labels_of(s));
        let whole = whole_series(s);
        let ours = live(s, WINDOW, HOP, PARAMS);
        // The R package's hybrid: the whole series, a median per two weeks.
        let n = s.values.len();
        let hybrid = live(s, n, n, &[("period", "24"), ("longterm_period", "336")]);
        let (c, l) = (
            score(&series, &whole, &labels),
            score(&series, &ours, &labels),
        );
        print!("| {} ", s.name);
        row("whole series, crate", &c);
        print!("| {} ", s.name);
        row(
            "whole series, longterm_period=336",
            &score(&series, &hybrid, &labels),
        );
        hybrid_scores.push(score(&series, &hybrid, &labels));
        print!("| {} ", s.name);
        row("live", &l);
        let found_by_crate = detected_windows(&series, &whole, &labels);
        let found_live = detected_windows(&series, &ours, &labels);
        for (i, (c, l)) in found_by_crate.iter().zip(&found_live).enumerate() {
            if *c && !*l {
                missed.push(format!("{} window {i}", s.name));
            }
        }
        crate_scores.push(c);
        live_scores.push(l);
    }
    print!("| all ");
    row("whole series, crate", &pool(&crate_scores));
    print!("| all ");
    row("whole series, longterm_period=336", &pool(&hybrid_scores));
    print!("| all ");
    row("live", &pool(&live_scores));
    println!(
        "\nwindows the crate finds that live misses: {}",
        if missed.is_empty() {
            "none".into()
        } else {
            missed.join(", ")
        }
    );

    // The neighbourhood of the setting, pooled over the series.
    println!(
        "\n| window | hop | parameters | detected | precision | flags/1k | delay (sample) | delay (emitted) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let (windows, alphas, max_anoms): (&[usize], &[&str], &[&str]) = if wide {
        (
            &[96, 120, 168, 336, 672],
            &["0.05", "0.01", "0.001", "0.0001"],
            &["0.01", "0.02", "0.05", "0.1"],
        )
    } else {
        (&[168, 336, 672], &["0.05", "0.001"], &["0.02", "0.1"])
    };
    let extras: &[&[(&str, &str)]] = &[&[], &[("threshold", "p95")], &[("longterm_period", "168")]];
    for &size in windows {
        for alpha in alphas {
            for anoms in max_anoms {
                for extra in extras {
                    if extra
                        .iter()
                        .any(|(_, v)| v.parse::<usize>().is_ok_and(|l| l >= size))
                    {
                        continue;
                    }
                    let mut params =
                        vec![("period", "24"), ("alpha", *alpha), ("max_anoms", *anoms)];
                    params.extend_from_slice(extra);
                    let scores: Vec<Score> = all
                        .iter()
                        .map(|s| score(&series_of(s), &live(s, size, HOP, &params), &labels_of(s)))
                        .collect();
                    let shown: Vec<String> = params[1..]
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    print!("| {size} | {HOP} | {} ", shown.join(" "));
                    let p = pool(&scores);
                    println!(
                        "| {}/{} | {} | {:.1} | {} | {} |",
                        p.detected,
                        p.windows,
                        p.precision().map_or("-".into(), |p| format!("{p:.2}")),
                        p.flags_per_thousand(),
                        hours(&p.sample_delays),
                        hours(&p.emit_delays),
                    );
                }
            }
        }
    }
}
