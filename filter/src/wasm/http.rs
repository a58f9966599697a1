//! One request: proxy-wasm calls behind the [`Host`] trait, then `admit`.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType, Status};

use super::shared::{host_now, Shared};
use crate::admission::{admit, Admission, Host, HostError};
use crate::reply::reply_body;
use crate::headers::encode_value;
use crate::metrics;
use crate::published::{Published, PROPERTY};
use crate::policy::{Credential, DenyReason, Outcome, VERIFICATION_UNKNOWN_ADVICE};

#[derive(Debug)]
pub struct CertgateRequest {
    shared: Option<Rc<RefCell<Shared>>>,
}

impl CertgateRequest {
    pub fn new(shared: Option<Rc<RefCell<Shared>>>) -> CertgateRequest {
        CertgateRequest { shared }
    }
}

fn host_error(call: &'static str) -> impl Fn(Status) -> HostError {
    move |status| HostError { call, status: format!("{status:?}") }
}

/// proxy-wasm as a [`Host`].
struct ProxyWasm;

impl Host for ProxyWasm {
    fn request_headers(&mut self) -> Result<Vec<(String, Vec<u8>)>, HostError> {
        hostcalls::get_map_bytes(MapType::HttpRequestHeaders).map_err(host_error("get_header_map_pairs"))
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        hostcalls::remove_map_value(MapType::HttpRequestHeaders, name).map_err(host_error("remove_header_map_value"))
    }

    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        hostcalls::add_map_value(MapType::HttpRequestHeaders, name, value).map_err(host_error("add_header_map_value"))
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value)).map_err(host_error("replace_header_map_value"))
    }

    fn property(&mut self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_property(path.to_vec()).map_err(host_error("get_property"))
    }

    fn send_local_response(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostError> {
        hostcalls::send_http_response(u32::from(status), headers.to_vec(), Some(body))
            .map_err(host_error("send_local_response"))
    }
}

/// Denies with `internal_error` when the plugin cannot run at all.
fn fail_closed(why: &str) -> Action {
    log::error!("failing closed: {why}");
    let body = reply_body(DenyReason::InternalError, None);
    let _ = hostcalls::send_http_response(500, vec![("content-type", "application/json")], Some(body.as_bytes()));
    Action::Pause
}

fn log_admission(a: &Admission) {
    let rule = a.rule.as_deref().unwrap_or("-");
    // the CN is the client's text: encoded so it cannot forge log lines
    let cn = a.cn.as_deref().map_or_else(|| "-".to_owned(), encode_value);
    match a.outcome {
        Outcome::Allow => log::debug!("allow rule={rule} cn={cn}"),
        Outcome::Deny(reason) => log::info!(
            "{} reason={} rule={rule} cn={cn}{}",
            if a.forwarded { "audit-deny" } else { "deny" },
            reason.as_str(),
            a.identity_error.as_deref().map(|e| format!(" identity_error=\"{}\"", encode_value(e))).unwrap_or_default()
        ),
    }
    // once per certificate, when it is first seen; the counter counts requests
    if a.expiring_soon && a.cache_miss {
        log::warn!("certificate of cn={cn} expires soon");
    }
}

impl Context for CertgateRequest {}

impl HttpContext for CertgateRequest {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(shared) = &self.shared else {
            return fail_closed("no configuration accepted");
        };
        let Ok(mut shared) = shared.try_borrow_mut() else {
            return fail_closed("plugin state busy");
        };
        // the tick's clock (a second at most behind), else the host's
        let Some(now) = shared.now.or_else(host_now) else {
            return fail_closed("no clock");
        };
        let policy = Rc::clone(&shared.policy);
        let admission = admit(&mut ProxyWasm, &policy, &mut shared.cache, now);
        metrics::for_each_increment(&policy, &admission, |index, by| shared.count(index, by));
        log_admission(&admission);
        // the decision as filter state, for access logs and tools
        if let Err(status) = hostcalls::set_property(vec![PROPERTY], Some(&Published::of(&admission).to_bytes())) {
            log::debug!("decision not published: {status:?}");
        }
        if admission.credential == Credential::Failed(DenyReason::VerificationUnknown) && !shared.told_verification_unknown {
            shared.told_verification_unknown = true;
            log::warn!("{VERIFICATION_UNKNOWN_ADVICE}");
        }
        if admission.forwarded {
            Action::Continue
        } else {
            Action::Pause
        }
    }
}
