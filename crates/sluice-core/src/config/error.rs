//! Configuration errors: each one points at a file, a line and column, and a field path.

use std::fmt;

use super::path::FieldPath;

/// One configuration error, printed as `FILE:LINE:COL: path: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The configuration file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// Where in the document.
    pub path: FieldPath,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        if !self.path.is_root() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.message)
    }
}

/// Every error found in one configuration file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A configuration value that does not parse (a duration, a size, a template, a path
/// pattern, ...): the message says why; the caller adds where (a [`super::decode::FieldError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

impl From<String> for InvalidValue {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for InvalidValue {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl From<InvalidValue> for String {
    fn from(e: InvalidValue) -> Self {
        e.0
    }
}
