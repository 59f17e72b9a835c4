//! The protobuf messages etcd writes into its WAL and `.snap` files, as
//! prost structs (field numbers from etcd's `.proto` files, checked
//! against files written by etcd 3.4.23 and 3.5.1).
//!
//! etcd's messages are proto2 with gogoproto `nullable = false`, so its
//! encoder writes every scalar field, zeros included; repeated `uint64`
//! fields are unpacked. prost decodes that (and the packed form) as well
//! as proto3 data: a field that is absent reads as zero, unknown fields
//! are skipped, a wrong wire type or a truncated varint is an error,
//! never a panic, and a length-delimited field can never claim more bytes
//! than the buffer holds, so decoding allocates at most the input's size.

/// `walpb.Record`: one WAL record.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Record {
    /// Record type (1 metadata, 2 entry, 3 state, 4 crc, 5 snapshot).
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    /// The running CRC-32C after this record's data.
    #[prost(uint32, tag = "2")]
    pub crc: u32,
    /// The payload (another message, by type).
    #[prost(bytes = "vec", tag = "3")]
    pub data: Vec<u8>,
}

/// `etcdserverpb.Metadata`: the WAL's metadata record.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Metadata {
    #[prost(uint64, tag = "1")]
    pub node_id: u64,
    #[prost(uint64, tag = "2")]
    pub cluster_id: u64,
}

/// `raftpb.Entry`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Entry {
    /// 0 normal, 1 conf change, 2 conf change v2.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(uint64, tag = "2")]
    pub term: u64,
    #[prost(uint64, tag = "3")]
    pub index: u64,
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
}

/// `raftpb.HardState`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HardState {
    #[prost(uint64, tag = "1")]
    pub term: u64,
    #[prost(uint64, tag = "2")]
    pub vote: u64,
    #[prost(uint64, tag = "3")]
    pub commit: u64,
}

/// `raftpb.ConfState`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ConfState {
    #[prost(uint64, repeated, tag = "1")]
    pub voters: Vec<u64>,
    #[prost(uint64, repeated, tag = "2")]
    pub learners: Vec<u64>,
    #[prost(uint64, repeated, tag = "3")]
    pub voters_outgoing: Vec<u64>,
    #[prost(uint64, repeated, tag = "4")]
    pub learners_next: Vec<u64>,
    #[prost(bool, tag = "5")]
    pub auto_leave: bool,
}

/// `walpb.Snapshot`: a WAL snapshot record (`conf_state` only from 3.5).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WalSnapshot {
    #[prost(uint64, tag = "1")]
    pub index: u64,
    #[prost(uint64, tag = "2")]
    pub term: u64,
    #[prost(message, optional, tag = "3")]
    pub conf_state: Option<ConfState>,
}

/// `snappb.Snapshot`: a `.snap` file.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SnapFile {
    /// CRC-32C of `data` (not chained).
    #[prost(uint32, tag = "1")]
    pub crc: u32,
    /// A `raftpb.Snapshot`.
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

/// `raftpb.Snapshot`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RaftSnapshot {
    /// The state machine's snapshot: etcd's v2 store as JSON.
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<SnapshotMetadata>,
}

/// `raftpb.SnapshotMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SnapshotMetadata {
    #[prost(message, optional, tag = "1")]
    pub conf_state: Option<ConfState>,
    #[prost(uint64, tag = "2")]
    pub index: u64,
    #[prost(uint64, tag = "3")]
    pub term: u64,
}

/// `raftpb.ConfChange` (what etcd 3.4 and 3.5 propose for `member
/// add/remove/update/promote`).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ConfChange {
    /// etcd's request id (0 in the bootstrap entries).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// 0 AddNode, 1 RemoveNode, 2 UpdateNode, 3 AddLearnerNode.
    #[prost(int32, tag = "2")]
    pub r#type: i32,
    #[prost(uint64, tag = "3")]
    pub node_id: u64,
    #[prost(bytes = "vec", tag = "4")]
    pub context: Vec<u8>,
}

/// `raftpb.ConfChangeSingle`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ConfChangeSingle {
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(uint64, tag = "2")]
    pub node_id: u64,
}

/// `raftpb.ConfChangeV2` (raft's joint consensus; etcd 3.4/3.5 do not
/// propose it, but a raft log may hold it).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ConfChangeV2 {
    /// 0 auto, 1 joint implicit, 2 joint explicit.
    #[prost(int32, tag = "1")]
    pub transition: i32,
    #[prost(message, repeated, tag = "2")]
    pub changes: Vec<ConfChangeSingle>,
    #[prost(bytes = "vec", tag = "3")]
    pub context: Vec<u8>,
}
