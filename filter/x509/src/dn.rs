//! Distinguished names: read from a certificate, written as RFC 2253 text (as
//! OpenSSL, nginx's `$ssl_client_s_dn` and Envoy print them), and parsed back
//! from that text attribute by attribute.

use std::fmt::Write as _;

use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use crate::text::{hex, is_deceptive, is_printable};

/// One attribute of a name: its type (`CN`, `O`, or a dotted OID) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// `CN`, `O`, ... for known types, else the dotted OID.
    pub kind: String,
    /// The decoded value; a value of no string type as `#` and its DER in hex.
    pub value: String,
}

/// A distinguished name in RFC 2253 order (most specific first), with its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dn {
    /// Each relative distinguished name holds one or more attributes.
    pub rdns: Vec<Vec<Attribute>>,
    /// RFC 2253 text, ASCII only: non-ASCII and control bytes as `\XX`.
    pub text: String,
}

/// The attribute types known by name: dotted OID, short name, and the OID's
/// DER content (to recognise a certificate's attribute without formatting
/// its OID).
const SHORT_NAMES: &[(&str, &str, &[u8])] = &[
    ("2.5.4.3", "CN", &[0x55, 0x04, 0x03]),
    ("2.5.4.4", "SN", &[0x55, 0x04, 0x04]),
    ("2.5.4.5", "serialNumber", &[0x55, 0x04, 0x05]),
    ("2.5.4.6", "C", &[0x55, 0x04, 0x06]),
    ("2.5.4.7", "L", &[0x55, 0x04, 0x07]),
    ("2.5.4.8", "ST", &[0x55, 0x04, 0x08]),
    ("2.5.4.9", "STREET", &[0x55, 0x04, 0x09]),
    ("2.5.4.10", "O", &[0x55, 0x04, 0x0a]),
    ("2.5.4.11", "OU", &[0x55, 0x04, 0x0b]),
    ("2.5.4.12", "title", &[0x55, 0x04, 0x0c]),
    ("2.5.4.42", "GN", &[0x55, 0x04, 0x2a]),
    (
        "0.9.2342.19200300.100.1.1",
        "UID",
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01],
    ),
    (
        "0.9.2342.19200300.100.1.25",
        "DC",
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19],
    ),
    (
        "1.2.840.113549.1.9.1",
        "emailAddress",
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
    ),
];

/// The known type an attribute type names (short name, any case, or dotted OID).
fn known(kind: &str) -> Option<&'static str> {
    SHORT_NAMES
        .iter()
        .find(|(oid, short, _)| short.eq_ignore_ascii_case(kind) || *oid == kind)
        .map(|(_, short, _)| *short)
}

/// The canonical spelling of an attribute type, for comparisons.
pub fn canonical_kind(kind: &str) -> String {
    known(kind).unwrap_or(kind).to_ascii_uppercase()
}

/// Whether an attribute type is the one a [`canonical_kind`] names, without
/// building a string (it runs on every request).
pub fn is_kind(kind: &str, canonical: &str) -> bool {
    known(kind).unwrap_or(kind).eq_ignore_ascii_case(canonical)
}

impl Dn {
    /// Reads a certificate's subject or issuer.
    pub fn from_x509(name: &X509Name<'_>) -> Dn {
        let mut rdns: Vec<Vec<Attribute>> = name.iter().map(|rdn| rdn.iter().map(attribute_from_x509).collect()).collect();
        rdns.reverse();
        Dn::from_rdns(rdns)
    }

    /// A name from its RDNs, most specific first; writes its text.
    pub fn from_rdns(rdns: Vec<Vec<Attribute>>) -> Dn {
        let text = write_rdns(&rdns, escape_value);
        Dn { rdns, text }
    }

    /// Parses RFC 2253 text such as `CN=alice,O=Example` (Envoy's
    /// `connection.subject_peer_certificate`, or a pattern in the policy).
    pub fn parse(text: &str) -> Result<Dn, DnError> {
        let rdns = split_rdns(text)?
            .into_iter()
            .map(|rdn| rdn.into_iter().map(|(kind, value)| Attribute { kind, value }).collect())
            .collect();
        Ok(Dn::from_rdns(rdns))
    }

    /// The name as people read it: RFC 4514 escaping only where the text
    /// would be ambiguous (`,` `+` `"` `\` `<` `>` `;`, a leading `#` or
    /// space, a trailing space), letters of any script as they are (`CN=Zoë`,
    /// not `CN=Zo\C3\AB`); control characters and bidi overrides, which
    /// would hide or reorder what follows, as `\XX` bytes.
    pub fn readable(&self) -> String {
        write_rdns(&self.rdns, escape_readable)
    }

    /// The most specific common name, if the name has one.
    pub fn cn(&self) -> Option<&str> {
        self.rdns
            .iter()
            .flatten()
            .find(|a| is_kind(&a.kind, "CN"))
            .map(|a| a.value.as_str())
    }
}

fn attribute_from_x509(attr: &AttributeTypeAndValue<'_>) -> Attribute {
    let oid = attr.attr_type().as_bytes();
    let kind = SHORT_NAMES
        .iter()
        .find(|(_, _, der)| *der == oid)
        .map(|(_, short, _)| (*short).to_owned());
    let value = decode_string(attr);
    match (kind, value) {
        (Some(kind), Some(value)) => Attribute { kind, value },
        // RFC 2253 §2.4: unknown types and non-string values are written as #hex.
        (kind, _) => Attribute {
            kind: kind.unwrap_or_else(|| attr.attr_type().to_id_string()),
            value: format!("#{}", hex(attr.as_slice())),
        },
    }
}

/// Decodes the string types a name may use; `None` for anything else.
fn decode_string(attr: &AttributeTypeAndValue<'_>) -> Option<String> {
    if let Ok(s) = attr.as_str() {
        return Some(s.to_owned());
    }
    let bytes = attr.as_slice();
    match attr.attr_value().tag() {
        Tag::BmpString if bytes.len().is_multiple_of(2) => {
            let units: Option<Vec<u16>> = bytes
                .chunks_exact(2)
                .map(|c| <[u8; 2]>::try_from(c).ok().map(u16::from_be_bytes))
                .collect();
            String::from_utf16(&units?).ok()
        }
        Tag::UniversalString if bytes.len().is_multiple_of(4) => bytes
            .chunks_exact(4)
            .map(|c| <[u8; 4]>::try_from(c).ok().map(u32::from_be_bytes).and_then(char::from_u32))
            .collect(),
        // T.61 in practice holds Latin-1.
        Tag::T61String => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        _ => None,
    }
}

/// RFC 2253 §2.4 escaping, plus OpenSSL's `\XX` for control and non-ASCII
/// bytes so the text is safe in a header.
fn escape_value(value: &str, out: &mut String) {
    let bytes = value.as_bytes();
    let last = bytes.len().saturating_sub(1);
    for (i, &b) in bytes.iter().enumerate() {
        let special = matches!(b, b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';');
        let edge = (i == 0 && (b == b'#' || b == b' ')) || (i == last && b == b' ');
        if special || edge {
            out.push('\\');
            out.push(char::from(b));
        } else if !is_printable(b) {
            let _ = write!(out, "\\{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
}

/// RDNs as text, most specific first (`,` between RDNs, `+` within one),
/// each value escaped by `escape`.
fn write_rdns(rdns: &[Vec<Attribute>], escape: fn(&str, &mut String)) -> String {
    let mut text = String::new();
    for (i, rdn) in rdns.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                text.push('+');
            }
            text.push_str(&attr.kind);
            text.push('=');
            escape(&attr.value, &mut text);
        }
    }
    text
}

/// [`Dn::readable`]'s escaping of one value.
fn escape_readable(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';');
        let edge = (i == 0 && (c == '#' || c == ' ')) || (i == last && c == ' ');
        if special || edge {
            out.push('\\');
            out.push(c);
        } else if is_deceptive(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
}

/// Why a distinguished name's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnError {
    /// Nothing but spaces.
    #[error("an empty distinguished name")]
    Empty,
    /// An attribute without `=`.
    #[error("`{0}` is not `TYPE=value`")]
    MissingEquals(String),
    /// `=value` with no type.
    #[error("empty attribute type in `{0}`")]
    EmptyType(String),
    /// A type that is neither a descriptor nor an OID.
    #[error("attribute type `{0}` is neither a name (CN, O, ...) nor a dotted OID")]
    BadType(String),
    /// A backslash before something that cannot be escaped.
    #[error("a bad escape `\\{0}`: escape one of , + \" \\ < > ; = # or write two hex digits")]
    BadEscape(String),
    /// `\XX` escapes that do not make UTF-8.
    #[error("escaped bytes are not UTF-8")]
    NotUtf8,
    /// A `"` never closed.
    #[error("an unterminated quoted value")]
    UnterminatedQuote,
}

/// Splits RFC 2253 text into RDNs of (type as written, unescaped value).
pub fn split_rdns(text: &str) -> Result<Vec<Vec<(String, String)>>, DnError> {
    if text.trim().is_empty() {
        return Err(DnError::Empty);
    }
    let mut rdns = Vec::new();
    let mut rdn = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        // attribute type, up to '='
        let mut kind = String::new();
        loop {
            match chars.next() {
                Some('=') => break,
                Some(',' | ';' | '+') | None => {
                    return Err(DnError::MissingEquals(kind.trim().to_owned()));
                }
                Some(c) => kind.push(c),
            }
        }
        let kind = kind.trim();
        if kind.is_empty() {
            return Err(DnError::EmptyType(text.to_owned()));
        }
        // RFC 4514: a descriptor (ALPHA *(ALPHA / DIGIT / "-")) or a numeric
        // OID. Anything else would reach header values unescaped.
        let descriptor =
            kind.starts_with(|c: char| c.is_ascii_alphabetic()) && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let oid = kind
            .split('.')
            .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()));
        if !descriptor && !oid {
            return Err(DnError::BadType(kind.to_owned()));
        }
        // value, up to an unescaped separator
        let mut value: Vec<u8> = Vec::new();
        let mut trailing_plain_spaces = 0usize;
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut quoted = false;
        if chars.peek() == Some(&'"') {
            chars.next();
            quoted = true;
        }
        let mut separator = None;
        while let Some(c) = chars.next() {
            match c {
                '"' if quoted => {
                    quoted = false;
                    trailing_plain_spaces = 0;
                }
                '\\' => {
                    let e = chars.next().ok_or_else(|| DnError::BadEscape(String::new()))?;
                    if e.is_ascii_hexdigit() {
                        let lo = chars.next().filter(char::is_ascii_hexdigit);
                        let lo = lo.ok_or_else(|| DnError::BadEscape(e.to_string()))?;
                        let hex: String = [e, lo].iter().collect();
                        let byte = u8::from_str_radix(&hex, 16).map_err(|_| DnError::BadEscape(hex))?;
                        value.push(byte);
                    } else if ",+\"\\<>;=# ".contains(e) {
                        let mut buf = [0u8; 4];
                        value.extend_from_slice(e.encode_utf8(&mut buf).as_bytes());
                    } else {
                        return Err(DnError::BadEscape(e.to_string()));
                    }
                    trailing_plain_spaces = 0;
                }
                ',' | ';' | '+' if !quoted => {
                    separator = Some(c);
                    break;
                }
                c => {
                    trailing_plain_spaces = if c == ' ' && !quoted { trailing_plain_spaces + 1 } else { 0 };
                    let mut buf = [0u8; 4];
                    value.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        if quoted {
            return Err(DnError::UnterminatedQuote);
        }
        value.truncate(value.len().saturating_sub(trailing_plain_spaces));
        let value = String::from_utf8(value).map_err(|_| DnError::NotUtf8)?;
        rdn.push((kind.to_owned(), value));
        match separator {
            Some('+') => {}
            Some(_) => rdns.push(std::mem::take(&mut rdn)),
            None => {
                rdns.push(rdn);
                return Ok(rdns);
            }
        }
        while chars.peek() == Some(&' ') {
            chars.next();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_readable_name_keeps_letters_and_escapes_what_would_mislead() {
        let dn = Dn::from_rdns(vec![
            vec![attr("CN", "Zoë Example")],
            vec![attr("OU", "José Müller, O=Admins")],
            vec![attr("O", " #lead")],
        ]);
        assert_eq!(dn.readable(), "CN=Zoë Example,OU=José Müller\\, O=Admins,O=\\ #lead");
        assert_eq!(dn.text, "CN=Zo\\C3\\AB Example,OU=Jos\\C3\\A9 M\\C3\\BCller\\, O=Admins,O=\\ #lead");
        let hidden = Dn::from_rdns(vec![vec![attr("CN", "alice\u{202E}nimda\nx\u{1b}[31m")]]);
        assert_eq!(hidden.readable(), "CN=alice\\E2\\80\\AEnimda\\0Ax\\1B[31m");
        assert!(is_deceptive('\u{2067}') && is_deceptive('\u{0}') && !is_deceptive('ë') && !is_deceptive('日'));
    }

    #[test]
    fn known_oids_are_spelled_alike_as_text_and_der() {
        for (dotted, _, der) in SHORT_NAMES {
            let oid = x509_parser::der_parser::oid::Oid::new(std::borrow::Cow::Borrowed(der));
            assert_eq!(oid.to_id_string(), *dotted);
        }
        assert!(is_kind("cn", "CN") && is_kind("2.5.4.3", "CN") && is_kind("1.2.3", "1.2.3"));
        assert!(!is_kind("O", "CN") && !is_kind("1.2.3", "1.2.4"));
    }

    fn attr(kind: &str, value: &str) -> Attribute {
        Attribute {
            kind: kind.into(),
            value: value.into(),
        }
    }

    #[test]
    fn text_is_most_specific_first_and_escapes_specials() {
        let dn = Dn::from_rdns(vec![vec![attr("CN", "alice,O=Example\"; x=\\")], vec![attr("O", "Evil")]]);
        assert_eq!(dn.text, r#"CN=alice\,O=Example\"\; x=\\,O=Evil"#);
    }

    #[test]
    fn text_escapes_non_ascii_and_control_bytes_like_openssl() {
        let dn = Dn::from_rdns(vec![vec![attr("CN", "Zoë\r\n")], vec![attr("O", " #x ")]]);
        assert_eq!(dn.text, r"CN=Zo\C3\AB\0D\0A,O=\ #x\ ");
    }

    #[test]
    fn parse_reads_back_what_was_written() {
        for rdns in [
            vec![vec![attr("CN", "alice,O=Example\"; x=\\")], vec![attr("O", "Evil")]],
            vec![vec![attr("CN", "Zoë Ünïcødé 日本")], vec![attr("O", "Example")]],
            vec![vec![attr("CN", "a"), attr("UID", "7")], vec![attr("DC", "org")]],
            vec![vec![attr("O", " padded ")]],
        ] {
            let dn = Dn::from_rdns(rdns.clone());
            assert_eq!(Dn::parse(&dn.text).unwrap().rdns, rdns, "{}", dn.text);
        }
    }

    #[test]
    fn parse_refuses_attribute_types_that_are_not_names_or_oids() {
        for bad in ["C N=x", "\u{7f}=x", "Ä=x", "1..2=x", ".1=x", "-x=y", "CN=a,\u{fffd}=b"] {
            assert!(matches!(Dn::parse(bad), Err(DnError::BadType(_))), "{bad:?}");
        }
        assert!(Dn::parse("2.5.4.3=x,cn=y,x-y=z").is_ok());
    }

    #[test]
    fn parse_accepts_spaces_semicolons_and_quotes() {
        let dn = Dn::parse(r#"CN = alice , O="Example, Inc." ; C=DE"#).unwrap();
        assert_eq!(
            dn.rdns,
            vec![vec![attr("CN", "alice")], vec![attr("O", "Example, Inc.")], vec![attr("C", "DE")]]
        );
        assert_eq!(dn.cn(), Some("alice"));
    }

    #[test]
    fn parse_refuses_malformed_text() {
        assert_eq!(Dn::parse(""), Err(DnError::Empty));
        assert!(matches!(Dn::parse("alice"), Err(DnError::MissingEquals(_))));
        assert!(matches!(Dn::parse("CN=a,O"), Err(DnError::MissingEquals(_))));
        assert!(matches!(Dn::parse("=a"), Err(DnError::EmptyType(_))));
        assert!(matches!(Dn::parse(r"CN=\q"), Err(DnError::BadEscape(_))));
        assert!(matches!(Dn::parse(r"CN=\C3"), Err(DnError::NotUtf8)));
        assert_eq!(Dn::parse(r#"CN="open"#), Err(DnError::UnterminatedQuote));
    }
}
