//! The local reply of a deny: a small JSON body for API clients, a short
//! HTML page for browsers (a request whose `accept` names `text/html`).
//! Either says the reason and the rule, never the certificate.

use crate::policy::DenyReason;

/// A deny as sent to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyReply {
    /// The HTTP status.
    pub status: u16,
    /// `application/json`, or `text/html` for a browser.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

/// The reply for `reason` under `rule`; `accept` is the request's `accept`
/// header (empty if none).
pub fn deny_reply(reason: DenyReason, rule: Option<&str>, policy_status: u16, accept: &str) -> DenyReply {
    let status = reason.status(policy_status);
    if wants_html(accept) {
        DenyReply {
            status,
            content_type: "text/html; charset=utf-8",
            body: html_body(reason, rule, status),
        }
    } else {
        DenyReply {
            status,
            content_type: "application/json",
            body: reply_body(reason, rule),
        }
    }
}

/// Whether a client asked for HTML first, as browsers do for a page
/// (`text/html,application/xhtml+xml,...`); `*/*` alone (curl, requests)
/// gets JSON.
pub fn wants_html(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let media = part.split(';').next().unwrap_or_default().trim();
        media.eq_ignore_ascii_case("text/html") || media.eq_ignore_ascii_case("application/xhtml+xml")
    })
}

/// A rule name as it may appear in a reply: names are checked at
/// configuration time, so this only guards against a future change.
fn safe_rule(rule: Option<&str>) -> Option<&str> {
    rule.filter(|r| r.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
}

/// The JSON body of a deny. Written by hand: reasons are fixed words and
/// rule names are letters, digits, `-`, `_` and `.`.
pub fn reply_body(reason: DenyReason, rule: Option<&str>) -> String {
    let rule = safe_rule(rule).map_or_else(|| "null".to_owned(), |r| format!("\"{r}\""));
    format!("{{\"error\":\"forbidden\",\"reason\":\"{}\",\"rule\":{rule}}}", reason.as_str())
}

/// What a person can do about a deny.
fn advice(reason: DenyReason) -> &'static str {
    match reason {
        DenyReason::CertificateRequired => {
            "This page needs a client certificate. Import yours into the browser (a .p12 file from your administrator), then reload the page and choose it."
        }
        DenyReason::CertificateNotVerified | DenyReason::VerificationUnknown => {
            "Your certificate was not verified by this service. It may come from an authority this service does not trust."
        }
        DenyReason::UnparseableCertificate => "Your certificate could not be read. Ask your administrator for a new one.",
        DenyReason::Revoked => "Your certificate has been revoked. Ask your administrator for a new one.",
        DenyReason::Expired => "Your certificate has expired. Ask your administrator for a new one.",
        DenyReason::NotYetValid => "Your certificate is not valid yet. Check your computer's clock, or wait until it is.",
        DenyReason::IssuerNotAllowed
        | DenyReason::SubjectNotAllowed
        | DenyReason::SanNotAllowed
        | DenyReason::SpiffeNotAllowed
        | DenyReason::IdentityIncomplete => "Your certificate does not give access to this page.",
        DenyReason::NoMatchingRule => "There is nothing for you at this address.",
        DenyReason::BadPath => "The address of this page is malformed.",
        DenyReason::InternalError => "The service could not check your certificate. Try again later.",
        DenyReason::TokenMissing => "This page needs an access token as well as your certificate.",
        DenyReason::TokenUnbound | DenyReason::TokenCertificateMismatch => {
            "Your access token was not issued for this certificate. Ask for a token with the certificate you use."
        }
    }
}

fn html_body(reason: DenyReason, rule: Option<&str>, status: u16) -> String {
    let title = match status {
        400 => "400 Bad Request",
        401 => "401 Unauthorized",
        403 => "403 Forbidden",
        404 => "404 Not Found",
        500 => "500 Internal Server Error",
        _ => "Access denied",
    };
    let rule = safe_rule(rule).map(|r| format!(", rule <code>{r}</code>")).unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body><h1>Access denied</h1>\n<p>{}</p>\n<p><small>status {status}, reason <code>{}</code>{rule}</small></p></body></html>\n",
        advice(reason),
        reason.as_str(),
    )
}

/// `&`, `<`, `>`, `"` and `'` as entities: text from a certificate or a
/// request, put into a page (the test backend's, the enrollment server's).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_clients_get_json() {
        for accept in ["", "*/*", "application/json", "text/plain, */*"] {
            let r = deny_reply(DenyReason::SubjectNotAllowed, Some("admin"), 403, accept);
            assert_eq!(r.content_type, "application/json", "{accept}");
            assert_eq!(r.body, r#"{"error":"forbidden","reason":"subject_not_allowed","rule":"admin"}"#);
        }
    }

    #[test]
    fn browsers_get_a_page_naming_the_reason() {
        let accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        let r = deny_reply(DenyReason::CertificateRequired, Some("app"), 403, accept);
        assert_eq!(r.status, 403);
        assert_eq!(r.content_type, "text/html; charset=utf-8");
        assert!(r.body.contains("<title>403 Forbidden</title>"), "{}", r.body);
        assert!(r.body.contains("needs a client certificate"));
        assert!(r.body.contains("<code>certificate_required</code>, rule <code>app</code>"));
        let bad = deny_reply(DenyReason::BadPath, None, 403, "TEXT/HTML");
        assert_eq!(bad.status, 400);
        assert!(bad.body.contains("<code>bad_path</code></small>"), "{}", bad.body);
    }

    #[test]
    fn a_rule_name_outside_the_checked_alphabet_is_not_echoed() {
        assert_eq!(
            reply_body(DenyReason::Revoked, Some("<x>")),
            r#"{"error":"forbidden","reason":"revoked","rule":null}"#
        );
        assert!(!html_body(DenyReason::Revoked, Some("<x>"), 403).contains("<x>"));
    }

    #[test]
    fn every_markup_character_is_escaped() {
        assert_eq!(
            super::escape_html(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
    }
}
