//! Matching an inventory against the database: inventory → findings.
//!
//! Each package is looked up under the name its advisories use (the source
//! package for Debian/Ubuntu and Alpine, the binary name for RPM, normalised
//! names for PyPI and Packagist) within its release ecosystem, and its version
//! is tested against every range with that ecosystem's version scheme.
//! Advisories that describe the same vulnerability (linked by ids and
//! aliases) become one finding per package.

use crate::db::{Affected, Database, Event};
use crate::severity::{Rating, Severity};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use trawl_catalog::{Inventory, Package, PackageType};
use trawl_version::{scheme_for_ecosystem, Scheme, Version};

/// One vulnerability in one package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Primary id: the CVE when one is known, else the advisory id.
    pub id: String,
    /// Every other id of this vulnerability (advisories and aliases).
    pub aliases: Vec<String>,
    /// The advisories that matched.
    pub advisories: Vec<String>,
    /// Package name as installed.
    pub package: String,
    /// Package type.
    #[serde(rename = "packageType")]
    pub package_type: PackageType,
    /// OSV ecosystem.
    pub ecosystem: String,
    /// Package URL.
    pub purl: String,
    /// Installed version.
    #[serde(rename = "installedVersion")]
    pub installed_version: String,
    /// Version that fixes it, if any advisory names one.
    #[serde(rename = "fixedVersion", default, skip_serializing_if = "Option::is_none")]
    pub fixed_version: Option<String>,
    /// Severity rating.
    pub severity: Rating,
    /// CVSS base score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// CVSS vector.
    #[serde(rename = "cvssVector", default, skip_serializing_if = "Option::is_none")]
    pub cvss_vector: Option<String>,
    /// One-line summary.
    pub summary: String,
    /// Link to the advisory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// File that records the package.
    pub path: String,
    /// Layer that introduced the package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
}

/// Whether the database can speak for the image's OS packages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum OsCoverage {
    /// The database has advisories for this release.
    Covered {
        /// The OSV ecosystem.
        ecosystem: String,
    },
    /// The release has an OSV ecosystem, but this database has no advisories for it.
    NotCovered {
        /// The OSV ecosystem.
        ecosystem: String,
    },
    /// The distribution has no OSV ecosystem Trawl knows.
    Unsupported {
        /// os-release ID and VERSION_ID.
        distro: String,
    },
    /// OS packages were found but no release file identifies the distribution.
    Unknown,
    /// No OS packages (distroless or scratch image, language packages only).
    NoOsPackages,
}

impl OsCoverage {
    /// True when OS packages could not be checked: the report must say so
    /// rather than look clean.
    pub fn is_gap(&self) -> bool {
        matches!(self, OsCoverage::NotCovered { .. } | OsCoverage::Unsupported { .. } | OsCoverage::Unknown)
    }
}

/// The matcher's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatchResult {
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// OS coverage.
    pub os: OsCoverage,
    /// Problems that limited matching (unparsable versions…), aggregated.
    pub warnings: Vec<String>,
}

/// Matches inventories against a database.
pub struct Matcher<'a> {
    db: &'a Database,
}

struct Candidate {
    advisory: u32,
    fixed: Option<String>,
    severity: Option<Severity>,
}

impl<'a> Matcher<'a> {
    /// A matcher over `db`.
    pub fn new(db: &'a Database) -> Self {
        Matcher { db }
    }

    /// Matches every package of the inventory.
    pub fn match_inventory(&self, inventory: &Inventory) -> MatchResult {
        self.assemble(inventory, |package, problems| self.match_package(package, problems))
    }

    /// Collects the findings `per_package` gives for each package into one
    /// sorted result with the inventory's OS coverage.
    fn assemble(
        &self,
        inventory: &Inventory,
        mut per_package: impl FnMut(&Package, &mut BTreeMap<String, usize>) -> Vec<Finding>,
    ) -> MatchResult {
        let mut findings = Vec::new();
        let mut problems: BTreeMap<String, usize> = BTreeMap::new();
        for package in &inventory.packages {
            findings.extend(per_package(package, &mut problems));
        }
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(b.score.partial_cmp(&a.score).unwrap_or(Ordering::Equal))
                .then_with(|| a.package.cmp(&b.package))
                .then_with(|| a.id.cmp(&b.id))
        });
        let warnings = problems.into_iter().map(|(p, n)| if n > 1 { format!("{p} ({n} times)") } else { p }).collect();
        MatchResult { findings, os: self.os_coverage(inventory), warnings }
    }

    fn os_coverage(&self, inventory: &Inventory) -> OsCoverage {
        if !inventory.packages.iter().any(|p| p.kind.is_os()) {
            return OsCoverage::NoOsPackages;
        }
        let Some(distro) = &inventory.distro else { return OsCoverage::Unknown };
        match distro.osv_ecosystem() {
            Some(eco) if self.db.covers(&eco) => OsCoverage::Covered { ecosystem: eco },
            Some(eco) => OsCoverage::NotCovered { ecosystem: eco },
            None => OsCoverage::Unsupported {
                distro: format!("{} {}", distro.id, distro.version_id.as_deref().unwrap_or("")).trim().to_string(),
            },
        }
    }

    /// Findings for one package; `problems` collects what prevented matching.
    pub fn match_package(&self, package: &Package, problems: &mut BTreeMap<String, usize>) -> Vec<Finding> {
        if package.ecosystem.is_empty() {
            return Vec::new();
        }
        let Some(scheme) = scheme_for_ecosystem(&package.ecosystem) else {
            *problems.entry(format!("no version scheme for ecosystem {}", package.ecosystem)).or_default() += 1;
            return Vec::new();
        };
        let name = crate::db::normalize_name(&package.ecosystem, package.advisory_name());
        let entries = self.db.lookup(&package.ecosystem, &name);
        if entries.is_empty() {
            return Vec::new();
        }
        let version_text = matching_version(package);
        let installed = match Version::parse(scheme, version_text) {
            Ok(v) => v,
            Err(e) => {
                *problems
                    .entry(format!("{} {}: cannot compare version: {e}", package.ecosystem, package.name))
                    .or_default() += 1;
                return Vec::new();
            }
        };
        let mut candidates = Vec::new();
        for entry in entries {
            match affects(scheme, &installed, version_text, entry) {
                Ok(Some(fixed)) => {
                    candidates.push(Candidate { advisory: entry.advisory, fixed, severity: entry.severity.clone() })
                }
                Ok(None) => {}
                Err(e) => {
                    let id = self.db.advisory(entry.advisory).map(|a| a.id.as_str()).unwrap_or("?");
                    *problems.entry(format!("{id}: unusable range for {}: {e}", package.ecosystem)).or_default() += 1;
                }
            }
        }
        self.group(package, scheme, candidates)
    }

    /// Merges candidates that name the same vulnerability into findings.
    fn group(&self, package: &Package, scheme: Scheme, candidates: Vec<Candidate>) -> Vec<Finding> {
        // Union-find over candidates linked by any shared id or alias.
        let mut parent: Vec<usize> = (0..candidates.len()).collect();
        fn find(parent: &mut [usize], i: usize) -> usize {
            let mut r = i;
            while parent[r] != r {
                r = parent[r];
            }
            parent[i] = r;
            r
        }
        let mut owner: HashMap<&str, usize> = HashMap::new();
        for (i, c) in candidates.iter().enumerate() {
            let Some(adv) = self.db.advisory(c.advisory) else { continue };
            for id in std::iter::once(adv.id.as_str()).chain(adv.aliases.iter().map(String::as_str)) {
                match owner.get(id) {
                    Some(&j) => {
                        let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                        parent[a] = b;
                    }
                    None => {
                        owner.insert(id, i);
                    }
                }
            }
        }
        let mut groups: BTreeMap<usize, Vec<&Candidate>> = BTreeMap::new();
        for (i, c) in candidates.iter().enumerate() {
            let root = find(&mut parent, i);
            groups.entry(root).or_default().push(c);
        }
        groups.into_values().filter_map(|group| self.finding(package, scheme, &group)).collect()
    }

    fn finding(&self, package: &Package, scheme: Scheme, group: &[&Candidate]) -> Option<Finding> {
        let advisories: Vec<&crate::db::Advisory> = group.iter().filter_map(|c| self.db.advisory(c.advisory)).collect();
        let first = advisories.first()?;
        let mut ids: BTreeSet<String> = BTreeSet::new();
        for a in &advisories {
            ids.insert(a.id.clone());
            ids.extend(a.aliases.iter().cloned());
        }
        let id = ids.iter().find(|i| i.starts_with("CVE-")).cloned().unwrap_or_else(|| first.id.clone());
        let aliases = ids.into_iter().filter(|i| *i != id).collect();
        // The most severe view wins; package-specific severities override the advisory's.
        let severity = group
            .iter()
            .zip(&advisories)
            .filter_map(|(c, a)| c.severity.clone().or_else(|| a.severity.clone()))
            .max_by(|a, b| a.rating.cmp(&b.rating).then(a.score.partial_cmp(&b.score).unwrap_or(Ordering::Equal)))
            .unwrap_or_default();
        // Upgrading to the highest fixed version named fixes every advisory of the group.
        let fixed_version = group.iter().filter_map(|c| c.fixed.clone()).max_by(|a, b| {
            match (Version::parse(scheme, a), Version::parse(scheme, b)) {
                (Ok(x), Ok(y)) => x.cmp_to(&y).unwrap_or(Ordering::Equal),
                _ => a.cmp(b),
            }
        });
        let summary = advisories.iter().map(|a| a.summary.as_str()).find(|s| !s.is_empty()).unwrap_or("").to_string();
        let url = advisories.iter().find_map(|a| a.url.clone());
        let mut advisory_ids: Vec<String> = advisories.iter().map(|a| a.id.clone()).collect();
        advisory_ids.sort();
        advisory_ids.dedup();
        Some(Finding {
            id,
            aliases,
            advisories: advisory_ids,
            package: package.name.clone(),
            package_type: package.kind,
            ecosystem: package.ecosystem.clone(),
            purl: package.purl.clone(),
            installed_version: package.version.clone(),
            fixed_version,
            severity: severity.rating,
            score: severity.score,
            cvss_vector: severity.vector,
            summary,
            url,
            path: package.path.clone(),
            layer: package.layer.clone(),
        })
    }
}

/// A [`Matcher`] that remembers each distinct package's findings, shared
/// across threads.
///
/// Images in one registry share most of their packages (base layers), so
/// re-matching a whole registry against a new database meets the same
/// package thousands of times: this matches it once and copies the findings,
/// with only the per-image fields (purl, path, layer) restamped. It lives for
/// one pass over one database; its memory is bounded by the number of
/// distinct packages the pass meets.
pub struct CachedMatcher {
    db: std::sync::Arc<Database>,
    memo: std::sync::RwLock<HashMap<String, std::sync::Arc<Memo>>>,
}

/// What the findings of a package depend on besides per-image placement:
/// type, ecosystem, name, advisory name and matching version, joined by NUL
/// (which none of them holds) so that a lookup needs no allocation.
fn package_key(buf: &mut String, package: &Package) {
    buf.clear();
    for part in [
        package.kind.purl_type(),
        &package.ecosystem,
        &package.name,
        package.advisory_name(),
        matching_version(package),
    ] {
        buf.push_str(part);
        buf.push('\0');
    }
}

/// One package's findings and the problems matching it reported.
struct Memo {
    findings: Vec<Finding>,
    problems: Vec<String>,
}

impl CachedMatcher {
    /// A cached matcher over `db`.
    pub fn new(db: std::sync::Arc<Database>) -> CachedMatcher {
        CachedMatcher { db, memo: Default::default() }
    }

    /// The database matched against.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Distinct packages matched so far.
    pub fn distinct_packages(&self) -> usize {
        self.memo.read().map_or(0, |m| m.len())
    }

    /// Matches every package of the inventory, as [`Matcher::match_inventory`] does.
    pub fn match_inventory(&self, inventory: &Inventory) -> MatchResult {
        let matcher = Matcher::new(&self.db);
        let mut key = String::new();
        matcher.assemble(inventory, |package, problems| self.match_package(&matcher, &mut key, package, problems))
    }

    fn match_package(
        &self,
        matcher: &Matcher<'_>,
        key: &mut String,
        package: &Package,
        problems: &mut BTreeMap<String, usize>,
    ) -> Vec<Finding> {
        package_key(key, package);
        // A poisoned lock only means another thread panicked mid-insert of
        // a complete value; the map itself is still consistent.
        let known = self.memo.read().unwrap_or_else(|e| e.into_inner()).get(key.as_str()).cloned();
        let memo = match known {
            Some(memo) => memo,
            None => {
                let mut own = BTreeMap::new();
                let findings = matcher.match_package(package, &mut own);
                let memo = std::sync::Arc::new(Memo { findings, problems: own.into_keys().collect() });
                self.memo.write().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), memo.clone());
                return with_problems(memo.findings.clone(), &memo.problems, problems);
            }
        };
        let findings = memo
            .findings
            .iter()
            // Field by field: `..f.clone()` would copy the four placement strings only to drop them.
            .map(|f| Finding {
                id: f.id.clone(),
                aliases: f.aliases.clone(),
                advisories: f.advisories.clone(),
                package: f.package.clone(),
                package_type: f.package_type,
                ecosystem: f.ecosystem.clone(),
                purl: package.purl.clone(),
                installed_version: package.version.clone(),
                fixed_version: f.fixed_version.clone(),
                severity: f.severity,
                score: f.score,
                cvss_vector: f.cvss_vector.clone(),
                summary: f.summary.clone(),
                url: f.url.clone(),
                path: package.path.clone(),
                layer: package.layer.clone(),
            })
            .collect();
        with_problems(findings, &memo.problems, problems)
    }
}

fn with_problems(findings: Vec<Finding>, mine: &[String], problems: &mut BTreeMap<String, usize>) -> Vec<Finding> {
    for p in mine {
        *problems.entry(p.clone()).or_default() += 1;
    }
    findings
}

/// The version advisories compare against: Debian and Ubuntu advisories are
/// per source package and name source versions (a binNMU'd or differently
/// versioned binary would otherwise be misjudged).
fn matching_version(package: &Package) -> &str {
    match package.kind {
        PackageType::Deb => package.source_version.as_deref().unwrap_or(&package.version),
        _ => &package.version,
    }
}

/// Whether `entry` affects the installed version. `Ok(Some(fixed))` when it
/// does, with the first fixed version above the installed one, if any.
fn affects(
    scheme: Scheme,
    installed: &Version,
    installed_text: &str,
    entry: &Affected,
) -> Result<Option<Option<String>>, String> {
    if entry.versions.iter().any(|v| {
        v == installed_text || Version::parse(scheme, v).ok().and_then(|p| p.cmp_to(installed)) == Some(Ordering::Equal)
    }) {
        // Listed explicitly; a fixed version may still come from a range.
        let fixed = entry.ranges.iter().find_map(|r| range_affects(scheme, installed, r).ok().flatten().flatten());
        return Ok(Some(fixed));
    }
    let mut last_err = None;
    for range in &entry.ranges {
        match range_affects(scheme, installed, range) {
            Ok(Some(fixed)) => return Ok(Some(fixed)),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
    }
    match last_err {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// Evaluates one OSV range (the schema's algorithm: sort events by version,
/// walk them, toggling "affected" at introduced/fixed/last_affected/limit).
fn range_affects(scheme: Scheme, installed: &Version, events: &[Event]) -> Result<Option<Option<String>>, String> {
    // `None` stands for introduced "0": before every version.
    let mut parsed: Vec<(Option<Version>, &Event)> = Vec::with_capacity(events.len());
    for e in events {
        let text = match e {
            Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => v,
        };
        if matches!(e, Event::Introduced(v) if v == "0") {
            parsed.push((None, e));
            continue;
        }
        let v = Version::parse(scheme, text).map_err(|err| format!("version {text:?}: {err}"))?;
        parsed.push((Some(v), e));
    }
    parsed.sort_by(|(a, ea), (b, eb)| {
        let by_version = match (a, b) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => x.cmp_to(y).unwrap_or(Ordering::Equal),
        };
        // At equal versions an introduction comes first, so "introduced X,
        // fixed X" leaves X unaffected.
        by_version.then_with(|| rank(ea).cmp(&rank(eb)))
    });
    let mut affected = false;
    let mut limited = false;
    for (v, e) in &parsed {
        let cmp = match v {
            None => Ordering::Greater, // installed > "0"
            Some(v) => installed.cmp_to(v).unwrap_or(Ordering::Less),
        };
        match e {
            Event::Introduced(_) if cmp != Ordering::Less => affected = true,
            Event::Fixed(_) if cmp != Ordering::Less => affected = false,
            Event::LastAffected(_) if cmp == Ordering::Greater => affected = false,
            Event::Limit(_) if cmp != Ordering::Less => limited = true,
            _ => {}
        }
    }
    if !affected || limited {
        return Ok(None);
    }
    let fixed = parsed
        .iter()
        .filter(|(_, e)| matches!(e, Event::Fixed(_)))
        .filter_map(|(v, e)| match (v, e) {
            (Some(v), Event::Fixed(text)) if installed.cmp_to(v) == Some(Ordering::Less) => Some(text.clone()),
            _ => None,
        })
        .next();
    Ok(Some(fixed))
}

fn rank(e: &Event) -> u8 {
    match e {
        Event::Introduced(_) => 0,
        Event::LastAffected(_) => 1,
        Event::Fixed(_) => 2,
        Event::Limit(_) => 3,
    }
}
