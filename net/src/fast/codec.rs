//! Payload encoding of the binary protocol: every message is an rkyv
//! archive of the same message the gRPC API carries (the prost types in
//! [`crate::pb`] derive rkyv too, see `build.rs`), validated with
//! bytecheck on receipt. A payload that does not validate is malformed:
//! the connection that sent it is closed.
//!
//! Validation proves a payload is a well-formed archive, not that it is
//! the bytes the client meant: a cut archive can be a valid one of another
//! value. The frame's length delimits each payload, so a cut arrives as an
//! incomplete frame, never as a short payload.
//!
//! Archives need their root aligned: a received payload is copied into an
//! [`AlignedVec`] before it is checked (one memcpy of the payload, small
//! beside the syscall that read it).

use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;

/// What a protocol message must be: prost (for gRPC) and rkyv (for us).
pub trait Message: prost::Message + Default + Clone + Send + Sync + 'static + Archived {}
impl<T: prost::Message + Default + Clone + Send + Sync + 'static + Archived> Message for T {}

/// The rkyv half of [`Message`].
pub trait Archived:
    rkyv::Archive<
        Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
                      + rkyv::Deserialize<Self, HighDeserializer<rancor::Error>>,
    > + for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>
    + Sized
{
}
impl<T> Archived for T where
    T: rkyv::Archive<
            Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
                          + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
        > + for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>
{
}

/// Why a payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} payload: {reason}")]
pub struct PayloadError {
    /// The message type expected.
    pub what: &'static str,
    /// What the validator said.
    pub reason: String,
}

/// Encode `msg` as an rkyv archive.
pub fn encode<T: Archived>(msg: &T) -> Vec<u8> {
    rkyv::to_bytes::<rancor::Error>(msg)
        .expect("serializing into memory cannot fail")
        .into_vec()
}

/// Validate and decode a payload (copied once to align it).
pub fn decode<T: Archived>(payload: &[u8]) -> Result<T, PayloadError> {
    decode_aligned(&aligned(payload))
}

/// `payload` in a buffer rkyv can read in place.
pub fn aligned(payload: &[u8]) -> AlignedVec<16> {
    let mut a = AlignedVec::<16>::with_capacity(payload.len());
    a.extend_from_slice(payload);
    a
}

/// Validate and decode a payload that is aligned already.
pub fn decode_aligned<T: Archived>(payload: &AlignedVec<16>) -> Result<T, PayloadError> {
    rkyv::from_bytes::<T, rancor::Error>(payload).map_err(|e| PayloadError {
        what: std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("?"),
        reason: e.to_string(),
    })
}

/// The payload of an error frame: a gRPC status code and etcd's message,
/// exactly what the gRPC API would have answered.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct ErrorReply {
    /// `tonic::Code` as its number.
    pub code: i32,
    /// The message (`etcdserver: key is not provided`, …).
    pub message: String,
}

impl ErrorReply {
    /// From a gRPC status.
    pub fn from_status(s: &tonic::Status) -> Self {
        Self {
            code: s.code() as i32,
            message: s.message().to_string(),
        }
    }

    /// Back to a gRPC status.
    pub fn into_status(self) -> tonic::Status {
        tonic::Status::new(tonic::Code::from_i32(self.code), self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::etcdserverpb as pb;

    #[test]
    fn nested_txn_round_trips() {
        let inner = pb::TxnRequest {
            compare: vec![pb::Compare {
                key: b"k".to_vec(),
                target: 1,
                target_union: Some(pb::compare::TargetUnion::Version(3)),
                ..Default::default()
            }],
            success: vec![pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                    key: b"a".to_vec(),
                    value: vec![0xff; 100],
                    ..Default::default()
                })),
            }],
            failure: vec![],
        };
        let outer = pb::TxnRequest {
            success: vec![pb::RequestOp {
                request: Some(pb::request_op::Request::RequestTxn(inner)),
            }],
            ..Default::default()
        };
        let bytes = encode(&outer);
        assert_eq!(decode::<pb::TxnRequest>(&bytes).unwrap(), outer);
        // Every truncation is handled without a panic or an out-of-bounds
        // read. Most are refused; a few happen to be valid archives of
        // another message (the root sits at the end, so a shorter buffer
        // has another root — found at cut 292 here), as a cut protobuf can
        // be. Truncation is caught by the frame's length, not here.
        let mut refused = 0;
        for cut in 0..bytes.len() {
            if decode::<pb::TxnRequest>(&bytes[..cut]).is_err() {
                refused += 1;
            }
        }
        assert!(
            refused * 10 >= bytes.len() * 9,
            "{refused} of {}",
            bytes.len()
        );
    }

    #[test]
    fn garbage_is_refused_with_the_type_named() {
        let e = decode::<pb::RangeRequest>(&[0xff; 40]).unwrap_err();
        assert_eq!(e.what, "RangeRequest");
    }

    #[test]
    fn error_reply_keeps_code_and_message() {
        let s = tonic::Status::invalid_argument("etcdserver: key is not provided");
        let back = decode::<ErrorReply>(&encode(&ErrorReply::from_status(&s)))
            .unwrap()
            .into_status();
        assert_eq!(back.code(), tonic::Code::InvalidArgument);
        assert_eq!(back.message(), "etcdserver: key is not provided");
    }
}
