//! Alpine (and Wolfi) packages: the apk database `lib/apk/db/installed`.
//!
//! The origin (`o:`) is kept as the source name because Alpine's secdb and
//! OSV file advisories per origin package.

use crate::cataloger::{read_text_capped, CatalogContext, CatalogError, Cataloger, FileMeta, Found};
use crate::package::{Package, PackageType};
use std::io::Read;

/// Parses the apk installed database.
pub struct ApkCataloger;

const MAX_SIZE: u64 = 256 << 20;

impl Cataloger for ApkCataloger {
    fn name(&self) -> &'static str {
        "apk"
    }

    fn version(&self) -> u32 {
        1
    }

    fn wants(&self, file: &FileMeta<'_>) -> bool {
        file.path == "lib/apk/db/installed"
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
        Ok(parse_installed(&text))
    }
}

/// Parses the blank-line-separated records of `lib/apk/db/installed`.
pub fn parse_installed(text: &str) -> Found {
    let mut found = Found::default();
    for record in text.split("\n\n") {
        let (mut name, mut version, mut arch, mut origin, mut license) = (None, None, None, None, None);
        for line in record.lines() {
            let Some((key, value)) = line.split_once(':') else { continue };
            match key {
                "P" => name = Some(value),
                "V" => version = Some(value),
                "A" => arch = Some(value),
                "o" => origin = Some(value),
                "L" => license = Some(value),
                _ => {}
            }
        }
        let (Some(name), Some(version)) = (name, version) else {
            if record.lines().any(|l| l.starts_with("P:") || l.starts_with("V:")) {
                found.warnings.push("apk record without P: or V: skipped".into());
            }
            continue;
        };
        let mut p = Package::new(PackageType::Apk, name, version);
        p.arch = arch.map(str::to_string);
        p.source_name = Some(origin.unwrap_or(name).to_string());
        if let Some(l) = license.filter(|l| !l.is_empty()) {
            p.licenses.push(l.to_string());
        }
        found.packages.push(p);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_with_origin() {
        let db = "C:Q1x=\nP:libcrypto3\nV:3.1.4-r0\nA:x86_64\nL:Apache-2.0\no:openssl\nF:lib\n\nP:musl\nV:1.2.4-r2\nA:x86_64\n\n";
        let found = parse_installed(db);
        let got: Vec<_> =
            found.packages.iter().map(|p| (p.name.as_str(), p.version.as_str(), p.source_name.as_deref())).collect();
        assert_eq!(got, vec![("libcrypto3", "3.1.4-r0", Some("openssl")), ("musl", "1.2.4-r2", Some("musl"))]);
        assert!(found.warnings.is_empty());
    }
}
