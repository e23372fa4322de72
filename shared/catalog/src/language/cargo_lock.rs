//! Rust crates from `Cargo.lock` files (all lockfile versions share the
//! `[[package]]` array of `name` / `version` / `source`).
//!
//! Only packages with a `source` are reported — registry (`registry+…`,
//! `sparse+…`) and git (`git+…`) dependencies. A package without a source is
//! a path dependency or a member of the workspace: the project's own code,
//! which no RustSec advisory covers, and whose name may well collide with an
//! unrelated crates.io crate, so reporting it would only invite false matches.
//!
//! Lockfiles in Cargo's source caches (`<CARGO_HOME>/registry/src/…` and
//! `<CARGO_HOME>/git/checkouts/…`) are not wanted: they ship inside downloaded
//! crates and describe what those crates' authors built, not this image.

use crate::cataloger::{read_text_capped, CatalogContext, CatalogError, Cataloger, FileMeta, Found};
use crate::package::{Package, PackageType};
use std::collections::BTreeSet;
use std::io::Read;
use toml::{Table, Value};

/// The catalogers of this module.
pub fn catalogers() -> Vec<Box<dyn Cataloger>> {
    vec![Box::new(CargoLockCataloger)]
}

/// Parses `Cargo.lock`.
pub struct CargoLockCataloger;

/// Lockfiles of the largest workspaces are a few MiB.
const MAX_SIZE: u64 = 16 << 20;

impl Cataloger for CargoLockCataloger {
    fn name(&self) -> &'static str {
        "cargo-lock"
    }

    fn version(&self) -> u32 {
        1
    }

    fn wants(&self, file: &FileMeta<'_>) -> bool {
        file.file_name() == "Cargo.lock" && !in_cargo_source_cache(file.path)
    }

    fn max_size(&self) -> u64 {
        MAX_SIZE
    }

    fn catalog(
        &self,
        _file: &FileMeta<'_>,
        content: &mut dyn Read,
        _ctx: &CatalogContext,
    ) -> Result<Found, CatalogError> {
        let text = read_text_capped(content, MAX_SIZE)?;
        parse_cargo_lock(&text)
    }
}

/// True for paths under `…/registry/src/` or `…/git/checkouts/`.
fn in_cargo_source_cache(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    segments.windows(2).any(|w| matches!(w, ["registry", "src"] | ["git", "checkouts"]))
}

/// Parses a `Cargo.lock`, returning the packages that have a `source`.
pub fn parse_cargo_lock(text: &str) -> Result<Found, CatalogError> {
    let table: Table =
        toml::from_str(text).map_err(|e| CatalogError::malformed(format!("Cargo.lock is not valid TOML: {e}")))?;
    let packages = match table.get("package") {
        Some(Value::Array(items)) => items.as_slice(),
        // A workspace without any dependencies has no `[[package]]` other than
        // itself, but a file with neither packages nor a version is not a lockfile.
        None if table.contains_key("version") || table.contains_key("metadata") => &[],
        None => return Err(CatalogError::malformed("Cargo.lock: no [[package]] entries")),
        Some(_) => return Err(CatalogError::malformed("Cargo.lock: `package` is not an array of tables")),
    };
    let mut found = Found::default();
    let mut seen = BTreeSet::new();
    for (i, item) in packages.iter().enumerate() {
        let Value::Table(pkg) = item else {
            found.warnings.push(format!("package[{i}] is not a table; skipped"));
            continue;
        };
        let text = |k: &str| pkg.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let Some(name) = text("name") else {
            found.warnings.push(format!("package[{i}] has no name; skipped"));
            continue;
        };
        let Some(version) = text("version") else {
            found.warnings.push(format!("package[{i}] ({name}) has no version; skipped"));
            continue;
        };
        match pkg.get("source") {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            None => continue, // path or workspace crate: see the module docs
            Some(_) => {
                found.warnings.push(format!("package[{i}] ({name}): `source` is not a string; skipped"));
                continue;
            }
        }
        // The same name@version from two sources (crates.io and a git fork) is
        // one crate as far as advisories go.
        if seen.insert((name.to_string(), version.to_string())) {
            found.packages.push(Package::new(PackageType::Cargo, name, version));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(text: &str) -> Result<Found, CatalogError> {
        let ctx = CatalogContext::new(1 << 20).expect("scratch dir");
        let meta = FileMeta { path: "src/app/Cargo.lock", size: text.len() as u64, mode: 0o644 };
        CargoLockCataloger.catalog(&meta, &mut text.as_bytes(), &ctx)
    }

    fn ids(found: &Found) -> Vec<String> {
        found.packages.iter().map(|p| format!("{}@{}", p.name, p.version)).collect()
    }

    #[test]
    fn wants() {
        let w = |p: &str| CargoLockCataloger.wants(&FileMeta { path: p, size: 1, mode: 0o644 });
        assert!(w("Cargo.lock"));
        assert!(w("usr/src/app/Cargo.lock"));
        assert!(!w("usr/local/cargo/registry/src/index.crates.io-6f17d22bba15001f/ripgrep-14.0.3/Cargo.lock"));
        assert!(!w("root/.cargo/git/checkouts/serde-abc/0123abc/Cargo.lock"));
        assert!(!w("usr/src/app/Cargo.toml"));
        assert!(!w("usr/src/app/cargo.lock"));
        assert!(!w("usr/src/app/Cargo.lock.bak"));
    }

    #[test]
    fn registry_and_git_packages_only() {
        let found = catalog(include_str!("../../testdata/cargo/Cargo.lock")).expect("parses");
        assert_eq!(
            ids(&found),
            ["aho-corasick@1.1.2", "memchr@2.6.4", "regex@1.10.2", "serde@1.0.193", "time@0.3.30"],
            "workspace and path crates left out; warnings {:?}",
            found.warnings
        );
        assert!(found.packages.iter().all(|p| p.kind == PackageType::Cargo));
        assert!(found.warnings.is_empty());
    }

    #[test]
    fn v1_lockfile_with_metadata_table() {
        let text = "[[package]]\nname = \"libc\"\nversion = \"0.2.80\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n\n\
                    [[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\n \"libc 0.2.80 (registry+https://github.com/rust-lang/crates.io-index)\",\n]\n\n\
                    [metadata]\n\"checksum libc 0.2.80 (registry+https://github.com/rust-lang/crates.io-index)\" = \"4d58d1b70b004888f764dfbf6a26a3b0342a1632d33968e4a179d8011c760614\"\n";
        assert_eq!(ids(&catalog(text).expect("parses")), ["libc@0.2.80"]);
    }

    #[test]
    fn problems() {
        for bad in ["[[package]\nname = 1", "package = 3\n", "", "[dependencies]\nserde = \"1\"\n", "\u{0}"] {
            match catalog(bad) {
                Err(CatalogError::Malformed(_)) => {}
                other => panic!("{bad:?}: expected Malformed, got {other:?}"),
            }
        }
        let found = catalog(
            "version = 3\n[[package]]\nname = \"a\"\n[[package]]\nversion = \"1\"\n[[package]]\nname = \"b\"\nversion = \"1\"\nsource = 5\n\
             [[package]]\nname = \"c\"\nversion = 2\nsource = \"registry+x\"\n",
        )
        .expect("parses");
        assert!(found.packages.is_empty());
        assert_eq!(found.warnings.len(), 4, "{:?}", found.warnings);
        assert!(catalog("version = 3\n").expect("parses").packages.is_empty());
    }
}
