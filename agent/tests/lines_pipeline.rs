//! The pipeline's windows per sensor, driven directly: samples of several sensors
//! interleaved in one ring, each judged once in its own sensor's series, and the bound on
//! series (the least recently seen one closed, its waiting samples judged, to make room).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use edge_agent::function::{FunctionHost, FunctionModule, Limits};
use edge_agent::pipeline::{Identity, Pipeline, PipelineStats};
use edge_agent::record::VerdictRecord;
use edge_agent::sensor::{RunId, Sample, sample_queue};
use edge_agent::sink::Sink;
use edge_agent::window::WindowSpec;
use edge_function::Params;
use edge_tests::anomaly_wasm;

struct Capture(Arc<Mutex<Vec<VerdictRecord>>>);

impl Sink for Capture {
    fn emit(&mut self, records: &[VerdictRecord]) -> std::io::Result<()> {
        self.0.lock().unwrap().extend_from_slice(records);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `per_sensor` samples of each of `sensors`, interleaved, through a pipeline keeping at
/// most `max_sensors` series; answers the records and the counters.
fn run(
    sensors: &[&str],
    per_sensor: u64,
    max_sensors: usize,
) -> (Vec<VerdictRecord>, Arc<PipelineStats>) {
    let mut params = Params::new();
    params.set("period", "4");
    let module = FunctionModule::load(anomaly_wasm()).unwrap();
    let host = FunctionHost::new(module, params, Limits::default()).unwrap();
    let spec = WindowSpec::new(16, 4)
        .unwrap()
        .check_min_len(host.min_window_len())
        .unwrap();
    let (mut writer, reader) = sample_queue(4096).unwrap();
    for seq in 0..per_sensor {
        for (k, sensor) in sensors.iter().enumerate() {
            let mut sample = Sample::air_quality_only(
                RunId::from_raw(k as u64 + 1),
                seq,
                1_000_000 + seq as i64 * 1000 + k as i64,
                ((seq * 7 + k as u64) % 10) as f32,
            );
            sample.sensor_id = Some(Arc::from(*sensor));
            writer.push(sample);
        }
    }
    let records = Arc::new(Mutex::new(Vec::new()));
    let stats = Arc::new(PipelineStats::default());
    let (_candidates, no_candidates) = mpsc::channel();
    let identity = Identity {
        host_id: "h".into(),
        sensor_id: "configured".into(),
    };
    let pipeline = Pipeline::new(
        identity,
        spec,
        host,
        no_candidates,
        Box::new(Capture(records.clone())),
        stats.clone(),
    )
    .with_max_sensors(max_sensors);
    // Stopped from the start: the queue is drained, then every series finished.
    pipeline.run(&reader, &AtomicBool::new(true)).unwrap();
    let records = records.lock().unwrap().clone();
    (records, stats)
}

/// Each sample once, in its own sensor's windows, in order within its sensor.
fn assert_once_in_own_series(records: &[VerdictRecord], sensors: &[&str], per_sensor: u64) {
    let mut seen = BTreeSet::new();
    let mut by_sensor: BTreeMap<&str, Vec<&VerdictRecord>> = BTreeMap::new();
    for record in records {
        assert!(
            seen.insert(record.document_id()),
            "judged twice: {record:?}"
        );
        by_sensor
            .entry(&record.head.sensor_id)
            .or_default()
            .push(record);
    }
    assert_eq!(by_sensor.len(), sensors.len());
    for (k, sensor) in sensors.iter().enumerate() {
        let series = &by_sensor[sensor];
        let seqs: Vec<u64> = series.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (0..per_sensor).collect::<Vec<_>>(), "{sensor}");
        for record in series {
            assert_eq!(record.head.run_id, RunId::from_raw(k as u64 + 1));
            // This sensor's stamps end in k (mod 1000): a window of its own samples only.
            for bound in [&record.window_start, &record.window_end] {
                let ms = edge_agent::series::parse_timestamp(bound).unwrap();
                assert_eq!(ms % 1000, k as i64, "{sensor}: {record:?}");
            }
        }
    }
}

#[test]
fn interleaved_sensors_are_judged_in_their_own_windows() {
    let sensors = ["a", "b", "c"];
    let (records, stats) = run(&sensors, 40, 3);
    assert_once_in_own_series(&records, &sensors, 40);
    assert_eq!(stats.sensors_evicted.load(Ordering::Relaxed), 0);
    assert_eq!(stats.sensors_active.load(Ordering::Relaxed), 3);
    // Full windows of 16 every 4 per sensor: 1 + (40 - 16) / 4 = 7 windows each.
    assert_eq!(stats.windows.load(Ordering::Relaxed), 21);
    assert!(records.iter().all(|r| r.error.is_none()), "all judged");
}

#[test]
fn at_the_bound_the_least_recent_series_is_finished_to_make_room() {
    let sensors = ["a", "b", "c"];
    let (records, stats) = run(&sensors, 10, 2);
    assert_once_in_own_series(&records, &sensors, 10);
    // a, b, then every sample is a sensor not kept: each evicts the least recent.
    assert_eq!(stats.sensors_evicted.load(Ordering::Relaxed), 3 * 10 - 2);
    assert_eq!(stats.sensors_active.load(Ordering::Relaxed), 2);
}
