//! The identity a client certificate proves: read once from the certificate
//! (PEM or DER) with x509-parser, or pieced together from Envoy's connection
//! properties when no certificate is available.

use certgate_x509::dn::Dn;
use certgate_x509::pem::{self, PemError};
use certgate_x509::san::{check_dns_name, check_email, check_uri, DnsNameError, EmailError, UriError};
use certgate_x509::spiffe::{has_spiffe_scheme, SpiffeId, SpiffeIdError};
use certgate_x509::text::hex;
use certgate_x509::{sha256_hex, CertError, CertFacts};

/// Where an identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    /// The `connection.peer_certificate` property (the PEM Envoy verified).
    PeerCertificate,
    /// The `Cert=` of the x-forwarded-client-cert element this proxy added.
    Xfcc,
    /// Envoy's subject / first-SAN / digest properties; no issuer, serial or validity.
    Properties,
}

/// Everything the policy and the identity headers need to know about a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Where the identity was read.
    pub source: IdentitySource,
    /// The subject DN.
    pub subject: Dn,
    /// Unknown when the identity comes from properties alone.
    pub issuer: Option<Dn>,
    /// Lowercase hex, no separators, no leading zeros.
    pub serial: Option<String>,
    /// Unix seconds.
    pub not_before: Option<i64>,
    /// Unix seconds.
    pub not_after: Option<i64>,
    /// URI SANs that are RFC 3986 URIs, in certificate order.
    pub san_uri: Vec<String>,
    /// DNS SANs that are DNS names (RFC 5280 §4.2.1.6), in certificate order.
    pub san_dns: Vec<String>,
    /// E-mail SANs that are mailboxes (RFC 5321), in certificate order.
    pub san_email: Vec<String>,
    /// The SPIFFE ID: the certificate's one URI SAN, if it is a valid SPIFFE
    /// ID (the SPIFFE-ID standard; an X.509-SVID has exactly one URI SAN).
    pub spiffe_id: Option<String>,
    /// The names that fail their standard: no rule matches them and no
    /// header carries them (they are in none of the lists above).
    pub refused: Vec<RefusedName>,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub sha256: String,
}

/// A name of the certificate that fails its standard, and which rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedName {
    /// The name as the certificate writes it.
    pub value: String,
    /// What is wrong with it.
    pub why: NameError,
}

/// Why a name is no identity, by the kind of name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A `spiffe:` URI SAN that is not a valid SPIFFE ID.
    #[error("URI SAN is not a SPIFFE ID: {0}")]
    SpiffeId(SpiffeIdError),
    /// A `spiffe:` URI SAN beside other URI SANs: no X.509-SVID.
    #[error("URI SAN is not a SPIFFE ID: an X.509-SVID has exactly one URI SAN, this certificate has more")]
    SeveralUris,
    /// A URI SAN that is not an RFC 3986 URI.
    #[error("URI SAN is not an RFC 3986 URI: {0}")]
    Uri(UriError),
    /// A DNS SAN that is not a DNS name.
    #[error("DNS SAN is not a DNS name: {0}")]
    Dns(DnsNameError),
    /// An e-mail SAN that is not a mailbox.
    #[error("e-mail SAN is not a mailbox: {0}")]
    Email(EmailError),
}

impl NameError {
    /// Whether the name claimed to be a SPIFFE ID.
    pub fn is_spiffe(self) -> bool {
        matches!(self, NameError::SpiffeId(_) | NameError::SeveralUris)
    }
}

/// The SANs of a certificate, each kept or refused by its standard.
struct CheckedNames {
    san_uri: Vec<String>,
    san_dns: Vec<String>,
    san_email: Vec<String>,
    spiffe_id: Option<String>,
    refused: Vec<RefusedName>,
}

/// Keeps the names that meet their standards, and says why of the others.
fn check_names(uris: Vec<String>, dns: Vec<String>, emails: Vec<String>) -> CheckedNames {
    let mut refused = Vec::new();
    let spiffe_id = spiffe_id_of(&uris, &mut refused);
    let mut keep = |names: Vec<String>, check: &dyn Fn(&str) -> Result<(), NameError>| -> Vec<String> {
        names
            .into_iter()
            .filter_map(|value| match check(&value) {
                Ok(()) => Some(value),
                Err(why) => {
                    refused.push(RefusedName { value, why });
                    None
                }
            })
            .collect()
    };
    let san_uri = keep(uris, &|u| check_uri(u).map_err(NameError::Uri));
    let san_dns = keep(dns, &|d| check_dns_name(d).map_err(NameError::Dns));
    let san_email = keep(emails, &|e| check_email(e).map_err(NameError::Email));
    CheckedNames {
        san_uri,
        san_dns,
        san_email,
        spiffe_id,
        refused,
    }
}

/// The SPIFFE ID of a certificate with these URI SANs: the only one, if it is
/// valid. A `spiffe:` URI that is not is said in `refused`.
fn spiffe_id_of(uris: &[String], refused: &mut Vec<RefusedName>) -> Option<String> {
    let claims: Vec<&String> = uris.iter().filter(|u| has_spiffe_scheme(u)).collect();
    match (uris, claims.as_slice()) {
        (_, []) => None,
        ([only], _) => match SpiffeId::parse(only) {
            Ok(_) => Some(only.clone()),
            Err(e) => {
                refused.push(RefusedName {
                    value: only.clone(),
                    why: NameError::SpiffeId(e),
                });
                None
            }
        },
        (_, claims) => {
            refused.extend(claims.iter().map(|u| RefusedName {
                value: (*u).clone(),
                why: NameError::SeveralUris,
            }));
            None
        }
    }
}

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // each variant's message says what it is
pub enum IdentityError {
    #[error(transparent)]
    Pem(#[from] PemError),
    #[error(transparent)]
    Certificate(#[from] CertError),
    #[error("the subject is not a distinguished name: {0}")]
    Subject(String),
}

impl PeerIdentity {
    /// Reads the first PEM block of a text (a chain yields its leaf); it must
    /// be a `CERTIFICATE`.
    pub fn from_pem(pem: &[u8], source: IdentitySource) -> Result<PeerIdentity, IdentityError> {
        PeerIdentity::from_pem_with_digest(pem, source, None)
    }

    /// [`PeerIdentity::from_pem`] for the certificate whose SHA-256 the proxy
    /// already gave (`connection.sha256_peer_certificate_digest`, lowercase
    /// hex): hashing it again in Wasm would cost more than the parse.
    pub fn from_pem_with_digest(pem: &[u8], source: IdentitySource, sha256: Option<&str>) -> Result<PeerIdentity, IdentityError> {
        PeerIdentity::from_der_with_digest(&pem::first_certificate(pem)?, source, sha256)
    }

    /// Reads one DER certificate; trailing bytes are an error.
    pub fn from_der(der: &[u8], source: IdentitySource) -> Result<PeerIdentity, IdentityError> {
        PeerIdentity::from_der_with_digest(der, source, None)
    }

    fn from_der_with_digest(der: &[u8], source: IdentitySource, sha256: Option<&str>) -> Result<PeerIdentity, IdentityError> {
        let facts = CertFacts::from_der(der)?;
        if let Some(e) = facts.san_error {
            return Err(e.into());
        }
        let names = check_names(facts.san_uri, facts.san_dns, facts.san_email);
        Ok(PeerIdentity {
            source,
            subject: facts.subject,
            issuer: Some(facts.issuer),
            serial: Some(canonical_serial(&hex(&facts.serial))),
            not_before: Some(facts.not_before),
            not_after: Some(facts.not_after),
            spiffe_id: names.spiffe_id,
            san_uri: names.san_uri,
            san_dns: names.san_dns,
            san_email: names.san_email,
            refused: names.refused,
            sha256: match sha256 {
                Some(known) => known.to_owned(),
                None => sha256_hex(der),
            },
        })
    }

    /// Pieces an identity together from Envoy's properties: an RFC 2253 subject,
    /// the first URI and DNS SANs, and the certificate digest. Envoy shows one
    /// URI SAN only, so its SPIFFE ID is read as the certificate's only one.
    pub fn from_properties(
        subject: &str,
        uri_san: Option<&str>,
        dns_san: Option<&str>,
        sha256: &str,
    ) -> Result<PeerIdentity, IdentityError> {
        let subject = Dn::parse(subject).map_err(|e| IdentityError::Subject(e.to_string()))?;
        let first = |san: Option<&str>| san.filter(|s| !s.is_empty()).map(str::to_owned).into_iter().collect();
        let names = check_names(first(uri_san), first(dns_san), Vec::new());
        Ok(PeerIdentity {
            source: IdentitySource::Properties,
            subject,
            issuer: None,
            serial: None,
            not_before: None,
            not_after: None,
            spiffe_id: names.spiffe_id,
            san_uri: names.san_uri,
            san_dns: names.san_dns,
            san_email: names.san_email,
            refused: names.refused,
            sha256: sha256.to_ascii_lowercase(),
        })
    }

    /// The subject's common name.
    pub fn cn(&self) -> Option<&str> {
        self.subject.cn()
    }

    /// The issuer's common name, when the issuer is known.
    pub fn issuer_cn(&self) -> Option<&str> {
        self.issuer.as_ref().and_then(Dn::cn)
    }
}

/// A serial number as the deny-list and the headers write it: lowercase hex,
/// no `:` or spaces, no `0x`, no leading zeros. `None` if it is not hex.
pub fn canonical_serial_checked(text: &str) -> Option<String> {
    let t = text.trim();
    let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    let digits: String = t.chars().filter(|c| *c != ':' && *c != ' ').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some(canonical_serial(&digits))
}

fn canonical_serial(hex_digits: &str) -> String {
    let trimmed = hex_digits.trim_start_matches('0').to_ascii_lowercase();
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki::{fixture, fixture_der};

    #[test]
    fn alice_has_cn_issuer_serial_validity_and_sans() {
        let id = PeerIdentity::from_pem(fixture("alice.pem").as_bytes(), IdentitySource::PeerCertificate).unwrap();
        assert_eq!(id.cn(), Some("alice"));
        assert_eq!(id.subject.text, "CN=alice,OU=Engineering,O=Example");
        assert_eq!(id.issuer.as_ref().unwrap().text, "CN=Example Client CA,O=Example");
        assert_eq!(id.issuer_cn(), Some("Example Client CA"));
        assert_eq!(id.serial.as_deref(), Some("4c1e7a5e000000000000000000001001"));
        assert_eq!(id.not_before, Some(1_735_689_600)); // 2025-01-01
        assert_eq!(id.not_after, Some(3_313_526_400)); // 2075-01-01
        assert_eq!(id.san_uri, ["spiffe://example.org/ns/default/sa/alice"]);
        assert_eq!(id.san_email, ["alice@example.org"]);
        assert!(id.san_dns.is_empty());
        assert_eq!(id.spiffe_id.as_deref(), Some("spiffe://example.org/ns/default/sa/alice"));
        assert_eq!(id.sha256, sha256_hex(&fixture_der("alice.pem")));
        assert_eq!(id.sha256.len(), 64);
    }

    #[test]
    fn pem_and_der_give_the_same_identity() {
        let pem = PeerIdentity::from_pem(fixture("bob.pem").as_bytes(), IdentitySource::Xfcc).unwrap();
        let der = PeerIdentity::from_der(&fixture_der("bob.pem"), IdentitySource::Xfcc).unwrap();
        assert_eq!(pem, der);
        assert_eq!(der.san_dns, ["bob.svc.example.org"]);
    }

    #[test]
    fn certificate_without_cn_has_sans_but_no_cn() {
        let id = PeerIdentity::from_pem(fixture("no-cn.pem").as_bytes(), IdentitySource::PeerCertificate).unwrap();
        assert_eq!(id.cn(), None);
        assert_eq!(id.subject.text, "OU=Robots,O=Example");
        assert_eq!(id.san_dns, ["robot.svc.example.org"]);
    }

    #[test]
    fn unicode_cn_is_kept_as_text_and_escaped_in_the_dn() {
        let id = PeerIdentity::from_pem(fixture("unicode.pem").as_bytes(), IdentitySource::PeerCertificate).unwrap();
        assert_eq!(id.cn(), Some("Zoë Ünïcødé 日本"));
        assert!(id.subject.text.is_ascii());
        assert!(id.subject.text.starts_with(r"CN=Zo\C3\AB "));
    }

    #[test]
    fn a_cn_with_dn_syntax_stays_one_attribute() {
        let id = PeerIdentity::from_pem(fixture("comma-cn.pem").as_bytes(), IdentitySource::PeerCertificate).unwrap();
        assert_eq!(id.cn(), Some("alice,O=Example\"; x=\\"));
        assert_eq!(id.subject.text, r#"CN=alice\,O=Example\"\; x=\\,O=Evil"#);
    }

    #[test]
    fn a_chain_pem_yields_its_first_certificate() {
        let id = PeerIdentity::from_pem(fixture("alice-chain.pem").as_bytes(), IdentitySource::Xfcc).unwrap();
        assert_eq!(id.cn(), Some("alice"));
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        let der = fixture_der("alice.pem");
        let mut trailing = der.clone();
        trailing.extend_from_slice(b"\0\0");
        assert_eq!(
            PeerIdentity::from_der(&trailing, IdentitySource::Xfcc),
            Err(IdentityError::Certificate(CertError::TrailingData(2)))
        );
        for len in [0, 1, 10, der.len() / 2, der.len() - 1] {
            assert!(
                PeerIdentity::from_der(&der[..len], IdentitySource::Xfcc).is_err(),
                "truncated to {len}"
            );
        }
        assert!(matches!(
            PeerIdentity::from_pem(b"", IdentitySource::Xfcc),
            Err(IdentityError::Pem(_))
        ));
        assert!(matches!(
            PeerIdentity::from_pem(
                b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
                IdentitySource::Xfcc
            ),
            Err(IdentityError::Pem(_))
        ));
        let key = fixture("alice.key");
        assert!(matches!(
            PeerIdentity::from_pem(key.as_bytes(), IdentitySource::Xfcc),
            Err(IdentityError::Pem(PemError::NotACertificate(_)))
        ));
    }

    #[test]
    fn identity_from_properties_knows_no_issuer_serial_or_validity() {
        let id = PeerIdentity::from_properties(
            "CN=alice,OU=Engineering,O=Example",
            Some("spiffe://example.org/ns/default/sa/alice"),
            None,
            "ABCDEF",
        )
        .unwrap();
        assert_eq!(id.cn(), Some("alice"));
        assert_eq!(id.issuer, None);
        assert_eq!(id.serial, None);
        assert_eq!(id.not_after, None);
        assert_eq!(id.spiffe_id.as_deref(), Some("spiffe://example.org/ns/default/sa/alice"));
        assert_eq!(id.sha256, "abcdef");
        assert!(PeerIdentity::from_properties("not a dn", None, None, "").is_err());
    }

    fn spiffe(uris: &[&str]) -> (Option<String>, Vec<RefusedName>) {
        let mut refused = Vec::new();
        let id = spiffe_id_of(&uris.iter().map(|u| (*u).to_owned()).collect::<Vec<_>>(), &mut refused);
        (id, refused)
    }

    #[test]
    fn an_svid_has_exactly_one_uri_san() {
        assert_eq!(spiffe(&["spiffe://a/x"]).0.as_deref(), Some("spiffe://a/x"));
        let (id, refused) = spiffe(&["spiffe://a/x", "spiffe://b/y"]);
        assert_eq!(id, None);
        assert_eq!(refused.len(), 2);
        assert!(refused.iter().all(|r| r.why == NameError::SeveralUris));
        let (id, refused) = spiffe(&["spiffe://a/x", "https://a.example/"]);
        assert_eq!((id, refused.len()), (None, 1));
        assert_eq!(spiffe(&["https://a"]), (None, Vec::new()));
    }

    #[test]
    fn an_invalid_spiffe_id_is_no_spiffe_id_but_stays_a_uri_san() {
        let id = PeerIdentity::from_properties("CN=x", Some("spiffe://example.org/ns/prod/sa/.."), None, "ab").unwrap();
        assert_eq!(id.spiffe_id, None);
        assert_eq!(id.san_uri, ["spiffe://example.org/ns/prod/sa/.."]);
        assert_eq!(
            id.refused,
            [RefusedName {
                value: "spiffe://example.org/ns/prod/sa/..".into(),
                why: NameError::SpiffeId(SpiffeIdError::DotSegment)
            }]
        );
        // uppercase is refused, not folded: `SPIFFE:` still claims to be one
        let upper = PeerIdentity::from_properties("CN=x", Some("SPIFFE://example.org/x"), None, "ab").unwrap();
        assert_eq!((upper.spiffe_id, upper.refused.len()), (None, 1));
        assert!(upper.refused.iter().all(|r| r.why.is_spiffe()));
    }

    #[test]
    fn sans_that_fail_their_standard_are_in_no_list() {
        let names = check_names(
            vec!["https://example.org/a b".into(), "urn:x:y".into()],
            vec!["*.example.org".into(), "ok.example.org".into(), "bad_name.example.org".into()],
            vec!["Alice <alice@example.org>".into(), "alice@example.org".into()],
        );
        assert_eq!(names.san_uri, ["urn:x:y"]);
        assert_eq!(names.san_dns, ["ok.example.org"]);
        assert_eq!(names.san_email, ["alice@example.org"]);
        let refused: Vec<&str> = names.refused.iter().map(|r| r.value.as_str()).collect();
        assert_eq!(
            refused,
            [
                "https://example.org/a b",
                "*.example.org",
                "bad_name.example.org",
                "Alice <alice@example.org>"
            ]
        );
        assert_eq!(
            names.refused[1].why.to_string(),
            "DNS SAN is not a DNS name: a label is `*` or holds one: a wildcard is not a client's name"
        );
    }

    #[test]
    fn serials_are_written_one_way() {
        assert_eq!(canonical_serial_checked("4C:1E:00:01").as_deref(), Some("4c1e0001"));
        assert_eq!(canonical_serial_checked("0x00ff").as_deref(), Some("ff"));
        assert_eq!(canonical_serial_checked("00").as_deref(), Some("0"));
        assert_eq!(canonical_serial_checked("zz"), None);
        assert_eq!(canonical_serial_checked(""), None);
    }
}
