//! Dynamic metadata as Envoy's `proxy_get_property` gives it: a filter's
//! namespace under `metadata.filter_metadata`, walked by path. A string leaf
//! comes back as its bytes, a number as an 8-byte little-endian double, a
//! bool as one byte, and an object or list as a serialized
//! `google.protobuf.Struct` or `ListValue`. The harness sets what Envoy's
//! `jwt_authn` would (`payload_in_metadata`) from this.

use crate::Pairs;
use serde_json::Value;

/// Every property path below `metadata.filter_metadata.<namespace>.<key>`
/// (that one included) with the bytes Envoy gives for it.
pub fn properties(namespace: &str, key: &str, value: &Value) -> Pairs {
    let mut out = Vec::new();
    walk(&format!("metadata.filter_metadata.{namespace}.{key}"), value, &mut out);
    out
}

fn walk(path: &str, value: &Value, out: &mut Pairs) {
    if let Value::Object(fields) = value {
        for (name, field) in fields {
            walk(&format!("{path}.{name}"), field, out);
        }
    }
    out.push((path.to_owned(), leaf(value)));
}

/// A value's bytes as Envoy serializes it for a property read.
fn leaf(value: &Value) -> Vec<u8> {
    match value {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Number(n) => n.as_f64().unwrap_or_default().to_le_bytes().to_vec(),
        Value::Bool(b) => vec![u8::from(*b)],
        Value::Null => Vec::new(),
        Value::Object(fields) => encode_struct(fields),
        Value::Array(items) => encode_list(items),
    }
}

// google/protobuf/struct.proto: Struct { map<string, Value> fields = 1; }
// Value { oneof kind { NullValue null_value = 1; double number_value = 2;
// string string_value = 3; bool bool_value = 4; Struct struct_value = 5;
// ListValue list_value = 6; } }  ListValue { repeated Value values = 1; }

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn bytes_field(number: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint(number << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn encode_struct(fields: &serde_json::Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, field) in fields {
        let mut entry = Vec::new();
        bytes_field(1, name.as_bytes(), &mut entry);
        bytes_field(2, &encode_value(field), &mut entry);
        bytes_field(1, &entry, &mut out);
    }
    out
}

fn encode_list(items: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        bytes_field(1, &encode_value(item), &mut out);
    }
    out
}

fn encode_value(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match value {
        Value::Null => {
            varint(1 << 3, &mut out);
            varint(0, &mut out);
        }
        Value::Number(n) => {
            varint(2 << 3 | 1, &mut out);
            out.extend_from_slice(&n.as_f64().unwrap_or_default().to_le_bytes());
        }
        Value::String(s) => bytes_field(3, s.as_bytes(), &mut out),
        Value::Bool(b) => {
            varint(4 << 3, &mut out);
            varint(u64::from(*b), &mut out);
        }
        Value::Object(fields) => bytes_field(5, &encode_struct(fields), &mut out),
        Value::Array(items) => bytes_field(6, &encode_list(items), &mut out),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_has_envoys_bytes() {
        let payload = serde_json::json!({"sub": "alice", "exp": 2, "cnf": {"x5t#S256": "abc"}});
        let props: std::collections::HashMap<_, _> = properties("envoy.filters.http.jwt_authn", "p", &payload).into_iter().collect();
        let at = |p: &str| {
            props
                .get(&format!("metadata.filter_metadata.envoy.filters.http.jwt_authn.p{p}"))
                .cloned()
        };
        assert_eq!(at(".cnf.x5t#S256"), Some(b"abc".to_vec()));
        assert_eq!(at(".sub"), Some(b"alice".to_vec()));
        assert_eq!(at(".exp"), Some(2f64.to_le_bytes().to_vec()));
        // {"x5t#S256": "abc"}: entry (key "x5t#S256", value string "abc")
        let cnf = at(".cnf").unwrap();
        assert_eq!(cnf, [&[0x0a, 17, 0x0a, 8][..], b"x5t#S256", &[0x12, 5, 0x1a, 3], b"abc"].concat());
        assert!(!at("").unwrap().is_empty());
        assert_eq!(at(".nope"), None);
    }
}
