//! The identity headers: which exist, what they are called, what they hold,
//! and which names a client is never allowed to send.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use certgate_x509::text::{encode_value, is_printable};

use crate::identity::PeerIdentity;

/// Every header certgate can set for the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum HeaderKind {
    /// `SUCCESS` (a usable verified certificate), `NONE` (none sent) or
    /// `FAILED:<reason>`, as nginx's `$ssl_client_verify`.
    Verified,
    /// The subject DN, RFC 2253.
    Subject,
    /// The subject's common name.
    Cn,
    /// The issuer DN, RFC 2253.
    Issuer,
    /// The issuer's common name.
    IssuerCn,
    /// Lowercase hex.
    Serial,
    /// Unix seconds.
    NotBefore,
    /// Unix seconds.
    NotAfter,
    /// Seconds until `notAfter`.
    ExpiresIn,
    /// URI SANs, a list.
    SanUri,
    /// DNS SANs, a list.
    SanDns,
    /// E-mail SANs, a list.
    SanEmail,
    /// The SPIFFE ID (the one `spiffe://` URI SAN).
    SpiffeId,
    /// SHA-256 of the DER certificate, lowercase hex.
    Sha256,
    /// The name of the rule that admitted the request.
    Rule,
    /// In audit mode: what enforce mode would have done, e.g. `deny; reason=revoked; rule=admin`.
    Audit,
    /// RFC 9440 `Client-Cert`: the certificate's DER as a structured-field
    /// byte sequence (`:MIIB...:`). Not in the default preset.
    ClientCert,
    /// RFC 9440 `Client-Cert-Chain`: the other certificates the client sent
    /// (when the proxy gives them, as XFCC `Chain=`), a list of byte sequences.
    ClientCertChain,
}

impl HeaderKind {
    /// Every kind, in the order headers are set.
    pub const ALL: [HeaderKind; 18] = [
        HeaderKind::Verified,
        HeaderKind::Subject,
        HeaderKind::Cn,
        HeaderKind::Issuer,
        HeaderKind::IssuerCn,
        HeaderKind::Serial,
        HeaderKind::NotBefore,
        HeaderKind::NotAfter,
        HeaderKind::ExpiresIn,
        HeaderKind::SanUri,
        HeaderKind::SanDns,
        HeaderKind::SanEmail,
        HeaderKind::SpiffeId,
        HeaderKind::Sha256,
        HeaderKind::Rule,
        HeaderKind::Audit,
        HeaderKind::ClientCert,
        HeaderKind::ClientCertChain,
    ];

    /// The name in the `default` preset.
    pub fn default_name(self) -> &'static str {
        match self {
            HeaderKind::Verified => "x-client-verified",
            HeaderKind::Subject => "x-client-subject",
            HeaderKind::Cn => "x-client-cn",
            HeaderKind::Issuer => "x-client-issuer",
            HeaderKind::IssuerCn => "x-client-issuer-cn",
            HeaderKind::Serial => "x-client-serial",
            HeaderKind::NotBefore => "x-client-not-before",
            HeaderKind::NotAfter => "x-client-not-after",
            HeaderKind::ExpiresIn => "x-client-expires-in",
            HeaderKind::SanUri => "x-client-san-uri",
            HeaderKind::SanDns => "x-client-san-dns",
            HeaderKind::SanEmail => "x-client-san-email",
            HeaderKind::SpiffeId => "x-client-spiffe-id",
            HeaderKind::Sha256 => "x-client-sha256",
            HeaderKind::Rule => "x-certgate-rule",
            HeaderKind::Audit => "x-certgate-audit",
            HeaderKind::ClientCert => "client-cert",
            HeaderKind::ClientCertChain => "client-cert-chain",
        }
    }

    /// The value this header carries for an identity; `None` if it has none.
    /// Borrowed from the (cached) identity where it can be: most requests
    /// then set their headers without building a string.
    pub fn identity_value(self, id: &PeerIdentity, now: i64) -> Option<Cow<'_, str>> {
        match self {
            HeaderKind::Subject => Some(Cow::Borrowed(&id.subject.text)),
            HeaderKind::Cn => id.cn().map(encode_value),
            HeaderKind::Issuer => id.issuer.as_ref().map(|dn| Cow::Borrowed(dn.text.as_str())),
            HeaderKind::IssuerCn => id.issuer_cn().map(encode_value),
            HeaderKind::Serial => id.serial.as_deref().map(Cow::Borrowed),
            HeaderKind::NotBefore => id.not_before.map(|t| Cow::Owned(t.to_string())),
            HeaderKind::NotAfter => id.not_after.map(|t| Cow::Owned(t.to_string())),
            HeaderKind::ExpiresIn => id.not_after.map(|t| Cow::Owned(t.saturating_sub(now).to_string())),
            HeaderKind::SanUri => encode_list(&id.san_uri),
            HeaderKind::SanDns => encode_list(&id.san_dns),
            HeaderKind::SanEmail => encode_list(&id.san_email),
            HeaderKind::SpiffeId => id.spiffe_id.as_deref().map(encode_value),
            HeaderKind::Sha256 => (!id.sha256.is_empty()).then_some(Cow::Borrowed(id.sha256.as_str())),
            // set by the request flow, from the request (not the cached identity)
            HeaderKind::Verified | HeaderKind::Rule | HeaderKind::Audit | HeaderKind::ClientCert | HeaderKind::ClientCertChain => None,
        }
    }
}

/// Headers by which frameworks let a request say it is for another path or
/// method than the one the proxy matched: `X-Original-URL` and
/// `X-Rewrite-URL` (IIS URL Rewrite; Symfony's and Zend's request objects
/// take the path from them), `X-HTTP-Method-Override` (Express's
/// method-override, ASP.NET Core, Laravel, Symfony, Google APIs),
/// `X-HTTP-Method` (OData, SharePoint) and `X-Method-Override` (others).
/// Removed from every request unless the policy passes them.
pub const OVERRIDE_HEADERS: [&str; 5] = [
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Named sets of headers users already know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Every `x-client-*` and `x-certgate-*` header (not the RFC 9440 ones).
    #[default]
    Default,
    /// The Gunicorn worker's `X-USER` (subject CN), `X-ISSUER` (issuer CN:
    /// it read `issuer['commonName']` from `getpeercert()`),
    /// `X-NOT_BEFORE` and `X-NOT_AFTER` (Unix seconds). Sent with dashes:
    /// WSGI maps `x-not-before` to the same `HTTP_X_NOT_BEFORE`, and recent
    /// Gunicorn drops header names with underscores.
    Gunicorn,
    /// The nginx set-up's `verified` (`$ssl_client_verify`) and `dn` (`$ssl_client_s_dn`).
    Nginx,
    /// RFC 9440's `Client-Cert` and `Client-Cert-Chain`.
    Rfc9440,
    /// No header but the audit one; add what you need with `rename`.
    None,
}

impl Preset {
    /// The headers this preset sets, by kind.
    pub fn names(self) -> Vec<(HeaderKind, String)> {
        let pairs: Vec<(HeaderKind, &str)> = match self {
            Preset::Default => HeaderKind::ALL
                .iter()
                .filter(|k| !matches!(k, HeaderKind::ClientCert | HeaderKind::ClientCertChain))
                .map(|k| (*k, k.default_name()))
                .collect(),
            Preset::Gunicorn => vec![
                (HeaderKind::Cn, "x-user"),
                (HeaderKind::IssuerCn, "x-issuer"),
                (HeaderKind::NotBefore, "x-not-before"),
                (HeaderKind::NotAfter, "x-not-after"),
                (HeaderKind::Audit, HeaderKind::Audit.default_name()),
            ],
            Preset::Nginx => vec![
                (HeaderKind::Verified, "verified"),
                (HeaderKind::Subject, "dn"),
                (HeaderKind::Audit, HeaderKind::Audit.default_name()),
            ],
            Preset::Rfc9440 => vec![
                (HeaderKind::ClientCert, HeaderKind::ClientCert.default_name()),
                (HeaderKind::ClientCertChain, HeaderKind::ClientCertChain.default_name()),
                (HeaderKind::Audit, HeaderKind::Audit.default_name()),
            ],
            Preset::None => vec![(HeaderKind::Audit, HeaderKind::Audit.default_name())],
        };
        pairs.into_iter().map(|(k, n)| (k, n.to_owned())).collect()
    }
}

/// The compiled header set: which headers to set, and which names to strip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderPlan {
    /// Headers to set, lowercase names, one per kind.
    pub set: Vec<(HeaderKind, String)>,
    /// Names (folded by [`fold_name`]) removed from every request.
    strip: Vec<String>,
}

impl HeaderPlan {
    /// The plan: set these headers, strip every preset's names, `set`'s and `extra_strip`.
    pub fn new(set: Vec<(HeaderKind, String)>, extra_strip: &[String]) -> HeaderPlan {
        // Every preset's names are stripped whatever the preset: an application
        // migrated from the Gunicorn or nginx set-up may still read `X-USER` or
        // `dn` after the operator picked another preset.
        let every_preset: Vec<(HeaderKind, String)> = [Preset::Default, Preset::Gunicorn, Preset::Nginx, Preset::Rfc9440]
            .iter()
            .flat_map(|p| p.names())
            .collect();
        let mut strip: Vec<String> = Vec::new();
        let names = set
            .iter()
            .chain(&every_preset)
            .map(|(_, n)| n.as_str())
            .chain(extra_strip.iter().map(String::as_str));
        for name in names.map(fold_name) {
            if !strip.contains(&name) {
                strip.push(name);
            }
        }
        HeaderPlan { set, strip }
    }

    /// The name the header of `kind` is set under, if it is set.
    pub fn name(&self, kind: HeaderKind) -> Option<&str> {
        self.set.iter().find(|(k, _)| *k == kind).map(|(_, n)| n.as_str())
    }

    /// Whether a header a client sent must be removed: its name equals an
    /// identity header's in any case and with `_` for `-` (WSGI, CGI and
    /// several frameworks read `X-USER` and `X_USER` as one).
    pub fn strips(&self, name: &str) -> bool {
        // compared byte by byte, so no folded copy is made per request
        let name = name.trim().as_bytes();
        self.strip
            .iter()
            .any(|s| s.len() == name.len() && s.bytes().zip(name).all(|(a, b)| a == fold_byte(*b)))
    }
}

/// One byte of a header name as the application may see it.
fn fold_byte(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b.to_ascii_lowercase()
    }
}

/// A header name as the application may see it: lowercase, `_` as `-`.
pub fn fold_name(name: &str) -> String {
    // only ASCII bytes change, so the bytes stay UTF-8
    String::from_utf8(name.trim().bytes().map(fold_byte).collect()).unwrap_or_default()
}

/// Whether a name is a valid HTTP header name (an RFC 9110 token).
pub fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether a header value is one certgate could have set: printable ASCII
/// only, so no CR, LF, NUL or other control and nothing non-ASCII. What the
/// encoders guarantee, and what the tests check every output against.
pub fn is_safe_value(value: &[u8]) -> bool {
    value.iter().all(|b| is_printable(*b))
}

/// A list as one header: each element encoded, joined by `,`.
fn encode_list(values: &[String]) -> Option<Cow<'_, str>> {
    match values {
        [] => None,
        [one] => Some(encode_value(one)),
        many => Some(Cow::Owned(many.iter().map(|v| encode_value(v)).collect::<Vec<_>>().join(","))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_passes_and_the_rest_is_encoded() {
        assert_eq!(encode_value("alice"), "alice");
        assert_eq!(encode_value("Example Client CA"), "Example Client CA");
        assert_eq!(encode_value("Zoë"), "Zo%C3%AB");
        assert_eq!(encode_value("a,b%c"), "a%2Cb%25c");
        assert_eq!(encode_value("x\r\nx-user: admin"), "x%0D%0Ax-user: admin");
        assert_eq!(encode_value(" pad "), "%20pad%20");
        assert_eq!(encode_value("nul\0"), "nul%00");
    }

    #[test]
    fn lists_join_encoded_elements() {
        let l = vec!["a.org".to_owned(), "b,c.org".to_owned()];
        assert_eq!(encode_list(&l).as_deref(), Some("a.org,b%2Cc.org"));
        assert_eq!(encode_list(&[]), None);
    }

    #[test]
    fn stripping_ignores_case_and_underscores() {
        let plan = HeaderPlan::new(Preset::Gunicorn.names(), &["X-Legacy-User".to_owned()]);
        for name in [
            "x-user",
            "X-USER",
            "X_USER",
            "x_uSeR",
            "x-not-before",
            "X-NOT_AFTER",
            "x-legacy_user",
        ] {
            assert!(plan.strips(name), "{name}");
        }
        // every preset's names are stripped whatever the preset
        assert!(plan.strips("X-Client-CN"));
        assert!(HeaderPlan::new(Preset::Default.names(), &[]).strips("X_USER"));
        assert!(HeaderPlan::new(Preset::None.names(), &[]).strips("DN"));
        assert!(plan.strips("x_certgate_rule"));
        assert!(!plan.strips("x-users"));
        assert!(!plan.strips("user-agent"));
    }

    #[test]
    fn presets_name_the_headers_their_users_know() {
        let g = HeaderPlan::new(Preset::Gunicorn.names(), &[]);
        assert_eq!(g.name(HeaderKind::Cn), Some("x-user"));
        assert_eq!(g.name(HeaderKind::NotAfter), Some("x-not-after"));
        assert_eq!(g.name(HeaderKind::Serial), None);
        let n = HeaderPlan::new(Preset::Nginx.names(), &[]);
        assert_eq!(n.name(HeaderKind::Subject), Some("dn"));
        assert_eq!(
            Preset::Default.names().len(),
            HeaderKind::ALL.len() - 2,
            "all but the RFC 9440 headers"
        );
        let r = HeaderPlan::new(Preset::Rfc9440.names(), &[]);
        assert_eq!(r.name(HeaderKind::ClientCert), Some("client-cert"));
        assert!(
            HeaderPlan::new(Preset::Default.names(), &[]).strips("Client-Cert-Chain"),
            "stripped whatever the preset"
        );
    }

    #[test]
    fn tokens_are_checked() {
        assert!(is_token("x-user"));
        assert!(is_token("X_NOT_BEFORE"));
        assert!(!is_token(""));
        assert!(!is_token("x user"));
        assert!(!is_token(":path"));
        assert!(!is_token("x\n"));
    }
}
