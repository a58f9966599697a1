//! Subject alternative names as their standards write them (RFC 5280
//! §4.2.1.6): a DNS name in preferred name syntax with IDNs as A-labels, an
//! e-mail address as an RFC 5321 mailbox, a URI as an absolute RFC 3986
//! URI. A SAN that fails its standard is no identity: certgate matches no
//! rule on it and sets no header from it; the CA tool will not issue it.

use std::net::Ipv6Addr;

/// Why a DNS SAN is not a DNS name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DnsNameError {
    /// Nothing at all.
    #[error("it is empty")]
    Empty,
    /// Over 253 bytes (RFC 1034 §3.1, without the root's dot).
    #[error("it is longer than 253 bytes")]
    TooLong,
    /// `a..b`, a leading or a trailing `.`.
    #[error("a label is empty (a leading, trailing or doubled `.`)")]
    EmptyLabel,
    /// Over 63 bytes.
    #[error("a label is longer than 63 bytes")]
    LabelTooLong,
    /// `*`: a wildcard names servers (RFC 6125), never a client; as a
    /// client's name it is neither a DNS name nor a pattern.
    #[error("a label is `*` or holds one: a wildcard is not a client's name")]
    Wildcard,
    /// Anything but letters, digits and `-` (an `_`, a space, non-ASCII).
    #[error("a label has a character other than letters, digits and `-` (an IDN must be written as its xn-- A-label)")]
    Character,
    /// `-a` or `a-`.
    #[error("a label starts or ends with `-`")]
    Hyphen,
    /// `ab--...` other than `xn--`: reserved by IDNA2008 (RFC 5890 §2.3.1).
    #[error("a label has `--` in its third and fourth places but is no xn-- A-label")]
    ReservedLabel,
    /// `xn--...` that does not decode as Punycode to a non-ASCII label.
    #[error("an xn-- label is not an A-label (RFC 3492 Punycode of a non-ASCII label)")]
    BadALabel,
}

/// Why an e-mail SAN is not a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// No `@`.
    #[error("it has no `@`")]
    NoAt,
    /// `@example.org`.
    #[error("the local part (before `@`) is empty")]
    EmptyLocalPart,
    /// Over 64 bytes (RFC 5321 §4.5.3.1.1).
    #[error("the local part is longer than 64 bytes")]
    LocalPartTooLong,
    /// Neither a dot-string nor a quoted string (RFC 5321 §4.1.2): a space,
    /// a second `@`, a display name, `..`, non-ASCII (which RFC 8398 puts
    /// in another kind of name).
    #[error("the local part is neither a dot-string nor a quoted string (RFC 5321 §4.1.2)")]
    LocalPart,
    /// `user@[192.0.2.1]`: a valid mailbox certgate does not match on.
    #[error("the domain is an address literal, which certgate does not match on")]
    AddressLiteral,
    /// The domain is not a DNS name.
    #[error("the domain is not a DNS name: {0}")]
    Domain(DnsNameError),
}

/// Why a URI SAN is not an absolute RFC 3986 URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// No `scheme:`, or a scheme that is not a letter then letters, digits, `+ - .`.
    #[error("it has no scheme (RFC 5280 refuses relative URIs)")]
    Scheme,
    /// `scheme:` and nothing else.
    #[error("it has nothing after the scheme")]
    Empty,
    /// A byte RFC 3986 does not allow where it is (a space, a quote, `\`,
    /// `<`, non-ASCII, a control character).
    #[error("it has a character RFC 3986 does not allow there (a space, a quote, `\\`, `<`, `>`, non-ASCII...)")]
    Character,
    /// `%` not followed by two hex digits.
    #[error("it has a `%` not followed by two hex digits")]
    PercentEncoding,
    /// `[...]` that is not an IPv6 address or IPvFuture, or a bracket elsewhere.
    #[error("its host has brackets around what is not an IPv6 address")]
    IpLiteral,
    /// `:` then something other than digits.
    #[error("its port is not a number")]
    Port,
}

/// Checks a DNS SAN.
pub fn check_dns_name(name: &str) -> Result<(), DnsNameError> {
    if name.is_empty() {
        return Err(DnsNameError::Empty);
    }
    if name.len() > 253 {
        return Err(DnsNameError::TooLong);
    }
    name.split('.').try_for_each(check_label)
}

fn check_label(label: &str) -> Result<(), DnsNameError> {
    let bytes = label.as_bytes();
    if bytes.is_empty() {
        return Err(DnsNameError::EmptyLabel);
    }
    if bytes.len() > 63 {
        return Err(DnsNameError::LabelTooLong);
    }
    if bytes.contains(&b'*') {
        return Err(DnsNameError::Wildcard);
    }
    if !bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-') {
        return Err(DnsNameError::Character);
    }
    if bytes.first() == Some(&b'-') || bytes.last() == Some(&b'-') {
        return Err(DnsNameError::Hyphen);
    }
    if bytes.get(2..4) == Some(b"--") {
        let a_label = bytes.get(..2).is_some_and(|p| p.eq_ignore_ascii_case(b"xn"));
        if !a_label {
            return Err(DnsNameError::ReservedLabel);
        }
        let decoded = bytes.get(4..).and_then(punycode_decode).ok_or(DnsNameError::BadALabel)?;
        if decoded.iter().all(char::is_ascii) || decoded.iter().any(|c| c.is_control()) {
            return Err(DnsNameError::BadALabel);
        }
    }
    Ok(())
}

/// RFC 3492 §6.2: the code points a Punycode string stands for; `None` if
/// it is not one.
fn punycode_decode(input: &[u8]) -> Option<Vec<char>> {
    const BASE: u32 = 36;
    const T_MIN: u32 = 1;
    const T_MAX: u32 = 26;
    let (basic, deltas) = match input.iter().rposition(|b| *b == b'-') {
        Some(i) => (input.get(..i)?, input.get(i + 1..)?),
        None => (&[][..], input),
    };
    let mut out: Vec<char> = basic.iter().map(|b| char::from(*b)).collect();
    let (mut n, mut i, mut bias) = (128_u32, 0_u32, 72_u32);
    let mut digits = deltas.iter();
    while digits.len() > 0 {
        let old_i = i;
        let mut w = 1_u32;
        let mut k = BASE;
        loop {
            let digit = match digits.next()? {
                c @ b'a'..=b'z' => u32::from(c - b'a'),
                c @ b'A'..=b'Z' => u32::from(c - b'A'),
                c @ b'0'..=b'9' => u32::from(c - b'0') + 26,
                _ => return None,
            };
            i = i.checked_add(digit.checked_mul(w)?)?;
            let t = k.saturating_sub(bias).clamp(T_MIN, T_MAX);
            if digit < t {
                break;
            }
            w = w.checked_mul(BASE - t)?;
            k = k.checked_add(BASE)?;
        }
        let len = u32::try_from(out.len()).ok()?.checked_add(1)?;
        bias = adapt(i - old_i, len, old_i == 0);
        n = n.checked_add(i / len)?;
        i %= len;
        out.insert(usize::try_from(i).ok()?, char::from_u32(n)?);
        i += 1;
    }
    Some(out)
}

/// RFC 3492 §6.1.
fn adapt(delta: u32, points: u32, first: bool) -> u32 {
    let mut delta = if first { delta / 700 } else { delta / 2 };
    delta += delta / points;
    let mut k = 0;
    while delta > ((36 - 1) * 26) / 2 {
        delta /= 36 - 1;
        k += 36;
    }
    k + (36 * delta) / (delta + 38)
}

/// Checks an e-mail SAN: `local@domain`, the domain a DNS name.
pub fn check_email(address: &str) -> Result<(), EmailError> {
    let (local, domain) = address.rsplit_once('@').ok_or(EmailError::NoAt)?;
    if local.is_empty() {
        return Err(EmailError::EmptyLocalPart);
    }
    if local.len() > 64 {
        return Err(EmailError::LocalPartTooLong);
    }
    if !(is_dot_string(local) || is_quoted_string(local)) {
        return Err(EmailError::LocalPart);
    }
    if domain.starts_with('[') {
        return Err(EmailError::AddressLiteral);
    }
    check_dns_name(domain).map_err(EmailError::Domain)
}

/// RFC 5321 Dot-string: atoms of atext joined by single dots.
fn is_dot_string(s: &str) -> bool {
    s.split('.').all(|atom| {
        !atom.is_empty()
            && atom
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
    })
}

/// RFC 5321 Quoted-string: printable ASCII between quotes, `"` and `\` escaped by `\`.
fn is_quoted_string(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return false;
    };
    let mut bytes = inner.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'\\' if bytes.next().is_some_and(|e| (32..=126).contains(&e)) => {}
            b'"' | b'\\' => return false,
            32..=126 => {}
            _ => return false,
        }
    }
    true
}

/// The splitting of an e-mail address its comparison needs: the local part
/// compares exactly (RFC 5321 §2.4: only the mailbox's host may read it
/// otherwise), the domain without regard to ASCII case.
pub fn split_email(address: &str) -> Option<(&str, &str)> {
    address.rsplit_once('@')
}

/// Checks a URI SAN: `scheme:hier-part[?query][#fragment]` (RFC 3986 §3),
/// absolute as RFC 5280 §4.2.1.6 asks.
pub fn check_uri(uri: &str) -> Result<(), UriError> {
    let (scheme, rest) = uri.split_once(':').ok_or(UriError::Scheme)?;
    let mut s = scheme.bytes();
    if !s.next().is_some_and(|b| b.is_ascii_alphabetic()) || !s.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) {
        return Err(UriError::Scheme);
    }
    if rest.is_empty() {
        return Err(UriError::Empty);
    }
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (hier, query) = rest.split_once('?').unwrap_or((rest, ""));
    check_chars(fragment, |b| is_pchar(b) || b"/?".contains(&b))?;
    check_chars(query, |b| is_pchar(b) || b"/?".contains(&b))?;
    let path = match hier.strip_prefix("//") {
        Some(after) => {
            let end = after.find('/').unwrap_or(after.len());
            let (authority, path) = after.split_at(end);
            check_authority(authority)?;
            path
        }
        None => hier,
    };
    check_chars(path, |b| is_pchar(b) || b == b'/')
}

fn check_authority(authority: &str) -> Result<(), UriError> {
    let (userinfo, host_port) = authority.rsplit_once('@').unwrap_or(("", authority));
    check_chars(userinfo, |b| is_unreserved(b) || is_sub_delim(b) || b == b':')?;
    let (host, port) = if let Some(literal) = host_port.strip_prefix('[') {
        let (inside, after) = literal.split_once(']').ok_or(UriError::IpLiteral)?;
        if !(inside.parse::<Ipv6Addr>().is_ok() || is_ip_future(inside)) {
            return Err(UriError::IpLiteral);
        }
        match after {
            "" => ("", None),
            a => ("", Some(a.strip_prefix(':').ok_or(UriError::Port)?)),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    if host.contains(['[', ']']) {
        return Err(UriError::IpLiteral);
    }
    check_chars(host, |b| is_unreserved(b) || is_sub_delim(b))?;
    if port.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit())) {
        return Err(UriError::Port);
    }
    Ok(())
}

/// `v` HEXDIG+ `.` (unreserved / sub-delims / `:`)+
fn is_ip_future(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(['v', 'V']) else { return false };
    let Some((version, address)) = rest.split_once('.') else {
        return false;
    };
    !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_hexdigit())
        && !address.is_empty()
        && address.bytes().all(|b| is_unreserved(b) || is_sub_delim(b) || b == b':')
}

/// Every byte is allowed by `allowed`, or is a `%` with two hex digits.
fn check_chars(s: &str, allowed: impl Fn(u8) -> bool) -> Result<(), UriError> {
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_hexdigit());
            if !(hex(bytes.next()) && hex(bytes.next())) {
                return Err(UriError::PercentEncoding);
            }
        } else if !allowed(b) {
            return Err(UriError::Character);
        }
    }
    Ok(())
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

fn is_sub_delim(b: u8) -> bool {
    b"!$&'()*+,;=".contains(&b)
}

fn is_pchar(b: u8) -> bool {
    is_unreserved(b) || is_sub_delim(b) || b":@".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_in_preferred_name_syntax_pass() {
        for name in [
            "example.org",
            "bob.svc.example.org",
            "Bob.Example.ORG",
            "1x.example.org",
            "a-b.c",
            "localhost",
            "xn--bcher-kva.example",
        ] {
            assert_eq!(check_dns_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn dns_names_that_break_rfc_5280_are_refused_each_for_its_reason() {
        use DnsNameError::*;
        let long_label = format!("{}.org", "a".repeat(64));
        let long_name = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(63)].join(".");
        for (name, want) in [
            ("", Empty),
            (long_name.as_str(), TooLong),
            ("a..b", EmptyLabel),
            ("example.org.", EmptyLabel),
            (".example.org", EmptyLabel),
            (long_label.as_str(), LabelTooLong),
            ("*.example.org", Wildcard),
            ("a*.example.org", Wildcard),
            ("bad_name.example.org", Character),
            ("bad name.example.org", Character),
            ("bücher.example", Character),
            ("-a.example.org", Hyphen),
            ("a-.example.org", Hyphen),
            ("ab--cd.example.org", ReservedLabel),
            ("xn--.example.org", Hyphen),
            ("xn--abc.example.org", BadALabel),
            ("xn--99999999999.example", BadALabel),
        ] {
            assert_eq!(check_dns_name(name), Err(want), "{name}");
        }
    }

    #[test]
    fn punycode_decodes_the_rfc_3492_samples() {
        let decode = |s: &str| punycode_decode(s.as_bytes()).map(|c| c.into_iter().collect::<String>());
        assert_eq!(decode("bcher-kva").as_deref(), Some("bücher"));
        assert_eq!(decode("mnchen-3ya").as_deref(), Some("münchen"));
        // RFC 3492 §7.1 (A), Arabic (Egyptian)
        assert_eq!(
            decode("egbpdaj6bu4bxfgehfvwxn").as_deref(),
            Some("\u{644}\u{64a}\u{647}\u{645}\u{627}\u{628}\u{62a}\u{643}\u{644}\u{645}\u{648}\u{634}\u{639}\u{631}\u{628}\u{64a}\u{61f}")
        );
        assert_eq!(decode("b!"), None);
    }

    #[test]
    fn mailboxes_pass_and_compare_by_their_parts() {
        for a in [
            "alice@example.org",
            "Alice.Smith+tag@Example.ORG",
            "\"alice smith\"@example.org",
            "\"a\\\"b\"@example.org",
            "o'brien@example.org",
        ] {
            assert_eq!(check_email(a), Ok(()), "{a}");
        }
        assert_eq!(split_email("\"a@b\"@example.org"), Some(("\"a@b\"", "example.org")));
    }

    #[test]
    fn addresses_that_are_no_mailbox_are_refused_each_for_its_reason() {
        use EmailError::*;
        let long = format!("{}@example.org", "a".repeat(65));
        for (a, want) in [
            ("alice", NoAt),
            ("@example.org", EmptyLocalPart),
            (long.as_str(), LocalPartTooLong),
            ("Alice <alice@example.org>", LocalPart),
            ("alice <alice@example.org", LocalPart),
            ("a@b@example.org", LocalPart),
            ("a..b@example.org", LocalPart),
            (".a@example.org", LocalPart),
            ("al ice@example.org", LocalPart),
            ("älice@example.org", LocalPart),
            ("\"a\"b\"@example.org", LocalPart),
            ("alice@[192.0.2.1]", AddressLiteral),
            ("alice@", Domain(DnsNameError::Empty)),
            ("alice@*.example.org", Domain(DnsNameError::Wildcard)),
            ("alice@example.org.", Domain(DnsNameError::EmptyLabel)),
        ] {
            assert_eq!(check_email(a), Err(want), "{a}");
        }
    }

    #[test]
    fn absolute_uris_pass() {
        for u in [
            "spiffe://example.org/ns/prod/sa/web",
            "https://user:pw@example.org:8443/a/b;c=d?q=1&r=%20#frag/x?y",
            "https://[2001:db8::1]:443/",
            "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
            "mailto:alice@example.org",
            "http://example.org",
            "ldap://[v7.fe80::a+en1]/c=GB?objectClass?one",
            "file:///etc/hosts",
        ] {
            assert_eq!(check_uri(u), Ok(()), "{u}");
        }
    }

    #[test]
    fn uris_that_break_rfc_3986_are_refused_each_for_its_reason() {
        use UriError::*;
        for (u, want) in [
            ("example.org/x", Scheme),
            ("/relative/path", Scheme),
            ("1http://example.org", Scheme),
            ("ht_tp://example.org", Scheme),
            ("https:", Empty),
            ("https://example.org/a b", Character),
            ("https://example.org/\"x\"", Character),
            ("https://example.org/a\\b", Character),
            ("https://example.org/<x>", Character),
            ("https://exämple.org/", Character),
            ("https://example.org/a%zz", PercentEncoding),
            ("https://example.org/a%2", PercentEncoding),
            ("https://example.org/a#b#c", Character),
            ("https://[example.org]/", IpLiteral),
            ("https://[::1/", IpLiteral),
            ("https://ex[a]mple.org/", IpLiteral),
            ("https://example.org:port/", Port),
            ("https://[::1]x/", Port),
            ("https://a@b@example.org/", Character),
        ] {
            assert_eq!(check_uri(u), Err(want), "{u}");
        }
    }
}
