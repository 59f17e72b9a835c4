//! `txn`: etcdctl's transaction language read from stdin (`-i` adds the
//! prompts): compares, success requests and failure requests, each section
//! ended by a blank line; and the printers of Txn responses.

use std::fmt::Write as _;
use std::io::BufRead;

use clap::{Args, Parser};
use ferrocd_net::client::{Compare, CompareOp, Txn, TxnOp};
use ferrocd_net::pb::etcdserverpb as pb;
use ferrocd_net::pb::etcdserverpb::response_op::Response;

use crate::error::{Fail, R};
use crate::kv::{self, DelArgs, GetArgs, PutArgs};
use crate::print::{self, Format, Obj};
use crate::{Ctx, out};

/// `txn`.
#[derive(Debug, Clone, Args)]
pub struct TxnArgs {
    /// Input transaction in interactive mode
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// (none: the transaction comes from stdin)
    pub args: Vec<String>,
}

#[derive(Debug, Parser)]
#[command(no_binary_name = true, name = "get")]
struct TxnGet {
    #[command(flatten)]
    a: GetArgs,
}

#[derive(Debug, Parser)]
#[command(no_binary_name = true, name = "put")]
struct TxnPut {
    #[command(flatten)]
    a: PutArgs,
}

#[derive(Debug, Parser)]
#[command(no_binary_name = true, name = "del")]
struct TxnDel {
    #[command(flatten)]
    a: DelArgs,
}

/// `txn`.
pub async fn run(ctx: &Ctx, a: TxnArgs) -> R {
    if !a.args.is_empty() {
        return Err(Fail::args("txn command does not accept argument"));
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock();
    let req = read_txn(&mut lines, a.interactive)?;
    let c = ctx.client().await?;
    let resp = c.txn(Txn::from(req)).await?;
    out(&txn_out(ctx, &resp)?);
    Ok(())
}

/// Parse a whole transaction from `input`.
pub fn read_txn(input: &mut impl BufRead, interactive: bool) -> R<pb::TxnRequest> {
    let mut req = pb::TxnRequest::default();
    if interactive {
        out("compares:\n");
    }
    for line in read_section(input)? {
        req.compare.push(parse_compare(&line)?);
    }
    if interactive {
        out("success requests (get, put, del):\n");
    }
    for line in read_section(input)? {
        req.success.push(parse_op(&line)?);
    }
    if interactive {
        out("failure requests (get, put, del):\n");
    }
    for line in read_section(input)? {
        req.failure.push(parse_op(&line)?);
    }
    Ok(req)
}

/// Lines up to a blank one; input that ends first is an error (`EOF`).
fn read_section(input: &mut impl BufRead) -> R<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut l = String::new();
        let n = input
            .read_line(&mut l)
            .map_err(|e| Fail::input(e.to_string()))?;
        if n == 0 || !l.ends_with('\n') {
            return Err(Fail::input("EOF"));
        }
        let l = l.trim_end_matches(['\n', '\r']);
        if l.is_empty() {
            return Ok(lines);
        }
        lines.push(l.to_string());
    }
}

/// Read a Go double-quoted string at the start of `s`: the value and the
/// rest.
fn go_unquote(s: &str) -> Option<(Vec<u8>, &str)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'"') {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Some((out, &s[i + 1..])),
            b'\\' => {
                let c = *b.get(i + 1)?;
                i += 2;
                match c {
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'a' => out.push(7),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'v' => out.push(11),
                    b'\\' => out.push(b'\\'),
                    b'"' => out.push(b'"'),
                    b'\'' => out.push(b'\''),
                    b'x' => {
                        let h = s.get(i..i + 2)?;
                        out.push(u8::from_str_radix(h, 16).ok()?);
                        i += 2;
                    }
                    b'0'..=b'7' => {
                        let o = s.get(i - 1..i + 2)?;
                        out.push(u8::from_str_radix(o, 8).ok()?);
                        i += 2;
                    }
                    b'u' | b'U' => {
                        let n = if c == b'u' { 4 } else { 8 };
                        let h = s.get(i..i + n)?;
                        let ch = char::from_u32(u32::from_str_radix(h, 16).ok()?)?;
                        let mut buf = [0; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        i += n;
                    }
                    _ => return None,
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    None
}

/// One compare line: `<target>("<key>") <op> "<value>"`.
fn parse_compare(line: &str) -> R<pb::Compare> {
    let Some((target, rest)) = line.split_once('(') else {
        return Err(Fail::input(format!("malformed comparison: {line}")));
    };
    let mut key = Vec::new();
    let mut op = String::new();
    let mut val = Vec::new();
    let mut ok = false;
    if let Some((k, rest)) = go_unquote(rest) {
        key = k;
        if let Some(rest) = rest.strip_prefix(')') {
            let rest = rest.trim_start();
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            op = rest[..end].to_string();
            let rest = rest[end..].trim_start();
            if let Some((v, _)) = go_unquote(rest) {
                val = v;
                ok = !op.is_empty();
            }
        }
    }
    if !ok {
        return Err(Fail::input(format!(
            "malformed comparison: {line}; got {target}({}) {op} {}",
            print::goq(&key),
            print::goq(&val)
        )));
    }
    let cop = match op.as_str() {
        "=" => CompareOp::Equal,
        "!=" => CompareOp::NotEqual,
        "<" => CompareOp::Less,
        ">" => CompareOp::Greater,
        _ => {
            return Err(Fail::input(format!(
                "malformed comparison: {line}; unknown result op {op}"
            )));
        }
    };
    let bad = || Fail::input(format!("invalid txn compare request: {line}"));
    let int = || -> R<i64> {
        std::str::from_utf8(&val)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(bad)
    };
    let c = match target {
        "ver" | "version" => Compare::version(key, cop, int()?),
        "c" | "create" => Compare::create_revision(key, cop, int()?),
        "m" | "mod" => Compare::mod_revision(key, cop, int()?),
        "val" | "value" => Compare::value(key, cop, val.clone()),
        "lease" => {
            let id = std::str::from_utf8(&val)
                .ok()
                .and_then(|v| i64::from_str_radix(v, 16).ok())
                .ok_or_else(bad)?;
            Compare::lease(key, cop, id)
        }
        _ => {
            return Err(Fail::input(format!(
                "malformed comparison: {line}; invalid target {target}"
            )));
        }
    };
    Ok(c.into())
}

/// Split a request line into words: blanks separate, `"…"` (Go escapes)
/// and `'…'` group.
fn argify(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        if rest.starts_with('"') {
            let (v, r) = go_unquote(rest)?;
            words.push(String::from_utf8_lossy(&v).into_owned());
            rest = r;
        } else if let Some(r) = rest.strip_prefix('\'') {
            let end = r.find('\'')?;
            words.push(r[..end].to_string());
            rest = &r[end + 1..];
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            words.push(rest[..end].to_string());
            rest = &rest[end..];
        }
        rest = rest.trim_start();
    }
    Some(words)
}

/// One request line: `get …`, `put …` or `del …` with their flags.
fn parse_op(line: &str) -> R<pb::RequestOp> {
    let invalid = || Fail::input(format!("invalid txn request: {line}"));
    // etcdctl's words for a request without a key.
    let refused = || Fail::input(format!("invalid txn compare request: {line}"));
    let words = argify(line).ok_or_else(invalid)?;
    let Some((cmd, args)) = words.split_first() else {
        return Err(invalid());
    };
    let op = match cmd.as_str() {
        "get" => {
            let a = TxnGet::try_parse_from(args).map_err(|_| invalid())?.a;
            if a.args.is_empty() {
                return Err(refused());
            }
            let (key, o) = kv::get_options(&a)?;
            TxnOp::get(key, Some(o))
        }
        "put" => {
            let a = TxnPut::try_parse_from(args).map_err(|_| invalid())?.a;
            if a.args.is_empty() {
                return Err(refused());
            }
            let (key, value, o) = kv::put_request(&a, false)?;
            TxnOp::put(key, value, Some(o))
        }
        "del" => {
            let a = TxnDel::try_parse_from(args).map_err(|_| invalid())?.a;
            if a.args.is_empty() {
                return Err(refused());
            }
            let (key, o) = kv::del_options(&a)?;
            TxnOp::delete(key, Some(o))
        }
        _ => return Err(invalid()),
    };
    Ok(op.into())
}

/// A Txn response in the context's format.
pub fn txn_out(ctx: &Ctx, r: &pb::TxnResponse) -> R<String> {
    Ok(match ctx.fmt {
        Format::Simple => txn_simple(r, ctx.g.hex),
        Format::Json => txn_obj(r) + "\n",
        Format::Fields => txn_fields(r),
        Format::Table => return Err(ctx.fmt.unsupported()),
    })
}

fn txn_simple(r: &pb::TxnResponse, hex: bool) -> String {
    let mut s = String::from(if r.succeeded {
        "SUCCESS\n"
    } else {
        "FAILURE\n"
    });
    for op in &r.responses {
        s.push('\n');
        match &op.response {
            Some(Response::ResponseRange(x)) => s.push_str(&kv::range_simple(x, hex, false)),
            Some(Response::ResponsePut(x)) => s.push_str(&kv::put_simple(x, hex)),
            Some(Response::ResponseDeleteRange(x)) => s.push_str(&kv::del_simple(x, hex)),
            Some(Response::ResponseTxn(x)) => s.push_str(&txn_simple(x, hex)),
            None => {}
        }
    }
    s
}

fn txn_obj(r: &pb::TxnResponse) -> String {
    let ops = r
        .responses
        .iter()
        .map(|op| {
            let inner = match &op.response {
                Some(Response::ResponseRange(x)) => {
                    Obj::new().raw("response_range", &kv::range_obj(x)).end()
                }
                Some(Response::ResponsePut(x)) => {
                    Obj::new().raw("response_put", &kv::put_obj(x)).end()
                }
                Some(Response::ResponseDeleteRange(x)) => Obj::new()
                    .raw("response_delete_range", &kv::del_obj(x))
                    .end(),
                Some(Response::ResponseTxn(x)) => Obj::new().raw("response_txn", &txn_obj(x)).end(),
                None => "null".to_string(),
            };
            Obj::new().raw("Response", &inner).end()
        })
        .collect();
    Obj::new()
        .raw_opt("header", print::header_json(r.header.as_ref()))
        .bool_oe("succeeded", r.succeeded)
        .arr_oe("responses", ops)
        .end()
}

fn txn_fields(r: &pb::TxnResponse) -> String {
    let mut s = String::new();
    print::header_lines(&mut s, r.header.as_ref());
    let _ = writeln!(s, "\"Succeeded\" : {}", r.succeeded);
    for op in &r.responses {
        match &op.response {
            Some(Response::ResponseRange(x)) => s.push_str(&kv::range_fields(x)),
            Some(Response::ResponsePut(x)) => s.push_str(&kv::put_fields(x)),
            Some(Response::ResponseDeleteRange(x)) => s.push_str(&kv::del_fields(x)),
            Some(Response::ResponseTxn(x)) => s.push_str(&txn_fields(x)),
            None => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_etcdctl_syntax() {
        let input = "value(\"t1\") = \"a\"\nmod(\"t1\") > \"0\"\n\nput t2 \"x y\"\nget t1 --prefix\n\ndel t3\n\n";
        let r = read_txn(&mut input.as_bytes(), false).expect("parses");
        assert_eq!(
            (r.compare.len(), r.success.len(), r.failure.len()),
            (2, 2, 1)
        );
        assert!(matches!(
            read_txn(&mut "bogus\n\n\n\n".as_bytes(), false),
            Err(Fail { code: 3, .. })
        ));
        let e = parse_compare("value(t1) = a").unwrap_err();
        assert_eq!(
            e.msg,
            "malformed comparison: value(t1) = a; got value(\"\")  \"\""
        );
        assert_eq!(
            argify("put a 'b c' \"d\\ne\"").unwrap(),
            ["put", "a", "b c", "d\ne"]
        );
    }
}
