//! The gRPC transport: tonic's generic client over one HTTP/2 channel per
//! endpoint, driven by the same method table as the fast path, so every
//! call exists in both and says the same thing.

use std::time::Duration;

use futures_util::StreamExt;
use http::uri::PathAndQuery;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};

use super::Error;
use super::fast::CallError;
use crate::fast::methods::{Streaming, Unary};

/// A live channel (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    channel: Channel,
    token: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    require_leader: bool,
}

impl Conn {
    pub(crate) async fn dial(
        addr: &str,
        tls: Option<&super::Tls>,
        timeout: Duration,
        require_leader: bool,
    ) -> Result<Conn, String> {
        // With TLS the URI stays `http://`: tonic's own TLS (a feature we
        // do not build) would insist on `https`; our connector does the
        // TLS, and the server does not look at the `:scheme`.
        let ep = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("bad endpoint {addr}: {e}"))?
            .connect_timeout(timeout)
            .tcp_nodelay(true);
        let connect = async {
            match tls {
                None => ep.connect().await,
                Some(tls) => {
                    let (cfg, opts, addr) = (tls.grpc.clone(), tls.opts.clone(), addr.to_string());
                    let connector = tower::service_fn(move |_: http::Uri| {
                        let (cfg, opts, addr) = (cfg.clone(), opts.clone(), addr.clone());
                        async move {
                            let tcp = tokio::net::TcpStream::connect(&addr).await?;
                            let _ = tcp.set_nodelay(true);
                            let s = super::Tls::connect(&cfg, &opts, &addr, tcp).await?;
                            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                        }
                    });
                    ep.connect_with_connector(connector).await
                }
            }
        };
        let channel = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| format!("dial tcp {addr}: i/o timeout"))?
            .map_err(|e| format!("dial tcp {addr}: {}", source_text(&e)))?;
        Ok(Conn {
            channel,
            token: None,
            require_leader,
        })
    }

    pub(crate) fn set_token(&mut self, token: &str) {
        self.token = token.parse().ok();
    }

    fn request<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        if let Some(t) = &self.token {
            r.metadata_mut().insert("token", t.clone());
        }
        if self.require_leader {
            r.metadata_mut().insert(
                "hasleader",
                tonic::metadata::MetadataValue::from_static("true"),
            );
        }
        r
    }

    async fn ready(&self) -> Result<tonic::client::Grpc<Channel>, CallError> {
        let mut g = tonic::client::Grpc::new(self.channel.clone())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        g.ready().await.map_err(|e| CallError {
            error: Error::status(Code::Unavailable, source_text(&e)),
            sent: false,
            broken: true,
        })?;
        Ok(g)
    }

    pub(crate) async fn unary<M: Unary>(&self, req: M::Req) -> Result<M::Resp, CallError> {
        let mut g = self.ready().await?;
        let codec = tonic_prost::ProstCodec::<M::Req, M::Resp>::default();
        g.unary(self.request(req), PathAndQuery::from_static(M::PATH), codec)
            .await
            .map(|r| r.into_inner())
            .map_err(status_error)
    }

    /// Open a stream; later client messages go through the sender.
    pub(crate) async fn open<M: Streaming>(
        &self,
        first: M::Req,
    ) -> Result<
        (
            mpsc::Sender<M::Req>,
            futures_util::stream::BoxStream<'static, Result<M::Resp, Error>>,
        ),
        CallError,
    > {
        let mut g = self.ready().await?;
        let (tx, rx) = mpsc::channel(64);
        tx.send(first).await.expect("receiver alive");
        let codec = tonic_prost::ProstCodec::<M::Req, M::Resp>::default();
        let resp = g
            .streaming(
                self.request(ReceiverStream::new(rx)),
                PathAndQuery::from_static(M::PATH),
                codec,
            )
            .await
            .map_err(status_error)?;
        let s = resp.into_inner().map(|r| r.map_err(Error::from)).boxed();
        Ok((tx, s))
    }
}

impl Conn {
    /// Call a server-streaming method: one request message, then the
    /// request side ends (a tonic server reads a server stream's request
    /// to its end before calling the method, so it must end).
    pub(crate) async fn server_stream<M: Streaming>(
        &self,
        req: M::Req,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<M::Resp, Error>>, CallError> {
        let mut g = self.ready().await?;
        let codec = tonic_prost::ProstCodec::<M::Req, M::Resp>::default();
        let resp = g
            .server_streaming(self.request(req), PathAndQuery::from_static(M::PATH), codec)
            .await
            .map_err(status_error)?;
        Ok(resp.into_inner().map(|r| r.map_err(Error::from)).boxed())
    }
}

fn status_error(s: tonic::Status) -> CallError {
    // A status tonic made up because the connection failed (not one the
    // server sent) carries a transport source.
    let broken = s.code() == Code::Unavailable && s.metadata().is_empty();
    let sent = !(broken && s.message().contains("connect"));
    CallError {
        error: Error::from(s),
        sent,
        broken,
    }
}

/// The innermost cause of a transport error, for messages.
fn source_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
