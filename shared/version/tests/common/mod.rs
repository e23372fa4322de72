//! Shared helpers for the reference-comparison tests: the real-data corpus, a deterministic sampler, and
//! the pairs to check.
#![allow(dead_code)]

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::PathBuf;
use std::process::Command;

use trawl_version::{Scheme, Version};

/// The shared corpus, if this checkout has one beside it.
pub fn corpus() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: no corpus at {}", dir.display());
        None
    }
}

/// Every version string in an OSV archive (`osv/<ecosystem>/all.zip`), grouped by package name: range events
/// (`introduced` other than the `0` sentinel, `fixed`, `last_affected`) of non-GIT ranges, and `versions[]`.
pub fn osv_versions(ecosystem: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let Some(dir) = corpus() else { return out };
    let path = dir.join("osv").join(ecosystem).join("all.zip");
    let Ok(file) = std::fs::File::open(&path) else {
        eprintln!("skipping: no {}", path.display());
        return out;
    };
    let mut archive = zip::ZipArchive::new(file).expect("readable OSV archive");
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).expect("zip entry");
        let mut text = String::new();
        entry.read_to_string(&mut text).expect("utf-8 OSV record");
        let record: serde_json::Value = serde_json::from_str(&text).expect("OSV JSON");
        for affected in record["affected"].as_array().into_iter().flatten() {
            let name = affected["package"]["name"].as_str().unwrap_or_default().to_owned();
            let set = out.entry(name).or_default();
            for range in affected["ranges"].as_array().into_iter().flatten() {
                if range["type"] == "GIT" {
                    continue;
                }
                for event in range["events"].as_array().into_iter().flatten() {
                    for key in ["introduced", "fixed", "last_affected"] {
                        if let Some(v) = event[key].as_str() {
                            if !(key == "introduced" && v == "0") {
                                set.insert(v.to_owned());
                            }
                        }
                    }
                }
            }
            for v in affected["versions"].as_array().into_iter().flatten() {
                if let Some(v) = v.as_str() {
                    set.insert(v.to_owned());
                }
            }
        }
    }
    out
}

/// A small deterministic generator (SplitMix64), so samples are the same on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Picks `n` items without replacement (or all of them), in a deterministic order.
    pub fn sample<T: Clone>(&mut self, items: &[T], n: usize) -> Vec<T> {
        let mut idx: Vec<usize> = (0..items.len()).collect();
        let n = n.min(items.len());
        for i in 0..n {
            let j = i + self.below(items.len() - i);
            idx.swap(i, j);
        }
        idx[..n].iter().map(|&i| items[i].clone()).collect()
    }
}

/// Parses every string that parses under `scheme`; returns the parsed versions and the rejected strings.
pub fn parse_all(scheme: Scheme, strings: &[String]) -> (Vec<Version>, Vec<String>) {
    let mut ok = Vec::new();
    let mut rejected = Vec::new();
    for s in strings {
        match Version::parse(scheme, s) {
            Ok(v) => ok.push(v),
            Err(_) => rejected.push(s.clone()),
        }
    }
    (ok, rejected)
}

/// The pairs worth checking against a reference:
/// * the whole sample sorted by our order, each version paired with the next: if the reference agrees on
///   these (and is itself transitive), it agrees with our order on every pair of the sample;
/// * every pair within each package's own versions (capped), where real range decisions happen;
/// * `random` random pairs across the sample.
pub fn pairs(
    groups: &BTreeMap<String, BTreeSet<String>>,
    scheme: Scheme,
    chain_len: usize,
    per_package: usize,
    random: usize,
    seed: u64,
) -> Vec<(Version, Version)> {
    let mut rng = Rng::new(seed);
    let all: Vec<String> = groups.values().flatten().cloned().collect::<BTreeSet<_>>().into_iter().collect();
    let (mut sample, _) = parse_all(scheme, &rng.sample(&all, chain_len));
    sample.sort_by(|a, b| a.cmp_to(b).expect("same scheme"));
    let mut out: Vec<(Version, Version)> = sample.windows(2).map(|w| (w[0].clone(), w[1].clone())).collect();
    let names: Vec<&String> = groups.keys().collect();
    let mut budget = per_package;
    for name in rng.sample(&names, names.len()) {
        let (vs, _) = parse_all(scheme, &groups[name].iter().cloned().collect::<Vec<_>>());
        for i in 0..vs.len() {
            for j in i + 1..vs.len() {
                if budget == 0 {
                    break;
                }
                budget -= 1;
                out.push((vs[i].clone(), vs[j].clone()));
            }
        }
    }
    for _ in 0..random {
        if sample.len() < 2 {
            break;
        }
        let (a, b) = (rng.below(sample.len()), rng.below(sample.len()));
        out.push((sample[a].clone(), sample[b].clone()));
    }
    out
}

/// `Less` → -1, `Equal` → 0, `Greater` → 1.
pub fn sign(o: Ordering) -> i32 {
    match o {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }
}

/// Whether `program` can be run here.
pub fn have(program: &str, probe: &[&str]) -> bool {
    Command::new(program).args(probe).output().map(|o| o.status.success()).unwrap_or(false)
}

/// Asserts antisymmetry and transitivity of `cmp_to` on sampled triples of `versions`.
pub fn check_total_order(versions: &[Version], triples: usize, seed: u64) {
    if versions.is_empty() {
        return;
    }
    let mut rng = Rng::new(seed);
    for _ in 0..triples {
        let a = &versions[rng.below(versions.len())];
        let b = &versions[rng.below(versions.len())];
        let c = &versions[rng.below(versions.len())];
        let ab = a.cmp_to(b).expect("same scheme");
        let ba = b.cmp_to(a).expect("same scheme");
        assert_eq!(ab, ba.reverse(), "antisymmetry: {a:?} vs {b:?}");
        assert_eq!(a.cmp_to(a), Some(Ordering::Equal), "reflexivity: {a:?}");
        let bc = b.cmp_to(c).expect("same scheme");
        let ac = a.cmp_to(c).expect("same scheme");
        if ab != Ordering::Greater && bc != Ordering::Greater {
            let expect = if ab == Ordering::Equal && bc == Ordering::Equal { Ordering::Equal } else { Ordering::Less };
            if expect == Ordering::Equal {
                assert_eq!(ac, Ordering::Equal, "transitivity of equality: {a:?} {b:?} {c:?}");
            } else {
                assert_eq!(ac, Ordering::Less, "transitivity: {a:?} <= {b:?} <= {c:?}");
            }
        }
    }
}

/// Sorts `versions` by `cmp_to` and checks that randomly chosen earlier elements are never greater than
/// later ones: with a total order that holds for every pair, so a violation exposes intransitivity.
pub fn check_sorted_consistency(versions: &[Version], samples: usize, seed: u64) {
    let mut sorted = versions.to_vec();
    sorted.sort_by(|a, b| a.cmp_to(b).expect("same scheme"));
    for w in sorted.windows(2) {
        assert_ne!(w[0].cmp_to(&w[1]), Some(Ordering::Greater), "not sorted: {:?} > {:?}", w[0], w[1]);
    }
    let mut rng = Rng::new(seed);
    for _ in 0..samples {
        if sorted.len() < 2 {
            break;
        }
        let (i, j) = (rng.below(sorted.len()), rng.below(sorted.len()));
        let (i, j) = (i.min(j), i.max(j));
        assert_ne!(
            sorted[i].cmp_to(&sorted[j]),
            Some(Ordering::Greater),
            "intransitive: {:?} sorted before {:?} but compares greater",
            sorted[i],
            sorted[j]
        );
    }
}
