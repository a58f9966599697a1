//! The authority's decisions, as tables over a PKI home in a temporary
//! directory: who may enroll by which way in, under which label, and who
//! may renew; each case's answer and the audit line it leaves. No server,
//! no TLS: the wire is the spawned-binary tests' (tests/tests/system).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use certgate_est::authority::{Answer, Authority, Label, QueueLimits, Requester, Settings, Verdict, Ways};
use certgate_pki::enroll::audit::Outcome;
use certgate_pki::enroll::commands;
use certgate_pki::keys::{KeyKind, Passphrase};
use certgate_pki::ops::{self, CaSpec, LeafSpec, Target};
use certgate_pki::profile::{Sans, Subject, Validity};
use certgate_pki::store::Home;

const TOKEN_QUEUE: Ways = Ways {
    tokens: true,
    queue: true,
    renewal: true,
};

/// A home with a root, a client CA under it, and a second root with a
/// client of its own (for "not issued here").
struct Scratch {
    _dir: tempfile::TempDir,
    home: Home,
}

/// A CA valid for `days` from now (a client CA fewer than its root's).
fn ca_spec(name: &str, cn: &str, days: u32) -> CaSpec {
    CaSpec {
        name: name.into(),
        subject: Subject::cn(cn),
        validity: Validity::days(days),
        key: KeyKind::P256,
        serial: None,
        encrypt: None,
        crl_days: 30,
        crl_url: None,
    }
}

fn leaf(name: &str, validity: Validity) -> LeafSpec {
    LeafSpec {
        name: name.into(),
        subject: Subject::cn(name),
        sans: Sans::default(),
        validity,
        key: KeyKind::P256,
        serial: None,
        force: false,
    }
}

fn pass() -> Passphrase {
    Passphrase::default()
}

fn a_home() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path().join("pki"));
    ops::init_root(&home, &ca_spec("root-ca", "Test Root", 365)).unwrap();
    ops::init_client_ca(&home, &ca_spec("client-ca", "Test Client CA", 300), "root-ca", &pass()).unwrap();
    ops::init_root(&home, &ca_spec("other-ca", "Other CA", 365)).unwrap();
    let now = certgate_pki::profile::now();
    ops::client(&home, "client-ca", &pass(), &leaf("alice", Validity::days(30))).unwrap();
    ops::client(&home, "client-ca", &pass(), &leaf("revoked", Validity::days(30))).unwrap();
    ops::revoke(
        &home,
        Some("client-ca"),
        &Target::Name("revoked".into()),
        certgate_pki::index::Reason::KeyCompromise,
    )
    .unwrap();
    let expired = Validity {
        not_before: now - time::Duration::days(20),
        not_after: now - time::Duration::days(2),
    };
    ops::client(&home, "client-ca", &pass(), &leaf("expired", expired)).unwrap();
    ops::client(&home, "other-ca", &pass(), &leaf("stranger", Validity::days(30))).unwrap();
    Scratch { _dir: dir, home }
}

fn settings(ways: Ways) -> Settings {
    Settings {
        ways,
        renewal_grace: Duration::ZERO,
        days: 30,
        retry_after: 7,
        default_ca: "client-ca".into(),
        labels: BTreeMap::new(),
        approve_command: None,
        queue: QueueLimits::default(),
        reserved: vec!["DNS:est-proxy.example.org".into()],
    }
}

fn open(home: &Home, settings: Settings) -> Authority {
    Authority::open(home.clone(), settings, &pass()).unwrap().0
}

/// A CSR (DER) for `cn` and these DNS names, with a new key.
fn csr(cn: &str, dns: &[&str]) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(dns.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    params.serialize_request(&key).unwrap().der().to_vec()
}

fn requester(basic: Option<(&str, &str)>, cert: Option<Vec<u8>>) -> Requester {
    Requester {
        addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        basic: basic.map(|(u, p)| (u.to_owned(), p.to_owned())),
        cert,
        tls: "TLSv1.3",
    }
}

fn token(home: &Home, cn: &str) -> String {
    commands::token(home, "client-ca", Some(cn.into()), &Sans::default(), 1)
        .unwrap()
        .remove(0)
}

/// The certificate `pki client NAME` wrote, DER.
fn issued(home: &Home, name: &str) -> Vec<u8> {
    certgate_pki::store::cert_file(&home.issued(&format!("{name}.pem")))
        .unwrap()
        .remove(0)
}

/// The outcome of an answer, and its sentence when refused.
fn seen(answer: &Answer) -> (Outcome, String) {
    let why = match answer {
        Answer::Refused(_, why) => why.clone(),
        Answer::Failed(cause) => cause.clone(),
        _ => String::new(),
    };
    (answer.outcome(), why)
}

/// The audit log's last line's outcome.
fn last_audited(home: &Home) -> serde_json::Value {
    let text = std::fs::read_to_string(home.dir.join("audit.log")).unwrap();
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

#[test]
fn enrollment_goes_by_the_ways_in_each_label_allows() {
    let h = a_home();
    let home = &h.home;
    let mut s = settings(Ways {
        tokens: true,
        queue: false,
        renewal: false,
    });
    s.labels.insert(
        "robots".into(),
        Label {
            ca: "client-ca".into(),
            ways: Some(Ways {
                tokens: false,
                queue: true,
                renewal: false,
            }),
        },
    );
    let authority = open(home, s);
    let used = token(home, "svc");
    assert!(matches!(
        authority.enroll(None, &csr("svc", &[]), &requester(Some(("u", used.as_str())), None)),
        Answer::Certificates { .. }
    ));

    let svc3 = token(home, "svc3");
    struct Case {
        what: &'static str,
        label: Option<&'static str>,
        csr: Vec<u8>,
        basic: Option<(&'static str, String)>,
        outcome: Outcome,
        says: &'static str,
    }
    let cases = [
        Case {
            what: "a token for its own CN",
            label: None,
            csr: csr("svc2", &[]),
            basic: Some(("svc2", token(home, "svc2"))),
            outcome: Outcome::Issued,
            says: "",
        },
        Case {
            what: "a token used once already",
            label: None,
            csr: csr("svc", &[]),
            basic: Some(("svc", used.clone())),
            outcome: Outcome::Unauthorized,
            says: "used already",
        },
        Case {
            what: "a token nobody made",
            label: None,
            csr: csr("svc", &[]),
            basic: Some(("svc", "cgt_not-a-token-this-ca-made".into())),
            outcome: Outcome::Unauthorized,
            says: "not known to this CA",
        },
        Case {
            what: "a token for another CN",
            label: None,
            csr: csr("admin", &[]),
            basic: Some(("x", svc3.clone())),
            outcome: Outcome::Forbidden,
            says: "the token allows CN \"svc3\"",
        },
        Case {
            what: "a token with a name it does not allow",
            label: None,
            csr: csr("svc4", &["evil.example.org"]),
            basic: Some(("x", token(home, "svc4"))),
            outcome: Outcome::Forbidden,
            says: "evil.example.org",
        },
        Case {
            what: "no token where only tokens are taken",
            label: None,
            csr: csr("walk-in", &[]),
            basic: None,
            outcome: Outcome::Unauthorized,
            says: "needs a one-time token",
        },
        Case {
            what: "no token under a label that queues",
            label: Some("robots"),
            csr: csr("robot-1", &[]),
            basic: None,
            outcome: Outcome::Queued,
            says: "",
        },
        Case {
            what: "a token under a label that takes none",
            label: Some("robots"),
            csr: csr("robot-2", &[]),
            basic: Some(("x", token(home, "robot-2"))),
            outcome: Outcome::Unauthorized,
            says: "does not take enrollment tokens",
        },
        Case {
            what: "a token for the trusted proxy's name",
            label: None,
            csr: csr("svc5", &["est-proxy.example.org"]),
            basic: Some(("x", token(home, "svc5"))),
            outcome: Outcome::Forbidden,
            says: "the trusted proxy's name",
        },
        Case {
            what: "a label that names no CA",
            label: Some("nobody"),
            csr: csr("x", &[]),
            basic: None,
            outcome: Outcome::NotFound,
            says: "no CA label \"nobody\"",
        },
        Case {
            what: "a CSR that is not one",
            label: None,
            csr: b"not a CSR".to_vec(),
            basic: None,
            outcome: Outcome::BadRequest,
            says: "not a PKCS#10 request",
        },
    ];
    for case in cases {
        let who = requester(case.basic.as_ref().map(|(u, p)| (*u, p.as_str())), None);
        let (outcome, why) = seen(&authority.enroll(case.label, &case.csr, &who));
        assert_eq!(outcome, case.outcome, "{}: {why}", case.what);
        assert!(why.contains(case.says), "{}: {why:?} does not say {:?}", case.what, case.says);
        if outcome != Outcome::NotFound {
            // a label that names no CA has no CA to audit under
            assert_eq!(last_audited(home)["outcome"], outcome.name(), "{}: its audit line", case.what);
        }
    }
    // a token refused for the names asked is not used up: the right CSR still gets it
    let who = requester(Some(("svc3", svc3.as_str())), None);
    assert!(matches!(
        authority.enroll(None, &csr("svc3", &[]), &who),
        Answer::Certificates { .. }
    ));
}

#[test]
fn a_queued_request_waits_once_and_its_poll_gets_the_decision() {
    let h = a_home();
    let home = &h.home;
    let authority = open(home, settings(TOKEN_QUEUE));
    let bob = requester(Some(("bob", "")), None);
    let request = csr("bob", &[]);
    let Answer::Pending { id, retry_after, new } = authority.enroll(None, &request, &bob) else {
        panic!("queued")
    };
    assert_eq!((retry_after, new), (7, true));
    assert_eq!(last_audited(home)["request"], id.as_str(), "the audit line names the request");
    let lines = std::fs::read_to_string(home.dir.join("audit.log")).unwrap().lines().count();
    let Answer::Pending { id: again, new, .. } = authority.enroll(None, &request, &bob) else {
        panic!("still queued")
    };
    assert_eq!((again.as_str(), new), (id.as_str(), false), "the same request, no new decision");
    let after = std::fs::read_to_string(home.dir.join("audit.log")).unwrap().lines().count();
    assert_eq!(after, lines, "a poll is not audited again");
    assert_eq!(authority.pending().unwrap().len(), 1);

    authority.decide_as("client-ca", &id, Verdict::Approve, "carol").unwrap();
    assert!(matches!(
        authority.enroll(None, &request, &bob),
        Answer::Certificates { serial: Some(_), .. }
    ));
    let decided = authority.decide_as("client-ca", &id, Verdict::Reject("late"), "carol").unwrap_err();
    assert!(matches!(decided, certgate_pki::PkiError::Conflict(_)), "{decided}");

    let other = csr("mallory", &[]);
    let Answer::Pending { id, .. } = authority.enroll(None, &other, &bob) else {
        panic!("queued")
    };
    authority
        .decide_as("client-ca", &id, Verdict::Reject("not known here"), "carol")
        .unwrap();
    let rejected = authority.enroll(None, &other, &bob);
    assert_eq!(rejected.outcome(), Outcome::Forbidden);
    assert!(
        matches!(&rejected, Answer::Rejected { id: r, reason } if *r == id && reason == "not known here"),
        "{rejected:?}"
    );
    let missing = authority
        .decide_as("client-ca", "0123456789abcdef01234567", Verdict::Approve, "carol")
        .unwrap_err();
    assert!(matches!(missing, certgate_pki::PkiError::NotFound(_)), "{missing}");
}

#[test]
fn renewal_takes_only_a_current_certificate_this_ca_issued_for_the_same_names() {
    let h = a_home();
    let home = &h.home;
    let authority = open(home, settings(TOKEN_QUEUE));
    let mut graceful = settings(TOKEN_QUEUE);
    graceful.renewal_grace = Duration::from_secs(7 * 86_400);
    let with_grace = open(home, graceful);
    let no_renewal = open(
        home,
        settings(Ways {
            tokens: true,
            queue: false,
            renewal: false,
        }),
    );
    let alice = issued(home, "alice");
    // what, by whom, the CN asked, the certificate at TLS, the outcome, what it says
    type Case<'a> = (&'a str, &'a Authority, &'a str, Option<Vec<u8>>, Outcome, &'a str);
    let cases: [Case<'_>; 8] = [
        ("alice renews alice", &authority, "alice", Some(alice.clone()), Outcome::Issued, ""),
        (
            "alice asks for another name",
            &authority,
            "admin",
            Some(alice.clone()),
            Outcome::Forbidden,
            "renewal keeps the certificate's",
        ),
        (
            "no certificate at TLS",
            &authority,
            "alice",
            None,
            Outcome::Unauthorized,
            "current certificate at the TLS handshake",
        ),
        (
            "a revoked certificate",
            &authority,
            "revoked",
            Some(issued(home, "revoked")),
            Outcome::Forbidden,
            "was revoked on",
        ),
        (
            "an expired one, no grace",
            &authority,
            "expired",
            Some(issued(home, "expired")),
            Outcome::Forbidden,
            "no renewal grace is set",
        ),
        (
            "an expired one within the grace",
            &with_grace,
            "expired",
            Some(issued(home, "expired")),
            Outcome::Issued,
            "",
        ),
        (
            "another CA's certificate",
            &authority,
            "stranger",
            Some(issued(home, "stranger")),
            Outcome::Forbidden,
            "did not issue the client certificate",
        ),
        (
            "renewal not allowed",
            &no_renewal,
            "alice",
            Some(alice.clone()),
            Outcome::Forbidden,
            "re-enrollment is not allowed here",
        ),
    ];
    for (what, authority, cn, cert, expect, says) in cases {
        let (outcome, why) = seen(&authority.reenroll(None, &csr(cn, &[]), &requester(None, cert)));
        assert_eq!(outcome, expect, "{what}: {why}");
        assert!(why.contains(says), "{what}: {why:?} does not say {says:?}");
        let line = last_audited(home);
        assert_eq!(
            (line["operation"].as_str(), line["mode"].as_str()),
            (Some("simplereenroll"), Some("renewal")),
            "{what}"
        );
        assert_eq!(line["outcome"], outcome.name(), "{what}");
    }
}

#[test]
fn settings_that_open_no_way_in_or_name_a_bad_label_are_refused() {
    let h = a_home();
    let none = Ways::default();
    let err = Authority::open(h.home.clone(), settings(none), &pass()).unwrap_err();
    assert!(
        matches!(err, certgate_pki::PkiError::Usage(_)) && err.to_string().contains("no way to enroll"),
        "{err}"
    );
    for (label, says) in [
        ("simpleenroll", "not an operation's name"),
        ("a/b", "use letters"),
        ("", "use letters"),
    ] {
        let mut s = settings(TOKEN_QUEUE);
        s.labels.insert(
            label.into(),
            Label {
                ca: "client-ca".into(),
                ways: None,
            },
        );
        let err = Authority::open(h.home.clone(), s, &pass()).unwrap_err();
        assert!(err.to_string().contains(says), "{label:?}: {err}");
    }
    let mut s = settings(TOKEN_QUEUE);
    s.labels.insert(
        "x".into(),
        Label {
            ca: "client-ca".into(),
            ways: Some(none),
        },
    );
    assert!(Authority::open(h.home.clone(), s, &pass())
        .unwrap_err()
        .to_string()
        .contains("label x: it allows no way"));
    let mut s = settings(TOKEN_QUEUE);
    s.default_ca = "no-such-ca".into();
    let err = Authority::open(h.home.clone(), s, &pass()).unwrap_err();
    assert!(matches!(err, certgate_pki::PkiError::NoSuchCa { .. }), "{err}");
}

/// The queue files of a CA.
fn queued_files(home: &Home) -> usize {
    std::fs::read_dir(home.ca_dir("client-ca").join("requests"))
        .map(|d| d.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "json")).count())
        .unwrap_or(0)
}

fn from(addr: [u8; 4], user: Option<&str>) -> Requester {
    Requester {
        addr: IpAddr::V4(Ipv4Addr::from(addr)),
        basic: user.map(|u| (u.to_owned(), String::new())),
        cert: None,
        tls: "TLSv1.3",
    }
}

#[test]
fn the_queue_is_bounded_per_address_and_in_all_and_nothing_is_written_past_a_bound() {
    let h = a_home();
    let home = &h.home;
    let mut s = settings(TOKEN_QUEUE);
    s.queue = QueueLimits {
        per_address: 3,
        total: 5,
        days: 14,
    };
    let authority = open(home, s);
    let first = csr("flood-0", &[]);
    for i in 0..3 {
        let request = if i == 0 { first.clone() } else { csr(&format!("flood-{i}"), &[]) };
        let answer = authority.enroll(None, &request, &from([192, 0, 2, 1], None));
        assert!(matches!(answer, Answer::Pending { new: true, .. }), "{answer:?}");
    }
    let (outcome, why) = seen(&authority.enroll(None, &csr("flood-3", &[]), &from([192, 0, 2, 1], None)));
    assert_eq!(outcome, Outcome::TooManyRequests, "{why}");
    assert!(why.contains("192.0.2.1 has 3 requests waiting"), "{why}");
    assert_eq!(queued_files(home), 3, "nothing written past the address's bound");
    // the same CSR again is a poll, not a new request, at the bound too
    let again = authority.enroll(None, &first, &from([192, 0, 2, 1], None));
    assert!(matches!(again, Answer::Pending { new: false, .. }), "{again:?}");
    // other addresses fill the rest, then the whole queue is full
    for (i, last) in [(4u8, 2), (5, 3), (6, 4)] {
        let answer = authority.enroll(None, &csr(&format!("other-{i}"), &[]), &from([192, 0, 2, last], None));
        let expect = if i < 6 { Outcome::Queued } else { Outcome::Unavailable };
        assert_eq!(answer.outcome(), expect, "{answer:?}");
    }
    assert_eq!(queued_files(home), 5);
    assert_eq!(last_audited(home)["outcome"], "unavailable");
}

#[test]
fn the_basic_user_name_is_what_they_say_not_part_of_the_request() {
    let h = a_home();
    let home = &h.home;
    let authority = open(home, settings(TOKEN_QUEUE));
    let request = csr("dave", &[]);
    let Answer::Pending { id, .. } = authority.enroll(None, &request, &from([192, 0, 2, 9], Some("dave"))) else {
        panic!("queued")
    };
    // another user name on the same CSR from the same address: the same request
    let Answer::Pending { id: same, new, .. } = authority.enroll(None, &request, &from([192, 0, 2, 9], Some("admin"))) else {
        panic!("queued")
    };
    assert_eq!((same.as_str(), new), (id.as_str(), false));
    assert_eq!(queued_files(home), 1);
    let queued = authority.queued_request("client-ca", &id).unwrap().unwrap();
    assert_eq!((queued.requester.as_str(), queued.says.as_deref()), ("192.0.2.9", Some("dave")));
}

#[test]
fn a_request_that_waited_past_its_days_expires_and_is_purged() {
    let h = a_home();
    let home = &h.home;
    let authority = open(home, settings(TOKEN_QUEUE));
    let Answer::Pending { id, .. } = authority.enroll(None, &csr("old", &[]), &from([192, 0, 2, 3], None)) else {
        panic!("queued")
    };
    // received 20 days ago
    let file = home.ca_dir("client-ca").join("requests").join(format!("{id}.json"));
    let mut q: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let long_ago = certgate_pki::profile::now() - time::Duration::days(20);
    q["received"] = certgate_pki::index::timestamp(long_ago).into();
    std::fs::write(&file, q.to_string()).unwrap();
    assert!(authority.pending().unwrap().is_empty(), "an expired request waits for nobody");
    let listed = commands::list(home, None, true, 14).unwrap().join("\n");
    assert!(listed.contains("expired"), "{listed}");
    let purged = commands::purge(home, None, 14).unwrap().join("\n");
    assert!(purged.contains(&format!("removed request {id}")), "{purged}");
    assert_eq!(queued_files(home), 0);
    assert_eq!(last_audited(home)["operation"], "purge");
    assert_eq!(last_audited(home)["request"], id.as_str());
}

#[test]
fn an_unreadable_request_file_is_set_aside_and_the_rest_still_list() {
    let h = a_home();
    let home = &h.home;
    let authority = open(home, settings(TOKEN_QUEUE));
    let Answer::Pending { id, .. } = authority.enroll(None, &csr("kept", &[]), &from([192, 0, 2, 4], None)) else {
        panic!("queued")
    };
    let broken = home.ca_dir("client-ca").join("requests").join("0123456789abcdef01234567.json");
    std::fs::write(&broken, "{\"id\": \"0123").unwrap();
    let pending = authority.pending().unwrap();
    assert_eq!(pending.iter().map(|q| q.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    assert!(!broken.exists(), "set aside");
    assert!(home
        .ca_dir("client-ca")
        .join("requests/unreadable/0123456789abcdef01234567.json")
        .exists());
    std::fs::write(&broken, "truncated").unwrap();
    let listed = commands::list(home, None, false, 14).unwrap().join("\n");
    assert!(
        listed.contains(&id) && listed.contains("set aside") && listed.contains("0123456789abcdef01234567.json"),
        "{listed}"
    );
}

#[test]
fn a_subject_that_hides_or_reorders_what_people_see_is_refused() {
    let h = a_home();
    let authority = open(&h.home, settings(TOKEN_QUEUE));
    for cn in ["alice\u{0}admin", "alice\nadmin", "alice\u{202e}nimda", "x\u{1b}[31m"] {
        let (outcome, why) = seen(&authority.enroll(None, &csr(cn, &[]), &from([192, 0, 2, 5], None)));
        assert_eq!(outcome, Outcome::BadRequest, "{cn:?}: {why}");
        assert!(why.contains("control character or a bidirectional override"), "{why}");
    }
    assert_eq!(queued_files(&h.home), 0);
    // letters of any script are names, not tricks
    let answer = authority.enroll(None, &csr("Zoë Ünïcødé 日本", &[]), &from([192, 0, 2, 5], None));
    assert_eq!(answer.outcome(), Outcome::Queued, "{answer:?}");
    let queued = authority.pending().unwrap().remove(0);
    assert_eq!(queued.subject, "CN=Zoë Ünïcødé 日本", "the queue keeps the name as people read it");
}

#[test]
fn the_approval_command_never_approves_a_request_that_would_make_an_approver() {
    let h = a_home();
    let home = &h.home;
    let policy = h._dir.path().join("approvers.json");
    std::fs::write(
        &policy,
        r#"{"rules":[{"name":"approvers","path_prefix":"/approvals/","issuer_cn":["Test Client CA"],"subject_cn":["carol"]}]}"#,
    )
    .unwrap();
    let mut s = settings(TOKEN_QUEUE);
    s.approve_command = Some(vec!["true".into()]);
    let approvers = certgate_est::authority::approvers::Approvers::load(&policy).unwrap();
    let authority = open(home, s).with_approvers(Some(approvers));
    let (outcome, _) = seen(&authority.enroll(None, &csr("robot", &[]), &from([192, 0, 2, 6], None)));
    assert_eq!(outcome, Outcome::Issued, "the command approves a request that makes no approver");
    let (outcome, _) = seen(&authority.enroll(None, &csr("carol", &[]), &from([192, 0, 2, 6], None)));
    assert_eq!(outcome, Outcome::Queued, "carol would be an approver: left for an operator");
}

#[test]
fn nothing_is_issued_while_the_audit_log_cannot_be_written() {
    let h = a_home();
    let home = &h.home;
    let authority = open(home, settings(TOKEN_QUEUE));
    let lines_before = std::fs::read_to_string(home.ca_dir("client-ca").join("index.txt")).unwrap();
    // the audit log is replaced by something no line can be appended to
    let audit = home.dir.join("audit.log");
    std::fs::remove_file(&audit).unwrap();
    std::fs::create_dir(&audit).unwrap();
    let token = {
        // made while the log could be written; what it buys must wait now
        std::fs::remove_dir(&audit).unwrap();
        let t = token(home, "svc");
        std::fs::remove_file(&audit).unwrap();
        std::fs::create_dir(&audit).unwrap();
        t
    };
    let (outcome, why) = seen(&authority.enroll(None, &csr("svc", &[]), &requester(Some(("svc", token.as_str())), None)));
    assert_eq!(outcome, Outcome::Unavailable, "{why}");
    assert!(why.contains("audit log cannot be written"), "{why}");
    let lines_after = std::fs::read_to_string(home.ca_dir("client-ca").join("index.txt")).unwrap();
    assert_eq!(lines_before, lines_after, "nothing issued");
    // the command line refuses as well, naming the file
    let err = commands::token(home, "client-ca", Some("other".into()), &Sans::default(), 1).unwrap_err();
    assert!(err.to_string().contains("audit.log"), "{err}");
    // once it can be written again, the same token works
    std::fs::remove_dir(&audit).unwrap();
    let answer = authority.enroll(None, &csr("svc", &[]), &requester(Some(("svc", token.as_str())), None));
    assert!(matches!(answer, Answer::Certificates { .. }), "{answer:?}");
}
