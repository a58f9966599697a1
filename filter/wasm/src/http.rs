//! One request: proxy-wasm calls behind the [`Host`] trait, then `admit`.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};

use crate::abi::{self, CallError};
use crate::shared::{host_now, Shared};
use certgate_core::admission::{admit, send_failed_closed};
use certgate_core::host::{Host, HostError};
use certgate_core::host::{Verified, JWT_AUTHN_NAMESPACE};
use certgate_core::metrics;
use certgate_core::policy::{Credential, DenyReason, VERIFICATION_UNKNOWN_ADVICE};
use certgate_decision::PROPERTY;
use certgate_wire::Pairs;

#[derive(Debug)]
pub struct CertgateRequest {
    shared: Option<Rc<RefCell<Shared>>>,
}

impl CertgateRequest {
    pub fn new(shared: Option<Rc<RefCell<Shared>>>) -> CertgateRequest {
        CertgateRequest { shared }
    }
}

fn call_error(call: &'static str) -> impl Fn(CallError) -> HostError {
    move |e| HostError {
        call,
        status: e.to_string(),
    }
}

/// proxy-wasm as a [`Host`].
struct ProxyWasm;

impl Host for ProxyWasm {
    fn request_headers(&mut self) -> Result<Pairs, HostError> {
        abi::get_header_map(MapType::HttpRequestHeaders).map_err(call_error("get_header_map_pairs"))
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        abi::remove_header(MapType::HttpRequestHeaders, name).map_err(call_error("remove_header_map_value"))
    }

    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        abi::add_header(MapType::HttpRequestHeaders, name, value).map_err(call_error("add_header_map_value"))
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        abi::replace_header(MapType::HttpRequestHeaders, name, value).map_err(call_error("replace_header_map_value"))
    }

    fn property(&mut self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        abi::get_property(path).map_err(call_error("get_property"))
    }

    fn verified_token(&mut self, key: &str) -> Result<Verified, HostError> {
        // Envoy walks the metadata Struct by path and returns a string leaf as
        // its bytes; a missing field is NotFound or empty.
        let payload = ["metadata", "filter_metadata", JWT_AUTHN_NAMESPACE, key];
        match abi::get_property(&[&payload[..], &["cnf", "x5t#S256"]].concat()) {
            Ok(Some(claim)) if !claim.is_empty() => return Ok(Verified::Thumbprint(Some(claim))),
            Ok(_) => {}
            // a claim Envoy cannot give as bytes (null, or an object holding
            // one) is not a thumbprint: as the module reads it, its JSON text
            Err(CallError::Status(abi::SERIALIZATION_FAILURE)) => return Ok(Verified::Thumbprint(Some(b"null".to_vec()))),
            Err(e) => return Err(call_error("get_property")(e)),
        }
        // Is there a payload at all? Envoy returns it as a serialized Struct,
        // or fails to serialize one holding a JSON null: either way it is there.
        match abi::get_property(&payload) {
            Ok(Some(bytes)) if !bytes.is_empty() => Ok(Verified::Thumbprint(None)),
            Ok(_) => Ok(Verified::Nothing),
            Err(CallError::Status(abi::SERIALIZATION_FAILURE)) => Ok(Verified::Thumbprint(None)),
            Err(e) => Err(call_error("get_property")(e)),
        }
    }

    fn send_local_response(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostError> {
        abi::send_local_response(status, headers, body).map_err(call_error("send_local_response"))
    }
}

/// Denies with `internal_error` when the plugin cannot run at all.
fn fail_closed(why: &str) -> Action {
    log::error!("failing closed: {why}");
    if let Err(e) = send_failed_closed(&mut ProxyWasm, 500) {
        log::error!("the fail-closed reply was not sent: {e}");
    }
    Action::Pause
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
        admission.log();
        // the decision as filter state, for access logs and tools
        if let Err(e) = abi::set_property(&[PROPERTY], &admission.published().to_bytes()) {
            log::debug!("decision not published: {e}");
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
