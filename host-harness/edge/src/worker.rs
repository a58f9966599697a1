//! Worker threads, as Envoy's: each runs its own event loop (a
//! current-thread runtime), serves the connections given to it, and owns one
//! plugin instance (one VM) that runs every callback of those connections'
//! streams, so a stream keeps its VM from its first callback to its last and
//! no callback crosses a thread. It also ticks the plugin on its timer and
//! performs the HTTP calls the plugin makes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use certgate_host::{
    Action, Connection, Half, HalfHeaders, HarnessError, HttpCall, Plugin, PluginSettings, SharedData, Step, StreamState, Verdict,
};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::sync::mpsc as async_mpsc;

use crate::policy_file::PolicyStore;
use crate::upstream::Upstreams;

/// What the workers of one edge share.
#[derive(Debug)]
pub struct WorkerShared {
    /// The filter module, compiled once.
    pub module: certgate_host::WasmModule,
    /// The policy (plugin configuration) and its version.
    pub policy: Arc<PolicyStore>,
    /// One shared-data store for every worker, as one VM id in Envoy.
    pub shared_data: SharedData,
    /// Named upstreams for `proxy_http_call`.
    pub clusters: HashMap<String, hyper::Uri>,
    /// The plugin's name (Envoy's `name`, the `plugin_name` property).
    pub name: String,
}

/// A connection for a worker: given the worker, its upstream client and a
/// watcher for graceful shutdown, the future that serves it.
pub type Task = Box<dyn FnOnce(Rc<RefCell<Worker>>, Rc<Upstreams>, Watcher) -> std::pin::Pin<Box<dyn Future<Output = ()>>> + Send>;

/// A handle on one worker thread: give it connections; dropping every
/// handle ends it once its connections are done.
#[derive(Debug)]
pub struct WorkerHandle {
    tasks: async_mpsc::UnboundedSender<Task>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The worker thread's own state.
pub struct Worker {
    shared: Arc<WorkerShared>,
    me: Weak<RefCell<Worker>>,
    upstreams: Rc<Upstreams>,
    plugin: Option<Plugin>,
    version: u64,
    last_tick: Instant,
    /// Open streams: who to tell when an HTTP call of theirs came back, and
    /// how many are outstanding.
    streams: HashMap<u32, (async_mpsc::UnboundedSender<()>, usize)>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("version", &self.version)
            .field("streams", &self.streams.len())
            .finish_non_exhaustive()
    }
}

impl WorkerHandle {
    /// Starts a worker thread with its own event loop.
    pub fn spawn(shared: Arc<WorkerShared>, index: usize) -> std::io::Result<WorkerHandle> {
        let (tasks, mut queue) = async_mpsc::unbounded_channel::<Task>();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::Builder::new()
            .name(format!("certgate-worker-{index}"))
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async move {
                    let upstreams = Rc::new(Upstreams::new(shared.clusters.clone()));
                    let worker = Rc::new_cyclic(|me| {
                        RefCell::new(Worker {
                            shared,
                            me: me.clone(),
                            upstreams: Rc::clone(&upstreams),
                            plugin: None,
                            version: 0,
                            last_tick: Instant::now(),
                            streams: HashMap::new(),
                        })
                    });
                    tokio::task::spawn_local(ticker(Rc::downgrade(&worker)));
                    let graceful = GracefulShutdown::new();
                    while let Some(task) = queue.recv().await {
                        tokio::task::spawn_local(task(Rc::clone(&worker), Rc::clone(&upstreams), graceful.watcher()));
                    }
                    // no more connections: let the requests in flight finish
                    tokio::select! {
                        _ = graceful.shutdown() => {}
                        _ = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("shutdown: requests still in flight after 10 s"),
                    }
                });
            })?;
        Ok(WorkerHandle {
            tasks,
            thread: Some(thread),
        })
    }

    /// Gives the worker a connection to serve.
    pub fn serve(&self, task: Task) {
        let _ = self.tasks.send(task);
    }

    /// Waits for the thread to end (after every handle's sender is dropped).
    pub fn join(mut self) {
        let thread = self.thread.take();
        drop(self);
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

/// The plugin's timer, on the worker's own clock.
async fn ticker(worker: Weak<RefCell<Worker>>) {
    loop {
        let wait = match worker.upgrade() {
            Some(w) => w.borrow().until_tick().min(Duration::from_secs(1)),
            None => return,
        };
        tokio::time::sleep(wait).await;
        let Some(w) = worker.upgrade() else { return };
        let mut w = w.borrow_mut();
        if w.until_tick().is_zero() {
            w.tick();
        }
    }
}

impl Worker {
    /// The plugin, started or reconfigured to the current policy. A plugin
    /// that trapped is replaced (its own request was answered 500): Envoy
    /// would keep failing until the VM is reloaded; a local tool recovers.
    fn plugin(&mut self) -> Result<&mut Plugin, HarnessError> {
        let policy = self.shared.policy.current();
        let failed = self.plugin.as_ref().is_none_or(|p| p.failure().is_some());
        if failed {
            self.streams.clear();
            let settings = PluginSettings::new(policy.json.clone())
                .name(&self.shared.name)
                .shared_data(Arc::clone(&self.shared.shared_data))
                .upstreams(self.upstreams.names());
            self.plugin = Some(self.shared.module.start(settings)?);
            self.version = policy.version;
            self.last_tick = Instant::now();
        }
        let plugin = self.plugin.as_mut().ok_or_else(|| HarnessError::Poisoned("no plugin".into()))?;
        if self.version != policy.version {
            plugin.reconfigure(policy.json.clone())?;
            self.version = policy.version;
        }
        Ok(plugin)
    }

    fn until_tick(&self) -> Duration {
        match self.plugin.as_ref().map(Plugin::tick_period_ms) {
            Some(ms) if ms > 0 => Duration::from_millis(u64::from(ms)).saturating_sub(self.last_tick.elapsed()),
            _ => Duration::from_secs(3600),
        }
    }

    fn tick(&mut self) {
        self.last_tick = Instant::now();
        if let Some(plugin) = self.plugin.as_mut() {
            if let Err(e) = plugin.tick() {
                tracing::error!("the filter failed in its timer: {e}");
            }
            forward_logs(plugin);
        }
        self.dispatch_calls();
    }

    /// Opens a stream on this worker's plugin; `events` hears when one of
    /// its HTTP calls came back.
    pub fn open(&mut self, connection: &Connection, events: async_mpsc::UnboundedSender<()>) -> Result<u32, HarnessError> {
        let id = self.plugin()?.open_stream(connection)?;
        self.streams.insert(id, (events, 0));
        Ok(id)
    }

    /// Runs a callback of an open stream; see [`Step`].
    pub fn step(&mut self, id: u32, half: Half, f: impl FnOnce(&mut Plugin) -> Result<Action, HarnessError>) -> Result<Step, HarnessError> {
        let plugin = self.plugin.as_mut().ok_or(HarnessError::NoStream(id))?;
        let action = f(plugin);
        forward_logs(plugin);
        let action = action?;
        self.dispatch_calls();
        Ok(self.settle(id, action, half))
    }

    /// Where the stream stands now (after a callback, or after one of its
    /// calls came back: `action` Pause); see [`Plugin::settle`].
    pub fn settle(&mut self, id: u32, action: Action, half: Half) -> Step {
        let pending = self.streams.get(&id).map_or(0, |(_, n)| *n);
        match self.plugin.as_mut() {
            Some(p) => p.settle(id, action, half, pending),
            None => Step {
                verdict: Verdict::Held,
                body: Vec::new(),
            },
        }
    }

    /// One half's headers and trailers as the filter left them.
    pub fn snapshot(&self, id: u32, half: Half) -> Option<HalfHeaders> {
        self.plugin.as_ref()?.snapshot(id, half)
    }

    /// Ends a stream; its last state is what the access log reads.
    pub fn close(&mut self, id: u32) -> Result<StreamState, HarnessError> {
        self.streams.remove(&id);
        let plugin = self.plugin.as_mut().ok_or(HarnessError::NoStream(id))?;
        let last = plugin.close_stream(id);
        forward_logs(plugin);
        last
    }

    /// Starts the HTTP calls the plugin made, on this worker's loop; each
    /// response comes back to the plugin here.
    fn dispatch_calls(&mut self) {
        let Some(plugin) = self.plugin.as_mut() else { return };
        for call in plugin.take_http_calls() {
            if let Some((_, pending)) = self.streams.get_mut(&call.context_id) {
                *pending += 1;
            }
            let upstreams = Rc::clone(&self.upstreams);
            let me = self.me.clone();
            tokio::task::spawn_local(async move {
                let response = upstreams.call(&call).await;
                if let Some(worker) = me.upgrade() {
                    worker.borrow_mut().call_returned(&call, response);
                }
            });
        }
    }

    fn call_returned(&mut self, call: &HttpCall, response: Option<certgate_host::HttpCallResponse>) {
        let Some(plugin) = self.plugin.as_mut() else { return };
        if let Err(e) = plugin.http_call_response(call, response) {
            tracing::error!("the filter failed on an HTTP call's response: {e}");
        }
        forward_logs(plugin);
        // the response's callback may have made calls of its own
        self.dispatch_calls();
        if let Some((events, pending)) = self.streams.get_mut(&call.context_id) {
            *pending = pending.saturating_sub(1);
            let _ = events.send(());
        }
    }
}

/// The guest's log lines go to the edge's log.
fn forward_logs(plugin: &mut Plugin) {
    for line in plugin.take_logs() {
        tracing::debug!(target: "certgate::filter", "{}", line.message);
    }
}
