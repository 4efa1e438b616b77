//! The host: one wasmtime `Engine` with the pooling allocator and epoch
//! interruption, one `Linker` for every world, the precompiled-component
//! cache, and the log sink.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::cache::{Cache, Pruned as CachePruned};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::log::{CallObserver, CallStats, LogLine, LogSink, tracing_sink};
use crate::runtime::{PluginClock, StoreState};

/// Sets up a [`Host`]. Every setting has a default:
///
/// | setting | default |
/// |---|---|
/// | [`cache_dir`](Self::cache_dir) | none: every load compiles |
/// | [`cache_max_bytes`](Self::cache_max_bytes) | 2 GiB: past it, the entries used longest ago are removed |
/// | [`default_limits`](Self::default_limits) | [`Limits::default`] |
/// | [`max_limits`](Self::max_limits) | [`Limits::maxima`] |
/// | [`max_wasm_stack`](Self::max_wasm_stack) | 1 MiB |
/// | [`epoch_tick`](Self::epoch_tick) | 10 ms: deadlines are accurate to about one tick |
/// | [`max_instances`](Self::max_instances) | 64 plugin instances alive at once |
/// | [`max_component_bytes`](Self::max_component_bytes) | 64 MiB: a component file larger than this is refused |
/// | [`memory_budget`](Self::memory_budget) | 2 GiB: the memory caps of the calls running at once add up to no more; a call waits for room |
/// | [`log_sink`](Self::log_sink) | `tracing`, target `lectern::plugin` |
/// | [`call_observer`](Self::call_observer) | none |
/// | [`plugin_config`](Self::plugin_config) | none: plugins see their manifest defaults |
#[derive(Clone)]
pub struct HostBuilder {
    cache_dir: Option<PathBuf>,
    cache_max_bytes: u64,
    defaults: Limits,
    maxima: Limits,
    max_wasm_stack: usize,
    epoch_tick: Duration,
    max_instances: u32,
    max_component_bytes: u64,
    memory_budget: u64,
    log_sink: LogSink,
    call_observer: Option<CallObserver>,
    plugin_config: BTreeMap<String, BTreeMap<String, String>>,
}

impl Default for HostBuilder {
    fn default() -> Self {
        HostBuilder {
            cache_dir: None,
            cache_max_bytes: 2 << 30,
            defaults: Limits::default(),
            maxima: Limits::maxima(),
            max_wasm_stack: 1 << 20,
            epoch_tick: Duration::from_millis(10),
            max_instances: 64,
            max_component_bytes: 64 << 20,
            memory_budget: 2 << 30,
            log_sink: tracing_sink(),
            call_observer: None,
            plugin_config: BTreeMap::new(),
        }
    }
}

impl HostBuilder {
    /// Keeps compiled components in `dir`, keyed by the component's SHA-256
    /// and the engine's compatibility hash, so that a second load takes
    /// milliseconds. The directory must be writable by this host only: a
    /// file in it is loaded as native code.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// How large the cache may grow. After each new entry the host removes
    /// the entries used longest ago until the rest fit; see
    /// [`Host::prune_cache`].
    pub fn cache_max_bytes(mut self, bytes: u64) -> Self {
        self.cache_max_bytes = bytes;
        self
    }

    /// The limits a plugin gets when its manifest sets none.
    pub fn default_limits(mut self, limits: Limits) -> Self {
        self.defaults = limits;
        self
    }

    /// The most a manifest may ask for.
    pub fn max_limits(mut self, limits: Limits) -> Self {
        self.maxima = limits;
        self
    }

    /// The wasm stack, in bytes, for every plugin.
    pub fn max_wasm_stack(mut self, bytes: usize) -> Self {
        self.max_wasm_stack = bytes;
        self
    }

    /// How often the deadline clock ticks.
    pub fn epoch_tick(mut self, tick: Duration) -> Self {
        self.epoch_tick = tick;
        self
    }

    /// The largest component file the host loads. A component costs about
    /// three times its size in memory to load, so this bounds that too.
    pub fn max_component_bytes(mut self, bytes: u64) -> Self {
        self.max_component_bytes = bytes;
        self
    }

    /// The memory all plugin calls running at once may use together: each
    /// call reserves its plugin's memory cap before it starts, and waits
    /// while the budget is spent. A plugin whose cap alone is over the
    /// budget is refused at load.
    pub fn memory_budget(mut self, bytes: u64) -> Self {
        self.memory_budget = bytes;
        self
    }

    /// How many plugin instances may be alive at once, across threads.
    pub fn max_instances(mut self, n: u32) -> Self {
        self.max_instances = n;
        self
    }

    /// Where plugin log lines go.
    pub fn log_sink(mut self, sink: impl Fn(&LogLine) + Send + Sync + 'static) -> Self {
        self.log_sink = Arc::new(sink);
        self
    }

    /// Hears what every plugin call cost ([`CallStats`]): wall time, peak
    /// linear memory, fuel. For harnesses and metrics; the call waits for
    /// it, so keep it quick.
    pub fn call_observer(mut self, observe: impl Fn(&CallStats) + Send + Sync + 'static) -> Self {
        self.call_observer = Some(Arc::new(observe));
        self
    }

    /// The library's settings for one plugin, over its manifest's defaults.
    pub fn plugin_config(mut self, plugin: &str, config: BTreeMap<String, String>) -> Self {
        self.plugin_config.insert(plugin.to_string(), config);
        self
    }

    /// An engine and its linker, counting fuel if `metered`.
    fn runtime(&self, metered: bool) -> Result<Runtime> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(self.max_instances)
            .total_core_instances(self.max_instances * 4)
            .total_memories(self.max_instances * 2)
            .total_tables(self.max_instances * 4)
            .total_stacks(self.max_instances)
            .max_memory_size(self.maxima.memory_bytes as usize)
            // Python and JavaScript runtimes have large function tables.
            .table_elements(200_000)
            .max_core_instance_size(16 << 20)
            // Keeping the first pages resident makes a fresh instance as
            // cheap as a reused one. Where the kernel can say which pages a
            // call dirtied (PAGEMAP_SCAN, Linux 6.7), only those are reset,
            // rather than the whole resident megabyte every time.
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(64 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(metered)
            .max_wasm_stack(self.max_wasm_stack)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let setup = |e: wasmtime::Error| Error::config(anyhow::anyhow!(e));
        let engine = Engine::new(&config).map_err(setup)?;

        let mut linker = Linker::<StoreState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(setup)?;
        // The plugin's own monotonic clock replaces the system's, so that a
        // sleeping guest cannot block the host past its deadline.
        linker.allow_shadowing(true);
        wasmtime_wasi::p2::bindings::clocks::monotonic_clock::add_to_linker::<_, PluginClock>(
            &mut linker,
            StoreState::clock,
        )
        .map_err(setup)?;
        linker.allow_shadowing(false);
        // Every supported version's host interface, each under its own
        // versioned name.
        crate::api::v0_1::scorer::Scorer::add_to_linker::<_, HasSelf<StoreState>>(
            &mut linker,
            |s| s,
        )
        .map_err(setup)?;
        crate::api::v0_2::scorer::Scorer::add_to_linker::<_, HasSelf<StoreState>>(
            &mut linker,
            |s| s,
        )
        .map_err(setup)?;
        Ok(Runtime { engine, linker })
    }

    /// Builds the engines and starts the deadline clock.
    pub fn build(self) -> Result<Host> {
        if self.defaults.memory_bytes > self.maxima.memory_bytes {
            return Err(Error::config(anyhow::anyhow!(
                "the default memory limit is over the maximum; raise the maximum or lower the \
                 default"
            )));
        }
        // Two engines: plugins without a fuel budget run unmetered, at full
        // speed; those with one on an engine that counts fuel.
        let plain = self.runtime(false)?;
        let metered = self.runtime(true)?;

        let cache = match &self.cache_dir {
            Some(dir) => Some(Cache::open(dir).map_err(Error::config)?),
            None => None,
        };

        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engines = [plain.engine.weak(), metered.engine.weak()];
            let (stop, tick) = (stop.clone(), self.epoch_tick);
            std::thread::Builder::new()
                .name("lectern-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        for engine in &engines {
                            match engine.upgrade() {
                                Some(e) => e.increment_epoch(),
                                None => return,
                            }
                        }
                    }
                })
                .context("failed to start the deadline clock thread")
                .map_err(Error::config)?
        };

        Ok(Host {
            inner: Arc::new(HostInner {
                plain,
                metered,
                max_component_bytes: self.max_component_bytes,
                memory: MemoryBudget::new(self.memory_budget),
                cache,
                cache_dir: self.cache_dir,
                cache_max_bytes: self.cache_max_bytes,
                defaults: self.defaults,
                maxima: self.maxima,
                epoch_tick: self.epoch_tick,
                log_sink: self.log_sink,
                call_observer: self.call_observer,
                plugin_config: self.plugin_config,
                stop,
                _ticker: ticker,
            }),
        })
    }
}

/// The plugin host. Cheap to clone; every clone shares one engine.
#[derive(Clone)]
pub struct Host {
    pub(crate) inner: Arc<HostInner>,
}

/// An engine and the linker that offers plugins the sandbox's imports.
pub(crate) struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<StoreState>,
}

pub(crate) struct HostInner {
    /// Plugins without a fuel budget.
    plain: Runtime,
    /// Plugins with one: the engine counts fuel.
    metered: Runtime,
    pub(crate) max_component_bytes: u64,
    pub(crate) memory: MemoryBudget,
    cache: Option<Cache>,
    cache_dir: Option<PathBuf>,
    cache_max_bytes: u64,
    pub(crate) defaults: Limits,
    pub(crate) maxima: Limits,
    pub(crate) epoch_tick: Duration,
    pub(crate) log_sink: LogSink,
    pub(crate) call_observer: Option<CallObserver>,
    pub(crate) plugin_config: BTreeMap<String, BTreeMap<String, String>>,
    stop: Arc<AtomicBool>,
    _ticker: std::thread::JoinHandle<()>,
}

impl HostInner {
    /// The runtime for a plugin with a fuel budget (`metered`) or without.
    pub(crate) fn runtime(&self, metered: bool) -> &Runtime {
        if metered { &self.metered } else { &self.plain }
    }
}

impl Drop for HostInner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A component to compile.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    /// A file, read only if it must be.
    File(&'a Path),
    /// Bytes in memory, as a registry hands them over.
    Bytes(&'a [u8]),
}

/// A compiled component, with what was learnt on the way.
pub(crate) struct Compiled {
    pub(crate) component: Component,
    pub(crate) cache: CacheStatus,
    pub(crate) load_time: Duration,
    pub(crate) size: u64,
    pub(crate) sha256: [u8; 32],
}

impl Compiled {
    fn new(
        component: Component,
        cache: CacheStatus,
        start: Instant,
        size: u64,
        sha256: [u8; 32],
    ) -> Compiled {
        Compiled {
            component,
            cache,
            load_time: start.elapsed(),
            size,
            sha256,
        }
    }
}

/// Refuses a core WebAssembly module, with how to build a component.
fn check_not_core(name: &str, bytes: &[u8]) -> Result<()> {
    if bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0] {
        return Err(load_error(
            name,
            format!(
                "{name} is a core WebAssembly module, not a component; build it with \
                 `cargo build --target wasm32-wasip2` (not wasm32-unknown-unknown or \
                 wasm32-wasip1)"
            ),
        ));
    }
    Ok(())
}

/// A component file that cannot be read, with how to make one: for a
/// missing one, the `.wasm` files that are there instead.
pub(crate) fn unreadable(name: &str, path: &Path, e: &std::io::Error) -> Error {
    if e.kind() != std::io::ErrorKind::NotFound {
        return load_error(name, format!("cannot read the component {name}: {e}"));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let mut found: Vec<String> = std::fs::read_dir(dir.unwrap_or(Path::new(".")))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wasm"))
        .collect();
    found.sort();
    let there = if found.is_empty() {
        "there is no .wasm file beside it".to_string()
    } else {
        format!(
            "beside it are {}; name the right one with `component = \"...\"` under [plugin]",
            found.join(", ")
        )
    };
    load_error(
        name,
        format!(
            "there is no component {name} (the manifest's `component`, `<id>.wasm` unless it \
             says otherwise): {there}. Build the component (Rust: `cargo build --target \
             wasm32-wasip2`; Python: `componentize-py`; JavaScript: `jco componentize`) and \
             put it beside plugin.toml"
        ),
    )
}

/// How a component got compiled code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Loaded from the cache.
    Hit,
    /// Compiled, and written to the cache.
    Stored,
    /// Compiled; no cache is configured.
    Uncached,
}

impl Host {
    /// A host with every default; see [`HostBuilder`].
    pub fn new() -> Result<Host> {
        Host::builder().build()
    }

    /// Starts configuring a host.
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }

    /// The limits plugins get when their manifest sets none.
    pub fn default_limits(&self) -> Limits {
        self.inner.defaults
    }

    /// Compiles a component, or loads its compiled code from the cache.
    /// A file is read only if it must be: when the cache has hashed it
    /// before and it has not changed since, a hit maps the entry without
    /// reading either file. `name` names the component in errors.
    pub(crate) fn compile<'s>(
        &self,
        name: &str,
        source: Source<'s>,
        metered: bool,
    ) -> Result<Compiled> {
        let start = Instant::now();
        let engine = &self.inner.runtime(metered).engine;
        let cache = self.inner.cache.as_ref();
        let invalid = |e: wasmtime::Error| {
            load_error(name, format!("{name} is not a valid component: {e:#}"))
        };
        // The bytes, once read (or borrowed): a hit may never need them.
        let (mut bytes, mut hash, before) = match source {
            Source::Bytes(b) => (Some(Cow::Borrowed(b)), None, None),
            Source::File(path) => {
                let meta = std::fs::metadata(path).map_err(|e| unreadable(name, path, &e))?;
                self.check_size(name, meta.len())?;
                (None, cache.and_then(|c| c.known_hash(path)), Some(meta))
            }
        };
        let read = |bytes: &mut Option<Cow<'s, [u8]>>| -> Result<Cow<'s, [u8]>> {
            match (bytes.take(), source) {
                (Some(b), _) => Ok(b),
                (None, Source::File(path)) => std::fs::read(path)
                    .map(Cow::Owned)
                    .map_err(|e| unreadable(name, path, &e)),
                (None, Source::Bytes(b)) => Ok(Cow::Borrowed(b)),
            }
        };
        let hash = match hash.take() {
            Some(h) => h,
            None => {
                let b = read(&mut bytes)?;
                let h: [u8; 32] = Sha256::digest(&b).into();
                if let (Some(cache), Source::File(path), Some(before)) = (cache, source, &before) {
                    cache.remember_hash(path, before, &h);
                }
                bytes = Some(b);
                h
            }
        };
        let size = match (&bytes, &before) {
            (Some(b), _) => b.len() as u64,
            (None, Some(meta)) => meta.len(),
            (None, None) => 0,
        };
        let Some(cache) = cache else {
            let b = read(&mut bytes)?;
            check_not_core(name, &b)?;
            let component = Component::new(engine, &b).map_err(invalid)?;
            return Ok(Compiled::new(
                component,
                CacheStatus::Uncached,
                start,
                size,
                hash,
            ));
        };
        let engine_hash = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            h.finish()
        };
        match cache.get(engine_hash, &hash) {
            Ok(Some(entry)) => {
                // SAFETY: the entry carries this host's MAC over the
                // component's hash and the code (checked in full, or
                // remembered under a MACed stamp of this very file), so it
                // is what this host compiled for this component, with an
                // engine of the same compatibility hash (in the entry's
                // name). Entries are only ever replaced by renaming a new
                // file over them, never written in place, so the mapping
                // stays whole.
                #[allow(unsafe_code)]
                match unsafe { Component::deserialize_file(engine, &entry) } {
                    Ok(c) => return Ok(Compiled::new(c, CacheStatus::Hit, start, size, hash)),
                    Err(e) => tracing::warn!("ignoring a cache entry wasmtime refuses: {e}"),
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("not using a cache entry: {e:#}; compiling again"),
        }
        let b = read(&mut bytes)?;
        check_not_core(name, &b)?;
        let compiled = engine.precompile_component(&b).map_err(invalid)?;
        cache
            .put(engine_hash, &hash, &compiled)
            .map_err(Error::config)?;
        match cache.prune(self.inner.cache_max_bytes) {
            Ok(p) if p.removed > 0 => tracing::info!(
                removed = p.removed,
                freed_bytes = p.freed_bytes,
                "pruned the plugin cache to its cap"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("could not prune the plugin cache: {e:#}"),
        }
        #[allow(unsafe_code)]
        // SAFETY: `compiled` was produced just now by this engine.
        let c = unsafe { Component::deserialize(engine, &compiled) }.map_err(invalid)?;
        Ok(Compiled::new(c, CacheStatus::Stored, start, size, hash))
    }

    /// Removes the cache entries used longest ago until the rest take at
    /// most `max_bytes`, and temporary files a killed host left behind.
    /// `None` when the host has no cache.
    pub fn prune_cache(&self, max_bytes: u64) -> Result<Option<CachePruned>> {
        self.inner
            .cache
            .as_ref()
            .map(|c| c.prune(max_bytes))
            .transpose()
            .map_err(Error::config)
    }

    /// The largest package file this host reads: its component cap, plus
    /// 16 MiB for the manifest, README and licence.
    pub fn max_package_bytes(&self) -> u64 {
        self.inner.max_component_bytes + (16 << 20)
    }

    /// The cache's size cap ([`HostBuilder::cache_max_bytes`]).
    pub fn cache_max_bytes(&self) -> u64 {
        self.inner.cache_max_bytes
    }

    /// The cache entries' directory, if any.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.inner.cache_dir.as_deref()
    }
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("cache_dir", &self.inner.cache_dir)
            .field("defaults", &self.inner.defaults)
            .field("maxima", &self.inner.maxima)
            .finish_non_exhaustive()
    }
}

/// The memory plugin calls may use together: a call reserves its cap
/// before it starts and returns it when it ends.
pub(crate) struct MemoryBudget {
    total: u64,
    free: std::sync::Mutex<u64>,
    returned: std::sync::Condvar,
}

/// Memory reserved for one call, given back when dropped.
pub(crate) struct Reservation<'a> {
    budget: &'a MemoryBudget,
    bytes: u64,
}

impl MemoryBudget {
    fn new(total: u64) -> MemoryBudget {
        MemoryBudget {
            total,
            free: std::sync::Mutex::new(total),
            returned: std::sync::Condvar::new(),
        }
    }

    /// The whole budget.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Waits until `bytes` are free, and takes them.
    pub(crate) fn reserve(&self, bytes: u64) -> Reservation<'_> {
        let bytes = bytes.min(self.total);
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free < bytes {
            free = self.returned.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= bytes;
        Reservation {
            budget: self,
            bytes,
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut free = self.budget.free.lock().unwrap_or_else(|e| e.into_inner());
        *free += self.bytes;
        self.budget.returned.notify_all();
    }
}

/// Turns an error from loading into the library's error.
pub(crate) fn load_error(plugin: &str, message: impl Into<String>) -> Error {
    Error::Load {
        plugin: plugin.to_string(),
        message: message.into(),
    }
}
