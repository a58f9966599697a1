//! The Prometheus rules operators load (`deploy/prometheus/`): promtool
//! checks them and runs their unit tests (series named as each build's
//! Envoy names them), and every certgate series they read is one the
//! filter defines, so a renamed counter cannot leave a rule reading nothing.

use crate::common;

use std::collections::BTreeSet;
use std::process::Command;

use certgate_core::metrics;
use common::repo;

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo().join("deploy/prometheus"))
        .output()
        .unwrap_or_else(|e| panic!("promtool: {e} (./dev test installs Debian's prometheus)"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn promtool_checks_the_rules_and_their_tests_pass() {
    let checked = promtool(&["check", "rules", "certgate.rules.yml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules", "certgate.rules.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// The `certgate_..._total` names in a text, alternations spelled out.
fn certgate_series(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("certgate_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "_()|".contains(*c))
            .collect();
        // `certgate_invalid_(a|b)_total` → each
        match (name.find('('), name.find(')')) {
            (Some(open), Some(close)) if close > open => {
                for alt in name[open + 1..close].split('|') {
                    out.insert(format!("{}{alt}{}", &name[..open], &name[close + 1..]));
                }
            }
            _ => {
                out.insert(name.split('|').next().unwrap().to_owned());
            }
        }
    }
    out.into_iter().filter(|n| n.ends_with("_total")).collect()
}

#[test]
fn every_series_the_rules_read_is_one_certgate_defines() {
    let rules = std::fs::read_to_string(repo().join("deploy/prometheus/certgate.rules.yml")).unwrap();
    let read = certgate_series(&rules);
    let defined: BTreeSet<String> = [
        metrics::REQUESTS,
        metrics::EXPIRING_SOON,
        metrics::CACHE_MISSES,
        metrics::SPOOFED_HEADERS,
        metrics::INVALID_SPIFFE_IDS,
        metrics::INVALID_URI_SANS,
        metrics::INVALID_DNS_SANS,
        metrics::INVALID_EMAIL_SANS,
        // the dynamic module's own (filter/module/src/filter.rs)
        "certgate_panics_total",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert!(read.len() >= 6, "{read:?}");
    let unknown: Vec<&String> = read.difference(&defined).collect();
    assert!(unknown.is_empty(), "the rules read series certgate does not define: {unknown:?}");
    // and each under both builds' names
    for name in [
        metrics::REQUESTS,
        metrics::EXPIRING_SOON,
        metrics::INVALID_SPIFFE_IDS,
        metrics::INVALID_URI_SANS,
        metrics::INVALID_DNS_SANS,
        metrics::INVALID_EMAIL_SANS,
    ] {
        assert!(
            rules.contains(&format!("\"{name}|envoy_dynamicmodulescustom_{name}\"")),
            "{name} for both builds"
        );
    }
}
