//! `testkit`: a scorer that misbehaves on request, for the host's tests.
//!
//! Its `mode` configuration key picks the behaviour:
//!
//! | mode | what it does |
//! |---|---|
//! | `echo` | reports, as reasons, the id it saw (`id:TOKEN`) and which patron fields arrived (`field:NAME`) |
//! | `dump` | reports every field of the record it saw, one reason each (`activity=Some(…)`) |
//! | `loop` | spins forever |
//! | `alloc` | allocates and touches 1 GiB |
//! | `panic` | panics |
//! | `error` | returns a plugin error |
//! | `snoop` | tries to read a file, the environment, the arguments and the network, and reports what it got |
//! | `huge-output` | returns 4 MiB of reasons |
//! | `chatty` | logs and prints far more than any cap allows |
//! | `bad-score` | returns a score of 250 |
//! | `sleep` | sleeps for an hour through WASI's monotonic clock |
//! | `doze` | sleeps a millisecond at a time, forever |
//! | `nap` | sleeps 50 ms and reports how long the clock says it slept |
//! | `inject` | logs a line with a newline and returns a reason with a terminal escape code |
//! | `long-error` | returns a plugin error of 10 MiB |
//! | `bad-segment` | puts the patron in a segment its manifest does not list |

use std::io::Write;

use lectern_plugin::host::{LogLevel, config, log};
use lectern_plugin::{Patron, PluginError, Score, Scorer};

struct Testkit;

impl Scorer for Testkit {
    fn score(patron: &Patron) -> Result<Score, PluginError> {
        let mode = config("mode").unwrap_or_else(|| "echo".to_string());
        let score = Score::new(patron, 50.0, mode.as_str());
        match mode.as_str() {
            "echo" => Ok(present_fields(patron)
                .into_iter()
                .fold(score.reason(format!("id:{}", patron.id)), |s, f| {
                    s.reason(format!("field:{f}"))
                })),
            "dump" => Ok(dump(patron).into_iter().fold(score, Score::reason)),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let v = vec![7u8; 1 << 30];
                Ok(score.reason(format!("allocated {}", std::hint::black_box(&v).len())))
            }
            "panic" => panic!("testkit panicked on purpose"),
            "error" => Err(PluginError::Other("testkit failed on purpose".to_string())),
            "snoop" => Ok(snoop().into_iter().fold(score, |s, r| s.reason(r))),
            "huge-output" => Ok((0..4096).fold(score, |s, _| s.reason("x".repeat(1024)))),
            "chatty" => {
                for i in 0..10_000 {
                    log(LogLevel::Info, &format!("log line {i} {}", "y".repeat(200)));
                    println!("stdout line {i} {}", "z".repeat(200));
                }
                let _ = std::io::stderr().write_all(b"a line on stderr\n");
                Ok(score.reason("chatted"))
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(score.reason("woke after an hour"))
            }
            "doze" => loop {
                std::thread::sleep(std::time::Duration::from_millis(1));
            },
            "nap" => {
                let start = std::time::Instant::now();
                std::thread::sleep(std::time::Duration::from_millis(50));
                Ok(score.reason(format!("slept {} ms", start.elapsed().as_millis())))
            }
            "inject" => {
                log(LogLevel::Info, "first\nlectern: error: forged line");
                Ok(score.reason("\u{1b}[2Jcleared the screen"))
            }
            "long-error" => Err(PluginError::Other("e".repeat(10 << 20))),
            "bad-segment" => Ok(score),
            "bad-score" => Ok(Score {
                value: 250.0,
                ..score
            }),
            other => Err(PluginError::BadConfig(format!("unknown mode `{other}`"))),
        }
    }
}

fn dump(p: &Patron) -> Vec<String> {
    vec![
        format!("id={:?}", p.id),
        format!("card-number={:?}", p.card_number),
        format!("name={:?}", p.name),
        format!("email={:?}", p.email),
        format!("phone={:?}", p.phone),
        format!("birth-date={:?}", p.birth_date),
        format!("age-band={:?}", p.age_band),
        format!("category={:?}", p.category),
        format!("home-branch={:?}", p.home_branch),
        format!("enrolled-on={:?}", p.enrolled_on),
        format!("expires-on={:?}", p.expires_on),
        format!("attributes={:?}", p.attributes),
        format!("consents={:?}", p.consents),
        format!("locale={:?}", p.locale),
        format!("channels={:?}", p.channels),
        format!("activity={:?}", p.activity),
        format!("interests={:?}", p.interests),
        format!("segments={:?}", p.segments),
    ]
}

fn present_fields(p: &Patron) -> Vec<&'static str> {
    let fields: [(&'static str, bool); 16] = [
        ("card-number", p.card_number.is_some()),
        ("name", p.name.is_some()),
        ("email", p.email.is_some()),
        ("phone", p.phone.is_some()),
        ("birth-date", p.birth_date.is_some()),
        ("age-band", p.age_band.is_some()),
        ("category", p.category.is_some()),
        ("home-branch", p.home_branch.is_some()),
        ("enrolled-on", p.enrolled_on.is_some()),
        ("expires-on", p.expires_on.is_some()),
        ("attributes", p.attributes.is_some()),
        ("consents", p.consents.is_some()),
        ("locale", p.locale.is_some()),
        ("channels", p.channels.is_some()),
        ("activity", p.activity.is_some()),
        ("interests", p.interests.is_some()),
    ];
    fields
        .iter()
        .filter(|(_, some)| *some)
        .map(|(n, _)| *n)
        .collect()
}

/// Tries every door the sandbox should keep shut; each line says what opened.
fn snoop() -> Vec<String> {
    let mut out = Vec::new();
    for path in ["/etc/passwd", "/etc/hostname", "plugin.toml", "."] {
        let r = std::fs::read(path);
        out.push(format!("read {path}: {}", verdict(r.map(|b| b.len()))));
        let d = std::fs::read_dir(path).map(|d| d.count());
        out.push(format!("list {path}: {}", verdict(d)));
    }
    out.push(format!(
        "write /tmp/x: {}",
        verdict(std::fs::write("/tmp/x", b"x"))
    ));
    out.push(format!("env vars: {}", std::env::vars().count()));
    out.push(format!("args: {}", std::env::args().count()));
    let tcp = std::net::TcpStream::connect(("127.0.0.1", 80)).map(|_| ());
    out.push(format!("tcp 127.0.0.1:80: {}", verdict(tcp)));
    let udp = std::net::UdpSocket::bind(("0.0.0.0", 0)).map(|_| ());
    out.push(format!("udp bind: {}", verdict(udp)));
    let dns = std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 80)).map(|a| a.count());
    out.push(format!("dns localhost: {}", verdict(dns)));
    out
}

fn verdict<T: std::fmt::Debug>(r: std::io::Result<T>) -> String {
    match r {
        Ok(v) => format!("OPENED {v:?}"),
        Err(e) => format!("denied ({e})"),
    }
}

lectern_plugin::export_scorer!(Testkit);
