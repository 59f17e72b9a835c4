//! Output building blocks shared by every command: the `-w` formats, Go's
//! `%q` quoting (the `fields` format), `--hex` escaping, a small JSON writer
//! that encodes etcd's messages the way Go's `encoding/json` encodes the
//! protobuf structs (snake_case tags, omitted zero values, bytes in base64,
//! 64-bit numbers as numbers), tables, Go durations and humanized sizes.

use std::fmt::Write as _;

use ferrocd_net::pb::etcdserverpb as pb;
use ferrocd_net::pb::mvccpb;

use crate::error::{Fail, R};

/// `-w/--write-out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// etcdctl's default, human-oriented lines.
    Simple,
    /// One JSON document per response.
    Json,
    /// `"Name" : value` lines.
    Fields,
    /// An ASCII table.
    Table,
}

impl Format {
    /// Parse the flag's value; etcdctl's message for anything else.
    pub fn parse(s: &str) -> R<Format> {
        Ok(match s {
            "simple" => Format::Simple,
            "json" => Format::Json,
            "fields" => Format::Fields,
            "table" => Format::Table,
            "protobuf" => return Err(Fail::feature("protobuf not supported as output format")),
            _ => return Err(Fail::feature("unsupported output format")),
        })
    }

    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Format::Simple => "simple",
            Format::Json => "json",
            Format::Fields => "fields",
            Format::Table => "table",
        }
    }

    /// etcdctl's error for a format a command does not print.
    pub fn unsupported(self) -> Fail {
        Fail::feature(format!("{} not supported as output format", self.name()))
    }
}

/// Go's `strconv.Quote` of bytes (`%q` of a string).
pub fn goq(b: &[u8]) -> String {
    let mut out = String::from("\"");
    let mut rest = b;
    while !rest.is_empty() {
        let (c, n) = match std::str::from_utf8(rest) {
            Ok(s) => (s.chars().next(), 0),
            Err(e) if e.valid_up_to() > 0 => (
                std::str::from_utf8(&rest[..e.valid_up_to()])
                    .ok()
                    .and_then(|s| s.chars().next()),
                0,
            ),
            Err(_) => (None, 1),
        };
        match c {
            Some(c) => {
                match c {
                    '\x07' => out.push_str("\\a"),
                    '\x08' => out.push_str("\\b"),
                    '\x0c' => out.push_str("\\f"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '\x0b' => out.push_str("\\v"),
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                        let _ = write!(out, "\\x{:02x}", c as u32);
                    }
                    c if c.is_control() => {
                        if (c as u32) < 0x10000 {
                            let _ = write!(out, "\\u{:04x}", c as u32);
                        } else {
                            let _ = write!(out, "\\U{:08x}", c as u32);
                        }
                    }
                    c => out.push(c),
                }
                rest = &rest[c.len_utf8()..];
            }
            None => {
                let _ = write!(out, "\\x{:02x}", rest[0]);
                rest = &rest[n.max(1)..];
            }
        }
    }
    out.push('"');
    out
}

/// Bytes as etcdctl's simple format prints them: raw, or `\xNN` each with
/// `--hex`.
pub fn raw(b: &[u8], hex: bool) -> String {
    if hex {
        b.iter().map(|c| format!("\\x{c:02x}")).collect()
    } else {
        String::from_utf8_lossy(b).into_owned()
    }
}

/// Standard base64 with padding (Go's encoding of `[]byte`).
pub fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// A JSON string as Go's `encoding/json` writes it (HTML characters
/// escaped, invalid UTF-8 replaced).
pub fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON object under construction, fields in the order they are added.
#[derive(Debug)]
pub struct Obj(String);

impl Default for Obj {
    fn default() -> Self {
        Obj::new()
    }
}

impl Obj {
    /// `{`.
    pub fn new() -> Obj {
        Obj(String::from("{"))
    }
    fn key(&mut self, k: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push_str(&json_str(k));
        self.0.push(':');
    }
    /// A number, always written.
    pub fn num(mut self, k: &str, v: impl std::fmt::Display) -> Obj {
        self.key(k);
        let _ = write!(self.0, "{v}");
        self
    }
    /// A number, left out when zero (`omitempty`).
    pub fn num_oe(self, k: &str, v: i128) -> Obj {
        if v == 0 { self } else { self.num(k, v) }
    }
    /// A bool, always written.
    pub fn bool(mut self, k: &str, v: bool) -> Obj {
        self.key(k);
        self.0.push_str(if v { "true" } else { "false" });
        self
    }
    /// A bool, left out when false.
    pub fn bool_oe(self, k: &str, v: bool) -> Obj {
        if v { self.bool(k, v) } else { self }
    }
    /// A string, always written.
    pub fn str(mut self, k: &str, v: &str) -> Obj {
        self.key(k);
        self.0.push_str(&json_str(v));
        self
    }
    /// A string, left out when empty.
    pub fn str_oe(self, k: &str, v: &str) -> Obj {
        if v.is_empty() { self } else { self.str(k, v) }
    }
    /// Bytes (base64), left out when empty.
    pub fn bytes_oe(mut self, k: &str, v: &[u8]) -> Obj {
        if !v.is_empty() {
            self.key(k);
            self.0.push('"');
            self.0.push_str(&base64(v));
            self.0.push('"');
        }
        self
    }
    /// Already encoded JSON.
    pub fn raw(mut self, k: &str, v: &str) -> Obj {
        self.key(k);
        self.0.push_str(v);
        self
    }
    /// Already encoded JSON, when there is some.
    pub fn raw_opt(self, k: &str, v: Option<String>) -> Obj {
        match v {
            Some(v) => self.raw(k, &v),
            None => self,
        }
    }
    /// An array of encoded values, left out when empty.
    pub fn arr_oe(self, k: &str, items: Vec<String>) -> Obj {
        if items.is_empty() {
            self
        } else {
            let v = array(items);
            self.raw(k, &v)
        }
    }
    /// Strings, left out when empty.
    pub fn strs_oe(self, k: &str, v: &[String]) -> Obj {
        self.arr_oe(k, v.iter().map(|s| json_str(s)).collect())
    }
    /// `}`.
    pub fn end(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// `[a,b,…]`.
pub fn array(items: Vec<String>) -> String {
    format!("[{}]", items.join(","))
}

/// The fields of a response header, for embedding (Go's embedded struct).
pub fn header_fields(o: Obj, h: Option<&pb::ResponseHeader>) -> Obj {
    let h = h.cloned().unwrap_or_default();
    o.num_oe("cluster_id", h.cluster_id.into())
        .num_oe("member_id", h.member_id.into())
        .num_oe("revision", h.revision.into())
        .num_oe("raft_term", h.raft_term.into())
}

/// A response header as a JSON object, `None` when absent.
pub fn header_json(h: Option<&pb::ResponseHeader>) -> Option<String> {
    h.map(|h| header_fields(Obj::new(), Some(h)).end())
}

/// A key-value as JSON.
pub fn kv_json(kv: &mvccpb::KeyValue) -> String {
    Obj::new()
        .bytes_oe("key", &kv.key)
        .num_oe("create_revision", kv.create_revision.into())
        .num_oe("mod_revision", kv.mod_revision.into())
        .num_oe("version", kv.version.into())
        .bytes_oe("value", &kv.value)
        .num_oe("lease", kv.lease.into())
        .end()
}

/// The four header lines of the fields format.
pub fn header_lines(out: &mut String, h: Option<&pb::ResponseHeader>) {
    let h = h.cloned().unwrap_or_default();
    let _ = writeln!(out, "\"ClusterID\" : {}", h.cluster_id);
    let _ = writeln!(out, "\"MemberID\" : {}", h.member_id);
    let _ = writeln!(out, "\"Revision\" : {}", h.revision);
    let _ = writeln!(out, "\"RaftTerm\" : {}", h.raft_term);
}

/// A key-value's lines of the fields format, names prefixed by `pre`.
pub fn kv_lines(out: &mut String, kv: &mvccpb::KeyValue, pre: &str) {
    let _ = writeln!(out, "\"{pre}Key\" : {}", goq(&kv.key));
    let _ = writeln!(out, "\"{pre}CreateRevision\" : {}", kv.create_revision);
    let _ = writeln!(out, "\"{pre}ModRevision\" : {}", kv.mod_revision);
    let _ = writeln!(out, "\"{pre}Version\" : {}", kv.version);
    let _ = writeln!(out, "\"{pre}Value\" : {}", goq(&kv.value));
    let _ = writeln!(out, "\"{pre}Lease\" : {}", kv.lease);
}

/// An ASCII table as etcdctl draws it: centered headers, right-aligned
/// cells.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let sep = {
        let mut s = String::from("+");
        for x in &w {
            s.push_str(&"-".repeat(x + 2));
            s.push('+');
        }
        s.push('\n');
        s
    };
    let mut out = sep.clone();
    out.push('|');
    for (i, h) in headers.iter().enumerate() {
        let pad = w[i] + 2 - h.chars().count();
        let left = pad / 2;
        out.push_str(&" ".repeat(left));
        out.push_str(h);
        out.push_str(&" ".repeat(pad - left));
        out.push('|');
    }
    out.push('\n');
    out.push_str(&sep);
    for r in rows {
        out.push('|');
        for (i, c) in r.iter().enumerate() {
            let _ = write!(out, " {:>width$} |", c, width = w[i]);
        }
        out.push('\n');
    }
    if !rows.is_empty() {
        out.push_str(&sep);
    }
    out
}

/// A duration as Go's `time.Duration.String` writes it.
pub fn go_duration(d: std::time::Duration) -> String {
    let ns = d.as_nanos();
    fn frac(v: u128, unit: u128, digits: usize, suffix: &str) -> String {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            return format!("{whole}{suffix}");
        }
        let f = format!("{rest:0digits$}");
        format!("{whole}.{}{suffix}", f.trim_end_matches('0'))
    }
    if ns == 0 {
        "0s".into()
    } else if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        frac(ns, 1_000, 3, "µs")
    } else if ns < 1_000_000_000 {
        frac(ns, 1_000_000, 6, "ms")
    } else {
        let s = ns / 1_000_000_000;
        if s < 60 {
            frac(ns, 1_000_000_000, 9, "s")
        } else {
            let (h, m) = (s / 3600, (s % 3600) / 60);
            let sec = frac(ns % 60_000_000_000, 1_000_000_000, 9, "s");
            if h > 0 {
                format!("{h}h{m}m{sec}")
            } else {
                format!("{m}m{sec}")
            }
        }
    }
}

/// A size as go-humanize's `Bytes` writes it (SI units: `20 kB`).
pub fn humanize_bytes(s: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if s < 10 {
        return format!("{s} B");
    }
    let e = ((s as f64).ln() / 1000f64.ln()).floor() as usize;
    let val = ((s as f64) / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", UNITS[e])
    } else {
        format!("{val:.0} {}", UNITS[e])
    }
}

/// The end of the range of every key with `key` as prefix (the client
/// library's, etcd's rule).
pub use ferrocd_net::client::prefix_end;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formats() {
        assert_eq!(goq(b"a\"b\n\x00\xff"), "\"a\\\"b\\n\\x00\\xff\"");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"bq"), "YnE=");
        assert_eq!(humanize_bytes(20480), "20 kB");
        assert_eq!(humanize_bytes(1_234_567), "1.2 MB");
        assert_eq!(
            go_duration(std::time::Duration::from_nanos(4_360_650)),
            "4.36065ms"
        );
        assert_eq!(json_str("<a>"), "\"\\u003ca\\u003e\"");
    }
}
