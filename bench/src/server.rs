//! The server's resource use, read from `/proc` before and after a run,
//! and ferrobench's own CPU time (the load generator shares the machine
//! and can be the limit).

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

/// CPU time (user + system) of this process, all its threads, so far:
/// `getrusage(RUSAGE_SELF)`, in microseconds where `/proc` has clock ticks.
pub(crate) fn own_cpu_time() -> anyhow::Result<Duration> {
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage that outlives the call.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrusage(RUSAGE_SELF)");
    }
    Ok(timeval(ru.ru_utime) + timeval(ru.ru_stime))
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
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
    fn own_cpu_time_counts_busy_work() {
        let before = own_cpu_time().unwrap();
        // Spin until 20 ms of CPU are charged (bounded by wall time: a
        // getrusage that never moves fails here instead of hanging).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut x = 0u64;
        let after = loop {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            let now = own_cpu_time().unwrap();
            if now - before >= Duration::from_millis(20) || std::time::Instant::now() > deadline {
                break now;
            }
        };
        std::hint::black_box(x);
        assert!(
            after - before >= Duration::from_millis(20),
            "{before:?} -> {after:?}"
        );
    }

    #[test]
    fn own_process() {
        let pid = std::process::id();
        cpu_time(pid).unwrap();
        assert!(peak_rss_kib(pid).unwrap() > 0);
    }
}
