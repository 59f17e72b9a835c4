//! gRPC request bodies read as etcd's server (grpc-go) reads them, so a
//! bad frame gets etcd's status, not tonic's.
//!
//! A gRPC message on the wire is a 5-byte prefix (compressed flag, u32
//! big-endian length) and the message. tonic answers an oversized length
//! with `OUT_OF_RANGE "Error, decoded message length too large: …"` and a
//! body that ends inside a message with `INTERNAL "Unexpected EOF decoding
//! stream."`; etcd 3.5.1 answers (measured with a raw HTTP/2 client,
//! `core/tests/grpc_errors`):
//!
//! | request | unary method | client-streaming method (Watch, LeaseKeepAlive) |
//! |---|---|---|
//! | length prefix over the limit | `RESOURCE_EXHAUSTED "grpc: received message larger than max (N vs. M)"` | same |
//! | body ends inside a prefix or a message | `UNKNOWN "unexpected EOF"` | `INTERNAL "unexpected EOF"` |
//! | body ends before any message | `UNKNOWN "EOF"` | (a normal end) |
//! | bytes after the first message | ignored: the call is answered | (more messages) |
//!
//! M is etcd's `MaxCallRecvMsgSize`: `--max-request-bytes` + 512 KiB of
//! gRPC overhead. [`check_frames`] wraps every request body of the gRPC
//! routes in a [`Reader`] (sans-IO: bytes in, how many to pass on or a
//! [`FrameError`] out) that sees each prefix before tonic does; its error
//! reaches the handler as a body error carrying the `Status`, which tonic
//! passes through unchanged (it looks for a `Status` in the error's
//! source chain). The codes and messages live in `status.rs` with the
//! other error mappings.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use bytes::Bytes;
use http_body::Frame;
use tonic::Status;
use tonic::service::Routes;

use crate::status::FrameError;

/// The gRPC size of the prefix before each message.
const PREFIX: usize = 5;

/// The methods whose requests are a stream (the rest read exactly one
/// message, as grpc-go's unary and server-streaming handlers do).
const CLIENT_STREAMING: [&str; 2] = [
    "/etcdserverpb.Watch/Watch",
    "/etcdserverpb.Lease/LeaseKeepAlive",
];

/// How a method reads its request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reads {
    /// One message; anything after it is never read.
    One,
    /// Messages until the client ends the stream.
    Stream,
}

impl Reads {
    fn of(path: &str) -> Reads {
        if CLIENT_STREAMING.contains(&path) {
            Reads::Stream
        } else {
            Reads::One
        }
    }
}

/// The gRPC routes with every request body read through a [`Reader`]
/// with `limit` (etcd's `--max-request-bytes` + 512 KiB).
pub fn check_frames(routes: Routes, limit: usize) -> Routes {
    let layer = tower::util::MapRequestLayer::new(move |req: http::Request<Body>| {
        let reads = Reads::of(req.uri().path());
        req.map(|body| Body::new(Checked::new(body, Reader::new(reads, limit))))
    });
    Routes::from(routes.into_axum_router().layer(layer))
}

/// The framing state of one request body.
#[derive(Debug, Clone)]
pub(crate) struct Reader {
    reads: Reads,
    limit: usize,
    /// Prefix bytes seen of the current message (0..5).
    prefix: [u8; PREFIX],
    prefix_len: usize,
    /// Message bytes still to come after a complete prefix.
    body_left: usize,
    /// Complete messages seen.
    messages: u64,
}

impl Reader {
    pub(crate) fn new(reads: Reads, limit: usize) -> Reader {
        Reader {
            reads,
            limit,
            prefix: [0; PREFIX],
            prefix_len: 0,
            body_left: 0,
            messages: 0,
        }
    }

    /// True once a one-message body has its message: nothing more is read.
    pub(crate) fn complete(&self) -> bool {
        self.reads == Reads::One && self.messages > 0
    }

    /// Take `chunk`: how many of its bytes go on to the decoder (fewer
    /// than all only when a one-message body completes inside it), or the
    /// error to answer with.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<usize, FrameError> {
        let mut i = 0;
        while i < chunk.len() && !self.complete() {
            if self.body_left > 0 {
                let n = self.body_left.min(chunk.len() - i);
                self.body_left -= n;
                i += n;
                if self.body_left == 0 {
                    self.messages += 1;
                }
                continue;
            }
            self.prefix[self.prefix_len] = chunk[i];
            self.prefix_len += 1;
            i += 1;
            if self.prefix_len == PREFIX {
                self.prefix_len = 0;
                let p = self.prefix;
                let len = u32::from_be_bytes([p[1], p[2], p[3], p[4]]) as usize;
                if len > self.limit {
                    return Err(FrameError::TooLarge {
                        size: len,
                        max: self.limit,
                    });
                }
                if len == 0 {
                    self.messages += 1;
                } else {
                    self.body_left = len;
                }
            }
        }
        Ok(i)
    }

    /// The client ended the body: an error if it ended inside a message,
    /// or before the one message a unary call needs.
    pub(crate) fn finish(&self) -> Result<(), FrameError> {
        let partial = self.prefix_len > 0 || self.body_left > 0;
        match self.reads {
            Reads::One if partial => Err(FrameError::UnaryTruncated),
            Reads::One if self.messages == 0 => Err(FrameError::UnaryEmpty),
            Reads::Stream if partial => Err(FrameError::StreamTruncated),
            _ => Ok(()),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request body read through a [`Reader`].
    struct Checked {
        #[pin]
        inner: Body,
        reader: Reader,
        ended: bool,
    }
}

impl Checked {
    fn new(inner: Body, reader: Reader) -> Checked {
        Checked {
            inner,
            reader,
            ended: false,
        }
    }
}

impl http_body::Body for Checked {
    type Data = Bytes;
    type Error = tower::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        let frame = match ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            None => {
                *this.ended = true;
                return Poll::Ready(
                    this.reader
                        .finish()
                        .err()
                        .map(|e| Err(Status::from(e).into())),
                );
            }
        };
        let mut data = match frame.into_data() {
            Ok(d) => d,
            Err(other) => return Poll::Ready(Some(Ok(other))),
        };
        match this.reader.feed(&data) {
            Ok(n) => {
                data.truncate(n);
                *this.ended = this.reader.complete();
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Err(e) => {
                *this.ended = true;
                Poll::Ready(Some(Err(Status::from(e).into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(len: usize) -> Vec<u8> {
        let mut v = vec![0u8];
        v.extend_from_slice(&(len as u32).to_be_bytes());
        v.resize(PREFIX + len, 7);
        v
    }

    /// Feeds `bytes` in chunks of `step`; the bytes passed on, or the error.
    fn run(reads: Reads, limit: usize, bytes: &[u8], step: usize) -> Result<Vec<u8>, FrameError> {
        let mut r = Reader::new(reads, limit);
        let mut out = Vec::new();
        for c in bytes.chunks(step) {
            if r.complete() {
                break;
            }
            let n = r.feed(c)?;
            out.extend_from_slice(&c[..n]);
        }
        if !r.complete() {
            r.finish()?;
        }
        Ok(out)
    }

    #[test]
    fn every_chunking_gives_the_same_answer() {
        let two = [msg(10), msg(0), msg(3)].concat();
        for step in [1, 2, 4, 5, 6, 9, 64] {
            // Unary: exactly the first message passes, the rest is never read.
            assert_eq!(run(Reads::One, 16, &two, step), Ok(msg(10)), "step {step}");
            assert_eq!(run(Reads::Stream, 16, &two, step), Ok(two.clone()));
            // Over the limit, found from the prefix alone.
            assert_eq!(
                run(Reads::One, 9, &msg(10)[..PREFIX], step),
                Err(FrameError::TooLarge { size: 10, max: 9 })
            );
            assert_eq!(
                run(Reads::Stream, 9, &[msg(3), msg(10)].concat(), step),
                Err(FrameError::TooLarge { size: 10, max: 9 })
            );
            // Ends inside a message or inside a prefix.
            for cut in [1, 4, 5, 14] {
                let b = &msg(10)[..cut];
                assert_eq!(
                    run(Reads::One, 16, b, step),
                    Err(FrameError::UnaryTruncated)
                );
                assert_eq!(
                    run(Reads::Stream, 16, b, step),
                    Err(FrameError::StreamTruncated)
                );
            }
            // An empty message is a message.
            assert_eq!(run(Reads::One, 16, &msg(0), step), Ok(msg(0)));
        }
        assert_eq!(run(Reads::One, 16, &[], 1), Err(FrameError::UnaryEmpty));
        assert_eq!(run(Reads::Stream, 16, &[], 1), Ok(Vec::new()));
        // The limit itself is allowed (grpc-go refuses only `len > max`).
        assert_eq!(run(Reads::One, 10, &msg(10), 3), Ok(msg(10)));
    }

    #[test]
    fn only_watch_and_keepalive_stream() {
        assert_eq!(Reads::of("/etcdserverpb.Watch/Watch"), Reads::Stream);
        assert_eq!(
            Reads::of("/etcdserverpb.Lease/LeaseKeepAlive"),
            Reads::Stream
        );
        assert_eq!(Reads::of("/etcdserverpb.KV/Put"), Reads::One);
        assert_eq!(Reads::of("/v3electionpb.Election/Observe"), Reads::One);
        assert_eq!(Reads::of("/etcdserverpb.Maintenance/Snapshot"), Reads::One);
    }
}
