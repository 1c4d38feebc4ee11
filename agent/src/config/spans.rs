//! Where each key of the configuration file is, as the TOML parser saw it, so that every
//! error names the right key and line.

use super::ConfigError;
use super::de::Refused;

/// Where each key of the file is, as the TOML parser itself saw it: dotted keys, inline
/// tables and `[table]` headers alike, so every error names the right key and line.
#[derive(Default)]
pub struct Spans {
    /// Dotted path, the key's span, the value's span.
    keys: Vec<(String, std::ops::Range<usize>, std::ops::Range<usize>)>,
    /// Byte offsets where each line starts.
    line_starts: Vec<usize>,
}

impl Spans {
    /// The lines of `text`, and the keys of `table` (its parse), if it parsed.
    pub fn new(text: &str, table: Option<&toml::de::DeTable<'_>>) -> Self {
        let mut spans = Self {
            keys: Vec::new(),
            line_starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(at, _)| at + 1))
                .collect(),
        };
        if let Some(table) = table {
            spans.walk("", table);
        }
        spans
    }

    fn walk(&mut self, prefix: &str, table: &toml::de::DeTable<'_>) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            self.keys.push((path.clone(), key.span(), value.span()));
            if let toml::de::DeValue::Table(inner) = value.get_ref() {
                self.walk(&path, inner);
            }
        }
    }

    /// The 1-based line of the byte at `offset`.
    fn line_at(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|start| *start <= offset)
    }

    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.keys
            .iter()
            .find(|(path, _, _)| path == key)
            .map(|(_, span, _)| self.line_at(span.start))
    }

    /// The innermost key whose name or value holds `offset`.
    fn key_at(&self, offset: usize) -> Option<&str> {
        self.keys
            .iter()
            .filter(|(_, key, value)| key.contains(&offset) || value.contains(&offset))
            .max_by_key(|(path, _, _)| path.len())
            .map(|(path, _, _)| path.as_str())
    }

    /// A value that does not fit its type, named by its key and line. What the file says
    /// is escaped: a terminal must not run it.
    pub fn refused(&self, refused: Refused, origin: &str) -> ConfigError {
        let reason = crate::support::text::untrusted(&refused.message);
        match refused.span {
            Some(span) if !refused.key.is_empty() => ConfigError::Invalid {
                path: origin.to_owned(),
                key: crate::support::text::untrusted(&refused.key),
                line: Some(self.line_at(span.start)),
                reason,
            },
            _ => ConfigError::Parse {
                path: origin.to_owned(),
                detail: reason,
            },
        }
    }

    /// A file that does not parse as TOML.
    pub fn parse_error(&self, error: &toml::de::Error, origin: &str) -> ConfigError {
        let Some(span) = error.span() else {
            return ConfigError::Parse {
                path: origin.to_owned(),
                detail: error.message().trim_end().to_owned(),
            };
        };
        let line = Some(self.line_at(span.start));
        match self.key_at(span.start) {
            Some(key) => ConfigError::Invalid {
                path: origin.to_owned(),
                key: crate::support::text::untrusted(key),
                line,
                reason: crate::support::text::untrusted(error.message().trim_end()),
            },
            // A syntax error: toml's own text shows the line and a caret. The line is the
            // file's, so each is escaped: a terminal must not run what the file holds.
            None => ConfigError::Parse {
                path: origin.to_owned(),
                detail: error
                    .to_string()
                    .trim_end()
                    .lines()
                    .map(crate::support::text::untrusted)
                    .collect::<Vec<_>>()
                    .join("\n"),
            },
        }
    }
}
