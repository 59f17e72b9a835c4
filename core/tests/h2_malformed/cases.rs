//! The cases: each one function that runs against any [`Target`] on a
//! fresh connection and returns what was [`Observed`], so the same
//! stimulus is judged for ferrocd and recorded for etcd 3.5.1. The checks
//! at the end hold RFC 9113's requirements (an error's code and scope).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferrocd_net::pb::etcdserverpb::{PutRequest, RangeRequest, kv_client::KvClient};
use prost::Message;

use crate::target::{Side, Target};
use crate::wire::*;

/// How long a server gets to answer a stimulus.
pub const WAIT: Duration = Duration::from_secs(2);
/// The bound on one well-formed call.
pub const CALL: Duration = Duration::from_secs(5);

const PUT: &str = "/etcdserverpb.KV/Put";
const RANGE: &str = "/etcdserverpb.KV/Range";

/// What the server said to a stimulus, in RFC 9113's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A GOAWAY with this error code; `closed`: the connection then closed.
    ConnError { code: u32, closed: bool },
    /// A RST_STREAM for `stream` with this code (and no GOAWAY).
    StreamError { stream: u32, code: u32 },
    /// The connection closed with no GOAWAY and no RST_STREAM.
    Closed,
    /// A GOAWAY with NO_ERROR (a graceful close).
    GoAwayNoError { closed: bool },
    /// A PING ACK (and no error), with its payload.
    Pong([u8; 8]),
    /// Nothing of the above; the connection is still open.
    Quiet,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let closed = |c: bool| if c { ", then closed" } else { ", left open" };
        match self {
            Verdict::ConnError { code, closed: c } => {
                write!(f, "GOAWAY {}{}", code_name(*code), closed(*c))
            }
            Verdict::StreamError { stream, code } => {
                write!(f, "RST_STREAM[{stream}] {}", code_name(*code))
            }
            Verdict::Closed => write!(f, "closed without GOAWAY"),
            Verdict::GoAwayNoError { closed: c } => write!(f, "GOAWAY NO_ERROR{}", closed(*c)),
            Verdict::Pong(p) => write!(f, "PING ACK {:?}", String::from_utf8_lossy(p)),
            Verdict::Quiet => write!(f, "no error, still open"),
        }
    }
}

/// The verdict of the frames read after a stimulus and how reading ended.
pub fn verdict(frames: &[Frame], end: End) -> Verdict {
    let goaways: Vec<u32> = frames
        .iter()
        .filter_map(|f| match f.kind {
            Kind::GoAway { code, .. } => Some(code),
            _ => None,
        })
        .collect();
    if let Some(&code) = goaways.iter().find(|&&c| c != NO_ERROR) {
        return Verdict::ConnError {
            code,
            closed: end.closed(),
        };
    }
    if !goaways.is_empty() {
        return Verdict::GoAwayNoError {
            closed: end.closed(),
        };
    }
    if let Some((stream, code)) = frames.iter().find_map(|f| match f.kind {
        Kind::RstStream { code } => Some((f.stream, code)),
        _ => None,
    }) {
        return Verdict::StreamError { stream, code };
    }
    if end.closed() {
        return Verdict::Closed;
    }
    if let Some(p) = frames.iter().find_map(|f| match f.kind {
        Kind::Ping { ack: true, payload } => Some(payload),
        _ => None,
    }) {
        return Verdict::Pong(p);
    }
    Verdict::Quiet
}

/// Everything one case saw.
#[derive(Debug)]
pub struct Observed {
    pub side: Side,
    pub verdict: Verdict,
    /// The frames read after the stimulus, as text.
    pub frames: Vec<String>,
    pub end: End,
    /// Calls on the same connection after the stimulus (where the
    /// connection must survive): `None` when not tried.
    pub same_conn: Option<Result<(), String>>,
    /// A well-formed call on a fresh connection afterwards.
    pub after: Result<(), String>,
    /// Case-specific bounds (memory, CPU, latency, settings): name and
    /// outcome.
    pub limits: Vec<(&'static str, Result<(), String>)>,
    /// Measurements, for the report.
    pub notes: Vec<String>,
}

impl std::fmt::Display for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{:?}: {}", self.side, self.verdict)?;
        // Long runs (floods) show their first and last frames.
        let n = self.frames.len();
        for (i, fr) in self.frames.iter().enumerate() {
            if n <= 12 || i < 6 || i >= n - 6 {
                writeln!(f, "  < {fr}")?;
            } else if i == 6 {
                writeln!(f, "  < ... {} more", n - 12)?;
            }
        }
        writeln!(f, "  end of reading: {:?}", self.end)?;
        if let Some(s) = &self.same_conn {
            writeln!(f, "  same connection afterwards: {s:?}")?;
        }
        writeln!(f, "  fresh connection afterwards: {:?}", self.after)?;
        for (name, r) in &self.limits {
            writeln!(f, "  {name}: {r:?}")?;
        }
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        Ok(())
    }
}

impl Observed {
    fn new(t: &Target, frames: &[Frame], end: End) -> Observed {
        Observed {
            side: t.side,
            verdict: verdict(frames, end),
            frames: frames.iter().map(|f| f.to_string()).collect(),
            end,
            same_conn: None,
            after: serves(t),
            limits: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// A fresh connection to `t`, handshake done.
pub fn open(t: &Target) -> Conn {
    Conn::open(t.port()).unwrap_or_else(|e| panic!("{e}\n{}", t.log_tail()))
}

/// Whether `t` serves a well-formed Put on a fresh connection.
pub fn serves(t: &Target) -> Result<(), String> {
    Conn::open(t.port())?.put_ok("h2/after", CALL)
}

/// Sends `bytes` (write errors are fine: a server may close first) and
/// reads the answer.
fn poke(t: &Target, mut c: Conn, bytes: &[u8]) -> Observed {
    let _ = c.write(bytes);
    let (frames, end) = c.observe(WAIT);
    Observed::new(t, &frames, end)
}

/// [`poke`], then (if the connection is open) a Put on it, which a stream
/// error must leave working.
fn poke_stream(t: &Target, mut c: Conn, bytes: &[u8]) -> Observed {
    let _ = c.write(bytes);
    let (frames, end) = c.observe(WAIT);
    let mut o = Observed::new(t, &frames, end);
    o.same_conn = Some(if end.closed() {
        Err("closed".into())
    } else {
        c.put_ok("h2/same", CALL)
    });
    o
}

/// The HEADERS of a Put on `id`, without END_STREAM (the body would
/// follow).
fn open_put(c: &Conn, id: u32) -> Vec<u8> {
    frame(HEADERS, END_HEADERS, id, &grpc_request(c.port(), PUT))
}

// 1. A well-formed call.

/// Two Puts written by hand on one connection: `:status` 200, a
/// `PutResponse`, `grpc-status` 0.
pub fn well_formed_unary(t: &Target) -> Observed {
    let mut c = open(t);
    let first = c.put_ok("h2/k", CALL);
    let second = c.put_ok("h2/k", CALL);
    let frames: Vec<Frame> = c.log.clone();
    let mut o = Observed::new(t, &frames, End::Quiet);
    o.same_conn = Some(first.and(second));
    o
}

// 2. Bad HPACK.

fn bad_block(t: &Target, tail: &[u8]) -> Observed {
    let c = open(t);
    let mut b = grpc_request(c.port(), PUT);
    b.extend_from_slice(tail);
    let bytes = frame(HEADERS, END_HEADERS | END_STREAM, 1, &b);
    poke(t, c, &bytes)
}

/// An indexed field with index 0 (RFC 7541 §6.1: a decoding error).
pub fn hpack_index_zero(t: &Target) -> Observed {
    bad_block(t, &[0x80])
}

/// An indexed field with index 70: past the 61 static entries, and the
/// dynamic table is empty (nothing was ever indexed).
pub fn hpack_index_past_tables(t: &Target) -> Observed {
    bad_block(t, &[0x80 | 70])
}

/// A literal whose name is Huffman-coded `a` (`00011`) padded with `000`:
/// padding must be the EOS code's most significant bits, all ones
/// (RFC 7541 §5.2).
pub fn hpack_huffman_bad_padding(t: &Target) -> Observed {
    bad_block(t, &[0x00, 0x81, 0b0001_1000, 0x01, b'x'])
}

// 3. Frames over SETTINGS_MAX_FRAME_SIZE.

/// A HEADERS frame one byte over the server's MAX_FRAME_SIZE, with a
/// valid field block (a padding field fills it).
pub fn oversized_headers(t: &Target) -> Observed {
    let c = open(t);
    let target = c.max_frame_size() + 1;
    let mut b = grpc_request(c.port(), PUT);
    let pad = literal_of_len("x-pad", target - b.len());
    b.extend(pad);
    let bytes = frame(HEADERS, END_HEADERS | END_STREAM, 1, &b);
    poke(t, c, &bytes)
}

/// A DATA frame one byte over MAX_FRAME_SIZE on an open stream.
pub fn oversized_data(t: &Target) -> Observed {
    let mut c = open(t);
    let n = c.max_frame_size() + 1;
    let id = c.new_stream();
    let mut bytes = open_put(&c, id);
    bytes.extend(frame(DATA, END_STREAM, id, &grpc_message(&vec![0; n - 5])));
    poke(t, c, &bytes)
}

// 4. WINDOW_UPDATE.

/// An increment that takes the connection window past 2^31-1.
pub fn window_overflow_connection(t: &Target) -> Observed {
    let c = open(t);
    poke(t, c, &frame(WINDOW_UPDATE, 0, 0, &MAX_WINDOW.to_be_bytes()))
}

/// An increment that takes an open stream's window past 2^31-1.
pub fn window_overflow_stream(t: &Target) -> Observed {
    let mut c = open(t);
    let id = c.new_stream();
    let mut bytes = open_put(&c, id);
    bytes.extend(frame(WINDOW_UPDATE, 0, id, &MAX_WINDOW.to_be_bytes()));
    poke_stream(t, c, &bytes)
}

/// A zero increment on an open stream.
pub fn window_update_zero_stream(t: &Target) -> Observed {
    let mut c = open(t);
    let id = c.new_stream();
    let mut bytes = open_put(&c, id);
    bytes.extend(frame(WINDOW_UPDATE, 0, id, &0u32.to_be_bytes()));
    poke_stream(t, c, &bytes)
}

/// A zero increment on the connection.
pub fn window_update_zero_connection(t: &Target) -> Observed {
    let c = open(t);
    poke(t, c, &frame(WINDOW_UPDATE, 0, 0, &0u32.to_be_bytes()))
}

// 5. Stream ids.

/// A request on stream 2 (client streams are odd).
pub fn even_stream_id(t: &Target) -> Observed {
    let c = open(t);
    let bytes = open_put(&c, 2);
    poke(t, c, &bytes)
}

/// A call on stream 7, then a request on stream 5.
pub fn stream_id_backwards(t: &Target) -> Observed {
    let mut c = open(t);
    c.next_stream = 7;
    c.put_ok("h2/k", CALL).expect("a call on stream 7");
    let bytes = open_put(&c, 5);
    poke(t, c, &bytes)
}

/// A call on stream 1, then a new request on stream 1 again.
pub fn stream_id_reused(t: &Target) -> Observed {
    let mut c = open(t);
    c.put_ok("h2/k", CALL).expect("a call on stream 1");
    let bytes = open_put(&c, 1);
    poke(t, c, &bytes)
}

// 6. CONTINUATION.

/// What the CONTINUATION flood may send at most.
pub const FLOOD_BYTES: usize = 64 << 20;
/// ... and for how long.
pub const FLOOD_TIME: Duration = Duration::from_secs(15);
/// The bound on the server's RSS growth while flooded.
pub const FLOOD_RSS_KIB: u64 = 32 << 10;

/// HEADERS without END_HEADERS, then CONTINUATIONs of 16 KiB,
/// each one whole `x-flood` field, until the server stops it or
/// [`FLOOD_BYTES`] went out (or [`FLOOD_TIME`] passed). A server that
/// keeps the block until END_HEADERS grows by everything sent.
pub fn continuation_flood(t: &Target) -> Observed {
    let mut c = open(t);
    // 16 KiB frames, whatever larger size the server would take.
    let size = c.max_frame_size().min(16_384);
    let rss0 = t.rss_kib();
    let cpu0 = t.cpu();
    let cont = frame(CONTINUATION, 0, 1, &literal_of_len("x-flood", size));
    let start = Instant::now();
    let mut frames = Vec::new();
    let mut end = End::Quiet;
    let mut sent = 0usize;
    let mut peak = rss0;
    let mut stop = String::from("sent everything");
    if let Err(e) = c.write(&frame(HEADERS, 0, 1, &grpc_request(c.port(), PUT))) {
        stop = format!("write HEADERS: {e}");
    } else {
        let mut i = 0u64;
        while sent < FLOOD_BYTES {
            if start.elapsed() > FLOOD_TIME {
                stop = format!("time limit {FLOOD_TIME:?}");
                break;
            }
            if let Err(e) = c.write(&cont) {
                stop = format!("write: {e}");
                break;
            }
            sent += cont.len();
            i += 1;
            if i.is_multiple_of(64) {
                peak = peak.max(t.rss_kib());
                let (f, e) = c.observe(Duration::from_millis(1));
                let answered = f.iter().any(|f| matches!(f.kind, Kind::GoAway { .. }));
                frames.extend(f);
                end = e;
                if answered || e.closed() {
                    stop = "the server answered".into();
                    break;
                }
            }
        }
    }
    let took = start.elapsed();
    if !end.closed() {
        let (f, e) = c.observe(WAIT);
        frames.extend(f);
        end = e;
    }
    peak = peak.max(t.rss_kib());
    let grown = peak.saturating_sub(rss0);
    let cpu = t.cpu().saturating_sub(cpu0);
    let mut o = Observed::new(t, &frames, end);
    o.notes.push(format!(
        "sent {:.1} MiB of CONTINUATION in {took:.1?} ({stop}); RSS {} -> peak {} MiB \
         (+{:.1}); server CPU {cpu:.1?}",
        sent as f64 / (1 << 20) as f64,
        rss0 >> 10,
        peak >> 10,
        grown as f64 / 1024.0
    ));
    o.limits.push((
        "stops the flood before 64 MiB",
        if sent < FLOOD_BYTES && end.closed() {
            Ok(())
        } else {
            Err(format!(
                "{:.1} MiB sent, still open: {stop}",
                sent as f64 / (1 << 20) as f64
            ))
        },
    ));
    o.limits.push((
        "RSS growth < 32 MiB",
        if grown < FLOOD_RSS_KIB {
            Ok(())
        } else {
            Err(format!("+{} MiB", grown >> 10))
        },
    ));
    o
}

/// HEADERS without END_HEADERS on stream 1, then the rest of the block in
/// a CONTINUATION on stream 3.
pub fn continuation_wrong_stream(t: &Target) -> Observed {
    let c = open(t);
    let b = grpc_request(c.port(), PUT);
    let (head, tail) = b.split_at(field_boundary(&b));
    let mut bytes = frame(HEADERS, 0, 1, head);
    bytes.extend(frame(CONTINUATION, END_HEADERS, 3, tail));
    poke(t, c, &bytes)
}

/// HEADERS without END_HEADERS, a PING, then the CONTINUATION.
pub fn continuation_interleaved(t: &Target) -> Observed {
    let c = open(t);
    let b = grpc_request(c.port(), PUT);
    let (head, tail) = b.split_at(field_boundary(&b));
    let mut bytes = frame(HEADERS, 0, 1, head);
    bytes.extend(frame(PING, 0, 0, b"between!"));
    bytes.extend(frame(CONTINUATION, END_HEADERS, 1, tail));
    poke(t, c, &bytes)
}

/// Where the third field of a [`grpc_request`] block starts (each field
/// there is `0x00`, a 1-byte name length, the name, a 1-byte value length,
/// the value).
fn field_boundary(b: &[u8]) -> usize {
    let mut i = 0;
    for _ in 0..2 {
        let name = b[i + 1] as usize;
        let value = b[i + 2 + name] as usize;
        i += 3 + name + value;
    }
    i
}

// 7. Rapid reset.

/// Streams opened and reset at once.
pub const RESETS: u32 = 10_000;
/// The bound on the server's CPU time for the flood and its aftermath.
pub const RESET_CPU: Duration = Duration::from_secs(10);
/// The bound on the server's RSS growth.
pub const RESET_RSS_KIB: u64 = 64 << 10;

/// [`RESETS`] times: HEADERS and DATA of a Range (so the server has work
/// to start) and RST_STREAM(CANCEL) right after, in batches; meanwhile a
/// second connection makes well-formed calls.
pub fn rapid_reset(t: &Target) -> Observed {
    let mut c = open(t);
    let rss0 = t.rss_kib();
    let cpu0 = t.cpu();
    let side = side_calls(t.port());
    let msg = grpc_message(
        &RangeRequest {
            key: b"h2/none".to_vec(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let headers = grpc_request(c.port(), RANGE);
    let start = Instant::now();
    let mut frames = Vec::new();
    let mut end = End::Quiet;
    let mut opened = 0u32;
    let mut stop = String::from("sent everything");
    'flood: while opened < RESETS {
        let mut batch = Vec::new();
        for _ in 0..100 {
            let id = c.new_stream();
            batch.extend(frame(HEADERS, END_HEADERS, id, &headers));
            batch.extend(frame(DATA, END_STREAM, id, &msg));
            batch.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
        }
        if let Err(e) = c.write(&batch) {
            stop = format!("write: {e}");
            break;
        }
        opened += 100;
        let (f, e) = c.observe(Duration::from_millis(1));
        let answered = f.iter().any(|f| matches!(f.kind, Kind::GoAway { .. }));
        frames.extend(f);
        end = e;
        if answered || e.closed() {
            stop = "the server answered".into();
            break 'flood;
        }
    }
    let took = start.elapsed();
    if !end.closed() {
        let (f, e) = c.observe(WAIT);
        frames.extend(f);
        end = e;
    }
    let side = side.finish();
    let rss1 = t.rss_kib();
    let cpu = t.cpu().saturating_sub(cpu0);
    // Keep only what tells the story: errors, not the answers to
    // streams the server got to before the reset.
    frames.retain(|f| match f.kind {
        Kind::GoAway { .. } => true,
        Kind::RstStream { code } => code != CANCEL,
        _ => false,
    });
    let mut o = Observed::new(t, &frames, end);
    let grown = rss1.saturating_sub(rss0);
    o.notes.push(format!(
        "{opened} streams opened and reset in {took:.1?} ({stop}); server CPU {cpu:.1?}; \
         RSS {} -> {} MiB; side calls: {}",
        rss0 >> 10,
        rss1 >> 10,
        side.summary()
    ));
    o.limits
        .push(("side connection served within 5 s", side.result()));
    o.limits.push((
        "server CPU < 10 s",
        if cpu < RESET_CPU {
            Ok(())
        } else {
            Err(format!("{cpu:.1?}"))
        },
    ));
    o.limits.push((
        "RSS growth < 64 MiB",
        if grown < RESET_RSS_KIB {
            Ok(())
        } else {
            Err(format!("+{} MiB", grown >> 10))
        },
    ));
    o
}

// 8. A client that never reads.

/// Keys of [`BIG_VALUE`] bytes put under `big/` first.
pub const BIG_KEYS: usize = 100;
pub const BIG_VALUE: usize = 100 << 10;
/// Range calls of the whole prefix (10 MiB each) started without reading.
pub const SILENT_CALLS: usize = 32;
/// One answer's size.
const ANSWER_MIB: f64 = (BIG_KEYS * BIG_VALUE) as f64 / (1 << 20) as f64;
/// The bound on the server's RSS growth.
pub const SILENT_RSS_KIB: u64 = 64 << 10;

/// Puts [`BIG_KEYS`] × [`BIG_VALUE`], then on one connection starts
/// [`SILENT_CALLS`] Range calls of them all (320 MiB of answers) and never
/// reads; meanwhile another connection makes well-formed calls.
pub fn never_reading_client(t: &Target) -> Observed {
    put_big(t);
    let rss0 = t.rss_kib();
    let cpu0 = t.cpu();
    let mut c = open(t);
    c.auto = false;
    let msg = grpc_message(
        &RangeRequest {
            key: b"big/".to_vec(),
            range_end: b"big0".to_vec(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let side = side_calls(t.port());
    let start = Instant::now();
    let mut started = 0usize;
    let mut stop = String::from("all started");
    for _ in 0..SILENT_CALLS {
        if let Err(e) = c.start_call(RANGE, &msg) {
            stop = format!("write: {e}");
            break;
        }
        started += 1;
    }
    let took = start.elapsed();
    // Let the server work on them; the peak is what counts.
    let mut peak = rss0;
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(3) {
        peak = peak.max(t.rss_kib());
        std::thread::sleep(Duration::from_millis(50));
    }
    let side = side.finish();
    let cpu = t.cpu().saturating_sub(cpu0);
    let grown = peak.saturating_sub(rss0);
    // What the server had sent meanwhile (read only now).
    c.auto = true;
    let (frames, end) = c.observe(Duration::from_millis(200));
    let frames: Vec<Frame> = frames
        .into_iter()
        .filter(|f| matches!(f.kind, Kind::GoAway { .. } | Kind::RstStream { .. }))
        .collect();
    let mut o = Observed::new(t, &frames, end);
    o.notes.push(format!(
        "{started} Range calls of {ANSWER_MIB:.1} MiB each started in {took:.1?} ({stop}); \
         RSS {} -> peak {} MiB (+{}); server CPU {cpu:.1?}; side calls: {}",
        rss0 >> 10,
        peak >> 10,
        grown >> 10,
        side.summary()
    ));
    o.limits
        .push(("side connection served within 5 s", side.result()));
    o.limits.push((
        "RSS growth < 64 MiB",
        if grown < SILENT_RSS_KIB {
            Ok(())
        } else {
            Err(format!(
                "+{} MiB for {started} unread answers of {ANSWER_MIB:.1} MiB",
                grown >> 10
            ))
        },
    ));
    o
}

/// The `big/` keys, through a tonic client.
fn put_big(t: &Target) {
    let endpoint = t.endpoint();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut kv = KvClient::new(crate::common::connect(&endpoint).await);
        let value = vec![b'v'; BIG_VALUE];
        for i in 0..BIG_KEYS {
            let put = kv.put(PutRequest {
                key: format!("big/{i:03}").into_bytes(),
                value: value.clone(),
                ..Default::default()
            });
            tokio::time::timeout(CALL, put)
                .await
                .expect("put within 5 s")
                .expect("put");
        }
    });
}

// 9. Stream states, SETTINGS, PING.

/// A whole request (END_STREAM on its DATA) and, in the same write, one
/// more DATA on its stream: half-closed (remote) when it arrives, or
/// closed if the answer was quicker.
pub fn data_after_end_stream(t: &Target) -> Observed {
    let mut c = open(t);
    let id = c.new_stream();
    let mut bytes = open_put(&c, id);
    bytes.extend(frame(DATA, END_STREAM, id, &put_message("h2/k", b"v")));
    bytes.extend(frame(DATA, 0, id, &put_message("h2/k", b"w")));
    poke_stream(t, c, &bytes)
}

/// A call read to its end (the stream closed), then DATA on it.
pub fn data_on_closed_stream(t: &Target) -> Observed {
    let mut c = open(t);
    c.put_ok("h2/k", CALL).expect("a call on stream 1");
    let bytes = frame(DATA, END_STREAM, 1, &put_message("h2/k", b"w"));
    poke_stream(t, c, &bytes)
}

/// DATA on stream 0.
pub fn data_on_stream_zero(t: &Target) -> Observed {
    let c = open(t);
    poke(t, c, &frame(DATA, 0, 0, b"x"))
}

fn settings(t: &Target, params: &[(u16, u32)]) -> Observed {
    let c = open(t);
    poke(t, c, &frame(SETTINGS, 0, 0, &settings_payload(params)))
}

/// SETTINGS_INITIAL_WINDOW_SIZE of 2^31.
pub fn settings_initial_window_too_large(t: &Target) -> Observed {
    settings(t, &[(SETTINGS_INITIAL_WINDOW_SIZE, 1 << 31)])
}

/// SETTINGS_MAX_FRAME_SIZE of 16383.
pub fn settings_max_frame_size_too_small(t: &Target) -> Observed {
    settings(t, &[(SETTINGS_MAX_FRAME_SIZE, 16_383)])
}

/// SETTINGS_ENABLE_PUSH of 2.
pub fn settings_enable_push_2(t: &Target) -> Observed {
    settings(t, &[(SETTINGS_ENABLE_PUSH, 2)])
}

/// A SETTINGS frame of 5 bytes.
pub fn settings_bad_length(t: &Target) -> Observed {
    let c = open(t);
    poke(t, c, &frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0]))
}

/// A PING; the same connection then makes a call.
pub fn ping(t: &Target) -> Observed {
    let c = open(t);
    poke_stream(t, c, &frame(PING, 0, 0, b"ferrocd!"))
}

/// Five PINGs at once on a connection with no call open: etcd's
/// keepalive enforcement (`--grpc-keepalive-min-time`, streamless pings
/// not permitted) strikes every ping after the first and ends the
/// connection past two strikes.
pub fn ping_flood(t: &Target) -> Observed {
    let c = open(t);
    let mut pings = Vec::new();
    for i in 0..5u8 {
        pings.extend_from_slice(&frame(PING, 0, 0, &[i; 8]));
    }
    poke(t, c, &pings)
}

// 10. Concurrent streams.

/// The limit `max_concurrent_streams` sets.
pub const STREAM_LIMIT: u32 = 4;

/// With the server's SETTINGS_MAX_CONCURRENT_STREAMS at `expect` (or
/// whatever it advertises, if at most 1000): that many open streams, then
/// one more, which must be refused; the open ones then complete, and a
/// new call works.
fn over_the_limit(t: &Target, expect: Option<u32>) -> Observed {
    let mut c = open(t);
    let advertised = c.server_setting(SETTINGS_MAX_CONCURRENT_STREAMS);
    let mut limits = Vec::new();
    if let Some(n) = expect {
        limits.push((
            "advertises SETTINGS_MAX_CONCURRENT_STREAMS 4",
            if advertised == Some(n) {
                Ok(())
            } else {
                Err(format!("advertised {advertised:?}"))
            },
        ));
    }
    let Some(n) = advertised.filter(|&n| n <= 1000) else {
        let mut o = Observed::new(t, &[], End::Quiet);
        o.notes.push(format!(
            "SETTINGS_MAX_CONCURRENT_STREAMS: {advertised:?} (no limit to go past)"
        ));
        o.limits = limits;
        return o;
    };
    let mut bytes = Vec::new();
    let ids: Vec<u32> = (0..n).map(|_| c.new_stream()).collect();
    for &id in &ids {
        bytes.extend(open_put(&c, id));
    }
    let extra = c.new_stream();
    bytes.extend(open_put(&c, extra));
    let _ = c.write(&bytes);
    let (frames, end) = c.observe(WAIT);
    let mut o = Observed::new(t, &frames, end);
    o.notes.push(format!(
        "SETTINGS_MAX_CONCURRENT_STREAMS: {n}; stream {extra} is one over"
    ));
    // The open streams complete.
    let mut done = Ok(());
    if !end.closed() {
        for &id in &ids {
            let r = c
                .send(DATA, END_STREAM, id, &put_message("h2/k", b"v"))
                .map_err(|e| e.to_string())
                .and_then(|()| c.finish_call(id, CALL))
                .and_then(|a| check_put(&a));
            if let Err(e) = r {
                done = Err(format!("stream {id}: {e}"));
                break;
            }
        }
    }
    limits.push(("the open streams complete", done));
    o.same_conn = Some(if end.closed() {
        Err("closed".into())
    } else {
        c.put_ok("h2/same", CALL)
    });
    o.limits = limits;
    o
}

/// Started with `--max-concurrent-streams 4` (etcd's flag).
pub fn max_concurrent_streams(t: &Target) -> Observed {
    over_the_limit(t, Some(STREAM_LIMIT))
}

/// Started with defaults: whatever limit the server advertises holds.
pub fn advertised_stream_limit(t: &Target) -> Observed {
    over_the_limit(t, None)
}

// Side connections.

/// Well-formed calls on fresh connections, one after another on a thread,
/// until [`SideCalls::finish`].
pub struct SideCalls {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Result<Duration, String>>>,
}

/// What the side calls saw.
pub struct SideResults(Vec<Result<Duration, String>>);

pub fn side_calls(port: u16) -> SideCalls {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut out = Vec::new();
        // Bounded: at most 200 calls, each within CALL.
        while !s.load(Ordering::Relaxed) && out.len() < 200 {
            let t0 = Instant::now();
            let r = Conn::open(port).and_then(|mut c| c.put_ok("h2/side", CALL));
            out.push(r.map(|()| t0.elapsed()));
            std::thread::sleep(Duration::from_millis(100));
        }
        out
    });
    SideCalls { stop, thread }
}

impl SideCalls {
    pub fn finish(self) -> SideResults {
        self.stop.store(true, Ordering::Relaxed);
        SideResults(self.thread.join().expect("side thread"))
    }
}

impl SideResults {
    pub fn summary(&self) -> String {
        let ok: Vec<Duration> = self
            .0
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .copied()
            .collect();
        let max = ok.iter().max().copied().unwrap_or_default();
        format!("{} of {} served, slowest {max:.1?}", ok.len(), self.0.len())
    }

    /// Every call served, each within [`CALL`] (and at least one made).
    pub fn result(&self) -> Result<(), String> {
        if self.0.is_empty() {
            return Err("no side call finished".into());
        }
        match self.0.iter().find(|r| r.is_err()) {
            Some(Err(e)) => Err(e.clone()),
            _ => Ok(()),
        }
    }
}

// The checks.

fn common(o: &Observed) -> Result<(), String> {
    o.after
        .as_ref()
        .map_err(|e| format!("a fresh connection was not served afterwards: {e}"))?;
    for (name, r) in &o.limits {
        r.as_ref().map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

/// A connection error with one of `codes`: GOAWAY, then the connection
/// closes (RFC 9113 §5.4.1).
pub fn conn_error(o: &Observed, codes: &[u32]) -> Result<(), String> {
    match o.verdict {
        Verdict::ConnError { code, closed: true } if codes.contains(&code) => common(o),
        v => Err(format!(
            "want GOAWAY {}, then closed; got {v}",
            names(codes)
        )),
    }
}

/// A stream error on `stream` with one of `codes` (RST_STREAM, no
/// GOAWAY), after which the same connection still serves (RFC 9113
/// §5.4.2).
pub fn stream_error(o: &Observed, stream: u32, codes: &[u32]) -> Result<(), String> {
    match o.verdict {
        Verdict::StreamError { stream: s, code } if s == stream && codes.contains(&code) => {
            o.same_conn
                .clone()
                .unwrap_or(Err("not tried".into()))
                .map_err(|e| format!("the connection did not survive: {e}"))?;
            common(o)
        }
        v => Err(format!(
            "want RST_STREAM[{stream}] {}; got {v}",
            names(codes)
        )),
    }
}

/// One of `codes`, as a stream error on `stream` or a connection error
/// (where RFC 9113 leaves the scope open).
pub fn stream_or_conn_error(o: &Observed, stream: u32, codes: &[u32]) -> Result<(), String> {
    conn_error(o, codes)
        .or_else(|a| stream_error(o, stream, codes).map_err(|b| format!("{a}; or {b}")))
}

/// No error, and the calls on the connection succeeded.
pub fn served(o: &Observed) -> Result<(), String> {
    match o.verdict {
        Verdict::Quiet => {}
        v => return Err(format!("want no error; got {v}")),
    }
    if let Some(Err(e)) = &o.same_conn {
        return Err(format!("the calls failed: {e}"));
    }
    common(o)
}

/// A PING ACK with the PING's payload, no error, and the connection then
/// serves.
pub fn pong(o: &Observed, payload: &[u8; 8]) -> Result<(), String> {
    match o.verdict {
        Verdict::Pong(p) if &p == payload => {}
        v => return Err(format!("want PING ACK {payload:?}; got {v}")),
    }
    if let Some(Err(e)) = &o.same_conn {
        return Err(format!("the connection did not serve afterwards: {e}"));
    }
    common(o)
}

/// The server stopped it: a GOAWAY with an error code, or a close, then
/// closed.
pub fn stopped(o: &Observed) -> Result<(), String> {
    match o.verdict {
        Verdict::ConnError { closed: true, .. } | Verdict::Closed => common(o),
        v => Err(format!("want GOAWAY (an error) or a close; got {v}")),
    }
}

/// Kept going or told the client to calm down: no error, or GOAWAY
/// ENHANCE_YOUR_CALM; and the bounds hold.
pub fn calm_or_bounded(o: &Observed) -> Result<(), String> {
    match o.verdict {
        Verdict::Quiet
        | Verdict::ConnError {
            code: ENHANCE_YOUR_CALM,
            ..
        } => common(o),
        v => Err(format!(
            "want no error or GOAWAY ENHANCE_YOUR_CALM; got {v}"
        )),
    }
}

/// What etcd 3.5.1 was seen to answer where it differs from RFC 9113:
/// exactly `verdict`, and exactly the `failing` bounds fail; a fresh
/// connection is served afterwards.
pub fn recorded(o: &Observed, want: Verdict, failing: &[&str]) -> Result<(), String> {
    if o.verdict != want {
        return Err(format!("recorded {want}; got {}", o.verdict));
    }
    o.after
        .as_ref()
        .map_err(|e| format!("a fresh connection was not served afterwards: {e}"))?;
    for (name, r) in &o.limits {
        if r.is_err() != failing.contains(name) {
            return Err(format!(
                "recorded that `{name}` {}; got {r:?}",
                if failing.contains(name) {
                    "fails"
                } else {
                    "holds"
                }
            ));
        }
    }
    Ok(())
}

fn names(codes: &[u32]) -> String {
    codes
        .iter()
        .map(|&c| code_name(c))
        .collect::<Vec<_>>()
        .join(" or ")
}
