//! Shipping to Elasticsearch: the [`Shipper`] thread takes the oldest documents from the
//! spool, sends them with `_bulk` (`create` with a deterministic `_id`, so a retry never
//! duplicates and a 409 means "already there"), and removes them from the spool only once
//! acknowledged. Failures are sorted by what they mean: retried with backoff (connection
//! errors, 429, 5xx), split (413), parked with a clear log (401/403), or, for a document
//! the cluster will never take (a mapping error), written to the dead-letter file with
//! Elasticsearch's reason.

mod auth;
mod client;
mod shipper;

pub use auth::{Auth, AuthError};
pub use client::{BulkOutcome, Client, ClientError, ItemOutcome, template_body};
pub use shipper::{ShipStats, Shipper, ShipperSettings, Stopper};
