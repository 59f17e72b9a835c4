//! `ferrobench mixed`: reads and writes over one prefilled key space;
//! request `i` is a read with probability `--read-ratio` (decided by a
//! hash of `i`, so runs are repeatable), else a put.

use ferrocd_net::client::{Client, GetOptions};

use crate::cli::{Consistency, MixedArgs};
use crate::conn;
use crate::driver;
use crate::exec::{execute, key, prefill};

struct Mixer {
    conn: Client,
    key_size: usize,
    key_space: u64,
    value: Vec<u8>,
    /// Reads per 2^32.
    read_threshold: u64,
    serializable: bool,
}

/// splitmix64: a fixed, well-spread hash of the request number.
pub(crate) fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl driver::Client for Mixer {
    fn call(
        &mut self,
        i: u64,
    ) -> impl std::future::Future<Output = Result<(), tonic::Status>> + Send {
        let h = mix(i);
        let k = key("", (h >> 32) % self.key_space, self.key_size);
        let read = (h & 0xffff_ffff) < self.read_threshold;
        let (conn, value, ser) = (self.conn.clone(), self.value.clone(), self.serializable);
        async move {
            if read {
                let o = if ser {
                    GetOptions::new().with_serializable()
                } else {
                    GetOptions::new()
                };
                conn.get(k, Some(o)).await.map(|_| ())
            } else {
                conn.put(k, value, None).await.map(|_| ())
            }
            .map_err(conn::status)
        }
    }
}

pub(crate) fn run(args: &MixedArgs) -> anyhow::Result<()> {
    let run = &args.run;
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.read_ratio),
        "--read-ratio must be within 0..=1, got {}",
        args.read_ratio
    );
    let key_size = args.keys.key_size as usize;
    let key_space = args.keys.key_space.max(1);
    let params = vec![
        ("key_size", args.keys.key_size.into()),
        ("val_size", args.keys.val_size.into()),
        ("key_space", key_space.into()),
        ("read_ratio", args.read_ratio.into()),
    ];
    let clients = run.clients as usize;
    let value = vec![b'v'; args.keys.val_size as usize];
    let read_threshold = (args.read_ratio * (1u64 << 32) as f64) as u64;
    let serializable = args.consistency == Consistency::S;
    execute(run, "mixed", params, |conns| async move {
        let v = value.clone();
        prefill(
            &conns[0],
            key_space,
            |n| key("", n, key_size),
            |_| v.clone(),
        )
        .await?;
        Ok((0..clients)
            .map(|c| Mixer {
                conn: conns[c % conns.len()].clone(),
                key_size,
                key_space,
                value: value.clone(),
                read_threshold,
                serializable,
            })
            .collect())
    })
}

#[cfg(test)]
mod tests {
    use super::mix;

    #[test]
    fn the_read_share_follows_the_ratio() {
        let threshold = (0.9 * (1u64 << 32) as f64) as u64;
        let reads = (0..100_000u64)
            .filter(|i| (mix(*i) & 0xffff_ffff) < threshold)
            .count();
        assert!((89_000..91_000).contains(&reads), "{reads}");
    }
}
