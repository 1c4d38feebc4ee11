//! The command line, read by hand: `--name VALUE`, `--name=VALUE`, `--flag`, repeated
//! options and positionals, and nothing else. clap did this in about 100 KB of the armv7
//! binary (its builder and the derive's generated code), a third of what the Pi's 3 MB
//! budget needed cut; the agent has three subcommands and a dozen options, whose help is
//! written out in each subcommand's file.
//!
//! A subcommand claims what it knows ([`ArgList::flag`], [`ArgList::value`], ...) and then
//! calls [`ArgList::finish`], which refuses whatever nobody claimed: a misspelt option is
//! an error, never ignored.

use std::ffi::OsString;
use std::fmt;
use std::str::FromStr;

/// A command line that cannot be run; the binary prints it with the subcommand's usage
/// and exits 2, as clap did.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl UsageError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// A subcommand's arguments, each claimed at most once.
pub struct ArgList {
    args: Vec<String>,
    claimed: Vec<bool>,
}

impl ArgList {
    /// Arguments that are not UTF-8 are refused here: every option the agent has is text
    /// or a path a user typed, and a path that is not UTF-8 could not be printed back.
    pub fn new(args: impl IntoIterator<Item = OsString>) -> Result<Self, UsageError> {
        let args = args
            .into_iter()
            .map(|arg| {
                arg.into_string().map_err(|arg| {
                    UsageError(format!(
                        "argument {arg:?} is not UTF-8 text (not supported)"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let claimed = vec![false; args.len()];
        Ok(Self { args, claimed })
    }

    /// `-h` or `--help` anywhere.
    pub fn wants_help(&self) -> bool {
        self.args.iter().any(|a| a == "-h" || a == "--help")
    }

    /// `--name` given (once at most).
    pub fn flag(&mut self, name: &str) -> Result<bool, UsageError> {
        let option = format!("--{name}");
        let mut found = false;
        for (i, arg) in self.args.iter().enumerate() {
            if self.claimed[i] {
                continue;
            }
            if *arg == option {
                if found {
                    return Err(UsageError(format!("{option} is given twice")));
                }
                found = true;
                self.claimed[i] = true;
            } else if arg.starts_with(&format!("{option}=")) {
                return Err(UsageError(format!("{option} takes no value")));
            }
        }
        Ok(found)
    }

    /// Every value of `--name VALUE` or `--name=VALUE`, in order.
    pub fn values(&mut self, name: &str) -> Result<Vec<String>, UsageError> {
        let option = format!("--{name}");
        let inline = format!("{option}=");
        let mut values = Vec::new();
        let mut i = 0;
        while i < self.args.len() {
            if !self.claimed[i] {
                if self.args[i] == option {
                    let value = self
                        .args
                        .get(i + 1)
                        .filter(|_| !self.claimed.get(i + 1).copied().unwrap_or(true))
                        .ok_or_else(|| UsageError(format!("{option} needs a value")))?;
                    values.push(value.clone());
                    self.claimed[i] = true;
                    self.claimed[i + 1] = true;
                    i += 2;
                    continue;
                }
                if let Some(value) = self.args[i].strip_prefix(&inline) {
                    values.push(value.to_owned());
                    self.claimed[i] = true;
                }
            }
            i += 1;
        }
        Ok(values)
    }

    /// The value of `--name`, given at most once.
    pub fn value(&mut self, name: &str) -> Result<Option<String>, UsageError> {
        let mut values = self.values(name)?;
        if values.len() > 1 {
            return Err(UsageError(format!("--{name} is given more than once")));
        }
        Ok(values.pop())
    }

    /// The value of `--name`, parsed; the error names the option and the value.
    pub fn parsed<T>(&mut self, name: &str) -> Result<Option<T>, UsageError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.value(name)?
            .map(|text| parse_as(name, &text))
            .transpose()
    }

    /// The first argument nobody claimed that is not an option: call it after the
    /// options, so that an option's value is not taken for it.
    pub fn positional(&mut self) -> Option<String> {
        let i =
            (0..self.args.len()).find(|&i| !self.claimed[i] && !self.args[i].starts_with('-'))?;
        self.claimed[i] = true;
        Some(self.args[i].clone())
    }

    /// Refuses anything left: an unknown option, a value no option took.
    pub fn finish(self) -> Result<(), UsageError> {
        match (0..self.args.len()).find(|&i| !self.claimed[i]) {
            None => Ok(()),
            Some(i) => Err(UsageError(format!(
                "unexpected argument {:?}",
                self.args[i]
            ))),
        }
    }
}

/// `text` as the value of `--name`.
pub fn parse_as<T>(name: &str, text: &str) -> Result<T, UsageError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    text.parse()
        .map_err(|e| UsageError(format!("invalid value {text:?} for --{name}: {e}")))
}

/// `--param NAME=VALUE`.
pub fn parse_param(text: &str) -> Result<(String, String), UsageError> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(UsageError(format!(
            "invalid value {text:?} for --param: expected NAME=VALUE"
        ))),
    }
}

/// Every `--param NAME=VALUE`, in order.
pub fn params(args: &mut ArgList) -> Result<Vec<(String, String)>, UsageError> {
    args.values("param")?
        .iter()
        .map(|text| parse_param(text))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(args: &[&str]) -> ArgList {
        ArgList::new(args.iter().map(OsString::from)).unwrap()
    }

    #[test]
    fn values_flags_and_positionals_are_claimed_once() {
        let mut args = list(&[
            "--window",
            "5",
            "f.wasm",
            "--param=a=1",
            "--param",
            "b = 2",
            "--strict",
        ]);
        assert_eq!(args.parsed::<usize>("window").unwrap(), Some(5));
        assert!(args.flag("strict").unwrap());
        assert!(!args.flag("simulate").unwrap());
        assert_eq!(
            params(&mut args).unwrap(),
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert_eq!(args.positional().as_deref(), Some("f.wasm"));
        assert_eq!(args.positional(), None);
        args.finish().unwrap();
    }

    #[test]
    fn what_nobody_claims_is_refused() {
        let mut args = list(&["--windwo", "5"]);
        assert_eq!(args.value("window").unwrap(), None);
        let error = args.finish().unwrap_err().to_string();
        assert!(error.contains("--windwo"), "{error}");
    }

    #[test]
    fn bad_values_name_the_option() {
        let mut args = list(&["--window", "five"]);
        let error = args.parsed::<usize>("window").unwrap_err().to_string();
        assert!(
            error.contains("--window") && error.contains("five"),
            "{error}"
        );
        assert!(list(&["--window"]).value("window").is_err());
        assert!(list(&["--a", "1", "--a", "2"]).value("a").is_err());
        assert!(list(&["--simulate=yes"]).flag("simulate").is_err());
        assert!(parse_param("=1").is_err());
        assert!(parse_param("x").is_err());
    }

    #[test]
    fn help_is_seen_anywhere() {
        assert!(list(&["--window", "5", "-h"]).wants_help());
        assert!(!list(&["--window", "5"]).wants_help());
    }
}
