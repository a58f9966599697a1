//! hello-filter: adds `x-hello: <configuration>` to requests, answers
//! `/teapot` itself with 418, counts requests, and marks responses.

use proxy_wasm::traits::*;
use proxy_wasm::types::*;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(HelloRoot { greeting: String::new(), counter: 0 })
    });
}}

struct HelloRoot {
    greeting: String,
    counter: u32,
}

impl Context for HelloRoot {}

impl RootContext for HelloRoot {
    fn on_configure(&mut self, _: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        self.greeting = String::from_utf8(config).unwrap_or_default();
        if self.greeting.is_empty() {
            log::error!("hello-filter needs a greeting");
            return false;
        }
        self.counter = proxy_wasm::hostcalls::define_metric(MetricType::Counter, "hello.requests").unwrap_or(0);
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Hello {
            greeting: self.greeting.clone(),
            counter: self.counter,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Hello {
    greeting: String,
    counter: u32,
}

impl Context for Hello {}

impl HttpContext for Hello {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let _ = proxy_wasm::hostcalls::increment_metric(self.counter, 1);
        let path = self.get_http_request_header(":path").unwrap_or_default();
        if path == "/teapot" {
            self.send_http_response(418, vec![("x-filter", "hello")], Some(b"short and stout"));
            return Action::Pause;
        }
        let host = self.get_property(vec!["request", "host"]).unwrap_or_default();
        self.add_http_request_header("x-hello", &self.greeting);
        self.set_http_request_header("x-hello-host", Some(&String::from_utf8_lossy(&host)));
        log::info!("hello {path}");
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        self.set_http_response_header("x-hello-response", Some("1"));
        Action::Continue
    }
}
