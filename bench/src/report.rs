//! The summary of a run: throughput, latency percentiles, the server's
//! resource use and ferrobench's own CPU time, as text for people or JSON
//! for scripts.

use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

use crate::cli::{Format, RunArgs};
use crate::driver::Outcome;
use crate::{hgrm, plot};

/// One run's report.
#[derive(Debug)]
pub(crate) struct Report<'a> {
    pub workload: &'static str,
    pub run: &'a RunArgs,
    /// Workload-specific parameters, in print order.
    pub params: Vec<(&'static str, Value)>,
    pub outcome: &'a Outcome,
}

/// Latency percentiles reported, with their labels.
pub(crate) const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
    ("p99.99", 99.99),
];

impl Report<'_> {
    fn ops_per_sec(&self) -> f64 {
        let secs = self.outcome.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.outcome.completed as f64 / secs
        } else {
            0.0
        }
    }

    /// Server CPU milliseconds per 1000 successful operations.
    fn cpu_ms_per_1k(&self) -> Option<f64> {
        ms_per_1k(self.outcome.server_cpu?, self.outcome.completed)
    }

    /// ferrobench's own CPU milliseconds per 1000 successful operations.
    fn client_cpu_ms_per_1k(&self) -> Option<f64> {
        ms_per_1k(self.outcome.client_cpu, self.outcome.completed)
    }

    pub(crate) fn to_json(&self) -> Value {
        let o = self.outcome;
        let h = &o.hist;
        let mut latency = serde_json::Map::new();
        latency.insert("min".into(), json!(h.min()));
        latency.insert("mean".into(), json!(round2(h.mean())));
        latency.insert("stdev".into(), json!(round2(h.stdev())));
        for (name, q) in PERCENTILES {
            latency.insert(name.into(), json!(h.value_at_quantile(q / 100.0)));
        }
        latency.insert("max".into(), json!(h.max()));
        let curve: Vec<Value> = hgrm::curve(h, 1.0)
            .into_iter()
            .map(|(p, count)| json!([p.quantile, p.value as u64, count]))
            .collect();
        let mut j = json!({
            "workload": self.workload,
            "endpoints": self.run.endpoints,
            "clients": self.run.clients,
            "conns": self.run.conns,
            "total": self.run.total_ops(),
            "max_secs": self.run.max_secs(),
            "rate": self.run.rate,
            "warmup": self.run.warmup,
            "request_timeout_secs": self.run.request_timeout_secs,
            "protocol": format!("{:?}", self.run.protocol).to_lowercase(),
            "completed": o.completed,
            "errors": o.errors,
            "first_error": o.first_error,
            "elapsed_secs": (o.elapsed.as_secs_f64() * 1e3).round() / 1e3,
            "ops_per_sec": round2(self.ops_per_sec()),
            "latency_us": latency,
            // [quantile, highest value of its bucket in µs, running count],
            // 5 ticks per half distance, as in the .hgrm output.
            "latency_curve_us": curve,
            // HdrHistogram's compressed V2 encoding, base64: runs merge.
            "histogram": hgrm::encode(h),
            "server": (!self.run.server_pid.is_empty()).then(|| json!({
                "pids": self.run.server_pid,
                "cpu_secs": o.server_cpu.map(|c| c.as_secs_f64()),
                "cpu_ms_per_1k_ops": self.cpu_ms_per_1k().map(round2),
                "ops_per_cpu_sec": self.cpu_ms_per_1k().filter(|&c| c > 0.0).map(|c| round2(1e6 / c)),
                "peak_rss_kib": o.server_peak_rss_kib,
            })),
            // ferrobench itself over the same span as "server".
            "client": {
                "cpu_secs": o.client_cpu.as_secs_f64(),
                "cpu_ms_per_1k_ops": self.client_cpu_ms_per_1k().map(round2),
            },
        });
        let obj = j.as_object_mut().expect("object");
        for (k, v) in &self.params {
            obj.insert((*k).into(), v.clone());
        }
        j
    }

    pub(crate) fn to_text(&self) -> String {
        let o = self.outcome;
        let h = &o.hist;
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let mut s = format!(
            "{}: {} ok, {} errors in {:.2} s: {:.0} ops/s\n  clients {}, conns {}, {}\n",
            self.workload,
            o.completed,
            o.errors,
            o.elapsed.as_secs_f64(),
            self.ops_per_sec(),
            self.run.clients,
            self.run.conns,
            params.join(", ")
        );
        let names: Vec<&str> = PERCENTILES.iter().map(|(name, _)| *name).collect();
        let values: Vec<String> = PERCENTILES
            .iter()
            .map(|(_, q)| ms(h.value_at_quantile(q / 100.0)))
            .collect();
        s += &format!(
            "  latency min/{}/max ms: {}/{}/{}, mean {:.3}\n",
            names.join("/"),
            ms(h.min()),
            values.join("/"),
            ms(h.max()),
            h.mean() / 1e3,
        );
        if !self.run.server_pid.is_empty() {
            let pids: Vec<String> = self.run.server_pid.iter().map(u32::to_string).collect();
            s += &format!(
                "  server pid {}: cpu {:.2} s, {} ms per 1k ops, peak rss {} MiB\n",
                pids.join("+"),
                o.server_cpu.map_or(0.0, |c| c.as_secs_f64()),
                self.cpu_ms_per_1k()
                    .map_or("-".to_string(), |v| format!("{v:.1}")),
                o.server_peak_rss_kib
                    .map_or("-".to_string(), |k| format!("{:.1}", k as f64 / 1024.0)),
            );
        }
        s += &format!(
            "  client cpu {:.2} s, {} ms per 1k ops\n",
            o.client_cpu.as_secs_f64(),
            self.client_cpu_ms_per_1k()
                .map_or("-".to_string(), |v| format!("{v:.1}")),
        );
        if let Some(e) = &o.first_error {
            s += &format!("  first error: {e}\n");
        }
        s
    }
}

/// `cpu` in milliseconds per 1000 of `ops`; `None` for no ops.
fn ms_per_1k(cpu: std::time::Duration, ops: u64) -> Option<f64> {
    (ops > 0).then(|| cpu.as_secs_f64() * 1e3 * 1e3 / ops as f64)
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1e3)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Prints the report to stdout and writes the files `--hgrm-out`,
/// `--json-out` and `--svg-out` ask for.
pub(crate) fn print(report: &Report<'_>, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Text => print!("{}", report.to_text()),
        Format::Json => println!("{}", report.to_json()),
    }
    let run = report.run;
    let h = &report.outcome.hist;
    if let Some(path) = &run.hgrm_out {
        write(path, &hgrm::percentile_distribution(h))?;
    }
    if let Some(path) = &run.json_out {
        write(path, &format!("{:#}\n", report.to_json()))?;
    }
    if let Some(path) = &run.svg_out {
        let series = plot::Series {
            label: report.workload.to_string(),
            points: hgrm::curve(h, 1000.0).into_iter().map(|(p, _)| p).collect(),
        };
        let title = format!(
            "{}: {} clients, {} ok, {:.0} ops/s",
            report.workload,
            run.clients,
            report.outcome.completed,
            report.ops_per_sec()
        );
        write(path, &plot::svg(&title, &[series], plot::YScale::Linear))?;
    }
    Ok(())
}

/// Writes `text` to `path`, naming the file in the error.
pub(crate) fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser as _;

    use super::*;
    use crate::driver::histogram;

    fn run_args(extra: &[&str]) -> RunArgs {
        let argv = ["ferrobench", "put"]
            .into_iter()
            .chain(extra.iter().copied());
        match crate::Cli::parse_from(argv).command {
            crate::Command::Put(p) => p.run,
            _ => unreachable!("parsed put"),
        }
    }

    fn outcome(completed: u64, server_cpu: Option<Duration>) -> Outcome {
        let mut hist = histogram();
        hist.record(1500).unwrap();
        Outcome {
            hist,
            completed,
            errors: 0,
            first_error: None,
            elapsed: Duration::from_secs(2),
            server_cpu,
            server_peak_rss_kib: server_cpu.map(|_| 40 * 1024),
            client_cpu: Duration::from_millis(450),
        }
    }

    fn put_report<'a>(run: &'a RunArgs, outcome: &'a Outcome) -> Report<'a> {
        Report {
            workload: "put",
            run,
            params: vec![],
            outcome,
        }
    }

    #[test]
    fn client_cpu_beside_server_cpu() {
        let run = run_args(&["--server-pid", "7"]);
        let o = outcome(10_000, Some(Duration::from_millis(1234)));
        let r = put_report(&run, &o);
        let text = r.to_text();
        assert!(
            text.contains(
                "  server pid 7: cpu 1.23 s, 123.4 ms per 1k ops, peak rss 40.0 MiB\n  \
                 client cpu 0.45 s, 45.0 ms per 1k ops\n"
            ),
            "{text}"
        );
        let j = r.to_json();
        assert_eq!(j["server"]["cpu_ms_per_1k_ops"], 123.4);
        assert_eq!(j["client"]["cpu_secs"], 0.45);
        assert_eq!(j["client"]["cpu_ms_per_1k_ops"], 45.0);
    }

    #[test]
    fn client_cpu_without_server_pid_or_ops() {
        let run = run_args(&[]);
        let o = outcome(0, None);
        let r = put_report(&run, &o);
        let text = r.to_text();
        assert!(!text.contains("server pid"), "{text}");
        assert!(
            text.contains("  client cpu 0.45 s, - ms per 1k ops\n"),
            "{text}"
        );
        let j = r.to_json();
        assert!(j["server"].is_null(), "{j}");
        assert_eq!(j["client"]["cpu_secs"], 0.45);
        assert!(j["client"]["cpu_ms_per_1k_ops"].is_null(), "{j}");
    }
}
