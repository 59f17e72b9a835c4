//! A run's latency histogram (microseconds) in the formats other tools
//! read:
//! - the HdrHistogram percentile distribution text (`.hgrm`, the layout of
//!   Java HdrHistogram's `outputPercentileDistribution`), which HdrHistogram's
//!   plotter and `hdr-plot` load;
//! - the percentile curve as `(quantile, value)` points, for plots and JSON;
//! - the compressed V2 binary encoding in base64 (`HISTF…`), which keeps the
//!   whole histogram in a JSON report so runs can be merged later.
//!
//! Reading `.hgrm` text back gives the curve again, so `ferrobench plot`
//! draws runs recorded by any HdrHistogram tool.

use std::fmt::Write as _;

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

/// Percentile ticks per half distance to 100%, as HdrHistogram's own
/// output uses.
pub(crate) const TICKS_PER_HALF: u32 = 5;

/// One point of a percentile curve: the quantile (0..=1) and the highest
/// value of the bucket where the curve reaches it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    pub quantile: f64,
    pub value: f64,
}

/// The percentile curve of `h`, values divided by `scale` (1000 turns
/// microseconds into milliseconds), with the running count at each point.
pub(crate) fn curve(h: &Histogram<u64>, scale: f64) -> Vec<(Point, u64)> {
    let mut total = 0u64;
    h.iter_quantiles(TICKS_PER_HALF)
        .map(|v| {
            total += v.count_since_last_iteration();
            (
                Point {
                    quantile: v.quantile_iterated_to(),
                    value: v.value_iterated_to() as f64 / scale,
                },
                total,
            )
        })
        .collect()
}

/// Sub-buckets per bucket of a histogram with `sigfig` significant digits
/// (the smallest power of two at or above 2 * 10^sigfig).
fn sub_buckets(sigfig: u8) -> u64 {
    (2 * 10u64.pow(u32::from(sigfig))).next_power_of_two()
}

/// The percentile distribution of `h` (values in µs), printed in
/// milliseconds: `outputPercentileDistribution(out, 5, 1000.0)`.
pub(crate) fn percentile_distribution(h: &Histogram<u64>) -> String {
    distribution_text(h, 1000.0)
}

/// The percentile distribution with values divided by `scale`.
pub(crate) fn distribution_text(h: &Histogram<u64>, scale: f64) -> String {
    let d = usize::from(h.sigfig());
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    for (p, total) in curve(h, scale) {
        if p.quantile < 1.0 {
            let _ = writeln!(
                s,
                "{:>12.d$} {:>2.12} {:>10} {:>14.2}",
                p.value,
                p.quantile,
                total,
                1.0 / (1.0 - p.quantile)
            );
        } else {
            let _ = writeln!(s, "{:>12.d$} {:>2.12} {:>10}", p.value, p.quantile, total);
        }
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:>12.d$}, StdDeviation   = {:>12.d$}]",
        h.mean() / scale,
        h.stdev() / scale
    );
    let _ = writeln!(
        s,
        "#[Max     = {:>12.d$}, Total count    = {:>12}]",
        h.max() as f64 / scale,
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_buckets(h.sigfig())
    );
    s
}

/// Reads the curve back from percentile-distribution text (ours or any
/// HdrHistogram tool's): rows of `value percentile count [1/(1-p)]`;
/// header, blank and `#` lines are skipped.
pub(crate) fn parse_distribution(text: &str) -> anyhow::Result<Vec<Point>> {
    let mut points = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("Value") {
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 3 {
            bail!(
                "line {}: expected `value percentile count`: {line:?}",
                n + 1
            );
        }
        let value: f64 = cols[0]
            .parse()
            .with_context(|| format!("line {}: value {:?}", n + 1, cols[0]))?;
        let quantile: f64 = cols[1]
            .parse()
            .with_context(|| format!("line {}: percentile {:?}", n + 1, cols[1]))?;
        if !(0.0..=1.0).contains(&quantile) {
            bail!("line {}: percentile {quantile} outside 0..=1", n + 1);
        }
        points.push(Point { quantile, value });
    }
    if points.is_empty() {
        bail!("no percentile rows");
    }
    Ok(points)
}

/// The histogram as HdrHistogram's compressed V2 encoding in base64.
pub(crate) fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("serializing to memory");
    base64_encode(&bytes)
}

/// The inverse of [`encode`].
pub(crate) fn decode(b64: &str) -> anyhow::Result<Histogram<u64>> {
    let bytes = base64_decode(b64.trim()).context("histogram: bad base64")?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("histogram: {e:?}"))
}

/// Standard base64 with padding (RFC 4648), as HdrHistogram tools use.
fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn base64_decode(s: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::STANDARD.decode(s)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::histogram;

    /// 1..=10000 µs, once each.
    fn uniform() -> Histogram<u64> {
        let mut h = histogram();
        for v in 1..=10_000 {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn uniform_percentiles_land_where_they_must() {
        let h = uniform();
        assert_eq!(h.len(), 10_000);
        assert_eq!(h.min(), 1);
        // 3 significant digits: values up to 2048 are exact, above that a
        // bucket is 2 (up to 4096) or 4 (up to 8192) or 8 µs wide, and a
        // percentile reports its bucket's highest value.
        for (q, want) in [
            (0.0, 1),
            (0.001, 10),
            (0.01, 100),
            (0.1, 1000),
            (0.2, 2000),
            (0.5, 5003),
            (0.9, 9007),
            (0.99, 9903),
            (0.999, 9991),
            (1.0, 10_007),
        ] {
            let got = h.value_at_quantile(q);
            assert_eq!(got, want, "q {q}");
            // And within 0.1% of the exact answer.
            let exact = ((q * 10_000.0) as u64).max(1);
            assert!(
                got.abs_diff(exact) * 1000 <= exact,
                "q {q}: {got} vs {exact}"
            );
        }
        assert!((h.mean() - 5000.5).abs() < 5.0, "mean {}", h.mean());
        let sd = 10_000.0 / 12f64.sqrt();
        assert!((h.stdev() - sd).abs() / sd < 0.002, "stdev {}", h.stdev());
    }

    #[test]
    fn curve_ticks_halve_the_distance() {
        let h = uniform();
        let c = curve(&h, 1.0);
        let qs: Vec<f64> = c.iter().map(|(p, _)| p.quantile).collect();
        // 5 ticks per half: 0, .1, .2, .3, .4, .5, then .55, .6, ...
        for (got, want) in qs.iter().zip([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6]) {
            assert!((got - want).abs() < 1e-12, "{qs:?}");
        }
        assert_eq!(*qs.last().unwrap(), 1.0);
        assert!(qs.windows(2).all(|w| w[0] < w[1]));
        // Running counts grow to the total.
        assert_eq!(c.last().unwrap().1, 10_000);
        assert!(c.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn hgrm_matches_golden() {
        let text = percentile_distribution(&uniform());
        crate::golden::check("uniform-1-10000us.hgrm", &text);
        // Footer and header as HdrHistogram writes them.
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
        assert!(text.contains("#[Buckets =           22, SubBuckets     =         2048]\n"));
        assert!(text.contains("#[Max     =       10.007, Total count    =        10000]\n"));
    }

    #[test]
    fn hgrm_reads_back() {
        let h = uniform();
        let points = parse_distribution(&percentile_distribution(&h)).unwrap();
        let c = curve(&h, 1000.0);
        assert_eq!(points.len(), c.len());
        for (p, (q, _)) in points.iter().zip(&c) {
            assert!((p.quantile - q.quantile).abs() < 1e-12);
            assert!((p.value - q.value).abs() < 1e-9);
        }
        assert!(parse_distribution("Value Percentile\n\n#[Max = 1]\n").is_err());
        assert!(parse_distribution("1.0 2.0 3\n").is_err());
    }

    #[test]
    fn empty_histogram_has_no_rows() {
        let text = percentile_distribution(&histogram());
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 2);
        assert!(text.contains("Total count    =            0]"));
    }

    #[test]
    fn base64_known_answers() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
            assert_eq!(base64_decode(enc).unwrap(), plain.as_bytes());
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base64_decode(&base64_encode(&all)).unwrap(), all);
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zm9*"] {
            assert!(base64_decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn encoding_round_trips() {
        let h = uniform();
        let s = encode(&h);
        assert!(s.starts_with("HISTF"), "{}", &s[..10]);
        let back = decode(&s).unwrap();
        assert_eq!(back, h);
        assert!(decode("not base64!").is_err());
    }
}
