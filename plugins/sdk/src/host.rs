//! What the host offers a plugin: a log, the plugin's configuration and the
//! host's "today". Nothing else is reachable from inside the sandbox.

use crate::__private::scorer::lectern::crm::host as raw;
use crate::Date;

pub use raw::LogLevel;

/// Writes a line to the host's log, tagged with this plugin's id.
pub fn log(level: LogLevel, message: &str) {
    raw::log(level, message);
}

/// The library's setting for `key`, or the manifest's default.
pub fn config(key: &str) -> Option<String> {
    raw::config(key)
}

/// A configuration value parsed as a number, or `default` when unset.
///
/// Returns an error that names the key when the value is not a number.
pub fn config_f32(key: &str, default: f32) -> Result<f32, crate::PluginError> {
    match config(key) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| {
            crate::PluginError::BadConfig(format!("`{key}` must be a number, got `{v}`"))
        }),
    }
}

/// The host's "today": score as of this date, never the clock.
pub fn today() -> Date {
    raw::today()
}
