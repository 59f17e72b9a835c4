//! `--quota-backend-bytes`: writes past the quota raise the NOSPACE alarm
//! and are refused with etcd's error until the space is freed (delete +
//! compaction) and the alarm is disarmed; reads and deletes keep working.
//! Outputs as etcdctl prints them against etcd. (Against etcd itself the
//! last step can still be refused: its file does not shrink without a
//! defrag; ferrocd counts live record bytes, which compaction frees.)

#[path = "../common/mod.rs"]
mod common;

use common::{Server, tempdir};

#[test]
fn nospace_alarm_refuses_writes_until_disarmed() {
    let tmp = tempdir();
    let s = Server::start_with(
        &tmp.path().join("data"),
        &["--quota-backend-bytes", "200000"],
    );
    let big = "x".repeat(30_000);
    let mut refused = None;
    for i in 0..20 {
        let out = s.ctl_stdin(&["put", "k", &big], None);
        if out.code != Some(0) {
            refused = Some((i, out));
            break;
        }
    }
    let (n, out) = refused.expect("a 200 kB quota never refused 600 kB of puts");
    assert!(n >= 3, "refused after only {n} puts of 30 kB");
    assert!(
        out.stderr
            .contains("etcdserver: mvcc: database space exceeded"),
        "{out:?}"
    );
    let alarms = s.ctl(&["alarm", "list"]).ok().to_string();
    assert!(
        alarms.starts_with("memberID:") && alarms.contains("alarm:NOSPACE"),
        "{alarms}"
    );
    // Small writes are refused too while the alarm is up; reads are not.
    let small = s.ctl_stdin(&["put", "other", "v"], None);
    assert!(
        small.stderr.contains("database space exceeded"),
        "{small:?}"
    );
    assert_eq!(s.ctl(&["get", "k", "--keys-only"]).ok().trim(), "k");
    // Free the space: delete, compact, disarm.
    assert_eq!(s.ctl(&["del", "k"]).ok().trim(), "1");
    let rev = s.ctl(&["get", "k", "-w", "json"]).json()["header"]["revision"]
        .as_i64()
        .unwrap();
    s.ctl(&["compaction", &rev.to_string()]).ok();
    let disarmed = s.ctl(&["alarm", "disarm"]).ok().to_string();
    assert!(disarmed.contains("alarm:NOSPACE"), "{disarmed}");
    assert_eq!(s.ctl(&["alarm", "list"]).ok().trim(), "");
    assert_eq!(s.ctl(&["put", "k", "small"]).ok().trim(), "OK");
}
