//! PNG charts of a load test, drawn with `plotters`.
//!
//! - `queue.png`: per run, queue depth and live scanners against time (the
//!   NeuVector guide's picture of a scan: the backlog draining as scanners
//!   work it off, and the autoscaler adding them).
//! - `memory.png`: per run, the resident memory of the largest scanner, the
//!   controller and nats-server against time — flat when layers are streamed.
//! - `throughput.png`: images per second against the scanner count, beside
//!   the line of perfect scaling from the smallest count, so the point where
//!   the registry's bandwidth (not the scanners) sets the pace is visible.
//!
//! Text is drawn with DejaVu Sans read from the system's fonts (Debian
//! `fonts-dejavu-core`, which scripts/setup installs): plotters' pure-Rust
//! `ab_glyph` backend, so no fontconfig or freetype is linked.

use crate::runner::RunResult;
use anyhow::{anyhow, bail, Result};
use plotters::chart::{MeshStyle, SeriesLabelStyle};
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// Where DejaVu Sans may be.
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];
const FONT: &str = "sans-serif";
const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREY: RGBColor = RGBColor(150, 150, 150);
const GREEN: RGBColor = RGBColor(44, 160, 44);

fn register_font() -> Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = FONT_PATHS.iter().find_map(|p| std::fs::read(p).ok()).ok_or_else(|| {
            format!(
                "no DejaVu Sans font for the charts (looked in {}); install fonts-dejavu-core",
                FONT_PATHS.join(", ")
            )
        })?;
        // The font lives as long as the process: plotters keeps a &'static reference.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font(FONT, FontStyle::Normal, bytes)
            .map_err(|_| "DejaVu Sans is not a valid font".into())
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// Draws `queue.png`: one panel per run, depth (left axis) and scanners (right axis) over time.
pub fn queue_chart(path: &Path, title: &str, runs: &[RunResult]) -> Result<()> {
    per_run_panels(path, title, runs, |panel, run, t_max| {
        let depth_max = run.samples.iter().filter_map(|s| s.depth).max().unwrap_or(0).max(1) as f64;
        let scanners_max = run.samples.iter().map(|s| s.scanners).max().unwrap_or(0).max(1) as f64;
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{}: {:.1} s", run.label, run.total_s), (FONT, 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .right_y_label_area_size(60)
            .build_cartesian_2d(0.0..t_max, 0.0..depth_max * 1.1)
            .map_err(draw)?
            .set_secondary_coord(0.0..t_max, 0.0..(scanners_max + 1.0));
        time_mesh(chart.configure_mesh(), "tasks in the queue")?;
        chart
            .configure_secondary_axes()
            .y_desc("scanners")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(draw)?;
        chart
            .draw_series(LineSeries::new(
                run.samples.iter().filter_map(|s| s.depth.map(|d| (s.t, d as f64))),
                BLUE.stroke_width(2),
            ))
            .map_err(draw)?
            .label("queue depth")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        chart
            .draw_secondary_series(LineSeries::new(
                run.samples.iter().map(|s| (s.t, s.scanners as f64)),
                ORANGE.stroke_width(2),
            ))
            .map_err(draw)?
            .label("scanners")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], ORANGE.stroke_width(2)));
        // Injected faults, as markers on the time axis.
        let faults: Vec<f64> = run.samples.iter().filter(|s| s.event.is_some()).map(|s| s.t).collect();
        if !faults.is_empty() {
            chart
                .draw_series(
                    faults.iter().map(|&t| PathElement::new(vec![(t, 0.0), (t, depth_max * 1.1)], RED.stroke_width(1))),
                )
                .map_err(draw)?
                .label("fault injected")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        }
        draw_legend(chart.configure_series_labels(), SeriesLabelPosition::UpperRight, 13)
    })
}

/// Picks one process's figure out of a sample.
type ResidentPart = fn(&crate::stack::Resident) -> u64;

/// Draws `memory.png`: one panel per run, the resident memory of the largest
/// scanner, the controller and nats-server over time.
pub fn memory_chart(path: &Path, title: &str, runs: &[RunResult]) -> Result<()> {
    let mib = |kib: u64| kib as f64 / 1024.0;
    per_run_panels(path, title, runs, |panel, run, t_max| {
        let r = |s: &crate::runner::Sample| s.resident;
        let y_max = run
            .samples
            .iter()
            .map(|s| mib(r(s).scanner_kib.max(r(s).controller_kib).max(r(s).nats_kib)))
            .fold(1.0, f64::max);
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("{}: peak VmHWM of any scanner {:.0} MiB", run.label, run.memory.peak_mib("scanner")),
                (FONT, 18),
            )
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..t_max, 0.0..y_max * 1.25)
            .map_err(draw)?;
        time_mesh(chart.configure_mesh(), "resident memory, MiB")?;
        let lines: [(&str, RGBColor, ResidentPart); 3] = [
            ("largest scanner", BLUE, |r| r.scanner_kib),
            ("controller", ORANGE, |r| r.controller_kib),
            ("nats-server", GREEN, |r| r.nats_kib),
        ];
        for (label, colour, pick) in lines {
            chart
                .draw_series(LineSeries::new(
                    run.samples.iter().map(|s| (s.t, mib(pick(&s.resident)))),
                    colour.stroke_width(2),
                ))
                .map_err(draw)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        }
        // The lines sit high and flat: the legend goes below them.
        draw_legend(chart.configure_series_labels(), SeriesLabelPosition::LowerRight, 13)
    })
}

/// Draws `throughput.png`: images/s against scanners, with the line of perfect scaling.
pub fn throughput_chart(path: &Path, title: &str, points: &[(usize, f64)]) -> Result<()> {
    register_font()?;
    let Some(&(n0, t0)) = points.iter().min_by_key(|p| p.0) else { bail!("no runs to chart") };
    let n_max = points.iter().map(|p| p.0).max().unwrap_or(1) as f64;
    let ideal = |n: f64| t0 * n / n0 as f64;
    let y_max = points.iter().map(|p| p.1).fold(ideal(n_max), f64::max) * 1.1;
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(draw)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 22))
        .margin(15)
        .x_label_area_size(44)
        .y_label_area_size(64)
        // Room on the right for the last point's label.
        .build_cartesian_2d(0.0..n_max * 1.2 + 0.5, 0.0..y_max)
        .map_err(draw)?;
    chart
        .configure_mesh()
        .x_desc("scanners")
        .y_desc("images scanned per second")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(draw)?;
    chart
        .draw_series(LineSeries::new([(n0 as f64, t0), (n_max, ideal(n_max))], GREY.stroke_width(1)))
        .map_err(draw)?
        .label(format!("perfect scaling from {n0}"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREY));
    let mut sorted = points.to_vec();
    sorted.sort_by_key(|p| p.0);
    chart
        .draw_series(LineSeries::new(sorted.iter().map(|&(n, t)| (n as f64, t)), BLUE.stroke_width(2)))
        .map_err(draw)?
        .label("measured")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart.draw_series(sorted.iter().map(|&(n, t)| Circle::new((n as f64, t), 5, BLUE.filled()))).map_err(draw)?;
    chart
        .draw_series(sorted.iter().map(|&(n, t)| {
            Text::new(format!("{t:.2}/s ({:.2}×)", t / t0), (n as f64 + 0.1, t + y_max * 0.02), (FONT, 13))
        }))
        .map_err(draw)?;
    draw_legend(chart.configure_series_labels(), SeriesLabelPosition::UpperLeft, 14)?;
    root.present().map_err(draw)?;
    Ok(())
}

/// The panel of one run.
type Panel<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// A chart of `title` at `path` with one panel per run, stacked; `draw_panel`
/// gets each panel, its run and the run's last sample time (the x range).
fn per_run_panels(
    path: &Path,
    title: &str,
    runs: &[RunResult],
    mut draw_panel: impl FnMut(&Panel<'_>, &RunResult, f64) -> Result<()>,
) -> Result<()> {
    register_font()?;
    if runs.is_empty() {
        bail!("no runs to chart");
    }
    let height = 120 + 260 * runs.len() as u32;
    let root = BitMapBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE).map_err(draw)?;
    let (head, body) = root.split_vertically(50);
    head.titled(title, (FONT, 26)).map_err(draw)?;
    for (panel, run) in body.split_evenly((runs.len(), 1)).iter().zip(runs) {
        let t_max = run.samples.last().map_or(1.0, |s| s.t).max(1.0);
        draw_panel(panel, run, t_max)?;
    }
    root.present().map_err(draw)
}

/// The grid of a per-run panel: seconds along, `y` up.
fn time_mesh<
    DB: DrawingBackend,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
>(
    mut mesh: MeshStyle<'_, '_, X, Y, DB>,
    y: &str,
) -> Result<()> {
    mesh.x_desc("seconds since the crawl started")
        .y_desc(y)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(draw)
}

/// Every chart's legend: a framed, half-transparent box at `position`.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    mut labels: SeriesLabelStyle<'a, '_, DB, CT>,
    position: SeriesLabelPosition,
    font_size: u32,
) -> Result<()> {
    labels.position(position).label_font((FONT, font_size)).background_style(WHITE.mix(0.8)).border_style(GREY);
    labels.draw().map_err(draw)
}

fn draw<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the chart: {e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Sample;

    fn run(label: &str, scanners: usize) -> RunResult {
        let samples = (0..10)
            .map(|t| Sample {
                t: t as f64,
                depth: Some(10 - t),
                scanners,
                completed: t as usize,
                bytes: 0,
                resident: crate::stack::Resident {
                    total_kib: 100 << 10,
                    scanner_kib: (30 + t) << 10,
                    controller_kib: 40 << 10,
                    nats_kib: 20 << 10,
                },
                event: (t == 4).then(|| "killed 1 scanner(s)".into()),
                kill: (t == 4).then_some((scanners, 1)),
            })
            .collect();
        RunResult::fixture(label, scanners, samples)
    }

    #[test]
    fn draws_every_chart_as_png() {
        if FONT_PATHS.iter().all(|p| !Path::new(p).exists()) {
            eprintln!("skipped: no DejaVu Sans (install fonts-dejavu-core)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("queue.png");
        queue_chart(&q, "test", &[run("1-scanner", 1), run("2-scanners", 2)]).unwrap();
        let t = dir.path().join("throughput.png");
        throughput_chart(&t, "test", &[(1, 1.0), (2, 1.9), (4, 3.7)]).unwrap();
        let m = dir.path().join("memory.png");
        memory_chart(&m, "test", &[run("1-scanner", 1)]).unwrap();
        for p in [q, t, m] {
            let bytes = std::fs::read(&p).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", p.display());
            assert!(bytes.len() > 5_000, "{} is suspiciously small", p.display());
        }
    }
}
