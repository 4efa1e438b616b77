//! What plugins log and print, as lines the host hands to a sink.

use std::sync::Arc;

/// One line a plugin logged or printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The plugin's id.
    pub plugin: String,
    /// How important it is.
    pub level: LogLevel,
    /// Where it came from.
    pub source: LogSource,
    /// The text, capped.
    pub message: String,
}

/// How important a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    /// The contract's `host.log`.
    Log,
    /// The guest's standard output.
    Stdout,
    /// The guest's standard error.
    Stderr,
    /// The host, about the plugin: for example, how much log it dropped.
    Host,
}

/// Receives every line plugins log. The default sends them to `tracing`,
/// under the target `lectern::plugin`.
pub type LogSink = Arc<dyn Fn(&LogLine) + Send + Sync>;

pub(crate) fn tracing_sink() -> LogSink {
    Arc::new(|line: &LogLine| {
        let (plugin, source, message) = (&line.plugin, line.source, &line.message);
        match line.level {
            LogLevel::Debug => {
                tracing::debug!(target: "lectern::plugin", plugin, ?source, "{message}")
            }
            LogLevel::Info => {
                tracing::info!(target: "lectern::plugin", plugin, ?source, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "lectern::plugin", plugin, ?source, "{message}")
            }
            LogLevel::Error => {
                tracing::error!(target: "lectern::plugin", plugin, ?source, "{message}")
            }
        }
    })
}

/// What one plugin call cost: what `lectern plugin test` reports, handed to
/// the observer set with [`HostBuilder::call_observer`](crate::HostBuilder::call_observer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStats {
    /// The plugin's id.
    pub plugin: String,
    /// From the fresh store to the call's end.
    pub wall: std::time::Duration,
    /// The most linear memory the plugin's instance held at once.
    pub peak_memory_bytes: u64,
    /// The fuel the call burned, about one unit per WebAssembly
    /// instruction; `None` for a plugin without a fuel budget.
    pub fuel_used: Option<u64>,
    /// Whether the call succeeded.
    pub ok: bool,
}

/// Where per-call statistics go.
pub type CallObserver = Arc<dyn Fn(&CallStats) + Send + Sync>;
