//! SPDX 2.3 JSON: the inventory as an SPDX document, for tools and policies
//! that want SPDX rather than CycloneDX.
//!
//! The document describes one package for the image itself (purpose
//! `CONTAINER`), which contains one package per inventory package. Nothing
//! was downloaded or license-scanned, so download locations and concluded
//! licenses are `NOASSERTION`; declared licenses pass through only when they
//! are valid SPDX expressions (see `spdx_license`). Element ids are built
//! from sanitised names plus the package's position, so they are valid
//! (`SPDXRef-[A-Za-z0-9.-]+`) and unique whatever the names hold.
//!
//! [`to_spdx`] takes anything that holds an inventory ([`AsInventory`]): an
//! [`SbomReport`](crate::SbomReport), a [`ScanReport`](crate::ScanReport)
//! or an [`InventoryView`] of either.

use crate::common::{digest_value, oci_purl, stable_uuid, TOOL_URI};
use crate::sbom::{AsInventory, InventoryView};
use crate::spdx_license::declared_expression;
use serde_json::{json, Value};
use trawl_catalog::Package;

/// SPDX id of the package that stands for the image.
pub const IMAGE_SPDX_ID: &str = "SPDXRef-Image";

/// Renders an inventory (of an SBOM or a scan report) as an SPDX 2.3 JSON document.
pub fn to_spdx<R: AsInventory + ?Sized>(report: &R) -> Value {
    let view = report.as_inventory();
    let image = view.image;
    let name = if image.reference.is_empty() { "trawl-inventory" } else { image.reference.as_str() };

    let mut packages = vec![image_package(view, name)];
    let mut relationships = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", IMAGE_SPDX_ID)];
    for (i, p) in view.packages.iter().enumerate() {
        let id = package_spdx_id(p, i);
        relationships.push(relationship(IMAGE_SPDX_ID, "CONTAINS", &id));
        packages.push(package(p, &id));
    }

    let mut id_parts = vec!["spdx", image.reference.as_str(), view.generated_at];
    id_parts.extend(image.manifest_digest.as_deref());
    id_parts.extend(view.packages.iter().map(|p| p.purl.as_str()));
    let namespace = format!("{}/spdx/{}-{}", TOOL_URI.trim_end_matches('/'), id_safe(name), stable_uuid(&id_parts));

    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": namespace,
        "creationInfo": {
            "created": spdx_time(view.generated_at),
            "creators": [format!("Tool: {}-{}", view.generator.name, view.generator.version)],
        },
        "packages": packages,
        "relationships": relationships,
    })
}

/// The package that stands for the image.
fn image_package(view: InventoryView<'_>, name: &str) -> Value {
    let image = view.image;
    let mut p = json!({
        "SPDXID": IMAGE_SPDX_ID,
        "name": name,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
    });
    if let Some(d) = &image.manifest_digest {
        p["versionInfo"] = json!(d);
        let hex = digest_value(d);
        if d.starts_with("sha256:") && hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            p["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": hex.to_ascii_lowercase()}]);
        }
    }
    if let Some(purl) = oci_purl(image) {
        p["externalRefs"] = json!([purl_ref(&purl)]);
    }
    let mut about = vec![format!("source: {}", if image.source.is_empty() { "unknown" } else { &image.source })];
    about.extend(image.platform.as_ref().map(|pl| format!("platform: {pl}")));
    about.extend(
        view.distro.map(|d| format!("distribution: {}", d.pretty_name.clone().unwrap_or_else(|| d.id.clone()))),
    );
    p["description"] = json!(about.join("; "));
    p
}

/// One inventory package.
fn package(pkg: &Package, id: &str) -> Value {
    let mut p = json!({
        "SPDXID": id,
        "name": pkg.name,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
    });
    match declared_expression(&pkg.licenses) {
        Some(expression) => p["licenseDeclared"] = json!(expression),
        // Keep what the package declared, when it is not SPDX, for humans.
        None if !pkg.licenses.is_empty() => {
            p["licenseComments"] = json!(format!("declared as: {}", pkg.licenses.join("; ")))
        }
        None => {}
    }
    if !pkg.version.is_empty() {
        p["versionInfo"] = json!(pkg.version);
    }
    if !pkg.purl.is_empty() {
        p["externalRefs"] = json!([purl_ref(&pkg.purl)]);
    }
    let mut source = format!("recorded in {}", if pkg.path.is_empty() { "an unknown file" } else { &pkg.path });
    if let Some(l) = &pkg.layer {
        source.push_str(&format!(" (layer {l})"));
    }
    if let Some(s) = &pkg.source_name {
        source.push_str(&format!("; source package {s}"));
        if let Some(v) = &pkg.source_version {
            source.push_str(&format!(" {v}"));
        }
    }
    p["sourceInfo"] = json!(source);
    p
}

/// `SPDXRef-Package-<type>-<name>-<position>`: the position keeps ids unique
/// when sanitised names collide.
fn package_spdx_id(p: &Package, position: usize) -> String {
    format!("SPDXRef-Package-{}-{}-{}", p.kind.purl_type(), id_safe(&p.name), position)
}

/// Replaces every character SPDX ids cannot hold with `-`.
fn id_safe(s: &str) -> String {
    let out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' }).collect();
    if out.is_empty() {
        "unnamed".to_string()
    } else {
        out
    }
}

/// A purl external reference.
fn purl_ref(purl: &str) -> Value {
    json!({"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl})
}

/// A relationship between two elements.
fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({"spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to})
}

/// SPDX wants `YYYY-MM-DDThh:mm:ssZ` in UTC; reports may carry offsets or
/// fractions. An unreadable time becomes the current time.
fn spdx_time(rfc3339: &str) -> String {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| chrono::Utc::now());
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use trawl_catalog::PackageType;

    #[test]
    fn spdx_ids_are_valid_and_unique() {
        let a = Package::new(PackageType::Npm, "@babel/core", "7.0.0");
        let b = Package::new(PackageType::Npm, "@babel-core", "7.0.0");
        let (ia, ib) = (package_spdx_id(&a, 0), package_spdx_id(&b, 1));
        assert_ne!(ia, ib);
        for id in [ia, ib, package_spdx_id(&Package::new(PackageType::Go, "", ""), 2)] {
            let rest = id.strip_prefix("SPDXRef-").unwrap_or("");
            assert!(
                !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'),
                "{id}"
            );
        }
    }

    #[test]
    fn times_are_normalised_to_utc_seconds() {
        assert_eq!(spdx_time("2026-11-28T10:00:00Z"), "2026-11-28T10:00:00Z");
        assert_eq!(spdx_time("2026-11-28T12:00:00.123+02:00"), "2026-11-28T10:00:00Z");
        assert!(spdx_time("yesterday").ends_with('Z'));
    }
}
