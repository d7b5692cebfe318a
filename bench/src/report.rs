//! Results: a table on stdout, JSON, an SVG plot per run, and the comparison table that puts
//! several runs (read back from their JSON) side by side with ratios.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

use crate::runner::RunReport;

const HEADER: &str = "target        op                 mode          conns       ok   errors      req/s     p50     p90     p99   p99.9     max";

fn mode_of(r: &RunReport) -> String {
    match r.rate {
        Some(rate) => format!("open {rate:.0}/s"),
        None => "closed".into(),
    }
}

fn row(r: &RunReport) -> String {
    let l = &r.latency;
    format!(
        "{:<13} {:<18} {:<13} {:>5} {:>8} {:>8} {:>10.1} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2}",
        r.target,
        r.op,
        mode_of(r),
        r.concurrency,
        r.ok,
        r.error_count(),
        r.throughput,
        l.p50,
        l.p90,
        l.p99,
        l.p999,
        l.max
    )
}

/// The table for one or more runs (latencies in ms), with errors by kind below.
pub fn table(runs: &[RunReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{HEADER}   (latency ms)");
    for r in runs {
        let _ = writeln!(out, "{}", row(r));
        if let Some(s) = &r.service_time {
            let _ = writeln!(
                out,
                "  service time (from actual send): p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms",
                s.p50, s.p90, s.p99, s.p999, s.max
            );
        }
        for (kind, n) in &r.errors {
            let _ = writeln!(out, "  error {kind}: {n}");
        }
    }
    out
}

/// Writes the runs as pretty JSON (a list).
pub fn write_json(path: &Path, runs: &[RunReport]) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(runs)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Reads runs written by [`write_json`] (a list, or a single run).
pub fn read_json(path: &Path) -> anyhow::Result<Vec<RunReport>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if let Ok(list) = serde_json::from_str::<Vec<RunReport>>(&text) {
        return Ok(list);
    }
    Ok(vec![
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
    ])
}

/// An SVG with throughput over time (top) and p50/p99/max latency per second (bottom).
pub fn write_svg(path: &Path, r: &RunReport) -> anyhow::Result<()> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 640)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (top, bottom) = root.split_vertically(320);
        let secs = r.series.len().max(1) as u32;
        let title = format!(
            "{} {} ({}, {} clients, {} B): {:.0} req/s",
            r.target,
            r.op,
            mode_of(r),
            r.concurrency,
            r.payload_bytes,
            r.throughput
        );
        let max_ok = r.series.iter().map(|s| s.ok).max().unwrap_or(1).max(1) as f64;
        let mut chart = ChartBuilder::on(&top)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0u32..secs, 0f64..max_ok * 1.1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("second")
            .y_desc("successes / s")
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(LineSeries::new(
                r.series.iter().map(|s| (s.t, s.ok as f64)),
                &BLUE,
            ))
            .map_err(plot_err)?
            .label("ok/s")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        if r.series.iter().any(|s| s.errors > 0) {
            chart
                .draw_series(LineSeries::new(
                    r.series.iter().map(|s| (s.t, s.errors as f64)),
                    &RED,
                ))
                .map_err(plot_err)?
                .label("errors/s")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;

        let max_ms = r
            .series
            .iter()
            .map(|s| s.p99)
            .fold(r.latency.p99, f64::max)
            .max(0.1);
        let mut lat = ChartBuilder::on(&bottom)
            .caption(
                format!(
                    "latency per second (ms); whole run p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
                    r.latency.p50, r.latency.p99, r.latency.p999, r.latency.max
                ),
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0u32..secs, 0f64..max_ms * 1.2)
            .map_err(plot_err)?;
        lat.configure_mesh()
            .x_desc("second")
            .y_desc("ms")
            .draw()
            .map_err(plot_err)?;
        for (name, color, pick) in [
            (
                "p50",
                GREEN,
                (|s: &crate::runner::Second| s.p50) as fn(&_) -> f64,
            ),
            ("p99", MAGENTA, |s| s.p99),
        ] {
            lat.draw_series(LineSeries::new(
                r.series.iter().map(|s| (s.t, pick(s))),
                &color,
            ))
            .map_err(plot_err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        lat.configure_series_labels()
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))
}

fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plot: {e}")
}

/// Same workload: op, mode, clients, rate and payload.
fn same_workload(a: &RunReport, b: &RunReport) -> bool {
    a.op == b.op
        && a.mode == b.mode
        && a.concurrency == b.concurrency
        && a.rate == b.rate
        && a.payload_bytes == b.payload_bytes
}

/// The comparison table: every run, and beside each keyraft run its throughput as a multiple
/// of OpenBao's on the same workload (open loop: p99 side by side) and as a fraction of the
/// transport floor (echo-https for JSON, echo-grpc for gRPC) run with the same op (its
/// requests), clients and payload.
pub fn compare(runs: &[RunReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{HEADER}   vs-openbao   vs-floor   (latency ms)");
    for r in runs {
        let mut line = row(r);
        let bao = runs
            .iter()
            .find(|b| b.target == "openbao" && same_workload(b, r));
        let vs_bao = match bao {
            Some(b)
                if r.target.starts_with("keyraft") && r.rate.is_none() && b.throughput > 0.0 =>
            {
                format!("{:.2}x", r.throughput / b.throughput)
            }
            Some(b) if r.target.starts_with("keyraft") && r.rate.is_some() => {
                format!("p99 {:.1}/{:.1}", r.latency.p99, b.latency.p99)
            }
            _ => "-".into(),
        };
        let floor_name = match r.target.as_str() {
            "keyraft-json" => Some("echo-https"),
            "keyraft-grpc" => Some("echo-grpc"),
            _ => None,
        };
        let floor = floor_name.and_then(|f| {
            runs.iter().find(|e| {
                e.target == f
                    && e.op == r.op
                    && e.mode == r.mode
                    && e.concurrency == r.concurrency
                    && e.rate == r.rate
                    && e.payload_bytes == r.payload_bytes
            })
        });
        let vs_floor = match floor {
            Some(e) if e.throughput > 0.0 && r.rate.is_none() => {
                format!(
                    "{:.0}% of {}",
                    100.0 * r.throughput / e.throughput,
                    e.target
                )
            }
            _ => "-".into(),
        };
        let _ = write!(line, "   {vs_bao:>10}   {vs_floor}");
        let _ = writeln!(out, "{line}");
        for (kind, n) in &r.errors {
            let _ = writeln!(out, "  error {kind}: {n}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{Percentiles, Second};

    fn run(target: &str, op: &str, rps: f64) -> RunReport {
        RunReport {
            target: target.into(),
            op: op.into(),
            mode: "closed".into(),
            concurrency: 32,
            payload_bytes: 200,
            duration_s: 10.0,
            ok: (rps * 10.0) as u64,
            throughput: rps,
            latency: Percentiles {
                count: 10,
                p50: 1.0,
                p99: 5.0,
                ..Default::default()
            },
            series: (0..10)
                .map(|t| Second {
                    t,
                    ok: rps as u64,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn compare_puts_keyraft_against_openbao_and_its_transport_floor() {
        let runs = vec![
            run("openbao", "encrypt", 5000.0),
            run("keyraft-json", "encrypt", 15000.0),
            run("echo-https", "encrypt", 30000.0),
            run("keyraft-grpc", "create-key", 100.0),
        ];
        let t = compare(&runs);
        let json_line = t.lines().find(|l| l.starts_with("keyraft-json")).unwrap();
        assert!(json_line.contains("3.00x"), "{t}");
        assert!(json_line.contains("50% of echo-https"), "{t}");
        let grpc_line = t.lines().find(|l| l.starts_with("keyraft-grpc")).unwrap();
        assert!(
            grpc_line.trim_end().ends_with("-"),
            "no baseline, no ratio: {t}"
        );
    }

    #[test]
    fn json_round_trips_and_the_plot_is_an_svg() {
        let dir = tempfile::tempdir().unwrap();
        let r = run("keyraft-json", "encrypt", 1234.0);
        write_json(&dir.path().join("r.json"), std::slice::from_ref(&r)).unwrap();
        let back = read_json(&dir.path().join("r.json")).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].ok, r.ok);
        write_svg(&dir.path().join("r.svg"), &r).unwrap();
        let svg = std::fs::read_to_string(dir.path().join("r.svg")).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("polyline"),
            "{}",
            &svg[..200.min(svg.len())]
        );
    }
}
