//! SPIFFE IDs as the SPIFFE-ID standard (§2) defines them: the one reader
//! certgate's identity, its `spiffe` rules, its `x-client-spiffe-id` header
//! and the CA tool use.
//!
//! `spiffe://<trust domain><path>`: the scheme exactly `spiffe://`; a trust
//! domain of lowercase letters, digits, `.`, `-` and `_`, at most 255 bytes,
//! with no port and no userinfo; a path, possibly empty, of `/`-led segments
//! of letters, digits, `.`, `-` and `_`, none empty, none `.` or `..`; no
//! percent-encoding, query, fragment or trailing `/`. As go-spiffe reads
//! them, uppercase in the scheme or trust domain is refused, not folded: a
//! certificate that needs folding is not one a SPIFFE issuer wrote.

/// The longest trust domain: RFC 3986's bound on a host (SPIFFE-ID §2.3).
pub const MAX_TRUST_DOMAIN: usize = 255;

const SCHEME: &str = "spiffe://";

/// A URI that is a valid SPIFFE ID, split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiffeId<'a> {
    /// The whole ID, as written.
    pub id: &'a str,
    /// The trust domain (`example.org`).
    pub trust_domain: &'a str,
    /// The path (`/ns/prod/sa/web`), empty for a trust domain's own ID.
    pub path: &'a str,
}

/// Why a URI is not a SPIFFE ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    /// Not `spiffe://` (in lowercase).
    #[error("the scheme is not `spiffe://` in lowercase")]
    Scheme,
    /// `spiffe:///path` or `spiffe://`.
    #[error("there is no trust domain")]
    NoTrustDomain,
    /// `user@` before the trust domain.
    #[error("the trust domain has userinfo (`@`)")]
    Userinfo,
    /// `:port` after the trust domain.
    #[error("the trust domain has a port (`:`)")]
    Port,
    /// An uppercase letter, or any byte but `a-z 0-9 . - _`.
    #[error("the trust domain has a character other than lowercase letters, digits, `.`, `-` and `_`")]
    TrustDomainCharacter,
    /// Over [`MAX_TRUST_DOMAIN`] bytes.
    #[error("the trust domain is longer than 255 bytes")]
    TrustDomainTooLong,
    /// `?...`.
    #[error("it has a query (`?`)")]
    Query,
    /// `#...`.
    #[error("it has a fragment (`#`)")]
    Fragment,
    /// `%XX`.
    #[error("it has percent-encoding (`%`)")]
    PercentEncoding,
    /// `//` inside the path.
    #[error("a path segment is empty (`//`)")]
    EmptySegment,
    /// `/.` or `/..`.
    #[error("a path segment is `.` or `..`")]
    DotSegment,
    /// A path ending in `/`.
    #[error("the path ends with `/`")]
    TrailingSlash,
    /// Any byte but letters, digits, `.`, `-`, `_` in a segment.
    #[error("a path segment has a character other than letters, digits, `.`, `-` and `_`")]
    PathCharacter,
}

/// Whether a URI claims to be a SPIFFE ID: its scheme is `spiffe`, in any
/// case. Such a URI is read as one, and refused if it is not valid.
pub fn has_spiffe_scheme(uri: &str) -> bool {
    uri.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("spiffe:"))
}

/// A byte a trust domain may hold.
fn is_trust_domain_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
}

/// A byte a path segment may hold.
fn is_segment_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

impl<'a> SpiffeId<'a> {
    /// Reads `uri` as a SPIFFE ID, or says which rule of the standard it breaks.
    pub fn parse(uri: &'a str) -> Result<SpiffeId<'a>, SpiffeIdError> {
        let (trust_domain, path) = split_checked(uri, false)?;
        Ok(SpiffeId {
            id: uri,
            trust_domain,
            path,
        })
    }
}

/// Whether some valid SPIFFE ID could match the pattern: the standard's
/// rules, with `*` allowed in path segments (for segment characters). A `*`
/// may not stand in the trust domain: a rule must say which trust it admits.
pub fn check_pattern(pattern: &str) -> Result<(), SpiffeIdError> {
    split_checked(pattern, true).map(|_| ())
}

/// The trust domain and path of `uri`, each checked; `stars`: a path
/// segment may hold `*` (a pattern).
fn split_checked(uri: &str, stars: bool) -> Result<(&str, &str), SpiffeIdError> {
    let rest = uri.strip_prefix(SCHEME).ok_or(SpiffeIdError::Scheme)?;
    // query and fragment first: they end the path, whatever is before them
    if rest.contains('#') {
        return Err(SpiffeIdError::Fragment);
    }
    if rest.contains('?') {
        return Err(SpiffeIdError::Query);
    }
    if rest.contains('%') {
        return Err(SpiffeIdError::PercentEncoding);
    }
    let (trust_domain, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    check_trust_domain(trust_domain)?;
    check_path(path, stars)?;
    Ok((trust_domain, path))
}

/// A trust domain as the standard writes it.
fn check_trust_domain(td: &str) -> Result<(), SpiffeIdError> {
    if td.is_empty() {
        return Err(SpiffeIdError::NoTrustDomain);
    }
    if td.contains('@') {
        return Err(SpiffeIdError::Userinfo);
    }
    if td.contains(':') {
        return Err(SpiffeIdError::Port);
    }
    if !td.bytes().all(is_trust_domain_byte) {
        return Err(SpiffeIdError::TrustDomainCharacter);
    }
    if td.len() > MAX_TRUST_DOMAIN {
        return Err(SpiffeIdError::TrustDomainTooLong);
    }
    Ok(())
}

/// A path: empty, or `/`-led segments (which may hold `*` if `stars`).
fn check_path(path: &str, stars: bool) -> Result<(), SpiffeIdError> {
    if path.is_empty() {
        return Ok(());
    }
    let mut segments = path.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        match segment {
            "" if segments.peek().is_none() => return Err(SpiffeIdError::TrailingSlash),
            "" => return Err(SpiffeIdError::EmptySegment),
            "." | ".." => return Err(SpiffeIdError::DotSegment),
            s if !s.bytes().all(|b| is_segment_byte(b) || (stars && b == b'*')) => return Err(SpiffeIdError::PathCharacter),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(uri: &str) -> Option<SpiffeIdError> {
        SpiffeId::parse(uri).err()
    }

    #[test]
    fn valid_ids_split_into_trust_domain_and_path() {
        let id = SpiffeId::parse("spiffe://example.org/ns/prod/sa/web").unwrap();
        assert_eq!((id.trust_domain, id.path), ("example.org", "/ns/prod/sa/web"));
        let td = SpiffeId::parse("spiffe://a-b_c.9").unwrap();
        assert_eq!((td.trust_domain, td.path), ("a-b_c.9", ""));
        assert!(SpiffeId::parse("spiffe://example.org/A.b-C_9/...x/.hidden").is_ok());
    }

    #[test]
    fn every_rule_of_the_standard_refuses_its_own_case() {
        use SpiffeIdError::*;
        for (uri, want) in [
            ("https://example.org/x", Scheme),
            ("SPIFFE://example.org/x", Scheme),
            ("spiffe:/example.org/x", Scheme),
            ("spiffe://", NoTrustDomain),
            ("spiffe:///x", NoTrustDomain),
            ("spiffe://user@example.org/x", Userinfo),
            ("spiffe://example.org:8443/x", Port),
            ("spiffe://Example.org/x", TrustDomainCharacter),
            ("spiffe://exa mple.org/x", TrustDomainCharacter),
            ("spiffe://exämple.org/x", TrustDomainCharacter),
            ("spiffe://example.org/x?y=1", Query),
            ("spiffe://example.org/x#y", Fragment),
            ("spiffe://example.org/x%2Fy", PercentEncoding),
            ("spiffe://example.org/ns//sa", EmptySegment),
            ("spiffe://example.org/ns/prod/sa/..", DotSegment),
            ("spiffe://example.org/./x", DotSegment),
            ("spiffe://example.org/ns/", TrailingSlash),
            ("spiffe://example.org/", TrailingSlash),
            ("spiffe://example.org/ns/pr*d", PathCharacter),
            ("spiffe://example.org/ns/prod\\x", PathCharacter),
            ("spiffe://example.org/ns/pröd", PathCharacter),
        ] {
            assert_eq!(why(uri), Some(want), "{uri}");
        }
        assert_eq!(why(&format!("spiffe://{}/x", "a".repeat(256))), Some(TrustDomainTooLong));
    }

    #[test]
    fn a_pattern_holds_stars_in_its_path_only_and_otherwise_follows_the_ids_rules() {
        for ok in [
            "spiffe://example.org/ns/*/sa/web-*",
            "spiffe://example.org/**",
            "spiffe://example.org",
        ] {
            assert_eq!(check_pattern(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_pattern("spiffe://*.org/x"), Err(SpiffeIdError::TrustDomainCharacter));
        assert_eq!(check_pattern("spiffe://example.org/ns/*/.."), Err(SpiffeIdError::DotSegment));
        assert_eq!(check_pattern("spiffe://example.org/ns/*/"), Err(SpiffeIdError::TrailingSlash));
        assert_eq!(
            SpiffeId::parse("spiffe://example.org/ns/*").err(),
            Some(SpiffeIdError::PathCharacter),
            "an ID holds no star"
        );
        assert_eq!(why(&format!("spiffe://{}/x", "a".repeat(255))), None);
    }
}
