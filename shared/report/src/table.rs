//! The human-readable findings table for terminals: grouped by package,
//! most severe first, with a summary line; coloured when asked (on a TTY).
//!
//! When the report is grouped by layer ([`ScanReport::group_by_layer`]), the
//! table has one section per image layer, bottom first, headed by the
//! layer's digest and build instruction, so a reader sees which layer brought
//! each problem in. Both views share the per-package grouping and column
//! widths.

use crate::common::coverage_warning;
use crate::scan::ScanReport;
use std::fmt::Write;
use trawl_vulndb::{Finding, Rating};

fn paint(text: &str, rating: Rating, color: bool) -> String {
    if !color {
        return text.to_string();
    }
    let code = match rating {
        Rating::Critical => "1;31",
        Rating::High => "31",
        Rating::Medium => "33",
        Rating::Low => "34",
        Rating::Negligible | Rating::Unknown => "2",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// How the table is drawn.
#[derive(Debug, Clone, Copy, Default)]
pub struct TableStyle {
    /// Colour severities with ANSI escapes (on a terminal).
    pub color: bool,
    /// Terminal width: finding summaries are cut to fit it. `None` keeps
    /// [`SUMMARY_CHARS`] characters, for files and pipes.
    pub width: Option<usize>,
}

/// Summary characters kept when the width is unknown.
pub const SUMMARY_CHARS: usize = 70;
/// Fewest summary characters shown, however narrow the terminal.
const MIN_SUMMARY_CHARS: usize = 20;

/// Renders the report as a table, for a pipe or file (`color`: ANSI severities).
pub fn render(report: &ScanReport, color: bool) -> String {
    render_styled(report, TableStyle { color, width: None })
}

/// Renders the report as a table in the given style.
pub fn render_styled(report: &ScanReport, style: TableStyle) -> String {
    let color = style.color;
    let mut out = String::new();
    let img = &report.image;
    let _ = writeln!(out, "{} ({})", img.reference, img.manifest_digest.as_deref().unwrap_or(&img.source));
    if let Some(d) = &report.distro {
        let _ = writeln!(
            out,
            "OS: {}",
            d.pretty_name.clone().unwrap_or_else(|| format!("{} {}", d.id, d.version_id.clone().unwrap_or_default()))
        );
    }
    if let Some(w) = coverage_warning(&report.os_coverage) {
        let _ = writeln!(out, "WARNING: {w}");
    }
    let _ = writeln!(out);
    if report.findings.is_empty() {
        let _ = writeln!(out, "No vulnerabilities found in {} packages.", report.packages.len());
    } else {
        let columns = Columns::of(&report.findings, style.width);
        match &report.layers {
            Some(layers) => {
                let total = layers.len();
                for (i, layer) in layers.iter().enumerate() {
                    if i > 0 {
                        let _ = writeln!(out);
                    }
                    let _ = write!(out, "Layer {}/{} {}", i + 1, total, short_digest(&layer.digest));
                    match layer.created_by.as_deref().map(instruction) {
                        Some(cmd) if !cmd.is_empty() => {
                            let _ = writeln!(out, " {}", truncate(&cmd, 60));
                        }
                        _ => {
                            let _ = writeln!(out);
                        }
                    }
                    if layer.findings.is_empty() {
                        let _ = writeln!(out, "  no vulnerabilities");
                    } else {
                        render_packages(&mut out, layer.findings.iter(), &columns, color, "  ");
                    }
                }
                // Findings no layer claims (no layer recorded, or not one of this image's).
                let unplaced: Vec<&Finding> = report
                    .findings
                    .iter()
                    .filter(|f| f.layer.as_deref().is_none_or(|d| !layers.iter().any(|l| l.digest == d)))
                    .collect();
                if !unplaced.is_empty() {
                    let _ = writeln!(out, "\nNot attributed to a layer");
                    render_packages(&mut out, unplaced.into_iter(), &columns, color, "  ");
                }
            }
            None => render_packages(&mut out, report.findings.iter(), &columns, color, ""),
        }
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "\nTotal: {} vulnerabilities ({} critical, {} high, {} medium, {} low, {} negligible, {} unknown) in {} packages",
        s.total, s.critical, s.high, s.medium, s.low, s.negligible, s.unknown, report.packages.len()
    );
    if !report.suppressed.is_empty() {
        let _ = writeln!(out, "{} suppressed by the ignore file", report.suppressed.len());
    }
    let _ = writeln!(out, "Database: {} advisories, built {}", report.db.advisories, report.db.built_at);
    out
}

/// Column widths shared by every section, so sections line up.
struct Columns {
    id: usize,
    fixed: usize,
    width: Option<usize>,
}

impl Columns {
    fn of(findings: &[Finding], width: Option<usize>) -> Columns {
        Columns {
            id: findings.iter().map(|f| f.id.len()).max().unwrap_or(2).max(13),
            fixed: findings.iter().map(|f| f.fixed_version.as_deref().unwrap_or("").len()).max().unwrap_or(5).max(5),
            width,
        }
    }

    /// Characters left for the summary on a line indented by `indent`.
    fn summary_chars(&self, indent: usize) -> usize {
        // indent, "  ", severity (10), " ", id, "  fixed in ", fixed, "  "
        let used = indent + 2 + 10 + 1 + self.id + 11 + self.fixed + 2;
        match self.width {
            Some(w) => w.saturating_sub(used + 1).max(MIN_SUMMARY_CHARS),
            None => SUMMARY_CHARS,
        }
    }
}

/// Writes findings grouped by package (in order of each package's most
/// severe finding), each line indented by `indent`.
fn render_packages<'a>(
    out: &mut String,
    findings: impl Iterator<Item = &'a Finding>,
    columns: &Columns,
    color: bool,
    indent: &str,
) {
    let mut groups: Vec<((&str, &str), Vec<&Finding>)> = Vec::new();
    for f in findings {
        let key = (f.package.as_str(), f.installed_version.as_str());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(f),
            None => groups.push((key, vec![f])),
        }
    }
    let (w_id, w_fixed) = (columns.id, columns.fixed);
    let summary_chars = columns.summary_chars(indent.chars().count());
    for ((name, version), findings) in groups {
        let ecosystem = findings.first().map_or("", |f| f.ecosystem.as_str());
        let _ = writeln!(out, "{indent}{name} {version} ({ecosystem})");
        for f in findings {
            let sev = paint(&format!("{:<10}", f.severity.as_str()), f.severity, color);
            let fixed = f.fixed_version.as_deref().unwrap_or("");
            let _ = writeln!(
                out,
                "{indent}  {sev} {:<w_id$}  fixed in {:<w_fixed$}  {}",
                f.id,
                if fixed.is_empty() { "-" } else { fixed },
                truncate(&f.summary, summary_chars)
            );
        }
    }
}

/// `sha256:0123456789ab…`: the algorithm and the first 12 hex digits.
fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algo, hex)) if hex.len() > 12 => match hex.get(..12) {
            Some(h) => format!("{algo}:{h}…"),
            None => digest.to_string(),
        },
        _ => digest.to_string(),
    }
}

/// A history entry as the Dockerfile instruction it came from:
/// `/bin/sh -c #(nop) CMD …` → `CMD …`, `/bin/sh -c apt-get …` → `RUN apt-get …`,
/// BuildKit's `RUN … # buildkit` → `RUN …`.
fn instruction(created_by: &str) -> String {
    let s = created_by.trim();
    let s = s.strip_suffix("# buildkit").map_or(s, str::trim_end);
    if let Some(rest) = s.strip_prefix("/bin/sh -c #(nop)") {
        return rest.trim().to_string();
    }
    if let Some(rest) = s.strip_prefix("/bin/sh -c ").or_else(|| s.strip_prefix("RUN /bin/sh -c ")) {
        return format!("RUN {}", rest.trim());
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_entries_read_as_instructions() {
        assert_eq!(instruction("/bin/sh -c #(nop)  CMD [\"bash\"]"), "CMD [\"bash\"]");
        assert_eq!(instruction("/bin/sh -c apt-get install -y curl"), "RUN apt-get install -y curl");
        assert_eq!(instruction("RUN /bin/sh -c pip install flask # buildkit"), "RUN pip install flask");
        assert_eq!(short_digest("sha256:0123456789abcdef0123"), "sha256:0123456789ab…");
        assert_eq!(short_digest("weird"), "weird");
    }

    #[test]
    fn summaries_fit_the_terminal_but_never_vanish() {
        let c = |width| Columns { id: 14, fixed: 9, width };
        assert_eq!(c(None).summary_chars(0), SUMMARY_CHARS);
        // 2 + 10 + 1 + 14 + 11 + 9 + 2 = 49 used, one column spare for the ellipsis.
        assert_eq!(c(Some(100)).summary_chars(0), 50);
        assert_eq!(c(Some(100)).summary_chars(2), 48);
        assert_eq!(c(Some(40)).summary_chars(0), MIN_SUMMARY_CHARS);
    }
}
