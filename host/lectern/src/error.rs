//! The errors the library returns. Each one says what failed, where, and
//! what to do next, and has an [`ErrorKind`] that a front end maps to an
//! exit code or an HTTP status without reading the message.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input (a file, a record, an argument) is not what it must be.
    #[error("{where_}: {message}")]
    Invalid {
        /// Where: a file with its line or record and field, or an
        /// argument's name.
        where_: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// What was asked for does not exist: no such patron, run or message.
    #[error("{0}")]
    NotFound(String),
    /// The privacy policy or the caller's role does not allow it.
    #[error("{0}")]
    Denied(String),
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
    /// The library's configuration or keys are wrong or missing.
    #[error("{0:#}")]
    Config(anyhow::Error),
    /// The store failed: it cannot be opened, read or written.
    #[error("{0:#}")]
    Store(anyhow::Error),
}

impl From<crate::input::InputError> for Error {
    fn from(e: crate::input::InputError) -> Self {
        Error::from_anyhow(anyhow::Error::new(e), Error::Store)
    }
}

/// The kind of an [`Error`], for a front end to map: to an exit code, or to
/// 400, 404, 403, 502 and 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input, with its location.
    Invalid,
    /// No such thing.
    NotFound,
    /// Denied by policy or role.
    Denied,
    /// A plugin failed to load or failed during a call.
    Plugin,
    /// The store failed.
    Store,
    /// The configuration is wrong.
    Config,
}

impl Error {
    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid { .. } => ErrorKind::Invalid,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Denied(_) => ErrorKind::Denied,
            Error::Manifest { .. } | Error::Load { .. } | Error::Plugin { .. } => ErrorKind::Plugin,
            Error::Config(_) => ErrorKind::Config,
            Error::Store(_) => ErrorKind::Store,
        }
    }

    /// An invalid input at `where_`.
    pub fn invalid(where_: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Invalid {
            where_: where_.into(),
            message: message.into(),
        }
    }

    /// A store error; an input error or an import's skipped record inside
    /// it becomes [`Error::Invalid`] with its location.
    pub(crate) fn store(e: anyhow::Error) -> Error {
        Error::from_anyhow(e, Error::Store)
    }

    /// A configuration error, likewise.
    pub(crate) fn config(e: anyhow::Error) -> Error {
        Error::from_anyhow(e, Error::Config)
    }

    fn from_anyhow(e: anyhow::Error, otherwise: fn(anyhow::Error) -> Error) -> Error {
        let e = match e.downcast::<Error>() {
            Ok(inner) => return inner,
            Err(e) => e,
        };
        if let Some(input) = e.downcast_ref::<crate::input::InputError>() {
            let mut where_ = input.path.display().to_string();
            if input.line > 0 {
                where_ += &format!(":{}", input.line);
            }
            if let Some(field) = &input.field {
                where_ += &format!(": field `{field}`");
            }
            return Error::invalid(where_, input.message.clone());
        }
        if let Some(skip) = e.downcast_ref::<crate::import::Skip>() {
            let mut where_ = skip.file.display().to_string();
            if skip.record > 0 {
                where_ += &format!(": record {}", skip.record);
            }
            if let Some(field) = &skip.field {
                where_ += &format!(": field `{field}`");
            }
            return Error::invalid(where_, skip.reason.clone());
        }
        otherwise(e)
    }

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
    /// It used up its deterministic budget of work.
    OutOfFuel {
        /// The budget it had.
        fuel: u64,
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
            Failure::OutOfFuel { fuel } => write!(
                f,
                "used up its budget of {fuel} fuel (about one unit per instruction); if the \
                 plugin needs more, raise `limits.fuel` in its plugin.toml"
            ),
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
