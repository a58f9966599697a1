//! What goes into each kind of certificate: the CA profiles, the server and the
//! client profile. Pure: no files, no keys.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyUsagePurpose, SanType,
    SerialNumber,
};
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time};

use certgate_x509::san;
use certgate_x509::spiffe::{has_spiffe_scheme, SpiffeId};

use super::PkiError;

/// A subject name, written C, O, OU, CN in that order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// Common name (CN).
    pub cn: Option<String>,
    /// Organisation (O).
    pub org: Option<String>,
    /// Organisational unit (OU).
    pub ou: Option<String>,
    /// Country (C), two letters.
    pub country: Option<String>,
}

impl Subject {
    /// A subject with a CN alone.
    pub fn cn(cn: impl Into<String>) -> Self {
        Subject {
            cn: Some(cn.into()),
            ..Subject::default()
        }
    }

    /// The subject as rcgen writes it.
    pub fn to_dn(&self) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        for (ty, value) in [
            (DnType::CountryName, &self.country),
            (DnType::OrganizationName, &self.org),
            (DnType::OrganizationalUnitName, &self.ou),
            (DnType::CommonName, &self.cn),
        ] {
            if let Some(v) = value {
                dn.push(ty, v.as_str());
            }
        }
        dn
    }

    /// Whether it names nothing.
    pub fn is_empty(&self) -> bool {
        self.cn.is_none() && self.org.is_none() && self.ou.is_none() && self.country.is_none()
    }
}

/// Subject alternative names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sans {
    /// DNS names.
    pub dns: Vec<String>,
    /// IP addresses.
    pub ips: Vec<IpAddr>,
    /// URIs (SPIFFE IDs among them).
    pub uris: Vec<String>,
    /// E-mail addresses.
    pub emails: Vec<String>,
}

impl Sans {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.ips.is_empty() && self.uris.is_empty() && self.emails.is_empty()
    }

    /// The names as the queue, the audit log and error messages write them:
    /// `DNS:…`, `URI:…`, `email:…`, `IP:…`, in that order.
    pub fn texts(&self) -> Vec<String> {
        let mut out: Vec<String> = self.dns.iter().map(|d| format!("DNS:{d}")).collect();
        out.extend(self.uris.iter().map(|u| format!("URI:{u}")));
        out.extend(self.emails.iter().map(|e| format!("email:{e}")));
        out.extend(self.ips.iter().map(|ip| format!("IP:{ip}")));
        out
    }

    /// The names as rcgen wants them, each by its standard as certgate
    /// reads it (so certgate would not refuse what this CA issued); each
    /// refused one is named. `server`: a DNS name may start with a `*`
    /// label (RFC 6125), which is never a client's name.
    pub fn to_rcgen(&self, server: bool) -> Result<Vec<SanType>, PkiError> {
        let ia5 = |kind: &str, v: &str| -> Result<rcgen::string::Ia5String, PkiError> {
            v.try_into()
                .map_err(|_| PkiError::Name(format!("{kind} SAN {v:?}: only ASCII is allowed here")))
        };
        let refuse = |kind: &str, v: &str, why: &dyn std::fmt::Display| PkiError::Name(format!("{kind} SAN {v:?}: {why}"));
        let mut out = Vec::new();
        for d in &self.dns {
            let name = if server { d.strip_prefix("*.").unwrap_or(d) } else { d };
            let ascii = ia5("DNS", d)?;
            san::check_dns_name(name).map_err(|e| refuse("DNS", d, &e))?;
            out.push(SanType::DnsName(ascii));
        }
        out.extend(self.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        for u in &self.uris {
            let ascii = ia5("URI", u)?;
            san::check_uri(u).map_err(|e| refuse("URI", u, &format!("not an RFC 3986 URI: {e}")))?;
            if has_spiffe_scheme(u) {
                SpiffeId::parse(u).map_err(|e| refuse("URI", u, &format!("not a SPIFFE ID: {e}")))?;
            }
            out.push(SanType::URI(ascii));
        }
        for e in &self.emails {
            let ascii = ia5("email", e)?;
            san::check_email(e).map_err(|why| refuse("email", e, &format!("not a mailbox (user@domain): {why}")))?;
            out.push(SanType::Rfc822Name(ascii));
        }
        if self.uris.len() > 1 && self.uris.iter().any(|u| has_spiffe_scheme(u)) {
            return Err(PkiError::Name(
                "a SPIFFE ID must be the certificate's only URI SAN (X509-SVID §2)".into(),
            ));
        }
        Ok(out)
    }
}

/// A CRL URL as relying parties fetch it: `http://` or `https://` (RFC 5280
/// asks for HTTP; a CRL over HTTPS would need the CA it revokes for), ASCII,
/// no spaces.
pub fn check_crl_url(url: &str) -> Result<(), PkiError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() > "https://".len()
        && url.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(PkiError::Usage(format!(
            "CRL URL {url:?}: give an http:// URL (ASCII, no spaces), e.g. http://pki.example.org/client-ca.crl"
        )))
    }
}

/// Names where the issuing CA's CRL is published (the CRL Distribution
/// Points extension), when it has a URL.
pub fn with_crl_url(mut p: CertificateParams, url: Option<&str>) -> CertificateParams {
    if let Some(url) = url {
        p.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec![url.to_owned()],
        }];
    }
    p
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Valid from.
    pub not_before: OffsetDateTime,
    /// Valid until.
    pub not_after: OffsetDateTime,
}

/// Now, to the second (certificates, CRLs and the index hold no fractions).
pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

impl Validity {
    /// From now (less five minutes, for clocks a little behind) for `days`.
    pub fn days(days: u32) -> Self {
        let now = now();
        Validity {
            not_before: now - Duration::minutes(5),
            not_after: now + Duration::days(i64::from(days)),
        }
    }

    /// `--days`, overridden by explicit `--not-before` / `--not-after` dates.
    pub fn from_args(days: u32, not_before: Option<&str>, not_after: Option<&str>) -> Result<Self, PkiError> {
        let mut v = Validity::days(days);
        if let Some(s) = not_before {
            v.not_before = parse_date(s)?;
        }
        if let Some(s) = not_after {
            v.not_after = parse_date(s)?;
        }
        if v.not_after <= v.not_before {
            return Err(PkiError::Usage(format!(
                "the validity ends ({}) before it starts ({})",
                v.not_after, v.not_before
            )));
        }
        Ok(v)
    }
}

/// `2026-11-23` (midnight UTC) or RFC 3339 (`2026-11-23T10:00:00Z`).
pub fn parse_date(s: &str) -> Result<OffsetDateTime, PkiError> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let bad = || PkiError::Usage(format!("date {s:?}: write YYYY-MM-DD or an RFC 3339 time"));
    let mut parts = s.splitn(3, '-').map(str::parse::<i32>);
    let (Some(Ok(y)), Some(Ok(m)), Some(Ok(d))) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let month = u8::try_from(m).ok().and_then(|m| time::Month::try_from(m).ok()).ok_or_else(bad)?;
    let day = u8::try_from(d).map_err(|_| bad())?;
    let date = Date::from_calendar_date(y, month, day).map_err(|_| bad())?;
    Ok(PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc())
}

/// A random positive 128-bit serial (RFC 5280 allows up to 20 octets; CAs/B
/// forum asks for at least 64 random bits).
pub fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| PkiError::Internal(format!("no randomness for a serial: {e}")))?;
    // Positive and always 16 octets long.
    if let Some(first) = bytes.first_mut() {
        *first = (*first & 0x7f).max(1);
    }
    Ok(SerialNumber::from_slice(&bytes))
}

/// `--serial` given in hex (for reproducible fixtures), or a random one.
pub fn serial_from_hex(hex: &str) -> Result<SerialNumber, PkiError> {
    let clean: String = hex.chars().filter(|c| *c != ':').collect();
    let bad = || PkiError::Usage(format!("serial {hex:?}: give 1 to 20 octets in hex"));
    if clean.is_empty() || clean.len() > 40 || !clean.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let padded = if clean.len() % 2 == 1 { format!("0{clean}") } else { clean };
    let bytes = certgate_x509::text::from_hex(&padded).ok_or_else(bad)?;
    if bytes.iter().all(|b| *b == 0) {
        return Err(PkiError::Usage(format!("serial {hex:?}: must not be zero")));
    }
    Ok(SerialNumber::from_slice(&bytes))
}

/// A certificate's serial as the index writes it ([`serial_hex`]).
pub fn cert_serial(cert: &x509_parser::certificate::X509Certificate<'_>) -> String {
    serial_hex(&SerialNumber::from_slice(cert.raw_serial()))
}

/// Upper-case hex without separators or leading zero octets, as the index and
/// `openssl x509 -serial` show it.
pub fn serial_hex(serial: &SerialNumber) -> String {
    let bytes = serial.to_bytes();
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len().saturating_sub(1));
    bytes.get(start..).unwrap_or_default().iter().map(|b| format!("{b:02X}")).collect()
}

fn base(subject: DistinguishedName, validity: Validity, serial: SerialNumber) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = subject;
    p.not_before = validity.not_before;
    p.not_after = validity.not_after;
    p.serial_number = Some(serial);
    p.key_identifier_method = KeyIdMethod::Sha256;
    p.use_authority_key_identifier_extension = true;
    // an end entity says so: basicConstraints CA:FALSE (the CA profiles override it)
    p.is_ca = IsCa::ExplicitNoCa;
    p
}

/// A root CA: self-signed, no path length limit, signs certificates and CRLs.
pub fn root_ca(subject: DistinguishedName, validity: Validity, serial: SerialNumber) -> CertificateParams {
    let mut p = base(subject, validity, serial);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.use_authority_key_identifier_extension = false;
    p
}

/// The client-signing intermediate: path length 0 (it cannot make CAs) and
/// extended key usage clientAuth, so what it signs cannot serve TLS.
pub fn client_ca(subject: DistinguishedName, validity: Validity, serial: SerialNumber) -> CertificateParams {
    let mut p = root_ca(subject, validity, serial);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.use_authority_key_identifier_extension = true;
    p
}

/// A TLS server: serverAuth, its names as SANs (browsers ignore the CN).
pub fn server(subject: DistinguishedName, sans: &Sans, validity: Validity, serial: SerialNumber) -> Result<CertificateParams, PkiError> {
    if sans.dns.is_empty() && sans.ips.is_empty() {
        return Err(PkiError::Usage("a server certificate needs at least one --dns name or --ip".into()));
    }
    let mut p = base(subject, validity, serial);
    p.subject_alt_names = sans.to_rcgen(true)?;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(p)
}

/// A TLS client: clientAuth only, named by its CN and/or SANs.
pub fn client(subject: DistinguishedName, sans: &Sans, validity: Validity, serial: SerialNumber) -> Result<CertificateParams, PkiError> {
    if subject.get(&DnType::CommonName).is_none() && sans.is_empty() {
        return Err(PkiError::Usage("a client certificate needs a --cn or at least one SAN".into()));
    }
    let mut p = base(subject, validity, serial);
    p.subject_alt_names = sans.to_rcgen(false)?;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_entity_says_ca_false_and_a_ca_says_ca_true() {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = client(
            Subject::cn("alice").to_dn(),
            &Sans::default(),
            Validity::days(1),
            random_serial().unwrap(),
        )
        .unwrap()
        .self_signed(&key)
        .unwrap();
        let (_, cert) = X509Certificate::from_der(leaf.der()).unwrap();
        let bc = cert.basic_constraints().unwrap().expect("basicConstraints is there");
        assert!(!bc.value.ca, "CA:FALSE");
        let ca = root_ca(Subject::cn("root").to_dn(), Validity::days(1), random_serial().unwrap())
            .self_signed(&key)
            .unwrap();
        let (_, cert) = X509Certificate::from_der(ca.der()).unwrap();
        assert!(cert.basic_constraints().unwrap().unwrap().value.ca);
    }

    #[test]
    fn serials() {
        assert_eq!(serial_hex(&serial_from_hex("4c:1e:7a").unwrap()), "4C1E7A");
        assert_eq!(serial_hex(&serial_from_hex("abc").unwrap()), "0ABC");
        assert!(serial_from_hex("00").is_err());
        assert!(serial_from_hex("xyz").is_err());
        assert!(serial_from_hex(&"1".repeat(41)).is_err());
        let r = random_serial().unwrap();
        assert_eq!(r.to_bytes().len(), 16);
        assert!(r.to_bytes()[0] >= 1 && r.to_bytes()[0] < 0x80);
        assert_ne!(r, random_serial().unwrap());
    }

    #[test]
    fn dates_and_names() {
        assert_eq!(parse_date("2030-02-03").unwrap().unix_timestamp(), 1_896_307_200);
        assert!(parse_date("2030-02-30").is_err());
        assert!(parse_date("soon").is_err());
        assert!(Validity::from_args(1, Some("2030-01-02"), Some("2030-01-01")).is_err());
        for bad in [
            "spiffe://Example.org/x",
            "spiffe:///x",
            "spiffe://e.org/x?y",
            "spiffe://e.org/ns/..",
            "no-scheme",
            "https://e.org/a b",
        ] {
            let sans = Sans {
                uris: vec![bad.into()],
                ..Sans::default()
            };
            assert!(sans.to_rcgen(false).is_err(), "{bad}");
        }
        let two = Sans {
            uris: vec!["spiffe://e.org/a".into(), "https://e.org/".into()],
            ..Sans::default()
        };
        assert!(two.to_rcgen(false).unwrap_err().to_string().contains("only URI SAN"));
        for bad in ["nobody", "Alice <a@e.org>", "a@b@e.org"] {
            let sans = Sans {
                emails: vec![bad.into()],
                ..Sans::default()
            };
            assert!(sans.to_rcgen(false).is_err(), "{bad}");
        }
        let sans = Sans {
            dns: vec!["zoë.example".into()],
            ..Sans::default()
        };
        assert!(sans.to_rcgen(false).unwrap_err().to_string().contains("only ASCII"));
        // a wildcard names a server, never a client
        let wild = Sans {
            dns: vec!["*.example.org".into()],
            ..Sans::default()
        };
        assert!(wild.to_rcgen(true).is_ok());
        assert!(wild.to_rcgen(false).unwrap_err().to_string().contains("wildcard"));
        let bad = Sans {
            dns: vec!["bad_name.example.org".into()],
            ..Sans::default()
        };
        assert!(bad.to_rcgen(true).is_err());
    }
}
