//! Enrollment over EST (RFC 7030, with RFC 8951's clarifications): the
//! server `certgate pki serve` over the PKI home that `certgate pki` keeps,
//! and the client `certgate pki enroll` / `pki reenroll`.
//!
//! The modules: `wire` (base64, certs-only PKCS#7 and HTTP Basic, pure), `authority`
//! (who may enroll and what gets signed, over `certgate_pki::enroll`; one
//! job a file), `server` (TLS, the listeners and the routes), `web` (the
//! pages for people: registration, approvals, who am I), `client` (`pki
//! enroll`, `pki reenroll`) and `cli` (the arguments).
//! Left out of RFC 7030: `serverkeygen` (certgate never holds a client's
//! key), `fullcmc`, and §3.5's tls-unique binding, which TLS 1.3 lacks.
#![warn(missing_docs)]

pub mod authority;
#[allow(missing_docs)] // clap turns doc comments into --help text: every argument has one
pub mod cli;
pub mod client;
pub mod pem_files;
pub mod server;
pub mod web;
pub mod wire;
