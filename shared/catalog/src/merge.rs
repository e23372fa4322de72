//! Stacks layer inventories into the image's inventory, applying OCI
//! whiteouts and opaque directories exactly as the image spec defines them:
//! a layer's deletions hide paths of the layers *below* it, then its own
//! files are added on top.

use crate::distro::Distro;
use crate::package::Package;
use crate::walker::{follow_symlinks, FileOutcome, FileRecord, LayerInventory};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Release files, in the order they are trusted to identify the distribution.
const RELEASE_FILES: &[&str] = &["etc/os-release", "usr/lib/os-release", "etc/alpine-release", "etc/debian_version"];

/// The package inventory of a whole image or root filesystem.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Inventory {
    /// The distribution, when a release file identifies one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distro: Option<Distro>,
    /// Every package, sorted by type, name, version and path.
    pub packages: Vec<Package>,
    /// Files that could not be cataloged, and non-fatal warnings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issues: Vec<FileIssue>,
}

/// A wanted file that could not be (fully) read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIssue {
    /// Path inside the image.
    pub path: String,
    /// Layer digest, for layered sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// Cataloger (or `walker`) that reported it.
    pub cataloger: String,
    /// What went wrong.
    pub message: String,
}

/// A file visible in the merged filesystem, with the layer it came from.
struct Visible {
    record: FileRecord,
    layer: Option<String>,
}

/// Builds an image inventory from its layers, lowest first.
#[derive(Default)]
pub struct LayerStack {
    files: BTreeMap<String, Visible>,
    symlinks: HashMap<String, String>,
}

impl LayerStack {
    /// An empty filesystem.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts one layer on top of the stack.
    pub fn push(&mut self, layer_digest: Option<&str>, layer: &LayerInventory) {
        for dir in &layer.opaque_dirs {
            self.remove_under(dir, false);
        }
        for path in &layer.whiteouts {
            self.remove_under(path, true);
        }
        for (link, target) in &layer.symlinks {
            self.files.remove(link);
            self.symlinks.insert(link.clone(), target.clone());
        }
        for record in &layer.files {
            self.symlinks.remove(&record.path);
            let mut record = record.clone();
            let previous = self.files.remove(&record.path);
            if let FileOutcome::Found { packages, .. } = &mut record.outcome {
                attribute_layers(packages, layer_digest, previous.as_ref());
            }
            self.files.insert(record.path.clone(), Visible { record, layer: layer_digest.map(str::to_string) });
        }
    }

    /// Removes `path` (when `including_self`) and everything below it.
    fn remove_under(&mut self, path: &str, including_self: bool) {
        let prefix = if path.is_empty() { String::new() } else { format!("{path}/") };
        if including_self {
            self.files.remove(path);
            self.symlinks.remove(path);
        }
        let doomed: Vec<String> = self
            .files
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.files.remove(&k);
        }
        self.symlinks.retain(|k, _| !k.starts_with(&prefix));
    }

    /// The final inventory: packages from every visible file, with OSV
    /// ecosystems and purls assigned from the detected distribution.
    pub fn finish(self) -> Inventory {
        let distro = self.detect_distro();
        let mut packages = Vec::new();
        let mut issues = Vec::new();
        for (path, visible) in self.files {
            match visible.record.outcome {
                FileOutcome::Found { packages: found, warnings, .. } => {
                    packages.extend(found);
                    issues.extend(warnings.into_iter().map(|message| FileIssue {
                        path: path.clone(),
                        layer: visible.layer.clone(),
                        cataloger: visible.record.cataloger.clone(),
                        message,
                    }));
                }
                FileOutcome::Failed(message) => issues.push(FileIssue {
                    path: path.clone(),
                    layer: visible.layer.clone(),
                    cataloger: visible.record.cataloger.clone(),
                    message,
                }),
            }
        }
        for p in &mut packages {
            p.assign_identity(distro.as_ref());
        }
        packages.sort_by(|a, b| (a.kind, &a.name, &a.version, &a.path).cmp(&(b.kind, &b.name, &b.version, &b.path)));
        Inventory { distro, packages, issues }
    }

    fn detect_distro(&self) -> Option<Distro> {
        RELEASE_FILES.iter().find_map(|candidate| {
            let real = follow_symlinks(candidate, &self.symlinks)?;
            match &self.files.get(&real)?.record.outcome {
                FileOutcome::Found { distro, .. } => distro.clone(),
                FileOutcome::Failed(_) => None,
            }
        })
    }
}

/// Gives each package the digest of the layer that introduced it: packages
/// already present (same name, version and arch) in the file this one
/// replaces keep their older layer.
fn attribute_layers(packages: &mut [Package], layer: Option<&str>, previous: Option<&Visible>) {
    let earlier: HashMap<(&str, &str, Option<&str>), Option<&str>> = match previous.map(|v| &v.record.outcome) {
        Some(FileOutcome::Found { packages: old, .. }) => {
            old.iter().map(|p| ((p.name.as_str(), p.version.as_str(), p.arch.as_deref()), p.layer.as_deref())).collect()
        }
        _ => HashMap::new(),
    };
    for p in packages {
        let key = (p.name.as_str(), p.version.as_str(), p.arch.as_deref());
        p.layer = match earlier.get(&key) {
            Some(old) => old.map(str::to_string),
            None => layer.map(str::to_string),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::PackageType;

    fn record(path: &str, names: &[(&str, &str)]) -> FileRecord {
        FileRecord {
            path: path.into(),
            cataloger: "test".into(),
            outcome: FileOutcome::Found {
                packages: names
                    .iter()
                    .map(|(n, v)| {
                        let mut p = Package::new(PackageType::Python, *n, *v);
                        p.path = path.into();
                        p
                    })
                    .collect(),
                distro: None,
                warnings: vec![],
            },
        }
    }

    fn names(inv: &Inventory) -> Vec<(String, String, Option<String>)> {
        inv.packages.iter().map(|p| (p.name.clone(), p.version.clone(), p.layer.clone())).collect()
    }

    #[test]
    fn replaced_file_keeps_original_layer_for_unchanged_packages() {
        let mut stack = LayerStack::new();
        stack.push(
            Some("L1"),
            &LayerInventory { files: vec![record("db", &[("a", "1"), ("b", "1")])], ..Default::default() },
        );
        stack.push(
            Some("L2"),
            &LayerInventory { files: vec![record("db", &[("a", "1"), ("b", "2")])], ..Default::default() },
        );
        let inv = stack.finish();
        assert_eq!(
            names(&inv),
            vec![("a".into(), "1".into(), Some("L1".into())), ("b".into(), "2".into(), Some("L2".into()))]
        );
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_only_lower_layers() {
        let mut stack = LayerStack::new();
        stack.push(
            Some("L1"),
            &LayerInventory {
                files: vec![
                    record("x/a", &[("a", "1")]),
                    record("x/sub/b", &[("b", "1")]),
                    record("y", &[("y", "1")]),
                    record("xy", &[("xy", "1")]),
                ],
                ..Default::default()
            },
        );
        stack.push(
            Some("L2"),
            &LayerInventory {
                opaque_dirs: vec!["x".into()],
                whiteouts: vec!["y".into()],
                files: vec![record("x/c", &[("c", "1")])],
                ..Default::default()
            },
        );
        let inv = stack.finish();
        let got: Vec<_> = inv.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(got, vec!["c", "xy"]);
    }

    #[test]
    fn distro_follows_symlinked_os_release() {
        let mut stack = LayerStack::new();
        let mut rec = record("usr/lib/os-release", &[]);
        rec.outcome = FileOutcome::Found {
            packages: vec![],
            distro: Some(Distro { id: "debian".into(), version_id: Some("12".into()), ..Default::default() }),
            warnings: vec![],
        };
        stack.push(
            Some("L1"),
            &LayerInventory {
                files: vec![rec],
                symlinks: vec![("etc/os-release".into(), "usr/lib/os-release".into())],
                ..Default::default()
            },
        );
        assert_eq!(stack.finish().distro.unwrap().id, "debian");
    }
}
