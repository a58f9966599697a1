//! Allow-list patterns: exact text with `*` wildcards.
//!
//! `*` matches any run of characters that does not contain the field's
//! separator (`.` for DNS names, `/` for URIs and SPIFFE IDs; none for names),
//! so `*.svc.example.org` matches one label and `spiffe://td/ns/*/sa/*` one
//! path segment each. `**` matches anything, separators included. There are no
//! other special characters.

use std::fmt;

/// How a field's values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syntax {
    /// The character a single `*` does not cross.
    pub separator: Option<u8>,
    /// Compare ASCII letters without regard to case (DNS names, e-mail addresses).
    pub ignore_ascii_case: bool,
}

impl Syntax {
    /// Names (common names): case matters, `*` crosses everything.
    pub const NAME: Syntax = Syntax {
        separator: None,
        ignore_ascii_case: false,
    };
    /// DNS names: case ignored, `*` stays within one label.
    pub const DNS: Syntax = Syntax {
        separator: Some(b'.'),
        ignore_ascii_case: true,
    };
    /// The domain of an e-mail address ([`EmailPattern`]): case ignored.
    pub const EMAIL_DOMAIN: Syntax = Syntax {
        separator: None,
        ignore_ascii_case: true,
    };
    /// URIs and SPIFFE IDs: case matters, `*` stays within one path segment.
    pub const URI: Syntax = Syntax {
        separator: Some(b'/'),
        ignore_ascii_case: false,
    };
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(Vec<u8>),
    /// `*`: anything but the separator.
    Star,
    /// `**`: anything.
    DoubleStar,
}

/// A compiled pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    tokens: Vec<Token>,
    syntax: Syntax,
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.source)
    }
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // each variant's message says what it is
pub enum GlobError {
    #[error("a pattern must not be empty")]
    Empty,
    #[error("`***` is not a pattern: use `*` (one segment) or `**` (anything)")]
    TripleStar,
    #[error("a pattern must not contain control characters")]
    Control,
    #[error("an e-mail pattern is `local@domain`, each part text with `*`, e.g. `*@example.org`")]
    NotEmail,
}

impl Glob {
    /// Compiles `pattern` for `syntax`, or says why it cannot be one.
    pub fn new(pattern: &str, syntax: Syntax) -> Result<Glob, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        if pattern.contains("***") {
            return Err(GlobError::TripleStar);
        }
        if pattern.chars().any(char::is_control) {
            return Err(GlobError::Control);
        }
        let mut tokens = Vec::new();
        let mut rest = pattern;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("**") {
                tokens.push(Token::DoubleStar);
                rest = r;
            } else if let Some(r) = rest.strip_prefix('*') {
                tokens.push(Token::Star);
                rest = r;
            } else {
                let end = rest.find('*').unwrap_or(rest.len());
                let (lit, r) = rest.split_at(end);
                let mut bytes = lit.as_bytes().to_vec();
                if syntax.ignore_ascii_case {
                    bytes.make_ascii_lowercase();
                }
                tokens.push(Token::Literal(bytes));
                rest = r;
            }
        }
        Ok(Glob {
            source: pattern.to_owned(),
            tokens,
            syntax,
        })
    }

    /// The pattern as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `text` matches the whole pattern.
    ///
    /// Runs in O(len(text) × tokens): a set of reachable positions is carried
    /// through the tokens, so no input can make it backtrack.
    pub fn matches(&self, text: &str) -> bool {
        // the common case, a pattern without `*`: a plain comparison
        if let [Token::Literal(lit)] = self.tokens.as_slice() {
            return if self.syntax.ignore_ascii_case {
                text.as_bytes().eq_ignore_ascii_case(lit)
            } else {
                text.as_bytes() == lit.as_slice()
            };
        }
        let lowered;
        let text = if self.syntax.ignore_ascii_case {
            lowered = text.to_ascii_lowercase();
            lowered.as_bytes()
        } else {
            text.as_bytes()
        };
        let n = text.len();
        let mut reach = vec![false; n + 1];
        if let Some(first) = reach.first_mut() {
            *first = true;
        }
        for token in &self.tokens {
            let mut next = vec![false; n + 1];
            match token {
                Token::Literal(lit) => {
                    for (i, reachable) in reach.iter().enumerate() {
                        let fits = text.get(i..).is_some_and(|t| t.starts_with(lit));
                        if *reachable && fits {
                            if let Some(slot) = next.get_mut(i + lit.len()) {
                                *slot = true;
                            }
                        }
                    }
                }
                Token::Star | Token::DoubleStar => {
                    let crosses = *token == Token::DoubleStar;
                    let mut carry = false;
                    for (i, slot) in next.iter_mut().enumerate() {
                        carry |= reach.get(i).copied().unwrap_or(false);
                        *slot = carry;
                        let at_sep = text.get(i).copied() == self.syntax.separator && self.syntax.separator.is_some();
                        if at_sep && !crosses {
                            carry = false;
                        }
                    }
                }
            }
            reach = next;
        }
        reach.last().copied().unwrap_or(false)
    }
}

/// An e-mail pattern, `local@domain`. The local part compares exactly, case
/// included: RFC 5321 §2.4 leaves its meaning to the mailbox's own host and
/// RFC 5280 §7.5 matches it exactly, so `Alice@` and `alice@` may be two
/// people. The domain compares without regard to ASCII case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailPattern {
    local: Glob,
    domain: Glob,
}

impl EmailPattern {
    /// Compiles `pattern`, split at its last `@`.
    pub fn new(pattern: &str) -> Result<EmailPattern, GlobError> {
        let (local, domain) = certgate_x509::san::split_email(pattern).ok_or(GlobError::NotEmail)?;
        if local.is_empty() || domain.is_empty() {
            return Err(GlobError::NotEmail);
        }
        Ok(EmailPattern {
            local: Glob::new(local, Syntax::NAME)?,
            domain: Glob::new(domain, Syntax::EMAIL_DOMAIN)?,
        })
    }

    /// Whether `address` matches both parts.
    pub fn matches(&self, address: &str) -> bool {
        certgate_x509::san::split_email(address).is_some_and(|(l, d)| self.local.matches(l) && self.domain.matches(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, syntax: Syntax, text: &str) -> bool {
        Glob::new(pattern, syntax).unwrap().matches(text)
    }

    #[test]
    fn exact_pattern_matches_only_itself() {
        assert!(m("alice", Syntax::NAME, "alice"));
        assert!(!m("alice", Syntax::NAME, "alice2"));
        assert!(!m("alice", Syntax::NAME, "Alice"));
        assert!(!m("alice", Syntax::NAME, ""));
    }

    #[test]
    fn star_in_a_name_matches_anything_including_nothing() {
        assert!(m("ops-*", Syntax::NAME, "ops-"));
        assert!(m("ops-*", Syntax::NAME, "ops-anna"));
        assert!(m("ops-*", Syntax::NAME, "ops-a.b/c"));
        assert!(!m("ops-*", Syntax::NAME, "dev-ops-anna"));
        assert!(m("*", Syntax::NAME, ""));
        assert!(m("a*b*c", Syntax::NAME, "abc"));
        assert!(m("a*b*c", Syntax::NAME, "a-b-b-c"));
        assert!(!m("a*b*c", Syntax::NAME, "a-b-b-c-d"));
    }

    #[test]
    fn dns_star_matches_exactly_one_label() {
        assert!(m("*.svc.example.org", Syntax::DNS, "bob.svc.example.org"));
        assert!(!m("*.svc.example.org", Syntax::DNS, "a.bob.svc.example.org"));
        assert!(!m("*.svc.example.org", Syntax::DNS, "svc.example.org"));
        assert!(m("**.example.org", Syntax::DNS, "a.b.example.org"));
        assert!(m("web-*.example.org", Syntax::DNS, "web-1.example.org"));
    }

    #[test]
    fn dns_ignores_case_and_email_only_in_its_domain() {
        assert!(m("*.SVC.example.org", Syntax::DNS, "Bob.svc.EXAMPLE.org"));
        let email = |p: &str, a: &str| EmailPattern::new(p).unwrap().matches(a);
        assert!(email("alice@example.org", "alice@Example.ORG"));
        assert!(
            !email("alice@example.org", "Alice@example.org"),
            "the local part is the mailbox host's to read"
        );
        assert!(email("*@example.org", "Alice.Smith@EXAMPLE.org"));
        assert!(!email("*@example.org", "alice@example.org.evil"));
        assert!(!email("*@example.org", "alice@evil.org"));
        assert!(email("\"a@b\"@example.org", "\"a@b\"@example.org"));
        for bad in ["example.org", "@example.org", "alice@", "*"] {
            assert_eq!(EmailPattern::new(bad), Err(GlobError::NotEmail), "{bad}");
        }
    }

    #[test]
    fn uri_star_stays_within_one_path_segment() {
        let p = "spiffe://example.org/ns/*/sa/*";
        assert!(m(p, Syntax::URI, "spiffe://example.org/ns/default/sa/alice"));
        assert!(!m(p, Syntax::URI, "spiffe://example.org/ns/a/b/sa/alice"));
        assert!(!m(p, Syntax::URI, "spiffe://example.org/ns/default/sa/alice/extra"));
        assert!(!m(p, Syntax::URI, "spiffe://evil.org/ns/default/sa/alice"));
        assert!(m("spiffe://example.org/**", Syntax::URI, "spiffe://example.org/a/b/c"));
        assert!(!m("spiffe://example.org/**", Syntax::URI, "spiffe://example.org.evil/a"));
    }

    #[test]
    fn many_stars_on_long_input_do_not_backtrack() {
        let p = "*a*a*a*a*a*a*a*a*a*a*b";
        let text = "a".repeat(100_000);
        assert!(!m(p, Syntax::NAME, &text));
    }

    #[test]
    fn non_ascii_text_matches_by_bytes() {
        assert!(m("Zoë *", Syntax::NAME, "Zoë Ünïcødé"));
        assert!(!m("Zoe *", Syntax::NAME, "Zoë Ünïcødé"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!(Glob::new("", Syntax::NAME), Err(GlobError::Empty));
        assert_eq!(Glob::new("a***", Syntax::NAME), Err(GlobError::TripleStar));
        assert_eq!(Glob::new("a\nb", Syntax::NAME), Err(GlobError::Control));
    }
}
