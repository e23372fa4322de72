//! Our dpkg ordering against `dpkg --compare-versions`, on versions from the Debian OSV archive, Ubuntu
//! notices and real dpkg status files.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use trawl_version::{Scheme, Version};

fn dpkg_versions() -> BTreeMap<String, BTreeSet<String>> {
    let mut groups = osv_versions("Debian");
    let Some(corpus) = corpus() else { return groups };
    // Ubuntu notices (one OSV record per file).
    if let Ok(dir) = std::fs::read_dir(corpus.join("osv-raw/ubuntu")) {
        for entry in dir.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
            let Ok(record) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
            for affected in record["affected"].as_array().into_iter().flatten() {
                let name = affected["package"]["name"].as_str().unwrap_or_default().to_owned();
                let set = groups.entry(name).or_default();
                for range in affected["ranges"].as_array().into_iter().flatten() {
                    for event in range["events"].as_array().into_iter().flatten() {
                        for key in ["introduced", "fixed", "last_affected"] {
                            if let Some(v) = event[key].as_str().filter(|v| *v != "0") {
                                set.insert(v.to_owned());
                            }
                        }
                    }
                }
                for v in affected["versions"].as_array().into_iter().flatten().filter_map(|v| v.as_str()) {
                    set.insert(v.to_owned());
                }
            }
        }
    }
    // Installed versions from dpkg status files.
    if let Ok(dir) = std::fs::read_dir(corpus.join("pkgdb/dpkg")) {
        for entry in dir.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "status") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let mut package = String::new();
            for line in text.lines() {
                if let Some(p) = line.strip_prefix("Package: ") {
                    package = p.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("Version: ") {
                    groups.entry(package.clone()).or_default().insert(v.trim().to_owned());
                }
            }
        }
    }
    groups
}

#[test]
fn dpkg_matches_dpkg_compare_versions() {
    let groups = dpkg_versions();
    if groups.is_empty() {
        return;
    }
    let all: Vec<String> = groups.values().flatten().cloned().collect::<BTreeSet<_>>().into_iter().collect();
    let (parsed, rejected) = parse_all(Scheme::Dpkg, &all);
    assert!(rejected.is_empty(), "real Debian versions rejected: {rejected:?}");
    check_total_order(&parsed, 20_000, 1);
    check_sorted_consistency(&parsed, 50_000, 2);

    if !have("dpkg", &["--compare-versions", "1", "lt", "2"]) {
        eprintln!("skipping the dpkg comparison: dpkg is not installed");
        return;
    }
    // One dpkg process per pair (~3 ms), so the sample is sized to keep the test well under 30 s.
    let pairs = pairs(&groups, Scheme::Dpkg, 2000, 1200, 300, 42);
    let mut script = String::new();
    for (a, b) in &pairs {
        let op = match a.cmp_to(b).expect("same scheme") {
            std::cmp::Ordering::Less => "lt",
            std::cmp::Ordering::Equal => "eq",
            std::cmp::Ordering::Greater => "gt",
        };
        script.push_str(&format!("{} {op} {}\n", a.as_str(), b.as_str()));
    }
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(
            r#"while read -r a op b; do dpkg --compare-versions "$a" "$op" "$b" 2>/dev/null || echo "$a $op $b"; done"#,
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh");
    child.stdin.take().expect("stdin").write_all(script.as_bytes()).expect("write pairs");
    let out = child.wait_with_output().expect("dpkg loop");
    let disagreements = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "dpkg: {} pairs checked against dpkg --compare-versions ({} versions, chain of 2000 sorted), {} disagreements",
        pairs.len(),
        all.len(),
        disagreements.lines().count()
    );
    assert!(disagreements.is_empty(), "we claim these relations but dpkg disagrees:\n{disagreements}");
}

#[test]
fn dpkg_hand_picked_against_dpkg() {
    if !have("dpkg", &["--compare-versions", "1", "lt", "2"]) {
        eprintln!("skipping: dpkg is not installed");
        return;
    }
    let cases = [
        ("1.0~rc1", "1.0"),
        ("1.0~~", "1.0~"),
        ("1.0", "1.0+b1"),
        ("1.0a", "1.0+"),
        ("1.0-1ubuntu1", "1.0-1+deb10u1"),
        ("2:1.0", "1:9.9"),
        ("1.0", "1.0-0"),
        ("1.01", "1.1"),
        ("abc", "1.0"),
        ("1.0.0~beta1+dfsg-2", "1.0.0~beta1-2"),
        ("7.4.052-1ubuntu3.1", "7.4.052-1ubuntu3"),
        ("1:2.30-1-2", "1:2.30-1-10"),
        ("99999999999999999999", "100000000000000000000"),
        ("1.0_1", "1.0.1"),
    ];
    for (a, b) in cases {
        let ours = Version::parse(Scheme::Dpkg, a).unwrap().cmp_to(&Version::parse(Scheme::Dpkg, b).unwrap()).unwrap();
        let op = ["lt", "eq", "gt"][(sign(ours) + 1) as usize];
        let ok = Command::new("dpkg").args(["--compare-versions", a, op, b]).stderr(Stdio::null()).status().unwrap();
        assert!(ok.success(), "we say {a} {op} {b}; dpkg disagrees");
    }
}
