//! The `x-forwarded-client-cert` header as Envoy writes it:
//! `By=...;Hash=...;Cert="...";Subject="...";URI=...;DNS=...`, one element per
//! proxy hop, elements separated by `,`. Values may be quoted; inside quotes
//! `\"` is a quote and `,` `;` `=` are plain text. `Cert` and `Chain` are
//! percent-encoded PEM.
//!
//! certgate reads the **last** element: the one the nearest proxy (the Envoy
//! running certgate) added. Earlier elements come from further away and are
//! only as trustworthy as every hop before.

/// One element: its key/value pairs in order (keys lowercased; `URI` and `DNS`
/// may repeat).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XfccElement {
    /// The element's `key=value` pairs, keys lowercase, values unquoted.
    pub pairs: Vec<(String, String)>,
}

impl XfccElement {
    /// The first value of a key (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a key, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// The `Cert` value, percent-decoded to PEM text.
    pub fn cert_pem(&self) -> Option<Result<Vec<u8>, XfccError>> {
        self.get("cert").map(percent_decode)
    }
}

/// Why an XFCC header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // each variant's message says what it is
pub enum XfccError {
    #[error("the header is empty")]
    Empty,
    #[error("a quoted value is not closed")]
    UnterminatedQuote,
    #[error("`{0}` is not `Key=value`")]
    MissingEquals(String),
    #[error("an empty key")]
    EmptyKey,
    #[error("text after a closing quote: `{0}`")]
    AfterQuote(String),
    #[error("a bad percent escape at byte {0}")]
    BadPercent(usize),
}

/// Parses every element of a header value.
pub fn parse(header: &str) -> Result<Vec<XfccElement>, XfccError> {
    if header.trim().is_empty() {
        return Err(XfccError::Empty);
    }
    let mut elements = Vec::new();
    let mut element = XfccElement::default();
    let mut chars = header.chars().peekable();
    loop {
        // key
        let mut key = String::new();
        loop {
            match chars.next() {
                Some('=') => break,
                Some(c @ (',' | ';')) => return Err(XfccError::MissingEquals(format!("{}{c}", key.trim()))),
                Some(c) => key.push(c),
                None => return Err(XfccError::MissingEquals(key.trim().to_owned())),
            }
        }
        let key = key.trim().to_ascii_lowercase();
        if key.is_empty() {
            return Err(XfccError::EmptyKey);
        }
        // value
        let mut value = String::new();
        let mut end = None;
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(e) => value.push(e),
                        None => return Err(XfccError::UnterminatedQuote),
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(XfccError::UnterminatedQuote);
            }
            let mut after = String::new();
            for c in chars.by_ref() {
                if c == ',' || c == ';' {
                    end = Some(c);
                    break;
                }
                after.push(c);
            }
            if !after.trim().is_empty() {
                return Err(XfccError::AfterQuote(after));
            }
        } else {
            for c in chars.by_ref() {
                if c == ',' || c == ';' {
                    end = Some(c);
                    break;
                }
                value.push(c);
            }
            value = value.trim().to_owned();
        }
        element.pairs.push((key, value));
        match end {
            Some(';') => {}
            Some(_) => elements.push(std::mem::take(&mut element)),
            None => {
                elements.push(element);
                return Ok(elements);
            }
        }
    }
}

/// The element the nearest proxy added: the last one of the header (several
/// headers count as one, joined by `,`, as HTTP lists are).
pub fn nearest_element<'a>(headers: impl IntoIterator<Item = &'a str>) -> Result<XfccElement, XfccError> {
    let joined = headers.into_iter().collect::<Vec<_>>().join(",");
    parse(&joined)?.pop().ok_or(XfccError::Empty)
}

/// Percent-decodes a value (RFC 3986; `+` is not a space).
pub fn percent_decode(text: &str) -> Result<Vec<u8>, XfccError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|c| char::from(*c).to_digit(16));
            let lo = bytes.get(i + 2).and_then(|c| char::from(*c).to_digit(16));
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                _ => return Err(XfccError::BadPercent(i)),
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(e: &XfccElement) -> Vec<(&str, &str)> {
        e.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn a_plain_element_splits_into_pairs() {
        let els = parse("By=spiffe://a/b;Hash=abc;URI=spiffe://c/d;DNS=x.org;DNS=y.org").unwrap();
        assert_eq!(els.len(), 1);
        assert_eq!(
            pairs(&els[0]),
            [
                ("by", "spiffe://a/b"),
                ("hash", "abc"),
                ("uri", "spiffe://c/d"),
                ("dns", "x.org"),
                ("dns", "y.org")
            ]
        );
        assert_eq!(els[0].all("DNS").collect::<Vec<_>>(), ["x.org", "y.org"]);
    }

    #[test]
    fn quoted_values_keep_commas_semicolons_and_escaped_quotes() {
        let els = parse(r#"Hash=1;Subject="CN=a\"b,O=c;d=e";URI=,Hash=2"#).unwrap();
        assert_eq!(els.len(), 2);
        assert_eq!(els[0].get("subject"), Some(r#"CN=a"b,O=c;d=e"#));
        assert_eq!(els[0].get("uri"), Some(""));
        assert_eq!(els[1].get("hash"), Some("2"));
    }

    #[test]
    fn the_nearest_element_is_the_last_across_headers() {
        let e = nearest_element(["Hash=far", "Hash=mid,Hash=near"]).unwrap();
        assert_eq!(e.get("hash"), Some("near"));
    }

    #[test]
    fn cert_is_percent_decoded() {
        let e = parse("Hash=1;Cert=\"-----BEGIN%20CERTIFICATE-----%0AMII%2B%2F%0A\"")
            .unwrap()
            .remove(0);
        assert_eq!(e.cert_pem().unwrap().unwrap(), b"-----BEGIN CERTIFICATE-----\nMII+/\n");
        assert!(parse("Hash=1").unwrap()[0].cert_pem().is_none());
        assert_eq!(percent_decode("%zz"), Err(XfccError::BadPercent(0)));
        assert_eq!(percent_decode("ab%4"), Err(XfccError::BadPercent(2)));
    }

    #[test]
    fn malformed_headers_are_errors() {
        assert_eq!(parse(""), Err(XfccError::Empty));
        assert_eq!(parse("  "), Err(XfccError::Empty));
        assert_eq!(parse(r#"Cert="abc"#), Err(XfccError::UnterminatedQuote));
        assert_eq!(parse(r#"Cert="abc\"#), Err(XfccError::UnterminatedQuote));
        assert_eq!(parse("Hash"), Err(XfccError::MissingEquals("Hash".into())));
        assert_eq!(parse("Hash=1;;"), Err(XfccError::MissingEquals(";".into())));
        assert_eq!(parse("=1"), Err(XfccError::EmptyKey));
        assert_eq!(parse(r#"Subject="a"b"#), Err(XfccError::AfterQuote("b".into())));
        assert_eq!(nearest_element(Vec::<&str>::new()), Err(XfccError::Empty));
    }

    #[test]
    fn thousands_of_elements_parse_in_linear_time() {
        let header = vec!["Hash=x;URI=spiffe://a/b"; 5000].join(",") + ",Hash=last";
        let e = nearest_element([header.as_str()]).unwrap();
        assert_eq!(e.get("hash"), Some("last"));
        let huge = format!("Hash=1;Subject=\"{}\"", "a".repeat(1 << 20));
        assert_eq!(parse(&huge).unwrap()[0].get("subject").map(str::len), Some(1 << 20));
    }
}
