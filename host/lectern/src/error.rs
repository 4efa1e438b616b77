//! The errors the library returns. Each one says what failed, where, and
//! what to do next.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `plugin.toml` is malformed or asks for something the host refuses.
    #[error("{}: {message}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// Which key, which value, and why.
        message: String,
    },
    /// A component could not be loaded as the plugin its manifest describes.
    #[error("plugin `{plugin}`: {message}")]
    Load {
        /// The plugin's id, or its path when the id is not known yet.
        plugin: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A plugin failed during a call. The host and other plugins are fine.
    #[error("plugin `{}` {} failed: {failure}", plugin.id, plugin.version)]
    Plugin {
        /// Which plugin.
        plugin: PluginRef,
        /// How it failed.
        failure: Failure,
    },
    /// The host could not be set up, or an input could not be used.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Error {
    /// How the plugin failed, if this is a plugin failure.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Error::Plugin { failure, .. } => Some(failure),
            _ => None,
        }
    }
}

/// A plugin, by id and version, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRef {
    /// The manifest's `plugin.id`.
    pub id: String,
    /// The manifest's `plugin.version`.
    pub version: String,
}

/// How a plugin call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// It ran past its wall-clock deadline.
    Timeout {
        /// The deadline it had.
        deadline: Duration,
    },
    /// It tried to grow its memory past its cap.
    OutOfMemory {
        /// The cap, in bytes.
        limit: u64,
    },
    /// It panicked or aborted.
    Panic {
        /// What it printed before dying, if anything.
        message: String,
    },
    /// It overflowed its stack.
    StackOverflow,
    /// Any other trap.
    Trap {
        /// The trap's description.
        message: String,
    },
    /// It returned more output than its cap allows.
    OutputTooLarge {
        /// Bytes of text it returned.
        size: usize,
        /// The cap.
        limit: usize,
    },
    /// It returned something that breaks the contract, such as a score of 250.
    BadOutput {
        /// What was wrong.
        message: String,
    },
    /// It reported an error on purpose.
    Guest(GuestError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Timeout { deadline } => write!(
                f,
                "timed out after its deadline of {} ms; if the plugin needs longer, raise \
                 `limits.deadline-ms` in its plugin.toml",
                deadline.as_millis()
            ),
            Failure::OutOfMemory { limit } => write!(
                f,
                "ran out of memory: it tried to grow past its cap of {} MiB; if it needs more, \
                 raise `limits.memory-mib` in its plugin.toml",
                limit >> 20
            ),
            Failure::Panic { message } if message.is_empty() => f.write_str("panicked"),
            Failure::Panic { message } => write!(f, "panicked: {message}"),
            Failure::StackOverflow => f.write_str("overflowed its stack"),
            Failure::Trap { message } => write!(f, "trapped: {message}"),
            Failure::OutputTooLarge { size, limit } => write!(
                f,
                "returned {size} bytes of text, over its cap of {limit}; raise \
                 `limits.output-kib` in its plugin.toml if that is expected"
            ),
            Failure::BadOutput { message } => write!(f, "broke the contract: {message}"),
            Failure::Guest(e) => write!(f, "{e}"),
        }
    }
}

/// An error a plugin reported on purpose: the contract's `plugin-error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestError {
    /// The input was not what the plugin can work with.
    InvalidInput(String),
    /// The plugin's configuration is wrong.
    BadConfig(String),
    /// Anything else.
    Other(String),
}

impl fmt::Display for GuestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestError::InvalidInput(m) => write!(f, "invalid input: {m}"),
            GuestError::BadConfig(m) => write!(f, "bad configuration: {m}"),
            GuestError::Other(m) => write!(f, "{m}"),
        }
    }
}
