//! `deploy/kibana/edge-agent.ndjson`: every line is a saved object Kibana can import, every
//! field the data view, the visualisations, the saved search and their queries use is a
//! field the shipper writes (a key of a serialised `VerdictRecord`), and every reference
//! between the objects resolves inside the file.

use std::collections::BTreeSet;

use edge_agent::record::{Judgement, VerdictRecord};
use edge_agent::sensor::Sample;
use edge_function::Verdict;
use serde_json::Value;

fn saved_objects() -> Vec<Value> {
    let path = edge_tests::workspace().join("deploy/kibana/edge-agent.ndjson");
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
                    ("sourceField" | "field" | "fieldName" | "timeFieldName" | "timeField", Value::String(name))
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

#[test]
fn every_field_the_dashboard_uses_is_one_the_shipper_writes() {
    let objects = saved_objects();
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
    let objects = saved_objects();
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
    assert_eq!(data_view["attributes"]["title"], "edge-agent*");
    assert_eq!(data_view["attributes"]["timeFieldName"], "@timestamp");

    for object in &objects {
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
