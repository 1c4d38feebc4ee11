//! The edge agent as a library; the `edge-agent` binary (`main.rs`, `cli/`) is a thin
//! command line over it. Modules are listed below in data-flow order, and imports run one
//! way: a module uses the ones before it in this list, never one after it
//! (`deploy/check-imports` checks it, `make lint` runs it). Each stage owns its
//! configuration section (`function/config.rs`, `ship/config.rs`, …); [`config`] comes
//! after them all and assembles the file.
//!
//! **Shared by every stage**
//! - [`support`]: small mechanisms with no knowledge of the agent (interruptible waits,
//!   backoff, a configuration key's check, time as text, outside text made safe to print,
//!   panic messages).
//!
//! **The live path**: sensor → window → function → judge → sink/spool → ship
//! - [`sensor`]: where samples come from, a room per source: the BME680 (real over I2C,
//!   or the simulated chip), air quality, the sampler thread and the ring buffer it fills;
//!   or lines from sensors not on the bus ([`sensor::lines`]: TCP, UDP, stdin), into the
//!   same ring.
//! - [`window`]: which samples each window holds and decides (size N, hop H), and
//!   [`window::history`], the windows' samples kept across restarts.
//! - [`function`]: the wasmi sandbox: a module, its limits, the two ABIs, hot-swap
//!   candidates.
//! - [`watch`]: the function file watcher, which prepares those candidates.
//! - [`registry`]: the signed function registry, polled, which prepares candidates too.
//! - [`judge`]: one window through the function into one verdict per decided sample; the
//!   live pipeline and `replay` both use it.
//! - [`record`]: a verdict as it leaves the agent, with its document id.
//! - [`spool`] and [`sink`]: where verdicts go: the durable spool (redb), or NDJSON.
//! - [`pipeline`]: the live loop: ring → windows → judge → sink, swapping functions
//!   between windows; it owns its counters ([`pipeline::PipelineStats`]).
//! - [`ship`]: the spool drained to Elasticsearch with `_bulk`.
//!
//! **Watching the fleet**
//! - [`fleet`]: this agent's status documents, through the spool and the shipper into
//!   their own index.
//!
//! **Watching it run**
//! - [`health`]: the liveness rule behind the watchdog ping and `/health`.
//! - [`metrics`]: every stage's counters as Prometheus text, and the HTTP server.
//!
//! **The whole**
//! - [`config`]: the TOML file, its sections assembled and checked whole before anything
//!   starts.
//! - [`agent`]: the agent as one value: every stage wired from an [`config::AgentConfig`]
//!   and a sample source, supervised, and stopped in order. The binary, the tests and the
//!   benches start agents through it.
//!
//! **Offline tools**
//! - [`series`]: a recorded CSV series; [`replay`]: it through a function, judged as live;
//!   [`plot`]: the replay as an SVG chart.

pub mod support;

pub mod sensor;

pub mod window;

pub mod function;

pub mod watch;

pub mod registry;

pub mod judge;

pub mod record;

pub mod spool;

pub mod sink;

pub mod pipeline;

pub mod ship;

pub mod fleet;

pub mod health;

pub mod metrics;

pub mod config;

pub mod agent;

pub mod series;

pub mod replay;

#[cfg(feature = "plot")]
pub mod plot;
