# The front door's commands. Each builds what it needs (the wasm function included).
FUNCTION := target/wasm32-unknown-unknown/wasm/edge_anomaly.wasm

.PHONY: demo test functions bench lint

## demo: replay two weeks of air quality through the S-H-ESD function; show what it flags
demo: functions
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

## bench: the function benchmark (native vs wasmi, fuel, module size)
bench:
	cargo bench -p edge-tests --bench function

## lint: formatting and clippy, as CI checks them
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target wasm32-unknown-unknown -p edge-anomaly -p misbehave -- -D warnings
