//! Debian packages: the dpkg status database `var/lib/dpkg/status` and the
//! one-file-per-package `var/lib/dpkg/status.d/*` layout of distroless images.
//!
//! Only packages whose status is "install ok installed" are reported (what
//! `dpkg-query -W` lists as `ii`). The source package name and version are
//! kept because Debian and Ubuntu file advisories per source package.

use crate::cataloger::{read_text_capped, CatalogContext, CatalogError, Cataloger, FileMeta, Found};
use crate::package::{Package, PackageType};
use std::io::Read;

/// Parses dpkg status files.
pub struct DpkgCataloger;

const MAX_SIZE: u64 = 64 << 20;

impl Cataloger for DpkgCataloger {
    fn name(&self) -> &'static str {
        "dpkg"
    }

    fn version(&self) -> u32 {
        1
    }

    fn wants(&self, file: &FileMeta<'_>) -> bool {
        if file.path == "var/lib/dpkg/status" {
            return true;
        }
        // status.d holds one control file per package, plus checksum lists.
        match file.path.strip_prefix("var/lib/dpkg/status.d/") {
            Some(name) => !name.contains('/') && !name.ends_with(".md5sums") && !name.ends_with(".list"),
            None => false,
        }
    }

    fn max_size(&self) -> u64 {
        MAX_SIZE
    }

    fn catalog(
        &self,
        file: &FileMeta<'_>,
        content: &mut dyn Read,
        _ctx: &CatalogContext,
    ) -> Result<Found, CatalogError> {
        let text = read_text_capped(content, MAX_SIZE)?;
        // In status.d a stanza without a Status field is an installed package.
        let status_required = file.path == "var/lib/dpkg/status";
        Ok(parse_status(&text, status_required))
    }
}

/// Parses the stanzas of a dpkg status file.
pub fn parse_status(text: &str, status_required: bool) -> Found {
    let mut found = Found::default();
    for stanza in text.split("\n\n") {
        if stanza.trim().is_empty() {
            continue;
        }
        let fields = control_fields(stanza);
        let get = |k: &str| fields.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str());
        let Some(name) = get("Package").filter(|n| !n.is_empty()) else {
            found.warnings.push("stanza without a Package name skipped".into());
            continue;
        };
        match get("Status") {
            Some(status) if !is_installed(status) => continue,
            None if status_required => continue,
            _ => {}
        }
        let Some(version) = get("Version").filter(|v| !v.is_empty()) else {
            found.warnings.push(format!("package {name:?} has no Version; skipped"));
            continue;
        };
        let mut p = Package::new(PackageType::Deb, name, version);
        p.arch = get("Architecture").map(str::to_string);
        // "Source: name (version)" when the source version differs.
        let (src_name, src_version) = match get("Source") {
            Some(src) => match src.split_once('(') {
                Some((n, v)) => (n.trim().to_string(), v.trim_end_matches(')').trim().to_string()),
                None => (src.trim().to_string(), version.to_string()),
            },
            None => (name.to_string(), version.to_string()),
        };
        p.source_name = Some(src_name);
        p.source_version = Some(src_version);
        found.packages.push(p);
    }
    found
}

/// "install ok installed" — the desired action may be anything but the
/// state must be installed with no error flag.
fn is_installed(status: &str) -> bool {
    let words: Vec<&str> = status.split_whitespace().collect();
    words.len() == 3 && words[1] == "ok" && words[2] == "installed"
}

/// Splits a control stanza into (field, value) pairs; continuation lines
/// (starting with whitespace) belong to the previous field and are ignored
/// for the single-line fields we read.
fn control_fields(stanza: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in stanza.lines() {
        if line.starts_with(' ') || line.starts_with('\t') || line.is_empty() {
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\nVersion: 3.0.11-1~deb12u2\nDescription: x\n more\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: bsdutils\nStatus: install ok installed\nSource: util-linux (2.31.1-0.4ubuntu3.6)\nVersion: 1:2.31.1-0.4ubuntu3.6\nArchitecture: amd64\n";

    #[test]
    fn reports_installed_packages_with_sources() {
        let found = parse_status(STATUS, true);
        let got: Vec<_> = found
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.source_name.as_deref(), p.source_version.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("libssl3", "3.0.11-1~deb12u2", Some("openssl"), Some("3.0.11-1~deb12u2")),
                ("bsdutils", "1:2.31.1-0.4ubuntu3.6", Some("util-linux"), Some("2.31.1-0.4ubuntu3.6")),
            ]
        );
    }

    #[test]
    fn status_d_without_status_counts_as_installed() {
        let found = parse_status("Package: tzdata\nVersion: 2021a-1\nArchitecture: all\n", false);
        assert_eq!(found.packages.len(), 1);
        assert!(parse_status("Package: tzdata\nVersion: 2021a-1\n", true).packages.is_empty());
    }

    #[test]
    fn wants_status_files_only() {
        let w = |p: &str| DpkgCataloger.wants(&FileMeta { path: p, size: 1, mode: 0o644 });
        assert!(w("var/lib/dpkg/status"));
        assert!(w("var/lib/dpkg/status.d/libc6"));
        assert!(!w("var/lib/dpkg/status.d/libc6.md5sums"));
        assert!(!w("var/lib/dpkg/status-old"));
    }
}
