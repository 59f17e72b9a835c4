//! etcd's YAML configuration file (`--config-file`, `ETCD_CONFIG_FILE`).
//!
//! As etcd 3.5 (`embed.ConfigFromFile`), the file *is* the configuration:
//! when it is given, the other command-line flags and every `ETCD_*` /
//! `FERROCD_*` variable are ignored, and a key the file leaves out keeps
//! its default. The file is turned into the `--flag=value` list the
//! command line would give and parsed by the same code, so whatever the
//! flags accept, refuse or warn about, the file does too.
//!
//! etcd reads the file as YAML converted to JSON and decoded into a Go
//! struct, and so does this module, rule for rule:
//!
//! - Keys are etcd's (mostly the flag names), matched case-insensitively
//!   as Go's `encoding/json` does. Unknown keys are ignored, as in etcd
//!   (ferrocd warns about them). A `null` value leaves the default.
//! - Values are typed: numbers for counts and milliseconds, `true`/`false`
//!   for switches, strings for URLs and names, lists for `log-outputs`
//!   and `cipher-suites`. Durations (`grpc-keepalive-*`,
//!   `experimental-watch-progress-notify-interval`, …) are Go
//!   `time.Duration`s: integers in nanoseconds. A value of the wrong type
//!   is refused with etcd's words (`json: cannot unmarshal string into Go
//!   struct field configYAML.heartbeat-interval of type uint`).
//! - URL lists, `cors`, `host-whitelist` and `initial-cluster` are one
//!   comma-separated string, as on the command line. An empty string keeps
//!   the default (Go's zero value means "not set").
//! - TLS is in two sections, `client-transport-security` and
//!   `peer-transport-security`, each with `cert-file`, `key-file`,
//!   `client-cert-auth`, `trusted-ca-file`, `auto-tls`, `allowed-cn`,
//!   `allowed-hostname` (etcd ≥ 3.5.13's keys), and `crl-file` (ferrocd's:
//!   etcd 3.5 has no CRL key and would silently not check one). Each is
//!   the matching `--…`/`--peer-…` flag.
//! - Keys that etcd 3.5.1 lacks but later 3.5 releases read are taken
//!   with their later names: `max-concurrent-streams`, `socket-options`
//!   (`reuse-port`, `reuse-address`),
//!   `experimental-snapshot-catch-up-entries`, `tls-min-version`,
//!   `tls-max-version`.
//! - ferrocd's own flags are keys too: `shards`, `log-format`,
//!   `listen-ui-urls`, `experimental-peer-skip-client-san-verification`.
//!
//! The YAML is read as etcd's reader (go-yaml v2) reads it: YAML 1.1's
//! plain `yes`/`no`/`on`/`off` are booleans (so `name: yes` is refused
//! and `pre-vote: "true"` too, as in etcd), a key given twice keeps its
//! last value, anchors and aliases work. A syntax error names a line and
//! the parser's own words, which are not libyaml's.

use std::ffi::OsString;
use std::path::Path;

use std::collections::HashMap;

use yaml_rust2::Yaml;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

use super::{ConfigError, FLAGS};

/// The file as command-line flags, and what to warn about.
#[derive(Debug)]
pub(super) struct Loaded {
    /// `--flag=value`, in the file's order.
    pub args: Vec<OsString>,
    /// Unknown keys, etcd keys with no meaning in ferrocd.
    pub warnings: Vec<String>,
}

/// A value's Go type in etcd's config struct: how the YAML value must look
/// and how errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Go {
    Str,
    Bool,
    Uint,
    Uint32,
    Uint64,
    Int,
    Int64,
    /// `time.Duration`: an integer of nanoseconds.
    Duration,
    /// `[]string`
    Strings,
}

impl Go {
    fn name(self) -> &'static str {
        match self {
            Go::Str => "string",
            Go::Bool => "bool",
            Go::Uint => "uint",
            Go::Uint32 => "uint32",
            Go::Uint64 => "uint64",
            Go::Int => "int",
            Go::Int64 => "int64",
            Go::Duration => "time.Duration",
            Go::Strings => "[]string",
        }
    }
}

/// Top-level keys: (key, type, flag). An empty flag: an etcd key with no
/// ferrocd meaning (a value other than the zero value is a warning).
#[rustfmt::skip]
const KEYS: &[(&str, Go, &str)] = &[
    ("name", Go::Str, "name"),
    ("data-dir", Go::Str, "data-dir"),
    ("wal-dir", Go::Str, "wal-dir"),
    ("snapshot-count", Go::Uint64, "snapshot-count"),
    ("experimental-snapshot-catch-up-entries", Go::Uint64, "experimental-snapshot-catchup-entries"),
    ("experimental-snapshot-catchup-entries", Go::Uint64, "experimental-snapshot-catchup-entries"),
    ("max-snapshots", Go::Uint, "max-snapshots"),
    ("max-wals", Go::Uint, "max-wals"),
    ("heartbeat-interval", Go::Uint, "heartbeat-interval"),
    ("election-timeout", Go::Uint, "election-timeout"),
    ("initial-election-tick-advance", Go::Bool, "initial-election-tick-advance"),
    ("backend-batch-interval", Go::Duration, "backend-batch-interval"),
    ("backend-batch-limit", Go::Int, "backend-batch-limit"),
    ("backend-bbolt-freelist-type", Go::Str, "backend-bbolt-freelist-type"),
    ("quota-backend-bytes", Go::Int64, "quota-backend-bytes"),
    ("max-txn-ops", Go::Uint, "max-txn-ops"),
    ("max-request-bytes", Go::Uint, "max-request-bytes"),
    ("max-concurrent-streams", Go::Uint32, "max-concurrent-streams"),
    ("listen-peer-urls", Go::Str, "listen-peer-urls"),
    ("listen-client-urls", Go::Str, "listen-client-urls"),
    ("initial-advertise-peer-urls", Go::Str, "initial-advertise-peer-urls"),
    ("advertise-client-urls", Go::Str, "advertise-client-urls"),
    ("listen-metrics-urls", Go::Str, "listen-metrics-urls"),
    ("cors", Go::Str, "cors"),
    ("host-whitelist", Go::Str, "host-whitelist"),
    ("self-signed-cert-validity", Go::Uint, "self-signed-cert-validity"),
    ("cipher-suites", Go::Strings, "cipher-suites"),
    ("tls-min-version", Go::Str, "tls-min-version"),
    ("tls-max-version", Go::Str, "tls-max-version"),
    ("initial-cluster-state", Go::Str, "initial-cluster-state"),
    ("discovery-srv", Go::Str, "discovery-srv"),
    ("discovery-srv-name", Go::Str, "discovery-srv-name"),
    ("discovery-proxy", Go::Str, "discovery-proxy"),
    ("discovery", Go::Str, "discovery"),
    ("discovery-fallback", Go::Str, "discovery-fallback"),
    ("initial-cluster", Go::Str, "initial-cluster"),
    ("initial-cluster-token", Go::Str, "initial-cluster-token"),
    ("strict-reconfig-check", Go::Bool, "strict-reconfig-check"),
    ("enable-v2", Go::Bool, "enable-v2"),
    ("v2-deprecation", Go::Str, "v2-deprecation"),
    ("experimental-enable-v2v3", Go::Str, "experimental-enable-v2v3"),
    ("proxy", Go::Str, "proxy"),
    ("proxy-failure-wait", Go::Uint, "proxy-failure-wait"),
    ("proxy-refresh-interval", Go::Uint, "proxy-refresh-interval"),
    ("proxy-dial-timeout", Go::Uint, "proxy-dial-timeout"),
    ("proxy-write-timeout", Go::Uint, "proxy-write-timeout"),
    ("proxy-read-timeout", Go::Uint, "proxy-read-timeout"),
    ("auto-compaction-mode", Go::Str, "auto-compaction-mode"),
    ("auto-compaction-retention", Go::Str, "auto-compaction-retention"),
    ("grpc-keepalive-min-time", Go::Duration, "grpc-keepalive-min-time"),
    ("grpc-keepalive-interval", Go::Duration, "grpc-keepalive-interval"),
    ("grpc-keepalive-timeout", Go::Duration, "grpc-keepalive-timeout"),
    ("pre-vote", Go::Bool, "pre-vote"),
    ("auth-token", Go::Str, "auth-token"),
    ("bcrypt-cost", Go::Uint, "bcrypt-cost"),
    ("auth-token-ttl", Go::Uint, "auth-token-ttl"),
    ("experimental-initial-corrupt-check", Go::Bool, "experimental-initial-corrupt-check"),
    ("experimental-corrupt-check-time", Go::Duration, "experimental-corrupt-check-time"),
    ("experimental-enable-lease-checkpoint", Go::Bool, "experimental-enable-lease-checkpoint"),
    ("experimental-compaction-batch-limit", Go::Int, "experimental-compaction-batch-limit"),
    ("experimental-watch-progress-notify-interval", Go::Duration, "experimental-watch-progress-notify-interval"),
    ("experimental-warning-apply-duration", Go::Duration, "experimental-warning-apply-duration"),
    ("experimental-bootstrap-defrag-threshold-megabytes", Go::Uint, "experimental-bootstrap-defrag-threshold-megabytes"),
    ("experimental-txn-mode-write-with-shared-buffer", Go::Bool, "experimental-txn-mode-write-with-shared-buffer"),
    ("experimental-enable-distributed-tracing", Go::Bool, "experimental-enable-distributed-tracing"),
    ("experimental-distributed-tracing-address", Go::Str, "experimental-distributed-tracing-address"),
    ("experimental-distributed-tracing-service-name", Go::Str, "experimental-distributed-tracing-service-name"),
    ("experimental-distributed-tracing-instance-id", Go::Str, "experimental-distributed-tracing-instance-id"),
    ("force-new-cluster", Go::Bool, "force-new-cluster"),
    ("enable-pprof", Go::Bool, "enable-pprof"),
    ("metrics", Go::Str, "metrics"),
    ("logger", Go::Str, "logger"),
    ("log-level", Go::Str, "log-level"),
    ("log-outputs", Go::Strings, "log-outputs"),
    ("enable-log-rotation", Go::Bool, "enable-log-rotation"),
    ("log-rotation-config-json", Go::Str, "log-rotation-config-json"),
    ("unsafe-no-fsync", Go::Bool, "unsafe-no-fsync"),
    // etcd keys with no ferrocd flag.
    ("enable-grpc-gateway", Go::Bool, ""),
    ("experimental-downgrade-check-time", Go::Duration, ""),
    ("experimental-memory-mlock", Go::Bool, ""),
    // ferrocd's own.
    ("shards", Go::Uint, "shards"),
    ("log-format", Go::Str, "log-format"),
    ("listen-ui-urls", Go::Str, "listen-ui-urls"),
    ("experimental-peer-skip-client-san-verification", Go::Bool, "experimental-peer-skip-client-san-verification"),
];

/// `client-transport-security` / `peer-transport-security` keys:
/// (key, type, client flag, peer flag).
#[rustfmt::skip]
const SECURITY: &[(&str, Go, &str, &str)] = &[
    ("cert-file", Go::Str, "cert-file", "peer-cert-file"),
    ("key-file", Go::Str, "key-file", "peer-key-file"),
    ("client-cert-file", Go::Str, "client-cert-file", "peer-client-cert-file"),
    ("client-key-file", Go::Str, "client-key-file", "peer-client-key-file"),
    ("client-cert-auth", Go::Bool, "client-cert-auth", "peer-client-cert-auth"),
    ("trusted-ca-file", Go::Str, "trusted-ca-file", "peer-trusted-ca-file"),
    ("auto-tls", Go::Bool, "auto-tls", "peer-auto-tls"),
    ("allowed-cn", Go::Strings, "client-cert-allowed-cn", "peer-cert-allowed-cn"),
    ("allowed-hostname", Go::Strings, "client-cert-allowed-hostname", "peer-cert-allowed-hostname"),
    ("crl-file", Go::Str, "client-crl-file", "peer-crl-file"),
];

/// `socket-options` keys: (key, flag).
const SOCKET: &[(&str, &str)] = &[
    ("reuse-port", "socket-reuse-port"),
    ("reuse-address", "socket-reuse-address"),
];

/// etcd's prefix for a value that does not decode.
fn type_error(what: &str, field: &str, go: &str) -> ConfigError {
    ConfigError::Invalid(format!(
        "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {what} into Go {field} of type {go}"
    ))
}

/// What Go's `encoding/json` calls a value it cannot decode (`number -1`
/// where the number itself is the problem, `string`, `array`, …).
fn json_kind(v: &Yaml, with_number: bool) -> String {
    match v {
        Yaml::Integer(i) if with_number => format!("number {i}"),
        Yaml::Real(r) if with_number => format!("number {r}"),
        Yaml::Integer(_) | Yaml::Real(_) => "number".into(),
        Yaml::Boolean(_) => "bool".into(),
        Yaml::Array(_) => "array".into(),
        Yaml::Hash(_) => "object".into(),
        _ => "string".into(),
    }
}

/// YAML 1.1's booleans, which etcd's YAML reader resolves as such.
fn yaml11_bool(s: &str) -> Option<bool> {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// A duration as a flag value: `5s`, `100ms`, `1h30m`, `0s` (whole units,
/// which the flag parser reads back exactly).
fn duration_flag(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let mut rest = ns.unsigned_abs();
    let mut out = String::from(sign);
    for (unit, size) in [
        ("h", 3_600_000_000_000u64),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// One value as flag text, `None` for "leave the default" (null, an empty
/// string or list). `field` is Go's name for it in errors.
fn flag_value(v: &Yaml, go: Go, field: &str) -> Result<Option<String>, ConfigError> {
    if matches!(v, Yaml::Null) {
        return Ok(None);
    }
    let wrong = |with_number| type_error(&json_kind(v, with_number), field, go.name());
    let text = match go {
        Go::Str => match v {
            Yaml::String(s) if s.is_empty() => return Ok(None),
            Yaml::String(s) => s.clone(),
            _ => return Err(wrong(false)),
        },
        Go::Bool => match v {
            Yaml::Boolean(b) => b.to_string(),
            _ => return Err(wrong(false)),
        },
        Go::Uint | Go::Uint64 | Go::Uint32 | Go::Int | Go::Int64 | Go::Duration => {
            let Yaml::Integer(i) = v else {
                return Err(wrong(matches!(v, Yaml::Real(_))));
            };
            let i = *i;
            let fits = match go {
                Go::Uint | Go::Uint64 => i >= 0,
                Go::Uint32 => (0..=i64::from(u32::MAX)).contains(&i),
                _ => true,
            };
            if !fits {
                return Err(wrong(true));
            }
            if go == Go::Duration {
                duration_flag(i)
            } else {
                i.to_string()
            }
        }
        Go::Strings => {
            let Yaml::Array(items) = v else {
                return Err(wrong(false));
            };
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Yaml::String(s) => out.push(s.clone()),
                    Yaml::Null => out.push(String::new()),
                    other => {
                        return Err(type_error(&json_kind(other, false), field, "string"));
                    }
                }
            }
            if out.is_empty() {
                return Ok(None);
            }
            out.join(",")
        }
    };
    Ok(Some(text))
}

/// Read and translate the file at `path`.
pub(super) fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::Invalid(format!(
            "open {}: {}",
            path.display(),
            crate::logging::go_errno_text(&e)
        ))
    })?;
    translate(&text)
}

/// The file's text as flags.
pub(super) fn translate(text: &str) -> Result<Loaded, ConfigError> {
    let docs = read_yaml(text).map_err(|e| {
        ConfigError::Invalid(format!(
            "error converting YAML to JSON: yaml: line {}: {}",
            e.marker().line(),
            e.info()
        ))
    })?;
    let mut out = Loaded {
        args: Vec::new(),
        warnings: Vec::new(),
    };
    // An empty file is an empty configuration: every default.
    let Some(doc) = docs.into_iter().next() else {
        return Ok(out);
    };
    let top = match doc {
        Yaml::Hash(h) => h,
        Yaml::Null => return Ok(out),
        other => {
            return Err(ConfigError::Invalid(format!(
                "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type embed.configYAML",
                json_kind(&other, false)
            )));
        }
    };
    for (k, v) in &top {
        let Some(key) = key_text(k) else { continue };
        let lower = key.to_ascii_lowercase();
        if let Some((name, go, flag)) = KEYS.iter().find(|(n, ..)| *n == lower) {
            let field = format!("struct field configYAML.{name}");
            if let Some(value) = flag_value(v, *go, &field)? {
                out.push(name, flag, value)?;
            }
        } else if let Some(side) = ["client", "peer"]
            .into_iter()
            .find(|s| lower == format!("{s}-transport-security"))
        {
            let section = section(v, &lower, "embed.securityConfig")?;
            for (k, v) in section {
                let Some(key) = key_text(k) else { continue };
                let lower_key = key.to_ascii_lowercase();
                let Some((name, go, client, peer)) =
                    SECURITY.iter().find(|(n, ..)| *n == lower_key)
                else {
                    out.unknown(&format!("{lower}.{key}"));
                    continue;
                };
                let field = format!("struct field securityConfig.{lower}.{name}");
                if let Some(value) = flag_value(v, *go, &field)? {
                    let flag = if side == "client" { client } else { peer };
                    out.push(&format!("{lower}.{name}"), flag, value)?;
                }
            }
        } else if lower == "socket-options" {
            for (k, v) in section(v, &lower, "transport.SocketOpts")? {
                let Some(key) = key_text(k) else { continue };
                let lower_key = key.to_ascii_lowercase();
                let Some((name, flag)) = SOCKET.iter().find(|(n, _)| *n == lower_key) else {
                    out.unknown(&format!("socket-options.{key}"));
                    continue;
                };
                let field = format!("struct field SocketOpts.socket-options.{name}");
                if let Some(value) = flag_value(v, Go::Bool, &field)? {
                    out.push(&format!("socket-options.{name}"), flag, value)?;
                }
            }
        } else {
            out.unknown(&key);
        }
    }
    Ok(out)
}

/// The documents of `text`, scalars resolved as YAML 1.1 (go-yaml v2)
/// resolves them.
fn read_yaml(text: &str) -> Result<Vec<Yaml>, ScanError> {
    let mut tree = Tree::default();
    Parser::new_from_str(text).load(&mut tree, true)?;
    Ok(tree.docs)
}

/// A plain (unquoted) scalar's value: YAML 1.1's booleans and nulls, then
/// the core schema's numbers; anything else is a string.
fn plain_scalar(s: &str) -> Yaml {
    if let Some(b) = yaml11_bool(s) {
        return Yaml::Boolean(b);
    }
    match s {
        "Null" | "NULL" => Yaml::Null,
        _ => Yaml::from_str(s),
    }
}

/// Builds documents from parser events (yaml-rust2's own loader refuses a
/// key given twice, which etcd's reader accepts, the last one winning).
#[derive(Default)]
struct Tree {
    docs: Vec<Yaml>,
    /// Open sequences and mappings, with their anchor and, for a mapping,
    /// the key waiting for its value.
    open: Vec<(Yaml, usize, Option<Yaml>)>,
    anchors: HashMap<usize, Yaml>,
}

impl Tree {
    fn add(&mut self, node: Yaml, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.open.last_mut() {
            None => self.docs.push(node),
            Some((Yaml::Array(items), ..)) => items.push(node),
            Some((Yaml::Hash(map), _, key)) => match key.take() {
                None => *key = Some(node),
                Some(k) => {
                    map.insert(k, node);
                }
            },
            Some(_) => {}
        }
    }
}

impl MarkedEventReceiver for Tree {
    fn on_event(&mut self, ev: Event, _mark: Marker) {
        match ev {
            Event::Scalar(value, style, anchor, tag) => {
                let as_string =
                    style != TScalarStyle::Plain || tag.is_some_and(|t| t.suffix == "str");
                let node = if as_string {
                    Yaml::String(value)
                } else {
                    plain_scalar(&value)
                };
                self.add(node, anchor);
            }
            Event::SequenceStart(anchor, _) => {
                self.open.push((Yaml::Array(Vec::new()), anchor, None));
            }
            Event::MappingStart(anchor, _) => {
                self.open
                    .push((Yaml::Hash(Default::default()), anchor, None));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((node, anchor, _)) = self.open.pop() {
                    self.add(node, anchor);
                }
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().unwrap_or(Yaml::Null);
                self.add(node, 0);
            }
            _ => {}
        }
    }
}

/// A key as text: YAML allows numbers and booleans as keys, which the
/// YAML-to-JSON step turns into strings; other keys cannot name a field.
fn key_text(k: &Yaml) -> Option<String> {
    match k {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A nested section (`client-transport-security`), empty when null.
fn section<'a>(v: &'a Yaml, key: &str, go: &str) -> Result<Vec<(&'a Yaml, &'a Yaml)>, ConfigError> {
    match v {
        Yaml::Hash(h) => Ok(h.iter().collect()),
        Yaml::Null => Ok(Vec::new()),
        other => Err(type_error(
            &json_kind(other, false),
            &format!("struct field configYAML.{key}"),
            go,
        )),
    }
}

impl Loaded {
    /// `--flag=value`; a key whose flag ferrocd lacks is refused unless
    /// it says what the default says (an empty string, false, zero).
    fn push(&mut self, key: &str, flag: &str, value: String) -> Result<(), ConfigError> {
        if !flag.is_empty() && FLAGS.iter().any(|f| f.name == flag) {
            self.args.push(format!("--{flag}={value}").into());
            return Ok(());
        }
        let zero = matches!(value.as_str(), "false" | "0" | "0s" | "");
        if zero {
            return Ok(());
        }
        if flag.is_empty() {
            self.warnings.push(format!(
                "{key}: {value} in the configuration file has no effect in ferrocd"
            ));
            Ok(())
        } else {
            Err(ConfigError::Invalid(format!(
                "{key}: {value} in the configuration file is not supported by ferrocd"
            )))
        }
    }

    fn unknown(&mut self, key: &str) {
        self.warnings.push(format!(
            "unknown key {key:?} in the configuration file is ignored, as etcd ignores it"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(yaml: &str) -> Vec<String> {
        translate(yaml)
            .unwrap_or_else(|e| panic!("{yaml}: {e}"))
            .args
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }
    fn err(yaml: &str) -> String {
        translate(yaml).expect_err(yaml).to_string()
    }

    #[test]
    fn keys_become_flags() {
        let got = args(
            "name: n1\nData-Dir: /d\nsnapshot-count: 5\nstrict-reconfig-check: false\n\
             grpc-keepalive-min-time: 5000000000\nexperimental-watch-progress-notify-interval: 90000000000\n\
             log-outputs: [stdout, /tmp/x.log]\nauto-compaction-retention: \"1h\"\n\
             listen-client-urls: http://127.0.0.1:1,http://127.0.0.2:1\nwal-dir: ''\nforce-new-cluster: ~\n\
             client-transport-security:\n  cert-file: c.pem\n  client-cert-auth: true\n\
             peer-transport-security:\n  key-file: k.pem\n  trusted-ca-file: ca.pem\n\
             socket-options:\n  reuse-port: true\n",
        );
        assert_eq!(
            got,
            [
                "--name=n1",
                "--data-dir=/d",
                "--snapshot-count=5",
                "--strict-reconfig-check=false",
                "--grpc-keepalive-min-time=5s",
                "--experimental-watch-progress-notify-interval=1m30s",
                "--log-outputs=stdout,/tmp/x.log",
                "--auto-compaction-retention=1h",
                "--listen-client-urls=http://127.0.0.1:1,http://127.0.0.2:1",
                "--cert-file=c.pem",
                "--client-cert-auth=true",
                "--peer-key-file=k.pem",
                "--peer-trusted-ca-file=ca.pem",
                "--socket-reuse-port=true",
            ]
        );
    }

    /// The TLS keys become the flags the command line would give, so the
    /// flags' own acceptance or refusal applies to them.
    #[test]
    fn tls_keys_become_tls_flags() {
        let got = args(
            "cipher-suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n\
             client-transport-security:\n  auto-tls: true\n  crl-file: c.crl\n  allowed-hostname: [a.example]\n\
             peer-transport-security:\n  auto-tls: true\n  crl-file: p.crl\n  allowed-cn: [m1, m2]\n  allowed-hostname: [b.example]\n",
        );
        assert_eq!(
            got,
            [
                "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "--auto-tls=true",
                "--client-crl-file=c.crl",
                "--client-cert-allowed-hostname=a.example",
                "--peer-auto-tls=true",
                "--peer-crl-file=p.crl",
                "--peer-cert-allowed-cn=m1,m2",
                "--peer-cert-allowed-hostname=b.example",
            ]
        );
        // The TLS versions: their flags if ferrocd has them, else refused.
        let versions = translate("tls-min-version: TLS1.2\ntls-max-version: TLS1.3\n");
        if FLAGS.iter().any(|f| f.name == "tls-min-version") {
            let got: Vec<String> = versions
                .unwrap()
                .args
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect();
            assert_eq!(
                got,
                ["--tls-min-version=TLS1.2", "--tls-max-version=TLS1.3"]
            );
        } else {
            assert!(
                versions
                    .unwrap_err()
                    .to_string()
                    .contains("not supported by ferrocd")
            );
        }
    }

    #[test]
    fn empty_files_are_the_defaults() {
        assert!(args("").is_empty());
        assert!(args("# nothing\n").is_empty());
        assert!(args("---\n").is_empty());
    }

    #[test]
    fn unknown_keys_are_ignored_with_a_warning() {
        let l = translate("bogus: 1\nname: x\n").unwrap();
        assert_eq!(l.args, [OsString::from("--name=x")]);
        assert_eq!(l.warnings.len(), 1);
        assert!(l.warnings[0].contains("bogus"), "{:?}", l.warnings);
    }

    /// etcd 3.5.1's messages for the same files.
    #[test]
    fn wrong_types_are_refused_as_etcd() {
        let pre = "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal";
        assert_eq!(
            err("grpc-keepalive-min-time: 5s\n"),
            format!(
                "{pre} string into Go struct field configYAML.grpc-keepalive-min-time of type time.Duration"
            )
        );
        assert_eq!(
            err("heartbeat-interval: \"100\"\n"),
            format!("{pre} string into Go struct field configYAML.heartbeat-interval of type uint")
        );
        assert_eq!(
            err("snapshot-count: -1\n"),
            format!(
                "{pre} number -1 into Go struct field configYAML.snapshot-count of type uint64"
            )
        );
        assert_eq!(
            err("snapshot-count: 1.5\n"),
            format!(
                "{pre} number 1.5 into Go struct field configYAML.snapshot-count of type uint64"
            )
        );
        assert_eq!(
            err("log-outputs: stdout\n"),
            format!("{pre} string into Go struct field configYAML.log-outputs of type []string")
        );
        assert_eq!(
            err("listen-client-urls: [http://127.0.0.1:2379]\n"),
            format!(
                "{pre} array into Go struct field configYAML.listen-client-urls of type string"
            )
        );
        assert_eq!(
            err("auto-compaction-retention: 1\n"),
            format!(
                "{pre} number into Go struct field configYAML.auto-compaction-retention of type string"
            )
        );
        assert_eq!(
            err("strict-reconfig-check: \"maybe\"\n"),
            format!(
                "{pre} string into Go struct field configYAML.strict-reconfig-check of type bool"
            )
        );
        assert_eq!(
            err("client-transport-security:\n  cert-file: 5\n"),
            format!(
                "{pre} number into Go struct field securityConfig.client-transport-security.cert-file of type string"
            )
        );
        assert_eq!(
            err("client-transport-security: 5\n"),
            format!(
                "{pre} number into Go struct field configYAML.client-transport-security of type embed.securityConfig"
            )
        );
        assert_eq!(
            err("- a\n- b\n"),
            format!("{pre} array into Go value of type embed.configYAML")
        );
    }

    /// As etcd 3.5.1 reads them.
    #[test]
    fn yaml_1_1_scalars_and_repeated_keys() {
        assert_eq!(
            args("pre-vote: no\nstrict-reconfig-check: On\nname: a\nname: b\n"),
            [
                "--pre-vote=false",
                "--strict-reconfig-check=true",
                "--name=b"
            ]
        );
        let pre = "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal";
        assert_eq!(
            err("name: yes\n"),
            format!("{pre} bool into Go struct field configYAML.name of type string")
        );
        assert_eq!(
            err("pre-vote: \"true\"\n"),
            format!("{pre} string into Go struct field configYAML.pre-vote of type bool")
        );
        assert_eq!(args("name: !!str 123\n"), ["--name=123"]);
        assert_eq!(args("name: '123'\nwal-dir: NULL\n"), ["--name=123"]);
        assert_eq!(
            args("a: &u http://127.0.0.1:1\nlisten-client-urls: *u\n"),
            ["--listen-client-urls=http://127.0.0.1:1"]
        );
    }

    #[test]
    fn bad_yaml_is_refused() {
        let e = err("name: [x\n");
        assert!(
            e.starts_with("error converting YAML to JSON: yaml: line "),
            "{e}"
        );
    }

    #[test]
    fn keys_without_a_flag() {
        // Zero values are what the defaults say.
        assert!(args("enable-grpc-gateway: false\n").is_empty());
        let l = translate("experimental-memory-mlock: true\n").unwrap();
        assert!(l.args.is_empty());
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
        // client-cert-file has no ferrocd flag: refused when set.
        assert!(args("client-transport-security:\n  client-cert-file: ''\n").is_empty());
        assert!(
            err("peer-transport-security:\n  client-cert-file: c.pem\n")
                .contains("not supported by ferrocd")
        );
    }

    #[test]
    fn durations_read_back_exactly() {
        for (ns, text) in [
            (0, "0s"),
            (100_000_000, "100ms"),
            (7_200_000_000_000, "2h"),
            (1_500_000_000, "1s500ms"),
            (5_400_000_000_001, "1h30m1ns"),
        ] {
            assert_eq!(duration_flag(ns), text);
            assert_eq!(
                humantime::parse_duration(text).unwrap(),
                std::time::Duration::from_nanos(ns as u64)
            );
        }
    }
}
