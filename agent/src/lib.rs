//! The edge agent as a library: each module is one stage of the data flow
//! (sensor → window → function → sink), and the `edge-agent` binary is a thin CLI over them.

pub mod config;
pub mod function;
pub mod health;
pub mod judge;
pub mod metrics;
pub mod pipeline;
pub mod plot;
pub mod record;
pub mod replay;
pub mod sensor;
pub mod series;
pub mod ship;
pub mod sink;
pub mod spool;
pub mod support;
pub mod watch;
pub mod window;
