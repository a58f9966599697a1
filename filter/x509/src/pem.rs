//! PEM text: where its blocks are, and the certificates it holds.

use std::ops::Range;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Why a text holds no usable PEM block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    /// No complete `-----BEGIN`/`-----END` block.
    #[error("no PEM certificate block: {0}")]
    Block(&'static str),
    /// The block's body does not decode.
    #[error("a PEM block that is not base64: {0}")]
    Base64(String),
    /// A block of another kind (a key, a CSR...).
    #[error("the PEM block is a {0}, not a CERTIFICATE")]
    NotACertificate(String),
}

/// Where the first PEM block of a text is: from its `-----BEGIN ` to the end
/// of its `-----END ...-----` line.
pub fn first_block_span(text: &[u8]) -> Result<Range<usize>, PemError> {
    // every needle starts with `-`, which a base64 body never holds: jump
    // from dash to dash
    let find = |hay: &[u8], needle: &[u8]| {
        let mut at = 0;
        loop {
            let rest = hay.get(at..)?;
            let dash = at + rest.iter().position(|&b| b == b'-')?;
            if hay.get(dash..)?.starts_with(needle) {
                return Some(dash);
            }
            at = dash + 1;
        }
    };
    let start = find(text, b"-----BEGIN ").ok_or(PemError::Block("no -----BEGIN line"))?;
    let rest = text.get(start..).unwrap_or_default();
    let end_line = find(rest, b"-----END ").ok_or(PemError::Block("no -----END line"))?;
    let after_end = rest.get(end_line + 9..).unwrap_or_default();
    let close = find(after_end, b"-----").ok_or(PemError::Block("an unterminated -----END line"))?;
    Ok(start..start + end_line + 9 + close + 5)
}

/// The label and DER of one block, as [`first_block_span`] finds it. The
/// body is decoded with the `base64` crate: a certificate is public, and the
/// constant-time decoder of pem-rfc7468 (base64ct) took a quarter of the
/// time of reading a first-seen certificate.
fn decode_block(block: &[u8]) -> Result<(&str, Vec<u8>), PemError> {
    let text = std::str::from_utf8(block).map_err(|_| PemError::Base64("a byte that is not ASCII".into()))?;
    let rest = text.strip_prefix("-----BEGIN ").ok_or(PemError::Block("no -----BEGIN line"))?;
    let (label, rest) = rest.split_once("-----").ok_or(PemError::Block("an unterminated -----BEGIN line"))?;
    let (body, end) = rest.rsplit_once("-----END ").ok_or(PemError::Block("no -----END line"))?;
    if end.strip_suffix("-----") != Some(label) {
        return Err(PemError::Block("an -----END line with another label"));
    }
    let mut clean = Vec::with_capacity(body.len());
    for line in body.split_ascii_whitespace() {
        clean.extend_from_slice(line.as_bytes());
    }
    let der = STANDARD.decode(clean).map_err(|e| PemError::Base64(e.to_string()))?;
    Ok((label, der))
}

/// The DER of the first PEM block of a text (a chain yields its leaf), which
/// must be a `CERTIFICATE`.
pub fn first_certificate(text: &[u8]) -> Result<Vec<u8>, PemError> {
    let span = first_block_span(text)?;
    match decode_block(text.get(span).unwrap_or_default())? {
        ("CERTIFICATE", der) => Ok(der),
        (label, _) => Err(PemError::NotACertificate(label.to_owned())),
    }
}

/// The DER of every `CERTIFICATE` block of a PEM text, in order; other
/// blocks and anything unreadable are skipped.
pub fn certificates(text: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Ok(span) = first_block_span(rest) {
        if let Ok(("CERTIFICATE", der)) = decode_block(rest.get(span.clone()).unwrap_or_default()) {
            out.push(der);
        }
        rest = rest.get(span.end..).unwrap_or_default();
    }
    out
}

/// One certificate as PEM text (LF line ends), as Envoy gives it.
pub fn encode_certificate(der: &[u8]) -> String {
    pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, der).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &[u8] = b"-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";

    #[test]
    fn blocks_are_found_around_other_text() {
        let text = [b"junk\n".as_slice(), ONE, b"-----BEGIN X-----\nAA==\n-----END X-----\n", ONE].concat();
        assert_eq!(certificates(&text), vec![vec![0, 1, 2], vec![0, 1, 2]]);
        assert_eq!(first_certificate(&text), Ok(vec![0, 1, 2]));
        assert_eq!(first_certificate(&encode_certificate(&[9, 8]).into_bytes()), Ok(vec![9, 8]));
    }

    #[test]
    fn bad_text_names_what_is_wrong() {
        assert_eq!(first_certificate(b""), Err(PemError::Block("no -----BEGIN line")));
        assert_eq!(
            first_certificate(b"-----BEGIN CERTIFICATE-----\nAA"),
            Err(PemError::Block("no -----END line"))
        );
        assert!(matches!(
            first_certificate(b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----"),
            Err(PemError::Base64(_))
        ));
        assert_eq!(
            first_certificate(b"-----BEGIN KEY-----\nAA==\n-----END KEY-----\n"),
            Err(PemError::NotACertificate("KEY".into()))
        );
        assert_eq!(
            first_certificate(b"-----BEGIN CERTIFICATE-----\nAAEC\n-----END KEY-----\n"),
            Err(PemError::Block("an -----END line with another label"))
        );
        assert!(
            matches!(
                first_certificate(b"-----BEGIN CERTIFICATE-----\nAAF=\n-----END CERTIFICATE-----"),
                Err(PemError::Base64(_))
            ),
            "bits after the last byte"
        );
        assert!(matches!(
            first_certificate(b"-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\nAAEC\n-----END CERTIFICATE-----"),
            Err(PemError::Base64(_))
        ));
    }

    #[test]
    fn line_ends_and_wrapping_do_not_matter() {
        let der: Vec<u8> = (0..=255).collect();
        let pem = encode_certificate(&der);
        assert_eq!(first_certificate(pem.as_bytes()), Ok(der.clone()));
        assert_eq!(first_certificate(pem.replace('\n', "\r\n").as_bytes()), Ok(der.clone()));
        let one_line = pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>();
        let one_line = format!("-----BEGIN CERTIFICATE-----\n{one_line}\n-----END CERTIFICATE-----\n");
        assert_eq!(first_certificate(one_line.as_bytes()), Ok(der));
    }
}
