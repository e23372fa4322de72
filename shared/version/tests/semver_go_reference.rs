//! SemVer (crates.io, npm) and Go ordering on the real crates.io and Go OSV archives, checked against an
//! independent, deliberately naive reading of the SemVer 2.0.0 precedence rules (§11), plus Go specifics.

mod common;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use common::*;
use trawl_version::{Scheme, Version};

/// SemVer §11, written as plainly as possible: no shared code with the crate.
fn spec_cmp(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (Vec<u128>, Option<Vec<String>>) {
        let v = v.trim_start_matches('v');
        let v = v.split('+').next().unwrap();
        let (core, pre) = match v.find('-') {
            Some(i) => (&v[..i], Some(v[i + 1..].split('.').map(String::from).collect())),
            None => (v, None),
        };
        let mut nums: Vec<u128> = core.split('.').map(|n| n.parse().unwrap()).collect();
        nums.resize(3, 0);
        (nums, pre)
    }
    let (na, pa) = split(a);
    let (nb, pb) = split(b);
    if na != nb {
        return na.cmp(&nb);
    }
    match (pa, pb) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => {
            for (p, q) in x.iter().zip(&y) {
                let pn = p.chars().all(|c| c.is_ascii_digit());
                let qn = q.chars().all(|c| c.is_ascii_digit());
                let r = match (pn, qn) {
                    (true, true) => {
                        // Numeric identifiers have no leading zeros, so length then text is numeric order.
                        p.len().cmp(&q.len()).then(p.cmp(q))
                    }
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => p.as_bytes().cmp(q.as_bytes()),
                };
                if r != Ordering::Equal {
                    return r;
                }
            }
            x.len().cmp(&y.len())
        }
    }
}

fn check(scheme: Scheme, ecosystem: &str, groups: &BTreeMap<String, BTreeSet<String>>) {
    if groups.is_empty() {
        return;
    }
    let all: Vec<String> = groups.values().flatten().cloned().collect::<BTreeSet<_>>().into_iter().collect();
    let (parsed, rejected) = parse_all(scheme, &all);
    assert!(rejected.is_empty(), "real {ecosystem} versions rejected: {rejected:?}");
    check_total_order(&parsed, 20_000, 31);
    check_sorted_consistency(&parsed, 50_000, 32);
    let pairs = pairs(groups, scheme, all.len(), 30_000, 20_000, 33);
    let mut bad = Vec::new();
    for (a, b) in &pairs {
        let ours = a.cmp_to(b).expect("same scheme");
        let spec = spec_cmp(a.as_str(), b.as_str());
        if ours != spec {
            bad.push(format!("{} vs {}: ours {ours:?}, spec {spec:?}", a.as_str(), b.as_str()));
        }
    }
    eprintln!(
        "{scheme}: {} {ecosystem} pairs checked against the SemVer precedence rules ({} versions, all in one sorted chain), {} disagreements",
        pairs.len(),
        all.len(),
        bad.len()
    );
    assert!(bad.is_empty(), "disagreements:\n{}", bad.join("\n"));
}

#[test]
fn semver_on_crates_io() {
    check(Scheme::Semver, "crates.io", &osv_versions("crates.io"));
}

#[test]
fn go_on_go_vulndb() {
    let groups = osv_versions("Go");
    check(Scheme::Go, "Go", &groups);
    // Pseudo-versions of one base order by their timestamps (the commit hash only breaks ties).
    let mut by_base: BTreeMap<String, Vec<(String, Version)>> = BTreeMap::new();
    for v in groups.values().flatten() {
        let parts: Vec<&str> = v.rsplitn(3, '-').collect();
        if parts.len() == 3 && parts[0].len() == 12 && parts[1].len() >= 14 {
            let stamp = &parts[1][parts[1].len() - 14..];
            if stamp.chars().all(|c| c.is_ascii_digit()) {
                let base = format!("{}-{}", parts[2], &parts[1][..parts[1].len() - 14]);
                by_base.entry(base).or_default().push((stamp.to_owned(), Version::parse(Scheme::Go, v).unwrap()));
            }
        }
    }
    let mut checked = 0;
    for list in by_base.values() {
        for (sa, va) in list {
            for (sb, vb) in list {
                if sa != sb {
                    assert_eq!(va.cmp_to(vb), Some(sa.cmp(sb)), "{va:?} vs {vb:?}");
                    checked += 1;
                }
            }
        }
    }
    eprintln!("go: {checked} pseudo-version pairs order by timestamp");
}

#[test]
fn hand_picked_go_and_semver() {
    let go = |a: &str, b: &str| trawl_version::compare(Scheme::Go, a, b).unwrap();
    assert_eq!(go("v0.0.0-20191109021931-daa7c04131f5", "v0.0.0-20191109021932-0000000000aa"), Ordering::Less);
    assert_eq!(go("v1.5.0-alpha.5.0.20200423152442-f4b650b51dc4", "1.5.0-alpha.5"), Ordering::Greater);
    assert_eq!(go("v1.5.0-alpha.5.0.20200423152442-f4b650b51dc4", "1.5.0-alpha.6"), Ordering::Less);
    assert_eq!(go("v1.5.0-alpha.5.0.20200423152442-f4b650b51dc4", "1.5.0"), Ordering::Less);
    assert_eq!(go("v4.0.0+incompatible", "4.0.0"), Ordering::Equal);
    assert_eq!(go("v4.0.0+incompatible", "v4.0.1-0.20200101000000-abcdefabcdef+incompatible"), Ordering::Less);
    assert_eq!(go("go1.22.0", "1.21.13"), Ordering::Greater);
    assert_eq!(go("go1.21rc4", "1.21.0-rc.4"), Ordering::Equal);
    assert_eq!(go("1.21.0-0", "go1.21rc1"), Ordering::Less);
    let sv = |a: &str, b: &str| trawl_version::compare(Scheme::Semver, a, b).unwrap();
    assert_eq!(sv("1.0.0-alpha.beta", "1.0.0-alpha.1"), Ordering::Greater);
    assert_eq!(sv("1.0.0-rc.1+build.5", "1.0.0-rc.1"), Ordering::Equal);
    assert_eq!(sv("0.4.0-0", "0.4.0-alpha"), Ordering::Less);
    assert!(trawl_version::compare(Scheme::Semver, "1.2", "1.2.0").is_err(), "npm/crates need three numbers");
}
