//! The commands' errors: a message and what caused it, printed as one chain
//! (`cannot start the sensor: cannot open /dev/i2c-1: No such file or directory`). The
//! library returns typed errors; the commands only add what they were doing. This is the
//! part of anyhow the binary used, without its backtrace capture (anyhow was 12 KiB of the
//! armv7 binary, more with the backtrace code it reaches).

use std::error::Error;
use std::fmt;

/// A command's failure, as the text it will be printed as. Not itself an `Error`, so that
/// any error converts into it.
pub struct Fail {
    message: String,
}

pub type Result<T, E = Fail> = std::result::Result<T, E>;

impl Fail {
    pub fn msg(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
        }
    }

    /// This failure, said as the consequence of `self`: `context: self`.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Self {
            message: format!("{context}: {}", self.message),
        }
    }
}

impl<E: Error + Send + Sync + 'static> From<E> for Fail {
    /// The error, then each cause it did not already say.
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut cause = error.source();
        while let Some(source) = cause {
            let text = source.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            cause = source.source();
        }
        Self { message }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// `.context(...)` and `.with_context(|| ...)` on results and options, as anyhow had them.
pub trait Context<T> {
    fn context(self, context: impl fmt::Display) -> Result<T>;
    fn with_context<D: fmt::Display>(self, context: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Into<Fail>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<D: fmt::Display>(self, context: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| e.into().context(context()))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.ok_or_else(|| Fail::msg(context))
    }

    fn with_context<D: fmt::Display>(self, context: impl FnOnce() -> D) -> Result<T> {
        self.ok_or_else(|| Fail::msg(context()))
    }
}

/// A [`Fail`] from a format string.
macro_rules! fail {
    ($($arg:tt)*) => {
        $crate::cli::fail::Fail::msg(format!($($arg)*))
    };
}

/// Returns a [`Fail`] from a format string.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::cli::fail::fail!($($arg)*))
    };
}

// `bail!` names `fail!` by path; both reach the commands through `#[macro_use]`.
pub(crate) use fail;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_reads_outermost_first_and_says_each_cause_once() {
        let io = std::io::Error::other("disk full");
        let failed: Result<()> = Err(io).context("cannot write x");
        let failed = failed.with_context(|| "cannot save").unwrap_err();
        assert_eq!(failed.to_string(), "cannot save: cannot write x: disk full");
        let none: Option<u8> = None;
        assert_eq!(
            none.context("no value").unwrap_err().to_string(),
            "no value"
        );
        assert_eq!(fail!("{} and {}", 1, 2).to_string(), "1 and 2");
    }
}
