//! Errors with the file, line and app they are about.

use std::fmt;
use weft_model::Location;

/// One problem in an app document or between apps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    pub loc: Location,
    /// The app the problem is in, when known.
    pub app: Option<String>,
    pub message: String,
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.app {
            Some(app) => write!(f, "{}: app {app}: {}", self.loc, self.message),
            None => write!(f, "{}: {}", self.loc, self.message),
        }
    }
}

/// Every problem found; a document with any of them is rejected whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AppErrors(pub Vec<AppError>);

impl fmt::Display for AppErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {e}")?;
        }
        Ok(())
    }
}
