//! certgate's SPIFFE ID reader against an independent one, the `spiffe`
//! crate's parser: over the seed corpus (a case for every rule of SPIFFE-ID
//! §2) and 200,000 strings built from the pieces those rules are about. And
//! the comparison can fail: a reader broken on purpose in any one rule is
//! caught.

use certgate_fuzz::{certgate_spiffe, spiffe_disagreement, SpiffeReading};
use certgate_x509::spiffe::{SpiffeId, SpiffeIdError};

/// The seeds: one or more cases for every rule.
fn seeds() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/spiffe");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    out
}

/// Strings made of the pieces SPIFFE IDs and their mistakes are made of,
/// from a fixed seed (the same strings every run).
fn generated(count: usize) -> Vec<String> {
    const SCHEMES: [&str; 8] = [
        "spiffe://",
        "spiffe://",
        "spiffe://",
        "spiffe://",
        "SPIFFE://",
        "spiffe:/",
        "https://",
        "spiffe:",
    ];
    const DOMAINS: [&str; 14] = [
        "example.org",
        "example.org",
        "td",
        "a-b_c.9",
        "",
        "Example.org",
        "exa mple",
        "u@td",
        "td:443",
        "td.",
        "*.td",
        "ex%41",
        "t\u{e4}",
        "td?q",
    ];
    const PIECES: [&str; 24] = [
        "/", "/", "/", "a", "B", "9", ".", "..", "-", "_", "ns", "prod", "%2F", "%", "?", "#", " ", "*", ",", ":", "@", "\\", "\u{f6}", "~",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        // xorshift64*: no dependency, the same sequence everywhere
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    };
    (0..count)
        .map(|_| {
            let mut s = String::from(SCHEMES[next(SCHEMES.len())]);
            s.push_str(DOMAINS[next(DOMAINS.len())]);
            for _ in 0..next(9) {
                s.push_str(PIECES[next(PIECES.len())]);
            }
            s
        })
        .collect()
}

fn corpus() -> Vec<String> {
    let mut all = seeds();
    all.extend(generated(200_000));
    all
}

fn disagreements(corpus: &[String], reader: impl Fn(&str) -> SpiffeReading) -> Vec<String> {
    corpus.iter().filter_map(|uri| spiffe_disagreement(uri, reader(uri))).collect()
}

#[test]
fn certgate_reads_every_spiffe_id_as_the_spiffe_crate_does() {
    let corpus = corpus();
    let valid = corpus.iter().filter(|u| certgate_spiffe(u).is_some()).count();
    eprintln!("{} strings, {valid} valid SPIFFE IDs", corpus.len());
    assert!(valid > 1_000 && valid < corpus.len() / 2, "the corpus has both kinds: {valid}");
    let found = disagreements(&corpus, certgate_spiffe);
    assert!(
        found.is_empty(),
        "{} disagreements, first: {:#?}",
        found.len(),
        &found[..found.len().min(10)]
    );
}

/// A reader that lets one rule's breach through (reads the trust domain and
/// path as a naive split would).
fn lenient(rule: SpiffeIdError) -> impl Fn(&str) -> SpiffeReading {
    move |uri| match SpiffeId::parse(uri) {
        Ok(id) => Some((id.trust_domain.to_owned(), id.path.to_owned())),
        Err(e) if e == rule => {
            let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
            let (td, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
            Some((td.to_owned(), path.to_owned()))
        }
        Err(_) => None,
    }
}

#[test]
fn a_reader_broken_in_any_one_rule_is_caught() {
    use SpiffeIdError::*;
    let corpus = corpus();
    for rule in [
        Scheme,
        NoTrustDomain,
        Userinfo,
        Port,
        TrustDomainCharacter,
        TrustDomainTooLong,
        Query,
        Fragment,
        PercentEncoding,
        EmptySegment,
        DotSegment,
        TrailingSlash,
        PathCharacter,
    ] {
        let found = disagreements(&corpus, lenient(rule));
        assert!(!found.is_empty(), "a reader that lets {rule:?} through is not caught");
        // the seeds alone catch it: every rule has its case there
        assert!(!disagreements(&seeds(), lenient(rule)).is_empty(), "no seed breaks {rule:?}");
    }
}
