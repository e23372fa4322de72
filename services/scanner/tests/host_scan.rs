//! Host scanning: this machine's own root filesystem must inventory exactly
//! the Debian packages `dpkg-query` lists; NeuVector's `-n` does the same
//! scan; and an unprivileged scan lists what it could not read instead of
//! failing or hiding it.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// `(name, version, arch)` of every installed package, as dpkg-query reports them.
fn dpkg_query_installed() -> Option<BTreeSet<(String, String, String)>> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Abbrev}\\t${Package}\\t${Version}\\t${Architecture}\\n"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(
        text.lines()
            .filter_map(|l| {
                let cols: Vec<&str> = l.split('\t').collect();
                // Second status letter `i`: installed (config-files-only packages are not).
                (cols.len() == 4 && cols[0].as_bytes().get(1) == Some(&b'i'))
                    .then(|| (cols[1].to_string(), cols[2].to_string(), cols[3].to_string()))
            })
            .collect(),
    )
}

#[test]
fn host_scan_of_this_machine_matches_dpkg_query() {
    let Some(expected) = dpkg_query_installed() else {
        eprintln!("skipping: dpkg-query is not available on this machine");
        return;
    };
    let out = run_scanner(&["sbom", "--host"]);
    let report = json_of(&out);
    assert_eq!(report["image"]["source"], "host");
    assert!(report["image"]["reference"].as_str().unwrap().starts_with("host:"));
    let actual: BTreeSet<(String, String, String)> = report["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "deb")
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["version"].as_str().unwrap().to_string(),
                p["arch"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let missing: Vec<_> = expected.difference(&actual).collect();
    let extra: Vec<_> = actual.difference(&expected).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}\nextra {extra:?}");
    assert!(expected.len() > 50, "a Debian machine has more than {} packages", expected.len());
    assert_eq!(report["distro"]["id"], "debian");
}

#[test]
fn neuvector_n_flag_scans_the_host_into_the_results_dir() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path());
    let results = dir.path().join("results");
    let out = scanner_command().arg("-n").env("TRAWL_DB", &db).env("TRAWL_RESULTS_DIR", &results).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("host:"), "{table}");
    let nv: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.join("scan_result.json")).expect("scan_result.json written"))
            .unwrap();
    assert!(nv["report"]["base_os"].as_str().unwrap_or_default().contains("debian"), "{nv}");
}

#[test]
fn unprivileged_host_scans_list_what_they_could_not_read() {
    // Root reads everything, so drop to `nobody` to see what an ordinary user gets.
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipping: setpriv (util-linux) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    let dpkg = root.join("var/lib/dpkg");
    std::fs::create_dir_all(&dpkg).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/os-release"), DEBIAN_OS_RELEASE).unwrap();
    std::fs::write(dpkg.join("status"), dpkg_status(&[("bash", "5.2.15-2", None)])).unwrap();
    let secret = root.join("srv/private");
    std::fs::create_dir_all(secret.join("app")).unwrap();
    std::fs::write(secret.join("app/requirements.txt"), "x").unwrap();
    // The tree is readable by all but srv/private; the temp dir itself must be traversable.
    for p in [dir.path(), &root] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
    let is_root = effective_uid() == 0;
    let mut cmd = if is_root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_trawl-scanner")]);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_trawl-scanner"))
    };
    for var in SCANNER_ENV {
        cmd.env_remove(var);
    }
    let out = cmd.args(["sbom", "--root"]).arg(&root).output().unwrap();
    let report = json_of(&out);
    let names: Vec<&str> = report["packages"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bash"]);
    let issues = report["issues"].as_array().unwrap();
    assert!(
        issues.iter().any(|i| i["path"] == "srv/private" && i["message"].as_str().unwrap().contains("not readable")),
        "the unreadable directory is listed: {issues:?}"
    );
}

/// The effective user id, read from /proc so the test needs no unsafe code.
fn effective_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2)?.parse().ok()))
        .unwrap_or(0)
}
