use edge_anomaly::SeasonalHybridEsd;
use edge_function::testing::Harness;
use edge_function::{Params, Window};
fn main() {
  for n in [256usize,1024,4096] {
    let values: Vec<f32> = (0..n).map(|i| 60.0 + 10.0 * ((i as f32) / 24.0 * 6.28).sin() + ((i * 7919) % 1000) as f32 / 500.0 + if i % 1000 == 17 { 30.0 } else { 0.0 }).collect();
    let w = Window::from_air_quality("s", (0..n as i64).collect(), values);
    let h = Harness::<SeasonalHybridEsd>::new(&Params::from([("period", "24")])).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..10 { h.execute(&w).unwrap(); }
    eprintln!("{n}: {:?}/window", t.elapsed() / 10);
  }
}
