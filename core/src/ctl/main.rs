//! `ferroctl`: etcdctl v3's commands, flags and output formats, for
//! ferrocd and any etcd v3 cluster.
//!
//! Global flags carry etcdctl's names, defaults and `ETCDCTL_*`
//! environment variables; `--protocol` (ferrocd's binary protocol or gRPC)
//! is ours. Each command group lives in its own module; [`print`] holds
//! the shared output helpers, [`error`] the exit codes.

mod auth;
mod check;
mod conc;
mod endpoint;
mod error;
mod kv;
mod lease;
mod maint;
mod member;
mod mirror;
mod print;
mod txn;
mod wal;
mod watch;

use std::io::Write as _;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};
use ferrocd_net::client::{Client, ConnectOptions, Protocol};

use crate::error::{EXIT_BAD_CONNECTION, EXIT_ERROR, Fail, R};
use crate::print::Format;

/// etcdctl's global flags.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// gRPC endpoints
    #[arg(
        long,
        global = true,
        env = "ETCDCTL_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,
    /// dial timeout for client connections
    #[arg(long, global = true, env = "ETCDCTL_DIAL_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub dial_timeout: Duration,
    /// timeout for short running command (excluding dial timeout)
    #[arg(long, global = true, env = "ETCDCTL_COMMAND_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub command_timeout: Duration,
    /// set the output format (fields, json, simple, table)
    #[arg(
        short = 'w',
        long = "write-out",
        global = true,
        env = "ETCDCTL_WRITE_OUT",
        default_value = "simple"
    )]
    pub write_out: String,
    /// print byte strings as hex encoded strings
    #[arg(long, global = true, env = "ETCDCTL_HEX", action = ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub hex: bool,
    /// username[:password] for authentication (prompt if password is not supplied)
    #[arg(long, global = true, env = "ETCDCTL_USER")]
    pub user: Option<String>,
    /// password for authentication (if this option is used, --user option shouldn't include password)
    #[arg(long, global = true, env = "ETCDCTL_PASSWORD")]
    pub password: Option<String>,
    /// wire protocol: auto (ferrocd's binary protocol where offered, else gRPC), fast, grpc
    #[arg(long, global = true, env = "FERROCTL_PROTOCOL", default_value = "auto",
          value_parser = ["auto", "fast", "grpc"])]
    pub protocol: String,
    /// verify certificates of TLS-enabled secure servers using this CA bundle
    #[arg(long, global = true, env = "ETCDCTL_CACERT")]
    pub cacert: Option<String>,
    /// identify secure client using this TLS certificate file
    #[arg(long, global = true, env = "ETCDCTL_CERT")]
    pub cert: Option<String>,
    /// identify secure client using this TLS key file
    #[arg(long, global = true, env = "ETCDCTL_KEY")]
    pub key: Option<String>,
    /// skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)
    #[arg(long = "insecure-skip-tls-verify", global = true, env = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY",
          num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub insecure_skip_tls_verify: bool,
    /// disable transport security for client connections
    #[arg(long = "insecure-transport", global = true, env = "ETCDCTL_INSECURE_TRANSPORT",
          num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub insecure_transport: bool,
    /// etcdctl's keepalive and transport flags: accepted, no effect here
    #[arg(long = "keepalive-time", global = true, hide = true)]
    pub keepalive_time: Option<String>,
    /// (accepted, no effect)
    #[arg(long = "keepalive-timeout", global = true, hide = true)]
    pub keepalive_timeout: Option<String>,
    /// (accepted, no effect)
    #[arg(long, global = true, env = "ETCDCTL_DEBUG", hide = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    pub debug: Option<String>,
}

/// A command line interface for ferrocd and etcd v3.
#[derive(Debug, Parser)]
#[command(name = "ferroctl", disable_version_flag = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Gets the key or a range of keys
    Get(kv::GetArgs),
    /// Puts the given key into the store
    Put(kv::PutArgs),
    /// Removes the specified key or range of keys [key, range_end)
    Del(kv::DelArgs),
    /// Txn processes all the requests in one transaction
    Txn(txn::TxnArgs),
    /// Compacts the event history in etcd
    Compaction(kv::CompactArgs),
    /// Watches events stream on keys or prefixes
    Watch(watch::WatchArgs),
    /// Lease related commands
    #[command(subcommand)]
    Lease(lease::LeaseCmd),
    /// Membership related commands
    #[command(subcommand)]
    Member(member::MemberCmd),
    /// Endpoint related commands
    #[command(subcommand)]
    Endpoint(endpoint::EndpointCmd),
    /// Transfers leadership to another etcd cluster member.
    MoveLeader(maint::MoveLeaderArgs),
    /// Alarm related commands
    #[command(subcommand)]
    Alarm(maint::AlarmCmd),
    /// Defragments the storage of the etcd members with given endpoints
    Defrag(maint::DefragArgs),
    /// commands for checking properties of the etcd cluster
    #[command(subcommand)]
    Check(check::CheckCmd),
    /// Makes a mirror at the destination etcd cluster
    MakeMirror(mirror::MirrorArgs),
    /// Downgrade related commands
    #[command(subcommand)]
    Downgrade(maint::DowngradeCmd),
    /// Manages etcd node snapshots
    #[command(subcommand)]
    Snapshot(maint::SnapshotCmd),
    /// Acquires a named lock
    Lock(conc::LockArgs),
    /// Observes and participates in leader election
    Elect(conc::ElectArgs),
    /// Enable or disable authentication
    #[command(subcommand)]
    Auth(auth::AuthCmd),
    /// User related commands
    #[command(subcommand)]
    User(auth::UserCmd),
    /// Role related commands
    #[command(subcommand)]
    Role(auth::RoleCmd),
    /// Offline tools for a stopped member's write-ahead log
    #[command(subcommand)]
    Wal(wal::WalCmd),
    /// Prints the version of ferroctl
    Version,
}

/// What every command gets: the global flags and the output format.
#[derive(Debug)]
pub struct Ctx {
    /// The global flags.
    pub g: Global,
    /// `-w`.
    pub fmt: Format,
}

impl Ctx {
    /// A client of `--endpoints`.
    pub async fn client(&self) -> R<Client> {
        self.client_for(&self.g.endpoints).await
    }

    /// The connect options of the global flags.
    pub fn options(&self) -> R<ConnectOptions> {
        let mut o = ConnectOptions::new()
            .with_dial_timeout(self.g.dial_timeout)
            .with_timeout(self.g.command_timeout)
            .with_protocol(self.protocol());
        if let Some(u) = &self.g.user {
            let (name, pw) = match (u.split_once(':'), &self.g.password) {
                (Some(_), Some(_)) => {
                    return Err(Fail::args(
                        "--user option shouldn't include password when --password is specified",
                    ));
                }
                (Some((n, p)), None) => (n.to_string(), p.to_string()),
                (None, Some(p)) => (u.clone(), p.clone()),
                (None, None) => (u.clone(), read_password("Password: ")?),
            };
            o = o.with_user(name, pw);
        }
        if let Some(tls) = self.tls() {
            o = o.with_tls(tls);
        }
        Ok(o)
    }

    /// etcdctl's TLS decision: any of `--cacert --cert --key`, or
    /// `--insecure-transport=false`, turns TLS on (then endpoints other
    /// than `http://` ones speak it); `--insecure-skip-tls-verify` only
    /// matters when it is on.
    pub fn tls(&self) -> Option<ferrocd_net::client::ClientTls> {
        let g = &self.g;
        let any = g.cacert.is_some() || g.cert.is_some() || g.key.is_some();
        if !any && g.insecure_transport {
            return None;
        }
        Some(ferrocd_net::client::ClientTls {
            ca: g.cacert.as_ref().map(Into::into),
            cert: g.cert.as_ref().map(Into::into),
            key: g.key.as_ref().map(Into::into),
            server_name: None,
            insecure_skip_verify: g.insecure_skip_tls_verify,
            ..Default::default()
        })
    }

    /// The `--protocol` flag.
    pub fn protocol(&self) -> Protocol {
        match self.g.protocol.as_str() {
            "fast" => Protocol::Fast,
            "grpc" => Protocol::Grpc,
            _ => Protocol::Auto,
        }
    }

    /// A client of `endpoints`: `auto` is the client's own, which tries
    /// the fast handshake and falls back to gRPC at once on an etcd (its
    /// port multiplexer closes the connection on the preamble's CRLF).
    pub async fn client_for(&self, endpoints: &[String]) -> R<Client> {
        // Without TLS flags etcdctl dials even `https://` endpoints in
        // plaintext (and fails against a TLS port), so does ferroctl.
        let endpoints: Vec<String> = if self.tls().is_none() {
            endpoints
                .iter()
                .map(|e| e.strip_prefix("https://").unwrap_or(e).to_string())
                .collect()
        } else {
            endpoints.to_vec()
        };
        Client::connect(&endpoints, Some(self.options()?))
            .await
            .map_err(|e| self.connect_fail(e))
    }

    /// etcdctl's report of a failed connect.
    pub fn connect_fail(&self, e: ferrocd_net::client::Error) -> Fail {
        use ferrocd_net::client::Error as E;
        match e {
            // etcdctl's gRPC dial only ever says this; the reason goes
            // first, as a log line.
            E::Connect(m) if self.protocol() != Protocol::Fast => {
                eprintln!(
                    "{{\"level\":\"warn\",\"logger\":\"ferroctl\",\"msg\":\"dial failed\",\"error\":{}}}",
                    print::json_str(&m)
                );
                Fail::err("context deadline exceeded")
            }
            E::Connect(m) => Fail::err(m),
            E::Timeout => Fail::err("context deadline exceeded"),
            E::InvalidArgs(m) => Fail::args(m),
            other => Fail::new(EXIT_BAD_CONNECTION, other.message()),
        }
    }

    /// Require one of `ok` formats.
    pub fn only(&self, ok: &[Format]) -> R<Format> {
        if ok.contains(&self.fmt) {
            Ok(self.fmt)
        } else {
            Err(self.fmt.unsupported())
        }
    }
}

/// Prompt on stderr, read one line from stdin.
pub fn read_password(prompt: &str) -> R<String> {
    eprint!("{prompt}");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| Fail::io(e.to_string()))?;
    eprintln!();
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Write to stdout (a closed pipe is not an error worth a panic).
pub fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

async fn run(cli: Cli) -> R {
    let Cli { global, cmd } = cli;
    if let Cmd::Version = cmd {
        out(&format!(
            "ferroctl version: {}\nAPI version: 3.5\n",
            env!("CARGO_PKG_VERSION")
        ));
        return Ok(());
    }
    if let Cmd::Wal(c) = cmd {
        return wal::run(c);
    }
    let fmt = Format::parse(&global.write_out)?;
    let ctx = Ctx { g: global, fmt };
    match cmd {
        Cmd::Get(a) => kv::get(&ctx, a).await,
        Cmd::Put(a) => kv::put(&ctx, a).await,
        Cmd::Del(a) => kv::del(&ctx, a).await,
        Cmd::Txn(a) => txn::run(&ctx, a).await,
        Cmd::Compaction(a) => kv::compaction(&ctx, a).await,
        Cmd::Watch(a) => watch::run(&ctx, a).await,
        Cmd::Lease(c) => lease::run(&ctx, c).await,
        Cmd::Member(c) => member::run(&ctx, c).await,
        Cmd::Endpoint(c) => endpoint::run(&ctx, c).await,
        Cmd::MoveLeader(a) => maint::move_leader(&ctx, a).await,
        Cmd::Alarm(c) => maint::alarm(&ctx, c).await,
        Cmd::Defrag(a) => maint::defrag(&ctx, a).await,
        Cmd::Snapshot(c) => maint::snapshot(&ctx, c).await,
        Cmd::Downgrade(c) => maint::downgrade(&ctx, c).await,
        Cmd::MakeMirror(a) => mirror::make_mirror(&ctx, a).await,
        Cmd::Check(c) => check::run(&ctx, c).await,
        Cmd::Lock(a) => conc::lock(&ctx, a).await,
        Cmd::Elect(a) => conc::elect(&ctx, a).await,
        Cmd::Auth(c) => auth::auth(&ctx, c).await,
        Cmd::User(c) => auth::user(&ctx, c).await,
        Cmd::Role(c) => auth::role(&ctx, c).await,
        Cmd::Version | Cmd::Wal(_) => Ok(()),
    }
}

/// Every `--endpoints` value when the flag is given more than once: like
/// etcdctl's string-slice flag they add up (clap keeps the last one of a
/// global flag given before and after the command).
fn repeated_endpoints(args: impl Iterator<Item = String>) -> Option<Vec<String>> {
    let mut found = Vec::new();
    let mut n = 0;
    let mut args = args;
    while let Some(a) = args.next() {
        if a == "--" {
            break;
        }
        let v = if a == "--endpoints" {
            args.next()
        } else {
            a.strip_prefix("--endpoints=").map(str::to_string)
        };
        if let Some(v) = v {
            n += 1;
            found.extend(v.split(',').map(str::to_string));
        }
    }
    (n > 1).then_some(found)
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(mut c) => {
            if let Some(eps) = repeated_endpoints(std::env::args().skip(1)) {
                c.global.endpoints = eps;
            }
            c
        }
        Err(e) => {
            let code = if e.use_stderr() { EXIT_ERROR } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(EXIT_ERROR);
        }
    };
    let r = rt.block_on(run(cli));
    let _ = std::io::stdout().flush();
    let code = match r {
        Ok(()) => 0,
        Err(f) => {
            if !f.msg.is_empty() {
                eprintln!("Error: {}", f.msg);
            }
            f.code
        }
    };
    rt.shutdown_timeout(Duration::from_millis(100));
    std::process::exit(code);
}
