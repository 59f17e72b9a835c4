//! The client's error: what the server answered (gRPC code and etcd's
//! message, the same for both protocols), or why no answer came.

use tonic::Code;

/// A failed call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server (or the transport) answered with a status: `code` is
    /// gRPC's, `message` etcd's text (`etcdserver: key is not provided`).
    #[error("{message}")]
    Status {
        /// gRPC status code.
        code: Code,
        /// The message, as etcd sends it.
        message: String,
    },
    /// No endpoint could be reached.
    #[error("{0}")]
    Connect(String),
    /// Bad arguments, refused before anything was sent.
    #[error("{0}")]
    InvalidArgs(String),
    /// The call did not finish within the command timeout.
    #[error("context deadline exceeded")]
    Timeout,
}

impl Error {
    /// The gRPC code the failure maps to.
    pub fn code(&self) -> Code {
        match self {
            Error::Status { code, .. } => *code,
            Error::Connect(_) => Code::Unavailable,
            Error::InvalidArgs(_) => Code::InvalidArgument,
            Error::Timeout => Code::DeadlineExceeded,
        }
    }

    /// etcd's text for it.
    pub fn message(&self) -> String {
        self.to_string()
    }

    pub(crate) fn status(code: Code, message: impl Into<String>) -> Self {
        Error::Status {
            code,
            message: message.into(),
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        Error::status(s.code(), s.message())
    }
}

/// `Result` with the client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
