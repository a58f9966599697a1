//! The `log` crate's records to the host's log through `abi::log`. Not the
//! SDK's logger: it unwraps the call's status, so a host refusing one log
//! line would kill the VM.

use proxy_wasm::types::LogLevel;

use crate::abi;

struct HostLog;

static HOST_LOG: HostLog = HostLog;

/// Installs the logger at `Info`, and a panic hook that logs a panic (as
/// critical) before the VM aborts.
pub fn install() {
    if log::set_logger(&HOST_LOG).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
        std::panic::set_hook(Box::new(|info| {
            let _ = abi::log(LogLevel::Critical, &info.to_string());
        }));
    }
}

impl log::Log for HostLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        let _ = abi::log(level, &record.args().to_string());
    }

    fn flush(&self) {}
}
