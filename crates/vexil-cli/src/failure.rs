//! Why a command failed, and the exit code that says so.

use std::process::ExitCode;

/// Kinds of failure, each with its own exit code (documented in
/// `docs/cli.md`; scripts may rely on them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 1: anything else (the server failed, an unreadable answer).
    Other,
    /// 2: the command or its input is wrong (INVALID_ARGUMENT included).
    Invalid,
    /// 3: no such flag.
    NotFound,
    /// 4: the flag changed since the revision given (`--expected-revision`),
    /// or already exists.
    Conflict,
    /// 5: no token, a bad one, or one whose role or scope does not allow it.
    Refused,
    /// 6: the server cannot be reached, or did not answer in time.
    Unreachable,
    /// 7: `import --dry-run` found changes to make.
    Drift,
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
    /// When the server refused for its rate limit: how long it asks the
    /// caller to wait (`grpc-retry-pushback-ms`).
    pub retry_after: Option<std::time::Duration>,
}

impl Failure {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self.kind {
            Kind::Other => 1,
            Kind::Invalid => 2,
            Kind::NotFound => 3,
            Kind::Conflict => 4,
            Kind::Refused => 5,
            Kind::Unreachable => 6,
            Kind::Drift => 7,
        })
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        let kind = match status.code() {
            Code::InvalidArgument | Code::OutOfRange => Kind::Invalid,
            Code::NotFound => Kind::NotFound,
            Code::Aborted | Code::AlreadyExists | Code::FailedPrecondition => Kind::Conflict,
            Code::Unauthenticated | Code::PermissionDenied | Code::ResourceExhausted => {
                Kind::Refused
            }
            Code::Unavailable | Code::DeadlineExceeded => Kind::Unreachable,
            // The connection failed under the call (a reset, a TLS alert
            // such as a missing client certificate): tonic makes the status
            // itself (Unknown, Cancelled…) with the transport's error as
            // its source; a server's statuses have none.
            _ if std::error::Error::source(&status).is_some() => Kind::Unreachable,
            _ => Kind::Other,
        };
        // The causes, for a transport error whose message alone says nothing.
        let mut message = status.message().to_owned();
        let mut cause = std::error::Error::source(&status);
        while let Some(err) = cause {
            message = format!("{message}: {err}");
            cause = err.source();
        }
        let retry_after = (status.code() == Code::ResourceExhausted)
            .then(|| status.metadata().get("grpc-retry-pushback-ms"))
            .flatten()
            .and_then(|value| value.to_str().ok()?.parse().ok())
            .map(std::time::Duration::from_millis);
        Self {
            retry_after,
            ..Self::new(kind, format!("{:?}: {message}", status.code()))
        }
    }
}
