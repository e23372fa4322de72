//! Our PEP 440 parsing and ordering against Python's `packaging.version.Version`, on the PyPI OSV archive
//! and on generated strings that stress the normalisation rules, all in one `python3` process.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use trawl_version::pep440::Pep440Version;
use trawl_version::{Scheme, Version};

const ORACLE: &str = r#"
import json, sys
from packaging.version import Version, InvalidVersion
def parse(s):
    try:
        return Version(s)
    except InvalidVersion:
        return None
out = []
for line in sys.stdin:
    item = json.loads(line)
    if isinstance(item, str):
        v = parse(item)
        out.append("ERR" if v is None else str(v))
    else:
        a, b = parse(item[0]), parse(item[1])
        out.append("ERR" if a is None or b is None else str((a > b) - (a < b)))
sys.stdout.write("\n".join(out) + "\n")
"#;

/// Asks `packaging` about each query (a version to normalise, or a pair to order); `None` if unavailable.
fn packaging(queries: &[serde_json::Value]) -> Option<Vec<String>> {
    let probe = Command::new("python3").args(["-c", "import packaging.version"]).output();
    if !probe.map(|o| o.status.success()).unwrap_or(false) {
        eprintln!(
            "skipping the packaging comparison: python3 with `packaging` is not installed (scripts/setup installs it)"
        );
        return None;
    }
    let mut input = String::new();
    for q in queries {
        input.push_str(&q.to_string());
        input.push('\n');
    }
    let mut child = Command::new("python3")
        .args(["-c", ORACLE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("python3 output");
    writer.join().expect("writer thread").expect("write queries");
    assert!(out.status.success(), "python3 failed");
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), queries.len(), "one answer per query");
    Some(lines)
}

/// Compares our parse (accept/reject and normal form) with packaging's for every string.
fn check_parsing(strings: &[String]) -> Option<usize> {
    let queries: Vec<serde_json::Value> = strings.iter().map(|s| serde_json::Value::from(s.as_str())).collect();
    let theirs = packaging(&queries)?;
    let mut bad = Vec::new();
    for (s, t) in strings.iter().zip(&theirs) {
        let ours = match Pep440Version::parse(s) {
            Ok(v) => v.normalized(),
            Err(_) => "ERR".to_owned(),
        };
        if &ours != t {
            bad.push(format!("{s:?}: ours {ours:?}, packaging {t:?}"));
        }
    }
    assert!(bad.is_empty(), "{} parse disagreements with packaging:\n{}", bad.len(), bad.join("\n"));
    Some(strings.len())
}

fn check_pairs(pairs: &[(Version, Version)]) -> Option<usize> {
    let queries: Vec<serde_json::Value> =
        pairs.iter().map(|(a, b)| serde_json::json!([a.as_str(), b.as_str()])).collect();
    let theirs = packaging(&queries)?;
    let mut bad = Vec::new();
    for ((a, b), t) in pairs.iter().zip(&theirs) {
        let ours = sign(a.cmp_to(b).expect("same scheme")).to_string();
        if &ours != t {
            bad.push(format!("{:?} vs {:?}: ours {ours}, packaging {t}", a.as_str(), b.as_str()));
        }
    }
    assert!(bad.is_empty(), "{} ordering disagreements with packaging:\n{}", bad.len(), bad.join("\n"));
    Some(pairs.len())
}

/// Strings built from every spelling PEP 440 normalises, plus near-misses that must be rejected.
fn generated(n: usize) -> Vec<String> {
    const PREFIX: &[&str] = &["", "v", "V", " ", "\t v", "\u{a0}", "vv"];
    const EPOCH: &[&str] = &["", "", "1!", "01!", "0!", "!", "2!!"];
    const RELEASE: &[&str] = &["1", "1.0", "01.2.003", "1.0.0.0", "0", "2024.1", "1.", "1..2", ".1", "1.0.0a"];
    const PRE: &[&str] = &[
        "", "", "a", "a1", "-alpha.2", "b", "_beta3", "c", "rc", ".pre4", "preview", "RC_5", "a-", "a.", "-c-7",
        "ALPHA", "alpha_", "pre-", "d1", "-a-1", ".b.2",
    ];
    const POST: &[&str] =
        &["", "", ".post", ".post1", "-1", "-r2", "rev", "_post_3", "post-4", "-", "r", "-rev.5", "--1", "-post"];
    const DEV: &[&str] = &["", "", ".dev", "dev1", "-dev-2", "_DEV.", "dev.3", ".dev.", "-dev_", "devel"];
    const LOCAL: &[&str] =
        &["", "", "+abc", "+1.2", "+a-b_c", "+", "+a..b", "+ubuntu1", "+ABC.01", "+a_", "+-a", "+1.0-2_3.x"];
    const SUFFIX: &[&str] = &["", "", "", " ", "\n", "x", ".", "\u{2003}", "\x1c"];
    let mut rng = Rng::new(99);
    let mut out = BTreeSet::new();
    while out.len() < n {
        let mut s = String::new();
        for part in [PREFIX, EPOCH, RELEASE, PRE, POST, DEV, LOCAL, SUFFIX] {
            s.push_str(part[rng.below(part.len())]);
        }
        out.insert(s);
    }
    out.into_iter().collect()
}

#[test]
fn pep440_parsing_matches_packaging() {
    let mut strings: BTreeSet<String> = generated(12_000).into_iter().collect();
    strings.extend(osv_versions("PyPI").into_values().flatten());
    let strings: Vec<String> = strings.into_iter().collect();
    let Some(n) = check_parsing(&strings) else { return };
    let rejected = strings.iter().filter(|s| Pep440Version::parse(s).is_err()).count();
    eprintln!(
        "pep440: {n} strings (PyPI corpus + generated) parsed exactly as packaging does: {} accepted with the same \
         normal form, {rejected} rejected by both",
        n - rejected
    );
}

#[test]
fn pep440_ordering_matches_packaging() {
    let mut groups = osv_versions("PyPI");
    // The generated versions that parse join the pool as one extra "package", so every spelling is ordered.
    groups.insert("<generated>".into(), generated(3_000).into_iter().collect());
    let all: Vec<String> = groups.values().flatten().cloned().collect::<BTreeSet<_>>().into_iter().collect();
    let (parsed, _) = parse_all(Scheme::Pep440, &all);
    check_total_order(&parsed, 20_000, 11);
    check_sorted_consistency(&parsed, 50_000, 12);
    let pairs = pairs(&groups, Scheme::Pep440, all.len(), 30_000, 20_000, 13);
    let Some(n) = check_pairs(&pairs) else { return };
    eprintln!(
        "pep440: {n} pairs ordered exactly as packaging orders them ({} versions, all in one sorted chain), 0 disagreements",
        parsed.len()
    );
}
