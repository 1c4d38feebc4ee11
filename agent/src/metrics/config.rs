//! The `[metrics]` section: where `/metrics` (Prometheus) and `/health` are served.
//! Checked with the rest of the file (`config.rs` calls [`MetricsSection::check`]).

use std::net::{AddrParseError, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::support::check::Refusal;

/// Loopback only: the numbers say nothing secret, but nobody should have to firewall them.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9898";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    pub enabled: bool,
    /// `IP:port`; port 0 takes any free port (the log names it); empty disables. Unset:
    /// [`DEFAULT_METRICS_LISTEN`], where a port already taken is a warning, not an error.
    pub listen: Option<String>,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
        }
    }
}

/// Where to serve metrics, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsListen {
    Disabled,
    /// The address was set: failing to bind it is an error.
    Configured(SocketAddr),
    /// The default address: when taken (a second agent, a test), the agent runs without.
    Default(SocketAddr),
}

impl MetricsSection {
    /// Checked by [`MetricsSection::check`]; a bad address there is a configuration error.
    pub fn listen(&self) -> Result<MetricsListen, AddrParseError> {
        match self.listen.as_deref().map(str::trim) {
            _ if !self.enabled => Ok(MetricsListen::Disabled),
            Some("") => Ok(MetricsListen::Disabled),
            Some(addr) => addr.parse().map(MetricsListen::Configured),
            None => DEFAULT_METRICS_LISTEN.parse().map(MetricsListen::Default),
        }
    }

    /// The rules serde cannot express.
    pub fn check(&self) -> Result<(), Refusal> {
        self.listen().map(drop).map_err(|e| {
            (
                "metrics.listen",
                format!("{e}: expected IP:port, e.g. \"127.0.0.1:9898\" or \"[::1]:9898\""),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentConfig;

    #[test]
    fn metrics_listen_default_set_disabled_and_bad() {
        let listen = |text: &str| AgentConfig::parse(text, "t").map(|c| c.metrics.listen());
        assert_eq!(
            listen(""),
            Ok(Ok(MetricsListen::Default(
                "127.0.0.1:9898".parse().unwrap()
            )))
        );
        assert_eq!(
            listen("[metrics]\nlisten = \"0.0.0.0:0\"\n"),
            Ok(Ok(MetricsListen::Configured("0.0.0.0:0".parse().unwrap())))
        );
        assert_eq!(
            listen("[metrics]\nlisten = \"\"\n"),
            Ok(Ok(MetricsListen::Disabled))
        );
        assert_eq!(
            listen("[metrics]\nenabled = false\nlisten = \"127.0.0.1:1\"\n"),
            Ok(Ok(MetricsListen::Disabled))
        );
        let err = AgentConfig::parse("[metrics]\nlisten = \"localhost\"\n", "agent.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("agent.toml, line 2: `metrics.listen`: "),
            "{err}"
        );
    }
}
