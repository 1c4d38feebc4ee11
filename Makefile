# The front door's commands. Each builds what it needs (the wasm function included).
FUNCTION := target/wasm32-unknown-unknown/wasm/edge_anomaly.wasm

.PHONY: demo replay-demo test functions bench lint toolchain

## demo: the agent on a simulated BME680, 3600x real time, for 20 s (a cooking evening); its
## verdicts shipped to an ES-API server on loopback (or to ES_URL) and read back from there
demo: toolchain functions
	cargo build --release --quiet -p edge-agent
	python3 demo/live.py

## replay-demo: replay two weeks of recorded air quality through S-H-ESD
replay-demo: toolchain functions
	cargo run --release --quiet -p edge-agent -- replay \
		--function $(FUNCTION) --input demo/air_quality.csv \
		--param period=24 --window 168 --hop 24 --output target/demo.ndjson
	@echo "Flagged (all verdicts in target/demo.ndjson):"
	@grep '"is_anomaly":true' target/demo.ndjson

## test: every test in the workspace (the tests build the wasm functions themselves; the C
## example function needs clang and lld, which deploy/ensure-clang installs when it can)
test: toolchain
	@deploy/ensure-clang
	cargo test --workspace

## toolchain: the pinned Rust with its components and targets (cheap when present)
toolchain:
	@deploy/ensure-toolchain

## functions: build every function under functions/ to wasm
functions: toolchain
	cargo functions

## bench: the benchmarks (function: native vs wasmi, fuel, size; agent: CPU, memory, hot swap)
bench: toolchain
	cargo bench -p edge-tests --bench function
	cargo bench -p edge-agent --bench agent

## lint: formatting, one-way imports inside agent/src (deploy/check-imports) and clippy, as CI checks them
lint: toolchain
	cargo fmt --all -- --check
	deploy/check-imports
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p edge-agent --lib --bins --no-default-features -- -D warnings
	cargo clippy --target wasm32-unknown-unknown -p edge-anomaly -p misbehave -p punch-anomaly -- -D warnings

# --- Raspberry Pi: cross builds, tests under qemu, packages -------------------------------
# Tools: deploy/install-pi-tools (apt: cross gcc, qemu-user; PyPI: zig; crates.io:
# cargo-zigbuild, cargo-deb). Plain `cargo build/test --target …` uses .cargo/config.toml.
PI_TARGETS := aarch64-unknown-linux-gnu thumbv7neon-unknown-linux-gnueabihf
# Release builds for the Pi get a target dir of their own: zigbuild and plain cargo would
# otherwise share target/<triple>/release and overwrite each other's binaries.
PI_DIR := target/pi
# Raspberry Pi OS bullseye's glibc: the oldest the release binaries must run on.
PI_GLIBC := 2.31
PI_BINS := $(foreach t,$(PI_TARGETS),$(PI_DIR)/$(t)/release/edge-agent)
# Where qemu-user finds each target's loader and libc (Debian's libc6-*-cross packages);
# exported to the tests so that the agent binaries they start find them too.
QEMU_PREFIX_aarch64-unknown-linux-gnu := /usr/aarch64-linux-gnu
QEMU_PREFIX_thumbv7neon-unknown-linux-gnueabihf := /usr/arm-linux-gnueabihf

.PHONY: pi-tools cross check-glibc cross-test test-aarch64 test-armv7 deb check-unit vm-test

## pi-tools: install the cross linkers, qemu-user, zig, cargo-zigbuild and cargo-deb
pi-tools:
	deploy/install-pi-tools

## cross: release binaries for the Pi (aarch64, 32-bit ARMv7 in Thumb-2) that run on glibc ≥ 2.31,
## without `replay --plot` or `run --simulate` (the plot and simulator features)
cross:
	@eval "$$(deploy/install-pi-tools zig)" && for t in $(PI_TARGETS); do \
		echo "cargo zigbuild --release -p edge-agent --no-default-features --target $$t.$(PI_GLIBC)"; \
		CARGO_TARGET_DIR=$(PI_DIR) CARGO_ZIGBUILD_PYTHON_PATH=$$ZIG_PYTHON \
			cargo zigbuild --release --locked --quiet -p edge-agent --no-default-features --target $$t.$(PI_GLIBC) || exit 1; \
	done
	$(MAKE) --no-print-directory check-glibc
	@ls -l $(PI_BINS)

## check-glibc: fail if a release binary needs a glibc newer than 2.31
check-glibc:
	deploy/check-glibc --max $(PI_GLIBC) $(PI_BINS)

## cross-test: the tests under qemu-user: all of them on aarch64, the core on armv7
cross-test: test-aarch64 test-armv7

# Tests that hold the emulated agent to a real-time pace it cannot keep under qemu: this one
# runs the simulated chip at 1200x for an hour of samples, and a debug build under qemu
# falls behind, so the ring drops samples (by design) and the test counts them lost.
# The fleet test starts 50 agents at once: 50 emulated processes on a few cores take many
# minutes per phase; the registry's logic is the same on every target and its unit tests
# run under qemu (FLEET_AGENTS=5 cargo test --test fleet_rollout runs a small fleet).
QEMU_SKIP := --skip an_hour_without_upstream_loses_and_duplicates_nothing \
	--skip a_fleet_takes_signed_versions_by_cohort_rolls_back_and_refuses_tampering

## test-aarch64: every test of the workspace, built for aarch64 and run under qemu-aarch64
test-aarch64:
	QEMU_LD_PREFIX=$(QEMU_PREFIX_aarch64-unknown-linux-gnu) \
		cargo test --workspace --target aarch64-unknown-linux-gnu -- $(QEMU_SKIP)

## test-armv7: the sensor, function-host and spool tests, built for 32-bit ARMv7 (thumbv7neon,
## what the armhf .deb ships), under qemu-arm
# The integration tests are picked by file name, so agent/tests/spool*.rs join once they
# exist; the library's own tests by module (sensor::…, spool::…).
ARMV7_TESTS := $(foreach f,$(sort $(wildcard agent/tests/sensor_*.rs agent/tests/spool*.rs)),--test $(basename $(notdir $(f))))
test-armv7:
	QEMU_LD_PREFIX=$(QEMU_PREFIX_thumbv7neon-unknown-linux-gnueabihf) \
		cargo test --target thumbv7neon-unknown-linux-gnueabihf -p edge-agent --lib -- sensor:: spool:: function::
	QEMU_LD_PREFIX=$(QEMU_PREFIX_thumbv7neon-unknown-linux-gnueabihf) \
		cargo test --target thumbv7neon-unknown-linux-gnueabihf -p edge-agent $(ARMV7_TESTS)
	QEMU_LD_PREFIX=$(QEMU_PREFIX_thumbv7neon-unknown-linux-gnueabihf) \
		cargo test --target thumbv7neon-unknown-linux-gnueabihf -p edge-tests \
		--test hostile_modules --test native_vs_wasm --test punch_abi

## deb: .deb packages: edge-agent for arm64 and armhf, edge-agent-anomaly (the function)
deb: cross functions
	deploy/install-pi-tools deb
	deploy/debian/build-debs $(PI_DIR)
	$(MAKE) --no-print-directory check-unit

## check-unit: systemd-analyze verify the packaged unit, print its security exposure (≤ 2.0)
check-unit:
	deploy/check-unit $(PI_DIR)/debian/edge-agent_*_arm64.deb

## vm-test: the .debs on a booted Debian bookworm arm64 system under real systemd (qemu, TCG):
## install, start, hardening, life cycle, reboot, no RTC, power cuts, no sensor, chrony,
## upgrade and purge (deploy/vm/). Needs root (mmdebstrap, binfmt_misc). The image is cached
## under ~/.cache/edge-agent/vm. VM_POWER_CUTS=20 VM_NO_SENSOR_S=900 for the issue's full run.
vm-test: deb
	deploy/install-pi-tools vm
	deploy/vm/vm-test
