//! Our apk ordering against apk-tools' own comparison vectors (`version-vectors/apk-version.data`, from
//! apk-tools' test suite) and on real Alpine versions (OSV secdb archive and installed databases).

mod common;

use std::cmp::Ordering;
use std::collections::BTreeSet;

use common::*;
use trawl_version::apk::ApkVersion;
use trawl_version::{Scheme, Version};

#[test]
fn apk_matches_upstream_vectors() {
    let Some(corpus) = corpus() else { return };
    let path = corpus.join("version-vectors/apk-version.data");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("skipping: no {}", path.display());
        return;
    };
    let mut checked = 0;
    let mut invalid = 0;
    let mut bad = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [a, op, b] = fields[..] else { panic!("malformed vector line {line:?}") };
        let expected = match op {
            "<" => Ordering::Less,
            "=" => Ordering::Equal,
            ">" => Ordering::Greater,
            _ => panic!("unknown operator in {line:?}"),
        };
        let (va, vb) = (ApkVersion::parse(a).unwrap(), ApkVersion::parse(b).unwrap());
        // Two vectors ("1.0bc", "23_foo") are deliberately invalid; apk still orders them, and so do we.
        invalid += usize::from(!va.is_strictly_valid() || !vb.is_strictly_valid());
        if va.cmp(&vb) != expected {
            bad.push(line.to_owned());
        }
        // Both directions must agree.
        if vb.cmp(&va) != expected.reverse() {
            bad.push(format!("{line} (reversed)"));
        }
        checked += 1;
    }
    eprintln!("apk: {checked} apk-tools vectors checked ({invalid} with an invalid side), {} disagreements", bad.len());
    assert!(bad.is_empty(), "disagreements with apk-tools' vectors:\n{}", bad.join("\n"));
    assert!(checked > 700, "expected the full vector file, got {checked} lines");
}

#[test]
fn apk_real_versions_are_totally_ordered() {
    let mut all: BTreeSet<String> = osv_versions("Alpine").into_values().flatten().collect();
    if let Some(corpus) = corpus() {
        for name in ["alpine-3.16-installed", "alpine-3.18-installed"] {
            let Ok(text) = std::fs::read_to_string(corpus.join("pkgdb/apk").join(name)) else { continue };
            all.extend(text.lines().filter_map(|l| l.strip_prefix("V:")).map(str::to_owned));
        }
    }
    if all.is_empty() {
        return;
    }
    let all: Vec<String> = all.into_iter().collect();
    let (parsed, rejected) = parse_all(Scheme::Apk, &all);
    assert!(rejected.is_empty(), "real Alpine versions rejected: {rejected:?}");
    let lax: Vec<&Version> =
        parsed.iter().filter(|v| !ApkVersion::parse(v.as_str()).unwrap().is_strictly_valid()).collect();
    eprintln!(
        "apk: {} real Alpine versions ordered; {} of them are malformed secdb entries apk still orders: {:?}",
        parsed.len(),
        lax.len(),
        lax.iter().map(|v| v.as_str()).collect::<Vec<_>>()
    );
    check_total_order(&parsed, 20_000, 21);
    check_sorted_consistency(&parsed, 50_000, 22);
}
