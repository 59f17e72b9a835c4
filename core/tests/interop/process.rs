//! Child processes with bounds: a run that must end within a time, and a
//! long-running one (`etcdctl watch`, `lease keep-alive`) read line by
//! line. Every wait has a deadline and a child left running is killed.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What a finished child printed, and its exit code.
#[derive(Debug)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: String,
    /// `None` when killed by a signal.
    pub code: Option<i32>,
}

impl Output {
    /// stdout as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Asserts exit code 0 and returns stdout as text; `what` names the
    /// command in the failure message.
    #[track_caller]
    pub fn ok(&self, what: &str) -> String {
        assert_eq!(
            self.code,
            Some(0),
            "{what} failed\nstdout: {}\nstderr: {}",
            self.text(),
            self.stderr
        );
        self.text()
    }
}

/// Reads a pipe to its end on a thread; the bytes arrive on the channel.
fn read_all<R: Read + Send + 'static>(mut r: R) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Runs `cmd` to its end with `stdin` fed to it (written from a thread, so
/// a child that answers before reading it all cannot block us), killing
/// it and panicking past `within`.
#[track_caller]
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>, within: Duration) -> Output {
    // The command for messages, cut short (the scripts' JSON argument).
    let what: String = format!("{cmd:?}").chars().take(300).collect();
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let input = input.to_vec();
        // A child that exits without reading everything closes the pipe:
        // the write error is expected then and ignored.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let out = read_all(child.stdout.take().expect("stdout pipe"));
    let err = read_all(child.stderr.take().expect("stderr pipe"));
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err
                .recv_timeout(Duration::from_secs(2))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            panic!("{what} ran past {within:?}; stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        stdout: out
            .recv_timeout(Duration::from_secs(5))
            .expect("stdout reader"),
        stderr: String::from_utf8_lossy(&err.recv_timeout(Duration::from_secs(5)).expect("stderr"))
            .into_owned(),
        code: status.code(),
    }
}

/// A running child whose stdout is read line by line; killed on drop.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<Vec<u8>>,
}

impl Spawned {
    pub fn new(cmd: &mut Command) -> Spawned {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout pipe");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = read_all(child.stderr.take().expect("stderr pipe"));
        Spawned {
            child,
            lines,
            stderr,
        }
    }

    /// The next stdout line, or `None` once `deadline` passes or stdout
    /// ends.
    pub fn line_before(&mut self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.lines.recv_timeout(left).ok()
    }

    /// Kills the child and returns what it wrote on stderr (for failure
    /// messages).
    pub fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .recv_timeout(Duration::from_secs(2))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
