//! Log lines as etcd 3.5 writes them (`--logger zap`, the default): one
//! JSON object per line, written where `--log-outputs` says.
//!
//! ```text
//! {"level":"info","ts":"2026-12-07T19:01:03.825Z","caller":"raft/node.rs:448","msg":"starting local member","local-member-id":"bdae9bbc11dd390d"}
//! ```
//!
//! - `level`: `debug`, `info`, `warn` or `error` (tracing's `trace` is
//!   written as `debug`, zap having no lower level);
//! - `ts`: UTC, RFC 3339 with milliseconds, as zap's ISO 8601 encoder
//!   prints it on a UTC host;
//! - `caller`: the last directory and the file, and the line (zap's short
//!   caller, `etcdserver/raft.go:448`);
//! - `logger`: only on events of other crates (`openraft`), as etcd tags
//!   its raft library's lines `"logger":"raft"`;
//! - `msg`: the event's message, then the event's fields in the order
//!   they were written, `_` in their names written `-` (etcd's field names
//!   are kebab-case: `local-member-id`, `data-dir`). Numbers and booleans
//!   stay JSON numbers and booleans; everything else is a string.
//!
//! Span fields are not written: the server logs through events.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// Where log lines go (`--log-outputs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOutput {
    /// `stderr`, and etcd's `default`.
    Stderr,
    /// `stdout`.
    Stdout,
    /// Any other value: a file, opened for appending, created if missing.
    File(PathBuf),
}

/// etcd's JSON line format; see the module docs.
#[derive(Debug, Default, Clone, Copy)]
pub struct EtcdJson;

impl<S, N> FormatEvent<S, N> for EtcdJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let line = json_line(event, SystemTime::now());
        writer.write_str(&line)?;
        writer.write_char('\n')
    }
}

/// One event as etcd's JSON object (no newline).
fn json_line(event: &Event<'_>, now: SystemTime) -> String {
    let meta = event.metadata();
    let mut fields = Fields::default();
    event.record(&mut fields);

    // Written by hand, not through a `serde_json::Map`: that map sorts its
    // keys (the workspace does not enable `preserve_order`), and etcd's
    // lines keep level, ts, caller, msg first.
    let mut line = Line::default();
    line.put("level", &Value::from(level_name(meta.level())));
    line.put(
        "ts",
        &Value::from(humantime::format_rfc3339_millis(now).to_string()),
    );
    let target_crate = meta.target().split("::").next().unwrap_or("");
    if !target_crate.starts_with("ferrocd") {
        line.put("logger", &Value::from(target_crate));
    }
    if let Some(file) = meta.file() {
        line.put(
            "caller",
            &Value::from(format!(
                "{}:{}",
                short_caller(file),
                meta.line().unwrap_or(0)
            )),
        );
    }
    line.put("msg", &Value::from(fields.message.unwrap_or_default()));
    for (name, value) in &fields.rest {
        // A field named like one of ours would make a duplicate key.
        if line.names.iter().any(|n| n == name) {
            line.put(&format!("field-{name}"), value);
        } else {
            line.put(name, value);
        }
    }
    line.text.push('}');
    line.text
}

/// A JSON object being written, keys in order.
#[derive(Default)]
struct Line {
    text: String,
    names: Vec<String>,
}

impl Line {
    fn put(&mut self, name: &str, value: &Value) {
        self.text.push(if self.text.is_empty() { '{' } else { ',' });
        self.text.push_str(&Value::from(name).to_string());
        self.text.push(':');
        self.text.push_str(&value.to_string());
        self.names.push(name.to_string());
    }
}

/// zap's level names; tracing's `trace` has no zap twin.
fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        _ => "debug",
    }
}

/// `core/src/raft/log_store.rs` → `raft/log_store.rs`: the last directory
/// and the file, as zap's short caller.
fn short_caller(file: &str) -> String {
    let path = Path::new(file);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let dir = path
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned());
    match (dir, name) {
        (Some(d), Some(n)) => format!("{d}/{n}"),
        (None, Some(n)) => n,
        _ => file.to_string(),
    }
}

/// The message and the other fields of one event.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    rest: Vec<(String, Value)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.rest.push((field.name().replace('_', "-"), value));
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
}

/// The open `--log-outputs`: every line goes to each of them, in one
/// `write_all` per output (tracing's formatter hands over whole lines,
/// and files are opened `O_APPEND`, so lines never interleave).
#[derive(Debug, Clone)]
pub struct Outputs {
    sinks: Arc<Vec<Sink>>,
}

#[derive(Debug)]
enum Sink {
    Stderr,
    Stdout,
    File(std::fs::File),
}

/// A `--log-outputs` file could not be opened; etcd's words
/// (`couldn't open sink "/x/y.log": open /x/y.log: no such file or directory`).
#[derive(Debug, thiserror::Error)]
#[error("couldn't open sink {path:?}: open {path}: {reason}")]
pub struct OpenSinkError {
    path: String,
    reason: String,
}

impl Outputs {
    /// Open every output; files are created if missing (mode 0666 less the
    /// umask, as Go's `os.OpenFile` in zap) and appended to.
    pub fn open(outputs: &[LogOutput]) -> Result<Outputs, OpenSinkError> {
        let mut sinks = Vec::with_capacity(outputs.len());
        for o in outputs {
            sinks.push(match o {
                LogOutput::Stderr => Sink::Stderr,
                LogOutput::Stdout => Sink::Stdout,
                LogOutput::File(path) => {
                    let file = std::fs::OpenOptions::new()
                        .append(true)
                        .create(true)
                        .open(path)
                        .map_err(|e| OpenSinkError {
                            path: path.display().to_string(),
                            reason: go_errno_text(&e),
                        })?;
                    Sink::File(file)
                }
            });
        }
        Ok(Outputs {
            sinks: Arc::new(sinks),
        })
    }
}

/// An I/O error as Go's `syscall.Errno` prints it: the C library's text,
/// lower-case first letter, no "(os error N)".
pub(crate) fn go_errno_text(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// One line's writer over every output.
#[derive(Debug)]
pub struct LineWriter {
    sinks: Arc<Vec<Sink>>,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        // A full disk or a closed pipe on one output must not keep the
        // line from the others, nor stop the server: logging is best
        // effort, as zap's.
        for sink in self.sinks.iter() {
            let _ = match sink {
                Sink::Stderr => io::stderr().lock().write_all(buf),
                Sink::Stdout => {
                    let mut out = io::stdout().lock();
                    out.write_all(buf).and_then(|()| out.flush())
                }
                Sink::File(f) => (&*f).write_all(buf),
            };
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Outputs {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            sinks: Arc::clone(&self.sinks),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tracing_subscriber::fmt::MakeWriter;

    /// A writer that keeps what it is given.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    fn lines_of(f: impl FnOnce()) -> Vec<Value> {
        let buf = Buf::default();
        let sub = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_writer(buf.clone())
            .event_format(EtcdJson)
            .finish();
        tracing::subscriber::with_default(sub, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
                assert!(v.get("raw").is_none());
                v["raw"] = Value::from(l);
                v
            })
            .collect()
    }

    #[test]
    fn events_are_etcd_json_lines() {
        let lines = lines_of(|| {
            tracing::info!(local_member_id = %"8e9e05c52164694d", took_ms = 12u64, ok = true, "starting local member");
            tracing::warn!("a \"quoted\"\nmessage");
            tracing::trace!(message = "traced");
        });
        assert_eq!(lines.len(), 3);
        let l = &lines[0];
        // Keys in etcd's order (the parsed `Value` sorts them: look at
        // the text).
        let raw = &lines[0]["raw"];
        let at = |k: &str| raw.as_str().unwrap().find(&format!("\"{k}\":")).unwrap();
        let order = [
            "level",
            "ts",
            "caller",
            "msg",
            "local-member-id",
            "took-ms",
            "ok",
        ];
        assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{raw}");
        assert_eq!(l["level"], "info");
        assert_eq!(l["msg"], "starting local member");
        assert_eq!(l["local-member-id"], "8e9e05c52164694d");
        assert_eq!(l["took-ms"], 12);
        assert_eq!(l["ok"], true);
        assert!(
            l["caller"].as_str().unwrap().starts_with("src/logging.rs:"),
            "{l}"
        );
        // 2026-12-07T19:01:03.813Z
        let ts = l["ts"].as_str().unwrap();
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
        humantime::parse_rfc3339(ts).unwrap();
        assert_eq!(lines[1]["level"], "warn");
        assert_eq!(lines[1]["msg"], "a \"quoted\"\nmessage");
        assert_eq!(lines[2]["level"], "debug");
        assert_eq!(lines[2]["msg"], "traced");
    }

    #[test]
    fn other_crates_get_a_logger_name() {
        let lines = lines_of(|| tracing::info!(target: "openraft::engine", "became leader"));
        assert_eq!(lines[0]["logger"], "openraft");
        let lines = lines_of(|| tracing::info!("ours"));
        assert!(lines[0].get("logger").is_none());
    }

    #[test]
    fn short_caller_is_dir_and_file() {
        assert_eq!(
            short_caller("core/src/raft/log_store.rs"),
            "raft/log_store.rs"
        );
        assert_eq!(short_caller("main.rs"), "main.rs");
    }

    #[test]
    fn sink_errors_read_as_etcd_s() {
        let e = Outputs::open(&[LogOutput::File("/nonexistent-dir/x.log".into())]).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"couldn't open sink "/nonexistent-dir/x.log": open /nonexistent-dir/x.log: no such file or directory"#
        );
        let e = Outputs::open(&[LogOutput::File("".into())]).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"couldn't open sink "": open : no such file or directory"#
        );
    }
}
