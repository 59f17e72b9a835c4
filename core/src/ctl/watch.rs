//! `watch`: one key, a range or a prefix from a revision on; `-i` reads
//! `watch …` lines from stdin; `watch key -- cmd args` runs a command for
//! every event with `ETCD_WATCH_*` in its environment.

use std::fmt::Write as _;
use std::io::BufRead;

use clap::{Args, Parser};
use ferrocd_net::client::{WatchOptions, WatchStream, Watcher};
use ferrocd_net::pb::etcdserverpb as pb;
use ferrocd_net::pb::mvccpb;

use crate::error::{EXIT_INTERRUPTED, EXIT_INVALID_INPUT, Fail, R};
use crate::print::{self, Format, Obj};
use crate::{Ctx, out};

/// `watch`.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Interactive mode
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Watch on a prefix if prefix is set
    #[arg(long)]
    pub prefix: bool,
    /// Revision to start watching
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub rev: i64,
    /// get the previous key-value pair before the event happens
    #[arg(long = "prev-kv")]
    pub prev_kv: bool,
    /// get periodic watch progress notification from server
    #[arg(long = "progress-notify")]
    pub progress_notify: bool,
    /// <key or prefix> [range_end]
    pub args: Vec<String>,
    /// [--] <exec-command arg1 arg2 ...>
    #[arg(last = true)]
    pub exec: Vec<String>,
}

#[derive(Debug, Parser)]
#[command(no_binary_name = true, name = "watch")]
struct Line {
    #[command(flatten)]
    a: WatchArgs,
}

fn options(a: &WatchArgs) -> R<(Vec<u8>, WatchOptions)> {
    if a.args.is_empty() {
        return Err(Fail::args("bad number of arguments"));
    }
    let key = a.args[0].as_bytes().to_vec();
    let mut o = WatchOptions::new();
    if a.prefix {
        if key.is_empty() {
            return Ok((vec![0], o.with_from_key().with_prev_key_if(a.prev_kv)));
        }
        o = o.with_prefix();
    } else if let Some(end) = a.args.get(1) {
        // Like etcdctl, arguments past the range end are ignored.
        o = o.with_range(end.as_bytes().to_vec());
    }
    if a.rev != 0 {
        o = o.with_start_revision(a.rev);
    }
    if a.progress_notify {
        o = o.with_progress_notify();
    }
    Ok((key, o.with_prev_key_if(a.prev_kv)))
}

trait PrevKv {
    fn with_prev_key_if(self, yes: bool) -> Self;
}

impl PrevKv for WatchOptions {
    fn with_prev_key_if(self, yes: bool) -> Self {
        if yes { self.with_prev_key() } else { self }
    }
}

/// `watch`.
pub async fn run(ctx: &Ctx, a: WatchArgs) -> R {
    if a.interactive {
        return interactive(ctx).await;
    }
    let (key, opts) = options(&a)?;
    let c = ctx.client().await?;
    // Like etcdctl, outlive lost connections: watch again from the
    // revision after the last one seen, so nothing is missed or repeated.
    let mut next_rev = a.rev;
    loop {
        let o = if next_rev > 0 {
            opts.clone().with_start_revision(next_rev)
        } else {
            opts.clone()
        };
        let (_watcher, mut stream) = match c.watch(key.clone(), Some(o)).await {
            Ok(w) => w,
            Err(e) if transient(&e) => {
                tokio::time::sleep(RETRY).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        loop {
            match stream.message().await {
                Ok(Some(r)) => {
                    if let Some(kv) = r.events.last().and_then(|e| e.kv.as_ref()) {
                        next_rev = kv.mod_revision + 1;
                    } else if next_rev == 0
                        && r.created
                        && let Some(h) = &r.header
                    {
                        next_rev = h.revision + 1;
                    }
                    if handle(ctx, &r, &a.exec)? {
                        return Err(canceled());
                    }
                }
                Ok(None) => break,
                Err(e) if transient(&e) => break,
                Err(e) => return Err(Fail::err(e.message())),
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Pause between attempts to re-establish a watch.
const RETRY: std::time::Duration = std::time::Duration::from_millis(300);

fn canceled() -> Fail {
    Fail::new(EXIT_INTERRUPTED, "watch is canceled by the server")
}

/// A failure a new connection may mend.
fn transient(e: &ferrocd_net::client::Error) -> bool {
    matches!(e, ferrocd_net::client::Error::Connect(_))
        || matches!(e.code(), tonic::Code::Unavailable | tonic::Code::Unknown)
}

/// Print one response; `true` when it ends the watch.
fn handle(ctx: &Ctx, r: &pb::WatchResponse, exec: &[String]) -> R<bool> {
    let ends = r.canceled || r.compact_revision != 0;
    if r.events.is_empty() && !ends {
        // Created confirmations and progress notifications.
        return Ok(false);
    }
    if ctx.fmt == Format::Table {
        // etcdctl finds out at the first event.
        return Err(ctx.fmt.unsupported());
    }
    if ends {
        let why = if r.compact_revision != 0 {
            "etcdserver: mvcc: required revision has been compacted".to_string()
        } else if !r.cancel_reason.is_empty() {
            r.cancel_reason.clone()
        } else {
            "etcdserver: watch canceled".to_string()
        };
        eprintln!("watch was canceled ({why})");
    }
    out(&response_out(ctx, r));
    if !exec.is_empty() {
        run_exec(r, exec)?;
    }
    Ok(ends)
}

fn kind(e: &mvccpb::Event) -> &'static str {
    if e.r#type == mvccpb::event::EventType::Delete as i32 {
        "DELETE"
    } else {
        "PUT"
    }
}

fn response_out(ctx: &Ctx, r: &pb::WatchResponse) -> String {
    let hex = ctx.g.hex;
    match ctx.fmt {
        Format::Json => {
            let events = print::array(
                r.events
                    .iter()
                    .map(|e| {
                        Obj::new()
                            .num_oe("type", e.r#type.into())
                            .raw_opt("kv", e.kv.as_ref().map(print::kv_json))
                            .raw_opt("prev_kv", e.prev_kv.as_ref().map(print::kv_json))
                            .end()
                    })
                    .collect(),
            );
            Obj::new()
                .raw(
                    "Header",
                    &print::header_fields(Obj::new(), r.header.as_ref()).end(),
                )
                .raw("Events", &events)
                .num("CompactRevision", r.compact_revision)
                .bool("Canceled", r.canceled)
                .bool("Created", r.created)
                .end()
                + "\n"
        }
        Format::Fields => {
            let mut s = String::new();
            print::header_lines(&mut s, r.header.as_ref());
            for e in &r.events {
                let _ = writeln!(s, "\"Type\" : {}", kind(e));
                if let Some(p) = &e.prev_kv {
                    print::kv_lines(&mut s, p, "Prev");
                }
                if let Some(kv) = &e.kv {
                    print::kv_lines(&mut s, kv, "");
                }
            }
            s
        }
        _ => {
            let mut s = String::new();
            for e in &r.events {
                s.push_str(kind(e));
                s.push('\n');
                for kv in [&e.prev_kv, &e.kv].into_iter().flatten() {
                    let _ = writeln!(
                        s,
                        "{}\n{}",
                        print::raw(&kv.key, hex),
                        print::raw(&kv.value, hex)
                    );
                }
            }
            s
        }
    }
}

fn run_exec(r: &pb::WatchResponse, exec: &[String]) -> R {
    let rev = r.header.as_ref().map(|h| h.revision).unwrap_or_default();
    for e in &r.events {
        let kv = e.kv.clone().unwrap_or_default();
        let status = std::process::Command::new(&exec[0])
            .args(&exec[1..])
            .env("ETCD_WATCH_REVISION", rev.to_string())
            .env("ETCD_WATCH_EVENT_TYPE", print::goq(kind(e).as_bytes()))
            .env("ETCD_WATCH_KEY", print::goq(&kv.key))
            .env("ETCD_WATCH_VALUE", print::goq(&kv.value))
            .status();
        if let Err(err) = status {
            eprintln!("command {:?} error ({err})", exec.join(" "));
        }
    }
    Ok(())
}

/// `watch -i`: `watch …` lines from stdin, all on one stream.
async fn interactive(ctx: &Ctx) -> R {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            match line {
                Ok(l) => {
                    if tx.send(Some(l)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(None);
    });
    let c = ctx.client().await?;
    let mut watch: Option<(Watcher, WatchStream)> = None;
    let mut exec: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            line = rx.recv() => {
                let Some(Some(line)) = line else {
                    return Err(Fail::new(
                        EXIT_INVALID_INPUT,
                        "error reading watch request line: EOF",
                    ));
                };
                let words: Vec<&str> = line.split_whitespace().collect();
                if words.first() != Some(&"watch") {
                    eprintln!("Invalid command {line} (only support watch)");
                    continue;
                }
                let parsed = Line::try_parse_from(&words[1..])
                    .map_err(|e| e.to_string())
                    .and_then(|l| options(&l.a).map(|o| (o, l.a.exec)).map_err(|_| {
                        "command type or key is not provided".to_string()
                    }));
                let ((key, opts), cmd) = match parsed {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("Invalid command {line} ({e})");
                        continue;
                    }
                };
                exec = cmd;
                match &mut watch {
                    Some((w, _)) => w.watch(key, Some(opts)).await?,
                    None => watch = Some(c.watch(key, Some(opts)).await?),
                }
            }
            r = async {
                match &mut watch {
                    Some((_, s)) => s.message().await,
                    None => std::future::pending().await,
                }
            } => {
                match r {
                    Ok(Some(r)) => {
                        if handle(ctx, &r, &exec)? {
                            return Err(Fail::new(EXIT_INTERRUPTED, "watch is canceled by the server"));
                        }
                    }
                    Ok(None) => return Err(Fail::new(EXIT_INTERRUPTED, "watch is canceled by the server")),
                    Err(e) => return Err(Fail::err(e.message())),
                }
            }
        }
    }
}
