//! `cargo xtask bench`: the host's costs, each as a ratio against a native
//! baseline run in the same process, so that a noisy machine moves both.
//!
//! 1. Scoring per patron through the `engagement` component, against the
//!    very same model compiled natively (`plugins/engagement/src/model.rs`).
//! 2. A fresh instance plus its first call, from the pooling allocator.
//! 3. Compiling a component cold, against loading it from the cache.
//! 4. Composing notices with one patron per messenger call (each on a
//!    fresh instance), against every patron in one call, in the same run.

#[allow(dead_code, missing_docs)]
#[path = "../../plugins/engagement/src/model.rs"]
mod model;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use lectern::{
    Activity, Config, Consents, Event, EventKind, Host, Lectern, Loan, Patron, Rules, SqliteStore,
    bench,
};
use lectern_tests::{as_of, keyring, plugins};

const RUNS: usize = 7;

fn main() {
    let n = lectern_tests::bench_size(10_000) as usize;
    let patrons = synthetic(n);
    let host = Host::new().unwrap();
    let engagement = host.load_scorer(plugins::ENGAGEMENT).unwrap();
    // A policy is always in force and every read audited. `keep-all-privacy`
    // lets the manifest alone decide, the cheapest policy there is: the
    // floor this bench measures from.
    let library = Lectern::open(
        &host,
        SqliteStore::temporary().unwrap(),
        keyring(),
        Config {
            policy: Some(plugins::KEEP_ALL_PRIVACY.into()),
            ..Config::default()
        },
    )
    .unwrap();
    let pipeline = library.pipeline(as_of());

    println!("| measure | value |\n|---|---|");

    // 1. Per patron, native against WebAssembly.
    let thresholds = model::Thresholds::default();
    let native = median(|| {
        let out: Vec<_> = patrons
            .iter()
            .map(|p| native_score(p, &thresholds))
            .collect();
        std::hint::black_box(out);
    });
    // The same component, called in columns (what the host does for it) and
    // as records, interleaved so that the machine's drift moves both alike.
    assert!(engagement.is_columnar(), "the SDK exports columns");
    let records = engagement.clone().with_records();
    let (mut in_columns, mut in_records) = (Vec::new(), Vec::new());
    std::hint::black_box(pipeline.score(&engagement, &patrons).unwrap());
    std::hint::black_box(pipeline.score(&records, &patrons).unwrap());
    for _ in 0..RUNS {
        for (scorer, times) in [(&engagement, &mut in_columns), (&records, &mut in_records)] {
            let start = Instant::now();
            std::hint::black_box(pipeline.score(scorer, &patrons).unwrap());
            times.push(start.elapsed());
        }
    }
    let wasm = sorted(in_columns)[RUNS / 2];
    let wasm_records = sorted(in_records)[RUNS / 2];
    // What the pipeline does before the boundary: project each record to the
    // declared fields, with its token.
    let rules = Rules::keeping(engagement.plugin().declared_fields().iter().copied());
    let keys = keyring().pseudonyms();
    let projection = median(|| {
        let out: Vec<_> = patrons.iter().map(|p| rules.project(p, &keys)).collect();
        std::hint::black_box(out);
    });
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!(
        "| native model, per patron ({n} patrons) | {:.3} µs |",
        per(native)
    );
    println!(
        "| whole pipeline, columns (`columnar-scoring`), per patron | {:.3} µs |",
        per(wasm)
    );
    println!(
        "| whole pipeline, records (`scoring`), per patron | {:.3} µs |",
        per(wasm_records)
    );
    println!(
        "| of which projection and tokens (native, host side) | {:.3} µs |",
        per(projection)
    );
    for (form, t) in [("columns", wasm), ("records", wasm_records)] {
        println!(
            "| **ratio, whole pipeline / native model, {form}** | **{:.2}×** |",
            per(t) / per(native)
        );
        println!(
            "| **ratio, boundary + guest (pipeline − projection) / native model, {form}** | **{:.2}×** |",
            (per(t) - per(projection)) / per(native)
        );
    }

    // The same results, or the comparison means nothing.
    let scored = pipeline.score(&engagement, &patrons[..100]).unwrap();
    for (s, p) in scored.iter().zip(&patrons) {
        let want = native_score(p, &thresholds);
        assert_eq!(
            (s.segment.as_str(), s.value),
            (want.segment, want.value),
            "{}: the component said {:?}, the native model {:?}",
            p.id,
            s.reasons,
            want.reasons
        );
    }

    // The privacy layer: the same pass with the baseline policy, then with
    // the audit log as well, against the pass with neither.
    let policy = host.load_privacy_filter(plugins::BASELINE_PRIVACY).unwrap();
    let with_policy = library.pipeline(as_of()).with_policy(policy);
    // Interleaved, so that the machine's drift moves both alike.
    let (mut plain, mut policed) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        for (pipe, times) in [(&pipeline, &mut plain), (&with_policy, &mut policed)] {
            let start = Instant::now();
            std::hint::black_box(pipe.score(&engagement, &patrons).unwrap());
            times.push(start.elapsed());
        }
    }
    let middle = |v: Vec<Duration>| sorted(v)[RUNS / 2];
    let (plain, policed) = (middle(plain), middle(policed));
    println!(
        "| keep-all policy, audited (interleaved with the one below), per patron | {:.3} µs |",
        per(plain)
    );
    println!(
        "| with the baseline policy, per patron | {:.3} µs |",
        per(policed)
    );
    println!(
        "| **privacy overhead: policy / no policy** | **{:+.1}%** |",
        (per(policed) / per(plain) - 1.0) * 100.0
    );
    // The audit log's share: one chained entry per batch of 1,000 reads.
    let entry = lectern::AuditEntry {
        at: chrono::Utc::now(),
        context: lectern::AccessContext {
            purpose: lectern::Purpose::Scoring,
            actor: lectern::Actor::Plugin("engagement".into()),
        },
        fields: vec![lectern::Field::Activity],
        patrons: (0..1000)
            .map(|i| keys.patron_token(&i.to_string()))
            .collect(),
    };
    let append = median_of(50, || library.record_read(&entry).unwrap());
    println!(
        "| one audit entry for a batch of 1,000 (a SQLite transaction) | {:.3} ms, {:.3} µs per patron |",
        append.as_secs_f64() * 1e3,
        append.as_secs_f64() * 1e6 / 1000.0
    );

    // A fuel budget: the same scorer on the metering engine, interleaved
    // with the unmetered one.
    let metered_dir = lectern_tests::plugin_copy(plugins::ENGAGEMENT, |m| {
        m.replace(
            "deadline-ms = 5000",
            "deadline-ms = 5000\nfuel = 1000000000000",
        )
    });
    let metered = host.load_scorer(metered_dir.path()).unwrap();
    assert_eq!(
        pipeline.score(&metered, &patrons[..100]).unwrap(),
        pipeline.score(&engagement, &patrons[..100]).unwrap()
    );
    let (mut free, mut counted) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        for (scorer, times) in [(&engagement, &mut free), (&metered, &mut counted)] {
            let start = Instant::now();
            std::hint::black_box(pipeline.score(scorer, &patrons).unwrap());
            times.push(start.elapsed());
        }
    }
    let (free, counted) = (middle(free), middle(counted));
    println!(
        "| without a fuel budget (interleaved with the one below), per patron | {:.3} µs |",
        per(free)
    );
    println!(
        "| with a fuel budget (`limits.fuel`, metering engine), per patron | {:.3} µs |",
        per(counted)
    );
    println!(
        "| **fuel metering overhead: budget / none** | **{:+.1}%** |",
        (per(counted) / per(free) - 1.0) * 100.0
    );

    // 2. A fresh instance and its first call, one patron.
    let one = &patrons[..1];
    let first_call = median_of(200, || {
        std::hint::black_box(pipeline.score(&engagement, one).unwrap());
    });
    let native_one = median_of(200, || {
        std::hint::black_box(native_score(&one[0], &thresholds));
    });
    println!(
        "| fresh instance + first call, 1 patron (pooling) | {:.1} µs |",
        first_call.as_secs_f64() * 1e6
    );
    let first_metered = median_of(200, || {
        std::hint::black_box(pipeline.score(&metered, one).unwrap());
    });
    println!(
        "| the same with a fuel budget | {:.1} µs |",
        first_metered.as_secs_f64() * 1e6
    );
    // The sandbox alone: the same instance and call without the pipeline's
    // projection and audit entry.
    let projected = vec![rules.project(&one[0], &keys)];
    let bare = median_of(200, || {
        std::hint::black_box(
            bench::score_without_pipeline(&engagement, as_of(), projected.clone()).unwrap(),
        );
    });
    let bare_records = median_of(200, || {
        std::hint::black_box(
            bench::score_without_pipeline(&records, as_of(), projected.clone()).unwrap(),
        );
    });
    println!(
        "| fresh instance + first call alone (no projection, no audit entry), columns / records | {:.1} µs / {:.1} µs |",
        bare.as_secs_f64() * 1e6,
        bare_records.as_secs_f64() * 1e6
    );
    println!(
        "| the same patron natively | {:.2} µs |",
        native_one.as_secs_f64() * 1e6
    );

    // 4. One patron per messenger call, against all in one call. Both get
    // the same records, projected to what `notices` declares; the pipeline's
    // policy and audit cost the same either way and are left out.
    let notices = host.load_messenger(plugins::NOTICES).unwrap();
    let declared = Rules::keeping(notices.plugin().declared_fields().iter().copied());
    let readers = &patrons[..patrons.len().min(2_000)];
    let events: Vec<(Event, Patron)> = readers
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            // One to three notices a reader, as a day's run finds them.
            (0..1 + i % 3).map(move |j| (i, j, p))
        })
        .map(|(i, j, p)| {
            let event = Event {
                id: format!("E{i}-{j}"),
                patron: p.id.clone(),
                at: chrono::Utc::now(),
                kind: EventKind::DueSoon {
                    loan: Loan {
                        title: format!("Title {j}"),
                        barcode: None,
                        due_on: as_of() + chrono::Days::new(3),
                        renewals: 0,
                    },
                },
            };
            (event, declared.project(p, &keys))
        })
        .collect();
    let requests =
        || -> Vec<(&Event, Patron)> { events.iter().map(|(e, p)| (e, p.clone())).collect() };
    let mut composed = (0, 0, 0);
    let batch = median(|| {
        composed.0 = bench::compose_all_in_one_call(&notices, as_of(), requests()).unwrap();
    });
    // On one thread, like the single call, and then as the pipeline runs it.
    let per_patron = median(|| {
        composed.1 = bench::compose_one_patron_per_call(&notices, as_of(), requests(), 1).unwrap();
    });
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per_patron_parallel = median(|| {
        composed.2 =
            bench::compose_one_patron_per_call(&notices, as_of(), requests(), cores).unwrap();
    });
    assert_eq!(
        (composed.0, composed.0),
        (composed.1, composed.2),
        "both shapes compose the same messages"
    );
    let per_message = |d: Duration| d.as_secs_f64() * 1e6 / composed.0 as f64;
    println!(
        "| compose {} notices for {} readers, all in one call | {:.2} µs per message |",
        events.len(),
        readers.len(),
        per_message(batch)
    );
    println!(
        "| the same, one patron per call on a fresh instance, one thread | {:.2} µs per message |",
        per_message(per_patron)
    );
    println!(
        "| **ratio, one patron per call / all in one call, one thread each** | **{:.2}×** |",
        per_patron.as_secs_f64() / batch.as_secs_f64()
    );
    println!(
        "| one patron per call, on {cores} threads as the pipeline runs it | {:.2} µs per message (wall) |",
        per_message(per_patron_parallel)
    );

    // 5. The Python scorer (`loyalty`, record form: Python authors write
    // `scoring`), against the same model written natively.
    let loyalty = host.load_scorer(plugins::LOYALTY).unwrap();
    let python_n = n.min(2_000);
    let few = &patrons[..python_n];
    let scored = pipeline.score(&loyalty, &few[..100]).unwrap();
    for (s, p) in scored.iter().zip(few) {
        assert_eq!(s.segment, loyalty_native(p).1, "{}", p.id);
    }
    let python = median(|| {
        std::hint::black_box(pipeline.score(&loyalty, few).unwrap());
    });
    let native_loyalty = median(|| {
        let out: Vec<_> = few.iter().map(loyalty_native).collect();
        std::hint::black_box(out);
    });
    let per_few = |d: Duration| d.as_secs_f64() * 1e6 / python_n as f64;
    println!(
        "| Python scorer (`loyalty`, records), whole pipeline, per patron ({python_n} patrons) | {:.3} µs |",
        per_few(python)
    );
    println!(
        "| the same model natively, per patron | {:.3} µs |",
        per_few(native_loyalty)
    );
    println!(
        "| **ratio, Python pipeline / native model** | **{:.1}×** |",
        python.as_secs_f64() / native_loyalty.as_secs_f64()
    );
    // The same model in Python in both forms (`loyalty-columns`), the two
    // interleaved; and the guest's share, without the pipeline.
    let py_columns = host.load_scorer(plugins::LOYALTY_COLUMNS).unwrap();
    assert!(py_columns.is_columnar());
    let py_records = py_columns.clone().with_records();
    let (mut in_columns, mut in_records) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        for (scorer, times) in [
            (&py_columns, &mut in_columns),
            (&py_records, &mut in_records),
        ] {
            let start = Instant::now();
            std::hint::black_box(pipeline.score(scorer, few).unwrap());
            times.push(start.elapsed());
        }
    }
    let (py_c, py_r) = (sorted(in_columns)[RUNS / 2], sorted(in_records)[RUNS / 2]);
    println!(
        "| Python, both forms (`loyalty-columns`), whole pipeline, columns / records, per patron | {:.3} µs / {:.3} µs |",
        per_few(py_c),
        per_few(py_r)
    );
    println!(
        "| **ratio, Python pipeline / native model, columns / records** | **{:.1}× / {:.1}×** |",
        py_c.as_secs_f64() / native_loyalty.as_secs_f64(),
        py_r.as_secs_f64() / native_loyalty.as_secs_f64()
    );

    // 3. Cold compile against the cache. The cache trusts a stamp of an
    // entry only once the entry is older than a clock tick can hide (two
    // seconds), so each component is loaded once more after that, as any
    // load but the first after a compile would be, before timing.
    let cache = tempfile::tempdir().unwrap();
    let cached = Host::builder().cache_dir(cache.path()).build().unwrap();
    // The largest component there is: the Python scorer, a whole
    // interpreter. And the same component padded to 30 MB with a custom
    // section, as large as the goal: the file is larger, the
    // compiled code is the same.
    let python = loyalty.plugin().component().path.clone();
    let padded = tempfile::tempdir().unwrap();
    padded_copy(&python, padded.path(), 30 << 20);
    let mut rows = Vec::new();
    for (label, dir) in [
        (
            "the engagement component (Rust)",
            Path::new(plugins::ENGAGEMENT),
        ),
        ("the Python component", Path::new(plugins::LOYALTY)),
        ("the Python component padded", padded.path()),
    ] {
        let first = cached.load(dir).unwrap();
        let size = first.component().size;
        let cold = first.component().load_time;
        drop(first);
        rows.push((label, dir, size, cold));
    }
    std::thread::sleep(Duration::from_millis(2100));
    for (label, dir, size, cold) in rows {
        let checked = cached.load(dir).unwrap().component().load_time;
        let warm = sorted(
            (0..RUNS)
                .map(|_| cached.load(dir).unwrap().component().load_time)
                .collect(),
        )[RUNS / 2];
        println!(
            "| {label} ({:.1} MB): compile cold / first load, checked in full / load from the cache | {:.0} ms / {:.2} ms / **{:.3} ms** ({:.0}×) |",
            size as f64 / 1e6,
            cold.as_secs_f64() * 1e3,
            checked.as_secs_f64() * 1e3,
            warm.as_secs_f64() * 1e3,
            cold.as_secs_f64() / warm.as_secs_f64()
        );
    }
}

/// Copies the plugin whose component is `component` into `dir`, its
/// component padded with a custom section to `size` bytes.
fn padded_copy(component: &Path, dir: &Path, size: usize) {
    let from = component.parent().unwrap();
    std::fs::copy(from.join("plugin.toml"), dir.join("plugin.toml")).unwrap();
    let mut bytes = std::fs::read(component).unwrap();
    let name = b"lectern-bench-padding";
    let payload = size.saturating_sub(bytes.len() + name.len() + 12);
    let mut section = Vec::new();
    leb128(&mut section, name.len() as u64);
    section.extend_from_slice(name);
    section.resize(section.len() + payload, 0);
    bytes.push(0); // a custom section
    leb128(&mut bytes, section.len() as u64);
    bytes.extend_from_slice(&section);
    std::fs::write(dir.join(component.file_name().unwrap()), bytes).unwrap();
}

fn leb128(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// `plugins/python/loyalty/app.py`, natively: value and segment.
fn loyalty_native(p: &Patron) -> (f32, &'static str, Vec<String>) {
    let mut reasons = Vec::new();
    let mut years = 0.0f64;
    if let Some(e) = p.enrolled_on {
        years = ((as_of() - e).num_days() as f64 / 365.25).max(0.0);
        reasons.push(format!("a member for {years:.1} years"));
    }
    let tenure = years.min(10.0) * 4.0;
    let mut steadiness = 0.0;
    if let Some(a) = p.activity.filter(|a| a.loans_365d > 0) {
        let even = (f64::from(a.loans_90d) / (f64::from(a.loans_365d) / 4.0)).min(1.0);
        steadiness = 40.0 * even + f64::from(a.loans_365d.min(20));
        reasons.push(format!(
            "borrowed {} items this year, {} of them lately",
            a.loans_365d, a.loans_90d
        ));
    }
    let value = (tenure + steadiness).clamp(0.0, 100.0);
    let segment = if value >= 70.0 {
        "loyal"
    } else if value >= 35.0 {
        "regular"
    } else {
        "new-or-occasional"
    };
    if reasons.is_empty() {
        reasons.push("no membership date or use recorded".to_string());
    }
    (value as f32, segment, reasons)
}

/// What the plugin does per patron, natively: read the fields it declares
/// and run the model.
fn native_score(p: &Patron, t: &model::Thresholds) -> model::Output {
    // The plugin sees reading history only with consent; so does the baseline.
    let consented = p.consents.is_some_and(|c| c.reading_history);
    let subject_loans: Vec<u32> = p
        .interests
        .iter()
        .filter(|_| consented)
        .flat_map(|i| i.values().copied())
        .collect();
    let a = p.activity.unwrap_or_default();
    let attr = |k: &str| p.attributes.as_ref().and_then(|a| a.get(k));
    model::score(
        &model::Input {
            category: p.category.as_deref(),
            loans_30d: a.loans_30d,
            loans_90d: a.loans_90d,
            loans_365d: a.loans_365d,
            renewals_and_holds: a.renewals_365d + a.holds_365d,
            days_since_last_activity: a.days_since_last_activity,
            subject_loans: &subject_loans,
            researcher: attr("research-project").is_some()
                || attr("academic-leader").is_some_and(|v| v == "true" || v == "yes"),
            days_since_enrolled: p
                .enrolled_on
                .and_then(|e| u32::try_from((as_of() - e).num_days()).ok()),
        },
        t,
    )
}

fn median(f: impl FnMut()) -> Duration {
    median_of(RUNS, f)
}

fn median_of(runs: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm up
    let times = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    sorted(times)[runs / 2]
}

fn sorted(mut v: Vec<Duration>) -> Vec<Duration> {
    v.sort();
    v
}

/// A deterministic library: Zipf-like use, a few researchers, some lapsed.
fn synthetic(n: usize) -> Vec<Patron> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |m: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % m
    };
    const CATEGORIES: [&str; 5] = [
        "undergraduate",
        "undergraduate",
        "graduate",
        "faculty",
        "public",
    ];
    const SUBJECTS: [&str; 12] = [
        "QA", "QD", "QC", "QH", "R", "K", "PR", "D", "HF", "T", "Z", "B",
    ];
    (0..n)
        .map(|i| {
            let heavy = 200 / (1 + next(40) as u32);
            let loans_365d = heavy + next(5) as u32;
            let interests: BTreeMap<String, u32> = (0..next(6))
                .map(|_| (SUBJECTS[next(12) as usize].to_string(), 1 + next(20) as u32))
                .collect();
            let mut attributes =
                BTreeMap::from([("department".to_string(), "chemistry".to_string())]);
            if next(10) == 0 {
                attributes.insert("research-project".into(), format!("NSFC-{i}"));
            }
            Patron {
                id: format!("P{i:07}"),
                name: Some(format!("Reader {i}")),
                email: Some(format!("reader{i}@example.org")),
                category: Some(CATEGORIES[next(5) as usize].to_string()),
                home_branch: Some("MAIN".into()),
                attributes: Some(attributes),
                consents: Some(Consents {
                    reading_history: next(3) != 0,
                    marketing: next(2) == 0,
                }),
                activity: Some(Activity {
                    loans_30d: loans_365d / 12,
                    loans_90d: loans_365d / 4,
                    loans_365d,
                    renewals_365d: next(10) as u32,
                    holds_365d: next(6) as u32,
                    overdue_now: next(2) as u32,
                    days_since_last_activity: (next(20) != 0).then(|| next(500) as u32),
                    ..Activity::default()
                }),
                interests: Some(interests),
                enrolled_on: as_of().checked_sub_days(chrono::Days::new(next(5000))),
                ..Patron::default()
            }
        })
        .collect()
}
