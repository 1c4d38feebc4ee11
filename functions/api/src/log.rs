//! A function's voice: [`log()`] and [`log!`](crate::log!), and the panic hook
//! [`register!`](crate::register) installs, through the agent's one host import,
//! `edge.log(level, ptr, len)`.
//!
//! In wasm the message goes to the agent, which copies at most 512 bytes of it, keeps at
//! most 16 messages per window (counting the rest), escapes them and prints them in its
//! log (and in `check`'s and `replay`'s output). Natively (tests, the harness) it goes to
//! standard error. A panic's message is sent at a level of its own just before the abort,
//! so the agent reports "the function panicked: …" with it instead of an `unreachable`
//! instruction.

/// How urgent a message is; the agent logs it at the same level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

/// Says `message` at `level`: to the agent in wasm, to standard error natively.
pub fn log(level: Level, message: &str) {
    write(level as u32, level.name(), message);
}

#[cfg(target_family = "wasm")]
fn write(level: u32, _name: &str, message: &str) {
    #[link(wasm_import_module = "edge")]
    unsafe extern "C" {
        #[link_name = "log"]
        fn edge_log(level: u32, ptr: *const u8, len: usize);
    }
    // SAFETY: the host reads at most `len` bytes from `ptr`, which `message` owns for the
    // length of the call, and keeps nothing of the guest's.
    unsafe { edge_log(level, message.as_ptr(), message.len()) }
}

#[cfg(not(target_family = "wasm"))]
fn write(_level: u32, name: &str, message: &str) {
    eprintln!("[function {name}] {message}");
}

/// Formats and says a message: `log!("x = {x}")` at info, `log!(Warn: "…", …)` at another
/// [`Level`].
#[macro_export]
macro_rules! log {
    ($level:ident: $($arg:tt)+) => {
        $crate::log($crate::Level::$level, &::std::format!($($arg)+))
    };
    ($($arg:tt)+) => {
        $crate::log($crate::Level::Info, &::std::format!($($arg)+))
    };
}

/// Sends a panic's message and place to the agent before the abort. Installed once by
/// the exports [`register!`](crate::register) generates; not in native builds, where a
/// test's panic should read as it always does.
#[doc(hidden)]
pub fn install_panic_hook() {
    #[cfg(target_family = "wasm")]
    {
        /// The level number the panic hook uses; the agent turns the trap that follows
        /// into the panic's message.
        const LEVEL_PANIC: u32 = 0xff;
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                let message = info.payload_as_str().unwrap_or("(no message)");
                let text = match info.location() {
                    Some(at) => format!("{message} (at {}:{})", at.file(), at.line()),
                    None => message.to_owned(),
                };
                write(LEVEL_PANIC, "PANIC", &text);
            }));
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn logs_natively_at_every_level() {
        // Standard error natively: nothing to assert but that it formats and returns.
        crate::log!("x = {}", 1);
        crate::log!(Warn: "y = {}", 2);
        crate::log(crate::Level::Debug, "z");
    }
}
