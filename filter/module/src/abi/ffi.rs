//! Envoy's C ABI for dynamic modules (`source/extensions/dynamic_modules/abi/abi.h`),
//! declared here by us for what certgate calls: the types, the callbacks
//! (Envoy's functions, found by name when Envoy loads the module, so an Envoy
//! that lacks one is refused with a message naming it), Envoy's log, and the
//! safe handles the rest of the module sees ([`Stream`], [`ConfigHandle`]),
//! borrowed for one hook call. It imports nothing of the crate: raw pointers
//! stop here and in `hooks`.

use certgate_wire::Pairs;
use std::ffi::{c_char, c_void};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

// ----------------------------------------------------------------- types ---

/// `envoy_dynamic_module_type_module_buffer`: bytes the module owns, lent to
/// Envoy for one call. Passed by value: two registers, as the older headers'
/// `(ptr, length)` pairs, so both spellings of the ABI read it alike.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleBuffer {
    ptr: *const u8,
    length: usize,
}

impl ModuleBuffer {
    fn of(bytes: &[u8]) -> ModuleBuffer {
        ModuleBuffer {
            ptr: bytes.as_ptr(),
            length: bytes.len(),
        }
    }

    /// A null buffer: `set_header` removes the header.
    const NULL: ModuleBuffer = ModuleBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };
}

/// `envoy_dynamic_module_type_envoy_buffer`: bytes Envoy owns.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    ptr: *const u8,
    length: usize,
}

impl EnvoyBuffer {
    const NULL: EnvoyBuffer = EnvoyBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };

    /// The bytes, copied.
    ///
    /// SAFETY: `ptr` is null or points to `length` readable bytes (Envoy's,
    /// valid until the current hook returns or a header is changed).
    unsafe fn to_vec(self) -> Vec<u8> {
        if self.ptr.is_null() {
            return Vec::new();
        }
        // SAFETY: as the function's contract says.
        unsafe { std::slice::from_raw_parts(self.ptr, self.length) }.to_vec()
    }
}

/// `envoy_dynamic_module_type_module_http_header`.
#[repr(C)]
pub struct ModuleHttpHeader {
    key_ptr: *const u8,
    key_length: usize,
    value_ptr: *const u8,
    value_length: usize,
}

/// `envoy_dynamic_module_type_envoy_http_header`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyHttpHeader {
    key_ptr: *const u8,
    key_length: usize,
    value_ptr: *const u8,
    value_length: usize,
}

/// `envoy_dynamic_module_type_http_filter_envoy_ptr` and `..._config_envoy_ptr`.
pub(super) type EnvoyPtr = *mut c_void;
/// `envoy_dynamic_module_type_http_filter_module_ptr` and `..._config_module_ptr`.
pub(super) type ModulePtr = *const c_void;

/// `envoy_dynamic_module_type_http_header_type_RequestHeader`.
const REQUEST_HEADERS: u32 = 0;
/// `..._on_http_filter_request_headers_status_Continue` (and every other
/// status enum's `Continue`).
pub(super) const CONTINUE: u32 = 0;
/// `..._on_http_filter_request_headers_status_StopIteration`.
pub(super) const STOP_ITERATION: u32 = 1;
/// `envoy_dynamic_module_type_metrics_result_Success`.
const METRICS_SUCCESS: u32 = 0;

/// The attributes certgate reads (`envoy_dynamic_module_type_attribute_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Attribute {
    /// `connection.subject_peer_certificate`
    SubjectPeerCertificate = 33,
    /// `connection.dns_san_peer_certificate` (the first)
    DnsSanPeerCertificate = 35,
    /// `connection.uri_san_peer_certificate` (the first)
    UriSanPeerCertificate = 37,
    /// `connection.sha256_peer_certificate_digest`
    Sha256PeerCertificateDigest = 38,
}

/// `envoy_dynamic_module_type_log_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

// ------------------------------------------------------------- callbacks ---

// The Envoy functions certgate calls, with the signatures of abi.h
// (`envoy_dynamic_module_callback_<name>`).
type LogFn = unsafe extern "C" fn(level: u32, message: ModuleBuffer);
type LogEnabledFn = unsafe extern "C" fn(level: u32) -> bool;
type GetHeadersSizeFn = unsafe extern "C" fn(filter: EnvoyPtr, kind: u32) -> usize;
type GetHeadersFn = unsafe extern "C" fn(filter: EnvoyPtr, kind: u32, out: *mut EnvoyHttpHeader) -> bool;
/// `http_set_header` and `http_add_header`.
type HeaderFn = unsafe extern "C" fn(filter: EnvoyPtr, kind: u32, key: ModuleBuffer, value: ModuleBuffer) -> bool;
type SendResponseFn = unsafe extern "C" fn(
    filter: EnvoyPtr,
    status: u32,
    headers: *mut ModuleHttpHeader,
    headers_size: usize,
    body: ModuleBuffer,
    details: ModuleBuffer,
);
type GetAttributeStringFn = unsafe extern "C" fn(filter: EnvoyPtr, id: u32, out: *mut EnvoyBuffer) -> bool;
type DefineCounterFn = unsafe extern "C" fn(
    config: EnvoyPtr,
    name: ModuleBuffer,
    label_names: *mut ModuleBuffer,
    label_names_length: usize,
    id_out: *mut usize,
) -> u32;
type IncrementCounterFn =
    unsafe extern "C" fn(filter: EnvoyPtr, id: usize, label_values: *mut ModuleBuffer, label_values_length: usize, value: u64) -> u32;
type ClearRouteCacheFn = unsafe extern "C" fn(filter: EnvoyPtr);
type SetFilterStateBytesFn = unsafe extern "C" fn(filter: EnvoyPtr, key: ModuleBuffer, value: ModuleBuffer) -> bool;
type GetMetadataKeysCountFn = unsafe extern "C" fn(filter: EnvoyPtr, source: u32, namespace: ModuleBuffer) -> usize;
type GetMetadataKeysFn = unsafe extern "C" fn(filter: EnvoyPtr, source: u32, namespace: ModuleBuffer, out: *mut EnvoyBuffer) -> bool;
type GetFilterStateBytesFn = unsafe extern "C" fn(filter: EnvoyPtr, key: ModuleBuffer, out: *mut EnvoyBuffer) -> bool;

/// `envoy_dynamic_module_type_metadata_source_Dynamic`: the stream's dynamic metadata.
const METADATA_SOURCE_DYNAMIC: u32 = 0;

/// The callbacks, found once when Envoy loads the module.
struct Callbacks {
    log: LogFn,
    log_enabled: LogEnabledFn,
    get_headers_size: GetHeadersSizeFn,
    get_headers: GetHeadersFn,
    set_header: HeaderFn,
    add_header: HeaderFn,
    send_response: SendResponseFn,
    get_attribute_string: GetAttributeStringFn,
    define_counter: DefineCounterFn,
    increment_counter: IncrementCounterFn,
    set_filter_state_bytes: SetFilterStateBytesFn,
    clear_route_cache: ClearRouteCacheFn,
    get_metadata_keys_count: GetMetadataKeysCountFn,
    get_metadata_keys: GetMetadataKeysFn,
    get_filter_state_bytes: GetFilterStateBytesFn,
}

static CALLBACKS: OnceLock<Callbacks> = OnceLock::new();

/// The address of one of Envoy's exported functions, or the name it lacks.
fn lookup(name: &'static str) -> Result<*mut c_void, &'static str> {
    debug_assert!(name.ends_with('\0'));
    // SAFETY: `name` is a NUL-terminated string that lives forever; dlsym
    // with RTLD_DEFAULT searches the global scope, where Envoy's executable
    // exports its callbacks.
    let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr().cast::<c_char>()) };
    if symbol.is_null() {
        Err(name.trim_end_matches('\0'))
    } else {
        Ok(symbol)
    }
}

macro_rules! callback {
    ($name:literal as $type:ty) => {{
        let symbol = lookup(concat!("envoy_dynamic_module_callback_", $name, "\0"))?;
        // SAFETY: the symbol is Envoy's function of that name, and the field
        // it goes to has that function's signature in abi.h (checked on each
        // Envoy of the tests' matrix). A data pointer and a function pointer
        // have the same size on every platform Envoy runs on.
        unsafe { std::mem::transmute::<*mut c_void, $type>(symbol) }
    }};
}

impl Callbacks {
    fn resolve() -> Result<Callbacks, &'static str> {
        Ok(Callbacks {
            log: callback!("log" as LogFn),
            log_enabled: callback!("log_enabled" as LogEnabledFn),
            get_headers_size: callback!("http_get_headers_size" as GetHeadersSizeFn),
            get_headers: callback!("http_get_headers" as GetHeadersFn),
            set_header: callback!("http_set_header" as HeaderFn),
            add_header: callback!("http_add_header" as HeaderFn),
            send_response: callback!("http_send_response" as SendResponseFn),
            get_attribute_string: callback!("http_filter_get_attribute_string" as GetAttributeStringFn),
            define_counter: callback!("http_filter_config_define_counter" as DefineCounterFn),
            increment_counter: callback!("http_filter_increment_counter" as IncrementCounterFn),
            set_filter_state_bytes: callback!("http_set_filter_state_bytes" as SetFilterStateBytesFn),
            clear_route_cache: callback!("http_clear_route_cache" as ClearRouteCacheFn),
            get_metadata_keys_count: callback!("http_get_metadata_keys_count" as GetMetadataKeysCountFn),
            get_metadata_keys: callback!("http_get_metadata_keys" as GetMetadataKeysFn),
            get_filter_state_bytes: callback!("http_get_filter_state_bytes" as GetFilterStateBytesFn),
        })
    }
}

fn callbacks() -> Option<&'static Callbacks> {
    CALLBACKS.get()
}

/// Writes one line to Envoy's log (component `dynamic_modules`); Envoy
/// drops it below its level (the logger asks [`log_enabled`] first, to skip
/// formatting).
pub fn log(level: LogLevel, message: &str) {
    if let Some(c) = callbacks() {
        // SAFETY: plain values and a buffer that lives across the call.
        unsafe { (c.log)(level as u32, ModuleBuffer::of(message.as_bytes())) };
    }
}

/// Whether Envoy logs `level` for dynamic modules.
pub fn log_enabled(level: LogLevel) -> bool {
    // SAFETY: a plain value.
    callbacks().is_some_and(|c| unsafe { (c.log_enabled)(level as u32) })
}

/// Envoy 1.38 is the first whose HTTP filter ABI is the one declared here
/// (1.36 and 1.37 name some callbacks alike with other arguments); a
/// callback it added marks it.
const SINCE_1_38: &str = "envoy_dynamic_module_callback_http_filter_get_worker_index\0";
/// A callback Envoy 1.40 added: it expects the ABI version `v0.2.0`.
const SINCE_1_40: &str = "envoy_dynamic_module_callback_http_get_timing_info\0";

/// Finds the callbacks; the ABI version to give Envoy, or why this Envoy
/// cannot run the module.
pub(super) fn program_init() -> Result<&'static [u8], String> {
    let callbacks = Callbacks::resolve().map_err(|name| format!("this Envoy has no {name}"))?;
    let _ = CALLBACKS.set(callbacks);
    lookup(SINCE_1_38).map_err(|_| "this Envoy's dynamic module ABI is older than Envoy 1.38's".to_owned())?;
    // 1.38 and 1.39 expect v0.1.0, 1.40 v0.2.0; another string only logs a warning
    Ok(if lookup(SINCE_1_40).is_ok() { b"v0.2.0\0" } else { b"v0.1.0\0" })
}

/// Says why the module refuses this Envoy: in Envoy's log if it has the
/// log callback (every Envoy with dynamic modules has; its arguments are
/// the same in every version), and on standard error.
pub(super) fn refuse(message: &str) {
    eprintln!("{message}");
    let Ok(symbol) = lookup("envoy_dynamic_module_callback_log\0") else {
        return;
    };
    // SAFETY: Envoy's log callback, whose signature is `LogFn` (see `callback!`).
    let log = unsafe { std::mem::transmute::<*mut c_void, LogFn>(symbol) };
    // SAFETY: a plain value and a buffer that lives across the call.
    unsafe { log(LogLevel::Critical as u32, ModuleBuffer::of(message.as_bytes())) };
}

/// Runs a hook's work; a panic in it becomes `fallback`. The panic hook
/// (see `logger`) has already logged it.
pub(super) fn guarded<T>(fallback: T, work: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or(fallback)
}

// ---------------------------------------------------------- safe handles ---

/// One HTTP stream of Envoy, lent to the module for one hook call.
pub struct Stream<'hook> {
    ptr: EnvoyPtr,
    /// Whether a local reply was sent in this hook: a second one is never sent.
    responded: bool,
    /// Whether a request header was changed in this hook.
    changed: bool,
    _hook: PhantomData<&'hook mut ()>,
}

impl std::fmt::Debug for Stream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("responded", &self.responded)
            .field("changed", &self.changed)
            .finish_non_exhaustive()
    }
}

impl Stream<'_> {
    /// The stream of the hook being called.
    ///
    /// SAFETY: `ptr` is the stream Envoy passed to the current hook call,
    /// which the handle must not outlive.
    pub(super) unsafe fn for_hook(ptr: EnvoyPtr) -> Self {
        Stream {
            ptr,
            responded: false,
            changed: false,
            _hook: PhantomData,
        }
    }

    /// Every request header in order, repeated names included; `None` if
    /// Envoy gives none.
    pub fn request_headers(&mut self) -> Option<Pairs> {
        let c = callbacks()?;
        // SAFETY: `ptr` is the stream of the current hook.
        let count = unsafe { (c.get_headers_size)(self.ptr, REQUEST_HEADERS) };
        let mut raw = vec![
            EnvoyHttpHeader {
                key_ptr: std::ptr::null(),
                key_length: 0,
                value_ptr: std::ptr::null(),
                value_length: 0
            };
            count
        ];
        // SAFETY: `raw` has room for the `count` headers Envoy just reported.
        if !unsafe { (c.get_headers)(self.ptr, REQUEST_HEADERS, raw.as_mut_ptr()) } {
            return None;
        }
        Some(
            raw.iter()
                .map(|h| {
                    // SAFETY: Envoy filled each entry with its own header
                    // bytes, valid until a header changes; copied at once.
                    let (key, value) = unsafe {
                        (
                            EnvoyBuffer {
                                ptr: h.key_ptr,
                                length: h.key_length,
                            }
                            .to_vec(),
                            EnvoyBuffer {
                                ptr: h.value_ptr,
                                length: h.value_length,
                            }
                            .to_vec(),
                        )
                    };
                    (String::from_utf8_lossy(&key).into_owned(), value)
                })
                .collect(),
        )
    }

    /// Sets a request header, replacing every value; `None` removes it.
    pub fn set_request_header(&mut self, name: &str, value: Option<&[u8]>) -> bool {
        let value = value.map_or(ModuleBuffer::NULL, ModuleBuffer::of);
        self.changed = true;
        callbacks().is_some_and(|c| {
            // SAFETY: the stream of the current hook; buffers live across the call.
            unsafe { (c.set_header)(self.ptr, REQUEST_HEADERS, ModuleBuffer::of(name.as_bytes()), value) }
        })
    }

    /// Adds a value to a request header.
    pub fn add_request_header(&mut self, name: &str, value: &[u8]) -> bool {
        self.changed = true;
        callbacks().is_some_and(|c| {
            // SAFETY: the stream of the current hook; buffers live across the call.
            unsafe {
                (c.add_header)(
                    self.ptr,
                    REQUEST_HEADERS,
                    ModuleBuffer::of(name.as_bytes()),
                    ModuleBuffer::of(value),
                )
            }
        })
    }

    /// Answers the request locally (once per hook: a second call does nothing
    /// and says so). `details` is the response code details the access log shows.
    pub fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8], details: &str) -> bool {
        let Some(c) = callbacks() else { return false };
        if self.responded {
            return false;
        }
        let mut headers: Vec<ModuleHttpHeader> = headers
            .iter()
            .map(|(k, v)| ModuleHttpHeader {
                key_ptr: k.as_ptr(),
                key_length: k.len(),
                value_ptr: v.as_ptr(),
                value_length: v.len(),
            })
            .collect();
        // SAFETY: the stream of the current hook; the header array and every
        // buffer it points to live across the call, which copies them.
        unsafe {
            (c.send_response)(
                self.ptr,
                u32::from(status),
                headers.as_mut_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                ModuleBuffer::of(details.as_bytes()),
            );
        }
        self.responded = true;
        true
    }

    /// Has Envoy choose the route again if a request header changed: routes
    /// may match on the headers certgate sets (`envoy/nginx-optional.yaml`
    /// routes on `verified`). Envoy does this itself for a Wasm filter.
    pub fn refresh_route(&mut self) {
        if let (true, Some(c)) = (self.changed, callbacks()) {
            // SAFETY: the stream of the current hook.
            unsafe { (c.clear_route_cache)(self.ptr) };
        }
    }

    /// Whether a local reply was sent in this hook.
    pub fn responded(&self) -> bool {
        self.responded
    }

    /// A connection attribute, copied; `None` if Envoy has none.
    pub fn attribute(&mut self, id: Attribute) -> Option<Vec<u8>> {
        let c = callbacks()?;
        let mut out = EnvoyBuffer::NULL;
        // SAFETY: the stream of the current hook; `out` is written by Envoy
        // with a buffer of its own, read at once.
        unsafe { (c.get_attribute_string)(self.ptr, id as u32, &mut out).then(|| out.to_vec()) }
    }

    /// Whether a namespace of the stream's dynamic metadata has `key`
    /// (compared in Envoy's buffers: nothing is copied per request).
    pub fn has_metadata_key(&mut self, namespace: &str, key: &str) -> bool {
        let Some(c) = callbacks() else {
            return false;
        };
        let namespace = ModuleBuffer::of(namespace.as_bytes());
        // SAFETY: the stream of the current hook; `namespace` lives across the call.
        let count = unsafe { (c.get_metadata_keys_count)(self.ptr, METADATA_SOURCE_DYNAMIC, namespace) };
        if count == 0 {
            return false;
        }
        let mut keys = vec![EnvoyBuffer::NULL; count];
        // SAFETY: Envoy writes `count` buffers (the count it just gave, on the
        // same thread, nothing changed between) into `keys`, which has room
        // for them; each is Envoy's, valid for the current hook, and read
        // before this function returns.
        unsafe {
            (c.get_metadata_keys)(self.ptr, METADATA_SOURCE_DYNAMIC, namespace, keys.as_mut_ptr())
                && keys.iter().any(|k| envoy_bytes(*k) == key.as_bytes())
        }
    }

    /// A filter state value of the stream or, through its parent, of its
    /// connection (what `set_filter_state` stored at the handshake), copied;
    /// `None` if there is none under `key`, or it is not bytes.
    pub fn filter_state(&mut self, key: &str) -> Option<Vec<u8>> {
        let c = callbacks()?;
        let mut out = EnvoyBuffer::NULL;
        // SAFETY: the stream of the current hook; `key` lives across the
        // call; `out` is written by Envoy with a buffer of its own, read at once.
        unsafe { (c.get_filter_state_bytes)(self.ptr, ModuleBuffer::of(key.as_bytes()), &mut out).then(|| out.to_vec()) }
    }

    /// Adds to a counter the stream's configuration defined.
    pub fn increment_counter(&mut self, id: usize, by: u64) -> bool {
        callbacks().is_some_and(|c| {
            // SAFETY: the stream of the current hook; no labels (null, 0).
            unsafe { (c.increment_counter)(self.ptr, id, std::ptr::null_mut(), 0, by) == METRICS_SUCCESS }
        })
    }

    /// Sets the stream's filter state `key` (bytes; the access log prints it
    /// with `%FILTER_STATE(key:PLAIN)%`).
    pub fn set_filter_state(&mut self, key: &str, value: &[u8]) -> bool {
        callbacks().is_some_and(|c| {
            // SAFETY: the stream of the current hook; buffers live across the call.
            unsafe { (c.set_filter_state_bytes)(self.ptr, ModuleBuffer::of(key.as_bytes()), ModuleBuffer::of(value)) }
        })
    }
}

/// Envoy's side of one filter configuration, lent while it is created.
pub struct ConfigHandle<'hook> {
    ptr: EnvoyPtr,
    _hook: PhantomData<&'hook mut ()>,
}

impl std::fmt::Debug for ConfigHandle<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigHandle").finish_non_exhaustive()
    }
}

impl ConfigHandle<'_> {
    /// The configuration of the hook being called.
    ///
    /// SAFETY: `ptr` is the configuration Envoy passed to the current hook
    /// call, which the handle must not outlive.
    pub(super) unsafe fn for_hook(ptr: EnvoyPtr) -> Self {
        ConfigHandle { ptr, _hook: PhantomData }
    }

    /// Defines a counter (shown as `dynamicmodulescustom.<name>`); its id,
    /// or `None` if Envoy refused it.
    pub fn define_counter(&mut self, name: &str) -> Option<usize> {
        let c = callbacks()?;
        let mut id = 0;
        // SAFETY: the configuration of the current hook; no labels (null, 0);
        // `id` lives across the call.
        let status = unsafe { (c.define_counter)(self.ptr, ModuleBuffer::of(name.as_bytes()), std::ptr::null_mut(), 0, &mut id) };
        (status == METRICS_SUCCESS).then_some(id)
    }
}

/// The bytes of a buffer Envoy passed to a hook.
///
/// SAFETY: `buffer` is null or Envoy's `length` readable bytes, valid for the
/// current hook call, which the returned slice must not outlive.
pub(super) unsafe fn envoy_bytes<'hook>(buffer: EnvoyBuffer) -> &'hook [u8] {
    if buffer.ptr.is_null() {
        return &[];
    }
    // SAFETY: as the function's contract says.
    unsafe { std::slice::from_raw_parts(buffer.ptr, buffer.length) }
}
