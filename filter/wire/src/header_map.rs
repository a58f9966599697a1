//! Envoy's header map semantics, as a filter sees them through ABI 0.2.1:
//! names are lowercase, a name may repeat, `add` appends, `remove` removes
//! every value of a name, `replace` keeps the first value's place with the new
//! value and drops the repeats (or appends when there is none). The host
//! applies them to the streams it runs; the filter's fake Envoy to its tests
//! and fuzz targets, so both model Envoy the same way.

use crate::Pairs;

/// Envoy's form of a header name: lowercase.
pub fn name(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// A request's pseudo-headers as an Envoy HTTPS listener gives them to the
/// filter chain (`:method`, `:path`, `:authority`, `:scheme`), for the
/// caller to add the request's own headers to.
pub fn request(method: &str, path: &str, authority: &str) -> Pairs {
    [
        (":method", method),
        (":path", path),
        (":authority", authority),
        (":scheme", "https"),
    ]
    .iter()
    .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
    .collect()
}

/// `proxy_add_header_map_value`.
pub fn add(map: &mut Pairs, name: &str, value: Vec<u8>) {
    map.push((self::name(name), value));
}

/// `proxy_remove_header_map_value`.
pub fn remove(map: &mut Pairs, name: &str) {
    let name = self::name(name);
    map.retain(|(n, _)| *n != name);
}

/// `proxy_replace_header_map_value`.
pub fn replace(map: &mut Pairs, name: &str, value: Vec<u8>) {
    let name = self::name(name);
    let mut value = Some(value);
    map.retain_mut(|(n, v)| {
        if *n != name {
            return true;
        }
        // the first one keeps its place; any repeats go
        match value.take() {
            Some(new) => {
                *v = new;
                true
            }
            None => false,
        }
    });
    if let Some(value) = value {
        map.push((name, value));
    }
}

/// Headers that belong to one hop (RFC 9110 §7.6.1, and HTTP/1.1's framing):
/// a proxy does not forward them, and an application is never given one.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

/// Headers the proxy itself writes for the application (besides the
/// hop-by-hop ones): an application must not be given another meaning
/// under these names.
pub const PROXY_OWNED: &[&str] = &[
    "host",
    "content-length",
    "x-forwarded-client-cert",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-envoy-original-path",
];

/// Whether a lowercase header name is hop-by-hop.
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> Pairs {
        pairs.iter().map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn replace_keeps_the_first_place_and_drops_repeats() {
        let mut m = map(&[("a", "1"), ("x-user", "evil"), ("b", "2"), ("x-user", "evil2")]);
        replace(&mut m, "X-User", b"alice".to_vec());
        assert_eq!(m, map(&[("a", "1"), ("x-user", "alice"), ("b", "2")]));
        replace(&mut m, "c", b"3".to_vec());
        assert_eq!(m.last(), Some(&("c".to_owned(), b"3".to_vec())));
    }

    #[test]
    fn remove_takes_every_value_and_add_appends_lowercase() {
        let mut m = map(&[("x-user", "a"), ("b", "2"), ("x-user", "b")]);
        remove(&mut m, "X-USER");
        assert_eq!(m, map(&[("b", "2")]));
        add(&mut m, "B", b"3".to_vec());
        assert_eq!(m, map(&[("b", "2"), ("b", "3")]));
    }
}
