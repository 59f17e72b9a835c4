//! A raw HTTP/2 client, written for these tests so that frames can be
//! broken on purpose: TCP to loopback, the connection preface, and frames
//! whose 9-byte headers are written here (RFC 9113 §4.1):
//!
//! ```text
//! +-----------------------------------------------+
//! |                 Length (24)                   |
//! +---------------+---------------+---------------+
//! |   Type (8)    |   Flags (8)   |
//! +-+-------------+---------------+-------------------------------+
//! |R|                 Stream Identifier (31)                      |
//! +=+=============================================================+
//! |                   Frame Payload (0...)                      ...
//! +---------------------------------------------------------------+
//! ```
//!
//! Everything is big-endian (network order), as the RFC fixes it.
//!
//! Requests are HPACK-encoded by hand as "literal header field without
//! indexing, new name" (RFC 7541 §6.2.2: `0x00`, name, value, no Huffman),
//! so the server's dynamic table never changes and a broken block is just
//! bytes. Answers are decoded with `loona_hpack`, one decoder per
//! connection (the server may index into its dynamic table).
//!
//! Every read and write is bounded: reads by a deadline, writes by
//! [`WRITE_TIMEOUT`].

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ferrocd_net::pb::etcdserverpb::{PutRequest, PutResponse};
use prost::Message;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A write that does not finish within this is given up on (a server
/// that stopped reading).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

// Frame types (RFC 9113 §6).
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

// Flags.
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY: u8 = 0x20;

// Error codes (RFC 9113 §7).
pub const NO_ERROR: u32 = 0x0;
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const FLOW_CONTROL_ERROR: u32 = 0x3;
pub const STREAM_CLOSED: u32 = 0x5;
pub const FRAME_SIZE_ERROR: u32 = 0x6;
pub const REFUSED_STREAM: u32 = 0x7;
pub const CANCEL: u32 = 0x8;
pub const COMPRESSION_ERROR: u32 = 0x9;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

// SETTINGS parameters (RFC 9113 §6.5.2).
pub const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;

/// The largest flow-control window (RFC 9113 §6.9.1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

/// An error code's name, for messages.
pub fn code_name(code: u32) -> String {
    let name = match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        _ => return format!("0x{code:x}"),
    };
    name.to_string()
}

/// The 9-byte frame header and the payload, as one buffer.
pub fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    frame_with_len(ty, flags, stream, payload.len(), payload)
}

/// [`frame`] with a declared length that may differ from the payload's.
pub fn frame_with_len(ty: u8, flags: u8, stream: u32, len: usize, payload: &[u8]) -> Vec<u8> {
    assert!(len < 1 << 24, "frame length is 24 bits");
    let mut v = Vec::with_capacity(9 + payload.len());
    v.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    v.push(ty);
    v.push(flags);
    // The reserved high bit stays 0.
    v.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A SETTINGS payload: 6 bytes per parameter (id, value).
pub fn settings_payload(params: &[(u16, u32)]) -> Vec<u8> {
    let mut v = Vec::new();
    for (id, value) in params {
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(&value.to_be_bytes());
    }
    v
}

/// An HPACK integer with an `n`-bit prefix whose high bits are `first`
/// (RFC 7541 §5.1).
pub fn hpack_int(first: u8, n: u32, mut value: usize, out: &mut Vec<u8>) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// One field as "literal header field without indexing, new name", both
/// strings raw (no Huffman).
pub fn literal(name: &str, value: &[u8], out: &mut Vec<u8>) {
    out.push(0x00);
    hpack_int(0x00, 7, name.len(), out);
    out.extend_from_slice(name.as_bytes());
    hpack_int(0x00, 7, value.len(), out);
    out.extend_from_slice(value);
}

/// A [`literal`] named `name` whose encoding is exactly `len` bytes (a
/// value of filler), to fill a frame to a chosen size.
pub fn literal_of_len(name: &str, len: usize) -> Vec<u8> {
    let mut value = len.saturating_sub(2 + name.len());
    loop {
        let mut out = Vec::new();
        literal(name, &vec![b'f'; value], &mut out);
        if out.len() <= len {
            assert_eq!(out.len(), len, "no value length encodes to {len} bytes");
            return out;
        }
        // A longer length prefix: shorten the value by the excess.
        value -= out.len() - len;
    }
}

/// A field block of `fields`, all as [`literal`]s.
pub fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in fields {
        literal(n, v.as_bytes(), &mut out);
    }
    out
}

/// The field block of a gRPC call to `path` (e.g. `/etcdserverpb.KV/Put`).
pub fn grpc_request(port: u16, path: &str) -> Vec<u8> {
    let authority = format!("127.0.0.1:{port}");
    block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", &authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ])
}

/// A gRPC message: the 5-byte prefix (uncompressed, length) and `msg`.
pub fn grpc_message(msg: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    v.extend_from_slice(msg);
    v
}

/// A `PutRequest` as a gRPC message.
pub fn put_message(key: &str, value: &[u8]) -> Vec<u8> {
    grpc_message(
        &PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.to_vec(),
            ..Default::default()
        }
        .encode_to_vec(),
    )
}

/// What a frame from the server says, decoded as far as these tests read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Data {
        end_stream: bool,
        len: usize,
    },
    /// A whole field block (HEADERS and its CONTINUATIONs), decoded; `Err`
    /// when HPACK decoding failed.
    Headers {
        end_stream: bool,
        fields: Result<Vec<(String, String)>, String>,
    },
    RstStream {
        code: u32,
    },
    Settings {
        ack: bool,
        params: Vec<(u16, u32)>,
    },
    Ping {
        ack: bool,
        payload: [u8; 8],
    },
    GoAway {
        last_stream: u32,
        code: u32,
        debug: String,
    },
    WindowUpdate {
        increment: u32,
    },
    /// A type not decoded here, or a payload too short for its type.
    Other,
}

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub ty: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
    pub kind: Kind,
}

impl Frame {
    /// A field's value in a HEADERS frame.
    pub fn field(&self, name: &str) -> Option<&str> {
        match &self.kind {
            Kind::Headers { fields: Ok(f), .. } => {
                f.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.stream;
        match &self.kind {
            Kind::Data { end_stream, len } => {
                write!(
                    f,
                    "DATA[{s}] {len}B{}",
                    if *end_stream { " ES" } else { "" }
                )
            }
            Kind::Headers { end_stream, fields } => {
                write!(f, "HEADERS[{s}]{} ", if *end_stream { " ES" } else { "" })?;
                match fields {
                    Ok(fields) => {
                        let shown: Vec<String> = fields
                            .iter()
                            .filter(|(n, _)| {
                                matches!(n.as_str(), ":status" | "grpc-status" | "grpc-message")
                            })
                            .map(|(n, v)| format!("{n}={v}"))
                            .collect();
                        write!(f, "{}", shown.join(" "))
                    }
                    Err(e) => write!(f, "(undecodable: {e})"),
                }
            }
            Kind::RstStream { code } => write!(f, "RST_STREAM[{s}] {}", code_name(*code)),
            Kind::Settings { ack: true, .. } => write!(f, "SETTINGS ACK"),
            Kind::Settings { params, .. } => write!(f, "SETTINGS {params:?}"),
            Kind::Ping { ack, payload } => {
                write!(f, "PING{} {payload:?}", if *ack { " ACK" } else { "" })
            }
            Kind::GoAway {
                last_stream,
                code,
                debug,
            } => write!(
                f,
                "GOAWAY last={last_stream} {} {debug:?}",
                code_name(*code)
            ),
            Kind::WindowUpdate { increment } => write!(f, "WINDOW_UPDATE[{s}] +{increment}"),
            Kind::Other => write!(
                f,
                "frame type 0x{:x} flags 0x{:x} [{s}] {}B",
                self.ty,
                self.flags,
                self.payload.len()
            ),
        }
    }
}

/// How reading from the server ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server closed the connection (EOF).
    Eof,
    /// The connection was reset (ECONNRESET): closed, with our bytes
    /// unread on the server's side.
    Reset,
    /// Nothing more arrived before the deadline; still open.
    Quiet,
    /// Another read error.
    Io(io::ErrorKind),
}

impl End {
    /// Whether the connection is gone.
    pub fn closed(self) -> bool {
        !matches!(self, End::Quiet)
    }
}

/// A gRPC answer read to its end.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub status: Option<String>,
    pub grpc_status: Option<String>,
    pub grpc_message: Option<String>,
    /// The DATA bytes (gRPC messages with their prefixes).
    pub data: Vec<u8>,
}

/// One client connection.
pub struct Conn {
    sock: TcpStream,
    port: u16,
    buf: Vec<u8>,
    decoder: loona_hpack::Decoder<'static>,
    /// The server's first SETTINGS.
    pub server_settings: Vec<(u16, u32)>,
    /// The next client stream id to use.
    pub next_stream: u32,
    /// Answer SETTINGS and PINGs from the server, and give back the
    /// connection window for DATA read, as a well-behaved client does.
    pub auto: bool,
    /// Every frame read so far (handshake included).
    pub log: Vec<Frame>,
}

impl Conn {
    /// Connects, sends the preface and an empty SETTINGS, reads the
    /// server's SETTINGS and acknowledges them.
    pub fn open(port: u16) -> Result<Conn, String> {
        Self::open_with(port, &[])
    }

    /// [`Conn::open`] with these client SETTINGS.
    pub fn open_with(port: u16, settings: &[(u16, u32)]) -> Result<Conn, String> {
        let addr = ([127, 0, 0, 1], port).into();
        let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
        sock.set_nodelay(true).map_err(|e| e.to_string())?;
        sock.set_write_timeout(Some(WRITE_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut c = Conn {
            sock,
            port,
            buf: Vec::new(),
            decoder: loona_hpack::Decoder::new(),
            server_settings: Vec::new(),
            next_stream: 1,
            auto: true,
            log: Vec::new(),
        };
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &settings_payload(settings)));
        c.write(&hello).map_err(|e| format!("write preface: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match c.read_frame(deadline) {
                Ok(f) => {
                    if let Kind::Settings { ack: false, params } = &f.kind {
                        // `read_frame` has acknowledged them.
                        c.server_settings = params.clone();
                        return Ok(c);
                    }
                }
                Err(e) => return Err(format!("no SETTINGS from the server: {e:?}")),
            }
        }
    }

    /// The port this connection is to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A server SETTINGS value, if it sent one.
    pub fn server_setting(&self, id: u16) -> Option<u32> {
        self.server_settings
            .iter()
            .rev()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| *v)
    }

    /// The largest frame the server takes (its SETTINGS_MAX_FRAME_SIZE,
    /// 16384 unless it said otherwise).
    pub fn max_frame_size(&self) -> usize {
        self.server_setting(SETTINGS_MAX_FRAME_SIZE)
            .unwrap_or(16_384) as usize
    }

    /// Writes raw bytes (bounded by [`WRITE_TIMEOUT`]).
    /// Closes our sending side (TCP FIN), as a client process that exits
    /// does; the connection stays readable. (Used by `tests/h2_large`.)
    #[allow(dead_code)]
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.sock.shutdown(std::net::Shutdown::Write)
    }

    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.sock.write_all(bytes)
    }

    /// Writes one frame.
    pub fn send(&mut self, ty: u8, flags: u8, stream: u32, payload: &[u8]) -> io::Result<()> {
        self.write(&frame(ty, flags, stream, payload))
    }

    /// A fresh client stream id (odd, increasing).
    pub fn new_stream(&mut self) -> u32 {
        let id = self.next_stream;
        self.next_stream += 2;
        id
    }

    /// Reads one frame (a whole field block for HEADERS), or how reading
    /// ended by `deadline`.
    pub fn read_frame(&mut self, deadline: Instant) -> Result<Frame, End> {
        let (ty, flags, stream, mut payload) = self.read_raw(deadline)?;
        if ty == HEADERS && flags & END_HEADERS == 0 {
            // Gather the CONTINUATIONs of the block.
            loop {
                let (t, fl, s, p) = self.read_raw(deadline)?;
                if t != CONTINUATION || s != stream {
                    let f = Frame {
                        ty: t,
                        flags: fl,
                        stream: s,
                        payload: p,
                        kind: Kind::Other,
                    };
                    panic!("the server interleaved {f} into a field block");
                }
                payload.extend_from_slice(&p);
                if fl & END_HEADERS != 0 {
                    break;
                }
            }
        }
        let kind = self.decode(ty, flags, &payload);
        let f = Frame {
            ty,
            flags,
            stream,
            payload,
            kind,
        };
        if self.auto {
            self.answer(&f);
        }
        self.log.push(f.clone());
        Ok(f)
    }

    /// What a well-behaved client sends back for `f` (errors ignored: the
    /// next read tells what happened).
    fn answer(&mut self, f: &Frame) {
        match &f.kind {
            Kind::Settings { ack: false, .. } => {
                let _ = self.send(SETTINGS, ACK, 0, &[]);
            }
            Kind::Ping {
                ack: false,
                payload,
            } => {
                let p = *payload;
                let _ = self.send(PING, ACK, 0, &p);
            }
            Kind::Data { len, .. } if *len > 0 => {
                let inc = (f.payload.len() as u32).to_be_bytes();
                let _ = self.send(WINDOW_UPDATE, 0, 0, &inc);
            }
            _ => {}
        }
    }

    fn decode(&mut self, ty: u8, flags: u8, payload: &[u8]) -> Kind {
        let u32_at = |i: usize| -> Option<u32> {
            payload
                .get(i..i + 4)
                .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
        };
        match ty {
            DATA => Kind::Data {
                end_stream: flags & END_STREAM != 0,
                len: payload.len(),
            },
            HEADERS => {
                let mut b = payload;
                let mut pad = 0;
                if flags & PADDED != 0 {
                    let Some((&p, rest)) = b.split_first() else {
                        return Kind::Other;
                    };
                    pad = p as usize;
                    b = rest;
                }
                if flags & PRIORITY != 0 {
                    let Some(rest) = b.get(5..) else {
                        return Kind::Other;
                    };
                    b = rest;
                }
                let Some(b) = b.get(..b.len().saturating_sub(pad)) else {
                    return Kind::Other;
                };
                let fields = self
                    .decoder
                    .decode(b)
                    .map(|fs| {
                        fs.into_iter()
                            .map(|(n, v)| {
                                (
                                    String::from_utf8_lossy(&n).into_owned(),
                                    String::from_utf8_lossy(&v).into_owned(),
                                )
                            })
                            .collect()
                    })
                    .map_err(|e| e.to_string());
                Kind::Headers {
                    end_stream: flags & END_STREAM != 0,
                    fields,
                }
            }
            RST_STREAM => match u32_at(0) {
                Some(code) => Kind::RstStream { code },
                None => Kind::Other,
            },
            SETTINGS => Kind::Settings {
                ack: flags & ACK != 0,
                params: payload
                    .chunks_exact(6)
                    .map(|c| {
                        (
                            u16::from_be_bytes([c[0], c[1]]),
                            u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                        )
                    })
                    .collect(),
            },
            PING => match payload.try_into() {
                Ok(p) => Kind::Ping {
                    ack: flags & ACK != 0,
                    payload: p,
                },
                Err(_) => Kind::Other,
            },
            GOAWAY => match (u32_at(0), u32_at(4)) {
                (Some(last), Some(code)) => Kind::GoAway {
                    last_stream: last & MAX_WINDOW,
                    code,
                    debug: String::from_utf8_lossy(&payload[8..]).into_owned(),
                },
                _ => Kind::Other,
            },
            WINDOW_UPDATE => match u32_at(0) {
                Some(i) => Kind::WindowUpdate {
                    increment: i & MAX_WINDOW,
                },
                None => Kind::Other,
            },
            _ => Kind::Other,
        }
    }

    /// One frame's header and payload, as sent.
    fn read_raw(&mut self, deadline: Instant) -> Result<(u8, u8, u32, Vec<u8>), End> {
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let ty = self.buf[3];
                    let flags = self.buf[4];
                    let stream =
                        u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]])
                            & MAX_WINDOW;
                    let payload = self.buf[9..9 + len].to_vec();
                    self.buf.drain(..9 + len);
                    return Ok((ty, flags, stream, payload));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(End::Quiet);
            }
            let wait = (deadline - now).max(Duration::from_millis(1));
            self.sock
                .set_read_timeout(Some(wait))
                .map_err(|e| End::Io(e.kind()))?;
            let mut chunk = [0u8; 64 * 1024];
            match self.sock.read(&mut chunk) {
                Ok(0) => return Err(End::Eof),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {}
                    io::ErrorKind::Interrupted => {}
                    io::ErrorKind::ConnectionReset => return Err(End::Reset),
                    k => return Err(End::Io(k)),
                },
            }
        }
    }

    /// Reads what the server says within `within`: every frame until the
    /// connection closes or the deadline. A GOAWAY shortens the wait to
    /// [`CLOSE_GRACE`] (time to see the close that must follow); a
    /// RST_STREAM or a PING ACK to [`SETTLE`].
    pub fn observe(&mut self, within: Duration) -> (Vec<Frame>, End) {
        let mut deadline = Instant::now() + within;
        let mut frames = Vec::new();
        loop {
            match self.read_frame(deadline) {
                Ok(f) => {
                    let grace = match f.kind {
                        Kind::GoAway { .. } => Some(CLOSE_GRACE),
                        Kind::RstStream { .. } | Kind::Ping { ack: true, .. } => Some(SETTLE),
                        _ => None,
                    };
                    if let Some(g) = grace {
                        deadline = deadline.min(Instant::now() + g);
                    }
                    frames.push(f);
                }
                Err(end) => return (frames, end),
            }
        }
    }

    /// Sends a whole gRPC request (HEADERS, one DATA with END_STREAM) on a
    /// new stream; its id.
    pub fn start_call(&mut self, path: &str, message: &[u8]) -> io::Result<u32> {
        let id = self.new_stream();
        let mut bytes = frame(HEADERS, END_HEADERS, id, &grpc_request(self.port, path));
        bytes.extend(frame(DATA, END_STREAM, id, message));
        self.write(&bytes)?;
        Ok(id)
    }

    /// Reads until stream `id` ends (trailers, RST_STREAM, GOAWAY, close),
    /// within `within`; the answer, or what ended it instead.
    pub fn finish_call(&mut self, id: u32, within: Duration) -> Result<Answer, String> {
        let deadline = Instant::now() + within;
        let mut a = Answer::default();
        loop {
            let f = self
                .read_frame(deadline)
                .map_err(|e| format!("stream {id}: read ended: {e:?}"))?;
            match &f.kind {
                Kind::Headers { end_stream, .. } if f.stream == id => {
                    let pick = |n: &str| f.field(n).map(str::to_string);
                    a.status = a.status.or(pick(":status"));
                    a.grpc_status = a.grpc_status.or(pick("grpc-status"));
                    a.grpc_message = a.grpc_message.or(pick("grpc-message"));
                    if *end_stream {
                        return Ok(a);
                    }
                }
                Kind::Data { end_stream, .. } if f.stream == id => {
                    a.data.extend_from_slice(&f.payload);
                    if !f.payload.is_empty() {
                        let inc = (f.payload.len() as u32).to_be_bytes();
                        let _ = self.send(WINDOW_UPDATE, 0, id, &inc);
                    }
                    if *end_stream {
                        return Ok(a);
                    }
                }
                Kind::RstStream { code } if f.stream == id => {
                    return Err(format!("stream {id}: RST_STREAM {}", code_name(*code)));
                }
                Kind::GoAway { .. } => return Err(format!("stream {id}: {f}")),
                _ => {}
            }
        }
    }

    /// One gRPC call on a new stream, read to its end.
    pub fn call(&mut self, path: &str, message: &[u8], within: Duration) -> Result<Answer, String> {
        let id = self
            .start_call(path, message)
            .map_err(|e| format!("write request: {e}"))?;
        self.finish_call(id, within)
    }

    /// A `Put` of `key` that must succeed: `:status` 200, a `PutResponse`
    /// with a header, `grpc-status` 0.
    pub fn put_ok(&mut self, key: &str, within: Duration) -> Result<(), String> {
        let a = self.call("/etcdserverpb.KV/Put", &put_message(key, b"v"), within)?;
        check_put(&a)
    }
}

/// How long to wait for the close that must follow a GOAWAY sent for an
/// error (RFC 9113 §5.4.1).
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long to keep reading after a RST_STREAM or PING ACK (to catch a
/// GOAWAY sent right after it).
pub const SETTLE: Duration = Duration::from_millis(300);

/// That `a` is a successful unary `Put`.
pub fn check_put(a: &Answer) -> Result<(), String> {
    if a.status.as_deref() != Some("200") || a.grpc_status.as_deref() != Some("0") {
        return Err(format!("Put answered {a:?}"));
    }
    let msg = a
        .data
        .get(5..)
        .ok_or_else(|| format!("Put answered no message: {a:?}"))?;
    let declared = u32::from_be_bytes(a.data[1..5].try_into().expect("4 bytes")) as usize;
    if a.data[0] != 0 || declared != msg.len() {
        return Err(format!("bad gRPC framing in {:?}", a.data));
    }
    let r = PutResponse::decode(msg).map_err(|e| format!("PutResponse: {e}"))?;
    if r.header.is_none_or(|h| h.revision < 2) {
        return Err(format!("PutResponse without a revision: {r:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpack_integers_as_rfc_7541_c_1() {
        // C.1.1: 10 in a 5-bit prefix; C.1.2: 1337 in a 5-bit prefix.
        let mut v = Vec::new();
        hpack_int(0, 5, 10, &mut v);
        assert_eq!(v, [0x0a]);
        v.clear();
        hpack_int(0, 5, 1337, &mut v);
        assert_eq!(v, [0x1f, 0x9a, 0x0a]);
    }

    #[test]
    fn literal_round_trips_through_a_decoder() {
        let b = block(&[(":path", "/x"), ("te", "trailers")]);
        let got = loona_hpack::Decoder::new().decode(&b).expect("decodes");
        assert_eq!(
            got,
            vec![
                (b":path".to_vec(), b"/x".to_vec()),
                (b"te".to_vec(), b"trailers".to_vec())
            ]
        );
    }

    #[test]
    fn literal_of_len_is_that_long_and_decodes() {
        for len in [20, 140, 16_384, 16_385, 1 << 20] {
            let b = literal_of_len("x-pad", len);
            assert_eq!(b.len(), len);
            let got = loona_hpack::Decoder::new().decode(&b).expect("decodes");
            assert_eq!(got[0].0, b"x-pad");
        }
    }

    #[test]
    fn frame_header_is_nine_big_endian_bytes() {
        assert_eq!(
            frame(WINDOW_UPDATE, 0, 5, &[0, 0, 1, 0]),
            [0, 0, 4, 8, 0, 0, 0, 0, 5, 0, 0, 1, 0]
        );
    }
}
