//! CycloneDX 1.5 JSON (an SBOM other tools can read).
//!
//! Each package becomes a `library` (or `operating-system` for the distro)
//! component with its purl; Trawl-specific facts (layer, source package,
//! ecosystem) go into `properties` under the `trawl:` namespace.

use crate::sbom::SbomReport;
use serde_json::{json, Value};

/// Renders the report as a CycloneDX 1.5 JSON document.
pub fn to_cyclonedx(report: &SbomReport) -> Value {
    let mut components: Vec<Value> = Vec::new();
    if let Some(d) = &report.distro {
        components.push(json!({
            "type": "operating-system",
            "bom-ref": format!("os:{}@{}", d.id, d.version_id.clone().unwrap_or_default()),
            "name": d.id,
            "version": d.version_id.clone().unwrap_or_default(),
            "description": d.pretty_name.clone().unwrap_or_default(),
        }));
    }
    for (i, p) in report.packages.iter().enumerate() {
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
            // bom-refs must be unique; the same purl can occur at several paths.
            "bom-ref": format!("{}#{}", p.purl, i),
            "name": p.name,
            "version": p.version,
            "purl": p.purl,
            "properties": props,
        });
        if !p.licenses.is_empty() {
            c["licenses"] = Value::Array(p.licenses.iter().map(|l| json!({"license": {"name": l}})).collect());
        }
        components.push(c);
    }
    let image = &report.image;
    let mut subject = json!({
        "type": "container",
        "bom-ref": image.manifest_digest.clone().unwrap_or_else(|| image.reference.clone()),
        "name": image.reference,
    });
    if let Some(d) = &image.manifest_digest {
        subject["version"] = json!(d);
    }
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{}", pseudo_uuid(report)),
        "version": 1,
        "metadata": {
            "timestamp": report.generated_at,
            "tools": {"components": [{"type": "application", "name": report.generator.name, "version": report.generator.version}]},
            "component": subject,
        },
        "components": components,
    })
}

/// A deterministic RFC 4122-shaped id derived from the report contents, so
/// that the same scan yields the same serial number without a UUID dependency.
fn pseudo_uuid(report: &SbomReport) -> String {
    use std::hash::{Hash, Hasher};
    let mut h1 = std::collections::hash_map::DefaultHasher::new();
    report.image.reference.hash(&mut h1);
    report.generated_at.hash(&mut h1);
    let a = h1.finish();
    report.packages.len().hash(&mut h1);
    let b = h1.finish();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a & 0xfff) as u16,
        ((b >> 48) as u16 & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}
