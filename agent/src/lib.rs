//! The edge agent as a library; the `edge-agent` binary (`main.rs`, `cli/`) is a thin
//! command line over it. Modules follow the data flow, and imports run one way: a module
//! uses the ones before it in this list, never one after it.
//!
//! **Shared by every stage**
//! - [`support`]: small mechanisms with no knowledge of the agent (interruptible waits,
//!   backoff, time as text, outside text made safe to print, panic messages).
//! - [`config`]: the TOML file, checked whole before anything starts.
//!
//! **The live path**: sensor → window → function → judge → sink/spool → ship
//! - [`sensor`]: the BME680 (real over I2C, or the simulated chip), air quality, the
//!   sampler thread and the ring buffer it fills; or lines from sensors not on the bus
//!   ([`sensor::lines`]: TCP, UDP, stdin), into the same ring.
//! - [`window`]: which samples each window holds and decides (size N, hop H), and
//!   [`window::history`], the windows' samples kept across restarts.
//! - [`function`]: the wasmi sandbox: a module, its limits, the two ABIs, hot-swap
//!   candidates.
//! - [`watch`]: the function file watcher, which prepares those candidates.
//! - [`registry`]: the signed function registry, polled, which prepares candidates too.
//! - [`judge`]: one window through the function into one verdict per decided sample; the
//!   live pipeline and `replay` both use it.
//! - [`record`]: a verdict as it leaves the agent, with its document id.
//! - [`pipeline`]: the live loop: ring → windows → judge → sink, swapping functions
//!   between windows; it owns its counters ([`pipeline::PipelineStats`]).
//! - [`sink`] and [`spool`]: where verdicts go: NDJSON, or the durable spool (redb).
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
//! **Offline tools**
//! - [`series`]: a recorded CSV series; [`replay`]: it through a function, judged as live;
//!   [`plot`]: the replay as an SVG chart.

pub mod support;

pub mod config;

pub mod function;
pub mod judge;
pub mod record;
pub mod registry;
pub mod sensor;
pub mod watch;
pub mod window;

pub mod pipeline;
pub mod ship;
pub mod sink;
pub mod spool;

pub mod fleet;

pub mod health;
pub mod metrics;

#[cfg(feature = "plot")]
pub mod plot;
pub mod replay;
pub mod series;
