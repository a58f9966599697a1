//! The short soak run in CI: Envoy with certgate under mixed keep-alive load
//! for a few seconds with policy reloads in the middle. No transport error, no
//! misdecision. The long run is `cargo bench -p certgate-tests --bench soak`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::string_slice)]

mod common;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_has_no_error_and_no_misdecision() {
    let r = common::soak::soak(Duration::from_secs(8), 6, Duration::from_secs(2)).await;
    eprintln!("{r:#?}");
    assert_eq!(r.misdecisions, 0, "{:#?}", r.first_misdecisions);
    assert_eq!(r.errors, 0);
    assert!(r.requests > 500, "only {} requests", r.requests);
    assert!(r.reloads >= 3);
    assert!(r.only_a > 0 && r.only_b > 0, "both policies were in force during the run");
    assert!(r.rss_start_kib > 0 && r.rss_end_kib > 0, "Envoy's memory is read from /proc");
}
