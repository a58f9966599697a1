//! Allow-list patterns for whole distinguished names, matched attribute by
//! attribute, so a CN that contains `,O=Example` can never pass for an
//! `O=Example` name.

use certgate_x509::dn::{canonical_kind, is_kind, split_rdns, Dn, DnError};

use crate::glob::{Glob, GlobError, Syntax};

/// An allow-list entry for a whole name: `CN=ops-*,O=Example`. Attribute
/// types compare without case (`cn` = `CN` = `2.5.4.3`); values are globs
/// without a separator. Both names must have the same RDNs in the same order.
#[derive(Debug, Clone)]
pub struct DnPattern {
    rdns: Vec<Vec<(String, Glob)>>,
}

/// Why a name pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // each variant's message says what it is
pub enum DnPatternError {
    #[error(transparent)]
    Syntax(#[from] DnError),
    #[error("in the value of {kind}: {source}")]
    Value { kind: String, source: GlobError },
}

impl DnPattern {
    /// Parses a DN pattern: RFC 2253 text whose values may hold globs.
    pub fn parse(text: &str) -> Result<DnPattern, DnPatternError> {
        let rdns = split_rdns(text)?
            .into_iter()
            .map(|rdn| {
                let attrs = rdn
                    .into_iter()
                    .map(|(kind, value)| {
                        let glob = Glob::new(&value, Syntax::NAME).map_err(|source| DnPatternError::Value {
                            kind: kind.clone(),
                            source,
                        })?;
                        Ok((canonical_kind(&kind), glob))
                    })
                    .collect::<Result<Vec<_>, DnPatternError>>()?;
                Ok(attrs)
            })
            .collect::<Result<Vec<_>, DnPatternError>>()?;
        Ok(DnPattern { rdns })
    }

    /// Whether `dn` has the pattern's attributes, in order, each value matching.
    pub fn matches(&self, dn: &Dn) -> bool {
        if self.rdns.len() != dn.rdns.len() {
            return false;
        }
        self.rdns.iter().zip(&dn.rdns).all(|(want, have)| {
            if want.len() != have.len() {
                return false;
            }
            // attributes of one RDN are a set: match each in any order
            want.iter()
                .all(|(wk, wv)| have.iter().any(|a| is_kind(&a.kind, wk) && wv.matches(&a.value)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use certgate_x509::dn::Attribute;

    fn attr(kind: &str, value: &str) -> Attribute {
        Attribute {
            kind: kind.into(),
            value: value.into(),
        }
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
