//! The `certgate` command: thin; the work is in the libraries (and, for
//! `certgate test`, in `policy_tests`).

mod policy_tests;
mod reference;
mod request;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use certgate_backend as backend;
use certgate_decision::Verdict;
use certgate_edge::locate::default_wasm;
use certgate_edge::{self as edge, ServeOptions};
use certgate_est::cli::EstCommand;
use certgate_host::{HarnessError, PluginSettings, WasmModule};
use certgate_pki::cli::{PkiArgs, PkiCommand};
use clap::{Args, CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "certgate", version, about = "Admit HTTP requests by their TLS client certificate")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local mTLS edge: verify clients, run the filter, forward to the upstream.
    Serve(ServeOptions),
    /// Run the test backend: answers every request with the headers it received, as JSON.
    Backend {
        /// The address to listen on (plain HTTP).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Run one request through the filter with a certificate and print the decision.
    /// Exit code 0: allowed, 1: denied, 2: error.
    Check(CheckArgs),
    /// Load a policy into the filter and report what it says. Exit code 0: valid, 2: not.
    Validate {
        /// The policy file (JSON).
        policy: PathBuf,
        /// The filter module (default: the ./dev build, or $CERTGATE_WASM).
        #[arg(long)]
        wasm: Option<PathBuf>,
    },
    /// Certificate tooling: a root CA, a client CA, server and client
    /// certificates, CSR signing, PKCS#12 for browsers, revocation and CRLs;
    /// enrollment over EST (a server, tokens, an approval queue, a client).
    Pki(PkiCli),
    /// Run files of expected decisions against a policy through the filter.
    /// Exit code 0: every case passed, 1: one failed, 2: a file cannot be run.
    Test(TestArgs),
    /// Print the policy's JSON Schema (for editors and CI checks of policies).
    Schema {
        /// The schema of `certgate test`'s cases files instead.
        #[arg(long)]
        cases: bool,
    },
    /// Package the filter as an OCI image (an image layout directory) for
    /// Istio's WasmPlugin and Envoy Gateway; prints the digest to pin.
    Package(PackageArgs),
    /// Print a shell's completion script, e.g.
    /// `certgate completions bash > ~/.local/share/bash-completion/completions/certgate`.
    Completions {
        /// The shell whose completion script to print.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages, certgate(1) and one per subcommand
    /// (certgate-serve(1), certgate-pki-client(1), ...), into a directory.
    Man {
        /// The directory (made if missing); `./dev` uses target/man.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the book's reference pages (policy, deny reasons, metrics, command
    /// line) from the code into a directory: docs/src/reference.
    #[command(hide = true)]
    Reference {
        /// The directory to write the pages into.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `certgate pki`: the CA's subcommands (`certgate-pki`) and enrollment's (`certgate-est`).
#[derive(Debug, Args)]
struct PkiCli {
    /// The PKI home: one directory per CA, `issued/` for certificates.
    #[arg(long, global = true, default_value = "pki", env = "CERTGATE_PKI")]
    dir: PathBuf,
    #[command(subcommand)]
    command: PkiSubcommand,
}

#[derive(Debug, Subcommand)]
enum PkiSubcommand {
    #[command(flatten)]
    Ca(PkiCommand),
    #[command(flatten)]
    Est(EstCommand),
}

#[derive(Debug, Args)]
struct TestArgs {
    /// Cases files (JSON: `certgate schema --cases`).
    #[arg(required = true)]
    cases: Vec<PathBuf>,
    /// The policy, instead of each file's own `policy`.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Also write the results as JUnit XML, for CI.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// The filter module (default: the ./dev build, or $CERTGATE_WASM).
    #[arg(long)]
    wasm: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct PackageArgs {
    /// The image layout directory to write (new or empty).
    #[arg(long)]
    out: PathBuf,
    /// `compat`: a gzip tar layer holding plugin.wasm (any registry and tool);
    /// `artifact`: the Wasm OCI artifact, the raw module as its layer.
    #[arg(long, value_enum, default_value = "compat")]
    format: certgate_oci::Format,
    /// The image's tag (its name in the layout: `oci:DIR:TAG`).
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    tag: String,
    /// The filter's root id, recorded in the artifact's config.
    #[arg(long, default_value = "certgate")]
    root_id: String,
    /// The module (default: the ./dev build, or $CERTGATE_WASM).
    #[arg(long)]
    wasm: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The policy file (JSON).
    #[arg(long)]
    policy: PathBuf,
    /// The client certificate (PEM); without it, a request with no certificate.
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Treat the certificate as not verified by the proxy.
    #[arg(long)]
    unverified: bool,
    /// The request's path, query included, as the client sends it.
    #[arg(long, default_value = "/")]
    path: String,
    /// The request's method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// The request's host (`:authority`).
    #[arg(long, default_value = "localhost")]
    host: String,
    /// Extra request header `name: value`, repeatable.
    #[arg(long = "header")]
    headers: Vec<String>,
    /// The request carries an access token Envoy's jwt_authn verified, bound to this certificate (PEM); for a policy with `bound_tokens`.
    #[arg(long, value_name = "PEM")]
    token_bound_to: Option<PathBuf>,
    /// The request carries a verified access token bound to no certificate.
    #[arg(long, conflicts_with = "token_bound_to")]
    token_unbound: bool,
    /// The filter module (default: the ./dev build, or $CERTGATE_WASM).
    #[arg(long)]
    wasm: Option<PathBuf>,
}

fn wasm_or_default(w: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match w {
        Some(w) => Ok(w),
        None => Ok(default_wasm()?),
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn check(a: CheckArgs) -> anyhow::Result<ExitCode> {
    let module = WasmModule::from_file(&wasm_or_default(a.wasm)?)?;
    let policy = std::fs::read_to_string(&a.policy).with_context(|| format!("cannot read {}", a.policy.display()))?;
    let token = match (&a.token_bound_to, a.token_unbound) {
        (None, false) => None,
        (bound_to, _) => {
            let key = request::token_metadata_key(&policy).ok_or_else(|| {
                anyhow!(
                    "--token-*: {} has no `bound_tokens` saying where tokens are read",
                    a.policy.display()
                )
            })?;
            let payload = match bound_to {
                Some(pem) => {
                    serde_json::json!({ "cnf": { "x5t#S256": request::thumbprint_of_file(pem).map_err(|e| anyhow!("--token-bound-to: {e}"))? } })
                }
                // not `{}`: an empty payload reads as no token (SECURITY.md)
                None => serde_json::json!({ "sub": "certgate-check" }),
            };
            Some((key, payload))
        }
    };
    let mut plugin = module
        .start(PluginSettings::new(policy).name("certgate"))
        .with_context(|| a.policy.display().to_string())?;
    let mut headers = Vec::new();
    for h in &a.headers {
        let (k, v) = h.split_once(':').ok_or_else(|| anyhow!("--header {h}: write `name: value`"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let request = request::Request {
        cert: a.cert.as_deref(),
        verified: !a.unverified,
        method: &a.method,
        path: &a.path,
        host: &a.host,
        headers: &headers,
        token: token.as_ref().map(|(key, payload)| (key.as_str(), payload)),
    };
    let request::Sent {
        exchange: out,
        headers: sent,
        published,
    } = request::send(&mut plugin, &request)?;
    let published = published.ok_or_else(|| anyhow!("the filter published no decision: is {} certgate's?", a.policy.display()))?;
    let rule = published.rule.as_deref().unwrap_or("-");
    let reason = published.reason.as_deref().unwrap_or("-");
    if let Some(reply) = &out.local_response {
        println!("decision: deny");
        println!("status: {}", reply.status);
        println!("reason: {reason}");
        println!("rule: {rule}");
        return Ok(ExitCode::from(1));
    }
    match published.decision {
        Verdict::AuditDeny => println!("decision: allow (audit mode; enforce would: deny reason={reason})"),
        _ => println!("decision: allow"),
    }
    println!("rule: {rule}");
    println!("headers the application gets from certgate:");
    for (k, v) in &out.upstream_headers {
        if !sent.iter().any(|(sk, sv)| sk == k && sv == v) && !k.starts_with(':') {
            println!("  {k}: {}", String::from_utf8_lossy(v));
        }
    }
    for (k, _) in &sent {
        if !k.starts_with(':') && !out.upstream_headers.iter().any(|(uk, _)| uk == k) {
            println!("  (removed) {k}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn test(a: TestArgs) -> anyhow::Result<ExitCode> {
    // every file is read and checked before anything runs
    let mut loaded = Vec::new();
    for path in &a.cases {
        match policy_tests::load(path, a.policy.as_deref()) {
            Ok(l) => loaded.push(l),
            Err(e) => {
                eprintln!("certgate test: {e}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let module = WasmModule::from_file(&wasm_or_default(a.wasm)?)?;
    let mut runs = Vec::new();
    for l in loaded {
        let results = policy_tests::run(&module, &l)?;
        print!("{}", policy_tests::report(&l, &results));
        runs.push((l, results));
    }
    if let Some(junit) = &a.junit {
        std::fs::write(junit, policy_tests::junit(&runs)).with_context(|| format!("cannot write {}", junit.display()))?;
    }
    let failed = runs.iter().flat_map(|(_, r)| r).any(|r| !r.failures.is_empty());
    Ok(ExitCode::from(u8::from(failed)))
}

fn validate(policy: &Path, wasm: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let module = WasmModule::from_file(&wasm_or_default(wasm)?)?;
    let json = std::fs::read_to_string(policy).with_context(|| format!("cannot read {}", policy.display()))?;
    match module.start(PluginSettings::new(json).name("certgate")) {
        Ok(plugin) => {
            for line in plugin.logs() {
                println!("{}", line.message);
            }
            println!("{}: valid", policy.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(HarnessError::ConfigureRefused { logs }) => {
            for line in logs {
                eprintln!("{}: {}", policy.display(), line.message);
            }
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            let settings = args.resolve()?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let edge = edge::start(settings).await?;
                println!("certgate edge on https://{}", edge.addr);
                shutdown_signal().await;
                tracing::info!("shutting down");
                edge.shutdown().await;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Backend { listen } => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let b = backend::start(listen).await?;
                println!("certgate test backend on http://{}", b.addr);
                shutdown_signal().await;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => check(args),
        Command::Validate { policy, wasm } => validate(&policy, wasm),
        Command::Pki(PkiCli { dir, command }) => match command {
            PkiSubcommand::Ca(command) => {
                let done = certgate_pki::cli::run(&PkiArgs { dir, command })?;
                print_report(&done.lines)?;
                Ok(ExitCode::from(done.status))
            }
            PkiSubcommand::Est(command) => {
                print_report(&certgate_est::cli::run(&dir, &command).map_err(|e| anyhow!(e))?)?;
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Package(a) => package(a),
        Command::Schema { cases } => {
            let schema = if cases {
                policy_tests::json_schema()
            } else {
                certgate_core::config::json_schema()
            };
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Test(args) => test(args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "certgate", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Reference { out } => {
            std::fs::create_dir_all(&out).with_context(|| format!("cannot make {}", out.display()))?;
            for (file, text) in reference::pages(&Cli::command()) {
                let path = out.join(file);
                std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out } => {
            std::fs::create_dir_all(&out).with_context(|| format!("cannot make {}", out.display()))?;
            clap_mangen::generate_to(Cli::command(), &out).with_context(|| format!("cannot write the man pages to {}", out.display()))?;
            println!(
                "man pages in {} (read one with: man -l {}/certgate.1)",
                out.display(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn package(a: PackageArgs) -> anyhow::Result<ExitCode> {
    let wasm = wasm_or_default(a.wasm)?;
    let p = certgate_oci::write_layout(&wasm, &a.out, a.format, &a.tag, &a.root_id)?;
    let out = a.out.display();
    println!("wrote an OCI image layout to {out} ({} format, tag {})", a.format, a.tag);
    println!("module:   {} ({} bytes, from {})", p.module_digest, p.module_bytes, wasm.display());
    println!("manifest: {}", p.manifest_digest);
    println!("push:     skopeo copy oci:{out}:{} docker://REGISTRY/certgate:{}", a.tag, a.tag);
    println!(
        "pin:      sha256: {}   (WasmPlugin spec.sha256; EnvoyExtensionPolicy wasm[].code.image.sha256)",
        p.manifest_digest.trim_start_matches("sha256:")
    );
    Ok(ExitCode::SUCCESS)
}

/// A subcommand's report on stdout. A reader that stopped reading
/// (`certgate pki token ... | head -1`) is not an error: what was done is done.
fn print_report(lines: &[String]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for line in lines {
        match writeln!(out, "{line}") {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CERTGATE_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // colours only for a person: a log file or journald gets plain text
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("certgate: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every argument a user can see, with the subcommand it belongs to.
    fn visible_args(command: &clap::Command, path: &str, out: &mut Vec<(String, String, bool)>) {
        if command.is_hide_set() {
            return;
        }
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            out.push((path.to_owned(), id.to_owned(), arg.get_help().is_some()));
        }
        for sub in command.get_subcommands() {
            visible_args(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_visible_argument_has_help_text() {
        let mut args = Vec::new();
        visible_args(&Cli::command(), "certgate", &mut args);
        assert!(args.len() > 50, "the walk sees the subcommands' arguments: {}", args.len());
        let bare: Vec<String> = args
            .iter()
            .filter(|(_, _, help)| !help)
            .map(|(c, a, _)| format!("{c} --{a}"))
            .collect();
        assert!(bare.is_empty(), "arguments without help text (a `///` line on the field): {bare:?}");
    }
}
