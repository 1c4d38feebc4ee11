//! `deploy/kibana/edge-agent.ndjson` (verdicts) and `deploy/kibana/edge-fleet.ndjson` (fleet
//! status): every line is a saved object Kibana can import, every field the data view, the
//! visualisations, the saved search and their queries use is a field the agent writes (a
//! key of a serialised `VerdictRecord`, or of a `StatusDocument`), and every reference
//! between the objects resolves inside the file.

use std::collections::BTreeSet;

use edge_agent::record::{Judgement, VerdictRecord};
use edge_agent::sensor::Sample;
use edge_function::Verdict;
use serde_json::Value;

const VERDICTS: &str = "edge-agent.ndjson";
const FLEET: &str = "edge-fleet.ndjson";

fn saved_objects(file: &str) -> Vec<Value> {
    let path = edge_tests::workspace().join("deploy/kibana").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'));
    text.lines()
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", n + 1))
        })
        .collect()
}

/// Every key the shipper can write: a judged sample with a score, and a refused one.
fn shipped_fields() -> BTreeSet<String> {
    let sample = Sample {
        timestamp: 1_764_000_000_000,
        run_id: edge_agent::sensor::RunId::from_raw(0x5eed),
        seq: 42,
        clock_synced: true,
        temperature: 22.5,
        humidity: 41.0,
        pressure: 1013.2,
        gas_resistance: 180_000.0,
        air_quality: 84.0,
        gas_valid: true,
        heater_stable: true,
        burn_in: false,
        sensor_id: None,
        peer: None,
    };
    let judgement = Judgement {
        host_id: "pi",
        sensor_id: "bme680",
        function_sha256: "ab",
        window: (1_763_999_000_000, 1_764_000_000_000),
    };
    let judged = Verdict {
        is_anomaly: true,
        score: Some(3.5),
    };
    [
        VerdictRecord::new(&sample, &judgement, Ok(judged)),
        VerdictRecord::new(&sample, &judgement, Err("refused".into())),
    ]
    .iter()
    .flat_map(|record| {
        let value = serde_json::to_value(record).unwrap();
        value
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    })
    .collect()
}

/// Field names in a KQL query: the identifier before each `:`.
fn kuery_fields(query: &str) -> Vec<String> {
    query
        .split(':')
        .rev()
        .skip(1)
        .filter_map(|before| {
            let name: String = before
                .trim_end()
                .chars()
                .rev()
                .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '@'))
                .collect();
            (!name.is_empty()).then(|| name.chars().rev().collect())
        })
        .collect()
}

/// Walks `value`, JSON inside strings included (panelsJSON, searchSourceJSON, …), and
/// collects every field name it refers to.
fn collect_fields(value: &Value, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if map.get("language").and_then(Value::as_str) == Some("kuery")
                && let Some(query) = map.get("query").and_then(Value::as_str)
            {
                into.extend(kuery_fields(query));
            }
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("sourceField" | "sortField" | "field" | "fieldName" | "timeFieldName" | "timeField", Value::String(name))
                        // Lens' stand-in for "count of documents", not a field.
                        if name != "___records___" =>
                    {
                        into.insert(name.clone());
                    }
                    // A saved search's columns and sort.
                    ("columns", Value::Array(names)) => {
                        into.extend(names.iter().filter_map(Value::as_str).map(str::to_owned));
                    }
                    ("sort", Value::Array(pairs)) => into.extend(
                        pairs
                            .iter()
                            .filter_map(|pair| pair.get(0)?.as_str())
                            .map(str::to_owned),
                    ),
                    _ => {}
                }
                collect_fields(inner, into);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_fields(item, into)),
        Value::String(text) if text.starts_with('{') || text.starts_with('[') => {
            if let Ok(inner) = serde_json::from_str::<Value>(text) {
                collect_fields(&inner, into);
            }
        }
        _ => {}
    }
}

/// Every key a status document can have: one with every optional field set.
fn status_fields() -> BTreeSet<String> {
    use edge_agent::fleet::status::{Report, ReportKind, ReporterIdentity};
    use edge_agent::fleet::{Observed, StatusDocument};
    let observed = Observed {
        rollout: edge_agent::registry::RolloutStatus {
            group: Some("lab".into()),
            manifest_version: Some(3),
            target_sha256: Some("ab".into()),
            reason: Some("r".into()),
            ..Default::default()
        },
        last_delivery_ms: 1_764_000_000_000,
        ..Observed::default()
    };
    let identity = ReporterIdentity {
        host_id: "pi".into(),
        sensor_id: "bme680".into(),
        run_id: edge_agent::sensor::RunId::from_raw(1),
    };
    let document = StatusDocument::new(
        Report {
            identity: &identity,
            seq: 0,
            kind: ReportKind::Change,
            changed: vec!["function"],
            interval_secs: 300,
            uptime_secs: 1,
            unix_ms: 1_764_000_000_000,
        },
        &observed,
    );
    let value = serde_json::to_value(&document).unwrap();
    value.as_object().unwrap().keys().cloned().collect()
}

fn used_fields(objects: &[Value]) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for object in objects {
        collect_fields(object, &mut used);
    }
    used
}

#[test]
fn every_field_the_fleet_dashboard_uses_is_one_a_status_document_has() {
    let used = used_fields(&saved_objects(FLEET));
    let written = status_fields();
    let unknown: Vec<&String> = used.difference(&written).collect();
    assert!(
        unknown.is_empty(),
        "fields no status document has: {unknown:?}"
    );
    // Not vacuous: versions, states, last seen, the changes.
    for field in [
        "@timestamp",
        "host_id",
        "function_sha256",
        "manifest_version",
        "rollout_state",
        "rollout_reason",
        "report",
        "interval_secs",
    ] {
        assert!(
            used.contains(field),
            "the fleet dashboard does not use {field}"
        );
    }
}

#[test]
fn the_fleet_objects_are_importable_and_read_the_default_status_index() {
    let objects = saved_objects(FLEET);
    check_importable(&objects, "edge-fleet*");
    // The default status index is inside the fleet data view and outside the verdicts'.
    let index = edge_agent::fleet::DEFAULT_STATUS_INDEX;
    assert!(index.starts_with("edge-fleet"));
    assert!(!index.starts_with("edge-agent"));
    // The fleet's three questions are on the dashboard.
    let titles: BTreeSet<&str> = objects
        .iter()
        .filter_map(|o| o["attributes"]["title"].as_str())
        .collect();
    for title in [
        "Versions in use",
        "Agents by rollout state",
        "Agents silent for longest",
    ] {
        assert!(titles.contains(title), "{title} is missing: {titles:?}");
    }
}

#[test]
fn every_field_the_dashboard_uses_is_one_the_shipper_writes() {
    let objects = saved_objects(VERDICTS);
    let mut used = BTreeSet::new();
    for object in &objects {
        collect_fields(object, &mut used);
    }
    let shipped = shipped_fields();
    let unknown: Vec<&String> = used.difference(&shipped).collect();
    assert!(
        unknown.is_empty(),
        "fields the shipper does not write: {unknown:?}"
    );
    // Not vacuous: the series and the verdict are drawn.
    for field in [
        "@timestamp",
        "air_quality",
        "is_anomaly",
        "temperature",
        "humidity",
        "pressure",
        "gas_resistance",
    ] {
        assert!(used.contains(field), "the dashboard does not use {field}");
    }
}

#[test]
fn the_objects_are_importable_and_their_references_resolve() {
    check_importable(&saved_objects(VERDICTS), "edge-agent*");
}

fn check_importable(objects: &[Value], data_view_title: &str) {
    let ids: BTreeSet<(String, String)> = objects
        .iter()
        .map(|o| {
            let kind = o["type"].as_str().expect("a type").to_owned();
            let id = o["id"].as_str().expect("an id").to_owned();
            assert!(o["attributes"].is_object(), "{id}: attributes");
            assert!(
                o["coreMigrationVersion"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("8.")),
                "{id}: Kibana 8 objects"
            );
            (kind, id)
        })
        .collect();
    assert_eq!(ids.len(), objects.len(), "an id twice");

    let data_view = objects
        .iter()
        .find(|o| o["type"] == "index-pattern")
        .expect("a data view");
    assert_eq!(data_view["attributes"]["title"], data_view_title);
    assert_eq!(data_view["attributes"]["timeFieldName"], "@timestamp");

    for object in objects {
        for reference in object["references"].as_array().expect("references") {
            let target = (
                reference["type"].as_str().unwrap().to_owned(),
                reference["id"].as_str().unwrap().to_owned(),
            );
            assert!(
                ids.contains(&target),
                "{} refers to {target:?}, which is not in the file",
                object["id"]
            );
        }
    }

    // The dashboard's panels are the lens visualisations and the saved search, each with
    // a reference of its own.
    let dashboard = objects
        .iter()
        .find(|o| o["type"] == "dashboard")
        .expect("a dashboard");
    let panels: Vec<Value> =
        serde_json::from_str(dashboard["attributes"]["panelsJSON"].as_str().unwrap()).unwrap();
    let references = dashboard["references"].as_array().unwrap();
    for panel in &panels {
        let name = format!(
            "{}:{}",
            panel["panelIndex"].as_str().unwrap(),
            panel["panelRefName"].as_str().unwrap()
        );
        assert!(
            references.iter().any(|r| r["name"] == name.as_str()),
            "panel {name} has no reference"
        );
    }
    assert_eq!(panels.len(), references.len());

    // Every Lens layer reads the data view.
    for lens in objects.iter().filter(|o| o["type"] == "lens") {
        let layers = lens["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]
            .as_object()
            .unwrap();
        for layer in layers.keys() {
            let name = format!("indexpattern-datasource-layer-{layer}");
            assert!(
                lens["references"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["name"] == name.as_str() && r["type"] == "index-pattern"),
                "{}: layer {layer} has no data view",
                lens["id"]
            );
        }
    }
}

#[test]
fn kuery_fields_are_found() {
    assert_eq!(kuery_fields("is_anomaly : true"), ["is_anomaly"]);
    assert_eq!(
        kuery_fields("is_anomaly:true and sensor_id : \"kitchen\""),
        ["sensor_id", "is_anomaly"]
    );
}
