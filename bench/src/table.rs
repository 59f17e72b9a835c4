//! The Markdown report of `ferrobench compare`: how it was run, on what
//! machine, and one row per workload and target with throughput, latency
//! percentiles, server and ferrobench (client) CPU per 1000 operations and
//! ratios against the best etcd. A pure function of its input, so a golden file pins it.

use std::fmt::Write as _;

/// Where a comparison ran.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub nproc: usize,
    pub model: String,
    pub kernel: String,
}

impl Machine {
    /// This machine, from `/proc`.
    pub(crate) fn here() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "model name").then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".into(), |s| s.trim().to_string());
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            model,
            kernel: format!("Linux {kernel}"),
        }
    }
}

/// How the comparison was run.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub command: String,
    pub date: String,
    pub machine: Machine,
    pub members: u8,
    pub rounds: u32,
    /// Each workload's name and the ferrobench command line it runs.
    pub workloads: Vec<(String, String)>,
    /// Each target's label and binary.
    pub targets: Vec<(String, String)>,
}

/// One workload against one target, over all rounds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Row {
    pub workload: String,
    pub target: String,
    pub is_etcd: bool,
    /// Throughput of each successful round.
    pub ops_per_sec: Vec<f64>,
    pub completed: u64,
    pub errors: u64,
    /// Percentiles of all rounds' latencies merged, in µs.
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub p999_us: Option<u64>,
    /// Server CPU over all rounds per 1000 operations, in ms (all members).
    pub cpu_ms_per_1k: Option<f64>,
    /// ferrobench's own CPU over all rounds per 1000 operations, in ms: the
    /// load generator shares the cores, so a high figure bounds the run.
    pub client_cpu_ms_per_1k: Option<f64>,
    /// The highest peak RSS of a round, in MiB (members added up).
    pub peak_rss_mib: Option<f64>,
    /// Rounds that gave no result, with why.
    pub failures: Vec<String>,
}

impl Row {
    pub(crate) fn mean_ops(&self) -> Option<f64> {
        (!self.ops_per_sec.is_empty())
            .then(|| self.ops_per_sec.iter().sum::<f64>() / self.ops_per_sec.len() as f64)
    }
}

fn ms(us: Option<u64>) -> String {
    us.map_or("-".into(), |us| format!("{:.3}", us as f64 / 1e3))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

/// The Markdown document.
pub(crate) fn markdown(meta: &Meta, rows: &[Row]) -> String {
    let m = &meta.machine;
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(s, "# ferrobench compare\n");
    let _ = writeln!(s, "- command: `{}`", meta.command);
    let _ = writeln!(s, "- date: {}", meta.date);
    let _ = writeln!(s, "- machine: {} cores, {}, {}", m.nproc, m.model, m.kernel);
    let _ = writeln!(
        s,
        "- {} member{} per target, fresh data dirs on loopback; {} round{}, targets alternating in each",
        meta.members,
        if meta.members == 1 { "" } else { "s" },
        meta.rounds,
        if meta.rounds == 1 { "" } else { "s" },
    );
    for (label, bin) in &meta.targets {
        let _ = writeln!(s, "- target {label}: `{bin}`");
    }
    for (name, cmd) in &meta.workloads {
        let _ = writeln!(s, "- workload {name}: `{cmd}`");
    }
    s.push('\n');
    s.push_str(
        "| workload | target | ops/s | p50 ms | p99 ms | p99.9 ms | server CPU ms / 1k ops \
         | client CPU ms / 1k | peak RSS MiB | ops/s × etcd | p99 × etcd | CPU × etcd | errors |\n",
    );
    s.push_str("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for row in rows {
        // The best etcd of this workload: the most ops/s.
        let best = rows
            .iter()
            .filter(|r| r.is_etcd && r.workload == row.workload && r.mean_ops().is_some())
            .max_by(|a, b| a.mean_ops().partial_cmp(&b.mean_ops()).expect("finite"));
        let ops = match row.mean_ops() {
            None => "-".to_string(),
            Some(mean) if row.ops_per_sec.len() > 1 => {
                let lo = row
                    .ops_per_sec
                    .iter()
                    .copied()
                    .fold(f64::INFINITY, f64::min);
                let hi = row.ops_per_sec.iter().copied().fold(0.0, f64::max);
                format!("{mean:.0} ({lo:.0}–{hi:.0})")
            }
            Some(mean) => format!("{mean:.0}"),
        };
        let f = |r: Option<&Row>, g: fn(&Row) -> Option<f64>| r.and_then(g);
        let p99 = |r: &Row| r.p99_us.map(|v| v as f64);
        let cpu = |r: &Row| r.cpu_ms_per_1k;
        let mut errors = row.errors.to_string();
        if !row.failures.is_empty() {
            let _ = write!(errors, ", {} round(s) failed", row.failures.len());
        }
        let _ = writeln!(
            s,
            "| {} | {} | {ops} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {errors} |",
            row.workload,
            row.target,
            ms(row.p50_us),
            ms(row.p99_us),
            ms(row.p999_us),
            row.cpu_ms_per_1k.map_or("-".into(), |c| format!("{c:.1}")),
            row.client_cpu_ms_per_1k
                .map_or("-".into(), |c| format!("{c:.1}")),
            row.peak_rss_mib.map_or("-".into(), |m| format!("{m:.0}")),
            ratio(row.mean_ops(), f(best, Row::mean_ops)),
            ratio(p99(row), f(best, p99)),
            ratio(cpu(row), f(best, cpu)),
        );
    }
    s.push_str(
        "\nops/s: mean over rounds (lowest–highest); percentiles: all rounds' latencies \
         merged; server CPU: user + system time of every member during the measured run; \
         client CPU: the same of ferrobench itself (it shares the cores) over the same span; \
         peak RSS: the highest VmHWM of a round, members added up. \
         × etcd: the figure divided by the best etcd's (the etcd with the most ops/s in \
         that workload): above 1 is better for ops/s, below 1 for p99 and CPU.\n",
    );
    let failed: Vec<&Row> = rows.iter().filter(|r| !r.failures.is_empty()).collect();
    if !failed.is_empty() {
        s.push_str("\nFailed rounds:\n\n");
        for r in failed {
            for f in &r.failures {
                let _ = writeln!(
                    s,
                    "- {} on {}: {}",
                    r.workload,
                    r.target,
                    f.replace('\n', " ")
                );
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            command: "ferrobench compare --members 1 --rounds 2 --out cmp".into(),
            date: "2026-12-03 10:00 UTC".into(),
            machine: Machine {
                nproc: 2,
                model: "Example CPU @ 2.00GHz".into(),
                kernel: "Linux 6.1.0".into(),
            },
            members: 1,
            rounds: 2,
            workloads: vec![
                ("put".into(), "ferrobench put --clients 16".into()),
                ("range-s".into(), "ferrobench range --consistency s".into()),
            ],
            targets: vec![
                ("etcd 3.4.23".into(), "/usr/bin/etcd".into()),
                ("etcd 3.5.1".into(), "/opt/etcd".into()),
                ("ferrocd".into(), "target/release/ferrocd".into()),
            ],
        }
    }

    fn row(w: &str, t: &str, etcd: bool, ops: &[f64], p99: u64, cpu: f64) -> Row {
        Row {
            workload: w.into(),
            target: t.into(),
            is_etcd: etcd,
            ops_per_sec: ops.to_vec(),
            completed: 20_000,
            errors: 0,
            p50_us: Some(p99 / 4),
            p99_us: Some(p99),
            p999_us: Some(p99 * 2),
            cpu_ms_per_1k: Some(cpu),
            client_cpu_ms_per_1k: Some(cpu / 4.0 + 0.04),
            peak_rss_mib: Some(if etcd { 30.0 } else { 41.4 }),
            failures: vec![],
        }
    }

    #[test]
    fn table_matches_golden() {
        let mut failed = row("range-s", "etcd 3.5.1", true, &[], 0, 0.0);
        failed.p50_us = None;
        failed.p99_us = None;
        failed.p999_us = None;
        failed.cpu_ms_per_1k = None;
        failed.client_cpu_ms_per_1k = None;
        failed.peak_rss_mib = None;
        failed.completed = 0;
        failed.failures = vec!["etcd 3.5.1 did not become healthy\nin 30 s".into()];
        let rows = vec![
            row("put", "etcd 3.4.23", true, &[4000.0, 4200.0], 8000, 900.0),
            row("put", "etcd 3.5.1", true, &[5000.0, 5400.0], 6000, 800.0),
            row("put", "ferrocd", false, &[10_400.0, 10_000.0], 3000, 300.0),
            row("range-s", "etcd 3.4.23", true, &[20_000.0], 1500, 100.0),
            failed,
            Row {
                errors: 3,
                ..row("range-s", "ferrocd", false, &[50_000.0], 500, 25.0)
            },
        ];
        let md = markdown(&meta(), &rows);
        crate::golden::check("compare.md", &md);
        // The best etcd of put is 3.5.1 (5200 ops/s): ferrocd 10200 / 5200.
        assert!(md.contains("| put | ferrocd | 10200 (10000–10400) | 0.750 | 3.000 | 6.000 | 300.0 | 75.0 | 41 | 1.96 | 0.50 | 0.38 | 0 |"), "{md}");
    }

    #[test]
    fn no_etcd_no_ratios() {
        let md = markdown(&meta(), &[row("put", "ferrocd", false, &[100.0], 10, 1.0)]);
        assert!(md.contains("| 1.0 | 0.3 | 41 | - | - | - | 0 |"), "{md}");
    }
}
