//! Helpers shared by the WAL tests (included with `mod common;`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ferrocd_wal::{Config, Fs, SimFs, TornTail, Wal};

pub const DIR: &str = "/data/member/wal";

pub fn dir() -> PathBuf {
    PathBuf::from(DIR)
}

/// A config with tiny segments so tests roll often.
pub fn small(segment_size: u64) -> Config {
    Config {
        segment_size,
        keep_segments: 2,
        torn_tail: TornTail::Truncate,
    }
}

/// Payload of entry `i`: varying length, content derived from `i`.
pub fn payload(i: u64) -> Vec<u8> {
    let len = (i * 37 % 200) as usize + 1;
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

pub fn open(fs: &SimFs, cfg: Config) -> Wal<SimFs> {
    Wal::open(fs.clone(), dir(), cfg).expect("open").0
}

pub fn all_entries<F: Fs>(wal: &mut Wal<F>) -> Vec<(u64, Vec<u8>)> {
    match (wal.first_index(), wal.last_index()) {
        (Some(f), Some(l)) => wal.entries(f, l).expect("read"),
        _ => Vec::new(),
    }
}

/// Segment paths, oldest first.
pub fn segments(fs: &SimFs) -> Vec<PathBuf> {
    let mut v: Vec<String> = fs
        .list(Path::new(DIR))
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".wal"))
        .collect();
    v.sort();
    v.into_iter().map(|n| dir().join(n)).collect()
}
