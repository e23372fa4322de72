//! Release files that identify the distribution: `os-release` (in `etc/` or
//! `usr/lib/`), with `etc/alpine-release` and `etc/debian_version` as
//! fallbacks for minimal images that lack it.

use crate::cataloger::{read_text_capped, CatalogContext, CatalogError, Cataloger, FileMeta, Found};
use crate::distro::Distro;
use std::io::Read;

/// Reads release files into a [`Distro`].
pub struct OsReleaseCataloger;

const MAX_SIZE: u64 = 64 << 10;

impl Cataloger for OsReleaseCataloger {
    fn name(&self) -> &'static str {
        "os-release"
    }

    fn version(&self) -> u32 {
        1
    }

    fn wants(&self, file: &FileMeta<'_>) -> bool {
        matches!(file.path, "etc/os-release" | "usr/lib/os-release" | "etc/alpine-release" | "etc/debian_version")
    }

    fn max_size(&self) -> u64 {
        MAX_SIZE
    }

    fn catalog(
        &self,
        file: &FileMeta<'_>,
        content: &mut dyn Read,
        _ctx: &CatalogContext,
    ) -> Result<Found, CatalogError> {
        let text = read_text_capped(content, MAX_SIZE)?;
        let distro = match file.path {
            "etc/alpine-release" => Distro::from_alpine_release(&text),
            "etc/debian_version" => Distro::from_debian_version(&text),
            _ => Distro::from_os_release(&text),
        };
        Ok(Found { distro, ..Default::default() })
    }
}
