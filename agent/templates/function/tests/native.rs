//! The function natively, through the SDK's harness: the same encode, call and decode
//! path as the wasm build, on the CSV `edge-agent replay` reads.

use edge_function::testing::Harness;
use edge_function::{Params, Window};
use {crate_name}::Threshold;

fn samples() -> Window {
    let (mut timestamps, mut values) = (Vec::new(), Vec::new());
    for line in include_str!("../samples.csv").lines().skip(1) {
        let (time, value) = line.split_once(',').expect("timestamp,value");
        timestamps.push(time.parse::<i64>().expect("a Unix time") * 1000);
        values.push(value.parse().expect("a number"));
    }
    Window::from_air_quality("test", timestamps, values)
}

#[test]
fn flags_the_samples_below_the_limit() {
    let function = Harness::<Threshold>::new(&Params::from([("limit", "30")])).unwrap();
    let verdicts = function.execute(&samples()).unwrap();
    let flagged: Vec<usize> = (0..verdicts.len()).filter(|&i| verdicts[i].is_anomaly).collect();
    assert_eq!(flagged, [17]);
}

#[test]
fn refuses_a_misspelt_parameter() {
    let refused = Harness::<Threshold>::new(&Params::from([("limt", "30")])).err().unwrap();
    assert!(refused.message.contains("`limt`"), "{refused}");
}
