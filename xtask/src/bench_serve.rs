//! `cargo xtask bench serve [--seconds N] [--rate R]`: event intake under
//! load. Debian's `wrk` posts Lectern events, each with its own id, at
//! about R requests a second (1,000 by default) for N seconds (60) to a
//! release `lectern serve` on the embedded store, then to a bare axum
//! handler that does no work (`host/serve/examples/bare.rs`), in the same
//! run. It prints the rate reached, errors, latency percentiles, the
//! service's memory (resident set, sampled every second) and the ratio
//! of the service's latency to the bare handler's.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// wrk's Lua: a unique event per request, paced so that `connections`
/// connections make about `rate` requests a second together.
const SCRIPT: &str = r#"
local counter = 0
local thread_id = 0
local threads = {}
function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("LECTERN_TOKEN")
request = function()
  counter = counter + 1
  local id = thread_id .. "-" .. counter
  local body = string.format('{"id":"e%s","kind":"checkout","at":"2026-11-20T10:00:00Z","patron":"G%08d","change":{"change":"loan","id":"l%s","loaned_on":"2026-11-20","due_on":"2026-12-18"}}', id, counter % 1000, id)
  return wrk.format(nil, "/v1/events", nil, body)
end
delay = function()
  return tonumber(os.getenv("LECTERN_DELAY_MS"))
end
done = function(summary, latency, requests)
  io.write(string.format(
    "RESULT requests=%d duration_us=%d errors=%d status_errors=%d timeouts=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
"#;

const CONNECTIONS: u64 = 10;

struct Run {
    requests: u64,
    seconds: f64,
    errors: u64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    rss_kib: Vec<u64>,
}

/// Starts `cmd`, which prints `… http://ADDR` on its first line; returns
/// the child and the base URL.
fn start(cmd: &mut Command) -> Result<(Child, String)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start {cmd:?}"))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .filter(|a| !a.is_empty())
        .with_context(|| format!("no address in {line:?}"))?;
    Ok((child, format!("http://{addr}")))
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn load(base: &str, token: &str, pid: u32, seconds: u64, rate: u64, script: &Path) -> Result<Run> {
    // A connection waits this long after each answer; the answer's own
    // time comes on top, so a millisecond less keeps the rate at or above
    // the one asked for.
    let delay_ms = (CONNECTIONS * 1000 / rate.max(1)).saturating_sub(1).max(1);
    let mut wrk = Command::new("wrk")
        .args(["-t2", &format!("-c{CONNECTIONS}"), &format!("-d{seconds}s")])
        .args(["--timeout", "5s", "--latency", "-s"])
        .arg(script)
        .arg(base)
        .env("LECTERN_TOKEN", token)
        .env("LECTERN_DELAY_MS", delay_ms.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .context("failed to run wrk; install Debian's wrk")?;
    let mut rss = Vec::new();
    let started = Instant::now();
    while wrk.try_wait()?.is_none() {
        if let Some(k) = rss_kib(pid) {
            rss.push(k);
        }
        std::thread::sleep(Duration::from_secs(1));
        if started.elapsed() > Duration::from_secs(seconds + 60) {
            let _ = wrk.kill();
            bail!("wrk did not finish");
        }
    }
    let out = wrk.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .with_context(|| format!("wrk printed no result:\n{text}"))?;
    let get = |key: &str| -> Result<u64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {key} in {line}"))
    };
    let ms = |key: &str| -> Result<f64> { Ok(get(key)? as f64 / 1000.0) };
    Ok(Run {
        requests: get("requests")?,
        seconds: get("duration_us")? as f64 / 1e6,
        errors: get("errors")? + get("status_errors")?,
        p50_ms: ms("p50_us")?,
        p90_ms: ms("p90_us")?,
        p99_ms: ms("p99_us")?,
        p999_ms: ms("p999_us")?,
        max_ms: ms("max_us")?,
        rss_kib: rss,
    })
}

fn lectern(bin: &Path, dir: &Path) -> Command {
    let mut c = Command::new(bin);
    c.current_dir(dir)
        .arg("--db")
        .arg(dir.join("lectern.db"))
        .arg("--config")
        .arg(dir.join("lectern.toml"));
    c
}

fn report(name: &str, r: &Run) {
    let every_ten: Vec<String> = r
        .rss_kib
        .iter()
        .step_by(10)
        .map(|k| format!("{}", k / 1024))
        .collect();
    let first = r.rss_kib.get(2).or(r.rss_kib.first()).copied().unwrap_or(0);
    let last = r.rss_kib.last().copied().unwrap_or(0);
    let max = r.rss_kib.iter().max().copied().unwrap_or(0);
    println!(
        "{name:>14}: {:>7} requests in {:.1} s = {:>6.0}/s, {} errors; latency p50 {:.2} ms, \
         p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; RSS {} → {} KiB (max {}); \
         RSS every 10 s, MiB: {}",
        r.requests,
        r.seconds,
        r.requests as f64 / r.seconds,
        r.errors,
        r.p50_ms,
        r.p90_ms,
        r.p99_ms,
        r.p999_ms,
        r.max_ms,
        first,
        last,
        max,
        every_ten.join(" ")
    );
}

pub fn run(args: &[String], plugins: &Path, cargo: impl Fn() -> Command) -> Result<()> {
    let mut seconds = 60u64;
    let mut rate = 1000u64;
    let mut args = args.iter();
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> Result<u64> {
            args.next()
                .and_then(|v| v.parse().ok())
                .filter(|v| *v > 0)
                .with_context(|| format!("{what} takes a whole number above 0"))
        };
        match a.as_str() {
            "--seconds" => seconds = num("--seconds")?,
            "--rate" => rate = num("--rate")?,
            other => bail!("unknown argument {other}; give --seconds N and --rate R"),
        }
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk is missing: `apt-get install wrk`");
    }
    eprintln!("building lectern and the bare handler (release)");
    // Two builds: naming an example builds only examples.
    for args in [
        &["build", "--release", "-p", "lectern-cli"][..],
        &[
            "build",
            "--release",
            "-p",
            "lectern-serve",
            "--example",
            "bare",
        ][..],
    ] {
        if !cargo().args(args).status()?.success() {
            bail!("the release build failed");
        }
    }
    let target = xtask::repo_root().join("target/release");
    let bin = target.join("lectern");
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    std::fs::write(
        dir.join("lectern.toml"),
        format!(
            "[privacy]\npolicy = {:?}\n\n[serve]\nlisten = \"127.0.0.1:0\"\nmessengers = [{:?}]\n\
             inbox-every-secs = 1\n",
            plugins.join("baseline-privacy"),
            plugins.join("notices"),
        ),
    )?;
    let ok = |c: &mut Command| -> Result<String> {
        let out = c.output()?;
        if !out.status.success() {
            bail!("{c:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let gen_dir: PathBuf = dir.join("gen");
    ok(lectern(&bin, dir)
        .args(["gen", "--patrons", "1000", "--out"])
        .arg(&gen_dir))?;
    let files: Vec<PathBuf> = ["patrons.csv", "loans.csv", "holds.csv", "use.csv"]
        .iter()
        .map(|f| gen_dir.join(f))
        .collect();
    ok(lectern(&bin, dir)
        .args(["import", "--format", "csv"])
        .args(&files))?;
    let token = ok(lectern(&bin, dir).args(["staff", "add", "bench", "--role", "ils"]))?;
    let script = dir.join("events.lua");
    std::fs::write(&script, SCRIPT)?;

    let (mut serve, base) = start(lectern(&bin, dir).arg("serve"))?;
    eprintln!("loading lectern serve at {base} for {seconds} s at about {rate}/s");
    let service = load(&base, &token, serve.id(), seconds, rate, &script);
    let _ = serve.kill();
    let _ = serve.wait();
    let service = service?;

    let (mut bare, base) = start(&mut Command::new(target.join("examples/bare")))?;
    eprintln!("loading the bare handler at {base}");
    let baseline = load(&base, &token, bare.id(), seconds, rate, &script);
    let _ = bare.kill();
    let _ = bare.wait();
    let baseline = baseline?;

    println!("event intake, {CONNECTIONS} connections, paced for about {rate}/s, {seconds} s:");
    report("lectern serve", &service);
    report("bare axum", &baseline);
    println!(
        "ratio service / bare: p50 {:.1}×, p99 {:.1}×",
        service.p50_ms / baseline.p50_ms.max(0.001),
        service.p99_ms / baseline.p99_ms.max(0.001)
    );
    let accepted =
        ok(lectern(&bin, dir).args(["--json", "jobs", "--job", "inbox", "--limit", "1"]))?;
    println!("last inbox job: {accepted}");
    Ok(())
}
