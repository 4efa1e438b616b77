//! `lectern plugin test`: a plugin over its fixtures, against the output
//! they expect, with what each case cost.
//!
//! A plugin's fixtures live in `fixtures/` beside its `plugin.toml` (or
//! where `--fixtures` says), one case per name:
//!
//! - a scorer: `NAME.patrons.jsonl`, expecting `NAME.expected.json`;
//! - a messenger: `NAME.events.jsonl` and `NAME.patrons.jsonl`, expecting
//!   `NAME.expected.json`.
//!
//! Each case runs through the same privacy pipeline as `lectern score` and
//! `lectern compose`, under the library's policy (or `--policy`), on a
//! store of its own that nothing else sees.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use chrono::NaiveDate;
use lectern::{
    AccessContext, Actor, CallStats, Event, Host, Lectern, Manifest, Patron, Purpose, World,
    read_jsonl,
};
use serde_json::{Value, json};

use crate::Ctx;
use crate::output::{print_json, table};

/// What one case did.
struct Case {
    name: String,
    outcome: Outcome,
    wall_ms: f64,
    calls: usize,
    peak_memory_bytes: u64,
    fuel_used: u64,
    output_bytes: usize,
}

enum Outcome {
    Passed,
    Blessed,
    Mismatch(String),
    Failed(String),
}

impl Outcome {
    fn as_str(&self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Blessed => "blessed",
            Outcome::Mismatch(_) => "mismatch",
            Outcome::Failed(_) => "failed",
        }
    }
}

pub fn test(
    ctx: &Ctx,
    path: &Path,
    fixtures: Option<&Path>,
    bless: bool,
    policy: Option<&Path>,
    as_of: Option<NaiveDate>,
) -> Result<()> {
    // An installed plugin's id, or a plugin directory for development.
    let spec = path.to_string_lossy();
    let installed = lectern::is_plugin_id(&spec)
        && (!path.exists()
            || (ctx.store_exists() && ctx.open(None)?.installed_plugin(&spec).is_ok()));
    if installed && !ctx.store_exists() {
        return Err(lectern::Error::NotFound(format!(
            "there is no plugin directory {spec}, and no store at {} to find an installed plugin \
             {spec} in",
            ctx.store_name()
        ))
        .into());
    }
    let stats: Arc<Mutex<Vec<CallStats>>> = Arc::default();
    let seen = stats.clone();
    let mut builder = Host::builder().call_observer(move |s| seen.lock().unwrap().push(s.clone()));
    if let Some(cache) = ctx.host.cache_dir() {
        builder = builder.cache_dir(cache);
    }
    let host = builder.build()?;
    // Every call metered, so that the fuel it burns (about one unit an
    // instruction) is counted; a plugin with a budget keeps its own.
    let meter = |m: &mut Manifest| {
        m.limits.fuel.get_or_insert(u64::MAX / 4);
    };
    let (plugin, fixtures, policy) = if installed {
        let id = path.to_string_lossy();
        let real = ctx.open(None)?;
        let plugin = real.plugin_on(&host, &id, true)?;
        let fixtures = fixtures.map(Path::to_path_buf).ok_or_else(|| {
            lectern::Error::invalid(
                "--fixtures",
                format!(
                    "an installed plugin carries no fixtures; give --fixtures DIR to test {id}"
                ),
            )
        })?;
        // The library's own policy, unless another is named.
        let policy = match policy {
            Some(p) => Some(host.load_privacy_filter(p)?),
            None => match (&real.config().policy, real.policy_in_use()?) {
                (Some(p), _) => Some(host.load_privacy_filter(p)?),
                (None, Some(chosen)) => Some(
                    real.plugin_on(&host, &chosen, false)?
                        .into_privacy_filter()?,
                ),
                (None, None) => None,
            },
        };
        (plugin, fixtures, policy)
    } else {
        let manifest_path = if path.is_dir() {
            path.join(lectern::MANIFEST_FILE)
        } else {
            path.to_path_buf()
        };
        let mut manifest = Manifest::from_file(&manifest_path)?;
        let dir = match manifest_path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let fixtures = fixtures.map_or_else(|| dir.join("fixtures"), Path::to_path_buf);
        meter(&mut manifest);
        let policy = policy.map(|p| host.load_privacy_filter(p)).transpose()?;
        (host.load_manifest(manifest)?, fixtures, policy)
    };
    let cases = case_names(&fixtures, plugin.world())?;
    // A privacy filter under test is the policy its cases run under.
    let policy = match plugin.world() {
        World::PrivacyFilter => Some(plugin.clone().into_privacy_filter()?),
        _ => policy,
    };

    let mut config = ctx.config()?;
    // The fixtures run on a store of their own, under the policy chosen
    // above, and pin nothing.
    config.lockfile = None;
    if policy.is_some() {
        config.policy = None;
    }
    let open = || -> Result<Lectern> {
        let mut library = Lectern::trial(&host, config.clone())?;
        if let Some(policy) = &policy {
            library = library.with_policy(policy.clone());
        }
        Ok(library)
    };
    let today = as_of.unwrap_or_else(|| NaiveDate::from_ymd_opt(2026, 11, 28).expect("a date"));
    let purpose = match plugin.world() {
        World::Scorer => Purpose::Scoring,
        _ => Purpose::MessagingTransactional,
    };
    let library = open()?;
    let rules = library.pipeline(today).rules_for(
        &AccessContext {
            purpose,
            actor: Actor::Plugin(plugin.id().to_string()),
        },
        Some(&plugin),
    )?;
    let passed = rules.passed();
    let withheld: Vec<&str> = plugin
        .declared_fields()
        .iter()
        .filter(|f| plugin.world() != World::PrivacyFilter && !passed.contains(f))
        .map(|f| f.as_str())
        .collect();

    let mut results = Vec::new();
    for name in &cases {
        stats.lock().unwrap().clear();
        let started = Instant::now();
        let output = run_case(&open()?, &plugin, &fixtures, name, today);
        let wall_ms = started.elapsed().as_secs_f64() * 1e3;
        let calls = std::mem::take(&mut *stats.lock().unwrap());
        let expected_path = fixtures.join(format!("{name}.expected.json"));
        let (outcome, output_bytes) = match output {
            Err(e) => (Outcome::Failed(format!("{e:#}")), 0),
            Ok(got) => {
                let text = serde_json::to_string_pretty(&got)? + "\n";
                let outcome = if bless {
                    std::fs::write(&expected_path, &text)
                        .with_context(|| format!("failed to write {}", expected_path.display()))?;
                    Outcome::Blessed
                } else {
                    compare(&expected_path, &got)?
                };
                (outcome, text.len())
            }
        };
        results.push(Case {
            name: name.clone(),
            outcome,
            wall_ms,
            calls: calls.len(),
            peak_memory_bytes: calls.iter().map(|c| c.peak_memory_bytes).max().unwrap_or(0),
            fuel_used: calls.iter().filter_map(|c| c.fuel_used).sum(),
            output_bytes,
        });
    }

    let bad = results
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Mismatch(_) | Outcome::Failed(_)))
        .count();
    if ctx.json {
        print_json(&json!({
            "plugin": plugin.id(),
            "version": plugin.version(),
            "fixtures": fixtures,
            "withheld_fields": withheld,
            "warnings": plugin.manifest().warnings(),
            "cases": results.iter().map(|c| json!({
                "name": c.name,
                "outcome": c.outcome.as_str(),
                "detail": match &c.outcome {
                    Outcome::Mismatch(d) | Outcome::Failed(d) => Some(d),
                    _ => None,
                },
                "wall_ms": c.wall_ms,
                "calls": c.calls,
                "peak_memory_bytes": c.peak_memory_bytes,
                "fuel_used": c.fuel_used,
                "output_bytes": c.output_bytes,
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        let mut t = table([
            "case",
            "result",
            "wall time",
            "calls",
            "peak memory",
            "fuel (≈ instructions)",
            "output",
        ]);
        for c in &results {
            t.add_row(vec![
                c.name.clone(),
                c.outcome.as_str().to_string(),
                format!("{:.1} ms", c.wall_ms),
                c.calls.to_string(),
                format!("{:.1} MiB", c.peak_memory_bytes as f64 / f64::from(1 << 20)),
                c.fuel_used.to_string(),
                format!("{} bytes", c.output_bytes),
            ]);
        }
        out!(
            "{} {}, fixtures in {}",
            plugin.id(),
            plugin.version(),
            fixtures.display()
        );
        out!("{t}");
        if withheld.is_empty() {
            out!("the policy passed every field the manifest declares");
        } else {
            out!(
                "the policy withheld these declared fields: {}",
                withheld.join(", ")
            );
        }
        for w in plugin.manifest().warnings() {
            out!("warning: {w}");
        }
        for c in &results {
            if let Outcome::Mismatch(d) | Outcome::Failed(d) = &c.outcome {
                out!("{}: {d}", c.name);
            }
        }
        if bless {
            out!(
                "wrote the output of {} case(s) as what they expect",
                results.len()
            );
        }
    }
    if bad > 0 {
        return Err(crate::Exit(1).into());
    }
    Ok(())
}

/// The cases in `dir`: every `NAME.patrons.jsonl` for a scorer, every
/// `NAME.events.jsonl` for a messenger.
fn case_names(dir: &Path, world: World) -> Result<Vec<String>> {
    let suffix = match world {
        World::Scorer => ".patrons.jsonl",
        World::Messenger => ".events.jsonl",
        World::PrivacyFilter => ".requests.jsonl",
        World::Forecaster => ".series.jsonl",
    };
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "no fixtures at {}: put NAME{suffix} files there (and NAME.expected.json, or run \
             with --bless to write them), or name another folder with --fixtures",
            dir.display()
        )
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_suffix(suffix).map(str::to_string)
        })
        .collect();
    names.sort();
    if names.is_empty() {
        bail!("no NAME{suffix} file in {}", dir.display());
    }
    Ok(names)
}

fn run_case(
    library: &Lectern,
    plugin: &lectern::Plugin,
    dir: &Path,
    name: &str,
    today: NaiveDate,
) -> Result<Value> {
    if plugin.world() == World::Forecaster {
        return forecast_case(plugin, dir, name, today);
    }
    let patrons: Vec<Patron> = read_jsonl(&dir.join(format!("{name}.patrons.jsonl")))?;
    let pipeline = library.pipeline(today);
    Ok(match plugin.world() {
        World::Scorer => {
            let scorer = plugin.clone().into_scorer()?;
            serde_json::to_value(pipeline.score(&scorer, &patrons)?)?
        }
        World::PrivacyFilter => {
            // Each request is one access context; the case shows what the
            // policy lets out for it, field by field and record by record.
            let requests: Vec<Request> = read_jsonl(&dir.join(format!("{name}.requests.jsonl")))?;
            let mut out = Vec::new();
            for r in requests {
                let ctx = r.context()?;
                out.push(json!({
                    "purpose": r.purpose,
                    "role": r.role,
                    "plugin": r.plugin,
                    "fields": pipeline.rules_for(&ctx, None)?.passed(),
                    "patrons": pipeline.filter(&ctx, &patrons)?,
                }));
            }
            Value::Array(out)
        }
        World::Messenger => {
            let messenger = plugin.clone().into_messenger()?;
            let events: Vec<Event> = read_jsonl(&dir.join(format!("{name}.events.jsonl")))?;
            let report = pipeline.compose(&messenger, &events, &patrons)?;
            json!({ "messages": report.messages, "skipped": report.skipped })
        }
        World::Forecaster => forecast_case(plugin, dir, name, today)?,
    })
}

/// A forecaster's case: monthly series in, each forecast a year ahead. A
/// forecaster sees no patron.
fn forecast_case(
    plugin: &lectern::Plugin,
    dir: &Path,
    name: &str,
    today: NaiveDate,
) -> Result<Value> {
    let series: Vec<lectern::MonthlySeries> =
        read_jsonl(&dir.join(format!("{name}.series.jsonl")))?;
    let forecasts = lectern::Forecaster::new(plugin.clone())?.forecast(&series, 12, today)?;
    Ok(Value::Array(
        forecasts
            .into_iter()
            .map(|f| match f {
                Ok(f) => json!({ "forecast": f }),
                Err(e) => json!({ "error": e.to_string() }),
            })
            .collect(),
    ))
}

/// One line of a privacy filter's `NAME.requests.jsonl`: a purpose, and a
/// staff role or a plugin asking.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    purpose: String,
    role: Option<String>,
    plugin: Option<String>,
}

impl Request {
    fn context(&self) -> Result<AccessContext> {
        let purpose: Purpose = self
            .purpose
            .parse()
            .map_err(|e: String| anyhow::anyhow!("a request's purpose: {e}"))?;
        let actor = match (&self.role, &self.plugin) {
            (Some(role), None) => Actor::Staff(role.clone()),
            (None, Some(plugin)) => Actor::Plugin(plugin.clone()),
            _ => bail!("a request names a staff `role` or a `plugin`, and not both"),
        };
        Ok(AccessContext { purpose, actor })
    }
}

/// Whether `got` is what `path` expects; what differs if not.
fn compare(path: &PathBuf, got: &Value) -> Result<Outcome> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Outcome::Mismatch(format!(
            "no {}; run with --bless to write what the plugin gives now",
            path.display()
        )));
    };
    let want: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if same(&want, got) {
        return Ok(Outcome::Passed);
    }
    Ok(Outcome::Mismatch(first_difference("", &want, got)))
}

/// Whether two outputs are the same, numbers to within a part in 10^9: a
/// score is an `f32`, and its decimal form need not read back to the last
/// bit.
fn same(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Number(w), Value::Number(g)) => match (w.as_f64(), g.as_f64()) {
            (Some(w), Some(g)) => (w - g).abs() <= 1e-9 * w.abs().max(1.0),
            _ => w == g,
        },
        (Value::Array(w), Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(w, g)| same(w, g))
        }
        (Value::Object(w), Value::Object(g)) => {
            w.len() == g.len() && w.iter().all(|(k, w)| g.get(k).is_some_and(|g| same(w, g)))
        }
        _ => want == got,
    }
}

/// Where `want` and `got` first differ, as a JSON path.
fn first_difference(at: &str, want: &Value, got: &Value) -> String {
    match (want, got) {
        (Value::Array(w), Value::Array(g)) => {
            for (i, (w, g)) in w.iter().zip(g).enumerate() {
                if !same(w, g) {
                    return first_difference(&format!("{at}[{i}]"), w, g);
                }
            }
            format!("{at}: expected {} items, got {}", w.len(), g.len())
        }
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                match g.get(k) {
                    Some(gv) if same(wv, gv) => {}
                    Some(gv) => return first_difference(&format!("{at}.{k}"), wv, gv),
                    None => return format!("{at}.{k}: expected {wv}, missing"),
                }
            }
            let extra: Vec<&String> = g.keys().filter(|k| !w.contains_key(*k)).collect();
            format!("{at}: unexpected {extra:?}")
        }
        _ => format!("{at}: expected {want}, got {got}"),
    }
}
