//! `ferrocd`: the server. Takes etcd's flags and `ETCD_*` / `FERROCD_*`
//! environment variables (see `config`); with none it serves a durable
//! single-member cluster on 127.0.0.1:2379 with data in `default.ferrocd`.

use std::process::ExitCode;

use ferrocd_core::config::{self, ConfigError, LogFormat, LogLevel, LogOutput};
use ferrocd_core::logging::{EtcdJson, Outputs};
use ferrocd_core::server::Server;

/// jemalloc, not glibc's malloc: on the binary protocol, 13–15 % less
/// server CPU per put and per txn and 30 % less per serializable read,
/// for 6–11 % more peak RSS (docs/BENCHMARKS.md, issue #19). glibc grew
/// the raft thread's arena one `mprotect` at a time as the store grew
/// (5 % of the server's CPU in `grow_heap` on put-256); mimalloc was
/// tried before and dropped (twice the RSS, huge-page churn).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let parsed = match config::from_process() {
        Ok(p) => p,
        Err(ConfigError::Help(text)) => {
            println!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(ConfigError::Version) => {
            println!("ferrocd Version: {}", env!("CARGO_PKG_VERSION"));
            println!("etcd API Version: {}", ferrocd_core::ETCD_VERSION);
            return ExitCode::SUCCESS;
        }
        Err(ConfigError::Usage(text)) => {
            eprintln!("{text}");
            return ExitCode::from(2);
        }
        // etcd 3.5 panics here; Go's runtime prints `panic: ...`, exit 2.
        Err(ConfigError::Panic(text)) => {
            eprintln!("panic: {text}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("ferrocd: {e}");
            return ExitCode::from(1);
        }
    };
    let cfg = parsed.config;
    let level = match cfg.log_level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    // etcd opens its log outputs before anything else starts, and stops
    // with status 1 when one cannot be opened.
    let outputs = match Outputs::open(&cfg.log_outputs) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ferrocd: {e}");
            return ExitCode::from(1);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERROCD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},openraft=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(outputs);
    match cfg.log_format {
        LogFormat::Json => builder.event_format(EtcdJson).init(),
        // Colours only where a terminal may be reading, never into a file.
        LogFormat::Text => builder
            .with_thread_names(true)
            .with_ansi(
                !cfg.log_outputs
                    .iter()
                    .any(|o| matches!(o, LogOutput::File(_))),
            )
            .init(),
    }
    for n in parsed.notices {
        tracing::info!("{n}");
    }
    for w in parsed.warnings {
        tracing::warn!("{w}");
    }
    tracing::info!(
        name = %cfg.name,
        data_dir = %cfg.data_dir.display(),
        version = env!("CARGO_PKG_VERSION"),
        "starting ferrocd"
    );
    let server = match Server::start(cfg) {
        Ok(s) => s,
        // etcd exits 0 when it learns at start that it was removed.
        Err(e) if e.downcast_ref::<ferrocd_core::Removed>().is_some() => {
            eprintln!("ferrocd: {e}; the data dir used by this member must be removed");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("ferrocd: {e:#}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = server.run_until_signal() {
        eprintln!("ferrocd: {e:#}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
