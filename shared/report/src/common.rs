//! Helpers every output format shares, kept in one place so the formats
//! agree with each other: severity words, CVSS versions, stable identifiers
//! (UUIDs, fingerprints), grouping findings by vulnerability, matching a
//! finding back to its package, and the OS-coverage warning text.

use crate::imageref::ImageName;
use crate::sbom::ImageIdentity;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use trawl_catalog::Package;
use trawl_vulndb::{Finding, OsCoverage, Rating};

/// The project page, used as SARIF `informationUri` and SPDX namespace base.
pub(crate) const TOOL_URI: &str = env!("CARGO_PKG_REPOSITORY");

/// Trawl's version, for tool records.
pub(crate) const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// SARIF result level for a rating.
pub(crate) fn sarif_level(r: Rating) -> &'static str {
    match r {
        Rating::Critical | Rating::High => "error",
        Rating::Medium => "warning",
        Rating::Low | Rating::Negligible | Rating::Unknown => "note",
    }
}

/// CycloneDX 1.5 `ratings[].severity` (its enum has no "negligible": that is `info`).
pub(crate) fn cyclonedx_severity(r: Rating) -> &'static str {
    match r {
        Rating::Critical => "critical",
        Rating::High => "high",
        Rating::Medium => "medium",
        Rating::Low => "low",
        Rating::Negligible => "info",
        Rating::Unknown => "unknown",
    }
}

/// NeuVector's severity words. NeuVector has only four and treats anything
/// unrated as `Low`, as its own scanner does.
pub(crate) fn neuvector_severity(r: Rating) -> &'static str {
    match r {
        Rating::Critical => "Critical",
        Rating::High => "High",
        Rating::Medium => "Medium",
        Rating::Low | Rating::Negligible | Rating::Unknown => "Low",
    }
}

/// A rating in title case (`Negligible`), for free-text fields.
pub(crate) fn title_case(r: Rating) -> &'static str {
    match r {
        Rating::Critical => "Critical",
        Rating::High => "High",
        Rating::Medium => "Medium",
        Rating::Low => "Low",
        Rating::Negligible => "Negligible",
        Rating::Unknown => "Unknown",
    }
}

/// The CVSS version a vector is written in, from its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CvssVersion {
    /// CVSS v2 (`CVSS:2.0/…` or, as OSV writes it, a bare `AV:N/AC:L/Au:N/…`).
    V2,
    /// CVSS v3.0.
    V30,
    /// CVSS v3.1.
    V31,
    /// CVSS v4.0.
    V40,
}

impl CvssVersion {
    /// Reads the version from a vector; `None` when it is not a CVSS vector.
    pub(crate) fn of(vector: &str) -> Option<CvssVersion> {
        let v = vector.trim();
        if v.starts_with("CVSS:3.1/") {
            Some(CvssVersion::V31)
        } else if v.starts_with("CVSS:3.0/") {
            Some(CvssVersion::V30)
        } else if v.starts_with("CVSS:4.0/") {
            Some(CvssVersion::V40)
        } else if v.starts_with("CVSS:2.0/") || (v.starts_with("AV:") && v.contains("/Au:")) {
            Some(CvssVersion::V2)
        } else {
            None
        }
    }

    /// CycloneDX 1.5 `ratings[].method`.
    pub(crate) fn cyclonedx_method(self) -> &'static str {
        match self {
            CvssVersion::V2 => "CVSSv2",
            CvssVersion::V30 => "CVSSv3",
            CvssVersion::V31 => "CVSSv31",
            CvssVersion::V40 => "CVSSv4",
        }
    }
}

/// A CVSS score as text without float noise (`9.8`, `10.0`).
pub(crate) fn score_text(score: f32) -> String {
    format!("{:.1}", (score as f64 * 10.0).round() / 10.0)
}

/// A CVSS score as a JSON number rounded to one decimal, so `f32` noise
/// (`9.800000190734863`) does not leak into documents.
pub(crate) fn score_number(score: f32) -> serde_json::Value {
    serde_json::Number::from_f64((score as f64 * 10.0).round() / 10.0)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

/// Lower-case hex SHA-256 of the parts, each terminated by a NUL so that
/// `["ab", "c"]` and `["a", "bc"]` differ.
pub(crate) fn digest_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A deterministic RFC 4122 UUID (version 4 layout, variant 1) whose
/// "random" bits are the SHA-256 of the parts: the same report always gets
/// the same id, different reports practically never share one.
pub(crate) fn stable_uuid(parts: &[&str]) -> String {
    let hex = digest_hex(parts);
    // 32 hex digits: 8-4-4-4-12, with the version and variant nibbles set.
    let h = &hex[..32];
    let variant = match u8::from_str_radix(&h[16..17], 16) {
        Ok(n) => (n & 0x3) | 0x8,
        Err(_) => 0x8,
    };
    format!("{}-{}-4{}-{:x}{}-{}", &h[0..8], &h[8..12], &h[13..16], variant, &h[17..20], &h[20..32])
}

/// Findings grouped by vulnerability id, in order of first appearance
/// (findings are most severe first, so the groups are too).
pub(crate) fn group_by_id<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Vec<(&'a str, Vec<&'a Finding>)> {
    let mut groups: Vec<(&str, Vec<&Finding>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for f in findings {
        match index.get(f.id.as_str()) {
            Some(&i) => groups[i].1.push(f),
            None => {
                index.insert(&f.id, groups.len());
                groups.push((&f.id, vec![f]));
            }
        }
    }
    groups
}

/// What identifies an installed package: purl, recording file and layer
/// (the matcher copies all three from the package into its findings).
pub(crate) type PackageKey<'a> = (&'a str, &'a str, Option<&'a str>);

/// The key of a package.
pub(crate) fn package_key(p: &Package) -> PackageKey<'_> {
    (p.purl.as_str(), p.path.as_str(), p.layer.as_deref())
}

/// The key of the package a finding was made for.
pub(crate) fn finding_key(f: &Finding) -> PackageKey<'_> {
    (f.purl.as_str(), f.path.as_str(), f.layer.as_deref())
}

/// Finds the inventory package a finding was made for.
pub(crate) struct PackageIndex<'a> {
    by_key: HashMap<PackageKey<'a>, usize>,
}

impl<'a> PackageIndex<'a> {
    /// Indexes the packages; the first of identical packages wins.
    pub(crate) fn new(packages: &'a [Package]) -> Self {
        let mut by_key = HashMap::new();
        for (i, p) in packages.iter().enumerate() {
            by_key.entry(package_key(p)).or_insert(i);
        }
        PackageIndex { by_key }
    }

    /// Position of the finding's package in the inventory.
    pub(crate) fn find(&self, f: &Finding) -> Option<usize> {
        self.by_key.get(&finding_key(f)).copied()
    }
}

/// The warning a report must carry when OS packages could not be checked.
pub(crate) fn coverage_warning(c: &OsCoverage) -> Option<String> {
    match c {
        OsCoverage::NotCovered { ecosystem } => {
            Some(format!("the vulnerability database has no advisories for {ecosystem}: OS packages were NOT checked."))
        }
        OsCoverage::Unsupported { distro } => {
            Some(format!("{distro} is not a supported distribution: OS packages were NOT checked."))
        }
        OsCoverage::Unknown => {
            Some("the distribution could not be identified: OS packages were NOT checked.".to_string())
        }
        OsCoverage::Covered { .. } | OsCoverage::NoOsPackages => None,
    }
}

/// The image's package URL (`pkg:oci/NAME@DIGEST?repository_url=…&tag=…`),
/// when it came from a registry reference and its manifest digest is known.
pub(crate) fn oci_purl(image: &ImageIdentity) -> Option<String> {
    let digest = image.manifest_digest.as_deref()?;
    let name = ImageName::parse(&image.reference)?;
    let last = name.repository.rsplit('/').next().unwrap_or(&name.repository);
    let mut purl = format!("pkg:oci/{}@{}", last, digest.replace(':', "%3A"));
    let mut qualifiers = Vec::new();
    if let Some((_, arch)) = image.platform.as_deref().and_then(|p| p.split_once('/')) {
        qualifiers.push(format!("arch={}", arch.replace('/', "%2F")));
    }
    qualifiers.push(format!("repository_url={}/{}", name.registry, name.repository));
    if let Some(tag) = &name.tag {
        qualifiers.push(format!("tag={tag}"));
    }
    purl.push('?');
    purl.push_str(&qualifiers.join("&"));
    Some(purl)
}

/// The text after `sha256:` (or any `algo:`), for fields that want bare hex.
pub(crate) fn digest_value(digest: &str) -> &str {
    digest.split_once(':').map_or(digest, |(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_rfc4122_and_stable() {
        let a = stable_uuid(&["a", "b"]);
        assert_eq!(a, stable_uuid(&["a", "b"]));
        assert_ne!(a, stable_uuid(&["ab"]));
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
        assert!(a.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn cvss_versions_from_vectors() {
        assert_eq!(CvssVersion::of("CVSS:3.1/AV:N/AC:L"), Some(CvssVersion::V31));
        assert_eq!(CvssVersion::of("CVSS:3.0/AV:N"), Some(CvssVersion::V30));
        assert_eq!(CvssVersion::of("CVSS:4.0/AV:N"), Some(CvssVersion::V40));
        assert_eq!(CvssVersion::of("AV:N/AC:L/Au:N/C:P/I:P/A:P"), Some(CvssVersion::V2));
        assert_eq!(CvssVersion::of("high"), None);
        assert_eq!(score_text(9.8), "9.8");
        assert_eq!(score_text(10.0), "10.0");
        assert_eq!(score_number(9.8).to_string(), "9.8");
    }
}
