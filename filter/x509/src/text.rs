//! Byte-level text helpers shared by the filter and the host.

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

/// A byte that may stand in a header value as it is: printable ASCII.
pub fn is_printable(b: u8) -> bool {
    (0x20..0x7f).contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

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
