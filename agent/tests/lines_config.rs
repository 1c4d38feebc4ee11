//! `[source]` as the configuration file spells it: the defaults, and errors that name the
//! key and its line.

use edge_agent::config::{AgentConfig, ConfigError};
use edge_agent::sensor::lines::{Format, SourceKind, Transport};

fn invalid(text: &str) -> (String, Option<usize>, String) {
    match AgentConfig::parse(text, "agent.toml") {
        Err(ConfigError::Invalid {
            key, line, reason, ..
        }) => (key, line, reason),
        other => panic!("not an invalid key: {other:?}"),
    }
}

#[test]
fn the_bme680_stays_the_default() {
    let config = AgentConfig::parse("", "agent.toml").unwrap();
    assert_eq!(config.source.kind, SourceKind::Bme680);
}

#[test]
fn a_lines_source_parses() {
    let config = AgentConfig::parse(
        "[source]\nkind = \"lines\"\ntransport = \"udp\"\nformat = \"ndjson\"\nlisten = \"127.0.0.1:0\"\n",
        "agent.toml",
    )
    .unwrap();
    assert_eq!(
        (
            config.source.kind,
            config.source.transport,
            config.source.format
        ),
        (SourceKind::Lines, Transport::Udp, Format::Ndjson)
    );
}

#[test]
fn bad_values_are_named_with_their_line() {
    let (key, line, reason) =
        invalid("[agent]\nsensor_id = \"k\"\n\n[source]\nkind = \"lines\"\nmax_sensors = 0\n");
    assert_eq!(
        (key.as_str(), line),
        ("source.max_sensors", Some(6)),
        "{reason}"
    );
    let (key, line, _) = invalid("[source]\nkind = \"lines\"\nlisten = \"localhost\"\n");
    assert_eq!((key.as_str(), line), ("source.listen", Some(3)));
    let (key, _, reason) =
        invalid("[window]\nsize = 16384\n\n[source]\nkind = \"lines\"\nmax_sensors = 1000\n");
    assert_eq!(key, "source.max_sensors");
    assert!(reason.contains("2097152"), "{reason}");
    let (key, _, _) = invalid("[source]\nkind = \"lines\"\ntransport = \"udp\"\n");
    assert_eq!(key, "source.columns");
    assert!(AgentConfig::parse("[source]\nkind = \"serial\"\n", "agent.toml").is_err());
}
