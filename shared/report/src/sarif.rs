//! SARIF 2.1.0: a scan as static-analysis results, for GitHub code scanning
//! and other SARIF readers.
//!
//! One run; the tool's `rules` hold one rule per vulnerability id (with the
//! CVSS score as `security-severity`, GitHub's convention for security
//! alerts) and each finding is one result located at the file that records
//! its package, inside the image named by a logical location. Results carry
//! partial fingerprints built from what identifies an alert across scans
//! (vulnerability, ecosystem, package, file — not the version, so an upgrade
//! that does not fix it keeps the alert), and findings an ignore file
//! suppressed are results with an external suppression. Coverage gaps and
//! match warnings become tool execution notifications, so a run that could
//! not check OS packages does not read as clean.

use crate::common::{
    coverage_warning, digest_hex, group_by_id, sarif_level, score_number, score_text, TOOL_URI, TOOL_VERSION,
};
use crate::scan::{ScanReport, SuppressedFinding};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::{json, Value};
use std::collections::HashMap;
use trawl_vulndb::{Finding, Rating};

/// The `$schema` SARIF documents name.
pub const SARIF_SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// Name of the partial fingerprint results carry.
pub const FINGERPRINT_KEY: &str = "trawlFinding/v1";

/// Renders the scan as a SARIF 2.1.0 log with one run.
pub fn to_sarif(report: &ScanReport) -> Value {
    let entries: Vec<(&Finding, Option<&SuppressedFinding>)> = report
        .findings
        .iter()
        .map(|f| (f, None))
        .chain(report.suppressed.iter().map(|s| (&s.finding, Some(s))))
        .collect();
    let groups = group_by_id(entries.iter().map(|(f, _)| *f));
    let rule_index: HashMap<&str, usize> = groups.iter().enumerate().map(|(i, (id, _))| (*id, i)).collect();
    let rules: Vec<Value> = groups.iter().map(|(id, group)| rule(id, group)).collect();
    let results: Vec<Value> =
        entries.iter().filter_map(|(f, s)| rule_index.get(f.id.as_str()).map(|&i| result(report, f, *s, i))).collect();

    let mut notifications: Vec<Value> = Vec::new();
    if let Some(w) = coverage_warning(&report.os_coverage) {
        notifications.push(notification("trawl/os-coverage", &w));
    }
    for w in &report.match_warnings {
        notifications.push(notification("trawl/match-warning", w));
    }
    for issue in &report.issues {
        notifications.push(notification("trawl/catalog-issue", &format!("{}: {}", issue.path, issue.message)));
    }
    let mut invocation = json!({"executionSuccessful": true});
    if !notifications.is_empty() {
        invocation["toolExecutionNotifications"] = Value::Array(notifications);
    }

    let mut run_properties = json!({
        "imageReference": report.image.reference,
        "osCoverage": report.os_coverage,
        "database": report.db,
    });
    if let Some(d) = &report.image.manifest_digest {
        run_properties["manifestDigest"] = json!(d);
    }
    json!({
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": report.generator.name,
                "version": report.generator.version,
                "semanticVersion": TOOL_VERSION,
                "informationUri": TOOL_URI,
                "rules": rules,
            }},
            "invocations": [invocation],
            "results": results,
            "properties": run_properties,
        }],
    })
}

/// The rule for one vulnerability id, rated by its most severe finding.
fn rule(id: &str, group: &[&Finding]) -> Value {
    let worst = group.iter().map(|f| f.severity).max().unwrap_or(Rating::Unknown);
    let score = group.iter().filter_map(|f| f.score).reduce(f32::max);
    let summary = group.iter().map(|f| f.summary.as_str()).find(|s| !s.is_empty()).unwrap_or(id);
    let url = group.iter().find_map(|f| f.url.as_deref()).filter(|u| is_web_url(u));

    let mut tags = vec!["security".to_string(), "vulnerability".to_string()];
    for f in group {
        if !f.ecosystem.is_empty() && !tags.contains(&f.ecosystem) {
            tags.push(f.ecosystem.clone());
        }
    }
    let mut properties = json!({"tags": tags});
    if let Some(s) = score {
        properties["security-severity"] = json!(score_text(s));
    }

    let rating = match score {
        Some(s) => format!("{} (CVSS {})", worst.as_str(), score_text(s)),
        None => worst.as_str().to_string(),
    };
    let mut text = format!("{id}: {summary}\nSeverity: {rating}\nAffected packages:\n");
    let mut markdown = format!("**{id}**: {summary}\n\nSeverity: {rating}\n\n| Package | Fixed in |\n| --- | --- |\n");
    let mut seen: Vec<(&str, &str, &str, Option<&str>)> = Vec::new();
    for f in group {
        let key = (f.package.as_str(), f.installed_version.as_str(), f.ecosystem.as_str(), f.fixed_version.as_deref());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let package = format!("{} {} ({})", f.package, f.installed_version, f.ecosystem);
        let fix = f.fixed_version.as_deref().unwrap_or("no fixed version known");
        text.push_str(&format!("  {package}: {fix}\n"));
        markdown.push_str(&format!("| {} | {} |\n", package.replace('|', "\\|"), fix.replace('|', "\\|")));
    }
    if let Some(u) = url {
        text.push_str(&format!("More: {u}\n"));
        markdown.push_str(&format!("\n[{id}]({u})\n"));
    }

    let mut r = json!({
        "id": id,
        "shortDescription": {"text": summary},
        "fullDescription": {"text": format!("{id}: {summary}")},
        "help": {"text": text, "markdown": markdown},
        "defaultConfiguration": {"level": sarif_level(worst)},
        "properties": properties,
    });
    if let Some(u) = url {
        r["helpUri"] = json!(u);
    }
    r
}

/// One finding as a result pointing at rule `rule_index`.
fn result(report: &ScanReport, f: &Finding, suppressed: Option<&SuppressedFinding>, rule_index: usize) -> Value {
    let fix = match &f.fixed_version {
        Some(v) => format!("Fixed in {v}."),
        None => "No fixed version is known.".to_string(),
    };
    let summary = if f.summary.is_empty() { String::new() } else { format!(": {}", f.summary) };
    let message = format!(
        "{} {} is affected by {} ({}){}. {}",
        f.package,
        f.installed_version,
        f.id,
        f.severity.as_str(),
        summary,
        fix
    );

    let mut location = json!({});
    if !f.path.is_empty() {
        location["physicalLocation"] = json!({"artifactLocation": {"uri": artifact_uri(&f.path)}});
    }
    let image = &report.image;
    if !image.reference.is_empty() {
        let qualified = match &image.manifest_digest {
            Some(d) => format!("{}@{}", image.reference, d),
            None => image.reference.clone(),
        };
        location["logicalLocations"] =
            json!([{"name": image.reference, "fullyQualifiedName": qualified, "kind": "resource"}]);
    }

    let mut properties = json!({
        "package": f.package,
        "packageType": f.package_type,
        "ecosystem": f.ecosystem,
        "installedVersion": f.installed_version,
        "purl": f.purl,
        "severity": f.severity,
    });
    if let Some(v) = &f.fixed_version {
        properties["fixedVersion"] = json!(v);
    }
    if let Some(s) = f.score {
        properties["score"] = score_number(s);
    }
    if let Some(l) = &f.layer {
        properties["layer"] = json!(l);
    }

    let fingerprint = digest_hex(&["trawl/v1", &f.id, &f.ecosystem, &f.package, &f.path]);
    let mut r = json!({
        "ruleId": f.id,
        "ruleIndex": rule_index,
        "level": sarif_level(f.severity),
        "message": {"text": message},
        "locations": [location],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint},
        "properties": properties,
    });
    if let Some(s) = suppressed {
        let mut suppression = json!({"kind": "external", "status": "accepted", "justification": s.reason});
        if let Some(e) = &s.expires {
            suppression["properties"] = json!({"expires": e});
        }
        r["suppressions"] = json!([suppression]);
    }
    r
}

/// A tool execution notification.
fn notification(id: &str, text: &str) -> Value {
    json!({"descriptor": {"id": id}, "level": "warning", "message": {"text": text}})
}

/// Characters that cannot stand unescaped in a relative URI path. `:` is
/// escaped too, so `app.war:WEB-INF/lib/x.jar` does not read as a URI scheme.
const PATH_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b':')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The recorded file path as a relative URI reference (no leading slash).
fn artifact_uri(path: &str) -> String {
    utf8_percent_encode(path.trim_start_matches('/'), PATH_ENCODE).to_string()
}

/// True for an absolute http(s) URL without characters a URI cannot hold.
fn is_web_url(u: &str) -> bool {
    (u.starts_with("https://") || u.starts_with("http://"))
        && !u.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '"' | '<' | '>' | '\\' | '^' | '`' | '{' | '|' | '}')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_uris_are_relative_references() {
        assert_eq!(artifact_uri("/var/lib/dpkg/status"), "var/lib/dpkg/status");
        assert_eq!(artifact_uri("opt/app.war:WEB-INF/lib/x 1.jar"), "opt/app.war%3AWEB-INF/lib/x%201.jar");
        assert_eq!(artifact_uri("usr/lib/é.py"), "usr/lib/%C3%A9.py");
    }

    #[test]
    fn only_web_urls_become_help_uris() {
        assert!(is_web_url("https://nvd.nist.gov/vuln/detail/CVE-2021-44228"));
        assert!(!is_web_url("nvd.nist.gov"));
        assert!(!is_web_url("https://example.com/a b"));
    }
}
