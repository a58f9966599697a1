//! The soak command: `cargo bench -p certgate-tests --bench soak -- [SECONDS] [CLIENTS]`
//! (default 300 s, 8 keep-alive clients). Envoy with certgate under a mix of
//! allowed, denied, anonymous and spoofing requests from five identities, the
//! policy swapped by ECDS every 15 s. Prints requests, errors, misdecisions
//! (must be 0) and Envoy's resident memory at start and end. Loopback only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::string_slice)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let seconds = args.first().copied().unwrap_or(300);
    let clients = args.get(1).copied().unwrap_or(8) as usize;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(common::soak::soak(Duration::from_secs(seconds), clients, Duration::from_secs(15)));
    println!("soak: {seconds} s, {clients} clients, {} policy reloads", r.reloads);
    println!("requests      {} ({:.0}/s)", r.requests, r.requests as f64 / seconds as f64);
    println!("errors        {}", r.errors);
    println!("decisions only policy A gives {}, only B gives {}", r.only_a, r.only_b);
    println!("misdecisions  {}", r.misdecisions);
    for m in &r.first_misdecisions {
        println!("  {m}");
    }
    println!("Envoy RSS     {} KiB at start, {} KiB at end ({:+} KiB)", r.rss_start_kib, r.rss_end_kib, r.rss_end_kib as i64 - r.rss_start_kib as i64);
    if r.misdecisions > 0 || r.errors > 0 {
        std::process::exit(1);
    }
}
