//! The byte formats of proxy-wasm ABI 0.2.1, as Envoy writes them: header maps
//! and property paths. Pure functions, no guest memory.

/// A header map: names and values as bytes, in order, repeats allowed.
pub type Pairs = Vec<(String, Vec<u8>)>;

/// Why bytes from the guest are not a map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The sizes promise more bytes than there are.
    #[error("the map is truncated")]
    Truncated,
    /// A name is not UTF-8.
    #[error("a header name is not UTF-8")]
    NameNotUtf8,
}

/// Serialises a map: a u32 count, then (name length, value length) u32 pairs,
/// then each name and value followed by a NUL. All integers little-endian.
/// An empty map is empty bytes (the host then returns pointer 0, size 0).
pub fn encode_map(pairs: &[(String, Vec<u8>)]) -> Vec<u8> {
    if pairs.is_empty() {
        return Vec::new();
    }
    let data: usize = pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(4 + pairs.len() * 8 + data);
    out.extend_from_slice(&len32(pairs.len()).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&len32(k.len()).to_le_bytes());
        out.extend_from_slice(&len32(v.len()).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Reads a map the guest serialised (for `set_header_map_pairs`,
/// `send_local_response`). Empty bytes are an empty map.
pub fn decode_map(bytes: &[u8]) -> Result<Pairs, CodecError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let u32_at = |at: usize| -> Result<usize, CodecError> {
        let b = bytes.get(at..at + 4).ok_or(CodecError::Truncated)?;
        let arr: [u8; 4] = b.try_into().map_err(|_| CodecError::Truncated)?;
        Ok(u32::from_le_bytes(arr) as usize)
    };
    let count = u32_at(0)?;
    // each entry needs at least 8 bytes of sizes and 2 NULs
    if count > bytes.len() / 10 + 1 {
        return Err(CodecError::Truncated);
    }
    let mut sizes = Vec::with_capacity(count);
    for i in 0..count {
        sizes.push((u32_at(4 + i * 8)?, u32_at(8 + i * 8)?));
    }
    let mut at = 4 + count * 8;
    let mut out = Vec::with_capacity(count);
    for (klen, vlen) in sizes {
        let key = bytes.get(at..at + klen).ok_or(CodecError::Truncated)?;
        at += klen + 1;
        let value = bytes.get(at..at + vlen).ok_or(CodecError::Truncated)?;
        at += vlen + 1;
        if at > bytes.len() {
            return Err(CodecError::Truncated);
        }
        let key = String::from_utf8(key.to_vec()).map_err(|_| CodecError::NameNotUtf8)?;
        out.push((key, value.to_vec()));
    }
    Ok(out)
}

/// A property path as the guest sends it: segments separated by NUL
/// (`connection\0peer_certificate`), a trailing NUL allowed. Returned joined
/// by `.` (`connection.peer_certificate`), Envoy's attribute names.
pub fn decode_path(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let text = text.strip_suffix('\0').unwrap_or(text);
    if text.is_empty() {
        return None;
    }
    Some(text.split('\0').collect::<Vec<_>>().join("."))
}

/// Envoy's encodings of typed property values.
pub fn encode_bool(b: bool) -> Vec<u8> {
    vec![u8::from(b)]
}

/// An integer property as Envoy encodes it: 8 bytes, little-endian.
pub fn encode_int(i: i64) -> Vec<u8> {
    i.to_le_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Pairs {
        list.iter().map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn a_map_round_trips_with_repeats_and_empty_values() {
        let m = pairs(&[(":path", "/"), ("x", ""), ("x", "two"), ("", "")]);
        assert_eq!(decode_map(&encode_map(&m)).unwrap(), m);
    }

    #[test]
    fn the_layout_is_count_sizes_then_nul_terminated_data() {
        let bytes = encode_map(&pairs(&[("ab", "c")]));
        assert_eq!(bytes, [1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, b'a', b'b', 0, b'c', 0]);
    }

    #[test]
    fn an_empty_map_is_no_bytes() {
        assert!(encode_map(&[]).is_empty());
        assert_eq!(decode_map(&[]).unwrap(), Vec::new());
    }

    #[test]
    fn truncated_and_lying_maps_are_refused() {
        let bytes = encode_map(&pairs(&[("name", "value")]));
        for cut in 1..bytes.len() - 1 {
            assert!(decode_map(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // a count of 4 billion entries in 4 bytes
        assert_eq!(decode_map(&[0xff, 0xff, 0xff, 0xff]), Err(CodecError::Truncated));
        // a size pointing past the end
        let mut lying = bytes.clone();
        lying[4] = 200;
        assert_eq!(decode_map(&lying), Err(CodecError::Truncated));
        let mut bad_name = bytes;
        bad_name[12] = 0xff;
        assert_eq!(decode_map(&bad_name), Err(CodecError::NameNotUtf8));
    }

    #[test]
    fn paths_are_nul_separated() {
        assert_eq!(decode_path(b"connection\0peer_certificate").as_deref(), Some("connection.peer_certificate"));
        assert_eq!(decode_path(b"plugin_name\0").as_deref(), Some("plugin_name"));
        assert_eq!(decode_path(b""), None);
        assert_eq!(decode_path(&[0xff]), None);
    }

    #[test]
    fn typed_values_use_envoys_encodings() {
        assert_eq!(encode_bool(true), [1]);
        assert_eq!(encode_int(443), [0xbb, 1, 0, 0, 0, 0, 0, 0]);
    }
}
