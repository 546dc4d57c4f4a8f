//! The data layers of the `--svg` timeline (the frame, scales and legend
//! are in `svg.rs`): the fast latency band with its p50 line, the run's
//! fast p99 line, the strip of fast failure marks, and the slow lane with
//! one bar per slow request and one mark per failed one.

use std::fmt::Write;
use std::time::Duration;

use super::fmt_ms;
use super::svg::{escape, ms, Scales, LANE_TOP, LEFT, RIGHT, STRIP_TOP};
use super::timeline::{MarkClass, Outcome, SlowSpan, Timeline};

fn mark_css(class: MarkClass) -> &'static str {
    match class {
        MarkClass::Overloaded503 => "mark-503",
        MarkClass::Timeout504 => "mark-504",
        MarkClass::OtherError => "mark-other",
    }
}

fn mark_name(class: MarkClass) -> &'static str {
    match class {
        MarkClass::Overloaded503 => "503",
        MarkClass::Timeout504 => "504",
        MarkClass::OtherError => "other error",
    }
}

pub(super) fn fast_band(s: &mut String, sc: &Scales, timeline: &Timeline) {
    let width = (sc.x(timeline.bucket) - LEFT).max(0.5);
    let mut segment: Vec<(f64, f64)> = Vec::new();
    for (i, bucket) in timeline.buckets.iter().enumerate() {
        let x = sc.x(timeline.bucket * i as u32);
        match bucket.fast_ok.as_ref().filter(|h| !h.is_empty()) {
            Some(h) => {
                let (y50, ymax) = (sc.y(ms(h.median())), sc.y(ms(h.max())));
                let _ = writeln!(
                    s,
                    r#"<rect class="band" x="{x:.1}" y="{ymax:.1}" width="{width:.1}" height="{:.1}"><title>{:.1} s: {} ok, p50 {:.3} ms, max {:.3} ms</title></rect>"#,
                    (y50 - ymax).max(1.0),
                    (timeline.bucket * i as u32).as_secs_f64(),
                    h.count(),
                    ms(h.median()),
                    ms(h.max())
                );
                segment.push((x + width / 2.0, y50));
            }
            None => p50_segment(s, &mut segment),
        }
    }
    p50_segment(s, &mut segment);
}

/// Draws and empties one run of consecutive p50 points.
fn p50_segment(s: &mut String, points: &mut Vec<(f64, f64)>) {
    match points.len() {
        0 => {}
        1 => {
            let _ = writeln!(
                s,
                r#"<circle class="dot" cx="{:.1}" cy="{:.1}" r="2"/>"#,
                points[0].0, points[0].1
            );
        }
        _ => {
            s.push_str(r#"<polyline class="p50" points=""#);
            for (x, y) in points.iter() {
                let _ = write!(s, "{x:.1},{y:.1} ");
            }
            s.push_str("\"/>\n");
        }
    }
    points.clear();
}

/// The run's fast p99 as a dashed line across the panel, labelled at its right end.
pub(super) fn p99_line(s: &mut String, sc: &Scales, p99: Duration) {
    let y = sc.y(ms(p99));
    let _ = writeln!(
        s,
        r#"<line class="p99" x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}"><title>fast p99 of the run: {p} ms</title></line><text class="p99-label" x="{:.0}" y="{:.1}" text-anchor="end">p99 {p} ms</text>"#,
        RIGHT - 4.0,
        y - 4.0,
        p = fmt_ms(p99)
    );
}

pub(super) fn fast_marks(s: &mut String, sc: &Scales, timeline: &Timeline) {
    let width = (sc.x(timeline.bucket) - LEFT).max(2.0);
    for (i, bucket) in timeline.buckets.iter().enumerate() {
        for (k, class) in MarkClass::ALL.into_iter().enumerate() {
            let n = bucket.fast_failed(class);
            if n > 0 {
                let at = timeline.bucket * i as u32;
                let _ = writeln!(
                    s,
                    r#"<rect class="{}" x="{:.1}" y="{:.1}" width="{width:.1}" height="5"><title>{n} fast {} at {:.1} s</title></rect>"#,
                    mark_css(class),
                    sc.x(at),
                    STRIP_TOP + 6.0 * k as f64,
                    mark_name(class),
                    at.as_secs_f64()
                );
            }
        }
    }
}

pub(super) fn slow_lane(s: &mut String, sc: &Scales, timeline: &Timeline, row: f64) {
    if timeline.slow_spans.is_empty() && timeline.slow_not_kept == 0 {
        let _ = writeln!(
            s,
            r#"<text class="sub" x="{:.0}" y="{:.1}">no slow requests</text>"#,
            LEFT + 8.0,
            LANE_TOP + 12.0
        );
    }
    // Rows a few pixels high have no room for outlines.
    s.push_str(if row < 6.0 {
        "<g class=\"dense\">\n"
    } else {
        "<g>\n"
    });
    for span in &timeline.slow_spans {
        slow_span(s, sc, span, row);
    }
    s.push_str("</g>\n");
    // Failures of the slow requests not kept one by one: one mark per bucket and kind.
    for (i, bucket) in timeline.buckets.iter().enumerate() {
        for class in MarkClass::ALL {
            let n = bucket.slow_failed(class);
            if n > 0 {
                let at = timeline.bucket * i as u32;
                let _ = writeln!(
                    s,
                    r#"<rect class="{}" x="{:.1}" y="{:.1}" width="3" height="{:.1}"><title>{n} slow {} at {:.1} s</title></rect>"#,
                    mark_css(class),
                    sc.x(at),
                    LANE_TOP,
                    row * timeline.lanes.max(1) as f64,
                    mark_name(class),
                    at.as_secs_f64()
                );
            }
        }
    }
    if timeline.slow_not_kept > 0 {
        let _ = writeln!(
            s,
            r#"<text class="sub" x="{RIGHT}" y="{:.1}" text-anchor="end">{} later slow requests not drawn one by one (failures marked per bucket)</text>"#,
            LANE_TOP - 6.0,
            timeline.slow_not_kept
        );
    }
}

fn slow_span(s: &mut String, sc: &Scales, span: &SlowSpan, row: f64) {
    let y = LANE_TOP + row * span.lane as f64;
    let h = (row - 1.0).max(0.8);
    let (x0, x1) = (sc.x(span.start), sc.x(span.end));
    let class = match span.outcome {
        Outcome::Ok => "slow-ok",
        Outcome::Unfinished => "unfinished",
        _ => "slow-fail",
    };
    let what = match span.outcome {
        Outcome::Ok => "ok".to_string(),
        Outcome::Unfinished => "unfinished at the end of the run".to_string(),
        Outcome::Status(code) => format!("status {code}"),
        other => format!("{other:?}").to_lowercase(),
    };
    let _ = writeln!(
        s,
        r#"<rect class="{class}" x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}"><title>slow {:.3}-{:.3} s: {}</title></rect>"#,
        (x1 - x0).max(1.0),
        span.start.as_secs_f64(),
        span.end.as_secs_f64(),
        escape(&what)
    );
    if let Some(class) = span.outcome.mark() {
        let r = (h / 2.0).clamp(1.5, 4.0);
        let _ = writeln!(
            s,
            r#"<circle class="{}" cx="{x1:.1}" cy="{:.1}" r="{r:.1}"><title>slow {} at {:.3} s</title></circle>"#,
            mark_css(class),
            y + h / 2.0,
            escape(&what),
            span.end.as_secs_f64()
        );
    }
}
