//! The proxy-wasm wire form of a header map: a count, then each pair's name
//! and value lengths (u32, little-endian), then each name and value with a
//! NUL after it. certgate reads and writes the map itself so that a host
//! answer it does not expect becomes an error that fails the request closed,
//! where the SDK's helpers panic (and a panic kills the VM).

/// The host's map does not have the wire form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("header map from the host is malformed")]
pub struct MalformedMap;

/// Encodes pairs in the wire form.
pub fn encode(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    let size = 4 + pairs.iter().map(|(n, v)| 10 + n.len() + v.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&len32(pairs.len()));
    for (name, value) in pairs {
        out.extend_from_slice(&len32(name.len()));
        out.extend_from_slice(&len32(value.len()));
    }
    for (name, value) in pairs {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

/// Decodes the wire form; empty input is an empty map.
pub fn decode(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, MalformedMap> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut sizes = Reader(bytes);
    let count = sizes.u32()?;
    let mut data = Reader(bytes.get(4 + count.checked_mul(8).ok_or(MalformedMap)?..).ok_or(MalformedMap)?);
    let mut pairs = Vec::with_capacity(count);
    for _ in 0..count {
        let (name_len, value_len) = (sizes.u32()?, sizes.u32()?);
        let name = String::from_utf8(data.field(name_len)?.to_vec()).map_err(|_| MalformedMap)?;
        pairs.push((name, data.field(value_len)?.to_vec()));
    }
    Ok(pairs)
}

fn len32(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes()
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MalformedMap> {
        if n > self.0.len() {
            return Err(MalformedMap);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<usize, MalformedMap> {
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| MalformedMap)?;
        usize::try_from(u32::from_le_bytes(b)).map_err(|_| MalformedMap)
    }

    /// `n` bytes and the NUL after them.
    fn field(&mut self, n: usize) -> Result<&'a [u8], MalformedMap> {
        let field = self.take(n)?;
        match self.take(1)? {
            [0] => Ok(field),
            _ => Err(MalformedMap),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_order_repeats_and_bytes() {
        let pairs: Vec<(&str, &[u8])> = vec![(":path", b"/a"), ("x", b""), ("x", b"\xff\x01"), ("cookie", b"a=b")];
        let decoded = decode(&encode(&pairs)).unwrap();
        let back: Vec<(&str, &[u8])> = decoded.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
        assert_eq!(back, pairs);
        assert_eq!(decode(&[]).unwrap(), Vec::new());
    }

    #[test]
    fn malformed_maps_are_errors() {
        let good = encode(&[("a", b"b")]);
        for n in 1..good.len() {
            assert_eq!(decode(&good[..n]), Err(MalformedMap), "cut at {n}");
        }
        let mut no_nul = good.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        assert_eq!(decode(&no_nul), Err(MalformedMap));
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff]), Err(MalformedMap), "a count beyond the bytes");
        let mut bad_name = encode(&[("a", b"b")]);
        bad_name[12] = 0xff;
        assert_eq!(decode(&bad_name), Err(MalformedMap), "a name that is not UTF-8");
    }
}
