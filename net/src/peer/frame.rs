//! Peer frames: what members send each other on the peer port.
//!
//! ```text
//! 0        4      5        13
//! +--------+------+--------+-----------------+
//! | len u32| kind | id u64 | payload         |
//! |  LE    | u8   |  LE    | (len - 9 bytes) |
//! +--------+------+--------+-----------------+
//! ```
//!
//! `len` counts everything after itself (kind + id + payload), so it is
//! at least 9 and at most [`MAX_FRAME`]. `kind` says what the payload is:
//! a request kind chosen by the caller (1..=125), [`RESPONSE_OK`] |
//! kind for its answer, [`RESPONSE_ERR`] for a failure (payload: UTF-8
//! text), [`RESPONSE_REMOVED`] (0xfe, which is why request kind 126 is
//! never used) when the caller has been removed from the cluster. `id` pairs a response with its request, so many requests can be
//! in flight on one connection (pipelining). Payload bytes are opaque here
//! (the node encodes raft messages with postcard).
//!
//! The first frame on a connection is the caller's [`Hello`] (kind
//! [`KIND_HELLO`]); the listener answers it before anything else.

/// Bytes of a frame header (len + kind + id).
pub const HEADER: usize = 13;
/// Largest `len` accepted: 64 MiB (raft batches are bounded far below;
/// snapshots travel in chunks).
pub const MAX_FRAME: usize = 64 << 20;
/// The handshake request.
pub const KIND_HELLO: u8 = 1;
/// Set on a successful response's kind.
pub const RESPONSE_OK: u8 = 0x80;
/// A failed request's response kind.
pub const RESPONSE_ERR: u8 = 0xff;
/// The answer to a hello or a request from a member that has been
/// removed from the cluster (etcd's HTTP 410 on its peer port): the
/// caller must stop. The payload is the text [`REMOVED`].
pub const RESPONSE_REMOVED: u8 = 0xfe;
/// etcd's words for a removed member.
pub const REMOVED: &str = "the member has been permanently removed from the cluster";

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Request kind, or a response marker.
    pub kind: u8,
    /// Request id.
    pub id: u64,
    /// Opaque payload.
    pub payload: Vec<u8>,
}

/// Why bytes are not a frame yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// More bytes are needed (at least this many in all).
    #[error("incomplete frame: need {0} bytes")]
    Incomplete(usize),
    /// The bytes can never become a frame: close the connection.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

impl Frame {
    /// Append the encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let len = 9 + self.payload.len();
        assert!(len <= MAX_FRAME, "peer frame of {len} bytes");
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.push(self.kind);
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.payload);
    }

    /// Decode one frame from the start of `buf`; returns it and the bytes
    /// it took.
    pub fn decode(buf: &[u8]) -> Result<(Frame, usize), DecodeError> {
        let (kind, id, total) = Self::header(buf, MAX_FRAME)?;
        Ok((
            Frame {
                kind,
                id,
                payload: buf[HEADER..total].to_vec(),
            },
            total,
        ))
    }

    /// Check the frame at the start of `buf` without copying it:
    /// `(kind, id, total bytes)` once it is whole; its payload is
    /// `buf[HEADER..total]`. Frames with `len` above `max` are malformed.
    pub fn header(buf: &[u8], max: usize) -> Result<(u8, u64, usize), DecodeError> {
        if buf.len() < 4 {
            return Err(DecodeError::Incomplete(4));
        }
        let len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
        if len < 9 {
            return Err(DecodeError::Malformed(format!(
                "length {len} below the 9-byte minimum"
            )));
        }
        if len > max {
            return Err(DecodeError::Malformed(format!(
                "length {len} above the {max}-byte limit"
            )));
        }
        let total = 4 + len;
        if buf.len() < total {
            return Err(DecodeError::Incomplete(total));
        }
        let kind = buf[4];
        if kind == 0 {
            return Err(DecodeError::Malformed("kind 0".into()));
        }
        let id = u64::from_le_bytes(buf[5..13].try_into().expect("8 bytes"));
        Ok((kind, id, total))
    }
}

/// The handshake: who calls whom, in which cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// The caller's cluster id.
    pub cluster_id: u64,
    /// The caller's member id.
    pub from: u64,
    /// The member the caller wants (0: whoever listens, for discovery).
    pub to: u64,
}

impl Hello {
    /// 24 bytes, little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(24);
        v.extend_from_slice(&self.cluster_id.to_le_bytes());
        v.extend_from_slice(&self.from.to_le_bytes());
        v.extend_from_slice(&self.to.to_le_bytes());
        v
    }

    /// Decode a hello payload.
    pub fn decode(b: &[u8]) -> Result<Hello, DecodeError> {
        if b.len() != 24 {
            return Err(DecodeError::Malformed(format!(
                "hello of {} bytes, want 24",
                b.len()
            )));
        }
        let u = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Ok(Hello {
            cluster_id: u(0),
            from: u(8),
            to: u(16),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_partial_input() {
        let f = Frame {
            kind: 7,
            id: 0x0102_0304_0506_0708,
            payload: b"hello".to_vec(),
        };
        let mut b = Vec::new();
        f.encode(&mut b);
        assert_eq!(b.len(), HEADER + 5);
        for cut in 0..b.len() {
            assert!(matches!(
                Frame::decode(&b[..cut]),
                Err(DecodeError::Incomplete(_))
            ));
        }
        b.extend_from_slice(&[9, 9]);
        assert_eq!(Frame::decode(&b), Ok((f, HEADER + 5)));
    }

    #[test]
    fn malformed_lengths_and_kinds() {
        let mut b = 8u32.to_le_bytes().to_vec();
        b.extend_from_slice(&[1; 20]);
        assert!(matches!(Frame::decode(&b), Err(DecodeError::Malformed(_))));
        let b = ((MAX_FRAME + 1) as u32).to_le_bytes();
        assert!(matches!(Frame::decode(&b), Err(DecodeError::Malformed(_))));
        let mut b = 9u32.to_le_bytes().to_vec();
        b.extend_from_slice(&[0; 9]);
        assert!(matches!(Frame::decode(&b), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn hello_round_trip() {
        let h = Hello {
            cluster_id: 1,
            from: 2,
            to: 3,
        };
        assert_eq!(Hello::decode(&h.encode()), Ok(h));
        assert!(Hello::decode(&[0; 23]).is_err());
    }
}
