//! RubyGems and Composer orderings against fixtures produced by the real implementations (Ruby's
//! `Gem::Version`; composer/semver's `VersionParser::normalize` with PHP's `version_compare`). The tools are
//! not needed to run this; `tests/fixtures/gen-*.{rb,php}` regenerate the fixtures (see the README there).

use std::cmp::Ordering;

use trawl_version::composer::ComposerVersion;
use trawl_version::{Scheme, Version};

const RUBYGEMS: &str = include_str!("fixtures/rubygems-order.tsv");
const COMPOSER: &str = include_str!("fixtures/composer-order.tsv");

/// (reference rank or None for rejected, normalized form if given, version) per fixture line.
fn read(fixture: &str, columns: usize) -> Vec<(Option<u32>, String, String)> {
    fixture
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let cols: Vec<&str> = l.splitn(columns, '\t').collect();
            assert_eq!(cols.len(), columns, "fixture line {l:?}");
            let rank = if cols[0] == "ERR" { None } else { Some(cols[0].parse().expect("rank")) };
            let normalized = if columns == 3 { cols[1].to_owned() } else { String::new() };
            (rank, normalized, cols[columns - 1].to_owned())
        })
        .collect()
}

/// Checks accept/reject for every line and the order of every pair of accepted lines; returns pair count.
fn check(scheme: Scheme, rows: &[(Option<u32>, String, String)]) -> usize {
    let mut bad = Vec::new();
    let mut accepted = Vec::new();
    for (rank, _, v) in rows {
        match (rank, Version::parse(scheme, v)) {
            (Some(r), Ok(parsed)) => accepted.push((*r, parsed)),
            (None, Err(_)) => {}
            (Some(_), Err(e)) => bad.push(format!("{v:?}: reference accepts, we reject ({e})")),
            (None, Ok(_)) => bad.push(format!("{v:?}: reference rejects, we accept")),
        }
    }
    let mut pairs = 0;
    for (ra, a) in &accepted {
        for (rb, b) in &accepted {
            pairs += 1;
            let ours = a.cmp_to(b).expect("same scheme");
            if ours != ra.cmp(rb) {
                bad.push(format!("{:?} vs {:?}: ours {ours:?}, reference {:?}", a.as_str(), b.as_str(), ra.cmp(rb)));
            }
        }
    }
    assert!(bad.is_empty(), "{} disagreements with the {scheme} reference:\n{}", bad.len(), bad.join("\n"));
    eprintln!(
        "{scheme}: {} strings ({} accepted) and {pairs} ordered pairs match the reference fixture, 0 disagreements",
        rows.len(),
        accepted.len()
    );
    pairs
}

#[test]
fn rubygems_matches_gem_version() {
    let rows = read(RUBYGEMS, 2);
    assert!(rows.len() > 300);
    assert!(check(Scheme::RubyGems, &rows) > 50_000);
}

#[test]
fn composer_matches_composer_semver() {
    let rows = read(COMPOSER, 3);
    assert!(rows.len() > 400);
    for (rank, normalized, v) in &rows {
        if rank.is_some() {
            let ours = ComposerVersion::parse(v).map(|c| c.normalized().to_owned()).unwrap_or_default();
            assert_eq!(&ours, normalized, "normalize({v:?})");
        }
    }
    assert!(check(Scheme::Composer, &rows) > 50_000);
    assert_eq!(trawl_version::compare(Scheme::Composer, "1.0.0", "1.0.0.0").ok(), Some(Ordering::Equal));
}
