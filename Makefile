# The front door's commands. Each builds what it needs (the wasm function included).
FUNCTION := target/wasm32-unknown-unknown/wasm/edge_anomaly.wasm

.PHONY: demo replay-demo test functions bench lint

## demo: the agent on a simulated BME680, 3600x real time, for 20 s (a cooking evening)
demo: functions
	cargo build --release --quiet -p edge-agent
	rm -f target/demo-live.ndjson
	timeout --signal=INT 20 target/release/edge-agent run --simulate --scenario cooking \
		--speed 3600 --config demo/agent.toml --output target/demo-live.ndjson; \
		status=$$?; [ $$status -eq 0 ] || [ $$status -eq 124 ]
	@echo "$$(wc -l < target/demo-live.ndjson) verdicts, $$(grep -c '"is_anomaly":true' target/demo-live.ndjson) flagged, in target/demo-live.ndjson; the first flagged:"
	@grep '"is_anomaly":true' target/demo-live.ndjson | head -5 | \
		sed -E 's/.*"@timestamp":"([^"]*)".*"air_quality":([0-9.]+).*"function_sha256":"(.{12}).*/  \1  air quality \2  (function \3…)/'

## replay-demo: replay two weeks of recorded air quality through S-H-ESD
replay-demo: functions
	cargo run --release --quiet -p edge-agent -- replay \
		--function $(FUNCTION) --input demo/air_quality.csv \
		--param period=24 --window 168 --hop 24 --output target/demo.ndjson
	@echo "Flagged (all verdicts in target/demo.ndjson):"
	@grep '"is_anomaly":true' target/demo.ndjson

## test: every test in the workspace (the tests build the wasm functions themselves)
test:
	cargo test --workspace

## functions: build every function under functions/ to wasm
functions:
	cargo functions

## bench: the benchmarks (function: native vs wasmi, fuel, size; agent: CPU, memory, hot swap)
bench:
	cargo bench -p edge-tests --bench function
	cargo bench -p edge-agent --bench agent

## lint: formatting and clippy, as CI checks them
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target wasm32-unknown-unknown -p edge-anomaly -p misbehave -p punch-anomaly -- -D warnings
