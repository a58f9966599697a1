//! certgate-decision: the decision as data. The filter (Wasm and module)
//! publishes one [`Published`] per request as filter state, so the proxy's
//! access log can print it (Envoy: `%FILTER_STATE(wasm.certgate:PLAIN)%`, or
//! `certgate` for the module) and tools read it without parsing headers or
//! reply bodies. The edge's access log, `certgate check` and the tests read it
//! back with [`Published::from_bytes`].
#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

/// The property's name (`proxy_set_property`); Envoy stores it as the filter
/// state `wasm.certgate` (Wasm) or `certgate` (the dynamic module).
pub const PROPERTY: &str = "certgate";

/// What became of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Admitted.
    Allow,
    /// Refused with a local reply.
    Deny,
    /// Audit mode: enforce would have refused it; it went on.
    AuditDeny,
}

impl Verdict {
    /// The verdict as the published JSON, the access logs and the proxy's
    /// log line spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::AuditDeny => "audit_deny",
        }
    }
}

/// One request's decision, published as compact JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// What became of the request.
    pub decision: Verdict,
    /// Why it was (or would have been) refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The rule that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The client's common name, when it presented a usable certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cn: Option<String>,
}

impl Published {
    /// The property's value.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a value back; `None` if it is not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Published> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_verdict_round_trips_as_json_and_is_spelled_one_way() {
        for (decision, reason, text) in [
            (Verdict::Allow, None, r#"{"decision":"allow","rule":"admin","cn":"bob \"b\"\n"}"#),
            (
                Verdict::Deny,
                Some("subject_not_allowed"),
                r#"{"decision":"deny","reason":"subject_not_allowed","rule":"admin","cn":"bob \"b\"\n"}"#,
            ),
            (
                Verdict::AuditDeny,
                Some("subject_not_allowed"),
                r#"{"decision":"audit_deny","reason":"subject_not_allowed","rule":"admin","cn":"bob \"b\"\n"}"#,
            ),
        ] {
            let p = Published {
                decision,
                reason: reason.map(str::to_owned),
                rule: Some("admin".into()),
                cn: Some("bob \"b\"\n".into()),
            };
            assert_eq!(String::from_utf8(p.to_bytes()).unwrap(), text);
            assert_eq!(Published::from_bytes(text.as_bytes()), Some(p));
            assert!(text.contains(&format!("\"{}\"", decision.as_str())));
        }
        assert_eq!(Published::from_bytes(b"allow"), None);
    }
}
