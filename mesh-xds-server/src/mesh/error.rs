//! Mesh-file errors: where in the file, and what is wrong.

use std::fmt;
use std::path::PathBuf;

/// One problem in a mesh config, at a YAML path such as `clusters[1].localities[0].endpoints[2]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FieldError {
    /// The YAML path of the offending value (`services[0].routes[1].cluster`).
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a mesh config could not be loaded or translated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    /// The file could not be read.
    #[error("cannot read mesh file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML is malformed or does not fit the schema (unknown field, wrong type). The message starts with the
    /// YAML path and ends with the line and column.
    #[error("{message}")]
    Parse {
        /// The parser's message, e.g. `clusters[0].localities[0].weight: invalid type: string "x", expected u32 at
        /// line 7 column 17`.
        message: String,
    },
    /// The config parsed but is inconsistent or out of range; every problem is listed.
    #[error("{}", join(errors))]
    Invalid {
        /// Each problem, in file order.
        errors: Vec<FieldError>,
    },
}

impl MeshError {
    /// The individual problems of an [`MeshError::Invalid`] config (empty for other errors).
    #[must_use]
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Self::Invalid { errors } => errors,
            Self::Read { .. } | Self::Parse { .. } => &[],
        }
    }
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
