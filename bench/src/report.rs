//! The summary of a run: throughput, latency percentiles and the server's
//! resource use, as text for people or JSON for scripts.

use serde_json::{Value, json};

use crate::cli::{Format, RunArgs};
use crate::driver::Outcome;

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
const PERCENTILES: [(&str, f64); 4] =
    [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)];

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
        let cpu = self.outcome.server_cpu?;
        (self.outcome.completed > 0)
            .then(|| cpu.as_secs_f64() * 1e3 * 1e3 / self.outcome.completed as f64)
    }

    pub(crate) fn to_json(&self) -> Value {
        let o = self.outcome;
        let h = &o.hist;
        let mut latency = serde_json::Map::new();
        latency.insert("mean".into(), json!(round2(h.mean())));
        for (name, q) in PERCENTILES {
            latency.insert(name.into(), json!(h.value_at_quantile(q / 100.0)));
        }
        latency.insert("max".into(), json!(h.max()));
        let mut j = json!({
            "workload": self.workload,
            "endpoints": self.run.endpoints,
            "clients": self.run.clients,
            "conns": self.run.conns,
            "total": self.run.total_ops(),
            "completed": o.completed,
            "errors": o.errors,
            "first_error": o.first_error,
            "elapsed_secs": (o.elapsed.as_secs_f64() * 1e3).round() / 1e3,
            "ops_per_sec": round2(self.ops_per_sec()),
            "latency_us": latency,
            "server": (!self.run.server_pid.is_empty()).then(|| json!({
                "pid": self.run.server_pid,
                "cpu_secs": o.server_cpu.map(|c| c.as_secs_f64()),
                "cpu_ms_per_1k_ops": self.cpu_ms_per_1k().map(round2),
                "peak_rss_kib": o.server_peak_rss_kib,
            })),
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
        let pcts: Vec<String> = PERCENTILES
            .iter()
            .map(|(name, q)| format!("{name} {}", ms(h.value_at_quantile(q / 100.0))))
            .collect();
        s += &format!(
            "  latency ms: mean {:.3}, {}, max {}\n",
            h.mean() / 1e3,
            pcts.join(", "),
            ms(h.max())
        );
        if !self.run.server_pid.is_empty() {
            let pid = self
                .run
                .server_pid
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("+");
            s += &format!(
                "  server pid {pid}: cpu {:.2} s, {} ms per 1k ops, peak rss {} MiB\n",
                o.server_cpu.map_or(0.0, |c| c.as_secs_f64()),
                self.cpu_ms_per_1k()
                    .map_or("-".to_string(), |v| format!("{v:.1}")),
                o.server_peak_rss_kib
                    .map_or("-".to_string(), |k| format!("{:.1}", k as f64 / 1024.0)),
            );
        }
        if let Some(e) = &o.first_error {
            s += &format!("  first error: {e}\n");
        }
        s
    }
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1e3)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Prints the report to stdout.
pub(crate) fn print(report: &Report<'_>, format: Format) {
    match format {
        Format::Text => print!("{}", report.to_text()),
        Format::Json => println!("{}", report.to_json()),
    }
}
