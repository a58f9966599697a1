//! The EST server's counters, in Prometheus' text format.

use std::collections::BTreeMap;
use std::sync::Mutex;

use certgate_pki::enroll::audit::{Operation, Outcome};

/// Requests by operation and outcome.
#[derive(Debug, Default)]
pub struct Counters {
    counts: Mutex<BTreeMap<(Operation, Outcome), u64>>,
}

impl Counters {
    /// Counts an answer.
    pub fn count(&self, operation: Operation, outcome: Outcome) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry((operation, outcome)).or_default() += 1;
        }
    }

    /// The counters in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP certgate_est_requests_total EST requests by operation and outcome.\n# TYPE certgate_est_requests_total counter\n",
        );
        if let Ok(counts) = self.counts.lock() {
            for ((op, outcome), n) in counts.iter() {
                out.push_str(&format!(
                    "certgate_est_requests_total{{operation=\"{op}\",outcome=\"{outcome}\"}} {n}\n"
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_labelled_by_the_enums_names() {
        let c = Counters::default();
        c.count(Operation::SimpleEnroll, Outcome::Issued);
        c.count(Operation::SimpleEnroll, Outcome::Issued);
        c.count(Operation::CsrAttrs, Outcome::NoAttributes);
        let text = c.render();
        assert!(
            text.contains("certgate_est_requests_total{operation=\"simpleenroll\",outcome=\"issued\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("{operation=\"csrattrs\",outcome=\"no_attributes\"} 1\n"), "{text}");
    }
}
