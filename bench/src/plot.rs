//! Latency-by-percentile plots as SVG, written by hand (no plotting crate):
//! the x axis is log10(1/(1-p)), labelled 0%, 90%, 99%, … 99.999%; the y
//! axis is latency in milliseconds; one `<path class="series">` per run and
//! a legend. `ferrobench plot OUT.svg A.hgrm B.json …` draws earlier runs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use crate::hgrm::{self, Point};

/// `ferrobench plot`.
#[derive(Debug, Clone, Args)]
pub struct PlotArgs {
    /// The SVG file to write.
    pub out: PathBuf,
    /// Runs to draw: HdrHistogram percentile-distribution text (`.hgrm`) or
    /// ferrobench JSON reports (`-w json` output or `--json-out` files).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Legend label of each input, in order (default: the file name
    /// without its extension).
    #[arg(long)]
    pub label: Vec<String>,
    /// Title above the plot.
    #[arg(long, default_value = "latency by percentile")]
    pub title: String,
    /// Scale of the latency axis.
    #[arg(long, value_enum, default_value_t = YScale::Linear)]
    pub y_scale: YScale,
}

/// One line of a plot: percentile curve points, values in milliseconds.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub label: String,
    pub points: Vec<Point>,
}

/// Decades on the x axis: 0% to 99.999%.
const DECADES: f64 = 5.0;
const X_LABELS: [&str; 6] = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"];
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];
const W: f64 = 960.0;
const H: f64 = 540.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = W - 230.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = H - 70.0;

/// The curve in plot coordinates (x in decades, y in ms): points past
/// 99.999% are cut there; the last point (100%, the maximum) is drawn at the
/// right edge, since every higher percentile lies at or below it.
fn decade_points(points: &[Point]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for p in points {
        let x = if p.quantile >= 1.0 {
            DECADES
        } else {
            (1.0 / (1.0 - p.quantile)).log10().min(DECADES)
        };
        if out.last().is_some_and(|&(lx, _)| lx >= DECADES) {
            break;
        }
        out.push((x, p.value));
    }
    out
}

/// A round axis top and tick step for values up to `max`: steps of 1, 2 or
/// 5 times a power of ten, at most 8 ticks.
pub(crate) fn nice_axis(max: f64) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let mut step = 10f64.powf((max / 8.0).log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if max / (step * m) <= 8.0 {
            step *= m;
            break;
        }
    }
    ((max / step).ceil() * step, step)
}

fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil() as usize
    };
    format!("{v:.decimals$}")
}

/// Escapes text for XML content and attribute values.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The y axis scale of a plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum YScale {
    /// Linear from 0 (HdrHistogram's own plots).
    #[default]
    Linear,
    /// Logarithmic over whole decades: the body and the tail both stay
    /// readable when the maximum is far above the median.
    Log,
}

/// A y axis: where values go (0 at the bottom, 1 at the top) and the
/// labelled ticks (value, label) plus unlabelled minor lines.
#[derive(Debug)]
struct YAxis {
    scale: YScale,
    lo: f64,
    hi: f64,
    ticks: Vec<(f64, String)>,
    minor: Vec<f64>,
}

impl YAxis {
    fn new(scale: YScale, values: impl Iterator<Item = f64> + Clone) -> YAxis {
        match scale {
            YScale::Linear => {
                let max = values.fold(0.0f64, f64::max);
                let (top, step) = nice_axis(max);
                let n = (top / step).round() as u32;
                let ticks = (0..=n)
                    .map(|i| {
                        let v = f64::from(i) * step;
                        (v, tick_label(v, step))
                    })
                    .collect();
                YAxis {
                    scale,
                    lo: 0.0,
                    hi: top,
                    ticks,
                    minor: vec![],
                }
            }
            YScale::Log => {
                let pos = values.filter(|v| v.is_finite() && *v > 0.0);
                let min = pos.clone().fold(f64::INFINITY, f64::min);
                let max = pos.fold(0.0f64, f64::max);
                let (mut lo, mut hi) = if max > 0.0 {
                    (min.log10().floor() as i32, max.log10().ceil() as i32)
                } else {
                    (0, 1)
                };
                if hi <= lo {
                    hi = lo + 1;
                }
                lo = lo.max(hi - 12);
                let mut ticks = Vec::new();
                let mut minor = Vec::new();
                for d in lo..=hi {
                    let v = 10f64.powi(d);
                    let decimals = usize::try_from(-d).unwrap_or(0);
                    ticks.push((v, format!("{v:.decimals$}")));
                    if d < hi {
                        minor.extend((2..10).map(|k| f64::from(k) * v));
                    }
                }
                YAxis {
                    scale,
                    lo: 10f64.powi(lo),
                    hi: 10f64.powi(hi),
                    ticks,
                    minor,
                }
            }
        }
    }

    /// Where `v` goes, from 0 (bottom) to 1 (top); below the axis on a
    /// log scale (0 µs) lands on the bottom.
    fn frac(&self, v: f64) -> f64 {
        match self.scale {
            YScale::Linear => v / self.hi,
            YScale::Log => {
                let v = v.max(self.lo);
                (v / self.lo).log10() / (self.hi / self.lo).log10()
            }
        }
    }
}

/// The plot of `series` as an SVG document.
pub(crate) fn svg(title: &str, series: &[Series], scale: YScale) -> String {
    let curves: Vec<Vec<(f64, f64)>> = series.iter().map(|s| decade_points(&s.points)).collect();
    let axis = YAxis::new(scale, curves.iter().flatten().map(|&(_, y)| y));
    let px = |x: f64| LEFT + (RIGHT - LEFT) * x / DECADES;
    let py = |y: f64| BOTTOM - (BOTTOM - TOP) * axis.frac(y);

    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        s,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="13">
<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>
<text x="{:.1}" y="28" text-anchor="middle" font-size="16">{}</text>"#,
        (LEFT + RIGHT) / 2.0,
        xml_escape(title)
    );
    // Grid and x ticks: a major line per decade, minor ones at 2..9 within.
    s.push_str("<g stroke=\"#ddd\" stroke-width=\"1\">\n");
    for d in 0..5 {
        for k in 2..10 {
            // Within decade d, the quantile 1 - 10^-d / k ... drawn at
            // d + log10(k) decades.
            let x = px(f64::from(d) + f64::from(k).log10());
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{BOTTOM}" stroke="#f0f0f0"/>"##
            );
        }
    }
    for &y in &axis.minor {
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{:.1}" x2="{RIGHT}" y2="{:.1}" stroke="#f0f0f0"/>"##,
            py(y),
            py(y)
        );
    }
    for (y, _) in &axis.ticks {
        let _ = writeln!(
            s,
            r#"<line x1="{LEFT}" y1="{:.1}" x2="{RIGHT}" y2="{:.1}"/>"#,
            py(*y),
            py(*y)
        );
    }
    for d in 0..=5 {
        let x = px(f64::from(d));
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{BOTTOM}"/>"#
        );
    }
    s.push_str("</g>\n");
    // Axes, tick labels and axis titles.
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
        RIGHT - LEFT,
        BOTTOM - TOP
    );
    for (d, label) in X_LABELS.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{label}</text>"#,
            px(d as f64),
            BOTTOM + 20.0
        );
    }
    for (y, label) in &axis.ticks {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{label}</text>"#,
            LEFT - 8.0,
            py(*y) + 4.0,
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">percentile (log scale of 1/(1-p))</text>"#,
        (LEFT + RIGHT) / 2.0,
        BOTTOM + 48.0
    );
    let _ = writeln!(
        s,
        r#"<text x="22" y="{:.1}" text-anchor="middle" transform="rotate(-90 22 {:.1})">latency (ms{})</text>"#,
        (TOP + BOTTOM) / 2.0,
        (TOP + BOTTOM) / 2.0,
        if scale == YScale::Log {
            ", log scale"
        } else {
            ""
        }
    );
    // One path per series, then the legend.
    for (i, (serie, pts)) in series.iter().zip(&curves).enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut d = String::new();
        for (j, &(x, y)) in pts.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if j == 0 { "M" } else { " L" },
                px(x),
                py(y)
            );
        }
        if d.is_empty() {
            // An empty run still gets its (empty) path, so series and paths
            // stay one to one.
            let _ = write!(d, "M{LEFT},{BOTTOM}");
        }
        let _ = writeln!(
            s,
            r#"<path class="series" data-label="{}" d="{d}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            xml_escape(&serie.label)
        );
    }
    for (i, serie) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let y = TOP + 10.0 + 22.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="{color}" stroke-width="3"/>
<text x="{}" y="{:.1}">{}</text>"#,
            RIGHT + 15.0,
            RIGHT + 40.0,
            RIGHT + 47.0,
            y + 4.0,
            xml_escape(&serie.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Reads one run: `.hgrm` text, or a JSON report (its encoded histogram,
/// else its `latency_curve_us`).
pub(crate) fn load(path: &Path) -> anyhow::Result<Vec<Point>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let parsed = if text.trim_start().starts_with('{') {
        points_from_json(&text)
    } else {
        hgrm::parse_distribution(&text)
    };
    parsed.with_context(|| format!("{}: not a .hgrm or ferrobench JSON report", path.display()))
}

fn points_from_json(text: &str) -> anyhow::Result<Vec<Point>> {
    let j: serde_json::Value = serde_json::from_str(text).context("bad JSON")?;
    if let Some(b64) = j.get("histogram").and_then(|v| v.as_str()) {
        let h = hgrm::decode(b64)?;
        return Ok(hgrm::curve(&h, 1000.0)
            .into_iter()
            .map(|(p, _)| p)
            .collect());
    }
    let Some(rows) = j.get("latency_curve_us").and_then(|v| v.as_array()) else {
        bail!("no \"histogram\" or \"latency_curve_us\" field");
    };
    rows.iter()
        .map(|r| {
            let q = r.get(0).and_then(|v| v.as_f64());
            let us = r.get(1).and_then(|v| v.as_f64());
            match (q, us) {
                (Some(quantile), Some(us)) => Ok(Point {
                    quantile,
                    value: us / 1e3,
                }),
                _ => bail!("bad latency_curve_us row {r}"),
            }
        })
        .collect()
}

/// `ferrobench plot`.
pub(crate) fn run(args: &PlotArgs) -> anyhow::Result<()> {
    if args.label.len() > args.inputs.len() {
        bail!(
            "{} --label given for {} inputs",
            args.label.len(),
            args.inputs.len()
        );
    }
    let mut series = Vec::new();
    for (i, path) in args.inputs.iter().enumerate() {
        let label = args.label.get(i).cloned().unwrap_or_else(|| {
            path.file_stem().map_or_else(
                || path.display().to_string(),
                |s| s.to_string_lossy().into(),
            )
        });
        series.push(Series {
            label,
            points: load(path)?,
        });
    }
    crate::report::write(&args.out, &svg(&args.title, &series, args.y_scale))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small XML well-formedness check: balanced tags, quoted attributes,
    /// known entities only. Returns the element names in document order.
    pub(crate) fn check_xml(doc: &str) -> Result<Vec<String>, String> {
        let body = doc
            .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
            .ok_or("no XML declaration")?;
        let mut stack: Vec<String> = Vec::new();
        let mut names = Vec::new();
        let mut rest = body;
        let mut roots = 0;
        while let Some(lt) = rest.find('<') {
            check_text(&rest[..lt])?;
            let gt = rest[lt..].find('>').ok_or("unclosed tag")? + lt;
            let tag = &rest[lt + 1..gt];
            rest = &rest[gt + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().ok_or(format!("stray </{name}>"))?;
                if open != name {
                    return Err(format!("</{name}> closes <{open}>"));
                }
                continue;
            }
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let name: String = tag.chars().take_while(|c| !c.is_whitespace()).collect();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(format!("bad element name in <{tag}>"));
            }
            check_attrs(&tag[name.len()..])?;
            if stack.is_empty() {
                roots += 1;
            }
            names.push(name.clone());
            if !self_closing {
                stack.push(name);
            }
        }
        check_text(rest)?;
        if !rest.trim().is_empty() || !stack.is_empty() || roots != 1 {
            return Err(format!("unbalanced: open {stack:?}, {roots} roots"));
        }
        Ok(names)
    }

    fn check_text(t: &str) -> Result<(), String> {
        let mut rest = t;
        while let Some(amp) = rest.find('&') {
            let semi = rest[amp..].find(';').ok_or("bare &")? + amp;
            if !["amp", "lt", "gt", "quot", "apos"].contains(&&rest[amp + 1..semi]) {
                return Err(format!("unknown entity {}", &rest[amp..=semi]));
            }
            rest = &rest[semi + 1..];
        }
        if t.contains('>') {
            return Err("bare > in text".into());
        }
        Ok(())
    }

    fn check_attrs(mut a: &str) -> Result<(), String> {
        let mut seen = Vec::new();
        loop {
            a = a.trim_start();
            if a.is_empty() {
                return Ok(());
            }
            let eq = a.find("=\"").ok_or(format!("bad attribute at {a:?}"))?;
            let name = &a[..eq];
            if name.is_empty() || name.contains(char::is_whitespace) || seen.contains(&name) {
                return Err(format!("bad or repeated attribute name {name:?}"));
            }
            seen.push(name);
            let end = a[eq + 2..].find('"').ok_or("unterminated attribute")? + eq + 2;
            let value = &a[eq + 2..end];
            if value.contains('<') {
                return Err("< in attribute".into());
            }
            check_text(value)?;
            a = &a[end + 1..];
        }
    }

    fn uniform(label: &str, scale: f64) -> Series {
        let points = (0..=50)
            .map(|i| {
                let q = 1.0 - 0.5f64.powi(i);
                Point {
                    quantile: if i == 50 { 1.0 } else { q },
                    value: scale * (1.0 + f64::from(i)),
                }
            })
            .collect();
        Series {
            label: label.into(),
            points,
        }
    }

    #[test]
    fn svg_is_well_formed_with_one_path_per_series() {
        let series = [
            uniform("etcd 3.4 <a & b>", 1.0),
            uniform("ferrocd \"fast\"", 0.3),
            Series {
                label: "empty".into(),
                points: vec![],
            },
        ];
        let doc = svg("put: 16 clients & 'friends'", &series, YScale::Linear);
        let names = check_xml(&doc).unwrap_or_else(|e| panic!("{e}\n{doc}"));
        assert_eq!(names.iter().filter(|n| *n == "path").count(), 3);
        assert_eq!(doc.matches("class=\"series\"").count(), 3);
        for l in X_LABELS {
            assert!(doc.contains(&format!(">{l}</text>")), "{l}");
        }
        assert!(doc.contains("etcd 3.4 &lt;a &amp; b&gt;"));
        assert!(doc.contains("latency (ms)"));
        let log = svg("log", &series, YScale::Log);
        let names = check_xml(&log).unwrap_or_else(|e| panic!("{e}\n{log}"));
        assert_eq!(names.iter().filter(|n| *n == "path").count(), 3);
        assert!(log.contains("latency (ms, log scale)"));
        // The check itself rejects broken documents.
        assert!(check_xml(&doc.replace("</svg>", "")).is_err());
        assert!(check_xml(&doc.replace("&amp;", "&")).is_err());
    }

    #[test]
    fn curve_is_cut_at_five_nines() {
        let pts = decade_points(&uniform("x", 1.0).points);
        assert_eq!(pts[0], (0.0, 1.0));
        assert!(pts.iter().all(|&(x, _)| (0.0..=DECADES).contains(&x)));
        assert_eq!(pts.last().unwrap().0, DECADES);
        assert!(pts.windows(2).all(|w| w[0].0 < w[1].0));
        // 1 - 2^-17 is the first tick past 99.999%.
        assert_eq!(pts.len(), 18);
    }

    #[test]
    fn json_reports_load() {
        let mut h = crate::driver::histogram();
        for v in [100, 200, 300, 5000] {
            h.record(v).unwrap();
        }
        let want: Vec<Point> = hgrm::curve(&h, 1000.0)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        let j = serde_json::json!({ "histogram": hgrm::encode(&h) }).to_string();
        assert_eq!(points_from_json(&j).unwrap(), want);
        let j = serde_json::json!({ "latency_curve_us": [[0.0, 100], [1.0, 5003]] }).to_string();
        let pts = points_from_json(&j).unwrap();
        assert_eq!(
            pts[1],
            Point {
                quantile: 1.0,
                value: 5.003
            }
        );
        assert!(points_from_json("{}").is_err());
    }

    #[test]
    fn log_axis_spans_whole_decades() {
        let a = YAxis::new(YScale::Log, [0.35, 2.0, 140.0].into_iter());
        assert_eq!((a.lo, a.hi), (0.1, 1000.0));
        let labels: Vec<&str> = a.ticks.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["0.1", "1", "10", "100", "1000"]);
        assert_eq!(a.minor.len(), 4 * 8);
        assert!((a.frac(10.0) - 2.0 / 4.0).abs() < 1e-12);
        assert_eq!(a.frac(0.0), 0.0);
        let lin = YAxis::new(YScale::Linear, [7.3].into_iter());
        assert_eq!(lin.ticks.len(), 9);
        assert_eq!(lin.ticks[8].1, "8");
    }

    #[test]
    fn nice_axes() {
        let close = |(a, b): (f64, f64), (c, d): (f64, f64)| {
            assert!(
                (a - c).abs() < 1e-9 && (b - d).abs() < 1e-9,
                "{a},{b} vs {c},{d}"
            );
        };
        close(nice_axis(7.3), (8.0, 1.0));
        close(nice_axis(0.42), (0.5, 0.1));
        close(nice_axis(130.0), (140.0, 20.0));
        close(nice_axis(0.0), (1.0, 0.2));
        assert_eq!(tick_label(0.45, 0.05), "0.45");
        assert_eq!(tick_label(140.0, 20.0), "140");
    }
}
