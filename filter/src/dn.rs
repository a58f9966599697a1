//! Distinguished names: read from a certificate, written as RFC 2253 text (as
//! OpenSSL, nginx's `$ssl_client_s_dn` and Envoy print them), parsed back from
//! that text, and matched against allow-list patterns attribute by attribute,
//! so a CN that contains `,O=Example` can never pass for an `O=Example` name.

use std::fmt::Write as _;

use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use crate::glob::{Glob, GlobError, Syntax};

/// One attribute of a name: its type (`CN`, `O`, or a dotted OID) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub kind: String,
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

const SHORT_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.4", "SN"),
    ("2.5.4.5", "serialNumber"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.12", "title"),
    ("2.5.4.42", "GN"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
];

/// The canonical spelling of an attribute type, for comparisons.
fn canonical_kind(kind: &str) -> String {
    SHORT_NAMES
        .iter()
        .find(|(oid, short)| short.eq_ignore_ascii_case(kind) || *oid == kind)
        .map(|(_, short)| short.to_ascii_uppercase())
        .unwrap_or_else(|| kind.to_ascii_uppercase())
}

impl Dn {
    /// Reads a certificate's subject or issuer.
    pub fn from_x509(name: &X509Name<'_>) -> Dn {
        let mut rdns: Vec<Vec<Attribute>> = name
            .iter()
            .map(|rdn| rdn.iter().map(attribute_from_x509).collect())
            .collect();
        rdns.reverse();
        Dn::from_rdns(rdns)
    }

    fn from_rdns(rdns: Vec<Vec<Attribute>>) -> Dn {
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
                escape_value(&attr.value, &mut text);
            }
        }
        Dn { rdns, text }
    }

    /// Parses RFC 2253 text such as `CN=alice,O=Example` (Envoy's
    /// `connection.subject_peer_certificate`, or a pattern in the policy).
    pub fn parse(text: &str) -> Result<Dn, DnError> {
        let rdns = split_rdns(text)?
            .into_iter()
            .map(|rdn| {
                rdn.into_iter()
                    .map(|(kind, value)| Attribute { kind, value })
                    .collect()
            })
            .collect();
        Ok(Dn::from_rdns(rdns))
    }

    /// The most specific common name, if the name has one.
    pub fn cn(&self) -> Option<&str> {
        self.rdns
            .iter()
            .flatten()
            .find(|a| canonical_kind(&a.kind) == "CN")
            .map(|a| a.value.as_str())
    }
}

fn attribute_from_x509(attr: &AttributeTypeAndValue<'_>) -> Attribute {
    let oid = attr.attr_type().to_id_string();
    let kind = SHORT_NAMES
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, short)| (*short).to_owned());
    let value = decode_string(attr);
    match (kind, value) {
        (Some(kind), Some(value)) => Attribute { kind, value },
        // RFC 2253 §2.4: unknown types and non-string values are written as #hex.
        (kind, _) => {
            let mut hex = String::from("#");
            for b in attr.as_slice() {
                let _ = write!(hex, "{b:02x}");
            }
            Attribute { kind: kind.unwrap_or(oid), value: hex }
        }
    }
}

/// Decodes the string types a name may use; `None` for anything else.
fn decode_string(attr: &AttributeTypeAndValue<'_>) -> Option<String> {
    if let Ok(s) = attr.as_str() {
        return Some(s.to_owned());
    }
    let bytes = attr.as_slice();
    match attr.attr_value().tag() {
        Tag::BmpString if bytes.len() % 2 == 0 => {
            let units: Option<Vec<u16>> = bytes
                .chunks_exact(2)
                .map(|c| <[u8; 2]>::try_from(c).ok().map(u16::from_be_bytes))
                .collect();
            String::from_utf16(&units?).ok()
        }
        Tag::UniversalString if bytes.len() % 4 == 0 => bytes
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
        } else if !crate::headers::is_printable(b) {
            let _ = write!(out, "\\{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
}

/// Why a distinguished name's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnError {
    #[error("an empty distinguished name")]
    Empty,
    #[error("`{0}` is not `TYPE=value`")]
    MissingEquals(String),
    #[error("empty attribute type in `{0}`")]
    EmptyType(String),
    #[error("attribute type `{0}` is neither a name (CN, O, ...) nor a dotted OID")]
    BadType(String),
    #[error("a bad escape `\\{0}`: escape one of , + \" \\ < > ; = # or write two hex digits")]
    BadEscape(String),
    #[error("escaped bytes are not UTF-8")]
    NotUtf8,
    #[error("an unterminated quoted value")]
    UnterminatedQuote,
}

/// Splits RFC 2253 text into RDNs of (canonical type, unescaped value).
fn split_rdns(text: &str) -> Result<Vec<Vec<(String, String)>>, DnError> {
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
        let descriptor = kind.starts_with(|c: char| c.is_ascii_alphabetic())
            && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let oid = kind.split('.').all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()));
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

/// An allow-list entry for a whole name: `CN=ops-*,O=Example`. Attribute
/// types compare without case (`cn` = `CN` = `2.5.4.3`); values are globs
/// without a separator. Both names must have the same RDNs in the same order.
#[derive(Debug, Clone)]
pub struct DnPattern {
    rdns: Vec<Vec<(String, Glob)>>,
}

/// Why a name pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnPatternError {
    #[error(transparent)]
    Syntax(#[from] DnError),
    #[error("in the value of {kind}: {source}")]
    Value { kind: String, source: GlobError },
}

impl DnPattern {
    pub fn parse(text: &str) -> Result<DnPattern, DnPatternError> {
        let rdns = split_rdns(text)?
            .into_iter()
            .map(|rdn| {
                let attrs = rdn
                    .into_iter()
                    .map(|(kind, value)| {
                        let glob = Glob::new(&value, Syntax::NAME)
                            .map_err(|source| DnPatternError::Value { kind: kind.clone(), source })?;
                        Ok((canonical_kind(&kind), glob))
                    })
                    .collect::<Result<Vec<_>, DnPatternError>>()?;
                Ok(attrs)
            })
            .collect::<Result<Vec<_>, DnPatternError>>()?;
        Ok(DnPattern { rdns })
    }

    pub fn matches(&self, dn: &Dn) -> bool {
        if self.rdns.len() != dn.rdns.len() {
            return false;
        }
        self.rdns.iter().zip(&dn.rdns).all(|(want, have)| {
            if want.len() != have.len() {
                return false;
            }
            // attributes of one RDN are a set: match each in any order
            want.iter().all(|(wk, wv)| {
                have.iter().any(|a| canonical_kind(&a.kind) == *wk && wv.matches(&a.value))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: &str, value: &str) -> Attribute {
        Attribute { kind: kind.into(), value: value.into() }
    }

    #[test]
    fn text_is_most_specific_first_and_escapes_specials() {
        let dn = Dn::from_rdns(vec![
            vec![attr("CN", "alice,O=Example\"; x=\\")],
            vec![attr("O", "Evil")],
        ]);
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

    #[test]
    fn pattern_matches_attribute_by_attribute() {
        let p = DnPattern::parse("cn=ops-*, o=Example").unwrap();
        assert!(p.matches(&Dn::parse("CN=ops-anna,O=Example").unwrap()));
        assert!(p.matches(&Dn::parse("2.5.4.3=ops-anna,O=Example").unwrap()));
        assert!(!p.matches(&Dn::parse("CN=ops-anna,O=Example,C=DE").unwrap()));
        assert!(!p.matches(&Dn::parse("CN=dev,O=Example").unwrap()));
    }

    #[test]
    fn a_cn_holding_a_comma_does_not_pass_for_two_attributes() {
        let p = DnPattern::parse("CN=alice,O=Example").unwrap();
        let forged = Dn::from_rdns(vec![vec![attr("CN", "alice,O=Example")], vec![attr("O", "Evil")]]);
        assert!(!p.matches(&forged));
        let star = DnPattern::parse("CN=alice*,O=Example").unwrap();
        assert!(!star.matches(&forged));
    }

    #[test]
    fn multi_valued_rdns_match_in_any_order() {
        let p = DnPattern::parse("UID=7+CN=a,DC=org").unwrap();
        assert!(p.matches(&Dn::parse("CN=a+UID=7,DC=org").unwrap()));
        assert!(!p.matches(&Dn::parse("CN=a,UID=7,DC=org").unwrap()));
    }
}
