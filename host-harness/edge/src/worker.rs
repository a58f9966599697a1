//! Worker threads, as Envoy's: each owns one plugin instance (one VM) and
//! runs every callback of the connections given to it, one at a time, so a
//! stream keeps its VM from its first callback to its last. Async code hands
//! a worker jobs and awaits their results; the worker also ticks the plugin on
//! its timer and performs the HTTP calls the plugin makes.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use certgate_host::{Action, Connection, HarnessError, HttpCall, LocalResponse, Plugin, PluginSettings, SharedData, StreamState};
use tokio::sync::{mpsc as async_mpsc, oneshot};

use crate::policy_file::PolicyStore;
use crate::upstream::Upstreams;

/// What a callback leaves the stream in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The filter sent a local reply.
    Reply(LocalResponse),
    /// The stream goes on: the callback continued, or the filter resumed it.
    Go,
    /// Paused, waiting for HTTP calls the stream made.
    Wait,
    /// Paused with nothing outstanding: only a later callback can resume it.
    Held,
}

/// Which half of the stream a verdict is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    /// The request (`continue_stream(Request)` resumes it).
    Request,
    /// The response.
    Response,
}

/// One half's headers and trailers, as the filter left them.
pub type HalfHeaders = (Vec<(String, Vec<u8>)>, Vec<(String, Vec<u8>)>);

/// What one job on the worker gives back about a stream: the verdict and,
/// when the stream goes on, what goes on with it, so a request costs as few
/// trips to the worker as possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Where the callback left the stream.
    pub verdict: Verdict,
    /// On [`Verdict::Go`]: the body the filter held, now passed on.
    pub body: Vec<u8>,
    /// On [`Verdict::Go`], when asked for: this half's headers and trailers
    /// as the filter left them.
    pub headers: Option<HalfHeaders>,
}

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// What the workers of one edge share.
#[derive(Debug)]
pub struct WorkerShared {
    /// The filter module, compiled once.
    pub module: certgate_host::WasmModule,
    /// The policy (plugin configuration) and its version.
    pub policy: Arc<PolicyStore>,
    /// One shared-data store for every worker, as one VM id in Envoy.
    pub shared_data: SharedData,
    /// Named upstreams for `proxy_http_call`, and the client that calls them.
    pub upstreams: Arc<Upstreams>,
    /// The plugin's name (Envoy's `name`, the `plugin_name` property).
    pub name: String,
    /// Where the HTTP calls run.
    pub runtime: tokio::runtime::Handle,
}

/// A handle on one worker thread.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    jobs: mpsc::Sender<Job>,
}

/// The worker thread's own state.
pub struct Worker {
    shared: Arc<WorkerShared>,
    jobs: mpsc::Sender<Job>,
    plugin: Option<Plugin>,
    version: u64,
    last_tick: Instant,
    /// Open streams: who to tell when an HTTP call of theirs came back, and
    /// how many are outstanding.
    streams: HashMap<u32, (async_mpsc::UnboundedSender<()>, usize)>,
    stopping: bool,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("version", &self.version).field("streams", &self.streams.len()).finish_non_exhaustive()
    }
}

impl WorkerHandle {
    /// Starts a worker thread.
    pub fn spawn(shared: Arc<WorkerShared>, index: usize) -> std::io::Result<WorkerHandle> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let own = jobs.clone();
        std::thread::Builder::new().name(format!("certgate-worker-{index}")).spawn(move || {
            let mut worker =
                Worker { shared, jobs: own, plugin: None, version: 0, last_tick: Instant::now(), streams: HashMap::new(), stopping: false };
            while !worker.stopping {
                match queue.recv_timeout(worker.until_tick()) {
                    Ok(job) => job(&mut worker),
                    Err(mpsc::RecvTimeoutError::Timeout) => worker.tick(),
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
                worker.dispatch_calls();
            }
        })?;
        Ok(WorkerHandle { jobs })
    }

    /// Runs `f` on the worker thread and returns its result; `None` if the
    /// worker is gone.
    pub async fn run<R: Send + 'static>(&self, f: impl FnOnce(&mut Worker) -> R + Send + 'static) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |w| {
            let _ = tx.send(f(w));
        });
        self.jobs.send(job).ok()?;
        rx.await.ok()
    }

    /// Ends the thread after the jobs already queued.
    pub fn stop(&self) {
        let _ = self.jobs.send(Box::new(|w| w.stopping = true));
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
                .upstreams(self.shared.upstreams.names());
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
    }

    /// Opens a stream on this worker's plugin; `events` hears when one of
    /// its HTTP calls came back.
    pub fn open(&mut self, connection: &Connection, events: async_mpsc::UnboundedSender<()>) -> Result<u32, HarnessError> {
        let id = self.plugin()?.open_stream(connection)?;
        self.streams.insert(id, (events, 0));
        Ok(id)
    }

    /// Runs a callback of an open stream; see [`Step`]. `snapshot`: give the
    /// half's headers if it goes on.
    pub fn step(
        &mut self,
        id: u32,
        half: Half,
        snapshot: bool,
        f: impl FnOnce(&mut Plugin) -> Result<Action, HarnessError>,
    ) -> Result<Step, HarnessError> {
        let plugin = self.plugin.as_mut().ok_or(HarnessError::NoStream(id))?;
        let action = f(plugin);
        forward_logs(plugin);
        let action = action?;
        self.dispatch_calls();
        Ok(self.settle(id, action, half, snapshot))
    }

    /// Where the stream stands now, with what goes on if it does (after a
    /// callback, or after one of its calls came back: `action` Pause).
    pub fn settle(&mut self, id: u32, action: Action, half: Half, snapshot: bool) -> Step {
        let verdict = self.verdict(id, action, half);
        let (mut body, mut headers) = (Vec::new(), None);
        if verdict == Verdict::Go {
            if let Some(state) = self.plugin.as_mut().and_then(|p| p.stream_state_mut(id)) {
                body = match half {
                    Half::Request => std::mem::take(&mut state.request_body),
                    Half::Response => std::mem::take(&mut state.response_body),
                };
                if snapshot {
                    headers = Some(match half {
                        Half::Request => (state.request_headers.clone(), state.request_trailers.clone()),
                        Half::Response => (state.response_headers.clone(), state.response_trailers.clone()),
                    });
                }
            }
        }
        Step { verdict, body, headers }
    }

    fn verdict(&mut self, id: u32, action: Action, half: Half) -> Verdict {
        let pending = self.streams.get(&id).map_or(0, |(_, n)| *n);
        let Some(state) = self.plugin.as_mut().and_then(|p| p.stream_state_mut(id)) else {
            return Verdict::Held;
        };
        if let Some(local) = state.local_response.take() {
            return Verdict::Reply(local);
        }
        let resumed = match half {
            Half::Request => std::mem::take(&mut state.resume_request),
            Half::Response => std::mem::take(&mut state.resume_response),
        };
        if action == Action::Continue || resumed {
            Verdict::Go
        } else if pending > 0 {
            Verdict::Wait
        } else {
            Verdict::Held
        }
    }

    /// One half's headers and trailers as the filter left them.
    pub fn snapshot(&mut self, id: u32, half: Half) -> Option<HalfHeaders> {
        let state = self.plugin.as_mut().and_then(|p| p.stream_state_mut(id))?;
        Some(match half {
            Half::Request => (state.request_headers.clone(), state.request_trailers.clone()),
            Half::Response => (state.response_headers.clone(), state.response_trailers.clone()),
        })
    }

    /// Ends a stream; its last state is what the access log reads.
    pub fn close(&mut self, id: u32) -> Result<StreamState, HarnessError> {
        self.streams.remove(&id);
        let plugin = self.plugin.as_mut().ok_or(HarnessError::NoStream(id))?;
        let last = plugin.close_stream(id);
        forward_logs(plugin);
        last
    }

    /// Starts the HTTP calls the plugin made; each response comes back to
    /// this worker as a job.
    fn dispatch_calls(&mut self) {
        let Some(plugin) = self.plugin.as_mut() else { return };
        for call in plugin.take_http_calls() {
            if let Some((_, pending)) = self.streams.get_mut(&call.context_id) {
                *pending += 1;
            }
            let upstreams = Arc::clone(&self.shared.upstreams);
            let jobs = self.jobs.clone();
            self.shared.runtime.spawn(async move {
                let response = upstreams.call(&call).await;
                let _ = jobs.send(Box::new(move |w: &mut Worker| w.call_returned(&call, response)));
            });
        }
    }

    fn call_returned(&mut self, call: &HttpCall, response: Option<certgate_host::HttpCallResponse>) {
        let Some(plugin) = self.plugin.as_mut() else { return };
        if let Err(e) = plugin.http_call_response(call, response) {
            tracing::error!("the filter failed on an HTTP call's response: {e}");
        }
        forward_logs(plugin);
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
