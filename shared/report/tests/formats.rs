//! Every report format rendered from one realistic scan, checked by the
//! formats' own reference validators (`tests/validate_report.py`: jsonschema
//! with the SARIF schema, cyclonedx-python-lib, spdx-tools) and for the
//! cross-references a schema cannot check.

mod validate;

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use trawl_catalog::{Distro, Inventory, Package, PackageType};
use trawl_report::{
    cyclonedx, neuvector, sarif, spdx, table, AsInventory, DbInfo, ImageIdentity, LayerInfo, SbomReport, ScanReport,
    SuppressedFinding,
};
use trawl_vulndb::{Finding, MatchResult, OsCoverage, Rating};
use validate::{assert_invalid, assert_valid};

const L1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const L2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const L3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
const SUPPRESSED_ID: &str = "CVE-2020-28500";

fn debian12() -> Distro {
    Distro {
        id: "debian".into(),
        version_id: Some("12".into()),
        codename: Some("bookworm".into()),
        pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
        ..Default::default()
    }
}

fn package(kind: PackageType, name: &str, version: &str, path: &str, layer: &str, licenses: &[&str]) -> Package {
    let mut p = Package::new(kind, name, version);
    p.path = path.into();
    p.layer = Some(layer.into());
    p.licenses = licenses.iter().map(|l| l.to_string()).collect();
    if kind == PackageType::Deb {
        p.arch = Some("amd64".into());
    }
    p
}

fn image() -> ImageIdentity {
    ImageIdentity {
        reference: "registry.example.com/shop/web:1.4".into(),
        source: "registry".into(),
        manifest_digest: Some("sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into()),
        index_digest: None,
        config_digest: Some("sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc".into()),
        media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
        platform: Some("linux/amd64".into()),
        created: Some("2026-11-01T00:00:00Z".into()),
        layers: vec![
            LayerInfo {
                digest: L1.into(),
                diff_id: Some(L1.replace('1', "4")),
                size: 29_125_632,
                created_by: Some("/bin/sh -c #(nop) ADD file:9d1a2b3c4d5e6f in / ".into()),
            },
            LayerInfo {
                digest: L2.into(),
                diff_id: Some(L2.replace('2', "5")),
                size: 9_812_345,
                created_by: Some("/bin/sh -c apt-get update && apt-get install -y --no-install-recommends libssl3 curl && rm -rf /var/lib/apt/lists/*".into()),
            },
            LayerInfo {
                digest: L3.into(),
                diff_id: Some(L3.replace('3', "6")),
                size: 4_096_000,
                created_by: Some("RUN /bin/sh -c pip install flask==2.0.0 && npm ci # buildkit".into()),
            },
        ],
        labels: [("org.opencontainers.image.source".to_string(), "https://example.com/shop/web".to_string())].into(),
    }
}

fn inventory() -> Inventory {
    let dpkg = "var/lib/dpkg/status";
    let mut packages = vec![
        package(PackageType::Deb, "base-files", "12.4+deb12u5", dpkg, L1, &["GPL-2+"]),
        package(PackageType::Deb, "libssl3", "3.0.11-1~deb12u2", dpkg, L2, &["Apache-2.0"]),
        package(PackageType::Deb, "curl", "7.88.1-10+deb12u4", dpkg, L2, &["curl"]),
        package(PackageType::Deb, "libcurl4", "7.88.1-10+deb12u4", dpkg, L2, &["curl"]),
        package(
            PackageType::Python,
            "Flask",
            "2.0.0",
            "usr/local/lib/python3.11/site-packages/Flask-2.0.0.dist-info/METADATA",
            L3,
            &["BSD-3-Clause"],
        ),
        package(
            PackageType::Python,
            "Werkzeug",
            "2.0.0",
            "usr/local/lib/python3.11/site-packages/Werkzeug-2.0.0.dist-info/METADATA",
            L3,
            &["BSD License"],
        ),
        package(PackageType::Npm, "lodash", "4.17.20", "app/node_modules/lodash/package.json", L3, &["MIT"]),
        package(
            PackageType::Npm,
            "@babel/core",
            "7.22.0",
            "app/node_modules/@babel/core/package.json",
            L3,
            &["MIT OR Apache-2.0"],
        ),
        package(
            PackageType::Maven,
            "com.fasterxml.jackson.core:jackson-databind",
            "2.9.10.1",
            "opt/shop/shop.war:WEB-INF/lib/jackson-databind-2.9.10.1.jar",
            L3,
            &[],
        ),
    ];
    packages[1].source_name = Some("openssl".into());
    packages[2].source_name = Some("curl".into());
    packages[3].source_name = Some("curl".into());
    let distro = debian12();
    for p in &mut packages {
        p.assign_identity(Some(&distro));
    }
    Inventory { distro: Some(distro), packages, issues: Vec::new() }
}

struct Vuln<'a> {
    id: &'a str,
    aliases: &'a [&'a str],
    severity: Rating,
    score: Option<f32>,
    vector: Option<&'a str>,
    fixed: Option<&'a str>,
    summary: &'a str,
}

fn finding(p: &Package, v: Vuln<'_>) -> Finding {
    Finding {
        id: v.id.into(),
        aliases: v.aliases.iter().map(|a| a.to_string()).collect(),
        advisories: vec![v.aliases.first().copied().unwrap_or(v.id).to_string()],
        package: p.name.clone(),
        package_type: p.kind,
        ecosystem: p.ecosystem.clone(),
        purl: p.purl.clone(),
        installed_version: p.version.clone(),
        fixed_version: v.fixed.map(str::to_string),
        severity: v.severity,
        score: v.score,
        cvss_vector: v.vector.map(str::to_string),
        summary: v.summary.into(),
        url: Some(format!("https://nvd.nist.gov/vuln/detail/{}", v.id)),
        path: p.path.clone(),
        layer: p.layer.clone(),
    }
}

fn by_name<'a>(inv: &'a Inventory, name: &str) -> &'a Package {
    inv.packages.iter().find(|p| p.name == name).expect("test package exists")
}

/// The scan every test renders: Debian, PyPI, npm and Maven findings, one
/// without a fix, one without a score, one suppressed, grouped by layer.
fn scan() -> ScanReport {
    let inv = inventory();
    let v31 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
    let mut findings = vec![
        finding(
            by_name(&inv, "curl"),
            Vuln {
                id: "CVE-2023-38545",
                aliases: &["DSA-5523-1"],
                severity: Rating::Critical,
                score: Some(9.8),
                vector: Some(v31),
                fixed: Some("7.88.1-10+deb12u5"),
                summary: "SOCKS5 heap buffer overflow",
            },
        ),
        finding(
            by_name(&inv, "libcurl4"),
            Vuln {
                id: "CVE-2023-38545",
                aliases: &["DSA-5523-1"],
                severity: Rating::Critical,
                score: Some(9.8),
                vector: Some(v31),
                fixed: Some("7.88.1-10+deb12u5"),
                summary: "SOCKS5 heap buffer overflow",
            },
        ),
        finding(
            by_name(&inv, "Werkzeug"),
            Vuln {
                id: "CVE-2023-25577",
                aliases: &["GHSA-va9v-p4mx-8v56"],
                severity: Rating::High,
                score: Some(8.7),
                vector: Some("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N"),
                fixed: Some("2.2.3"),
                summary: "High resource usage when parsing multipart form data with many fields",
            },
        ),
        finding(
            by_name(&inv, "Flask"),
            Vuln {
                id: "CVE-2023-30861",
                aliases: &["GHSA-m2qf-hxjv-5gpq", "PYSEC-2023-62"],
                severity: Rating::High,
                score: Some(7.5),
                vector: Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"),
                fixed: Some("2.2.5"),
                summary: "Possible disclosure of permanent session cookie due to missing Vary: Cookie header",
            },
        ),
        finding(
            by_name(&inv, "curl"),
            Vuln {
                id: "CVE-2024-2398",
                aliases: &[],
                severity: Rating::High,
                score: Some(7.5),
                vector: Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"),
                fixed: None,
                summary: "HTTP/2 push headers memory-leak",
            },
        ),
        finding(
            by_name(&inv, "lodash"),
            Vuln {
                id: "CVE-2021-23337",
                aliases: &["GHSA-35jh-r3h4-6jhm"],
                severity: Rating::High,
                score: Some(7.2),
                vector: Some("CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H"),
                fixed: Some("4.17.21"),
                summary: "Command Injection in lodash",
            },
        ),
        finding(
            by_name(&inv, "libssl3"),
            Vuln {
                id: "CVE-2024-0727",
                aliases: &[],
                severity: Rating::Medium,
                score: Some(5.5),
                vector: Some("CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H"),
                fixed: Some("3.0.13-1~deb12u1"),
                summary: "PKCS12 Decoding crashes",
            },
        ),
        finding(
            by_name(&inv, "com.fasterxml.jackson.core:jackson-databind"),
            Vuln {
                id: "CVE-2020-36518",
                aliases: &["GHSA-57j2-w4cx-62h2"],
                severity: Rating::Medium,
                score: Some(5.0),
                vector: Some("AV:N/AC:L/Au:N/C:N/I:N/A:P"),
                fixed: Some("2.12.6.1"),
                summary: "Deeply nested json in jackson-databind",
            },
        ),
        finding(
            by_name(&inv, "lodash"),
            Vuln {
                id: SUPPRESSED_ID,
                aliases: &["GHSA-29mw-wpgm-hmr9"],
                severity: Rating::Medium,
                score: Some(5.3),
                vector: Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L"),
                fixed: Some("4.17.21"),
                summary: "Regular Expression Denial of Service (ReDoS) in lodash",
            },
        ),
        finding(
            by_name(&inv, "libssl3"),
            Vuln {
                id: "CVE-2023-6237",
                aliases: &[],
                severity: Rating::Unknown,
                score: None,
                vector: None,
                fixed: Some("3.0.13-1~deb12u1"),
                summary: "Excessive time spent checking invalid RSA public keys",
            },
        ),
    ];
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    // What an ignore file waived is set aside before the report is made, as the scanner does.
    let (waived, findings): (Vec<Finding>, Vec<Finding>) = findings.into_iter().partition(|f| f.id == SUPPRESSED_ID);
    let matched = MatchResult {
        findings,
        os: OsCoverage::Covered { ecosystem: "Debian:12".into() },
        warnings: vec!["npm @babel/core: cannot compare version: example warning".into()],
    };
    let db = DbInfo { version: 1_795_000_000_000, built_at: "2026-11-28T09:00:00Z".into(), advisories: 29_000 };
    let mut report = ScanReport::new(SbomReport::new(image(), inv), matched, db);
    report.suppressed = waived
        .into_iter()
        .map(|finding| SuppressedFinding {
            finding,
            reason: "ReDoS needs attacker-controlled input to toNumber, which the app never passes".into(),
            expires: Some("2027-06-30".into()),
        })
        .collect();
    report.group_by_layer();
    report
}

fn array<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("{what} is not an array: {v}"))
}

fn distinct_ids<'a>(findings: impl Iterator<Item = &'a Finding>) -> HashSet<&'a str> {
    findings.map(|f| f.id.as_str()).collect()
}

#[test]
fn sarif_is_valid_and_every_result_points_at_its_rule() {
    let report = scan();
    let doc = sarif::to_sarif(&report);
    assert_valid("sarif", &doc);

    let run = &doc["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "trawl");
    let rules = array(&run["tool"]["driver"]["rules"], "rules");
    let results = array(&run["results"], "results");
    assert_eq!(results.len(), report.findings.len() + report.suppressed.len());
    let all_ids = distinct_ids(report.findings.iter().chain(report.suppressed.iter().map(|s| &s.finding)));
    assert_eq!(rules.len(), all_ids.len(), "one rule per vulnerability id");
    for r in results {
        let i = r["ruleIndex"].as_u64().expect("ruleIndex") as usize;
        assert_eq!(rules[i]["id"], r["ruleId"], "{r}");
        let uri = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].as_str().expect("uri");
        assert!(!uri.starts_with('/') && !uri.is_empty(), "{uri}");
    }

    let rule = |id: &str| rules.iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("no rule {id}"));
    assert_eq!(rule("CVE-2023-38545")["properties"]["security-severity"], "9.8");
    assert_eq!(rule("CVE-2023-38545")["defaultConfiguration"]["level"], "error");
    assert_eq!(rule("CVE-2024-0727")["defaultConfiguration"]["level"], "warning");
    assert_eq!(rule("CVE-2023-6237")["defaultConfiguration"]["level"], "note");
    assert!(rule("CVE-2023-6237")["properties"].get("security-severity").is_none(), "no score, no security-severity");
    let tags = array(&rule("CVE-2023-30861")["properties"]["tags"], "tags");
    assert!(tags.contains(&Value::from("security")) && tags.contains(&Value::from("PyPI")), "{tags:?}");

    let jackson = results.iter().find(|r| r["ruleId"] == "CVE-2020-36518").expect("jackson result");
    assert_eq!(
        jackson["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "opt/shop/shop.war%3AWEB-INF/lib/jackson-databind-2.9.10.1.jar"
    );
    assert_eq!(jackson["locations"][0]["logicalLocations"][0]["name"], "registry.example.com/shop/web:1.4");
    let no_fix = results.iter().find(|r| r["ruleId"] == "CVE-2024-2398").expect("no-fix result");
    let text = no_fix["message"]["text"].as_str().unwrap_or("");
    assert!(text.contains("curl 7.88.1-10+deb12u4") && text.contains("No fixed version"), "{text}");

    let suppressed: Vec<&Value> = results.iter().filter(|r| r.get("suppressions").is_some()).collect();
    assert_eq!(suppressed.len(), 1);
    assert_eq!(suppressed[0]["ruleId"], SUPPRESSED_ID);
    assert_eq!(suppressed[0]["suppressions"][0]["kind"], "external");
    assert_eq!(suppressed[0]["suppressions"][0]["justification"], report.suppressed[0].reason.as_str());

    // Fingerprints tell results apart and survive a re-render.
    let fingerprints: Vec<&Value> = results.iter().map(|r| &r["partialFingerprints"][sarif::FINGERPRINT_KEY]).collect();
    assert_eq!(fingerprints.iter().collect::<HashSet<_>>().len(), results.len());
    let again = sarif::to_sarif(&scan());
    assert_eq!(again["runs"][0]["results"][0]["partialFingerprints"], results[0]["partialFingerprints"]);
}

#[test]
fn cyclonedx_scan_is_valid_and_affects_resolve_to_components() {
    let report = scan();
    let doc = cyclonedx::to_cyclonedx_scan(&report);
    assert_valid("cyclonedx", &doc);

    let refs: HashSet<&str> =
        array(&doc["components"], "components").iter().filter_map(|c| c["bom-ref"].as_str()).collect();
    let vulns = array(&doc["vulnerabilities"], "vulnerabilities");
    assert_eq!(vulns.len(), distinct_ids(report.findings.iter()).len(), "one entry per id, suppressed left out");
    for v in vulns {
        let affects = array(&v["affects"], "affects");
        assert!(!affects.is_empty(), "{v}");
        for a in affects {
            let r = a["ref"].as_str().expect("ref");
            assert!(refs.contains(r), "affects.ref {r} names no component");
        }
    }
    let vuln = |id: &str| vulns.iter().find(|v| v["id"] == id).unwrap_or_else(|| panic!("no vulnerability {id}"));
    let curl = vuln("CVE-2023-38545");
    assert_eq!(array(&curl["affects"], "affects").len(), 2, "curl and libcurl4 share one entry");
    assert_eq!(curl["ratings"][0]["method"], "CVSSv31");
    assert_eq!(curl["ratings"][0]["severity"], "critical");
    assert_eq!(curl["ratings"][0]["score"], 9.8);
    assert_eq!(curl["recommendation"], "Upgrade to 7.88.1-10+deb12u5");
    assert_eq!(curl["source"]["name"], "OSV");
    assert_eq!(vuln("CVE-2020-36518")["ratings"][0]["method"], "CVSSv2");
    assert_eq!(vuln("CVE-2023-25577")["ratings"][0]["method"], "CVSSv4");
    assert!(vuln("CVE-2024-2398").get("recommendation").is_none(), "no fix, no recommendation");
    let unscored = &vuln("CVE-2023-6237")["ratings"][0];
    assert_eq!(unscored["severity"], "unknown");
    assert!(unscored.get("score").is_none() && unscored.get("method").is_none(), "{unscored}");
    assert!(vulns.iter().all(|v| v["id"] != SUPPRESSED_ID));

    // The plain SBOM variant is valid too, and a different document.
    let sbom = SbomReport::new(image(), inventory());
    let bom = cyclonedx::to_cyclonedx(&sbom);
    assert_valid("cyclonedx", &bom);
    assert!(bom.get("vulnerabilities").is_none());
    assert_ne!(bom["serialNumber"], doc["serialNumber"]);
    assert_eq!(cyclonedx::to_cyclonedx(&sbom)["serialNumber"], bom["serialNumber"], "serial numbers are stable");
}

#[test]
fn spdx_is_valid_with_the_image_describing_its_packages() {
    let report = scan();
    for doc in [
        spdx::to_spdx(&report),
        spdx::to_spdx(&report.as_inventory()),
        spdx::to_spdx(&SbomReport::new(image(), inventory())),
    ] {
        assert_valid("spdx-json", &doc);
        let packages = array(&doc["packages"], "packages");
        assert_eq!(packages.len(), report.packages.len() + 1, "one package per inventory package plus the image");
        let ids: Vec<&str> = packages.iter().filter_map(|p| p["SPDXID"].as_str()).collect();
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "SPDX ids are unique");
        let rels = array(&doc["relationships"], "relationships");
        let describes: Vec<&Value> = rels.iter().filter(|r| r["relationshipType"] == "DESCRIBES").collect();
        assert_eq!(describes.len(), 1);
        assert_eq!(describes[0]["spdxElementId"], "SPDXRef-DOCUMENT");
        assert_eq!(describes[0]["relatedSpdxElement"], spdx::IMAGE_SPDX_ID);
        let image = packages.iter().find(|p| p["SPDXID"] == spdx::IMAGE_SPDX_ID).expect("image package");
        assert_eq!(image["primaryPackagePurpose"], "CONTAINER");
        let contains = rels.iter().filter(|r| r["relationshipType"] == "CONTAINS").count();
        assert_eq!(contains, report.packages.len());
    }
    let doc = spdx::to_spdx(&report);
    let declared = |name: &str| {
        array(&doc["packages"], "packages")
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["licenseDeclared"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(declared("base-files"), "NOASSERTION", "Debian's GPL-2+ is not an SPDX id");
    assert_eq!(declared("Werkzeug"), "NOASSERTION", "free text is not an SPDX expression");
    assert_eq!(declared("@babel/core"), "MIT OR Apache-2.0");
    assert_eq!(declared("curl"), "curl");
}

#[test]
fn neuvector_layout_keeps_neuvectors_fields_and_severities() {
    let report = scan();
    let doc = neuvector::to_neuvector(&report);
    assert_eq!(doc["error_message"], "");
    let r = &doc["report"];
    assert_eq!(r["registry"], "https://registry.example.com");
    assert_eq!(r["repository"], "shop/web");
    assert_eq!(r["tag"], "1.4");
    assert_eq!(r["image_id"], "c".repeat(64));
    assert_eq!(r["digest"], report.image.manifest_digest.clone().unwrap_or_default());
    assert_eq!(r["base_os"], "debian:12");
    assert_eq!(r["cvedb_create_time"], "2026-11-28T09:00:00Z");

    let vulns = array(&r["vulnerabilities"], "vulnerabilities");
    assert_eq!(vulns.len(), report.findings.len());
    let allowed = ["Critical", "High", "Medium", "Low"];
    for (v, f) in vulns.iter().zip(&report.findings) {
        assert_eq!(v["name"], f.id.as_str());
        assert_eq!(v["package_name"], f.package.as_str());
        let sev = v["severity"].as_str().unwrap_or("");
        assert!(allowed.contains(&sev), "{sev}");
        let expected = match f.severity {
            Rating::Critical => "Critical",
            Rating::High => "High",
            Rating::Medium => "Medium",
            _ => "Low",
        };
        assert_eq!(sev, expected, "{}", f.id);
        assert_eq!(v["in_base_image"], false);
    }
    let vuln = |id: &str| vulns.iter().find(|v| v["name"] == id).unwrap_or_else(|| panic!("no {id}"));
    assert_eq!(vuln("CVE-2023-38545")["score_v3"], 9.8);
    assert_eq!(vuln("CVE-2023-38545")["vectors_v3"], "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H");
    assert_eq!(vuln("CVE-2020-36518")["vectors"], "AV:N/AC:L/Au:N/C:N/I:N/A:P");
    assert_eq!(vuln("CVE-2020-36518")["score_v3"], 0);
    assert_eq!(vuln("CVE-2023-6237")["feed_rating"], "Unknown");
    assert_eq!(vuln("CVE-2024-2398")["fixed_version"], "");

    let layers = array(&r["layers"], "layers");
    assert_eq!(layers.len(), 3);
    let grouped = report.layers.as_deref().unwrap_or_default();
    for (l, g) in layers.iter().zip(grouped) {
        assert_eq!(l["digest"], g.digest.as_str());
        assert_eq!(array(&l["vulnerabilities"], "layer vulnerabilities").len(), g.findings.len());
    }
    assert_eq!(array(&r["modules"], "modules").len(), report.packages.len());
    assert_eq!(array(&r["cmds"], "cmds").len(), 3);
}

#[test]
fn group_by_layer_puts_findings_in_their_packages_layer() {
    let report = scan();
    let layers = report.layers.as_deref().expect("grouped");
    assert_eq!(layers.iter().map(|l| l.digest.as_str()).collect::<Vec<_>>(), [L1, L2, L3]);
    assert!(layers[0].findings.is_empty(), "the base layer only holds base-files");
    let mut placed = 0;
    for l in layers {
        for f in &l.findings {
            assert_eq!(f.layer.as_deref(), Some(l.digest.as_str()), "{} is in the wrong layer", f.id);
            let p = report.packages.iter().find(|p| p.purl == f.purl && p.path == f.path).expect("package");
            assert_eq!(p.layer.as_deref(), Some(l.digest.as_str()));
        }
        placed += l.findings.len();
        assert_eq!(l.summary.total, l.findings.len());
    }
    assert_eq!(placed, report.findings.len());
    let sum = |get: fn(&trawl_report::SeverityCounts) -> usize| layers.iter().map(|l| get(&l.summary)).sum::<usize>();
    let s = &report.summary;
    assert_eq!(
        [sum(|c| c.critical), sum(|c| c.high), sum(|c| c.medium), sum(|c| c.low), sum(|c| c.unknown), sum(|c| c.total)],
        [s.critical, s.high, s.medium, s.low, s.unknown, s.total]
    );
    assert!(layers.iter().all(|l| l.findings.iter().all(|f| f.id != SUPPRESSED_ID)));

    // A finding with no layer (a dir: scan) stays in `findings` but in no layer.
    let mut dir = scan();
    let mut loose = dir.findings[0].clone();
    loose.layer = None;
    loose.id = "CVE-2099-0001".into();
    dir.findings.push(loose);
    dir.group_by_layer();
    let placed: usize = dir.layers.as_deref().unwrap_or_default().iter().map(|l| l.findings.len()).sum();
    assert_eq!(placed, dir.findings.len() - 1);
    assert!(table::render(&dir, false).contains("Not attributed to a layer"));
}

#[test]
fn table_shows_layers_and_the_suppressed_count() {
    let report = scan();
    let text = table::render(&report, false);
    assert!(
        text.contains("Layer 1/3 sha256:111111111111… ADD file:9d1a2b3c4d5e6f in /\n  no vulnerabilities"),
        "{text}"
    );
    assert!(text.contains("Layer 2/3 sha256:222222222222… RUN apt-get update"), "{text}");
    assert!(text.contains("Layer 3/3 sha256:333333333333… RUN pip install flask==2.0.0 && npm ci\n"), "{text}");
    assert!(text.contains("\n  curl 7.88.1-10+deb12u4 (Debian:12)\n    CRITICAL   CVE-2023-38545"), "{text}");
    assert!(text.contains("1 suppressed by the ignore file"), "{text}");
    assert!(text.contains("\n\nLayer 2/3") && !text.contains("\n\n\n"), "one blank line between sections:\n{text}");
    assert!(!text.contains(SUPPRESSED_ID), "suppressed findings are not listed");

    let mut flat = scan();
    flat.layers = None;
    let text = table::render(&flat, false);
    assert!(!text.contains("Layer 1/3"));
    assert!(text.contains("\ncurl 7.88.1-10+deb12u4 (Debian:12)\n  CRITICAL   CVE-2023-38545"), "{text}");
}

#[test]
fn scan_json_round_trips_with_the_new_fields() {
    let report = scan();
    let json = serde_json::to_value(&report).expect("serialises");
    assert_eq!(json["schemaVersion"], "1.1.0");
    let s = &json["suppressed"][0];
    assert_eq!(s["id"], SUPPRESSED_ID, "the finding is flattened beside its reason");
    assert_eq!(s["installedVersion"], "4.17.20");
    assert_eq!(s["expires"], "2027-06-30");
    assert!(s["reason"].as_str().is_some_and(|r| r.starts_with("ReDoS")));
    assert_eq!(json["layers"][2]["createdBy"], "RUN /bin/sh -c pip install flask==2.0.0 && npm ci # buildkit");
    assert!(json["layers"][0]["diffId"].is_string());
    let back: ScanReport = serde_json::from_value(json.clone()).expect("reads back");
    assert_eq!(serde_json::to_value(&back).expect("serialises"), json);

    // A 1.0.0 document (no suppressed, no layers) still reads.
    let mut old = json;
    if let Some(o) = old.as_object_mut() {
        o.remove("suppressed");
        o.remove("layers");
        o.insert("schemaVersion".into(), "1.0.0".into());
    }
    let old: ScanReport = serde_json::from_value(old).expect("1.0.0 reads");
    assert!(old.suppressed.is_empty() && old.layers.is_none());
}

#[test]
fn the_validators_reject_broken_documents() {
    let report = scan();

    let mut sarif_doc = sarif::to_sarif(&report);
    sarif_doc["version"] = "2.0.0".into();
    sarif_doc["runs"][0]["results"][0]["level"] = "fatal".into();
    let out = assert_invalid("sarif", &sarif_doc);
    assert!(out.contains("fatal"), "{out}");

    let mut bom = cyclonedx::to_cyclonedx_scan(&report);
    bom["vulnerabilities"][0]["ratings"][0]["severity"] = "catastrophic".into();
    bom["trawlExtra"] = true.into();
    let out = assert_invalid("cyclonedx", &bom);
    assert!(out.contains("catastrophic") || out.contains("trawlExtra"), "{out}");

    let mut doc = spdx::to_spdx(&report);
    doc["packages"][1]["SPDXID"] = "SPDXRef-not_valid".into();
    doc["dataLicense"] = "MIT".into();
    let out = assert_invalid("spdx-json", &doc);
    assert!(out.contains("not_valid") || out.contains("CC0-1.0"), "{out}");
}

#[test]
fn ids_and_counts_are_consistent_across_formats() {
    let report = scan();
    let sarif_rules: HashSet<String> = array(&sarif::to_sarif(&report)["runs"][0]["tool"]["driver"]["rules"], "rules")
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect();
    let cdx: HashSet<String> = array(&cyclonedx::to_cyclonedx_scan(&report)["vulnerabilities"], "vulnerabilities")
        .iter()
        .filter_map(|v| v["id"].as_str().map(str::to_string))
        .collect();
    let nv: HashMap<String, usize> = array(&neuvector::to_neuvector(&report)["report"]["vulnerabilities"], "vulns")
        .iter()
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .fold(HashMap::new(), |mut m, id| {
            *m.entry(id).or_default() += 1;
            m
        });
    assert!(cdx.is_subset(&sarif_rules));
    assert_eq!(sarif_rules.difference(&cdx).cloned().collect::<Vec<_>>(), [SUPPRESSED_ID.to_string()]);
    assert_eq!(nv.keys().cloned().collect::<HashSet<_>>(), cdx);
    assert_eq!(nv["CVE-2023-38545"], 2, "NeuVector lists one entry per package");
}

#[test]
fn directory_scans_and_bare_reports_render_valid_documents() {
    // A dir: scan: no digests, no layers, packages without a layer.
    let mut inv = inventory();
    for p in &mut inv.packages {
        p.layer = None;
    }
    let identity = ImageIdentity { reference: "dir:/srv/rootfs".into(), source: "dir".into(), ..Default::default() };
    let findings: Vec<Finding> = scan()
        .findings
        .into_iter()
        .map(|mut f| {
            f.layer = None;
            f
        })
        .collect();
    let matched =
        MatchResult { findings, os: OsCoverage::NotCovered { ecosystem: "Debian:12".into() }, warnings: vec![] };
    let db = DbInfo { version: 1, built_at: "2026-11-28T09:00:00Z".into(), advisories: 1 };
    let mut dir = ScanReport::new(SbomReport::new(identity, inv), matched, db);
    dir.group_by_layer();
    assert_eq!(dir.layers.as_deref().map(<[_]>::len), Some(0));

    let sarif_doc = sarif::to_sarif(&dir);
    assert_valid("sarif", &sarif_doc);
    let notes = &sarif_doc["runs"][0]["invocations"][0]["toolExecutionNotifications"];
    assert!(notes[0]["message"]["text"].as_str().is_some_and(|t| t.contains("NOT checked")), "{notes}");
    assert_valid("cyclonedx", &cyclonedx::to_cyclonedx_scan(&dir));
    assert_valid("spdx-json", &spdx::to_spdx(&dir));
    let nv = neuvector::to_neuvector(&dir);
    assert_eq!(nv["report"]["registry"], "");
    assert_eq!(nv["report"]["repository"], "dir:/srv/rootfs");
    assert_eq!(nv["report"]["image_id"], "");
    assert!(nv["report"].get("cmds").is_none());
    let text = table::render(&dir, false);
    assert!(text.contains("WARNING: the vulnerability database has no advisories for Debian:12"), "{text}");
    assert!(text.contains("Not attributed to a layer"), "{text}");

    // A report with no identity at all (as some callers build) is still valid.
    let bare = SbomReport::new(ImageIdentity::default(), inventory());
    assert_valid("cyclonedx", &cyclonedx::to_cyclonedx(&bare));
    assert_valid("spdx-json", &spdx::to_spdx(&bare));
}

#[test]
fn rematching_keeps_live_suppressions_and_drops_expired_ones() {
    let report = scan();
    let waived = report.suppressed[0].finding.clone();
    let all: Vec<Finding> = report.findings.iter().cloned().chain([waived.clone()]).collect();
    let matched = |findings: Vec<Finding>| MatchResult {
        findings,
        os: OsCoverage::Covered { ecosystem: "Debian:12".into() },
        warnings: vec![],
    };
    let db = DbInfo { version: 1_795_000_000_001, built_at: "2026-11-29T09:00:00Z".into(), advisories: 29_001 };

    // The new database still reports the waived finding: it stays waived, not counted.
    let again = report.clone().rematched(matched(all.clone()), db.clone());
    assert_eq!(again.suppressed.len(), 1);
    assert_eq!(again.suppressed[0].finding.id, SUPPRESSED_ID);
    assert_eq!(again.suppressed[0].reason, report.suppressed[0].reason);
    assert!(again.findings.iter().all(|f| f.id != SUPPRESSED_ID));
    assert_eq!(again.summary, report.summary);
    assert_eq!(again.db.version, db.version);

    // A lapsed suppression no longer hides the finding.
    let mut lapsed = report.clone();
    lapsed.suppressed[0].expires = Some("2020-01-01".into());
    let again = lapsed.rematched(matched(all), db.clone());
    assert!(again.suppressed.is_empty());
    assert!(again.findings.iter().any(|f| f.id == SUPPRESSED_ID));

    // A finding the new database no longer reports leaves nothing suppressed behind.
    let again = report.clone().rematched(matched(report.findings.clone()), db);
    assert!(again.suppressed.is_empty());
}
