//! What proxy-wasm ABI 0.2.1 and Envoy give a filter, as a filter and its
//! host both read and write it: statuses and the map, buffer and stream kinds
//! as named enums; header map and property path bytes; Envoy's header map
//! semantics ([`header_map`]); the connection properties an Envoy listener
//! gives ([`connection`]). Pure functions: no guest memory, no host calls. certgate reads and writes them itself so that an
//! answer it does not expect is an error, where the SDK's helpers panic.
#![warn(missing_docs)]

pub mod connection;
pub mod header_map;
pub mod metadata;

/// One header: its name, and its value as bytes.
pub type Pair = (String, Vec<u8>);

/// A header map: names and values as bytes, in order, repeats allowed.
pub type Pairs = Vec<Pair>;

/// A boolean property as Envoy encodes it: one byte.
pub fn encode_bool(b: bool) -> Vec<u8> {
    vec![u8::from(b)]
}

/// An integer property as Envoy encodes it: 8 bytes, little-endian.
pub fn encode_int(i: i64) -> Vec<u8> {
    i.to_le_bytes().to_vec()
}

/// The statuses of ABI 0.2.1, as their numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    SerializationFailure = 3,
    ParseFailure = 4,
    InvalidMemoryAccess = 6,
    Empty = 7,
    CasMismatch = 8,
    InternalFailure = 10,
    Unimplemented = 12,
}

impl Status {
    const ALL: [Status; 10] = [
        Status::Ok,
        Status::NotFound,
        Status::BadArgument,
        Status::SerializationFailure,
        Status::ParseFailure,
        Status::InvalidMemoryAccess,
        Status::Empty,
        Status::CasMismatch,
        Status::InternalFailure,
        Status::Unimplemented,
    ];

    /// The status a number stands for; `None` for one the ABI does not
    /// define (which a host may answer all the same).
    pub fn from_code(code: u32) -> Option<Status> {
        Status::ALL.into_iter().find(|s| *s as u32 == code)
    }
}

/// The header maps a call names (`proxy_get_header_map_pairs` and the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum MapType {
    HttpRequestHeaders = 0,
    HttpRequestTrailers = 1,
    HttpResponseHeaders = 2,
    HttpResponseTrailers = 3,
    GrpcReceiveInitialMetadata = 4,
    GrpcReceiveTrailingMetadata = 5,
    HttpCallResponseHeaders = 6,
    HttpCallResponseTrailers = 7,
}

impl MapType {
    const ALL: [MapType; 8] = [
        MapType::HttpRequestHeaders,
        MapType::HttpRequestTrailers,
        MapType::HttpResponseHeaders,
        MapType::HttpResponseTrailers,
        MapType::GrpcReceiveInitialMetadata,
        MapType::GrpcReceiveTrailingMetadata,
        MapType::HttpCallResponseHeaders,
        MapType::HttpCallResponseTrailers,
    ];

    /// The map a number names; `None` for one ABI 0.2.1 does not define.
    pub fn from_i32(n: i32) -> Option<MapType> {
        MapType::ALL.into_iter().find(|m| *m as i32 == n)
    }
}

/// The buffers a call names (`proxy_get_buffer_bytes`, `proxy_set_buffer_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum BufferType {
    HttpRequestBody = 0,
    HttpResponseBody = 1,
    DownstreamData = 2,
    UpstreamData = 3,
    HttpCallResponseBody = 4,
    GrpcReceiveBuffer = 5,
    VmConfiguration = 6,
    PluginConfiguration = 7,
    CallData = 8,
}

impl BufferType {
    const ALL: [BufferType; 9] = [
        BufferType::HttpRequestBody,
        BufferType::HttpResponseBody,
        BufferType::DownstreamData,
        BufferType::UpstreamData,
        BufferType::HttpCallResponseBody,
        BufferType::GrpcReceiveBuffer,
        BufferType::VmConfiguration,
        BufferType::PluginConfiguration,
        BufferType::CallData,
    ];

    /// The buffer a number names; `None` for one the ABI does not define.
    pub fn from_i32(n: i32) -> Option<BufferType> {
        BufferType::ALL.into_iter().find(|b| *b as i32 == n)
    }
}

/// The stream a call names (`proxy_continue_stream`, `proxy_close_stream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum StreamType {
    HttpRequest = 0,
    HttpResponse = 1,
    Downstream = 2,
    Upstream = 3,
}

impl StreamType {
    /// The stream a number names; `None` for one ABI 0.2.1 does not define.
    pub fn from_i32(n: i32) -> Option<StreamType> {
        [
            StreamType::HttpRequest,
            StreamType::HttpResponse,
            StreamType::Downstream,
            StreamType::Upstream,
        ]
        .into_iter()
        .find(|s| *s as i32 == n)
    }

    /// The stream's name, as the host records the call.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamType::HttpRequest => "request",
            StreamType::HttpResponse => "response",
            StreamType::Downstream => "downstream",
            StreamType::Upstream => "upstream",
        }
    }
}

/// Why bytes are not a header map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// The sizes promise more bytes than there are.
    #[error("the map is truncated")]
    Truncated,
    /// A name is not UTF-8.
    #[error("a header name is not UTF-8")]
    NameNotUtf8,
}

/// Serialises a map: a u32 count, then (name length, value length) u32 pairs,
/// then each name and value followed by a NUL. All integers little-endian.
/// An empty map is empty bytes (as Envoy returns it: pointer 0, size 0).
pub fn encode_map<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    if pairs.is_empty() {
        return Vec::new();
    }
    let data: usize = pairs.iter().map(|(k, v)| k.as_ref().len() + v.as_ref().len() + 2).sum();
    let mut out = Vec::with_capacity(4 + pairs.len() * 8 + data);
    out.extend_from_slice(&len32(pairs.len()).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&len32(k.as_ref().len()).to_le_bytes());
        out.extend_from_slice(&len32(v.as_ref().len()).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Reads a serialised map; empty bytes are an empty map. The byte after each
/// name and value is skipped unread, as Envoy does.
pub fn decode_map(bytes: &[u8]) -> Result<Pairs, MapError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let u32_at = |at: usize| -> Result<usize, MapError> {
        let b = bytes.get(at..at.saturating_add(4)).ok_or(MapError::Truncated)?;
        let arr: [u8; 4] = b.try_into().map_err(|_| MapError::Truncated)?;
        usize::try_from(u32::from_le_bytes(arr)).map_err(|_| MapError::Truncated)
    };
    let count = u32_at(0)?;
    // each entry needs at least 8 bytes of sizes and 2 NULs
    if count > bytes.len() / 10 + 1 {
        return Err(MapError::Truncated);
    }
    let mut at = 4 + count * 8;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let (klen, vlen) = (u32_at(4 + i * 8)?, u32_at(8 + i * 8)?);
        let key = bytes.get(at..at.saturating_add(klen)).ok_or(MapError::Truncated)?;
        at = at.saturating_add(klen + 1);
        let value = bytes.get(at..at.saturating_add(vlen)).ok_or(MapError::Truncated)?;
        at = at.saturating_add(vlen + 1);
        if at > bytes.len() {
            return Err(MapError::Truncated);
        }
        let key = String::from_utf8(key.to_vec()).map_err(|_| MapError::NameNotUtf8)?;
        out.push((key, value.to_vec()));
    }
    Ok(out)
}

/// A property path as a filter sends it: segments separated by NUL
/// (`connection\0peer_certificate`).
pub fn encode_path(segments: &[&str]) -> Vec<u8> {
    segments.join("\0").into_bytes()
}

/// A property path as the guest sends it, a trailing NUL allowed. Returned
/// joined by `.` (`connection.peer_certificate`), Envoy's attribute names.
pub fn decode_path(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let text = text.strip_suffix('\0').unwrap_or(text);
    if text.is_empty() {
        return None;
    }
    Some(text.split('\0').collect::<Vec<_>>().join("."))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Pairs {
        list.iter().map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn a_map_round_trips_with_repeats_empty_values_and_any_bytes() {
        let m = pairs(&[(":path", "/"), ("x", ""), ("x", "two"), ("", "")]);
        assert_eq!(decode_map(&encode_map(&m)).unwrap(), m);
        let borrowed: Vec<(&str, &[u8])> = vec![("cookie", b"\xff\x01")];
        assert_eq!(
            decode_map(&encode_map(&borrowed)).unwrap(),
            vec![("cookie".to_owned(), vec![0xff, 1])]
        );
    }

    #[test]
    fn the_layout_is_count_sizes_then_nul_terminated_data() {
        let bytes = encode_map(&pairs(&[("ab", "c")]));
        assert_eq!(bytes, [1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, b'a', b'b', 0, b'c', 0]);
    }

    #[test]
    fn an_empty_map_is_no_bytes() {
        assert!(encode_map::<&str, &str>(&[]).is_empty());
        assert_eq!(decode_map(&[]).unwrap(), Vec::new());
    }

    #[test]
    fn truncated_and_lying_maps_are_refused() {
        let bytes = encode_map(&pairs(&[("name", "value")]));
        for cut in 1..bytes.len() - 1 {
            assert!(decode_map(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // a count of 4 billion entries in 4 bytes
        assert_eq!(decode_map(&[0xff, 0xff, 0xff, 0xff]), Err(MapError::Truncated));
        // a size pointing past the end
        let mut lying = bytes.clone();
        lying[4] = 200;
        assert_eq!(decode_map(&lying), Err(MapError::Truncated));
        let mut bad_name = bytes;
        bad_name[12] = 0xff;
        assert_eq!(decode_map(&bad_name), Err(MapError::NameNotUtf8));
    }

    #[test]
    fn statuses_are_known_by_their_numbers() {
        assert_eq!(Status::from_code(0), Some(Status::Ok));
        assert_eq!(Status::from_code(12), Some(Status::Unimplemented));
        assert_eq!(Status::from_code(5), None);
        assert_eq!(Status::from_code(99), None);
        for s in Status::ALL {
            assert_eq!(Status::from_code(s as u32), Some(s));
        }
    }

    #[test]
    fn paths_are_nul_separated() {
        assert_eq!(encode_path(&["connection", "peer_certificate"]), b"connection\0peer_certificate");
        assert_eq!(
            decode_path(&encode_path(&["connection", "peer_certificate"])).as_deref(),
            Some("connection.peer_certificate")
        );
        assert_eq!(decode_path(b"plugin_name\0").as_deref(), Some("plugin_name"));
        assert_eq!(decode_path(b""), None);
        assert_eq!(decode_path(&[0xff]), None);
    }
}
