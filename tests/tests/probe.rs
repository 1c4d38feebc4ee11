use edge_agent::function::{FunctionHost, FunctionModule, Limits};
use edge_function::{Params, Window};
use edge_tests::*;

#[test]
fn probe() {
    let module = FunctionModule::load(anomaly_wasm()).unwrap();
    for n in [256usize, 1024, 4096] {
        let mut host = FunctionHost::new(module.clone(), Params::from([("period", "24")]), Limits { fuel_per_call: u64::MAX / 2, ..Limits::default() }).unwrap();
        let values = seasonal_series(n, 24, &[n / 3, n / 2]);
        let w = Window::from_air_quality("s", (0..n as i64).collect(), values);
        let o = host.run(&w).unwrap();
        eprintln!("n={n} fuel={} guest={:?} host={:?} anomalies={}", o.fuel_used, o.guest_time, o.host_time, o.verdicts.iter().filter(|v| v.is_anomaly).count());
    }
}

#[test]
fn probe_loop() {
    let wat = r#"(module
      (memory (export "memory") 1)
      (func (export "edge_abi_version") (result i32) i32.const 1)
      (func (export "alloc") (param i32) (result i32) i32.const 1024)
      (func (export "dealloc") (param i32 i32))
      (func (export "init") (param i32 i32) (result i64) (loop br 0) i64.const 0)
      (func (export "execute") (param i32 i32) (result i64) (loop br 0) i64.const 0))"#;
    let bytes = wat::parse_str(wat).unwrap();
    let module = FunctionModule::from_bytes(&bytes).unwrap();
    let t = std::time::Instant::now();
    let r = FunctionHost::new(module, Params::new(), Limits { fuel_per_call: 1_600_000_000, ..Limits::default() });
    eprintln!("init: {:?} {:?}", r.as_ref().err(), t.elapsed());
}
