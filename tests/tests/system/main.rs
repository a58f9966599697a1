//! certgate's whole-system tests, one binary: each module is a topic (the
//! built `.wasm` in the harness, the edge, Envoy of every version, the CLI,
//! the book, the layout). One binary links wasmtime, rustls and hyper once
//! instead of once per topic. `common` is what the topics share.

mod common;

mod access_log;
mod bad_input;
mod book;
mod bound_tokens;
mod browser;
mod bypass;
mod cli;
mod cli_shells;
mod crates;
mod differential;
mod edge;
mod edge_abuse;
mod enrollment;
mod envoy;
mod envoy_versions;
mod est_abuse;
mod harness_scenarios;
mod layout;
mod manifests;
mod migration;
mod module;
mod module_graph;
mod package;
mod pki;
mod policy_cases;
mod prometheus;
mod prometheus_rules;
mod prometheus_scrape;
mod registration;
mod remote_code;
mod restarts;
mod revocation;
mod rfc9440;
mod soak;
mod spoofing;
mod standard_names;
mod trap;
mod tutorials;
mod wasm_module;
