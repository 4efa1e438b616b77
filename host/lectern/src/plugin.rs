//! Loading a plugin: its manifest, its component, and the checks that the
//! component is what the manifest says it is. Also the typed handles, one
//! per world, that the pipeline calls.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use wasmtime::component::InstancePre;
use wasmtime::component::types::ComponentExtern;

use crate::api::SUPPORTED_API_VERSIONS;
use crate::api::{Api, Versioned, columns, per_version, v0_1, v0_2};
use crate::error::{Error, Failure, GuestError, PluginRef, Result};
use crate::host::{CacheStatus, Host, Source, load_error};
use crate::limits::Limits;
use crate::manifest::{MANIFEST_FILE, Manifest, World};
use crate::model::{Draft, Event, Patron, Scored};
use crate::privacy::{AccessContext, Action, Field};
use crate::runtime::{CallSetup, StoreState};

/// What the host found in a component file.
#[derive(Debug, Clone)]
pub struct ComponentInfo {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, in hex.
    pub sha256: String,
    /// The interfaces and functions it exports.
    pub exports: Vec<String>,
    /// The interfaces and functions it imports.
    pub imports: Vec<String>,
    /// The world its exports match, if any.
    pub world: Option<World>,
    /// Whether the compiled code came from the cache.
    pub cache: CacheStatus,
    /// How long compiling, or loading from the cache, took.
    pub load_time: Duration,
}

/// A loaded plugin of any world. Cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    host: Host,
    manifest: Manifest,
    reference: PluginRef,
    limits: Limits,
    config: Arc<BTreeMap<String, String>>,
    info: ComponentInfo,
    pre: InstancePre<StoreState>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("id", &self.inner.reference.id)
            .field("version", &self.inner.reference.version)
            .field("world", &self.inner.manifest.world)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// Loads the plugin at `path`: a directory holding `plugin.toml`, the
    /// `plugin.toml` itself, or the component file beside it.
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Plugin> {
        let path = path.as_ref();
        let manifest_path = if path.is_dir() {
            path.join(MANIFEST_FILE)
        } else if path.extension().is_some_and(|e| e == "wasm") {
            path.with_file_name(MANIFEST_FILE)
        } else {
            path.to_path_buf()
        };
        if !manifest_path.is_file() {
            return Err(load_error(
                &path.display().to_string(),
                format!(
                    "no {MANIFEST_FILE} at {}; a plugin is a directory with its plugin.toml \
                     and its component",
                    manifest_path.display()
                ),
            ));
        }
        inside_plugin_dir(&manifest_path, &manifest_path)?;
        self.load_manifest(Manifest::from_file(&manifest_path)?)
    }

    /// Loads the plugin `manifest` describes, its component read from
    /// beside it, as [`Host::load`] does; for a caller that adjusts the
    /// manifest first, such as a harness that meters every call.
    pub fn load_manifest(&self, manifest: Manifest) -> Result<Plugin> {
        // A manifest asking for more than the host allows fails before
        // the component is read.
        manifest.limits(&self.inner.defaults, &self.inner.maxima)?;
        inside_plugin_dir(&manifest.path, &manifest.component)?;
        let component = manifest.component.clone();
        self.load_from(manifest, Source::File(&component))
    }

    /// Loads a plugin from its manifest and its component's bytes, as a
    /// registry hands them over: nothing is read from disk. `manifest`
    /// comes from [`Manifest::parse`]; its `component` path only names the
    /// plugin in messages.
    pub fn load_bytes(&self, manifest: Manifest, bytes: &[u8]) -> Result<Plugin> {
        self.check_size(&manifest.id, bytes.len() as u64)?;
        self.load_from(manifest, Source::Bytes(bytes))
    }

    /// As [`Host::load_bytes`], with the library's `config` values over
    /// the manifest's defaults instead of those given to the builder. Each
    /// value is checked against the manifest's schema.
    pub fn load_bytes_with_config(
        &self,
        manifest: Manifest,
        bytes: &[u8],
        config: &BTreeMap<String, String>,
    ) -> Result<Plugin> {
        self.check_size(&manifest.id, bytes.len() as u64)?;
        self.load_with(manifest, Source::Bytes(bytes), Some(config))
    }

    fn load_from(&self, manifest: Manifest, source: Source<'_>) -> Result<Plugin> {
        let library = self.inner.plugin_config.get(&manifest.id).cloned();
        self.load_with(manifest, source, library.as_ref())
    }

    fn load_with(
        &self,
        manifest: Manifest,
        source: Source<'_>,
        library: Option<&BTreeMap<String, String>>,
    ) -> Result<Plugin> {
        let limits = manifest.limits(&self.inner.defaults, &self.inner.maxima)?;
        let id = manifest.id.clone();
        if limits.memory_bytes > self.inner.memory.total() {
            return Err(load_error(
                &id,
                format!(
                    "its memory cap of {} MiB is over the host's whole memory budget of {} MiB; \
                     lower `limits.memory-mib` in its plugin.toml",
                    limits.memory_bytes >> 20,
                    self.inner.memory.total() >> 20
                ),
            ));
        }

        let (component, info) = self
            .inspect(&manifest.component, source, limits.fuel.is_some())
            .map_err(|e| match e {
                Error::Load { message, .. } => load_error(&id, message),
                other => other,
            })?;
        check_world(&manifest, &info)?;
        for warning in manifest.warnings() {
            tracing::warn!(plugin = %id, "{warning}");
        }
        let pre = self
            .inner
            .runtime(limits.fuel.is_some())
            .linker
            .instantiate_pre(&component)
            .map_err(|e| load_error(&id, format!("cannot be linked in the sandbox: {e:#}")))?;

        let config = library_config(&manifest, library)?;
        Ok(Plugin {
            inner: Arc::new(PluginInner {
                host: self.clone(),
                reference: PluginRef {
                    id,
                    version: manifest.version.clone(),
                },
                manifest,
                limits,
                config: Arc::new(config),
                info,
                pre,
            }),
        })
    }

    /// Loads a [`Scorer`]; see [`Host::load`].
    pub fn load_scorer(&self, path: impl AsRef<Path>) -> Result<Scorer> {
        self.load(path)?.into_scorer()
    }

    /// Loads a [`Messenger`]; see [`Host::load`].
    pub fn load_messenger(&self, path: impl AsRef<Path>) -> Result<Messenger> {
        self.load(path)?.into_messenger()
    }

    /// Loads a [`PrivacyFilter`]; see [`Host::load`].
    pub fn load_privacy_filter(&self, path: impl AsRef<Path>) -> Result<PrivacyFilter> {
        self.load(path)?.into_privacy_filter()
    }

    /// Compiles a component, or loads it from the cache, and reports what it
    /// exports and imports. No manifest is needed.
    pub fn inspect_component(&self, path: impl AsRef<Path>) -> Result<ComponentInfo> {
        let path = path.as_ref();
        self.inspect(path, Source::File(path), false)
            .map(|(_, info)| info)
    }

    /// Compiles `source`, named `path` in messages and in its info.
    fn inspect(
        &self,
        path: &Path,
        source: Source<'_>,
        metered: bool,
    ) -> Result<(wasmtime::component::Component, ComponentInfo)> {
        let name = path.display().to_string();
        let compiled = self.compile(&name, source, metered)?;
        let component = compiled.component;
        let engine = &self.inner.runtime(metered).engine;
        let ty = component.component_type();
        let names = |items: &mut dyn Iterator<Item = (&str, ComponentExtern<'_>)>| -> Vec<String> {
            items.map(|(n, _)| n.to_string()).collect()
        };
        let exports = names(&mut ty.exports(engine));
        let imports = names(&mut ty.imports(engine));
        let world = World::ALL.into_iter().find(|w| {
            SUPPORTED_API_VERSIONS
                .iter()
                .any(|v| exports.contains(&w.interface(v)))
        });
        let info = ComponentInfo {
            path: path.to_path_buf(),
            size: compiled.size,
            sha256: hex::encode(compiled.sha256),
            exports,
            imports,
            world,
            cache: compiled.cache,
            load_time: compiled.load_time,
        };
        Ok((component, info))
    }
}

/// Refuses `file` if it resolves, through a symbolic link, to somewhere
/// outside the directory of the plugin's `manifest`: a plugin is its
/// directory, and nothing else is read for it.
fn inside_plugin_dir(manifest: &Path, file: &Path) -> Result<()> {
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let (Ok(root), Ok(real)) = (std::fs::canonicalize(dir), std::fs::canonicalize(file)) else {
        // A file that is not there is reported when it is read.
        return Ok(());
    };
    if real.starts_with(&root) {
        return Ok(());
    }
    let name = file.display().to_string();
    Err(load_error(
        &name,
        format!(
            "{name} is a link to a file outside the plugin's directory {}; copy the file into \
             the directory instead of linking it",
            dir.display()
        ),
    ))
}

impl Host {
    /// Refuses a component larger than the host loads.
    pub(crate) fn check_size(&self, name: &str, size: u64) -> Result<()> {
        let cap = self.inner.max_component_bytes;
        if size > cap {
            return Err(load_error(
                name,
                format!(
                    "the component is {}, over the host's cap of {}; build it in release \
                     mode, or raise the cap with `HostBuilder::max_component_bytes`",
                    human_size(size),
                    human_size(cap)
                ),
            ));
        }
        Ok(())
    }
}

/// `n` bytes, in MiB once it is that large.
fn human_size(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{} MiB", n.div_ceil(1 << 20))
    } else {
        format!("{n} bytes")
    }
}

/// The manifest's defaults with the library's values over them, each
/// checked against the manifest's schema.
pub(crate) fn library_config(
    manifest: &Manifest,
    library: Option<&BTreeMap<String, String>>,
) -> Result<BTreeMap<String, String>> {
    let mut config = manifest.config.clone();
    for (k, v) in library.into_iter().flatten() {
        let Some(key) = manifest.config_schema.get(k) else {
            return Err(load_error(
                &manifest.id,
                format!(
                    "the library sets configuration key `{k}`, which this version does not \
                     declare (it declares: {}); remove the setting",
                    declared_keys(manifest)
                ),
            ));
        };
        let value = key.check(v).map_err(|m| {
            load_error(
                &manifest.id,
                format!(
                    "the library's value for `{k}` does not fit this version, which takes {}: {m}",
                    key.describe()
                ),
            )
        })?;
        config.insert(k.clone(), value);
    }
    Ok(config)
}

/// The configuration keys a manifest declares, for messages.
pub(crate) fn declared_keys(manifest: &Manifest) -> String {
    if manifest.config_schema.is_empty() {
        return "none".into();
    }
    manifest
        .config_schema
        .keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks that the component exports its manifest's world at this host's
/// API version, and imports nothing the sandbox does not offer.
/// The WASI interfaces the host's linker defines (`wasmtime_wasi::p2::
/// add_to_linker_sync`): what a language's standard library imports. None
/// of them reaches a file, a socket, the environment or the wall clock:
/// there are no preopens, no network, no variables, and the clocks are the
/// host's fixed ones. Anything else, `wasi:http` above all, is refused by
/// name before linking.
const OFFERED_WASI: [&str; 6] = [
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
];

fn check_world(manifest: &Manifest, info: &ComponentInfo) -> Result<()> {
    let id = &manifest.id;
    let version = manifest.api_version.as_str();
    let want = manifest.world.interface(version);
    // The component names the version it was built against in its exports.
    let built = info
        .exports
        .iter()
        .find_map(|e| e.strip_prefix(&format!("lectern:crm/{}@", manifest.world.export())));
    if let Some(built) = built.filter(|b| *b != version) {
        let advice = if crate::api::supported(built) {
            format!(
                "set `plugin.api-version = \"{built}\"` in {}",
                manifest.path.display()
            )
        } else {
            crate::api::unsupported_advice(built)
        };
        return Err(load_error(
            id,
            format!(
                "the component was built against lectern:crm@{built}, but its manifest says \
                 api-version {version}; {advice}"
            ),
        ));
    }
    if !info.exports.contains(&want) {
        let lectern: Vec<&str> = info
            .exports
            .iter()
            .map(String::as_str)
            .filter(|e| e.starts_with("lectern:crm/"))
            .collect();
        let found = if lectern.is_empty() {
            "it exports no lectern:crm interface at all".to_string()
        } else {
            format!("it exports {}", lectern.join(", "))
        };
        let built_for = World::ALL
            .into_iter()
            .find(|w| {
                lectern
                    .iter()
                    .any(|e| e.starts_with(&format!("lectern:crm/{}@", w.export())))
            })
            .map(|w| format!(", so it was built for world `{w}`"))
            .unwrap_or_default();
        let world = manifest.world;
        let fix = if built_for.is_empty() {
            format!("build the component for world `{world}` of lectern:crm@{version}")
        } else {
            format!(
                "set `plugin.world` to what the component is, or build the component for \
                 world `{world}` of lectern:crm@{version}"
            )
        };
        return Err(load_error(
            id,
            format!(
                "{} says world `{world}`, which exports `{want}`, but {found}{built_for}; {fix} \
                 (Rust: `lectern_plugin::{}`; Python: `componentize-py -w {world}`; \
                 JavaScript: `jco componentize -n {world}`)",
                manifest.path.display(),
                world.sdk_macro()
            ),
        ));
    }
    let allowed = |i: &str| {
        OFFERED_WASI.iter().any(|w| i.starts_with(w))
            || i == crate::api::interface("host", version)
            || i == crate::api::interface("types", version)
    };
    if let Some(bad) = info.imports.iter().find(|i| !allowed(i)) {
        let why = if bad.starts_with("wasi:http/") {
            "plugins get no network. componentize-js adds HTTP unless told not to: \
             build with `jco componentize -d all`, which leaves out every WASI feature"
        } else {
            "plugins may import lectern:crm/host and the parts of WASI a language's \
             standard library needs (cli, clocks, filesystem, io, random, sockets), which \
             the sandbox answers without a file, a socket, the environment or the real time"
        };
        return Err(load_error(
            id,
            format!("the component imports `{bad}`, which the sandbox does not offer; {why}"),
        ));
    }
    Ok(())
}

impl Plugin {
    /// The manifest's `plugin.id`.
    pub fn id(&self) -> &str {
        &self.inner.reference.id
    }

    /// The manifest's `plugin.version`.
    pub fn version(&self) -> &str {
        &self.inner.reference.version
    }

    /// The world it implements.
    pub fn world(&self) -> World {
        self.inner.manifest.world
    }

    /// The parsed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// The limits its calls run under.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// Its configuration: manifest defaults with the library's settings.
    pub fn config(&self) -> &BTreeMap<String, String> {
        &self.inner.config
    }

    /// What the host found in its component.
    pub fn component(&self) -> &ComponentInfo {
        &self.inner.info
    }

    /// The fields its manifest declares.
    pub fn declared_fields(&self) -> &[Field] {
        &self.inner.manifest.fields
    }

    /// The contract version it was built against.
    fn api(&self) -> Api {
        // The manifest was checked against the supported versions at load.
        Api::of(&self.inner.manifest.api_version).unwrap_or(Api::V0_1)
    }

    /// This plugin as a scorer, if it is one. A 0.2 scorer that also
    /// exports `columnar-scoring`, and declares no field without a column,
    /// is called in columns.
    pub fn into_scorer(self) -> Result<Scorer> {
        let pre = match self.api() {
            Api::V0_1 => Versioned::V0_1(self.typed(World::Scorer, v0_1::scorer::ScorerPre::new)?),
            Api::V0_2 => Versioned::V0_2(self.typed(World::Scorer, v0_2::scorer::ScorerPre::new)?),
        };
        let columnar = self.api() == Api::V0_2
            && columns::fit(self.declared_fields())
            && self
                .inner
                .info
                .exports
                .contains(&crate::api::interface("columnar-scoring", "0.2.0"));
        let columnar = if columnar {
            let pre = self.typed(World::Scorer, v0_2::columnar::ColumnarScorerPre::new)?;
            Some(Arc::new(Columnar {
                pre,
                codes: std::sync::OnceLock::new(),
            }))
        } else {
            None
        };
        Ok(Scorer {
            plugin: self,
            pre,
            columnar,
        })
    }

    /// This plugin as a messenger, if it is one.
    pub fn into_messenger(self) -> Result<Messenger> {
        let pre = match self.api() {
            Api::V0_1 => {
                Versioned::V0_1(self.typed(World::Messenger, v0_1::messenger::MessengerPre::new)?)
            }
            Api::V0_2 => {
                Versioned::V0_2(self.typed(World::Messenger, v0_2::messenger::MessengerPre::new)?)
            }
        };
        let passing = self.api() == Api::V0_2
            && self
                .inner
                .info
                .exports
                .contains(&crate::api::interface("passing", "0.2.0"));
        let passing = if passing {
            Some(self.typed(World::Messenger, v0_2::passing::PassingMessengerPre::new)?)
        } else {
            None
        };
        let awareness = self.api() == Api::V0_2
            && self
                .inner
                .info
                .exports
                .contains(&crate::api::interface("awareness", "0.2.0"));
        let awareness = if awareness {
            Some(self.typed(
                World::Messenger,
                v0_2::awareness::AwarenessMessengerPre::new,
            )?)
        } else {
            None
        };
        Ok(Messenger {
            plugin: self,
            pre,
            passing,
            awareness,
        })
    }

    /// This plugin as a privacy filter, if it is one.
    pub fn into_privacy_filter(self) -> Result<PrivacyFilter> {
        let pre = match self.api() {
            Api::V0_1 => Versioned::V0_1(self.typed(
                World::PrivacyFilter,
                v0_1::privacy_filter::PrivacyFilterPre::new,
            )?),
            Api::V0_2 => Versioned::V0_2(self.typed(
                World::PrivacyFilter,
                v0_2::privacy_filter::PrivacyFilterPre::new,
            )?),
        };
        Ok(PrivacyFilter { plugin: self, pre })
    }

    pub(crate) fn typed<P>(
        &self,
        world: World,
        new: fn(InstancePre<StoreState>) -> wasmtime::Result<P>,
    ) -> Result<P> {
        if self.world() != world {
            return Err(load_error(
                self.id(),
                format!("is a `{}` plugin, not a `{world}` plugin", self.world()),
            ));
        }
        new(self.inner.pre.clone()).map_err(|e| {
            load_error(
                self.id(),
                format!(
                    "its exports do not match the `{world}` world of lectern:crm@{}: {e:#}",
                    self.inner.manifest.api_version
                ),
            )
        })
    }

    /// Runs one call in a fresh store.
    pub(crate) fn call<R>(
        &self,
        today: NaiveDate,
        f: impl FnOnce(&mut wasmtime::Store<StoreState>) -> wasmtime::Result<R>,
    ) -> Result<R> {
        let host = &self.inner.host.inner;
        // The host-wide memory budget: this call's cap, held while it runs.
        let _memory = host.memory.reserve(self.inner.limits.memory_bytes);
        CallSetup {
            engine: &host.runtime(self.inner.limits.fuel.is_some()).engine,
            plugin: &self.inner.reference,
            limits: &self.inner.limits,
            epoch_tick: host.epoch_tick,
            config: &self.inner.config,
            sink: &host.log_sink,
            observer: host.call_observer.as_ref(),
            today,
        }
        .run(f)
    }

    /// A failure of this plugin.
    pub(crate) fn fail(&self, failure: Failure) -> Error {
        Error::Plugin {
            plugin: self.inner.reference.clone(),
            failure,
        }
    }

    /// Checks the text a call returned against the output cap.
    pub(crate) fn check_output(&self, size: usize) -> Result<()> {
        let limit = self.inner.limits.output_bytes;
        if size > limit {
            return Err(self.fail(Failure::OutputTooLarge { size, limit }));
        }
        Ok(())
    }
}

macro_rules! debug_via_plugin {
    ($($ty:ident),*) => {$(
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.plugin.fmt(f)
            }
        }
    )*};
}

debug_via_plugin!(Scorer, Messenger, PrivacyFilter);

/// A plugin of the `scorer` world.
#[derive(Clone)]
pub struct Scorer {
    plugin: Plugin,
    pre: Versioned<v0_1::scorer::ScorerPre<StoreState>, v0_2::scorer::ScorerPre<StoreState>>,
    /// Its columnar export, when the host calls that instead.
    columnar: Option<Arc<Columnar>>,
}

/// A scorer's `columnar-scoring` export and the codes it described.
struct Columnar {
    pre: v0_2::columnar::ColumnarScorerPre<StoreState>,
    codes: std::sync::OnceLock<v0_2::columnar::Codes>,
}

impl Scorer {
    /// The plugin behind it.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// Whether its batches go in columns (`columnar-scoring`) rather than
    /// as records (`scoring`).
    pub fn is_columnar(&self) -> bool {
        self.columnar.is_some()
    }

    /// The same scorer, called with records even when it takes columns: for
    /// comparing the two forms, which must give the same scores.
    pub fn with_records(mut self) -> Scorer {
        self.columnar = None;
        self
    }

    /// Scores projected `patrons`; each score names its patron as the
    /// plugin wrote it, for the pipeline to check.
    pub(crate) fn score_batch(
        &self,
        today: NaiveDate,
        patrons: Vec<Patron>,
    ) -> Result<Vec<Scored>> {
        if let Some(columnar) = &self.columnar {
            return self.score_columns(columnar, today, &patrons);
        }
        per_version!(&self.pre, |b, pre| {
            let patrons: Vec<b::wit::Patron> = patrons.into_iter().map(b::patron).collect();
            let out = self.plugin.call(today, |store| {
                let scorer = pre.instantiate(&mut *store)?;
                scorer
                    .lectern_crm_scoring()
                    .call_score_batch(store, &patrons)
            })?;
            let scores = out.map_err(|e| self.plugin.fail(Failure::Guest(b::guest_error(e))))?;
            Ok(scores.into_iter().map(b::score).collect())
        })
    }
}

impl Scorer {
    /// Scores projected `patrons` in columns, in one fresh instance: the
    /// codes first, the first time, then the batch.
    fn score_columns(
        &self,
        columnar: &Columnar,
        today: NaiveDate,
        patrons: &[Patron],
    ) -> Result<Vec<Scored>> {
        let batch = columns::encode(patrons);
        let known = columnar.codes.get().is_some();
        let (codes, out) = self.plugin.call(today, |store| {
            let scorer = columnar.pre.instantiate(&mut *store)?;
            let api = scorer.lectern_crm_columnar_scoring();
            let codes = if known {
                None
            } else {
                Some(api.call_describe(&mut *store)?)
            };
            Ok((codes, api.call_score_columns(&mut *store, &batch)?))
        })?;
        if let Some(codes) = codes {
            let size = codes
                .segments
                .iter()
                .chain(&codes.reasons)
                .map(String::len)
                .sum();
            self.plugin.check_output(size)?;
            let _ = columnar.codes.set(codes);
        }
        let codes = columnar.codes.get().expect("described above");
        let scores = out.map_err(|e| self.plugin.fail(Failure::Guest(v0_2::guest_error(e))))?;
        let tokens: Vec<String> = patrons.iter().map(|p| p.id.clone()).collect();
        columns::decode(
            codes,
            scores,
            &tokens,
            self.plugin.inner.limits.output_bytes,
        )
        .map_err(|failure| self.plugin.fail(failure))
    }
}

/// A plugin of the `messenger` world.
#[derive(Clone)]
pub struct Messenger {
    plugin: Plugin,
    pre: Versioned<
        v0_1::messenger::MessengerPre<StoreState>,
        v0_2::messenger::MessengerPre<StoreState>,
    >,
    /// Its `passing` export, for title-wanted notices, when it has one.
    passing: Option<v0_2::passing::PassingMessengerPre<StoreState>>,
    /// Its `awareness` export, for current-awareness digests, when it has
    /// one.
    awareness: Option<v0_2::awareness::AwarenessMessengerPre<StoreState>>,
}

/// One request's messages, or the plugin's error for it.
pub(crate) type Composition = std::result::Result<Vec<Draft>, GuestError>;

impl Messenger {
    /// The plugin behind it.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// Composes each event for its projected recipient.
    pub(crate) fn compose_batch(
        &self,
        today: NaiveDate,
        requests: Vec<(&Event, Patron)>,
    ) -> Result<Vec<Composition>> {
        // Title-wanted notices go through `passing`, digests through
        // `awareness`, the rest through `messaging`; results go back to
        // their requests' places.
        let total = requests.len();
        let mut routes: [Vec<(usize, (&Event, Patron))>; 3] = Default::default();
        for (i, r) in requests.into_iter().enumerate() {
            let route = match r.0.kind {
                crate::model::EventKind::TitleWanted { .. } => 1,
                crate::model::EventKind::CurrentAwareness { .. } => 2,
                _ => 0,
            };
            routes[route].push((i, r));
        }
        let [plain, wanted, digests] = routes;
        let mut out: Vec<Option<Composition>> = (0..total).map(|_| None).collect();
        let missing = |export: &str, what: &str, n: usize| -> Vec<Composition> {
            (0..n)
                .map(|_| {
                    Err(GuestError::Other(format!(
                        "this messenger does not export `{export}`, which {what} need"
                    )))
                })
                .collect()
        };
        if !plain.is_empty() {
            let (places, plain): (Vec<usize>, Vec<_>) = plain.into_iter().unzip();
            for (i, r) in places
                .into_iter()
                .zip(self.compose_messaging(today, plain)?)
            {
                out[i] = Some(r);
            }
        }
        if !wanted.is_empty() {
            let (places, wanted): (Vec<usize>, Vec<_>) = wanted.into_iter().unzip();
            let results = match &self.passing {
                Some(pre) => self.compose_passing(pre, today, wanted)?,
                None => missing("passing", "title-wanted notices", wanted.len()),
            };
            for (i, r) in places.into_iter().zip(results) {
                out[i] = Some(r);
            }
        }
        if !digests.is_empty() {
            let (places, digests): (Vec<usize>, Vec<_>) = digests.into_iter().unzip();
            let results = match &self.awareness {
                Some(pre) => self.compose_digests(pre, today, digests)?,
                None => missing("awareness", "current-awareness digests", digests.len()),
            };
            for (i, r) in places.into_iter().zip(results) {
                out[i] = Some(r);
            }
        }
        Ok(out
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(GuestError::Other("not composed".into()))))
            .collect())
    }

    fn compose_digests(
        &self,
        pre: &v0_2::awareness::AwarenessMessengerPre<StoreState>,
        today: NaiveDate,
        requests: Vec<(&Event, Patron)>,
    ) -> Result<Vec<Composition>> {
        self.compose_export(today, requests, v0_2::awareness::request, |store, rs| {
            let m = pre.instantiate(&mut *store)?;
            m.lectern_crm_awareness().call_compose_digest(store, rs)
        })
    }

    fn compose_passing(
        &self,
        pre: &v0_2::passing::PassingMessengerPre<StoreState>,
        today: NaiveDate,
        requests: Vec<(&Event, Patron)>,
    ) -> Result<Vec<Composition>> {
        self.compose_export(today, requests, v0_2::passing::request, |store, rs| {
            let m = pre.instantiate(&mut *store)?;
            m.lectern_crm_passing().call_compose_title_wanted(store, rs)
        })
    }

    /// One call of a 0.2 export that composes a batch of one kind of
    /// event (`passing`, `awareness`): `convert` puts each request in the
    /// contract's form, `call` makes the call. One result per request, in
    /// order, or nothing is believed.
    fn compose_export<R>(
        &self,
        today: NaiveDate,
        requests: Vec<(&Event, Patron)>,
        convert: fn(&Event, Patron) -> Option<R>,
        call: impl FnOnce(
            &mut wasmtime::Store<StoreState>,
            &[R],
        ) -> wasmtime::Result<
            Vec<std::result::Result<Vec<v0_2::wit::Message>, v0_2::wit::PluginError>>,
        >,
    ) -> Result<Vec<Composition>> {
        let asked = requests.len();
        let requests: Vec<R> = requests
            .into_iter()
            .filter_map(|(e, p)| convert(e, p))
            .collect();
        let out = self.plugin.call(today, |store| call(store, &requests))?;
        if out.len() != asked {
            return Err(self.plugin.fail(Failure::BadOutput {
                message: format!("{} results for {asked} requests", out.len()),
            }));
        }
        Ok(out
            .into_iter()
            .map(|r| {
                r.map(|ms| ms.into_iter().map(v0_2::draft).collect())
                    .map_err(v0_2::guest_error)
            })
            .collect())
    }

    fn compose_messaging(
        &self,
        today: NaiveDate,
        requests: Vec<(&Event, Patron)>,
    ) -> Result<Vec<Composition>> {
        let asked = requests.len();
        per_version!(&self.pre, |b, pre| {
            let requests: Vec<_> = requests
                .into_iter()
                .filter_map(|(e, p)| b::request(e, p))
                .collect();
            let out = self.plugin.call(today, |store| {
                let m = pre.instantiate(&mut *store)?;
                m.lectern_crm_messaging()
                    .call_compose_batch(store, &requests)
            })?;
            // One result per request, in order, or nothing is believed: a
            // short or long list would put messages under the wrong event.
            if out.len() != asked {
                return Err(self.plugin.fail(Failure::BadOutput {
                    message: format!("{} results for {asked} requests", out.len()),
                }));
            }
            Ok(out
                .into_iter()
                .map(|r| {
                    r.map(|ms| ms.into_iter().map(b::draft).collect())
                        .map_err(b::guest_error)
                })
                .collect())
        })
    }
}

/// A plugin of the `privacy-filter` world.
#[derive(Clone)]
pub struct PrivacyFilter {
    plugin: Plugin,
    pre: Versioned<
        v0_1::privacy_filter::PrivacyFilterPre<StoreState>,
        v0_2::privacy_filter::PrivacyFilterPre<StoreState>,
    >,
}

/// A policy as the host holds it: an action per field.
pub(crate) struct PolicyRules {
    pub(crate) rules: Vec<(Field, Action)>,
    pub(crate) refine_per_record: bool,
}

impl PrivacyFilter {
    /// The plugin behind it.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    pub(crate) fn policy_for(&self, today: NaiveDate, ctx: &AccessContext) -> Result<PolicyRules> {
        per_version!(&self.pre, |b, pre| {
            let ctx = b::access_context(ctx);
            let out = self.plugin.call(today, |store| {
                let p = pre.instantiate(&mut *store)?;
                p.lectern_crm_privacy().call_policy_for(store, &ctx)
            })?;
            let policy = out.map_err(|e| self.plugin.fail(Failure::Guest(b::guest_error(e))))?;
            let mut rules = policy.rules.iter().map(b::field_rule).collect();
            address_follows_name(self.plugin.api(), &mut rules, false);
            Ok(PolicyRules {
                rules,
                refine_per_record: policy.refine_per_record,
            })
        })
    }

    /// Asks for each record's refinement, all in one store.
    pub(crate) fn refine_batch(
        &self,
        today: NaiveDate,
        ctx: &AccessContext,
        records: Vec<Patron>,
    ) -> Result<Vec<Vec<(Field, Action)>>> {
        per_version!(&self.pre, |b, pre| {
            let ctx = b::access_context(ctx);
            let records: Vec<b::wit::Patron> = records.into_iter().map(b::patron).collect();
            let out = self.plugin.call(today, |store| {
                let p = pre.instantiate(&mut *store)?;
                let api = p.lectern_crm_privacy();
                records
                    .iter()
                    .map(|r| api.call_refine(&mut *store, &ctx, r))
                    .collect::<wasmtime::Result<Vec<_>>>()
            })?;
            out.into_iter()
                .map(|r| {
                    let mut rules: Vec<_> = r
                        .map_err(|e| self.plugin.fail(Failure::Guest(b::guest_error(e))))?
                        .iter()
                        .map(b::field_rule)
                        .collect();
                    address_follows_name(self.plugin.api(), &mut rules, true);
                    Ok(rules)
                })
                .collect()
        })
    }
}

/// A 0.1 policy has no word for the postal address (0.2 added it): for one,
/// the address goes where the name goes whole, and nowhere else. A policy
/// that keeps the name keeps the address; a refinement that withholds or
/// masks the name drops the address.
fn address_follows_name(api: Api, rules: &mut Vec<(Field, Action)>, refinement: bool) {
    if api != Api::V0_1 {
        return;
    }
    match rules.iter().find(|(f, _)| *f == Field::Name) {
        Some((_, Action::Keep)) if !refinement => rules.push((Field::Address, Action::Keep)),
        Some((_, action)) if refinement && *action != Action::Keep => {
            rules.push((Field::Address, Action::Drop))
        }
        _ => {}
    }
}
