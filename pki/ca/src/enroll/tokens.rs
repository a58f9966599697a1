//! One-time enrollment tokens: `pki token` makes one bound to the names it
//! allows and an expiry, prints it once and keeps only its SHA-256. The EST
//! server takes it as the HTTP Basic password; it works exactly once: the
//! first request to move its file to `used/` (a rename, atomic) wins, also
//! under concurrent use.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::index::timestamp;
use crate::keys::write_new;
use crate::profile::Sans;
use crate::store::Ca;
use crate::PkiError;

/// What a token allows, as stored (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenGrant {
    /// The CN the certificate must have, if any.
    pub cn: Option<String>,
    /// DNS names it may hold.
    #[serde(default)]
    pub dns: Vec<String>,
    /// URIs (a SPIFFE ID among them) it may hold.
    #[serde(default)]
    pub uris: Vec<String>,
    /// E-mail addresses it may hold.
    #[serde(default)]
    pub emails: Vec<String>,
    /// IP addresses it may hold.
    #[serde(default)]
    pub ips: Vec<std::net::IpAddr>,
    /// RFC 3339: unusable from then on.
    pub expires: String,
    /// RFC 3339.
    pub created: String,
}

/// Prefix of every token, so a leaked one is recognisable in logs and scanners.
pub const PREFIX: &str = "cgt_";

impl TokenGrant {
    /// A grant for these names, valid `hours` from now.
    pub fn new(cn: Option<String>, sans: &Sans, hours: u32) -> Result<Self, PkiError> {
        if cn.is_none() && sans.is_empty() {
            return Err(PkiError::Usage(
                "a token must name what it allows: give --cn and/or a SAN (--dns, --spiffe, --uri, --email, --ip)".into(),
            ));
        }
        if hours == 0 {
            return Err(PkiError::Usage("--hours must be at least 1".into()));
        }
        // the names pass the same checks as an issued certificate's
        sans.to_rcgen(false)?;
        let now = crate::profile::now();
        Ok(TokenGrant {
            cn,
            dns: sans.dns.clone(),
            uris: sans.uris.clone(),
            emails: sans.emails.clone(),
            ips: sans.ips.clone(),
            expires: timestamp(now + time::Duration::hours(i64::from(hours))),
            created: timestamp(now),
        })
    }

    /// When it stops working.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(&self.expires, &time::format_description::well_known::Rfc3339).ok()
    }

    /// Whether a request for `cn` and `sans` stays within what it allows; the
    /// error names the first name that does not.
    pub fn allows(&self, cn: Option<&str>, sans: &Sans) -> Result<(), String> {
        match (&self.cn, cn) {
            (Some(want), Some(got)) if want != got => return Err(format!("CN {got:?}: the token allows CN {want:?}")),
            (None, Some(got)) => return Err(format!("CN {got:?}: the token allows no CN")),
            _ => {}
        }
        let outside = |kind: &str, name: &str| Err(format!("{kind} {name:?} is not among the names the token allows"));
        for d in &sans.dns {
            if !self.dns.contains(d) {
                return outside("DNS", d);
            }
        }
        for u in &sans.uris {
            if !self.uris.contains(u) {
                return outside("URI", u);
            }
        }
        for e in &sans.emails {
            if !self.emails.contains(e) {
                return outside("email", e);
            }
        }
        for ip in &sans.ips {
            if !self.ips.contains(ip) {
                return outside("IP", &ip.to_string());
            }
        }
        Ok(())
    }
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn dir(ca: &Ca) -> PathBuf {
    ca.dir.join("tokens")
}

/// Makes a token for `grant` at `ca`; returns it (shown once) and where its hash is kept.
pub fn create(ca: &Ca, grant: &TokenGrant) -> Result<(String, PathBuf), PkiError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| PkiError::Internal(format!("no randomness for a token: {e}")))?;
    // URL-safe, no padding: it travels as an HTTP Basic password and a shell argument
    let token = format!("{PREFIX}{}", base64url(&secret));
    let path = dir(ca).join(format!("{}.json", hash(&token)));
    let json = serde_json::to_string_pretty(grant).map_err(|e| PkiError::Internal(format!("cannot write the token: {e}")))?;
    write_new(&path, json.as_bytes(), false, true)?;
    Ok((token, path))
}

/// Why a token cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefused {
    /// Not one this CA made (or mistyped).
    #[error("the token is not known to this CA")]
    Unknown,
    /// Used once already.
    #[error("the token was used already")]
    Used,
    /// Past its expiry.
    #[error("the token expired at {0}")]
    Expired(String),
}

/// The grant of an unused, unexpired token.
pub fn find(ca: &Ca, token: &str) -> Result<Result<TokenGrant, TokenRefused>, PkiError> {
    let name = format!("{}.json", hash(token));
    let path = dir(ca).join(&name);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let used = dir(ca).join("used").join(&name).exists();
            return Ok(Err(if used { TokenRefused::Used } else { TokenRefused::Unknown }));
        }
        Err(cause) => return Err(PkiError::Read { path, cause }),
    };
    let grant: TokenGrant = serde_json::from_str(&text).map_err(|e| PkiError::bad_file(&path, format!("not a token file: {e}")))?;
    match grant.expires_at() {
        Some(at) if at > crate::profile::now() => Ok(Ok(grant)),
        Some(_) => Ok(Err(TokenRefused::Expired(grant.expires.clone()))),
        None => Err(PkiError::bad_file(
            &path,
            format!("expires {:?} is not an RFC 3339 time", grant.expires),
        )),
    }
}

/// Uses the token up: `true` for the one caller that moved it to `used/`,
/// `false` for everyone after (or at the same time).
pub fn claim(ca: &Ca, token: &str) -> Result<bool, PkiError> {
    let name = format!("{}.json", hash(token));
    let used = dir(ca).join("used");
    fs::create_dir_all(&used).map_err(PkiError::write(&used))?;
    match fs::rename(dir(ca).join(&name), used.join(&name)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(cause) => Err(PkiError::Write {
            path: used.join(name),
            cause,
        }),
    }
}

/// Puts a claimed token back (the signing after the claim failed, so nothing was issued).
pub fn unclaim(ca: &Ca, token: &str) -> Result<(), PkiError> {
    let name = format!("{}.json", hash(token));
    let to = dir(ca).join(&name);
    fs::rename(dir(ca).join("used").join(&name), &to).map_err(PkiError::write(&to))
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_allows_only_its_names() {
        let sans = Sans {
            dns: vec!["svc.example.org".into()],
            ..Sans::default()
        };
        let grant = TokenGrant::new(Some("svc".into()), &sans, 1).unwrap();
        assert!(grant.allows(Some("svc"), &sans).is_ok());
        assert!(grant.allows(Some("svc"), &Sans::default()).is_ok(), "fewer names are fine");
        assert!(grant.allows(Some("admin"), &sans).unwrap_err().contains("allows CN \"svc\""));
        let more = Sans {
            dns: vec!["svc.example.org".into(), "evil.example.org".into()],
            ..Sans::default()
        };
        assert!(grant.allows(Some("svc"), &more).unwrap_err().contains("evil.example.org"));
        assert!(TokenGrant::new(None, &Sans::default(), 1).is_err());
    }

    #[test]
    fn tokens_are_url_safe_and_distinct() {
        assert_eq!(base64url(b"\xff\xff\xff"), "____");
        assert_eq!(base64url(b"hi"), "aGk");
        assert_eq!(base64url(&[0u8; 32]).len(), 43);
    }
}
