//! certgate-test-support: what certgate's test suites share (the backend they
//! send to is `certgate-backend`).
//!
//! - [`book`]: the pages users read (README and the book);
//! - [`crafted`]: client certificates with the names a test needs;
//! - [`scenarios`]: the scenario table model and its checker;
//! - [`loadgen`]: keep-alive mTLS load for the benchmarks;
//! - [`scratch`]: directories removed when dropped.
#![warn(missing_docs)]

pub mod book;
pub mod crafted;
pub mod loadgen;
pub mod scenarios;
pub mod scratch;
