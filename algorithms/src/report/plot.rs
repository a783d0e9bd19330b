//! Small, dependency-free SVG line and scatter charts for the repro reports and the bench
//! roofline. Deterministic output (fixed palette, fixed number formatting), so a chart can be
//! snapshot-tested and diffed.
//!
//! Why not a plotting crate: the common ones lay text out with a font library (system
//! fontconfig or a bundled font file); a browser already lays out SVG `<text>`, so a few hundred
//! lines of our own give charts that build anywhere and read the same.

use std::fmt::Write;

/// How an axis maps values to positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// Base-10 logarithmic; non-positive values are left out of the chart (and counted in a note).
    Log,
}

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Points joined by a polyline, in the order given.
    Line,
    /// Markers only.
    Points,
    /// A polyline drawn dashed (ceilings, references, bounds).
    Dashed,
}

/// One named set of points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub style: Style,
}

impl Series {
    pub fn line(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            label: label.into(),
            points,
            style: Style::Line,
        }
    }
    pub fn points(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            label: label.into(),
            points,
            style: Style::Points,
        }
    }
    pub fn dashed(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            label: label.into(),
            points,
            style: Style::Dashed,
        }
    }
}

/// A chart: axes, series, and a file stem for where it is written (`<name>.svg`).
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub name: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_scale: Scale,
    pub y_scale: Scale,
    pub series: Vec<Series>,
}

impl Figure {
    /// An empty linear-linear chart.
    pub fn new(name: impl Into<String>, title: impl Into<String>, x_label: &str, y_label: &str) -> Self {
        Figure {
            name: name.into(),
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            series: Vec::new(),
        }
    }

    pub fn log_x(mut self) -> Self {
        self.x_scale = Scale::Log;
        self
    }

    pub fn log_y(mut self) -> Self {
        self.y_scale = Scale::Log;
        self
    }

    pub fn with(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    pub fn push(&mut self, series: Series) {
        self.series.push(series);
    }

    /// The chart as a standalone SVG document.
    pub fn to_svg(&self) -> String {
        render(self)
    }
}

/// Ten colors that stay distinct for the usual forms of color blindness (Okabe-Ito, plus two).
const PALETTE: [&str; 10] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442", "#999999",
    "#8C564B",
];

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 190.0; // room for the legend
const TOP: f64 = 40.0;
const BOTTOM: f64 = 56.0;

/// One axis' visible range in transformed units (log10 for log axes).
struct Axis {
    scale: Scale,
    lo: f64,
    hi: f64,
}

impl Axis {
    fn from_values(scale: Scale, values: impl Iterator<Item = f64>) -> Axis {
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for v in values.filter_map(|v| transform(scale, v)) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo < 1e-12 {
            let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            (lo, hi) = (lo - pad, hi + pad);
        }
        match scale {
            Scale::Log => Axis {
                scale,
                lo: lo.floor(),
                hi: hi.ceil().max(lo.floor() + 1.0),
            },
            Scale::Linear => {
                let step = nice_step((hi - lo) / 5.0);
                Axis {
                    scale,
                    lo: (lo / step).floor() * step,
                    hi: (hi / step).ceil() * step,
                }
            }
        }
    }

    /// Tick positions (transformed units) and their labels.
    fn ticks(&self) -> Vec<(f64, String)> {
        match self.scale {
            Scale::Log => {
                let (lo, hi) = (self.lo as i32, self.hi as i32);
                let every = ((hi - lo) / 8 + 1).max(1);
                (lo..=hi)
                    .filter(|e| (e - lo) % every == 0)
                    .map(|e| (e as f64, format!("1e{e}")))
                    .collect()
            }
            Scale::Linear => {
                let step = nice_step((self.hi - self.lo) / 5.0);
                let first = (self.lo / step).ceil() as i64;
                let last = (self.hi / step).floor() as i64;
                (first..=last)
                    .map(|i| (i as f64 * step, fmt_num(i as f64 * step)))
                    .collect()
            }
        }
    }

    /// Fraction of the way along the axis, for a transformed value.
    fn frac(&self, t: f64) -> f64 {
        (t - self.lo) / (self.hi - self.lo)
    }
}

fn transform(scale: Scale, v: f64) -> Option<f64> {
    match scale {
        _ if !v.is_finite() => None,
        Scale::Linear => Some(v),
        Scale::Log if v > 0.0 => Some(v.log10()),
        Scale::Log => None,
    }
}

/// 1, 2 or 5 times a power of ten, near `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = if raw > 0.0 && raw.is_finite() { raw } else { 1.0 };
    let mag = 10f64.powf(raw.log10().floor());
    let m = raw / mag;
    mag * if m < 1.5 {
        1.0
    } else if m < 3.5 {
        2.0
    } else if m < 7.5 {
        5.0
    } else {
        10.0
    }
}

/// A short label: up to 4 significant digits, no trailing zeros, exponent form when large/small.
pub fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.2e}");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// XML-escape text.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn render(fig: &Figure) -> String {
    let all = || fig.series.iter().flat_map(|s| s.points.iter());
    let xa = Axis::from_values(fig.x_scale, all().map(|p| p.0));
    let ya = Axis::from_values(fig.y_scale, all().map(|p| p.1));
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let px = |t: f64| LEFT + xa.frac(t) * pw;
    let py = |t: f64| TOP + (1.0 - ya.frac(t)) * ph;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        LEFT + pw / 2.0,
        esc(&fig.title)
    );
    // Grid and tick labels.
    for (t, label) in xa.ticks() {
        let x = px(t);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP:.1}" x2="{x:.1}" y2="{:.1}" stroke="#e4e4e4"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 16.0,
            esc(&label)
        );
    }
    for (t, label) in ya.ticks() {
        let y = py(t);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0,
            esc(&label)
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT:.1}" y="{TOP:.1}" width="{pw:.1}" height="{ph:.1}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + pw / 2.0,
        HEIGHT - 14.0,
        esc(&fig.x_label)
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(18,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + ph / 2.0,
        esc(&fig.y_label)
    );

    // Series, clipped to the plot area.
    let _ = writeln!(
        s,
        r#"<clipPath id="plot"><rect x="{LEFT:.1}" y="{TOP:.1}" width="{pw:.1}" height="{ph:.1}"/></clipPath><g clip-path="url(#plot)">"#
    );
    let mut dropped = 0usize;
    for (i, series) in fig.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut pts = Vec::with_capacity(series.points.len());
        for &(x, y) in &series.points {
            match (transform(fig.x_scale, x), transform(fig.y_scale, y)) {
                (Some(tx), Some(ty)) => pts.push((px(tx), py(ty))),
                _ => dropped += 1,
            }
        }
        match series.style {
            Style::Line | Style::Dashed => {
                let dash = if series.style == Style::Dashed {
                    r#" stroke-dasharray="6 4""#
                } else {
                    ""
                };
                let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                let _ = writeln!(
                    s,
                    r#"<polyline fill="none" stroke="{color}" stroke-width="1.8"{dash} points="{}"/>"#,
                    path.join(" ")
                );
            }
            Style::Points => {
                for (x, y) in &pts {
                    let _ = writeln!(s, r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{color}"/>"#);
                }
            }
        }
    }
    let _ = writeln!(s, "</g>");

    // Legend.
    let lx = LEFT + pw + 14.0;
    for (i, series) in fig.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let y = TOP + 8.0 + 18.0 * i as f64;
        let mark = match series.style {
            Style::Points => format!(
                r#"<circle cx="{:.1}" cy="{y:.1}" r="3.5" fill="{color}"/>"#,
                lx + 9.0
            ),
            Style::Line | Style::Dashed => format!(
                r#"<line x1="{lx:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{color}" stroke-width="1.8"{}/>"#,
                lx + 18.0,
                if series.style == Style::Dashed {
                    r#" stroke-dasharray="6 4""#
                } else {
                    ""
                }
            ),
        };
        let _ = writeln!(
            s,
            r#"{mark}<text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 24.0,
            y + 4.0,
            esc(&series.label)
        );
    }
    if dropped > 0 {
        let _ = writeln!(
            s,
            r##"<text x="{LEFT:.1}" y="{:.1}" fill="#a00">{dropped} non-finite or non-positive point(s) not drawn</text>"##,
            HEIGHT - 2.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(0.9), 1.0);
        assert_eq!(nice_step(2.6), 2.0);
        assert_eq!(nice_step(40.0), 50.0);
        assert_eq!(nice_step(0.013), 0.01);
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(fmt_num(0.5), "0.5");
        assert_eq!(fmt_num(2.0), "2");
        assert_eq!(fmt_num(-1.25), "-1.25");
        assert_eq!(fmt_num(123456.0), "1.23e5");
        assert_eq!(fmt_num(1e-5), "1.00e-5");
    }

    #[test]
    fn log_axis_spans_whole_decades_and_drops_nonpositive_points() {
        let fig = Figure::new("t", "T", "x", "y")
            .log_y()
            .with(Series::line("a", vec![(0.0, 0.02), (1.0, 3.0), (2.0, 0.0)]));
        let a = Axis::from_values(Scale::Log, [0.02, 3.0, 0.0].into_iter());
        assert_eq!((a.lo, a.hi), (-2.0, 1.0));
        let svg = fig.to_svg();
        assert!(svg.contains("1 non-finite or non-positive point(s) not drawn"));
        assert!(svg.contains(">1e-2<") && svg.contains(">1e1<"));
    }

    #[test]
    fn every_series_is_drawn_and_labelled_and_text_is_escaped() {
        let fig = Figure::new("t", "a < b & c", "x", "y")
            .with(Series::line("one", vec![(0.0, 1.0), (1.0, 2.0)]))
            .with(Series::points("two", vec![(0.5, 1.5)]))
            .with(Series::dashed("three", vec![(0.0, 2.0), (1.0, 2.0)]));
        let svg = fig.to_svg();
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("stroke-dasharray").count(), 2); // the series and its legend mark
        assert!(svg.contains(">one<") && svg.contains(">two<") && svg.contains(">three<"));
        assert!(svg.contains("a &lt; b &amp; c"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }

    #[test]
    fn empty_and_constant_figures_render() {
        let svg = Figure::new("e", "empty", "x", "y").to_svg();
        assert!(svg.ends_with("</svg>\n"));
        let flat = Figure::new("c", "flat", "x", "y").with(Series::line("c", vec![(1.0, 5.0), (2.0, 5.0)]));
        assert!(!flat.to_svg().contains("NaN"));
    }
}
