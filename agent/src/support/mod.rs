//! Small mechanisms every stage shares, each in one place and importing nothing of the
//! agent's: waking a waiting thread ([`wake`]), retry delays ([`backoff`]), a
//! configuration key's check ([`check`]), counters' snapshots ([`counters`]), reading a file named from outside ([`mod@file`]),
//! SHA-256 ([`digest`]), the HTTP client ([`http`]) and the crypto provider its TLS and
//! the lines listener's share ([`tls`]), the log's volume ([`log_rate`]), time
//! as text ([`timestamp`]), text from outside made safe to print ([`text`]) and a panic's
//! message ([`mod@panic`]). A change here touches every stage, so keep these small and
//! obvious.

pub mod backoff;
pub mod check;
pub mod counters;
pub mod digest;
pub mod file;
pub mod http;
pub mod log_rate;
pub mod panic;
pub mod text;
pub mod timestamp;
pub mod tls;
pub mod wake;
