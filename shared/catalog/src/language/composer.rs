//! PHP packages managed by Composer, from two files:
//!
//! * `composer.lock` — an application's lock: `packages` and `packages-dev`;
//! * `<vendor-dir>/composer/installed.json` — what `composer install` actually
//!   put in the vendor directory: a top-level array in Composer 1, an object
//!   with a `packages` array in Composer 2.
//!
//! Versions are kept exactly as written (`v5.4.0`, `dev-main`): Packagist
//! advisories use the same strings. Dev packages are reported because a lock
//! does not say whether `--no-dev` was used.
//!
//! A `composer.lock` under a `vendor/` directory belongs to an installed
//! library (its authors' development lock), not to the image's application,
//! so it is not wanted.

use crate::cataloger::{read_capped, CatalogContext, CatalogError, Cataloger, FileMeta, Found};
use crate::package::{Package, PackageType};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::io::Read;

/// The catalogers of this module.
pub fn catalogers() -> Vec<Box<dyn Cataloger>> {
    vec![Box::new(ComposerLockCataloger), Box::new(ComposerInstalledCataloger)]
}

/// Parses `composer.lock`.
pub struct ComposerLockCataloger;

/// Parses `vendor/composer/installed.json`.
pub struct ComposerInstalledCataloger;

/// Both files carry full package metadata (descriptions, autoload maps), so
/// large applications reach several MiB.
const MAX_SIZE: u64 = 32 << 20;

impl Cataloger for ComposerLockCataloger {
    fn name(&self) -> &'static str {
        "composer-lock"
    }

    fn version(&self) -> u32 {
        1
    }

    fn wants(&self, file: &FileMeta<'_>) -> bool {
        file.file_name() == "composer.lock" && !file.path.split('/').rev().skip(1).any(|segment| segment == "vendor")
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
        let bytes = read_capped(content, MAX_SIZE)?;
        parse_lock(&bytes)
    }
}

impl Cataloger for ComposerInstalledCataloger {
    fn name(&self) -> &'static str {
        "composer-installed"
    }

    fn version(&self) -> u32 {
        1
    }

    fn wants(&self, file: &FileMeta<'_>) -> bool {
        // The vendor directory's name is configurable (`vendor-dir`); the
        // `composer/installed.json` inside it is not.
        let mut parts = file.path.rsplit('/');
        parts.next() == Some("installed.json") && parts.next() == Some("composer")
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
        let bytes = read_capped(content, MAX_SIZE)?;
        parse_installed(&bytes)
    }
}

fn parse_json(bytes: &[u8], what: &str) -> Result<Value, CatalogError> {
    serde_json::from_slice(bytes).map_err(|e| CatalogError::malformed(format!("{what} is not valid JSON: {e}")))
}

/// Parses a `composer.lock`.
pub fn parse_lock(bytes: &[u8]) -> Result<Found, CatalogError> {
    let Value::Object(root) = parse_json(bytes, "composer.lock")? else {
        return Err(CatalogError::malformed("composer.lock: top level is not an object"));
    };
    if !root.contains_key("packages") && !root.contains_key("packages-dev") {
        return Err(CatalogError::malformed("composer.lock: no `packages` or `packages-dev`"));
    }
    let mut out = Collector::default();
    for key in ["packages", "packages-dev"] {
        out.list(&root, key)?;
    }
    Ok(out.found)
}

/// Parses a `vendor/composer/installed.json` of Composer 1 or 2.
pub fn parse_installed(bytes: &[u8]) -> Result<Found, CatalogError> {
    let mut out = Collector::default();
    match parse_json(bytes, "installed.json")? {
        Value::Array(items) => out.entries(&items, "installed.json"),
        Value::Object(root) if root.contains_key("packages") => out.list(&root, "packages")?,
        Value::Object(_) => return Err(CatalogError::malformed("installed.json: no `packages` array")),
        _ => return Err(CatalogError::malformed("installed.json: neither an array nor an object")),
    }
    Ok(out.found)
}

#[derive(Default)]
struct Collector {
    found: Found,
    seen: BTreeSet<(String, String)>,
}

impl Collector {
    /// Collects the array `root[key]`; absent or null means none.
    fn list(&mut self, root: &Map<String, Value>, key: &str) -> Result<(), CatalogError> {
        match root.get(key) {
            Some(Value::Array(items)) => self.entries(items, key),
            None | Some(Value::Null) => {}
            Some(_) => return Err(CatalogError::malformed(format!("`{key}` is not an array"))),
        }
        Ok(())
    }

    fn entries(&mut self, items: &[Value], list: &str) {
        for (i, item) in items.iter().enumerate() {
            let Value::Object(obj) = item else {
                self.found.warnings.push(format!("{list}[{i}] is not an object; skipped"));
                continue;
            };
            let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
            let Some(name) = text("name") else {
                self.found.warnings.push(format!("{list}[{i}] has no name; skipped"));
                continue;
            };
            let Some(version) = text("version") else {
                self.found.warnings.push(format!("{list}[{i}] ({name}) has no version; skipped"));
                continue;
            };
            // A package in both `packages` and `packages-dev` would be a broken
            // lock, but reporting it twice would help no one.
            if !self.seen.insert((name.to_string(), version.to_string())) {
                continue;
            }
            let mut p = Package::new(PackageType::Composer, name, version);
            p.licenses = licenses(obj.get("license"));
            self.found.packages.push(p);
        }
    }
}

/// `license` is an array of SPDX identifiers; some old packages wrote a single string.
fn licenses(v: Option<&Value>) -> Vec<String> {
    let items: Vec<&Value> = match v {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(other) => vec![other],
        None => Vec::new(),
    };
    let mut out: Vec<String> = Vec::new();
    for s in items.into_iter().filter_map(Value::as_str).map(str::trim) {
        if !s.is_empty() && !out.iter().any(|l| l == s) {
            out.push(s.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(path: &str) -> FileMeta<'_> {
        FileMeta { path, size: 1, mode: 0o644 }
    }

    fn run(c: &dyn Cataloger, path: &str, bytes: &[u8]) -> Result<Found, CatalogError> {
        let ctx = CatalogContext::new(1 << 20).expect("scratch dir");
        c.catalog(&meta(path), &mut &bytes[..], &ctx)
    }

    fn ids(found: &Found) -> Vec<String> {
        found.packages.iter().map(|p| format!("{}@{}", p.name, p.version)).collect()
    }

    #[test]
    fn wants() {
        let lock = |p: &str| ComposerLockCataloger.wants(&meta(p));
        assert!(lock("var/www/html/composer.lock"));
        assert!(lock("composer.lock"));
        assert!(!lock("var/www/html/vendor/guzzlehttp/guzzle/composer.lock"), "a library's own lock");
        assert!(!lock("var/www/html/composer.json"));
        assert!(!lock("var/www/html/composer.lock.orig"));
        let installed = |p: &str| ComposerInstalledCataloger.wants(&meta(p));
        assert!(installed("var/www/html/vendor/composer/installed.json"));
        assert!(installed("app/lib/composer/installed.json"), "custom vendor-dir");
        assert!(!installed("var/www/html/vendor/composer/installed.php"));
        assert!(!installed("var/www/html/installed.json"));
        assert!(!installed("installed.json"));
        assert!(!installed("var/www/html/vendor/composer/installed.json/x"));
    }

    #[test]
    fn lock_packages_and_dev() {
        let found =
            run(&ComposerLockCataloger, "composer.lock", include_bytes!("../../testdata/composer/composer.lock"))
                .expect("parses");
        assert_eq!(
            ids(&found),
            ["guzzlehttp/guzzle@7.8.0", "symfony/console@v6.3.4", "example/dual@2.0.0", "phpunit/phpunit@dev-main"],
            "versions as written, dev packages included"
        );
        assert_eq!(found.packages[0].licenses, ["MIT"]);
        assert_eq!(found.packages[2].licenses, ["MIT", "GPL-2.0-only"]);
        assert_eq!(found.packages[3].licenses, ["BSD-3-Clause"], "a bare string is accepted");
        assert!(found.packages.iter().all(|p| p.kind == PackageType::Composer));
        assert_eq!(found.warnings.len(), 2, "{:?}", found.warnings);
    }

    #[test]
    fn installed_v1_and_v2() {
        let v1 = run(
            &ComposerInstalledCataloger,
            "vendor/composer/installed.json",
            include_bytes!("../../testdata/composer/installed-v1.json"),
        )
        .expect("parses");
        assert_eq!(ids(&v1), ["monolog/monolog@1.27.1", "psr/log@1.1.4"]);
        assert_eq!(v1.packages[1].licenses, ["MIT"]);
        let v2 = run(
            &ComposerInstalledCataloger,
            "vendor/composer/installed.json",
            include_bytes!("../../testdata/composer/installed-v2.json"),
        )
        .expect("parses");
        assert_eq!(ids(&v2), ["monolog/monolog@3.4.0", "psr/log@3.0.0"]);
        assert!(v2.warnings.is_empty());
    }

    #[test]
    fn malformed() {
        for bad in [&b"{"[..], b"[]", b"{}", b"{\"packages\": {}}", b"{\"packages\": [], \"packages-dev\": 3}", b"null"]
        {
            match run(&ComposerLockCataloger, "composer.lock", bad) {
                Err(CatalogError::Malformed(_)) => {}
                other => panic!("{:?}: expected Malformed, got {other:?}", String::from_utf8_lossy(bad)),
            }
        }
        for bad in [&b"nope"[..], b"{}", b"{\"packages\": \"x\"}", b"42"] {
            match run(&ComposerInstalledCataloger, "vendor/composer/installed.json", bad) {
                Err(CatalogError::Malformed(_)) => {}
                other => panic!("{:?}: expected Malformed, got {other:?}", String::from_utf8_lossy(bad)),
            }
        }
        // Composer 1 with nothing installed.
        let found = run(&ComposerInstalledCataloger, "vendor/composer/installed.json", b"[]").expect("parses");
        assert!(found.packages.is_empty());
        // Wrong types inside entries are warnings.
        let found = run(
            &ComposerInstalledCataloger,
            "vendor/composer/installed.json",
            br#"[1, {"name": 2, "version": "1"}, {"name": "a/b", "version": "1.0", "license": 5}]"#,
        )
        .expect("parses");
        assert_eq!(ids(&found), ["a/b@1.0"]);
        assert!(found.packages[0].licenses.is_empty());
        assert_eq!(found.warnings.len(), 2);
    }
}
