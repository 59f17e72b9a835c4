//! Issue 23: logs as etcd 3.5 writes them. Each case runs etcd 3.5.1 and
//! ferrocd with the same flags and parses what they print: JSON lines
//! with `level`, `ts`, `caller`, `msg` on stderr by default,
//! `--log-outputs` to stdout and to a file, `--log-level warn` without
//! info lines, and the same refusals (message and exit status) for bad
//! values.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, etcd_35, free_port, tempdir, wait_child};
use crate::ferrocd;

/// How long a member may take to serve, or to refuse.
pub const WITHIN: Duration = Duration::from_secs(30);

/// A server process with its stdout and stderr in files; killed (by its
/// PID) when dropped.
pub struct Proc {
    pub child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Proc {
    /// Start `bin` with `args` and `env` added to this process's
    /// environment; output goes to `<out>.stdout` / `<out>.stderr`.
    pub fn spawn(bin: &Path, args: &[String], env: &[(&str, &str)], out: &Path) -> Proc {
        let stdout = out.with_extension("stdout");
        let stderr = out.with_extension("stderr");
        let mut cmd = Command::new(bin);
        // Only the variables the case sets: an inherited `ETCD_BIN` is an
        // unknown variable that etcd reports through its bootstrap logger,
        // whose `ts` is epoch seconds.
        for (k, _) in std::env::vars() {
            if k.starts_with("ETCD_") || k.starts_with("FERROCD_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        Proc {
            child,
            stdout,
            stderr,
        }
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Wait until `/health` on `port` answers (plain HTTP), or panic with
    /// the output after [`WITHIN`].
    pub fn wait_health(&mut self, port: u16) {
        let deadline = Instant::now() + WITHIN;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("exited ({st}):\n{}{}", self.stdout(), self.stderr());
            }
            if common::http_get(port, "/health").is_some_and(|(code, _)| code == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("not serving after {WITHIN:?}:\n{}", self.stderr());
    }

    /// Stop it (SIGKILL: what was logged so far is in the files) and give
    /// (stdout, stderr).
    pub fn stop(mut self) -> (String, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.stdout(), self.stderr())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `bin` with `args` expecting it to exit by itself; (status, stdout,
/// stderr).
pub fn refused(bin: &Path, args: &[String], out: &Path) -> (Option<i32>, String, String) {
    let mut p = Proc::spawn(bin, args, &[], out);
    let status = wait_child(&mut p.child, WITHIN)
        .unwrap_or_else(|| panic!("{} {args:?} kept running:\n{}", bin.display(), p.stderr()));
    (status.code(), p.stdout(), p.stderr())
}

/// The refusal's text: etcd logs `{"msg":"failed to verify flags",
/// "error":"..."}`, or prints a Go panic or a bare line; ferrocd prints
/// `ferrocd: ...` or the panic line.
pub fn refusal(stderr: &str) -> String {
    for l in stderr.lines() {
        if let Ok(v) = serde_json::from_str::<Value>(l)
            && v["msg"] == "failed to verify flags"
        {
            return v["error"].as_str().unwrap_or_default().to_string();
        }
        if let Some(rest) = l.strip_prefix("ferrocd: ") {
            return rest.to_string();
        }
        if l.starts_with("panic: ") {
            return l.to_string();
        }
    }
    panic!("no refusal in:\n{stderr}")
}

/// Flags for a one-member cluster on these ports and data dir.
fn member(data: &Path, client: u16, peer: u16) -> Vec<String> {
    let c = format!("http://127.0.0.1:{client}");
    let p = format!("http://127.0.0.1:{peer}");
    [
        "--name",
        "m",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen-client-urls",
        &c,
        "--advertise-client-urls",
        &c,
        "--listen-peer-urls",
        &p,
        "--initial-advertise-peer-urls",
        &p,
        "--initial-cluster",
        &format!("m={p}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The JSON log lines of `text`; with `strict`, every line must be one.
/// Each is checked for etcd's shape: `level` first, then `ts` (UTC,
/// milliseconds), `caller` (`dir/file:line`), `msg`.
pub fn json_lines(text: &str, strict: bool, what: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for l in text.lines() {
        let v: Value = match serde_json::from_str(l) {
            Ok(v @ Value::Object(_)) => v,
            _ if strict => panic!("{what}: not a JSON object: {l:?}"),
            // etcd's gRPC library prints its own `WARNING: ...` lines.
            _ => continue,
        };
        assert!(l.starts_with(r#"{"level":""#), "{what}: {l}");
        let level = v["level"].as_str().unwrap_or_default();
        assert!(
            ["debug", "info", "warn", "error"].contains(&level),
            "{what}: {l}"
        );
        let ts = v["ts"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: ts: {l}"));
        // 2026-12-07T19:01:03.813Z
        assert!(
            ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[19] == b'.',
            "{what}: ts {ts:?}"
        );
        humantime::parse_rfc3339(ts).unwrap_or_else(|e| panic!("{what}: ts {ts:?}: {e}"));
        let caller = v["caller"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: caller: {l}"));
        let (file, line) = caller
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("{what}: caller {caller:?}"));
        assert!(
            file.contains('/') && line.parse::<u32>().is_ok(),
            "{what}: caller {caller:?}"
        );
        assert!(v["msg"].is_string(), "{what}: msg: {l}");
        out.push(v);
    }
    out
}

#[test]
fn issue_23_logs_are_json_lines_on_stderr_as_etcd_3_5() {
    let dir = tempdir();
    for (bin, strict) in [(etcd_35(), false), (ferrocd(), true)] {
        let name = bin.file_name().unwrap().to_string_lossy().to_string();
        let (client, peer) = (free_port(), free_port());
        let args = member(&dir.path().join(&name), client, peer);
        let mut p = Proc::spawn(&bin, &args, &[], &dir.path().join(&name));
        p.wait_health(client);
        let (stdout, stderr) = p.stop();
        assert_eq!(stdout, "", "{name}: nothing on stdout");
        let lines = json_lines(&stderr, strict, &name);
        assert!(lines.len() >= 3, "{name}: {stderr}");
        assert!(
            lines.iter().any(|l| l["level"] == "info"),
            "{name}: {stderr}"
        );
        // Fields beside msg, in kebab-case as etcd names them.
        assert!(
            lines.iter().any(|l| l
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.contains('-') && !k.contains('_'))),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn issue_23_log_outputs_and_level_as_etcd_3_5() {
    let dir = tempdir();
    for (bin, strict) in [(etcd_35(), false), (ferrocd(), true)] {
        let name = bin.file_name().unwrap().to_string_lossy().to_string();

        // stdout only: the lines move there.
        let (client, peer) = (free_port(), free_port());
        let mut args = member(&dir.path().join(format!("{name}-1")), client, peer);
        args.extend(["--log-outputs".into(), "stdout".into()]);
        let mut p = Proc::spawn(&bin, &args, &[], &dir.path().join(format!("{name}-1")));
        p.wait_health(client);
        let (stdout, stderr) = p.stop();
        assert!(
            json_lines(&stdout, true, &name).len() >= 3,
            "{name}: {stdout}"
        );
        assert!(
            json_lines(&stderr, false, &name).is_empty(),
            "{name}: stderr: {stderr}"
        );

        // A file and stderr: the same lines in both.
        let (client, peer) = (free_port(), free_port());
        let file = dir.path().join(format!("{name}.log"));
        let mut args = member(&dir.path().join(format!("{name}-2")), client, peer);
        args.extend(["--log-outputs".into(), format!("{},stderr", file.display())]);
        let mut p = Proc::spawn(&bin, &args, &[], &dir.path().join(format!("{name}-2")));
        p.wait_health(client);
        let (stdout, stderr) = p.stop();
        assert_eq!(stdout, "", "{name}");
        let in_file = json_lines(&std::fs::read_to_string(&file).unwrap(), true, &name);
        let on_stderr = json_lines(&stderr, strict, &name);
        assert!(in_file.len() >= 3, "{name}: {in_file:?}");
        // The same lines, but for one being written when it was killed.
        let n = in_file.len().min(on_stderr.len());
        assert!(in_file.len().abs_diff(on_stderr.len()) <= 1, "{name}");
        assert_eq!(in_file[..n], on_stderr[..n], "{name}");

        // --log-level warn: no info lines (and upper case is accepted).
        for level in ["warn", "WARN"] {
            let (client, peer) = (free_port(), free_port());
            let base = dir.path().join(format!("{name}-{level}"));
            let mut args = member(&base, client, peer);
            args.extend(["--log-level".into(), level.into()]);
            let mut p = Proc::spawn(&bin, &args, &[], &base);
            p.wait_health(client);
            let (_, stderr) = p.stop();
            for l in json_lines(&stderr, strict, &name) {
                assert!(l["level"] == "warn" || l["level"] == "error", "{name}: {l}");
            }
        }
    }
}

/// Bad logging flags: etcd 3.5.1's message and exit status, from both.
#[test]
fn issue_23_bad_logging_flags_are_refused_as_etcd_3_5() {
    let dir = tempdir();
    let cases: &[(&[&str], i32)] = &[
        (&["--log-level", "loud"], 2),
        (&["--logger", "capnslog"], 1),
        (&["--logger", "foo"], 1),
        (&["--log-outputs", "default,stdout"], 1),
        (&["--log-outputs", "/nonexistent-ferrocd-dir/x.log"], 1),
        (&["--log-outputs", ""], 1),
    ];
    for (i, (flags, code)) in cases.iter().enumerate() {
        let mut seen = Vec::new();
        for bin in [etcd_35(), ferrocd()] {
            let name = bin.file_name().unwrap().to_string_lossy().to_string();
            let base = dir.path().join(format!("{name}-{i}"));
            let (client, peer) = (free_port(), free_port());
            let mut args = member(&base, client, peer);
            args.extend(flags.iter().map(|s| s.to_string()));
            let (got, _, stderr) = refused(&bin, &args, &base);
            assert_eq!(got, Some(*code), "{name} {flags:?}:\n{stderr}");
            seen.push(refusal(&stderr));
        }
        assert_eq!(seen[0], seen[1], "{flags:?}");
    }
}
