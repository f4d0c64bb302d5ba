//! What can go wrong while loading a bootstrap, and while deriving resource names from it.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// A bootstrap could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootstrapError {
    /// The bootstrap file could not be read.
    #[error("cannot read xDS bootstrap file {}: {source}", path.display())]
    Io {
        /// The file that was asked for.
        path: PathBuf,
        /// Why reading it failed.
        #[source]
        source: std::io::Error,
    },
    /// The text is not JSON.
    #[error("xDS bootstrap is not valid JSON: {message} at line {line} column {column}")]
    Json {
        /// The line of the first syntax error (1-based).
        line: usize,
        /// The column of the first syntax error (1-based).
        column: usize,
        /// What the JSON parser found wrong.
        message: String,
    },
    /// The JSON is not a valid bootstrap: every problem found, sorted by field as gRPC C-core sorts them.
    #[error("errors validating xDS bootstrap: [{}]", join(problems))]
    Invalid {
        /// Each problem, naming the JSON field at fault.
        problems: Vec<BootstrapProblem>,
    },
    /// Neither environment variable names a bootstrap (only from [`super::Bootstrap::from_env`]).
    #[error(
        "environment variables {} or {} not defined",
        super::BOOTSTRAP_FILE_ENV,
        super::BOOTSTRAP_CONFIG_ENV
    )]
    NotConfigured,
}

impl BootstrapError {
    /// The validation problems, empty unless this is [`BootstrapError::Invalid`].
    #[must_use]
    pub fn problems(&self) -> &[BootstrapProblem] {
        match self {
            Self::Invalid { problems } => problems,
            _ => &[],
        }
    }

    pub(super) fn from_json(error: &serde_json::Error) -> Self {
        let (line, column) = (error.line(), error.column());
        let full = error.to_string();
        // serde_json appends the position to its message; it has its own fields here.
        let suffix = format!(" at line {line} column {column}");
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
        Self::Json {
            line,
            column,
            message,
        }
    }
}

fn join(problems: &[BootstrapProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// One thing wrong with a bootstrap: the JSON field (C-core's notation, `xds_servers[0].channel_creds`,
/// `authorities["a.example"].xds_servers`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[non_exhaustive]
pub struct BootstrapProblem {
    /// The field at fault; empty for the document itself.
    pub field: String,
    /// What is wrong, in C-core's words where C-core has words for it.
    pub message: String,
}

impl BootstrapProblem {
    /// A problem with `field`.
    #[must_use]
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for BootstrapProblem {
    /// `field: message`, or the message alone for the document itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Collects problems while walking a bootstrap.
#[derive(Debug, Default)]
pub(super) struct Problems {
    list: Vec<BootstrapProblem>,
}

impl Problems {
    pub(super) fn add(&mut self, field: &str, message: impl Into<String>) {
        self.list.push(BootstrapProblem::new(field, message));
    }

    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether `field` or anything inside it has a problem.
    pub(super) fn has_under(&self, field: &str) -> bool {
        self.list.iter().any(|p| {
            p.field
                .strip_prefix(field)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    }

    /// `Ok(value)` when nothing was found, else every problem, sorted by field (stable, so problems of one field
    /// keep the order they were found in). C-core sorts the same way, which keeps messages comparable.
    pub(super) fn finish<T>(mut self, value: T) -> Result<T, BootstrapError> {
        if self.list.is_empty() {
            return Ok(value);
        }
        self.list.sort_by(|a, b| a.field.cmp(&b.field));
        Err(BootstrapError::Invalid {
            problems: self.list,
        })
    }
}

/// A listener resource name could not be derived for a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListenerNameError {
    /// The target, or the name its template produced, names an authority the bootstrap's `authorities` lacks
    /// (gRFC A47: "it is an error if the specified authority is not present in this map").
    #[error("authority not found in xDS bootstrap: {authority:?}")]
    UnknownAuthority {
        /// The authority that was looked up.
        authority: String,
    },
}
