//! The human-readable findings table for terminals: grouped by package,
//! most severe first, with a summary line; coloured when asked (on a TTY).

use crate::scan::ScanReport;
use std::fmt::Write;
use trawl_vulndb::{OsCoverage, Rating};

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

/// Renders the report as a table.
pub fn render(report: &ScanReport, color: bool) -> String {
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
    match &report.os_coverage {
        OsCoverage::NotCovered { ecosystem } => {
            let _ = writeln!(
                out,
                "WARNING: the vulnerability database has no advisories for {ecosystem}: OS packages were NOT checked."
            );
        }
        OsCoverage::Unsupported { distro } => {
            let _ = writeln!(out, "WARNING: {distro} is not a supported distribution: OS packages were NOT checked.");
        }
        OsCoverage::Unknown => {
            let _ = writeln!(out, "WARNING: the distribution could not be identified: OS packages were NOT checked.");
        }
        _ => {}
    }
    let _ = writeln!(out);
    if report.findings.is_empty() {
        let _ = writeln!(out, "No vulnerabilities found in {} packages.", report.packages.len());
    } else {
        let w_id = report.findings.iter().map(|f| f.id.len()).max().unwrap_or(2).max(13);
        let w_fixed =
            report.findings.iter().map(|f| f.fixed_version.as_deref().unwrap_or("").len()).max().unwrap_or(5).max(5);
        // Group by package (in order of each package's most severe finding).
        let mut order: Vec<(&str, &str)> = Vec::new();
        for f in &report.findings {
            let key = (f.package.as_str(), f.installed_version.as_str());
            if !order.contains(&key) {
                order.push(key);
            }
        }
        for (name, version) in order {
            let findings: Vec<_> =
                report.findings.iter().filter(|f| f.package == name && f.installed_version == version).collect();
            let _ = writeln!(out, "{name} {version} ({})", findings[0].ecosystem);
            for f in findings {
                let sev = paint(&format!("{:<10}", f.severity.as_str()), f.severity, color);
                let fixed = f.fixed_version.as_deref().unwrap_or("");
                let _ = writeln!(
                    out,
                    "  {sev} {:<w_id$}  fixed in {:<w_fixed$}  {}",
                    f.id,
                    if fixed.is_empty() { "-" } else { fixed },
                    truncate(&f.summary, 70)
                );
            }
        }
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "\nTotal: {} vulnerabilities ({} critical, {} high, {} medium, {} low, {} negligible, {} unknown) in {} packages; database {}",
        s.total, s.critical, s.high, s.medium, s.low, s.negligible, s.unknown, report.packages.len(), report.db.built_at
    );
    out
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
