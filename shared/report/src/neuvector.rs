//! The NeuVector standalone scanner's `scan_result.json` layout
//! (`{"error_message": "", "report": RESTScanRepoReport}`), so that people
//! moving from NeuVector keep their parsers (DefectDojo's "NeuVector (REST)"
//! importer, CI scripts reading `report.vulnerabilities`).
//!
//! Field names and value conventions follow NeuVector's REST types
//! (`RESTScanRepoReport`, `RESTVulnerability`, `RESTScanLayer`,
//! `RESTScanModule`): severities `Critical`/`High`/`Medium`/`Low`, the
//! registry as a URL, Docker Hub repositories under `library/`, the image ID
//! as bare hex. What Trawl does not know (publication dates, compliance
//! checks, a policy verdict) is left out rather than invented, and the
//! image's environment variables are left out on purpose: they often hold
//! secrets, which reports never repeat. Every mapping is listed in `docs/report-formats.md`.

use crate::common::{digest_value, neuvector_severity, score_number, title_case, CvssVersion, PackageIndex};
use crate::imageref::ImageName;
use crate::scan::{LayerFindings, ScanReport};
use serde_json::{json, Value};
use std::borrow::Cow;
use trawl_catalog::Package;
use trawl_vulndb::Finding;

/// The registry URL NeuVector writes for Docker Hub.
pub const NEUVECTOR_DOCKER_HUB: &str = "https://registry.hub.docker.com";

/// Renders the scan in NeuVector's `scan_result.json` layout.
pub fn to_neuvector(report: &ScanReport) -> Value {
    let image = &report.image;
    let (registry, repository, tag) = registry_repository_tag(&image.reference);
    let layers: Cow<'_, [LayerFindings]> = match &report.layers {
        Some(l) => Cow::Borrowed(l),
        None => Cow::Owned(report.layer_findings()),
    };
    let base_os = report
        .distro
        .as_ref()
        .map(|d| match &d.version_id {
            Some(v) => format!("{}:{}", d.id, v),
            None => d.id.clone(),
        })
        .unwrap_or_default();

    let mut r = json!({
        "image_id": image.config_digest.as_deref().map(digest_value).unwrap_or(""),
        "registry": registry,
        "repository": repository,
        "tag": tag,
        "digest": image.manifest_digest.clone().unwrap_or_default(),
        "size": image.layers.iter().map(|l| l.size).sum::<u64>(),
        "author": "",
        "base_os": base_os,
        "created_at": image.created.clone().unwrap_or_default(),
        "cvedb_version": report.db.version.to_string(),
        "cvedb_create_time": report.db.built_at,
        "layers": layers.iter().map(|l| json!({
            "digest": l.digest,
            "cmds": l.created_by.clone().unwrap_or_default(),
            "vulnerabilities": l.findings.iter().map(vulnerability).collect::<Vec<_>>(),
            "size": l.size,
        })).collect::<Vec<_>>(),
        "vulnerabilities": report.findings.iter().map(vulnerability).collect::<Vec<_>>(),
        "modules": modules(&report.packages, &report.findings, &base_os),
        "labels": image.labels,
    });
    // NeuVector lists one history command per layer; only write them when the history was known.
    if image.layers.iter().any(|l| l.created_by.is_some()) {
        r["cmds"] = json!(image.layers.iter().map(|l| l.created_by.clone().unwrap_or_default()).collect::<Vec<_>>());
    }
    json!({"error_message": "", "report": r})
}

/// NeuVector's `registry` (a URL), `repository` and `tag` for a reference.
/// Non-registry sources (layouts, archives, directories) have no registry:
/// the reference is the repository, as NeuVector reports local images.
fn registry_repository_tag(reference: &str) -> (String, String, String) {
    if let Some(local) = reference.strip_prefix("docker-daemon:").or_else(|| reference.strip_prefix("docker:")) {
        // An image in the local engine: no registry, and the name as the engine knows it (NeuVector's local scan).
        let name = local.split_once('@').map_or(local, |(name, _)| name);
        return match name.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (String::new(), repo.to_string(), tag.to_string()),
            _ => (String::new(), name.to_string(), if name == local { "latest".into() } else { String::new() }),
        };
    }
    match ImageName::parse(reference) {
        Some(n) => {
            let registry =
                if n.is_docker_hub() { NEUVECTOR_DOCKER_HUB.to_string() } else { format!("https://{}", n.registry) };
            (
                registry,
                n.repository,
                n.tag.unwrap_or_else(|| if n.digest.is_some() { String::new() } else { "latest".into() }),
            )
        }
        None => (String::new(), reference.to_string(), String::new()),
    }
}

/// One finding as a `RESTVulnerability`.
fn vulnerability(f: &Finding) -> Value {
    let version = f.cvss_vector.as_deref().and_then(CvssVersion::of);
    let score = f.score.map(score_number).unwrap_or(json!(0));
    // NeuVector keeps v2 in score/vectors and v3 in score_v3/vectors_v3.
    // `score` also carries v3/v4 base scores, so thresholds on it still work.
    let (vectors, score_v3, vectors_v3) = match version {
        Some(CvssVersion::V2) => (f.cvss_vector.clone().unwrap_or_default(), json!(0), String::new()),
        Some(CvssVersion::V30 | CvssVersion::V31) => {
            (String::new(), score.clone(), f.cvss_vector.clone().unwrap_or_default())
        }
        Some(CvssVersion::V40) | None => (String::new(), json!(0), String::new()),
    };
    let mut v = json!({
        "name": f.id,
        "score": score,
        "severity": neuvector_severity(f.severity),
        "vectors": vectors,
        "description": f.summary,
        "file_name": f.path,
        "package_name": f.package,
        "package_version": f.installed_version,
        "fixed_version": f.fixed_version.clone().unwrap_or_default(),
        "link": f.url.clone().unwrap_or_default(),
        "score_v3": score_v3,
        "vectors_v3": vectors_v3,
        "feed_rating": title_case(f.severity),
        "in_base_image": false,
    });
    let cves: Vec<&str> =
        std::iter::once(&f.id).chain(&f.aliases).map(String::as_str).filter(|a| a.starts_with("CVE-")).collect();
    if !cves.is_empty() && cves != [f.id.as_str()] {
        v["cves"] = json!(cves);
    }
    v
}

/// Every package as a `RESTScanModule`, with the vulnerabilities found in it.
fn modules(packages: &[Package], findings: &[Finding], base_os: &str) -> Vec<Value> {
    let index = PackageIndex::new(packages);
    let mut cves: Vec<Vec<Value>> = vec![Vec::new(); packages.len()];
    for f in findings {
        if let Some(list) = index.find(f).and_then(|i| cves.get_mut(i)) {
            let status = if f.fixed_version.is_some() { "fix exists" } else { "unpatched" };
            list.push(json!({"name": f.id, "status": status}));
        }
    }
    packages
        .iter()
        .zip(cves)
        .map(|(p, cves)| {
            let source = if p.kind.is_os() && !base_os.is_empty() { base_os } else { p.kind.purl_type() };
            let mut m = json!({"name": p.name, "file": p.path, "version": p.version, "source": source});
            if !cves.is_empty() {
                m["cves"] = Value::Array(cves);
            }
            m
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_fields_follow_neuvector() {
        let t = |r: &str| registry_repository_tag(r);
        assert_eq!(t("debian:12"), (NEUVECTOR_DOCKER_HUB.into(), "library/debian".into(), "12".into()));
        assert_eq!(t("nginx"), (NEUVECTOR_DOCKER_HUB.into(), "library/nginx".into(), "latest".into()));
        assert_eq!(
            t("127.0.0.1:5000/team/app:1.4"),
            ("https://127.0.0.1:5000".into(), "team/app".into(), "1.4".into())
        );
        assert_eq!(t("oci:./layout:v1"), (String::new(), "oci:./layout:v1".into(), String::new()));
        assert_eq!(t("docker:ubuntu:16.04"), (String::new(), "ubuntu".into(), "16.04".into()));
        assert_eq!(
            t("docker-daemon:localhost:5000/app"),
            (String::new(), "localhost:5000/app".into(), "latest".into())
        );
    }
}
