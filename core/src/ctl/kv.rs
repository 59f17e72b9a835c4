//! `get`, `put`, `del` and `compaction`, and the printers of Range, Put
//! and DeleteRange responses (shared with `txn`).

use std::fmt::Write as _;
use std::io::Read as _;

use clap::Args;
use ferrocd_net::client::{DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget};
use ferrocd_net::pb::etcdserverpb as pb;

use crate::error::{Fail, R};
use crate::print::{self, Format, Obj};
use crate::{Ctx, out};

/// `get`.
#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// Linearizable(l) or Serializable(s)
    #[arg(long, default_value = "l")]
    pub consistency: String,
    /// Order of results; ASCEND or DESCEND (ASCEND by default)
    #[arg(long, default_value = "")]
    pub order: String,
    /// Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION
    #[arg(long = "sort-by", default_value = "")]
    pub sort_by: String,
    /// Maximum number of results
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub limit: i64,
    /// Get keys with matching prefix
    #[arg(long)]
    pub prefix: bool,
    /// Get keys that are greater than or equal to the given key using byte compare
    #[arg(long = "from-key")]
    pub from_key: bool,
    /// Specify the kv revision
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub rev: i64,
    /// Get only the keys
    #[arg(long = "keys-only")]
    pub keys_only: bool,
    /// Get only the count
    #[arg(long = "count-only")]
    pub count_only: bool,
    /// Only write values when using the "simple" output format
    #[arg(long = "print-value-only")]
    pub print_value_only: bool,
    /// <key> [range_end]
    pub args: Vec<String>,
}

/// `put`.
#[derive(Debug, Clone, Args)]
pub struct PutArgs {
    /// lease ID (in hexadecimal) to attach to the key
    #[arg(long, default_value = "0")]
    pub lease: String,
    /// return the previous key-value pair before modification
    #[arg(long = "prev-kv")]
    pub prev_kv: bool,
    /// updates the key using its current value
    #[arg(long = "ignore-value")]
    pub ignore_value: bool,
    /// updates the key using its current lease
    #[arg(long = "ignore-lease")]
    pub ignore_lease: bool,
    /// <key> [value]
    pub args: Vec<String>,
}

/// `del`.
#[derive(Debug, Clone, Args)]
pub struct DelArgs {
    /// delete keys with matching prefix
    #[arg(long)]
    pub prefix: bool,
    /// return deleted key-value pairs
    #[arg(long = "prev-kv")]
    pub prev_kv: bool,
    /// delete keys that are greater than or equal to the given key using byte compare
    #[arg(long = "from-key")]
    pub from_key: bool,
    /// <key> [range_end]
    pub args: Vec<String>,
}

/// `compaction`.
#[derive(Debug, Clone, Args)]
pub struct CompactArgs {
    /// Wait for the compaction to physically remove all old revisions
    #[arg(long)]
    pub physical: bool,
    /// <revision>
    pub args: Vec<String>,
}

/// The key and range end of a command line (clientv3's `WithPrefix` /
/// `WithFromKey` rules: an empty key means every key).
fn key_range(
    args: &[String],
    prefix: bool,
    from_key: bool,
    usage: &str,
    extra_ok: bool,
) -> R<(Vec<u8>, Vec<u8>)> {
    // etcdctl's get ignores arguments past the range end; del refuses them.
    if args.is_empty() || (args.len() > 2 && !extra_ok) {
        return Err(Fail::args(usage));
    }
    if prefix && from_key {
        return Err(Fail::args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    if (prefix || from_key) && args.len() > 1 {
        return Err(Fail::args(
            "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
        ));
    }
    let key = args[0].as_bytes().to_vec();
    Ok(if prefix {
        if key.is_empty() {
            (vec![0], vec![0])
        } else {
            let end = print::prefix_end(&key);
            (key, end)
        }
    } else if from_key {
        if key.is_empty() {
            (vec![0], vec![0])
        } else {
            (key, vec![0])
        }
    } else {
        let end = args
            .get(1)
            .map(|e| e.as_bytes().to_vec())
            .unwrap_or_default();
        (key, end)
    })
}

/// Parse a lease id in hex, etcdctl's message on failure.
pub fn parse_lease(s: &str, what: &str) -> R<i64> {
    i64::from_str_radix(s, 16).map_err(|_| {
        Fail::args(format!(
            "{what} (strconv.ParseInt: parsing {}: invalid syntax), expecting ID in Hex",
            print::goq(s.as_bytes())
        ))
    })
}

/// The options of a `get` command line.
pub fn get_options(a: &GetArgs) -> R<(Vec<u8>, GetOptions)> {
    let (key, end) = key_range(
        &a.args,
        a.prefix,
        a.from_key,
        "get command needs one argument as key and an optional argument as range_end",
        true,
    )?;
    let mut o = GetOptions::new();
    if !end.is_empty() {
        o = o.with_range(end);
    }
    match a.consistency.as_str() {
        "l" => {}
        "s" => o = o.with_serializable(),
        c => {
            return Err(Fail::feature(format!(
                "unknown consistency flag {}",
                print::goq(c.as_bytes())
            )));
        }
    }
    let order = match a.order.to_uppercase().as_str() {
        "ASCEND" => SortOrder::Ascend,
        "DESCEND" => SortOrder::Descend,
        "" => SortOrder::None,
        _ => return Err(Fail::feature(format!("bad sort order {}", a.order))),
    };
    let target = match a.sort_by.to_uppercase().as_str() {
        "CREATE" => SortTarget::Create,
        "KEY" | "" => SortTarget::Key,
        "MODIFY" => SortTarget::Mod,
        "VALUE" => SortTarget::Value,
        "VERSION" => SortTarget::Version,
        _ => return Err(Fail::feature(format!("bad sort target {}", a.sort_by))),
    };
    // clientv3: ascending by key is the natural order, sent as none.
    let order = if target == SortTarget::Key && order == SortOrder::Ascend {
        SortOrder::None
    } else {
        order
    };
    o = o.with_sort(target, order);
    if a.limit != 0 {
        o = o.with_limit(a.limit);
    }
    if a.rev != 0 {
        o = o.with_revision(a.rev);
    }
    if a.keys_only {
        o = o.with_keys_only();
    }
    if a.count_only {
        o = o.with_count_only();
    }
    Ok((key, o))
}

/// `get`.
pub async fn get(ctx: &Ctx, a: GetArgs) -> R {
    let (key, opts) = get_options(&a)?;
    if a.count_only && ctx.fmt != Format::Fields {
        return Err(Fail::args("--count-only is only for `--write-out=fields`"));
    }
    let c = ctx.client().await?;
    let resp = c.get(key, Some(opts)).await?;
    out(&range_out(ctx, &resp, a.print_value_only)?);
    Ok(())
}

/// A Range response in the context's format.
pub fn range_out(ctx: &Ctx, r: &pb::RangeResponse, value_only: bool) -> R<String> {
    Ok(match ctx.fmt {
        Format::Simple => range_simple(r, ctx.g.hex, value_only),
        Format::Json => range_json(r),
        Format::Fields => range_fields(r),
        Format::Table => return Err(ctx.fmt.unsupported()),
    })
}

/// Simple: key and value lines.
pub fn range_simple(r: &pb::RangeResponse, hex: bool, value_only: bool) -> String {
    let mut s = String::new();
    for kv in &r.kvs {
        if !value_only {
            s.push_str(&print::raw(&kv.key, hex));
            s.push('\n');
        }
        s.push_str(&print::raw(&kv.value, hex));
        s.push('\n');
    }
    s
}

/// JSON object of a Range response (no newline).
pub fn range_obj(r: &pb::RangeResponse) -> String {
    Obj::new()
        .raw_opt("header", print::header_json(r.header.as_ref()))
        .arr_oe("kvs", r.kvs.iter().map(print::kv_json).collect())
        .bool_oe("more", r.more)
        .num_oe("count", r.count.into())
        .end()
}

fn range_json(r: &pb::RangeResponse) -> String {
    range_obj(r) + "\n"
}

/// Fields lines of a Range response.
pub fn range_fields(r: &pb::RangeResponse) -> String {
    let mut s = String::new();
    print::header_lines(&mut s, r.header.as_ref());
    for kv in &r.kvs {
        print::kv_lines(&mut s, kv, "");
    }
    let _ = writeln!(s, "\"More\" : {}", r.more);
    let _ = writeln!(s, "\"Count\" : {}", r.count);
    s
}

/// `put`.
pub async fn put(ctx: &Ctx, a: PutArgs) -> R {
    let (key, value, opts) = put_request(&a, true)?;
    let c = ctx.client().await?;
    let resp = c.put(key, value, Some(opts)).await?;
    out(&put_out(ctx, &resp)?);
    Ok(())
}

/// Key, value and options of a `put` command line; `stdin`: read a
/// missing value from standard input.
pub fn put_request(a: &PutArgs, stdin: bool) -> R<(Vec<u8>, Vec<u8>, PutOptions)> {
    const USAGE: &str = "put command needs 1 argument and input from stdin or 2 arguments";
    if a.args.is_empty() {
        return Err(Fail::args(USAGE));
    }
    let key = a.args[0].as_bytes().to_vec();
    if a.ignore_value && a.args.len() > 1 {
        return Err(Fail::args(
            "put command needs only 1 argument when 'ignore-value' is set",
        ));
    }
    let value = match a.args.len() {
        1 if a.ignore_value => Vec::new(),
        1 if stdin => {
            let mut v = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut v);
            if v.is_empty() {
                return Err(Fail::args(USAGE));
            }
            v
        }
        2 => a.args[1].as_bytes().to_vec(),
        _ => return Err(Fail::args(USAGE)),
    };
    let lease = parse_lease(&a.lease, "bad lease ID")?;
    let mut o = PutOptions::new();
    if lease != 0 {
        o = o.with_lease(lease);
    }
    if a.prev_kv {
        o = o.with_prev_key();
    }
    if a.ignore_value {
        o = o.with_ignore_value();
    }
    if a.ignore_lease {
        o = o.with_ignore_lease();
    }
    Ok((key, value, o))
}

/// A Put response in the context's format.
pub fn put_out(ctx: &Ctx, r: &pb::PutResponse) -> R<String> {
    Ok(match ctx.fmt {
        Format::Simple => put_simple(r, ctx.g.hex),
        Format::Json => put_obj(r) + "\n",
        Format::Fields => put_fields(r),
        Format::Table => return Err(ctx.fmt.unsupported()),
    })
}

/// Simple: `OK` and the previous key-value.
pub fn put_simple(r: &pb::PutResponse, hex: bool) -> String {
    let mut s = String::from("OK\n");
    if let Some(kv) = &r.prev_kv {
        let _ = writeln!(
            s,
            "{}\n{}",
            print::raw(&kv.key, hex),
            print::raw(&kv.value, hex)
        );
    }
    s
}

/// JSON object of a Put response.
pub fn put_obj(r: &pb::PutResponse) -> String {
    Obj::new()
        .raw_opt("header", print::header_json(r.header.as_ref()))
        .raw_opt("prev_kv", r.prev_kv.as_ref().map(print::kv_json))
        .end()
}

/// Fields lines of a Put response.
pub fn put_fields(r: &pb::PutResponse) -> String {
    let mut s = String::new();
    print::header_lines(&mut s, r.header.as_ref());
    if let Some(kv) = &r.prev_kv {
        print::kv_lines(&mut s, kv, "Prev");
    }
    s
}

/// The key and options of a `del` command line.
pub fn del_options(a: &DelArgs) -> R<(Vec<u8>, DeleteOptions)> {
    let (key, end) = key_range(
        &a.args,
        a.prefix,
        a.from_key,
        "del command needs one argument as key and an optional argument as range_end",
        false,
    )?;
    let mut o = DeleteOptions::new();
    if !end.is_empty() {
        o = o.with_range(end);
    }
    if a.prev_kv {
        o = o.with_prev_key();
    }
    Ok((key, o))
}

/// `del`.
pub async fn del(ctx: &Ctx, a: DelArgs) -> R {
    let (key, opts) = del_options(&a)?;
    let c = ctx.client().await?;
    let resp = c.delete(key, Some(opts)).await?;
    out(&del_out(ctx, &resp)?);
    Ok(())
}

/// A DeleteRange response in the context's format.
pub fn del_out(ctx: &Ctx, r: &pb::DeleteRangeResponse) -> R<String> {
    Ok(match ctx.fmt {
        Format::Simple => del_simple(r, ctx.g.hex),
        Format::Json => del_obj(r) + "\n",
        Format::Fields => del_fields(r),
        Format::Table => return Err(ctx.fmt.unsupported()),
    })
}

/// Simple: the count, then the deleted key-values.
pub fn del_simple(r: &pb::DeleteRangeResponse, hex: bool) -> String {
    let mut s = format!("{}\n", r.deleted);
    for kv in &r.prev_kvs {
        let _ = writeln!(
            s,
            "{}\n{}",
            print::raw(&kv.key, hex),
            print::raw(&kv.value, hex)
        );
    }
    s
}

/// JSON object of a DeleteRange response.
pub fn del_obj(r: &pb::DeleteRangeResponse) -> String {
    Obj::new()
        .raw_opt("header", print::header_json(r.header.as_ref()))
        .num_oe("deleted", r.deleted.into())
        .arr_oe("prev_kvs", r.prev_kvs.iter().map(print::kv_json).collect())
        .end()
}

/// Fields lines of a DeleteRange response.
pub fn del_fields(r: &pb::DeleteRangeResponse) -> String {
    let mut s = String::new();
    print::header_lines(&mut s, r.header.as_ref());
    let _ = writeln!(s, "\"Deleted\" : {}", r.deleted);
    for kv in &r.prev_kvs {
        print::kv_lines(&mut s, kv, "Prev");
    }
    s
}

/// `compaction`.
pub async fn compaction(ctx: &Ctx, a: CompactArgs) -> R {
    if a.args.len() != 1 {
        return Err(Fail::args("compaction command needs 1 argument"));
    }
    let rev: i64 = a.args[0].parse().map_err(|_| {
        Fail::err(format!(
            "strconv.ParseInt: parsing {}: invalid syntax",
            print::goq(a.args[0].as_bytes())
        ))
    })?;
    let c = ctx.client().await?;
    c.compact(rev, a.physical).await?;
    out(&format!("compacted revision {rev}\n"));
    Ok(())
}
