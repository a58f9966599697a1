//! The soak run: Envoy with certgate under mixed keep-alive load with policy
//! reloads in the middle. No transport error, no misdecision. CI runs 8 s;
//! the long run is
//! `CERTGATE_SOAK_SECONDS=300 cargo nextest run -p certgate-tests --test system soak:: --no-capture`
//! (it prints requests, errors, misdecisions and Envoy's memory at start and end).

use crate::common;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_has_no_error_and_no_misdecision() {
    let seconds: u64 = std::env::var("CERTGATE_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let reload_every = Duration::from_secs((seconds / 4).clamp(2, 15));
    let r = common::soak::soak("1.40.0", Duration::from_secs(seconds), 6, reload_every).await;
    eprintln!("soak: {seconds} s, {r:#?}");
    eprintln!("Envoy RSS grew {} KiB", r.rss_end_kib as i64 - r.rss_start_kib as i64);
    assert_eq!(r.misdecisions, 0, "{:#?}", r.first_misdecisions);
    assert_eq!(r.errors, 0);
    assert!(r.requests > 500, "only {} requests", r.requests);
    assert!(r.reloads >= 3);
    assert!(r.only_a > 0 && r.only_b > 0, "both policies were in force during the run");
    assert!(r.rss_start_kib > 0 && r.rss_end_kib > 0, "Envoy's memory is read from /proc");
}
