//! Byte-level text helpers shared by the filter, the host and the edge.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Lowercase hex of bytes, no separators.
pub fn hex(bytes: &[u8]) -> String {
    let digit = |d: u8| char::from_digit(u32::from(d), 16).unwrap_or('0');
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(digit(b >> 4));
        s.push(digit(b & 0x0f));
    }
    s
}

/// The bytes of hex text (either case, no separators); `None` for an odd
/// length or a character that is no hex digit.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let digit = |d: u8| char::from(d).to_digit(16);
            let (hi, lo) = (digit(*pair.first()?)?, digit(*pair.get(1)?)?);
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// Whether a character would hide or reorder text around it when shown: a
/// control character (C0, DEL, C1: newlines, terminal escapes) or a
/// bidirectional formatting character.
pub fn is_deceptive(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Text safe to print on a terminal or a log line: each [`is_deceptive`]
/// character as `\u{XXXX}`, everything else (letters of any script) as it is.
pub fn escape_deceptive(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_deceptive) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_deceptive(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A byte that may stand in a header value as it is: printable ASCII.
pub fn is_printable(b: u8) -> bool {
    (0x20..0x7f).contains(&b)
}

/// A single value made safe for a header: `%`, `,`, control and non-ASCII
/// bytes, and spaces at either end, are percent-encoded; printable ASCII
/// passes as it is. So `Zoë` is `Zo%C3%AB` and no value can split a list or
/// a header line.
pub fn encode_value(value: &str) -> Cow<'_, str> {
    let bytes = value.as_bytes();
    let last = bytes.len().saturating_sub(1);
    let needs = |i: usize, b: u8| b == b'%' || b == b',' || !is_printable(b) || (b == b' ' && (i == 0 || i == last));
    if !bytes.iter().enumerate().any(|(i, &b)| needs(i, b)) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for (i, &b) in bytes.iter().enumerate() {
        if needs(i, b) {
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_would_hide_or_reorder_text_is_escaped_and_letters_are_not() {
        assert_eq!(escape_deceptive("Zoë 日本"), "Zoë 日本");
        assert_eq!(escape_deceptive("a\nb\u{1b}[31mc\u{202e}d"), "a\\u{a}b\\u{1b}[31mc\\u{202e}d");
    }

    #[test]
    fn hex_reads_back_what_it_wrote() {
        assert_eq!(from_hex(&hex(&[0, 0x0f, 0xab, 0xff])), Some(vec![0, 0x0f, 0xab, 0xff]));
        assert_eq!(from_hex("ABcd"), Some(vec![0xab, 0xcd]));
        assert_eq!(from_hex(""), Some(vec![]));
        assert_eq!(from_hex("abc"), None, "odd length");
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("+1"), None, "no sign");
    }

    #[test]
    fn hex_is_lowercase_and_padded() {
        assert_eq!(hex(&[0, 0xab, 0x0f]), "00ab0f");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn printable_is_ascii_without_controls() {
        assert!(is_printable(b' ') && is_printable(b'~'));
        assert!(!is_printable(0x7f) && !is_printable(b'\n') && !is_printable(0xc3));
    }
}
