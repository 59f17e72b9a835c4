//! Replaying a fuzz target's seed corpus (`fuzz/corpus/<target>/`) in a
//! crate's tests, and the protobuf writers the etcd seeds are built
//! with. Each crate's corpus test includes this file with
//! `#[path = "../../fuzz/corpus_replay.rs"] mod corpus_replay;` (the
//! crates share no test-support crate) and supplies its seeds and the
//! target's checks.

#![allow(dead_code)] // each includer uses what it needs

use std::path::{Path, PathBuf};

/// `fuzz/corpus/<target>`, from the including crate's manifest dir
/// (`env!("CARGO_MANIFEST_DIR")`).
pub fn dir(manifest_dir: &str, target: &str) -> PathBuf {
    PathBuf::from(manifest_dir)
        .join("../fuzz/corpus")
        .join(target)
}

/// Run `check(name, bytes)` on every file of `dir`, the way the fuzz
/// target runs its input (it must not panic; the name says what the
/// input should give). With `FERROCD_WRITE_CORPUS` set, `seeds` are
/// written there first. The corpus must hold at least the seeds.
pub fn replay<N: AsRef<str>>(
    dir: &Path,
    seeds: &[(N, Vec<u8>)],
    mut check: impl FnMut(&str, &[u8]),
) {
    if std::env::var_os("FERROCD_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(dir).unwrap();
        for (name, bytes) in seeds {
            std::fs::write(dir.join(name.as_ref()), bytes).unwrap();
        }
    }
    let mut n = 0;
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e} (the corpus must exist)", dir.display()));
    for e in entries {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let data = std::fs::read(&path).unwrap();
        check(&name, &data);
        n += 1;
    }
    assert!(n >= seeds.len(), "corpus has {n} files");
}

/// Every seed is in `dir` byte for byte: the corpus the fuzzer starts
/// from is the one the tests check. Skipped while `FERROCD_WRITE_CORPUS`
/// has [`replay`] writing the files (running beside it, this could read
/// one half written).
pub fn seeds_match<N: AsRef<str>>(dir: &Path, seeds: &[(N, Vec<u8>)]) {
    if std::env::var_os("FERROCD_WRITE_CORPUS").is_some() {
        return;
    }
    for (name, bytes) in seeds {
        let name = name.as_ref();
        let on_disk = std::fs::read(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e} (regenerate with FERROCD_WRITE_CORPUS=1)"));
        assert_eq!(&on_disk, bytes, "{name} differs from its seed");
    }
}

/// Bytes from hex text (two digits a byte).
pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A protobuf varint.
pub fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A varint field (wire type 0), written even when 0 as gogoproto does.
pub fn uint(out: &mut Vec<u8>, field: u64, v: u64) {
    varint(out, field << 3);
    varint(out, v);
}

/// A length-delimited field (wire type 2).
pub fn bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}
