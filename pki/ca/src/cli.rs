//! The arguments of `certgate pki ...` and what each subcommand runs.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::index::Reason;
use super::keys::{KeyKind, Passphrase};
use super::ops::{self, CaSpec, LeafSpec, Report, Target};
use super::p12::Protection;
use super::profile::{Sans, Subject, Validity};
use super::store::Home;
use super::PkiError;

/// Certificate tooling: a root CA, a client CA, server and client certificates,
/// CSR signing, PKCS#12 for browsers, revocation and CRLs.
#[derive(Debug, Args)]
pub struct PkiArgs {
    /// The PKI home: one directory per CA, `issued/` for certificates.
    #[arg(long, global = true, default_value = "pki", env = "CERTGATE_PKI")]
    pub dir: PathBuf,
    #[command(subcommand)]
    pub command: PkiCommand,
}

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Step 1: create a root CA (self-signed, 10 years); its key can go offline after step 2.
    InitRoot(InitArgs),
    /// Step 2: create the client CA, an intermediate signed by the root that issues client certificates every day.
    InitClientCa {
        #[command(flatten)]
        init: InitArgs,
        /// The root CA that signs it.
        #[arg(long, default_value = "root-ca")]
        root: String,
        /// File holding the root key's passphrase, if it is encrypted.
        #[arg(long)]
        root_password_file: Option<PathBuf>,
    },
    /// Step 3: issue the TLS server certificate for the service (NAME is its host name; signed by the root by default).
    Server {
        #[command(flatten)]
        leaf: LeafArgs,
        /// The CA that signs it.
        #[arg(long, default_value = "root-ca")]
        ca: String,
    },
    /// Step 4: issue a client certificate and its key (ECDSA P-256, one year, clientAuth).
    Client {
        #[command(flatten)]
        leaf: LeafArgs,
        /// The CA that signs it.
        #[arg(long, default_value = "client-ca")]
        ca: String,
    },
    /// Sign a user's CSR as a client certificate: the user keeps the key; CA bits and other uses are refused.
    SignCsr {
        /// The request (PEM or DER).
        csr: PathBuf,
        /// File name under issued/ (default: the CSR's CN).
        #[arg(long)]
        name: Option<String>,
        /// The CA that signs it.
        #[arg(long, default_value = "client-ca")]
        ca: String,
        #[command(flatten)]
        names: SanArgs,
        #[command(flatten)]
        validity: ValidityArgs,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Bundle a client's key, certificate and CA into a password-protected PKCS#12 a browser imports.
    P12 {
        /// The certificate's name under issued/.
        name: String,
        /// File holding the bundle's password (else you are asked twice).
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// 3DES and SHA-1 instead of AES-256 and SHA-256, for older macOS and Windows.
        #[arg(long)]
        legacy: bool,
        /// Where to write it (default: issued/NAME.p12).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace an existing bundle.
        #[arg(long)]
        force: bool,
    },
    /// Mark a certificate revoked in its CA's index (by name, serial or file); `pki crl` then publishes it.
    Revoke {
        /// The certificate's name under issued/.
        #[arg(conflicts_with_all = ["serial", "cert"], required_unless_present_any = ["serial", "cert"])]
        name: Option<String>,
        /// Its serial number in hex.
        #[arg(long, conflicts_with = "cert")]
        serial: Option<String>,
        /// The certificate file.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Only look in this CA's index.
        #[arg(long)]
        ca: Option<String>,
        /// The reason the CRL gives.
        #[arg(long, value_enum, default_value = "unspecified")]
        reason: Reason,
    },
    /// Make a one-time enrollment token bound to the names it allows; it is printed once (only its hash is kept) and works for one `simpleenroll` over EST.
    Token {
        /// The CA it enrolls with.
        #[arg(long, default_value = "client-ca")]
        ca: String,
        /// The CN the certificate must have.
        #[arg(long)]
        cn: Option<String>,
        #[command(flatten)]
        names: SanArgs,
        /// Hours until it expires.
        #[arg(long, default_value_t = 24)]
        hours: u32,
    },
    /// The approval queue of EST requests that came without a token: list, show, approve (sign) or reject them.
    Requests {
        #[command(subcommand)]
        action: RequestsAction,
    },
    /// List what each CA issued: name, serial, subject, expiry, days left, status (valid, expired, revoked).
    List {
        /// Only this CA.
        #[arg(long)]
        ca: Option<String>,
        /// Only valid certificates that end within DAYS; exit status 1 if there are any (for cron).
        #[arg(long, value_name = "DAYS")]
        expiring: Option<u32>,
        /// JSON for scripts: {"certificates": [...], "errors": [...]}.
        #[arg(long)]
        json: bool,
    },
    /// Renew a CA: a new certificate for its key and subject (new validity and serial, same extensions), so what it signed keeps verifying; the old one is kept as ca.pem.<date>.
    Renew {
        /// The CA (a root signs its own; a client CA is signed by its root).
        ca: String,
        #[command(flatten)]
        validity: ValidityArgs,
        /// Fixed serial in hex (default: random 128 bits).
        #[arg(long)]
        serial: Option<String>,
        /// File holding the signing key's passphrase (the root's), if it is encrypted.
        #[arg(long)]
        ca_password_file: Option<PathBuf>,
    },
    /// Set where a CA's CRL is published (http://...): certificates it signs from now on name that URL.
    SetCrlUrl {
        /// The CA.
        ca: String,
        /// The URL relying parties fetch its CRL from (publish crl.der there).
        url: String,
    },
    /// Sign a fresh CRL for one CA (or every CA whose key is here) and rebuild crls.pem.
    Crl {
        /// Only this CA (default: every CA whose key is here).
        #[arg(long)]
        ca: Option<String>,
        /// Days until the CRL's next update; verifiers refuse an expired CRL.
        #[arg(long, default_value_t = 180)]
        days: u32,
        /// File holding the CA key's passphrase, if it is encrypted.
        #[arg(long)]
        ca_password_file: Option<PathBuf>,
        /// Also write an Envoy SDS file (JSON) with the trusted CAs and every CRL, replaced atomically: Envoy applies it to new handshakes without a restart (envoy/required-mtls-sds.yaml).
        #[arg(long, requires = "trusted_ca")]
        sds: Option<PathBuf>,
        /// The CA bundle client certificates must chain to, for --sds (never guessed from the PKI home).
        #[arg(long, requires = "sds")]
        trusted_ca: Option<PathBuf>,
        /// The SDS secret's name (Envoy's validation_context_sds_secret_config name).
        #[arg(long, default_value = super::ops::SDS_SECRET, requires = "sds")]
        sds_name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RequestsAction {
    /// Every request with its id, status, requester and names (pending only unless --all).
    List {
        /// Only this CA's queue.
        #[arg(long)]
        ca: Option<String>,
        /// Also the decided and expired ones.
        #[arg(long)]
        all: bool,
        /// Days a request may wait before it shows as expired (the server's --pending-days).
        #[arg(long, default_value_t = crate::enroll::PENDING_DAYS)]
        days: u32,
    },
    /// Remove rejected requests and those that waited past --days; each removal goes to the audit log.
    Purge {
        /// Only this CA's queue.
        #[arg(long)]
        ca: Option<String>,
        /// Days a request may wait before it expires (the server's --pending-days).
        #[arg(long, default_value_t = crate::enroll::PENDING_DAYS)]
        days: u32,
    },
    /// One request in full (JSON).
    Show {
        /// Its id.
        id: String,
        /// The CA whose queue holds it.
        #[arg(long, default_value = "client-ca")]
        ca: String,
    },
    /// Sign a pending request as it asks (its CA checks the CSR as sign-csr does); the requester's next poll gets the certificate.
    Approve {
        /// Its id.
        id: String,
        /// The CA whose queue holds it.
        #[arg(long, default_value = "client-ca")]
        ca: String,
        /// Days of validity.
        #[arg(long, default_value_t = crate::enroll::DEFAULT_DAYS)]
        days: u32,
        /// File holding the CA key's passphrase, if it is encrypted.
        #[arg(long)]
        ca_password_file: Option<PathBuf>,
    },
    /// Refuse a pending request; the requester's next poll gets 403 with the reason.
    Reject {
        /// Its id.
        id: String,
        /// The CA whose queue holds it.
        #[arg(long, default_value = "client-ca")]
        ca: String,
        /// Said to the requester.
        #[arg(long, default_value = "refused by the CA's operator")]
        reason: String,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The CA's directory name.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub subject: SubjectArgs,
    #[command(flatten)]
    pub validity: ValidityArgs,
    /// The key's algorithm.
    #[arg(long, value_enum, default_value = "p256")]
    pub key_type: KeyKind,
    /// Fixed serial in hex (default: random 128 bits).
    #[arg(long)]
    pub serial: Option<String>,
    /// Encrypt the CA key with a passphrase (asked for, or from --ca-password-file).
    #[arg(long)]
    pub encrypt_key: bool,
    /// File holding the new CA key's passphrase (implies --encrypt-key).
    #[arg(long)]
    pub ca_password_file: Option<PathBuf>,
    /// Days until the first CRL's next update.
    #[arg(long, default_value_t = 180)]
    pub crl_days: u32,
    /// Where this CA's CRL will be published (http://...): every certificate it signs names it (CRL Distribution Points).
    #[arg(long)]
    pub crl_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct SubjectArgs {
    /// Common name (CN).
    #[arg(long)]
    pub cn: Option<String>,
    /// Organisation (O).
    #[arg(long)]
    pub org: Option<String>,
    /// Organisational unit (OU).
    #[arg(long)]
    pub ou: Option<String>,
    /// Country (C), two letters.
    #[arg(long)]
    pub country: Option<String>,
}

#[derive(Debug, Args)]
pub struct SanArgs {
    /// DNS name SAN, repeatable.
    #[arg(long)]
    pub dns: Vec<String>,
    /// IP address SAN, repeatable.
    #[arg(long)]
    pub ip: Vec<IpAddr>,
    /// URI SAN, repeatable (e.g. a SPIFFE ID).
    #[arg(long)]
    pub uri: Vec<String>,
    /// SPIFFE ID (a URI SAN spiffe://trust-domain/path).
    #[arg(long)]
    pub spiffe: Option<String>,
    /// Email SAN, repeatable.
    #[arg(long)]
    pub email: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ValidityArgs {
    /// Days of validity from now (defaults: root 3650, client CA 1825, server and client 365).
    #[arg(long)]
    pub days: Option<u32>,
    /// Start of validity (YYYY-MM-DD or RFC 3339) instead of now.
    #[arg(long)]
    pub not_before: Option<String>,
    /// End of validity (YYYY-MM-DD or RFC 3339) instead of --days.
    #[arg(long)]
    pub not_after: Option<String>,
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Fixed serial in hex (default: random 128 bits).
    #[arg(long)]
    pub serial: Option<String>,
    /// File holding the CA key's passphrase, if it is encrypted.
    #[arg(long)]
    pub ca_password_file: Option<PathBuf>,
    /// Replace existing files of the same name (the old certificate stays valid until revoked).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct LeafArgs {
    /// The file name under issued/; also the CN unless --cn or --no-cn is given.
    pub name: String,
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// No CN in the subject (the SANs name the client).
    #[arg(long, conflicts_with = "cn")]
    pub no_cn: bool,
    #[command(flatten)]
    pub names: SanArgs,
    #[command(flatten)]
    pub validity: ValidityArgs,
    /// The key's algorithm.
    #[arg(long, value_enum, default_value = "p256")]
    pub key_type: KeyKind,
    #[command(flatten)]
    pub common: CommonArgs,
}

impl SubjectArgs {
    fn subject(&self, default_cn: Option<&str>) -> Subject {
        Subject {
            cn: self.cn.clone().or_else(|| default_cn.map(str::to_owned)),
            org: self.org.clone(),
            ou: self.ou.clone(),
            country: self.country.clone(),
        }
    }
}

impl SanArgs {
    /// The names given.
    pub fn sans(&self) -> Sans {
        Sans {
            dns: self.dns.clone(),
            ips: self.ip.clone(),
            uris: self.spiffe.iter().chain(&self.uri).cloned().collect(),
            emails: self.email.clone(),
        }
    }
}

impl ValidityArgs {
    fn validity(&self, default_days: u32) -> Result<Validity, PkiError> {
        Validity::from_args(
            self.days.unwrap_or(default_days),
            self.not_before.as_deref(),
            self.not_after.as_deref(),
        )
    }
}

fn ca_pass(file: &Option<PathBuf>) -> Passphrase {
    Passphrase::from_file(file.clone(), "--ca-password-file")
}

fn ca_spec(a: &InitArgs, default_name: &str, default_cn: &str, days: u32) -> Result<CaSpec, PkiError> {
    let name = a.name.clone().unwrap_or_else(|| default_name.to_owned());
    Ok(CaSpec {
        subject: a.subject.subject(Some(default_cn)),
        validity: a.validity.validity(days)?,
        key: a.key_type,
        serial: a.serial.clone(),
        encrypt: (a.encrypt_key || a.ca_password_file.is_some()).then(|| ca_pass(&a.ca_password_file)),
        crl_days: a.crl_days,
        crl_url: a.crl_url.clone(),
        name,
    })
}

fn leaf_spec(a: &LeafArgs, is_server: bool) -> Result<LeafSpec, PkiError> {
    let mut sans = a.names.sans();
    // A server's NAME is its host name: always one of its SANs.
    if is_server {
        match a.name.parse::<IpAddr>() {
            Ok(ip) if !sans.ips.contains(&ip) => sans.ips.insert(0, ip),
            Err(_) if !sans.dns.contains(&a.name) => sans.dns.insert(0, a.name.clone()),
            _ => {}
        }
    }
    Ok(LeafSpec {
        name: a.name.clone(),
        subject: a.subject.subject((!a.no_cn).then_some(a.name.as_str())),
        sans,
        validity: a.validity.validity(365)?,
        key: a.key_type,
        serial: a.common.serial.clone(),
        force: a.common.force,
    })
}

/// What a subcommand printed, and the exit status it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// Its report, line by line.
    pub lines: Report,
    /// 0, or what `pki list` says (see [`crate::list`]).
    pub status: u8,
}

/// Runs one `certgate pki` subcommand and returns its report.
pub fn run(args: &PkiArgs) -> Result<Done, PkiError> {
    let home = Home::new(&args.dir);
    if let PkiCommand::List { ca, expiring, json } = &args.command {
        let listing = crate::list::list(&home, ca.as_deref(), *expiring)?;
        let lines = if *json {
            vec![serde_json::to_string_pretty(&listing).map_err(|e| PkiError::Internal(format!("cannot write JSON: {e}")))?]
        } else {
            listing.to_lines()
        };
        return Ok(Done {
            status: listing.status(expiring.is_some()),
            lines,
        });
    }
    run_report(&home, &args.command).map(|lines| Done { lines, status: 0 })
}

fn run_report(home: &Home, command: &PkiCommand) -> Result<Report, PkiError> {
    match command {
        PkiCommand::InitRoot(a) => ops::init_root(home, &ca_spec(a, "root-ca", "certgate Root CA", 3650)?),
        PkiCommand::InitClientCa {
            init,
            root,
            root_password_file,
        } => {
            let spec = ca_spec(init, "client-ca", "certgate Client CA", 1825)?;
            ops::init_client_ca(
                home,
                &spec,
                root,
                &Passphrase::from_file(root_password_file.clone(), "--root-password-file"),
            )
        }
        PkiCommand::Server { leaf, ca } => ops::server(home, ca, &ca_pass(&leaf.common.ca_password_file), &leaf_spec(leaf, true)?),
        PkiCommand::Client { leaf, ca } => ops::client(home, ca, &ca_pass(&leaf.common.ca_password_file), &leaf_spec(leaf, false)?),
        PkiCommand::SignCsr {
            csr,
            name,
            ca,
            names,
            validity,
            common,
        } => ops::sign_csr(
            home,
            ca,
            &ca_pass(&common.ca_password_file),
            &ops::CsrSpec {
                csr,
                name: name.as_deref(),
                extra: names.sans(),
                validity: validity.validity(365)?,
                serial: common.serial.as_deref(),
                force: common.force,
            },
        ),
        PkiCommand::P12 {
            name,
            password_file,
            legacy,
            out,
            force,
        } => ops::p12(
            home,
            name,
            &Passphrase::from_file(password_file.clone(), "--password-file"),
            if *legacy { Protection::Legacy } else { Protection::Modern },
            out.as_deref(),
            *force,
        ),
        PkiCommand::Revoke {
            name,
            serial,
            cert,
            ca,
            reason,
        } => {
            let target = match (name, serial, cert) {
                (_, Some(s), _) => Target::Serial(s.clone()),
                (_, _, Some(c)) => Target::Cert(c.clone()),
                (Some(n), _, _) => Target::Name(n.clone()),
                (None, None, None) => return Err(PkiError::Usage("give a NAME, --serial or --cert".into())),
            };
            ops::revoke(home, ca.as_deref(), &target, *reason)
        }
        PkiCommand::Renew {
            ca,
            validity,
            serial,
            ca_password_file,
        } => {
            let days = if home.open_ca(ca)?.facts()?.self_signed { 3650 } else { 1825 };
            ops::renew(home, ca, validity.validity(days)?, serial.as_deref(), &ca_pass(ca_password_file))
        }
        PkiCommand::SetCrlUrl { ca, url } => ops::set_crl_url(home, ca, url),
        PkiCommand::List { .. } => Err(PkiError::Internal("pki list is run by `run`".into())),
        PkiCommand::Token { ca, cn, names, hours } => crate::enroll::commands::token(home, ca, cn.clone(), &names.sans(), *hours),
        PkiCommand::Requests { action } => match action {
            RequestsAction::List { ca, all, days } => crate::enroll::commands::list(home, ca.as_deref(), *all, *days),
            RequestsAction::Purge { ca, days } => crate::enroll::commands::purge(home, ca.as_deref(), *days),
            RequestsAction::Show { id, ca } => crate::enroll::commands::show(home, ca, id),
            RequestsAction::Approve {
                id,
                ca,
                days,
                ca_password_file,
            } => crate::enroll::commands::approve(home, ca, id, *days, &ca_pass(ca_password_file)),
            RequestsAction::Reject { id, ca, reason } => crate::enroll::commands::reject(home, ca, id, reason),
        },
        PkiCommand::Crl {
            ca,
            days,
            ca_password_file,
            sds,
            trusted_ca,
            sds_name,
        } => {
            let mut report = ops::crl(home, ca.as_deref(), *days, &ca_pass(ca_password_file))?;
            if let (Some(sds), Some(trusted_ca)) = (sds, trusted_ca) {
                report.push(ops::write_sds_validation(home, sds, trusted_ca, sds_name)?);
            }
            Ok(report)
        }
    }
}
