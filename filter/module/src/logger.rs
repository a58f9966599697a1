//! The `log` crate's records, and panics, to Envoy's log (component
//! `dynamic_modules`, at the level Envoy runs it: `--component-log-level
//! dynamic_modules:debug` shows allows).

use crate::abi::ffi::{self as abi, LogLevel};

struct EnvoyLog;

static ENVOY_LOG: EnvoyLog = EnvoyLog;

fn level(level: log::Level) -> LogLevel {
    match level {
        log::Level::Trace => LogLevel::Trace,
        log::Level::Debug => LogLevel::Debug,
        log::Level::Info => LogLevel::Info,
        log::Level::Warn => LogLevel::Warn,
        log::Level::Error => LogLevel::Error,
    }
}

/// Installs the logger, and a panic hook that logs a panic as critical
/// (the hook that caught it then fails its request closed).
pub fn install() {
    if log::set_logger(&ENVOY_LOG).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
        std::panic::set_hook(Box::new(|info| {
            abi::log(LogLevel::Critical, &format!("certgate panicked (the request fails closed): {info}"));
        }));
    }
}

impl log::Log for EnvoyLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        abi::log_enabled(level(metadata.level()))
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            abi::log(level(record.level()), &format!("certgate: {}", record.args()));
        }
    }

    fn flush(&self) {}
}
