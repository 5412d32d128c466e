//! A short, terminal-safe rendering of a record's bytes.

use std::fmt::Write;

/// Bytes of a payload shown in a preview; the rest is marked with [`ELLIPSIS`].
pub const PREVIEW_BYTES_MAX: usize = 64;

/// Follows a preview that was cut short.
pub const ELLIPSIS: &str = "...";

/// The first [`PREVIEW_BYTES_MAX`] bytes of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview<'a> {
    /// The bytes shown.
    pub bytes: &'a [u8],
    /// True when the payload is longer than `bytes`.
    pub truncated: bool,
}

impl<'a> Preview<'a> {
    /// The preview of `data`.
    pub fn of(data: &'a [u8]) -> Self {
        let bytes = data.get(..PREVIEW_BYTES_MAX).unwrap_or(data);
        Preview {
            bytes,
            truncated: bytes.len() < data.len(),
        }
    }

    /// Printable ASCII as itself, the usual escapes for `"`, `\`, tab, CR and LF, and `\xNN`
    /// for every other byte: one line, no control characters reach the terminal.
    pub fn escaped(&self) -> String {
        let mut out = String::with_capacity(self.bytes.len());
        for &b in self.bytes {
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                0x20..=0x7e => out.push(char::from(b)),
                // Writing to a String cannot fail.
                _ => {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
        }
        out
    }

    /// Lowercase hex of the bytes shown.
    pub fn hex(&self) -> String {
        let mut out = String::with_capacity(self.bytes.len() * 2);
        for b in self.bytes {
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    /// `"escaped"` followed by [`ELLIPSIS`] when cut short.
    pub fn quoted(&self) -> String {
        let marker = if self.truncated { ELLIPSIS } else { "" };
        format!("\"{}\"{marker}", self.escaped())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_is_shown_as_is() {
        assert_eq!(Preview::of(b"task 17: ok").quoted(), "\"task 17: ok\"");
    }

    #[test]
    fn control_bytes_and_quotes_are_escaped() {
        let p = Preview::of(b"a\"b\\c\n\x00\xff");
        assert_eq!(p.escaped(), "a\\\"b\\\\c\\n\\x00\\xff");
        assert_eq!(p.hex(), "6122625c630a00ff");
    }

    #[test]
    fn long_payloads_are_cut_with_a_marker() {
        let data = vec![b'x'; PREVIEW_BYTES_MAX + 1];
        let p = Preview::of(&data);
        assert!(p.truncated);
        assert_eq!(p.bytes.len(), PREVIEW_BYTES_MAX);
        assert_eq!(
            p.quoted(),
            format!("\"{}\"...", "x".repeat(PREVIEW_BYTES_MAX))
        );
        assert!(!Preview::of(&data[..PREVIEW_BYTES_MAX]).truncated);
    }

    #[test]
    fn empty_payload() {
        assert_eq!(Preview::of(b"").quoted(), "\"\"");
    }
}
