//! How to start a plugin: its configuration and what Envoy would give it.

use crate::state::{Clock, LogLevel, SharedData};

/// How to start a plugin: its configuration and what Envoy would give it.
#[derive(Debug, Clone)]
pub struct PluginSettings {
    /// The plugin configuration (`proxy_on_configure`).
    pub configuration: Vec<u8>,
    /// The VM configuration (`proxy_on_vm_start`).
    pub vm_configuration: Vec<u8>,
    /// The `plugin_name` property.
    pub name: String,
    /// The `plugin_root_id` property.
    pub root_id: String,
    /// The `plugin_vm_id` property.
    pub vm_id: String,
    /// Where the plugin's clock reads.
    pub clock: Clock,
    /// The least level logged.
    pub log_level: LogLevel,
    /// Shared data: give every plugin of one VM id the same (as Envoy does
    /// across its workers).
    pub shared_data: SharedData,
    /// The upstream names `proxy_http_call` may use.
    pub upstreams: Vec<String>,
}

impl PluginSettings {
    /// Settings with this plugin configuration and defaults for the rest.
    pub fn new(configuration: impl Into<Vec<u8>>) -> PluginSettings {
        PluginSettings {
            configuration: configuration.into(),
            vm_configuration: Vec::new(),
            name: "plugin".into(),
            root_id: String::new(),
            vm_id: String::new(),
            clock: Clock::System,
            log_level: LogLevel::Info,
            shared_data: SharedData::default(),
            upstreams: Vec::new(),
        }
    }

    /// With this clock.
    pub fn clock(mut self, clock: Clock) -> PluginSettings {
        self.clock = clock;
        self
    }

    /// With this log level.
    pub fn log_level(mut self, level: LogLevel) -> PluginSettings {
        self.log_level = level;
        self
    }

    /// With this plugin name.
    pub fn name(mut self, name: &str) -> PluginSettings {
        self.name = name.to_owned();
        self
    }

    /// Sharing this shared data (that of the plugin's other workers).
    pub fn shared_data(mut self, shared_data: SharedData) -> PluginSettings {
        self.shared_data = shared_data;
        self
    }

    /// With these upstreams for `proxy_http_call`.
    pub fn upstreams(mut self, upstreams: Vec<String>) -> PluginSettings {
        self.upstreams = upstreams;
        self
    }
}
