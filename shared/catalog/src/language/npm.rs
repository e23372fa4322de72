//! npm packages, from two sources:
//!
//! * lockfiles — `package-lock.json` (and `npm-shrinkwrap.json`, the same
//!   format) of an application: v1 nests `dependencies` objects; v2 and v3 keep
//!   a flat `packages` map keyed by install path (`node_modules/a/node_modules/b`).
//!   v2 carries both forms; the `packages` map is preferred.
//! * installed packages — `node_modules/<name>/package.json` and
//!   `node_modules/@scope/<name>/package.json` at any depth, one package each.
//!
//! Files that would only repeat what the installed `package.json` files say are
//! not wanted: npm's hidden lockfile `node_modules/.package-lock.json`, and any
//! lockfile inside `node_modules` (a dependency's own development lockfile,
//! which describes what its authors installed, not what is in the image).
//! An application's own `package.json` (not directly inside `node_modules`) is
//! a manifest of ranges, not an installed dependency, so it is not wanted either.
//!
//! Dev and optional dependencies are reported: a lockfile does not say whether
//! they were installed, and missing a vulnerable package is worse than an
//! extra finding. The lockfile's root entry (the application itself), linked
//! entries and local workspace members are not reported: they are the
//! project's own code, which no advisory covers, and their names may collide
//! with unrelated registry packages.

use crate::cataloger::{read_capped, CatalogContext, CatalogError, Cataloger, FileMeta, Found};
use crate::package::{Package, PackageType};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::io::Read;

/// The catalogers of this module.
pub fn catalogers() -> Vec<Box<dyn Cataloger>> {
    vec![Box::new(NpmLockCataloger), Box::new(NpmPackageCataloger)]
}

/// Parses `package-lock.json` / `npm-shrinkwrap.json` (lockfile versions 1–3).
pub struct NpmLockCataloger;

/// Parses the `package.json` of one package installed under `node_modules`.
pub struct NpmPackageCataloger;

/// Large monorepo lockfiles reach tens of MiB.
const MAX_LOCK_SIZE: u64 = 64 << 20;

/// Installed manifests are small, but old npm versions embedded the whole README.
const MAX_MANIFEST_SIZE: u64 = 8 << 20;

const NODE_MODULES: &str = "node_modules";

fn in_node_modules(path: &str) -> bool {
    path.split('/').any(|segment| segment == NODE_MODULES)
}

impl Cataloger for NpmLockCataloger {
    fn name(&self) -> &'static str {
        "npm-lock"
    }

    fn version(&self) -> u32 {
        1
    }

    fn wants(&self, file: &FileMeta<'_>) -> bool {
        matches!(file.file_name(), "package-lock.json" | "npm-shrinkwrap.json") && !in_node_modules(file.path)
    }

    fn max_size(&self) -> u64 {
        MAX_LOCK_SIZE
    }

    fn catalog(
        &self,
        _file: &FileMeta<'_>,
        content: &mut dyn Read,
        _ctx: &CatalogContext,
    ) -> Result<Found, CatalogError> {
        let bytes = read_capped(content, MAX_LOCK_SIZE)?;
        parse_lockfile(&bytes)
    }
}

impl Cataloger for NpmPackageCataloger {
    fn name(&self) -> &'static str {
        "npm-package"
    }

    fn version(&self) -> u32 {
        1
    }

    fn wants(&self, file: &FileMeta<'_>) -> bool {
        file.file_name() == "package.json" && installed_name_from_path(file.path).is_some()
    }

    fn max_size(&self) -> u64 {
        MAX_MANIFEST_SIZE
    }

    fn catalog(
        &self,
        file: &FileMeta<'_>,
        content: &mut dyn Read,
        _ctx: &CatalogContext,
    ) -> Result<Found, CatalogError> {
        let bytes = read_capped(content, MAX_MANIFEST_SIZE)?;
        parse_installed_manifest(&bytes, installed_name_from_path(file.path).as_deref())
    }
}

/// The package name implied by a `…/node_modules/[@scope/]<name>/package.json`
/// path, or `None` when the file is not directly inside such a directory.
fn installed_name_from_path(path: &str) -> Option<String> {
    let mut parts = path.rsplit('/');
    parts.next()?; // package.json
    let dir = parts.next()?;
    // Dot-directories (`.bin`, `.cache`, `.pnpm`) are npm's or tools' own.
    if dir.is_empty() || dir.starts_with(['.', '@']) {
        return None;
    }
    match parts.next()? {
        NODE_MODULES => Some(dir.to_string()),
        scope if scope.len() > 1 && scope.starts_with('@') && parts.next()? == NODE_MODULES => {
            Some(format!("{scope}/{dir}"))
        }
        _ => None,
    }
}

/// Parses an installed package's `package.json`. `path_name` (from the
/// directory layout) stands in when the manifest has no `name`.
pub fn parse_installed_manifest(bytes: &[u8], path_name: Option<&str>) -> Result<Found, CatalogError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| CatalogError::malformed(format!("package.json is not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(CatalogError::malformed("package.json: top level is not an object"));
    };
    let mut found = Found::default();
    let Some(name) = non_empty_str(&obj, "name").or(path_name) else {
        found.warnings.push("package.json has no name; skipped".into());
        return Ok(found);
    };
    let Some(version) = non_empty_str(&obj, "version") else {
        found.warnings.push(format!("package {name:?} has no version; skipped"));
        return Ok(found);
    };
    let mut p = Package::new(PackageType::Npm, name, version);
    p.licenses = licenses(&obj);
    found.packages.push(p);
    Ok(found)
}

/// Parses a `package-lock.json` of any lockfile version.
pub fn parse_lockfile(bytes: &[u8]) -> Result<Found, CatalogError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| CatalogError::malformed(format!("package-lock.json is not valid JSON: {e}")))?;
    let Value::Object(root) = value else {
        return Err(CatalogError::malformed("package-lock.json: top level is not an object"));
    };
    let mut out = Collector::default();
    match root.get("packages") {
        Some(Value::Object(packages)) => {
            collect_packages_map(packages, &mut out);
            return Ok(out.found);
        }
        None | Some(Value::Null) => {}
        Some(_) => return Err(CatalogError::malformed("package-lock.json: `packages` is not an object")),
    }
    match root.get("dependencies") {
        Some(Value::Object(deps)) => collect_v1(deps, &mut out),
        None | Some(Value::Null) if root.contains_key("lockfileVersion") => {}
        None | Some(Value::Null) => {
            return Err(CatalogError::malformed("package-lock.json: no lockfileVersion, packages or dependencies"))
        }
        Some(_) => return Err(CatalogError::malformed("package-lock.json: `dependencies` is not an object")),
    }
    Ok(out.found)
}

/// Accumulates packages, dropping exact name@version repeats: the same version
/// installed under several parents adds nothing to a per-file inventory.
#[derive(Default)]
struct Collector {
    found: Found,
    seen: BTreeSet<(String, String)>,
}

impl Collector {
    fn push(&mut self, name: &str, version: &str, licenses: Vec<String>) {
        if self.seen.insert((name.to_string(), version.to_string())) {
            let mut p = Package::new(PackageType::Npm, name, version);
            p.licenses = licenses;
            self.found.packages.push(p);
        }
    }
}

/// Lockfile v2/v3: `packages` keyed by install path.
fn collect_packages_map(packages: &Map<String, Value>, out: &mut Collector) {
    for (key, entry) in packages {
        if key.is_empty() {
            continue; // the application itself
        }
        let Value::Object(obj) = entry else {
            out.found.warnings.push(format!("packages[{key:?}] is not an object; skipped"));
            continue;
        };
        if obj.get("link").and_then(Value::as_bool) == Some(true) {
            continue; // a symlink to a workspace member, reported (or not) under its own key
        }
        let path_name = match name_from_install_path(key) {
            InstallPath::Dependency(n) => n,
            InstallPath::Local => continue,
            InstallPath::Invalid => {
                out.found.warnings.push(format!("packages[{key:?}]: unrecognised install path; skipped"));
                continue;
            }
        };
        // `name` is present when the install is an alias (`"x": "npm:real@1"`);
        // advisories are filed under the real name.
        let name = non_empty_str(obj, "name").unwrap_or(path_name);
        let Some(version) = non_empty_str(obj, "version") else {
            out.found.warnings.push(format!("packages[{key:?}] has no version; skipped"));
            continue;
        };
        out.push(name, version, licenses(obj));
    }
}

/// What a v2/v3 `packages` key denotes.
enum InstallPath<'a> {
    /// Installed under `node_modules`; the name from the path.
    Dependency(&'a str),
    /// A directory of the project (workspace member, `file:` dependency).
    Local,
    /// Not a path npm would write.
    Invalid,
}

fn name_from_install_path(key: &str) -> InstallPath<'_> {
    const MARKER: &str = "node_modules/";
    let mut start = None;
    let mut search = key;
    let mut offset = 0;
    while let Some(i) = search.find(MARKER) {
        // Only whole segments count: `my_node_modules/x` is not an install path.
        if i == 0 || search[..i].ends_with('/') {
            start = Some(offset + i + MARKER.len());
        }
        offset += i + MARKER.len();
        search = &key[offset..];
    }
    let Some(start) = start else { return InstallPath::Local };
    let rest = &key[start..];
    let valid = match rest.split_once('/') {
        None => !rest.is_empty() && !rest.starts_with('@'),
        Some((scope, name)) => scope.len() > 1 && scope.starts_with('@') && !name.is_empty() && !name.contains('/'),
    };
    if valid {
        InstallPath::Dependency(rest)
    } else {
        InstallPath::Invalid
    }
}

/// Lockfile v1: `dependencies` objects nested by install location. serde_json
/// refuses documents nested deeper than 128 levels, which bounds the recursion.
fn collect_v1(deps: &Map<String, Value>, out: &mut Collector) {
    for (key, entry) in deps {
        let Value::Object(obj) = entry else {
            out.found.warnings.push(format!("dependencies[{key:?}] is not an object; skipped"));
            continue;
        };
        match non_empty_str(obj, "version") {
            // Local directories, the project's own code.
            Some(v) if v.starts_with("file:") || v.starts_with("link:") => {}
            // v1 records an alias as the version: `npm:<real name>@<version>`.
            Some(v) if v.starts_with("npm:") => match v["npm:".len()..].rsplit_once('@') {
                Some((name, version)) if !name.is_empty() && !version.is_empty() => {
                    out.push(name, version, licenses(obj))
                }
                _ => out.found.warnings.push(format!("dependencies[{key:?}]: unreadable alias {v:?}; skipped")),
            },
            Some(v) => out.push(key, v, licenses(obj)),
            None => out.found.warnings.push(format!("dependencies[{key:?}] has no version; skipped")),
        }
        match obj.get("dependencies") {
            Some(Value::Object(nested)) => collect_v1(nested, out),
            None | Some(Value::Null) => {}
            Some(_) => out.found.warnings.push(format!("dependencies[{key:?}].dependencies is not an object")),
        }
    }
}

fn non_empty_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// The declared licenses: `license` as an SPDX string or a legacy `{type}`
/// object (or, rarely, an array of either), else the legacy `licenses` array.
fn licenses(obj: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["license", "licenses"] {
        if let Some(v) = obj.get(key) {
            match v {
                Value::Array(items) => items.iter().for_each(|item| push_license(item, &mut out)),
                other => push_license(other, &mut out),
            }
        }
        if !out.is_empty() {
            break;
        }
    }
    out
}

fn push_license(v: &Value, out: &mut Vec<String>) {
    let s = match v {
        Value::String(s) => s.as_str(),
        Value::Object(o) => o.get("type").and_then(Value::as_str).unwrap_or_default(),
        _ => "",
    };
    let s = s.trim();
    if !s.is_empty() && !out.iter().any(|l| l == s) {
        out.push(s.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn meta(path: &str) -> FileMeta<'_> {
        FileMeta { path, size: 1, mode: 0o644 }
    }

    fn ctx() -> CatalogContext {
        CatalogContext::new(1 << 20).expect("scratch dir")
    }

    fn lock(bytes: &[u8]) -> Result<Found, CatalogError> {
        NpmLockCataloger.catalog(&meta("app/package-lock.json"), &mut &bytes[..], &ctx())
    }

    fn installed(path: &str, bytes: &[u8]) -> Result<Found, CatalogError> {
        NpmPackageCataloger.catalog(&meta(path), &mut &bytes[..], &ctx())
    }

    /// name@version of every package, sorted (map order is not part of the contract).
    fn ids(found: &Found) -> Vec<String> {
        let mut ids: Vec<String> = found.packages.iter().map(|p| format!("{}@{}", p.name, p.version)).collect();
        ids.sort();
        ids
    }

    #[test]
    fn lock_wants() {
        let w = |p: &str| NpmLockCataloger.wants(&meta(p));
        assert!(w("package-lock.json"));
        assert!(w("usr/src/app/package-lock.json"));
        assert!(w("usr/src/app/npm-shrinkwrap.json"));
        assert!(!w("usr/src/app/node_modules/.package-lock.json"), "hidden lockfile duplicates installed packages");
        assert!(!w("usr/src/app/node_modules/express/package-lock.json"), "a dependency's own lockfile");
        assert!(!w("usr/lib/node_modules/npm/node_modules/x/npm-shrinkwrap.json"));
        assert!(!w("usr/src/app/package.json"));
        assert!(!w("usr/src/app/package-lock.json.bak"));
    }

    #[test]
    fn installed_wants() {
        let w = |p: &str| NpmPackageCataloger.wants(&meta(p));
        assert!(w("usr/src/app/node_modules/express/package.json"));
        assert!(w("node_modules/express/package.json"));
        assert!(w("usr/src/app/node_modules/@babel/core/package.json"));
        assert!(w("usr/src/app/node_modules/a/node_modules/@types/node/package.json"));
        assert!(w("usr/lib/node_modules/npm/package.json"));
        assert!(w("app/node_modules/.pnpm/lodash@4.17.21/node_modules/lodash/package.json"));
        assert!(!w("usr/src/app/package.json"), "the application's own manifest");
        assert!(!w("package.json"));
        assert!(!w("usr/src/app/node_modules/express/lib/package.json"), "a nested non-package manifest");
        assert!(!w("usr/src/app/node_modules/@babel/package.json"));
        assert!(!w("usr/src/app/node_modules/.bin/package.json"));
        assert!(!w("usr/src/app/@scope/x/package.json"));
        assert!(!w("usr/src/app/node_modules/express/package.json5"));
        assert!(!w("usr/src/app/node_modules/.package-lock.json"));
    }

    #[test]
    fn name_from_install_paths() {
        let n = |k: &str| match name_from_install_path(k) {
            InstallPath::Dependency(n) => Some(n.to_string()),
            InstallPath::Local => Some("<local>".to_string()),
            InstallPath::Invalid => None,
        };
        assert_eq!(n("node_modules/a").as_deref(), Some("a"));
        assert_eq!(n("node_modules/a/node_modules/@s/b").as_deref(), Some("@s/b"));
        assert_eq!(n("packages/web/node_modules/c").as_deref(), Some("c"));
        assert_eq!(n("packages/web").as_deref(), Some("<local>"));
        assert_eq!(n("my_node_modules/x").as_deref(), Some("<local>"));
        assert_eq!(n("node_modules/").as_deref(), None);
        assert_eq!(n("node_modules/a/b").as_deref(), None);
        assert_eq!(n("node_modules/@s").as_deref(), None);
    }

    #[test]
    fn lockfile_v3_edge_cases() {
        let found = lock(include_bytes!("../../testdata/npm/workspace-lock-v3.json")).expect("parses");
        assert_eq!(
            ids(&found),
            ["@types/node@20.8.0", "left-pad@1.3.0", "lodash@4.17.20", "string-width@4.2.3", "strip-ansi@6.0.1"],
            "root, links, workspace members and alias names handled; warnings {:?}",
            found.warnings
        );
        let lic = |n: &str| found.packages.iter().find(|p| p.name == n).map(|p| p.licenses.clone());
        assert_eq!(lic("@types/node").expect("present"), ["MIT"]);
        assert_eq!(lic("left-pad").expect("present"), ["WTFPL"]);
        assert!(found.packages.iter().all(|p| p.kind == PackageType::Npm));
        assert_eq!(found.warnings.len(), 2, "{:?}", found.warnings);
        assert!(found.warnings.iter().any(|w| w.contains("no version")));
        assert!(found.warnings.iter().any(|w| w.contains("not an object")));
    }

    #[test]
    fn lockfile_v1_edge_cases() {
        let found = lock(include_bytes!("../../testdata/npm/lock-v1.json")).expect("parses");
        assert_eq!(
            ids(&found),
            [
                "@scope/real@2.0.0",
                "debug@2.6.9",
                "git-dep@git+https://github.com/x/y.git#abc123",
                "ms@2.0.0",
                "ms@2.1.3"
            ]
        );
        assert!(found.warnings.iter().any(|w| w.contains("no version")), "{:?}", found.warnings);
    }

    #[test]
    fn malformed_lockfiles() {
        for bad in [
            &b"{"[..],
            b"[]",
            b"\"a string\"",
            b"{\"lockfileVersion\": 2, \"packages\": []}",
            b"{\"lockfileVersion\": 1, \"dependencies\": \"x\"}",
            b"{\"name\": \"not-a-lockfile\"}",
            b"\xff\xfe{}",
        ] {
            match lock(bad) {
                Err(CatalogError::Malformed(_)) => {}
                other => panic!("{:?}: expected Malformed, got {other:?}", String::from_utf8_lossy(bad)),
            }
        }
        // Wrong types inside entries are per-entry warnings, not failures.
        let found = lock(
            br#"{"lockfileVersion":1,"dependencies":{"a":{"version":7},"b":{"version":"1.0.0","dependencies":5}}}"#,
        )
        .expect("parses");
        assert_eq!(ids(&found), ["b@1.0.0"]);
        assert_eq!(found.warnings.len(), 2);
        // A lockfile of a project without dependencies.
        assert!(lock(br#"{"name":"x","lockfileVersion":1}"#).expect("parses").packages.is_empty());
    }

    #[test]
    fn deeply_nested_lockfile_is_malformed_not_a_stack_overflow() {
        let depth = 10_000;
        let mut s = String::from(r#"{"lockfileVersion":1,"dependencies":"#);
        for _ in 0..depth {
            s.push_str(r#"{"a":{"version":"1","dependencies":"#);
        }
        s.push_str("{}");
        for _ in 0..depth {
            s.push_str("}}");
        }
        s.push('}');
        assert!(matches!(lock(s.as_bytes()), Err(CatalogError::Malformed(_))));
    }

    #[test]
    fn installed_manifest_licenses() {
        let found = installed(
            "app/node_modules/@babel/core/package.json",
            br#"{"name":"@babel/core","version":"7.22.0","license":"MIT","readme":"..."}"#,
        )
        .expect("parses");
        assert_eq!(ids(&found), ["@babel/core@7.22.0"]);
        assert_eq!(found.packages[0].licenses, ["MIT"]);
        let lic = |json: &str| {
            let found = installed("node_modules/x/package.json", json.as_bytes()).expect("parses");
            found.packages[0].licenses.clone()
        };
        assert_eq!(lic(r#"{"name":"x","version":"1","license":{"type":"ISC","url":"u"}}"#), ["ISC"]);
        assert_eq!(
            lic(r#"{"name":"x","version":"1","licenses":[{"type":"MIT"},{"type":"Apache-2.0"},"BSD"]}"#),
            ["MIT", "Apache-2.0", "BSD"]
        );
        assert_eq!(lic(r#"{"name":"x","version":"1","license":["MIT","MIT"]}"#), ["MIT"]);
        assert!(lic(r#"{"name":"x","version":"1","license":42}"#).is_empty());
    }

    #[test]
    fn installed_manifest_problems() {
        // No name: the directory name stands in.
        let found = installed("node_modules/@s/pkg/package.json", br#"{"version":"1.0.0"}"#).expect("parses");
        assert_eq!(ids(&found), ["@s/pkg@1.0.0"]);
        // No version, or the wrong type: warning, no package.
        for json in [&br#"{"name":"x"}"#[..], br#"{"name":"x","version":1.5}"#] {
            let found = installed("node_modules/x/package.json", json).expect("parses");
            assert!(found.packages.is_empty());
            assert_eq!(found.warnings.len(), 1);
        }
        for bad in [&b"not json"[..], b"[1,2]", b""] {
            assert!(matches!(installed("node_modules/x/package.json", bad), Err(CatalogError::Malformed(_))));
        }
    }

    fn corpus_lock(version: u32) -> Option<Found> {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus/pkgdb/npm"));
        let file = dir.join(format!("package-lock_v{version}.json"));
        if !file.is_file() {
            eprintln!("skipping: corpus file {} not found", file.display());
            return None;
        }
        let bytes = std::fs::read(&file).expect("read corpus file");
        Some(lock(&bytes).unwrap_or_else(|e| panic!("{}: {e}", file.display())))
    }

    /// The three corpus lockfiles describe the same 33 installs (31 distinct
    /// name@version pairs: debug@2.6.9 and ms@2.0.0 are each nested twice).
    ///
    /// syft 1.18.1 on the same files (as `app/package-lock.json`) reports 30
    /// packages for v2/v3 and 27 for v1. Intentional differences:
    /// * syft adds the root project `node_v1@1.0.0`; we skip it (it is the
    ///   application, not a dependency).
    /// * syft drops dev dependencies (`debug@2.5.2`, `ms@0.7.2`); we keep them.
    /// * for v1, syft reads only the top-level `dependencies` and so misses the
    ///   nested `debug@2.6.9` and `ms@2.0.0`; we walk the nesting.
    ///
    /// Otherwise the sets are identical.
    #[test]
    fn corpus_npm_lockfiles() {
        for version in 1..=3 {
            let Some(found) = corpus_lock(version) else { continue };
            assert!(found.warnings.is_empty(), "v{version}: {:?}", found.warnings);
            let got: BTreeSet<String> = ids(&found).into_iter().collect();
            assert_eq!(found.packages.len(), 31, "v{version}: no duplicates");
            for want in [
                "@babel/helper-string-parser@7.19.4",
                "body-parser@1.18.3",
                "debug@2.6.9",
                "debug@2.5.2",
                "ms@0.7.2",
                "ms@1.0.0",
                "ms@2.0.0",
                "asap@2.0.6",
                "promise@8.3.0",
                "unpipe@1.0.0",
            ] {
                assert!(got.contains(want), "v{version}: missing {want}");
            }
            assert!(!got.iter().any(|id| id.starts_with("node_v1@")), "v{version}: root project reported");
        }
    }

    #[test]
    fn corpus_lockfile_versions_agree() {
        let sets: Vec<BTreeSet<String>> =
            (1..=3).filter_map(corpus_lock).map(|f| ids(&f).into_iter().collect()).collect();
        if sets.len() == 3 {
            assert_eq!(sets[0], sets[1]);
            assert_eq!(sets[1], sets[2]);
        }
    }
}
