//! Rust crates recorded by `cargo auditable` in the `.dep-v0` ELF section.
//!
//! `cargo auditable build` links a non-allocated section holding the
//! zlib-compressed JSON `{"packages":[{"name","version","source","kind",
//! "dependencies","root"}, …]}` describing every crate in the build. Being
//! non-allocated, the linker places it after the loaded segments, close to the
//! section header table at the end of the file — which is why the streaming
//! reader keeps the file's tail (see [`super::elf`]).
//!
//! Reported: crates from crates.io, another registry or git, as
//! [`PackageType::Cargo`]. Skipped: `local` (path) crates, which have no
//! published version to match advisories against, and `build`-kind crates
//! (used only at build time: build-dependencies, proc-macros), whose code is
//! not in the binary — Syft skips those too.
//!
//! The JSON is decompressed and parsed as a stream, stopping at a size cap, so
//! a zlib bomb costs at most the cap in decompression work and no buffer.

use crate::cataloger::CatalogError;
use crate::package::{Package, PackageType};
use serde::Deserialize;
use std::io::{BufReader, Read};

/// Name of the section `cargo auditable` writes.
pub const SECTION: &[u8] = b".dep-v0";

/// The document in the section (only the fields used).
#[derive(Debug, Deserialize)]
struct VersionInfo {
    packages: Vec<AuditPackage>,
}

/// One crate of the build.
#[derive(Debug, Deserialize)]
struct AuditPackage {
    name: String,
    version: String,
    /// `crates.io`, `git`, `local`, `registry` or another string.
    #[serde(default)]
    source: Option<String>,
    /// `runtime` (the default, usually omitted) or `build`.
    #[serde(default)]
    kind: Option<String>,
}

/// Decodes the compressed section content into packages, decompressing at most `max_json` bytes.
pub fn decode(compressed: &[u8], max_json: u64) -> Result<Vec<Package>, CatalogError> {
    let mut limited = BufReader::new(flate2::read::ZlibDecoder::new(compressed).take(max_json.saturating_add(1)));
    let parsed: Result<VersionInfo, _> = serde_json::from_reader(&mut limited);
    // Reaching the extra byte means the JSON is longer than allowed, whatever
    // error (likely a truncated document) the parser then saw.
    if limited.get_ref().limit() == 0 {
        return Err(CatalogError::malformed(format!(
            "cargo-auditable data decompresses to more than {max_json} bytes"
        )));
    }
    let info = parsed.map_err(|e| CatalogError::malformed(format!("cargo-auditable data: {e}")))?;
    Ok(info
        .packages
        .into_iter()
        .filter(|p| !p.name.is_empty() && !p.version.is_empty())
        .filter(|p| p.source.as_deref() != Some("local"))
        .filter(|p| p.kind.as_deref() != Some("build"))
        .map(|p| Package::new(PackageType::Cargo, p.name, p.version))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::testutil::zlib;

    const DOC: &str = r#"{"packages":[
        {"name":"app","version":"0.1.0","source":"local","dependencies":[1,2,3],"root":true},
        {"name":"serde","version":"1.0.190","source":"crates.io"},
        {"name":"cc","version":"1.0.83","source":"crates.io","kind":"build"},
        {"name":"forked","version":"0.2.0","source":"git","kind":"runtime"},
        {"name":"internal","version":"3.1.0","source":"registry"}
    ],"format":1}"#;

    fn pairs(pkgs: &[Package]) -> Vec<(&str, &str)> {
        pkgs.iter().map(|p| (p.name.as_str(), p.version.as_str())).collect()
    }

    #[test]
    fn reports_published_runtime_crates() {
        let pkgs = decode(&zlib(DOC.as_bytes()), 1 << 20).unwrap();
        assert_eq!(pairs(&pkgs), vec![("serde", "1.0.190"), ("forked", "0.2.0"), ("internal", "3.1.0")]);
        assert!(pkgs.iter().all(|p| p.kind == PackageType::Cargo));
    }

    #[test]
    fn zlib_bomb_stops_at_the_cap() {
        let mut doc = br#"{"packages":[{"name":"a","version":"1","source":"crates.io","pad":""#.to_vec();
        doc.extend(std::iter::repeat_n(b' ', 4 << 20));
        doc.extend_from_slice(br#""}]}"#);
        let err = decode(&zlib(&doc), 64 << 10).unwrap_err().to_string();
        assert!(err.contains("more than 65536 bytes"), "{err}");
        // Exactly at the cap is fine.
        let small = zlib(DOC.as_bytes());
        assert!(decode(&small, DOC.len() as u64).is_ok());
        assert!(decode(&small, DOC.len() as u64 - 1).is_err());
    }

    #[test]
    fn garbage_is_malformed() {
        for bad in [&b""[..], b"\x78\x9c", b"not zlib at all", &zlib(b"{\"packages\":[{\"name\":1}]}"), &zlib(b"[]")] {
            assert!(matches!(decode(bad, 1 << 20), Err(CatalogError::Malformed(_))), "{bad:?}");
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(decode(&zlib(deep.as_bytes()), 1 << 20).is_err());
        let empty = decode(&zlib(br#"{"packages":[{"name":"","version":"1"}]}"#), 1 << 20).unwrap();
        assert!(empty.is_empty());
    }
}
