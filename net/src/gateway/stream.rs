//! Streaming calls through the gateway: `/v3/watch`,
//! `/v3/lease/keepalive` (bidi streams) and `/v3/maintenance/snapshot`
//! (a server stream).
//!
//! As in etcd's gateway, the request body holds one or more concatenated
//! JSON request objects; each response message becomes one line
//! `{"result":<message>}\n`, written as soon as the service yields it. If
//! the stream fails, a last line `{"error":{...}}` ends it; a failure before
//! the first message answers with the error's HTTP status instead of 200.
//!
//! The bidi services take tonic's `Streaming<Req>`, which decodes gRPC
//! frames from a body; we build that body from the parsed requests (each
//! prost-encoded behind the 5-byte gRPC frame header), so the service sees
//! exactly what a gRPC client would have sent.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, header};
use http_body::Frame;
use http_body_util::StreamBody;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;
use tokio_stream::{Stream, StreamExt};
use tonic::{Code, Status, Streaming};
use tonic_prost::ProstDecoder;

use super::{Counted, Gateway, error, read_body, read_request, with_metadata};
use crate::metrics::CallTimer;

/// What the service sees after the last request message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RequestEnd {
    /// The request stream stays open until the HTTP client goes away (the
    /// answer is dropped), so the service's response stream (a watch)
    /// lives as long; then it ends, and the service sees its client leave.
    /// The gateway ends the answer only when the service ends it.
    KeepOpen,
    /// The request stream ends after the last message, and the answer ends
    /// after one response per request (lease keepalive answers each
    /// request once), or earlier if the service ends it.
    OneAnswerEach,
}

/// A message behind the gRPC frame header: flag 0 (not compressed), then
/// the length as a big-endian u32, as the gRPC wire format defines it.
fn grpc_frame<M: prost::Message>(msg: &M) -> Bytes {
    let len = msg.encoded_len();
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.put_u8(0);
    // A message over 4 GiB cannot come out of a 4 MiB body.
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    msg.encode_raw(&mut buf);
    buf.freeze()
}

/// The requests of a bidi call: one or more concatenated JSON objects.
fn parse_requests<Req: DeserializeOwned>(bytes: &[u8]) -> Result<Vec<Req>, String> {
    serde_json::Deserializer::from_slice(bytes)
        .into_iter::<Req>()
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())
}

impl Gateway {
    /// A bidi-streaming route.
    pub(super) fn streaming<Req, Resp, S, F, Fut>(
        self,
        paths: &[&str],
        grpc_path: &str,
        end: RequestEnd,
        call: F,
    ) -> Self
    where
        Req: DeserializeOwned + prost::Message + Default + Send + 'static,
        Resp: Serialize + Send + 'static,
        S: Stream<Item = Result<Resp, Status>> + Send + 'static,
        F: Fn(tonic::Request<Streaming<Req>>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<tonic::Response<S>, Status>> + Send + 'static,
    {
        let counted = Counted::new(&self.metrics, grpc_path);
        let route = axum::routing::post(move |req: http::Request<Body>| {
            let call = call.clone();
            let counted = counted.clone();
            async move {
                let (parts, body) = req.into_parts();
                // etcd's gateway decodes a stream's requests after the call
                // started, so a bad body is the call's error: Unknown, 500.
                let msgs = match read_body(body)
                    .await
                    .and_then(|b| parse_requests::<Req>(&b))
                {
                    Ok(m) => m,
                    Err(e) => return error::error_with(Code::Unknown, &e),
                };
                let count = msgs.len();
                let frames = msgs
                    .iter()
                    .map(|m| Ok::<_, Infallible>(Frame::data(grpc_frame(m))))
                    .collect::<Vec<_>>();
                let frames = tokio_stream::iter(frames);
                let decoder = ProstDecoder::<Req>::default();
                let (gone, left) = oneshot::channel();
                let (requests, limit) = match end {
                    RequestEnd::KeepOpen => {
                        let body = StreamBody::new(frames.chain(UntilGone(left)));
                        (Streaming::new_request(decoder, body, None, None), None)
                    }
                    RequestEnd::OneAnswerEach => {
                        let body = StreamBody::new(frames);
                        (
                            Streaming::new_request(decoder, body, None, None),
                            Some(count),
                        )
                    }
                };
                let timer = counted.start();
                match call(with_metadata(requests, &parts)).await {
                    Ok(resp) => respond(resp.into_inner(), timer, limit, Some(gone)).await,
                    Err(st) => {
                        if let Some(t) = timer {
                            t.finish(st.code());
                        }
                        error::error_response(&st)
                    }
                }
            }
        });
        self.route_all(paths, route)
    }

    /// A server-streaming route: one request message, a stream of answers.
    pub(super) fn server_streaming<Req, Resp, S, F, Fut>(
        self,
        paths: &[&str],
        grpc_path: &str,
        call: F,
    ) -> Self
    where
        Req: DeserializeOwned + Default + Send + 'static,
        Resp: Serialize + Send + 'static,
        S: Stream<Item = Result<Resp, Status>> + Send + 'static,
        F: Fn(tonic::Request<Req>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<tonic::Response<S>, Status>> + Send + 'static,
    {
        let counted = Counted::new(&self.metrics, grpc_path);
        let route = axum::routing::post(move |req: http::Request<Body>| {
            let call = call.clone();
            let counted = counted.clone();
            async move {
                let (parts, msg) = match read_request::<Req>(req).await {
                    Ok(m) => m,
                    Err(e) => return error::error_with(Code::InvalidArgument, &e),
                };
                let timer = counted.start();
                match call(with_metadata(msg, &parts)).await {
                    Ok(resp) => respond(resp.into_inner(), timer, None, None).await,
                    Err(st) => {
                        if let Some(t) = timer {
                            t.finish(st.code());
                        }
                        error::error_response(&st)
                    }
                }
            }
        });
        self.route_all(paths, route)
    }
}

/// Waits for the first message, then answers with the stream of lines.
async fn respond<Resp, S>(
    stream: S,
    timer: Option<CallTimer>,
    limit: Option<usize>,
    gone: Option<oneshot::Sender<()>>,
) -> http::Response<Body>
where
    Resp: Serialize + Send + 'static,
    S: Stream<Item = Result<Resp, Status>> + Send + 'static,
{
    let mut lines = Lines {
        inner: Box::pin(stream),
        timer,
        left: limit,
        done: false,
        _gone: gone,
    };
    let first = poll_fn(|cx| lines.poll_item(cx)).await;
    let body = match first {
        Some(Item::Failed(st)) => {
            let mut r = http::Response::new(Body::from(error::stream_error_line(&st)));
            *r.status_mut() = error::http_status(st.code());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return r;
        }
        Some(Item::Line(line)) => Body::from_stream(tokio_stream::once(Ok(line)).chain(lines)),
        None => Body::empty(),
    };
    let mut r = http::Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        "grpc-metadata-content-type",
        HeaderValue::from_static("application/grpc"),
    );
    r
}

enum Item {
    Line(Bytes),
    Failed(Status),
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A response stream as `{"result":...}` lines; finishes the call's timer
/// when it ends (dropped early: the client left, counted as Canceled).
struct Lines<T> {
    inner: BoxStream<T>,
    timer: Option<CallTimer>,
    /// Answers still expected, when bounded.
    left: Option<usize>,
    done: bool,
    /// Dropped with the answer: ends a kept-open request stream.
    _gone: Option<oneshot::Sender<()>>,
}

/// The tail of a kept-open request stream: no frames, and the end once the
/// answer (holding the sender) is dropped.
struct UntilGone(oneshot::Receiver<()>);

impl Stream for UntilGone {
    type Item = Result<Frame<Bytes>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Nothing is ever sent: the receiver is ready only when the sender
        // is dropped.
        Pin::new(&mut self.0).poll(cx).map(|_| None)
    }
}

impl<T: Serialize> Lines<T> {
    fn finish(&mut self, code: Code) {
        self.done = true;
        if let Some(t) = self.timer.take() {
            t.finish(code);
        }
    }

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.left == Some(0) {
            self.finish(Code::Ok);
            return Poll::Ready(None);
        }
        let item = match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {
                self.finish(Code::Ok);
                return Poll::Ready(None);
            }
            Poll::Ready(Some(item)) => item,
        };
        let line = item.and_then(|msg| {
            let mut line = b"{\"result\":".to_vec();
            serde_json::to_writer(&mut line, &msg).map_err(|e| Status::internal(e.to_string()))?;
            line.extend_from_slice(b"}\n");
            Ok(line)
        });
        Poll::Ready(Some(match line {
            Ok(line) => {
                if let Some(n) = &mut self.left {
                    *n -= 1;
                }
                Item::Line(line.into())
            }
            Err(st) => {
                self.finish(st.code());
                Item::Failed(st)
            }
        }))
    }
}

impl<T: Serialize> Stream for Lines<T> {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.poll_item(cx).map(|item| {
            item.map(|item| match item {
                Item::Line(b) => Ok(b),
                Item::Failed(st) => Ok(Bytes::from(error::stream_error_line(&st))),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::etcdserverpb as pb;

    #[test]
    fn frames_and_concatenated_requests() {
        let reqs: Vec<pb::WatchRequest> = parse_requests(
            br#"{"create_request":{"key":"YQ=="}} {"createRequest":{"key":"Yg==","startRevision":"5"}}"#,
        )
        .unwrap();
        assert_eq!(reqs.len(), 2);
        let Some(pb::watch_request::RequestUnion::CreateRequest(c)) = &reqs[1].request_union else {
            panic!("{:?}", reqs[1]);
        };
        assert_eq!((c.key.as_slice(), c.start_revision), (&b"b"[..], 5));
        let f = grpc_frame(&reqs[0]);
        assert_eq!(&f[..5], &[0, 0, 0, 0, 5]);
        assert_eq!(f.len(), 10);
        assert!(parse_requests::<pb::WatchRequest>(b"{} x").is_err());
    }
}
