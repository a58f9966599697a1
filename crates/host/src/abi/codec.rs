//! The byte formats of proxy-wasm ABI 0.2.1, as Envoy writes them: header maps
//! and property paths (from `certgate-wire`, which certgate uses too), and
//! Envoy's encodings of typed property values. Pure functions, no guest memory.

pub use certgate_wire::{decode_map, decode_path, encode_map, MapError as CodecError};

/// A header map: names and values as bytes, in order, repeats allowed.
pub type Pairs = Vec<(String, Vec<u8>)>;

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

    #[test]
    fn typed_values_use_envoys_encodings() {
        assert_eq!(encode_bool(true), [1]);
        assert_eq!(encode_int(443), [0xbb, 1, 0, 0, 0, 0, 0, 0]);
    }
}
