//! The server's side of HPACK (RFC 7541).
//!
//! Decoding keeps the client's dynamic table; Huffman-coded strings are
//! decoded by `httlib-huffman` (table-driven). loona-hpack was tried
//! first: it builds its Huffman decoding tables (hash maps) anew for every
//! string, which made header decoding 20 % of the shards' CPU on gRPC puts.
//!
//! The encoder never adds to the dynamic table: every field is a static
//! table index or a literal without indexing. That costs a few bytes per
//! response and removes a class of bugs: our header blocks mean the same
//! whatever HEADER_TABLE_SIZE the client set and whatever order they reach
//! it in, so the encoder needs no state and no size updates.

/// `:status: 200`, static table index 8.
const STATUS_200: u8 = 8;
/// `content-type`, static table index 31.
const CONTENT_TYPE: usize = 31;

/// Appends an HPACK integer with an `n`-bit prefix whose upper bits are
/// `first` (RFC 7541 §5.1).
fn put_int(out: &mut Vec<u8>, first: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// Appends a string literal, not Huffman-coded.
fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_int(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// Appends `:status: <code>`.
pub fn status(out: &mut Vec<u8>, code: u16) {
    if code == 200 {
        out.push(0x80 | STATUS_200);
        return;
    }
    // Literal without indexing, name from static index 8 (`:status`).
    put_int(out, 0x00, 4, usize::from(STATUS_200));
    put_str(out, code.to_string().as_bytes());
}

/// Appends `content-type: <v>`.
pub fn content_type(out: &mut Vec<u8>, v: &[u8]) {
    put_int(out, 0x00, 4, CONTENT_TYPE);
    put_str(out, v);
}

/// Appends a field with a literal name (which must be lowercase).
pub fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    put_str(out, name);
    put_str(out, value);
}

/// The static table (RFC 7541 Appendix A), index 1 first.
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// A header block the decoder refused: a COMPRESSION_ERROR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadBlock(pub &'static str);

/// A dynamic table entry: name and value.
type Entry = (Box<[u8]>, Box<[u8]>);

/// The decoding side of one connection: the client's dynamic table.
#[derive(Debug)]
pub struct Decoder {
    /// Newest first.
    table: std::collections::VecDeque<Entry>,
    size: usize,
    max: usize,
    /// Our SETTINGS_HEADER_TABLE_SIZE: `max` may not exceed it.
    limit: usize,
    /// Scratch space for Huffman-decoded strings.
    name: Vec<u8>,
    value: Vec<u8>,
}

/// Reads an integer with an `n`-bit prefix at `b[*i]`.
fn int(b: &[u8], i: &mut usize, n: u32) -> Result<usize, BadBlock> {
    let mask = (1usize << n) - 1;
    let mut v = usize::from(*b.get(*i).ok_or(BadBlock("truncated integer"))?) & mask;
    *i += 1;
    if v < mask {
        return Ok(v);
    }
    let mut shift = 0;
    loop {
        let byte = *b.get(*i).ok_or(BadBlock("truncated integer"))?;
        *i += 1;
        if shift > 21 {
            return Err(BadBlock("integer too large"));
        }
        v += usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
}

/// Reads a string literal at `b[*i]` into `out` (cleared first), or
/// returns it as a slice of `b` when it is not Huffman-coded.
fn string<'a>(b: &'a [u8], i: &mut usize, out: &'a mut Vec<u8>) -> Result<&'a [u8], BadBlock> {
    let huffman = b.get(*i).ok_or(BadBlock("truncated string"))? & 0x80 != 0;
    let len = int(b, i, 7)?;
    let end = i.checked_add(len).filter(|&e| e <= b.len());
    let end = end.ok_or(BadBlock("string past the block"))?;
    let raw = &b[*i..end];
    *i = end;
    if !huffman {
        return Ok(raw);
    }
    out.clear();
    httlib_huffman::decode(raw, out, httlib_huffman::DecoderSpeed::FiveBits)
        .map_err(|_| BadBlock("bad Huffman code"))?;
    // The padding must be fewer than 8 bits, all ones (the start of EOS,
    // RFC 7541 §5.2); httlib-huffman lets zero bits through.
    let bits: usize = out
        .iter()
        .map(|&c| usize::from(httlib_huffman::encoder::table::ENCODE_TABLE[usize::from(c)].0))
        .sum();
    let pad = (raw.len() * 8)
        .checked_sub(bits)
        .filter(|&p| p < 8)
        .ok_or(BadBlock("bad Huffman padding"))?;
    if pad > 0 {
        let mask = (1u8 << pad) - 1;
        if raw[raw.len() - 1] & mask != mask {
            return Err(BadBlock("bad Huffman padding"));
        }
    }
    Ok(out)
}

impl Decoder {
    /// A decoder whose table may grow to `limit` bytes (our
    /// SETTINGS_HEADER_TABLE_SIZE; 4096 unless we say otherwise).
    pub fn new(limit: usize) -> Decoder {
        Decoder {
            table: std::collections::VecDeque::new(),
            size: 0,
            max: limit,
            limit,
            name: Vec::new(),
            value: Vec::new(),
        }
    }

    fn get(&self, index: usize) -> Result<(&[u8], &[u8]), BadBlock> {
        match index {
            0 => Err(BadBlock("index 0")),
            1..=61 => {
                let (n, v) = STATIC[index - 1];
                Ok((n.as_bytes(), v.as_bytes()))
            }
            _ => self
                .table
                .get(index - 62)
                .map(|(n, v)| (&n[..], &v[..]))
                .ok_or(BadBlock("index past the tables")),
        }
    }

    fn evict_to(&mut self, max: usize) {
        while self.size > max {
            let (n, v) = self.table.pop_back().expect("size counts entries");
            self.size -= n.len() + v.len() + 32;
        }
    }

    fn insert(&mut self, name: Box<[u8]>, value: Box<[u8]>) {
        let size = name.len() + value.len() + 32;
        if size > self.max {
            self.evict_to(0);
            return;
        }
        self.evict_to(self.max - size);
        self.size += size;
        self.table.push_front((name, value));
    }

    /// Decodes a whole header block, calling `f` with each field in order.
    pub fn decode(&mut self, b: &[u8], mut f: impl FnMut(&[u8], &[u8])) -> Result<(), BadBlock> {
        let mut i = 0;
        let mut fields = 0;
        while i < b.len() {
            let first = b[i];
            if first & 0x80 != 0 {
                let (n, v) = self.get(int(b, &mut i, 7)?)?;
                f(n, v);
            } else if first & 0x20 != 0 && first & 0x40 == 0 {
                // Dynamic table size update: only before the fields.
                let new = int(b, &mut i, 5)?;
                if fields > 0 || new > self.limit {
                    return Err(BadBlock("bad table size update"));
                }
                self.max = new;
                self.evict_to(new);
                continue;
            } else {
                let index_it = first & 0x40 != 0;
                let idx = int(b, &mut i, if index_it { 6 } else { 4 })?;
                let mut name_buf = std::mem::take(&mut self.name);
                let mut value_buf = std::mem::take(&mut self.value);
                let r = (|| {
                    let name: &[u8] = if idx == 0 {
                        string(b, &mut i, &mut name_buf)?
                    } else {
                        let (n, _) = self.get(idx)?;
                        name_buf.clear();
                        name_buf.extend_from_slice(n);
                        &name_buf
                    };
                    let value = string(b, &mut i, &mut value_buf)?;
                    f(name, value);
                    Ok::<_, BadBlock>(index_it.then(|| (Box::from(name), Box::from(value))))
                })();
                self.name = name_buf;
                self.value = value_buf;
                if let Some((n, v)) = r? {
                    self.insert(n, v);
                }
            }
            fields += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(block: &[u8]) -> Vec<(String, String)> {
        decode_with(&mut Decoder::new(4096), block).expect("decodes")
    }

    fn decode_with(d: &mut Decoder, block: &[u8]) -> Result<Vec<(String, String)>, BadBlock> {
        let mut out = Vec::new();
        d.decode(block, |n, v| {
            out.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        })?;
        Ok(out)
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_static_table_is_loona_hpacks() {
        let mut reference = loona_hpack::Decoder::new();
        for i in 1..=61u8 {
            let ours = decode(&[0x80 | i]);
            let theirs = reference.decode(&[0x80 | i]).expect("decodes");
            let theirs: Vec<(String, String)> = theirs
                .into_iter()
                .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
                .collect();
            assert_eq!(ours, theirs, "index {i}");
        }
    }

    /// RFC 7541 C.3: three requests without Huffman coding, sharing the
    /// dynamic table.
    #[test]
    fn rfc_7541_c3_requests_share_the_dynamic_table() {
        let mut d = Decoder::new(4096);
        let r1 = b"\x82\x86\x84\x41\x0fwww.example.com";
        assert_eq!(
            decode_with(&mut d, r1).unwrap(),
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com")
            ])
        );
        let r2 = b"\x82\x86\x84\xbe\x58\x08no-cache";
        assert_eq!(
            decode_with(&mut d, r2).unwrap(),
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache")
            ])
        );
        let r3 = b"\x82\x87\x85\xbf\x40\x0acustom-key\x0ccustom-value";
        assert_eq!(
            decode_with(&mut d, r3).unwrap(),
            pairs(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value")
            ])
        );
        assert_eq!(d.size, 164, "C.3.3's table size");
    }

    #[test]
    fn huffman_strings_decode() {
        for s in [
            "www.example.com",
            "no-cache",
            "application/grpc",
            "",
            "a",
            "\u{0}\u{ff}x",
        ] {
            let mut coded = Vec::new();
            httlib_huffman::encode(s.as_bytes(), &mut coded).expect("encodes");
            let mut block = vec![0x00];
            put_str(&mut block, b"k");
            put_int(&mut block, 0x80, 7, coded.len());
            block.extend_from_slice(&coded);
            assert_eq!(decode(&block), pairs(&[("k", s)]), "{s:?}");
        }
    }

    #[test]
    fn loona_hpacks_encoder_with_its_dynamic_table_decodes_here() {
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut enc = loona_hpack::Encoder::new();
        let mut dec = Decoder::new(4096);
        for round in 0..300 {
            let n = (next() % 8) as usize;
            let fields: Vec<(String, String)> = (0..n)
                .map(|_| {
                    let name = match next() % 4 {
                        0 => ":path".to_string(),
                        1 => "content-type".to_string(),
                        _ => format!("x-{}", next() % 50),
                    };
                    let value = "v".repeat((next() % 300) as usize) + &(next() % 7).to_string();
                    (name, value)
                })
                .collect();
            let block = enc.encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
            assert_eq!(
                decode_with(&mut dec, &block).unwrap(),
                fields,
                "round {round}"
            );
        }
    }

    #[test]
    fn malformed_blocks_are_refused_not_panics() {
        let bad: &[&[u8]] = &[
            b"\x80",                         // index 0
            b"\xff\x00",                     // index 127 + 0: past the tables
            b"\xbe",                         // 62: empty dynamic table
            b"\x41",                         // literal, value missing
            b"\x41\x05ab",                   // value longer than the block
            b"\x7f\xff\xff\xff\xff\xff\x01", // integer too large
            b"\x00\x81\xff",                 // Huffman: padding longer than 7 bits
            b"\x82\x3f\xe1\x1f",             // size update after a field
            b"\x3f\xe2\x1f",                 // size update above our limit
            b"\x00\x01k\x81\x00",            // Huffman with bad padding (zeros)
            b"\x00\x01k\x82\x07\xff",        // Huffman: a whole byte of padding
        ];
        for b in bad {
            assert!(
                Decoder::new(4096).decode(b, |_, _| {}).is_err(),
                "{b:x?} accepted"
            );
        }
        // Random bytes never panic.
        let mut x = 99u64;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (x >> 60) as usize;
            let bytes: Vec<u8> = (0..len).map(|k| (x >> (k % 8 * 8)) as u8).collect();
            let _ = Decoder::new(4096).decode(&bytes, |_, _| {});
        }
    }

    #[test]
    fn entries_are_evicted_oldest_first() {
        let mut d = Decoder::new(100);
        // Each entry: 1 + 30 + 32 = 63 bytes; the second evicts the first.
        let mut block = Vec::new();
        for name in [b"a", b"b"] {
            block.push(0x40);
            put_str(&mut block, name);
            put_str(&mut block, &[b'v'; 30]);
        }
        decode_with(&mut d, &block).unwrap();
        assert_eq!(d.table.len(), 1);
        assert_eq!(&d.table[0].0[..], b"b");
        assert_eq!(d.size, 63);
        assert!(decode_with(&mut d, b"\xbf").is_err(), "63 is gone");
    }

    #[test]
    fn what_we_encode_a_decoder_reads_back() {
        let mut b = Vec::new();
        status(&mut b, 200);
        status(&mut b, 404);
        content_type(&mut b, b"application/grpc");
        field(&mut b, b"grpc-status", b"0");
        let long = "x".repeat(300);
        field(&mut b, b"grpc-message", long.as_bytes());
        assert_eq!(
            decode(&b),
            [
                (":status", "200"),
                (":status", "404"),
                ("content-type", "application/grpc"),
                ("grpc-status", "0"),
                ("grpc-message", long.as_str()),
            ]
            .map(|(n, v)| (n.to_string(), v.to_string()))
        );
    }

    #[test]
    fn integers_use_continuation_bytes_past_the_prefix() {
        // RFC 7541 C.1.2: 1337 with a 5-bit prefix.
        let mut b = Vec::new();
        put_int(&mut b, 0, 5, 1337);
        assert_eq!(b, [31, 154, 10]);
        let mut b = Vec::new();
        put_int(&mut b, 0, 5, 10);
        assert_eq!(b, [10]);
    }
}
