//! The decision as data: what certgate publishes for each request through
//! `proxy_set_property`, so that the proxy's access log can print it (Envoy:
//! `%FILTER_STATE(wasm.certgate:PLAIN)%`) and tools read it without parsing
//! headers or reply bodies, under every header preset.

use serde::{Deserialize, Serialize};

use crate::admission::Admission;
use crate::policy::Outcome;

/// The property's name; Envoy stores it as the filter state `wasm.certgate`.
pub const PROPERTY: &str = "certgate";

/// What became of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Admitted.
    Allow,
    /// Refused with a local reply.
    Deny,
    /// Audit mode: enforce would have refused it; it went on.
    AuditDeny,
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
    /// The record of an admission.
    pub fn of(a: &Admission) -> Published {
        let (decision, reason) = match a.outcome {
            Outcome::Allow => (Verdict::Allow, None),
            Outcome::Deny(r) if a.forwarded => (Verdict::AuditDeny, Some(r.as_str().to_owned())),
            Outcome::Deny(r) => (Verdict::Deny, Some(r.as_str().to_owned())),
        };
        Published { decision, reason, rule: a.rule.clone(), cn: a.cn.clone() }
    }

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
    use crate::policy::{Credential, DenyReason};

    fn admission(outcome: Outcome, forwarded: bool) -> Admission {
        Admission {
            forwarded,
            outcome,
            rule: Some("admin".into()),
            credential: Credential::None,
            cn: Some("bob \"b\"\n".into()),
            expiring_soon: false,
            cache_miss: false,
            stripped: 0,
            identity_error: None,
        }
    }

    #[test]
    fn each_outcome_round_trips_as_json() {
        for (outcome, forwarded, text) in [
            (Outcome::Allow, true, r#"{"decision":"allow","rule":"admin","cn":"bob \"b\"\n"}"#),
            (Outcome::Deny(DenyReason::SubjectNotAllowed), false, r#"{"decision":"deny","reason":"subject_not_allowed","rule":"admin","cn":"bob \"b\"\n"}"#),
            (Outcome::Deny(DenyReason::SubjectNotAllowed), true, r#"{"decision":"audit_deny","reason":"subject_not_allowed","rule":"admin","cn":"bob \"b\"\n"}"#),
        ] {
            let p = Published::of(&admission(outcome, forwarded));
            assert_eq!(String::from_utf8(p.to_bytes()).unwrap(), text);
            assert_eq!(Published::from_bytes(text.as_bytes()), Some(p));
        }
        assert_eq!(Published::from_bytes(b"allow"), None);
    }
}
