// scratch: native driver for callgrind
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1024);
    let period = 24;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let values: Vec<f32> = (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state % 1000) as f32 / 1000.0 - 0.5;
            let phase = i as f32 / period as f32 * std::f32::consts::TAU;
            60.0 + 10.0 * phase.sin() + 2.0 * noise + if i == n / 2 { 25.0 } else { 0.0 }
        })
        .collect();
    let a = edge_anomaly::esd::detect(&values, period, 0.1, 0.05, edge_anomaly::esd::Tail::Both)
        .unwrap();
    println!("{a:?}");
}
