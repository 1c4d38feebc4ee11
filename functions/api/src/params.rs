//! Named parameters, as the operator wrote them (`--param period=24`, or the config file).

use core::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The function's named parameters, as `name=value` text. Values are parsed by the
/// function, so the agent needs no knowledge of any function's parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a parameter.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The raw text of a parameter.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// A parameter parsed as `T`, `None` when absent; a value that does not parse is an
    /// error naming the parameter and the value.
    pub fn get<T: FromStr>(&self, name: &str) -> Result<Option<T>, Error>
    where
        T::Err: core::fmt::Display,
    {
        self.raw(name)
            .map(|text| {
                text.trim().parse::<T>().map_err(|e| {
                    Error::new(format!("parameter `{name}`: cannot use `{text}`: {e}"))
                })
            })
            .transpose()
    }

    /// Refuses any parameter not in `known`, so a misspelt name is an error rather than
    /// a silently ignored setting.
    pub fn only(&self, known: &[&str]) -> Result<(), Error> {
        match self.iter().find(|(n, _)| !known.contains(n)) {
            None => Ok(()),
            Some((name, _)) => Err(Error::new(format!(
                "unknown parameter `{name}` (known: {})",
                known.join(", ")
            ))),
        }
    }
}

impl<N: Into<String>, V: Into<String>, const K: usize> From<[(N, V); K]> for Params {
    fn from(pairs: [(N, V); K]) -> Self {
        pairs.into_iter().collect()
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Params {
    fn from_iter<T: IntoIterator<Item = (N, V)>>(pairs: T) -> Self {
        let mut params = Self::new();
        for (name, value) in pairs {
            params.set(name, value);
        }
        params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_the_bad_parameter() {
        let params = Params::from([("period", "24"), ("alpha", "x")]);
        assert_eq!(params.get::<usize>("period"), Ok(Some(24)));
        assert_eq!(params.get::<usize>("missing"), Ok(None));
        let err = params.get::<f32>("alpha").unwrap_err();
        assert!(err.message.contains("`alpha`"), "{err}");
        assert!(err.message.contains("`x`"), "{err}");
    }

    #[test]
    fn refuses_unknown_names_and_later_values_win() {
        let mut params = Params::from([("period", "24")]);
        params.set("period", "12");
        assert_eq!(params.raw("period"), Some("12"));
        assert!(params.only(&["period"]).is_ok());
        params.set("perod", "3");
        let err = params.only(&["period"]).unwrap_err();
        assert!(err.message.contains("`perod`"), "{err}");
    }
}
