//! A compiled proxy-wasm module and the host functions linked to it; starting
//! a plugin instance from it (instantiate, `_initialize`, root context,
//! `proxy_on_vm_start`, `proxy_on_configure`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use wasmtime::{Config, Engine, Extern, Linker, Module, Store};

use crate::abi;
use crate::error::HarnessError;
use crate::plugin::{len_i32, Plugin};
use crate::settings::PluginSettings;
use crate::state::HostState;

/// A compiled module, shared by every plugin instance made from it.
#[derive(Clone)]
pub struct WasmModule {
    engine: Engine,
    module: Module,
    linker: Arc<Linker<HostState>>,
}

impl std::fmt::Debug for WasmModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmModule").finish_non_exhaustive()
    }
}

impl WasmModule {
    /// Compiles a module file.
    pub fn from_file(path: &Path) -> Result<WasmModule, HarnessError> {
        let bytes = std::fs::read(path).map_err(|source| HarnessError::Read {
            path: path.display().to_string(),
            source,
        })?;
        WasmModule::from_bytes(&bytes)
    }

    /// Compiles a module (binary, or text when the `wat` format is given).
    pub fn from_bytes(bytes: &[u8]) -> Result<WasmModule, HarnessError> {
        let mut config = Config::new();
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = Engine::new(&config).map_err(|e| HarnessError::Compile(e.to_string()))?;
        let module = Module::new(&engine, bytes).map_err(|e| HarnessError::Compile(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        abi::add_to_linker(&mut linker, &module).map_err(|e| HarnessError::Instantiate(format!("{e:#}")))?;
        Ok(WasmModule {
            engine,
            module,
            linker: Arc::new(linker),
        })
    }

    /// The same module with the host refusing one `env` import: every call
    /// of it answers `status` and does nothing (as a host may refuse a
    /// call), so a test can show the filter fails closed rather than traps.
    /// `status` is a number: an ABI status (`Status::BadArgument as i32`) or
    /// one the ABI does not define, which a host may answer too.
    pub fn with_refused_import(&self, name: &str, status: i32) -> Result<WasmModule, HarnessError> {
        let mut linker = (*self.linker).clone();
        match abi::unsupported::refuse(&mut linker, &self.module, name, status) {
            Ok(true) => Ok(WasmModule {
                engine: self.engine.clone(),
                module: self.module.clone(),
                linker: Arc::new(linker),
            }),
            Ok(false) => Err(HarnessError::Instantiate(format!(
                "the module does not import env.{name} with a status result"
            ))),
            Err(e) => Err(HarnessError::Instantiate(format!("{e:#}"))),
        }
    }

    /// Starts a plugin: instantiate, `_initialize`, root context,
    /// `proxy_on_vm_start`, `proxy_on_configure`.
    pub fn start(&self, settings: PluginSettings) -> Result<Plugin, HarnessError> {
        let mut state = HostState::new(settings.clock, settings.shared_data);
        state.vm_configuration = settings.vm_configuration;
        state.plugin_configuration = settings.configuration;
        state.log_level = settings.log_level;
        state.upstreams = settings.upstreams;
        state.plugin_properties.insert("plugin_name".into(), settings.name.into_bytes());
        state
            .plugin_properties
            .insert("plugin_root_id".into(), settings.root_id.into_bytes());
        state.plugin_properties.insert("plugin_vm_id".into(), settings.vm_id.into_bytes());
        let mut store = Store::new(&self.engine, state);
        store.call_hook(|mut ctx, hook| {
            if matches!(hook, wasmtime::CallHook::CallingHost) {
                ctx.data_mut().host_calls += 1;
            }
            Ok(())
        });
        let instance = self
            .linker
            .instantiate(&mut store, &self.module)
            .map_err(|e| HarnessError::Instantiate(format!("{e:#}")))?;
        // found once, not on every host call
        store.data_mut().memory = instance.get_memory(&mut store, "memory");
        let allocator = ["proxy_on_memory_allocate", "malloc"]
            .iter()
            .find_map(|name| instance.get_export(&mut store, name).and_then(Extern::into_func));
        store.data_mut().allocator = allocator.and_then(|f| f.typed::<i32, i32>(&store).ok());
        let mut plugin = Plugin {
            store,
            instance,
            root_id: 1,
            next_id: 2,
            failure: None,
            exports: HashMap::new(),
            typed: HashMap::new(),
        };
        let init = ["_initialize", "_start"].into_iter().find(|n| plugin.has_export(n));
        if let Some(init) = init {
            plugin.call::<(), ()>(init, ())?;
        }
        if !plugin.has_export("proxy_on_context_create") {
            return Err(HarnessError::MissingExport("proxy_on_context_create"));
        }
        plugin.call::<(i32, i32), ()>("proxy_on_context_create", (1, 0))?;
        let vm_len = len_i32(plugin.store.data().vm_configuration.len());
        if plugin.has_export("proxy_on_vm_start") && plugin.call::<(i32, i32), i32>("proxy_on_vm_start", (1, vm_len))? == 0 {
            return Err(HarnessError::VmStartRefused {
                logs: plugin.store.data().logs.clone(),
            });
        }
        plugin.configure_current()?;
        Ok(plugin)
    }
}
