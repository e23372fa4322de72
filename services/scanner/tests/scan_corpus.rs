//! Vulnerability matching on real data: a database compiled from the whole
//! OSV corpus, and images built from the corpus's real package databases,
//! pushed to a real registry and scanned with the real `trawl-scanner scan`.
//! Known findings must appear and known non-findings (packages at or above
//! the fixed version) must not; Ubuntu matches are checked against
//! `dpkg --compare-versions` as an independent oracle. Skips without the corpus.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use trawl_testkit::{corpus_dir, push, ImageBuilder, LayerBuilder};
use trawl_vulndb::{Database, Ingested};

/// The corpus database, built once per test binary into a temp file.
fn corpus_db(corpus: &Path) -> &'static PathBuf {
    static DB: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DB.get_or_init(|| {
        let mut ingested = Ingested::default();
        for eco in ["Debian", "Alpine", "AlmaLinux", "PyPI", "Go", "crates.io"] {
            ingested.add_path(&corpus.join("osv").join(eco).join("all.zip")).unwrap();
        }
        ingested.add_path(&corpus.join("osv-raw/ghsa")).unwrap();
        ingested.add_path(&corpus.join("osv-raw/ubuntu")).unwrap();
        assert!(ingested.records.len() > 24_000, "{} records", ingested.records.len());
        assert!(ingested.skipped.is_empty(), "{:?}", ingested.skipped);
        let skipped = ingested.skipped.len() as u64;
        let db = Database::build(std::mem::take(&mut ingested.records), ingested.sources.clone(), skipped);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corpus.db");
        db.write(&path).unwrap();
        (dir, path)
    })
    .1
}

fn scan_json(db: &Path, reference: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_trawl-scanner"))
        .args(["scan", "--plain-http", "--format", "json", "--db"])
        .arg(db)
        .arg(reference)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn finding_ids(report: &serde_json::Value, package: &str) -> BTreeSet<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["package"] == package)
        .flat_map(|f| {
            let mut ids = vec![f["id"].as_str().unwrap().to_string()];
            ids.extend(f["advisories"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()));
            ids
        })
        .collect()
}

const UBUNTU_1804: &str = "NAME=\"Ubuntu\"\nVERSION=\"18.04.6 LTS (Bionic Beaver)\"\nID=ubuntu\nVERSION_ID=\"18.04\"\nPRETTY_NAME=\"Ubuntu 18.04.6 LTS\"\n";

#[tokio::test]
async fn ubuntu_findings_equal_the_dpkg_oracle() {
    let Some(corpus) = corpus_dir() else { return };
    let db = corpus_db(&corpus);
    let registry = registry();
    let image = ImageBuilder::new()
        .layer(
            LayerBuilder::new()
                .file("etc/os-release", UBUNTU_1804, 0o644)
                .file_from_disk("var/lib/dpkg/status", corpus.join("pkgdb/dpkg/ubuntu-18.04-texlive.status")),
        )
        .build()
        .unwrap();
    push(&registry, "corpus/ubuntu", "18.04", &image, None).await.unwrap();
    let report = scan_json(db, &format!("{}/corpus/ubuntu:18.04", registry.host()));
    assert_eq!(report["osCoverage"]["status"], "covered");
    assert_eq!(report["osCoverage"]["ecosystem"], "Ubuntu:18.04:LTS");

    // Oracle: for every (source package, source version) installed and every
    // Ubuntu 18.04 notice range, ask dpkg whether installed < fixed.
    let tsv = std::fs::read_to_string(corpus.join("pkgdb/dpkg/ubuntu-18.04-texlive.status.expected.tsv")).unwrap();
    let installed: BTreeSet<(String, String)> =
        tsv.lines().map(|l| l.split('\t').collect::<Vec<_>>()).map(|c| (c[4].to_string(), c[5].to_string())).collect();
    let mut expected: BTreeSet<String> = BTreeSet::new();
    for entry in std::fs::read_dir(corpus.join("osv-raw/ubuntu")).unwrap() {
        let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
        for affected in rec["affected"].as_array().unwrap() {
            if affected["package"]["ecosystem"] != "Ubuntu:18.04:LTS" {
                continue;
            }
            let name = affected["package"]["name"].as_str().unwrap();
            for (src, ver) in installed.iter().filter(|(s, _)| s == name) {
                let listed = affected["versions"].as_array().is_some_and(|vs| vs.iter().any(|v| v == ver.as_str()));
                let below_fix = affected["ranges"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|r| r["events"].as_array().unwrap())
                    .filter_map(|e| e["fixed"].as_str())
                    .any(|fixed| {
                        Command::new("dpkg").args(["--compare-versions", ver, "lt", fixed]).status().unwrap().success()
                    });
                if listed || below_fix {
                    expected.insert(format!("{}:{src}", rec["id"].as_str().unwrap()));
                }
            }
        }
    }
    let got: BTreeSet<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["ecosystem"] == "Ubuntu:18.04:LTS")
        .flat_map(|f| {
            let pkg = report["packages"].as_array().unwrap().iter().find(|p| p["name"] == f["package"]).unwrap();
            let src = pkg["source_name"].as_str().unwrap().to_string();
            f["advisories"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |a| format!("{}:{src}", a.as_str().unwrap()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
}

#[tokio::test]
async fn debian_alpine_and_java_known_findings_and_non_findings() {
    let Some(corpus) = corpus_dir() else { return };
    let db = corpus_db(&corpus);
    let registry = registry();
    let debian10 = "ID=debian\nVERSION_ID=\"10\"\nPRETTY_NAME=\"Debian GNU/Linux 10 (buster)\"\n";

    // Real status file: postgresql-11 11.22-0+deb10u2 is past every fix in the data.
    let current = ImageBuilder::new()
        .layer(
            LayerBuilder::new()
                .file("etc/os-release", debian10, 0o644)
                .file_from_disk("var/lib/dpkg/status", corpus.join("pkgdb/dpkg/debian-10-postgresql.status")),
        )
        .build()
        .unwrap();
    push(&registry, "corpus/pg", "current", &current, None).await.unwrap();
    let report = scan_json(db, &format!("{}/corpus/pg:current", registry.host()));
    assert_eq!(report["osCoverage"]["status"], "covered");
    assert_eq!(report["summary"]["total"], 0, "{:#}", report["findings"]);

    // postgresql-11 exactly at DLA-3316-1's fixed version: neither it nor any
    // earlier advisory may match. postgresql-common one revision below
    // DSA-4568-1's fix: that one must.
    let at_fix = dpkg_status(&[
        ("postgresql-client-11", "11.19-0+deb10u1", Some("postgresql-11")),
        ("postgresql-client-common", "200+deb10u2", Some("postgresql-common")),
    ]);
    let old = ImageBuilder::new()
        .layer(LayerBuilder::new().file("etc/os-release", debian10, 0o644).file("var/lib/dpkg/status", at_fix, 0o644))
        .build()
        .unwrap();
    push(&registry, "corpus/pg", "old", &old, None).await.unwrap();
    let report = scan_json(db, &format!("{}/corpus/pg:old", registry.host()));
    let pg = finding_ids(&report, "postgresql-client-11");
    assert!(!pg.contains("DLA-3316-1") && !pg.contains("DLA-3189-1") && !pg.contains("DSA-5135-1"), "{pg:?}");
    let common = finding_ids(&report, "postgresql-client-common");
    assert!(common.contains("DSA-4568-1") && common.contains("CVE-2019-3466"), "{common:?}");
    let f = report["findings"].as_array().unwrap().iter().find(|f| f["package"] == "postgresql-client-common").unwrap();
    assert_eq!(f["fixedVersion"], "200+deb10u3");

    // Alpine 3.16 is newer than the corpus's secdb (v3.3–v3.11): not covered, said out loud.
    let alpine = ImageBuilder::new()
        .layer(
            LayerBuilder::new()
                .file("etc/os-release", "ID=alpine\nVERSION_ID=3.16.2\n", 0o644)
                .file_from_disk("lib/apk/db/installed", corpus.join("pkgdb/apk/alpine-3.16-installed")),
        )
        .build()
        .unwrap();
    push(&registry, "corpus/alpine", "3.16", &alpine, None).await.unwrap();
    let report = scan_json(db, &format!("{}/corpus/alpine:3.16", registry.host()));
    assert_eq!(report["osCoverage"], serde_json::json!({"status": "not-covered", "ecosystem": "Alpine:v3.16"}));
    let table = Command::new(env!("CARGO_BIN_EXE_trawl-scanner"))
        .args(["scan", "--plain-http", "--db"])
        .arg(db)
        .arg(format!("{}/corpus/alpine:3.16", registry.host()))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&table.stdout).contains("OS packages were NOT checked"));

    // The shaded guava jar bundles guava 30.1.1: CVE-2023-2976 (fixed 32.0.0)
    // applies, CVE-2020-8908 (last affected 29.0) does not.
    let java = ImageBuilder::new()
        .layer(LayerBuilder::new().file_from_disk(
            "opt/app/lib/hadoop-shaded-guava-1.1.0-SNAPSHOT.jar",
            corpus.join("pkgdb/java/hadoop-shaded-guava-1.1.0-SNAPSHOT.jar"),
        ))
        .build()
        .unwrap();
    push(&registry, "corpus/java", "1", &java, None).await.unwrap();
    let report = scan_json(db, &format!("{}/corpus/java:1", registry.host()));
    let guava = finding_ids(&report, "com.google.guava:guava");
    assert!(guava.contains("CVE-2023-2976") && guava.contains("GHSA-7g45-4rm6-3mm3"), "{guava:?}");
    assert!(!guava.contains("CVE-2020-8908"), "{guava:?}");
    assert_eq!(report["osCoverage"]["status"], "no-os-packages");
}
