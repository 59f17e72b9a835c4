//! The server's resource use, read from `/proc` before and after a run.

use std::time::Duration;

use anyhow::{Context, bail};

/// CPU time (user + system) of process `pid` so far.
pub(crate) fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    cpu_time_from_stat(&stat).with_context(|| format!("parsing {path}"))
}

/// CPU time of the processes `pids` together; `None` for no pids.
pub(crate) fn cpu_time_sum(pids: &[u32]) -> anyhow::Result<Option<Duration>> {
    if pids.is_empty() {
        return Ok(None);
    }
    let mut sum = Duration::ZERO;
    for &pid in pids {
        sum += cpu_time(pid)?;
    }
    Ok(Some(sum))
}

/// Peak RSS of the processes `pids` added up, in KiB; `None` for no pids.
pub(crate) fn peak_rss_kib_sum(pids: &[u32]) -> anyhow::Result<Option<u64>> {
    if pids.is_empty() {
        return Ok(None);
    }
    let mut sum = 0;
    for &pid in pids {
        sum += peak_rss_kib(pid)?;
    }
    Ok(Some(sum))
}

/// utime and stime are fields 14 and 15 of `/proc/PID/stat`, in clock
/// ticks. Field 2 (the command name) is in parentheses and may contain
/// spaces and ')', so counting starts after the last ')', at field 3.
fn cpu_time_from_stat(stat: &str) -> anyhow::Result<Duration> {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        bail!("no ')' in stat line");
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field n (1-based) is at index n - 3 here.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    let hz = clock_ticks_per_sec();
    let ticks = utime + stime;
    Ok(Duration::from_secs(ticks / hz) + Duration::from_nanos((ticks % hz) * 1_000_000_000 / hz))
}

fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf takes no pointers and only reads a configuration
    // value; any argument is allowed (an unknown one returns -1).
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // -1 or 0 would be a broken system; 100 is Linux's USER_HZ everywhere.
    if hz > 0 { hz as u64 } else { 100 }
}

/// Peak resident set size (`VmHWM`) of process `pid`, in KiB.
pub(crate) fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    for line in status.lines() {
        if let Some(v) = line.strip_prefix("VmHWM:") {
            let kib = v.trim().trim_end_matches("kB").trim();
            return kib.parse().with_context(|| format!("VmHWM {v:?}"));
        }
    }
    bail!("no VmHWM in {path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_tricky_name() {
        // A made-up line whose name holds spaces and a ')'.
        let line = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3";
        let hz = clock_ticks_per_sec();
        assert_eq!(
            cpu_time_from_stat(line).unwrap(),
            Duration::from_secs_f64(300.0 / hz as f64)
        );
        assert!(cpu_time_from_stat("no paren").is_err());
    }

    #[test]
    fn own_process() {
        let pid = std::process::id();
        cpu_time(pid).unwrap();
        assert!(peak_rss_kib(pid).unwrap() > 0);
    }
}
