//! CycloneDX 1.5 JSON: an SBOM other tools can read ([`to_cyclonedx`]) and,
//! for scans, the same SBOM with its vulnerabilities ([`to_cyclonedx_scan`]).
//!
//! Each package becomes a `library` (or `operating-system` for the distro)
//! component with its purl; Trawl-specific facts (layer, source package,
//! ecosystem) go into `properties` under the `trawl:` namespace. A scan adds
//! one `vulnerabilities` entry per vulnerability id, whose `affects` names
//! every affected component by bom-ref. Findings an ignore file suppressed
//! are left out (SARIF carries them as suppressed results).

use crate::common::{
    cyclonedx_severity, finding_key, group_by_id, oci_purl, score_number, stable_uuid, CvssVersion, PackageIndex,
};
use crate::sbom::{AsInventory, InventoryView, SbomReport};
use crate::scan::ScanReport;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use trawl_catalog::Package;
use trawl_vulndb::Finding;

/// Renders an inventory as a CycloneDX 1.5 JSON document.
pub fn to_cyclonedx(report: &SbomReport) -> Value {
    let view = report.as_inventory();
    let components = Components::build(view, &[]);
    bom(view, "sbom", components, None)
}

/// Renders a scan as a CycloneDX 1.5 JSON document: the inventory's
/// components plus a `vulnerabilities` array.
pub fn to_cyclonedx_scan(report: &ScanReport) -> Value {
    let view = report.as_inventory();
    let components = Components::build(view, &report.findings);
    let vulnerabilities = vulnerabilities(&report.findings, &components);
    bom(view, "scan", components, Some(vulnerabilities))
}

/// The document around the components (and vulnerabilities).
fn bom(view: InventoryView<'_>, kind: &str, components: Components, vulnerabilities: Option<Vec<Value>>) -> Value {
    let image = view.image;
    let name = if image.reference.is_empty() { "unnamed image" } else { image.reference.as_str() };
    let mut subject = json!({
        "type": "container",
        "bom-ref": image.manifest_digest.clone().unwrap_or_else(|| name.to_string()),
        "name": name,
    });
    if let Some(d) = &image.manifest_digest {
        subject["version"] = json!(d);
    }
    if let Some(purl) = oci_purl(image) {
        subject["purl"] = json!(purl);
    }
    // The serial number identifies this document: the same report renders
    // to the same number, a different scan or inventory to another.
    let mut id_parts = vec!["cyclonedx", kind, image.reference.as_str(), view.generated_at];
    id_parts.extend(image.manifest_digest.as_deref());
    id_parts.extend(view.packages.iter().map(|p| p.purl.as_str()));
    id_parts.extend(components.refs_for_serial.iter().map(String::as_str));
    let mut doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{}", stable_uuid(&id_parts)),
        "version": 1,
        "metadata": {
            "timestamp": view.generated_at,
            "tools": {"components": [{"type": "application", "name": view.generator.name, "version": view.generator.version}]},
            "component": subject,
        },
        "components": components.list,
    });
    if let Some(v) = vulnerabilities {
        doc["vulnerabilities"] = Value::Array(v);
    }
    doc
}

/// The component list and how findings resolve to it.
struct Components<'a> {
    /// Component objects, the distro first.
    list: Vec<Value>,
    /// bom-ref of each inventory package, by position.
    package_refs: Vec<String>,
    /// Finds a finding's package.
    index: PackageIndex<'a>,
    /// bom-refs of components made for findings whose package is not in the inventory.
    orphan_refs: Vec<(&'a Finding, String)>,
    /// Extra identity for the serial number (vulnerability ids, for scans).
    refs_for_serial: Vec<String>,
}

impl<'a> Components<'a> {
    /// Components for the inventory, plus one for each finding whose package
    /// the inventory lacks (a hand-made or filtered report), so that every
    /// `affects` reference resolves.
    fn build(view: InventoryView<'a>, findings: &'a [Finding]) -> Components<'a> {
        let mut list = Vec::new();
        if let Some(d) = view.distro {
            list.push(json!({
                "type": "operating-system",
                "bom-ref": format!("os:{}@{}", d.id, d.version_id.clone().unwrap_or_default()),
                "name": d.id,
                "version": d.version_id.clone().unwrap_or_default(),
                "description": d.pretty_name.clone().unwrap_or_default(),
            }));
        }
        let mut package_refs = Vec::with_capacity(view.packages.len());
        for (i, p) in view.packages.iter().enumerate() {
            // bom-refs must be unique; the same purl can occur at several paths.
            let bom_ref = format!("{}#{}", p.purl, i);
            list.push(component(p, &bom_ref));
            package_refs.push(bom_ref);
        }
        let index = PackageIndex::new(view.packages);
        let mut orphan_refs: Vec<(&Finding, String)> = Vec::new();
        for f in findings {
            if index.find(f).is_some() || orphan_refs.iter().any(|(o, _)| same_package(o, f)) {
                continue;
            }
            let bom_ref = format!("{}#finding-{}", f.purl, orphan_refs.len());
            let mut p = Package::new(f.package_type, &f.package, &f.installed_version);
            p.ecosystem = f.ecosystem.clone();
            p.purl = f.purl.clone();
            p.path = f.path.clone();
            p.layer = f.layer.clone();
            list.push(component(&p, &bom_ref));
            orphan_refs.push((f, bom_ref));
        }
        let refs_for_serial = findings.iter().map(|f| format!("{}:{}", f.id, f.purl)).collect();
        Components { list, package_refs, index, orphan_refs, refs_for_serial }
    }

    /// The bom-ref of the component a finding is about.
    fn bom_ref(&self, f: &Finding) -> Option<&str> {
        match self.index.find(f) {
            Some(i) => self.package_refs.get(i).map(String::as_str),
            None => self.orphan_refs.iter().find(|(o, _)| same_package(o, f)).map(|(_, r)| r.as_str()),
        }
    }
}

/// True when two findings are about the same installed package.
fn same_package(a: &Finding, b: &Finding) -> bool {
    finding_key(a) == finding_key(b)
}

/// One package as a `library` component.
fn component(p: &Package, bom_ref: &str) -> Value {
    let mut props = vec![
        json!({"name": "trawl:package:type", "value": p.kind}),
        json!({"name": "trawl:location:path", "value": p.path}),
    ];
    if !p.ecosystem.is_empty() {
        props.push(json!({"name": "trawl:ecosystem", "value": p.ecosystem}));
    }
    if let Some(l) = &p.layer {
        props.push(json!({"name": "trawl:location:layer", "value": l}));
    }
    if let Some(s) = &p.source_name {
        props.push(json!({"name": "trawl:source:name", "value": s}));
    }
    if let Some(s) = &p.source_version {
        props.push(json!({"name": "trawl:source:version", "value": s}));
    }
    let mut c = json!({
        "type": "library",
        "bom-ref": bom_ref,
        "name": p.name,
        "version": p.version,
        "properties": props,
    });
    if !p.purl.is_empty() {
        c["purl"] = json!(p.purl);
    }
    if !p.licenses.is_empty() {
        c["licenses"] = Value::Array(p.licenses.iter().map(|l| json!({"license": {"name": l}})).collect());
    }
    c
}

/// One entry per vulnerability id, affecting every component it was found in.
fn vulnerabilities(findings: &[Finding], components: &Components<'_>) -> Vec<Value> {
    group_by_id(findings)
        .into_iter()
        .map(|(id, group)| {
            let mut ratings: Vec<Value> = Vec::new();
            for f in &group {
                let r = rating(f);
                if !ratings.contains(&r) {
                    ratings.push(r);
                }
            }
            let mut affects: Vec<Value> = Vec::new();
            for f in &group {
                let Some(bom_ref) = components.bom_ref(f) else { continue };
                let entry =
                    json!({"ref": bom_ref, "versions": [{"version": f.installed_version, "status": "affected"}]});
                if !affects.contains(&entry) {
                    affects.push(entry);
                }
            }
            let mut v = json!({
                "id": id,
                "source": {"name": "OSV", "url": osv_url(id)},
                "ratings": ratings,
                "affects": affects,
            });
            if let Some(summary) = group.iter().map(|f| f.summary.as_str()).find(|s| !s.is_empty()) {
                v["description"] = json!(summary);
            }
            let mut advisories: Vec<Value> = Vec::new();
            for url in group.iter().filter_map(|f| f.url.as_deref()) {
                let a = json!({"url": url});
                if !advisories.contains(&a) {
                    advisories.push(a);
                }
            }
            if !advisories.is_empty() {
                v["advisories"] = Value::Array(advisories);
            }
            let mut aliases: Vec<&str> = Vec::new();
            for a in group.iter().flat_map(|f| f.aliases.iter()) {
                if a != id && !aliases.contains(&a.as_str()) {
                    aliases.push(a);
                }
            }
            if !aliases.is_empty() {
                v["references"] = Value::Array(
                    aliases.iter().map(|a| json!({"id": a, "source": {"name": "OSV", "url": osv_url(a)}})).collect(),
                );
            }
            if let Some(r) = recommendation(&group) {
                v["recommendation"] = json!(r);
            }
            v
        })
        .collect()
}

/// Characters an advisory id keeps unescaped in a URL path segment.
const ID_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_');

/// The OSV page for an id (OSV serves CVE, GHSA, distro and ecosystem ids alike).
fn osv_url(id: &str) -> String {
    format!("https://osv.dev/vulnerability/{}", utf8_percent_encode(id, ID_ENCODE))
}

/// A finding's rating: score and vector when known, the method from the vector.
fn rating(f: &Finding) -> Value {
    let mut r = json!({"severity": cyclonedx_severity(f.severity)});
    if let Some(s) = f.score {
        r["score"] = score_number(s);
    }
    if let Some(vector) = &f.cvss_vector {
        if let Some(v) = CvssVersion::of(vector) {
            r["method"] = json!(v.cyclonedx_method());
        }
        r["vector"] = json!(vector);
    }
    r
}

/// "Upgrade to X" when the fixed findings agree on one version, "Upgrade
/// P to X; Q to Y" when packages need different ones; `None` without a fix.
fn recommendation(group: &[&Finding]) -> Option<String> {
    let mut fixes: Vec<(&str, &str)> = Vec::new();
    for f in group {
        if let Some(v) = f.fixed_version.as_deref() {
            if !fixes.contains(&(f.package.as_str(), v)) {
                fixes.push((f.package.as_str(), v));
            }
        }
    }
    let (_, first) = *fixes.first()?;
    if fixes.iter().all(|(_, v)| *v == first) {
        return Some(format!("Upgrade to {first}"));
    }
    let parts: Vec<String> = fixes.iter().map(|(p, v)| format!("{p} to {v}")).collect();
    Some(format!("Upgrade {}", parts.join("; ")))
}
