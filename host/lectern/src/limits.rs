//! The resource limits every plugin call runs under.

use std::time::Duration;

/// Limits for one plugin call (one batch).
///
/// The host starts every plugin with [`Limits::default`]; a manifest may
/// override each value in its `[limits]` table, up to the host's maxima
/// ([`Limits::maxima`], or what the embedder sets with
/// [`HostBuilder::max_limits`](crate::HostBuilder::max_limits)).
///
/// | limit | default | maximum | `plugin.toml` key |
/// |---|---|---|---|
/// | wall-clock deadline | 2 s | 60 s | `limits.deadline-ms` |
/// | linear memory | 128 MiB | 1 GiB | `limits.memory-mib` |
/// | text returned (messages, reasons, segments) | 4 MiB | 64 MiB | `limits.output-kib` |
/// | log and stdout/stderr | 64 KiB | 1 MiB | `limits.log-kib` |
/// | work, in fuel (about one unit per instruction) | none | none | `limits.fuel` |
///
/// The wasm stack is capped for the whole engine, at 1 MiB by default (see
/// [`HostBuilder::max_wasm_stack`](crate::HostBuilder::max_wasm_stack)):
/// wasmtime sets it per engine, not per call, so manifests cannot change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long one call may run, measured in epoch ticks of the host.
    pub deadline: Duration,
    /// The most linear memory a plugin instance may grow to, in bytes.
    pub memory_bytes: u64,
    /// The most text a call may return, in bytes.
    pub output_bytes: usize,
    /// The most log and stdout/stderr text kept per call, in bytes; the rest is
    /// counted and dropped.
    pub log_bytes: usize,
    /// A deterministic budget of work per call, in wasmtime fuel (about one
    /// unit per WebAssembly instruction), beside the wall-clock deadline:
    /// the same plugin on the same input runs out at the same point on every
    /// machine. `None`: no budget, and no metering cost.
    pub fuel: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(2),
            memory_bytes: 128 << 20,
            output_bytes: 4 << 20,
            log_bytes: 64 << 10,
            fuel: None,
        }
    }
}

impl Limits {
    /// The host's default maxima, which no manifest can exceed.
    pub fn maxima() -> Limits {
        Limits {
            deadline: Duration::from_secs(60),
            memory_bytes: 1 << 30,
            output_bytes: 64 << 20,
            log_bytes: 1 << 20,
            // A budget only ever restricts: no ceiling on it.
            fuel: None,
        }
    }
}
