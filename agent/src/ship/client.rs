//! The HTTP side: one `reqwest` blocking client (rustls on the ring provider, system
//! roots or a configured CA), the index template, and `_bulk` requests with their
//! responses read item by item.

use std::io::Write;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::StatusCode;
use reqwest::blocking::{RequestBuilder, Response};
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use serde_json::{Value, json};
use thiserror::Error;

use super::Auth;
use crate::spool::Entry;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot read the CA file {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
    #[error("{0}")]
    Request(String),
    #[error("HTTP {status}: {reason}")]
    Status { status: u16, reason: String },
}

/// How a whole `_bulk` request went.
#[derive(Debug, PartialEq)]
pub enum BulkOutcome {
    /// Answered item by item, in request order.
    Items(Vec<ItemOutcome>),
    /// Worth trying again later: no connection, a timeout, 429, 5xx.
    Retry(String),
    /// 401 or 403: no point retrying soon.
    Unauthorized { status: u16, reason: String },
    /// 413: the request is too large for the server.
    TooLarge,
    /// Another 4xx for the whole request.
    Rejected { status: u16, reason: String },
}

/// How one document went.
#[derive(Debug, PartialEq)]
pub enum ItemOutcome {
    Stored,
    /// 409 on `create`: the document is already there, from an earlier try.
    AlreadyThere,
    /// 429 or 5xx for this document alone.
    Retry(String),
    /// A permanent refusal, with Elasticsearch's reason.
    Rejected {
        status: u16,
        reason: String,
    },
}

pub struct Client {
    http: reqwest::blocking::Client,
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
        // reqwest leaves the choice of crypto to us; ring is already there for rustls.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("edge-agent/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ClientError::Build(format!("the CA file is not PEM: {e}")))?;
            builder = builder.tls_certs_only(certificates);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
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

    /// Installs (or replaces) the index template for `index`.
    pub fn install_template(&self, index: &str, data_stream: bool) -> Result<(), ClientError> {
        let url = format!("{}/_index_template/{}", self.base, template_name(index));
        let response = self
            .authorised(self.http.put(url))
            .header(CONTENT_TYPE, "application/json")
            .body(template_body(index, data_stream).to_string())
            .send()
            .map_err(|e| ClientError::Request(describe(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(ClientError::Status {
            status: status.as_u16(),
            reason: reason_of(response),
        })
    }

    /// Sends `entries` as `create` actions into `index`.
    pub fn bulk(&self, index: &str, entries: &[Entry]) -> BulkOutcome {
        let mut body = Vec::with_capacity(entries.iter().map(|e| e.document.len() + 64).sum());
        for entry in entries {
            let action = json!({ "create": { "_id": entry.id } });
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
        let response = match request.body(body).send() {
            Ok(response) => response,
            Err(e) => return BulkOutcome::Retry(describe(&e)),
        };
        let status = response.status();
        match status {
            StatusCode::OK => {}
            StatusCode::PAYLOAD_TOO_LARGE => return BulkOutcome::TooLarge,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return BulkOutcome::Unauthorized {
                    status: status.as_u16(),
                    reason: reason_of(response),
                };
            }
            s if s == StatusCode::TOO_MANY_REQUESTS
                || s == StatusCode::REQUEST_TIMEOUT
                || s.is_server_error() =>
            {
                return BulkOutcome::Retry(format!("HTTP {}: {}", s.as_u16(), reason_of(response)));
            }
            s => {
                return BulkOutcome::Rejected {
                    status: s.as_u16(),
                    reason: reason_of(response),
                };
            }
        }
        let text = match response.text() {
            Ok(text) => text,
            Err(e) => return BulkOutcome::Retry(format!("the response broke off: {e}")),
        };
        parse_items(&text, entries.len())
    }
}

/// One template per index, named after it.
fn template_name(index: &str) -> String {
    format!("edge-agent-{index}")
}

/// The template: `@timestamp` a date, the channels floats, the flags booleans, the ids
/// keywords; a data stream when asked for.
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
        }}},
        "_meta": { "managed_by": "edge-agent" },
    });
    if data_stream && let Some(object) = body.as_object_mut() {
        object.insert("data_stream".into(), json!({}));
    }
    body
}

/// Reads a 200 `_bulk` response; anything that does not line up with the request is a
/// reason to retry the whole batch, never to drop it.
fn parse_items(text: &str, expected: usize) -> BulkOutcome {
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(e) => return BulkOutcome::Retry(format!("the bulk response is not JSON: {e}")),
    };
    let Some(items) = value.get("items").and_then(Value::as_array) else {
        return BulkOutcome::Retry("the bulk response has no items".into());
    };
    if items.len() != expected {
        return BulkOutcome::Retry(format!(
            "the bulk response has {} items for {expected} documents",
            items.len()
        ));
    }
    BulkOutcome::Items(items.iter().map(item_outcome).collect())
}

fn item_outcome(item: &Value) -> ItemOutcome {
    // One key, named after the action.
    let Some(result) = item.as_object().and_then(|o| o.values().next()) else {
        return ItemOutcome::Retry("an item without a result".into());
    };
    let status = result.get("status").and_then(Value::as_u64).unwrap_or(0) as u16;
    match status {
        200..=299 => ItemOutcome::Stored,
        409 => ItemOutcome::AlreadyThere,
        429 | 500..=599 | 0 => ItemOutcome::Retry(format!("{status}: {}", error_reason(result))),
        _ => ItemOutcome::Rejected {
            status,
            reason: error_reason(result),
        },
    }
}

/// `type: reason` from an Elasticsearch error object, the best there is otherwise.
fn error_reason(holder: &Value) -> String {
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

fn reason_of(response: Response) -> String {
    let status = response.status();
    match response.text() {
        Ok(text) if !text.trim().is_empty() => match serde_json::from_str::<Value>(&text) {
            Ok(value) => error_reason(&value),
            Err(_) => text.chars().take(300).collect(),
        },
        _ => status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_owned(),
    }
}

/// reqwest's errors hide their cause behind "error sending request"; show the chain.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
    fn a_response_that_does_not_line_up_is_retried() {
        assert!(matches!(
            parse_items("{\"items\":[]}", 2),
            BulkOutcome::Retry(_)
        ));
        assert!(matches!(parse_items("<html>", 1), BulkOutcome::Retry(_)));
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
        assert!(plain.get("data_stream").is_none());
        assert!(template_body("air", true).get("data_stream").is_some());
    }
}
