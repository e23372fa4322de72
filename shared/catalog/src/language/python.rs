//! Installed Python distributions, from the metadata file every installer leaves
//! behind in `site-packages` / `dist-packages`:
//!
//! * `<name>-<version>.dist-info/METADATA` — wheels and modern pip;
//! * `<name>-<version>.egg-info/PKG-INFO` — setuptools `develop` / legacy installs;
//! * `<name>-<version>.egg/EGG-INFO/PKG-INFO` — unpacked eggs;
//! * `<name>-<version>.egg-info` as a single plain file — what distutils writes,
//!   common in Debian's `usr/lib/python3/dist-packages/`.
//!
//! All four are RFC 822 header blocks (the "core metadata" format). Only the
//! header block is read: since metadata 2.1 the long description follows it as
//! a body that can be megabytes of README, and none of it is needed, so the
//! reader stops at the first blank line instead of buffering the whole file.
//!
//! The name is reported as written; PEP 503 normalisation happens when the
//! purl is built (see [`crate::package::normalize_python_name`]).

use crate::cataloger::{CatalogContext, CatalogError, Cataloger, FileMeta, Found};
use crate::package::{Package, PackageType};
use std::io::{BufRead, BufReader, Read};

/// The catalogers of this module.
pub fn catalogers() -> Vec<Box<dyn Cataloger>> {
    vec![Box::new(PythonMetadataCataloger)]
}

/// Parses core-metadata files (`METADATA`, `PKG-INFO`, single-file `.egg-info`).
pub struct PythonMetadataCataloger;

/// Files up to this size are accepted; only their header block is read.
const MAX_SIZE: u64 = 64 << 20;

/// Cap on the header block itself. Real headers are a few KiB, or a few tens of
/// KiB when `License:` holds a whole license text.
const MAX_HEADER: u64 = 1 << 20;

/// A `License:` value longer than this is a pasted license text, not a name.
const MAX_LICENSE_NAME: usize = 200;

impl Cataloger for PythonMetadataCataloger {
    fn name(&self) -> &'static str {
        "python-metadata"
    }

    fn version(&self) -> u32 {
        1
    }

    fn wants(&self, file: &FileMeta<'_>) -> bool {
        let mut parts = file.path.rsplit('/');
        let name = parts.next().unwrap_or_default();
        let parent = parts.next().unwrap_or_default();
        match name {
            "METADATA" => parent.len() > ".dist-info".len() && parent.ends_with(".dist-info"),
            "PKG-INFO" => {
                (parent.len() > ".egg-info".len() && parent.ends_with(".egg-info"))
                    || (parent == "EGG-INFO" && parts.next().is_some_and(|gp| gp.ends_with(".egg")))
            }
            // distutils' single-file form; a `.egg-info` directory never reaches
            // here because walkers only offer regular files and links.
            _ => name.len() > ".egg-info".len() && name.ends_with(".egg-info"),
        }
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
        let headers = read_header_block(content, MAX_HEADER)?;
        parse_metadata(&headers)
    }
}

/// Reads lines up to (not including) the first empty line, refusing a header
/// block of more than `limit` bytes. Invalid UTF-8 is replaced.
///
/// Legacy metadata (1.x, and setuptools before 2.1) puts the long description
/// in a `Description:` header, indenting its lines by 8 spaces; its blank lines
/// should be indented too, but often are not (trailing whitespace stripped by
/// an editor or a repackager). Such a file has no body, so empty lines inside
/// `Description` are skipped when what follows them is another indented line
/// or another header; otherwise the headers after the description
/// (`Classifier`, …) would be lost.
fn read_header_block(content: &mut dyn Read, limit: u64) -> Result<String, CatalogError> {
    let mut reader = BufReader::new(content.take(limit + 1));
    let mut block = Vec::new();
    let mut line = Vec::new();
    let mut in_description = false;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if is_blank(&line) {
            if !in_description {
                break;
            }
            // Swallow the run of empty lines, then look at what follows it.
            let mut run = 1;
            loop {
                line.clear();
                let buf = reader.fill_buf()?;
                if buf.first().is_none_or(|b| !matches!(b, b'\r' | b'\n')) {
                    break;
                }
                reader.read_until(b'\n', &mut line)?;
                run += 1;
            }
            let next = reader.fill_buf()?;
            if next.first().is_some_and(|b| matches!(b, b' ' | b'\t')) {
                block.extend(std::iter::repeat_n(*b" \n", run).flatten());
                continue;
            }
            if starts_with_header(next) {
                in_description = false;
                continue;
            }
            break;
        }
        if !matches!(line.first(), Some(b' ' | b'\t')) {
            in_description = line.len() >= 12 && line[..12].eq_ignore_ascii_case(b"Description:");
        }
        block.extend_from_slice(&line);
        if block.len() as u64 > limit {
            return Err(CatalogError::TooLarge { size: block.len() as u64, limit });
        }
    }
    Ok(String::from_utf8_lossy(&block).into_owned())
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b'\r' | b'\n'))
}

/// True if `bytes` begins with `Field-Name:` (letters, digits and dashes).
fn starts_with_header(bytes: &[u8]) -> bool {
    let name_len = bytes.iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'-').count();
    name_len > 0 && bytes.get(name_len) == Some(&b':')
}

/// Parses a core-metadata header block into (at most) one package.
///
/// Fails only when the text has no `Key: value` header at all; a header block
/// without `Name` or `Version` yields a warning and no package.
pub fn parse_metadata(text: &str) -> Result<Found, CatalogError> {
    let headers = parse_headers(text);
    if headers.is_empty() {
        return Err(CatalogError::malformed("no metadata headers found"));
    }
    let get = |key: &str| {
        headers.iter().find(|h| h.key.eq_ignore_ascii_case(key)).map(|h| h.value.trim()).filter(|v| !v.is_empty())
    };
    let mut found = Found::default();
    let Some(name) = get("Name") else {
        found.warnings.push("metadata has no Name; skipped".into());
        return Ok(found);
    };
    let Some(version) = get("Version") else {
        found.warnings.push(format!("distribution {name:?} has no Version; skipped"));
        return Ok(found);
    };
    let mut p = Package::new(PackageType::Python, name, version);
    p.licenses = licenses(&headers);
    found.packages.push(p);
    Ok(found)
}

/// One header; `multiline` is set when continuation lines followed it.
struct Header<'a> {
    key: &'a str,
    value: String,
    multiline: bool,
}

/// Splits an RFC 822 header block. Continuation lines (leading whitespace) are
/// joined to the previous header with newlines; lines that are neither are
/// ignored rather than rejected, as Python's own parser tolerates them.
fn parse_headers(text: &str) -> Vec<Header<'_>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out: Vec<Header<'_>> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.value.push('\n');
                last.value.push_str(line.trim());
                last.multiline = true;
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else { continue };
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            continue;
        }
        out.push(Header { key, value: value.trim().to_string(), multiline: false });
    }
    out
}

/// The declared licenses, most specific source first: the SPDX
/// `License-Expression` (metadata 2.4), else a short `License` value, else the
/// trove `License ::` classifiers.
fn licenses(headers: &[Header<'_>]) -> Vec<String> {
    let field = |key: &str| headers.iter().find(|h| h.key.eq_ignore_ascii_case(key));
    if let Some(expr) = field("License-Expression").map(|h| h.value.trim()).filter(|v| !v.is_empty()) {
        return vec![expr.to_string()];
    }
    if let Some(h) = field("License") {
        let v = h.value.trim();
        // "UNKNOWN" is what old setuptools wrote when nothing was declared, and a
        // multi-line or very long value is the license text itself; neither names
        // a license, so the classifiers are a better answer.
        if !v.is_empty() && !v.eq_ignore_ascii_case("UNKNOWN") && !h.multiline && v.len() <= MAX_LICENSE_NAME {
            return vec![v.to_string()];
        }
    }
    let mut out: Vec<String> = Vec::new();
    for h in headers.iter().filter(|h| h.key.eq_ignore_ascii_case("Classifier")) {
        let Some(rest) = h.value.strip_prefix("License ::") else { continue };
        let Some(last) = rest.rsplit("::").next().map(str::trim) else { continue };
        // "License :: OSI Approved" alone says nothing about which license.
        if last.is_empty() || last == "OSI Approved" {
            continue;
        }
        if !out.iter().any(|l| l == last) {
            out.push(last.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn wants(path: &str) -> bool {
        PythonMetadataCataloger.wants(&FileMeta { path, size: 1, mode: 0o644 })
    }

    fn catalog(bytes: &[u8]) -> Result<Found, CatalogError> {
        let ctx = CatalogContext::new(1 << 20).expect("scratch dir");
        let meta = FileMeta { path: "x.dist-info/METADATA", size: bytes.len() as u64, mode: 0o644 };
        PythonMetadataCataloger.catalog(&meta, &mut &bytes[..], &ctx)
    }

    fn one(text: &str) -> Package {
        let found = catalog(text.as_bytes()).expect("parses");
        assert_eq!(found.packages.len(), 1, "warnings: {:?}", found.warnings);
        found.packages[0].clone()
    }

    #[test]
    fn wants_metadata_files_only() {
        assert!(wants("usr/lib/python3.11/site-packages/zipp-3.12.1.dist-info/METADATA"));
        assert!(wants("usr/local/lib/python3.8/site-packages/setuptools-51.3.3-py3.8.egg-info/PKG-INFO"));
        assert!(wants("usr/lib/python3/dist-packages/python_apt-2.4.0.egg-info"));
        assert!(wants("usr/lib/python3.8/site-packages/foo-1.0-py3.8.egg/EGG-INFO/PKG-INFO"));
        assert!(!wants("usr/lib/python3.11/site-packages/zipp-3.12.1.dist-info/RECORD"));
        assert!(!wants("usr/lib/python3.11/site-packages/zipp-3.12.1.dist-info/LICENSE"));
        assert!(!wants("src/foo-1.0/PKG-INFO"), "an sdist's PKG-INFO is not an installation");
        assert!(!wants("METADATA"));
        assert!(!wants(".dist-info/METADATA"));
        assert!(!wants("x/.egg-info"));
        assert!(!wants("usr/lib/python3/dist-packages/foo.egg-info.bak"));
        assert!(!wants("opt/EGG-INFO/PKG-INFO"));
    }

    #[test]
    fn reads_name_version_and_license_expression() {
        let p = one(include_str!("../../testdata/python/expression.METADATA"));
        assert_eq!((p.name.as_str(), p.version.as_str()), ("Example.Pkg", "1.2.0rc1"));
        assert_eq!(p.kind, PackageType::Python);
        assert_eq!(p.licenses, ["MIT OR Apache-2.0"]);
    }

    #[test]
    fn stops_at_the_body() {
        // The body repeats header-like lines that must not override the headers.
        let p = one("Name: real\nVersion: 1.0\n\nName: fake\nVersion: 9\nLicense: GPL\n");
        assert_eq!((p.name.as_str(), p.version.as_str()), ("real", "1.0"));
        assert!(p.licenses.is_empty());
    }

    #[test]
    fn legacy_description_with_unindented_blank_lines() {
        let p = one(
            "Name: legacy\nVersion: 1\nLicense: UNKNOWN\nDescription: Title\n        =====\n\n        Para.\n\r\n\n        \
             More.\n\nPlatform: UNKNOWN\nClassifier: License :: OSI Approved :: MIT License\n\nbody: not a header\n",
        );
        assert_eq!(p.licenses, ["MIT License"]);
        // Outside a Description, an indented line after a blank one is body text.
        let p =
            one("Name: modern\nVersion: 1\nSummary: s\n\n    indented body\nClassifier: License :: Public Domain\n");
        assert!(p.licenses.is_empty());
    }

    #[test]
    fn crlf_and_bom_are_tolerated() {
        let p = one("\u{feff}Metadata-Version: 1.0\r\nName: crlf\r\nVersion: 2.0\r\nLicense: BSD\r\n\r\nbody\r\n");
        assert_eq!((p.name.as_str(), p.version.as_str()), ("crlf", "2.0"));
        assert_eq!(p.licenses, ["BSD"]);
    }

    #[test]
    fn license_text_and_unknown_fall_back_to_classifiers() {
        let p = one(include_str!("../../testdata/python/license-text.PKG-INFO"));
        assert_eq!((p.name.as_str(), p.version.as_str()), ("legacy", "0.9"));
        assert_eq!(p.licenses, ["BSD License"]);
        let p = one("Name: u\nVersion: 1\nLicense: UNKNOWN\nClassifier: License :: OSI Approved\n\
             Classifier: License :: OSI Approved :: MIT License\nClassifier: License :: OSI Approved :: MIT License\n\
             Classifier: Programming Language :: Python\n");
        assert_eq!(p.licenses, ["MIT License"]);
    }

    #[test]
    fn distutils_egg_info_file() {
        let p = one(include_str!("../../testdata/python/python_apt-2.4.0.egg-info"));
        assert_eq!((p.name.as_str(), p.version.as_str()), ("python-apt", "2.4.0+ubuntu1"));
        assert_eq!(p.licenses, ["GNU GPL"]);
    }

    #[test]
    fn missing_name_or_version_is_a_warning() {
        let found = catalog(b"Metadata-Version: 2.1\nName: noversion\n").expect("parses");
        assert!(found.packages.is_empty());
        assert_eq!(found.warnings.len(), 1);
        assert!(found.warnings[0].contains("noversion"));
        let found = catalog(b"Metadata-Version: 2.1\nName:   \nVersion: 1\n").expect("parses");
        assert!(found.packages.is_empty());
        assert_eq!(found.warnings.len(), 1);
    }

    #[test]
    fn non_metadata_is_malformed() {
        for bad in [&b""[..], b"\n\nName: after-blank\n", b"\x00\x01\x02binary", b"just some words\nmore words\n"] {
            match catalog(bad) {
                Err(CatalogError::Malformed(_)) => {}
                other => panic!("{bad:?}: expected Malformed, got {other:?}"),
            }
        }
    }

    #[test]
    fn oversized_header_block_is_refused() {
        let mut text = String::from("Name: big\nVersion: 1\nLicense: x\n");
        let filler = " ".to_string() + &"y".repeat(1023) + "\n";
        while text.len() as u64 <= MAX_HEADER {
            text.push_str(&filler);
        }
        assert!(matches!(catalog(text.as_bytes()), Err(CatalogError::TooLarge { .. })));
        // A huge body after the headers is fine: it is never read.
        let big_body = format!("Name: big\nVersion: 1\n\n{}", "z".repeat(2 << 20));
        assert_eq!(catalog(big_body.as_bytes()).expect("parses").packages.len(), 1);
    }

    fn corpus_dir() -> Option<std::path::PathBuf> {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus/pkgdb/python"));
        if dir.is_dir() {
            Some(dir.to_path_buf())
        } else {
            eprintln!("skipping: corpus not found at {}", dir.display());
            None
        }
    }

    /// Compared with syft 1.18.1 on the same files laid out in site-packages:
    /// the name@version sets are identical. (On other trees syft prints names
    /// PEP 503-normalised, `pyyaml` for `PyYAML`; we keep the name as written
    /// and normalise in the purl.) Licenses differ on purpose: syft reports
    /// only the `License` field (so `UNKNOWN` for setuptools and nothing for
    /// zipp and pyphen); we fall back to the trove classifiers.
    #[test]
    fn corpus_python_metadata() {
        let Some(dir) = corpus_dir() else { return };
        let mut got = BTreeSet::new();
        let mut licenses = std::collections::BTreeMap::new();
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).expect("read corpus dir") {
            let path = entry.expect("dir entry").path();
            let bytes = std::fs::read(&path).expect("read corpus file");
            let found = catalog(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(found.warnings.is_empty(), "{}: {:?}", path.display(), found.warnings);
            assert_eq!(found.packages.len(), 1, "{}", path.display());
            files += 1;
            for p in found.packages {
                got.insert(format!("{}@{}", p.name, p.version));
                licenses.insert(p.name.clone(), p.licenses.clone());
            }
        }
        assert_eq!(files, 7);
        let want: BTreeSet<String> = [
            "asyncssh@2.14.2",
            "distlib@0.3.1",
            "iniconfig@2.0.0",
            "networkx@3.0",
            "pyphen@0.14.0",
            "setuptools@51.3.3",
            "zipp@3.12.1",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(got, want);
        let lic = |n: &str| licenses.get(n).cloned().unwrap_or_default();
        assert_eq!(lic("asyncssh"), ["Eclipse Public License v2.0"]);
        assert_eq!(lic("distlib"), ["Python license"]);
        assert_eq!(lic("iniconfig"), ["MIT"], "License-Expression wins over the classifier");
        assert_eq!(lic("setuptools"), ["MIT License"], "UNKNOWN falls back to the classifier");
        assert_eq!(lic("zipp"), ["MIT License"]);
        assert_eq!(lic("pyphen").len(), 3);
        assert!(lic("networkx").is_empty());
    }
}
