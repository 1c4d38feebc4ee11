//! The HTTP side: one `reqwest` blocking client (rustls on the ring provider, system
//! roots or a configured CA; redirects not followed; answers read through a cap), the index
//! template, and `_bulk` requests with their answers sorted by the one rule the README's
//! table shows: [`classify_response`] for the whole request, `item_outcome` per item. A
//! new kind of answer goes there, with a row in the README and a test in
//! `agent/tests/ship_rules.rs`.

use std::io::Write;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::StatusCode;
use reqwest::blocking::RequestBuilder;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use serde_json::{Value, json};
use thiserror::Error;

use super::Auth;
use crate::spool::{Destination, Entry};
pub use crate::support::http::redact_url;
use crate::support::http::{BodyError, Exchange, Http, describe};

/// The most of a response body the agent reads: a `_bulk` answer for the largest batch
/// (10,000 documents, each with an error) is about 5 MiB. A longer body is not an answer.
pub const RESPONSE_MAX_BYTES: u64 = 8 << 20;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
    #[error("{0}")]
    Request(String),
    #[error("HTTP {status}: {reason}")]
    Status { status: u16, reason: String },
}

/// Why shipping has to wait for a person or for the cluster to change: the documents are
/// fine, so they stay in the spool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pause {
    /// 401/403, or `security_exception`: the credentials or their privileges.
    Unauthorized,
    /// `cluster_block_exception` (a read-only index, a full disk on the cluster), a closed
    /// index.
    Blocked,
    /// 404 / `index_not_found_exception`: the index or alias is missing and cannot be
    /// auto-created.
    MissingIndex,
    /// The answer is not a `_bulk` answer: a redirect, 202, 404 from a proxy, HTML, a body
    /// too long. The URL points somewhere else.
    Misrouted,
}

impl Pause {
    pub fn label(self) -> &'static str {
        match self {
            Pause::Unauthorized => "unauthorized",
            Pause::Blocked => "blocked",
            Pause::MissingIndex => "missing_index",
            Pause::Misrouted => "misrouted",
        }
    }

    pub fn advice(self) -> &'static str {
        match self {
            Pause::Unauthorized => {
                "check the credentials and that they may create documents in the index"
            }
            Pause::Blocked => "the cluster refuses writes to the index (a block or a closed index)",
            Pause::MissingIndex => {
                "the index or alias does not exist and the cluster does not create it"
            }
            Pause::Misrouted => "the URL does not lead to an Elasticsearch _bulk endpoint",
        }
    }
}

/// How a whole `_bulk` request went.
#[derive(Debug, PartialEq)]
pub enum BulkOutcome {
    /// Answered item by item, in request order.
    Items(Vec<ItemOutcome>),
    /// Worth trying again later: a timeout, 408, 429, 5xx, a body that broke off.
    Retry(String),
    /// No answer at all (no connection, refused, reset before a status): worth trying
    /// again later, and the cluster may come back as a new one.
    NoAnswer(String),
    /// Nothing the documents can fix: wait, keep them.
    Paused { why: Pause, reason: String },
    /// 413: the request is too large for the server.
    TooLarge,
    /// 400 for the whole request: one of the documents may be the cause.
    Rejected { status: u16, reason: String },
}

/// How one document went.
#[derive(Debug, PartialEq)]
pub enum ItemOutcome {
    Stored,
    /// 409 `version_conflict_engine_exception` on `create`: the id is ours (sensor and
    /// time), so the document is already there, from an earlier try.
    AlreadyThere,
    /// 429 or 5xx for this document alone.
    Retry(String),
    /// For a reason the document carries (mapping, parse, too large alone).
    Rejected {
        status: u16,
        reason: String,
    },
    /// For a reason of the cluster's, as for a whole request.
    Paused {
        why: Pause,
        reason: String,
    },
}

/// Whether the index template is there.
#[derive(Debug, PartialEq, Eq)]
pub enum TemplateState {
    Present,
    Missing,
}

pub struct Client {
    /// Every exchange (template, `_bulk`) ends within `timeout_ms`, body included.
    http: Http,
    base: String,
    auth: Auth,
    gzip: bool,
}

impl Client {
    pub fn new(
        url: &str,
        auth: Auth,
        ca_pem: Option<&[u8]>,
        gzip: bool,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let http = Http::new(ca_pem, timeout).map_err(ClientError::Build)?;
        Ok(Self {
            http,
            base: url.trim_end_matches('/').to_owned(),
            auth,
            gzip,
        })
    }

    fn authorised(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.auth {
            Auth::None => request,
            Auth::Basic { username, password } => request.basic_auth(username, Some(password)),
            Auth::ApiKey(key) => request.header(AUTHORIZATION, format!("ApiKey {key}")),
        }
    }

    /// Installs (or replaces) the verdict index template for `index`.
    pub fn install_template(&self, index: &str, data_stream: bool) -> Result<(), ClientError> {
        self.install_template_body(index, &template_body(index, data_stream))
    }

    /// Installs (or replaces) the template for `index` with `body` (the fleet status
    /// index brings its own).
    pub fn install_template_body(&self, index: &str, body: &Value) -> Result<(), ClientError> {
        let url = format!("{}/_index_template/{}", self.base, template_name(index));
        let request = self
            .authorised(self.http.put(url))
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let exchange = self
            .http
            .send(request)
            .map_err(|e| ClientError::Request(describe(&e)))?;
        let status = exchange.response.status();
        // The answer is read whole (within the deadline) even on success: a template
        // PUT's body trickling past `timeout_ms` is a failed exchange, not a success
        // that holds the connection.
        match (status.is_success(), read_bounded(exchange)) {
            (true, Ok(_)) => Ok(()),
            (true, Err(e)) => Err(ClientError::Request(body_failure(&e))),
            (false, body) => Err(ClientError::Status {
                status: status.as_u16(),
                reason: reason_of(status.as_u16(), body),
            }),
        }
    }

    /// Whether the template for `index` is installed (GET, so a read-only key may ask).
    pub fn template_state(&self, index: &str) -> Result<TemplateState, ClientError> {
        let url = format!("{}/_index_template/{}", self.base, template_name(index));
        let exchange = self
            .http
            .send(self.authorised(self.http.get(url)))
            .map_err(|e| ClientError::Request(describe(&e)))?;
        let status = exchange.response.status();
        // Read whole either way, within the deadline: a 200 whose body trickles is not
        // an answer yet.
        let body = read_bounded(exchange);
        match (status, body) {
            (StatusCode::OK, Ok(_)) => Ok(TemplateState::Present),
            (StatusCode::NOT_FOUND, Ok(_)) => Ok(TemplateState::Missing),
            (StatusCode::OK | StatusCode::NOT_FOUND, Err(e)) => {
                Err(ClientError::Request(body_failure(&e)))
            }
            (status, body) => Err(ClientError::Status {
                status: status.as_u16(),
                reason: reason_of(status.as_u16(), body),
            }),
        }
    }

    /// Sends `entries` as `create` actions into `index`, all of them, whatever their
    /// destination (tools and tests).
    pub fn bulk(&self, index: &str, entries: &[Entry]) -> BulkOutcome {
        self.bulk_routed(&Routes::all_to(index), entries)
    }

    /// Sends `entries` as `create` actions, each into its destination's index: the
    /// request goes to the verdict index's `_bulk` (as it always did, so a key limited to
    /// that index still works for verdicts), and an entry bound elsewhere names its
    /// `_index` in its action line.
    pub fn bulk_routed(&self, routes: &Routes, entries: &[Entry]) -> BulkOutcome {
        let index = routes.verdicts.as_str();
        let mut body = Vec::with_capacity(entries.iter().map(|e| e.document.len() + 64).sum());
        for entry in entries {
            let action = match routes.index_of(entry.destination) {
                other if other != index => {
                    json!({ "create": { "_index": other, "_id": entry.id } })
                }
                _ => json!({ "create": { "_id": entry.id } }),
            };
            // Writing into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut body, &action);
            body.push(b'\n');
            body.extend_from_slice(&entry.document);
            body.push(b'\n');
        }
        let url = format!("{}/{}/_bulk", self.base, index);
        let mut request = self
            .authorised(self.http.post(url))
            .header(CONTENT_TYPE, "application/x-ndjson");
        if self.gzip {
            let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
            match encoder.write_all(&body).and_then(|()| encoder.finish()) {
                Ok(compressed) => {
                    request = request.header(CONTENT_ENCODING, "gzip");
                    body = compressed;
                }
                Err(e) => return BulkOutcome::Retry(format!("cannot compress: {e}")),
            }
        }
        let exchange = match self.http.send(request.body(body)) {
            Ok(exchange) => exchange,
            Err(e) => return BulkOutcome::NoAnswer(describe(&e)),
        };
        let status = exchange.response.status();
        let text = match read_bounded(exchange) {
            Ok(text) => text,
            Err(BodyError::TooLong { .. }) => {
                return BulkOutcome::Paused {
                    why: Pause::Misrouted,
                    reason: format!(
                        "HTTP {}: the response is longer than {RESPONSE_MAX_BYTES} bytes",
                        status.as_u16()
                    ),
                };
            }
            // The documents may or may not have been taken: try again later (their ids
            // make a second copy a 409, not a duplicate).
            Err(e @ (BodyError::Broken(_) | BodyError::TimedOut)) => {
                return BulkOutcome::Retry(format!("HTTP {}: {e}", status.as_u16()));
            }
        };
        classify_response(status.as_u16(), &text, entries.len())
    }
}

/// Which index (or data stream) each [`Destination`] is shipped to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routes {
    pub verdicts: String,
    pub status: String,
}

impl Routes {
    /// Every destination into `index`.
    pub fn all_to(index: &str) -> Self {
        Self {
            verdicts: index.to_owned(),
            status: index.to_owned(),
        }
    }

    pub fn index_of(&self, destination: Destination) -> &str {
        match destination {
            Destination::Verdicts => &self.verdicts,
            Destination::Status => &self.status,
        }
    }
}

/// The whole rule for a `_bulk` answer, from its status and body (the README's table).
pub fn classify_response(status: u16, text: &str, expected: usize) -> BulkOutcome {
    let reason = || reason_of_text(status, text);
    // A block (a flood-stage disk answers 429 with one) or a security error says what it
    // is whatever the status.
    let typed = error_type_of(text).as_deref().and_then(pause_for_type);
    match (status, typed) {
        (200, _) => parse_items(text, expected),
        (413, _) => BulkOutcome::TooLarge,
        (_, Some(why)) => BulkOutcome::Paused {
            why,
            reason: format!("HTTP {status}: {}", reason()),
        },
        // A 400 that is not an Elasticsearch error object (an HTML page from a proxy, or
        // nginx's "plain HTTP request was sent to HTTPS port") says nothing about the
        // documents: dead-lettering them would empty the spool.
        (400, None) if error_type_of(text).is_none() => BulkOutcome::Paused {
            why: Pause::Misrouted,
            reason: format!("HTTP 400 that is not Elasticsearch's: {}", reason()),
        },
        _ => by_status(status, reason),
    }
}

fn by_status(status: u16, reason: impl Fn() -> String) -> BulkOutcome {
    match status {
        408 | 429 | 500..=599 => BulkOutcome::Retry(format!("HTTP {status}: {}", reason())),
        401 | 403 => BulkOutcome::Paused {
            why: Pause::Unauthorized,
            reason: format!("HTTP {status}: {}", reason()),
        },
        400 => BulkOutcome::Rejected {
            status,
            reason: reason(),
        },
        // 404 without index_not_found_exception is a proxy or another service; 3xx, other
        // 2xx, other 4xx: not Elasticsearch's `_bulk` answering.
        _ => BulkOutcome::Paused {
            why: Pause::Misrouted,
            reason: format!("HTTP {status}: {}", reason()),
        },
    }
}

/// The error types that mean the cluster, not the document, is the obstacle.
fn pause_for_type(kind: &str) -> Option<Pause> {
    match kind {
        "security_exception" => Some(Pause::Unauthorized),
        "cluster_block_exception" | "index_closed_exception" => Some(Pause::Blocked),
        "index_not_found_exception" => Some(Pause::MissingIndex),
        _ => None,
    }
}

/// Reads at most [`RESPONSE_MAX_BYTES`] by the exchange's deadline (`support::http`): a
/// body that never ends or trickles is cut off at `timeout_ms`, one of a gigabyte by the
/// bound, before either is buffered.
fn read_bounded(exchange: Exchange) -> Result<String, BodyError> {
    let bytes = exchange.body(RESPONSE_MAX_BYTES)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn body_failure(error: &BodyError) -> String {
    format!("the answer: {error}")
}

/// One template per index, named after it.
fn template_name(index: &str) -> String {
    format!("edge-agent-{index}")
}

/// The template: `@timestamp` a date, the channels floats, the flags booleans, the ids
/// keywords (the lines sender's address and certificate name too: terms, not ranges, are
/// what one asks of them); a data stream when asked for.
pub fn template_body(index: &str, data_stream: bool) -> Value {
    let float = json!({ "type": "float" });
    let keyword = json!({ "type": "keyword" });
    let boolean = json!({ "type": "boolean" });
    let date = json!({ "type": "date" });
    let mut body = json!({
        "index_patterns": [index],
        "priority": 200,
        "template": { "mappings": { "properties": {
            "@timestamp": date,
            "host_id": keyword, "sensor_id": keyword, "function_sha256": keyword,
            "run_id": keyword, "seq": { "type": "long" }, "clock_synced": boolean,
            "temperature": float, "humidity": float, "pressure": float,
            "gas_resistance": float, "air_quality": float, "score": float,
            "gas_valid": boolean, "heater_stable": boolean, "burn_in": boolean,
            "is_anomaly": boolean,
            "error": { "type": "text" },
            "window_start": date, "window_end": date,
            "peer": keyword, "peer_name": keyword,
        }}},
        "_meta": { "managed_by": "edge-agent" },
    });
    if data_stream && let Some(object) = body.as_object_mut() {
        object.insert("data_stream".into(), json!({}));
    }
    body
}

/// Reads a 200 `_bulk` answer. `security_exception` under 200 pauses; anything that is
/// not a `_bulk` answer (not JSON, no `items`, items that do not line up with the request)
/// is misrouting, never a reason to drop a document.
fn parse_items(text: &str, expected: usize) -> BulkOutcome {
    let not_bulk = |what: String| BulkOutcome::Paused {
        why: Pause::Misrouted,
        reason: format!("HTTP 200 but {what}"),
    };
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(_) => return not_bulk(format!("not JSON: {}", preview(text))),
    };
    if let Some(kind) = value
        .get("error")
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
    {
        return BulkOutcome::Paused {
            why: pause_for_type(kind).unwrap_or(Pause::Misrouted),
            reason: format!("HTTP 200 with an error: {}", error_reason(&value)),
        };
    }
    let Some(items) = value.get("items").and_then(Value::as_array) else {
        return not_bulk("no items".into());
    };
    if items.len() != expected {
        return not_bulk(format!("{} items for {expected} documents", items.len()));
    }
    let outcomes: Vec<ItemOutcome> = items.iter().map(item_outcome).collect();
    BulkOutcome::Items(outcomes)
}

fn item_outcome(item: &Value) -> ItemOutcome {
    // One key, named after the action.
    let Some(result) = item.as_object().and_then(|o| o.values().next()) else {
        return ItemOutcome::Paused {
            why: Pause::Misrouted,
            reason: "an item without a result".into(),
        };
    };
    let status = result
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(0);
    let kind = result
        .get("error")
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let reason = || error_reason(result);
    if let Some(why) = pause_for_type(kind) {
        return ItemOutcome::Paused {
            why,
            reason: format!("{status}: {}", reason()),
        };
    }
    match status {
        200..=299 => ItemOutcome::Stored,
        409 if kind == "version_conflict_engine_exception" => ItemOutcome::AlreadyThere,
        429 | 500..=599 => ItemOutcome::Retry(format!("{status}: {}", reason())),
        401 | 403 => ItemOutcome::Paused {
            why: Pause::Unauthorized,
            reason: format!("{status}: {}", reason()),
        },
        404 => ItemOutcome::Paused {
            why: Pause::MissingIndex,
            reason: format!("{status}: {}", reason()),
        },
        // An alias without a write index, and the like: the cluster's setup, not the document.
        400 if reason().contains("alias") => ItemOutcome::Paused {
            why: Pause::MissingIndex,
            reason: format!("{status}: {}", reason()),
        },
        400 | 413 => ItemOutcome::Rejected {
            status,
            reason: reason(),
        },
        _ => ItemOutcome::Paused {
            why: Pause::Misrouted,
            reason: format!("unexpected item status {status}: {}", reason()),
        },
    }
}

fn error_type_of(text: &str) -> Option<String> {
    let value: Value = serde_json::from_str(text).ok()?;
    let error = value.get("error")?;
    error
        .get("type")
        .or_else(|| error.get("root_cause")?.get(0)?.get("type"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The start of an answer that is not JSON, escaped for the log.
fn preview(text: &str) -> String {
    crate::support::text::escape(text, 200)
}

/// `type: reason` from an Elasticsearch error object, the best there is otherwise.
/// Bounded and escaped: the text is the upstream's, and it reaches the log.
fn error_reason(holder: &Value) -> String {
    crate::support::text::untrusted(&raw_error_reason(holder))
}

fn raw_error_reason(holder: &Value) -> String {
    let error = holder.get("error");
    let pick = |e: &Value| {
        let kind = e.get("type").and_then(Value::as_str);
        let reason = e.get("reason").and_then(Value::as_str);
        match (kind, reason) {
            (Some(kind), Some(reason)) => Some(format!("{kind}: {reason}")),
            (None, Some(reason)) => Some(reason.to_owned()),
            _ => None,
        }
    };
    error
        .and_then(|e| pick(e).or_else(|| e.get("root_cause").and_then(|r| r.get(0)).and_then(pick)))
        .or_else(|| error.and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "no reason given".into())
}

fn reason_of(status: u16, body: Result<String, BodyError>) -> String {
    match body {
        Ok(text) => reason_of_text(status, &text),
        Err(e) => e.to_string(),
    }
}

fn reason_of_text(status: u16, text: &str) -> String {
    if text.trim().is_empty() {
        return StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no reason given")
            .to_owned();
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value) => error_reason(&value),
        Err(_) => preview(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_sorted_by_what_they_mean() {
        let body = r#"{"took":3,"errors":true,"items":[
            {"create":{"_index":"i","_id":"a","status":201,"result":"created"}},
            {"create":{"_index":"i","_id":"b","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[b]: version conflict, document already exists (current version [1])"}}},
            {"create":{"_index":"i","_id":"c","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution"}}},
            {"create":{"_index":"i","_id":"d","status":400,"error":{"type":"document_parsing_exception","reason":"[1:15] failed to parse field [@timestamp] of type [date]","caused_by":{"type":"illegal_argument_exception","reason":"x"}}}},
            {"create":{"_index":"i","_id":"e","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}}
        ]}"#;
        let BulkOutcome::Items(items) = parse_items(body, 5) else {
            panic!()
        };
        assert_eq!(items[0], ItemOutcome::Stored);
        assert_eq!(items[1], ItemOutcome::AlreadyThere);
        assert!(
            matches!(&items[2], ItemOutcome::Retry(r) if r.contains("es_rejected_execution_exception"))
        );
        assert_eq!(
            items[3],
            ItemOutcome::Rejected {
                status: 400,
                reason: "document_parsing_exception: [1:15] failed to parse field [@timestamp] of type [date]".into()
            }
        );
        assert!(matches!(&items[4], ItemOutcome::Retry(_)));
    }

    #[test]
    fn a_response_that_does_not_line_up_pauses_and_keeps_everything() {
        for body in ["{\"items\":[]}", "<html>", "{}", "{\"items\":[1,2]}"] {
            let outcome = parse_items(body, 2);
            assert!(
                matches!(
                    outcome,
                    BulkOutcome::Paused {
                        why: Pause::Misrouted,
                        ..
                    } | BulkOutcome::Items(_)
                ),
                "{body}: {outcome:?}"
            );
            if let BulkOutcome::Items(items) = outcome {
                assert!(
                    items
                        .iter()
                        .all(|i| matches!(i, ItemOutcome::Paused { .. })),
                    "{body}"
                );
            }
        }
    }

    /// The README's table, row by row, at the level of the rule.
    #[test]
    fn the_rule_sorts_every_answer() {
        let error = |kind: &str| format!(r#"{{"error":{{"type":"{kind}","reason":"r"}}}}"#);
        let whole = [
            (401, error("security_exception"), "paused:unauthorized"),
            (403, error("security_exception"), "paused:unauthorized"),
            (403, error("cluster_block_exception"), "paused:blocked"),
            (429, error("cluster_block_exception"), "paused:blocked"),
            (
                404,
                error("index_not_found_exception"),
                "paused:missing_index",
            ),
            (404, String::new(), "paused:misrouted"),
            (301, String::new(), "paused:misrouted"),
            (302, String::new(), "paused:misrouted"),
            (202, String::new(), "paused:misrouted"),
            (405, String::new(), "paused:misrouted"),
            (200, "<html>".into(), "paused:misrouted"),
            (200, error("security_exception"), "paused:unauthorized"),
            (200, error("cluster_block_exception"), "paused:blocked"),
            (408, String::new(), "retry"),
            (429, error("es_rejected_execution_exception"), "retry"),
            (500, String::new(), "retry"),
            (503, String::new(), "retry"),
            (413, String::new(), "too_large"),
            (400, error("illegal_argument_exception"), "rejected"),
        ];
        for (status, body, expected) in whole {
            let got = match classify_response(status, &body, 1) {
                BulkOutcome::Paused { why, .. } => format!("paused:{}", why.label()),
                BulkOutcome::Retry(_) => "retry".into(),
                BulkOutcome::TooLarge => "too_large".into(),
                BulkOutcome::Rejected { .. } => "rejected".into(),
                BulkOutcome::Items(_) => "items".into(),
                BulkOutcome::NoAnswer(_) => "no_answer".into(),
            };
            assert_eq!(got, expected, "HTTP {status} {body}");
        }
        let item = |status: u16, kind: &str| {
            item_outcome(
                &json!({"create": {"status": status, "error": {"type": kind, "reason": "r"}}}),
            )
        };
        let label = |o: ItemOutcome| match o {
            ItemOutcome::Stored => "stored".to_owned(),
            ItemOutcome::AlreadyThere => "already_there".into(),
            ItemOutcome::Retry(_) => "retry".into(),
            ItemOutcome::Rejected { .. } => "dead_letter".into(),
            ItemOutcome::Paused { why, .. } => format!("paused:{}", why.label()),
        };
        let items = [
            (201, "", "stored"),
            (409, "version_conflict_engine_exception", "already_there"),
            (409, "something_else", "paused:misrouted"),
            (429, "es_rejected_execution_exception", "retry"),
            (503, "unavailable_shards_exception", "retry"),
            (400, "document_parsing_exception", "dead_letter"),
            (400, "mapper_parsing_exception", "dead_letter"),
            (413, "", "dead_letter"),
            (401, "security_exception", "paused:unauthorized"),
            (403, "security_exception", "paused:unauthorized"),
            (403, "cluster_block_exception", "paused:blocked"),
            (429, "cluster_block_exception", "paused:blocked"),
            (400, "index_closed_exception", "paused:blocked"),
            (404, "index_not_found_exception", "paused:missing_index"),
            (404, "", "paused:missing_index"),
            (0, "", "paused:misrouted"),
            (302, "", "paused:misrouted"),
        ];
        for (status, kind, expected) in items {
            assert_eq!(label(item(status, kind)), expected, "item {status} {kind}");
        }
    }

    #[test]
    fn security_errors_give_their_reason() {
        let body: Value = serde_json::from_str(r#"{"error":{"root_cause":[{"type":"security_exception","reason":"missing authentication credentials for REST request [/_bulk]"}],"type":"security_exception","reason":"missing authentication credentials for REST request [/_bulk]"},"status":401}"#).unwrap();
        assert_eq!(
            error_reason(&body),
            "security_exception: missing authentication credentials for REST request [/_bulk]"
        );
    }

    #[test]
    fn the_template_maps_the_fields_and_can_make_a_data_stream() {
        let plain = template_body("air", false);
        assert_eq!(
            plain["template"]["mappings"]["properties"]["@timestamp"]["type"],
            "date"
        );
        assert_eq!(
            plain["template"]["mappings"]["properties"]["is_anomaly"]["type"],
            "boolean"
        );
        for sender in ["peer", "peer_name"] {
            assert_eq!(
                plain["template"]["mappings"]["properties"][sender]["type"],
                "keyword"
            );
        }
        assert!(plain.get("data_stream").is_none());
        assert!(template_body("air", true).get("data_stream").is_some());
    }
}
