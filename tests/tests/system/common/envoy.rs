//! A real Envoy for the tests: the project's own install (`.venv/bin/envoy`,
//! from `./dev test`) or `$CERTGATE_ENVOY`; a configuration from `envoy/`
//! with its ports, paths and policy filled in; ephemeral ports read back from
//! the admin endpoint.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{repo, TempDir};

pub fn envoy_bin() -> PathBuf {
    let p = std::env::var_os("CERTGATE_ENVOY")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/envoy"));
    assert!(
        p.is_file(),
        "{} missing: `./dev test` installs Envoy (or set CERTGATE_ENVOY)",
        p.display()
    );
    p
}

/// The Envoy versions of the compatibility matrix (`envoy/versions.txt`),
/// oldest first; the last is the default Envoy.
pub fn matrix() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("envoy/versions.txt")).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The `envoy` of one matrix version, as `./dev test` installs it (the
/// default version is the one in `.venv`).
pub fn envoy_bin_of(version: &str) -> PathBuf {
    if matrix().last().is_some_and(|default| default == version) {
        return envoy_bin();
    }
    let p = repo().join(format!(".venvs/envoy-{version}/bin/envoy"));
    assert!(
        p.is_file(),
        "{} missing: `./dev test` installs every Envoy of envoy/versions.txt",
        p.display()
    );
    p
}

/// A committed configuration made runnable here: listener and admin on
/// port 0, the backend's port, absolute paths, and (if given) another policy.
pub fn config(file: &str, backend: SocketAddr, policy: Option<&str>) -> String {
    let root = repo();
    let mut yaml = std::fs::read_to_string(root.join("envoy").join(file)).unwrap();
    yaml = yaml
        // the listener on a port the kernel picks when Envoy binds it (read
        // back from the admin API): no window for another process to take it
        .replace("port_value: 10443", "port_value: 0")
        .replace("port_value: 9901", "port_value: 0")
        .replace("port_value: 8080", &format!("port_value: {}", backend.port()))
        .replace("filename: fixtures/", &format!("filename: {}/fixtures/", root.display()))
        .replace("filename: target/", &format!("filename: {}/target/", root.display()))
        .replace("path: envoy/", &format!("path: {}/envoy/", root.display()));
    if let Some(policy) = policy {
        let start = yaml.find("value: |").expect("an inline policy");
        let end = yaml[start..].find("          - name: envoy.filters.http.router").unwrap() + start;
        yaml.replace_range(start..end, &format!("value: '{}'\n", policy.replace('\'', "''")));
    }
    yaml
}

/// The committed ECDS resource (`envoy/ecds/certgate.yaml`) made runnable
/// here, its inline policy replaced when one is given.
pub fn ecds_resource(policy: Option<&str>) -> String {
    let mut resource = std::fs::read_to_string(repo().join("envoy/ecds/certgate.yaml")).unwrap();
    if let Some(policy) = policy {
        let start = resource.find("value: |").expect("an inline policy");
        resource.truncate(start);
        resource.push_str(&format!("value: '{}'\n", policy.replace('\n', " ").replace('\'', "''")));
    }
    resource.replace("filename: target/", &format!("filename: {}/target/", repo().display()))
}

/// `envoy/ecds.yaml` made runnable here, taking its filter configuration from
/// `resource` (Envoy watches the file's directory).
pub fn ecds_config(backend: SocketAddr, resource: &Path) -> String {
    let dir = resource.parent().unwrap();
    config("ecds.yaml", backend, None)
        .replace(
            &format!("{}/envoy/ecds/certgate.yaml", repo().display()),
            &resource.display().to_string(),
        )
        .replace(&format!("{}/envoy/ecds", repo().display()), &dir.display().to_string())
}

/// A loopback port free right now (Envoy's admin reports a listener's
/// configured port, not the one bound for port 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Hot restart: the shared base id, this process's epoch, the parent's drain time.
#[derive(Debug, Clone, Copy)]
struct HotRestart {
    base_id: u32,
    epoch: u32,
    drain: Duration,
}

pub struct Envoy {
    child: Child,
    pub admin: SocketAddr,
    pub listener: SocketAddr,
    pub log: PathBuf,
    _dir: TempDir,
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP GET to the admin endpoint (HTTP/1.1; a chunked body is decoded).
pub fn admin_get(admin: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&admin, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Some(body.to_owned());
    }
    let mut rest = body;
    let mut decoded = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some(decoded);
        }
        decoded.push_str(after.get(..size)?);
        rest = after.get(size + 2..)?;
    }
}

impl Envoy {
    /// Starts Envoy (two workers) and waits until it is ready, or fails with its log.
    pub fn start(yaml: &str) -> Result<Envoy, String> {
        Envoy::start_with(yaml, 2, None)
    }

    /// Whether the process has ended (a hot-restart parent does, after its drain).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// The process id, for its CPU time.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts Envoy with `workers` worker threads, pinned to `cpus` (a
    /// `taskset` list) if given.
    pub fn start_with(yaml: &str, workers: usize, cpus: Option<&str>) -> Result<Envoy, String> {
        Envoy::start_bin(&envoy_bin(), yaml, workers, cpus, &[])
    }

    /// Starts one matrix version of Envoy (two workers).
    pub fn start_version(version: &str, yaml: &str) -> Result<Envoy, String> {
        Envoy::start_bin(&envoy_bin_of(version), yaml, 2, None, &[])
    }

    /// Starts one matrix version of Envoy with `workers` worker threads.
    pub fn start_version_workers(version: &str, yaml: &str, workers: usize) -> Result<Envoy, String> {
        Envoy::start_bin(&envoy_bin_of(version), yaml, workers, None, &[])
    }

    /// Starts one matrix version of Envoy with more environment variables.
    pub fn start_version_env(version: &str, yaml: &str, env: &[(&str, &Path)]) -> Result<Envoy, String> {
        Envoy::start_bin(&envoy_bin_of(version), yaml, 2, None, env)
    }

    /// Starts one matrix version with hot restart on: epoch 0 of `base_id`,
    /// or a later epoch that takes the listeners over from the one before
    /// (which drains for `drain` and then exits).
    pub fn start_hot(version: &str, yaml: &str, base_id: u32, epoch: u32, drain: Duration) -> Result<Envoy, String> {
        let hot = HotRestart { base_id, epoch, drain };
        Envoy::launch(&envoy_bin_of(version), yaml, 2, None, &[], Some(hot))
    }

    fn start_bin(bin: &Path, yaml: &str, workers: usize, cpus: Option<&str>, env: &[(&str, &Path)]) -> Result<Envoy, String> {
        Envoy::launch(bin, yaml, workers, cpus, env, None)
    }

    fn launch(
        bin: &Path,
        yaml: &str,
        workers: usize,
        cpus: Option<&str>,
        env: &[(&str, &Path)],
        hot: Option<HotRestart>,
    ) -> Result<Envoy, String> {
        let dir = TempDir::new("envoy").unwrap();
        let cfg = dir.0.join("envoy.yaml");
        // the access log goes to a file the test can read
        let access_log = dir.0.join("access.log");
        std::fs::write(&cfg, yaml.replace("path: /dev/stdout", &format!("path: {}", access_log.display()))).unwrap();
        let admin_file = dir.0.join("admin");
        let log = dir.0.join("envoy.log");
        let mut command = match cpus {
            Some(list) => {
                let mut c = Command::new("taskset");
                c.args(["-c", list]).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        match hot {
            Some(h) => command.args([
                "--base-id".to_owned(),
                h.base_id.to_string(),
                "--restart-epoch".to_owned(),
                h.epoch.to_string(),
                "--drain-time-s".to_owned(),
                h.drain.as_secs().max(1).to_string(),
                "--parent-shutdown-time-s".to_owned(),
                (h.drain.as_secs().max(1) + 2).to_string(),
            ]),
            None => command.arg("--disable-hot-restart"),
        };
        let child = command
            .arg("-c")
            .arg(&cfg)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .arg("--log-path")
            .arg(&log)
            .args(["--concurrency", &workers.to_string()])
            // the log file is read by the tests: flush it often
            .args(["--file-flush-interval-msec", "100"])
            .args([
                "-l",
                "warning",
                "--component-log-level",
                "wasm:info,config:info,dynamic_modules:info",
            ])
            .current_dir(repo())
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run envoy: {e}"))?;
        let mut envoy = Envoy {
            child,
            admin: "0.0.0.0:0".parse().unwrap(),
            listener: "0.0.0.0:0".parse().unwrap(),
            log,
            _dir: dir,
        };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(status)) = envoy.child.try_wait() {
                return Err(format!("envoy exited ({status}):\n{}", envoy.log_tail()));
            }
            if let Ok(a) = std::fs::read_to_string(&admin_file) {
                if let Ok(addr) = a.trim().parse() {
                    envoy.admin = addr;
                    let ready = admin_get(addr, "/ready").is_some_and(|b| b.trim() == "LIVE");
                    let listeners = admin_get(addr, "/listeners?format=json").unwrap_or_default();
                    if let (true, Some(port)) = (ready, first_port(&listeners)) {
                        envoy.listener = SocketAddr::from(([127, 0, 0, 1], port));
                        return Ok(envoy);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("envoy not ready in 60 s:\n{}", envoy.log_tail()))
    }

    /// The access log so far (the committed configurations' `/dev/stdout`).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self._dir.0.join("access.log")).unwrap_or_default()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the log comes to hold `needle` within 3 s (Envoy flushes its
    /// log file every 100 ms here).
    pub fn log_eventually_contains(&self, needle: &str) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            if self.log_text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// The last lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }

    /// Envoy's resident memory (`VmRSS`), KiB; 0 if unreadable.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// A counter once it satisfies `want`, waiting up to 5 s: certgate gives
    /// its counters to Envoy on its one-second tick.
    pub fn stat_eventually(&self, name: &str, want: impl Fn(u64) -> bool) -> Option<u64> {
        let start = Instant::now();
        loop {
            let v = self.stat(name);
            if v.is_some_and(&want) || start.elapsed() > Duration::from_secs(5) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A counter or gauge from the admin stats.
    pub fn stat(&self, name: &str) -> Option<u64> {
        let stats = admin_get(self.admin, &format!("/stats?filter=^{name}$"))?;
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).and_then(|v| v.trim().parse().ok()))
    }
}

fn first_port(json: &str) -> Option<u16> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.get("listener_statuses")?
        .get(0)?
        .get("local_address")?
        .get("socket_address")?
        .get("port_value")?
        .as_u64()
        .map(|p| p as u16)
}

pub fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The policy written inline in a committed configuration (its
/// `configuration.value: |` block), as JSON text.
pub fn committed_policy(file: &str) -> String {
    let yaml = std::fs::read_to_string(repo().join("envoy").join(file)).unwrap();
    let policy = inline_policy(&yaml[certgate_block(&yaml)]);
    serde_json::from_str::<serde_json::Value>(&policy).unwrap_or_else(|e| panic!("{file}: the inline policy is not JSON: {e}"));
    policy
}

/// certgate's dynamic module filter block (the benches put it in with `with_filter`).
pub fn module_filter(module: &Path, policy: &str) -> String {
    format!(
        r#"          - name: certgate
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
              dynamic_module_config:
                module: {{ local: {{ filename: {} }} }}
              filter_name: certgate
              filter_config:
                "@type": type.googleapis.com/google.protobuf.StringValue
                value: '{}'
"#,
        module.display(),
        policy.replace('\'', "''")
    )
}

/// The Envoys of the matrix that run the dynamic module (1.38 and later).
pub const MODULE_VERSIONS: [&str; 3] = ["1.38.2", "1.39.3", "1.40.0"];

/// A policy with `"verification": "listener"`, as every committed
/// configuration's (the dynamic module refuses the default).
pub fn with_listener_verification(policy: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(policy).unwrap();
    v.as_object_mut().unwrap().insert("verification".into(), "listener".into());
    v.to_string()
}

/// The two builds of certgate Envoy loads: the same policy core, two glues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Build {
    /// `certgate_filter.wasm` through `envoy.filters.http.wasm` (V8).
    Wasm,
    /// `libcertgate.so` through `envoy.filters.http.dynamic_modules`.
    Module,
}

impl Build {
    pub const BOTH: [Build; 2] = [Build::Wasm, Build::Module];

    pub fn name(self) -> &'static str {
        match self {
            Build::Wasm => "wasm",
            Build::Module => "module",
        }
    }

    /// A (Wasm) configuration of this build.
    pub fn config(self, yaml: &str) -> String {
        match self {
            Build::Wasm => yaml.to_owned(),
            Build::Module => native(yaml),
        }
    }

    /// The namespace of certgate's counters in Envoy's stats.
    pub fn stats_namespace(self) -> &'static str {
        match self {
            Build::Wasm => certgate_core::metrics::WASM_NAMESPACE,
            Build::Module => certgate_core::metrics::MODULE_NAMESPACE,
        }
    }

    /// What Envoy puts before a counter's name in `/stats/prometheus`: it
    /// drops its `envoy_` prefix and the namespace for Wasm filters' custom
    /// stats, not for a dynamic module's (1.38 to 1.40).
    pub fn prometheus_prefix(self) -> &'static str {
        match self {
            Build::Wasm => "",
            Build::Module => "envoy_dynamicmodulescustom_",
        }
    }

    /// One of certgate's counters as Envoy names it.
    pub fn stat(self, name: &str) -> String {
        format!("{}.{name}", self.stats_namespace())
    }

    /// The ECDS resource of this build ([`ecds_resource`] for the Wasm
    /// build; for the module, the same policy in a `DynamicModuleFilter`).
    pub fn ecds_resource(self, policy: Option<&str>) -> String {
        let wasm = ecds_resource(policy);
        match self {
            Build::Wasm => wasm,
            Build::Module => {
                let policy = policy.map_or_else(|| inline_policy(&wasm), str::to_owned);
                let at = wasm.find("  typed_config:").expect("a typed_config");
                format!(
                    "{}  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter\n    \
                     dynamic_module_config: {{ module: {{ local: {{ filename: {} }} }} }}\n    filter_name: certgate\n    filter_config:\n      \
                     \"@type\": type.googleapis.com/google.protobuf.StringValue\n      value: '{}'\n",
                    &wasm[..at],
                    module().display(),
                    policy.replace('\n', " ").replace('\'', "''")
                )
            }
        }
    }

    /// `envoy/ecds.yaml` for this build: the discovered type and the stats
    /// tags' namespace are the module's for the module.
    pub fn ecds_config(self, backend: SocketAddr, resource: &Path) -> String {
        let yaml = ecds_config(backend, resource);
        match self {
            Build::Wasm => yaml,
            Build::Module => yaml
                .replace(
                    "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\"]",
                    "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter\"]",
                )
                .replace("^wasmcustom\\.", "^dynamicmodulescustom\\.")
                .replace("%FILTER_STATE(wasm.certgate:PLAIN)%", "%FILTER_STATE(certgate:PLAIN)%"),
        }
    }
}

/// The shipped dynamic module, as `./dev` builds it.
pub fn module() -> PathBuf {
    let p = repo().join("target/release/libcertgate.so");
    assert!(p.is_file(), "{} missing: `./dev test` builds it", p.display());
    p
}

/// The dynamic module built with the `test-panic` feature.
pub fn panicking_module() -> PathBuf {
    let p = repo().join("target/test-module/release/libcertgate.so");
    assert!(p.is_file(), "{} missing: `./dev test` builds it", p.display());
    p
}

/// A configuration's certgate Wasm filter replaced by the dynamic module
/// with the same policy; its stats tags and access log read the module's
/// names. `required-mtls-native.yaml` is `required-mtls.yaml` so made.
pub fn native(yaml: &str) -> String {
    native_with(yaml, &module())
}

/// [`native`] with another build of the module.
pub fn native_with(yaml: &str, module: &Path) -> String {
    with_peer_cert_state(&native_xfcc_with(yaml, module))
}

/// [`native`] as it was before the module read filter state: the
/// certificate from the XFCC element Envoy adds (`set_current_client_cert_details`),
/// the alternative for platforms where no network filter can be added.
pub fn native_xfcc(yaml: &str) -> String {
    native_xfcc_with(yaml, &module())
}

/// The network filter that gives the module the certificate (and on 1.39+
/// Envoy's verification flag) once per connection (connection filter
/// state, written at the TLS handshake), and
/// no XFCC header built for it: what `required-mtls-native.yaml` adds to
/// `required-mtls.yaml` besides the module itself.
pub const PEER_CERT_STATE_FILTER: &str = r#"      # the client certificate (and, Envoy 1.39+, whether Envoy verified it:
      # false on a resumed session, empty on 1.38), once per connection at
      # the end of the TLS handshake, into the connection's filter state: the module reads it
      # from there when the certificate's digest is not in its cache (Envoy's
      # HTTP filter ABI has no attribute for the certificate itself)
      - name: envoy.filters.network.set_filter_state
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.set_filter_state.v3.Config
          on_downstream_tls_handshake:
          - object_key: certgate.peer_cert
            factory_key: envoy.string
            format_string:
              text_format_source:
                inline_string: "%DOWNSTREAM_PEER_CERT%"
          - object_key: certgate.peer_cert_valid
            factory_key: envoy.string
            format_string:
              text_format_source:
                inline_string: "%CEL(connection.peer_certificate_valid)%"
"#;

/// [`PEER_CERT_STATE_FILTER`] before a configuration's HTTP connection
/// manager, and its XFCC settings reduced to removing what a client sends.
pub fn with_peer_cert_state(yaml: &str) -> String {
    let hcm = "      - name: envoy.filters.network.http_connection_manager\n";
    assert!(yaml.contains(hcm), "an HTTP connection manager");
    let yaml = yaml.replacen(hcm, &format!("{PEER_CERT_STATE_FILTER}{hcm}"), 1);
    let kept: Vec<&str> = yaml
        .lines()
        .filter(|l| !l.trim_start().starts_with("set_current_client_cert_details:"))
        .collect();
    let mut yaml = kept.join("\n") + "\n";
    yaml = yaml.replace(
        "          # clients can never send their own XFCC; Envoy sets the verified one\n          forward_client_cert_details: SANITIZE_SET\n",
        "          # a client's own XFCC never passes; none is built: the module reads\n          # the certificate from filter state\n          forward_client_cert_details: SANITIZE\n",
    );
    yaml.replace("forward_client_cert_details: SANITIZE_SET", "forward_client_cert_details: SANITIZE")
}

fn native_xfcc_with(yaml: &str, module: &Path) -> String {
    let at = certgate_block(yaml);
    let block = module_filter(module, &inline_policy(&yaml[at.clone()]));
    let yaml = format!("{}{block}{}", &yaml[..at.start], &yaml[at.end..]);
    yaml.replace("^wasmcustom\\.", "^dynamicmodulescustom\\.")
        .replace("%FILTER_STATE(wasm.certgate:PLAIN)%", "%FILTER_STATE(certgate:PLAIN)%")
}

/// Where a configuration's certgate filter block is: from its name to the router.
pub fn certgate_block(yaml: &str) -> std::ops::Range<usize> {
    let start = yaml.find("          - name: certgate\n").expect("a certgate filter");
    let end = yaml[start..]
        .find("          - name: envoy.filters.http.router")
        .expect("the router after certgate")
        + start;
    start..end
}

/// The policy of a filter block: a `value: |` block or a `value: '...'` line, as JSON text.
fn inline_policy(block: &str) -> String {
    if let Some(at) = block.find("value: |\n") {
        return block[at + "value: |\n".len()..]
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("\n");
    }
    let at = block.find("value: '").expect("an inline policy") + "value: '".len();
    let quoted = block[at..].trim_end();
    quoted.strip_suffix('\'').expect("a closing quote").replace("''", "'")
}
