//! Matching semantics on hand-written OSV records: range events, explicit
//! versions, withdrawn advisories, alias merging, distro naming rules and
//! OS coverage; and the database file's round trip and corruption checks.

use serde_json::json;
use trawl_catalog::{Distro, Inventory, Package, PackageType};
use trawl_vulndb::osv::OsvRecord;
use trawl_vulndb::{CachedMatcher, Database, DbError, Matcher, OsCoverage, Rating};

fn record(v: serde_json::Value) -> OsvRecord {
    serde_json::from_value(v).unwrap()
}

fn advisories() -> Vec<OsvRecord> {
    vec![
        // Debian advisory on the source package, with a CVE alias.
        record(json!({"id": "DSA-5532-1", "aliases": ["CVE-2023-5678"], "summary": "openssl security update",
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}]}]}]})),
        // The same CVE from a second source: must merge into one finding.
        record(
            json!({"id": "CVE-2023-5678", "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "3.0.0"}, {"fixed": "3.0.12-1"}]}]}]}),
        ),
        // Alpine advisory on the origin.
        record(json!({"id": "ALPINE-CVE-2023-0001", "upstream": ["CVE-2023-0001"],
            "affected": [{"package": {"ecosystem": "Alpine:v3.18", "name": "openssl"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.1.4-r1"}]}]}]})),
        // PyPI: explicit versions, last_affected, and a name that needs normalising.
        record(json!({"id": "PYSEC-2021-1", "aliases": ["CVE-2021-1111"], "database_specific": {"severity": "HIGH"},
            "affected": [{"package": {"ecosystem": "PyPI", "name": "Zope.Interface"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"last_affected": "1.4.2"}]}],
                "versions": ["0.9"]}]})),
        // Withdrawn: never matches.
        record(json!({"id": "GHSA-xxxx-withdrawn", "withdrawn": "2023-01-01T00:00:00Z",
            "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}]})),
        // npm with a reintroduction.
        record(json!({"id": "GHSA-lodash-1", "aliases": ["CVE-2020-8203"],
            "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.19"}, {"introduced": "5.0.0"}, {"fixed": "5.0.2"}]}]}]})),
    ]
}

fn db() -> Database {
    Database::build(advisories(), vec![], 0)
}

fn pkg(kind: PackageType, name: &str, version: &str, source: Option<(&str, &str)>, distro: Option<&Distro>) -> Package {
    let mut p = Package::new(kind, name, version);
    if let Some((n, v)) = source {
        p.source_name = Some(n.into());
        p.source_version = Some(v.into());
    }
    p.assign_identity(distro);
    p
}

fn debian() -> Distro {
    Distro { id: "debian".into(), version_id: Some("12".into()), ..Default::default() }
}

#[test]
fn debian_packages_match_by_source_and_aliases_merge() {
    let d = debian();
    let inv = Inventory {
        distro: Some(d.clone()),
        packages: vec![
            pkg(PackageType::Deb, "libssl3", "3.0.11-1~deb12u1", Some(("openssl", "3.0.11-1~deb12u1")), Some(&d)),
            // At the fixed version of both advisories' ranges: not affected.
            pkg(PackageType::Deb, "openssl", "3.0.12-1", Some(("openssl", "3.0.12-1")), Some(&d)),
        ],
        issues: vec![],
    };
    let db = db();
    let result = Matcher::new(&db).match_inventory(&inv);
    assert_eq!(result.os, OsCoverage::Covered { ecosystem: "Debian:12".into() });
    assert_eq!(result.findings.len(), 1, "{:#?}", result.findings);
    let f = &result.findings[0];
    assert_eq!((f.id.as_str(), f.package.as_str()), ("CVE-2023-5678", "libssl3"));
    assert_eq!(f.advisories, vec!["CVE-2023-5678", "DSA-5532-1"]);
    assert!(f.aliases.contains(&"DSA-5532-1".to_string()));
    // The highest fixed version fixes both advisories.
    assert_eq!(f.fixed_version.as_deref(), Some("3.0.12-1"));
    assert_eq!((f.severity, f.score), (Rating::High, Some(7.5)));
}

#[test]
fn cached_matcher_equals_the_plain_one_and_restamps_placement() {
    let d = debian();
    let placed = |layer: &str, path: &str| {
        let mut p =
            pkg(PackageType::Deb, "libssl3", "3.0.11-1~deb12u1", Some(("openssl", "3.0.11-1~deb12u1")), Some(&d));
        p.layer = Some(layer.into());
        p.path = path.into();
        p
    };
    let image = |layer: &str, path: &str| Inventory {
        distro: Some(d.clone()),
        packages: vec![
            placed(layer, path),
            pkg(PackageType::Npm, "lodash", "4.17.15", None, None),
            // Unparsable version: the warning must be counted once per image, hit or miss.
            pkg(PackageType::Npm, "lodash", "not a version", None, None),
        ],
        issues: vec![],
    };
    let db = std::sync::Arc::new(db());
    let cached = CachedMatcher::new(db.clone());
    let plain = Matcher::new(&db);
    for (layer, path) in [("sha256:aa", "var/lib/dpkg/status"), ("sha256:bb", "var/lib/dpkg/status.d/libssl3")] {
        let inv = image(layer, path);
        let (want, got) = (plain.match_inventory(&inv), cached.match_inventory(&inv));
        assert_eq!(got.findings, want.findings, "findings for layer {layer}");
        assert_eq!(got.warnings, want.warnings);
        assert_eq!(got.os, want.os);
        let openssl = got.findings.iter().find(|f| f.package == "libssl3").unwrap();
        assert_eq!((openssl.layer.as_deref(), openssl.path.as_str()), (Some(layer), path));
    }
    assert_eq!(cached.distinct_packages(), 3, "the second image was served from the memo");
}

#[test]
fn cached_matcher_equals_the_plain_one_on_the_real_debian_feed() {
    // The shared corpus sits beside the clone (../shared/corpus from the project root).
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    if !corpus.is_dir() {
        eprintln!("skipped: ../shared/corpus is not beside this clone");
        return;
    }
    let zip = corpus.join("osv/Debian/all.zip");
    let status = corpus.join("pkgdb/dpkg/ubuntu-18.04-texlive.status");
    let (Ok(text), true) = (std::fs::read_to_string(&status), zip.is_file()) else {
        eprintln!("skipped: the corpus has no Debian feed or dpkg status");
        return;
    };
    let ingested = trawl_vulndb::ingest::Ingested::from_paths(&[zip]).unwrap();
    let db = std::sync::Arc::new(Database::build(ingested.records, ingested.sources, 0));
    let distro = Distro { id: "debian".into(), version_id: Some("10".into()), ..Default::default() };
    let packages = text
        .split("\n\n")
        .filter_map(|stanza| {
            let field = |k: &str| stanza.lines().find_map(|l| l.strip_prefix(k)).map(|v| v.trim().to_string());
            let (name, version) = (field("Package:")?, field("Version:")?);
            let source = field("Source:").map(|s| s.split_whitespace().next().unwrap_or(&name).to_string());
            let mut p = Package::new(PackageType::Deb, name, version);
            p.source_name = source;
            p.assign_identity(Some(&distro));
            Some(p)
        })
        .collect();
    let inv = Inventory { distro: Some(distro.clone()), packages, issues: vec![] };
    let want = Matcher::new(&db).match_inventory(&inv);
    assert!(!want.findings.is_empty(), "the real feed finds something in an old Ubuntu");
    let cached = CachedMatcher::new(db.clone());
    for _ in 0..2 {
        let got = cached.match_inventory(&inv);
        assert_eq!(got.findings, want.findings);
        assert_eq!(got.warnings, want.warnings);
    }
}

#[test]
fn ranges_versions_and_normalised_names() {
    let db = db();
    let m = Matcher::new(&db);
    let check = |kind, name: &str, version: &str| {
        let inv = Inventory { distro: None, packages: vec![pkg(kind, name, version, None, None)], issues: vec![] };
        m.match_inventory(&inv).findings.into_iter().map(|f| (f.id, f.fixed_version)).collect::<Vec<_>>()
    };
    assert_eq!(check(PackageType::Python, "zope-interface", "1.4.2"), vec![("CVE-2021-1111".into(), None)]);
    assert!(check(PackageType::Python, "zope_interface", "1.4.3").is_empty(), "above last_affected");
    assert_eq!(check(PackageType::Python, "ZOPE.INTERFACE", "0.9").len(), 1, "explicit version");
    assert!(check(PackageType::Python, "zope.interface", "0.9.1").is_empty());
    assert_eq!(check(PackageType::Npm, "lodash", "4.17.15"), vec![("CVE-2020-8203".into(), Some("4.17.19".into()))]);
    assert!(check(PackageType::Npm, "lodash", "4.17.19").is_empty(), "fixed version is not affected");
    assert_eq!(check(PackageType::Npm, "lodash", "5.0.1"), vec![("CVE-2020-8203".into(), Some("5.0.2".into()))]);
    assert!(check(PackageType::Npm, "lodash", "5.0.2").is_empty());
}

#[test]
fn os_coverage_is_explicit() {
    let db = db();
    let m = Matcher::new(&db);
    let alpine = Distro { id: "alpine".into(), version_id: Some("3.18.4".into()), ..Default::default() };
    let old_alpine = Distro { id: "alpine".into(), version_id: Some("3.2.0".into()), ..Default::default() };
    let centos = Distro { id: "centos".into(), version_id: Some("7".into()), ..Default::default() };
    let with = |d: Option<&Distro>, kind| Inventory {
        distro: d.cloned(),
        packages: vec![pkg(kind, "libcrypto3", "3.1.2-r0", Some(("openssl", "3.1.2-r0")), d)],
        issues: vec![],
    };
    let r = m.match_inventory(&with(Some(&alpine), PackageType::Apk));
    assert_eq!(r.os, OsCoverage::Covered { ecosystem: "Alpine:v3.18".into() });
    assert_eq!(r.findings[0].id, "CVE-2023-0001");
    assert_eq!(r.findings[0].fixed_version.as_deref(), Some("3.1.4-r1"));
    let r = m.match_inventory(&with(Some(&old_alpine), PackageType::Apk));
    assert_eq!(r.os, OsCoverage::NotCovered { ecosystem: "Alpine:v3.2".into() });
    assert!(r.os.is_gap());
    assert!(matches!(m.match_inventory(&with(Some(&centos), PackageType::Rpm)).os, OsCoverage::Unsupported { .. }));
    assert_eq!(m.match_inventory(&with(None, PackageType::Apk)).os, OsCoverage::Unknown);
    assert_eq!(m.match_inventory(&with(None, PackageType::Npm)).os, OsCoverage::NoOsPackages);
}

#[test]
fn database_round_trips_and_rejects_damage() {
    let db = db();
    assert_eq!(db.header().counts.withdrawn, 1);
    assert_eq!(db.header().counts.advisories, 5);
    let bytes = db.to_bytes().unwrap();
    let back = Database::from_bytes(&bytes, "mem").unwrap();
    assert_eq!(back.header().version, db.header().version);
    assert_eq!(back.lookup("npm", "lodash"), db.lookup("npm", "lodash"));
    assert_eq!(back.lookup("PyPI", "zope-interface").len(), 1);

    assert!(matches!(Database::from_bytes(&bytes[..bytes.len() - 10], "t"), Err(DbError::Corrupt(_))));
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    assert!(matches!(Database::from_bytes(&flipped, "t"), Err(DbError::Corrupt(_))));
    assert!(matches!(Database::from_bytes(b"PK\x03\x04not a db at all", "t"), Err(DbError::NotADatabase(_))));
    assert!(matches!(Database::from_bytes(&bytes[..5], "t"), Err(DbError::NotADatabase(_))));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trawl.db");
    db.write(&path).unwrap();
    assert_eq!(Database::read_header(&path).unwrap().counts, db.header().counts);
    assert_eq!(Database::load(&path).unwrap().lookup("Debian:12", "openssl").len(), 2);
}
