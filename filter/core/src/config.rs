//! The plugin configuration: JSON, as Envoy passes it (a
//! `google.protobuf.StringValue`), read with serde into [`PolicyFile`] and
//! compiled into a [`Policy`]. Every error names the JSON path at fault.

use std::collections::{HashMap, HashSet};

use certgate_wire::header_map;
use certgate_x509::spiffe;
use serde::Deserialize;

use crate::dn_pattern::DnPattern;
use crate::glob::{EmailPattern, Glob, Syntax};
use crate::headers::{fold_name, is_token, HeaderKind, HeaderPlan, Preset, OVERRIDE_HEADERS};
use crate::host::HostReads;
use crate::identity::canonical_serial_checked;
use crate::path::{self, PathSettings};
use crate::policy::{Access, DefaultAction, IdentitySourceSetting, Mode, PathMatch, Policy, Requirements, Rule, Verification};
use crate::token::{BoundTokens, WithoutToken};

use crate::config_error::{ConfigError, ConfigErrorKind, JsonErrorClass};

/// The most days `expiry_warning_days` may say (ten years).
pub const MAX_EXPIRY_WARNING_DAYS: u32 = 3650;
/// The largest `cache_size`, in certificates.
pub const MAX_CACHE_SIZE: usize = 1_000_000;
/// The longest rule name.
pub const MAX_RULE_NAME: usize = 64;

fn err(path: impl Into<String>, kind: ConfigErrorKind) -> ConfigError {
    ConfigError::at(path, kind)
}

/// The configuration as written: certgate's policy (the book: "Writing a policy", and the policy reference).
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(title = "certgate policy"))]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// The JSON Schema editors check the file against (`certgate schema`); ignored by the filter.
    #[serde(rename = "$schema", default)]
    pub schema: Option<String>,
    /// `enforce` denies; `audit` lets every request through with `x-certgate-audit` saying what enforce would do.
    #[serde(default)]
    pub mode: Mode,
    /// Where the peer's identity is read.
    #[serde(default)]
    pub identity_source: IdentitySourceSetting,
    /// When a presented certificate counts as verified.
    #[serde(default)]
    pub verification: Verification,
    /// Which identity headers the application receives, and which names are stripped.
    #[serde(default)]
    pub headers: HeadersSetting,
    /// Certificates within this many days of notAfter are counted and logged (at most 3650).
    #[serde(default = "default_expiry_warning_days")]
    #[cfg_attr(feature = "schema", schemars(range(max = MAX_EXPIRY_WARNING_DAYS)))]
    pub expiry_warning_days: u32,
    /// Certificates to refuse at once.
    #[serde(default)]
    pub deny: DenyLists,
    /// Ordered rules; the first that matches a request decides.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub rules: Vec<RuleSetting>,
    /// What a request no rule matches gets.
    #[serde(default)]
    pub default: DefaultAction,
    /// The status of a deny.
    #[serde(default)]
    pub deny_response: DenyResponse,
    /// Parsed certificates kept per worker.
    #[serde(default = "default_cache_size")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = MAX_CACHE_SIZE)))]
    pub cache_size: usize,
    /// How the application behind certgate reads paths.
    #[serde(default)]
    pub paths: PathSettings,
    /// Access tokens bound to the client certificate (RFC 8705): checked on
    /// every certificate rule unless the rule sets `bound_token: false`.
    pub bound_tokens: Option<BoundTokensSetting>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
/// The `bound_tokens` setting: which verified tokens are checked, and what a request without one gets.
pub struct BoundTokensSetting {
    /// The `payload_in_metadata` name of the Envoy `jwt_authn` provider whose verified tokens are read.
    pub payload_in_metadata: String,
    /// The same provider's `forward_payload_header`: needed by the dynamic module, which can tell from
    /// the metadata whether a token was verified but cannot read inside it. The Wasm build ignores it.
    pub payload_header: Option<String>,
    /// What a request with no verified token gets on a rule that checks tokens: `deny` (401
    /// `token_missing`) or `allow` (a token that is there must still be bound).
    #[serde(default)]
    pub without_token: WithoutToken,
}

fn default_expiry_warning_days() -> u32 {
    14
}

fn default_cache_size() -> usize {
    1024
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
/// The `headers` setting: a preset, then changes to it.
pub struct HeadersSetting {
    #[serde(default)]
    /// The header set to start from.
    pub preset: Preset,
    /// Header kind → name; adds the header if the preset lacks it.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("propertyNames" = { "$ref": "#/$defs/HeaderKind" })))]
    pub rename: HashMap<HeaderKind, String>,
    /// Kinds not to set.
    #[serde(default)]
    pub omit: Vec<HeaderKind>,
    /// More names to remove from every request (old header names, say).
    #[serde(default)]
    pub strip: Vec<String>,
    /// Override headers to let through (removed by default).
    #[serde(default)]
    pub pass_overrides: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
/// The `deny` lists: certificates refused whatever the rules say.
pub struct DenyLists {
    #[serde(default)]
    /// Serial numbers, hex (`:` and case ignored).
    pub serials: Vec<String>,
    #[serde(default)]
    /// SHA-256 fingerprints of the certificate's DER, hex (`:` allowed).
    pub sha256: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
/// The `deny_response` setting.
pub struct DenyResponse {
    #[serde(default = "default_status")]
    /// The status of a deny (400-599; 403 by default).
    pub status: u16,
}

impl Default for DenyResponse {
    fn default() -> Self {
        DenyResponse { status: default_status() }
    }
}

fn default_status() -> u16 {
    403
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
/// One rule as written: where it applies, and who it admits.
pub struct RuleSetting {
    /// Unique; shown in headers, replies and metrics.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = MAX_RULE_NAME), regex(pattern = r"^[A-Za-z0-9_.-]+$")))]
    pub name: String,
    /// This path and everything below it (`/admin` covers `/admin`, `/admin/x`, not `/administrator`).
    pub path_prefix: Option<String>,
    /// Exactly this path.
    pub path: Option<String>,
    /// Uppercase methods; absent: any.
    pub methods: Option<Vec<String>>,
    /// Host patterns (the port is ignored); absent: any.
    pub hosts: Option<Vec<String>>,
    /// No certificate needed; such a rule takes no allow-lists.
    #[serde(default)]
    pub anonymous: bool,
    /// Issuer DN patterns, RFC 2253 (`CN=Example Client CA,O=Example`).
    pub issuer: Option<Vec<String>>,
    /// Issuer common-name patterns.
    pub issuer_cn: Option<Vec<String>>,
    /// Subject DN patterns, RFC 2253.
    pub subject: Option<Vec<String>>,
    /// Subject common-name patterns (`ops-*`).
    pub subject_cn: Option<Vec<String>>,
    /// URI SAN patterns.
    pub san_uri: Option<Vec<String>>,
    /// DNS SAN patterns (`*.svc.example.org`).
    pub san_dns: Option<Vec<String>>,
    /// E-mail SAN patterns (`*@example.org`): the local part compares exactly, case included
    /// (RFC 5280 §7.5), the domain without regard to case.
    pub san_email: Option<Vec<String>>,
    /// SPIFFE ID patterns (`spiffe://example.org/ns/*/sa/*`): the trust domain written out, `*` one
    /// path segment or part of one, `**` any number of segments. Only valid SPIFFE IDs match.
    pub spiffe: Option<Vec<String>>,
    /// Whether the request's verified access token must be bound to the certificate (the policy's
    /// `bound_tokens`); absent: checked when the policy has `bound_tokens`.
    pub bound_token: Option<bool>,
}

/// Parses and compiles a configuration.
pub fn parse_policy(json: &[u8]) -> Result<Policy, ConfigError> {
    match json.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(err(".", ConfigErrorKind::Empty)),
        Some(b'{') => {}
        Some(_) => return Err(err(".", ConfigErrorKind::NotAnObject)),
    }
    let de = &mut serde_json::Deserializer::from_slice(json);
    let file: PolicyFile = serde_path_to_error::deserialize(de).map_err(|e| {
        // serde_path_to_error writes `?` where it cannot name a position
        let path = e.path().to_string();
        let path = path.trim_end_matches('?').trim_end_matches('.');
        let path = if path.is_empty() { "." } else { path }.to_owned();
        let inner = e.into_inner();
        let class = match inner.classify() {
            serde_json::error::Category::Eof => JsonErrorClass::Eof,
            serde_json::error::Category::Data => JsonErrorClass::Data,
            serde_json::error::Category::Syntax | serde_json::error::Category::Io => JsonErrorClass::Syntax,
        };
        // serde_json appends "at line L column C"; keep it, it helps in a file.
        err(
            path,
            ConfigErrorKind::Json {
                class,
                message: inner.to_string(),
            },
        )
    })?;
    compile(file)
}

/// A configuration as a glue loads it: parsed, checked against what the host
/// can read, its warnings logged; `None`, with the error logged, if refused.
pub fn load_policy(json: &[u8], reads: HostReads) -> Option<Policy> {
    match parse_policy(json).and_then(|p| check_host_reads(&p, reads).map(|()| p)) {
        Ok(policy) => {
            for warning in &policy.warnings {
                log::warn!("{warning}");
            }
            Some(policy)
        }
        Err(e) => {
            log::error!("{e}");
            None
        }
    }
}

/// Refuses a policy that needs what this host cannot read, naming the
/// setting and what to write instead (on the host where the policy fails,
/// not on every request).
pub fn check_host_reads(policy: &Policy, reads: HostReads) -> Result<(), ConfigError> {
    let host = reads.host;
    if policy.verification == Verification::ProxyFlag && !reads.verified_flag {
        return Err(err("verification", ConfigErrorKind::NoVerifiedFlag { host }));
    }
    if let Some(tokens) = &policy.bound_tokens {
        if !reads.token_claims && tokens.payload_header.is_none() {
            return Err(err("bound_tokens.payload_header", ConfigErrorKind::NoTokenClaims { host }));
        }
    }
    if policy.identity_source == IdentitySourceSetting::PeerCertificate && !reads.peer_certificate {
        return Err(err("identity_source", ConfigErrorKind::NoPeerCertificate { host }));
    }
    Ok(())
}

/// Checks a parsed configuration and builds the policy.
pub fn compile(file: PolicyFile) -> Result<Policy, ConfigError> {
    if file.rules.is_empty() {
        return Err(err("rules", ConfigErrorKind::NoRules));
    }
    let mut names = HashSet::new();
    let mut rules = Vec::with_capacity(file.rules.len());
    for (i, r) in file.rules.into_iter().enumerate() {
        let at = format!("rules[{i}]");
        if !names.insert(r.name.clone()) {
            return Err(err(format!("{at}.name"), ConfigErrorKind::DuplicateRuleName(r.name)));
        }
        rules.push(compile_rule(r, &at, file.bound_tokens.is_some())?);
    }
    if !(400..=599).contains(&file.deny_response.status) {
        return Err(err(
            "deny_response.status",
            ConfigErrorKind::NotAnErrorStatus(file.deny_response.status),
        ));
    }
    if file.expiry_warning_days > MAX_EXPIRY_WARNING_DAYS {
        return Err(err(
            "expiry_warning_days",
            ConfigErrorKind::ExpiryWarningTooLong {
                max: MAX_EXPIRY_WARNING_DAYS,
            },
        ));
    }
    if file.cache_size == 0 || file.cache_size > MAX_CACHE_SIZE {
        return Err(err("cache_size", ConfigErrorKind::CacheSizeOutOfRange { max: MAX_CACHE_SIZE }));
    }
    let mut deny_serials = HashSet::new();
    for (i, s) in file.deny.serials.iter().enumerate() {
        let serial =
            canonical_serial_checked(s).ok_or_else(|| err(format!("deny.serials[{i}]"), ConfigErrorKind::NotASerial(s.clone())))?;
        deny_serials.insert(serial);
    }
    let mut deny_sha256 = HashSet::new();
    for (i, s) in file.deny.sha256.iter().enumerate() {
        let hex: String = s
            .chars()
            .filter(|c| *c != ':' && *c != ' ')
            .collect::<String>()
            .to_ascii_lowercase();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err(format!("deny.sha256[{i}]"), ConfigErrorKind::NotAFingerprint(s.clone())));
        }
        deny_sha256.insert(hex);
    }
    let bound_tokens = file.bound_tokens.map(compile_bound_tokens).transpose()?;
    let warnings = shadowing_warnings(&rules);
    Ok(Policy {
        mode: file.mode,
        identity_source: file.identity_source,
        verification: file.verification,
        rules,
        default: file.default,
        deny_status: file.deny_response.status,
        deny_serials,
        deny_sha256,
        expiry_warning_secs: i64::from(file.expiry_warning_days) * 86_400,
        headers: compile_headers(&file.headers)?,
        cache_size: file.cache_size,
        paths: file.paths,
        bound_tokens,
        warnings,
    })
}

fn compile_bound_tokens(b: BoundTokensSetting) -> Result<BoundTokens, ConfigError> {
    let key_ok = !b.payload_in_metadata.is_empty() && b.payload_in_metadata.bytes().all(|c| c.is_ascii_graphic());
    if !key_ok {
        return Err(err(
            "bound_tokens.payload_in_metadata",
            ConfigErrorKind::NotAMetadataKey(b.payload_in_metadata),
        ));
    }
    if let Some(name) = &b.payload_header {
        check_header_name(name, "bound_tokens.payload_header")?;
    }
    Ok(BoundTokens {
        metadata_key: b.payload_in_metadata,
        payload_header: b.payload_header.map(|h| h.to_ascii_lowercase()),
        without_token: b.without_token,
    })
}

fn compile_headers(h: &HeadersSetting) -> Result<HeaderPlan, ConfigError> {
    let mut set = h.preset.names();
    for (kind, name) in &h.rename {
        let at = format!(
            "headers.rename.{}",
            serde_json::to_string(kind).unwrap_or_default().trim_matches('"')
        );
        check_header_name(name, &at)?;
        set.retain(|(k, _)| k != kind);
        set.push((*kind, name.to_ascii_lowercase()));
    }
    set.retain(|(k, _)| !h.omit.contains(k));
    let mut seen: HashMap<String, HeaderKind> = HashMap::new();
    for (kind, name) in &set {
        if let Some(other) = seen.insert(fold_name(name), *kind) {
            return Err(err(
                "headers",
                ConfigErrorKind::HeaderNamedTwice {
                    name: name.clone(),
                    first: other,
                    second: *kind,
                },
            ));
        }
    }
    for (i, name) in h.strip.iter().enumerate() {
        check_header_name(name, &format!("headers.strip[{i}]"))?;
    }
    let mut passed = Vec::with_capacity(h.pass_overrides.len());
    for (i, name) in h.pass_overrides.iter().enumerate() {
        let folded = fold_name(name);
        if !OVERRIDE_HEADERS.contains(&folded.as_str()) {
            return Err(err(
                format!("headers.pass_overrides[{i}]"),
                ConfigErrorKind::NotAnOverrideHeader {
                    name: name.clone(),
                    known: &OVERRIDE_HEADERS,
                },
            ));
        }
        passed.push(folded);
    }
    let mut strip = h.strip.clone();
    strip.extend(
        OVERRIDE_HEADERS
            .iter()
            .filter(|o| !passed.iter().any(|p| p == *o))
            .map(|o| (*o).to_owned()),
    );
    Ok(HeaderPlan::new(set, &strip))
}

fn check_header_name(name: &str, at: &str) -> Result<(), ConfigError> {
    if !is_token(name) {
        return Err(err(at, ConfigErrorKind::NotAHeaderName(name.to_owned())));
    }
    // names an application cannot be given: hop-by-hop and framing headers,
    // and those the proxy owns
    let folded = fold_name(name);
    if header_map::is_hop_by_hop(&folded) || header_map::PROXY_OWNED.contains(&folded.as_str()) {
        return Err(err(at, ConfigErrorKind::ReservedHeader(name.to_owned())));
    }
    Ok(())
}

fn compile_rule(r: RuleSetting, at: &str, policy_binds_tokens: bool) -> Result<Rule, ConfigError> {
    let name_ok =
        !r.name.is_empty() && r.name.len() <= MAX_RULE_NAME && r.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !name_ok {
        return Err(err(
            format!("{at}.name"),
            ConfigErrorKind::NotARuleName {
                name: r.name,
                max: MAX_RULE_NAME,
            },
        ));
    }
    let path = match (r.path_prefix, r.path) {
        (Some(_), Some(_)) => {
            return Err(err(at, ConfigErrorKind::PathAndPrefix));
        }
        (Some(p), None) => {
            let p = check_path(&p, &format!("{at}.path_prefix"))?;
            // `/admin/` and `/admin` both mean `/admin` and what is below it
            match p.trim_end_matches('/') {
                "" => PathMatch::Any,
                under => PathMatch::Under(under.to_owned()),
            }
        }
        (None, Some(p)) => PathMatch::Exact(check_path(&p, &format!("{at}.path"))?),
        (None, None) => PathMatch::Any,
    };
    let methods = match r.methods {
        None => None,
        Some(ms) => {
            non_empty(&ms, &format!("{at}.methods"))?;
            for (i, m) in ms.iter().enumerate() {
                if !is_token(m) || m.to_ascii_uppercase() != *m {
                    return Err(err(format!("{at}.methods[{i}]"), ConfigErrorKind::NotAMethod(m.clone())));
                }
            }
            Some(ms)
        }
    };
    let hosts = globs(r.hosts, Syntax::DNS, &format!("{at}.hosts"))?;
    let req = Requirements {
        issuer: dn_patterns(r.issuer, &format!("{at}.issuer"))?,
        issuer_cn: globs(r.issuer_cn, Syntax::NAME, &format!("{at}.issuer_cn"))?,
        subject: dn_patterns(r.subject, &format!("{at}.subject"))?,
        subject_cn: globs(r.subject_cn, Syntax::NAME, &format!("{at}.subject_cn"))?,
        san_uri: globs(r.san_uri, Syntax::URI, &format!("{at}.san_uri"))?,
        san_dns: globs(r.san_dns, Syntax::DNS, &format!("{at}.san_dns"))?,
        san_email: email_patterns(r.san_email, &format!("{at}.san_email"))?,
        spiffe: spiffe_patterns(r.spiffe, &format!("{at}.spiffe"))?,
        bound_token: r.bound_token.unwrap_or(policy_binds_tokens),
    };
    if r.bound_token == Some(true) && !policy_binds_tokens {
        return Err(err(format!("{at}.bound_token"), ConfigErrorKind::BoundTokenWithoutProvider));
    }
    if r.anonymous && r.bound_token == Some(true) {
        return Err(err(format!("{at}.bound_token"), ConfigErrorKind::AnonymousBoundToken));
    }
    let has_requirements = [
        req.issuer.is_some(),
        req.issuer_cn.is_some(),
        req.subject.is_some(),
        req.subject_cn.is_some(),
        req.san_uri.is_some(),
        req.san_dns.is_some(),
        req.san_email.is_some(),
        req.spiffe.is_some(),
    ]
    .contains(&true);
    let access = if r.anonymous {
        if has_requirements {
            return Err(err(at, ConfigErrorKind::AnonymousWithAllowLists));
        }
        Access::Anonymous
    } else {
        Access::Certificate(req)
    };
    Ok(Rule {
        name: r.name,
        path,
        methods,
        hosts,
        access,
    })
}

fn check_path(p: &str, at: &str) -> Result<String, ConfigError> {
    if p.contains(';') {
        return Err(err(at, ConfigErrorKind::PathParameter(p.to_owned())));
    }
    match path::normalize(p) {
        // a prefix keeps its trailing `/`, which normalising keeps too
        Some(n) if n.path == p => Ok(n.path),
        Some(n) if n.query.is_empty() => Err(err(
            at,
            ConfigErrorKind::PathNotNormal {
                given: p.to_owned(),
                normal: n.path,
            },
        )),
        _ => Err(err(at, ConfigErrorKind::NotAPath(p.to_owned()))),
    }
}

/// Rules no request can reach, because an earlier rule for any method and
/// host covers every path they cover: almost always a rule written in the
/// wrong place (a broad `path_prefix` before a narrower one).
fn shadowing_warnings(rules: &[Rule]) -> Vec<String> {
    let covers = |earlier: &PathMatch, later: &PathMatch| match (earlier, later) {
        (PathMatch::Any, _) => true,
        (PathMatch::Under(a), PathMatch::Under(b)) => path::is_under(b, a, false),
        (PathMatch::Under(a), PathMatch::Exact(b)) => path::is_under(b, a, false),
        (PathMatch::Exact(a), PathMatch::Exact(b)) => a == b,
        _ => false,
    };
    let mut warnings = Vec::new();
    for (j, later) in rules.iter().enumerate() {
        let shadow = rules
            .iter()
            .take(j)
            .find(|e| e.methods.is_none() && e.hosts.is_none() && covers(&e.path, &later.path));
        if let Some(earlier) = shadow {
            warnings.push(format!(
                "certgate configuration: at `rules[{j}]`: rule `{}` is never used: rule `{}` before it covers every request it covers \
                 (rules are tried in order; put the narrower rule first)",
                later.name, earlier.name
            ));
        }
    }
    warnings
}

fn non_empty<T>(list: &[T], at: &str) -> Result<(), ConfigError> {
    if list.is_empty() {
        return Err(err(at, ConfigErrorKind::EmptyAllowList));
    }
    Ok(())
}

/// Compiles each pattern of an allow-list with `compile`; a refused one is
/// named by its JSON path, with `compile`'s reason.
fn patterns<T>(
    list: Option<Vec<String>>,
    at: &str,
    compile: impl Fn(&str) -> Result<T, ConfigErrorKind>,
) -> Result<Option<Vec<T>>, ConfigError> {
    let Some(list) = list else { return Ok(None) };
    non_empty(&list, at)?;
    list.iter()
        .enumerate()
        .map(|(i, p)| compile(p).map_err(|kind| err(format!("{at}[{i}]"), kind)))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn glob(pattern: &str, syntax: Syntax) -> Result<Glob, ConfigErrorKind> {
    Glob::new(pattern, syntax).map_err(|error| ConfigErrorKind::Pattern {
        pattern: pattern.to_owned(),
        error,
    })
}

fn globs(list: Option<Vec<String>>, syntax: Syntax, at: &str) -> Result<Option<Vec<Glob>>, ConfigError> {
    patterns(list, at, |p| glob(p, syntax))
}

fn dn_patterns(list: Option<Vec<String>>, at: &str) -> Result<Option<Vec<DnPattern>>, ConfigError> {
    patterns(list, at, |p| {
        DnPattern::parse(p).map_err(|error| ConfigErrorKind::DnPattern {
            pattern: p.to_owned(),
            error,
        })
    })
}

fn email_patterns(list: Option<Vec<String>>, at: &str) -> Result<Option<Vec<EmailPattern>>, ConfigError> {
    patterns(list, at, |p| {
        EmailPattern::new(p).map_err(|error| ConfigErrorKind::Pattern {
            pattern: p.to_owned(),
            error,
        })
    })
}

fn spiffe_patterns(list: Option<Vec<String>>, at: &str) -> Result<Option<Vec<Glob>>, ConfigError> {
    patterns(list, at, |p| {
        spiffe::check_pattern(p).map_err(|error| ConfigErrorKind::SpiffePattern {
            pattern: p.to_owned(),
            error,
        })?;
        glob(p, Syntax::URI)
    })
}

/// The policy's JSON Schema, generated from the types the filter parses, so
/// it cannot drift from them (`certgate schema`).
#[cfg(feature = "schema")]
pub fn json_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(PolicyFile)).unwrap_or_default();
    if let Some(object) = schema.as_object_mut() {
        object.insert("$id".into(), "https://certgate.invalid/schema/policy.json".into());
    }
    schema
}
