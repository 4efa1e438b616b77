//! `plugin.toml`: what a plugin is, what it needs, and how far it may go.
//!
//! Parsing is strict. An unknown key is an error, `manifest-version` is read
//! before anything else, and every error names the file, the key and the
//! value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::privacy::Field;

/// The manifest schema this host reads.
pub const MANIFEST_VERSION: i64 = 1;

/// The manifest's file name.
pub const MANIFEST_FILE: &str = "plugin.toml";

/// Which of the contract's worlds a plugin targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// Scores patrons.
    Scorer,
    /// Composes notices.
    Messenger,
    /// Decides what each purpose and role may see.
    PrivacyFilter,
    /// Forecasts demand from aggregated monthly series; sees no patron.
    /// Since 0.2.0.
    Forecaster,
}

impl World {
    /// Every world.
    pub const ALL: [World; 4] = [
        World::Scorer,
        World::Messenger,
        World::PrivacyFilter,
        World::Forecaster,
    ];

    /// The world's name in the contract.
    pub fn as_str(self) -> &'static str {
        match self {
            World::Scorer => "scorer",
            World::Messenger => "messenger",
            World::PrivacyFilter => "privacy-filter",
            World::Forecaster => "forecaster",
        }
    }

    /// The name of the interface the world exports, such as `scoring`.
    pub fn export(self) -> &'static str {
        match self {
            World::Scorer => "scoring",
            World::Messenger => "messaging",
            World::PrivacyFilter => "privacy",
            World::Forecaster => "forecasting",
        }
    }

    /// The interface the world exports in contract `version`, such as
    /// `lectern:crm/scoring@0.1.0`.
    pub fn interface(self, version: &str) -> String {
        crate::api::interface(self.export(), version)
    }

    /// The SDK macro that makes a component of this world.
    pub(crate) fn sdk_macro(self) -> &'static str {
        match self {
            World::Scorer => "export_scorer!",
            World::Messenger => "export_messenger!",
            World::PrivacyFilter => "export_privacy_filter!",
            World::Forecaster => "export_forecaster!",
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `s` is a plugin id as `plugin.id` spells one: lower-case
/// letters, digits and hyphens. Commands that take an id or a path use it
/// to tell them apart.
pub fn is_plugin_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A parsed, checked `plugin.toml`.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Where it was read from.
    pub path: PathBuf,
    /// `plugin.id`: lower-case letters, digits and hyphens.
    pub id: String,
    /// `plugin.version`.
    pub version: String,
    /// `plugin.world`.
    pub world: World,
    /// `plugin.api-version`.
    pub api_version: String,
    /// `plugin.description`.
    pub description: String,
    /// `plugin.authors`.
    pub authors: Vec<String>,
    /// The component file, beside the manifest.
    pub component: PathBuf,
    /// `inputs.fields`: the patron fields the plugin needs.
    pub fields: Vec<Field>,
    /// For a messenger, the event kinds it composes (`inputs.events`), as
    /// the contract spells them; `None` when the manifest does not say, and
    /// it is offered every event.
    pub events: Option<Vec<String>>,
    /// For a scorer, every segment it may put a patron in
    /// (`outputs.segments`). A segment name reaches reports, lists and
    /// messengers, so it is a word from this list, never free text.
    pub segments: Vec<String>,
    /// `[config]`: defaults for the plugin's configuration keys.
    pub config: BTreeMap<String, String>,
    /// `[config]` as a schema: each key's type, range and description. A
    /// key written as `key = value` is typed by its value, with no range.
    pub config_schema: BTreeMap<String, ConfigKey>,
    /// `[limits]` overrides, not yet checked against the host's maxima.
    pub limits: LimitOverrides,
    /// For a privacy filter, the staff roles its policy knows
    /// (`policy.roles`). While it is in force, these and the host's own
    /// [`ILS_ROLE`] are the only roles there are: a token, a report or a
    /// filter for any other role is refused.
    pub roles: Vec<String>,
}

/// The role of an ILS connected to the service: it pushes patrons and
/// events, and reads nothing. The host defines it; no policy declares it.
pub const ILS_ROLE: &str = "ils";

/// The `[limits]` table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitOverrides {
    /// `deadline-ms = 2000`
    pub deadline_ms: Option<u64>,
    /// `memory-mib = 128`
    pub memory_mib: Option<u64>,
    /// `output-kib = 4096`
    pub output_kib: Option<u64>,
    /// `log-kib = 64`
    pub log_kib: Option<u64>,
    /// `fuel = 500_000_000`: a deterministic budget of work per call.
    pub fuel: Option<u64>,
}

/// The file as written. Field docs show the TOML form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Raw {
    /// `manifest-version = 1`
    #[allow(dead_code)]
    manifest_version: i64,
    /// `[plugin]`
    plugin: RawPlugin,
    /// `[inputs]`
    #[serde(default)]
    inputs: RawInputs,
    /// `[outputs]`
    #[serde(default)]
    outputs: RawOutputs,
    /// `[config]`: `key = "value"`, numbers and booleans allowed, or
    /// `[config.key]` with `type`, `default`, `min`, `max`, `choices` and
    /// `description`.
    #[serde(default)]
    config: BTreeMap<String, toml::Value>,
    /// `[limits]`
    #[serde(default)]
    limits: LimitOverrides,
    /// `[policy]`
    #[serde(default)]
    policy: RawPolicy,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    /// `roles = ["circulation-desk", "analyst", "administrator"]`
    roles: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPlugin {
    /// `id = "engagement"`
    id: String,
    /// `version = "0.1.0"`
    version: String,
    /// `world = "scorer"`
    world: World,
    /// `api-version = "0.1.0"`
    api_version: String,
    /// `description = "..."`
    #[serde(default)]
    description: String,
    /// `authors = ["..."]`
    #[serde(default)]
    authors: Vec<String>,
    /// `component = "engagement.wasm"`; defaults to `<id>.wasm`.
    component: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOutputs {
    /// `segments = ["key-reader", "active", "lapsing"]`
    segments: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawInputs {
    /// `fields = ["category", "activity"]`
    #[serde(default)]
    fields: Vec<String>,
    events: Option<Vec<String>>,
}

impl Manifest {
    /// What a manifest allows but its author most likely did not mean: a
    /// messenger that cannot name or reach its readers.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.world == World::Messenger {
            if !self.fields.contains(&Field::Name) {
                out.push(
                    "it does not ask for `name` in `inputs.fields`, so it cannot address \
                     readers by name"
                        .to_string(),
                );
            }
            if !self
                .fields
                .iter()
                .any(|f| matches!(f, Field::Email | Field::Phone))
            {
                out.push(
                    "it asks for neither `email` nor `phone` in `inputs.fields`, so only \
                     print can reach readers"
                        .to_string(),
                );
            }
        }
        out
    }

    /// Reads and checks `path`.
    pub fn from_file(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Manifest {
            path: path.to_path_buf(),
            message: format!("cannot read it: {e}"),
        })?;
        Manifest::parse(path, &text)
    }

    /// Parses and checks `text`, read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Manifest> {
        let err = |message: String| Error::Manifest {
            path: path.to_path_buf(),
            message,
        };

        // The version decides how to read the rest, so it comes first.
        let table: toml::Table = toml::from_str(text).map_err(|e| err(toml_message(text, &e)))?;
        match table.get("manifest-version") {
            None => {
                return Err(err(format!(
                    "missing `manifest-version`; add `manifest-version = {MANIFEST_VERSION}` at \
                     the top"
                )));
            }
            Some(toml::Value::Integer(MANIFEST_VERSION)) => {}
            Some(other) => {
                return Err(err(format!(
                    "`manifest-version` = {other} is not supported; this host reads version \
                     {MANIFEST_VERSION}"
                )));
            }
        }
        let raw: Raw = toml::from_str(text).map_err(|e| err(toml_message(text, &e)))?;
        let p = raw.plugin;

        if !is_plugin_id(&p.id) {
            return Err(err(format!(
                "`plugin.id` = {:?}: an id is lower-case letters, digits and hyphens",
                p.id
            )));
        }
        // A version is shown in messages and stored with every run: semver
        // only, so it can carry no control character or forged line.
        if semver::Version::parse(&p.version).is_err() {
            return Err(err(format!(
                "`plugin.version` = \"{}\": write a semantic version such as \"1.2.0\"",
                p.version.escape_default()
            )));
        }
        if !crate::api::supported(&p.api_version) {
            return Err(err(format!(
                "`plugin.api-version` = {:?}: {}",
                p.api_version,
                crate::api::unsupported_advice(&p.api_version)
            )));
        }
        let component = p.component.unwrap_or_else(|| format!("{}.wasm", p.id));
        // A path inside the plugin's directory, such as the file itself or
        // where cargo writes it: relative, `/`-separated, no `..` or dot
        // files.
        if component.contains('\\')
            || component
                .split('/')
                .any(|part| part.is_empty() || part.starts_with('.'))
        {
            return Err(err(format!(
                "`plugin.component` = {component:?}: name a file inside the plugin's directory, \
                 such as \"{id}.wasm\" or \"target/wasm32-wasip2/release/{id}.wasm\"",
                id = p.id
            )));
        }
        let fields = raw
            .inputs
            .fields
            .iter()
            .map(|f| match f.parse() {
                Ok(Field::Address) => Err(err(format!(
                    "`inputs.fields` = {f:?}: the postal address is never handed to a plugin; \
                     the host prints it on letters itself"
                ))),
                Ok(field) => Ok(field),
                Err(_) => Err(err(format!(
                    "`inputs.fields` = {f:?}: unknown field `{f}`; the fields are: {}",
                    Field::ALL
                        .into_iter()
                        .filter(|f| *f != Field::Address)
                        .map(Field::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            })
            .collect::<Result<Vec<Field>>>()?;
        if p.world == World::Forecaster {
            if p.api_version == "0.1.0" {
                return Err(err(
                    "a forecaster is a world since lectern:crm 0.2.0; build against \
                     wit/v0.2.0 (world `forecaster`) and set `api-version = \"0.2.0\"`"
                        .into(),
                ));
            }
            if !fields.is_empty() {
                return Err(err(
                    "`inputs.fields`: a forecaster sees no patron, only monthly aggregates; \
                     remove `fields`"
                        .into(),
                ));
            }
        }
        if let Some(events) = &raw.inputs.events {
            if p.world != World::Messenger {
                return Err(err(format!(
                    "`inputs.events`: only a messenger takes events, and this plugin is a {}",
                    p.world
                )));
            }
            if let Some(e) = events
                .iter()
                .find(|e| !crate::model::EventKind::NAMES.contains(&e.as_str()))
            {
                return Err(err(format!(
                    "`inputs.events` = {e:?}: unknown event kind; the kinds are: {}",
                    crate::model::EventKind::NAMES.join(", ")
                )));
            }
            if p.api_version == "0.1.0" && events.iter().any(|e| e == "current-awareness") {
                return Err(err(
                    "`inputs.events`: `current-awareness` is composed through the `awareness` \
                     interface, which is since lectern:crm 0.2.0; build against wit/v0.2.0 \
                     (world `awareness-messenger`) and set `api-version = \"0.2.0\"`"
                        .into(),
                ));
            }
            if p.api_version == "0.1.0" && events.iter().any(|e| e == "title-wanted") {
                return Err(err(
                    "`inputs.events`: `title-wanted` is composed through the `passing` \
                     interface, which is since lectern:crm 0.2.0; build against wit/v0.2.0 \
                     (world `passing-messenger`) and set `api-version = \"0.2.0\"`"
                        .into(),
                ));
            }
        }
        let mut config_schema = BTreeMap::new();
        for (k, v) in raw.config {
            let key = ConfigKey::from_toml(&k, v).map_err(|m| err(format!("`config.{k}`: {m}")))?;
            config_schema.insert(k, key);
        }
        let config = config_schema
            .iter()
            .map(|(k, v)| (k.clone(), v.default.clone()))
            .collect();

        let segments = match (p.world, raw.outputs.segments) {
            (World::Scorer, Some(list)) if !list.is_empty() => {
                if let Some(bad) = list.iter().find(|s| {
                    s.is_empty()
                        || s.len() > 64
                        || !s
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                }) {
                    return Err(err(format!(
                        "`outputs.segments` = {:?}: a segment is 1 to 64 lower-case letters, \
                         digits and hyphens",
                        bad.escape_default().to_string()
                    )));
                }
                list
            }
            (World::Scorer, _) => {
                return Err(err(
                    "a scorer lists every segment it may put a patron in: add `[outputs]` with \
                     `segments = [\"key-reader\", \"active\", \"lapsing\"]`"
                        .to_string(),
                ));
            }
            (world, Some(_)) => {
                return Err(err(format!(
                    "`outputs.segments`: only a scorer puts patrons in segments, and this plugin \
                     is a {world}"
                )));
            }
            (_, None) => Vec::new(),
        };

        let roles = match (p.world, raw.policy.roles) {
            (World::PrivacyFilter, Some(roles)) => {
                if let Some(bad) = roles.iter().find(|r| !is_plugin_id(r)) {
                    return Err(err(format!(
                        "`policy.roles` = {:?}: a role is lower-case letters, digits and hyphens",
                        bad.escape_default().to_string()
                    )));
                }
                if roles.iter().any(|r| r == ILS_ROLE) {
                    return Err(err(format!(
                        "`policy.roles`: `{ILS_ROLE}` is the host's role for a connected ILS, \
                         which reads nothing; a policy cannot declare it"
                    )));
                }
                roles
            }
            (World::PrivacyFilter, None) => Vec::new(),
            (world, Some(_)) => {
                return Err(err(format!(
                    "`policy.roles`: only a privacy filter declares staff roles, and this plugin \
                     is a {world}"
                )));
            }
            (_, None) => Vec::new(),
        };

        let dir = path.parent().unwrap_or(Path::new("."));
        Ok(Manifest {
            path: path.to_path_buf(),
            id: p.id,
            version: p.version,
            world: p.world,
            api_version: p.api_version,
            description: p.description,
            authors: p.authors,
            component: dir.join(component),
            fields,
            events: raw.inputs.events,
            segments,
            config,
            config_schema,
            limits: raw.limits,
            roles,
        })
    }

    /// The limits this plugin runs under: the host's defaults with the
    /// manifest's overrides, each checked against the host's maxima.
    pub fn limits(&self, defaults: &Limits, maxima: &Limits) -> Result<Limits> {
        let o = &self.limits;
        let check = |key: &str, value: Option<u64>, unit: u64, max: u64| -> Result<Option<u64>> {
            let Some(v) = value else { return Ok(None) };
            if v == 0 {
                return Err(Error::Manifest {
                    path: self.path.clone(),
                    message: format!("`limits.{key}` = 0: a limit must be above zero"),
                });
            }
            if v.saturating_mul(unit) > max {
                return Err(Error::Manifest {
                    path: self.path.clone(),
                    message: format!(
                        "`limits.{key}` = {v} is over the host's maximum of {}",
                        max / unit
                    ),
                });
            }
            Ok(Some(v * unit))
        };
        let ms = |d: Duration| d.as_millis() as u64;
        Ok(Limits {
            deadline: check("deadline-ms", o.deadline_ms, 1, ms(maxima.deadline))?
                .map_or(defaults.deadline, Duration::from_millis),
            memory_bytes: check("memory-mib", o.memory_mib, 1 << 20, maxima.memory_bytes)?
                .unwrap_or(defaults.memory_bytes),
            output_bytes: check(
                "output-kib",
                o.output_kib,
                1 << 10,
                maxima.output_bytes as u64,
            )?
            .map_or(defaults.output_bytes, |v| v as usize),
            log_bytes: check("log-kib", o.log_kib, 1 << 10, maxima.log_bytes as u64)?
                .map_or(defaults.log_bytes, |v| v as usize),
            fuel: match o.fuel {
                Some(0) => {
                    return Err(Error::Manifest {
                        path: self.path.clone(),
                        message: "`limits.fuel` = 0 would stop the plugin before it starts; \
                                  give a budget, or leave it out for none"
                            .into(),
                    });
                }
                Some(f) => Some(f),
                None => defaults.fuel,
            },
        })
    }
}

/// The type of a configuration value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigType {
    /// Any text.
    String,
    /// A whole number.
    Integer,
    /// A number.
    Float,
    /// `true` or `false`.
    Boolean,
}

impl ConfigType {
    fn as_str(self) -> &'static str {
        match self {
            ConfigType::String => "string",
            ConfigType::Integer => "integer",
            ConfigType::Float => "float",
            ConfigType::Boolean => "boolean",
        }
    }
}

/// One configuration key a plugin declares: `[config.NAME]` in its
/// manifest. The library's value for it is checked against it before it is
/// stored, and again whenever the plugin is installed or upgraded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConfigKey {
    /// `type = "integer"`.
    #[serde(rename = "type")]
    pub kind: ConfigType,
    /// `default = 20`, as the plugin reads it.
    pub default: String,
    /// `min = 1`, for a number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// `max = 1000`, for a number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// `choices = ["friendly", "formal"]`, for a string.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// `description = "..."`.
    pub description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfigKey {
    #[serde(rename = "type")]
    kind: ConfigType,
    default: toml::Value,
    min: Option<f64>,
    max: Option<f64>,
    #[serde(default)]
    choices: Vec<String>,
    #[serde(default)]
    description: String,
}

impl ConfigKey {
    fn from_toml(name: &str, value: toml::Value) -> std::result::Result<ConfigKey, String> {
        let plain = |kind, default: String| ConfigKey {
            kind,
            default,
            min: None,
            max: None,
            choices: Vec::new(),
            description: String::new(),
        };
        let raw: RawConfigKey = match value {
            toml::Value::String(s) => return Ok(plain(ConfigType::String, s)),
            toml::Value::Integer(i) => return Ok(plain(ConfigType::Integer, i.to_string())),
            toml::Value::Float(f) => return Ok(plain(ConfigType::Float, f.to_string())),
            toml::Value::Boolean(b) => return Ok(plain(ConfigType::Boolean, b.to_string())),
            toml::Value::Table(t) => t.try_into().map_err(|e: toml::de::Error| {
                format!(
                    "{}; a key is `{name} = value`, or a table with `type` (string, integer, \
                     float, boolean), `default`, and optionally `min`, `max`, `choices` and \
                     `description`",
                    e.message().trim_end()
                )
            })?,
            other => {
                return Err(format!(
                    "{other} is neither a value (a string, a number or a boolean) nor a table"
                ));
            }
        };
        let numeric = matches!(raw.kind, ConfigType::Integer | ConfigType::Float);
        if !numeric && (raw.min.is_some() || raw.max.is_some()) {
            return Err(format!(
                "`min` and `max` are for numbers, and this key is a {}",
                raw.kind.as_str()
            ));
        }
        if raw.kind != ConfigType::String && !raw.choices.is_empty() {
            return Err(format!(
                "`choices` is for strings, and this key is a {}",
                raw.kind.as_str()
            ));
        }
        if let (Some(lo), Some(hi)) = (raw.min, raw.max)
            && lo > hi
        {
            return Err(format!("`min` = {lo} is above `max` = {hi}"));
        }
        let default = match raw.default {
            toml::Value::String(s) => s,
            v @ (toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_)) => {
                v.to_string()
            }
            other => return Err(format!("`default` = {other} is not a plain value")),
        };
        let key = ConfigKey {
            kind: raw.kind,
            default,
            min: raw.min,
            max: raw.max,
            choices: raw.choices,
            description: raw.description,
        };
        key.check(&key.default)
            .map_err(|m| format!("its `default` does not fit it: {m}"))?;
        Ok(key)
    }

    /// Checks `value` against the key, and gives it as the plugin will
    /// read it (a number written the usual way, `true` or `false`), or what
    /// is wrong with it.
    pub fn check(&self, value: &str) -> std::result::Result<String, String> {
        let range = |v: f64| -> std::result::Result<(), String> {
            match (self.min, self.max) {
                (Some(lo), _) if v < lo => Err(format!("{value} is below the minimum of {lo}")),
                (_, Some(hi)) if v > hi => Err(format!("{value} is above the maximum of {hi}")),
                _ => Ok(()),
            }
        };
        let v = value.trim();
        match self.kind {
            ConfigType::String => {
                if !self.choices.is_empty() && !self.choices.iter().any(|c| c == value) {
                    return Err(format!(
                        "{value:?} is not one of {}",
                        self.choices.join(", ")
                    ));
                }
                Ok(value.to_string())
            }
            ConfigType::Integer => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| format!("{value:?} is not a whole number"))?;
                range(n as f64)?;
                Ok(n.to_string())
            }
            ConfigType::Float => {
                let n: f64 = v
                    .parse()
                    .ok()
                    .filter(|n: &f64| n.is_finite())
                    .ok_or_else(|| format!("{value:?} is not a number"))?;
                range(n)?;
                Ok(n.to_string())
            }
            ConfigType::Boolean => match v {
                "true" | "false" => Ok(v.to_string()),
                _ => Err(format!("{value:?} is not `true` or `false`")),
            },
        }
    }

    /// The type and range in words, such as `a whole number from 1 to
    /// 1000`.
    pub fn describe(&self) -> String {
        let mut s = match self.kind {
            ConfigType::String if self.choices.is_empty() => "text".to_string(),
            ConfigType::String => format!("one of {}", self.choices.join(", ")),
            ConfigType::Integer => "a whole number".to_string(),
            ConfigType::Float => "a number".to_string(),
            ConfigType::Boolean => "true or false".to_string(),
        };
        match (self.min, self.max) {
            (Some(lo), Some(hi)) => s += &format!(" from {lo} to {hi}"),
            (Some(lo), None) => s += &format!(", at least {lo}"),
            (None, Some(hi)) => s += &format!(", at most {hi}"),
            (None, None) => {}
        }
        s
    }
}

/// A TOML error as `line N: message (at `text`)`.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    let Some(span) = e.span() else {
        return message.to_string();
    };
    // The line's number, never its text: a manifest may be anything, and
    // an error must not quote it.
    let before = &text[..span.start.min(text.len())];
    let line_no = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("line {line_no}, column {column}: {message}")
}
