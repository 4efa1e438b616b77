//! One plugin call: a fresh `Store` with an empty WASI context, the
//! plugin's limits, its configuration and "today"; the host imports; and
//! turning a trap into a [`Failure`] that names the plugin.
//!
//! **Architecture Invariant:** a `Store` serves exactly one call (one batch)
//! and is dropped afterwards, so a trapped instance is never entered again.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamResult, subscribe};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::api::v0_1;
use crate::api::v0_2 as newest;
use crate::error::{Error, Failure, PluginRef};
use crate::limits::Limits;
use crate::log::{CallObserver, CallStats, LogLevel, LogLine, LogSink, LogSource};

/// The most lines of `host.log` kept per call.
const MAX_LOG_LINES: usize = 1000;
/// The most bytes of one log line.
const MAX_LINE_BYTES: usize = 4096;

/// The data every store carries.
pub(crate) struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: PeakLimits,
    plugin: Arc<str>,
    config: Arc<BTreeMap<String, String>>,
    today: NaiveDate,
    log: Arc<Mutex<LogBudget>>,
    time: PluginTime,
}

/// The monotonic clock a plugin sees: real time since its call began, plus
/// every sleep it asked for. A sleep never blocks the host: the clock's
/// pollables are ready at once and the sleep is added to the plugin's time.
/// A plugin whose time passes its deadline fails then, with a timeout, as
/// one that loops does when the epoch deadline interrupts it.
struct PluginTime {
    started: std::time::Instant,
    slept: u64,
    deadline: u64,
}

impl PluginTime {
    fn now(&self) -> u64 {
        let real = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        real.saturating_add(self.slept)
    }
}

/// The `wasi:clocks/monotonic-clock` the sandbox links in place of the
/// system's: [`PluginTime`].
pub(crate) struct PluginClock;

impl HasData for PluginClock {
    type Data<'a> = ClockView<'a>;
}

/// What the clock's functions reach of a store.
pub(crate) struct ClockView<'a> {
    table: &'a mut ResourceTable,
    time: &'a mut PluginTime,
}

impl StoreState {
    /// The clock's view of this store, for the linker.
    pub(crate) fn clock(&mut self) -> ClockView<'_> {
        ClockView {
            table: &mut self.table,
            time: &mut self.time,
        }
    }
}

/// A sleep that is over as soon as it is asked for.
struct Awake;

#[wasmtime_wasi::async_trait]
impl Pollable for Awake {
    async fn ready(&mut self) {}
}

impl ClockView<'_> {
    fn sleep(&mut self, nanos: u64) -> wasmtime::Result<Resource<DynPollable>> {
        self.time.slept = self.time.slept.saturating_add(nanos);
        if self.time.now() >= self.time.deadline {
            // The same trap as the epoch deadline: a timeout.
            return Err(wasmtime::Error::new(Trap::Interrupt));
        }
        let awake = self.table.push(Awake)?;
        subscribe(self.table, awake)
    }
}

impl monotonic_clock::Host for ClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(self.time.now())
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(1)
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let now = self.time.now();
        self.sleep(when.saturating_sub(now))
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.sleep(duration)
    }
}

/// How much log a call may still write, and what it wrote.
struct LogBudget {
    left: usize,
    lines: usize,
    dropped: usize,
    sink: LogSink,
}

impl LogBudget {
    /// Takes up to `want` bytes from the budget; returns how many it got.
    fn take(&mut self, want: usize) -> usize {
        let got = want.min(self.left);
        self.left -= got;
        self.dropped += want - got;
        got
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl newest::scorer::lectern::crm::types::Host for StoreState {}

/// The host interface, for the newest contract.
impl newest::scorer::lectern::crm::host::Host for StoreState {
    fn log(&mut self, level: newest::LogLevel, message: String) {
        let mut budget = self.log.lock().unwrap();
        if budget.lines >= MAX_LOG_LINES {
            budget.dropped += message.len();
            return;
        }
        let want = message.len().min(MAX_LINE_BYTES);
        budget.dropped += message.len() - want;
        let got = budget.take(want);
        if got == 0 {
            return;
        }
        budget.lines += 1;
        let line = LogLine {
            plugin: self.plugin.to_string(),
            level: match level {
                newest::LogLevel::Debug => LogLevel::Debug,
                newest::LogLevel::Info => LogLevel::Info,
                newest::LogLevel::Warn => LogLevel::Warn,
                newest::LogLevel::Error => LogLevel::Error,
            },
            source: LogSource::Log,
            // One line per call of `log`: a newline cannot forge another.
            message: crate::text::neutralise(truncate(&message, got), MAX_LINE_BYTES),
        };
        (budget.sink)(&line);
    }

    fn config(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }

    fn today(&mut self) -> newest::wit::Date {
        newest::date(self.today)
    }
}

impl v0_1::scorer::lectern::crm::types::Host for StoreState {}

/// 0.1.0's host interface: each call forwards to the newest.
impl v0_1::scorer::lectern::crm::host::Host for StoreState {
    fn log(&mut self, level: v0_1::LogLevel, message: String) {
        let level = match level {
            v0_1::LogLevel::Debug => newest::LogLevel::Debug,
            v0_1::LogLevel::Info => newest::LogLevel::Info,
            v0_1::LogLevel::Warn => newest::LogLevel::Warn,
            v0_1::LogLevel::Error => newest::LogLevel::Error,
        };
        newest::scorer::lectern::crm::host::Host::log(self, level, message)
    }

    fn config(&mut self, key: String) -> Option<String> {
        newest::scorer::lectern::crm::host::Host::config(self, key)
    }

    fn today(&mut self) -> v0_1::wit::Date {
        v0_1::date(self.today)
    }
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A guest's stdout or stderr: kept up to the call's log budget, the rest
/// counted and dropped. Writes never fail, so a chatty guest is not killed
/// for printing.
#[derive(Clone)]
struct CappedPipe {
    buf: Arc<Mutex<Vec<u8>>>,
    budget: Arc<Mutex<LogBudget>>,
}

impl CappedPipe {
    fn new(budget: Arc<Mutex<LogBudget>>) -> Self {
        CappedPipe {
            buf: Arc::default(),
            budget,
        }
    }

    fn contents(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }

    fn push(&self, bytes: &[u8]) {
        let got = self.budget.lock().unwrap().take(bytes.len());
        self.buf.lock().unwrap().extend_from_slice(&bytes[..got]);
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// What one call needs to know about its plugin.
pub(crate) struct CallSetup<'a> {
    pub(crate) engine: &'a wasmtime::Engine,
    pub(crate) plugin: &'a PluginRef,
    pub(crate) limits: &'a Limits,
    pub(crate) epoch_tick: std::time::Duration,
    pub(crate) config: &'a Arc<BTreeMap<String, String>>,
    pub(crate) sink: &'a LogSink,
    pub(crate) observer: Option<&'a CallObserver>,
    pub(crate) today: NaiveDate,
}

/// The store's limits, remembering the most linear memory the instance
/// held at once, over all its memories.
struct PeakLimits {
    inner: StoreLimits,
    held: usize,
    peak: usize,
}

impl wasmtime::ResourceLimiter for PeakLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if allowed {
            self.held = self.held.saturating_add(desired.saturating_sub(current));
            self.peak = self.peak.max(self.held);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

impl CallSetup<'_> {
    /// Runs `f` in a fresh store under the plugin's limits, and turns any
    /// trap into a [`Failure`] that names the plugin.
    pub(crate) fn run<R>(
        &self,
        f: impl FnOnce(&mut Store<StoreState>) -> wasmtime::Result<R>,
    ) -> Result<R, Error> {
        let budget = Arc::new(Mutex::new(LogBudget {
            left: self.limits.log_bytes,
            lines: 0,
            dropped: 0,
            sink: self.sink.clone(),
        }));
        let stdout = CappedPipe::new(budget.clone());
        let stderr = CappedPipe::new(budget.clone());
        // Nothing but what std needs to link: no preopens, no environment, no
        // arguments, no network, and a wall clock stuck at the epoch so that
        // plugins use `today` and stay reproducible.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(FrozenClock)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = StoreState {
            wasi,
            table: ResourceTable::new(),
            limits: PeakLimits {
                inner: StoreLimitsBuilder::new()
                    .memory_size(self.limits.memory_bytes as usize)
                    .trap_on_grow_failure(true)
                    .build(),
                held: 0,
                peak: 0,
            },
            plugin: Arc::from(self.plugin.id.as_str()),
            config: self.config.clone(),
            today: self.today,
            log: budget.clone(),
            time: PluginTime {
                started: std::time::Instant::now(),
                slept: 0,
                deadline: u64::try_from(self.limits.deadline.as_nanos()).unwrap_or(u64::MAX),
            },
        };
        let mut store = Store::new(self.engine, state);
        store.limiter(|s| &mut s.limits);
        let ticks = self
            .limits
            .deadline
            .as_nanos()
            .div_ceil(self.epoch_tick.as_nanos().max(1));
        store.set_epoch_deadline(ticks as u64);
        store.epoch_deadline_trap();
        // Only a plugin with a budget runs on the metering engine.
        if let Some(fuel) = self.limits.fuel {
            store
                .set_fuel(fuel)
                .map_err(|e| Error::config(anyhow::anyhow!(e)))?;
        }

        let started = std::time::Instant::now();
        let result = f(&mut store);
        if let Some(observe) = self.observer {
            let fuel_used = self
                .limits
                .fuel
                .map(|budget| budget.saturating_sub(store.get_fuel().unwrap_or(0)));
            observe(&CallStats {
                plugin: self.plugin.id.clone(),
                wall: started.elapsed(),
                peak_memory_bytes: store.data().limits.peak as u64,
                fuel_used,
                ok: result.is_ok(),
            });
        }
        drop(store);

        let stderr_text = stderr.contents();
        self.flush_output(&stdout.contents(), LogSource::Stdout, LogLevel::Info);
        self.flush_output(&stderr_text, LogSource::Stderr, LogLevel::Warn);
        let dropped = budget.lock().unwrap().dropped;
        if dropped > 0 {
            (self.sink)(&LogLine {
                plugin: self.plugin.id.clone(),
                level: LogLevel::Warn,
                source: LogSource::Host,
                message: format!(
                    "dropped {dropped} bytes of log and output over the cap of {} bytes per call",
                    self.limits.log_bytes
                ),
            });
        }
        result.map_err(|e| Error::Plugin {
            plugin: self.plugin.clone(),
            failure: classify(&e, self.limits, &stderr_text),
        })
    }

    fn flush_output(&self, text: &str, source: LogSource, level: LogLevel) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            (self.sink)(&LogLine {
                plugin: self.plugin.id.clone(),
                level,
                source,
                message: crate::text::neutralise(line, MAX_LINE_BYTES),
            });
        }
    }
}

/// Names the way a call died.
fn classify(e: &wasmtime::Error, limits: &Limits, stderr: &str) -> Failure {
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => {
            return Failure::Timeout {
                deadline: limits.deadline,
            };
        }
        Some(Trap::OutOfFuel) => {
            return Failure::OutOfFuel {
                fuel: limits.fuel.unwrap_or_default(),
            };
        }
        Some(Trap::StackOverflow) => return Failure::StackOverflow,
        // Rust, Python and JavaScript guests all end a panic or an abort here,
        // after printing why on stderr.
        Some(Trap::UnreachableCodeReached) => {
            return Failure::Panic {
                message: panic_message(stderr),
            };
        }
        _ => {}
    }
    let text = format!("{e:?}");
    // `trap_on_grow_failure` raises this, and it is not a `Trap` variant.
    if text.contains("forcing trap when growing memory") {
        return Failure::OutOfMemory {
            limit: limits.memory_bytes,
        };
    }
    Failure::Trap {
        message: format!("{e:#}"),
    }
}

/// The lines of stderr that say why, without the hints about backtraces.
fn panic_message(stderr: &str) -> String {
    let text = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("note:"))
        .collect::<Vec<_>>()
        .join(" ");
    crate::text::neutralise(&text, crate::text::MAX_ERROR_BYTES)
}

/// A wall clock that always reads 1970-01-01T00:00:00Z.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}
