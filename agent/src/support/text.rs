//! Text from outside the agent (a guest's export names and error messages, an upstream
//! server's bodies, a file's contents) is data: bounded before it is kept and escaped
//! before it reaches a terminal or the log, so it can neither forge log lines nor hide
//! what follows with terminal escapes.

use std::fmt::Write as _;

/// `text` without a leading UTF-8 byte order mark. Windows' Notepad and Excel's "CSV
/// UTF-8" start a file with one; read as text it is an invisible first character that a
/// password, a key or a header name then silently carries.
pub fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// [`without_bom`] for bytes not yet known to be text.
pub fn bytes_without_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes)
}

/// The most characters of outside text any single message keeps.
pub const MAX_UNTRUSTED_CHARS: usize = 1024;

/// `text` made printable on one line: control characters (newlines, ESC, DEL, C1, and
/// Unicode line/paragraph separators and bidi overrides) become `\u{..}` escapes, and
/// anything past `max_chars` is cut off and said so.
pub fn escape(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(2)));
    for (kept, (offset, c)) in text.char_indices().enumerate() {
        if kept >= max_chars {
            let _ = write!(out, "… ({} more bytes)", text.len().saturating_sub(offset));
            return out;
        }
        if is_unsafe_char(c) {
            let _ = write!(out, "{}", c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`escape`] with the default bound.
pub fn untrusted(text: &str) -> String {
    escape(text, MAX_UNTRUSTED_CHARS)
}

/// A character a terminal or a log viewer acts on instead of showing: controls, line
/// separators and bidirectional overrides (which can make text read backwards).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// At most `max_bytes` of `text`, cut at a character boundary.
pub fn clip(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The first 12 hex digits of a sha256: enough to tell modules apart in a log line.
pub fn short_sha(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_forge_lines_or_hide_text() {
        let hostile = "ok\n[ERROR] forged\u{1b}[8mhidden\u{202e}";
        let shown = untrusted(hostile);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown}");
        assert!(
            shown.contains("\\u{a}") && shown.contains("\\u{1b}"),
            "{shown}"
        );
        assert!(shown.contains("\\u{202e}"), "{shown}");
    }

    #[test]
    fn long_text_is_cut_and_says_so() {
        let long = "é".repeat(5000);
        let shown = escape(&long, 10);
        assert!(shown.starts_with(&"é".repeat(10)));
        assert!(shown.ends_with("(9980 more bytes)"), "{shown}");
        assert_eq!(clip("héllo", 2), "h");
        assert_eq!(clip("héllo", 3), "hé");
    }
}
