//! Every `--format` through the real binary, each checked by its external
//! validator (the official SARIF 2.1.0 schema with jsonschema,
//! cyclonedx-python-lib, spdx-tools) and for content that could be wrong.

mod common;

use common::*;
use trawl_testkit::write_oci_layout;

#[test]
fn every_output_format_passes_its_validator() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    write_oci_layout(&layout, &[("v1", &fixture_image())]).unwrap();
    let image = format!("oci:{}:v1", layout.display());
    let db = small_db(dir.path());

    let render = |format: &str| -> std::path::PathBuf {
        let file = dir.path().join(format!("report-{format}.json"));
        let out = scanner_command()
            .args(["scan", "--format", format, "-o"])
            .arg(&file)
            .arg("--db")
            .arg(&db)
            .arg(&image)
            .output()
            .unwrap();
        assert!(out.status.success(), "{format}: {}", stderr_of(&out));
        assert!(out.stdout.is_empty(), "{format}: -o writes the file, not stdout");
        file
    };
    let read = |file: &std::path::Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()
    };

    let sarif = render("sarif");
    assert_valid("sarif", &sarif);
    let doc = read(&sarif);
    assert_eq!(doc["version"], "2.1.0");
    assert_eq!(doc["runs"][0]["results"].as_array().unwrap().len(), 3);

    let cdx = render("cyclonedx");
    assert_valid("cyclonedx", &cdx);
    let doc = read(&cdx);
    assert_eq!(doc["bomFormat"], "CycloneDX");
    assert_eq!(doc["vulnerabilities"].as_array().unwrap().len(), 3);

    let spdx = render("spdx-json");
    assert_valid("spdx-json", &spdx);
    let doc = read(&spdx);
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    let names: Vec<&str> = doc["packages"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    for pkg in ["libssl3", "bash", "zlib1g", "requests"] {
        assert!(names.contains(&pkg), "{pkg} missing from {names:?}");
    }

    let nv = read(&render("neuvector"));
    let vulns = nv["report"]["vulnerabilities"].as_array().unwrap();
    let mut vuln_names: Vec<&str> = vulns.iter().map(|v| v["name"].as_str().unwrap()).collect();
    vuln_names.sort();
    assert_eq!(vuln_names, ["CVE-2099-0001", "CVE-2099-0002", "CVE-2099-0003"]);

    let json = read(&render("json"));
    assert_eq!(json["schema"], "trawl.scan");
    assert_eq!(json["image"]["labels"]["org.opencontainers.image.source"], "https://example.com/team/app");

    // The image's Env holds a secret: no format may repeat it.
    for format in ["json", "sarif", "cyclonedx", "spdx-json", "neuvector"] {
        let text = std::fs::read_to_string(dir.path().join(format!("report-{format}.json"))).unwrap();
        assert!(!text.contains(FIXTURE_SECRET), "{format} repeats the image's Env");
    }

    // The SBOM command speaks the SBOM formats too.
    let file = dir.path().join("sbom.spdx.json");
    let out = scanner_command().args(["sbom", "--format", "spdx-json", "-o"]).arg(&file).arg(&image).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_valid("spdx-json", &file);
    let file = dir.path().join("sbom.cdx.json");
    let out = scanner_command().args(["sbom", "--format", "cyclonedx", "-o"]).arg(&file).arg(&image).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_valid("cyclonedx", &file);

    // A report that cannot be written is a local I/O failure: exit 10, one error line.
    let out = scanner_command()
        .args(["scan", "--format", "json", "-o", "/nonexistent-dir/report.json", "--db"])
        .arg(&db)
        .arg(&image)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(10), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("writing /nonexistent-dir/report.json"), "{}", stderr_of(&out));
}
