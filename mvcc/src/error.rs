//! Errors of the store. The node maps each to etcd's gRPC code and message
//! in one table (see STYLE.md); the `Display` strings here are etcd's
//! messages without the `etcdserver: ` prefix the wire adds.

/// A store operation failed; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A read or watch asked for a revision below the compacted one.
    #[error("mvcc: required revision has been compacted")]
    Compacted {
        /// The store's compacted revision.
        compact_revision: i64,
    },
    /// A read asked for a revision above the current one.
    #[error("mvcc: required revision is a future revision")]
    FutureRevision {
        /// The store's current revision.
        current_revision: i64,
    },
    /// `ignore_value` / `ignore_lease` on a key that does not exist.
    #[error("key not found")]
    KeyNotFound,
    /// A txn puts or deletes the same key twice in one branch.
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    /// An empty key.
    #[error("key is not provided")]
    EmptyKey,
    /// A put names a lease the store does not know (or a grant/revoke
    /// names lease 0 / an unknown lease).
    #[error("requested lease not found")]
    LeaseNotFound,
    /// A grant names a lease id that already exists.
    #[error("lease already exists")]
    LeaseExists,
    /// A put with `ignore_value` also carries a value.
    #[error("value is provided")]
    ValueProvided,
    /// A put with `ignore_lease` also carries a lease.
    #[error("lease is provided")]
    LeaseProvided,
    /// A write refused while the NOSPACE alarm is raised (the store itself
    /// never returns it; the node's apply loop does, as etcd's capped
    /// applier).
    #[error("mvcc: database space exceeded")]
    NoSpace,
    /// A snapshot file could not be read or is corrupt.
    #[error("snapshot {path}: {reason}")]
    Snapshot {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Store result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
