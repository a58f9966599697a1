//! Who may speak as the proxy, whose `Client-Cert` header carries a
//! client's certificate: over TLS, a proxy whose own client certificate
//! `--trusted-proxy-cert` names; on the plain loopback listener
//! (`--proxy-listen`), a process of the user `--proxy-user` names, for a
//! request whose `Host` is one `--proxy-host` names. Never an address.

use std::net::{IpAddr, SocketAddr};

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// One name of the proxy's certificate: the certificate itself (its
/// SHA-256), or a SAN it must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyName {
    /// `sha256:HEX`: that very certificate.
    Sha256(String),
    /// `DNS:NAME`.
    Dns(String),
    /// `URI:URI` (a SPIFFE ID, say).
    Uri(String),
    /// `email:ADDRESS`.
    Email(String),
}

impl std::str::FromStr for ProxyName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?}: write sha256:HEX (the certificate's SHA-256), DNS:NAME, URI:URI or email:ADDRESS");
        let (kind, value) = s.split_once(':').ok_or_else(bad)?;
        if value.is_empty() {
            return Err(bad());
        }
        match kind {
            "sha256" => {
                let hex = value.replace(':', "").to_ascii_lowercase();
                match certgate_x509::text::from_hex(&hex) {
                    Some(bytes) if bytes.len() == 32 => Ok(ProxyName::Sha256(hex)),
                    _ => Err(format!("{s:?}: a SHA-256 is 64 hex digits")),
                }
            }
            "DNS" => Ok(ProxyName::Dns(value.to_ascii_lowercase())),
            "URI" => Ok(ProxyName::Uri(value.to_owned())),
            "email" => Ok(ProxyName::Email(value.to_owned())),
            _ => Err(bad()),
        }
    }
}

impl ProxyName {
    /// The SAN it names, as `Sans::texts` writes one (none for a SHA-256).
    pub fn san_text(&self) -> Option<String> {
        match self {
            ProxyName::Sha256(_) => None,
            ProxyName::Dns(d) => Some(format!("DNS:{d}")),
            ProxyName::Uri(u) => Some(format!("URI:{u}")),
            ProxyName::Email(e) => Some(format!("email:{e}")),
        }
    }
}

/// The proxies trusted over TLS.
#[derive(Debug, Clone, Default)]
pub struct ProxyTrust {
    /// Any of these names a proxy.
    pub names: Vec<ProxyName>,
}

impl ProxyTrust {
    /// Whether a certificate the TLS handshake verified is the proxy's.
    pub fn admits(&self, der: &[u8]) -> bool {
        if self.names.is_empty() {
            return false;
        }
        let Ok((_, cert)) = X509Certificate::from_der(der) else {
            return false;
        };
        let sha256 = certgate_x509::sha256_hex(der);
        let sans: Vec<GeneralName<'_>> = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|e| e.value.general_names.clone())
            .unwrap_or_default();
        self.names.iter().any(|name| match name {
            ProxyName::Sha256(hex) => *hex == sha256,
            ProxyName::Dns(want) => sans
                .iter()
                .any(|g| matches!(g, GeneralName::DNSName(d) if d.eq_ignore_ascii_case(want))),
            ProxyName::Uri(want) => sans.iter().any(|g| matches!(g, GeneralName::URI(u) if u == want)),
            ProxyName::Email(want) => sans.iter().any(|g| matches!(g, GeneralName::RFC822Name(e) if e == want)),
        })
    }
}

/// The plain listener for a proxy on this machine that speaks plain HTTP
/// upstream (`certgate serve`).
#[derive(Debug, Clone)]
pub struct PlainProxy {
    /// A loopback address.
    pub listen: SocketAddr,
    /// The user whose processes may connect (the proxy's).
    pub uid: u32,
    /// What `Host` a request must carry (the public names the proxy serves).
    pub hosts: Vec<String>,
}

impl PlainProxy {
    /// Whether a request's `Host` is one the proxy serves (with or without a
    /// port): a page of another site that resolves to loopback (DNS
    /// rebinding) cannot reach the listener through a browser.
    pub fn host_ok(&self, host: &str) -> bool {
        let name = host_name(host);
        self.hosts.iter().any(|h| host_name(h).eq_ignore_ascii_case(name))
    }
}

/// `name` of `name:port` or `[v6]:port`.
fn host_name(host: &str) -> &str {
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The user id of the process at the other end of a loopback TCP
/// connection, as the kernel lists its socket in `/proc/net/tcp` or `tcp6`:
/// the entry whose local address is the peer's and whose remote address is
/// ours. `None` if it is not found (not Linux, or the peer is gone).
pub fn peer_uid(peer: SocketAddr, local: SocketAddr) -> Option<u32> {
    let table = if peer.is_ipv4() { "/proc/net/tcp" } else { "/proc/net/tcp6" };
    let text = std::fs::read_to_string(table).ok()?;
    uid_in(&text, peer, local)
}

/// [`peer_uid`] over a table's text.
fn uid_in(table: &str, peer: SocketAddr, local: SocketAddr) -> Option<u32> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (ours, theirs, uid) = (fields.get(1)?, fields.get(2)?, fields.get(7)?);
        (parse_socket(ours)? == peer && parse_socket(theirs)? == local).then(|| uid.parse().ok())?
    })
}

/// `0100007F:1F90` (IPv4, each 32-bit word in host order: little-endian
/// here) or the 32 hex digits of IPv6, then the port in hex.
fn parse_socket(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let bytes = certgate_x509::text::from_hex(addr)?;
    let words: Vec<[u8; 4]> = bytes
        .chunks(4)
        .map(|w| <[u8; 4]>::try_from(w).map(|w| u32::from_le_bytes(w).to_be_bytes()))
        .collect::<Result<_, _>>()
        .ok()?;
    let ip = match words.as_slice() {
        [a] => IpAddr::from(*a),
        [a, b, c, d] => {
            let mut all = [0u8; 16];
            for (i, w) in [a, b, c, d].into_iter().enumerate() {
                all.get_mut(i * 4..i * 4 + 4)?.copy_from_slice(w);
            }
            IpAddr::from(all)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_names_are_read_with_their_kind() {
        assert_eq!("DNS:Proxy.Example".parse(), Ok(ProxyName::Dns("proxy.example".into())));
        assert_eq!(
            "URI:spiffe://example.org/envoy".parse(),
            Ok(ProxyName::Uri("spiffe://example.org/envoy".into()))
        );
        let hex = "AB".repeat(32);
        assert_eq!(format!("sha256:{hex}").parse(), Ok(ProxyName::Sha256("ab".repeat(32))));
        assert!("sha256:abcd".parse::<ProxyName>().unwrap_err().contains("64 hex digits"));
        assert!("127.0.0.2".parse::<ProxyName>().is_err(), "an address names no proxy");
        assert!("CN=envoy".parse::<ProxyName>().is_err());
    }

    #[test]
    fn the_host_must_be_one_the_proxy_serves() {
        let plain = PlainProxy {
            listen: "127.0.0.1:8080".parse().unwrap(),
            uid: 0,
            hosts: vec!["localhost:8443".into(), "est.example.org".into()],
        };
        assert!(plain.host_ok("localhost:8443") && plain.host_ok("localhost") && plain.host_ok("EST.example.org:443"));
        assert!(!plain.host_ok("evil.example") && !plain.host_ok("127.0.0.1:8080") && !plain.host_ok(""));
    }

    #[test]
    fn the_kernels_socket_table_names_the_peers_user() {
        // what /proc/net/tcp holds for 127.0.0.1:43210 -> 127.0.0.1:8080, both ends
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 0100007F:A8CA 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 20 4 30 10 -1
   1: 0100007F:A8CA 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0000000000000000 20 4 30 10 -1
";
        let peer: SocketAddr = "127.0.0.1:43210".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(uid_in(table, peer, local), Some(1000));
        assert_eq!(uid_in(table, local, peer), Some(0));
        assert_eq!(uid_in(table, "127.0.0.2:43210".parse().unwrap(), local), None);
        assert_eq!(
            parse_socket("00000000000000000000000001000000:1F90"),
            Some("[::1]:8080".parse().unwrap())
        );
    }

    #[test]
    fn a_live_loopback_connection_is_found_with_this_processs_user() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(local).unwrap();
        let (_server_side, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        // this process's own user: the owner of /proc/self
        let me = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap();
        assert_eq!(peer_uid(peer, local), Some(me));
    }
}
