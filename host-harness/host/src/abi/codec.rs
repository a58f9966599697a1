//! The byte formats of proxy-wasm ABI 0.2.1, as Envoy writes them: header maps,
//! property paths and Envoy's encodings of typed property values, all from
//! `certgate-wire`, which certgate uses too.

pub use certgate_wire::header_map::request as request_pseudo_headers;
pub use certgate_wire::{decode_map, decode_path, encode_bool, encode_int, encode_map, MapError as CodecError, Pairs};
