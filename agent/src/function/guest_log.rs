//! What a guest says through its one permitted import, `edge.log(level, ptr, len)`
//! (the SDK's `log!` and its panic hook): kept in the store, bounded, until the host
//! prints it after the call.
//!
//! One import rather than a buffer in guest memory the host reads after each call: a
//! guest that traps (a panic is a trap) leaves its memory half-updated and unreadable
//! with any confidence, while the host's copy is already made. Bounds, so that a chatty
//! or hostile guest cannot flood the journal or the host's memory: at most
//! [`MAX_LOG_BYTES`] of a message are copied out of guest memory (the rest is counted,
//! never read), at most [`MAX_LOG_LINES`] are kept per window (or instantiation), the rest
//! counted and reported as one line; all of it escaped before it is printed. Every call
//! costs the guest fuel like any other call, so spinning on it stops at the budget.

use crate::support::text::untrusted;

/// The most bytes of one message copied out of guest memory.
pub const MAX_LOG_BYTES: usize = 512;
/// The most messages kept per window (per instantiation: `start` and `init` together).
pub const MAX_LOG_LINES: usize = 16;
/// The level the SDK's panic hook uses: the message becomes the trap's reason.
pub const LEVEL_PANIC: u32 = 0xff;

/// A message's severity, as the SDK numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl GuestLevel {
    /// Any other number is `Info`: a guest cannot make its text look more urgent than it
    /// says, nor silence it with a level the host does not know.
    fn from_u32(level: u32) -> Self {
        match level {
            0 => Self::Error,
            1 => Self::Warn,
            3 => Self::Debug,
            _ => Self::Info,
        }
    }

    pub fn log_level(self) -> log::Level {
        match self {
            Self::Error => log::Level::Error,
            Self::Warn => log::Level::Warn,
            Self::Info => log::Level::Info,
            Self::Debug => log::Level::Debug,
        }
    }
}

/// The messages of one window, bounded.
#[derive(Debug, Default)]
pub struct GuestLog {
    lines: Vec<(GuestLevel, String)>,
    /// Messages past [`MAX_LOG_LINES`], counted and not kept.
    dropped: u64,
    /// The last panic message of this window, escaped: a trap with one is a panic.
    panic: Option<String>,
}

impl GuestLog {
    /// Takes one message: `bytes` is at most [`MAX_LOG_BYTES`] already copied from the
    /// guest, `more` how many it said beyond them.
    pub fn push(&mut self, level: u32, bytes: &[u8], more: usize) {
        let mut text = untrusted(&String::from_utf8_lossy(bytes));
        if more > 0 {
            text.push_str(&format!("… ({more} more bytes)"));
        }
        if level == LEVEL_PANIC {
            // A panic ends the call: always kept, whatever the rate, and said as its error.
            self.panic = Some(text);
            return;
        }
        if self.lines.len() >= MAX_LOG_LINES {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        self.lines.push((GuestLevel::from_u32(level), text));
    }

    /// Whether another message would be kept: the host skips copying one that would not.
    pub fn has_room(&self, level: u32) -> bool {
        level == LEVEL_PANIC || self.lines.len() < MAX_LOG_LINES
    }

    pub fn count_dropped(&mut self) {
        self.dropped = self.dropped.saturating_add(1);
    }

    /// The panic message the guest left, if any, taken.
    pub fn take_panic(&mut self) -> Option<String> {
        self.panic.take()
    }

    /// Everything kept since the last drain, and how many were dropped; empties the log.
    pub fn drain(&mut self) -> (Vec<(GuestLevel, String)>, u64) {
        self.panic = None;
        (
            std::mem::take(&mut self.lines),
            std::mem::take(&mut self.dropped),
        )
    }
}

/// Prints what the guest said, through the agent's log (the journal, and standard error
/// for `check` and `replay`), under its own target so it can be filtered
/// (`RUST_LOG=edge_agent::guest=warn`).
pub fn print(log: &mut GuestLog, sha: &str) {
    let (lines, dropped) = log.drain();
    for (level, text) in lines {
        log::log!(target: "edge_agent::guest", level.log_level(), "function {sha} says: {text}");
    }
    if dropped > 0 {
        log::warn!(
            target: "edge_agent::guest",
            "function {sha}: {dropped} more log lines dropped (at most {MAX_LOG_LINES} per window)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_escaped_and_panics_kept_apart() {
        let mut log = GuestLog::default();
        log.push(2, b"hello\n\x1b[31mforged", 0);
        log.push(0, b"cut", 600);
        for _ in 0..MAX_LOG_LINES {
            log.push(7, b"spam", 0);
        }
        assert!(!log.has_room(2));
        assert!(log.has_room(LEVEL_PANIC));
        log.push(LEVEL_PANIC, b"boom", 0);
        assert_eq!(log.take_panic().as_deref(), Some("boom"));
        assert_eq!(log.take_panic(), None);
        let (lines, dropped) = log.drain();
        assert_eq!(lines.len(), MAX_LOG_LINES);
        assert_eq!(dropped, 2);
        assert_eq!(lines[0].0, GuestLevel::Info);
        assert!(
            !lines[0].1.contains('\n') && !lines[0].1.contains('\x1b'),
            "{}",
            lines[0].1
        );
        assert_eq!(
            lines[1],
            (GuestLevel::Error, "cut… (600 more bytes)".into())
        );
        assert_eq!(lines[2].0, GuestLevel::Info, "an unknown level is info");
        assert_eq!(log.drain(), (Vec::new(), 0));
    }
}
