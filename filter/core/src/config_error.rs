//! Why a configuration is refused, and where: a JSON path and a
//! [`ConfigErrorKind`] that tests and tools match on, whose message says what
//! is wrong and what to write instead.

use certgate_x509::spiffe::SpiffeIdError;

use crate::dn_pattern::DnPatternError;
use crate::glob::GlobError;
use crate::headers::HeaderKind;

/// A configuration the filter refuses, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certgate configuration: at `{path}`: {kind}")]
pub struct ConfigError {
    /// A JSON path such as `rules[2].issuer[0]`; `.` for the whole document.
    pub path: String,
    /// What is wrong there.
    pub kind: ConfigErrorKind,
}

impl ConfigError {
    /// The error `kind` at `path`.
    pub fn at(path: impl Into<String>, kind: ConfigErrorKind) -> ConfigError {
        ConfigError { path: path.into(), kind }
    }
}

/// How serde refused the JSON text (`serde_json`'s own classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonErrorClass {
    /// Not JSON at all.
    Syntax,
    /// The text ends too soon.
    Eof,
    /// JSON, but not what a policy holds: an unknown field or variant, a
    /// missing field, a value of the wrong type or out of range.
    Data,
}

/// What is wrong at a configuration's JSON path. Each message says what is
/// wrong and, where it helps, what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigErrorKind {
    /// No JSON at all.
    #[error("the configuration is empty: give a JSON object with at least `rules`")]
    Empty,
    /// JSON, but not an object.
    #[error("the configuration must be a JSON object (`{{...}}`) with at least `rules`")]
    NotAnObject,
    /// serde's reading refused it (its message keeps the line and column).
    #[error("{message}")]
    Json {
        /// Which kind of refusal.
        class: JsonErrorClass,
        /// serde's message.
        message: String,
    },
    /// `rules` is empty.
    #[error("no rules: a policy needs at least one rule")]
    NoRules,
    /// Two rules have one name.
    #[error("a second rule named `{0}`")]
    DuplicateRuleName(String),
    /// A rule name outside the allowed characters or length.
    #[error("`{name}` is not a rule name: 1-{max} letters, digits, `-`, `_` or `.`")]
    NotARuleName {
        /// The name as written.
        name: String,
        /// The longest name allowed.
        max: usize,
    },
    /// `deny_response.status` is not 400-599.
    #[error("{0} is not an error status (400-599)")]
    NotAnErrorStatus(u16),
    /// `expiry_warning_days` over its limit.
    #[error("more than ten years ({max} days)")]
    ExpiryWarningTooLong {
        /// The most days allowed.
        max: u32,
    },
    /// `cache_size` outside its range.
    #[error("must be between 1 and {max} certificates")]
    CacheSizeOutOfRange {
        /// The largest cache allowed.
        max: usize,
    },
    /// A `deny.serials` entry that is not hex.
    #[error("`{0}` is not a hexadecimal serial number")]
    NotASerial(String),
    /// A `deny.sha256` entry that is not a fingerprint.
    #[error("`{0}` is not a SHA-256 fingerprint (64 hex digits, `:` allowed)")]
    NotAFingerprint(String),
    /// `bound_tokens.payload_in_metadata` is no metadata key.
    #[error("`{0}` is not a metadata key: write the provider's payload_in_metadata name")]
    NotAMetadataKey(String),
    /// Not an HTTP header name (RFC 9110 token).
    #[error("`{0}` is not a valid header name")]
    NotAHeaderName(String),
    /// A header name the proxy owns.
    #[error("`{0}` belongs to the proxy; choose another name")]
    ReservedHeader(String),
    /// Two header kinds under one name.
    #[error("`{name}` is the name of two headers ({first:?} and {second:?}); give each its own")]
    HeaderNamedTwice {
        /// The name.
        name: String,
        /// The kind that had it first.
        first: HeaderKind,
        /// The kind given it again.
        second: HeaderKind,
    },
    /// `pass_overrides` names a header that is no override header.
    #[error("`{name}` is not an override header; these are {}", known.join(", "))]
    NotAnOverrideHeader {
        /// The name as written.
        name: String,
        /// The override headers there are.
        known: &'static [&'static str],
    },
    /// A rule with both `path` and `path_prefix`.
    #[error("give `path_prefix` or `path`, not both")]
    PathAndPrefix,
    /// A path with a `;` parameter.
    #[error("`{0}` has a `;` path parameter, which applications may drop: write the path without it")]
    PathParameter(String),
    /// A path another spelling of which is the normal one.
    #[error("`{given}` is not in normal form; write `{normal}`")]
    PathNotNormal {
        /// The path as written.
        given: String,
        /// How to write it.
        normal: String,
    },
    /// Not a path a rule can match.
    #[error(
        "`{0}` is not a path a rule can match: start with `/`; no query, `.`/`..` segments, \
         escapes of `/`, `\\` or `;`, or spaces or `.` at the end of a segment"
    )]
    NotAPath(String),
    /// A method that is not an uppercase token.
    #[error("`{0}` is not an uppercase HTTP method")]
    NotAMethod(String),
    /// An allow-list with no entry.
    #[error("an empty allow-list matches nothing; remove the field to allow any value")]
    EmptyAllowList,
    /// A name or host pattern that cannot be compiled.
    #[error("`{pattern}`: {error}")]
    Pattern {
        /// The pattern as written.
        pattern: String,
        /// Why it is refused.
        error: GlobError,
    },
    /// A DN pattern that is no distinguished name.
    #[error(
        "`{pattern}` is not a distinguished name such as `CN=Example CA,O=Example`: {error} \
         (to match the common name alone, use the `_cn` field)"
    )]
    DnPattern {
        /// The pattern as written.
        pattern: String,
        /// Why it is refused.
        error: DnPatternError,
    },
    /// A SPIFFE pattern no valid SPIFFE ID could match.
    #[error(
        "`{pattern}` can match no valid SPIFFE ID: {error}; write `spiffe://<trust domain>/<path>`, \
         the trust domain in lowercase and in full, e.g. `spiffe://example.org/ns/*/sa/*`"
    )]
    SpiffePattern {
        /// The pattern as written.
        pattern: String,
        /// The SPIFFE ID rule it breaks.
        error: SpiffeIdError,
    },
    /// `bound_token: true` on a policy without `bound_tokens`.
    #[error("the policy has no `bound_tokens` saying which jwt_authn provider's tokens to read; add it")]
    BoundTokenWithoutProvider,
    /// `bound_token: true` on an anonymous rule.
    #[error(
        "an anonymous rule admits requests without a certificate, so no token can be bound to one; \
         remove `bound_token` or `anonymous`"
    )]
    AnonymousBoundToken,
    /// An anonymous rule with allow-lists.
    #[error(
        "an anonymous rule admits requests without a certificate, so its allow-lists would never be checked; \
         remove them or `anonymous`"
    )]
    AnonymousWithAllowLists,
    /// `verification: proxy_flag` on a host without the flag.
    #[error(
        "\"proxy_flag\" (the default) needs connection.peer_certificate_valid, which {host} does not give: \
         set \"verification\": \"listener\" if this listener verifies every certificate it accepts (SECURITY.md)"
    )]
    NoVerifiedFlag {
        /// The host, by name.
        host: &'static str,
    },
    /// `bound_tokens` without `payload_header` on a host that cannot read claims.
    #[error(
        "{host} can tell from jwt_authn's metadata whether a token was verified, not read its claims: \
         set `forward_payload_header` on the jwt_authn provider and name that header here (the book, \
         \"Certificate-bound tokens\")"
    )]
    NoTokenClaims {
        /// The host, by name.
        host: &'static str,
    },
    /// `identity_source: peer_certificate` on a host without the certificate.
    #[error(
        "\"peer_certificate\" needs connection.peer_certificate, which {host} does not give: use \"auto\" \
         (the XFCC element Envoy adds with set_current_client_cert_details cert: true, bound to the connection's digest)"
    )]
    NoPeerCertificate {
        /// The host, by name.
        host: &'static str,
    },
}
