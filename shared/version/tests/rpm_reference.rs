//! Our RPM ordering against rpm's own `rpm.vercmp` (rpm's Lua interpreter), on versions from the AlmaLinux
//! OSV archive and real rpm databases, all pairs in one `rpm --eval` run.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::process::Command;

use common::*;
use trawl_version::{Scheme, Version};

fn rpm_versions() -> BTreeMap<String, BTreeSet<String>> {
    let mut groups = osv_versions("AlmaLinux");
    let Some(corpus) = corpus() else { return groups };
    if let Ok(dir) = std::fs::read_dir(corpus.join("pkgdb/rpm")) {
        for entry in dir.flatten() {
            let path = entry.path();
            if !path.to_string_lossy().ends_with(".expected.tsv") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            for line in text.lines() {
                let cols: Vec<&str> = line.split('\t').collect();
                if cols.len() < 4 {
                    continue;
                }
                let (name, epoch, version, release) = (cols[0], cols[1], cols[2], cols[3]);
                let evr = if epoch.is_empty() {
                    format!("{version}-{release}")
                } else {
                    format!("{epoch}:{version}-{release}")
                };
                groups.entry(name.to_owned()).or_default().insert(evr);
            }
        }
    }
    groups
}

/// A Lua string literal for any byte string.
fn lua_str(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b".-_~^+:".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\{b:03}");
        }
    }
    out.push('"');
    out
}

/// Runs `rpm.vercmp` on every pair in one rpm process; `None` when rpm is unavailable.
fn rpm_vercmp(pairs: &[(String, String)]) -> Option<Vec<i32>> {
    if !have("rpm", &["--eval", "%{lua: print(rpm.vercmp(\"1\", \"2\"))}"]) {
        eprintln!("skipping the rpm comparison: rpm (with Lua) is not installed");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("trawl-version-rpm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let script = dir.join("pairs.lua");
    let mut lua = String::from("local t = {\n");
    for (a, b) in pairs {
        let _ = writeln!(lua, "{{{}, {}}},", lua_str(a), lua_str(b));
    }
    lua.push_str("}\nlocal out = {}\nfor i, p in ipairs(t) do out[i] = tostring(rpm.vercmp(p[1], p[2])) end\n");
    lua.push_str("print(table.concat(out, \"\\n\"))\n");
    std::fs::write(&script, lua).ok()?;
    let out =
        Command::new("rpm").arg("--eval").arg(format!("%{{lua: dofile(\"{}\")}}", script.display())).output().ok()?;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "rpm failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let results: Vec<i32> = text.split_whitespace().map(|s| s.parse().expect("rpm.vercmp result")).collect();
    assert_eq!(results.len(), pairs.len(), "one result per pair");
    Some(results)
}

fn check(pairs: &[(Version, Version)]) -> usize {
    let strings: Vec<(String, String)> =
        pairs.iter().map(|(a, b)| (a.as_str().to_owned(), b.as_str().to_owned())).collect();
    let Some(theirs) = rpm_vercmp(&strings) else { return 0 };
    let mut bad = Vec::new();
    for ((a, b), t) in pairs.iter().zip(theirs) {
        let ours = sign(a.cmp_to(b).expect("same scheme"));
        if ours != t {
            bad.push(format!("{} vs {}: ours {ours}, rpm {t}", a.as_str(), b.as_str()));
        }
    }
    assert!(bad.is_empty(), "{} disagreements with rpm.vercmp:\n{}", bad.len(), bad.join("\n"));
    pairs.len()
}

#[test]
fn rpm_matches_rpm_vercmp() {
    let groups = rpm_versions();
    if groups.is_empty() {
        return;
    }
    let all: Vec<String> = groups.values().flatten().cloned().collect::<BTreeSet<_>>().into_iter().collect();
    let (parsed, rejected) = parse_all(Scheme::Rpm, &all);
    assert!(rejected.is_empty(), "real RPM versions rejected: {rejected:?}");
    check_total_order(&parsed, 20_000, 3);
    check_sorted_consistency(&parsed, 50_000, 4);
    let pairs = pairs(&groups, Scheme::Rpm, all.len(), 30_000, 20_000, 7);
    let n = check(&pairs);
    eprintln!(
        "rpm: {n} pairs checked against rpm.vercmp ({} versions, all of them in one sorted chain), 0 disagreements",
        all.len()
    );
}

#[test]
fn rpm_hand_picked_against_rpm() {
    let cases = [
        "1.0",
        "1.0~rc1",
        "1.0~rc1~git1",
        "1.0^",
        "1.0^git1",
        "1.0^git1~pre",
        "1.0.1",
        "1.01",
        "1_0",
        "1..0",
        "1.0a",
        "1.0-1",
        "1.0-",
        "1.0-1.el8",
        "1.0-1.el8_1",
        "1.0-10.el8",
        "1:0.1-1",
        "0:1.0-1",
        "01:1.0",
        "2.0",
        "a",
        "A",
        "1.0-1.module_el8.6.0+2766+8bf0b7ce",
        "1.0-1.module_el8.10.0+3859+6ae70a0e",
        "xyz.4",
        "8",
        "1b.fc17",
        "1.fc17",
        "10xyz",
        "10.1xyz",
        "99999999999999999999999",
        "100000000000000000000000",
        "1.0~",
        "1.0~~",
        "1.0^^",
        "1.0^~",
        "1.0~^",
        "1.0.",
        "1.0..",
        "1.0-~",
        "1.0-^",
    ];
    let versions: Vec<Version> = cases.iter().map(|c| Version::parse(Scheme::Rpm, c).unwrap()).collect();
    let mut pairs = Vec::new();
    for a in &versions {
        for b in &versions {
            pairs.push((a.clone(), b.clone()));
        }
    }
    check(&pairs);
    check_sorted_consistency(&versions, 5_000, 5);
}
