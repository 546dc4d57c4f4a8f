//! `bench --svg FILE`: the run's timeline as a hand-written SVG picture.
//!
//! Top panel: fast-request latency (log scale, ms) over time, one band per
//! time bucket from p50 to max with the p50 drawn as a line (a dot where a
//! bucket stands alone); fast failures as small marks in a strip above it.
//! Below it, one row per slow loop: each slow request is a bar from the
//! moment it was sent to its answer; 503s, 504s and other failures get a
//! mark each (red, orange, purple), abandoned requests a dashed grey bar.
//! A title with the target, the verdict (fast p99 under the slow load, and
//! whether every fast request was answered, green or red) and the summary,
//! the run's fast p99 as a dashed line across the panel, axis ticks and a
//! legend make it readable on its own. Everything comes from a [`Timeline`], whose
//! aggregation keeps the file well under 1 MiB for any run length. Text is
//! XML-escaped; the output is well-formed XML. This file draws the frame
//! (heading, scales, axes, legend); `svg_layers.rs` draws the data.

use std::fmt::Write;
use std::time::Duration;

use super::svg_layers::{fast_band, fast_marks, p99_line, slow_lane};
use super::timeline::{MarkClass, Timeline};
use super::verdict::Verdict;

const WIDTH: f64 = 1000.0;
pub(super) const LEFT: f64 = 80.0;
pub(super) const RIGHT: f64 = 970.0;
/// Fast panel, top and bottom.
const PANEL_TOP: f64 = 136.0;
const PANEL_BOTTOM: f64 = 420.0;
/// The strip of fast failure marks above the panel.
pub(super) const STRIP_TOP: f64 = 110.0;
/// The slow lane starts here; its rows share this much height at most.
pub(super) const LANE_TOP: f64 = 456.0;
const LANE_MAX_HEIGHT: f64 = 160.0;
const ROW_MAX_HEIGHT: f64 = 16.0;

const STYLE: &str = "text{font-family:sans-serif;font-size:12px;fill:#222}\
.title{font-size:16px;font-weight:bold}.sub{font-size:12px;fill:#444}\
.grid{stroke:#ddd;stroke-width:1}.axis{stroke:#444;stroke-width:1}\
.verdict{font-size:15px;font-weight:bold}.pass{fill:#1a7f37}.fail{fill:#c62828}\
.load{font-size:13px;font-weight:normal;fill:#222}\
.p99{stroke:#c62828;stroke-width:1.5;stroke-dasharray:6,3}.p99-label{fill:#c62828}\
.band{fill:#9ecae1;opacity:0.7}.p50{fill:none;stroke:#08519c;stroke-width:1.5}\
.dot{fill:#08519c}.slow-ok{fill:#41ab5d;stroke:white;stroke-width:0.5}.slow-fail{fill:#fcbba1}\
.unfinished{fill:#d9d9d9;stroke:#737373;stroke-dasharray:3,2}\
.dense .slow-ok,.dense .unfinished{stroke:none}\
.mark-503{fill:#d7191c}.mark-504{fill:#fd8d3c}.mark-other{fill:#7b3294}";

/// Escapes text and attribute values for XML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Maps run time to x and latency to y (log scale).
pub(super) struct Scales {
    total_s: f64,
    lo_log: f64,
    hi_log: f64,
}

impl Scales {
    fn new(timeline: &Timeline) -> Scales {
        let end = timeline
            .slow_spans
            .iter()
            .map(|s| s.end)
            .max()
            .unwrap_or_default()
            .max(timeline.duration);
        let (mut lo, mut hi) = (f64::MAX, 0.0f64);
        for h in timeline.buckets.iter().filter_map(|b| b.fast_ok.as_ref()) {
            lo = lo.min(ms(h.median()));
            hi = hi.max(ms(h.max()));
        }
        if hi <= 0.0 {
            (lo, hi) = (0.1, 10.0);
        }
        let lo_log = lo.max(0.001).log10().floor();
        let hi_log = hi.max(0.001).log10().ceil().max(lo_log + 1.0);
        Scales {
            total_s: end.as_secs_f64().max(0.001),
            lo_log,
            hi_log,
        }
    }

    pub(super) fn x(&self, t: Duration) -> f64 {
        LEFT + (t.as_secs_f64() / self.total_s).clamp(0.0, 1.0) * (RIGHT - LEFT)
    }

    pub(super) fn y(&self, latency_ms: f64) -> f64 {
        let v = latency_ms.max(10f64.powf(self.lo_log)).log10();
        let f = ((v - self.lo_log) / (self.hi_log - self.lo_log)).clamp(0.0, 1.0);
        PANEL_BOTTOM - f * (PANEL_BOTTOM - PANEL_TOP)
    }
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A 1-2-5 step giving about ten ticks over `total`.
fn tick_step(total: f64) -> f64 {
    let raw = (total / 10.0).max(1e-3);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// Renders the timeline; `title` is the heading, `verdict` the line under it
/// and `summary` (up to two lines, split at `\n`) goes below that.
pub fn render(timeline: &Timeline, title: &str, summary: &str, verdict: &Verdict) -> String {
    let sc = Scales::new(timeline);
    let lanes = timeline.lanes.max(1);
    let row = (LANE_MAX_HEIGHT / lanes as f64).min(ROW_MAX_HEIGHT);
    let lane_bottom = LANE_TOP + row * lanes as f64;
    let legend_y = lane_bottom + 62.0;
    let height = legend_y + 42.0;
    let mut s = String::with_capacity(64 * 1024);
    let _ = writeln!(
        s,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}">
<title>{}</title>
<style>{STYLE}</style>
<rect x="0" y="0" width="{WIDTH}" height="{height:.0}" fill="white"/>
<text class="title" x="{LEFT}" y="24">{}</text>
<text class="verdict {}" x="{LEFT}" y="46">{} <tspan class="load">{}</tspan></text>
"#,
        escape(title),
        escape(title),
        if verdict.passed { "pass" } else { "fail" },
        escape(&verdict.headline),
        escape(&verdict.load),
    );
    // At most two lines under the verdict.
    let mut lines = summary.splitn(2, '\n');
    for y in [66, 84] {
        if let Some(line) = lines.next() {
            let line = line.replace('\n', " ");
            let _ = writeln!(
                s,
                r#"<text class="sub" x="{LEFT}" y="{y}">{}</text>"#,
                escape(&line)
            );
        }
    }
    axes(&mut s, &sc, lane_bottom, has_fast_failures(timeline));
    fast_band(&mut s, &sc, timeline);
    if let Some(p99) = verdict.fast_p99 {
        p99_line(&mut s, &sc, p99);
    }
    fast_marks(&mut s, &sc, timeline);
    slow_lane(&mut s, &sc, timeline, row);
    legend(&mut s, legend_y);
    s.push_str("</svg>\n");
    s
}

fn has_fast_failures(timeline: &Timeline) -> bool {
    timeline
        .buckets
        .iter()
        .any(|b| MarkClass::ALL.into_iter().any(|c| b.fast_failed(c) > 0))
}

fn axes(s: &mut String, sc: &Scales, lane_bottom: f64, fast_failures: bool) {
    // Latency decades, and 2 and 5 between them when there are few decades.
    let steps: &[f64] = if sc.hi_log - sc.lo_log <= 2.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut d = sc.lo_log;
    while d <= sc.hi_log + 1e-9 {
        for step in steps {
            let v = step * 10f64.powf(d);
            if v.log10() > sc.hi_log + 1e-9 {
                break;
            }
            let y = sc.y(v);
            // Rounding to 6 digits keeps 0.001 from printing as 0.0010000000000000002.
            let label = format!("{}", (v * 1e6).round() / 1e6);
            let _ = writeln!(
                s,
                r#"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}"/><text x="{:.0}" y="{:.1}" text-anchor="end">{} ms</text>"#,
                LEFT - 6.0,
                y + 4.0,
                escape(&label)
            );
        }
        d += 1.0;
    }
    // Time ticks, through both panels.
    let step = tick_step(sc.total_s);
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let mut i = 0u32;
    loop {
        let t = f64::from(i) * step;
        if t > sc.total_s + 1e-9 {
            break;
        }
        let x = sc.x(Duration::from_secs_f64(t));
        let _ = writeln!(
            s,
            r#"<line class="grid" x1="{x:.1}" y1="{PANEL_TOP}" x2="{x:.1}" y2="{lane_bottom:.1}"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{t:.decimals$}</text>"#,
            lane_bottom + 16.0
        );
        i += 1;
    }
    let _ = writeln!(
        s,
        r#"<line class="axis" x1="{LEFT}" y1="{PANEL_BOTTOM}" x2="{RIGHT}" y2="{PANEL_BOTTOM}"/><line class="axis" x1="{LEFT}" y1="{PANEL_TOP}" x2="{LEFT}" y2="{PANEL_BOTTOM}"/>
<text x="{:.0}" y="{:.1}" text-anchor="middle">time since start (s)</text>
<text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">fast latency (ms, log)</text>
<text x="{LEFT}" y="{:.1}">slow requests, one row per slow loop</text>"#,
        (LEFT + RIGHT) / 2.0,
        lane_bottom + 34.0,
        (PANEL_TOP + PANEL_BOTTOM) / 2.0,
        (PANEL_TOP + PANEL_BOTTOM) / 2.0,
        LANE_TOP - 6.0
    );
    // The strip's label only when it has marks to explain.
    if fast_failures {
        let _ = writeln!(
            s,
            r#"<text x="{:.0}" y="{:.1}" text-anchor="end">fast failures</text>"#,
            LEFT - 6.0,
            STRIP_TOP + 12.0
        );
    }
}

fn legend(s: &mut String, y: f64) {
    let items: [(&str, &str); 8] = [
        ("band", "fast p50 to max per bucket"),
        ("p50", "fast p50"),
        ("p99", "fast p99 of the run"),
        ("slow-ok", "slow request (2xx)"),
        ("unfinished", "slow, abandoned at the end"),
        ("mark-503", "503 overloaded"),
        ("mark-504", "504 job timeout"),
        ("mark-other", "other error"),
    ];
    // Two rows: what the shapes are, then what the failure colours mean.
    let (mut x, mut y) = (LEFT, y);
    for (i, (class, label)) in items.into_iter().enumerate() {
        if i == 4 {
            (x, y) = (LEFT, y + 18.0);
        }
        if class == "p50" || class == "p99" {
            let _ = write!(
                s,
                r#"<line class="legend {class}" x1="{x:.0}" y1="{:.1}" x2="{:.0}" y2="{:.1}"/>"#,
                y - 4.0,
                x + 12.0,
                y - 4.0
            );
        } else {
            // "legend" first, so that counting `class="mark-503"` finds only real marks.
            let _ = write!(
                s,
                r#"<rect class="legend {class}" x="{x:.0}" y="{:.1}" width="12" height="10"/>"#,
                y - 9.0
            );
        }
        let _ = writeln!(s, r#"<text x="{:.0}" y="{y:.1}">{label}</text>"#, x + 16.0);
        x += 26.0 + label.len() as f64 * 6.8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::timeline::{Outcome, SlowSpan};

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Tags balance, every `&` starts an entity, and attribute quotes pair up.
    fn assert_well_formed(xml: &str) {
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = xml;
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            assert!(!text.contains('>'), "stray > in {text:?}");
            for (i, _) in text.match_indices('&') {
                let entity = &text[i..];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                        .iter()
                        .any(|e| entity.starts_with(e)),
                    "bare & in {text:?}"
                );
            }
            let close = rest[open..].find('>').expect("unclosed tag") + open;
            let tag = &rest[open + 1..close];
            assert_eq!(tag.matches('"').count() % 2, 0, "odd quotes in <{tag}>");
            assert!(!tag.contains('<'), "< inside <{tag}>");
            let name = tag
                .trim_start_matches('/')
                .split([' ', '/'])
                .next()
                .unwrap_or("");
            if tag.starts_with('?') || tag.ends_with('/') {
            } else if let Some(stripped) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(stripped), "mismatched </{stripped}>");
            } else {
                stack.push(name);
            }
            rest = &rest[close + 1..];
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
    }

    fn verdict(passed: bool, p99: Option<Duration>) -> Verdict {
        Verdict {
            headline: format!("Verdict: test <{passed}>"),
            load: "while busy".into(),
            passed,
            fast_p99: p99,
        }
    }

    fn sample() -> Timeline {
        let mut t = Timeline::new(Duration::from_secs(2), 2);
        for i in 0..2000u64 {
            t.record_fast(ms(i), Duration::from_micros(200 + i % 700), Outcome::Ok);
        }
        t.record_fast(ms(1500), ms(1), Outcome::Status(503));
        t.record_fast(ms(1510), ms(1), Outcome::Reset);
        let spans = [
            (0, 0, 900, Outcome::Ok),
            (1, 0, 5, Outcome::Status(503)),
            (1, 105, 110, Outcome::Status(503)),
            (1, 200, 1200, Outcome::Status(504)),
            (0, 900, 2000, Outcome::Unfinished),
        ];
        for (lane, a, b, outcome) in spans {
            t.record_slow(SlowSpan {
                lane,
                start: ms(a),
                end: ms(b),
                outcome,
            });
        }
        t
    }

    #[test]
    fn sample_is_well_formed_with_a_mark_per_failure() {
        let svg = render(
            &sample(),
            "bench <127.0.0.1:8888> & co",
            "fast: 'p50' \"1 ms\"",
            &verdict(false, Some(Duration::from_micros(870))),
        );
        assert_well_formed(&svg);
        assert!(svg.contains(
            r#"<text class="verdict fail" x="80" y="46">Verdict: test &lt;false&gt; <tspan class="load">while busy</tspan></text>"#
        ));
        assert_eq!(svg.matches(r#"class="p99""#).count(), 1, "one p99 line");
        assert!(svg.contains(">p99 0.87 ms</text>"));
        assert!(svg.contains(">fast failures</text>"), "the strip has marks");
        assert!(svg.contains("bench &lt;127.0.0.1:8888&gt; &amp; co"));
        // 2 slow 503s + 1 bucket of fast 503s.
        assert_eq!(svg.matches(r#"class="mark-503""#).count(), 3);
        assert_eq!(svg.matches(r#"class="mark-504""#).count(), 1);
        assert_eq!(svg.matches(r#"class="mark-other""#).count(), 1);
        assert_eq!(svg.matches(r#"class="unfinished""#).count(), 1);
        assert_eq!(svg.matches(r#"class="band""#).count(), 20);
        assert!(svg.contains("1 ms") && svg.contains("time since start"));
    }

    #[test]
    fn empty_run_still_draws() {
        let svg = render(
            &Timeline::new(Duration::from_secs(1), 0),
            "t",
            "s",
            &verdict(false, None),
        );
        assert_well_formed(&svg);
        assert!(!svg.contains(r#"class="p99""#), "no p99 without answers");
        assert!(svg.contains("no slow requests"));
        assert!(!svg.contains("class=\"mark-"));
    }

    #[test]
    fn a_long_busy_run_stays_small() {
        let mut t = Timeline::new(Duration::from_secs(3600), 64);
        for i in 0..200_000u64 {
            t.record_fast(
                ms(i * 18),
                Duration::from_micros(100 + i % 5000),
                Outcome::Ok,
            );
            if i % 7 == 0 {
                t.record_fast(ms(i * 18), ms(1), Outcome::Status(503));
            }
        }
        for i in 0..20_000u64 {
            t.record_slow(SlowSpan {
                lane: (i % 64) as usize,
                start: ms(i * 180),
                end: ms(i * 180 + 170),
                outcome: if i % 3 == 0 {
                    Outcome::Status(503)
                } else {
                    Outcome::Ok
                },
            });
        }
        let svg = render(&t, "long", "run", &verdict(true, Some(ms(2))));
        assert_well_formed(&svg);
        assert!(svg.len() < 1 << 20, "{} bytes", svg.len());
    }

    #[test]
    fn a_clean_run_says_pass_and_has_no_failure_strip() {
        let mut t = Timeline::new(Duration::from_secs(1), 1);
        for i in 0..500u64 {
            t.record_fast(ms(i * 2), Duration::from_micros(300 + i), Outcome::Ok);
        }
        let svg = render(
            &t,
            "t",
            "s",
            &verdict(true, Some(Duration::from_micros(790))),
        );
        assert_well_formed(&svg);
        assert!(svg.contains(r#"class="verdict pass""#));
        assert!(
            !svg.contains("fast failures"),
            "no label over an empty strip"
        );
        // The p99 line sits inside the fast panel.
        let y: f64 = svg
            .split(r#"<line class="p99" x1="80" y1=""#)
            .nth(1)
            .unwrap()[..5]
            .trim_end_matches('"')
            .parse()
            .unwrap();
        assert!((PANEL_TOP..=PANEL_BOTTOM).contains(&y), "p99 at y={y}");
    }

    #[test]
    fn ticks_are_one_two_five() {
        assert_eq!(tick_step(10.0), 1.0);
        assert_eq!(tick_step(30.0), 5.0);
        assert_eq!(tick_step(0.5), 0.05);
        assert_eq!(tick_step(120.0), 20.0);
    }
}
