//! Ignore files: findings a team has reviewed and accepted, each with an
//! optional expiry date (so a waiver cannot outlive its review) and reason.
//!
//! The format is Trivy's `.trivyignore`, extended with a package scope, so
//! existing files work as they are:
//!
//! ```text
//! # comment
//! CVE-2023-44487                          # any package
//! CVE-2024-2511 exp:2027-01-31            # until that day (inclusive)
//! GHSA-9wx4-h78v-vm56 pkg:requests        # only for this package
//! ```
//!
//! An id matches a finding's primary id, any alias or any advisory id,
//! case-insensitively: a rule for a CVE also covers the DSA or GHSA that
//! reported it.

use crate::PolicyError;
use chrono::NaiveDate;
use std::path::Path;
use trawl_vulndb::Finding;

/// The ignore file read from the working directory when none is named.
pub const DEFAULT_IGNORE_FILE: &str = ".trawlignore";

/// One suppression rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreRule {
    /// Vulnerability or advisory id.
    pub id: String,
    /// Last day the rule applies, if limited.
    pub expires: Option<NaiveDate>,
    /// Package name the rule is limited to.
    pub package: Option<String>,
    /// Why it is accepted.
    pub reason: Option<String>,
    /// Where the rule was written (`file:line`), for warnings.
    pub origin: String,
}

impl IgnoreRule {
    /// True once `today` is past the expiry date.
    pub fn expired(&self, today: NaiveDate) -> bool {
        self.expires.is_some_and(|d| today > d)
    }

    /// True when the rule names this finding.
    pub fn matches(&self, f: &Finding) -> bool {
        let id_matches =
            std::iter::once(&f.id).chain(&f.aliases).chain(&f.advisories).any(|id| id.eq_ignore_ascii_case(&self.id));
        id_matches && self.package.as_ref().is_none_or(|p| p == &f.package)
    }
}

/// A parsed ignore file.
#[derive(Debug, Clone, Default)]
pub struct IgnoreFile {
    /// Rules in file order.
    pub rules: Vec<IgnoreRule>,
}

impl IgnoreFile {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<IgnoreFile, PolicyError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read { path: name.clone(), source })?;
        Self::parse(&text, &name)
    }

    /// Parses ignore-file text; `name` labels errors and rule origins.
    pub fn parse(text: &str, name: &str) -> Result<IgnoreFile, PolicyError> {
        let mut rules = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |reason: String| PolicyError::Parse { path: name.to_string(), line, reason };
            let (body, comment) = match raw.split_once('#') {
                Some((b, c)) => (b, Some(c.trim())),
                None => (raw, None),
            };
            let mut words = body.split_whitespace();
            let Some(id) = words.next() else { continue };
            let mut rule = IgnoreRule {
                id: id.to_string(),
                expires: None,
                package: None,
                reason: comment.filter(|c| !c.is_empty()).map(str::to_string),
                origin: format!("{name}:{line}"),
            };
            for word in words {
                if let Some(date) = word.strip_prefix("exp:") {
                    let parsed = NaiveDate::parse_from_str(date, "%Y-%m-%d")
                        .map_err(|_| err(format!("expiry {date:?} is not a YYYY-MM-DD date")))?;
                    rule.expires = Some(parsed);
                } else if let Some(pkg) = word.strip_prefix("pkg:").filter(|p| !p.is_empty()) {
                    rule.package = Some(pkg.to_string());
                } else {
                    return Err(err(format!("unexpected {word:?} after the id")));
                }
            }
            rules.push(rule);
        }
        Ok(IgnoreFile { rules })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_trivy_style_lines() {
        let f =
            IgnoreFile::parse("# header\n\nCVE-1\nCVE-2 exp:2027-01-31 pkg:zlib1g  # vendor says not reachable\n", "x")
                .unwrap();
        assert_eq!(f.rules.len(), 2);
        assert_eq!(
            f.rules[0],
            IgnoreRule { id: "CVE-1".into(), expires: None, package: None, reason: None, origin: "x:3".into() }
        );
        let r = &f.rules[1];
        assert_eq!(r.expires, NaiveDate::from_ymd_opt(2027, 1, 31));
        assert_eq!(r.package.as_deref(), Some("zlib1g"));
        assert_eq!(r.reason.as_deref(), Some("vendor says not reachable"));
        assert_eq!(r.origin, "x:4");
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let e = IgnoreFile::parse("CVE-1\nCVE-2 exp:31/01/2027\n", ".trawlignore").unwrap_err().to_string();
        assert!(e.starts_with(".trawlignore:2: expiry \"31/01/2027\""), "{e}");
        let e = IgnoreFile::parse("CVE-1 because\n", "f").unwrap_err().to_string();
        assert!(e.contains("unexpected \"because\""), "{e}");
    }

    #[test]
    fn a_missing_file_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = IgnoreFile::load(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(e, PolicyError::Read { .. }));
    }
}
