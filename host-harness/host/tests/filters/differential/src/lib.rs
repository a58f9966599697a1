//! Five small filters in one module, chosen by the plugin configuration,
//! each in the style its job calls for:
//!
//! - `headers`: marks every response, upstream or local (`/teapot` is
//!   answered 418 by the filter itself), in `on_http_response_headers`;
//! - `redact`: buffers both bodies to their end (pausing the body
//!   callbacks), replaces `secret` in the request and `world` in the
//!   response, and drops the response's now wrong `content-length`;
//! - `authz`: asks the `authz` upstream (`GET /status/<x-want>`) and resumes
//!   the request on a 200, or answers 403; a request naming another upstream
//!   (`x-upstream`) learns the call was refused; with `x-second: <code>` a
//!   200 is followed by a second call, made from the first one's callback;
//! - `late`: answers 451 from the response phase when the upstream said 200
//!   to a path under `/late`;
//! - `props`: reports properties and a counter in shared data as response
//!   headers.

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::*;
use proxy_wasm::types::*;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { kind: String::new() }) });
}}

struct Root {
    kind: String,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        self.kind = String::from_utf8(self.get_plugin_configuration().unwrap_or_default()).unwrap_or_default();
        matches!(self.kind.as_str(), "headers" | "redact" | "authz" | "late" | "props")
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(match self.kind.as_str() {
            "headers" => Box::new(Headers),
            "redact" => Box::new(Redact),
            "authz" => Box::new(Authz),
            "late" => Box::new(Late { path: String::new() }),
            _ => Box::new(Props { report: Vec::new() }),
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

fn request_header(name: &str) -> Option<String> {
    hostcalls::get_map_value(MapType::HttpRequestHeaders, name).ok().flatten()
}

struct Headers;

impl Context for Headers {}

impl HttpContext for Headers {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        if request_header(":path").as_deref() == Some("/teapot") {
            let _ = hostcalls::send_http_response(418, vec![("x-local", "yes")], Some(b"short and stout"));
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        let status = hostcalls::get_map_value(MapType::HttpResponseHeaders, ":status")
            .ok()
            .flatten()
            .unwrap_or_default();
        let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, "x-filter-saw-status", &status);
        let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, "x-filter", "headers");
        Action::Continue
    }
}

struct Redact;

impl Context for Redact {}

fn replace_body(buffer: BufferType, size: usize, from: &str, to: &str) {
    let body = hostcalls::get_buffer(buffer, 0, size).ok().flatten().unwrap_or_default();
    let text = String::from_utf8_lossy(&body).replace(from, to);
    let _ = hostcalls::set_buffer(buffer, 0, size, text.as_bytes());
}

impl HttpContext for Redact {
    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        replace_body(BufferType::HttpRequestBody, size, "secret", "******");
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, "content-length", None);
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        replace_body(BufferType::HttpResponseBody, size, "world", "[redacted]");
        Action::Continue
    }
}

struct Authz;

impl Context for Authz {
    fn on_http_call_response(&mut self, _: u32, _: usize, _: usize, _: usize) {
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status").ok().flatten();
        // a second opinion, asked from this callback
        if let (Some("200"), Some(second)) = (status.as_deref(), request_header("x-second")) {
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, "x-second", None);
            let path = format!("/status/{second}");
            let headers = vec![(":method", "GET"), (":path", path.as_str()), (":authority", "authz")];
            if hostcalls::dispatch_http_call("authz", headers, None, vec![], Duration::from_secs(5)).is_ok() {
                return;
            }
        }
        if status.as_deref() == Some("200") {
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, "x-authz", Some("granted"));
            let _ = hostcalls::resume_http_request();
        } else {
            let body = format!("denied by authz ({})", status.as_deref().unwrap_or("no answer"));
            let _ = hostcalls::send_http_response(403, vec![("x-authz", "denied")], Some(body.as_bytes()));
        }
    }
}

impl HttpContext for Authz {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let want = request_header("x-want").unwrap_or_else(|| "200".into());
        let upstream = request_header("x-upstream").unwrap_or_else(|| "authz".into());
        let path = format!("/status/{want}");
        let headers = vec![(":method", "GET"), (":path", path.as_str()), (":authority", "authz")];
        match hostcalls::dispatch_http_call(&upstream, headers, None, vec![], Duration::from_secs(5)) {
            Ok(_) => Action::Pause,
            Err(status) => {
                let body = format!("no call: {status:?}");
                let _ = hostcalls::send_http_response(500, vec![], Some(body.as_bytes()));
                Action::Pause
            }
        }
    }
}

struct Late {
    path: String,
}

impl Context for Late {}

impl HttpContext for Late {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        self.path = request_header(":path").unwrap_or_default();
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        let status = hostcalls::get_map_value(MapType::HttpResponseHeaders, ":status").ok().flatten();
        if self.path.starts_with("/late") && status.as_deref() == Some("200") {
            let _ = hostcalls::send_http_response(451, vec![("x-late", "yes")], Some(b"unavailable for legal reasons"));
            return Action::Pause;
        }
        Action::Continue
    }
}

struct Props {
    report: Vec<(String, String)>,
}

impl Context for Props {}

fn text_property(path: Vec<&str>) -> String {
    match hostcalls::get_property(path) {
        Ok(Some(v)) => String::from_utf8_lossy(&v).into_owned(),
        Ok(None) => "(none)".into(),
        Err(status) => format!("({status:?})"),
    }
}

impl HttpContext for Props {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let mtls = match hostcalls::get_property(vec!["connection", "mtls"]) {
            Ok(Some(v)) => format!("{:?}", v.first().copied()),
            other => format!("{other:?}"),
        };
        // a counter every worker shares, updated with compare-and-swap
        let hits = loop {
            let (value, cas) = hostcalls::get_shared_data("props.hits").unwrap_or((None, None));
            let n = value
                .and_then(|v| String::from_utf8(v).ok())
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
                + 1;
            match hostcalls::set_shared_data("props.hits", Some(n.to_string().as_bytes()), cas) {
                Err(Status::CasMismatch) => continue,
                _ => break n,
            }
        };
        self.report = vec![
            ("x-request-path".into(), text_property(vec!["request", "path"])),
            ("x-request-method".into(), text_property(vec!["request", "method"])),
            ("x-mtls".into(), mtls),
            ("x-hits".into(), hits.to_string()),
        ];
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        for (k, v) in &self.report {
            let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, k, v);
        }
        Action::Continue
    }
}
