//! Shipping to Elasticsearch: the [`Shipper`] thread takes the oldest documents from the
//! spool, sends them with `_bulk` (`create` with a deterministic `_id`, so a retry never
//! duplicates and a 409 means "already there"), and removes them from the spool only once
//! the cluster has answered for them. Every answer is sorted by one rule
//! ([`client::classify_response`], the README's table): delivered, dead-lettered (a reason
//! no retry can fix), retried with backoff, or paused (authorisation, a block, a missing
//! index, misrouting) with the spool kept.
//!
//! Each spooled entry names its destination ([`crate::spool::Destination`]): verdicts go
//! to `index`, fleet status documents to their own index ([`Routes`]), in the same
//! requests. Fleet-safe catch-up (a spread first try, a drain cap) is the shipper's.
//!
//! `client.rs` is the HTTP side and the rule, `shipper.rs` the thread acting on it,
//! `auth.rs` the credentials, `config.rs` the `[elasticsearch]` section; log lines at a bounded rate come from `support::log_rate`.

mod auth;
pub mod client;
pub mod config;
mod shipper;

pub use auth::{Auth, AuthError, SECRET_FILE_MAX_BYTES};
pub use client::{
    BulkOutcome, Client, ClientError, ItemOutcome, Pause, RESPONSE_MAX_BYTES, Routes, redact_url,
    template_body,
};
pub use config::{DEFAULT_STATUS_INDEX, ElasticsearchSection, ShipWhat, check_index};
pub use shipper::{
    ShipStats, Shipper, ShipperHandle, ShipperSettings, Stopper, pause_code, pause_of_code,
};
