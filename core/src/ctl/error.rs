//! Failures and etcdctl's exit codes: every command returns [`Fail`],
//! which `main` prints as `Error: <message>` on stderr before exiting with
//! its code.

use ferrocd_net::client;

/// The server refused or failed the request.
pub const EXIT_ERROR: i32 = 1;
/// The connection (or authentication) failed.
pub const EXIT_BAD_CONNECTION: i32 = 2;
/// Unparseable input (txn, watch -i).
pub const EXIT_INVALID_INPUT: i32 = 3;
/// An unsupported feature (output format, sort option).
pub const EXIT_BAD_FEATURE: i32 = 4;
/// Interrupted (a watch canceled by the server).
pub const EXIT_INTERRUPTED: i32 = 5;
/// Local I/O failed.
pub const EXIT_IO: i32 = 6;
/// Bad command-line arguments.
pub const EXIT_BAD_ARGS: i32 = 128;

/// A command's failure: the message after `Error: ` and the exit code.
#[derive(Debug)]
pub struct Fail {
    /// Exit code.
    pub code: i32,
    /// Message; empty prints nothing.
    pub msg: String,
}

/// A command's result.
pub type R<T = ()> = Result<T, Fail>;

impl Fail {
    /// With an explicit code.
    pub fn new(code: i32, msg: impl Into<String>) -> Fail {
        Fail {
            code,
            msg: msg.into(),
        }
    }
    /// Bad arguments (128).
    pub fn args(msg: impl Into<String>) -> Fail {
        Fail::new(EXIT_BAD_ARGS, msg)
    }
    /// Unsupported feature (4).
    pub fn feature(msg: impl Into<String>) -> Fail {
        Fail::new(EXIT_BAD_FEATURE, msg)
    }
    /// Bad input (3).
    pub fn input(msg: impl Into<String>) -> Fail {
        Fail::new(EXIT_INVALID_INPUT, msg)
    }
    /// A generic error (1).
    pub fn err(msg: impl Into<String>) -> Fail {
        Fail::new(EXIT_ERROR, msg)
    }
    /// Local I/O (6).
    pub fn io(msg: impl Into<String>) -> Fail {
        Fail::new(EXIT_IO, msg)
    }
}

impl From<client::Error> for Fail {
    fn from(e: client::Error) -> Fail {
        Fail::err(e.message())
    }
}
