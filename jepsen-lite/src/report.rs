//! The report: `index.html` with the verdict and three SVG plots drawn with plotters (SVG
//! backend only, so no font or image libraries): latency over time with the fault windows
//! shaded, throughput per second by outcome, and outcome counts per operation.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use crate::check::{validity_word, Validity, Verdict};
use crate::history::{FaultWindow, History, OpType, F};

/// Rendered report parts.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Latency over time.
    pub latency_svg: String,
    /// Completions per second by outcome.
    pub throughput_svg: String,
    /// Outcome counts per operation.
    pub outcomes_svg: String,
    /// The page, with the three SVGs inline.
    pub html: String,
}

const OK: RGBColor = RGBColor(46, 139, 87);
const FAIL: RGBColor = RGBColor(214, 96, 77);
const INFO: RGBColor = RGBColor(90, 110, 200);
const FAULT: RGBColor = RGBColor(255, 170, 170);

fn colour(t: OpType) -> RGBColor {
    match t {
        OpType::Ok => OK,
        OpType::Fail => FAIL,
        _ => INFO,
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn f_name(f: F) -> String {
    serde_json::to_value(f)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// One completed (or timed-out) call: (completion time s, latency ms, outcome, function).
fn samples(history: &History) -> anyhow::Result<Vec<(f64, f64, OpType, F)>> {
    Ok(history
        .calls()?
        .iter()
        .filter_map(|c| {
            let done = c.complete?;
            Some((
                secs(done.time),
                done.time.saturating_sub(c.invoke.time) as f64 / 1e6,
                done.op_type,
                c.invoke.f,
            ))
        })
        .collect())
}

const OUTCOMES: [(OpType, &str); 3] = [
    (OpType::Ok, "ok"),
    (OpType::Fail, "fail"),
    (OpType::Info, "info"),
];

fn latency_svg(
    points: &[(f64, f64, OpType, F)],
    faults: &[FaultWindow],
    end: f64,
) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let max = points.iter().map(|p| p.1).fold(1.0_f64, f64::max) * 1.5;
        let min = points.iter().map(|p| p.1).fold(max, f64::min).max(1e-3) / 1.5;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Latency over time (fault windows shaded)",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..end.max(1e-3), (min..max).log_scale())
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("latency (ms)")
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .draw_series(faults.iter().map(|w| {
                Rectangle::new(
                    [(secs(w.start), min), (secs(w.end), max)],
                    FAULT.mix(0.35).filled(),
                )
            }))
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .draw_series(faults.iter().map(|w| {
                Text::new(
                    w.name.clone(),
                    (secs(w.start), max / 1.2),
                    ("sans-serif", 11).into_font(),
                )
            }))
            .map_err(|e| anyhow!("{e}"))?;
        for (t, label) in OUTCOMES {
            let c = colour(t);
            chart
                .draw_series(
                    points
                        .iter()
                        .filter(|p| p.2 == t)
                        .map(|p| Circle::new((p.0, p.1), 2, c.mix(0.6).filled())),
                )
                .map_err(|e| anyhow!("{e}"))?
                .label(label)
                .legend(move |(x, y)| Circle::new((x, y), 4, c.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    Ok(svg)
}

fn throughput_svg(
    points: &[(f64, f64, OpType, F)],
    faults: &[FaultWindow],
    end: f64,
) -> anyhow::Result<String> {
    // One-second buckets for real runs; short (simulated) runs get ~50 buckets, still
    // plotted as a rate per second.
    let width = if end >= 20.0 {
        1.0
    } else {
        (end / 50.0).max(1e-6)
    };
    let buckets = ((end / width).ceil() as usize).max(1);
    let mut counts: BTreeMap<OpType, Vec<u64>> = BTreeMap::new();
    for (t, _) in OUTCOMES {
        counts.insert(t, vec![0; buckets]);
    }
    for p in points {
        let b = ((p.0 / width).floor() as usize).min(buckets - 1);
        if let Some(v) = counts.get_mut(&p.2) {
            v[b] += 1;
        }
    }
    let max = counts.values().flatten().copied().max().unwrap_or(1).max(1) as f64 / width * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Throughput (completions per second)", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..buckets as f64 * width, 0f64..max)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("calls / s")
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .draw_series(faults.iter().map(|w| {
                Rectangle::new(
                    [(secs(w.start), 0.0), (secs(w.end), max)],
                    FAULT.mix(0.35).filled(),
                )
            }))
            .map_err(|e| anyhow!("{e}"))?;
        for (t, label) in OUTCOMES {
            let c = colour(t);
            let series = counts[&t]
                .iter()
                .enumerate()
                .map(|(i, &n)| ((i as f64 + 0.5) * width, n as f64 / width));
            chart
                .draw_series(LineSeries::new(series, c.stroke_width(2)))
                .map_err(|e| anyhow!("{e}"))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    Ok(svg)
}

fn outcomes_svg(points: &[(f64, f64, OpType, F)]) -> anyhow::Result<String> {
    let mut by_f: BTreeMap<F, [u64; 3]> = BTreeMap::new();
    for p in points {
        let slot = OUTCOMES.iter().position(|o| o.0 == p.2).unwrap_or(2);
        by_f.entry(p.3).or_default()[slot] += 1;
    }
    let names: Vec<String> = by_f.keys().map(|f| f_name(*f)).collect();
    let max = by_f
        .values()
        .map(|c| c.iter().sum::<u64>())
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.15;
    let n = by_f.len().max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Outcomes per operation", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..n as f64, 0f64..max)
            .map_err(|e| anyhow!("{e}"))?;
        // Category names are drawn as text under each bar rather than as axis labels,
        // which plotters would place at "nice" numbers, not at bar centres.
        chart
            .configure_mesh()
            .disable_x_mesh()
            .disable_x_axis()
            .y_desc("calls")
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        for (slot, (t, label)) in OUTCOMES.iter().enumerate() {
            let c = colour(*t);
            chart
                .draw_series(by_f.values().enumerate().map(|(i, counts)| {
                    let base: u64 = counts[..slot].iter().sum();
                    let top = base + counts[slot];
                    let mut r = Rectangle::new(
                        [
                            (i as f64 + 0.15, base as f64),
                            (i as f64 + 0.85, top as f64),
                        ],
                        c.filled(),
                    );
                    r.set_margin(0, 0, 1, 1);
                    r
                }))
                .map_err(|e| anyhow!("{e}"))?
                .label(*label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
        }
        chart
            .draw_series(names.iter().enumerate().map(|(i, name)| {
                // Staggered so that long names do not run into each other.
                let y = if i % 2 == 0 { 0.97 } else { 0.90 };
                Text::new(
                    name.clone(),
                    (i as f64 + 0.1, max * y),
                    ("sans-serif", 12).into_font(),
                )
            }))
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::MiddleRight)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    Ok(svg)
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

fn num(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "-".into(),
        v => v.to_string(),
    }
}

/// Performance targets (leader-kill recovery) with every kill's time.
fn targets_section(h: &mut String, verdict: &Verdict) {
    if verdict.targets.is_empty() {
        return;
    }
    h.push_str(
        "<h2>Targets</h2>\n<p>Performance targets; a miss does not change the verdict.</p>\n",
    );
    for t in &verdict.targets {
        let (word, colour) = match t.validity {
            Validity::Valid => ("met", "#2e8b57"),
            Validity::Invalid => ("MISSED", "#c0392b"),
            Validity::Unknown => ("unknown", "#b7950b"),
        };
        let st = &t.stats;
        let _ = writeln!(
            h,
            "<h3>Leader kill to first acknowledged write ({}): \
             <span style=\"color:{colour}\">{word}</span></h3>\n\
             <p>p50 <b>{} ms</b> (target &le; {} ms), p99 <b>{} ms</b> (target &le; {} ms) over \
             {} leader kills; {} never recovered within 30 s. Measured by a probe writing every \
             100 ms from the kill.</p>",
            escape(&t.checker),
            num(&st["p50_ms"]),
            num(&st["p50_target_ms"]),
            num(&st["p99_ms"]),
            num(&st["p99_target_ms"]),
            num(&st["leader_kills"]),
            num(&st["unrecovered"]),
        );
        for a in &t.anomalies {
            let _ = writeln!(h, "<pre>{}</pre>", escape(&a.message));
        }
        for n in &t.notes {
            let _ = writeln!(h, "<p>{}</p>", escape(n));
        }
        if let Some(kills) = st["kills"].as_array().filter(|k| !k.is_empty()) {
            h.push_str(
                "<table><tr><th>kill at (s)</th><th>node</th><th>probe write (ms)</th>\
                 <th>first workload write (ms)</th></tr>\n",
            );
            for k in kills {
                let at = k["at_ms"]
                    .as_u64()
                    .map_or("-".into(), |ms| format!("{:.3}", ms as f64 / 1e3));
                let _ = writeln!(
                    h,
                    "<tr><td>{at}</td><td>n{}</td><td>{}</td><td>{}</td></tr>",
                    num(&k["node"]),
                    if k["recovery_ms"].is_null() {
                        "never".into()
                    } else {
                        num(&k["recovery_ms"])
                    },
                    num(&k["workload_recovery_ms"]),
                );
            }
            h.push_str("</table>\n");
        }
    }
}

/// The revocation checker's measurements.
fn revocation_section(h: &mut String, verdict: &Verdict) {
    let Some(r) = verdict.checks.iter().find(|c| c.checker == "revocation") else {
        return;
    };
    let st = &r.stats;
    if st["acknowledged_revocations"].as_u64().unwrap_or(0) == 0 {
        return;
    }
    let _ = writeln!(
        h,
        "<h2>Revocation staleness</h2>\n<p>Max observed staleness <b>{} ms</b> \
         (p50 {} ms, p99 {} ms per revocation) against a bound of <b>{} ms</b> \
         ({} ms front cache staleness + {} ms allowance). {} acknowledged revocations, {} \
         probed by an Encrypt past the bound, {} undone at once by a concurrent restore; the \
         first Encrypt after an acknowledgement came at most {} ms later (the resolution). By \
         mechanism: {}.</p>",
        num(&st["max_observed_staleness_ms"]),
        num(&st["p50_observed_staleness_ms"]),
        num(&st["p99_observed_staleness_ms"]),
        num(&st["bound_ms"]),
        num(&st["cache_staleness_ms"]),
        num(&st["allowance_ms"]),
        num(&st["acknowledged_revocations"]),
        num(&st["windows_probed_past_bound"]),
        num(&st["windows_undone_at_once"]),
        num(&st["max_first_probe_after_ack_ms"]),
        match st["max_observed_staleness_ms_by_via"].as_object() {
            Some(m) if !m.is_empty() => escape(&st["max_observed_staleness_ms_by_via"].to_string()),
            _ => "no Encrypt succeeded after any acknowledged revocation".into(),
        },
    );
}

/// Renders the plots and the page.
pub fn render(
    history: &History,
    faults: &[FaultWindow],
    verdict: &Verdict,
) -> anyhow::Result<Rendered> {
    let points = samples(history)?;
    let end = secs(history.end_time()).max(faults.iter().map(|w| secs(w.end)).fold(0.0, f64::max));
    let latency_svg = latency_svg(&points, faults, end)?;
    let throughput_svg = throughput_svg(&points, faults, end)?;
    let outcomes_svg = outcomes_svg(&points)?;

    let mut h = String::new();
    let colour_of = |v: Validity| match v {
        Validity::Valid => "#2e8b57",
        Validity::Invalid => "#c0392b",
        Validity::Unknown => "#b7950b",
    };
    let _ = write!(
        h,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>jepsen-lite: {v}</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1000px}}\
         td,th{{padding:.2em .6em;text-align:left;vertical-align:top}}\
         .v{{font-weight:bold}} pre{{white-space:pre-wrap}}</style></head><body>\n\
         <h1>jepsen-lite verdict: <span style=\"color:{c}\">{v}</span></h1>\n\
         <p>{events} events. Files: <a href=\"verdict.json\">verdict.json</a>, \
         <a href=\"history.jsonl\">history.jsonl</a>.</p>\n<table>\
         <tr><th>checker</th><th>result</th><th>time</th><th>details</th></tr>\n",
        v = validity_word(verdict.validity),
        c = colour_of(verdict.validity),
        events = verdict.events,
    );
    for check in &verdict.checks {
        let mut details = String::new();
        for a in &check.anomalies {
            let _ = write!(details, "<pre>{}</pre>", escape(&a.message));
        }
        for n in &check.notes {
            let _ = write!(details, "<p>{}</p>", escape(n));
        }
        if !check.stats.is_null() {
            let _ = write!(
                details,
                "<small>{}</small>",
                escape(&check.stats.to_string())
            );
        }
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"v\" style=\"color:{}\">{}</td><td>{} ms</td><td>{}</td></tr>",
            escape(&check.checker),
            colour_of(check.validity),
            validity_word(check.validity),
            check.elapsed_ms,
            details
        );
    }
    h.push_str("</table>\n");
    targets_section(&mut h, verdict);
    revocation_section(&mut h, verdict);
    h.push_str("<h2>Plots</h2>\n");
    for svg in [&latency_svg, &throughput_svg, &outcomes_svg] {
        h.push_str("<div>");
        h.push_str(svg);
        h.push_str("</div>\n");
    }
    if !faults.is_empty() {
        h.push_str(
            "<h2>Faults</h2>\n<table><tr><th>from (s)</th><th>to (s)</th><th>fault</th></tr>\n",
        );
        for w in faults {
            let _ = writeln!(
                h,
                "<tr><td>{:.3}</td><td>{:.3}</td><td>{}</td></tr>",
                secs(w.start),
                secs(w.end),
                escape(&w.name)
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body></html>\n");
    Ok(Rendered {
        latency_svg,
        throughput_svg,
        outcomes_svg,
        html: h,
    })
}

/// Writes `index.html`, `latency.svg`, `throughput.svg` and `outcomes.svg` into `dir`.
pub fn write(
    dir: &Path,
    history: &History,
    faults: &[FaultWindow],
    verdict: &Verdict,
) -> anyhow::Result<()> {
    let r = render(history, faults, verdict)?;
    std::fs::write(dir.join("latency.svg"), &r.latency_svg)?;
    std::fs::write(dir.join("throughput.svg"), &r.throughput_svg)?;
    std::fs::write(dir.join("outcomes.svg"), &r.outcomes_svg)?;
    std::fs::write(dir.join("index.html"), &r.html)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{check_all, Options};
    use crate::sim::{simulate, Plant, SimConfig};

    #[test]
    fn report_renders_plots_with_fault_windows_and_the_verdict() {
        let cfg = SimConfig {
            calls: 2_000,
            ..SimConfig::default()
        };
        let sim = simulate(&cfg, &[Plant::StaleRead]);
        let verdict = check_all(&sim.history, Some(&sim.replicas), &Options::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &sim.history, &sim.faults, &verdict).unwrap();

        let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
        assert!(html.contains("INVALID"), "the verdict is on the page");
        assert!(
            html.contains("planted-A"),
            "the anomaly's explanation is on the page"
        );
        assert_eq!(html.matches("<svg").count(), 3, "three plots inline");
        let latency = std::fs::read_to_string(dir.path().join("latency.svg")).unwrap();
        assert!(
            latency.contains("partition n1 | n2,n3"),
            "fault windows are labelled"
        );
        assert!(
            latency.matches("<circle").count() > 1_000,
            "one point per call"
        );
        let throughput = std::fs::read_to_string(dir.path().join("throughput.svg")).unwrap();
        assert!(throughput.contains("<polyline"), "throughput lines");
        let outcomes = std::fs::read_to_string(dir.path().join("outcomes.svg")).unwrap();
        assert!(outcomes.contains("describe") && outcomes.contains("encrypt"));
    }

    #[test]
    fn report_shows_revocation_staleness_and_every_leader_kill() {
        use crate::check::recovery::{self, RecoveryTimes};
        let sim = simulate(&SimConfig::default(), &[Plant::LateEncryptAfterDisable]);
        let mut verdict =
            check_all(&sim.history, Some(&sim.replicas), &Options::default()).unwrap();
        verdict.push_target(recovery::check(&RecoveryTimes {
            per_kill_ms: vec![Some(700), None],
            kill_at_ms: vec![12_345, 40_000],
            kill_node: vec![2, 3],
            workload_per_kill_ms: vec![Some(900), None],
        }));
        let html = render(&sim.history, &sim.faults, &verdict).unwrap().html;
        assert!(html.contains("Revocation staleness"), "revocation section");
        assert!(
            html.contains("Max observed staleness <b>1500"),
            "max staleness shown"
        );
        assert!(
            html.contains("MISSED"),
            "a kill that never recovered misses p99"
        );
        assert!(
            html.contains("<td>12.345</td><td>n2</td><td>700</td><td>900</td>"),
            "each kill's time, node and recovery"
        );
        assert!(html.contains("<td>never</td>"));
    }

    #[test]
    fn html_escapes_messages() {
        assert_eq!(
            escape("<a href=\"x\">&"),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
    }
}
