//! The service's one error type, named for what the caller can do about it.
//! `grpc/` maps it to `tonic::Status` in one exhaustive match.

use crate::domain::ValidationError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; `field` names the offending field.
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },

    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),

    /// The named thing exists already.
    #[error("{0}")]
    AlreadyExists(String),

    /// Optimistic concurrency: the stored revision is not the expected one.
    #[error("expected revision {expected} but the flag is at revision {actual}")]
    Conflict { expected: u64, actual: u64 },

    /// The caller is authenticated but may not do this.
    #[error("{0}")]
    PermissionDenied(String),

    /// The system is not in a state that allows the operation.
    #[error("{0}")]
    FailedPrecondition(String),

    /// A backing store cannot be reached; retrying later may succeed.
    #[error("{0}")]
    Unavailable(String),

    /// A bug or an unexpected store failure; details are logged, not returned.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<ValidationError> for Error {
    fn from(err: ValidationError) -> Self {
        Self::InvalidArgument {
            field: err.field,
            message: err.message,
        }
    }
}
